"""facelens serve: does serving slow analysis, and how fast does POST /v1/analyze answer?

1. Frames/s of two live sources (street-720p.mp4 served as MJPEG on loopback) with 0 and with 4
   connected viewers (two MJPEG live views per source, read as a browser would), alternating rounds,
   medians. Twice: sources at their real rate (25 fps), and sources faster than analysis (200 fps,
   live mode drops what it cannot take), where frames/s is the analysis capacity left.
2. POST /v1/analyze latency p50/p95 under 8 concurrent clients (photos of compreface-samples),
   with no source running and with the two 25 fps sources running.

Everything on 127.0.0.1, every loop bounded. Run from the checkout:

    FACELENS_MODELS_DIR=../shared/models python benchmarks/serve.py [--rounds 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from facelens.bench import MjpegServer

SHARED = Path(os.environ.get("FACELENS_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))
VIDEO = SHARED / "data" / "videos" / "street-720p.mp4"
PHOTOS = sorted((SHARED / "data" / "compreface-samples").glob("*.jpg"))


class Server:
    def __init__(self, *sources: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "facelens", "serve", "--port", "0", *sources], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if found := re.match(r"facelens serve: (http://\S+)", line):
                self.url = found.group(1)
                break
            if not line and self.proc.poll() is not None:
                raise SystemExit("facelens serve did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def frames(self) -> int:
        return sum(s["frames"] for s in self.client.get("/v1/sources").json())

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def viewer(url: str, stop: threading.Event, counts: list[int], slot: int) -> None:
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as stream:
        for chunk in stream.iter_bytes():
            counts[slot] += chunk.count(b"--frame")
            if stop.is_set():
                return


def fps_with_viewers(server: Server, viewers: int, seconds: float) -> tuple[float, float]:
    """Analyzed frames/s of all sources and the views' frames/s, with `viewers` live views open."""
    ids = [s["id"] for s in server.client.get("/v1/sources").json()]
    stop = threading.Event()
    counts = [0] * viewers
    threads = [threading.Thread(target=viewer, args=(f"{server.url}v1/sources/{ids[i % len(ids)]}/video.mjpg", stop, counts, i), daemon=True) for i in range(viewers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # the views connected and streaming
    before, started, shown = server.frames(), time.monotonic(), sum(counts)
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    fps = (server.frames() - before) / elapsed
    views = (sum(counts) - shown) / elapsed / max(viewers, 1)
    stop.set()
    for thread in threads:
        thread.join(35)
    return fps, views


def viewers_round(rate: float, rounds: int, seconds: float) -> None:
    with MjpegServer(VIDEO, fps=rate, loops=1000) as a, MjpegServer(VIDEO, fps=rate, loops=1000) as b:
        server = Server(a.url, b.url)
        try:
            time.sleep(6)  # warm: networks compiled for every batch size met
            zero, four, views = [], [], []
            for _ in range(rounds):
                zero.append(fps_with_viewers(server, 0, seconds)[0])
                fps, view = fps_with_viewers(server, 4, seconds)
                four.append(fps)
                views.append(view)
            z, f = statistics.median(zero), statistics.median(four)
            print(f"sources at {rate:g} fps x2: analyzed {z:.1f} frames/s with 0 viewers, {f:.1f} with 4 viewers "
                  f"(ratio {f / z:.2f}; each view showed {statistics.median(views):.1f} frames/s); rounds 0: {[round(x, 1) for x in zero]}, 4: {[round(x, 1) for x in four]}", flush=True)
        finally:
            server.stop()


def latency(server: Server, requests: int, clients: int, label: str) -> None:
    photos = [p.read_bytes() for p in PHOTOS[:8]]

    def one(i: int) -> float:
        started = time.perf_counter()
        answer = server.client.post("/v1/analyze", content=photos[i % len(photos)], headers={"Content-Type": "image/jpeg"})
        answer.raise_for_status()
        return time.perf_counter() - started

    for i in range(clients):  # warm
        one(i)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        times = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    p50, p95 = np.percentile(times, [50, 95]) * 1000
    print(f"POST /v1/analyze, {clients} concurrent clients, {requests} requests ({label}): p50 {p50:.0f} ms, p95 {p95:.0f} ms, {requests / elapsed:.1f} requests/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--requests", type=int, default=160)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    for rate in (25.0, 200.0):
        viewers_round(rate, args.rounds, args.seconds)
    server = Server()
    try:
        latency(server, args.requests, 8, "no source running")
    finally:
        server.stop()
    with MjpegServer(VIDEO, fps=25, loops=1000) as a, MjpegServer(VIDEO, fps=25, loops=1000) as b:
        server = Server(a.url, b.url)
        try:
            time.sleep(5)
            latency(server, args.requests, 8, "two 25 fps sources running")
        finally:
            server.stop()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
