"""The device-mode pipeline on the host, for a video file: depthai's own messages and queues, no device.

`ReplayVideo` stands in for the camera, host `ImageManip`s cut and resize as the device's do, and host
nodes run face-detection-retail-0004 and age-gender-recognition-retail-0013 on OpenVINO where the
device runs the blobs, with the device Script's pairing and edge-safe crops. The messages reach the
same host join (`facelens.oak.source.feed`) as a camera's, so this checks everything but the device.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..detect import DETECTORS, Detector
from ..models import ModelStore
from ..runtime import Network
from ..sources import Source
from ..types import Frame
from . import convert, require
from .graph import AGE_GENDER, DETECTOR, keeps
from .join import Join
from .source import feed, to_frame


class ReplaySource(Source):
    """A video through the device-mode pipeline run on the host; frames carry their faces like an OAK's."""

    def __init__(self, video: str | Path, *, store: ModelStore | None = None, confidence: float = 0.3, timeout: float = 5.0) -> None:
        super().__init__(str(video), "video")
        self.dai = dai = require()
        store = store or ModelStore()
        self.confidence = confidence
        self.timeout = timeout
        detector = Detector(Network(*store.locate(DETECTOR), "CPU"), DETECTORS[DETECTOR], confidence)
        age_gender = Network(*store.locate(AGE_GENDER), "CPU")
        p = self._pipeline = dai.Pipeline(createImplicitDevice=False)
        replay = p.create(dai.node.ReplayVideo)
        replay.setReplayVideoFile(Path(video))
        replay.setLoop(False)
        replay.setOutFrameType(dai.ImgFrame.Type.BGR888i)
        shrink = p.create(dai.node.ImageManip)
        shrink.setRunOnHost(True)
        shrink.initialConfig.setOutputSize(*convert.DETECTOR_INPUT, dai.ImageManipConfig.ResizeMode.STRETCH)
        shrink.initialConfig.setFrameType(dai.ImgFrame.Type.BGR888p)
        detect = p.create(_node(0), detector, confidence)
        script = p.create(_node(1), confidence)
        crop = p.create(dai.node.ImageManip)
        crop.setRunOnHost(True)
        crop.inputConfig.setWaitForMessage(True)
        recognize = p.create(_node(2), age_gender)
        replay.out.link(shrink.inputImage)
        shrink.out.link(detect.input)
        replay.out.link(script.frame)
        detect.output.link(script.detections)
        script.cfg.link(crop.inputConfig)
        script.img.link(crop.inputImage)
        crop.out.link(recognize.input)
        self._replay = replay
        # Blocking host queues: a file's every frame is analyzed.
        self._queues = {
            "frames": replay.out.createOutputQueue(64, True),
            "detections": detect.output.createOutputQueue(64, True),
            "recognitions": recognize.output.createOutputQueue(256, True),
        }
        self.join: Join = Join(timeout)

    def _frames(self) -> Iterator[Frame]:
        self._pipeline.start()
        index = 0
        start = None
        while True:
            running = self._pipeline.isRunning() and self._replay.isRunning()
            feed(self.join, self._queues, self.confidence)
            joined = self.join.ready(flush=not running and not any(q.has() for q in self._queues.values()))
            for item in joined:
                seconds = item.frame.getTimestamp().total_seconds()
                start = seconds if start is None else start
                yield to_frame(item, index, seconds - start, self.name)
                index += 1
            if not running and not self.join.waiting and not any(q.has() for q in self._queues.values()):
                return
            if not joined:
                time.sleep(0.005)

    def close(self) -> None:
        if self._pipeline.isRunning():
            self._pipeline.stop()


def _forward(message: Any, made: Any) -> Any:
    made.setSequenceNum(message.getSequenceNum())
    made.setTimestamp(message.getTimestamp())
    return made


def _node_classes(dai: Any) -> tuple[type, type, type]:
    class Detect(dai.node.ThreadedHostNode):
        """face-detection-retail-0004 on OpenVINO in place of the device's DetectionNetwork."""

        def __init__(self, detector: Detector, confidence: float) -> None:
            super().__init__()
            self.input = self.createInput()
            self.output = self.createOutput()
            self.detector = detector
            self.confidence = confidence

        def run(self) -> None:
            while self.mainLoop():
                message = self.input.get()
                image = message.getCvFrame()
                out = dai.ImgDetections()
                found = []
                for d in self.detector.submit(image).result():
                    item = dai.ImgDetection()
                    b = d.box
                    w, h = image.shape[1], image.shape[0]
                    item.xmin, item.ymin, item.xmax, item.ymax = b.x1 / w, b.y1 / h, b.x2 / w, b.y2 / h
                    item.confidence, item.label = d.confidence, convert.FACE_LABEL
                    found.append(item)
                out.detections = found
                self.output.send(_forward(message, out))

    class Script(dai.node.ThreadedHostNode):
        """What the device's Script does (`facelens.oak.graph.crop_script`): pair, then one crop per face."""

        def __init__(self, confidence: float) -> None:
            super().__init__()
            self.frame = self.createInput()
            self.detections = self.createInput()
            self.cfg = self.createOutput()
            self.img = self.createOutput()
            self.confidence = confidence
            self.frames: list[Any] = []

        def run(self) -> None:
            while self.mainLoop():
                dets = self.detections.get()
                seq = dets.getSequenceNum()
                while not self.frames or self.frames[-1].getSequenceNum() < seq:
                    self.frames.append(self.frame.get())
                while self.frames[0].getSequenceNum() < seq:
                    self.frames.pop(0)
                if self.frames[0].getSequenceNum() != seq:
                    continue
                frame = self.frames.pop(0)
                for d in dets.detections:
                    if keeps(d.label, d.confidence, self.confidence):
                        rect = convert.crop_rect(d.xmin, d.ymin, d.xmax, d.ymax, frame.getWidth(), frame.getHeight())
                        self.cfg.send(convert.manip_config(dai, rect))
                        self.img.send(frame)

    class AgeGender(dai.node.ThreadedHostNode):
        """age-gender-recognition-retail-0013 on OpenVINO in place of the device's NeuralNetwork."""

        def __init__(self, network: Network) -> None:
            super().__init__()
            self.input = self.createInput()
            self.output = self.createOutput()
            self.network = network

        def run(self) -> None:
            while self.mainLoop():
                message = self.input.get()
                outputs = self.network.infer(message.getCvFrame()[np.newaxis])
                data = dai.NNData()
                for name, value in outputs.items():
                    data.addTensor(name, np.asarray(value, np.float32))
                self.output.send(_forward(message, data))

    return Detect, Script, AgeGender


_classes: tuple[type, type, type] | None = None


def _node(index: int) -> type:
    global _classes
    if _classes is None:
        _classes = _node_classes(require())
    return _classes[index]
