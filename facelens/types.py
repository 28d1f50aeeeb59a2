"""Result types that flow through every stage: source -> detect -> crop -> attributes -> track/fuse -> sinks.

All are frozen dataclasses. Coordinates are pixels of the full-resolution frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "anger")
"""Emotion labels in the order of emotions-recognition-retail-0003's output."""

GENDERS: tuple[str, ...] = ("female", "male")
"""Gender labels in the order of age-gender-recognition-retail-0013's output."""

EVENT_KINDS: tuple[str, ...] = ("enter", "exit")

COUNTED_MIN_FRAMES = 5
"""A person record seen in fewer frames is a fragment, not a person (`PersonRecord.counted`)."""
COUNTED_MIN_SECONDS = 0.8
"""A person record seen for less time is a fragment, not a person (`PersonRecord.counted`). Chosen
from the counts by eye of the shared videos (tests/data/people_by_eye.csv, benchmarks/counting.py):
every video is within 25% of its count by eye from 0.7 to 1.0 s; below, the first shot of
speaker-360p.mp4 (0.63 s) counts its two people again; above, street-720p.mp4 loses spectators the
camera passes in under a second."""


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels: (x1, y1) top-left, (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    def clip(self, width: int, height: int) -> Box:
        """The part of the box inside a `width` x `height` frame (may have zero area)."""
        x1 = min(max(self.x1, 0.0), width)
        y1 = min(max(self.y1, 0.0), height)
        return Box(x1, y1, min(max(self.x2, x1), width), min(max(self.y2, y1), height))

    def contains(self, x: float, y: float) -> bool:
        return self.x1 <= x <= self.x2 and self.y1 <= y <= self.y2

    def to_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]


@dataclass(frozen=True, slots=True)
class Detection:
    """A face found by the detector."""

    box: Box
    confidence: float


@dataclass(frozen=True, slots=True)
class Gender:
    label: str
    """"female", "male", or "unknown" where the network is unsure (`facelens.attributes.UNSURE_GENDER`)."""
    probability: float
    """Probability of `label`, 0.5 to 1; while "unknown", the probability of male."""

    @property
    def male(self) -> float:
        """The probability of male."""
        return 1.0 - self.probability if self.label == "female" else self.probability


