"""Stage 3: age, gender and emotion of every face of a frame, one batch per network."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from .crop import CropConfig, crop_batch
from .runtime import Inference, Network
from .types import EMOTIONS, GENDERS, Attributes, Box, Emotion, Gender

AGE_GENDER_MODEL = "age-gender-recognition-retail-0013"
EMOTION_MODEL = "emotions-recognition-retail-0003"


class AttributeEstimator:
    """Runs the enabled attribute networks on faces.

    Args:
        age_gender: age-gender-recognition-retail-0013, or None to skip age and gender.
        emotion: emotions-recognition-retail-0003, or None to skip emotion.
        crop: how boxes become network inputs.
    """

    def __init__(self, age_gender: Network | None, emotion: Network | None, crop: CropConfig = CropConfig()) -> None:
        self.age_gender = age_gender
        self.emotion = emotion
        self.crop = crop

    def __call__(self, image: np.ndarray, boxes: Sequence[Box]) -> list[Attributes]:
        """Attributes of the faces at `boxes` in the full-resolution `image`."""
        return self.submit(image, boxes).result()

    def submit(self, image: np.ndarray, boxes: Sequence[Box]) -> PendingAttributes:
        """Start the networks on the faces at `boxes` in `image` without waiting for them."""
        return self._submit(lambda size: crop_batch(image, boxes, size, self.crop), len(boxes))

    def on_crops(self, faces: Sequence[np.ndarray]) -> list[Attributes]:
        """Attributes of images that are already face crops (each whole image is the face)."""
        batch_for = lambda size: np.stack([cv2.resize(face, size, interpolation=cv2.INTER_LINEAR) for face in faces])  # noqa: E731
        return self._submit(batch_for, len(faces)).result()

    def _submit(self, batch_for: Callable[[tuple[int, int]], np.ndarray], count: int) -> PendingAttributes:
        if count == 0:
            return PendingAttributes(0, None, None)
        age_gender = None if self.age_gender is None else self.age_gender.submit(batch_for(self.age_gender.size))
        emotion = None if self.emotion is None else self.emotion.submit(batch_for(self.emotion.size))
        return PendingAttributes(count, age_gender, emotion)


class PendingAttributes:
    """Attribute networks in flight for the faces of one frame."""

    def __init__(self, count: int, age_gender: Inference | None, emotion: Inference | None) -> None:
        self.count = count
        self.age_gender = age_gender
        self.emotion = emotion

    def done(self) -> bool:
        return all(i is None or i.done() for i in (self.age_gender, self.emotion))

    def result(self, timeout: float | None = None) -> list[Attributes]:
        """One `Attributes` per face; `InferenceError` on failure or timeout."""
        count = self.count
        ages: list[float | None] = [None] * count
        genders: list[Gender | None] = [None] * count
        emotions: list[Emotion | None] = [None] * count
        if self.age_gender is not None:
            out = self.age_gender.result(timeout)
            ages = (out["age_conv3"].reshape(count) * 100.0).tolist()
            genders = [_gender(p) for p in out["prob"].reshape(count, 2).tolist()]
        if self.emotion is not None:
            out = self.emotion.result(timeout)
            emotions = [_emotion(p) for p in out["prob_emotion"].reshape(count, len(EMOTIONS)).tolist()]
        return [Attributes(a, g, e) for a, g, e in zip(ages, genders, emotions)]


def _gender(probabilities: list[float]) -> Gender:
    best = int(probabilities[1] > probabilities[0])
    return Gender(GENDERS[best], probabilities[best])


def _emotion(probabilities: list[float]) -> Emotion:
    return Emotion(EMOTIONS[int(np.argmax(probabilities))], tuple(probabilities))
