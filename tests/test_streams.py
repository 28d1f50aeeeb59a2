"""Live streams that break: a real MJPEG-over-HTTP server on loopback is stopped, restarted on its port,
stalled and switched to another video while a `StreamSource` reads it."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
from conftest import VIDEOS

from facelens import sources
from facelens.errors import SourceError
from facelens.sources import Reconnect, Source, open_source
from facelens.types import Frame

FPS = 25
FAST = Reconnect(retry_for=10, first_delay=0.2, max_delay=0.4)  # attempts at 0, 0.2, 0.6, 1.0, 1.4, ... s


def _jpeg_parts(video: str, count: int) -> list[bytes]:
    capture = cv2.VideoCapture(str(VIDEOS / video))
    parts = []
    for _ in range(count):
        ok, image = capture.read()
        assert ok
        parts.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    capture.release()
    return parts


@pytest.fixture(scope="module")
def street() -> list[bytes]:
    """JPEGs of the first 100 frames of the 1280x720 street video."""
    return _jpeg_parts("street-720p.mp4", 100)


@pytest.fixture(scope="module")
def speaker() -> list[bytes]:
    """JPEGs of the first 50 frames of the 640x360 speaker video."""
    return _jpeg_parts("speaker-360p.mp4", 50)


def decoded(part: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(part, np.uint8), cv2.IMREAD_COLOR)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):  # noqa: N802 - the base class's name
        owner = self.server.owner
        if self.path != "/stream.mjpg":
            self.send_error(404)
            return
        with owner.lock:
            owner.connections[self.connection] = threading.current_thread()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            sent, due = 0, time.monotonic()
            while owner.is_serving(self.server):
                if owner.stalled:  # keep the connection open but send nothing
                    time.sleep(0.02)
                    due = time.monotonic()
                    continue
                part = owner.parts[sent % len(owner.parts)]
                head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(part)
                self.wfile.write(head + part + b"\r\n")
                sent += 1
                due += 1 / FPS
                time.sleep(max(0.0, due - time.monotonic()))
        except OSError:
            pass  # the client or stop() hung up
        finally:
            with owner.lock:
                owner.connections.pop(self.connection, None)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # so that a restart can bind the port again at once
    owner: MjpegServer

    def handle_error(self, request, client_address):
        pass


class MjpegServer:
    """A live MJPEG stream at `url` ("multipart/x-mixed-replace" of JPEGs at 25 fps, looping over `parts`).

    `stop()` closes the listening socket and every open connection; `start()` serves again on the same
    port. Setting `stalled` keeps connections open without sending; setting `parts` switches the video
    of every connection at its next frame.
    """

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.stalled = False
        self.lock = threading.Lock()
        self.connections: dict[socket.socket, threading.Thread] = {}
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def is_serving(self, server: _Server) -> bool:
        return server is self._server

    def start(self) -> None:
        assert self._server is None
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._server = server
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        assert self._thread is not None
        self._thread.join(5)
        with self.lock:
            connections = dict(self.connections)
        for connection, thread in connections.items():
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            thread.join(5)
            assert not thread.is_alive()


@pytest.fixture
def server(street) -> Iterator[MjpegServer]:
    served = MjpegServer(street)
    yield served
    served.stop()


def _readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("facelens reader")]


@pytest.fixture(autouse=True)
def _no_reader_left() -> Iterator[None]:
    """Every test leaves no reader thread of a source behind (its capture released)."""
    yield
    deadline = time.monotonic() + 5
    while _readers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _readers() == []


def messages(log) -> list[str]:
    return [record.getMessage() for record in log.records if record.name == "facelens"]


def read(source: Source, seconds: float, on_frame: Callable[[Frame], bool | None] = lambda frame: None) -> list[Frame]:
    """The frames of `source` until it ends or `on_frame` returns True; fails if that takes over `seconds`."""
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        source.close()

    watchdog = threading.Timer(seconds, expire)
    watchdog.start()
    frames: list[Frame] = []
    try:
        for frame in source:
            frames.append(frame)
            if on_frame(frame):
                break
    finally:
        watchdog.cancel()
        watchdog.join()
        source.close()
    assert not expired.is_set(), f"still reading after {seconds} s"
    return frames


class Later:
    """Runs actions in a thread after delays; joined on leaving."""

    def __init__(self) -> None:
        self._timers: list[threading.Timer] = []

    def __call__(self, seconds: float, action: Callable[[], object]) -> None:
        timer = threading.Timer(seconds, action)
        self._timers.append(timer)
        timer.start()

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
            timer.join()


@pytest.fixture
def later() -> Iterator[Later]:
    runner = Later()
    yield runner
    runner.close()


def assert_increasing(frames: list[Frame]) -> None:
    timestamps = [frame.timestamp for frame in frames]
    assert all(isinstance(timestamp, float) for timestamp in timestamps)
    assert all(later > earlier for earlier, later in zip(timestamps, timestamps[1:])), timestamps
    assert [frame.index for frame in frames] == list(range(len(frames)))


# ---------------------------------------------------------------------------------------------- tests


def test_frames_flow_from_a_live_mjpeg_server(server, street, warnings_log):
    with open_source(server.url) as source:
        assert (source.kind, source.is_live, source.length, source.fps) == ("stream", True, None, 25.0)
        frames = read(source, 10, lambda frame: frame.index == 24)
    assert len(frames) == 25
    assert_increasing(frames)
    assert frames[0].timestamp == 0.0
    assert frames[-1].timestamp == pytest.approx(0.96, abs=0.2)
    assert {frame.source for frame in frames} == {server.url}
    assert {frame.note for frame in frames} == {None}
    assert {frame.image.shape for frame in frames} == {(720, 1280, 3)}
    # FFmpeg's and libjpeg's decoders round differently, so the served JPEG is matched loosely.
    assert np.abs(frames[0].image.astype(int) - decoded(street[0])).mean() < 2
    assert (source.gaps, source.error) == ([], None)
    assert messages(warnings_log) == []


def test_stream_comes_back_after_the_server_restarts(server, later, warnings_log):
    outage = 2.0
    lost_at: list[float] = []

    def on_frame(frame: Frame) -> bool:
        if frame.index == 15:
            lost_at.append(frame.timestamp)
            server.stop()
            later(outage, server.start)
        return frame.index == 40

    with open_source(server.url, reconnect=FAST) as source:
        frames = read(source, 15, on_frame)
    assert len(frames) == 41
    assert_increasing(frames)
    noted = [frame for frame in frames if frame.note is not None]
    assert len(noted) == 1
    back = noted[0]
    # A frame or two may still be on their way when the server goes.
    assert 16 <= back.index <= 20
    assert len(source.gaps) == 1
    start, gap, reason = source.gaps[0]
    assert reason == "connection lost"
    assert outage - 0.3 < gap < outage + 1.0
    assert back.note == f"reconnected after {gap:.1f} s gap (connection lost)"
    before = frames[back.index - 1]
    assert start == before.timestamp
    assert lost_at[0] <= start
    # The gap is in the timestamps: they go on from where they were, plus the time without frames.
    assert back.timestamp == pytest.approx(before.timestamp + gap, abs=0.01)
    assert frames[-1].timestamp - back.timestamp == pytest.approx((40 - back.index) / FPS, abs=0.01)
    assert source.error is None
    label = server.url
    assert messages(warnings_log) == [
        f"{label}: stream lost (connection lost), reconnecting",
        f"{label}: reconnected after {gap:.1f} s gap (connection lost)",
    ]


def test_dead_stream_ends_cleanly_with_an_error(server, warnings_log):
    stopped: list[float] = []

    def on_frame(frame: Frame) -> None:
        if frame.index == 5:
            stopped.append(time.monotonic())  # before the loss, so the budget cannot start earlier
            server.stop()

    with open_source(server.url, reconnect=Reconnect(retry_for=2, first_delay=0.2)) as source:
        frames = read(source, 15, on_frame)
        ended = time.monotonic()
    # The frames sent before the server went, then nothing, and no exception.
    assert 6 <= len(frames) <= 10
    assert_increasing(frames)
    assert 2 <= ended - stopped[0] < 4
    assert source.error == f"{server.url}: stream lost and not back after 2 s, giving up"
    assert source.gaps == []
    assert messages(warnings_log) == [f"{server.url}: stream lost (connection lost), reconnecting", source.error]


def test_no_reconnecting_when_the_budget_is_zero(server, warnings_log):
    with open_source(server.url, reconnect=Reconnect(retry_for=0)) as source:
        frames = read(source, 10, lambda frame: server.stop() if frame.index == 3 else None)
    assert 4 <= len(frames) <= 8
    assert source.error == f"{server.url}: stream lost (connection lost), reconnecting is off"
    assert messages(warnings_log) == [source.error]


def test_stream_back_at_another_resolution_has_both_notes(server, speaker, later):
    def on_frame(frame: Frame) -> bool:
        if frame.index == 5:
            server.stop()
            server.parts = speaker
            later(0.5, server.start)
        return frame.note is not None and frame.index > 5 or frame.index > 100

    with open_source(server.url, reconnect=FAST) as source:
        frames = read(source, 10, on_frame)
    back = frames[-1]
    assert back.note is not None
    assert back.note.startswith("reconnected after ")
    assert back.note.endswith(" s gap (connection lost); resolution changed from 1280x720 to 640x360")
    assert back.image.shape == (360, 640, 3)
    assert {frame.image.shape for frame in frames[:-1]} == {(720, 1280, 3)}
    assert np.abs(back.image.astype(int) - decoded(speaker[0])).mean() < 2
    assert_increasing(frames)


def test_resolution_change_within_a_connection_keeps_the_opening_size(server, speaker):
    # OpenCV scales every decoded picture to the size the stream had when it was opened, so the frames
    # keep flowing, the new picture in the old size, and there is no size change to note.
    def on_frame(frame: Frame) -> bool:
        if frame.index == 5:
            server.parts = speaker
        return frame.index == 40

    with open_source(server.url) as source:
        frames = read(source, 10, on_frame)
    assert len(frames) == 41
    assert {frame.image.shape for frame in frames} == {(720, 1280, 3)}
    assert {frame.note for frame in frames} == {None}
    assert_increasing(frames)
    # The last frame is the speaker, stretched (the street at that point looks nothing like it).
    last = cv2.resize(frames[-1].image, (640, 360), interpolation=cv2.INTER_AREA).astype(int)
    assert min(np.abs(last - decoded(part)).mean() for part in speaker) < 5
    assert source.gaps == []


def test_video_changing_size_midway_plays_through(tmp_path, street, speaker):
    # A bare MJPEG file (concatenated JPEGs) that switches from 1280x720 to 640x360 after 10 frames.
    clip = tmp_path / "switch.mjpeg"
    clip.write_bytes(b"".join(street[:10] + speaker[:10]))
    with open_source(clip) as source:
        frames = list(source)
    assert len(frames) == 20
    # As with streams, OpenCV keeps the opening size; a size change it did report would get a note.
    assert {frame.image.shape for frame in frames} == {(720, 1280, 3)}
    assert {frame.note for frame in frames} == {None}


def test_stall_times_out_and_reconnects(server, later, monkeypatch, warnings_log):
    monkeypatch.setattr(sources, "STREAM_READ_TIMEOUT_MS", 1000)

    def on_frame(frame: Frame) -> bool:
        if frame.index == 5:
            server.stalled = True
            later(2.0, lambda: setattr(server, "stalled", False))
        return frame.note is not None or frame.index > 100

    with open_source(server.url, reconnect=FAST) as source:
        frames = read(source, 15, on_frame)
    assert frames[-1].note is not None
    assert frames[-1].note.endswith(" s gap (no frame for 1 s)")
    assert len(source.gaps) == 1
    assert 1.5 < source.gaps[0][1] < 4
    assert source.gaps[0][2] == "no frame for 1 s"
    assert_increasing(frames)
    assert messages(warnings_log)[0] == f"{server.url}: stream lost (no frame for 1 s), reconnecting"


def _iterate_in_thread(source: Source) -> tuple[threading.Thread, list[Frame], list[float]]:
    """Iterates `source` in a thread of its own, like the engine; returns once a frame came. The last
    list gets the time.monotonic() at which iteration ended."""
    frames: list[Frame] = []
    ended: list[float] = []
    first = threading.Event()

    def run() -> None:
        for frame in source:
            frames.append(frame)
            first.set()
        ended.append(time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert first.wait(5)
    return thread, frames, ended


def test_close_from_another_thread_during_a_blocked_read(server):
    source = open_source(server.url)  # the read timeout stays at 10 s
    thread, frames, ended = _iterate_in_thread(source)
    try:
        time.sleep(0.3)
        server.stalled = True
        time.sleep(1.0)  # the reader is now waiting for a frame that does not come
        count = len(frames)
        time.sleep(0.3)
        assert len(frames) == count  # really blocked
        started = time.monotonic()
        source.close()
        closed = time.monotonic() - started
        thread.join(2)
    finally:
        source.close()
        server.stop()  # the blocked read fails at once, so the reader lets go of the capture
        thread.join(5)
    assert not thread.is_alive()
    assert ended[0] - started < 0.5  # iteration stops at once
    assert closed < 1.5  # close() waits a little for the reader, then leaves it to finish its read
    assert source.error is None


def test_close_interrupts_the_wait_between_attempts(server, warnings_log):
    source = open_source(server.url, reconnect=Reconnect(retry_for=60, first_delay=20, max_delay=20))
    thread, frames, ended = _iterate_in_thread(source)
    try:
        server.stop()
        deadline = time.monotonic() + 5
        while not messages(warnings_log) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert messages(warnings_log) == [f"{server.url}: stream lost (connection lost), reconnecting"]
        time.sleep(0.3)  # the first attempt failed at once; the reader now waits 20 s for the next
        assert len(_readers()) == 1
        started = time.monotonic()
        source.close()
        thread.join(2)
        for reader in _readers():
            reader.join(1)
        readers_left = _readers()
    finally:
        source.close()
        thread.join(5)
    assert ended[0] - started < 1.5
    assert readers_left == []  # the wait was cut short, not sat out
    assert source.error is None  # closing is no failure
    assert len(messages(warnings_log)) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_first_open_of_a_closed_port_fails_fast_when_retrying_is_off(warnings_log):
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source(f"http://127.0.0.1:{_free_port()}/stream.mjpg", reconnect=Reconnect(retry_for=0))
    assert time.monotonic() - started < 2
    assert messages(warnings_log) == []


def test_first_open_is_retried_until_the_server_is_up(street, later, warnings_log):
    """A camera still booting or a server not up yet: the first connection gets the same retries as a
    dropped one."""
    server = MjpegServer(street)
    url = server.url
    server.stop()
    later(1.5, server.start)
    try:
        started = time.monotonic()
        with open_source(url, reconnect=FAST) as source:
            frames = read(source, 5, lambda frame: frame.index == 4)
        assert 1.3 < time.monotonic() - started < 5
        assert len(frames) == 5 and source.error is None
        assert messages(warnings_log)[0].startswith(f"{url}: cannot open stream")
        assert messages(warnings_log)[0].endswith("retrying for up to 10 s")
    finally:
        server.stop()


def test_first_open_gives_up_after_the_budget(warnings_log):
    url = f"http://127.0.0.1:{_free_port()}/stream.mjpg"
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot open stream .*; gave up after 1 s"):
        open_source(url, reconnect=Reconnect(retry_for=1, first_delay=0.2, max_delay=0.4))
    assert 1 <= time.monotonic() - started < 4
    assert len(messages(warnings_log)) == 1


def test_reconnect_settings_are_checked():
    assert Reconnect() == Reconnect(retry_for=30.0, first_delay=0.5, max_delay=8.0)
    with pytest.raises(ValueError, match="retry_for"):
        Reconnect(retry_for=-1)
    with pytest.raises(ValueError, match="first_delay"):
        Reconnect(first_delay=0)
    with pytest.raises(ValueError, match="max_delay"):
        Reconnect(first_delay=10, max_delay=8)


def test_a_failure_in_the_reader_thread_is_raised_by_the_iteration(server, monkeypatch):
    convert = sources._bgr
    calls = []

    def failing(image: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("converter broke")
        return convert(image)

    monkeypatch.setattr(sources, "_bgr", failing)
    frames: list[Frame] = []
    with open_source(server.url) as source, pytest.raises(RuntimeError, match="converter broke"):
        frames.extend(source)
    assert [frame.index for frame in frames] == [0, 1, 2]


def test_a_dead_stream_ends_while_the_other_sources_keep_running(server, warnings_log):
    from facelens import Analyzer

    engine = Analyzer().pipeline(people=None)
    stream = open_source(server.url, reconnect=Reconnect(retry_for=1, first_delay=0.2))
    video = open_source(VIDEOS / "street-720p.mp4")
    counts = [0, 0]
    last_stream_result = None
    for result in engine.run([stream, video]):
        counts[result.stream] += 1
        if result.stream == 0:
            last_stream_result = time.perf_counter()
            if counts[0] == 5:
                server.stop()
    stream_stats, video_stats = engine.sources
    # The stream ended with its error; the video went on to its last frame, in order, after that.
    assert stream_stats.error == f"{server.url}: stream lost and not back after 1 s, giving up"
    assert 5 <= counts[0] <= 15 and stream_stats.live
    assert counts[1] == video_stats.frames == 477 and video_stats.error is None and not video_stats.live
    assert video_stats.ended is not None and video_stats.ended > last_stream_result
