"""Writing files so that an interrupted run never leaves half a file behind."""

from __future__ import annotations

import os
from collections.abc import Callable
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
