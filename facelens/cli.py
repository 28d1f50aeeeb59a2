"""The `facelens` command: a thin shell over the library."""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import _thread
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import urlsplit

import cv2
import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from . import models as model_catalog
from .analyzer import Analyzer
from .annotate import Picture
from .align import LANDMARKS_MODEL
from .attribute_models import DEFAULT_FAMILY, FAMILIES
from .attributes import EMOTION_MODEL, HEAD_POSE_MODEL
from .bench import MODES
from .crop import CropConfig
from .db import Database
from .db import export as db_export
from .detect import DEFAULT_DETECTOR, DETECTORS
from .engine import Engine
from .errors import FacelensError
from .files import refuse_overwriting_inputs
from .models import ModelStore
from .people import PeopleConfig
from .signals import stop_signals
from .sinks import IMAGE_SUFFIXES, DatabaseSink, ImageSink, JsonlSink, Sink, VideoSink, WindowSink
from .sources import Reconnect, Source, open_source
from .types import FrameResult

app = typer.Typer(
    help="Find every face and tell its age, gender and emotion: images, folders, videos, cameras, streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="List, download and verify the model files.", no_args_is_help=True)
app.add_typer(models_app, name="models")

# No markup: messages carry user text (file names, URLs) that must print as it is.
err = Console(stderr=True, markup=False)
# Tables stay readable when piped to a file or a log (rich would wrap them at 80 columns).
out = Console(width=None if sys.stdout.isatty() else 160, markup=False)
log = logging.getLogger("facelens")

DetectorName = Annotated[str, typer.Option("--detector", help=f"Face detector: {', '.join(DETECTORS)}.")]
Confidence = Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum detector confidence.")]
MinFace = Annotated[float, typer.Option(min=0.0, help="Minimum face size (shorter side) in pixels.")]
AgeGender = Annotated[bool, typer.Option("--age-gender/--no-age-gender", help="Estimate age and gender.")]
EmotionOn = Annotated[bool, typer.Option("--emotion/--no-emotion", help="Estimate emotion.")]
RetryFor = Annotated[float, typer.Option(min=0.0, help="Seconds to keep reconnecting a camera or stream that does not open or dropped (0: never).")]
Device = Annotated[str, typer.Option(help="OpenVINO device: CPU, GPU, NPU, AUTO, ...")]
Precision = Annotated[Optional[str], typer.Option(help="Model precision: FP16-INT8, FP16 or FP32 (default: best available; a network without it uses the nearest it has).", show_default=False)]
CalibrateAge = Annotated[bool, typer.Option("--calibrate-age", help="With --age-gender-model omz: correct its ages with facelens' table: better for adults over ~40, worse for young adults and children (see README).")]
EveryFrame = Annotated[bool, typer.Option("--every-frame", help="Run the attribute networks on every face of every frame (by default a settled person's are skipped).")]
DetectEvery = Annotated[
    int,
    typer.Option(
        "--detect-every",
        min=1,
        max=25,
        help="Look for faces on every K-th frame of a video only; the tracker carries each face on in between. Faster; on busy scenes with a moving camera, some people are missed (see README). Live sources raise it themselves, up to 8, while the box falls behind.",
    ),
]
AgeGenderModel = Annotated[
    str,
    typer.Option(
        "--age-gender-model",
        help="Age and gender networks: cc0 (dlib-models on aligned faces, trained on all ages: the more accurate) or omz (age-gender-recognition-retail-0013, ages 18-75: a little faster).",
    ),
]
ModelsDir = Annotated[
    Optional[Path],
    typer.Option(
        "--models-dir",
        envvar="FACELENS_MODELS_DIR",
        help="Folder of model files in Open Model Zoo layout (intel/<model>/<PRECISION>/); "
        "searched before the user cache and the download.",
        show_default=False,
        exists=True,
        file_okay=False,
    ),
]


class _ConsoleHandler(logging.Handler):
    """Library warnings as plain unwrapped lines on stderr, printed above any live progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"{record.levelname.lower()}: {self.format(record)}", markup=False, highlight=False, soft_wrap=True)


@app.callback()
def _setup() -> None:
    # OpenCV's own warnings (a stream read timing out, say) would garble the progress display;
    # facelens reports those events itself.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if not any(isinstance(h, _ConsoleHandler) for h in log.handlers):
        log.addHandler(_ConsoleHandler())
        log.setLevel(logging.INFO)
        log.propagate = False


STILL_KINDS = ("image", "images")
"""Source kinds whose frames are still images: faces, never tracked as people."""
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")
"""The videos `bench` takes from a folder (--crowd-from, --streams)."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _people(every_frame: bool, detect_every: int, **more: bool) -> PeopleConfig:
    """The people settings of --every-frame and --detect-every."""
    if every_frame and detect_every > 1:
        raise _fail("--every-frame runs the networks on every face of every frame: it needs --detect-every 1", 2)
    return PeopleConfig(every_frame=every_frame, detect_every=detect_every, **more)


@app.command()
def analyze(
    sources: Annotated[list[str], typer.Argument(help="Images, folders, globs ('photos/**/*.jpg'), video files, camera indexes or stream URLs; several run together.", show_default=False)],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Annotated image (single image), folder (many images) or video (.mp4/.avi/.mkv). With several sources put {name} or {index} in it.", show_default=False)] = None,
    jsonl: Annotated[Optional[str], typer.Option("--jsonl", help="JSON Lines, one line per frame; '-' for stdout (default when no other output is asked for). With several sources a file path needs {name} or {index}.", show_default=False)] = None,
    show: Annotated[bool, typer.Option("--show", help="Show a live window per source (needs OpenCV with a GUI).")] = False,
    blur: Annotated[bool, typer.Option("--blur", help="Pixelate faces in every image output.")] = False,
    detector: DetectorName = DEFAULT_DETECTOR,
    confidence: Confidence = 0.5,
    min_face: MinFace = 0.0,
    age_gender: AgeGender = True,
    age_gender_model: AgeGenderModel = DEFAULT_FAMILY,
    emotion: EmotionOn = True,
    calibrate_age: CalibrateAge = False,
    crop_scale: Annotated[float, typer.Option(min=0.1, max=10.0, help="Enlarge face boxes by this factor before the attribute networks.")] = CropConfig.scale,
    square: Annotated[bool, typer.Option("--square/--no-square", help="Square face boxes before the attribute networks.")] = CropConfig.square,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Follow faces in videos as people: steady fused labels, enter/exit events, person records. --no-track: every face of every frame on its own.")] = True,
    every_frame: EveryFrame = False,
    detect_every: DetectEvery = 1,
    db: Annotated[Optional[Path], typer.Option("--db", help="SQLite database to record people and events in (created if missing; each run is added).", show_default=False)] = None,
    thumbnails: Annotated[bool, typer.Option("--thumbnails", help="Keep a best-shot thumbnail of each person in its record (pixelated with --blur).")] = False,
    no_images: Annotated[bool, typer.Option("--no-images", help="Store nothing but numbers: refuse --output, --show and --thumbnails.")] = False,
    live: Annotated[Optional[bool], typer.Option("--live/--all-frames", help="Live: newest frame only, older ones dropped (default for cameras and streams). All frames: every frame (default for files).", show_default=False)] = None,
    retry_for: RetryFor = Reconnect.retry_for,
    device: Device = "CPU",
    precision: Precision = None,
    models_dir: ModelsDir = None,
    oak_mode: Annotated[Optional[str], typer.Option("--oak-mode", help="OAK cameras: device (faces and age-gender found on the camera; default) or camera (the host's networks).", show_default=False)] = None,
    oak_models: Annotated[Optional[Path], typer.Option("--oak-models", envvar="FACELENS_OAK_MODELS", help="OAK cameras, device mode: folder of the device's model blobs (else the Luxonis model zoo).", show_default=False)] = None,
) -> None:
    """Analyze faces in SOURCES and write what was found."""
    if oak_mode not in (None, "device", "camera"):
        raise _fail(f"--oak-mode {oak_mode}: unknown; choose device or camera", 2)
    if detector not in DETECTORS:
        raise _fail(f"--detector {detector}: unknown; choose one of {', '.join(DETECTORS)}", 2)
    if age_gender_model not in FAMILIES:
        raise _fail(f"--age-gender-model {age_gender_model}: unknown; choose one of {', '.join(FAMILIES)}", 2)
    if no_images:
        asked = [name for name, on in (("--output", output is not None), ("--show", show), ("--thumbnails", thumbnails)) if on]
        if asked:
            raise _fail(f"--no-images: cannot be combined with {', '.join(asked)}, which store pictures", 2)
    if (db is not None or thumbnails or every_frame or detect_every > 1) and not track:
        raise _fail("--no-track: --db, --thumbnails, --every-frame and --detect-every need tracking", 2)
    several = len(sources) > 1
    for option, value in (("--output", output), ("--jsonl", jsonl)):
        if several and value not in (None, "-") and "{name}" not in value and "{index}" not in value:
            raise _fail(f"{option} {value}: with several sources the path needs {{name}} or {{index}}, e.g. out/{{name}}.mp4", 2)
    try:
        with ExitStack() as stack:
            opened, unopened = _open_all(sources, Reconnect(retry_for=retry_for), stack, oak_mode=oak_mode, oak_models=oak_models)
            plans = [_plan(i, source, output, jsonl, show) for i, source in enumerate(opened)]
            for option, paths in (("--output", [p.picture for p in plans]), ("--jsonl", [p.jsonl for p in plans])):
                written = [path for path in paths if path not in (None, "-")]
                if len(set(written)) < len(written):
                    raise FacelensError(f"{option} {output if option == '--output' else jsonl}: two sources would write the same file; add {{index}} to the path")
            refuse_overwriting_inputs(
                [path for source in opened for path in source.files],
                [target for plan in plans for target in plan.targets()]
                + ([("--db", str(db))] if db is not None else []),
            )
            # Every source, the database and every model open before any output is created or
            # truncated: a run that cannot start leaves earlier outputs as they were.
            database = stack.enter_context(Database(db)) if db is not None else None
            people = _people(every_frame, detect_every, thumbnails=thumbnails, blur_thumbnails=blur) if track else None
            analyzer = Analyzer(
                detector,
                device=device,
                confidence=confidence,
                min_face=min_face,
                age_gender=age_gender,
                age_gender_model=age_gender_model,
                emotion=emotion,
                # Head pose weighs a person's views and measures attention: on faces that are not
                # followed (--no-track, still images) it would be idle work.
                head_pose=track and any(source.kind not in STILL_KINDS for source in opened),
                calibrate_age=calibrate_age,
                crop=CropConfig(crop_scale, square),
                precision=precision,
                store=ModelStore(models_dir),
                progress=True,
            )
            sinks = [plan.open(stack) for plan in plans]
            if database is not None:
                stills = [source.name for source in opened if source.kind in STILL_KINDS]
                if stills:
                    log.warning("--db: still images (%s) have faces, not people: the database records no person of them; their faces are in --jsonl", ", ".join(stills))
                options = {"detector": detector, "confidence": confidence, "every_frame": every_frame, "detect_every": detect_every, "thumbnails": thumbnails, "blur": blur}
                options["age_gender_model"] = age_gender_model if age_gender else None
                shared = DatabaseSink(database, database.start_run([s.name for s in opened], options))
                stack.callback(shared.close)
                for group in sinks:
                    group.insert(0, shared)  # before the JSON Lines: what a file shows, the database has
            failed = _run(analyzer.pipeline(people=people), opened, sinks, blur, live)
    except FacelensError as error:
        raise _fail(str(error)) from None
    except KeyboardInterrupt:  # while opening, before any output was written
        err.print("interrupted; nothing was written", highlight=False)
        raise typer.Exit(130) from None
    failed = unopened + failed
    if failed:
        everything = len(failed) == len(sources)
        what = "the source" if len(sources) == 1 else ("every source" if everything else f"{len(failed)} of {len(sources)} sources")
        raise _fail(f"{what} failed: " + "; ".join(failed), EXIT_FAILED if everything else EXIT_SOME_FAILED)


EXIT_FAILED = 1
"""The run failed: bad input, setup, an output that cannot be written, or every source failed."""
EXIT_SOME_FAILED = 3
"""Some sources failed (could not be opened, or were given up) while the others ran to their end."""


class _Plan:
    """The outputs of one source, decided (and checked) before anything is opened."""

    def __init__(self, source: Source, picture: Path | None, jsonl: str | None, show: bool) -> None:
        self.source = source
        self.picture = picture
        self.jsonl = jsonl
        self.show = show

    def targets(self) -> list[tuple[str, str]]:
        """(option, file) for every file this plan would write."""
        files = [("--jsonl", self.jsonl)] if self.jsonl not in (None, "-") else []
        if self.picture is not None:
            if self.source.kind == "images":
                sink = ImageSink(self.picture, root=_root_of(self.source.name))
                files += [("--output", str(sink.target(path))) for path in self.source.files]
            else:
                files.append(("--output", str(self.picture)))
        return files

    def open(self, stack: ExitStack) -> list[Sink]:
        sinks: list[Sink] = []
        if self.picture is not None:
            if self.source.kind == "image":
                sinks.append(ImageSink(self.picture))
            elif self.source.kind == "images":
                sinks.append(ImageSink(self.picture, root=_root_of(self.source.name)))
            else:
                sinks.append(VideoSink(self.picture, self.source.fps))
            stack.callback(sinks[-1].close)
        if self.jsonl is not None:
            sinks.append(JsonlSink(self.jsonl))
            stack.callback(sinks[-1].close)
        if self.show:
            sinks.append(WindowSink(f"facelens: {self.source.name}"))
            stack.callback(sinks[-1].close)
        return sinks


def _open_all(specs: list[str], reconnect: Reconnect, stack: ExitStack, **options: object) -> tuple[list[Source], list[str]]:
    """Every source that opens, and why each other did not. All open at once, so that a camera still
    booting does not hold the others up. With a single source, one that cannot be opened is an error."""
    results: list[Source | BaseException | None] = [None] * len(specs)

    def opening(i: int) -> None:
        try:
            results[i] = open_source(specs[i], reconnect=reconnect, **options)  # type: ignore[arg-type]
        except BaseException as error:  # raised below, in the main thread
            results[i] = error

    threads = [threading.Thread(target=opening, args=(i,), daemon=True) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    opened = [stack.enter_context(r) for r in results if isinstance(r, Source)]
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, FacelensError):
            raise result
    failed = [str(r) for r in results if isinstance(r, FacelensError)]
    if len(specs) == 1 and failed:
        raise FacelensError(failed[0])
    for reason in failed:
        log.warning("%s, skipped", reason)
    if not opened:
        raise FacelensError("none of the sources could be opened")
    return opened, failed


def _expand(template: str, index: int, source: Source) -> str:
    """`template` with {index} and {name}: a file's stem, "camera0", or a stream's host and path."""
    if source.kind == "camera":
        stem = f"camera{source.name}"
    elif source.kind == "stream":
        url = urlsplit(source.name)
        stem = (url.hostname or "") + (f"_{url.port}" if url.port else "") + url.path
    else:
        stem = Path(source.name.rstrip("/")).stem
    name = re.sub(r"[^\w.-]+", "_", stem).strip("_") or "source"
    return template.replace("{name}", name).replace("{index}", str(index))


def _plan(index: int, source: Source, output: str | None, jsonl: str | None, show: bool) -> _Plan:
    picture = None
    if output is not None:
        picture = Path(_expand(output, index, source))
        if source.kind == "image":
            ImageSink.check(picture)
        elif source.kind == "images":
            if picture.suffix.lower() in IMAGE_SUFFIXES:
                raise FacelensError(f"--output {picture}: {source.name} has many images, so the output must be a folder")
        else:
            VideoSink.check(picture)
    lines = None
    if jsonl is not None or (output is None and not show):
        lines = _expand(jsonl, index, source) if jsonl and jsonl != "-" else "-"
    if show:
        WindowSink.check()
    return _Plan(source, picture, lines, show)


def _root_of(spec: str) -> str:
    """The folder a folder-or-glob spec starts from, so outputs keep paths relative to it."""
    if os.path.isdir(spec):
        return spec
    fixed = []
    for part in Path(spec).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _run(engine: Engine, sources: list[Source], sinks: list[list[Sink]], blur: bool, live: bool | None) -> list[str]:
    """Run the engine into the sinks; returns why each source that failed failed.

    A stop signal (Ctrl-C, SIGTERM, SIGHUP) ends the run after the result being written, records
    the exits of the people in view and exits with 128 + the signal's number. An output that cannot
    be written ends the run the same way (the other outputs get the exits) and is reported as an error.
    """
    wants_picture = [any(sink.needs_picture for sink in group) for group in sinks]
    started = time.perf_counter()
    columns = [TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[fps]}", markup=False)]
    to_stdout = any(isinstance(sink, JsonlSink) and sink.path == "-" for group in sinks for sink in group)
    progress = Progress(*columns, console=err, disable=to_stdout and not err.is_terminal)
    frames = 0
    broken: set[int] = set()  # ids of sinks that failed to write
    failure: FacelensError | None = None

    def deliver(result: FrameResult, picture: Picture | None) -> None:
        nonlocal failure
        for sink in sinks[result.stream]:
            if id(sink) in broken:
                continue
            try:
                sink.write(result, picture)
            except (FacelensError, OSError) as error:
                broken.add(id(sink))
                failure = failure or (error if isinstance(error, FacelensError) else FacelensError(f"{sink.path}: cannot write ({error.strerror or error})"))

    with _stop_signals() as stop, ExitStack() as cleanup:
        try:
            with progress:
                tasks = [progress.add_task(Path(s.name).name or s.name, total=s.length, fps="") for s in sources]
                results = cleanup.enter_context(closing(engine.run(sources, live)))
                for result in results:
                    group = sinks[result.stream]
                    picture = None
                    if not result.end and wants_picture[result.stream]:
                        # Drawn by the first sink that asks, on its thread: a video's is its own.
                        picture = Picture(result.frame.image, result.faces, blur_faces=blur)
                    deliver(result, picture)
                    if failure is not None:
                        break
                    if result.end:
                        continue
                    frames += 1
                    stats = engine.sources[result.stream]
                    progress.update(tasks[result.stream], advance=1, fps=f"{stats.fps:.1f} fps" + (f", {stats.dropped} dropped" if stats.dropped else ""))
                    if stop.requested or any(getattr(sink, "closed_by_user", False) for sink in group):
                        break
        except KeyboardInterrupt:  # a second stop signal, or no result came for a while after the first
            stop.request(signal.SIGINT)
        finally:
            stop.settled()
            _summary(engine, sources, time.perf_counter() - started)
        if stop.requested or failure is not None:
            cleanup.close()  # the engine stops its readers first
            # The people still in view leave now, so their records are written too.
            for result in engine.drain():
                deliver(result, None)
        if failure is not None:
            raise failure
        if stop.requested:
            err.print(f"{stop.name}: stopped after {frames} frames; what was written so far is kept", highlight=False)
            raise typer.Exit(128 + stop.signum)
    if frames == 0:
        raise FacelensError(f"{sources[0].name if len(sources) == 1 else 'the sources'}: no frame could be read")
    return [stats.error for stats in engine.sources if stats.error]


class _Stop:
    """A stop asked for by a signal: the run ends between two results, each written whole."""

    PATIENCE = 5.0
    """Seconds to wait for the next result after a stop request before stopping at once."""

    def __init__(self) -> None:
        self.signum = 0
        self._timer: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        return self.signum != 0

    @property
    def name(self) -> str:
        return "interrupted" if self.signum == signal.SIGINT else signal.Signals(self.signum).name

    def request(self, signum: int) -> None:
        if not self.requested:
            self.signum = signum
        if self._timer is None:
            # A source that sends nothing (a stream reconnecting) must not keep the run alive.
            self._timer = threading.Timer(self.PATIENCE, _thread.interrupt_main)
            self._timer.daemon = True
            self._timer.start()

    def settled(self) -> None:
        """The run loop is done: what follows (recording the exits) is not to be cut short."""
        if self._timer is not None:
            self._timer.cancel()


@contextmanager
def _stop_signals() -> Iterator[_Stop]:
    """SIGINT (Ctrl-C), SIGTERM (systemd, docker, kill) and SIGHUP ask the run to stop after the
    result being written; a second one stops at once."""
    stop = _Stop()

    def handle(signum: int, frame: object) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.request(signum)
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        err.print(f"{stop.name}: stopping after this frame ({again} again to stop at once)", highlight=False)

    with stop_signals(handle):
        yield stop


def _summary(engine: Engine, sources: list[Source], elapsed: float) -> None:
    if len(engine.sources) == 1:
        stats = engine.sources[0]
        if stats.frames:
            extra = "".join(f", {n} {what}" for n, what in ((stats.dropped, "dropped"), (stats.errors, "failed")) if n)
            err.print(f"{stats.frames} frames, {stats.faces} faces in {elapsed:.1f} s ({stats.frames / elapsed:.1f} fps{extra})", highlight=False)
    elif engine.sources:
        table = Table("source", "frames", "faces", "dropped", "failed", "fps", "ended", box=None)
        table.columns[0].overflow = "fold"  # a name is never cut short
        for stats in engine.sources:
            table.add_row(stats.name, str(stats.frames), str(stats.faces), str(stats.dropped), str(stats.errors), f"{stats.fps:.1f}", "failed" if stats.error else "ok")
        err.print(table)
    for source in sources:
        if source.skipped:
            shown = "; ".join(f"{item} ({why})" for item, why in source.skipped[:5])
            err.print(f"{len(source.skipped)} skipped: {shown}{' ...' if len(source.skipped) > 5 else ''}", highlight=False, soft_wrap=True)
    for source in sources:
        if source.gaps:
            lost = sum(seconds for _, seconds, _ in source.gaps)
            err.print(f"{source.name}: {len(source.gaps)} gaps, {lost:.1f} s without frames in all", highlight=False, soft_wrap=True)
    people = engine.people_stats()
    if engine.people is not None and people.faces:
        err.print(
            f"{people.people} people; age-gender ran on {people.age_gender / people.faces:.0%} "
            f"and emotion on {people.emotion / people.faces:.0%} of the {people.faces} faces",
            highlight=False,
        )


@app.command()
def batch(
    inputs: Annotated[list[str], typer.Argument(help="Folders, globs ('archive/**/*.mp4'), text files listing paths (one a line), videos and photos.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for one JSON Lines file per video and per photo folder, people.db and manifest.db; a later run into it resumes.", show_default=False)],
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Files analyzed at once, sharing one set of networks.")] = 2,
    ray: Annotated[Optional[str], typer.Option("--ray", help="Spread the files over a Ray cluster: its address (host:port), or 'local' for one started for the run (pip install \"facelens[ray]\").", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="With --ray: worker actors, each with its own networks (half a CPU each).")] = 2,
    detector: DetectorName = DEFAULT_DETECTOR,
    confidence: Confidence = 0.5,
    min_face: MinFace = 0.0,
    age_gender: AgeGender = True,
    age_gender_model: AgeGenderModel = DEFAULT_FAMILY,
    emotion: EmotionOn = True,
    calibrate_age: CalibrateAge = False,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Follow faces in videos as people (fused labels, events, person records).")] = True,
    every_frame: EveryFrame = False,
    detect_every: DetectEvery = 1,
    device: Device = "CPU",
    precision: Precision = None,
    models_dir: ModelsDir = None,
) -> None:
    """Analyze many files into one folder, resumably: a rerun skips the files done and redoes those in flight."""
    from .batch import expand, run_batch

    if detector not in DETECTORS:
        raise _fail(f"--detector {detector}: unknown; choose one of {', '.join(DETECTORS)}", 2)
    if age_gender_model not in FAMILIES:
        raise _fail(f"--age-gender-model {age_gender_model}: unknown; choose one of {', '.join(FAMILIES)}", 2)
    if (every_frame or detect_every > 1) and not track:
        raise _fail("--no-track: --every-frame and --detect-every need tracking", 2)
    units, missing = expand(inputs)
    if not units:
        raise _fail("nothing to analyze: " + "; ".join(f"{spec}: {why}" for spec, why in missing))
    stop = None
    try:
        settings = dict(detector=detector, device=device, confidence=confidence, min_face=min_face, age_gender=age_gender, age_gender_model=age_gender_model, emotion=emotion, head_pose=track, calibrate_age=calibrate_age, precision=precision)
        people = _people(every_frame, detect_every) if track else None
        options = {"detector": detector, "confidence": confidence, "every_frame": every_frame, "detect_every": detect_every, "age_gender_model": age_gender_model if age_gender else None}
        if ray is None:
            analyzer = Analyzer(**settings, store=ModelStore(models_dir), progress=True)  # type: ignore[arg-type]
        with _stop_signals() as stop:
            try:
                if ray is None:
                    result = run_batch(units, missing, out_dir, analyzer, people=people, options=options, jobs=jobs, stop=lambda: stop.requested, console=err)
                else:
                    from .batch.distributed import run_batch_ray

                    settings["store"] = ModelStore(models_dir)
                    result = run_batch_ray(units, missing, out_dir, settings, address=None if ray == "local" else ray, workers=workers, people=people, options=options, stop=lambda: stop.requested, console=err)
            finally:
                stop.settled()
    except FacelensError as error:
        raise _fail(str(error)) from None
    except KeyboardInterrupt:
        err.print("stopped at once; the files in flight are done again by the next run into the same --out", highlight=False)
        raise typer.Exit(128 + (stop.signum if stop is not None and stop.requested else signal.SIGINT)) from None
    rate = lambda n, s: f"{n / s:.1f}/s" if s > 0 else "-"
    err.print(
        f"{len(result.done)} done, {len(result.already)} already done, {len(result.failed)} failed in {result.seconds:.1f} s: "
        f"{result.video_frames} video frames ({rate(result.video_frames, result.video_seconds)}), {result.photos} photos ({rate(result.photos, result.photo_seconds)}), "
        f"{result.faces} faces; {out_dir}",
        highlight=False,
        soft_wrap=True,
    )
    for path, reason in result.photos_skipped:
        err.print(f"skipped: {path}: {reason}", highlight=False, soft_wrap=True)
    if result.stopped:
        assert stop is not None
        err.print(f"{stop.name}: stopped; the files in flight are done again by the next run into the same --out", highlight=False)
        raise typer.Exit(128 + stop.signum)
    if result.failed or result.photos_skipped:
        for _, error in result.failed:
            err.print(f"failed: {error}", highlight=False, soft_wrap=True)
        everything = not result.done and not result.already
        raise typer.Exit(EXIT_FAILED if everything else EXIT_SOME_FAILED)


@app.command("eval")
def eval_command(
    source: Annotated[str, typer.Argument(help="Labelled CSV manifest (a path column plus age, gender, age_bucket and/or emotion), or WIDER FACE ground truth (the .txt or its folder).", show_default=False)],
    mode: Annotated[str, typer.Option(help="Attributes: crop (each labelled image is the face) or full (detector first, the largest face; images without a face are missed).")] = "crop",
    detector: DetectorName = DEFAULT_DETECTOR,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for results.json, report.md and plots/*.png.")] = Path("facelens-eval"),
    limit: Annotated[Optional[int], typer.Option(min=1, help="Evaluate a random sample of this many items (images).", show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample.")] = 0,
    calibrate_age: CalibrateAge = False,
    age_gender_model: AgeGenderModel = DEFAULT_FAMILY,
    models_dir: ModelsDir = None,
) -> None:
    """Measure accuracy on labelled data: age, gender and emotion on a manifest, or face detection
    (AP, precision/recall) on WIDER FACE ground truth. Writes a report with 95% confidence intervals."""
    import shlex

    from . import evaluate as evaluation

    if mode not in evaluation.MODES:
        raise _fail(f"--mode {mode}: unknown; choose one of {', '.join(evaluation.MODES)}", 2)
    if age_gender_model not in FAMILIES:
        raise _fail(f"--age-gender-model {age_gender_model}: unknown; choose one of {', '.join(FAMILIES)}", 2)
    if detector not in DETECTORS:
        raise _fail(f"--detector {detector}: unknown; choose one of {', '.join(DETECTORS)}", 2)
    try:
        kind, path = evaluation.locate(source)
        words = ["facelens", "eval", source] + (["--mode", mode] if kind == "manifest" else [])
        words += (["--detector", detector] if detector != DEFAULT_DETECTOR else []) + ["--out", str(out_dir)]
        words += ["--limit", str(limit), "--seed", str(seed)] if limit is not None else []
        words += ["--calibrate-age"] if calibrate_age else []
        words += ["--age-gender-model", age_gender_model] if age_gender_model != DEFAULT_FAMILY else []
        store = ModelStore(models_dir)
        if kind == "wider":
            todo: list = evaluation.sample(evaluation.read_wider(path), limit, seed)
            analyzer = Analyzer(detector, confidence=evaluation.CURVE_CONFIDENCE, age_gender=False, emotion=False, head_pose=False, store=store, progress=True)
            run = lambda advance: evaluation.evaluate_detection(analyzer, todo, progress=advance)
        else:
            manifest = evaluation.read_manifest(path)
            todo = evaluation.sample(manifest.items, limit, seed)
            wants = set(manifest.labels)
            analyzer = Analyzer(detector, age_gender=bool(wants & {"age", "gender", "age_bucket"}), emotion="emotion" in wants, head_pose=False, calibrate_age=calibrate_age, age_gender_model=age_gender_model, store=store, progress=True)
            run = lambda advance: evaluation.evaluate_attributes(analyzer, todo, mode, progress=advance, skipped=manifest.skipped)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=err) as bar:
            task = bar.add_task(Path(path).name if kind == "manifest" else "images", total=len(todo))
            results = run(lambda n: bar.update(task, advance=n))
        results = {"input": source, "detector": detector, "age_gender_model": age_gender_model if kind == "manifest" else None, "limit": limit, "seed": seed, **results}
        written = evaluation.write_report(results, out_dir, shlex.join(words))
    except FacelensError as error:
        raise _fail(str(error)) from None
    table = Table("figure", "value", "95% CI", "n", box=None)
    for row in evaluation.summary(results):
        table.add_row(*row)
    err.print(table)
    if results["skipped"]["count"]:
        err.print(f"{results['skipped']['count']} skipped: " + ", ".join(f"{n} {why}" for why, n in results["skipped"]["reasons"].items()), highlight=False, soft_wrap=True)
    err.print(f"{written[1]} ({len(written) - 2} plots)", highlight=False, soft_wrap=True)


@app.command()
def bench(
    source: Annotated[Optional[str], typer.Argument(help="Video to measure on; with --streams, the videos to serve: a folder of them or one.", show_default=False)] = None,
    crowd_from: Annotated[Optional[Path], typer.Option(help="Build a 1920x1080 4x4 crowd video from the videos in this folder and measure on it.", show_default=False)] = None,
    loop: Annotated[int, typer.Option(min=1, help="Play the input this many times in a row (for long runs and memory growth).")] = 1,
    modes: Annotated[str, typer.Option(help=f"Comma-separated modes to run: {', '.join(MODES)}.")] = ",".join(MODES),
    rounds: Annotated[int, typer.Option(min=1, help="Alternating rounds of all modes; the median is reported.")] = 1,
    live: Annotated[bool, typer.Option("--live", help="Serve the input as a real-time MJPEG stream on loopback and run facelens live on it.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write every figure to this JSON file.", show_default=False)] = None,
    detector: Annotated[str, typer.Option(help="Face detector.")] = DEFAULT_DETECTOR,
    streams: Annotated[Optional[str], typer.Option(help="Channel density instead of the modes: serve N real-time 1280x720 25 frames/s MJPEG streams of the videos on loopback and run facelens live on all of them in this process; a comma list (1,8) runs each count in turn and gives the peak memory per extra stream.", show_default=False)] = None,
    seconds: Annotated[float, typer.Option(min=1.0, help="With --streams: seconds measured per run, after the warm-up (120 or more: memory growth after the first minute).")] = 60.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="With --streams: seconds run before measuring.")] = 5.0,
    detect_every: DetectEvery = 1,
    models_dir: ModelsDir = None,
) -> None:
    """Measure facelens (untracked, tracked, tracked with the attribute budget) against decode-only,
    decode+detect and a one-call-per-face loop, side by side; or, with --streams, how many live
    camera streams one process keeps up with."""
    from . import bench as benchmark

    if streams is not None:
        if crowd_from is not None:
            raise _fail("--crowd-from: not with --streams (give the folder of videos to serve as SOURCE)", 2)
        _bench_streams(source, streams, seconds, warmup, detector, json_out, models_dir, _people(False, detect_every))
        return
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    if unknown := [m for m in wanted if m not in MODES]:
        raise _fail(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}", 2)
    try:
        if crowd_from is not None:
            clips = sorted(p for p in crowd_from.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            source = str(benchmark.make_crowd_video(clips, Path(tempfile.mkdtemp(prefix="facelens-bench-")) / "crowd-4x4-1080p.mp4"))
            err.print(f"crowd video: {source} (from {len(clips)} clips)", highlight=False)
        if source is None:
            raise _fail("give a video to measure on, or --crowd-from FOLDER", 2)
        store = ModelStore(models_dir)
        analyzer = Analyzer(detector, store=store, progress=True)
        results = benchmark.run(source, analyzer, store, wanted, rounds=rounds, loop=loop, live=live, detector=detector, detect_every=detect_every)
    except FacelensError as error:
        raise _fail(str(error)) from None
    table = Table("mode", "frames", "faces", "frames/s", "faces/s", "CPU ms/frame", "latency p50/p95 ms", "peak MB", "MB after 1000", box=None)
    for f in results:
        latency = "" if f.latency_p50_ms is None else f"{f.latency_p50_ms:.1f} / {f.latency_p95_ms:.1f}"
        table.add_row(f.mode, str(f.frames), str(f.faces), f"{f.fps:.1f}", f"{f.faces_per_second:.1f}", f"{f.cpu_ms_per_frame:.2f}", latency, f"{f.peak_rss_mb:.0f}", "" if f.rss_after_1000_mb is None else f"{f.rss_after_1000_mb:.0f}")
    out.print(table)
    for f in results:
        if f.rss_growth is not None:
            out.print(f"{f.mode} resident memory every 1000 frames (MB): {' '.join(f'{m:.0f}' for m in f.rss_every_1000_mb)}; growth after the first 1000: {100 * f.rss_growth:+.1f}%", highlight=False)
    for f in results:
        if f.stages_ms:
            out.print(f"{f.mode} time per frame: " + ", ".join(f"{k} {v:.2f} ms" for k, v in f.stages_ms.items()), highlight=False)
    by_mode = {f.mode: f for f in results}
    for f in results:
        if f.attribute_share:
            shares = ", ".join(f"{name} {share:.0%}" for name, share in f.attribute_share.items())
            out.print(f"{f.mode}: {f.people} people; share of faces through each attribute network: {shares}", highlight=False)
    for mine in ("no-track", "every-frame", "facelens"):
        for theirs in ("detect", "per-face"):
            if mine in by_mode and theirs in by_mode and by_mode[theirs].fps:
                out.print(f"{mine} / {theirs}: {by_mode[mine].fps / by_mode[theirs].fps:.2f}x frames/s", highlight=False)
    if json_out:
        json_out.write_text(json.dumps([f.to_dict() for f in results], indent=2))


def _bench_streams(source: str | None, streams: str, seconds: float, warmup: float, detector: str, json_out: Path | None, models_dir: Path | None, people: PeopleConfig) -> None:
    from .bench import streams as density

    try:
        counts = sorted({int(n) for n in streams.split(",") if n.strip()})
    except ValueError:
        raise _fail(f"--streams {streams}: not a number or a comma list of numbers", 2) from None
    if not counts or counts[0] < 1:
        raise _fail(f"--streams {streams}: give 1 or more streams", 2)
    if source is None:
        raise _fail("give the videos to serve as streams: a folder of videos, or one video", 2)
    folder = Path(source)
    if not folder.exists():
        raise _fail(f"{source}: no such file or folder")
    videos = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if folder.is_dir() else [source]
    if not videos:
        raise _fail(f"{source}: no videos ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    stop: _Stop | None = None
    try:
        # A stop signal ends the measuring there; the figures so far are still printed.
        with _stop_signals() as stop:
            analyzer = Analyzer(detector, store=ModelStore(models_dir), progress=True)
            runs = density.run_streams(videos, analyzer, counts, seconds=seconds, warmup=warmup, stop=lambda: stop.requested, progress=lambda line: err.print(line, highlight=False), people=people)
    except (FacelensError, ValueError, RuntimeError) as error:
        raise _fail(str(error)) from None
    except KeyboardInterrupt:
        raise typer.Exit(128 + (stop.signum if stop is not None and stop.requested else signal.SIGINT)) from None

    def ms(p50: float | None, p95: float | None, digits: int = 0) -> str:
        return "" if p50 is None or p95 is None else f"{p50:.{digits}f} / {p95:.{digits}f}"

    for run in runs:
        table = Table("stream", "frames/s", "served", "results", "dropped", "not taken", "lost", "latency p50/p95 ms", "engine p50/p95 ms", "detect interval", "faces", box=None, title=f"{run.streams} stream(s), {run.seconds:.0f} s measured after {run.warmup:g} s", title_justify="left")
        for i, f in enumerate(run.per_stream):
            interval = "" if f.detect_interval is None else f"{f.detect_interval:.1f}"
            table.add_row(f"{i} {f.name}", f"{f.fps:.1f}", str(f.served), str(f.results), str(f.dropped), str(f.not_taken), f"{100 * f.lost:.1f}%", ms(f.latency_p50_ms, f.latency_p95_ms), ms(f.engine_latency_p50_ms, f.engine_latency_p95_ms, 1), interval, str(f.faces))
        p95s = [f.latency_p95_ms for f in run.per_stream if f.latency_p95_ms is not None]
        ticks = sum(f.ticks for f in run.per_stream)
        lost = sum(max(0, f.ticks - f.results) for f in run.per_stream)
        table.add_row("all", f"{sum(f.fps for f in run.per_stream):.1f}", str(sum(f.served for f in run.per_stream)), str(sum(f.results for f in run.per_stream)), str(sum(f.dropped for f in run.per_stream)), str(sum(f.not_taken for f in run.per_stream)), f"{100 * lost / max(ticks, 1):.1f}%", f"worst p95 {max(p95s):.0f}" if p95s else "", "", "", str(sum(f.faces for f in run.per_stream)), style="bold")
        out.print(table)
        server = "" if run.server_cpu_percent is None else f" (stream servers, another process: {run.server_cpu_percent:.0f}%)"
        out.print(f"CPU {run.cpu_percent:.0f}% of {run.cpus} CPUs{server}; resident memory start {run.rss_start_mb:.0f} MB, peak {run.rss_peak_mb:.0f} MB, end {run.rss_end_mb:.0f} MB", highlight=False)
        if run.rss_every_minute_mb:
            growth = "" if run.rss_growth is None else f"; growth after the first minute {100 * run.rss_growth:+.1f}%"
            out.print(f"resident memory every minute (MB): {' '.join(f'{m:.0f}' for m in run.rss_every_minute_mb)}{growth}", highlight=False)
        for i, f in enumerate(run.per_stream):
            if f.error:
                out.print(f"stream {i} stopped: {f.error}", highlight=False)
    per_stream = density.peak_rss_per_extra_stream(runs)
    if per_stream is not None:
        out.print(f"peak resident memory per extra stream: {per_stream:.1f} MB (peak of {runs[-1].streams} streams - peak of {runs[0].streams}) / {runs[-1].streams - runs[0].streams}", highlight=False)
    if json_out:
        json_out.write_text(json.dumps({"runs": [run.to_dict() for run in runs], "peak_rss_per_extra_stream_mb": per_stream}, indent=2))
    if stop is not None and stop.requested:
        raise typer.Exit(128 + stop.signum)


@app.command()
def report(
    source: Annotated[Path, typer.Argument(help="People database (--db) or JSON Lines file (--jsonl) of a run.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html and charts/*.png.")] = Path("facelens-report"),
    k: Annotated[int, typer.Option("--k", min=1, help="k-anonymity: hide every figure about fewer than K people (1: show all).")] = 1,
    title: Annotated[Optional[str], typer.Option(help="Page title.", show_default=False)] = None,
    run: Annotated[Optional[int], typer.Option("--run", min=1, help="Only this run of a database.", show_default=False)] = None,
    only: Annotated[Optional[str], typer.Option("--source", help="Only the source of this name, or else those whose name contains it.", show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option(help="Only from this ISO date-time on (local time unless it has an offset): cameras and streams by first sighting, video files by when their analysis started.", show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option(help="Only before this ISO date-time (a date alone: to the end of that day).", show_default=False)] = None,
) -> None:
    """Write one self-contained HTML page with charts (and PNG files) about the people and still-image faces of runs."""
    from .report import ReportOptionError, build_report

    try:
        made = build_report(source, out_dir, k=k, title=title, run=run, source=only, since=since, until=until)
    except ReportOptionError as error:
        raise _fail(str(error), 2) from None
    except FacelensError as error:
        raise _fail(str(error)) from None
    err.print(f"{made.html} ({made.summary})", highlight=False, soft_wrap=True)


@app.command()
def serve(
    sources: Annotated[Optional[list[str]], typer.Argument(help="Cameras, streams or videos to run from the start; more can be added at run time (POST /v1/sources).", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; any other than a loopback one needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 8000,
    token: Annotated[Optional[str], typer.Option(envvar="FACELENS_TOKEN", help="Every request but /healthz must carry it (Authorization: Bearer TOKEN, or open /?token=TOKEN once in a browser).", show_default=False)] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="k-anonymity: hide every served figure about fewer than K people, and serve no single person's records or events (1: show all).")] = 1,
    max_upload: Annotated[int, typer.Option(min=1, help="Largest POST /v1/analyze upload in bytes.")] = 20_000_000,
    cors: Annotated[Optional[list[str]], typer.Option("--cors", help="Let pages of this origin call the API (repeatable); none by default.", show_default=False)] = None,
    detector: DetectorName = DEFAULT_DETECTOR,
    confidence: Confidence = 0.5,
    min_face: MinFace = 0.0,
    age_gender: AgeGender = True,
    age_gender_model: AgeGenderModel = DEFAULT_FAMILY,
    emotion: EmotionOn = True,
    calibrate_age: CalibrateAge = False,
    every_frame: EveryFrame = False,
    detect_every: DetectEvery = 1,
    blur: Annotated[bool, typer.Option("--blur", help="Pixelate faces in the live views and annotated images.")] = False,
    db: Annotated[Optional[Path], typer.Option("--db", help="SQLite database to record people and events in (one run per source).", show_default=False)] = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Serve numbers only: no live video, no annotated images.")] = False,
    live: Annotated[Optional[bool], typer.Option("--live/--all-frames", help="Live: newest frame only (default for cameras and streams). All frames: every frame (default for files).", show_default=False)] = None,
    retry_for: RetryFor = Reconnect.retry_for,
    device: Device = "CPU",
    precision: Precision = None,
    models_dir: ModelsDir = None,
) -> None:
    """Run SOURCES live and serve a web page and an HTTP API over them (FastAPI under uvicorn)."""
    try:
        from . import serve as server
    except ImportError as error:
        raise _fail(f"facelens serve needs its extra ({error.name} is missing): pip install \"facelens[serve]\"") from None
    if detector not in DETECTORS:
        raise _fail(f"--detector {detector}: unknown; choose one of {', '.join(DETECTORS)}", 2)
    if not server.is_loopback(host) and not token:
        raise _fail(f"--host {host}: listening beyond this machine needs a token (--token or FACELENS_TOKEN)", 2)
    if token is not None and not token.strip():
        raise _fail("--token: empty", 2)
    try:
        with ExitStack() as stack:
            database = stack.enter_context(Database(db)) if db is not None else None
            analyzer = Analyzer(detector, device=device, confidence=confidence, min_face=min_face, age_gender=age_gender, age_gender_model=age_gender_model, emotion=emotion, calibrate_age=calibrate_age, precision=precision, store=ModelStore(models_dir), progress=True)
            sock = stack.enter_context(server.server.listen(host, port))  # after the models and the database
            options = server.HubOptions(
                people=_people(every_frame, detect_every),
                live=live,
                reconnect=Reconnect(retry_for=retry_for),
                blur=blur,
                images=not no_images,
                k=k,
                run_options={"detector": detector, "confidence": confidence, "every_frame": every_frame, "detect_every": detect_every, "age_gender_model": age_gender_model if age_gender else None, "serve": True},
            )
            http = server.ServerOptions(token=token, max_upload=max_upload, loopback=server.is_loopback(host), cors=tuple(cors or ()))
            signum = server.serve(sources or [], analyzer, database, options, http, sock, ready=lambda url: err.print(f"facelens serve: {url}", highlight=False, soft_wrap=True))
    except FacelensError as error:
        raise _fail(str(error)) from None
    if signum:
        raise typer.Exit(128 + signum)


@app.command()
def export(
    database: Annotated[Path, typer.Argument(help="People database written by `analyze --db`.", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for runs, people and events files.")] = Path("facelens-export"),
    formats: Annotated[str, typer.Option("--format", help="csv, parquet or both (comma-separated).")] = "csv",
) -> None:
    """Export the runs, people and events of a database as CSV and/or Parquet files."""
    try:
        written = db_export(database, out_dir, [f.strip() for f in formats.split(",") if f.strip()])
    except FacelensError as error:
        raise _fail(str(error)) from None
    for path in written:
        err.print(str(path), highlight=False, soft_wrap=True)


@models_app.command("list")
def models_list(models_dir: ModelsDir = None) -> None:
    """Every supported model file and where it is found."""
    table = Table("model", "precision", "file", "size", "found at")
    for file, path in ModelStore(models_dir).status():
        table.add_row(file.model, file.precision, file.name, decimal(file.size), str(path) if path else Text("not here", style="dim"))
    out.print(table)


@models_app.command("fetch")
def models_fetch(
    names: Annotated[Optional[list[str]], typer.Argument(help="Models to fetch (default: those `facelens analyze` uses by default).", show_default=False)] = None,
    precision: Annotated[Optional[str], typer.Option(help="Precision (default: best available).", show_default=False)] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model and precision of the catalog.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even if a valid copy is in the cache.")] = False,
    models_dir: ModelsDir = None,
) -> None:
    """Download model files into the user cache (checksums verified)."""
    store = ModelStore(models_dir)
    if all_models:
        wanted = [(m, p) for m in model_catalog.models() for p in model_catalog.precisions(m)]
    else:
        wanted = [(m, precision) for m in (names or [DEFAULT_DETECTOR, *(m.name for m in FAMILIES[DEFAULT_FAMILY]), LANDMARKS_MODEL, EMOTION_MODEL, HEAD_POSE_MODEL])]
    try:
        for model, prec in wanted:
            for path in store.fetch(model, prec, progress=True, force=force):
                err.print(f"ok  {path}", highlight=False)
    except FacelensError as error:
        raise _fail(str(error)) from None


@models_app.command("verify")
def models_verify(models_dir: ModelsDir = None) -> None:
    """Check the SHA-384 of every model file present; exit 1 if any differs."""
    results = ModelStore(models_dir).verify()
    bad = [r for r in results if not r.ok]
    for r in results:
        mark = Text("ok ") if r.ok else Text("BAD", style="bold red")
        err.print(mark, f"{r.path}" + ("" if r.ok else f" (expected sha384 {r.file.sha384}, got {r.actual_sha384})"), highlight=False, soft_wrap=True)
    err.print(f"{len(results) - len(bad)} ok, {len(bad)} bad")
    if not results:
        err.print("no model files found; `facelens models fetch` downloads them")
    if bad:
        raise typer.Exit(1)
