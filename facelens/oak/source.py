"""`oak` and `oak:<device id or IP>` sources: an OAK camera's frames, with their faces in device mode."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..sources import Source
from ..types import Attributes, Detection, Found, Frame
from . import convert, require
from .graph import AGE_GENDER, DETECTOR, MODELS, build, device_graph, keeps
from .join import Join, Joined

MODES = ("device", "camera")
SEARCH_SECONDS = 3.0
"""How long to look for a device before saying there is none (depthai's own default is ~11 s)."""


def parse_spec(spec: str) -> tuple[str | None, str | None]:
    """("oak" or "oak:ID[?mode=device|camera]") -> (device id or IP or None, mode or None); else SourceError."""
    rest = spec[3:]
    mode = None
    if "?" in rest:
        rest, query = rest.split("?", 1)
        key, _, mode = query.partition("=")
        if key != "mode" or mode not in MODES:
            raise SourceError(f"{spec}: unknown option {query!r}; use ?mode=device or ?mode=camera")
    if rest and not rest.startswith(":"):
        raise SourceError(f"{spec}: not an OAK source; use oak or oak:<device id or IP>")
    device = rest[1:] or None
    return device, mode


def find_models(folder: Path | None, dai: Any, platform: str) -> tuple[str, str]:
    """The detector and age-gender model files for the device: from `folder` (blobs for RVC2), else
    the Luxonis model zoo (cached by depthai, downloaded once). SourceError saying what is missing."""
    if folder is not None:
        paths = [folder / MODELS[name]["blob"] for name in (DETECTOR, AGE_GENDER)]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise SourceError(f"--oak-models {folder}: missing {', '.join(missing)}; or use camera mode")
        return str(paths[0]), str(paths[1])
    try:
        return tuple(  # type: ignore[return-value]
            str(dai.getModelFromZoo(dai.NNModelDescription(MODELS[name]["zoo"], platform=platform)))
            for name in (DETECTOR, AGE_GENDER)
        )
    except Exception as error:  # depthai raises RuntimeError for no network, unknown model, ...
        raise SourceError(f"oak: cannot get the device models from the Luxonis zoo ({error}); give --oak-models DIR or use camera mode") from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def open_device(dai: Any, device: str | None, seconds: float = SEARCH_SECONDS) -> Any:
    """The `dai.Device` named (any when None), or SourceError within about `seconds`."""
    os.environ.setdefault("DEPTHAI_SEARCH_TIMEOUT", str(int(seconds * 1000)))
    what = "oak" if device is None else f"oak:{device}"
    try:
        found = dai.Device.getAllAvailableDevices()
    except RuntimeError as error:  # e.g. no USB access at all (a container without /dev/bus/usb)
        raise SourceError(f"{what}: no OAK device found ({error})") from None
    if device is None:
        if not found:
            raise SourceError(f"{what}: no OAK device found (USB or network)")
        info = found[0]
    else:
        matches = [d for d in found if device in (d.getDeviceId(), d.name)]
        if not matches and not _is_ip(device):
            raise SourceError(f"{what}: no such OAK device (found: {', '.join(d.getDeviceId() for d in found) or 'none'})")
        info = matches[0] if matches else dai.DeviceInfo(device)  # an IP beyond discovery's reach
    try:
        return dai.Device(info)
    except RuntimeError as error:
        raise SourceError(f"{what}: cannot open the device ({error})") from None


class OakSource(Source):
    """An OAK camera. In device mode each frame carries its faces (`Frame.found`) with the age and
    gender the camera estimated; in camera mode frames only, for the host's networks.

    Args:
        spec: "oak" or "oak:<device id or IP>", optionally "?mode=device|camera".
        mode: overrides the spec's mode; by default device mode.
        models: folder of RVC2 blobs for device mode (else the Luxonis zoo).
        confidence: the device detector's threshold (the tracker's lowest).
        timeout: seconds a frame may wait for its detections and recognitions.
    """

    is_live = True

    def __init__(
        self,
        spec: str = "oak",
        *,
        mode: str | None = None,
        models: Path | None = None,
        resolution: tuple[int, int] = (1280, 720),
        fps: float = 15.0,
        confidence: float = 0.3,
        timeout: float = 1.0,
    ) -> None:
        device_id, spec_mode = parse_spec(spec)
        self.mode = mode or spec_mode or "device"
        if self.mode not in MODES:
            raise SourceError(f"{spec}: unknown mode {self.mode!r}; use device or camera")
        super().__init__(spec, "camera", fps=fps)
        self.confidence = confidence
        self.timeout = timeout
        dai = require()
        self._device = open_device(dai, device_id)
        try:
            self._pipeline = dai.Pipeline(self._device)
            if self.mode == "device":
                detector, age_gender = find_models(models, dai, self._device.getPlatformAsString())
                graph = device_graph(detector, age_gender, resolution=resolution, fps=fps, confidence=confidence)
                self._queues = build(dai, self._pipeline, graph)
            else:
                cam = self._pipeline.create(dai.node.Camera).build(dai.CameraBoardSocket.CAM_A)
                self._queues = {"frames": cam.requestOutput(resolution, dai.ImgFrame.Type.BGR888i, fps=fps).createOutputQueue(4, False)}
            self._pipeline.start()
        except BaseException:
            self._device.close()
            raise

    def _frames(self) -> Iterator[Frame]:
        queues = self._queues
        start: float | None = None
        index = 0
        join: Join[Any, tuple[Detection, ...], Attributes] = Join(self.timeout)
        while self._pipeline.isRunning():
            if self.mode == "camera":
                message = queues["frames"].get()
                frame, seconds = _stamp(message, start)
                start = seconds if start is None else start
                yield Frame(convert.image(message), index, seconds - start, self.name)
                index += 1
                continue
            feed(join, queues, self.confidence)
            for joined in join.ready():
                frame, seconds = _stamp(joined.frame, start)
                start = seconds if start is None else start
                yield to_frame(joined, index, seconds - start, self.name)
                index += 1
            time.sleep(0.002)

    def close(self) -> None:
        pipeline, self._pipeline = getattr(self, "_pipeline", None), None
        if pipeline is not None:
            pipeline.stop()
        if getattr(self, "_device", None) is not None:
            self._device.close()


def _stamp(message: Any, start: float | None) -> tuple[Any, float]:
    return message, message.getTimestamp().total_seconds()


def feed(join: Join, queues: dict[str, Any], confidence: float) -> None:
    """Move every message waiting on the device's host queues into `join`."""
    for message in _drain(queues["frames"]):
        join.frame(message.getSequenceNum(), message)
    for message in _drain(queues["detections"]):
        # Kept exactly as the Script crops them, in message order: the recognitions follow it.
        join.detections(message.getSequenceNum(), [d for d in message.detections if keeps(d.label, d.confidence, confidence)])
    for message in _drain(queues["recognitions"]):
        join.recognition(message.getSequenceNum(), convert.age_gender(message))


def _drain(queue: Any) -> Iterator[Any]:
    while queue.has():
        yield queue.get()


def to_frame(joined: Joined, index: int, timestamp: float, name: str) -> Frame:
    """A joined device frame as a facelens `Frame` carrying its faces (`Frame.found`)."""
    image = convert.image(joined.frame)
    height, width = image.shape[:2]
    boxes = []
    attributes = []
    for i, d in enumerate(joined.detections):
        for detection in convert.detections(_One(d), width, height, label=None):
            boxes.append(detection)
            attributes.append(joined.recognitions[i] if joined.recognitions is not None else Attributes())
    return Frame(image, index, timestamp, name, joined.note, Found(tuple(boxes), tuple(attributes)))


class _One:
    """One depthai detection as a detections message, for `convert.detections`."""

    def __init__(self, detection: Any) -> None:
        self.detections = [detection]
