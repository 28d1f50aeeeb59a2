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
    _draw(out, faces, blur_faces, _thickness(out.shape), (0, 0))
    return out


def annotate_i420(image: np.ndarray, faces: Sequence[Face], *, blur_faces: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """`annotate`'s picture as OpenCV's BGR -> YUV I420 gives it (BT.601, video levels), into `out`
    if given; `image` must have even sides.

    The frame is converted whole and untouched; only the parts the faces are drawn on are copied,
    drawn on in BGR and converted again, so the picture is `annotate`'s to the bit at a fraction of
    its cost (no copy of the frame, and the encoder is handed what it takes).
    """
    height, width = image.shape[:2]
    yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420, dst=out)
    luma = yuv[:height]
    chroma = yuv[height:].reshape(2, height // 2, width // 2)  # U then V, each a quarter of the frame
    thickness = _thickness(image.shape)
    for x1, y1, x2, y2, group in _patches(faces, width, height, thickness, blur_faces):
        patch = image[y1:y2, x1:x2].copy()
        _draw(patch, group, blur_faces, thickness, (x1, y1))
        converted = cv2.cvtColor(patch, cv2.COLOR_BGR2YUV_I420)
        h, w = y2 - y1, x2 - x1
        luma[y1:y2, x1:x2] = converted[:h]
        chroma[:, y1 // 2 : y2 // 2, x1 // 2 : x2 // 2] = converted[h:].reshape(2, h // 2, w // 2)
    return yuv


def _thickness(shape: tuple[int, ...]) -> int:
    return max(1, round(min(shape[:2]) / 360))


def _draw(out: np.ndarray, faces: Sequence[Face], blur_faces: bool, thickness: int, origin: tuple[int, int]) -> None:
    """Draw onto `out`, the part of the frame whose top left corner is at `origin`."""
    ox, oy = origin
    if blur_faces:
        blur(out, [Box(f.box.x1 - ox, f.box.y1 - oy, f.box.x2 - ox, f.box.y2 - oy) for f in faces])
    scale = thickness * 0.5
    for face in faces:
        x1, y1, x2, y2 = _corners(face)
        text = label(face)
        color = _color(face)
        cv2.rectangle(out, (x1 - ox, y1 - oy), (x2 - ox, y2 - oy), color, thickness)
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            top = (y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y2) - oy
            cv2.rectangle(out, (x1 - ox, top), (x1 - ox + tw + 2, top + th + base + 2), color, -1)
            cv2.putText(out, text, (x1 - ox + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _corners(face: Face) -> tuple[int, int, int, int]:
    box = face.box
    return round(box.x1), round(box.y1), round(box.x2), round(box.y2)


def _color(face: Face) -> tuple[int, int, int]:
    gender = face.person.gender if face.person else face.gender.label if face.gender else None
    return _COLORS.get(gender, _COLORS[None])


def _patches(faces: Sequence[Face], width: int, height: int, thickness: int, blur_faces: bool) -> list[tuple[int, int, int, int, list[Face]]]:
    """Rectangles with even corners that hold all that is drawn for the faces, those that overlap
    merged into one (so each is drawn in one piece, in order), each with its faces."""
    scale = thickness * 0.5
    margin = thickness + 2  # half the line's width, and the anti-aliased edge of the text
    merged: list[tuple[int, int, int, int, list[int]]] = []
    for i, face in enumerate(faces):
        x1, y1, _, y2 = left, top, right, bottom = _corners(face)
        text = label(face)
        if text:
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
            label_top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y2
            top, bottom, right = min(top, label_top), max(bottom, label_top + th + base + 2), max(right, x1 + tw + 2)
        left, top, right, bottom = left - margin, top - margin, right + margin, bottom + margin
        if blur_faces:
            region = _BLUR_REGION.region(face.box)
            left, top = min(left, int(region.x1)), min(top, int(region.y1))
            right, bottom = max(right, int(np.ceil(region.x2))), max(bottom, int(np.ceil(region.y2)))
        # Even corners: each 2x2 block, one sample of the chroma planes, is then wholly in or out.
        patch = (max(0, left) // 2 * 2, max(0, top) // 2 * 2, min(width, (right + 1) // 2 * 2), min(height, (bottom + 1) // 2 * 2), [i])
        if patch[2] <= patch[0] or patch[3] <= patch[1]:
            continue
        while (hit := next((m for m in merged if m[0] < patch[2] and patch[0] < m[2] and m[1] < patch[3] and patch[1] < m[3]), None)) is not None:
            merged.remove(hit)
            patch = (min(hit[0], patch[0]), min(hit[1], patch[1]), max(hit[2], patch[2]), max(hit[3], patch[3]), hit[4] + patch[4])
        merged.append(patch)
    return [(x1, y1, x2, y2, [faces[i] for i in sorted(group)]) for x1, y1, x2, y2, group in merged]


class Picture:
    """A frame's annotated picture, drawn when first asked for, by whichever thread asks, then kept.

    The engine's loop hands this to the sinks, so that a sink writing on its own thread (a video)
    also draws there; sinks of one frame that all want the picture get the one drawing.
    """

    __slots__ = ("_blur", "_drawn", "_faces", "_image", "_lock")

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

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        image = self._drawn if self._drawn is not None else self._image
        assert image is not None
        return image.shape[1], image.shape[0]

    def i420(self, out: np.ndarray | None = None) -> np.ndarray:
        """The picture in YUV I420 (see `annotate_i420`; even sides only), into `out` if given; not kept."""
        with self._lock:
            if self._drawn is not None:
                return cv2.cvtColor(self._drawn, cv2.COLOR_BGR2YUV_I420, dst=out)
            assert self._image is not None
            return annotate_i420(self._image, self._faces, blur_faces=self._blur, out=out)
