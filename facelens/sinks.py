"""Last stage: where results go. Each sink writes as it goes, so an interrupted run keeps its output.

A sink takes a `FrameResult` and the annotated picture of that frame (an `annotate.Picture`, drawn
when the sink first calls it; None when no sink of the run needs pictures), and is closed once at the end. Image sinks ignore a source's end result
(`FrameResult.end`), which carries only people.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import sys
import threading
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np

from .annotate import Picture
from .db import Database, event_to_dict, person_to_dict
from .errors import FacelensError
from .files import OUTPUT_MARKER, make_parent, write_atomically
from .types import FrameResult
from .video import SUFFIXES as VIDEO_SUFFIXES
from .video import VideoWriter

__all__ = ["DatabaseSink", "ImageSink", "JsonlSink", "Sink", "VideoSink", "WindowSink", "has_gui", "write_atomically"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class Sink(Protocol):
    needs_picture: bool
    path: str | os.PathLike[str]
    """What the sink writes to, to name it in messages."""

    def write(self, result: FrameResult, picture: Picture | None) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """JSON Lines, written line by line as results come; "-" is stdout.

    Each line has a "type": "frame" (one per frame, see `FrameResult.to_dict`), and while tracking
    "event" (a person entered or left) and "person" (a person's record; a later one of the same
    source and track_id replaces an earlier one), see `facelens.db.event_to_dict` and `person_to_dict`.
    A write that fails (a full disk) is cut back, so the file always ends with a whole line.
    """

    needs_picture = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._size = 0  # bytes of whole lines written
        self._file: IO[bytes] | None = None
        if self.path != "-":
            make_parent(Path(self.path))
            try:
                # Unbuffered: each result goes to the file in one write, nothing waits in a buffer.
                self._file = open(self.path, "wb", buffering=0)
            except OSError as error:
                raise FacelensError(f"{self.path}: cannot write ({error.strerror})") from None

    def write(self, result: FrameResult, picture: Picture | None) -> None:
        records = [] if result.end else [result.to_dict()]
        records += [event_to_dict(event) for event in result.events]
        records += [person_to_dict(person) for person in result.people]
        text = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
        if self._file is None:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except OSError as error:
                raise FacelensError(f"standard output: cannot write ({error.strerror or error})") from None
            return
        encoded = text.encode("utf-8")
        data = memoryview(encoded)
        try:
            while data:
                data = data[self._file.write(data) :]
        except OSError as error:
            try:
                os.ftruncate(self._file.fileno(), self._size)  # drop the part of a line that made it
            except OSError:
                pass  # not a regular file (a pipe, /dev/full): nothing to cut back
            raise FacelensError(f"{self.path}: cannot write ({error.strerror or error})") from None
        self._size += len(encoded)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class VideoSink:
    """Annotated frames into a video file (.mp4, .m4v, .mov, .mkv, .avi; see `facelens.video`), opened
    on the first frame. A stream that changes resolution is scaled to its first size.

    Frames are drawn and encoded on a thread of the sink's own, so the engine goes on meanwhile. Up to
    `QUEUE` frames wait for it: a writer that falls behind holds the caller up rather than dropping
    frames or filling memory. An error of that thread is raised, as a `FacelensError` naming the file,
    by the next `write` or by `close`; `close` writes every frame still waiting and finishes the file.
    """

    needs_picture = True
    QUEUE = 8
    """Frames that may wait for the writer thread (720p: 2.7 MB each)."""

    def __init__(self, path: str | os.PathLike[str], fps: float | None) -> None:
        self.path = Path(path)
        self.check(self.path)
        self.fps = fps if fps and 0 < fps < 1000 else 25.0
        make_parent(self.path)
        self._queue: queue.Queue[Picture | None] = queue.Queue(self.QUEUE)
        self._thread: threading.Thread | None = None
        self._error: FacelensError | None = None
        self._reported = False

    @staticmethod
    def check(path: Path) -> None:
        """Raise if `path` is no video file name facelens can write."""
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise FacelensError(f"{path}: video output must end in one of {', '.join(VIDEO_SUFFIXES)}")

    def write(self, result: FrameResult, picture: Picture | None) -> None:
        self._raise()
        if result.end:
            return
        assert picture is not None
        if self._thread is None:
            self._thread = threading.Thread(target=self._encode, name=f"facelens video {self.path.name}", daemon=True)
            self._thread.start()
        self._queue.put(picture)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    def _encode(self) -> None:
        writer: VideoWriter | None = None
        buffer: np.ndarray | None = None  # one I420 frame, reused: a fresh 1.4 MB each frame costs page faults
        while (picture := self._queue.get()) is not None:
            if self._error is not None:
                continue  # taken and let go, so that nobody waits on a full queue
            try:
                if writer is None:
                    writer = VideoWriter(self.path, self.fps, picture.size)
                if writer.takes_i420 and picture.size == writer.size:
                    # Drawn straight into what the encoder takes: no copy of the frame, no second conversion.
                    width, height = writer.size
                    if buffer is None:
                        buffer = np.empty((height * 3 // 2, width), np.uint8)
                    writer.write_i420(picture.i420(buffer))
                else:
                    writer.write(picture())
            except Exception as error:
                self._error = error if isinstance(error, FacelensError) else FacelensError(f"{self.path}: cannot write video ({error})")
        if writer is not None:
            try:
                writer.close()
            except FacelensError as error:
                self._error = self._error or error


class ImageSink:
    """Annotated images: to `path` for a single image, or into the folder `path` for many.

    In a folder each image keeps its path relative to `root` (the input folder), so images of
    the same name in different subfolders do not overwrite each other.
    """

    needs_picture = True

    def __init__(self, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.root = None if root is None else Path(root)
        if self.root is None:
            self.check(self.path)
        self._marked = False

    @staticmethod
    def check(path: Path) -> None:
        """Raise if `path` is no image file name facelens can write."""
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise FacelensError(f"{path}: image output must end in one of {', '.join(sorted(IMAGE_SUFFIXES))}")

    def target(self, source: str) -> Path:
        if self.root is None:
            return self.path
        try:
            relative = Path(source).resolve().relative_to(self.root.resolve())
        except ValueError:
            relative = Path(Path(source).name)
        return self.path / relative

    def write(self, result: FrameResult, picture: Picture | None) -> None:
        if result.end:
            return
        assert picture is not None
        target = self.target(result.source)
        make_parent(target)
        if self.root is not None and not self._marked:
            marker = self.path / OUTPUT_MARKER
            write_atomically(marker, Path.write_text, "Annotated pictures written by facelens; input folders skip this folder.\n")
            self._marked = True
        suffix = target.suffix.lower() if target.suffix.lower() in IMAGE_SUFFIXES else ".png"
        ok, encoded = cv2.imencode(suffix, picture())
        if not ok:
            raise FacelensError(f"{target}: cannot encode image")
        write_atomically(target, Path.write_bytes, encoded.tobytes())

    def close(self) -> None:
        pass


class DatabaseSink:
    """Events and person records into a run of a `facelens.db.Database`, each committed at once.

    Several sources may share one sink (one run); the run is marked ended when the sink is closed.
    """

    needs_picture = False

    def __init__(self, database: Database, run_id: int) -> None:
        self.database = database
        self.run_id = run_id

    @property
    def path(self) -> Path:
        return self.database.path

    def write(self, result: FrameResult, picture: Picture | None) -> None:
        try:
            for event in result.events:
                self.database.add_event(self.run_id, event)
            for person in result.people:
                self.database.save_person(self.run_id, person)
        except sqlite3.Error as error:  # e.g. "database or disk is full"
            raise FacelensError(f"{self.path}: cannot write ({error})") from None

    def close(self) -> None:
        try:
            self.database.end_run(self.run_id)
        except sqlite3.Error as error:
            logging.getLogger("facelens").warning("%s: cannot mark the run ended (%s)", self.path, error)
        finally:
            self.database.close()


class WindowSink:
    """A live window; needs an OpenCV built with a GUI (not opencv-python-headless)."""

    needs_picture = True

    def __init__(self, title: str = "facelens") -> None:
        self.title = title
        self.path = f"window {title}"
        self.check()
        self.closed_by_user = False

    @staticmethod
    def check() -> None:
        """Raise if this OpenCV cannot open windows."""
        if not has_gui():
            raise FacelensError(
                "--show needs OpenCV with a GUI, and the installed one is headless: "
                "`pip install opencv-python` (replacing opencv-python-headless) to get a window, or write --output instead"
            )

    def write(self, result: FrameResult, picture: Picture | None) -> None:
        if result.end:
            return
        assert picture is not None
        cv2.imshow(self.title, picture())
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            self.closed_by_user = True

    def close(self) -> None:
        cv2.destroyAllWindows()


def has_gui() -> bool:
    """Whether the installed OpenCV can open windows."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "")
    return False
