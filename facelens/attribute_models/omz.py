"""Open Model Zoo attribute networks (Intel, Apache-2.0), on padded square crops of the detector box, BGR bytes."""

from __future__ import annotations

import numpy as np

from . import AttributeModel

_SOURCE = "Open Model Zoo 2022.1 (storage.openvinotoolkit.org)"


def _age_gender(out: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {"age": out["age_conv3"].reshape(n) * 100.0, "male": out["prob"].reshape(n, 2)[:, 1]}


def _emotion(out: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {"emotion": out["prob_emotion"].reshape(n, 5)}


def _head_pose(out: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {"pose": np.stack([out[k].reshape(n) for k in ("angle_y_fc", "angle_p_fc", "angle_r_fc")], 1)}


AGE_GENDER = AttributeModel(
    "age-gender-recognition-retail-0013", "age_gender", _age_gender, _SOURCE, calibration="age_calibration.csv"
)
"""62x62; age / 100 and (female, male). Trained on ages 18-75."""

EMOTION = AttributeModel("emotions-recognition-retail-0003", "emotion", _emotion, _SOURCE)
"""64x64; (neutral, happy, sad, surprise, anger)."""

HEAD_POSE = AttributeModel("head-pose-estimation-adas-0001", "head_pose", _head_pose, _SOURCE)
"""60x60; yaw, pitch, roll in degrees."""
