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

A tracked source may detect on every k-th frame only (`PeopleConfig.detect_every`); the frames in
between cost a tracker prediction. In live mode the engine paces itself: while frames wait for it
(the box falls behind its cameras), it raises the interval of every live tracked source, up to
`PeopleConfig.max_detect_every`, before any frame has to be dropped, and lowers it again once the
frames are taken as they come. Doing less per frame, rather than skipping frames, keeps every frame's
result and every track whole.
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
from .people import People, PeopleConfig, PeopleStats, Plan
from .runtime import InferenceError
from .sources import Source
from .stages import Ready, Stages
from .types import Attributes, Detection, Face, Frame, FrameResult

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
    detected: int = 0
    """Frames the detector looked at (the others' faces were predicted by the tracker)."""
    faces: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    error: str | None = None
    """Why the source stopped early, if it did."""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20_000), repr=False)
    """Seconds from a frame leaving the source to its result, for its most recent frames."""

    def latency(self, percentile: float) -> float | None:
        return _percentile(self.latencies, percentile)

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
        return _percentile(self.latencies, percentile)


def _percentile(values: deque[float], percentile: float) -> float | None:
    return float(np.percentile(values, percentile)) if values else None


class _Feed:
    """One source read by its own thread into a buffer the engine takes frames from."""

    def __init__(
        self,
        position: int,
        source: Source,
        live: bool,
        capacity: int,
        ready: threading.Condition,
        stats: EngineStats,
        people: People | None,
    ) -> None:
        self.position = position
        self.people = people
        self.last_frame: Frame | None = None
        self.ended = False  # its end-of-source result (people mode) was given
        self.source = source
        self.live = live
        self.capacity = capacity  # files only: a live buffer holds just the newest frame
        self.ready = ready
        self.engine_stats = stats
        self.stats = SourceStats(source.name, live)
        self.buffer: deque[tuple[Frame, float]] = deque()
        self._arrived = 0.0
        self.gap = 1 / 25
        """Live: the typical time between two frames of the source, in seconds (measured)."""
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
                if self.stats.read:
                    self.gap += 0.1 * (min(arrived - self._arrived, 1.0) - self.gap)
                self._arrived = arrived
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


class _Pace:
    """Live mode: the detection interval of the live tracked sources, raised while the box falls
    behind and lowered once it keeps up.

    Behind: in the last half second a frame was dropped, or one waited in its buffer for half of
    its source's frame interval (a frame waiting a whole interval is replaced by the next one, i.e.
    dropped). Keeping up: two seconds in which every frame was taken within a fifth of an interval.
    """

    WINDOW = 0.5
    CALM_WINDOWS = 4

    def __init__(self, feeds: list[_Feed]) -> None:
        self.feeds = [f for f in feeds if f.live and f.people is not None]
        configs = [f.people.config for f in self.feeds if f.people is not None]
        self.lowest = min((c.detect_every for c in configs), default=1)
        self.highest = max((max(c.max_detect_every, c.detect_every) for c in configs), default=1)
        self.interval = self.lowest
        self._window_start = time.perf_counter()
        self._waited = 0.0  # the longest wait in the window, in frame intervals
        self._dropped = 0
        self._calm = 0

    def taken(self, feed: _Feed, arrived: float) -> None:
        if feed.live:
            self._waited = max(self._waited, (time.perf_counter() - arrived) / max(feed.gap, 1e-3))

    def check(self) -> None:
        now = time.perf_counter()
        if not self.feeds or now - self._window_start < self.WINDOW:
            return
        dropped = sum(f.stats.dropped for f in self.feeds)
        interval = self.interval
        if dropped > self._dropped or self._waited > 0.5:
            interval, self._calm = min(interval + 1, self.highest), 0
        elif self._waited < 0.2:
            self._calm += 1
            if self._calm >= self.CALM_WINDOWS:
                interval, self._calm = max(interval - 1, self.lowest), 0
        else:
            self._calm = 0
        if interval != self.interval:
            log.debug("live detection on every %d frame(s) (longest wait %.2f intervals)", interval, self._waited)
            self.interval = interval
            for feed in self.feeds:
                feed.people.detect_every = max(interval, feed.people.config.detect_every)  # type: ignore[union-attr]
        self._dropped, self._waited, self._window_start = dropped, 0.0, now


