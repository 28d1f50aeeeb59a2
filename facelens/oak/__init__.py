"""Luxonis OAK cameras as a facelens source (depthai v3), in two modes.

- device: the camera runs face-detection-retail-0004, crops each face on board (edge-safe) and runs
  age-gender-recognition-retail-0013 on it; the host joins frames, detections and recognitions by
  sequence number (`facelens.oak.join`) and hands frames with their faces (`Frame.found`) to the
  engine, which tracks and fuses people as for any source.
- camera: the OAK is only a camera; the host runs facelens' own networks on its frames.

depthai is optional (`pip install "facelens[oak]"`); `require` imports it with telemetry off unless
the user set DEPTHAI_TELEMETRY.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import SourceError

INSTALL = 'OAK cameras need depthai: pip install "facelens[oak]"'


def require() -> Any:
    """The depthai module, or `SourceError` saying how to install it."""
    os.environ.setdefault("DEPTHAI_TELEMETRY", "0")
    os.environ.setdefault("DEPTHAI_DISABLE_STARTUP_NOTIFICATIONS", "1")  # no call home at start either
    # depthai prints a warning line per import when USB is not reachable (containers); its own level wins.
    os.environ.setdefault("DEPTHAI_LEVEL", "error")
    try:
        import depthai
    except ImportError:
        raise SourceError(INSTALL) from None
    return depthai
