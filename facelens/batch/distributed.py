"""A batch spread over a Ray cluster (`pip install "facelens[ray]"`).

Long-lived actors (half a CPU each, as Ray's defaults starved on two cores) each load the networks
once and take whole units (a video, or a folder's photos); each returns the unit's JSON Lines and
people to the driver, which alone writes the batch folder, so the manifest, the database and the
resume rules are those of the in-process batch. A worker that dies has its unit given to a new one.
Workers read inputs from their paths: every node must see the same paths and have the models.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..db import Database
from ..errors import FacelensError
from ..people import PeopleConfig
from .inputs import Unit
from .manifest import Manifest
from .runner import (
    DATABASE,
    MANIFEST,
    BatchResult,
    _keep_runs,
    _only_run,
    _prepare,
    _publish,
    _size,
)

log = logging.getLogger("facelens")

RETRIES = 2
"""Times a unit whose worker died is given to another before it is recorded failed."""


class Worker:
    """One set of compiled networks analyzing whole units (a Ray actor's class)."""

    def __init__(self, analyzer_options: Mapping[str, Any], people: PeopleConfig | None) -> None:
        from ..analyzer import Analyzer

        logging.getLogger("facelens").setLevel(logging.ERROR)
        self.analyzer = Analyzer(**analyzer_options)
        self.people = people

    def pid(self) -> int:
        return os.getpid()

    def analyze(self, unit: Unit) -> dict[str, Any]:
        """The unit's JSON Lines (bytes), its events and person records, counts, or its error."""
        from ..sinks import JsonlSink
        from ..sources import ImageBatchSource, Source, VideoSource

        try:
            source: Source = VideoSource(unit.key) if unit.kind == "video" else ImageBatchSource(unit.key, list(unit.files))
        except FacelensError as error:
            return {"error": str(error), "seconds": 0.0}
        engine = self.analyzer.pipeline(people=self.people)
        events: list[Any] = []
        people: list[Any] = []
        with tempfile.TemporaryDirectory(prefix="facelens-worker-") as folder:
            lines = JsonlSink(Path(folder) / "unit.jsonl")
            try:
                with closing(engine.run([source], live=False)) as results:
                    for result in results:
                        lines.write(result, None)
                        events += result.events
                        people += result.people
            finally:
                lines.close()
                source.close()
            data = (Path(folder) / "unit.jsonl").read_bytes()
        stats = engine.sources[0]
        error = stats.error or (None if stats.frames else f"{unit.key}: no frame could be read")
        return {"error": error, "jsonl": data, "events": events, "people": people, "frames": stats.frames, "faces": stats.faces,
                "skipped": list(source.skipped), "seconds": (stats.ended or time.perf_counter()) - stats.started}


def run_batch_ray(
    units: list[Unit],
    missing: list[tuple[str, str]],
    out_dir: str | os.PathLike[str],
    analyzer_options: Mapping[str, Any],
    *,
    address: str | None = None,
    workers: int = 2,
    people: PeopleConfig | None = PeopleConfig(),
    options: Mapping[str, object] | None = None,
    stop: Callable[[], bool] = lambda: False,
    console: Console | None = None,
    started_on: Callable[[str, int], None] | None = None,
) -> BatchResult:
    """`run_batch` over `workers` Ray actors: on the cluster at `address`, or on a local one started
    for the run (None). `started_on(unit, pid)` is told which worker process took each unit."""
    try:
        import ray
    except ImportError:
        raise FacelensError('--ray needs Ray: pip install "facelens[ray]"') from None
    began = time.perf_counter()
    out = Path(out_dir)
    result = BatchResult()
    out.mkdir(parents=True, exist_ok=True)
    with _only_run(out), closing(Manifest(out / MANIFEST)) as manifest, Database(out / DATABASE) as database:
        todo = _prepare(out, units, missing, manifest, database, result)
        if not todo:
            result.seconds = time.perf_counter() - began
            return result
        local = address is None
        local = local and not ray.is_initialized()  # a cluster this process already joined stays up
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     **({"num_cpus": os.cpu_count() or 1} if local else {}))
        try:
            remote = ray.remote(num_cpus=0.5, max_restarts=0)(Worker)
            # Workers import facelens from where the driver did, if the cluster's nodes lack it.
            pool = [remote.remote(dict(analyzer_options), people) for _ in range(max(1, workers))]
            pids = dict(zip(pool, ray.get([w.pid.remote() for w in pool])))
            sizes = {unit.key: sum(_size(path) for path in unit.files) for unit, _ in todo}
            queue = list(todo)
            tries: dict[str, int] = {}
            running: dict[Any, tuple[Any, Unit, str, int]] = {}
            columns = [TextColumn("{task.description}", markup=False), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
            with Progress(*columns, console=console or Console(stderr=True)) as progress:
                task = progress.add_task("", total=sum(sizes.values()) or 1)
                idle = list(pool)
                while (queue or running) and not stop():
                    while queue and idle:
                        worker = idle.pop()
                        unit, fingerprint = queue.pop(0)
                        run_id = database.start_run([unit.key], {**(options or {}), "batch": str(out), "ray": address or "local"})
                        manifest.start(unit.key, unit.kind, fingerprint, unit.output, run_id)
                        running[worker.analyze.remote(unit)] = (worker, unit, fingerprint, run_id)
                        if started_on is not None:
                            started_on(unit.key, pids[worker])
                    ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                    for ref in ready:
                        worker, unit, fingerprint, run_id = running.pop(ref)
                        try:
                            answer = ray.get(ref)
                        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as error:
                            _keep_runs(database.path, None, drop=run_id)
                            tries[unit.key] = tries.get(unit.key, 0) + 1
                            if tries[unit.key] > RETRIES:
                                message = f"{unit.key}: its worker died {tries[unit.key]} times ({type(error).__name__})"
                                manifest.finish(unit.key, unit.kind, status="failed", seconds=0.0, error=message)
                                result.failed.append((unit.key, message))
                            else:
                                log.warning("%s: its worker died, given to another", unit.key)
                                queue.insert(0, (unit, fingerprint))
                            replacement = remote.remote(dict(analyzer_options), people)
                            pids[replacement] = ray.get(replacement.pid.remote())
                            idle.append(replacement)
                            continue
                        idle.append(worker)
                        _record(unit, run_id, answer, out, database, manifest, result)
                        progress.advance(task, sizes[unit.key])
                        progress.update(task, description=f"files {len(result.done) + len(result.failed)}/{len(todo)}, {result.frames} frames")
                result.stopped = bool(queue or running)
        finally:
            if local:
                ray.shutdown()
    result.seconds = time.perf_counter() - began
    return result


def _record(unit: Unit, run_id: int, answer: dict[str, Any], out: Path, database: Database, manifest: Manifest, result: BatchResult) -> None:
    """Write what a worker returned for a unit, as the in-process batch would have."""
    if answer["error"] is not None:
        _keep_runs(database.path, None, drop=run_id)
        manifest.finish(unit.key, unit.kind, status="failed", seconds=answer["seconds"], error=answer["error"])
        result.failed.append((unit.key, answer["error"]))
        return
    for event in answer["events"]:
        database.add_event(run_id, event)
    for person in answer["people"]:
        database.save_person(run_id, person)
    database.end_run(run_id)
    part = out / (unit.output + ".part")
    part.write_bytes(answer["jsonl"])
    _publish(part, out / unit.output)
    manifest.finish(unit.key, unit.kind, status="done", seconds=answer["seconds"], frames=answer["frames"], faces=answer["faces"],
                    people=len({p.track_id for p in answer["people"]}), skipped=answer["skipped"])
    result.done.append(unit.key)
    result.frames += answer["frames"]
    result.faces += answer["faces"]
    result.photos_skipped += [tuple(s) for s in answer["skipped"]]
    if unit.kind == "video":
        result.video_frames += answer["frames"]
        result.video_seconds += answer["seconds"]
    else:
        result.photos += answer["frames"]
        result.photo_seconds += answer["seconds"]
