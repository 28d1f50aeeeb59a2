"""The one module that knows OpenVINO: compile a model and run uint8 BGR batches through it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import openvino as ov
from openvino.preprocess import PrePostProcessor

from .errors import ModelError

_core: ov.Core | None = None
_core_lock = threading.Lock()


def core() -> ov.Core:
    """The process-wide OpenVINO core (creating one is slow, and devices are shared)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def available_devices() -> list[str]:
    return list(core().available_devices)


class Network:
    """A model that takes uint8 BGR images of its own size in NHWC order and returns named outputs.

    Layout and type conversion are folded into the compiled model, so callers hand over crops as
    they come from OpenCV, without float copies. Each batch size gets its own static-shape compiled
    model, made on first use: on CPU a static batch of N runs about twice as fast as N single calls,
    while dynamic or padded batches measured slower than that.
    """

    def __init__(self, xml: Path, weights: Path, device: str = "CPU", max_batch: int = 16) -> None:
        try:
            model = core().read_model(str(xml), str(weights))
        except RuntimeError as error:
            raise ModelError(f"{xml}: cannot read model ({_first_line(error)})") from None
        if len(model.inputs) != 1:
            raise ModelError(f"{xml}: expected one input, found {len(model.inputs)}")
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or not shape[2].is_static or not shape[3].is_static:
            raise ModelError(f"{xml}: expected an NCHW image input, found {shape}")
        self.name = xml.stem
        self.height = shape[2].get_length()
        self.width = shape[3].get_length()
        self.device = device
        self.max_batch = max_batch
        self.output_names = [output.get_any_name() for output in model.outputs]

        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        self._model = ppp.build()
        self._requests: dict[int, ov.InferRequest] = {}
        self._lock = threading.Lock()
        self._request(1)  # fail now, not on the first frame, if the device refuses the model

    @property
    def size(self) -> tuple[int, int]:
        """Input (width, height) in pixels."""
        return self.width, self.height

    def _request(self, batch: int) -> ov.InferRequest:
        request = self._requests.get(batch)
        if request is None:
            model = self._model.clone()
            model.reshape({model.inputs[0]: [batch, self.height, self.width, 3]})
            try:
                compiled = core().compile_model(model, self.device, {"PERFORMANCE_HINT": "LATENCY"})
            except RuntimeError as error:
                raise ModelError(f"{self.name}: cannot compile for device {self.device} ({_first_line(error)})") from None
            request = self._requests[batch] = compiled.create_infer_request()
        return request

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run a uint8 batch (N, height, width, 3); return each output as an array with N rows."""
        if images.ndim != 4 or images.shape[1:] != (self.height, self.width, 3) or images.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected uint8 (N, {self.height}, {self.width}, 3), got {images.dtype} {images.shape}")
        count = len(images)
        if count == 0:
            return {name: np.empty((0,)) for name in self.output_names}
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        with self._lock:  # an infer request is not reentrant
            for start in range(0, count, self.max_batch):
                chunk = images[start : start + self.max_batch]
                request = self._request(len(chunk))
                request.infer({0: chunk})
                for name in self.output_names:
                    parts[name].append(request.get_tensor(name).data.copy())
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
