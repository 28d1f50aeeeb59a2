"""Last stage: where results go. Each sink writes as it goes, so an interrupted run keeps its output.

A sink takes a `FrameResult` and the annotated picture of that frame (None when no sink of the run
needs pictures), and is closed once at the end. Image sinks ignore a source's end result
(`FrameResult.end`), which carries only people.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np

from .db import Database, event_to_dict, person_to_dict
from .errors import FacelensError
from .files import make_parent, write_atomically
from .types import FrameResult

__all__ = ["DatabaseSink", "ImageSink", "JsonlSink", "Sink", "VideoSink", "WindowSink", "has_gui", "write_atomically"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class Sink(Protocol):
    needs_picture: bool

    def write(self, result: FrameResult, picture: np.ndarray | None) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """JSON Lines, flushed line by line; "-" is stdout.

    Each line has a "type": "frame" (one per frame, see `FrameResult.to_dict`), and while tracking
    "event" (a person entered or left) and "person" (a person's record; a later one of the same
    source and track_id replaces an earlier one), see `facelens.db.event_to_dict` and `person_to_dict`.
    """

    needs_picture = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if self.path == "-":
            self._file: IO[str] = sys.stdout
        else:
            make_parent(Path(self.path))
            try:
                self._file = open(self.path, "w", encoding="utf-8")
            except OSError as error:
                raise FacelensError(f"{self.path}: cannot write ({error.strerror})") from None

    def write(self, result: FrameResult, picture: np.ndarray | None) -> None:
        records = [] if result.end else [result.to_dict()]
        records += [event_to_dict(event) for event in result.events]
        records += [person_to_dict(person) for person in result.people]
        self._file.write("".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records))
        self._file.flush()

    def close(self) -> None:
        if self._file is not sys.stdout:
            self._file.close()


class VideoSink:
    """Annotated frames into a video file (.mp4, .avi, .mkv, .mov); opened on the first frame."""

    needs_picture = True

    def __init__(self, path: str | os.PathLike[str], fps: float | None) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FOURCC:
            raise FacelensError(f"{self.path}: video output must end in one of {', '.join(_FOURCC)}")
        self.fourcc = _FOURCC[suffix]
        self.fps = fps if fps and 0 < fps < 1000 else 25.0
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        make_parent(self.path)

    def write(self, result: FrameResult, picture: np.ndarray | None) -> None:
        if result.end:
            return
        assert picture is not None
        if self._writer is None:
            self.size = (picture.shape[1], picture.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
            if not self._writer.isOpened():
                raise FacelensError(f"{self.path}: cannot open for writing video")
        if (picture.shape[1], picture.shape[0]) != self.size:
            # A stream may change resolution; the file keeps its first size.
            picture = cv2.resize(picture, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(picture)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class ImageSink:
    """Annotated images: to `path` for a single image, or into the folder `path` for many.

    In a folder each image keeps its path relative to `root` (the input folder), so images of
    the same name in different subfolders do not overwrite each other.
    """

    needs_picture = True

    def __init__(self, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.root = None if root is None else Path(root)
        if self.root is None and self.path.suffix.lower() not in IMAGE_SUFFIXES:
            raise FacelensError(f"{self.path}: image output must end in one of {', '.join(sorted(IMAGE_SUFFIXES))}")

    def target(self, source: str) -> Path:
        if self.root is None:
            return self.path
        try:
            relative = Path(source).resolve().relative_to(self.root.resolve())
        except ValueError:
            relative = Path(Path(source).name)
        return self.path / relative

    def write(self, result: FrameResult, picture: np.ndarray | None) -> None:
        if result.end:
            return
        assert picture is not None
        target = self.target(result.source)
        make_parent(target)
        suffix = target.suffix.lower() if target.suffix.lower() in IMAGE_SUFFIXES else ".png"
        ok, encoded = cv2.imencode(suffix, picture)
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

    def write(self, result: FrameResult, picture: np.ndarray | None) -> None:
        for event in result.events:
            self.database.add_event(self.run_id, event)
        for person in result.people:
            self.database.save_person(self.run_id, person)

    def close(self) -> None:
        self.database.end_run(self.run_id)
        self.database.close()


class WindowSink:
    """A live window; needs an OpenCV built with a GUI (not opencv-python-headless)."""

    needs_picture = True

    def __init__(self, title: str = "facelens") -> None:
        self.title = title
        if not has_gui():
            raise FacelensError(
                "--show needs OpenCV with a GUI, and the installed one is headless: "
                "`pip install opencv-python` (replacing opencv-python-headless) to get a window, or write --output instead"
            )
        self.closed_by_user = False

    def write(self, result: FrameResult, picture: np.ndarray | None) -> None:
        if result.end:
            return
        assert picture is not None
        cv2.imshow(self.title, picture)
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
