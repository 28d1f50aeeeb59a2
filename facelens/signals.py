"""The signals that stop a run: SIGINT (Ctrl-C), SIGTERM (systemd, docker, kill) and SIGHUP (the
terminal closed), shared by the CLI and the web server."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Union

Handler = Callable[[int, Union[FrameType, None]], object]


@contextmanager
def stop_signals(handler: Handler) -> Iterator[None]:
    """Send the stop signals to `handler` inside the block; outside the main thread, do nothing.

    A SIGHUP that is ignored on entry stays ignored: `nohup` asks for exactly that. The stop signals
    are unblocked inside the block, because a parent may hand down a mask that blocks them (some
    supervisors and CI runners do), and a blocked stop signal would wait for the run's natural end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        wanted.append(signal.SIGHUP)
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, wanted) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for signum, before in previous.items():
            signal.signal(signum, before)
