"""Stage 2b: five landmarks per face and face chips aligned to the template a network was trained on.

landmarks-regression-retail-0009 gives, per face, the centres of both eyes, the nose tip and both
mouth corners (in that order, the image's left eye first). A network trained on aligned faces gets
a chip warped from the full-resolution frame by the similarity transform (rotation, uniform scale,
shift; least squares, Umeyama) that takes these five points to its `Template`: one warp per face
and chip size, so no resampling is stacked on another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .crop import CropConfig, crop_batch
from .runtime import Inference, Network
from .types import Box

LANDMARKS_MODEL = "landmarks-regression-retail-0009"

LANDMARK_CROP = CropConfig(scale=1.0)
"""The region of a detected box the landmark network sees (it was trained on detector boxes).
Measured against dlib's shape predictor on utkface-3k: see benchmarks/alignment.py."""


@dataclass(frozen=True)
class Template:
    """Where the five landmarks sit in a chip a network was trained on, per chip size.

    `points[size]` is a (5, 2) array in chip pixels, in the order landmarks-regression-retail-0009
    gives them. A size without its own points scales those of the nearest size.
    """

    name: str
    points: dict[int, tuple[tuple[float, float], ...]]

    def at(self, size: int) -> np.ndarray:
        """The template's points for a `size` x `size` chip."""
        if size in self.points:
            return np.asarray(self.points[size], np.float64)
        nearest = min(self.points, key=lambda s: abs(s - size))
        return np.asarray(self.points[nearest], np.float64) * (size / nearest)


# dlib's get_face_chip_details(shape, size, padding=0.2) on its 5-point shapes (eye corners, base
# of the nose), expressed for retail-0009's points: fitted by benchmarks/alignment.py, which maps
# retail-0009's points of 293 utkface-3k faces into the chips dlib cuts for the same faces (medians).
# On 293 other faces the chips' corners land a median 1.0 chip pixel (32) and 2.1 (64) from dlib's,
# and the CC0 networks' ages differ by a median 1.1 years.
DLIB_CHIP = Template(
    "dlib-chip-0.2",
    {
        64: ((18.93, 18.11), (43.93, 18.25), (31.48, 31.96), (20.79, 42.96), (42.3, 43.13)),
        32: ((9.47, 8.75), (21.77, 8.83), (15.65, 15.57), (10.39, 20.99), (20.97, 21.07)),
    },
)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) taking `source` points closest
    to `target` points in the least-squares sense (Umeyama 1991; in the plane it has a closed form).

    `source` is (K, 2), or (N, K, 2) for N faces at once, which gives (N, 2, 3)."""
    source = np.asarray(source, np.float64)
    mean_s, mean_t = source.mean(-2, keepdims=True), target.mean(-2, keepdims=True)
    s, t = source - mean_s, target - mean_t
    # As complex numbers the best map is t = z s with z = sum(conj(s) t) / sum(|s|^2): z's angle and modulus
    # are the rotation and the scale, and no reflection can come out.
    norm = np.maximum((s**2).sum((-2, -1)), 1e-12)
    a = (s * t).sum((-2, -1)) / norm
    b = (s[..., 0] * t[..., 1] - s[..., 1] * t[..., 0]).sum(-1) / norm
    linear = np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], -2)
    shift = mean_t[..., 0, :] - np.einsum("...ij,...j->...i", linear, mean_s[..., 0, :])
    return np.concatenate([linear, shift[..., None]], -1)


def warp(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int) -> np.ndarray:
    """The `size` x `size` chip of `image` whose `landmarks` land on `template` (points in chip pixels).

    Outside the frame is black, as in dlib's chips."""
    return _warp(image, similarity(landmarks, template), size)


def _warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp_batch(images: Sequence[np.ndarray], landmarks: np.ndarray, template: Template, size: int) -> np.ndarray:
    """One chip per face: face i cut from `images[i]` (the same frame may repeat) with its `landmarks[i]`."""
    batch = np.empty((len(images), size, size, 3), np.uint8)
    if len(images):
        matrices = similarity(landmarks, template.at(size))
        for i, image in enumerate(images):
            batch[i] = _warp(image, matrices[i], size)
    return batch


class Landmarker:
    """landmarks-regression-retail-0009 on the faces of a frame, one batch."""

    def __init__(self, network: Network, crop: CropConfig = LANDMARK_CROP) -> None:
        self.network = network
        self.crop = crop

    def submit(self, image: np.ndarray, boxes: Sequence[Box]) -> PendingLandmarks:
        """Start the network on the faces at `boxes` in `image` without waiting for it."""
        pending = PendingLandmarks([self.crop.region(box) for box in boxes])
        if boxes:
            batch = crop_batch(image, boxes, self.network.size, self.crop)
            pending.inference = self.network.submit(batch)
        return pending

    def __call__(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """(N, 5, 2) landmarks in `image` pixels of the faces at `boxes`."""
        return self.submit(image, boxes).result()


class PendingLandmarks:
    """Landmarks in flight for the faces of one frame."""

    def __init__(self, regions: list[Box], inference: Inference | None = None) -> None:
        self.regions = regions
        self.inference = inference

    def done(self) -> bool:
        return self.inference is None or self.inference.done()

    def result(self, timeout: float | None = None) -> np.ndarray:
        """(N, 5, 2) points in frame pixels; `InferenceError` on failure or timeout."""
        if self.inference is None:
            return np.empty((0, 5, 2))
        return self.points(self.inference.result(timeout))

    def points(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The network's `outputs` for these faces as (N, 5, 2) points in frame pixels."""
        points = next(iter(outputs.values())).reshape(len(self.regions), 5, 2).astype(np.float64)
        origin = np.array([[[r.x1, r.y1]] for r in self.regions])
        extent = np.array([[[r.width, r.height]] for r in self.regions])
        return origin + points * extent
