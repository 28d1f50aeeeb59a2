"""depthai messages to facelens types, and the edge-safe face crops the device cuts.

`crop_rect` runs in two places: here, and verbatim inside the device's Script node (its source is
pasted into the script, see `facelens.oak.graph.crop_script`), so the tests of the one test the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import GENDERS, Attributes, Box, Detection, Gender

AGE_GENDER_INPUT = (62, 62)
"""age-gender-recognition-retail-0013's input size (width, height)."""
DETECTOR_INPUT = (300, 300)
"""face-detection-retail-0004's input size (width, height)."""
FACE_LABEL = 1
"""face-detection-retail-0004's class of faces (0 is the background)."""


def crop_rect(xmin, ymin, xmax, ymax, width, height, scale=1.2):
    """The pixel rectangle (x, y, w, h) to cut for a detection in normalized coordinates, always
    inside a `width` x `height` frame and at least 16 pixels a side (or the frame's).

    The box is squared and enlarged by `scale` around its center like facelens' host crops; where
    that reaches past a border the square is moved back inside (an ImageManip crop outside the frame
    fails on the device), and only a square larger than the frame is cut down to it.
    """
    # Plain Python only: this function also runs in the device's Script node.
    cx = (xmin + xmax) / 2.0 * width
    cy = (ymin + ymax) / 2.0 * height
    side = max((xmax - xmin) * width, (ymax - ymin) * height, 1.0) * scale
    w = min(max(side, 16.0), float(width))
    h = min(max(side, 16.0), float(height))
    x = min(max(cx - w / 2.0, 0.0), width - w)
    y = min(max(cy - h / 2.0, 0.0), height - h)
    xi, yi = int(x), int(y)
    wi, hi = min(int(w + 0.5), width - xi), min(int(h + 0.5), height - yi)
    return xi, yi, max(wi, 1), max(hi, 1)


def detections(message: Any, width: int, height: int, label: int | None = FACE_LABEL) -> tuple[Detection, ...]:
    """The faces of a `dai.ImgDetections` in frame pixels (clipped to the frame), most confident first.

    The device's detector parses face-detection-retail-0004 itself; `label` None keeps every class.
    """
    out = []
    for d in message.detections:
        if label is not None and d.label != label:
            continue
        box = Box(d.xmin * width, d.ymin * height, d.xmax * width, d.ymax * height).clip(width, height)
        if box.area > 0:
            out.append(Detection(box, float(d.confidence)))
    out.sort(key=lambda d: d.confidence, reverse=True)
    return tuple(out)


def age_gender(message: Any) -> Attributes:
    """Age and gender from age-gender-recognition-retail-0013's `dai.NNData` (layers age_conv3, prob)."""
    age = float(np.asarray(message.getTensor("age_conv3", dequantize=True)).reshape(-1)[0]) * 100.0
    prob = np.asarray(message.getTensor("prob", dequantize=True), np.float64).reshape(-1)
    male = float(prob[1] / max(prob.sum(), 1e-9))
    best = int(male > 0.5)
    return Attributes(age=age, gender=Gender(GENDERS[best], male if best else 1.0 - male))


def image(message: Any) -> np.ndarray:
    """A `dai.ImgFrame` as a contiguous BGR uint8 (H, W, 3) array."""
    picture = message.getCvFrame()
    if picture.ndim == 2:
        import cv2

        picture = cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(picture)


def manip_config(dai: Any, rect: tuple[int, int, int, int], size: tuple[int, int] = AGE_GENDER_INPUT) -> Any:
    """An `ImageManipConfig` cutting `rect` (x, y, w, h in pixels) out and stretching it to `size`,
    planar BGR as the OMZ networks take."""
    config = dai.ImageManipConfig()
    config.addCrop(*rect)
    config.setOutputSize(size[0], size[1], dai.ImageManipConfig.ResizeMode.STRETCH)
    config.setFrameType(dai.ImgFrame.Type.BGR888p)
    return config