@dataclass(frozen=True, slots=True)
class Emotion:
    label: str
    """The most probable of `EMOTIONS`."""
    probabilities: tuple[float, ...]
    """One probability per label of `EMOTIONS`, in that order."""

    def as_dict(self) -> dict[str, float]:
        return dict(zip(EMOTIONS, self.probabilities))


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in degrees, as head-pose-estimation-adas-0001 gives it (0, 0, 0: facing the camera)."""

    yaw: float
    """Left-right turn."""
    pitch: float
    """Up-down tilt."""
    roll: float
    """In-plane tilt."""

    def facing(self, limit: float = 20.0) -> bool:
        """Whether the face looks at the camera: yaw and pitch both within +-`limit` degrees."""
        return abs(self.yaw) <= limit and abs(self.pitch) <= limit


@dataclass(frozen=True, slots=True)
class Attributes:
    """What the attribute networks say about one face; None where a network is switched off or skipped."""

    age: float | None = None
    """Estimated age in years (the model is trained for 18-75)."""
    gender: Gender | None = None
    emotion: Emotion | None = None
    pose: Pose | None = None
    landmarks: Landmarks | None = None
    """Five points in frame pixels, where a network wanted an aligned face (see `Face.landmarks`)."""
    age_distribution: tuple[float, ...] | None = None
    """Probabilities over `facelens.attribute_models.cc0.AGES` where the age network gives them (cc0);
    for the person-level fusion, not in the per-face JSON (81 numbers a face)."""


Landmarks = tuple[tuple[float, float], ...]
"""Five (x, y) points in frame pixels: the centres of the image's left and right eye, the nose tip,
the left and right mouth corner (landmarks-regression-retail-0009)."""


@dataclass(frozen=True, slots=True)
class Fused:
    """What to display for one tracked person now: the attributes fused over the frames seen so far."""

    age: float | None
    """Weighted median of the observed ages; None before any age was observed."""
    age_uncertainty: float | None
    """Standard error of `age` in years (robust); it says how settled the model's estimate is, not
    the model's own error (~7 years MAE), which more frames cannot reduce."""
    age_bucket: str
    """`facelens.fuse.AGE_BUCKETS` label, or "unknown" until the weight and uncertainty suffice."""
    minor: bool | None
    """True when the fused age is under 18; None while the age bucket is unknown. The age model is
    only valid for 18-75: treat True as a flag for a human to check, not as a fact."""
    gender: str
    """"female", "male" or "unknown"."""
    gender_confidence: float
    """Posterior probability of the shown gender (of the likelier one while "unknown")."""
    emotion: str
    """One of `EMOTIONS`, or "unknown" until the weight suffices."""
    emotion_probabilities: tuple[float, ...] | None
    """Time-decayed, quality-weighted mean over `EMOTIONS`; None before any emotion was observed."""
    observations: int
    """Observations added, with or without attributes."""
    weight: float
    """Sum of their qualities."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "age": None if self.age is None else round(self.age, 1),
            "age_uncertainty": None if self.age_uncertainty is None else round(self.age_uncertainty, 2),
            "age_bucket": self.age_bucket,
            "minor": self.minor,
            "gender": self.gender,
            "gender_confidence": round(self.gender_confidence, 4),
            "emotion": self.emotion,
            "emotion_probabilities": None
            if self.emotion_probabilities is None
            else {k: round(v, 4) for k, v in zip(EMOTIONS, self.emotion_probabilities)},
        }


@dataclass(frozen=True, slots=True)
class Face:
    """One face of a frame: where it is and what it looks like."""

    box: Box
    confidence: float
    """Detector confidence, 0 to 1."""
    age: float | None = None
    """This frame's estimate; None when the network is off or was skipped for this frame (see `person`)."""
    gender: Gender | None = None
    emotion: Emotion | None = None
    pose: Pose | None = None
    track_id: int | None = None
    """The person's id within its source while tracking; None for untracked faces (still images,
    tracking off, or a face not yet confirmed as a track)."""
    quality: float | None = None
    """How much this view counts for the person's fused attributes, 0..1 (see `facelens.fuse.face_quality`)."""
    person: Fused | None = None
    """The person's attributes fused over all frames so far: the steady labels to show."""
    landmarks: Landmarks | None = None
    """Five points of the face in frame pixels (see `Landmarks`); None when no network of the
    run wanted aligned faces, or none ran on this face in this frame."""

    @classmethod
    def of(cls, detection: Detection, attributes: Attributes) -> Face:
        return cls(
            detection.box,
            detection.confidence,
            attributes.age,
            attributes.gender,
            attributes.emotion,
            attributes.pose,
            landmarks=attributes.landmarks,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.to_list(),
            "confidence": round(self.confidence, 4),
            "age": None if self.age is None else round(self.age, 1),
            "gender": None if self.gender is None else self.gender.label,
            "gender_probability": None if self.gender is None else round(self.gender.probability, 4),
            "emotion": None if self.emotion is None else self.emotion.label,
            "emotion_probabilities": None
            if self.emotion is None
            else {k: round(v, 4) for k, v in self.emotion.as_dict().items()},
            "pose": None
            if self.pose is None
            else {"yaw": round(self.pose.yaw, 1), "pitch": round(self.pose.pitch, 1), "roll": round(self.pose.roll, 1)},
            "track_id": self.track_id,
            "quality": None if self.quality is None else round(self.quality, 3),
            "person": None if self.person is None else self.person.to_dict(),
            "landmarks": None if self.landmarks is None else [[round(x, 1), round(y, 1)] for x, y in self.landmarks],
        }


