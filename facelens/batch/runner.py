"""Runs a batch in this process: units a few at a time through one engine, each into its own JSON
Lines file and database run, recorded in the manifest so that a later run resumes."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..analyzer import Analyzer
from ..db import Database
from ..errors import FacelensError
from ..people import PeopleConfig
from ..sinks import DatabaseSink, JsonlSink
from ..sources import ImageBatchSource, Source, VideoSource
from .inputs import Unit
from .manifest import Manifest

log = logging.getLogger("facelens")

DATABASE = "people.db"
MANIFEST = "manifest.db"
LOCK = ".lock"


@dataclass
class BatchResult:
    """What a batch run did."""

    done: list[str] = field(default_factory=list)
    """Units analyzed to their end in this run."""
    already: list[str] = field(default_factory=list)
    """Units skipped: done by an earlier run, unchanged since."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(input, error) of every input that failed."""
    photos_skipped: list[tuple[str, str]] = field(default_factory=list)
    """(photo, reason) of photos passed over inside units that were done."""
    frames: int = 0
    photos: int = 0
    faces: int = 0
    video_frames: int = 0
    video_seconds: float = 0.0
    photo_seconds: float = 0.0
    seconds: float = 0.0
    stopped: bool = False
    """A stop was asked for: the units in flight stay in flight for the next run."""


