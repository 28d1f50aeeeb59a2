"""Channel density: how many real-time camera streams one facelens process keeps up with.

`run_streams` serves N 720p MJPEG streams at 25 frames/s on loopback from another process
(`StreamServers`) and runs one engine (the default pipeline: tracked, with the attribute budget) on
all of them live, as `facelens analyze URL URL ...` would, every result serialized as a JSON line.
After a warm-up that is not counted it measures, per stream, results per second, frames lost on
the way and the latency from the moment a frame was due at its camera to its JSON line; for the
process, its CPU time and resident memory (the servers' are their own).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..analyzer import Analyzer
from ..people import PeopleConfig
from ..sources import Reconnect, Source, open_source
from .mjpeg import STREAM_FPS, StreamServers
from .modes import rss_mb

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclass
class StreamFigures:
    """One stream over the measured window (the warm-up left out)."""

    name: str
    """The served video and where in it the stream starts."""
    seconds: float = 0.0
    ticks: int = 0
    """Frames the camera had in the window: `seconds` x its frame rate."""
    served: int = 0
    """Frames the server sent."""
    skipped: int = 0
    """Frames the server never sent: the client had not taken the ones before (a camera moves on)."""
    read: int = 0
    """Frames facelens took from the stream."""
    dropped: int = 0
    """Frames facelens replaced by a newer one before processing them (live mode)."""
    results: int = 0
    detected: int = 0
    """Results whose frame the detector looked at (the others' faces were predicted by the tracker)."""
    errors: int = 0
    faces: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    """From the moment a frame was due at its camera to its result serialized: sending, decoding,
    waiting and processing."""
    engine_latency_p50_ms: float | None = None
    engine_latency_p95_ms: float | None = None
    """From a frame leaving its source (decoded) to its result, as the engine measures it."""
    error: str | None = None
    """Why the stream stopped early, if it did."""

    @property
    def fps(self) -> float:
        return self.results / self.seconds if self.seconds else 0.0

    @property
    def not_taken(self) -> int:
        """Frames of the camera facelens never took: skipped by the server, or sent and not read."""
        return self.skipped + max(0, self.served - self.read)

    @property
    def lost(self) -> float:
        """Share of the camera's frames that got no result."""
        return max(0, self.ticks - self.results) / self.ticks if self.ticks else 0.0

    @property
    def detect_interval(self) -> float | None:
        """Results per detector run: 1 when every frame is detected on."""
        return self.results / self.detected if self.detected else None

    def to_dict(self) -> dict:
        return asdict(self) | {
            "fps": self.fps,
            "lost": self.lost,
            "detect_interval": self.detect_interval,
        }


@dataclass
class StreamsFigures:
    """One run of `streams` streams."""

    streams: int
    seconds: float = 0.0
    warmup: float = 0.0
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    cpu_seconds: float = 0.0
    """CPU time of this process (every thread) in the window."""
    server_cpu_seconds: float | None = None
    """CPU time of the stream server process in the window (not in `cpu_seconds`)."""
    rss_start_mb: float = 0.0
    """Before the streams were opened, the networks loaded."""
    rss_peak_mb: float = 0.0
    """Highest over the run, warm-up included (sampled every 50 ms)."""
    rss_end_mb: float = 0.0
    rss_every_minute_mb: list[float] = field(default_factory=list)
    """After each whole minute of the window."""
    per_stream: list[StreamFigures] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        """Share of the whole machine (all its CPUs) this process used."""
        return (
            100 * self.cpu_seconds / self.seconds / self.cpus if self.seconds else 0.0
        )

    @property
    def server_cpu_percent(self) -> float | None:
        if self.server_cpu_seconds is None or not self.seconds:
            return None
        return 100 * self.server_cpu_seconds / self.seconds / self.cpus

    @property
    def rss_growth(self) -> float | None:
        """Growth of resident memory from the end of the first minute to the end of the last whole
        minute, as a fraction: both while the streams run (after the run, its buffers are freed)."""
        if len(self.rss_every_minute_mb) < 2:
            return None
        return self.rss_every_minute_mb[-1] / self.rss_every_minute_mb[0] - 1

    def to_dict(self) -> dict:
        return asdict(self) | {
            "cpu_percent": self.cpu_percent,
            "server_cpu_percent": self.server_cpu_percent,
            "rss_growth": self.rss_growth,
            "per_stream": [s.to_dict() for s in self.per_stream],
        }


def peak_rss_per_extra_stream(runs: Sequence[StreamsFigures]) -> float | None:
    """(peak of the run with most streams - peak of the run with fewest) / the streams between them, in MB."""
    if len(runs) < 2:
        return None
    fewest, most = (
        min(runs, key=lambda r: r.streams),
        max(runs, key=lambda r: r.streams),
    )
    if most.streams == fewest.streams:
        return None
    return (most.rss_peak_mb - fewest.rss_peak_mb) / (most.streams - fewest.streams)


class _Rss:
    """Peak resident memory, sampled by a thread, and its value after every whole minute of the window."""

    def __init__(self, figures: StreamsFigures) -> None:
        self.figures = figures
        self.window: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._sample, name="facelens-bench-rss", daemon=True
        )

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            rss = rss_mb()
            self.figures.rss_peak_mb = max(self.figures.rss_peak_mb, rss)
            window = self.window
            if window is not None and time.perf_counter() - window >= 60 * (
                len(self.figures.rss_every_minute_mb) + 1
            ):
                self.figures.rss_every_minute_mb.append(round(rss, 1))

    def __enter__(self) -> Self:
        self.figures.rss_start_mb = self.figures.rss_peak_mb = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.figures.rss_end_mb = rss_mb()
        self.figures.rss_peak_mb = max(
            self.figures.rss_peak_mb, self.figures.rss_end_mb
        )


