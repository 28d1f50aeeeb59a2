"""Live sources added and removed at run time, and what the server shows of them.

Each source runs its own `Engine` (one engine run per source, on a thread of its own); all engines
share the `Analyzer`'s compiled networks, whose request pools are locked (`facelens.runtime.Network`),
so sources come and go without touching the others. A source's results go to the database (one run
per source), to the live figures and recent events, and to its latest frame, which viewers turn
into JPEGs: once per frame however many watch, on their threads, never on the engine's.
"""

from __future__ import annotations

import itertools
import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import cv2

from ..analyzer import Analyzer
from ..annotate import annotate
from ..db import Database, event_to_dict
from ..engine import Engine, SourceStats
from ..errors import FacelensError, SourceError
from ..fuse import AGE_BUCKETS
from ..people import PeopleConfig
from ..sinks import DatabaseSink
from ..sources import Reconnect, Source, open_source
from ..types import EMOTIONS, GENDERS, Box, Event, Face, FrameResult, PersonRecord

log = logging.getLogger("facelens")

UNKNOWN = "unknown"
HOUR = 3600.0
VIEW_WIDTH = 960
"""Live views are scaled down to this width: a JPEG of it costs a third of a 1080p one, and the
page shows it smaller anyway."""
VIEW_MAX_FPS = 30.0
RECONNECTING_AFTER = 2.0
"""Seconds without a frame after which a camera or stream is shown as reconnecting."""


@dataclass(frozen=True)
class HubOptions:
    """How every source is run and what is shown of it."""

    people: PeopleConfig = PeopleConfig()
    live: bool | None = None
    """Force live (newest frame only) or all-frames mode; by default cameras and streams are live."""
    reconnect: Reconnect = Reconnect()
    blur: bool = False
    """Pixelate faces in the live views and annotated images."""
    images: bool = True
    """False: numbers only, no live views, no annotated images."""
    k: int = 1
    """k-anonymity: every served figure about 1 to k-1 people is hidden."""
    run_options: Mapping[str, Any] = field(default_factory=dict)
    """Options recorded with each database run."""


@dataclass
class _Visit:
    """One person of one source, as far as the live figures need it."""

    entered: float
    left: float | None = None
    gender: str = UNKNOWN
    age_bucket: str = UNKNOWN
    emotion: str = UNKNOWN
    dwell: float | None = None
    counted: bool | None = None
    """Whether the final record counts as a person (`PersonRecord.counted`); None while in view."""


