"""Attribute networks as plug-ins: each network described once, in the style of OpenVINO model_api's wrappers.

An `AttributeModel` says which catalog model it is (files and checksums are in `models.lock.csv`),
how its input is made (size comes from the network; colour order, normalisation, and whether it
wants a chip aligned to a `Template` or a padded square crop of the detector box) and how its
outputs become fields of the result (`decode`). `facelens.attributes.AttributeEstimator` runs any
set of them. A new family is one module here with its descriptions, added to `FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..align import Template

TASKS = ("age_gender", "emotion", "head_pose")
"""What a model is run for: the engine's attribute budget picks faces per task."""

FIELDS = ("age", "age_distribution", "male", "emotion", "pose")
"""What `decode` may return, each an array with one row per face: age in years (N,), the
probabilities over `AGES` (N, 81), the probability of male (N,), the probabilities over
`facelens.types.EMOTIONS` (N, 5), yaw/pitch/roll in degrees (N, 3). Where several models give
a field, the estimator averages them."""


@dataclass(frozen=True)
class AttributeModel:
    """One attribute network: where it comes from, what it wants, what it gives."""

    name: str
    """Its model name in the catalog (`facelens models list`)."""
    task: str
    """One of `TASKS`."""
    decode: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]
    """Its outputs for N faces -> fields (see `FIELDS`)."""
    source: str
    """Where its files come from, for people (the catalog row pins size and SHA-384)."""
    align: Template | None = None
    """The template of the aligned chips it was trained on; None: a padded square crop of the box."""
    rgb: bool = False
    """It takes RGB (else BGR)."""
    mean: tuple[float, float, float] | None = None
    """Subtracted per channel (in its colour order) from the bytes; None: bytes as they are."""
    scale: float | None = None
    """The bytes minus `mean` are divided by this; None: not divided."""
    calibration: str | None = None
    """File name in the facelens package of its age calibration table, if it has one."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task must be one of {', '.join(TASKS)}, not {self.task!r}")


from . import cc0, omz  # noqa: E402  (the families use AttributeModel)

FAMILIES: dict[str, tuple[AttributeModel, ...]] = {
    "cc0": (cc0.AGE, cc0.GENDER),
    "omz": (omz.AGE_GENDER,),
}
"""Age and gender model families: the CC0 dlib-models networks on aligned chips, or Open Model Zoo's
age-gender-recognition-retail-0013 on square crops. (Both together, averaged, measured no better:
benchmarks/age_gender_families.py.)"""

DEFAULT_FAMILY = "cc0"
"""The more accurate family on the shared dev sets (README, Accuracy), at a tracked street-720p rate
within 15% of omz's (benchmarks/age_gender_speed.py, alternating rounds in one process): only the
faces the attribute budget sends to age and gender get landmarks and chips, and the chips' networks
start from the landmark request's completion. On CPUs without bfloat16 (OpenVINO's default
precision where the CPU has it) the CC0 networks take about twice as long."""

EMOTION = omz.EMOTION
HEAD_POSE = omz.HEAD_POSE

__all__ = ["DEFAULT_FAMILY", "EMOTION", "FAMILIES", "FIELDS", "HEAD_POSE", "TASKS", "AttributeModel"]
