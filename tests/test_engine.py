"""The pipelined engine: order, joining, failures, bounded buffers, live drops, several sources."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelens import Analyzer, Frame, open_source
from facelens.runtime import Inference, InferenceError, Network
from facelens.sources import Source, read_image

from conftest import COMPREFACE, DATA, VIDEOS, male_probability, noses_found


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.fixture(scope="module")
def mixed_video(tmp_path_factory) -> Path:
    """60 frames: street frames, empty black frames and a 20-face mosaic, in a fixed pattern."""
    path = tmp_path_factory.mktemp("video") / "mixed.avi"
    capture = cv2.VideoCapture(str(VIDEOS / "street-720p.mp4"))
    mosaic = np.full((720, 1280, 3), 90, np.uint8)
    faces = sorted((DATA / "utkface-3k" / "images").glob("*.jpg"))[900:920]
    for i, face in enumerate(faces):
        y, x = divmod(i, 5)
        mosaic[y * 180 + 10 : y * 180 + 170, x * 256 + 48 : x * 256 + 208] = cv2.resize(read_image(face), (160, 160))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1280, 720))
    for i in range(60):
        ok, frame = capture.read()
        assert ok
        writer.write([frame, np.zeros_like(frame), mosaic][i % 3])
    writer.release()
    return path


def test_results_in_order_and_each_frame_joined_with_its_own_faces(analyzer: Analyzer, mixed_video: Path) -> None:
    expected = [analyzer.process(frame) for frame in open_source(mixed_video)]
    results = list(analyzer.pipeline(people=None, depth=6).run([open_source(mixed_video)]))
    assert [r.index for r in results] == list(range(60))
    assert any(len(r.faces) >= 16 for r in results) and any(not r.faces for r in results)
    for got, want in zip(results, expected):
        assert got.error is None
        assert len(got.faces) == len(want.faces), got.index
        for a, b in zip(got.faces, want.faces):
            assert a.box == b.box
            assert abs(a.age - b.age) < 0.5 and abs(male_probability(a.gender) - male_probability(b.gender)) < 0.01
            assert np.allclose(a.emotion.probabilities, b.emotion.probabilities, atol=0.01)
        assert np.array_equal(got.frame.image, want.frame.image)


class _Flaky(Network):
    """The real network, except that chosen calls fail or never answer (an edge we cannot produce for real)."""

    def __init__(self, real: Network, fail: set[int], hang: set[int]) -> None:
        self.__dict__.update(real.__dict__)
        self.calls, self.fail, self.hang = 0, fail, hang

    def submit(self, images: np.ndarray) -> Inference:
        self.calls += 1
        if self.calls in self.fail:
            raise InferenceError(f"{self.name}: injected failure")
        if self.calls in self.hang:
            return _Hung()
        return super().submit(images)


class _Hung(Inference):
    def __init__(self) -> None:
        self._outputs = None

    def done(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> dict:
        time.sleep(timeout or 0)
        raise InferenceError(f"request: no result after {timeout:g} s")


def test_a_failing_or_hanging_request_marks_its_frame_and_the_run_goes_on(mixed_video: Path) -> None:
    analyzer = Analyzer()
    loaded = analyzer.attributes.models[0]
    # Attribute calls happen only for frames with faces: two of every three frames.
    loaded.network = _Flaky(loaded.network, fail={3}, hang={7})
    engine = analyzer.pipeline(people=None, timeout=0.5)
    started = time.perf_counter()
    results = list(engine.run([open_source(mixed_video)]))
    assert time.perf_counter() - started < 30
    assert [r.index for r in results] == list(range(60))
    failed = [r for r in results if r.error]
    assert len(failed) == 2
    assert "injected failure" in failed[0].error and "no result after 0.5 s" in failed[1].error
    assert all(not r.faces for r in failed)
    assert engine.sources[0].errors == 2
    assert sum(1 for r in results if r.faces) >= 35
    assert "error" in failed[0].to_dict() and "error" not in results[0].to_dict()


class _CountingSource(Source):
    """Frames of a real video, counting how many were handed out."""

    def __init__(self, path: Path, live: bool = False) -> None:
        self._inner = open_source(path)
        super().__init__(str(path), "video", length=self._inner.length, fps=self._inner.fps)
        self.is_live = live
        self.produced = 0

    def _frames(self) -> Iterator[Frame]:
        for frame in self._inner:
            self.produced += 1
            yield frame

    def close(self) -> None:
        self._inner.close()


def test_readers_stay_a_bounded_distance_ahead(analyzer: Analyzer) -> None:
    source = _CountingSource(VIDEOS / "street-720p.mp4")
    engine = analyzer.pipeline(people=None, depth=3)
    engine.buffer = 4
    ahead = []
    for i, result in enumerate(engine.run([source])):
        if i >= 60:
            break
        time.sleep(0.01)  # a slow consumer: the reader must wait, not pile up frames
        ahead.append(source.produced - (i + 1))
    # in flight + buffered + the frame the reader holds while waiting
    assert max(ahead) <= 3 + 4 + 1
    assert not any(t.name.startswith("facelens-read") for t in threading.enumerate())


def test_live_mode_drops_old_frames_and_counts_them(analyzer: Analyzer) -> None:
    source = _CountingSource(VIDEOS / "street-720p.mp4", live=True)
    engine = analyzer.pipeline(people=None)
    results = []
    for result in engine.run([source]):
        results.append(result)
        time.sleep(0.02)  # slower than decoding: the newest frame must win
    stats = engine.sources[0]
    assert stats.live and stats.dropped > 100
    assert stats.frames == len(results) and stats.read == source.produced == 477
    assert stats.frames + stats.dropped == stats.read
    indices = [r.index for r in results]
    assert indices == sorted(set(indices)) and indices[-1] == 476


SURE_FACES = {"000_5.jpg": {0, 1, 2, 3, 4}, "010_2.jpg": {0, 1}, "011_3.jpg": {0, 2}}
"""The annotated faces (noses.csv order) the detector finds in each photo at 0.9 or more; not the third
face of 011_3.jpg, at 0.53-0.55 just above the threshold."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in SURE_FACES:
        (folder / name).write_bytes((COMPREFACE / name).read_bytes())
    return folder


