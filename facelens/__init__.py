"""facelens: find every face and tell its age, gender and emotion, on OpenVINO.

The flow is source -> detect -> crop -> attributes -> people (track/fuse) -> sinks; `Analyzer` runs it:

    from facelens import Analyzer
    for result in Analyzer().stream("street.mp4"):
        for face in result.faces:
            print(result.timestamp, face.box, face.track_id, face.person)
"""

from .analyzer import Analyzer
from .crop import CropConfig
from .errors import ChecksumError, FacelensError, ModelError, SourceError
from .models import ModelStore
from .engine import Engine, EngineStats, SourceStats
from .people import PeopleConfig, PeopleStats
from .sources import Reconnect, Source, open_source
from .types import (
    EMOTIONS,
    GENDERS,
    Attributes,
    Box,
    Detection,
    Emotion,
    Event,
    Face,
    Frame,
    FrameResult,
    Fused,
    Gender,
    PersonRecord,
    Pose,
)

__version__ = "0.1.0"
__all__ = [
    "EMOTIONS",
    "GENDERS",
    "Analyzer",
    "Attributes",
    "Box",
    "ChecksumError",
    "CropConfig",
    "Detection",
    "Emotion",
    "Engine",
    "Event",
    "EngineStats",
    "Face",
    "FacelensError",
    "Frame",
    "FrameResult",
    "Fused",
    "Gender",
    "ModelError",
    "ModelStore",
    "PeopleConfig",
    "PeopleStats",
    "PersonRecord",
    "Pose",
    "Reconnect",
    "Source",
    "SourceError",
    "SourceStats",
    "open_source",
]
