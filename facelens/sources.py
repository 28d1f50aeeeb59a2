"""Inputs: a photo, a folder or glob of photos, a video file, a camera or a stream, each an iterator of `Frame`s.

`open_source` decides what a spec names and opens it, failing fast with `SourceError` when it cannot be
read at all. Inside a batch of images a bad file is logged, recorded in `Source.skipped` and passed over.
A camera or stream that breaks later is reconnected as `Reconnect` says; its gaps are recorded in
`Source.gaps` and in the `Frame.note` of the first frame after, and when it does not come back, iteration
ends with `Source.error` set.
"""

from __future__ import annotations

import abc
import glob
import itertools
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import SourceError
from .files import OUTPUT_MARKER
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
"""How long a stream may take to open before the attempt counts as failed."""

STREAM_READ_TIMEOUT_MS = 10_000
"""How long a stream may take to deliver the next frame before it counts as lost. Not shorter, as a camera
may send a key frame, the first one that can be decoded, only every few seconds."""

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
    gaps: list[tuple[float, float, str]]
    """(timestamp of the last frame before, seconds without frames, reason) for every outage of a camera
    or stream that it came back from."""
    error: str | None
    """Why iteration ended before the input did (a stream that did not come back), else None."""

    def __init__(self, name: str, kind: str, *, length: int | None = None, fps: float | None = None) -> None:
        self.name = name
        self.kind = kind
        self.length = length
        self.fps = fps
        self.skipped = []
        self.gaps = []
        self.error = None
        self._iterated = False

    def __iter__(self) -> Iterator[Frame]:
        # Captures cannot rewind and batches record what they skip, so a second pass would be wrong.
        if self._iterated:
            raise RuntimeError(f"{self.name}: a source can be iterated only once")
        self._iterated = True
        return self._frames()

    @abc.abstractmethod
    def _frames(self) -> Iterator[Frame]: ...

    @property
    def files(self) -> list[str]:
        """The input files this source reads (none for cameras and streams)."""
        return []

    def close(self) -> None:
        """Release the file, device or connection; safe to call more than once."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, length={self.length}, fps={self.fps})"


@dataclass(frozen=True)
class Reconnect:
    """How a camera or stream that breaks after it has worked is brought back.

    After a lost connection or a read that fails or times out, the input is opened again at once, then
    after `first_delay` seconds, then after twice as long each time up to `max_delay`, until a frame comes
    or `retry_for` seconds of this outage have passed. The first opening is retried the same way (a
    camera still booting, a server not up yet). `Reconnect(retry_for=0)` never retries.
    """

    retry_for: float = 30.0
    """Seconds to keep trying per outage before giving up."""
    first_delay: float = 0.5
    """Seconds between the first failed attempt and the next."""
    max_delay: float = 8.0
    """Longest wait between two attempts."""

    def __post_init__(self) -> None:
        if not self.retry_for >= 0:
            raise ValueError(f"retry_for must be 0 or more, not {self.retry_for}")
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError(f"need 0 < first_delay <= max_delay, not {self.first_delay} and {self.max_delay}")


def open_source(
    spec: str | int | os.PathLike[str],
    *,
    reconnect: Reconnect | None = None,
    oak_mode: str | None = None,
    oak_models: str | os.PathLike[str] | None = None,
) -> Source:
    """Open what `spec` names: a camera index (int or digits), a stream URL, a folder (searched
    recursively), a glob pattern, an image file or a video file.

    A camera or stream is opened, and opened again when it breaks, as `reconnect` says (by default
    `Reconnect()`: for up to 30 s per outage). Raises `SourceError` when `spec` does not exist or cannot
    be read at all (for a camera or stream: not within `reconnect.retry_for`).

    "oak" or "oak:<device id or IP>" opens a Luxonis OAK camera (`facelens.oak`, needs depthai), in
    `oak_mode` "device" (faces and age-gender found on the camera; the default) or "camera", with the
    device's models from the folder `oak_models` (or `$FACELENS_OAK_MODELS`, else the Luxonis zoo).
    """
    reconnect = Reconnect() if reconnect is None else reconnect
    if isinstance(spec, int):
        return CameraSource(spec, reconnect=reconnect)
    name = os.fsdecode(spec)
    if isinstance(spec, str):
        if name.isascii() and name.isdigit():
            return CameraSource(int(name), reconnect=reconnect)
        if name.lower().startswith(STREAM_SCHEMES):
            return StreamSource(name, reconnect=reconnect)
        if (name == "oak" or name.startswith(("oak:", "oak?"))) and not os.path.exists(name):
            from .oak.source import OakSource  # depthai is optional

            models = oak_models or os.environ.get("FACELENS_OAK_MODELS") or None
            return OakSource(name, mode=oak_mode, models=None if models is None else Path(models))
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

    @property
    def files(self) -> list[str]:
        return [self.name]

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

    @property
    def files(self) -> list[str]:
        return self.paths + [path for path, _ in self.skipped]

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
        if current != folder and os.path.exists(os.path.join(current, OUTPUT_MARKER)):
            subfolders.clear()  # facelens' own annotated pictures of an earlier run
            continue
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
    files = [path for path in glob.glob(pattern, recursive=True) if os.path.isfile(path) and not _in_output_folder(path, pattern)]
    images = [path for path in files if is_image_name(path)]
    if not images:
        raise SourceError(f"{pattern}: no images match")
    others = [(path, "not an image file") for path in _natural_sorted(files) if not is_image_name(path)]
    return ImageBatchSource(pattern, _natural_sorted(images), others)


def _in_output_folder(path: str, pattern: str) -> bool:
    """Whether `path` lies in a folder of facelens' annotated pictures below the fixed start of `pattern`."""
    fixed = Path(*[part for part in itertools.takewhile(lambda part: not glob.has_magic(part), Path(pattern).parts)] or ["."])
    folder = Path(path).parent
    while folder != fixed and folder != folder.parent and folder.parts:
        if (folder / OUTPUT_MARKER).exists():
            return True
        folder = folder.parent
    return False


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


