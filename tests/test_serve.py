"""`facelens serve` for real: the command on a random loopback port, driven with httpx over the
network; live sources from loopback MJPEG servers; the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from conftest import CHROMIUM_FLAGS, COMPREFACE, chromium, noses_found
from test_streams import MjpegServer, _jpeg_parts

from facelens.types import Box, Face

STARTUP = 180.0
"""Seconds a server may take to load its models and listen (two cores shared with other work)."""


class Served:
    """A `facelens serve` process on 127.0.0.1 at a free port, with an httpx client for it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "facelens", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + STARTUP
        self.url = ""
        while not self.url:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"facelens serve did not start: {self.lines}")
            found = [m.group(1) for line in self.lines if (m := re.match(r"facelens serve: (http://\S+)", line))]
            self.url = found[0] if found else ""
            time.sleep(0.05)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def until(self, what: str, check: Callable[[], Any], seconds: float = 60.0) -> Any:
        """Poll `check` until it returns something true; fail after `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.2)
        pytest.fail(f"not within {seconds} s: {what}; server said: {self.lines[-10:]}")

    def source(self, id: int) -> dict[str, Any] | None:
        return next((s for s in self.client.get("/v1/sources").json() if s["id"] == id), None)


@pytest.fixture(scope="module")
def street() -> list[bytes]:
    return _jpeg_parts("street-720p.mp4", 100)


@pytest.fixture(scope="module")
def streams(street) -> Iterator[list[MjpegServer]]:
    served = [MjpegServer(street), MjpegServer(street)]
    yield served
    for server in served:
        server.stop()


@pytest.fixture(scope="module")
def server(streams, tmp_path_factory) -> Iterator[Served]:
    """Two live street streams, a database, default limits, no token."""
    db = tmp_path_factory.mktemp("serve") / "people.db"
    served = Served(*(s.url for s in streams), "--db", str(db), "--retry-for", "1")
    served.db = db
    served.until("both sources running with frames", lambda: all(s["state"] == "running" and s["frames"] > 10 for s in served.client.get("/v1/sources").json()))
    yield served
    assert served.stop() == 128 + signal.SIGTERM
    with sqlite3.connect(db) as conn:  # every run ended, everyone in view left
        assert conn.execute("SELECT count(*) FROM runs WHERE ended_at IS NULL").fetchone()[0] == 0
        kinds = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
        assert kinds.get("enter", 0) > 0 and kinds.get("enter") == kinds.get("exit")


@pytest.fixture(scope="module")
def guarded(streams) -> Iterator[Served]:
    """Token, numbers only, k = 5."""
    served = Served(streams[0].url, "--no-images", "--k", "5", env={"FACELENS_TOKEN": "s3cret-token"})
    yield served
    served.stop()


def _jpeg(path: Path) -> bytes:
    return path.read_bytes()


PHOTO = COMPREFACE / "000_5.jpg"


# --- the API ---------------------------------------------------------------------------------------


def test_health_stats_and_metrics(server: Served) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok", "sources": 2, "running": 2}
    stats = server.client.get("/v1/stats").json()
    assert stats["images"] is True and stats["database"]["error"] is None
    people = stats["people"]
    assert people["k"] == 1
    # The street is busy: people come into view within seconds of video.
    server.until("people in view", lambda: server.client.get("/v1/stats").json()["people"]["people_in_view"] > 0)
    people = server.client.get("/v1/stats").json()["people"]
    assert set(people["gender"]) == {"female", "male", "unknown"}
    assert sum(people["gender"].values()) == people["people_last_hour"] == sum(people["age_buckets"].values())
    for source in stats["sources"]:
        assert source["kind"] == "stream" and source["live"] is True
        # A frame whose inference fails is marked and the run goes on; twice in full-suite runs on a
        # loaded machine one frame of a source failed (not reproduced alone): allow 1 in 100.
        assert source["errors"] <= max(1, source["frames"] // 100), server.lines
    # Served at 25 fps each: analyzed at about that rate once the networks are warm.
    server.until("both sources near 25 fps", lambda: all(10 < s["fps"] < 40 for s in server.client.get("/v1/sources").json()))
    text = server.client.get("/metrics").text
    frames = {m.group(1): float(m.group(2)) for m in re.finditer(r'^facelens_frames_total\{source="([^"]+)"\} (\S+)$', text, re.M)}
    assert len(frames) == 2 and min(frames.values()) > 10
    for name in ("facelens_faces_total", "facelens_dropped_total", "facelens_errors_total", "facelens_people_in_view", "facelens_source_up", "facelens_frame_latency_seconds_bucket"):
        assert re.search(rf"^{name}\{{", text, re.M), name
    assert server.client.get("/docs").status_code == 200
    assert "/v1/analyze" in server.client.get("/openapi.json").json()["paths"]


def test_analyze_an_upload_as_a_frame_record(server: Served) -> None:
    data = _jpeg(PHOTO)
    answer = server.client.post("/v1/analyze", files={"image": ("000_5.jpg", data, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    record = answer.json()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (record["type"], record["source"], record["width"], record["height"]) == ("frame", "000_5.jpg", image.shape[1], image.shape[0])
    faces = [Face(Box(*f["box"]), f["confidence"]) for f in record["faces"]]
    assert len(noses_found(faces, PHOTO.name)) >= 4  # the known faces, matched by position
    assert set(record["faces"][0]) == set(Face(Box(0, 0, 1, 1), 1.0).to_dict())
    assert all(f["age"] is not None and f["gender"] in ("female", "male", "unknown") for f in record["faces"])
    # The image as the body, with the annotated picture back.
    answer = server.client.post("/v1/analyze?annotated=true", content=data, headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200
    assert len(answer.json()["faces"]) == len(record["faces"])
    url = answer.json()["annotated_image"]
    assert url.startswith("data:image/jpeg;base64,")
    import base64

    annotated = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == image.shape and not np.array_equal(annotated, image)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (its pixels are not there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def _bad_uploads() -> list[tuple[str, dict[str, Any], int, str]]:
    photo = _jpeg(PHOTO)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(22):
            yield b"\xff" * 1_000_000

    return [
        ("empty file", {"files": {"image": ("a.jpg", b"", "image/jpeg")}}, 400, "upload a.jpg: empty"),
        ("empty body", {"content": b"", "headers": {"Content-Type": "image/jpeg"}}, 400, "empty"),
        ("text as an image", {"files": {"image": ("notes.jpg", b"just some text\n" * 10, "image/jpeg")}}, 422, "upload notes.jpg: not a readable image"),
        ("truncated JPEG", {"files": {"image": ("cut.jpg", photo[: len(photo) // 2], "image/jpeg")}}, 422, "upload cut.jpg: truncated image"),
        ("truncated body", {"content": photo[: len(photo) // 3], "headers": {"Content-Type": "image/jpeg"}}, 422, "truncated image"),
        ("oversized", {"content": b"\xff" * 21_000_000, "headers": {"Content-Type": "image/jpeg"}}, 413, "upload too large: 21,000,000 bytes, the limit is 20,000,000 bytes"),
        ("oversized, chunked", {"content": chunks(), "headers": {"Content-Type": "image/jpeg"}}, 413, "upload too large"),
        ("wrong content type", {"content": b"hello", "headers": {"Content-Type": "text/plain"}}, 415, "content type text/plain"),
        ("no content type", {"content": photo}, 415, "content type none"),
        ("a web form", {"data": {"image": "x"}}, 415, "content type application/x-www-form-urlencoded"),
        ("text part", {"files": {"image": ("a.txt", b"hello", "text/plain")}}, 415, "upload a.txt: content type text/plain is not an image"),
        ("form without a file", {"files": {"image": (None, b"not a file")}}, 400, 'file field named "image"'),
        ("huge picture", {"files": {"image": ("big.png", _png_header(12000, 10000), "image/png")}}, 422, "upload big.png: 12000x10000 is 120 megapixels, the limit is 100 megapixels"),
        ("decompression bomb", {"files": {"image": ("bomb.png", _png_header(30000, 30000), "image/png")}}, 422, "upload bomb.png: 900 megapixels, the limit is 100 megapixels"),
    ]


@pytest.mark.parametrize("case", _bad_uploads(), ids=lambda case: case[0])
def test_bad_upload_is_a_clear_4xx(server: Served, case) -> None:
    name, request, status, message = case
    started = time.monotonic()
    answer = server.client.post("/v1/analyze", **request)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert message in answer.json()["error"]
    assert time.monotonic() - started < 20  # answered, not hung
    assert server.client.get("/healthz").status_code == 200  # and the server goes on


def test_bad_uploads_are_counted(server: Served) -> None:
    server.client.post("/v1/analyze", content=b"", headers={"Content-Type": "image/png"})
    text = server.client.get("/metrics").text
    assert re.search(r'^facelens_analyze_requests_total\{status="400"\} [1-9]', text, re.M)


def test_sources_added_and_removed_at_run_time(server: Served, street) -> None:
    extra = MjpegServer(street)
    try:
        answer = server.client.post("/v1/sources", json={"source": extra.url})
        assert answer.status_code == 201, answer.text
        added = answer.json()
        assert added["state"] in ("opening", "running") and added["spec"] == extra.url
        server.until("the new source running", lambda: (s := server.source(added["id"])) and s["frames"] > 20)
        others = {s["id"]: s["frames"] for s in server.client.get("/v1/sources").json()}
        removed = server.client.delete(f"/v1/sources/{added['id']}")
        assert removed.status_code == 200 and removed.json()["state"] == "removed"
        assert server.source(added["id"]) is None
        run = removed.json()["run_id"]
        with sqlite3.connect(server.db) as conn:  # its run ended, everyone it saw left
            assert conn.execute("SELECT ended_at FROM runs WHERE id = ?", (run,)).fetchone()[0] is not None
            kinds = dict(conn.execute("SELECT kind, count(*) FROM events WHERE run_id = ? GROUP BY kind", (run,)).fetchall())
            assert kinds.get("enter") == kinds.get("exit")
        server.until("the other sources going on", lambda: all(s["frames"] > others[s["id"]] for s in server.client.get("/v1/sources").json()))
    finally:
        extra.stop()
    assert server.client.delete("/v1/sources/999").status_code == 404
    for body, status in ((dict(content=b"x", headers={"Content-Type": "text/plain"}), 415), (dict(content=b"{", headers={"Content-Type": "application/json"}), 400), (dict(json={"source": ""}), 422), (dict(json={"where": "x"}), 422)):
        answer = server.client.post("/v1/sources", **body)
        assert answer.status_code == status and answer.json()["error"]


def test_a_dead_source_is_shown_as_such_while_the_others_go_on(server: Served, street) -> None:
    doomed = MjpegServer(street)
    try:
        id = server.client.post("/v1/sources", json={"source": doomed.url}).json()["id"]
        server.until("the doomed source running", lambda: (s := server.source(id)) and s["frames"] > 10)
        doomed.stop()
        dead = server.until("the source shown as failed", lambda: (s := server.source(id)) and s["state"] == "failed" and s)
        assert "giving up" in dead["error"] or "lost" in dead["error"]
        others = {s["id"]: s["frames"] for s in server.client.get("/v1/sources").json() if s["id"] != id}
        server.until("the others going on", lambda: all(s["frames"] > others[s["id"]] + 10 for s in server.client.get("/v1/sources").json() if s["id"] != id))
        assert re.search(rf'^facelens_source_up\{{source="{re.escape(doomed.url)}",state="failed"\}} 0\.0$', server.client.get("/metrics").text, re.M)
        # An address nobody serves: failed after --retry-for, with the reason.
        id2 = server.client.post("/v1/sources", json={"source": "http://127.0.0.1:9/none.mjpg"}).json()["id"]
        assert "cannot open stream" in server.until("the unreachable source failed", lambda: (s := server.source(id2)) and s["state"] == "failed" and s["error"])
    finally:
        doomed.stop()
        for source in server.client.get("/v1/sources").json():
            if source["state"] == "failed":
                server.client.delete(f"/v1/sources/{source['id']}")


def test_events_and_people_from_the_database(server: Served) -> None:
    server.until("a person recorded", lambda: server.client.get("/v1/people").json())
    events = server.client.get("/v1/events", params={"limit": 5}).json()
    assert 1 <= len(events) <= 5 and [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    name = events[0]["source"]
    assert all(e["source"] == name for e in server.client.get("/v1/events", params={"source": name}).json())
    assert server.client.get("/v1/events", params={"source": "nothing"}).json() == []
    now = time.time()
    assert server.client.get("/v1/events", params={"since": now + 3600}).json() == []
    assert server.client.get("/v1/events", params={"until": "2001-01-01T00:00"}).json() == []
    assert server.client.get("/v1/events", params={"since": now - 3600, "limit": 1}).json()
    assert server.client.get("/v1/events", params={"since": "yesterday"}).status_code == 422
    assert server.client.get("/v1/events", params={"limit": 0}).status_code == 422
    people = server.client.get("/v1/people", params={"limit": 3}).json()
    assert 1 <= len(people) <= 3
    assert {"track_id", "dwell_seconds", "age_bucket", "gender", "emotion", "entered_at"} <= set(people[0]) and "thumbnail_jpeg" not in people[0]
    assert server.client.get("/v1/people", params={"since": now + 3600}).json() == []
    report = server.client.get("/report")
    assert report.status_code == 200 and "facelens-report-data" in report.text


def test_live_events_as_server_sent_events(server: Served) -> None:
    got: list[dict] = []
    with server.client.stream("GET", "/v1/events/stream", params={"backlog": 0}, timeout=httpx.Timeout(30)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        deadline = time.monotonic() + 60
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["kind"] == kind and event["type"] == "event"
                got.append(event)
            if len(got) >= 3 or time.monotonic() > deadline:
                break
    assert len(got) >= 3
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    assert all(e["wall_time"] > time.time() - 120 for e in got)  # live, not replayed from long ago


def _mjpeg_frames(client: httpx.Client, path: str, count: int) -> list[np.ndarray]:
    frames = []
    with client.stream("GET", path) as stream:
        assert stream.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        buffer = b""
        for chunk in stream.iter_bytes():
            buffer += chunk
            while (start := buffer.find(b"\xff\xd8")) >= 0 and (end := buffer.find(b"\xff\xd9", start)) >= 0:
                frames.append(cv2.imdecode(np.frombuffer(buffer[start : end + 2], np.uint8), cv2.IMREAD_COLOR))
                buffer = buffer[end + 2 :]
            if len(frames) >= count:
                break
    return frames


def test_live_view_is_an_mjpeg_of_changing_annotated_frames(server: Served) -> None:
    id = server.client.get("/v1/sources").json()[0]["id"]
    frames = _mjpeg_frames(server.client, f"/v1/sources/{id}/video.mjpg", 6)
    assert all(f is not None and f.shape == (540, 960, 3) for f in frames)  # 1280x720 scaled to 960 wide
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])
    snapshot = server.client.get(f"/v1/sources/{id}/frame.jpg")
    assert snapshot.headers["content-type"] == "image/jpeg"


def test_no_cors_and_no_foreign_host(server: Served) -> None:
    answer = server.client.get("/v1/stats", headers={"Origin": "https://elsewhere.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    preflight = server.client.options("/v1/sources", headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    # A page of another site whose name was pointed at 127.0.0.1 (DNS rebinding) is not answered.
    rebound = server.client.get("/v1/stats", headers={"Host": "evil.example:8000"})
    assert rebound.status_code == 421 and "127.0.0.1" in rebound.json()["error"]


# --- security: token, numbers only, k-anonymity ------------------------------------------------


def test_token_is_required_except_for_healthz(guarded: Served) -> None:
    bare = httpx.Client(base_url=guarded.url, timeout=30)
    assert bare.get("/healthz").status_code == 200
    for path in ("/", "/v1/stats", "/v1/sources", "/metrics", "/docs", "/static/app.js"):
        answer = bare.get(path)
        assert answer.status_code == 401 and "token is required" in answer.json()["error"], path
    assert bare.post("/v1/analyze", content=_jpeg(PHOTO), headers={"Content-Type": "image/jpeg"}).status_code == 401
    assert bare.post("/v1/sources", json={"source": "0"}).status_code == 401
    assert bare.get("/v1/stats", headers={"Authorization": "Bearer wrong"}).json()["error"].startswith("wrong token")
    assert bare.get("/v1/stats", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    opened = bare.get("/", params={"token": "s3cret-token"})  # a browser opening the page's link
    assert opened.status_code == 200 and "HttpOnly" in opened.headers["set-cookie"]
    assert bare.get("/v1/stats").status_code == 200  # the cookie now
    assert httpx.Client(base_url=guarded.url, cookies={"facelens_token": "nope"}).get("/v1/stats").status_code == 401


def test_no_images_and_k_anonymity(guarded: Served) -> None:
    client = httpx.Client(base_url=guarded.url, timeout=30, headers={"Authorization": "Bearer s3cret-token"})
    guarded.until("frames", lambda: client.get("/v1/sources").json()[0]["frames"] > 25)
    source = client.get("/v1/sources").json()[0]
    assert source["video"] is None
    assert client.get(f"/v1/sources/{source['id']}/video.mjpg").status_code == 403
    assert client.get(f"/v1/sources/{source['id']}/frame.jpg").status_code == 403
    answer = client.post("/v1/analyze?annotated=true", content=_jpeg(PHOTO), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 403 and "--no-images" in answer.json()["error"]
    assert client.post("/v1/analyze", content=_jpeg(PHOTO), headers={"Content-Type": "image/jpeg"}).status_code == 200
    for path in ("/v1/people", "/v1/events", "/v1/events/stream"):
        answer = client.get(path)
        assert answer.status_code == 403 and "--k 5" in answer.json()["error"], path
    seen_hidden = False
    for _ in range(10):  # every figure is hidden or about 0 or at least 5 people
        people = client.get("/v1/stats").json()["people"]
        numbers = [people[key] for key in ("people_in_view", "entered_last_hour", "people_last_hour", "dwell_people")]
        numbers += [n for split in ("gender", "age_buckets", "emotion") for n in people[split].values()]
        assert all(n is None or n == 0 or n >= 5 for n in numbers), people
        seen_hidden |= None in numbers
        for match in re.finditer(r"^facelens_people_in_view\{[^}]*\} (\S+)$", client.get("/metrics").text, re.M):
            assert float(match.group(1)) == 0 or float(match.group(1)) >= 5
        time.sleep(0.5)
    assert seen_hidden  # the street has 1 to 4 people of some kind at a time


def test_listening_beyond_loopback_needs_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FACELENS_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "facelens", "serve", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert "--host 0.0.0.0: listening beyond this machine needs a token" in done.stderr


# --- the page in Chromium --------------------------------------------------------------------------


HASH_VIEW = """(img) => { const c = document.createElement('canvas'); c.width = 64; c.height = 36;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0, 64, 36); const d = g.getImageData(0, 0, 64, 36).data;
  let h = 0; for (let i = 0; i < d.length; i += 1) h = (h * 31 + d[i]) >>> 0; return h; }"""


def test_page_in_chromium_shows_live_frames_figures_and_events(server: Served) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    args = CHROMIUM_FLAGS
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url) if "video.mjpg" not in request.url else None)
            page.on("pageerror", lambda error: failed.append(str(error)))
            page.goto(server.url, timeout=30_000)
            page.wait_for_selector(".source[data-state=running] img.view", timeout=30_000)
            page.wait_for_function("() => [...document.querySelectorAll('img.view')].every(i => i.naturalWidth > 0)", timeout=30_000)
            views = page.query_selector_all("img.view")
            assert len(views) == len(server.client.get("/v1/sources").json())
            first = [view.evaluate(HASH_VIEW) for view in views]
            page.wait_for_timeout(1500)
            assert all(view.evaluate(HASH_VIEW) != before for view, before in zip(views, first)), "live views stand still"
            # Counters move, and enter/exit events arrive without a reload.
            frames = lambda: int(page.inner_text(".source [data-counter=frames] b"))
            before = frames()
            newest = lambda: page.evaluate("() => { const li = document.querySelector('#events li'); return li ? parseInt(li.dataset.id) : 0; }")
            events_before = newest()
            page.wait_for_function(f"() => parseInt(document.querySelector('.source [data-counter=frames] b').textContent) > {before + 20}", timeout=30_000)
            page.wait_for_function(f"() => {{ const li = document.querySelector('#events li'); return li && parseInt(li.dataset.id) > {events_before}; }}", timeout=60_000)
            assert re.fullmatch(r"\d+", page.inner_text("#in-view"))
            assert page.inner_text("#gender .bar.male .n").isdigit()
            page.wait_for_function("() => parseInt(document.querySelector('#entered').textContent) > 0", timeout=30_000)
            assert page.get_attribute("#report-link", "href") == "/report"
            page.screenshot(path="/tmp/facelens-serve-desktop.png")
            # Phone width: one column, nothing wider than the screen.
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(500)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
            widths = page.eval_on_selector_all("img.view", "views => views.map(v => v.getBoundingClientRect().width)")
            assert all(300 <= w <= 390 for w in widths), widths
            page.screenshot(path="/tmp/facelens-serve-phone.png", full_page=True)
            assert failed == []
        finally:
            browser.close()
