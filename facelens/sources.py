"""Inputs: a photo, a folder or glob of photos, a video file, a camera or a stream, each an iterator of `Frame`s.

`open_source` decides what a spec names and opens it, failing fast with `SourceError` when it cannot be
read at all. Inside a batch of images a bad file is logged, recorded in `Source.skipped` and passed over.
"""

from __future__ import annotations

import abc
import glob
import logging
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from .errors import SourceError
from .types import Frame

logger = logging.getLogger("facelens")

# FFmpeg prints a line per damaged packet or refused connection straight to stderr, which garbles the
# progress display while we report the same problem once ourselves. OpenCV reads this variable when it
# first loads FFmpeg, so it works as long as no video was opened before this import; a value set by the
# user wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")  # AV_LOG_FATAL

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    ".jpg .jpeg .jpe .jfif .png .bmp .dib .webp .tif .tiff .jp2 .j2k .pgm .ppm .pbm .pnm .pxm .sr .ras .hdr .pic .avif"
    .split()
)
"""File name endings (lower case) that `open_source` treats as still images; GIFs count as video."""

STREAM_SCHEMES: tuple[str, ...] = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
"""URL prefixes that `open_source` opens as network streams."""

STREAM_TIMEOUT_MS = 10_000
"""How long a stream may take to open, or to deliver the next frame, before it counts as dead."""

_GLOB_MAGIC = re.compile(r"[*?[]")
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^/@:]*):[^/@]*@", re.IGNORECASE)
# In entropy-coded JPEG data a 0xFF byte is followed by 0x00 (stuffing) or a restart marker, so the next
# real marker is 0xFF followed by anything else; repeated 0xFF are fill bytes before a marker.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PADDING = b"\x00 \t\r\n"
_DIGITS = re.compile(r"(\d+)")


