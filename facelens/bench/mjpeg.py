"""Videos served as real-time MJPEG streams (multipart/x-mixed-replace) on loopback, as IP cameras serve them."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

if TYPE_CHECKING:
    from typing_extensions import Self


class MjpegServer:
    """Serves a video as a real-time MJPEG stream (multipart/x-mixed-replace) on loopback.

    ``with MjpegServer("clip.mp4") as server: open_source(server.url)``. Every client gets the video
    from its start, paced at the video's frame rate, looping `loops` times.
    """

    def __init__(
        self,
        video: str | os.PathLike[str],
        fps: float | None = None,
        loops: int = 1,
        quality: int = 90,
    ) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise ValueError(f"{video}: cannot open video")
        self.fps = fps or capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.jpegs: list[bytes] = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            self.jpegs.append(
                cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[
                    1
                ].tobytes()
            )
        capture.release()
        self.loops = loops
        self.stopped = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header(
                    "Content-Type", "multipart/x-mixed-replace; boundary=frame"
                )
                self.end_headers()
                start = time.perf_counter()
                try:
                    for i in range(len(outer.jpegs) * outer.loops):
                        if outer.stopped.is_set():
                            return
                        delay = start + i / outer.fps - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        jpeg = outer.jpegs[i % len(outer.jpegs)]
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                            % len(jpeg)
                            + jpeg
                            + b"\r\n"
                        )
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


STREAM_SIZE = (1280, 720)
STREAM_FPS = 25.0
_RING = 4096
"""Due times kept per stream: a result's frame is looked up by its index among the frames sent."""


@dataclass(frozen=True)
class Clip:
    """A video's frames as JPEGs, and which of them shows at each tick of a stream played in real time."""

    name: str
    jpegs: list[bytes]
    schedule: list[int]


def encode_clip(
    video: str | os.PathLike[str],
    size: tuple[int, int] = STREAM_SIZE,
    fps: float = STREAM_FPS,
    quality: int = 88,
    seconds: float | None = None,
) -> Clip:
    """Decode `video`, resize every frame to `size` (a plain resize: no letterbox, so a video of
    another aspect ratio is stretched) and encode it as JPEG once; a video of another frame rate is
    played at its own speed by showing, at each tick of `fps`, the frame due then. `seconds` keeps
    only the start of the video."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise ValueError(f"{video}: cannot open video")
    own_fps = capture.get(cv2.CAP_PROP_FPS) or fps
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if seconds is not None:
        count = min(count, max(1, round(seconds * own_fps)))
    ticks = max(1, int(count / own_fps * fps))
    wanted = sorted(
        {min(int(tick * own_fps / fps), count - 1) for tick in range(ticks)}
    )
    jpegs: list[bytes] = []
    position: dict[int, int] = {}
    index = 0
    try:
        for index in range(wanted[-1] + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, image = capture.retrieve()
                if not ok:
                    break
                image = cv2.resize(
                    image,
                    size,
                    interpolation=cv2.INTER_AREA
                    if image.shape[1] > size[0]
                    else cv2.INTER_LINEAR,
                )
                position[index] = len(jpegs)
                jpegs.append(
                    cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[
                        1
                    ].tobytes()
                )
    finally:
        capture.release()
    if not jpegs:
        raise ValueError(f"{video}: no frame could be decoded")
    # A file shorter than its header says: the frames it lacks show its last one.
    last = len(jpegs) - 1
    schedule = [
        position.get(min(int(tick * own_fps / fps), count - 1), last)
        for tick in range(ticks)
    ]
    return Clip(Path(video).stem, jpegs, schedule)


def _stream_plan(clips: list[Clip], streams: int) -> list[tuple[Clip, int]]:
    """Stream i plays clip i mod len(clips), the copies of one clip spread evenly over its length."""
    copies = -(-streams // len(clips))
    return [
        (
            clips[i % len(clips)],
            (i // len(clips)) * len(clips[i % len(clips)].schedule) // copies,
        )
        for i in range(streams)
    ]


def _serve(
    videos: list[str],
    streams: int,
    fps: float,
    size: tuple[int, int],
    quality: int,
    seconds: float | None,
    parent: int,
    started: Any,
    stop: Any,
    counters: Any,
    due: Any,
) -> None:
    """The server process: encode the clips, serve stream i at /i.mjpg until told to stop or the parent is gone."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # Ctrl-C reaches the whole process group: the parent decides
    try:
        began = time.perf_counter()
        # OpenCV lets go of the GIL while decoding, resizing and encoding: one thread per video.
        with ThreadPoolExecutor(len(videos)) as pool:
            clips = list(
                pool.map(
                    lambda video: encode_clip(video, size, fps, quality, seconds),
                    videos,
                )
            )
        plan = _stream_plan(clips, streams)
        encoded = time.perf_counter() - began
        sndbuf = 2 * max(len(jpeg) for clip in clips for jpeg in clip.jpegs)
        generations = [0] * streams
        guard = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = re.fullmatch(r"/(\d+)\.mjpg", self.path)
                if match is None or int(match[1]) >= streams:
                    self.send_error(404)
                    return
                i = int(match[1])
                clip, offset = plan[i]
                with guard:  # a new client of a stream takes over its counters
                    generations[i] += 1
                    mine = generations[i]
                    counters[2 * i] = counters[2 * i + 1] = 0
                # A camera's small send buffer: a client that does not keep up makes frames skipped, not queued.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
                self.send_response(200)
                self.send_header(
                    "Content-Type", "multipart/x-mixed-replace; boundary=frame"
                )
                self.end_headers()
                start = time.monotonic()
                tick = sent = 0
                try:
                    while not stop.is_set() and generations[i] == mine:
                        moment = start + tick / fps
                        if (delay := moment - time.monotonic()) > 0:
                            time.sleep(delay)
                        jpeg = clip.jpegs[
                            clip.schedule[(offset + tick) % len(clip.schedule)]
                        ]
                        due[i * _RING + sent % _RING] = moment
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%b\r\n"
                            % (len(jpeg), jpeg)
                        )
                        sent += 1
                        # Like a camera, send the newest frame: the ticks that passed during a blocked write are skipped.
                        newest = int((time.monotonic() - start) * fps)
                        skipped = max(newest - tick - 1, 0)
                        tick += 1 + skipped
                        if generations[i] == mine:
                            counters[2 * i] = sent
                            counters[2 * i + 1] += skipped
                except OSError:  # the client went away
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
    except (OSError, ValueError, cv2.error) as error:
        started.put(("error", str(error)))
        return
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    started.put(
        (
            "ready",
            server.server_address[1],
            encoded,
            [f"{clip.name} +{offset / fps:.1f}s" for clip, offset in plan],
        )
    )
    while not stop.wait(0.5) and os.getppid() == parent:
        pass
    stop.set()
    server.shutdown()
    server.server_close()