def measure_streams(
    analyzer: Analyzer,
    servers: StreamServers,
    streams: int,
    *,
    seconds: float = 60.0,
    warmup: float = 5.0,
    stop: Callable[[], bool] | None = None,
    people: PeopleConfig = PeopleConfig(),
) -> StreamsFigures:
    """Run the default facelens pipeline live on the first `streams` streams of `servers` for
    `warmup` + `seconds` seconds and measure the `seconds` after the warm-up.

    `stop` is asked after every result; when it says so, the run ends there and the figures are
    those of the window so far.
    """
    if not 1 <= streams <= servers.streams:
        raise ValueError(f"streams must be 1 to {servers.streams}, not {streams}")
    figures = StreamsFigures(streams, warmup=warmup)
    capacity = int((warmup + seconds) * servers.fps * 1.2) + 100
    # Allocated now, so the latencies kept do not count as the engine's memory growth.
    latencies = [np.empty(capacity) for _ in range(streams)]
    kept = [0] * streams
    detected = [0] * streams
    with _Rss(figures) as rss:
        sources: list[Source] = []
        try:
            for url in servers.urls[:streams]:
                # The streams never end while served; one that breaks is a finding, not to be hidden by reconnecting.
                sources.append(open_source(url, reconnect=Reconnect(retry_for=0)))
        except BaseException:
            for source in sources:
                source.close()
            raise
        engine = analyzer.pipeline(people=people)
        results = engine.run(sources, live=True)
        started = time.perf_counter()
        window: tuple[float, float, float | None, list[tuple[int, ...]]] | None = None

        def snapshot() -> list[tuple[int, ...]]:
            return [
                (
                    s.frames,
                    s.read,
                    s.dropped,
                    s.errors,
                    s.faces,
                    servers.sent(i),
                    servers.skipped(i),
                    detected[i],
                )
                for i, s in enumerate(engine.sources)
            ]

        try:
            for result in results:
                json.dumps(result.to_dict(), separators=(",", ":"))
                if result.end:
                    continue
                i = result.stream
                now = time.perf_counter()
                if window is not None:
                    detected[i] += result.detected
                    due = servers.due(i, result.frame.index)
                    if due is not None:
                        latencies[i][kept[i] % capacity] = time.monotonic() - due
                        kept[i] += 1
                elif now - started >= warmup:
                    for stats in engine.sources:
                        stats.latencies.clear()
                    window = (
                        now,
                        time.process_time(),
                        servers.cpu_seconds(),
                        snapshot(),
                    )
                    rss.window = now
                if (window is not None and now - window[0] >= seconds) or (
                    stop is not None and stop()
                ):
                    break
        finally:
            rss.window = None  # a minute's sample taken while the engine stops would not be the run's
            end = (
                time.perf_counter(),
                time.process_time(),
                servers.cpu_seconds(),
                snapshot(),
            )
            results.close()
    if window is None:  # stopped during the warm-up
        window = end
    figures.seconds = end[0] - window[0]
    figures.cpu_seconds = end[1] - window[1]
    if window[2] is not None and end[2] is not None:
        figures.server_cpu_seconds = end[2] - window[2]
    for i, stats in enumerate(engine.sources):
        frames, read, dropped, errors, faces, served, skipped, seen = (
            b - a for a, b in zip(window[3][i], end[3][i])
        )
        stream = StreamFigures(
            servers.names[i],
            figures.seconds,
            round(figures.seconds * servers.fps),
            served,
            skipped,
            read,
            dropped,
            frames,
            seen,
            errors,
            faces,
            error=stats.error,
        )
        mine = latencies[i][: min(kept[i], capacity)]
        if mine.size:
            stream.latency_p50_ms, stream.latency_p95_ms = (
                float(v) for v in 1000 * np.percentile(mine, [50, 95])
            )
        if stats.latencies:
            stream.engine_latency_p50_ms, stream.engine_latency_p95_ms = (
                1000 * (stats.latency(p) or 0.0) for p in (50, 95)
            )
        figures.per_stream.append(stream)
    return figures


