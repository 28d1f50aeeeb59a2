"""The detect and attribute stages as the engine sees them, for faces found here or elsewhere.

A frame may arrive with its faces already found (`Frame.found`: a camera that runs the detector and
an attribute network on board). Then its detections are taken as they are, and a network runs here
only for the faces and tasks the device gave nothing for. A device that detects on board is a new
source, not a change to the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .attributes import AttributeEstimator, PendingAttributes
from .detect import Detector, PendingDetections
from .types import Attributes, Detection, Frame

TASK_FIELDS: dict[str, tuple[str, ...]] = {"age_gender": ("age", "gender"), "emotion": ("emotion",), "head_pose": ("pose",)}
"""The `Attributes` fields each attribute task fills."""


class Ready:
    """A stage result that is there already (the `done`/`result` interface of a pending inference)."""

    def __init__(self, value: list) -> None:
        self.value = value

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> list:
        return self.value


class Stages:
    """Detection and attributes of frames: on this machine's networks, or taken from `Frame.found`."""

    def __init__(self, detector: Detector, attributes: AttributeEstimator) -> None:
        self.detector = detector
        self.attributes = attributes

    def detect(self, frame: Frame, threshold: float | None = None) -> PendingDetections | Ready:
        """Start detection on `frame`; its found faces instead, when it has them (filtered by the
        same confidence and size limits as the detector's own)."""
        if frame.found is None:
            return self.detector.submit(frame.image, threshold)
        limit = self.detector.confidence if threshold is None else threshold
        kept = [
            d for d in frame.found.detections if d.confidence >= limit and min(d.box.width, d.box.height) >= max(self.detector.min_size, 1e-6)
        ]
        kept.sort(key=lambda d: d.confidence, reverse=True)
        return Ready(kept)

    def describe(
        self,
        frame: Frame,
        detections: Sequence[Detection],
        *,
        age_gender: Sequence[int] | None = None,
        emotion: Sequence[int] | None = None,
        head_pose: Sequence[int] | None = None,
    ) -> PendingAttributes | _Merged:
        """Start the attribute networks on `detections` of `frame` (picks as in
        `AttributeEstimator.submit`); a face and task the device answered is not run again here."""
        boxes = [d.box for d in detections]
        found = frame.found
        if found is None or found.attributes is None:
            return self.attributes.submit(frame.image, boxes, age_gender=age_gender, emotion=emotion, head_pose=head_pose)
        where = {id(d): i for i, d in enumerate(found.detections)}
        given = [found.attributes[where[id(d)]] if id(d) in where else Attributes() for d in detections]
        asked = {"age_gender": age_gender, "emotion": emotion, "head_pose": head_pose}
        here: dict[str, list[int]] = {}
        there: dict[str, list[int]] = {}
        for task, fields in TASK_FIELDS.items():
            picks = range(len(detections)) if asked[task] is None else asked[task]
            answered = [i for i in picks if getattr(given[i], fields[0]) is not None]
            there[task] = answered
            here[task] = [i for i in picks if i not in set(answered)]
        pending = self.attributes.submit(frame.image, boxes, **here)
        return _Merged(pending, given, there)


class _Merged:
    """Attributes run here for some faces and tasks, filled in with the device's for the others."""

    def __init__(self, pending: PendingAttributes, given: list[Attributes], there: dict[str, list[int]]) -> None:
        self.pending = pending
        self.given = given
        self.there = there

    def done(self) -> bool:
        return self.pending.done()

    def result(self, timeout: float | None = None) -> list[Attributes]:
        out = self.pending.result(timeout)
        for task, faces in self.there.items():
            for i in faces:
                out[i] = replace(out[i], **{name: getattr(self.given[i], name) for name in TASK_FIELDS[task]})
        return out