def run_batch(
    units: list[Unit],
    missing: list[tuple[str, str]],
    out_dir: str | os.PathLike[str],
    analyzer: Analyzer,
    *,
    people: PeopleConfig | None = PeopleConfig(),
    options: Mapping[str, object] | None = None,
    jobs: int = 2,
    stop: Callable[[], bool] = lambda: False,
    console: Console | None = None,
) -> BatchResult:
    """Analyze `units` into `out_dir`: one JSON Lines file per unit, `people.db`, `manifest.db`.

    Units done by an earlier run into the same folder with the same fingerprint are skipped; those in
    flight then (or changed since) are done again, their earlier rows removed from the database first.
    `jobs` units at a time share one engine. A unit that fails is recorded and the batch goes on.
    When `stop()` turns true the run ends after the current frame; the units in flight stay so.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    result = BatchResult()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FacelensError(f"{out}: cannot create the batch folder ({error.strerror or error})") from None
    with _only_run(out), closing(Manifest(out / MANIFEST)) as manifest, Database(out / DATABASE) as database:
        todo = _prepare(out, units, missing, manifest, database, result)
        sizes = {unit.key: sum(_size(path) for path in unit.files) for unit, _ in todo}
        columns = [TextColumn("{task.description}", markup=False), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        with Progress(*columns, console=console or Console(stderr=True), transient=False) as progress:
            task = progress.add_task("", total=sum(sizes.values()) or 1)
            files = len(todo) + len(result.failed)

            def show() -> None:
                elapsed = time.perf_counter() - started
                progress.update(task, description=f"files {len(result.done) + len(result.failed)}/{files}, {result.frames} frames ({result.frames / elapsed if elapsed else 0:.0f}/s)")

            show()
            for i in range(0, len(todo), max(1, jobs)):
                group = todo[i : i + max(1, jobs)]
                _run_group(group, out, analyzer, people, dict(options or {}), database, manifest, result, stop, lambda n: (progress.advance(task, n), show()), sizes)
                show()
                if result.stopped:
                    break
    result.seconds = time.perf_counter() - started
    return result


def _prepare(out: Path, units: list[Unit], missing: list[tuple[str, str]], manifest: Manifest, database: Database, result: BatchResult) -> list[tuple[Unit, str]]:
    """The units to do, with their fingerprints; records those that cannot be read, skips those done,
    and removes from the database every run that did not finish (or is about to be redone)."""
    entries = manifest.entries()
    for spec, reason in missing:
        manifest.fail(spec, "input", None, f"{spec}: {reason}")
        result.failed.append((spec, f"{spec}: {reason}"))
    todo: list[tuple[Unit, str]] = []
    for unit in units:
        try:
            fingerprint = unit.fingerprint()
        except FacelensError as error:
            manifest.fail(unit.key, unit.kind, None, str(error))
            result.failed.append((unit.key, str(error)))
            continue
        entry = entries.get(unit.key)
        if entry is not None and entry.status == "done" and entry.fingerprint == fingerprint and (out / (entry.output or "")).is_file():
            result.already.append(unit.key)
            result.photos_skipped += [(path, reason) for path, reason in entry.skipped]
        else:
            todo.append((unit, fingerprint))
    redo = {unit.key for unit, _ in todo}
    # Only the runs of finished units stand: rows of an attempt that was in flight, failed or
    # is about to be redone go, so that no person is recorded twice.
    _keep_runs(database.path, {e.run_id for e in entries.values() if e.status == "done" and e.key not in redo and e.run_id})
    return todo


def _run_group(
    group: list[tuple[Unit, str]],
    out: Path,
    analyzer: Analyzer,
    people: PeopleConfig | None,
    options: dict[str, object],
    database: Database,
    manifest: Manifest,
    result: BatchResult,
    stop: Callable[[], bool],
    advance: Callable[[float], None],
    sizes: dict[str, int],
) -> None:
    """Several units through one engine at once; each finished, failed or (stopped) left in flight."""
    opened: list[tuple[Unit, Source, int, JsonlSink]] = []
    for unit, fingerprint in group:
        try:
            source: Source = VideoSource(unit.key) if unit.kind == "video" else ImageBatchSource(unit.key, list(unit.files))
        except FacelensError as error:
            manifest.fail(unit.key, unit.kind, fingerprint, str(error))
            result.failed.append((unit.key, str(error)))
            advance(sizes[unit.key])
            continue
        run_id = database.start_run([unit.key], {**options, "batch": str(out)})
        manifest.start(unit.key, unit.kind, fingerprint, unit.output, run_id)
        opened.append((unit, source, run_id, JsonlSink(out / (unit.output + ".part"))))
    if not opened:
        return
    engine = analyzer.pipeline(people=people)
    recorders = [DatabaseSink(database, run_id) for _, _, run_id, _ in opened]  # never closed: that would close the database
    tracks: list[set[int]] = [set() for _ in opened]
    # Progress in bytes of input: a video's frame is its size / its frames, a photo its own size.
    per_frame = [sizes[unit.key] / source.length if unit.kind == "video" and source.length else 0.0 for unit, source, _, _ in opened]
    credited = [0.0] * len(opened)
    try:
        with closing(engine.run([source for _, source, _, _ in opened], live=False)) as results:
            for frame in results:
                unit, _, _, lines = opened[frame.stream]
                recorders[frame.stream].write(frame, None)
                lines.write(frame, None)
                tracks[frame.stream].update(person.track_id for person in frame.people)
                if frame.end:
                    continue
                step = per_frame[frame.stream] if unit.kind == "video" else _size(frame.source)
                step = min(step, sizes[unit.key] - credited[frame.stream])
                credited[frame.stream] += step
                advance(step)
                if stop():
                    result.stopped = True
                    break
    finally:
        for _, source, _, lines in opened:
            lines.close()
            source.close()
    if result.stopped:
        return  # in flight: the next run removes their rows and does them again
    for i, (unit, source, run_id, lines) in enumerate(opened):
        stats = engine.sources[i]
        seconds = (stats.ended or time.perf_counter()) - stats.started
        advance(sizes[unit.key] - credited[i])
        error = stats.error or (None if stats.frames else f"{unit.key}: no frame could be read")
        if error is not None:
            _keep_runs(database.path, None, drop=run_id)
            Path(lines.path).unlink(missing_ok=True)
            manifest.finish(unit.key, unit.kind, status="failed", seconds=seconds, frames=stats.frames, faces=stats.faces, error=error)
            result.failed.append((unit.key, error))
            continue
        database.end_run(run_id)
        _publish(Path(lines.path), out / unit.output)
        manifest.finish(unit.key, unit.kind, status="done", seconds=seconds, frames=stats.frames, faces=stats.faces,
                        people=len(tracks[i]), skipped=source.skipped)
        result.done.append(unit.key)
        result.frames += stats.frames
        result.faces += stats.faces
        result.photos_skipped += source.skipped
        if unit.kind == "video":
            result.video_frames += stats.frames
            result.video_seconds += seconds
        else:
            result.photos += stats.frames
            result.photo_seconds += seconds


@contextmanager
def _only_run(out: Path) -> Iterator[None]:
    """Hold the batch folder's lock: a second batch into it would remove the first's rows in flight."""
    with open(out / LOCK, "a") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FacelensError(f"{out}: another facelens batch is writing into this folder") from None
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _publish(part: Path, final: Path) -> None:
    """Make a finished JSON Lines file durable, then give it its name in one step."""
    with open(part, "rb") as file:
        os.fsync(file.fileno())
    os.replace(part, final)


def _keep_runs(path: Path, keep: set[int] | None, drop: int | None = None) -> None:
    """Delete from the database every run but `keep` (or just run `drop`), with its people and events."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=ON")  # people and events go with their run (ON DELETE CASCADE)
        if drop is not None:
            conn.execute("DELETE FROM runs WHERE id = ?", (drop,))
        else:
            conn.execute("CREATE TEMP TABLE keep (id INTEGER PRIMARY KEY)")
            conn.executemany("INSERT INTO keep VALUES (?)", [(i,) for i in keep or ()])
            conn.execute("DELETE FROM runs WHERE id NOT IN (SELECT id FROM keep)")
    except sqlite3.Error as error:
        raise FacelensError(f"{path}: cannot remove unfinished runs ({error})") from None
    finally:
        conn.close()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
