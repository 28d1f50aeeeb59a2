"""What a batch works on: its inputs expanded into units (one video, or the photos of one folder)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import FacelensError
from ..sources import IMAGE_EXTENSIONS, is_image_name

VIDEO_EXTENSIONS: frozenset[str] = frozenset([".mp4", ".m4v", ".mov", ".mkv", ".avi", ".gif", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"])
"""File endings a folder is searched for as videos (a file named on its own is a video whatever its name)."""

LIST_EXTENSIONS: frozenset[str] = frozenset({".txt", ".lst"})
"""An input ending so is a list of paths, one a line (blank lines and `#` comments ignored)."""

EDGE = 1 << 20
"""Bytes hashed at each end of a file for its fingerprint."""


@dataclass(frozen=True)
class Unit:
    """One piece of batch work, written to its own JSON Lines file and recorded in the manifest."""

    key: str
    """The absolute path of the video, or of the folder holding the photos."""
    kind: str
    """"video" or "photos"."""
    files: tuple[str, ...]
    """The video, or the photos (sorted)."""

    @property
    def output(self) -> str:
        """The unit's JSON Lines file name in the batch folder: readable, and unique per key."""
        name = re.sub(r"[^\w.-]+", "_", Path(self.key).name).strip("_") or "root"
        return f"{name}-{hashlib.blake2b(self.key.encode(), digest_size=4).hexdigest()}.jsonl"

    def fingerprint(self) -> str:
        """Size, mtime and a hash of the first and last MiB of every file: changes when a file does,
        without reading whole videos. Raises `FacelensError` for a file that cannot be read."""
        digest = hashlib.blake2b(digest_size=16)
        for path in self.files:
            try:
                with open(path, "rb") as file:
                    stat = os.fstat(file.fileno())
                    digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
                    digest.update(file.read(EDGE))
                    if stat.st_size > 2 * EDGE:
                        file.seek(-EDGE, os.SEEK_END)
                        digest.update(file.read(EDGE))
                    elif stat.st_size > EDGE:
                        digest.update(file.read())
            except OSError as error:
                raise FacelensError(f"{path}: cannot read ({error.strerror or error})") from None
        return digest.hexdigest()


def expand(inputs: list[str]) -> tuple[list[Unit], list[tuple[str, str]]]:
    """Units of `inputs` (folders, globs, lists of paths, videos, photos) and (input, reason) for
    those that name nothing. Photos are grouped by the folder they are in; each video is a unit."""
    videos: dict[str, None] = {}
    photos: dict[str, dict[str, None]] = {}
    missing: list[tuple[str, str]] = []

    def add_file(path: str) -> None:
        path = os.path.abspath(path)
        if is_image_name(path):
            photos.setdefault(os.path.dirname(path), {})[path] = None
        else:
            videos[path] = None

    def add(spec: str, listed_in: str | None = None) -> None:
        if os.path.isdir(spec):
            found = False
            for root, dirs, names in os.walk(spec):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    suffix = os.path.splitext(name)[1].lower()
                    if not name.startswith(".") and (suffix in IMAGE_EXTENSIONS or suffix in VIDEO_EXTENSIONS):
                        add_file(os.path.join(root, name))
                        found = True
            if not found:
                missing.append((spec, "no photos or videos in this folder"))
        elif os.path.isfile(spec) and os.path.splitext(spec)[1].lower() in LIST_EXTENSIONS and listed_in is None:
            try:
                lines = Path(spec).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                missing.append((spec, f"cannot read the list ({getattr(error, 'strerror', None) or error})"))
                return
            base = os.path.dirname(os.path.abspath(spec))
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    add(os.path.join(base, line), spec)  # relative paths are relative to the list
        elif os.path.exists(spec):
            add_file(spec)
        elif glob.has_magic(spec):
            matched = sorted(glob.glob(spec, recursive=True))
            if not matched:
                missing.append((spec, "the pattern matches nothing"))
            for path in matched:
                if os.path.isfile(path):
                    add_file(path)
        else:
            missing.append((spec, "no such file or directory" + (f" (listed in {listed_in})" if listed_in else "")))

    for spec in inputs:
        add(spec)
    units = [Unit(path, "video", (path,)) for path in videos]
    units += [Unit(folder, "photos", tuple(sorted(files))) for folder, files in photos.items()]
    return units, missing
