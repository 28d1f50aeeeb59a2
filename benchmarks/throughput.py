"""Frames per second of facelens against the reference design's loop, side by side in one run.

The reference loop is the webcam demo facelens grew from: decode, detect, then for every face one
synchronous call to age-gender and one to emotions, with float NCHW blobs made in Python. Both
sides use the same model files, detector threshold and videos, and are run alternately so a noisy
machine slows both alike. facelens runs as `facelens analyze VIDEO --jsonl FILE` does.

    python benchmarks/throughput.py                      # the two shared videos, 3 rounds
    python benchmarks/throughput.py VIDEO ... --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from facelens import Analyzer, ModelStore
from facelens.attributes import AGE_GENDER_MODEL, EMOTION_MODEL
from facelens.detect import DEFAULT_DETECTOR
from facelens.sinks import JsonlSink

REPO = Path(__file__).resolve().parent.parent
VIDEOS = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "videos"
DEFAULT_VIDEOS = [VIDEOS / "street-720p.mp4", VIDEOS / "single-face-1080p.mp4"]
CONFIDENCE = 0.5


def run_facelens(analyzer: Analyzer, video: Path) -> tuple[int, int, float]:
    frames = faces = 0
    with tempfile.TemporaryDirectory() as tmp:
        sink = JsonlSink(Path(tmp) / "out.jsonl")
        started = time.perf_counter()
        for result in analyzer.stream(video, people=None):
            sink.write(result, None)
            frames += 1
            faces += len(result.faces)
        elapsed = time.perf_counter() - started
        sink.close()
    return frames, faces, elapsed


class ReferenceLoop:
    """One synchronous inference per face, as in the reference webcam demo."""

    def __init__(self, store: ModelStore) -> None:
        core = ov.Core()

        def compiled(name: str) -> ov.CompiledModel:
            xml, weights = store.locate(name)
            return core.compile_model(core.read_model(xml, weights), "CPU")

        self.detector, self.age_gender, self.emotion = (compiled(n) for n in (DEFAULT_DETECTOR, AGE_GENDER_MODEL, EMOTION_MODEL))

    @staticmethod
    def blob(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return cv2.resize(image, size).transpose(2, 0, 1)[np.newaxis].astype(np.float32)

    def __call__(self, video: Path) -> tuple[int, int, float]:
        frames = faces = 0
        capture = cv2.VideoCapture(str(video))
        started = time.perf_counter()
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            detections = self.detector(self.blob(frame, (300, 300)))[0][0, 0]
            for _, _, conf, x1, y1, x2, y2 in detections:
                if conf < CONFIDENCE:
                    continue
                x1, y1 = max(int(x1 * w), 0), max(int(y1 * h), 0)
                x2, y2 = min(int(x2 * w), w), min(int(y2 * h), h)
                if x2 <= x1 or y2 <= y1:
                    continue
                roi = frame[y1:y2, x1:x2]
                result = self.age_gender(self.blob(roi, (62, 62)))
                _age, _gender = result["age_conv3"], result["prob"]
                _emotion = self.emotion(self.blob(roi, (64, 64)))[0]
                faces += 1
            frames += 1
        elapsed = time.perf_counter() - started
        capture.release()
        return frames, faces, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    store = ModelStore()
    analyzer = Analyzer(DEFAULT_DETECTOR, confidence=CONFIDENCE, store=store)
    reference = ReferenceLoop(store)
    report = []
    print(f"{'video':28} {'side':24} {'frames':>6} {'faces':>6} {'fps (median)':>12} {'all rounds':>20}")
    for video in args.videos:
        runs: dict[str, list[tuple[int, int, float]]] = {"facelens": [], "reference per-face loop": []}
        run_facelens(analyzer, video)  # warm-up: compile every batch size once
        for _ in range(args.rounds):
            runs["facelens"].append(run_facelens(analyzer, video))
            runs["reference per-face loop"].append(reference(video))
        fps_of = {side: [f / t for f, _, t in r] for side, r in runs.items()}
        for side, r in runs.items():
            frames, faces, _ = r[-1]
            fps = statistics.median(fps_of[side])
            print(f"{video.name:28} {side:24} {frames:6d} {faces:6d} {fps:12.1f} {' '.join(f'{x:.1f}' for x in fps_of[side]):>20}")
            report.append({"video": video.name, "side": side, "frames": frames, "faces": faces, "fps": fps, "fps_rounds": fps_of[side]})
        ratio = statistics.median(fps_of["facelens"]) / statistics.median(fps_of["reference per-face loop"])
        print(f"{video.name:28} {'facelens / reference':24} {'':6} {'':6} {ratio:11.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
