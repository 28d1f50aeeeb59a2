"""Videos served as real-time MJPEG streams (multipart/x-mixed-replace) on loopback, as IP cameras serve them."""

from __future__ import annotations

import os
import threading
import time

import cv2


class MjpegServer:
    """Serves a video as a real-time MJPEG stream (multipart/x-mixed-replace) on loopback.

    ``with MjpegServer("clip.mp4") as server: open_source(server.url)``. Every client gets the video
    from its start, paced at the video's frame rate, looping `loops` times.
    """

    def __init__(self, video: str | os.PathLike[str], fps: float | None = None, loops: int = 1, quality: int = 90) -> None:
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
            self.jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
        capture.release()
        self.loops = loops
        self.stopped = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
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
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()
