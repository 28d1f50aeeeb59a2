"""OAK cameras without a camera: the join, depthai message conversion, edge-safe crops, the device
graph, the engine seam for faces found elsewhere, and the device pipeline run on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MODELS_DIR, VIDEOS
from facelens.analyzer import Analyzer
from facelens.errors import SourceError
from facelens.models import ModelStore
from facelens.oak import convert, graph
from facelens.oak.join import Join
from facelens.oak.source import parse_spec
from facelens.people import PeopleConfig
from facelens.sources import Source, VideoSource
from facelens.types import Attributes, Found, Frame, Gender

os.environ.setdefault("DEPTHAI_LEVEL", "error")
dai = pytest.importorskip("depthai")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------- join


def test_join_out_of_order_messages_wait_for_their_frame_and_leave_in_order():
    clock = Clock()
    join = Join(1.0, clock)
    join.recognition(1, "r1a")
    join.detections(1, ["d1a"])
    join.frame(1, "f1")  # frame 1 complete, frame 0 not yet: 1 waits
    join.frame(0, "f0")
    assert join.ready() == []
    join.detections(0, [])
    out = join.ready()
    assert [(j.seq, j.frame, j.detections, j.recognitions) for j in out] == [(0, "f0", (), ()), (1, "f1", ("d1a",), ("r1a",))]


def test_join_missing_recognition_times_out_without_recognitions():
    clock = Clock()
    join = Join(1.0, clock)
    join.frame(5, "f5")
    join.detections(5, ["a", "b"])
    join.recognition(5, "ra")
    clock.now = 0.9
    assert join.ready() == []
    clock.now = 1.0
    (joined,) = join.ready()
    assert joined.detections == ("a", "b") and joined.recognitions is None and "1 recognitions for 2" in joined.note
    join.recognition(5, "rb")  # late
    assert join.late == 1 and join.ready() == []


def test_join_missing_detections_and_missing_frame():
    clock = Clock()
    join = Join(0.5, clock)
    join.frame(0, "f0")
    join.detections(1, ["x"])  # its frame never comes
    join.recognition(1, "rx")
    join.frame(2, "f2")
    join.detections(2, [])
    clock.now = 0.5
    out = join.ready()
    assert [(j.seq, j.detections, j.note is not None) for j in out] == [(0, (), True), (2, (), False)]
    assert join.lost == 1 and join.incomplete == 1


def test_join_duplicates_and_late_messages_are_dropped():
    clock = Clock()
    join = Join(1.0, clock)
    join.frame(3, "f3")
    join.frame(3, "other")
    join.detections(3, ["a"])
    join.detections(3, ["b", "c"])
    join.recognition(3, "ra")
    (joined,) = join.ready()
    assert (joined.frame, joined.detections, joined.recognitions) == ("f3", ("a",), ("ra",))
    assert join.duplicates == 2
    join.frame(2, "f2")  # older than one that left
    join.detections(3, ["z"])
    assert join.late == 2 and join.ready() == [] and join.waiting == 0


def test_join_extra_recognitions_make_them_unusable_and_flush_ends_waiting():
    join = Join(10.0, Clock())
    join.frame(0, "f0")
    join.detections(0, ["a"])
    join.recognition(0, "r1")
    join.recognition(0, "r2")  # arrives before ready() is asked
    join.frame(1, "f1")
    assert [j.seq for j in join.ready()] == []  # 0 has 2 for 1: not complete
    out = join.ready(flush=True)
    assert [(j.seq, j.recognitions) for j in out] == [(0, None), (1, None)]


@st.composite
def _traffic(draw):
    frames = draw(st.integers(1, 12))
    messages = []
    for seq in range(frames):
        faces = draw(st.integers(0, 3))
        messages.append((seq, "frame", f"F{seq}"))
        messages.append((seq, "detections", tuple(f"D{seq}.{i}" for i in range(faces))))
        messages += [(seq, "recognition", f"R{seq}.{i}") for i in range(faces)]
    kept = [m for m in messages if draw(st.booleans()) or draw(st.booleans())]  # ~1/4 lost
    kept += draw(st.lists(st.sampled_from(messages), max_size=6))  # duplicates
    order = draw(st.permutations(kept))
    times = draw(st.lists(st.floats(0, 0.6), min_size=len(order), max_size=len(order)))
    return order, times


@settings(max_examples=300, deadline=None)
@given(_traffic(), st.sampled_from([0.1, 0.5, 5.0]))
def test_property_a_frame_is_never_joined_with_another_frames_faces(traffic, timeout):
    order, steps = traffic
    clock = Clock()
    join = Join(timeout, clock)
    out = []
    for (seq, kind, payload), step in zip(order, steps):
        clock.now += step
        getattr(join, kind)(seq, payload)
        out += join.ready()
    out += join.ready(flush=True)
    seqs = [j.seq for j in out]
    assert seqs == sorted(set(seqs))  # in order, each frame once
    for j in out:
        assert j.frame == f"F{j.seq}"
        assert all(d.startswith(f"D{j.seq}.") for d in j.detections)
        if j.recognitions is not None:
            assert len(j.recognitions) == len(j.detections)
            assert all(r.startswith(f"R{j.seq}.") for r in j.recognitions)


# ------------------------------------------------------------------------------------- conversion


def test_detections_message_to_facelens_detections():
    message = dai.ImgDetections()
    items = []
    for label, conf, box in [(1, 0.9, (0.1, 0.2, 0.3, 0.4)), (0, 0.95, (0.5, 0.5, 0.6, 0.6)), (1, 0.6, (-0.1, 0.9, 0.05, 1.2))]:
        d = dai.ImgDetection()
        d.label, d.confidence = label, conf
        d.xmin, d.ymin, d.xmax, d.ymax = box
        items.append(d)
    message.detections = items
    found = convert.detections(message, 640, 480)
    assert len(found) == 2  # the background class is not a face
    assert found[0].confidence == pytest.approx(0.9)
    assert found[0].box.to_list() == pytest.approx([64.0, 96.0, 192.0, 192.0], abs=0.1)
    assert found[1].box.to_list() == pytest.approx([0.0, 432.0, 32.0, 480.0], abs=0.1)  # clipped


def test_nn_data_of_the_real_age_gender_network_to_attributes():
    from facelens.runtime import Network

    network = Network(*ModelStore(MODELS_DIR).locate(graph.AGE_GENDER), "CPU")
    analyzer = Analyzer(store=ModelStore(MODELS_DIR), emotion=False, head_pose=False, age_gender_model="omz")
    capture = cv2.VideoCapture(str(VIDEOS / "single-face-1080p.mp4"))
    ok, image = capture.read()
    capture.release()
    assert ok
    (face,) = [f for f in analyzer.analyze(image) if f.confidence > 0.8][:1]
    rect = convert.crop_rect(face.box.x1 / image.shape[1], face.box.y1 / image.shape[0], face.box.x2 / image.shape[1], face.box.y2 / image.shape[0], image.shape[1], image.shape[0])
    x, y, w, h = rect
    chip = cv2.resize(image[y : y + h, x : x + w], convert.AGE_GENDER_INPUT)
    data = dai.NNData()
    for name, value in network.infer(chip[np.newaxis]).items():
        data.addTensor(name, np.asarray(value, np.float32))
    attributes = convert.age_gender(data)
    assert 10 < attributes.age < 90
    assert abs(attributes.age - face.age) < 6  # the host's own crop differs slightly
    assert attributes.gender.label == face.gender.label or min(attributes.gender.probability, face.gender.probability) < 0.7


def test_img_frame_to_image():
    picture = np.random.default_rng(1).integers(0, 255, (48, 64, 3), np.uint8)
    message = dai.ImgFrame()
    message.setCvFrame(picture, dai.ImgFrame.Type.BGR888i)
    assert np.array_equal(convert.image(message), picture)


EDGES = [
    (-0.2, -0.2, 0.1, 0.1),  # top-left corner, partly outside
    (0.9, -0.1, 1.1, 0.2),  # top-right
    (-0.1, 0.85, 0.1, 1.05),  # bottom-left
    (0.95, 0.95, 1.3, 1.3),  # bottom-right
    (0.0, 0.4, 0.05, 0.5),  # left border
    (0.97, 0.4, 1.0, 0.5),  # right border
    (0.4, 0.0, 0.5, 0.02),  # top border
    (0.4, 0.99, 0.5, 1.0),  # bottom border
    (-0.5, -0.5, 1.5, 1.5),  # larger than the frame
    (0.5, 0.5, 0.5, 0.5),  # degenerate
    (1.2, 1.2, 1.4, 1.4),  # wholly outside
]


@pytest.mark.parametrize("size", [(1280, 720), (300, 300), (7, 5)])
@pytest.mark.parametrize("box", EDGES)
def test_crop_rect_is_inside_the_frame_at_every_border(box, size):
    width, height = size
    x, y, w, h = convert.crop_rect(*box, width, height)
    assert 0 <= x and 0 <= y and w >= 1 and h >= 1
    assert x + w <= width and y + h <= height


def test_crop_configs_at_every_border_run_in_depthais_image_manip():
    """The crops of faces at every border go through a real (host) ImageManip without error."""
    # Smooth: each pixel's colour says where it is, so a chip of another region cannot pass.
    ys, xs = np.mgrid[0:720, 0:1280]
    picture = np.dstack([xs * 255 // 1279, ys * 255 // 719, (xs + ys) * 255 // 1998]).astype(np.uint8)
    with dai.Pipeline(createImplicitDevice=False) as pipeline:
        manip = pipeline.create(dai.node.ImageManip)
        manip.setRunOnHost(True)
        manip.inputConfig.setWaitForMessage(True)
        images = manip.inputImage.createInputQueue()
        configs = manip.inputConfig.createInputQueue()
        out = manip.out.createOutputQueue(len(EDGES), True)
        pipeline.start()
        frame = dai.ImgFrame()
        frame.setCvFrame(picture, dai.ImgFrame.Type.BGR888i)
        for box in EDGES:
            configs.send(convert.manip_config(dai, convert.crop_rect(*box, 1280, 720)))
            images.send(frame)
        chips = [out.get() for _ in EDGES]
        pipeline.stop()
    for chip, box in zip(chips, EDGES):
        x, y, w, h = convert.crop_rect(*box, 1280, 720)
        got = chip.getCvFrame()
        assert got.shape == (62, 62, 3)
        want = cv2.resize(picture[y : y + h, x : x + w], (62, 62), interpolation=cv2.INTER_LINEAR)
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 6  # the same region, not another


# ----------------------------------------------------------------------------------------- graph


def test_device_graph_nodes_links_and_script():
    g = graph.device_graph("det.blob", "ag.blob", confidence=0.4)
    assert [(n.name, n.kind) for n in g.nodes] == [
        ("camera", "Camera"),
        ("detector", "DetectionNetwork"),
        ("script", "Script"),
        ("crop", "ImageManip"),
        ("age_gender", "NeuralNetwork"),
    ]
    assert {t for _, t in g.links if t.startswith("host.")} == {f"host.{n}" for n in graph.HOST_OUTPUTS}
    assert ("camera.preview", "detector.input") in g.links and ("script.img", "crop.inputImage") in g.links
    assert g.node("camera").settings["preview"] == convert.DETECTOR_INPUT
    script = g.node("script").settings["script"]
    compile(script, "script", "exec")
    assert "def crop_rect" in script and "CONFIDENCE = 0.4" in script and "getSequenceNum() == seq" in script
    # The script's crop function is the host's, run on the same inputs.
    space: dict = {}
    exec(script.split("\nframes = []")[0], space)
    for box in EDGES:
        assert space["crop_rect"](*box, 1280, 720, space["SCALE"]) == convert.crop_rect(*box, 1280, 720)


def test_device_graph_needs_a_device_for_its_device_nodes():
    with dai.Pipeline(createImplicitDevice=False) as pipeline:
        with pytest.raises(Exception):
            graph.build(dai, pipeline, graph.device_graph("det.blob", "ag.blob"))


# ------------------------------------------------------------------------------- source and CLI


def test_spec_parsing():
    assert parse_spec("oak") == (None, None)
    assert parse_spec("oak:14442C10D13EABCE00") == ("14442C10D13EABCE00", None)
    assert parse_spec("oak:192.168.1.44?mode=camera") == ("192.168.1.44", "camera")
    with pytest.raises(SourceError):
        parse_spec("oak:x?mode=gpu")


def test_cli_without_a_device_is_one_line_within_seconds(tmp_path):
    env = dict(os.environ, FACELENS_MODELS_DIR=str(MODELS_DIR))
    env.pop("DEPTHAI_SEARCH_TIMEOUT", None)
    started = time.monotonic()
    for spec, options in (("oak:NO-SUCH-DEVICE", []), ("oak", ["--oak-mode", "camera"])):
        run = subprocess.run([sys.executable, "-m", "facelens", "analyze", spec, *options], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
        elapsed = time.monotonic() - started
        assert run.returncode == 1
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {spec}"), run.stderr
        assert "Traceback" not in run.stderr and elapsed < 15
        started = time.monotonic()


def test_cli_refuses_an_unknown_oak_mode():
    run = subprocess.run([sys.executable, "-m", "facelens", "analyze", "oak", "--oak-mode", "nope"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--oak-mode nope: unknown" in run.stderr


def test_cli_without_depthai_says_how_to_install(tmp_path):
    blocker = tmp_path / "depthai.py"
    blocker.write_text("raise ImportError('no depthai', name='depthai')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), FACELENS_MODELS_DIR=str(MODELS_DIR))
    run = subprocess.run([sys.executable, "-m", "facelens", "analyze", "oak"], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == 'error: OAK cameras need depthai: pip install "facelens[oak]"'


# ---------------------------------------------------------------------------------- engine seam


class _Given(Source):
    def __init__(self, frames: list[Frame]) -> None:
        super().__init__("given", "video", length=len(frames))
        self.given = frames

    def _frames(self):
        yield from self.given


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(store=ModelStore(MODELS_DIR), age_gender_model="omz")


def _video_frames(name: str, count: int) -> list[Frame]:
    with VideoSource(str(VIDEOS / name)) as source:
        frames = []
        for frame in source:
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def test_engine_takes_found_faces_instead_of_detecting(analyzer):
    frames = _video_frames("speaker-360p.mp4", 20)
    here = list(analyzer.pipeline(people=None).run([_Given(frames)]))
    assert sum(len(r.faces) for r in here) >= 20
    # The same detections given as found, with a device's age and gender: taken as they are.
    device = Attributes(age=33.0, gender=Gender("female", 0.9))
    given = []
    for frame, result in zip(frames, here):
        detections = tuple(analyzer.detect(frame.image))
        given.append(Frame(frame.image, frame.index, frame.timestamp, frame.source, found=Found(detections, (device,) * len(detections))))
    # A frame whose device found nothing has no faces, though the picture has.
    given[5] = Frame(frames[5].image, 5, frames[5].timestamp, "given", found=Found(()))
    there = list(analyzer.pipeline(people=None).run([_Given(given)]))
    for i, (a, b) in enumerate(zip(here, there)):
        if i == 5:
            assert a.faces and not b.faces
            continue
        assert [f.box for f in a.faces] == [f.box for f in b.faces]
        assert all(f.age == 33.0 and f.gender.label == "female" for f in b.faces)
        # The host still runs the networks the device has not (emotion, head pose), on the same faces.
        assert [f.emotion.label for f in a.faces] == [f.emotion.label for f in b.faces]


def test_engine_runs_host_age_gender_where_the_device_gave_none(analyzer):
    frames = _video_frames("speaker-360p.mp4", 3)
    given = [Frame(f.image, f.index, f.timestamp, f.source, found=Found(tuple(analyzer.detect(f.image)))) for f in frames]
    here = list(analyzer.pipeline(people=None).run([_Given(frames)]))
    there = list(analyzer.pipeline(people=None).run([_Given(given)]))
    assert [[f.age for f in r.faces] for r in here] == [[f.age for f in r.faces] for r in there]


# ---------------------------------------------------------------------- host-only device pipeline


def test_device_pipeline_on_the_host_end_to_end_to_people_and_jsonl(analyzer, tmp_path):
    from facelens.oak.replay import ReplaySource
    from facelens.sinks import JsonlSink

    video = VIDEOS / "speaker-360p.mp4"
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    source = ReplaySource(video, store=ModelStore(MODELS_DIR), timeout=5.0)
    engine = analyzer.pipeline(people=PeopleConfig())
    out = tmp_path / "oak.jsonl"
    sink = JsonlSink(str(out))
    results = []
    for result in engine.run([source], live=False):
        sink.write(result, None)
        results.append(result)
    sink.close()
    assert source.join.lost == 0 and source.join.late == 0 and source.join.incomplete == 0
    frames = [r for r in results if not r.end]
    assert abs(len(frames) - total) <= 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    indexes = [r["frame"] for r in records if r.get("type") == "frame"]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    faces = [f for r in frames for f in r.faces]
    assert len(faces) > len(frames)  # two speakers in most frames
    assert any(f.track_id is not None and f.person is not None for f in faces)
    assert any(r.people for r in results)  # person records reach the sinks
    aged = [f.age for f in faces if f.age is not None]
    assert aged and all(5 < a < 95 for a in aged)
