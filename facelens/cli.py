"""The `facelens` command: a thin shell over the library."""

from __future__ import annotations

import glob
import logging
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import models as model_catalog
from .analyzer import Analyzer
from .annotate import annotate
from .crop import CropConfig
from .detect import DEFAULT_DETECTOR, DETECTORS
from .errors import FacelensError
from .models import ModelStore
from .sinks import IMAGE_SUFFIXES, ImageSink, JsonlSink, Sink, VideoSink, WindowSink
from .sources import Source, open_source

app = typer.Typer(
    help="Find every face and tell its age, gender and emotion: images, folders, videos, cameras, streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="List, download and verify the model files.", no_args_is_help=True)
app.add_typer(models_app, name="models")

err = Console(stderr=True)
log = logging.getLogger("facelens")

ModelsDir = Annotated[
    Optional[Path],
    typer.Option(
        "--models-dir",
        envvar="FACELENS_MODELS_DIR",
        help="Folder of model files in Open Model Zoo layout (intel/<model>/<PRECISION>/); "
        "searched before the user cache and the download.",
        show_default=False,
    ),
]


class _ConsoleHandler(logging.Handler):
    """Library warnings as plain unwrapped lines on stderr, printed above any live progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"{record.levelname.lower()}: {self.format(record)}", markup=False, highlight=False, soft_wrap=True)


@app.callback()
def _setup() -> None:
    if not any(isinstance(h, _ConsoleHandler) for h in log.handlers):
        log.addHandler(_ConsoleHandler())
        log.setLevel(logging.INFO)
        log.propagate = False


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def analyze(
    source: Annotated[str, typer.Argument(help="Image, folder, glob ('photos/**/*.jpg'), video file, camera index or stream URL.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Annotated image (single image), folder (many images) or video (.mp4/.avi/.mkv).", show_default=False)] = None,
    jsonl: Annotated[Optional[str], typer.Option("--jsonl", help="JSON Lines, one line per frame; '-' for stdout. Default when no other output is asked for.", show_default=False)] = None,
    show: Annotated[bool, typer.Option("--show", help="Show a live window (needs OpenCV with a GUI).")] = False,
    blur: Annotated[bool, typer.Option("--blur", help="Pixelate faces in every image output.")] = False,
    detector: Annotated[str, typer.Option(help=f"Face detector: {', '.join(DETECTORS)}.")] = DEFAULT_DETECTOR,
    confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum detector confidence.")] = 0.5,
    min_face: Annotated[float, typer.Option(min=0.0, help="Minimum face size (shorter side) in pixels.")] = 0.0,
    age_gender: Annotated[bool, typer.Option("--age-gender/--no-age-gender", help="Estimate age and gender.")] = True,
    emotion: Annotated[bool, typer.Option("--emotion/--no-emotion", help="Estimate emotion.")] = True,
    crop_scale: Annotated[float, typer.Option(min=0.1, max=10.0, help="Enlarge face boxes by this factor before the attribute networks.")] = CropConfig.scale,
    square: Annotated[bool, typer.Option("--square/--no-square", help="Square face boxes before the attribute networks.")] = CropConfig.square,
    device: Annotated[str, typer.Option(help="OpenVINO device: CPU, GPU, NPU, AUTO, ...")] = "CPU",
    precision: Annotated[Optional[str], typer.Option(help="Model precision: FP16-INT8, FP16 or FP32 (default: best available).", show_default=False)] = None,
    models_dir: ModelsDir = None,
) -> None:
    """Analyze faces in SOURCE and write what was found."""
    if detector not in DETECTORS:
        raise _fail(f"--detector {detector}: unknown; choose one of {', '.join(DETECTORS)}", 2)
    try:
        with open_source(source) as opened, ExitStack() as stack:
            sinks = _sinks(opened, output, jsonl, show, stack)
            analyzer = Analyzer(
                detector,
                device=device,
                confidence=confidence,
                min_face=min_face,
                age_gender=age_gender,
                emotion=emotion,
                crop=CropConfig(crop_scale, square),
                precision=precision,
                store=ModelStore(models_dir),
                progress=True,
            )
            _run(analyzer, opened, sinks, blur)
    except FacelensError as error:
        raise _fail(str(error)) from None


def _sinks(source: Source, output: Path | None, jsonl: str | None, show: bool, stack: ExitStack) -> list[Sink]:
    sinks: list[Sink] = []
    if output is not None:
        if source.kind == "image":
            sinks.append(ImageSink(output))
        elif source.kind == "images":
            if output.suffix.lower() in IMAGE_SUFFIXES:
                raise FacelensError(f"--output {output}: {source.name} has many images, so the output must be a folder")
            sinks.append(ImageSink(output, root=_root_of(source.name)))
        else:
            sinks.append(VideoSink(output, source.fps))
    if jsonl is not None or (output is None and not show):
        sinks.append(JsonlSink(jsonl or "-"))
    if show:
        sinks.append(WindowSink())
    for sink in sinks:
        stack.callback(sink.close)
    return sinks


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


def _run(analyzer: Analyzer, source: Source, sinks: list[Sink], blur: bool) -> None:
    wants_picture = any(sink.needs_picture for sink in sinks)
    frames = faces = 0
    started = time.perf_counter()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[fps]}")]
    quiet = any(isinstance(sink, JsonlSink) and sink.path == "-" for sink in sinks) and not err.is_terminal
    progress = Progress(*columns, console=err, transient=False, disable=quiet)
    try:
        with progress:
            task = progress.add_task(Path(source.name).name or source.name, total=source.length, fps="")
            for result in analyzer.stream(source):
                picture = annotate(result.frame.image, result.faces, blur_faces=blur) if wants_picture else None
                for sink in sinks:
                    sink.write(result, picture)
                frames += 1
                faces += len(result.faces)
                elapsed = time.perf_counter() - started
                progress.update(task, advance=1, fps=f"{frames / elapsed:.1f} fps")
                if any(getattr(sink, "closed_by_user", False) for sink in sinks):
                    break
    except KeyboardInterrupt:
        err.print(f"interrupted after {frames} frames; what was written so far is kept")
        raise typer.Exit(130) from None
    finally:
        elapsed = time.perf_counter() - started
        if frames:
            err.print(f"{frames} frames, {faces} faces in {elapsed:.1f} s ({frames / elapsed:.1f} fps)", highlight=False)
        if source.skipped:
            err.print(f"{len(source.skipped)} skipped: " + "; ".join(f"{item} ({why})" for item, why in source.skipped[:5]) + (" ..." if len(source.skipped) > 5 else ""), highlight=False)
    if frames == 0:
        raise FacelensError(f"{source.name}: no frame could be read")


@models_app.command("list")
def models_list(models_dir: ModelsDir = None) -> None:
    """Every supported model file and where it is found."""
    table = Table("model", "precision", "file", "size", "found at")
    for file, path in ModelStore(models_dir).status():
        table.add_row(file.model, file.precision, file.name, decimal(file.size), str(path) if path else "[dim]not here[/]")
    Console().print(table)


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
        from .attributes import AGE_GENDER_MODEL, EMOTION_MODEL

        wanted = [(m, precision) for m in (names or [DEFAULT_DETECTOR, AGE_GENDER_MODEL, EMOTION_MODEL])]
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
        err.print(f"{'ok ' if r.ok else '[bold red]BAD[/]'} {r.path}" + ("" if r.ok else f" (expected sha384 {r.file.sha384}, got {r.actual_sha384})"), highlight=False, soft_wrap=True)
    err.print(f"{len(results) - len(bad)} ok, {len(bad)} bad")
    if not results:
        err.print("no model files found; `facelens models fetch` downloads them")
    if bad:
        raise typer.Exit(1)
