"""Writing files so that an interrupted run never leaves half a file behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import FacelensError


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
