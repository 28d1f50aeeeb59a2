"""facelens: find every face and tell its age, gender and emotion, on OpenVINO.

The flow is source -> detect -> crop -> attributes -> people (track/fuse) -> sinks; `Analyzer` runs it:

    from facelens import Analyzer
    for result in Analyzer().stream("street.mp4"):
        for face in result.faces:
            print(result.timestamp, face.box, face.track_id, face.person)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported when first used, so that `import facelens.types` (or a command that needs no
# network) does not load OpenVINO, scipy and the rest.
_WHERE = {
    "Analyzer": "analyzer",
    "CropConfig": "crop",
    "ChecksumError": "errors",
    "FacelensError": "errors",
    "ModelError": "errors",
    "SourceError": "errors",
    "ModelStore": "models",
    "Engine": "engine",
    "EngineStats": "engine",
    "SourceStats": "engine",
    "PeopleConfig": "people",
    "PeopleStats": "people",
    "Reconnect": "sources",
    "Source": "sources",
    "open_source": "sources",
    **dict.fromkeys(
        ["EMOTIONS", "GENDERS", "Attributes", "Box", "Detection", "Emotion", "Event", "Face", "Frame", "FrameResult", "Fused", "Gender", "PersonRecord", "Pose"],
        "types",
    ),
}

if TYPE_CHECKING:
    from .analyzer import Analyzer
    from .crop import CropConfig
    from .engine import Engine, EngineStats, SourceStats
    from .errors import ChecksumError, FacelensError, ModelError, SourceError
    from .models import ModelStore
    from .people import PeopleConfig, PeopleStats
    from .sources import Reconnect, Source, open_source
    from .types import EMOTIONS, GENDERS, Attributes, Box, Detection, Emotion, Event, Face, Frame, FrameResult, Fused, Gender, PersonRecord, Pose


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'facelens' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


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
