"""Stage 3: age, gender and emotion of every face of a frame, one batch per network."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .crop import CropConfig, crop_batch
from .runtime import Network
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
        if not boxes:
            return []
        return self._run(lambda size: crop_batch(image, boxes, size, self.crop), len(boxes))

    def on_crops(self, faces: Sequence[np.ndarray]) -> list[Attributes]:
        """Attributes of images that are already face crops (each whole image is the face)."""
        if not faces:
            return []
        return self._run(lambda size: np.stack([cv2.resize(face, size, interpolation=cv2.INTER_LINEAR) for face in faces]), len(faces))

    def _run(self, batch_for, count: int) -> list[Attributes]:
        ages: list[float | None] = [None] * count
        genders: list[Gender | None] = [None] * count
        emotions: list[Emotion | None] = [None] * count
        if self.age_gender is not None:
            out = self.age_gender.infer(batch_for(self.age_gender.size))
            ages = (out["age_conv3"].reshape(count) * 100.0).tolist()
            genders = [_gender(p) for p in out["prob"].reshape(count, 2).tolist()]
        if self.emotion is not None:
            out = self.emotion.infer(batch_for(self.emotion.size))
            emotions = [_emotion(p) for p in out["prob_emotion"].reshape(count, len(EMOTIONS)).tolist()]
        return [Attributes(a, g, e) for a, g, e in zip(ages, genders, emotions)]


def _gender(probabilities: list[float]) -> Gender:
    best = int(probabilities[1] > probabilities[0])
    return Gender(GENDERS[best], probabilities[best])


def _emotion(probabilities: list[float]) -> Emotion:
    return Emotion(EMOTIONS[int(np.argmax(probabilities))], tuple(probabilities))
