"""`facelens serve`: a live page and an HTTP API over the same engine as `facelens analyze`.

FastAPI under uvicorn, in one process: `Hub` runs the sources (added and removed at run time),
`create_app` serves the page, the JSON API, events and metrics over it, and `serve` puts them on
a socket. Needs the `serve` extra: `pip install "facelens[serve]"`.
"""

from .app import ServerOptions, create_app
from .hub import Hub, HubOptions, LiveSource
from .server import is_loopback, serve

__all__ = ["Hub", "HubOptions", "LiveSource", "ServerOptions", "create_app", "is_loopback", "serve"]