def _size_note(previous: tuple[int, ...] | None, image: np.ndarray) -> str | None:
    """The note for a frame whose size differs from that of the frame before it."""
    if previous is None or previous == image.shape:
        return None
    return f"resolution changed from {previous[1]}x{previous[0]} to {image.shape[1]}x{image.shape[0]}"


class _CaptureSource(Source):
    """Frames of a `cv2.VideoCapture`; the first one is read when opening so a dead input fails early."""

    _label: str  # names the input in frames and messages
    _capture: cv2.VideoCapture

    def _start(self, capture: cv2.VideoCapture, unopened: str, unreadable: str) -> None:
        """Take over `capture` and read its first frame, raising `SourceError` with the message for what failed."""
        self._capture = capture
        self._closed = False
        # OpenCV crashes or deadlocks when a capture is released while another thread reads it, so
        # reading and releasing take turns: close() from another thread waits for the read in progress.
        self._io = threading.Lock()
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
        with self._io:
            if self._closed:
                return None
            ok, image = self._capture.read()
            if not ok or image is None:
                return None
            # Right after read(), the position is that of the frame just decoded.
            timestamp = self._timestamp(index)
        return _bgr(image), timestamp

    def _timestamp(self, index: int) -> float | None:
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if position > 0:
            return position / 1000
        if index == 0:
            return 0.0
        return index / self.fps if self.fps else None

    def _frames(self) -> Iterator[Frame]:
        index = 0
        shape: tuple[int, ...] | None = None
        current, self._first = self._first, None
        try:
            while current is not None:
                image, timestamp = current
                yield Frame(image, index, timestamp, self._label, _size_note(shape, image))
                shape = image.shape
                index += 1
                current = self._read(index)
            # A capture closed by the caller also stops reading, but that is no early end.
            if self.length is not None and index < self.length and not self.is_live and not self._closed:
                logger.warning("%s: %s ended early at frame %d of %d", self._label, self.kind, index, self.length)
        finally:
            self.close()

    def close(self) -> None:
        """Release the capture; safe from any thread (it waits for a read in progress)."""
        self._closed = True
        self._first = None
        with self._io:
            self._capture.release()


class VideoSource(_CaptureSource):
    """A video file (or animated GIF), decoded by FFmpeg; timestamps are the frames' own positions."""

    @property
    def files(self) -> list[str]:
        return [self.name]

    def __init__(self, path: str) -> None:
        super().__init__(path, "video")
        self._label = path
        self._start(
            _open_capture(path),
            f"{path}: cannot open video (unknown format or damaged file)",
            f"{path}: cannot open video (no frame could be decoded)",
        )


_END = object()  # what the reader thread of a live source hands over after its last frame


