"""Writing files so that an interrupted run never leaves half a file behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import FacelensError

OUTPUT_MARKER = ".facelens-output"
"""Left in every folder facelens writes annotated images into: when that folder lies inside an input
folder, a later run does not take facelens' own pictures for input."""


def refuse_overwriting_inputs(inputs: Sequence[str], outputs: Sequence[tuple[str, str]]) -> None:
    """Raise if any output file (option, path) is one of the input files: the same path, a hard link
    or a symbolic link to it. Called before anything is opened, so the refusal costs nothing."""
    taken: dict[tuple[int, int], str] = {}
    for path in inputs:
        try:
            stat = os.stat(path)
        except OSError:
            continue
        taken.setdefault((stat.st_dev, stat.st_ino), path)
    for option, path in outputs:
        try:
            stat = os.stat(path)
        except OSError:
            continue  # not there yet, so it cannot be an input
        if (found := taken.get((stat.st_dev, stat.st_ino))) is not None:
            same = "is" if os.path.abspath(found) == os.path.abspath(path) else "would overwrite"
            raise FacelensError(f"{option} {path}: {same} the input {found}; write the output elsewhere")


def write_atomically(target: Path, write: Callable[..., None], *args: Any) -> None:
    """`write(tmp, *args)` next to `target`, then rename: a reader never sees half a file."""
    tmp = target.with_name(f".{target.name}.part")
    try:
        write(tmp, *args)
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise FacelensError(f"{target}: cannot write ({error.strerror or error})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FacelensError(f"{path.parent}: cannot create folder ({error.strerror})") from None


def write_pngs(folder: Path, names: Sequence[str], pngs: Mapping[str, bytes]) -> list[Path]:
    """`folder/<name>.png` for each of `names` that `pngs` has; the files of the others are removed,
    so a picture of an earlier run into the same folder never passes for one of this run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FacelensError(f"{folder}: cannot create folder ({error.strerror or error})") from None
    written = []
    for name in names:
        target = folder / f"{name}.png"
        if name in pngs:
            write_atomically(target, Path.write_bytes, pngs[name])
            written.append(target)
        else:
            target.unlink(missing_ok=True)
    return written
