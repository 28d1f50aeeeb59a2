"""The library's front door: source -> detect -> crop -> attributes, as one object."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from .attribute_models import DEFAULT_FAMILY, FAMILIES
from .attributes import AttributeEstimator
from .crop import CropConfig
from .detect import DEFAULT_DETECTOR, DETECTORS, Detector
from .engine import Engine
from .errors import ModelError
from .models import ModelStore
from .people import PeopleConfig
from .runtime import Network, check_device
from .sources import Source, open_source
from .types import Attributes, Detection, Face, Frame, FrameResult

SourceSpec = Source | str | int | os.PathLike[str]


class Analyzer:
    """Finds faces and tells their age, gender and emotion.

    ```python
    analyzer = Analyzer()
    faces = analyzer.analyze(cv2.imread("people.jpg"))
    for result in analyzer.stream("street.mp4"):
        print(result.index, result.timestamp, [face.age for face in result.faces])
    ```

    Args:
        detector: name of the face detection model (see `facelens.detect.DETECTORS`).
        device: OpenVINO device for every network: "CPU", "GPU", "NPU", "AUTO", ... (ModelError,
            naming the devices there are, for one this machine lacks).
        confidence: minimum detector confidence of a face.
        min_face: minimum face size in frame pixels (shorter side).
        age_gender: estimate age and gender.
        age_gender_model: the family of age and gender networks (`facelens.attribute_models.FAMILIES`):
            "cc0", the dlib-models networks on aligned faces (trained on ages 0-80; the more
            accurate, and the default), or "omz", age-gender-recognition-retail-0013 (ages 18-75).
        emotion: run emotions-recognition-retail-0003.
        head_pose: run head-pose-estimation-adas-0001 (it weighs views for fusion and measures attention).
        calibrate_age: (omz only) correct the omz age network's estimates with facelens' calibration table (see
            `facelens.attributes.AgeCalibration`): on held-out utkface-3k faces aged 18-75 it lowers
            the error from 10.9 to 9.0 years, but raises it for ages 18-27 (4.8 -> 8.3) and under
            18 (17.5 -> 23.5), hence off by default.
        crop: how detected boxes are cut out for the attribute networks.
        precision: model precision (FP16-INT8, FP16, FP32); a network without it runs at the nearest
            precision it has, with a warning logged (see `facelens.models.nearest_precision`). By
            default the best one each network has.
        store: where model files come from; by default the models directory of
            `$FACELENS_MODELS_DIR`, then the user cache, then the official download.
        progress: show a progress bar while downloading models.
    """

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        *,
        device: str = "CPU",
        confidence: float = 0.5,
        min_face: float = 0.0,
        age_gender: bool = True,
        age_gender_model: str = DEFAULT_FAMILY,
        emotion: bool = True,
        head_pose: bool = True,
        calibrate_age: bool = False,
        crop: CropConfig = CropConfig(),
        precision: str | None = None,
        store: ModelStore | None = None,
        progress: bool = False,
    ) -> None:
        if detector not in DETECTORS:
            raise ModelError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if age_gender_model not in FAMILIES:
            raise ModelError(f"unknown age and gender model {age_gender_model!r}; choose one of {', '.join(FAMILIES)}")
        check_device(device)  # before any model is looked for, let alone downloaded
        store = store or ModelStore()

        xml, weights = store.locate(detector, precision, progress=progress)
        # One frame a request: a static shape, which every device takes.
        self.detector = Detector(Network(xml, weights, device, max_batch=1), DETECTORS[detector], confidence, min_face)
        # The attribute networks are small: one thread a request, as frames overlap anyway.
        self.attributes = AttributeEstimator.load(
            store,
            family=age_gender_model if age_gender else None,
            emotion=emotion,
            head_pose=head_pose,
            crop=crop,
            calibrate_age=calibrate_age,
            device=device,
            precision=precision,
            progress=progress,
            single_thread=True,
        )

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR image, without attributes, most confident first."""
        return self.detector(image)

    def analyze(self, image: np.ndarray) -> list[Face]:
        """Every face of a BGR image (H, W, 3) with its attributes, most confident first."""
        detections = self.detector(image)
        attributes = self.attributes(image, [d.box for d in detections])
        return [Face.of(d, a) for d, a in zip(detections, attributes)]

    def describe(self, faces: Sequence[np.ndarray]) -> list[Attributes]:
        """Attributes of images that are face crops already (the whole image is the face)."""
        return self.attributes.on_crops(faces)

    def process(self, frame: Frame) -> FrameResult:
        """Analyze one frame of a source."""
        return FrameResult(frame, tuple(self.analyze(frame.image)))

    def pipeline(self, *, people: PeopleConfig | None = PeopleConfig(), depth: int | None = None, timeout: float = 10.0) -> Engine:
        """A pipelined engine over this analyzer's networks, for several sources and run statistics."""
        return Engine(self.detector, self.attributes, people=people, depth=depth, timeout=timeout)

    def stream(
        self,
        sources: SourceSpec | Sequence[SourceSpec],
        *,
        live: bool | None = None,
        people: PeopleConfig | None = PeopleConfig(),
    ) -> Iterator[FrameResult]:
        """Analyze every frame of one or more sources (see `facelens.sources.open_source`), pipelined.

        Each source's results come in frame order; several sources interleave. Cameras and streams
        run live (newest frame only, older ones dropped) unless `live` says otherwise. Sources given
        by name are opened here; all are closed when the iterator ends or is closed.

        Faces in videos are tracked and their attributes fused per person (`Face.track_id`,
        `Face.person`, enter/exit events and person records, see `facelens.people`); the attribute
        networks then skip faces whose labels are settled, so a face's own `age`, `gender` and
        `emotion` may be None in a frame. `people=None` turns that off: every face of every frame
        on its own, as the networks see it. With tracking, each source ends with one more result
        (`FrameResult.end`) carrying the exits of the people still in view.
        """
        specs = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        opened: list[Source] = []
        try:
            for spec in specs:
                opened.append(spec if isinstance(spec, Source) else open_source(spec))
        except BaseException:
            for source in opened:
                source.close()
            raise
        yield from self.pipeline(people=people).run(opened, live)