def _check_photos(results: list, threshold: float) -> None:
    """Each photo's result holds that photo's own faces: none below the threshold, the sure ones
    found, and every confident face on an annotated face of its own, once."""
    assert [Path(r.source).name for r in results] == list(SURE_FACES)
    for result in results:
        name = Path(result.source).name
        assert all(face.confidence >= threshold for face in result.faces), name
        assert noses_found(result.faces, name) >= SURE_FACES[name], name


def test_several_sources_at_once_with_their_own_order_and_counters(analyzer: Analyzer, mixed_video: Path, photos: Path) -> None:
    sources = [open_source(VIDEOS / "speaker-360p.mp4"), open_source(mixed_video), open_source(photos)]
    engine = analyzer.pipeline(people=None)
    results = list(engine.run(sources))
    by_stream = {i: [r for r in results if r.stream == i] for i in range(3)}
    assert [len(by_stream[i]) for i in range(3)] == [275, 60, 3]
    for i in range(3):
        assert [r.index for r in by_stream[i]] == list(range(len(by_stream[i])))
    _check_photos(by_stream[2], analyzer.detector.confidence)
    # Interleaved, not one after the other.
    first_of_mixed = next(k for k, r in enumerate(results) if r.stream == 1)
    assert first_of_mixed < 20
    assert [s.frames for s in engine.sources] == [275, 60, 3]
    assert all(s.error is None and s.fps > 0 for s in engine.sources)


def test_photo_checks_hold_when_confidences_shift(analyzer: Analyzer, photos: Path, monkeypatch) -> None:
    """Another CPU's INT8 kernels move confidences by up to 0.05: with AVX2, a box in 011_3.jpg's
    corner scored 0.504 instead of 0.493 and the photo had four faces instead of three. Moving the
    threshold 0.1 either way is a larger shift of the same kind: the checks above still hold, while
    the face counts they replace would fail at both."""
    counts = []
    for threshold in (0.4, 0.6):
        monkeypatch.setattr(analyzer.detector, "confidence", threshold)
        results = list(analyzer.pipeline(people=None).run([open_source(photos)]))
        _check_photos(results, threshold)
        counts.append([len(r.faces) for r in results])
    assert all(count != [5, 2, 3] for count in counts), counts


def test_closing_early_stops_readers_and_closes_sources(analyzer: Analyzer) -> None:
    sources = [open_source(VIDEOS / "street-720p.mp4"), open_source(VIDEOS / "speaker-360p.mp4")]
    run = analyzer.pipeline(people=None).run(sources)
    for _ in zip(range(10), run):
        pass
    run.close()
    time.sleep(0.2)
    assert not any(t.name.startswith("facelens-read") for t in threading.enumerate())