@dataclass(frozen=True, slots=True)
class Frame:
    """One image from a source, in BGR uint8 (H, W, 3)."""

    image: np.ndarray = field(repr=False, compare=False)
    index: int
    """Position in its source, from 0."""
    timestamp: float | None
    """Seconds from the start of the source (video position); None for still images."""
    source: str
    """Name of the source: a file path, camera index or stream URL."""
    note: str | None = None
    """A remark about this frame, e.g. a reconnection gap before it or a resolution change."""
    found: Found | None = None
    """Faces found before the frame reached facelens (a camera that detects on board), else None:
    the engine then takes these instead of running its own detector (see `facelens.stages`)."""


@dataclass(frozen=True, slots=True)
class Found:
    """What a device found in a frame: its detections and, for each, the attributes it estimated
    (None where it estimated none, e.g. when its recognition of that frame was lost)."""

    detections: tuple[Detection, ...]
    attributes: tuple[Attributes, ...] | None = None

    def __post_init__(self) -> None:
        if self.attributes is not None and len(self.attributes) != len(self.detections):
            raise ValueError(f"{len(self.detections)} detections but {len(self.attributes)} attributes")


@dataclass(frozen=True, slots=True)
class Event:
    """A person entering or leaving the view of a source."""

    source: str
    track_id: int
    kind: str
    """"enter" or "exit"."""
    timestamp: float | None
    """Seconds in the source (video position); None for still images."""
    wall_time: float
    """Unix time when it was recorded."""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind must be one of {', '.join(EVENT_KINDS)}, not {self.kind!r}")


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """Everything known about one tracked person of one source: presence and fused attributes."""

    source: str
    track_id: int
    first_seen: float | None
    last_seen: float | None
    dwell_seconds: float | None
    attention_seconds: float | None
    frames: int
    age: float | None
    age_uncertainty: float | None
    age_bucket: str
    minor: bool | None
    gender: str
    gender_confidence: float | None
    emotion: str
    emotion_probabilities: dict[str, float] | None
    thumbnail_jpeg: bytes | None = None
    """Best shot as JPEG, only when asked for (privacy: off by default)."""

    @property
    def counted(self) -> bool:
        """Whether this record counts as a person in analytics: seen long enough and often enough.

        Shorter records are fragments (a glimpse, a false detection, a piece of a track broken by a
        pause); reports count them apart. Records of still images (no dwell) always count.
        """
        if self.dwell_seconds is None:
            return True
        return self.frames >= COUNTED_MIN_FRAMES and self.dwell_seconds >= COUNTED_MIN_SECONDS


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything found in one frame."""

    frame: Frame
    faces: tuple[Face, ...]
    error: str | None = None
    """Why this frame has no results (an inference failed or timed out), else None."""
    stream: int = 0
    """Position of the frame's source among the sources of the run."""
    events: tuple[Event, ...] = ()
    """People who entered or left the view with this frame (while tracking)."""
    people: tuple[PersonRecord, ...] = ()
    """Person records written with this frame: of people who left, and periodic updates of people
    still in view (a later record of the same source and track replaces an earlier one)."""
    end: bool = False
    """True for the extra result a tracked source gives after its last frame (`frame` is that frame
    again): no faces, only the exits and final records of the people still in view."""
    detected: bool = True
    """False for a frame the detector skipped (detection on every k-th frame, or a live source
    the box could not keep up with): its faces are where the tracker predicts them, with their
    person's labels and no per-frame attributes."""

    @property
    def index(self) -> int:
        return self.frame.index

    @property
    def timestamp(self) -> float | None:
        return self.frame.timestamp

    @property
    def source(self) -> str:
        return self.frame.source

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record of this frame ("type": "frame"); "error", "note" and "detected"
        (false) appear only when set."""
        record: dict[str, Any] = {
            "type": "frame",
            "frame": self.index,
            "timestamp": None if self.timestamp is None else round(self.timestamp, 3),
            "source": self.source,
            "width": self.frame.image.shape[1],
            "height": self.frame.image.shape[0],
            "faces": [face.to_dict() for face in self.faces],
        }
        if self.error is not None:
            record["error"] = self.error
        if self.frame.note is not None:
            record["note"] = self.frame.note
        if not self.detected:
            record["detected"] = False
        return record