class _Job:
    """One frame on its way through detection and attributes."""

    __slots__ = ("feed", "frame", "arrived", "taken", "detected", "detections", "plan", "pending_detections", "pending_attributes", "attributes", "error")

    def __init__(self, feed: _Feed, frame: Frame, arrived: float) -> None:
        self.feed = feed
        self.frame = frame
        self.arrived = arrived
        self.taken = time.perf_counter()
        self.detected = True
        """False when the detector skips the frame (the tracker predicts its faces)."""
        self.pending_detections: PendingDetections | None = None
        self.pending_attributes: PendingAttributes | None = None
        self.detections: list[Detection] | None = None
        self.plan: Plan | None = None
        self.attributes: list[Attributes] | None = None
        self.error: str | None = None

    @property
    def complete(self) -> bool:
        return self.attributes is not None or self.error is not None

    @property
    def planned(self) -> bool:
        return self.pending_attributes is not None or self.complete


class Engine:
    """Runs the frames of one or more sources through detect -> crop -> attributes -> track/fuse, pipelined.

    Args:
        detector: the detection stage.
        attributes: the attribute stage.
        people: track faces and fuse their attributes per person, with an attribute budget (see
            `facelens.people`); None reports every face of every frame on its own.
        depth: frames in flight at once (default: 6 for files, 2 when any source is live).
        timeout: seconds a single inference may take before its frame is marked failed.
        buffer: frames each file reader may decode ahead.

    With `people`, a source with people still in view at its end gives one more result
    (`FrameResult.end`) that carries their exits and final records.
    """

    def __init__(
        self,
        detector: Detector,
        attributes: AttributeEstimator,
        *,
        people: PeopleConfig | None = None,
        depth: int | None = None,
        timeout: float = 10.0,
        buffer: int = 4,
    ) -> None:
        self.detector = detector
        self.attributes = attributes
        self.stages = Stages(detector, attributes)
        self.people = people
        self.depth = depth
        self.timeout = timeout
        self.buffer = buffer
        self.sources: list[SourceStats] = []
        self.stats = EngineStats()
        self._feeds: list[_Feed] = []

    def run(self, sources: Sequence[Source], live: bool | None = None) -> Iterator[FrameResult]:
        """Results of every source, each source's frames in order; sources interleave.

        `live` forces the mode for all sources; by default cameras and streams are live and files are not.
        Closing the iterator early stops the readers and closes the sources.
        """
        ready = threading.Condition()
        self.stats = EngineStats()
        feeds = [
            _Feed(
                i,
                s,
                s.is_live if live is None else live,
                self.buffer,
                ready,
                self.stats,
                None if self.people is None else People(s.name, self.people, self.detector.confidence),
            )
            for i, s in enumerate(sources)
        ]
        self._feeds = feeds
        self.sources = [feed.stats for feed in feeds]
        live_feeds = sum(f.live for f in feeds)
        # Live: few frames in flight keep results current, but each camera needs a place, or
        # frames wait for one however idle the networks are.
        depth = self.depth or (live_feeds + 1 if live_feeds else 6)
        pace = _Pace(feeds)
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
                    pace.taken(taken[0], taken[2])
                    inflight.append(self._start(*taken))
                    progressed = True
                pace.check()
                # A source's frames are planned (tracked) in order: one waiting for its detections
                # holds back the later frames of its source.
                unplanned: set[_Feed] = set()
                for job in inflight:
                    self._advance(job, wait=False, may_plan=job.feed not in unplanned)
                    if not job.planned:
                        unplanned.add(job.feed)
                while inflight and inflight[0].complete:
                    yield self._finish(inflight.popleft())
                    progressed = True
                for feed in feeds:
                    if feed.people and not feed.ended and feed.exhausted and all(job.feed is not feed for job in inflight):
                        ending = self._end(feed)
                        if ending is not None:
                            yield ending
                if not inflight and all(feed.exhausted for feed in feeds):
                    break
                if not progressed and inflight:
                    started = time.perf_counter()
                    if live_feeds and len(inflight) < depth and started - inflight[0].taken < self.timeout:
                        # Live: a camera's next frame is taken as it comes, not after the oldest
                        # job; the networks are looked at again every 2 ms meanwhile.
                        with ready:
                            if not any(feed.buffer for feed in feeds):
                                ready.wait(0.002)
                    else:
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
        people = feed.people
        try:
            if people is not None and frame.found is None and not people.should_detect(frame):
                job.detected = False
                job.pending_detections = Ready([])
            else:
                job.pending_detections = self.stages.detect(frame, None if people is None else people.detector_threshold)
        except InferenceError as error:
            job.error = str(error)
        self.stats.detect_submit += time.perf_counter() - started
        return job

    def _advance(self, job: _Job, wait: bool, may_plan: bool = True) -> None:
        """Move a job on as far as it can go; with `wait`, block until its current stage is done.

        `may_plan` False holds the job after its detections (an earlier frame of its source is not planned yet).
        """
        if job.complete:
            return
        timeout = self.timeout if wait else None
        try:
            if job.pending_attributes is None:
                assert job.pending_detections is not None  # only missing when starting failed, which completes the job
                if job.detections is None:
                    if not (wait or job.pending_detections.done()):
                        return
                    job.detections = job.pending_detections.result(timeout)
                if not may_plan:
                    return
                started = time.perf_counter()
                people = job.feed.people
                if people is None:
                    job.pending_attributes = self.stages.describe(job.frame, job.detections)
                else:
                    job.plan = plan = people.plan(job.frame, job.detections if job.detected else None)
                    job.pending_attributes = Ready([Attributes()] * len(plan.detections)) if not plan.detected else self.stages.describe(
                        job.frame,
                        plan.detections,
                        age_gender=plan.age_gender,
                        emotion=plan.emotion,
                        head_pose=plan.head_pose,
                    )
                self.stats.crop_submit += time.perf_counter() - started
                wait = False  # the attributes were just started: let other jobs move meanwhile
            if not (wait or job.pending_attributes.done()):
                return
            started = time.perf_counter()
            job.attributes = job.pending_attributes.result(timeout)
            self.stats.collect += time.perf_counter() - started
        except InferenceError as error:
            job.error = str(error)

    def _finish(self, job: _Job) -> FrameResult:
        stats = job.feed.stats
        stats.frames += 1
        stats.detected += job.detected
        if job.error:
            stats.errors += 1
            log.warning("%s frame %d: %s", job.frame.source, job.frame.index, job.error)
        job.feed.last_frame = job.frame
        result = FrameResult(job.frame, (), job.error, job.feed.position)
        people = job.feed.people
        if job.plan is not None and people is not None:
            # In order, so each person's fusion sees its frames in order; a failed frame still
            # moves presence on (its tracks were updated when it was planned).
            started = time.perf_counter()
            observed = people.observe(job.plan, job.attributes)
            faces = () if job.error else observed.faces
            result = FrameResult(job.frame, faces, job.error, job.feed.position, observed.events, observed.people, detected=job.detected)
            self.stats.collect += time.perf_counter() - started
        elif job.attributes is not None and job.detections is not None:
            faces = tuple(Face.of(d, a) for d, a in zip(job.detections, job.attributes))
            result = FrameResult(job.frame, faces, None, job.feed.position)
        stats.faces += len(result.faces)
        latency = time.perf_counter() - job.arrived
        self.stats.latencies.append(latency)
        stats.latencies.append(latency)
        if job.feed.exhausted and stats.ended is None:
            stats.ended = time.perf_counter()
        return result

    def _end(self, feed: _Feed) -> FrameResult | None:
        """The end-of-source result of a tracked source: exits and final records of everyone in view."""
        feed.ended = True
        if feed.people is None or feed.last_frame is None:
            return None
        observed = feed.people.finish()
        if not (observed.events or observed.people):
            return None
        return FrameResult(feed.last_frame, (), None, feed.position, observed.events, observed.people, end=True)

    def drain(self) -> list[FrameResult]:
        """After a run was stopped early (e.g. Ctrl-C): the end-of-source results of the tracked
        sources that had not ended, so that the people seen so far are recorded."""
        return [r for feed in self._feeds if not feed.ended and (r := self._end(feed)) is not None]

    def people_stats(self) -> PeopleStats:
        """People of the last run and the attribute work the budget left, summed over its tracked sources."""
        total = PeopleStats()
        for feed in self._feeds:
            if feed.people is not None:
                for name, value in vars(feed.people.stats).items():
                    setattr(total, name, getattr(total, name) + value)
        return total

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