class LiveSource:
    """One source of the server: its thread, state, counters, latest frame and people in view."""

    def __init__(self, hub: Hub, id: int, spec: str) -> None:
        self.hub = hub
        self.id = id
        self.spec = spec
        self.name = spec
        self.kind: str | None = None
        self.state = "opening"
        self.error: str | None = None
        self.added = time.time()
        self.source: Source | None = None
        self.engine: Engine | None = None
        self.stats: SourceStats | None = None
        self.run_id: int | None = None
        self.stopping = threading.Event()
        self.latest: FrameResult | None = None
        self.latest_at = 0.0
        self.sequence = 0
        """Results so far; viewers compare it to know whether there is a new frame."""
        self.frame_times: deque[float] = deque(maxlen=200)
        self.visits: dict[int, _Visit] = {}
        self._jpeg: tuple[int, bytes] | None = None
        self._jpeg_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"facelens-serve-{id}", daemon=True)

    # --- the source's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        hub = self.hub
        try:
            source = open_source(self.spec, reconnect=hub.options.reconnect)
        except SourceError as error:
            self._fail(str(error))
            return
        except Exception as error:  # noqa: BLE001 - whatever it was, the other sources go on
            self._fail(f"{self.spec}: {error}")
            return
        self.source, self.kind, self.name = source, source.kind, source.name
        if self.stopping.is_set():
            source.close()
            self.state = "removed"
            return
        sink = None
        try:
            if hub.database is not None:
                self.run_id = hub.database.start_run([source.name], dict(hub.options.run_options))
                sink = DatabaseSink(hub.database, self.run_id)
            people = hub.options.people if source.kind not in ("image", "images") else None
            self.engine = hub.analyzer.pipeline(people=people)
            results = self.engine.run([source], hub.options.live)
            self.state = "running"
            try:
                for result in results:
                    self._publish(result, sink)
                    if self.stopping.is_set():
                        break
            finally:
                results.close()  # stops the readers and waits for requests in flight
                for result in self.engine.drain():  # the people still in view leave now
                    self._publish(result, sink)
            self.stats = self.engine.sources[0] if self.engine.sources else None
            if self.stopping.is_set():
                self.state = "removed"
            elif self.stats is not None and self.stats.error:
                self._fail(self.stats.error)
            else:
                self.state = "ended"
        except Exception as error:  # noqa: BLE001 - a source failing is shown, the others go on
            self._fail(f"{self.name}: {error}")
        finally:
            source.close()
            if self.run_id is not None and hub.database is not None:
                try:
                    hub.database.end_run(self.run_id)
                except FacelensError as error:
                    log.warning("%s", error)

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.state = "failed"
        log.warning("%s", reason)

    def _publish(self, result: FrameResult, sink: DatabaseSink | None) -> None:
        hub = self.hub
        if sink is not None:
            try:
                sink.write(result, None)
            except FacelensError as error:
                hub.database_error = str(error)
                log.warning("%s", error)
        now = time.time()
        with hub.lock:
            if self.engine is not None and self.engine.sources:
                self.stats = self.engine.sources[0]
            if not result.end:
                self.latest, self.latest_at = result, time.monotonic()
                self.sequence += 1
                self.frame_times.append(self.latest_at)
                for face in result.faces:
                    visit = self.visits.get(face.track_id) if face.track_id is not None else None
                    if visit is not None and visit.left is None and face.person is not None:
                        visit.gender, visit.age_bucket, visit.emotion = face.person.gender, face.person.age_bucket, face.person.emotion
            for event in result.events:
                if event.kind == "enter":
                    self.visits[event.track_id] = _Visit(entered=event.wall_time)
                elif (visit := self.visits.get(event.track_id)) is not None:
                    visit.left = event.wall_time
                hub._add_event(self, event)
            for person in result.people:
                self._record(person)
            for track_id in [t for t, v in self.visits.items() if v.left is not None and v.left < now - HOUR]:
                del self.visits[track_id]
        if not result.end:
            hub.metrics.frame(self, result, self.engine)

    def _record(self, person: PersonRecord) -> None:
        visit = self.visits.get(person.track_id)
        if visit is None:
            return
        visit.gender, visit.age_bucket, visit.emotion = person.gender, person.age_bucket, person.emotion
        visit.dwell = person.dwell_seconds
        if visit.left is not None:
            visit.counted = person.counted

    # --- readers (any thread) --------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the source to end; a camera or stream is closed at once (it may be waiting for frames)."""
        self.stopping.set()
        source = self.source
        if source is not None and source.is_live:
            source.close()  # safe from any thread for live sources; files end at their next frame

    @property
    def in_view(self) -> int:
        return sum(1 for visit in self.visits.values() if visit.left is None)

    def jpeg(self) -> tuple[int, bytes] | None:
        """The latest frame, annotated, as (sequence, JPEG); encoded once per frame for all viewers."""
        with self.hub.lock:
            latest, sequence = self.latest, self.sequence
        if latest is None:
            return None
        with self._jpeg_lock:
            if self._jpeg is not None and self._jpeg[0] == sequence:
                return self._jpeg
            image = latest.frame.image
            faces = latest.faces
            if image.shape[1] > VIEW_WIDTH:
                scale = VIEW_WIDTH / image.shape[1]
                image = cv2.resize(image, (VIEW_WIDTH, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
                faces = tuple(_scaled(face, scale) for face in faces)
            picture = annotate(image, faces, blur_faces=self.hub.options.blur)
            ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if not ok:
                return None
            self._jpeg = (sequence, encoded.tobytes())
            return self._jpeg

    def view_interval(self) -> float:
        """Seconds between two frames of the live view: the source's own rate, at most `VIEW_MAX_FPS`."""
        fps = self.source.fps if self.source is not None and self.source.fps else VIEW_MAX_FPS
        return 1.0 / min(max(fps, 1.0), VIEW_MAX_FPS)

    def recent_fps(self) -> float:
        """Results a second over the last 3 seconds."""
        now = time.monotonic()
        with self.hub.lock:
            times = [t for t in self.frame_times if t >= now - 3.0]
        if len(times) < 2 or now - times[-1] > RECONNECTING_AFTER:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0

    def describe(self) -> dict[str, Any]:
        """The source as the API lists it."""
        stats = self.stats
        state = self.state
        idle = time.monotonic() - self.latest_at if self.latest_at else None
        if state == "running" and self.source is not None and self.source.is_live and idle is not None and idle > RECONNECTING_AFTER:
            state = "reconnecting"
        in_view = self.in_view
        return {
            "id": self.id,
            "name": self.name,
            "spec": self.spec,
            "kind": self.kind,
            "state": state,
            "error": self.error,
            "live": stats.live if stats else None,
            "frames": stats.frames if stats else 0,
            "faces": stats.faces if stats else 0,
            "dropped": stats.dropped if stats else 0,
            "errors": stats.errors if stats else 0,
            "fps": round(self.recent_fps(), 1),
            "gaps": len(self.source.gaps) if self.source is not None else 0,
            "seconds_since_frame": None if idle is None else round(idle, 1),
            "people_in_view": self.hub.shown(in_view),
            "run_id": self.run_id,
            "video": f"/v1/sources/{self.id}/video.mjpg" if self.hub.options.images else None,
        }


def _scaled(face: Face, scale: float) -> Face:
    b = face.box
    return replace(face, box=Box(b.x1 * scale, b.y1 * scale, b.x2 * scale, b.y2 * scale))


class Hub:
    """Every live source of the server, the recent events of all, and the figures over them."""

    EVENTS_KEPT = 500

    def __init__(self, analyzer: Analyzer, database: Database | None, options: HubOptions, metrics: Any) -> None:
        self.analyzer = analyzer
        self.database = database
        self.database_error: str | None = None
        self.options = options
        self.metrics = metrics
        self.lock = threading.RLock()
        self.sources: dict[int, LiveSource] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=self.EVENTS_KEPT)
        self.event_count = 0
        self.closing = threading.Event()
        self.started = time.time()
        self._ids = itertools.count(1)
        self.views = ThreadPoolExecutor(2, thread_name_prefix="facelens-view", initializer=_background)
        """Where live-view JPEGs are made: threads of lower priority, so that viewers take only the
        CPU time analysis leaves (on a busy machine the views slow down, not the analysis)."""

    def add(self, spec: str) -> LiveSource:
        """Start a source (opened on its own thread: a stream may take a while)."""
        with self.lock:
            if self.closing.is_set():
                raise FacelensError("the server is stopping")
            source = LiveSource(self, next(self._ids), spec)
            self.sources[source.id] = source
        source.thread.start()
        return source

    def remove(self, id: int, wait: float = 10.0) -> LiveSource | None:
        """Stop a source and forget it; its people in view get their exits recorded first."""
        with self.lock:
            source = self.sources.get(id)
        if source is None:
            return None
        source.stop()
        source.thread.join(wait)
        with self.lock:
            self.sources.pop(id, None)
        return source

    def close(self, wait: float = 10.0) -> None:
        """Stop every source and wait (bounded) for them to record their exits and end their runs."""
        self.closing.set()
        with self.lock:
            sources = list(self.sources.values())
        for source in sources:
            source.stop()
        deadline = time.monotonic() + wait
        for source in sources:
            source.thread.join(max(0.0, deadline - time.monotonic()))
        self.views.shutdown(wait=False, cancel_futures=True)

    def _add_event(self, source: LiveSource, event: Event) -> None:
        self.event_count += 1
        record = event_to_dict(event) | {"id": self.event_count, "source_id": source.id}
        self.events.append(record)

    def events_after(self, id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["id"] > id]

    def shown(self, count: int) -> int | None:
        """`count`, or None where k-anonymity hides it (1 to k-1 people)."""
        return None if 0 < count < self.options.k else count

    def figures(self) -> dict[str, Any]:
        """The live figures over every source: people in view now, in the last hour, their gender,
        age buckets and mood, and dwell; each hidden where it would be about 1 to k-1 people."""
        now = time.time()
        with self.lock:
            visits = [v for s in self.sources.values() for v in s.visits.values()]
            in_view = sum(1 for v in visits if v.left is None)
        hour = [v for v in visits if (v.left is None or v.left >= now - HOUR) and v.counted is not False]
        entered = sum(1 for v in hour if v.entered >= now - HOUR)
        dwells = [v.dwell for v in hour if v.left is not None and v.dwell is not None]
        k = self.options.k
        return {
            "k": k,
            "people_in_view": self.shown(in_view),
            "entered_last_hour": self.shown(entered),
            "people_last_hour": self.shown(len(hour)),
            "gender": split([v.gender for v in hour], GENDERS, k),
            "age_buckets": split([v.age_bucket for v in hour], [b[0] for b in AGE_BUCKETS], k),
            "emotion": split([v.emotion for v in hour], EMOTIONS, k),
            "dwell_median_seconds": round(statistics.median(dwells), 1) if dwells and len(dwells) >= k else None,
            "dwell_people": self.shown(len(dwells)),
        }


def _background() -> None:
    """Lower the calling thread's priority (Linux nice values are per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: the views simply compete
        pass


def split(labels: Iterable[str], known: Iterable[str], k: int) -> dict[str, int | None]:
    """Counts of each known label and "unknown"; with k > 1 every count of 1 to k-1 is None, and
    more are hidden (unknown first, then the smallest) until the hidden ones add up to 0 or >= k,
    so no hidden count follows from the total (the report's rule, `facelens.report`)."""
    counts = dict.fromkeys([*known, UNKNOWN], 0)
    for label in labels:
        counts[label if label in counts else UNKNOWN] += 1
    hidden = {key for key, n in counts.items() if 0 < n < k}
    while 0 < sum(counts[key] for key in hidden) < k:
        shown = [key for key, n in counts.items() if key not in hidden and n > 0]
        if not shown:
            break
        hidden.add(min(shown, key=lambda key: (key != UNKNOWN, counts[key])))
    return {key: None if key in hidden else n for key, n in counts.items()}


__all__ = ["Hub", "HubOptions", "LiveSource", "split"]