class StreamServers:
    """`streams` real-time MJPEG streams of `videos` served on loopback by a process of their own,
    so the serving costs none of the CPU time and memory of the process measured.

    Stream i (at ``urls[i]``) plays video i mod len(videos) at `size` and `fps`, looping, from its
    own offset; each client of a stream gets it from that offset, paced in real time from when it
    connected. Frames are encoded once, at quality `quality`, before any is served. The counters
    (`sent`, `skipped`, `due`) are those of each stream's latest client.

    ``with StreamServers(videos, 8) as servers: ... servers.urls``; the process ends on leaving the
    block, or by itself once this process is gone.
    """

    def __init__(
        self,
        videos: Sequence[str | os.PathLike[str]],
        streams: int,
        *,
        fps: float = STREAM_FPS,
        size: tuple[int, int] = STREAM_SIZE,
        quality: int = 88,
        seconds: float | None = None,
        timeout: float = 300.0,
    ) -> None:
        if not videos:
            raise ValueError("no videos to serve")
        if streams < 1:
            raise ValueError(f"streams must be 1 or more, not {streams}")
        self.videos = [os.fspath(v) for v in videos]
        self.streams, self.fps, self.size, self.quality, self.seconds, self.timeout = (
            streams,
            fps,
            size,
            quality,
            seconds,
            timeout,
        )
        self.urls: list[str] = []
        self.names: list[str] = []
        self.encode_seconds = 0.0
        self._process: multiprocessing.process.BaseProcess | None = None

    def __enter__(self) -> Self:
        # spawn: a fork would copy this process's OpenVINO threads and memory.
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._counters = context.Array("q", 2 * self.streams, lock=False)
        self._due = context.Array("d", _RING * self.streams, lock=False)
        started = context.Queue()
        args = (
            self.videos,
            self.streams,
            self.fps,
            self.size,
            self.quality,
            self.seconds,
            os.getpid(),
            started,
            self._stop,
            self._counters,
            self._due,
        )
        self._process = context.Process(
            target=_serve, args=args, name="facelens-bench-streams", daemon=True
        )
        self._process.start()
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    message = started.get(timeout=0.5)
                    break
                except queue.Empty:
                    if not self._process.is_alive():
                        raise RuntimeError(
                            f"the stream server process ended (exit code {self._process.exitcode}) before serving"
                        ) from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the stream server process did not start serving in {self.timeout:g} s"
                        ) from None
            if message[0] == "error":
                raise ValueError(message[1])
            _, port, self.encode_seconds, self.names = message
            self.urls = [
                f"http://127.0.0.1:{port}/{i}.mjpg" for i in range(self.streams)
            ]
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._stop.set()
        process.join(5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if process.is_alive():
            process.kill()
            process.join()

    def sent(self, stream: int) -> int:
        """Frames sent to the stream's client so far."""
        return self._counters[2 * stream]

    def skipped(self, stream: int) -> int:
        """Ticks of the stream whose frame was never sent, as its client did not take the frames before."""
        return self._counters[2 * stream + 1]

    def due(self, stream: int, index: int) -> float | None:
        """When (time.monotonic()) the stream's frame `index` (counted among the frames sent) was due:
        the moment a camera would have taken it; None once it is too old to be kept."""
        if not 0 <= index < self.sent(stream) or self.sent(stream) - index > _RING:
            return None
        return self._due[stream * _RING + index % _RING]

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used so far (Linux), else None."""
        if self._process is None or self._process.pid is None:
            return None
        try:
            with open(f"/proc/{self._process.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None
