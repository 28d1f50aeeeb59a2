"""Stage 3: age, gender, emotion and head pose of the faces of a frame, one batch per network.

Which networks run is a set of `facelens.attribute_models.AttributeModel` descriptions; networks
that want aligned chips get them from five landmarks per face (`facelens.align`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np

from .align import LANDMARKS_MODEL, Landmarker, PendingLandmarks, warp_batch
from .attribute_models import EMOTION, FAMILIES, HEAD_POSE, AttributeModel
from .attribute_models import omz
from .crop import CropConfig, crop_batch
from .errors import ModelError
from .models import ModelStore
from .runtime import Inference, Network
from .types import EMOTIONS, GENDERS, Attributes, Box, Emotion, Gender, Pose

AGE_GENDER_MODEL = omz.AGE_GENDER.name
EMOTION_MODEL = EMOTION.name
HEAD_POSE_MODEL = HEAD_POSE.name


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
    def default(cls, table: str = "age_calibration.csv") -> AgeCalibration:
        """The table shipped with facelens (for age-gender-recognition-retail-0013)."""
        text = resources.files("facelens").joinpath(table).read_text(encoding="utf-8")
        rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
        return cls(tuple(float(r["network_age"]) for r in rows), tuple(float(r["calibrated_age"]) for r in rows))

    def __call__(self, ages: np.ndarray) -> np.ndarray:
        x, y = np.asarray(self.network), np.asarray(self.calibrated)
        # Beyond the table, keep its end's offset: a flat end would turn older estimates younger.
        below, above = ages < x[0], ages > x[-1]
        return np.where(below, ages + (y[0] - x[0]), np.where(above, ages + (y[-1] - x[-1]), np.interp(ages, x, y)))


@dataclass
class Loaded:
    """An attribute model and its compiled network."""

    model: AttributeModel
    network: Network


def load_network(model: AttributeModel, store: ModelStore, device: str = "CPU", precision: str | None = None, **options: object) -> Network:
    """`model`'s network, its files found and verified by `store`, compiled for `device`."""
    if store.is_onnx(model.name):
        path, weights = store.locate_onnx(model.name, precision), None
    else:
        path, weights = store.locate(model.name, precision, progress=bool(options.pop("progress", False)))
    options.pop("progress", None)
    return Network(path, weights, device, rgb=model.rgb, mean=model.mean, scale=model.scale, **options)  # type: ignore[arg-type]


