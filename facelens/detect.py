"""Stage 1: find faces. Runs on a resized copy of the frame; boxes come back in frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .runtime import Inference, Network
from .types import Box, Detection


@dataclass(frozen=True)
class DetectorSpec:
    """How to read one detection model's output."""

    face_label: int
    """Class id of "face": 1 where the SSD keeps 0 for background, else 0."""
    output: str = "ssd"
    """"ssd": one (1, 1, N, 7) tensor of normalized boxes; "boxes": boxes (N, 5) in input pixels + labels (N)."""


DETECTORS: dict[str, DetectorSpec] = {
    "face-detection-retail-0004": DetectorSpec(face_label=1),
    "face-detection-retail-0005": DetectorSpec(face_label=1),
    "face-detection-adas-0001": DetectorSpec(face_label=1),
    "face-detection-0200": DetectorSpec(face_label=0),
    "face-detection-0202": DetectorSpec(face_label=0),
    "face-detection-0204": DetectorSpec(face_label=0),
    "face-detection-0205": DetectorSpec(face_label=0, output="boxes"),
}
DEFAULT_DETECTOR = "face-detection-retail-0004"


class Detector:
    """Finds faces in a BGR frame.

    Args:
        network: the compiled detection model.
        spec: how to read its output (see `DETECTORS`).
        confidence: faces below this detector confidence are dropped.
        min_size: faces whose shorter side is below this many frame pixels are dropped.
    """

    def __init__(self, network: Network, spec: DetectorSpec, confidence: float = 0.5, min_size: float = 0.0) -> None:
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {confidence}")
        self.network = network
        self.spec = spec
        self.confidence = confidence
        self.min_size = min_size

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """Detections in `image`, most confident first."""
        return self.submit(image).result()

    def submit(self, image: np.ndarray, confidence: float | None = None) -> PendingDetections:
        """Start detection on `image` without waiting for it; `confidence` overrides the threshold."""
        height, width = image.shape[:2]
        threshold = self.confidence if confidence is None else confidence
        if height == 0 or width == 0:
            return PendingDetections(self, None, width, height, threshold)
        # INTER_AREA would be smoother but costs ~9 ms on a 1080p frame against ~0.7 ms.
        resized = cv2.resize(image, self.network.size, interpolation=cv2.INTER_LINEAR)
        return PendingDetections(self, self.network.submit(resized[np.newaxis]), width, height, threshold)

    def parse(self, outputs: dict[str, np.ndarray], width: int, height: int, confidence: float | None = None) -> list[Detection]:
        """Turn raw network outputs into detections in a `width` x `height` frame."""
        threshold = self.confidence if confidence is None else confidence
        if self.spec.output == "boxes":
            rows = outputs["boxes"].reshape(-1, 5)
            labels = outputs["labels"].reshape(-1)
            keep = (labels == self.spec.face_label) & (rows[:, 4] >= threshold)
            rows = rows[keep]
            scale = np.array([width / self.network.width, height / self.network.height] * 2, dtype=np.float32)
            boxes, scores = rows[:, :4] * scale, rows[:, 4]
        else:
            rows = next(iter(outputs.values())).reshape(-1, 7)
            # image_id -1 marks the end of valid rows.
            valid = rows[:, 0] >= 0
            keep = valid & (rows[:, 1] == self.spec.face_label) & (rows[:, 2] >= threshold)
            rows = rows[keep]
            boxes = rows[:, 3:7] * np.array([width, height, width, height], dtype=np.float32)
            scores = rows[:, 2]
        detections = []
        for (x1, y1, x2, y2), score in zip(boxes.tolist(), scores.tolist()):
            box = Box(x1, y1, x2, y2).clip(width, height)
            if box.area <= 0 or min(box.width, box.height) < self.min_size:
                continue
            detections.append(Detection(box, float(score)))
        detections.sort(key=lambda d: d.confidence, reverse=True)
        return detections


class PendingDetections:
    """Detection in flight for one frame."""

    def __init__(self, detector: Detector, inference: Inference | None, width: int, height: int, confidence: float) -> None:
        self.detector = detector
        self.confidence = confidence
        self.inference = inference
        self.width = width
        self.height = height

    def done(self) -> bool:
        return self.inference is None or self.inference.done()

    def result(self, timeout: float | None = None) -> list[Detection]:
        """Detections in frame pixels, most confident first; `InferenceError` on failure or timeout."""
        if self.inference is None:
            return []
        return self.detector.parse(self.inference.result(timeout), self.width, self.height, self.confidence)