def run_streams(
    videos: Sequence[str | os.PathLike[str]],
    analyzer: Analyzer,
    counts: Sequence[int] = (8,),
    *,
    seconds: float = 60.0,
    warmup: float = 5.0,
    quality: int = 88,
    clip_seconds: float | None = 30.0,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[str], None] | None = None,
    people: PeopleConfig = PeopleConfig(),
) -> list[StreamsFigures]:
    """Serve max(`counts`) streams of `videos` and measure facelens on each count of them in turn,
    fewest first (see `measure_streams`). Each stream loops over the first `clip_seconds` of its
    video (None: all of it), which bounds the time spent encoding before the start.

    Fewest first: memory a run leaves allocated is reused by the next, larger one, so the peaks
    compare.
    """
    if not counts or min(counts) < 1:
        raise ValueError(f"stream counts must be 1 or more, not {list(counts)}")
    # Compile every batch size now, so no run pays for compiling in its window.
    for network in analyzer.attributes.networks():
        network.prepare(range(1, network.max_batch + 1))
    runs: list[StreamsFigures] = []
    with StreamServers(
        videos, max(counts), fps=STREAM_FPS, quality=quality, seconds=clip_seconds
    ) as servers:
        if progress is not None:
            progress(
                f"{servers.streams} streams of {len(videos)} videos served on 127.0.0.1 (JPEGs encoded in {servers.encode_seconds:.1f} s)"
            )
        for count in sorted(set(counts)):
            if progress is not None:
                progress(
                    f"{count} stream(s): {warmup:g} s warm-up, then {seconds:g} s measured"
                )
            runs.append(
                measure_streams(
                    analyzer,
                    servers,
                    count,
                    seconds=seconds,
                    warmup=warmup,
                    stop=stop,
                    people=people,
                )
            )
            if stop is not None and stop():
                break
    return runs
