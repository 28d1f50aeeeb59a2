"""The device pipeline of an OAK camera in depthai v3, as a graph first and depthai nodes second.

Device mode, as in the reference design but edge-safe:

    camera ─full─┬──────────────────────────────► host "frames"
                 ├──► script.frame
    camera ─300x300─► detector ─┬──────────────► host "detections"
                                └─► script.detections
    script ─cfg/img─► crop (ImageManip 62x62) ─► age_gender ─► host "recognitions"

The Script pairs each detections message with its own full frame by sequence number and sends one
crop config per face (`facelens.oak.convert.crop_rect`, pasted in verbatim), on blocking queues, so
the recognitions of a frame leave in detection order and keep its sequence number.

Camera, NeuralNetwork and Script nodes need a device in depthai v3, so `device_graph` only describes
the pipeline (tests check its nodes, links and script) and `build` turns it into nodes on a pipeline
that has a device.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .convert import AGE_GENDER_INPUT, DETECTOR_INPUT, FACE_LABEL, crop_rect

DETECTOR = "face-detection-retail-0004"
AGE_GENDER = "age-gender-recognition-retail-0013"

MODELS: dict[str, dict[str, str]] = {
    DETECTOR: {
        "zoo": "luxonis/face-detection-retail:0004",
        "blob": "face-detection-retail-0004_openvino_2022.1_6shave.blob",
    },
    AGE_GENDER: {
        "zoo": "luxonis/age-gender-recognition:62x62",
        "blob": "age-gender-recognition-retail-0013_openvino_2022.1_6shave.blob",
    },
}
"""Where each network comes from: its Luxonis model zoo slug (what `dai.getModelFromZoo` fetches for
the device's platform: a MyriadX blob on RVC2, a DLC on RVC4) and the blob file name blobconverter
gives for RVC2 with 6 shaves, looked for in `--oak-models DIR`."""

HOST_OUTPUTS = ("frames", "detections", "recognitions")


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    """The depthai node class: Camera, DetectionNetwork, NeuralNetwork, Script or ImageManip."""
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    links: tuple[tuple[str, str], ...]
    """(from "node.output", to "node.input"); a "host.<name>" end is an output queue to the host."""

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


def crop_script(confidence: float, scale: float = 1.2, size: tuple[int, int] = AGE_GENDER_INPUT) -> str:
    """The Script node's program: each detections message paired with its own frame, one crop per face."""
    return "\n".join(
        [
            inspect.getsource(crop_rect),
            f"FACE_LABEL = {FACE_LABEL}",
            f"CONFIDENCE = {confidence!r}",
            f"SCALE = {scale!r}",
            f"SIZE = {tuple(size)!r}",
            _SCRIPT_LOOP,
        ]
    )


_SCRIPT_LOOP = '''
frames = []
while True:
    dets = node.inputs["detections"].get()
    seq = dets.getSequenceNum()
    frame = None
    while frame is None:
        while frames and frames[0].getSequenceNum() < seq:
            frames.pop(0)  # a frame whose detections were dropped
        if frames and frames[0].getSequenceNum() == seq:
            frame = frames.pop(0)
        elif frames:
            break  # this frame is gone: skip its detections, the host times it out
        else:
            frames.append(node.inputs["frame"].get())
    if frame is None:
        continue
    width, height = frame.getWidth(), frame.getHeight()
    for d in dets.detections:
        if d.label != FACE_LABEL or d.confidence < CONFIDENCE:
            continue
        x, y, w, h = crop_rect(d.xmin, d.ymin, d.xmax, d.ymax, width, height, SCALE)
        cfg = ImageManipConfig()
        cfg.addCrop(x, y, w, h)
        cfg.setOutputSize(SIZE[0], SIZE[1], ImageManipConfig.ResizeMode.STRETCH)
        cfg.setFrameType(ImgFrame.Type.BGR888p)
        node.outputs["cfg"].send(cfg)
        node.outputs["img"].send(frame)
'''


def keeps(label: int, confidence: float, threshold: float) -> bool:
    """Whether the Script crops this detection (the host joins recognitions to exactly these)."""
    return label == FACE_LABEL and confidence >= threshold


def device_graph(
    detector: Path | str,
    age_gender: Path | str,
    *,
    resolution: tuple[int, int] = (1280, 720),
    fps: float = 15.0,
    confidence: float = 0.5,
    scale: float = 1.2,
) -> Graph:
    """The device-mode pipeline: detector and age-gender networks (blob paths or zoo slugs) on the camera."""
    nodes = (
        Node("camera", "Camera", {"socket": "CAM_A", "full": resolution, "preview": DETECTOR_INPUT, "fps": fps}),
        Node("detector", "DetectionNetwork", {"model": str(detector), "family": "MOBILENET", "confidence": confidence}),
        Node("script", "Script", {"script": crop_script(confidence, scale)}),
        Node("crop", "ImageManip", {"size": AGE_GENDER_INPUT, "wait_for_config": True, "max_frame_size": AGE_GENDER_INPUT[0] * AGE_GENDER_INPUT[1] * 3}),
        Node("age_gender", "NeuralNetwork", {"model": str(age_gender)}),
    )
    links = (
        ("camera.full", "host.frames"),
        ("camera.full", "script.frame"),
        ("camera.preview", "detector.input"),
        ("detector.out", "host.detections"),
        ("detector.out", "script.detections"),
        ("script.cfg", "crop.inputConfig"),
        ("script.img", "crop.inputImage"),
        ("crop.out", "age_gender.input"),
        ("age_gender.out", "host.recognitions"),
    )
    return Graph(nodes, links)


def build(dai: Any, pipeline: Any, graph: Graph, queue_size: int = 8) -> dict[str, Any]:
    """Create `graph`'s nodes and links on `pipeline` (it needs a device); returns the host output queues."""
    made: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for spec in graph.nodes:
        s = spec.settings
        if spec.kind == "Camera":
            cam = pipeline.create(dai.node.Camera).build(getattr(dai.CameraBoardSocket, s["socket"]))
            outputs[f"{spec.name}.full"] = cam.requestOutput(s["full"], dai.ImgFrame.Type.BGR888i, fps=s["fps"])
            # Stretched, not cropped: detections are normalized to the full frame's field of view.
            outputs[f"{spec.name}.preview"] = cam.requestOutput(s["preview"], dai.ImgFrame.Type.BGR888p, dai.ImgResizeMode.STRETCH, s["fps"])
            made[spec.name] = cam
        elif spec.kind == "DetectionNetwork":
            node = pipeline.create(dai.node.DetectionNetwork)
            _model(node, s["model"])
            node.detectionParser.setNNFamily(getattr(dai.DetectionNetworkType, s["family"]))
            node.setConfidenceThreshold(s["confidence"])
            made[spec.name] = node
        elif spec.kind == "NeuralNetwork":
            node = pipeline.create(dai.node.NeuralNetwork)
            _model(node, s["model"])
            made[spec.name] = node
        elif spec.kind == "Script":
            node = pipeline.create(dai.node.Script)
            node.setScript(s["script"])
            made[spec.name] = node
        elif spec.kind == "ImageManip":
            node = pipeline.create(dai.node.ImageManip)
            node.inputConfig.setWaitForMessage(s["wait_for_config"])
            node.setMaxOutputFrameSize(s["max_frame_size"])
            made[spec.name] = node
        else:
            raise ValueError(f"{spec.name}: unknown node kind {spec.kind}")
    queues = {}
    for source, target in graph.links:
        out = outputs.get(source) or _port(made, source, "outputs")
        if target.startswith("host."):
            queues[target[5:]] = out.createOutputQueue(queue_size, False)
        else:
            out.link(_port(made, target, "inputs"))
    return queues


def _port(made: dict[str, Any], ref: str, kind: str) -> Any:
    name, port = ref.split(".", 1)
    node = made[name]
    if hasattr(node, kind) and name == "script":
        return getattr(node, kind)[port]
    return getattr(node, port)


def _model(node: Any, model: str) -> None:
    if model.endswith(".blob"):
        node.setBlobPath(Path(model))
    else:
        node.setNNArchive(__import__("depthai").NNArchive(model))
