"""Benchmarks measured side by side in one run: facelens against simpler loops on the same input.

Modes, each over the same frames:
- ``decode``: read and decode only;
- ``detect``: decode, then one synchronous detector call per frame;
- ``per-face``: the reference design's loop: decode, detect, then one synchronous call per face to
  each attribute network;
- ``no-track``: the pipelined engine, every face of every frame through the attribute networks and
  head pose, results serialized as JSON Lines;
- ``every-frame``: the same, tracked, fused per person;
- ``facelens``: the default: tracked and fused, with the attribute budget (a settled person's faces
  skip the age-gender network and see the emotion network twice a second).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..analyzer import Analyzer
from ..attributes import AttributeEstimator
from ..detect import DEFAULT_DETECTOR, DETECTORS, Detector
from ..models import ModelStore
from ..people import PeopleConfig
from ..runtime import Network
from ..sources import Reconnect, Source, open_source
from ..types import Frame
from .mjpeg import MjpegServer

if TYPE_CHECKING:
    from typing_extensions import Self

MODES = ("decode", "detect", "per-face", "no-track", "every-frame", "facelens")


@dataclass
class Figures:
    """What one mode achieved."""

    mode: str
    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    rss_after_1000_mb: float | None = None
    rss_every_1000_mb: list[float] = field(default_factory=list)
    """Resident memory after every 1000 frames: flat when nothing leaks."""
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    dropped: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)
    """Time per frame spent in each stage (for facelens, per engine thread or reader thread)."""
    people: int | None = None
    """Tracked modes: people confirmed."""
    attribute_share: dict[str, float] = field(default_factory=dict)
    """Tracked modes: share of the faces each attribute network saw (1.0 without the budget)."""

    def count_frame(self) -> None:
        self.frames += 1
        if self.frames % 1000 == 0:
            self.rss_every_1000_mb.append(round(rss_mb(), 1))
            if self.frames == 1000:
                self.rss_after_1000_mb = self.rss_every_1000_mb[0]

    @property
    def rss_growth(self) -> float | None:
        """Growth of resident memory from 1000 frames to the end of the run, as a fraction."""
        if len(self.rss_every_1000_mb) < 2:
            return None
        return self.rss_every_1000_mb[-1] / self.rss_every_1000_mb[0] - 1

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000 * self.cpu_seconds / self.frames if self.frames else 0.0

    def to_dict(self) -> dict:
        return asdict(self) | {
            "fps": self.fps,
            "faces_per_second": self.faces_per_second,
            "cpu_ms_per_frame": self.cpu_ms_per_frame,
            "rss_growth": self.rss_growth,
        }


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class _Meter:
    """Wall time, CPU time and peak resident memory of a block, sampled every 20 ms."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.figures.peak_rss_mb = max(self.figures.peak_rss_mb, rss_mb())

    def __enter__(self) -> Self:
        self.figures.peak_rss_mb = rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.figures.seconds = time.perf_counter() - self._wall
        self.figures.cpu_seconds = time.process_time() - self._cpu
        self._stop.set()
        self._thread.join()
        self.figures.peak_rss_mb = max(self.figures.peak_rss_mb, rss_mb())


class LoopedSource(Source):
    """A video file played `times` times in a row as one source with continuous frame indices."""

    def __init__(self, path: str | os.PathLike[str], times: int) -> None:
        first = open_source(path)
        super().__init__(
            str(path),
            first.kind,
            length=None if first.length is None else first.length * times,
            fps=first.fps,
        )
        self.path, self.times, self._current = path, times, first

    def _frames(self) -> Iterator[Frame]:
        index, offset = 0, 0.0
        for round_ in range(self.times):
            source = self._current if round_ == 0 else open_source(self.path)
            self._current = source
            last = 0.0
            with source:
                for frame in source:
                    last = frame.timestamp or 0.0
                    yield Frame(
                        frame.image, index, offset + last, self.name, frame.note
                    )
                    index += 1
            offset += last + (1 / self.fps if self.fps else 0.0)

    def close(self) -> None:
        self._current.close()


