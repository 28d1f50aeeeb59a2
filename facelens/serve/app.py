"""The HTTP side: the page, the JSON API, Server-Sent Events, MJPEG views and Prometheus metrics."""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import ipaddress
import json
import re
import sqlite3
import tempfile
import threading
import time
import warnings
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import cv2
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException

from ..analyzer import Analyzer
from ..annotate import annotate
from ..errors import FacelensError, SourceError
from ..sources import read_image
from ..types import Frame, FrameResult
from .hub import Hub
from .metrics import Metrics

STATIC = Path(str(resources.files("facelens.serve") / "static"))
MAX_PIXELS = 100_000_000
"""Largest upload in pixels: a small file can hold a huge picture, and decoding takes 3 bytes a pixel."""
ANALYZE_AT_ONCE = 4
"""Uploads decoded and analyzed at the same time; more wait (bounded memory)."""
SMALL_BODY = 64 * 1024
"""Limit of request bodies other than uploads."""
PAGE_CSP = "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
REPORT_SECONDS = 10.0
"""A report of the database is built again at most this often."""
TOKEN_COOKIE = "facelens_token"


@dataclass(frozen=True)
class ServerOptions:
    """What the HTTP side enforces."""

    token: str | None = None
    """Every request but /healthz must carry it (Authorization: Bearer, the cookie, or ?token= once)."""
    max_upload: int = 20 * 1000 * 1000
    """Largest POST /v1/analyze body in bytes."""
    loopback: bool = True
    """Listening on a loopback address only: then requests must name a loopback host (no DNS rebinding)."""
    cors: tuple[str, ...] = ()
    """Origins allowed to call the API from other pages; none by default."""


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