class _LiveSource(_CaptureSource):
    """A camera or stream, read by a thread of its own that reconnects when the input breaks.

    The thread owns the capture: OpenCV crashes when a capture is released while another thread reads it,
    and a read may block for the whole read timeout. So `close()`, from any thread, only tells the reader
    to stop and returns; iteration ends at once and the reader releases the capture when its read returns.

    Timestamps are seconds since the first frame, by the capture's own clock where it has one, and stay
    continuous across reconnections: the first frame of a new connection comes the measured gap after
    the last frame of the old one.
    """

    is_live = True
    _zero_is_a_position = False
    """Whether a position of 0 is real (streams count from 0) or means the backend has none (cameras)."""
    _failed_read = "read failed"
    """The reason of an outage that began with a read failing before its timeout."""

    def __init__(self, name: str, kind: str, label: str, reconnect: Reconnect) -> None:
        super().__init__(name, kind)
        self._label = label
        self.reconnect = reconnect
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._handover: queue.Queue[object] = queue.Queue(maxsize=1)
        self._offset = 0.0  # added to positions in the current connection
        self._connection_frames = 0
        self._connection_base: float | None = None  # position (ms) of its first frame; None: time by the clock
        self._connection_started = 0.0
        self._last: tuple[float, float] = (0.0, 0.0)  # timestamp and time.monotonic() of the last frame

    def _open(self, open_timeout_ms: int) -> cv2.VideoCapture:
        """A new capture of the input, opened or not."""
        raise NotImplementedError

    def _timestamp(self, index: int) -> float:
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        now = time.monotonic()
        if self._connection_frames == 0:
            self._connection_started = now
            if position > 0:
                self._connection_base = position
            else:
                self._connection_base = 0.0 if self._zero_is_a_position else None
            if index > 0:  # a new connection starts where the gap ends
                self._offset = self._last[0] + (now - self._last[1])
        if self._connection_base is not None and position > 0:
            seconds = (position - self._connection_base) / 1000
        elif self._connection_base is not None and self.fps:
            seconds = self._connection_frames / self.fps
        else:
            seconds = now - self._connection_started
        timestamp = self._offset + seconds
        if timestamp < self._last[0]:  # the clock went back (a server restarting its file): keep going on
            self._offset = self._last[0] + (now - self._last[1]) - seconds
            timestamp = self._offset + seconds
        self._connection_frames += 1
        self._last = (timestamp, now)
        return timestamp

    def _connect(self, unopened: str, unreadable: str) -> None:
        """Open the input and read its first frame, retrying as `reconnect` says; raises the last
        `SourceError` when the budget is spent."""
        policy = self.reconnect
        failed: SourceError | None = None
        tries = 0
        for remaining in _attempts(policy, self._stop):
            tries += 1
            try:
                self._start(self._open(_open_timeout_ms(remaining)), unopened, unreadable)
                return
            except SourceError as error:
                if failed is None and policy.retry_for > 0:
                    logger.warning("%s; retrying for up to %g s", error, policy.retry_for)
                failed = error
        assert failed is not None
        if tries > 1:
            raise SourceError(f"{failed}; gave up after {policy.retry_for:g} s") from None
        raise failed

    # The consumer's side.

    def _frames(self) -> Iterator[Frame]:
        with self._lock:
            if self._closed:
                return
            self._reader = threading.Thread(target=self._run, name=f"facelens reader {self._label}", daemon=True)
            self._reader.start()
        try:
            while not self._stop.is_set():
                try:
                    item = self._handover.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Frame)
                yield item
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            first = not self._stop.is_set()
            self._closed = True
            self._stop.set()
            self._first = None
            reader = self._reader
            if reader is None:
                self._capture.release()  # no reader was started, so nothing else uses it
        if first and reader is not None and reader is not threading.current_thread():
            # Usually quick; a read that blocks is left to finish (the reader releases the capture then).
            reader.join(1.0)

    # The reader thread's side.

    def _hand_over(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            index = 0
            shape: tuple[int, ...] | None = None
            notes: list[str] = []
            current, self._first = self._first, None
            while current is not None and not self._stop.is_set():
                image, timestamp = current
                size_note = _size_note(shape, image)
                shape = image.shape
                if size_note is not None:
                    notes.append(size_note)
                frame = Frame(image, index, timestamp, self._label, "; ".join(notes) or None)
                if not self._hand_over(frame):
                    return
                index += 1
                notes = []
                started = time.monotonic()
                current = self._read(index)
                if current is None and not self._stop.is_set() and self.length is None:
                    # A recording served over the network (it has a length) ends when it ends.
                    if time.monotonic() - started >= self._read_timeout() * 0.9:
                        reason = f"no frame for {self._read_timeout():g} s"
                    else:
                        reason = self._failed_read
                    current, note = self._recover(reason, index)
                    if note is not None:
                        notes = [note]
            self._hand_over(_END)
        except BaseException as error:  # handed to the consumer, who raises it
            self._hand_over(error)
        finally:
            self._capture.release()

    def _read_timeout(self) -> float:
        """Seconds after which a read gives up, if the capture has a read timeout."""
        return math.inf

    def _recover(self, reason: str, index: int) -> tuple[tuple[np.ndarray, float] | None, str | None]:
        """Open the input again until a frame comes, the budget of `reconnect` is spent or the source is closed.

        Returns the first frame of the new connection and its note, or (None, None) when closed or after
        setting `error`.
        """
        lost_at = self._last
        self._capture.release()
        policy = self.reconnect
        if policy.retry_for <= 0:
            self.error = f"{self._label}: {self.kind} lost ({reason}), reconnecting is off"
            logger.warning("%s", self.error)
            return None, None
        logger.warning("%s: %s lost (%s), reconnecting", self._label, self.kind, reason)
        for remaining in _attempts(policy, self._stop):
            capture = self._open(_open_timeout_ms(remaining))
            if self._stop.is_set():
                capture.release()
                return None, None
            if capture.isOpened():
                self._capture = capture
                self._connection_frames = 0
                first = self._read(index)
                if first is not None:
                    gap = time.monotonic() - lost_at[1]
                    note = f"reconnected after {gap:.1f} s gap ({reason})"
                    self.gaps.append((lost_at[0], gap, reason))
                    logger.warning("%s: %s", self._label, note)
                    return first, note
            capture.release()
        if self._stop.is_set():
            return None, None
        self.error = f"{self._label}: {self.kind} lost and not back after {policy.retry_for:g} s, giving up"
        logger.warning("%s", self.error)
        return None, None


def _attempts(policy: Reconnect, stop: threading.Event) -> Iterator[float]:
    """The seconds left of `policy`'s budget at each attempt to open an input: the first at once,
    each next one after a backoff doubling up to `max_delay`; over when the budget is spent or
    `stop` is set (stopping the wait at once)."""
    deadline = time.monotonic() + policy.retry_for
    delay = policy.first_delay
    while True:
        yield deadline - time.monotonic()
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stop.wait(min(delay, remaining)):
            return
        delay = min(delay * 2, policy.max_delay)


def _open_timeout_ms(remaining: float) -> int:
    """How long one attempt may take to open, in ms: within what is left of the budget, 1 s at least."""
    return STREAM_TIMEOUT_MS if remaining <= 0 else min(STREAM_TIMEOUT_MS, max(1000, int(remaining * 1000)))


class CameraSource(_LiveSource):
    """A local camera by index; timestamps are seconds since its first frame. Reconnects as `Reconnect` says."""

    def __init__(self, index: int, *, reconnect: Reconnect = Reconnect()) -> None:
        super().__init__(str(index), "camera", f"camera {index}", reconnect)
        self._index = index
        self._connect(f"camera {index}: cannot open", f"camera {index}: cannot read a frame")
        self.length = None

    def _open(self, open_timeout_ms: int) -> cv2.VideoCapture:
        return _open_capture(self._index)


class StreamSource(_LiveSource):
    """A network stream (RTSP, RTMP, HTTP, UDP, TCP) through FFmpeg, with open and read timeouts.

    A stream that breaks after it has worked is opened again as `reconnect` says, and gives up with
    `error` set when it does not come back. A stream that reports a length (a recording served over the
    network) just ends.
    """

    _zero_is_a_position = True
    _failed_read = "connection lost"

    def __init__(self, url: str, *, reconnect: Reconnect = Reconnect()) -> None:
        super().__init__(url, "stream", _redact(url), reconnect)
        self._connect(
            f"{self._label}: cannot open stream"
            f" (unreachable, refused, not a video, or no answer in {STREAM_TIMEOUT_MS // 1000} s)",
            f"{self._label}: cannot open stream (no frame could be decoded)",
        )

    def _open(self, open_timeout_ms: int) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            STREAM_READ_TIMEOUT_MS,
        ]
        return _open_capture(self.name, cv2.CAP_FFMPEG, params)

    def _read_timeout(self) -> float:
        return STREAM_READ_TIMEOUT_MS / 1000


def _redact(url: str) -> str:
    """`url` without its password, so it can go into logs and output files."""
    return _URL_PASSWORD.sub(r"\1:***@", url)
