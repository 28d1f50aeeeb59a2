"""Put the application on a socket and run it until a stop signal, then stop the sources cleanly."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from ..analyzer import Analyzer
from ..db import Database
from ..errors import FacelensError
from ..signals import stop_signals
from .app import ServerOptions, create_app
from .hub import Hub, HubOptions
from .metrics import Metrics

log = logging.getLogger("facelens")


def is_loopback(host: str) -> bool:
    """Whether `host` is an address of this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn, telling the hub at the first stop signal (so live views and event streams end instead
    of holding the shutdown up), and keeping the signal for the exit status instead of raising it
    again, so that the sources still record their exits and end their runs afterwards."""

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub
        self.signum = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with stop_signals(self.handle_exit):
            yield

    def handle_exit(self, sig: int, frame: object) -> None:
        self.signum = self.signum or sig
        self.hub.closing.set()
        super().handle_exit(sig, frame)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port` (0: any free port); FacelensError naming them if not."""
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        sock = socket.create_server((host.strip("[]"), port), family=family, reuse_port=False)
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise FacelensError(f"--host {host} --port {port}: cannot listen ({reason})") from None
    sock.set_inheritable(True)
    return sock


def serve(
    sources: Sequence[str],
    analyzer: Analyzer,
    database: Database | None,
    options: HubOptions,
    server: ServerOptions,
    sock: socket.socket,
    ready: Callable[[str], None] = lambda url: None,
) -> int:
    """Run `sources` and serve them on `sock` until SIGINT, SIGTERM or SIGHUP; then every source
    records the exits of its people in view and ends its database run. `ready` gets the page's URL.
    Returns the number of the signal that stopped it."""
    metrics = Metrics()
    hub = Hub(analyzer, database, options, metrics)
    metrics.hub = hub
    try:
        for spec in sources:
            hub.add(spec)
        app = create_app(hub, metrics, server)
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off")
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        ready(f"http://{shown}:{port}/")
        running = _Server(config, hub)
        running.run(sockets=[sock])
        return running.signum
    finally:
        hub.close()