class _Guard:
    """ASGI middleware: host check, token, body size limits and security headers, before any route
    runs (a refused upload is never read)."""

    def __init__(self, app: Any, options: ServerOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        options = self.options
        if options.loopback and not _loopback_host(headers.get("host", "")):
            await error(421, f"Host {headers.get('host', '')!r}: this server answers only to 127.0.0.1, localhost or [::1]")(scope, receive, send)
            return
        set_cookie = None
        if options.token is not None and path != "/healthz":
            given = _bearer(headers.get("authorization", ""))
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
            cookie = SimpleCookie(headers.get("cookie", "")).get(TOKEN_COOKIE)
            ok = False
            for candidate in (given, query, cookie.value if cookie else None):
                if candidate is not None and hmac.compare_digest(candidate.encode(), options.token.encode()):
                    ok = True
                    if candidate is query:  # a browser opened /?token=...: later requests carry the cookie
                        set_cookie = f"{TOKEN_COOKIE}={options.token}; Path=/; HttpOnly; SameSite=Strict"
                    break
            if not ok:
                why = "a token is required" if (given, query, cookie) == (None, None, None) else "wrong token"
                await error(401, f"{why}: send 'Authorization: Bearer TOKEN', or open /?token=TOKEN in a browser", {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        limit = options.max_upload if path == "/v1/analyze" else SMALL_BODY
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await error(413, _too_large(path, int(length), limit))(scope, receive, send)
            return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(_too_large(path, None, limit))
            return message

        started = False

        async def sending(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if set_cookie:
                    extra.append((b"set-cookie", set_cookie.encode()))
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge as too_large:
            if not started:
                await error(413, str(too_large))(scope, receive, send)


class _TooLarge(Exception):
    pass


def _too_large(path: str, size: int | None, limit: int) -> str:
    what = "upload" if path == "/v1/analyze" else "request body"
    size_text = f"{size:,} bytes" if size is not None else "more"
    option = " (--max-upload)" if path == "/v1/analyze" else ""
    return f"{what} too large: {size_text}, the limit is {limit:,} bytes{option}"


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1 : host.find("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def create_app(hub: Hub, metrics: Metrics, options: ServerOptions) -> FastAPI:
    """The FastAPI application over a running `Hub`."""
    analyzer: Analyzer = hub.analyzer
    images = hub.options.images
    k = hub.options.k
    app = FastAPI(
        title="facelens",
        summary="Faces, people and their age, gender and emotion, live from cameras and streams.",
        version=_version(),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    analyzing = threading.BoundedSemaphore(ANALYZE_AT_ONCE)
    report_cache: dict[str, Any] = {"at": 0.0, "html": None}
    report_lock = threading.Lock()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors())
        return error(422, problems)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict[str, Any]:
        """Liveness: always 200 while the server runs (no token needed)."""
        with hub.lock:
            states = [s.describe()["state"] for s in hub.sources.values()]
        return {"status": "ok", "sources": len(states), "running": states.count("running")}

    @app.get("/metrics", tags=["server"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus text format: facelens_frames_total, _faces_total, _dropped_total, _errors_total,
        _frame_latency_seconds, _people_in_view, _source_up, _source_fps per source; _analyze_seconds."""
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/stats", tags=["live"])
    async def stats() -> dict[str, Any]:
        """Live figures over every source (k-anonymity applied), and each source's counters."""
        with hub.lock:
            sources = [s.describe() for s in hub.sources.values()]
        return {
            "uptime_seconds": round(time.time() - hub.started, 1),
            "images": images,
            "database": None if hub.database is None else {"path": str(hub.database.path), "error": hub.database_error},
            "people": hub.figures(),
            "sources": sources,
        }

    # --- sources ------------------------------------------------------------------------------

    @app.get("/v1/sources", tags=["sources"])
    async def list_sources() -> list[dict[str, Any]]:
        """Every source with its state (opening, running, reconnecting, ended, failed) and counters."""
        with hub.lock:
            return [s.describe() for s in hub.sources.values()]

    @app.post("/v1/sources", tags=["sources"], status_code=201)
    async def add_source(request: Request) -> dict[str, Any]:
        """Add a source: `{"source": "rtsp://..."}`, a camera index, a video or image path. It is
        opened in the background: watch its `state`."""
        if _mime(request) != "application/json":
            raise HTTPException(415, 'send JSON: {"source": "rtsp://camera/stream"} with Content-Type: application/json')
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HTTPException(400, 'body is not JSON: send {"source": "rtsp://camera/stream"}') from None
        spec = body.get("source") if isinstance(body, dict) else None
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = str(spec)
        if not isinstance(spec, str) or not spec.strip():
            raise HTTPException(422, '"source" must be a URL, a camera index or a path, e.g. {"source": "rtsp://camera/stream"}')
        try:
            source = hub.add(spec.strip())
        except FacelensError as exc:
            raise HTTPException(503, str(exc)) from None
        return source.describe()

    @app.delete("/v1/sources/{id}", tags=["sources"])
    async def remove_source(id: int) -> dict[str, Any]:
        """Stop a source (its people in view get their exits) and remove it."""
        source = await anyio.to_thread.run_sync(hub.remove, id)
        if source is None:
            raise HTTPException(404, f"source {id}: no such source")
        return source.describe()

    def _live(id: int):
        with hub.lock:
            source = hub.sources.get(id)
        if source is None:
            raise HTTPException(404, f"source {id}: no such source")
        if not images:
            raise HTTPException(403, "--no-images: this server serves numbers only, no video")
        return source

    @app.get("/v1/sources/{id}/frame.jpg", tags=["sources"], response_class=Response)
    async def frame(id: int) -> Response:
        """The source's latest frame, annotated, as JPEG."""
        source = _live(id)
        got = await asyncio.wrap_future(hub.views.submit(source.jpeg))
        if got is None:
            raise HTTPException(404, f"source {id}: no frame yet")
        return Response(got[1], media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/v1/sources/{id}/video.mjpg", tags=["sources"], response_class=StreamingResponse)
    async def video(id: int) -> StreamingResponse:
        """The source's annotated live view as MJPEG (multipart/x-mixed-replace), at the source's rate."""
        source = _live(id)

        async def parts():
            metrics.viewers.inc()
            try:
                shown = 0
                while not hub.closing.is_set() and hub.sources.get(id) is source:
                    if source.sequence != shown:
                        got = await asyncio.wrap_future(hub.views.submit(source.jpeg))
                        if got is not None:
                            shown = got[0]
                            yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(got[1]), got[1])
                    await asyncio.sleep(source.view_interval())
            finally:
                metrics.viewers.dec()

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame", headers={"Cache-Control": "no-store"})

    # --- events -------------------------------------------------------------------------------

    def _individual(what: str) -> None:
        if k > 1:
            raise HTTPException(403, f"--k {k}: {what} are records of single people, not served under k-anonymity; /v1/stats has the figures")

    @app.get("/v1/events/stream", tags=["live"], response_class=StreamingResponse)
    async def event_stream(request: Request, backlog: int = Query(0, ge=0, le=hub.EVENTS_KEPT)) -> StreamingResponse:
        """Server-Sent Events: every enter/exit as it happens (`event: enter` or `exit`, JSON data,
        the event's id). `backlog` replays that many recent events first; Last-Event-ID resumes."""
        _individual("events")
        resume = request.headers.get("last-event-id")
        last = int(resume) if resume and resume.isdigit() else max(0, hub.event_count - backlog)

        async def messages():
            nonlocal last
            yield b"retry: 2000\n\n"
            quiet = time.monotonic()
            while not hub.closing.is_set():
                for event in hub.events_after(last):
                    last = event["id"]
                    quiet = time.monotonic()
                    yield f"id: {event['id']}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n".encode()
                if time.monotonic() - quiet > 15:
                    quiet = time.monotonic()
                    yield b": keep-alive\n\n"
                await asyncio.sleep(0.2)

        return StreamingResponse(messages(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # --- the database ---------------------------------------------------------------------------

    def _database() -> Path:
        if hub.database is None:
            raise HTTPException(404, "no database: start the server with --db FILE")
        return hub.database.path

    @app.get("/v1/events", tags=["database"])
    def events(
        source: str | None = Query(None, description="Only this source name."),
        since: str | None = Query(None, description="ISO date-time or unix seconds, inclusive."),
        until: str | None = Query(None, description="ISO date-time or unix seconds, exclusive."),
        limit: int = Query(100, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        """Enter/exit events of the database, newest first."""
        _individual("events")
        path = _database()
        where, params = _filters(source, since, until, "wall_time")
        rows = _query(path, f"SELECT id, run_id, source, track_id, kind, timestamp, wall_time FROM events {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [dict(zip(("id", "run_id", "source", "track_id", "kind", "timestamp", "wall_time"), row)) for row in rows]

    @app.get("/v1/people", tags=["database"])
    def people(
        source: str | None = Query(None, description="Only this source name."),
        since: str | None = Query(None, description="First seen from (ISO date-time or unix seconds)."),
        until: str | None = Query(None, description="First seen before (ISO date-time or unix seconds)."),
        limit: int = Query(100, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        """Person records of the database (fused attributes, dwell, attention), latest first seen first.
        `entered_at` is the wall-clock time of the person's enter event."""
        _individual("person records")
        path = _database()
        columns = ("run_id", "source", "track_id", "first_seen", "last_seen", "dwell_seconds", "attention_seconds", "frames", "age", "age_uncertainty", "age_bucket", "minor", "gender", "gender_confidence", "emotion", "emotion_probabilities")
        where, params = _filters(source, since, until, "entered_at", "p.source")
        rows = _query(
            path,
            f"SELECT {', '.join('p.' + c for c in columns)}, coalesce(e.entered, p.updated_at) AS entered_at FROM people p "
            "LEFT JOIN (SELECT run_id, source, track_id, min(wall_time) AS entered FROM events WHERE kind = 'enter' GROUP BY run_id, source, track_id) e "
            "USING (run_id, source, track_id) "
            f"{where} ORDER BY entered_at DESC LIMIT ?",
            (*params, limit),
        )
        records = []
        for row in rows:
            record = dict(zip((*columns, "entered_at"), row))
            record["minor"] = None if record["minor"] is None else bool(record["minor"])
            record["emotion_probabilities"] = None if record["emotion_probabilities"] is None else json.loads(record["emotion_probabilities"])
            records.append(record)
        return records

    @app.get("/report", tags=["database"], response_class=HTMLResponse)
    def report() -> HTMLResponse:
        """The HTML report of the database (as `facelens report --k K`), rebuilt at most every 10 s."""
        from ..report import build_report

        path = _database()
        if not images and _query(path, "SELECT count(*) FROM people WHERE thumbnail_jpeg IS NOT NULL", ())[0][0] and k == 1:
            raise HTTPException(403, "--no-images: the database holds thumbnails, which this server does not serve; use `facelens report --k 2` or more")
        with report_lock:
            if report_cache["html"] is None or time.monotonic() - report_cache["at"] > REPORT_SECONDS:
                with tempfile.TemporaryDirectory(prefix="facelens-report-") as folder:
                    try:
                        made = build_report(path, folder, k=k, title="facelens: live report")
                    except FacelensError as exc:
                        raise HTTPException(500, str(exc)) from None
                    report_cache["html"] = made.html.read_text("utf-8")
                report_cache["at"] = time.monotonic()
            return HTMLResponse(report_cache["html"], headers={"Cache-Control": "no-store"})

    # --- uploads --------------------------------------------------------------------------------

    @app.post("/v1/analyze", tags=["analyze"])
    async def analyze_upload(request: Request, annotated: bool = Query(False, description="Also return the annotated image (a JPEG data URL).")) -> JSONResponse:
        """Faces of an uploaded image: multipart/form-data with a file field `image`, or the image
        itself as the body (Content-Type image/*). The answer is a JSON Lines frame record."""
        started = time.perf_counter()
        try:
            name, data = await _upload(request)
            if annotated and not images:
                raise HTTPException(403, "--no-images: annotated images are not served")
            record = await anyio.to_thread.run_sync(_analyze, name, data, annotated)
        except HTTPException as exc:
            metrics.analyze_requests.labels(str(exc.status_code)).inc()
            raise
        metrics.analyze_requests.labels("200").inc()
        metrics.analyze_latency.observe(time.perf_counter() - started)
        return JSONResponse(record)

    async def _upload(request: Request) -> tuple[str, bytes]:
        mime = _mime(request)
        if mime == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=10)
            except MultiPartException as exc:
                raise HTTPException(400, f"bad multipart upload: {exc.message}") from None
            upload = form.get("image")
            if upload is None:
                upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, 'multipart upload without a file: send the image in a file field named "image"')
            part = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
            name = upload.filename or "image"
            if not (part.startswith("image/") or part == "application/octet-stream"):
                raise HTTPException(415, f"upload {name}: content type {part} is not an image (send image/jpeg, image/png, ...)")
            return name, await upload.read()
        if mime.startswith("image/") or mime == "application/octet-stream":
            return "body", await request.body()
        shown = mime or "none"
        raise HTTPException(415, f"content type {shown}: send an image as multipart/form-data (field \"image\") or as the body with Content-Type image/*")

    def _analyze(name: str, data: bytes, annotated: bool) -> dict[str, Any]:
        if not data:
            raise HTTPException(400, f"upload {name}: empty")
        _check_pixels(name, data)
        with analyzing:
            with tempfile.NamedTemporaryFile(prefix="facelens-upload-") as file:
                file.write(data)
                file.flush()
                try:
                    image = read_image(file.name)
                except SourceError as exc:
                    reason = str(exc).removeprefix(f"{file.name}: ")
                    raise HTTPException(422, f"upload {name}: {reason}") from None
            faces = tuple(analyzer.analyze(image))
        record = FrameResult(Frame(image, 0, None, name), faces).to_dict()
        if annotated:
            ok, jpeg = cv2.imencode(".jpg", annotate(image, faces, blur_faces=hub.options.blur), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                record["annotated_image"] = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
        return record

    app.add_middleware(_Guard, options=options)
    if options.cors:  # outside the guard: a browser's preflight carries no token
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors), allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    return app


def _check_pixels(name: str, data: bytes) -> None:
    """Refuse a picture of more than `MAX_PIXELS` before decoding it (the header tells its size)."""
    from PIL import Image

    limit = f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own decompression-bomb warning: we decide here
            with Image.open(io.BytesIO(data)) as picture:
                width, height = picture.size
    except Image.DecompressionBombError as error:  # far over Pillow's own limit, which is above ours
        pixels = re.search(r"\d+", str(error))
        size = f"{int(pixels.group()) / 1e6:.0f} megapixels" if pixels else "too many pixels"
        raise HTTPException(422, f"upload {name}: {size}, {limit}") from None
    except Exception:  # noqa: BLE001 - not a format Pillow knows: the decoder judges it
        return
    if width * height > MAX_PIXELS:
        raise HTTPException(422, f"upload {name}: {width}x{height} is {width * height / 1e6:.0f} megapixels, {limit}")


def _mime(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _moment(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise HTTPException(422, f"{name} {value!r}: not an ISO date-time (2026-01-12T14:30) or unix seconds") from None


def _filters(source: str | None, since: str | None, until: str | None, column: str, source_column: str = "source") -> tuple[str, tuple[Any, ...]]:
    clauses, params = [], []
    if source is not None:
        clauses.append(f"{source_column} = ?")
        params.append(source)
    if since is not None:
        clauses.append(f"{column} >= ?")
        params.append(_moment(since, "since"))
    if until is not None:
        clauses.append(f"{column} < ?")
        params.append(_moment(until, "until"))
    return ("WHERE " + " AND ".join(clauses) if clauses else "", tuple(params))


def _query(path: Path, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Read the database on a connection of its own, read-only (the writer goes on meanwhile: WAL)."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise HTTPException(500, f"{path}: cannot read database ({exc})") from None


def _version() -> str:
    from .. import __version__

    return __version__


__all__ = ["ServerOptions", "create_app"]
