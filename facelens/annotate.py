"""Draw what was found onto a copy of the frame, and blur faces for privacy."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import cv2
import numpy as np

from .crop import CropConfig
from .types import Box, Face

_COLORS = {"female": (180, 60, 230), "male": (230, 140, 30), None: (60, 200, 60)}
_BLUR_REGION = CropConfig(scale=1.3, square=False)


def label(face: Face) -> str:
    """Short text for a face: "F 34 happy" from this frame, or for a tracked person its fused
    labels, e.g. "#3 F 30-44 happy" ("?" where still unknown, "<18?" when the age looks under 18)."""
    person = face.person
    if person is not None:
        gender = "?" if person.gender == "unknown" else person.gender[0].upper()
        age = "?" if person.age_bucket == "unknown" else person.age_bucket + ("<18?" if person.minor else "")
        emotion = "?" if person.emotion == "unknown" else person.emotion
        return f"#{face.track_id} {gender} {age} {emotion}"
    parts = []
    if face.gender is not None:
        parts.append(face.gender.label[0].upper())
    if face.age is not None:
        parts.append(f"{face.age:.0f}")
    if face.emotion is not None:
        parts.append(face.emotion.label)
    return " ".join(parts)


def blur(image: np.ndarray, boxes: Sequence[Box]) -> None:
    """Pixelate each box (enlarged to cover hair and chin) in place, beyond recognition."""
    height, width = image.shape[:2]
    for box in boxes:
        region = _BLUR_REGION.region(box).clip(width, height)
        x1, y1, x2, y2 = int(region.x1), int(region.y1), int(np.ceil(region.x2)), int(np.ceil(region.y2))
        if x2 <= x1 or y2 <= y1:
            continue
        patch = image[y1:y2, x1:x2]
        # Pixelating to a fixed 6-cell grid removes identity whatever the face size; the blur hides the grid.
        small = cv2.resize(patch, (6, 6), interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        k = max(3, (min(x2 - x1, y2 - y1) // 3) | 1)
        image[y1:y2, x1:x2] = cv2.GaussianBlur(coarse, (k, k), 0)


def annotate(image: np.ndarray, faces: Sequence[Face], *, blur_faces: bool = False) -> np.ndarray:
    """A copy of `image` with a box and label per face; faces pixelated first if `blur_faces`."""
    out = image.copy()
    if blur_faces:
        blur(out, [face.box for face in faces])
    thickness = max(1, round(min(out.shape[:2]) / 360))
    scale = thickness * 0.5
    for face in faces:
        gender = face.person.gender if face.person else face.gender.label if face.gender else None
        color = _COLORS.get(gender, _COLORS[None])
        x1, y1, x2, y2 = (int(round(v)) for v in (face.box.x1, face.box.y1, face.box.x2, face.box.y2))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        text = label(face)
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y2
            cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), color, -1)
            cv2.putText(out, text, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


class Picture:
    """A frame's annotated picture, drawn when first asked for, by whichever thread asks, then kept.

    The engine's loop hands this to the sinks, so that a sink writing on its own thread (a video)
    also draws there; sinks of one frame that all want the picture get the one drawing.
    """

    __slots__ = ("_image", "_faces", "_blur", "_drawn", "_lock")

    def __init__(self, image: np.ndarray, faces: Sequence[Face], *, blur_faces: bool = False) -> None:
        self._image: np.ndarray | None = image
        self._faces = faces
        self._blur = blur_faces
        self._drawn: np.ndarray | None = None
        self._lock = threading.Lock()

    def __call__(self) -> np.ndarray:
        """The picture: a copy of the frame with a box and label per face (see `annotate`)."""
        with self._lock:
            if self._drawn is None:
                assert self._image is not None
                self._drawn = annotate(self._image, self._faces, blur_faces=self._blur)
                self._image = None  # the frame may be let go of once drawn
            return self._drawn