class Source(abc.ABC):
    """A readable input. Iterate it once for its frames, then `close()` it (or use it in a `with`)."""

    name: str
    """The spec the user gave (path, pattern, camera index or URL)."""
    kind: str
    """"image", "images", "video", "camera" or "stream"."""
    length: int | None
    """Number of frames or images if known beforehand (for progress bars)."""
    fps: float | None
    """Frames per second the source reports, if any."""
    is_live: bool = False
    """True for cameras and streams: frames come in real time and there may be no end."""
    skipped: list[tuple[str, str]]
    """(item, reason) for every item of a batch that was passed over."""

    def __init__(self, name: str, kind: str, *, length: int | None = None, fps: float | None = None) -> None:
        self.name = name
        self.kind = kind
        self.length = length
        self.fps = fps
        self.skipped = []
        self._iterated = False

    def __iter__(self) -> Iterator[Frame]:
        # Captures cannot rewind and batches record what they skip, so a second pass would be wrong.
        if self._iterated:
            raise RuntimeError(f"{self.name}: a source can be iterated only once")
        self._iterated = True
        return self._frames()

    @abc.abstractmethod
    def _frames(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        """Release the file, device or connection; safe to call more than once."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, length={self.length}, fps={self.fps})"


def open_source(spec: str | int | os.PathLike[str]) -> Source:
    """Open what `spec` names: a camera index (int or digits), a stream URL, a folder (searched
    recursively), a glob pattern, an image file or a video file.

    Raises `SourceError` when it does not exist or cannot be read at all.
    """
    if isinstance(spec, int):
        return CameraSource(spec)
    name = os.fsdecode(spec)
    if isinstance(spec, str):
        if name.isascii() and name.isdigit():
            return CameraSource(int(name))
        if name.lower().startswith(STREAM_SCHEMES):
            return StreamSource(name)
    if os.path.isdir(name):
        return _open_folder(name)
    if os.path.exists(name):
        return ImageSource(name) if is_image_name(name) else VideoSource(name)
    if _GLOB_MAGIC.search(name):
        return _open_glob(name)
    raise SourceError(f"{name}: no such file or directory")


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has one of `IMAGE_EXTENSIONS`."""
    return os.path.splitext(os.fsdecode(path))[1].lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file into a contiguous BGR uint8 (H, W, 3) array, EXIF orientation applied.

    Gray, 16-bit and 4-channel images are converted. Raises `SourceError` ("PATH: reason") when the file
    cannot be read, is truncated, or is not an image.
    """
    try:
        return _load_image(path)
    except _Unreadable as error:
        raise SourceError(f"{os.fsdecode(path)}: {error}") from None


# ---------------------------------------------------------------------------------------------- images


class _Unreadable(Exception):
    """Why an image cannot be used; the caller names the file."""


def _load_image(path: str | os.PathLike[str]) -> np.ndarray:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise _Unreadable(_os_reason(error)) from None
    if not data:
        raise _Unreadable("empty file")
    # Decoders of cut files print to stderr (libpng) or return a gray-filled picture (libjpeg in
    # OpenCV 4), so cut files are caught before decoding.
    if _is_truncated(data):
        raise _Unreadable("truncated image")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise _Unreadable("not a readable image")
    return _bgr(image)


def _os_reason(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file or directory"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    if isinstance(error, PermissionError):
        return "permission denied"
    return (error.strerror or str(error)).lower()


def _is_truncated(data: bytes) -> bool:
    """Whether a JPEG, PNG or WebP file stops before its end; other formats are left to the decoder."""
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_truncated(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_truncated(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    return False


def _jpeg_truncated(data: bytes) -> bool:
    if data.rstrip(_PADDING).endswith(b"\xff\xd9"):
        return False
    # Phones append data after the end marker (Samsung trailers, extra pictures), so walk the segments
    # to find out whether the end-of-image marker is there at all.
    pos = 2
    while True:
        match = _JPEG_MARKER.search(data, pos)
        if match is None:
            return True
        marker = data[match.start() + 1]
        if marker == 0xD9:
            return False
        pos = match.end()
        if marker in (0x01, 0xD8):  # markers without a length field
            continue
        if pos + 2 > len(data):
            return True
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return False  # not a structure we understand: let the decoder judge
        pos += length


def _png_truncated(data: bytes) -> bool:
    pos = 8
    while pos + 8 <= len(data):
        if data[pos + 4 : pos + 8] == b"IEND":
            return False
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return True


def _bgr(image: np.ndarray) -> np.ndarray:
    """`image` as contiguous 3 channels; some capture backends hand out gray or BGRA frames."""
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


class ImageSource(Source):
    """One image file; decoded when opened, so a bad file fails before any work starts."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "image", length=1)
        self._image: np.ndarray | None = read_image(path)

    def _frames(self) -> Iterator[Frame]:
        image, self._image = self._image, None
        if image is not None:
            yield Frame(image, 0, None, self.name)

    def close(self) -> None:
        self._image = None


class ImageBatchSource(Source):
    """Image files in order; a file that cannot be read is logged, added to `skipped` and passed over."""

    def __init__(self, name: str, paths: list[str], skipped: list[tuple[str, str]] | None = None) -> None:
        super().__init__(name, "images", length=len(paths))
        self.paths = list(paths)
        for path, reason in skipped or ():
            self._skip(path, reason)

    def _skip(self, path: str, reason: str) -> None:
        logger.warning("%s: %s, skipped", path, reason)
        self.skipped.append((path, reason))

    def _frames(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            try:
                image = _load_image(path)
            except _Unreadable as error:
                self._skip(path, str(error))
                continue
            yield Frame(image, index, None, path)
            index += 1


def _open_folder(folder: str) -> ImageBatchSource:
    images, others = _walk(folder)
    if not images:
        for path, reason in others:
            logger.warning("%s: %s, skipped", path, reason)
        raise SourceError(f"{folder}: no images found")
    return ImageBatchSource(folder, _natural_sorted(images), sorted(others, key=lambda item: _natural_key(item[0])))


def _walk(folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Image files under `folder` and (path, reason) for other files; hidden files and folders left out."""
    images: list[str] = []
    others: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()

    def unreadable(error: OSError) -> None:
        if error.filename == folder:
            raise SourceError(f"{folder}: {_os_reason(error)}")
        others.append((error.filename, _os_reason(error)))

    for current, subfolders, files in os.walk(folder, onerror=unreadable, followlinks=True):
        # Linked folders are followed, so a link back up the tree would loop forever.
        stat = os.stat(current)
        if (stat.st_dev, stat.st_ino) in seen:
            subfolders.clear()
            continue
        seen.add((stat.st_dev, stat.st_ino))
        # Sorted, so that of two links to one folder the same one is always walked.
        subfolders[:] = sorted((name for name in subfolders if not name.startswith(".")), key=_natural_key)
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(current, name)
            if is_image_name(name):
                images.append(path)
            else:
                others.append((path, "not an image file"))
    return images, others


def _open_glob(pattern: str) -> ImageBatchSource:
    files = [path for path in glob.glob(pattern, recursive=True) if os.path.isfile(path)]
    images = [path for path in files if is_image_name(path)]
    if not images:
        raise SourceError(f"{pattern}: no images match")
    others = [(path, "not an image file") for path in _natural_sorted(files) if not is_image_name(path)]
    return ImageBatchSource(pattern, _natural_sorted(images), others)


def _natural_key(path: str) -> tuple[tuple[str | int, ...], ...]:
    """Sort key that puts img2 before img10, comparing path components one by one."""
    return tuple(
        tuple(int(chunk) if i % 2 else chunk.casefold() for i, chunk in enumerate(_DIGITS.split(part)))
        for part in Path(path).parts
    )


def _natural_sorted(paths: list[str]) -> list[str]:
    return sorted(paths, key=lambda path: (_natural_key(path), path))


# -------------------------------------------------------------------------------------------- captures


def _open_capture(*args: object) -> cv2.VideoCapture:
    """`cv2.VideoCapture(*args)`, never raising: failure shows as a capture that is not opened."""
    # OpenCV logs its own warnings (e.g. "can't open camera by index") to stderr; we raise a clearer error.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(*args)
    except cv2.error:
        return cv2.VideoCapture()
    finally:
        cv2.utils.logging.setLogLevel(level)


class _CaptureSource(Source):
    """Frames of a `cv2.VideoCapture`; the first one is read when opening so a dead input fails early."""

    _label: str  # names the input in frames and messages

    def _start(self, capture: cv2.VideoCapture, unopened: str, unreadable: str) -> None:
        """Take over `capture` and read its first frame, raising `SourceError` with the message for what failed."""
        self._capture = capture
        self._closed = False
        if not capture.isOpened():
            capture.release()
            raise SourceError(unopened)
        fps = capture.get(cv2.CAP_PROP_FPS)
        # Some streams report their time base (90000) as frame rate.
        self.fps = fps if 0 < fps < 1000 else None
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.length = int(count) if count > 0 and math.isfinite(count) else None
        self._first = self._read(0)
        if self._first is None:
            capture.release()
            raise SourceError(unreadable)

    def _read(self, index: int) -> tuple[np.ndarray, float | None] | None:
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        # Right after read(), the position is that of the frame just decoded.
        return _bgr(image), self._timestamp(index)

    def _timestamp(self, index: int) -> float | None:
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if position > 0:
            return position / 1000
        if index == 0:
            return 0.0
        return index / self.fps if self.fps else None

    def _frames(self) -> Iterator[Frame]:
        index = 0
        current, self._first = self._first, None
        try:
            while current is not None:
                yield Frame(current[0], index, current[1], self._label)
                index += 1
                current = self._read(index)
            # A capture closed by the caller also stops reading, but that is no early end.
            if self.length is not None and index < self.length and not self.is_live and not self._closed:
                logger.warning("%s: %s ended early at frame %d of %d", self._label, self.kind, index, self.length)
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        self._first = None
        self._capture.release()


class VideoSource(_CaptureSource):
    """A video file (or animated GIF), decoded by FFmpeg; timestamps are the frames' own positions."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "video")
        self._label = path
        self._start(
            _open_capture(path),
            f"{path}: cannot open video (unknown format or damaged file)",
            f"{path}: cannot open video (no frame could be decoded)",
        )


class CameraSource(_CaptureSource):
    """A local camera by index; timestamps are seconds since its first frame."""

    is_live = True

    def __init__(self, index: int) -> None:
        super().__init__(str(index), "camera")
        self._label = f"camera {index}"
        self._started: float | None = None
        self._first_position: float | None = None
        self._start(_open_capture(index), f"camera {index}: cannot open", f"camera {index}: cannot read a frame")
        self.length = None

    def _timestamp(self, index: int) -> float | None:
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        now = time.monotonic()
        if index == 0:
            self._started = now
            self._first_position = position if position > 0 else None
        if position > 0 and self._first_position is not None:
            # V4L2 reports the driver's clock (time since boot), not time since the capture started.
            return (position - self._first_position) / 1000
        return now - self._started


class StreamSource(_CaptureSource):
    """A network stream (RTSP, RTMP, HTTP, UDP, TCP) through FFmpeg, with open and read timeouts.

    A stream that ends or breaks just ends; there is no reconnecting.
    """

    is_live = True

    def __init__(self, url: str) -> None:
        super().__init__(url, "stream")
        self._label = _redact(url)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_TIMEOUT_MS]
        self._start(
            _open_capture(url, cv2.CAP_FFMPEG, params),
            f"{self._label}: cannot open stream"
            f" (unreachable, refused, not a video, or no answer in {STREAM_TIMEOUT_MS // 1000} s)",
            f"{self._label}: cannot open stream (no frame could be decoded)",
        )


def _redact(url: str) -> str:
    """`url` without its password, so it can go into logs and output files."""
    return _URL_PASSWORD.sub(r"\1:***@", url)
