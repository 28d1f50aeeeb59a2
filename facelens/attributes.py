"""Stage 3: age, gender, emotion and head pose of the faces of a frame, one batch per network."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np

from .crop import CropConfig, crop_batch
from .runtime import Inference, Network
from .types import EMOTIONS, GENDERS, Attributes, Box, Emotion, Gender, Pose

AGE_GENDER_MODEL = "age-gender-recognition-retail-0013"
EMOTION_MODEL = "emotions-recognition-retail-0003"
HEAD_POSE_MODEL = "head-pose-estimation-adas-0001"


@dataclass(frozen=True)
class AgeCalibration:
    """A monotone piecewise-linear map from the age network's estimate to a calibrated age.

    The network reads older adults younger than they are; the shipped table (`age_calibration.csv`,
    fitted by `benchmarks/age_calibration.py` on half of utkface-3k, ages 18-75) maps each
    estimate to the median true age of the faces that got it.
    """

    network: tuple[float, ...]
    calibrated: tuple[float, ...]

    @classmethod
    def default(cls) -> AgeCalibration:
        """The table shipped with facelens."""
        text = resources.files("facelens").joinpath("age_calibration.csv").read_text(encoding="utf-8")
        rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
        return cls(tuple(float(r["network_age"]) for r in rows), tuple(float(r["calibrated_age"]) for r in rows))

    def __call__(self, ages: np.ndarray) -> np.ndarray:
        x, y = np.asarray(self.network), np.asarray(self.calibrated)
        # Beyond the table, keep its end's offset: a flat end would turn older estimates younger.
        below, above = ages < x[0], ages > x[-1]
        return np.where(below, ages + (y[0] - x[0]), np.where(above, ages + (y[-1] - x[-1]), np.interp(ages, x, y)))


class AttributeEstimator:
    """Runs the enabled attribute networks on faces, one batch per network.

    Args:
        age_gender: age-gender-recognition-retail-0013, or None to skip age and gender.
        emotion: emotions-recognition-retail-0003, or None to skip emotion.
        crop: how boxes become network inputs.
        head_pose: head-pose-estimation-adas-0001, or None to skip head pose.
        age_calibration: applied to the age network's estimates; None leaves them as they are.
    """

    def __init__(
        self,
        age_gender: Network | None,
        emotion: Network | None,
        crop: CropConfig = CropConfig(),
        head_pose: Network | None = None,
        age_calibration: AgeCalibration | None = None,
    ) -> None:
        self.age_gender = age_gender
        self.age_calibration = age_calibration
        self.emotion = emotion
        self.head_pose = head_pose
        self.crop = crop

    def __call__(self, image: np.ndarray, boxes: Sequence[Box]) -> list[Attributes]:
        """Attributes of the faces at `boxes` in the full-resolution `image`."""
        return self.submit(image, boxes).result()

    def submit(
        self,
        image: np.ndarray,
        boxes: Sequence[Box],
        *,
        age_gender: Sequence[int] | None = None,
        emotion: Sequence[int] | None = None,
        head_pose: Sequence[int] | None = None,
    ) -> PendingAttributes:
        """Start the networks on the faces at `boxes` in `image` without waiting for them.

        `age_gender`, `emotion` and `head_pose` pick the faces (indexes into `boxes`) that network
        runs on, all by default; the others get None for it.
        """
        return self._submit(
            lambda size, picked: crop_batch(image, [boxes[i] for i in picked], size, self.crop), len(boxes), age_gender, emotion, head_pose
        )

    def on_crops(self, faces: Sequence[np.ndarray]) -> list[Attributes]:
        """Attributes of images that are already face crops (each whole image is the face)."""

        def batch_for(size: tuple[int, int], picked: Sequence[int]) -> np.ndarray:
            return np.stack([cv2.resize(faces[i], size, interpolation=cv2.INTER_LINEAR) for i in picked])

        return self._submit(batch_for, len(faces), None, None, None).result()

    def _submit(
        self,
        batch_for: Callable[[tuple[int, int], Sequence[int]], np.ndarray],
        count: int,
        age_gender: Sequence[int] | None,
        emotion: Sequence[int] | None,
        head_pose: Sequence[int] | None,
    ) -> PendingAttributes:
        everyone = range(count)
        runs: dict[str, tuple[Sequence[int], Inference]] = {}
        for name, network, picked in (
            ("age_gender", self.age_gender, age_gender),
            ("emotion", self.emotion, emotion),
            ("head_pose", self.head_pose, head_pose),
        ):
            picked = everyone if picked is None else picked
            if network is not None and len(picked):
                runs[name] = (picked, network.submit(batch_for(network.size, picked)))
        return PendingAttributes(count, runs, self.age_calibration)


class PendingAttributes:
    """Attribute networks in flight for the faces of one frame."""

    def __init__(self, count: int, runs: dict[str, tuple[Sequence[int], Inference]], age_calibration: AgeCalibration | None = None) -> None:
        self.count = count
        self.runs = runs
        self.age_calibration = age_calibration

    def done(self) -> bool:
        return all(inference.done() for _, inference in self.runs.values())

    def result(self, timeout: float | None = None) -> list[Attributes]:
        """One `Attributes` per face; `InferenceError` on failure or timeout."""
        count = self.count
        ages: list[float | None] = [None] * count
        genders: list[Gender | None] = [None] * count
        emotions: list[Emotion | None] = [None] * count
        poses: list[Pose | None] = [None] * count
        if "age_gender" in self.runs:
            picked, inference = self.runs["age_gender"]
            out = inference.result(timeout)
            n = len(picked)
            years = out["age_conv3"].reshape(n) * 100.0
            if self.age_calibration is not None:
                years = self.age_calibration(years)
            for i, age, p in zip(picked, years.tolist(), out["prob"].reshape(n, 2).tolist()):
                ages[i], genders[i] = age, _gender(p)
        if "emotion" in self.runs:
            picked, inference = self.runs["emotion"]
            out = inference.result(timeout)
            for i, p in zip(picked, out["prob_emotion"].reshape(len(picked), len(EMOTIONS)).tolist()):
                emotions[i] = _emotion(p)
        if "head_pose" in self.runs:
            picked, inference = self.runs["head_pose"]
            out = inference.result(timeout)
            n = len(picked)
            angles = zip(*(out[name].reshape(n).tolist() for name in ("angle_y_fc", "angle_p_fc", "angle_r_fc")))
            for i, (yaw, pitch, roll) in zip(picked, angles):
                poses[i] = Pose(yaw, pitch, roll)
        return [Attributes(a, g, e, p) for a, g, e, p in zip(ages, genders, emotions, poses)]


def _gender(probabilities: list[float]) -> Gender:
    best = int(probabilities[1] > probabilities[0])
    return Gender(GENDERS[best], probabilities[best])


def _emotion(probabilities: list[float]) -> Emotion:
    return Emotion(EMOTIONS[int(np.argmax(probabilities))], tuple(probabilities))