def make_crowd_video(
    clips: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    frames: int = 300,
    size: tuple[int, int] = (1920, 1080),
    grid: int = 4,
    fps: float = 25.0,
) -> Path:
    """A `grid` x `grid` mosaic of `clips` (looped, each tile starting at another moment), `frames` long."""
    if not clips:
        raise ValueError("no clips to build a crowd video from")
    width, height = size
    tile = (width // grid, height // grid)
    captures = [
        cv2.VideoCapture(str(clips[i % len(clips)])) for i in range(grid * grid)
    ]
    for i, capture in enumerate(captures):
        if not capture.isOpened():
            raise ValueError(f"{clips[i % len(clips)]}: cannot open video")
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        capture.set(cv2.CAP_PROP_POS_FRAMES, (i // len(clips)) * total // grid)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (tile[0] * grid, tile[1] * grid)
    )
    canvas = np.zeros((tile[1] * grid, tile[0] * grid, 3), np.uint8)
    try:
        for _ in range(frames):
            for i, capture in enumerate(captures):
                ok, image = capture.read()
                if not ok:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = capture.read()
                y, x = divmod(i, grid)
                canvas[
                    y * tile[1] : (y + 1) * tile[1], x * tile[0] : (x + 1) * tile[0]
                ] = cv2.resize(image, tile, interpolation=cv2.INTER_AREA)
            writer.write(canvas)
    finally:
        writer.release()
        for capture in captures:
            capture.release()
    return out


class Bench:
    """Runs the modes on one input with the same models and detector settings.

    Args:
        source: a factory returning a fresh source for each run (a video file, looped or not).
        analyzer: the facelens analyzer (its detector is also used by the simpler loops).
        store: where model files come from.
        detect_every: the tracked modes detect on every this-many-th frame (`PeopleConfig.detect_every`).
    """

    def __init__(
        self,
        source: Callable[[], Source],
        analyzer: Analyzer,
        store: ModelStore | None = None,
        detector: str = DEFAULT_DETECTOR,
        detect_every: int = 1,
    ) -> None:
        self.source = source
        self.analyzer = analyzer
        self.detect_every = detect_every
        store = store or ModelStore()

        def sync(model: str) -> Network:
            # The simple loops make one synchronous call at a time: latency mode suits them best.
            return Network(*store.locate(model), hint="LATENCY")

        self.sync_detector = Detector(
            sync(detector),
            DETECTORS[detector],
            analyzer.detector.confidence,
            analyzer.detector.min_size,
        )
        attributes = analyzer.attributes
        self.sync_attributes = AttributeEstimator.load(
            store,
            family=attributes.family,
            emotion=any(m.model.task == "emotion" for m in attributes.models),
            head_pose=False,
            crop=attributes.crop,
            hint="LATENCY",
        )

    def run(
        self,
        mode: str,
        source: Callable[[], Source] | None = None,
        live: bool | None = None,
    ) -> Figures:
        """Measure one mode, on the bench's input or on the sources `source` makes."""
        figures = Figures(mode)
        run = {
            "decode": self._decode,
            "detect": self._detect,
            "per-face": self._per_face,
        }.get(mode, self._facelens)
        with _Meter(figures):
            run(figures, source or self.source, live)
        return figures

    def _frames(self, figures: Figures, make: Callable[[], Source]) -> Iterator[Frame]:
        decode = 0.0
        with make() as source:
            frames = iter(source)
            while True:
                started = time.perf_counter()
                frame = next(frames, None)
                decode += time.perf_counter() - started
                if frame is None:
                    break
                yield frame
                figures.count_frame()
        figures.stages_ms["decode"] = 1000 * decode / max(figures.frames, 1)

    def _decode(
        self, figures: Figures, make: Callable[[], Source], live: bool | None
    ) -> None:
        for _ in self._frames(figures, make):
            pass

    def _detect(
        self, figures: Figures, make: Callable[[], Source], live: bool | None
    ) -> None:
        for frame in self._frames(figures, make):
            figures.faces += len(self.sync_detector(frame.image))

    def _per_face(
        self, figures: Figures, make: Callable[[], Source], live: bool | None
    ) -> None:
        detect = attributes = 0.0
        for frame in self._frames(figures, make):
            started = time.perf_counter()
            detections = self.sync_detector(frame.image)
            detected = time.perf_counter()
            for detection in detections:
                self.sync_attributes(frame.image, [detection.box])
            attributes += time.perf_counter() - detected
            detect += detected - started
            figures.faces += len(detections)
        n = max(figures.frames, 1)
        figures.stages_ms |= {
            "detect": 1000 * detect / n,
            "attributes": 1000 * attributes / n,
        }

    def _facelens(
        self, figures: Figures, make: Callable[[], Source], live: bool | None
    ) -> None:
        mode = figures.mode.removesuffix(" (live)")
        people = (
            None
            if mode == "no-track"
            else PeopleConfig(every_frame=mode == "every-frame", detect_every=1 if mode == "every-frame" else self.detect_every)
        )
        engine = self.analyzer.pipeline(people=people)
        serialize = 0.0
        for result in engine.run([make()], live):
            started = time.perf_counter()
            json.dumps(result.to_dict(), separators=(",", ":"))
            serialize += time.perf_counter() - started
            if result.end:
                continue
            figures.count_frame()
            figures.faces += len(result.faces)
        if people is not None:
            work = engine.people_stats()
            figures.people = work.people
            figures.attribute_share = {
                "age_gender": round(work.age_gender / max(work.faces, 1), 3),
                "emotion": round(work.emotion / max(work.faces, 1), 3),
            }
        n = max(figures.frames, 1)
        stats = engine.stats
        figures.dropped = sum(s.dropped for s in engine.sources)
        figures.latency_p50_ms = (
            None if stats.latency(50) is None else 1000 * stats.latency(50)
        )
        figures.latency_p95_ms = (
            None if stats.latency(95) is None else 1000 * stats.latency(95)
        )
        figures.stages_ms = {
            "decode (reader thread)": 1000 * stats.decode / n,
            "resize + start detection": 1000 * stats.detect_submit / n,
            "detections + crops + start attributes": 1000 * stats.crop_submit / n,
            "collect attributes": 1000 * stats.collect / n,
            "engine waiting": 1000 * stats.waiting / n,
            "json serialization": 1000 * serialize / n,
        }


def run(
    source: str,
    analyzer: Analyzer,
    store: ModelStore,
    modes: Sequence[str] = MODES,
    *,
    rounds: int = 1,
    loop: int = 1,
    live: bool = False,
    detector: str = DEFAULT_DETECTOR,
    detect_every: int = 1,
) -> list[Figures]:
    """Run `modes` alternately `rounds` times on `source`; for each mode, the round with the median frames/s.

    With `live`, facelens runs on the input served as a real-time MJPEG stream on loopback, in
    live mode (newest frame only), so its latency is that of a camera or stream.
    """
    make: Callable[[], Source] = (
        (lambda: LoopedSource(source, loop))
        if loop > 1
        else (lambda: open_source(source))
    )
    bench = Bench(make, analyzer, store, detector, detect_every)
    # Compile every batch size now, the simple loops' networks too, so no mode pays for compiling during its run.
    for network in analyzer.attributes.networks() + bench.sync_attributes.networks():
        network.prepare(range(1, network.max_batch + 1))
    bench.sync_detector.network.prepare([1])  # one frame at a time
    runs: dict[str, list[Figures]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            if mode not in ("decode", "detect", "per-face") and live:
                with MjpegServer(source, loops=loop) as server:
                    # The served clip ends once; reconnecting would only start it over.
                    stream = lambda url=server.url: open_source(
                        url, reconnect=Reconnect(retry_for=0)
                    )
                    figures = bench.run(mode, stream, live=True)
                    figures.mode = f"{mode} (live)"
            else:
                figures = bench.run(mode)
            runs[mode].append(figures)
    return [sorted(r, key=lambda f: f.fps)[len(r) // 2] for r in runs.values()]