class AttributeEstimator:
    """Runs a set of attribute models on faces, one batch per network, asynchronously.

    Args:
        models: each attribute model with its network (see `AttributeEstimator.load`).
        crop: how boxes become the input of models that take square crops.
        landmarks: the landmark network, needed when a model wants aligned chips.
        age_calibration: applied to the ages of the models that have a calibration table.
        family: name of the age and gender family (`facelens.attribute_models.FAMILIES`), for records.
    """

    def __init__(
        self,
        models: Sequence[Loaded],
        crop: CropConfig = CropConfig(),
        landmarks: Landmarker | None = None,
        age_calibration: AgeCalibration | None = None,
        family: str | None = None,
    ) -> None:
        if landmarks is None and any(m.model.align is not None for m in models):
            raise ValueError("models that want aligned chips need a landmark network")
        self.models = list(models)
        self.crop = crop
        self.landmarks = landmarks
        self.age_calibration = age_calibration
        self.family = family

    @classmethod
    def load(
        cls,
        store: ModelStore,
        *,
        family: str | None = "cc0",
        emotion: bool = True,
        head_pose: bool = True,
        crop: CropConfig = CropConfig(),
        calibrate_age: bool = False,
        device: str = "CPU",
        precision: str | None = None,
        progress: bool = False,
        **options: object,
    ) -> AttributeEstimator:
        """The networks of an age and gender `family` (None: none), emotion and head pose, found by
        `store` and compiled; `options` go to every `Network` (hint, single_thread)."""
        if family is not None and family not in FAMILIES:
            raise ModelError(f"age and gender model {family!r}: unknown; choose one of {', '.join(FAMILIES)}")
        chosen = [*(FAMILIES[family] if family else ()), *([EMOTION] if emotion else []), *([HEAD_POSE] if head_pose else [])]
        calibrated = [m for m in chosen if m.calibration]
        if calibrate_age and not calibrated:
            raise ModelError(f"--calibrate-age: only the omz age model has a calibration table, not {family}; add --age-gender-model omz")
        loaded = [Loaded(m, load_network(m, store, device, precision, progress=progress, **options)) for m in chosen]
        landmarks = None
        if any(m.align is not None for m in chosen):
            xml, weights = store.locate(LANDMARKS_MODEL, precision, progress=progress)
            landmarks = Landmarker(Network(xml, weights, device, **options))  # type: ignore[arg-type]
        calibration = AgeCalibration.default(calibrated[0].calibration or "") if calibrate_age else None
        return cls(loaded, crop, landmarks, calibration, family)

    def networks(self) -> list[Network]:
        """Every network this estimator runs, the landmark network included."""
        return [m.network for m in self.models] + ([self.landmarks.network] if self.landmarks else [])

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

        `age_gender`, `emotion` and `head_pose` pick the faces (indexes into `boxes`) the models of
        that task run on, all by default; the others get None for it. Models on aligned chips start
        once the landmarks are there (`PendingAttributes.done` moves them on).
        """
        picks = self._picks(len(boxes), {"age_gender": age_gender, "emotion": emotion, "head_pose": head_pose})
        return self._start(
            lambda size, picked: crop_batch(image, [boxes[i] for i in picked], size, self.crop),
            lambda faces: self.landmarks.submit(image, [boxes[i] for i in faces]),  # type: ignore[union-attr]
            lambda: image,
            len(boxes),
            picks,
        )

    def on_crops(self, faces: Sequence[np.ndarray]) -> list[Attributes]:
        """Attributes of images that are already face crops (each whole image is the face)."""

        def batch_for(size: tuple[int, int], picked: Sequence[int]) -> np.ndarray:
            return np.stack([cv2.resize(faces[i], size, interpolation=cv2.INTER_LINEAR) for i in picked])

        def landmarks_of(picked: Sequence[int]) -> _CropLandmarks:
            return _CropLandmarks([self.landmarks.submit(faces[i], [Box(0, 0, faces[i].shape[1], faces[i].shape[0])]) for i in picked])  # type: ignore[union-attr]

        return self._start(batch_for, landmarks_of, lambda: faces, len(faces), self._picks(len(faces), {})).result()

    def _picks(self, count: int, asked: dict[str, Sequence[int] | None]) -> list[Sequence[int]]:
        everyone = range(count)
        return [everyone if asked.get(m.model.task) is None else asked[m.model.task] for m in self.models]  # type: ignore[misc]

    def _start(
        self,
        batch_for: Callable[[tuple[int, int], Sequence[int]], np.ndarray],
        landmarks_of: Callable[[Sequence[int]], PendingLandmarks | _CropLandmarks],
        images: Callable[[], np.ndarray | Sequence[np.ndarray]],
        count: int,
        picks: list[Sequence[int]],
    ) -> PendingAttributes:
        runs: list[tuple[Loaded, Sequence[int], Inference]] = []
        later: list[tuple[Loaded, Sequence[int]]] = []
        for loaded, picked in zip(self.models, picks):
            if not len(picked):
                continue
            if loaded.model.align is None:
                runs.append((loaded, picked, loaded.network.submit(batch_for(loaded.network.size, picked))))
            else:
                later.append((loaded, picked))
        aligned = sorted({i for _, picked in later for i in picked})
        pending = PendingAttributes(count, runs, self.age_calibration, later, aligned, None, images)
        if aligned:
            # The chips are cut in the caller's thread when it next looks (`done`, `result`). Cut in
            # OpenVINO's callback thread, their buffers grew glibc's arenas by ~10 MB a minute
            # with 8 streams, and the engine looks often enough that starting them there saved nothing.
            pending._landmarks = landmarks_of(aligned)
        return pending


class _CropLandmarks:
    """Landmarks of several single-face images in flight, one request each (chips cut on `result`)."""

    def __init__(self, pending: list[PendingLandmarks]) -> None:
        self.pending = pending

    def done(self) -> bool:
        return all(p.done() for p in self.pending)

    def result(self, timeout: float | None = None) -> np.ndarray:
        return np.concatenate([p.result(timeout) for p in self.pending]) if self.pending else np.empty((0, 5, 2))


class PendingAttributes:
    """Attribute networks in flight for the faces of one frame."""

    def __init__(
        self,
        count: int,
        runs: list[tuple[Loaded, Sequence[int], Inference]],
        age_calibration: AgeCalibration | None = None,
        later: list[tuple[Loaded, Sequence[int]]] | None = None,
        aligned: Sequence[int] = (),
        landmarks: PendingLandmarks | _CropLandmarks | None = None,
        images: Callable[[], np.ndarray | Sequence[np.ndarray]] | None = None,
    ) -> None:
        self.count = count
        self.runs = runs
        self.age_calibration = age_calibration
        self._later = later or []
        self._aligned = list(aligned)
        self._landmarks = landmarks
        self._images = images
        self._points: np.ndarray | None = None

    def _align(self, timeout: float | None = None) -> None:
        """Wait for the landmarks, then warp the chips of the models on aligned faces and start them."""
        if self._landmarks is None or self._points is not None:
            return
        points = self._points = self._landmarks.result(timeout)
        source = self._images() if self._images else None
        where = {face: row for row, face in enumerate(self._aligned)}
        for loaded, picked in self._later:
            rows = [where[i] for i in picked]
            frames = [source[i] for i in picked] if isinstance(source, (list, tuple)) else [source] * len(picked)
            batch = warp_batch(frames, points[rows], loaded.model.align, loaded.network.width)  # type: ignore[arg-type]
            self.runs.append((loaded, picked, loaded.network.submit(batch)))
        self._later = []

    def done(self) -> bool:
        if self._landmarks is not None and self._points is None:
            if not self._landmarks.done():
                return False
            self._align()
        return all(inference.done() for _, _, inference in self.runs)

    def result(self, timeout: float | None = None) -> list[Attributes]:
        """One `Attributes` per face; `InferenceError` on failure or timeout."""
        self._align(timeout)
        count = self.count
        sums: dict[str, list] = {}
        for loaded, picked, inference in self.runs:
            fields = loaded.model.decode(inference.result(timeout), len(picked))
            if "age" in fields and loaded.model.calibration and self.age_calibration is not None:
                fields["age"] = self.age_calibration(fields["age"])
            for name, values in fields.items():
                per_face = sums.setdefault(name, [None] * count)
                for i, value in zip(picked, values):
                    value = np.asarray(value, np.float64)
                    per_face[i] = (value, 1) if per_face[i] is None else (per_face[i][0] + value, per_face[i][1] + 1)

        def mean(name: str, i: int) -> np.ndarray | None:
            entry = sums.get(name, [None] * count)[i]
            return None if entry is None else entry[0] / entry[1]

        landmarks: list[tuple[tuple[float, float], ...] | None] = [None] * count
        if self._points is not None:
            for row, i in enumerate(self._aligned):
                landmarks[i] = tuple((float(x), float(y)) for x, y in self._points[row])
        out = []
        for i in range(count):
            age, male, emotion, pose, distribution = (mean(name, i) for name in ("age", "male", "emotion", "pose", "age_distribution"))
            out.append(
                Attributes(
                    None if age is None else float(age),
                    None if male is None else _gender(float(male)),
                    None if emotion is None else _emotion(emotion.tolist()),
                    None if pose is None else Pose(*(float(v) for v in pose)),
                    landmarks[i],
                    None if distribution is None else tuple(distribution.tolist()),
                )
            )
        return out


UNSURE_GENDER = (0.35, 0.65)
"""A face whose probability of male is within this band gets gender "unknown" (the probability still
given): on utkface-3k both families are right on only 48-58% of those faces, a coin flip, while they
are ~3.5-4.5% of all (benchmarks/gender_unknown.py)."""


def _gender(male: float) -> Gender:
    if UNSURE_GENDER[0] <= male <= UNSURE_GENDER[1]:
        return Gender("unknown", male)
    best = int(male > 0.5)
    return Gender(GENDERS[best], male if best else 1.0 - male)


def _emotion(probabilities: list[float]) -> Emotion:
    return Emotion(EMOTIONS[int(np.argmax(probabilities))], tuple(probabilities))
