"""Pipelined streaming: decode, detection and attributes of different frames overlap.

Each source is read by its own thread into a small buffer. The engine keeps a few frames in flight:
a frame's detection runs while the previous frames' attribute networks run and the next frames are
decoded. Every job carries its frame and its sequence number from the start, so a frame is always
joined with exactly its own detections and attributes, and results leave strictly in the order
frames were taken from each source. A request that fails or times out yields that frame with an
error mark instead of stopping the run.

Two modes: for files every frame is processed, as fast as possible (readers wait when their buffer
is full); for live sources (cameras, streams) only the newest frame is kept and older ones are
dropped and counted, so results stay current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .attributes import AttributeEstimator, PendingAttributes
from .detect import Detector, PendingDetections
from .runtime import InferenceError
from .sources import Source
from .types import Detection, Face, Frame, FrameResult

log = logging.getLogger("facelens")


@dataclass
class SourceStats:
    """Counters of one source in a run."""

    name: str
    live: bool
    read: int = 0
    """Frames taken from the source."""
    frames: int = 0
    """Results produced."""
    dropped: int = 0
    """Live mode: frames replaced by a newer one before they could be processed."""
    errors: int = 0
    """Frames whose inference failed or timed out."""
    faces: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    error: str | None = None
    """Why the source stopped early, if it did."""

    @property
    def fps(self) -> float:
        elapsed = (self.ended or time.perf_counter()) - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0


@dataclass
class EngineStats:
    """Where the time of a run went, in seconds, and how long frames took from arrival to result."""

    decode: float = 0.0
    """Reader threads reading and decoding frames."""
    detect_submit: float = 0.0
    """Resizing frames and starting detection."""
    crop_submit: float = 0.0
    """Reading detections, cropping faces and starting the attribute networks."""
    collect: float = 0.0
    """Reading attribute results and building the frame results."""
    waiting: float = 0.0
    """The engine thread idle, waiting for inference or frames."""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    """Seconds from a frame leaving its source to its result, for the most recent frames."""

    def latency(self, percentile: float) -> float | None:
        return float(np.percentile(self.latencies, percentile)) if self.latencies else None


class _Feed:
    """One source read by its own thread into a buffer the engine takes frames from."""

    def __init__(self, position: int, source: Source, live: bool, capacity: int, ready: threading.Condition, stats: EngineStats) -> None:
        self.position = position
        self.source = source
        self.live = live
        self.capacity = capacity  # files only: a live buffer holds just the newest frame
        self.ready = ready
        self.engine_stats = stats
        self.stats = SourceStats(source.name, live)
        self.buffer: deque[tuple[Frame, float]] = deque()
        self.finished = False
        self.stopping = False
        self.thread = threading.Thread(target=self._read, name=f"facelens-read-{source.name}", daemon=True)

    def _read(self) -> None:
        frames = iter(self.source)
        try:
            while not self.stopping:
                started = time.perf_counter()
                frame = next(frames, None)
                arrived = time.perf_counter()
                if frame is None:
                    break
                with self.ready:
                    self.engine_stats.decode += arrived - started  # several readers add to it
                    if self.live:
                        if self.buffer:
                            self.buffer.popleft()
                            self.stats.dropped += 1
                    else:
                        while len(self.buffer) >= self.capacity and not self.stopping:
                            self.ready.wait()
                    self.buffer.append((frame, arrived))
                    self.stats.read += 1
                    self.ready.notify_all()
        except Exception as error:  # a source failing mid-run ends that source, not the run
            self.stats.error = f"{self.source.name}: {error}"
            log.warning("%s, source stopped", self.stats.error)
        finally:
            if self.source.error and not self.stats.error:
                self.stats.error = self.source.error
            with self.ready:
                self.finished = True
                self.ready.notify_all()

    @property
    def exhausted(self) -> bool:
        return self.finished and not self.buffer


class _Job:
    """One frame on its way through detection and attributes."""

    __slots__ = ("feed", "frame", "arrived", "detections", "pending_detections", "pending_attributes", "faces", "error")

    def __init__(self, feed: _Feed, frame: Frame, arrived: float) -> None:
        self.feed = feed
        self.frame = frame
        self.arrived = arrived
        self.pending_detections: PendingDetections | None = None
        self.pending_attributes: PendingAttributes | None = None
        self.detections: list[Detection] = []
        self.faces: tuple[Face, ...] | None = None
        self.error: str | None = None

    @property
    def complete(self) -> bool:
        return self.faces is not None or self.error is not None


class Engine:
    """Runs the frames of one or more sources through detect -> crop -> attributes, pipelined.

    Args:
        detector: the detection stage.
        attributes: the attribute stage.
        depth: frames in flight at once (default: 6 for files, 2 when any source is live).
        timeout: seconds a single inference may take before its frame is marked failed.
        buffer: frames each file reader may decode ahead.
    """

    def __init__(
        self,
        detector: Detector,
        attributes: AttributeEstimator,
        *,
        depth: int | None = None,
        timeout: float = 10.0,
        buffer: int = 4,
    ) -> None:
        self.detector = detector
        self.attributes = attributes
        self.depth = depth
        self.timeout = timeout
        self.buffer = buffer
        self.sources: list[SourceStats] = []
        self.stats = EngineStats()

    def run(self, sources: Sequence[Source], live: bool | None = None) -> Iterator[FrameResult]:
        """Results of every source, each source's frames in order; sources interleave.

        `live` forces the mode for all sources; by default cameras and streams are live and files are not.
        Closing the iterator early stops the readers and closes the sources.
        """
        ready = threading.Condition()
        self.stats = EngineStats()
        feeds = [_Feed(i, s, s.is_live if live is None else live, self.buffer, ready, self.stats) for i, s in enumerate(sources)]
        self.sources = [feed.stats for feed in feeds]
        depth = self.depth or (2 if any(f.live for f in feeds) else 6)
        for feed in feeds:
            feed.thread.start()
        inflight: deque[_Job] = deque()
        turn = 0
        try:
            while True:
                progressed = False
                while len(inflight) < depth:
                    taken = self._take(feeds, turn, ready, wait=not inflight)
                    if taken is None:
                        break
                    turn = feeds.index(taken[0]) + 1
                    inflight.append(self._start(*taken))
                    progressed = True
                for job in inflight:
                    self._advance(job, wait=False)
                while inflight and inflight[0].complete:
                    yield self._finish(inflight.popleft())
                    progressed = True
                if not inflight and all(feed.exhausted for feed in feeds):
                    break
                if not progressed and inflight:
                    started = time.perf_counter()
                    self._advance(inflight[0], wait=True)
                    self.stats.waiting += time.perf_counter() - started
        finally:
            self._stop(feeds, inflight, ready)

    def _take(self, feeds: list[_Feed], turn: int, ready: threading.Condition, wait: bool) -> tuple[_Feed, Frame, float] | None:
        """The next frame, taking sources in turn; waits for one only if `wait`."""
        with ready:
            while True:
                for i in range(len(feeds)):
                    feed = feeds[(turn + i) % len(feeds)]
                    if feed.buffer:
                        frame, arrived = feed.buffer.popleft()
                        ready.notify_all()
                        return feed, frame, arrived
                if not wait or all(feed.finished for feed in feeds):
                    return None
                started = time.perf_counter()
                ready.wait()
                self.stats.waiting += time.perf_counter() - started

    def _start(self, feed: _Feed, frame: Frame, arrived: float) -> _Job:
        job = _Job(feed, frame, arrived)
        started = time.perf_counter()
        try:
            job.pending_detections = self.detector.submit(frame.image)
        except InferenceError as error:
            job.error = str(error)
        self.stats.detect_submit += time.perf_counter() - started
        return job

    def _advance(self, job: _Job, wait: bool) -> None:
        """Move a job on as far as it can go; with `wait`, block until its current stage is done."""
        if job.complete:
            return
        timeout = self.timeout if wait else None
        try:
            if job.pending_attributes is None:
                assert job.pending_detections is not None  # only missing when starting failed, which completes the job
                if not (wait or job.pending_detections.done()):
                    return
                started = time.perf_counter()
                job.detections = job.pending_detections.result(timeout)
                job.pending_attributes = self.attributes.submit(job.frame.image, [d.box for d in job.detections])
                self.stats.crop_submit += time.perf_counter() - started
                wait = False  # the attributes were just started: let other jobs move meanwhile
            if not (wait or job.pending_attributes.done()):
                return
            started = time.perf_counter()
            attributes = job.pending_attributes.result(timeout)
            job.faces = tuple(Face.of(d, a) for d, a in zip(job.detections, attributes))
            self.stats.collect += time.perf_counter() - started
        except InferenceError as error:
            job.error = str(error)

    def _finish(self, job: _Job) -> FrameResult:
        stats = job.feed.stats
        stats.frames += 1
        if job.error:
            stats.errors += 1
            log.warning("%s frame %d: %s", job.frame.source, job.frame.index, job.error)
        stats.faces += len(job.faces or ())
        self.stats.latencies.append(time.perf_counter() - job.arrived)
        if job.feed.exhausted and stats.ended is None:
            stats.ended = time.perf_counter()
        return FrameResult(job.frame, job.faces or (), job.error, job.feed.position)

    def _stop(self, feeds: list[_Feed], inflight: deque[_Job], ready: threading.Condition) -> None:
        with ready:
            for feed in feeds:
                feed.stopping = True
            ready.notify_all()
        for feed in feeds:
            feed.source.close()
        for feed in feeds:
            feed.thread.join(timeout=5)
            if feed.stats.ended is None:
                feed.stats.ended = time.perf_counter()
        # Requests still running are waited for, so none is torn down mid-inference.
        for job in inflight:
            for pending in (job.pending_detections, job.pending_attributes):
                if pending is not None:
                    try:
                        pending.result(self.timeout)
                    except InferenceError:
                        pass
