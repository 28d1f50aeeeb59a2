"""Writing annotated video: facelens.video (H.264 in fragmented MP4) against OpenCV's MPEG-4 Part 2
(mp4v, what `facelens analyze VIDEO -o out.mp4` wrote before), on the same annotated frames.

The frames are those `facelens analyze VIDEO -o out.mp4` writes: every frame with its faces drawn
(default models, tracked). Size is that of the whole video's file, against the input's. Speed and
quality are measured on the first --frames frames, held in memory: each writer in turn, --rounds
times, so that a busy machine slows both alike; CPU is the process's CPU time per frame, the
encoder's threads included; quality is the PSNR of the frames read back from the file against the
frames written.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/video_writer.py
    python benchmarks/video_writer.py VIDEO ... --rounds 5 --frames 300
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from facelens import Analyzer
from facelens.annotate import annotate
from facelens.video import VideoWriter

REPO = Path(__file__).resolve().parent.parent
VIDEOS = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "videos"
DEFAULT_VIDEOS = [VIDEOS / "street-720p.mp4", VIDEOS / "single-face-1080p.mp4"]


class Mp4v:
    """cv2.VideoWriter as facelens used it before: MPEG-4 Part 2 in MP4."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()


WRITERS: dict[str, Callable[[Path, float, tuple[int, int]], Mp4v | VideoWriter]] = {
    "OpenCV mp4v (before)": Mp4v,
    "facelens.video H.264": VideoWriter,
}


def annotated(analyzer: Analyzer, video: Path) -> Iterator[np.ndarray]:
    for result in analyzer.stream(video):
        if not result.end:
            yield annotate(result.frame.image, result.faces)


def timed(make: Callable, path: Path, fps: float, frames: list[np.ndarray]) -> tuple[float, float]:
    """Wall and CPU seconds to write `frames` into `path`, opening and closing included."""
    size = (frames[0].shape[1], frames[0].shape[0])
    wall, cpu = time.perf_counter(), time.process_time()
    writer = make(path, fps, size)
    for frame in frames:
        writer.write(frame)
    writer.close()
    return time.perf_counter() - wall, time.process_time() - cpu


def psnr(path: Path, frames: list[np.ndarray]) -> float:
    capture = cv2.VideoCapture(str(path))
    values = [cv2.PSNR(frame, capture.read()[1]) for frame in frames]
    capture.release()
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=250, help="frames held in memory for speed and quality")
    args = parser.parse_args()
    analyzer = Analyzer()
    print("| video | writer | frames/s | CPU ms/frame | PSNR dB | file (whole video) | x input |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for video in args.videos:
            capture = cv2.VideoCapture(str(video))
            fps = capture.get(cv2.CAP_PROP_FPS)
            capture.release()
            # Whole video: both writers take each annotated frame as it comes.
            writers: dict[str, Mp4v | VideoWriter] = {}
            for frame in annotated(analyzer, video):
                if not writers:
                    size = (frame.shape[1], frame.shape[0])
                    writers = {name: make(Path(tmp) / f"whole{i}.mp4", fps, size) for i, (name, make) in enumerate(WRITERS.items())}
                for writer in writers.values():
                    writer.write(frame)
            for writer in writers.values():
                writer.close()
            sizes = {name: (Path(tmp) / f"whole{i}.mp4").stat().st_size for i, name in enumerate(WRITERS)}
            # Speed and quality: the first frames, from memory.
            frames = []
            for frame in annotated(analyzer, video):
                frames.append(frame)
                if len(frames) == args.frames:
                    break
            walls: dict[str, list[float]] = {name: [] for name in WRITERS}
            cpus: dict[str, list[float]] = {name: [] for name in WRITERS}
            for _ in range(args.rounds):
                for i, (name, make) in enumerate(WRITERS.items()):
                    wall, cpu = timed(make, Path(tmp) / f"part{i}.mp4", fps, frames)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            for i, name in enumerate(WRITERS):
                quality = psnr(Path(tmp) / f"part{i}.mp4", frames)
                print(
                    f"| {video.name} ({frames[0].shape[1]}x{frames[0].shape[0]}) | {name} "
                    f"| {len(frames) / statistics.median(walls[name]):.0f} "
                    f"| {1000 * statistics.median(cpus[name]) / len(frames):.1f} | {quality:.1f} "
                    f"| {sizes[name] / 1e6:.1f} MB | {sizes[name] / video.stat().st_size:.1f}x |",
                    flush=True,
                )
            del frames


if __name__ == "__main__":
    main()
