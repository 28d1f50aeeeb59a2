"""Cold start: `facelens analyze PHOTO --jsonl OUT` from command to exit, a checkout against another
and against a plain OpenVINO loop in the style of the reference design.

Each run is a new process (the OS file cache warm: one unmeasured run of each first); the runs
alternate, --rounds times, so that a busy machine slows all alike. The old checkout runs through
PYTHONPATH, e.g. from `git worktree add /tmp/fl-old <commit>`; without --old only the new one and the
reference loop run. The reference loop (`reference()`: read the image, compile the detector,
age-gender and emotion networks, infer, print) is what the issue's "plain OpenVINO loop" means.
facelens' runs use a compiled-network cache of their own, warmed by the unmeasured run (as a user's
is after the first run); --cold-cache empties it before every run instead. Also prints the imports
that took longest (cumulative, `python -X importtime`), each checkout's from one more run.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/cold_start.py --old /tmp/fl-old
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
PHOTO = SHARED / "data" / "compreface-samples" / "010_2.jpg"


DETECTOR = "face-detection-retail-0004"
ATTRIBUTES = ("age-gender-recognition-retail-0013", "emotions-recognition-retail-0003")


def reference(photo: Path, models: Path) -> None:
    """The reference design's loop for one photo, in plain OpenVINO: faces above 0.5, each face's
    age, gender and emotion printed. Run in its own process (`--reference-run`)."""
    import cv2
    import numpy as np
    import openvino as ov

    core = ov.Core()

    def load(name: str) -> ov.CompiledModel:
        return core.compile_model(models / "intel" / name / "FP16-INT8" / f"{name}.xml", "CPU")

    detector, age_gender, emotion = load(DETECTOR), *(load(name) for name in ATTRIBUTES)

    def blob(image: np.ndarray, network: ov.CompiledModel) -> np.ndarray:
        _, _, height, width = network.inputs[0].shape
        return cv2.resize(image, (width, height)).transpose(2, 0, 1)[np.newaxis].astype(np.float32)

    frame = cv2.imread(str(photo))
    height, width = frame.shape[:2]
    detections = detector(blob(frame, detector))[detector.outputs[0]][0, 0]
    for _, _, confidence, *box in detections:
        if confidence < 0.5:
            continue
        x0, y0, x1, y1 = (int(max(v, 0) * s) for v, s in zip(box, (width, height, width, height)))
        face = frame[y0:y1, x0:x1]
        if face.size == 0:
            continue
        out = age_gender(blob(face, age_gender))
        age, male = float(out["age_conv3"].ravel()[0]) * 100, float(out["prob"].ravel()[1])
        feelings = emotion(blob(face, emotion))[emotion.outputs[0]].ravel()
        print(f"{x0},{y0},{x1},{y1} age {age:.0f} {'male' if male > 0.5 else 'female'} emotion {int(feelings.argmax())}")


def reference_command(photo: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--reference-run", str(photo)]


def command(photo: Path, out: Path, *python_options: str) -> list[str]:
    return [sys.executable, *python_options, "-m", "facelens", "analyze", str(photo), "--jsonl", str(out)]


def run(checkout: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """`command` with `checkout`'s facelens: run from the output's folder, as `python -m` puts the
    working folder first on the path (before PYTHONPATH)."""
    folder = Path(command[-1]).parent
    return subprocess.run(command, env=environment(checkout, folder / "cache"), cwd=folder, check=True, capture_output=True, text=True)


def environment(checkout: Path, cache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    # As installed, modules run from bytecode: the unmeasured first run writes it (~0.1 s a run otherwise).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("FACELENS_MODELS_DIR", str(SHARED / "models"))
    if cache is not None:
        env["FACELENS_CACHE_DIR"] = str(cache)
    return env


def wall(checkout: Path | None, photo: Path, out: Path, cold_cache: bool = False) -> float:
    """Seconds from command to exit: facelens from `checkout`, or the reference loop (None)."""
    if cold_cache:
        shutil.rmtree(out.parent / "cache", ignore_errors=True)
    started = time.perf_counter()
    if checkout is None:
        subprocess.run(reference_command(photo), env=environment(REPO), cwd=out.parent, check=True, capture_output=True)
    else:
        run(checkout, command(photo, out))
    return time.perf_counter() - started


def top_imports(checkout: Path, photo: Path, out: Path, count: int) -> list[tuple[float, str, int]]:
    """(cumulative ms, module, depth) of the `count` slowest imports at depths 0-2 of the import tree."""
    result = run(checkout, command(photo, out, "-X", "importtime"))
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+-?\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and (depth := (len(match[2]) - 1) // 2) <= 2:
            rows.append((int(match[1]) / 1000, match[3], depth))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    if sys.argv[1:2] == ["--reference-run"]:
        reference(Path(sys.argv[2]), Path(os.environ.get("FACELENS_MODELS_DIR", SHARED / "models")))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, help="checkout to compare with (run through PYTHONPATH)")
    parser.add_argument("--new", type=Path, default=REPO, help="checkout measured (default: this one)")
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--cold-cache", action="store_true", help="empty facelens' compiled-network cache before each run")
    args = parser.parse_args()
    checkouts: dict[str, Path | None] = {"new": args.new.resolve(), "reference": None}
    if args.old:
        checkouts["old"] = args.old.resolve()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "o.jsonl"
        for name, checkout in checkouts.items():
            if checkout is not None and args.top:
                print(f"slowest imports, {name} ({checkout}):")
                for ms, module, depth in top_imports(checkout, args.photo, out, args.top):
                    print(f"  {ms:7.0f} ms  {'  ' * depth}{module}")
            wall(checkout, args.photo, out)  # warms the file cache (and facelens' compiled-network cache)
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        for i in range(args.rounds):
            for name in checkouts if i % 2 == 0 else reversed(list(checkouts)):
                times[name].append(wall(checkouts[name], args.photo, out, args.cold_cache))
    medians = {name: statistics.median(values) for name, values in times.items()}
    cache = "emptied before each run" if args.cold_cache else "warm"
    for name, values in times.items():
        print(f"{name}: median {medians[name]:.2f} s of {', '.join(f'{v:.2f}' for v in values)}")
    print(f"new / reference: {medians['new'] / medians['reference']:.2f}x the time (compiled-network cache {cache})")
    if "old" in medians:
        print(f"new / old: {medians['new'] / medians['old']:.2f}x the time")
    print(f"load: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
