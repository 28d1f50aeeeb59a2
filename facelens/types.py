"""Result types that flow through every stage: source -> detect -> crop -> attributes -> sinks.

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
    """"female" or "male"."""
    probability: float
    """Probability of `label`, 0.5 to 1."""


@dataclass(frozen=True, slots=True)
class Emotion:
    label: str
    """The most probable of `EMOTIONS`."""
    probabilities: tuple[float, ...]
    """One probability per label of `EMOTIONS`, in that order."""

    def as_dict(self) -> dict[str, float]:
        return dict(zip(EMOTIONS, self.probabilities))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What the attribute networks say about one face; None where a network is switched off."""

    age: float | None = None
    """Estimated age in years (the model is trained for 18-75)."""
    gender: Gender | None = None
    emotion: Emotion | None = None


@dataclass(frozen=True, slots=True)
class Face:
    """One face of a frame: where it is and what it looks like."""

    box: Box
    confidence: float
    """Detector confidence, 0 to 1."""
    age: float | None = None
    gender: Gender | None = None
    emotion: Emotion | None = None

    @classmethod
    def of(cls, detection: Detection, attributes: Attributes) -> Face:
        return cls(detection.box, detection.confidence, attributes.age, attributes.gender, attributes.emotion)

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


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything found in one frame."""

    frame: Frame
    faces: tuple[Face, ...]
    error: str | None = None
    """Why this frame has no results (an inference failed or timed out), else None."""
    stream: int = 0
    """Position of the frame's source among the sources of the run."""

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
        """The JSON Lines record of this frame; "error" and "note" appear only when set."""
        record: dict[str, Any] = {
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
        return record
