"""Shared test fixtures: the real models and data of ../shared (or $FACELENS_SHARED)."""

from __future__ import annotations

import csv
import functools
import http.server
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Protocol

import pytest

from facelens.types import Box, Gender

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
MODELS_DIR = Path(os.environ.get("FACELENS_MODELS_DIR", SHARED / "models"))
DATA = SHARED / "data"
VIDEOS = DATA / "videos"
COMPREFACE = DATA / "compreface-samples"

SURE = 0.6
"""A detector confidence far enough above the default threshold (0.5) to rely on in a test.

INT8 results differ between instruction sets: from AVX-512 VNNI to AVX2 a detection's confidence
moved by up to 0.05 on the shared photos and videos (011_3.jpg's bottom-left corner went from 0.493
to 0.504 and became a fourth face). A face that close to a threshold may come or go on another CPU,
so tests assert on faces above SURE, on known faces matched by position, and on counts with room.
"""

if not (MODELS_DIR / "intel").is_dir():
    raise pytest.UsageError(f"models not found in {MODELS_DIR}: set FACELENS_MODELS_DIR or FACELENS_SHARED")

# Tests never download: the library resolves models from the shared folder, and a test that wants
# the cache or the network points these elsewhere itself.
os.environ["FACELENS_MODELS_DIR"] = str(MODELS_DIR)
# OAK tests look for devices over USB only: no discovery broadcast leaves this machine.
os.environ.setdefault("DEPTHAI_PROTOCOL", "usb")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's real model cache."""
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def warnings_log(caplog):
    """Warnings of the "facelens" logger, even after the CLI has stopped it propagating."""
    logger = logging.getLogger("facelens")
    previous = logger.propagate
    logger.propagate = True
    caplog.set_level(logging.WARNING, logger="facelens")
    yield caplog
    logger.propagate = previous


class _Found(Protocol):
    box: Box
    confidence: float


def confident(faces: Sequence[_Found], above: float = SURE) -> list[_Found]:
    """The faces (or detections) whose confidence is above `above`."""
    return [face for face in faces if face.confidence > above]


@cache
def noses() -> dict[str, list[tuple[float, float]]]:
    """The annotated nose point of every face of each compreface sample, in noses.csv order."""
    points: dict[str, list[tuple[float, float]]] = {}
    with open(COMPREFACE / "noses.csv", newline="") as f:
        for row in csv.DictReader(f):
            points.setdefault(row["image"], [])
            if row["nose_x"]:
                points[row["image"]].append((float(row["nose_x"]), float(row["nose_y"])))
    return points


def noses_found(faces: Sequence[_Found], image: str) -> set[int]:
    """Indices (noses.csv order) of the annotated faces of the compreface sample `image` that its
    confident faces hold; fails if a confident face holds no annotated nose, several, or one that
    another confident face holds too."""
    points = noses()[image]
    found: set[int] = set()
    for face in confident(faces):
        inside = [i for i, point in enumerate(points) if face.box.contains(*point)]
        where = f"{image}: face {face.box.to_list()} at {face.confidence:.3f}"
        assert len(inside) == 1, f"{where} holds noses {inside}"
        assert inside[0] not in found, f"{where} holds nose {inside[0]}, found already"
        found.add(inside[0])
    return found


def male_probability(gender: Gender) -> float:
    """The probability of "male", whichever label won: comparable between two runs even for a face
    near 0.5, where the label itself may differ."""
    return gender.probability if gender.label == "male" else 1.0 - gender.probability


# --- headless Chromium and a loopback file server, for the tests of pages, videos and streams ------

CHROMIUM_FLAGS = [
    "--no-sandbox",  # as root, and in containers without user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # a closed network: no calls out at start
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
]


def chromium() -> str:
    """Debian's chromium; a skip without it, or a failure when FACELENS_REQUIRE_BROWSER=1 (CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("FACELENS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed: apt-get install chromium (FACELENS_REQUIRE_BROWSER=1 needs it)")
        pytest.skip("chromium is not installed (apt-get install chromium; FACELENS_REQUIRE_BROWSER=1 makes this a failure)")
    return path


def run_chromium(page: str | Path, profile: Path, *args: str, budget_ms: int = 5000, timeout: float = 60) -> str:
    """Load `page` (a path or URL) in headless Chromium with a fresh profile and return its stdout."""
    url = page.as_uri() if isinstance(page, Path) else page
    command = [chromium(), "--headless", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *args, url]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # FFmpeg hangs up mid-file when it has what it wants


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A plain HTTP server over `folder` on a loopback port (no Range support); yields its base URL."""
    server = _QuietServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
