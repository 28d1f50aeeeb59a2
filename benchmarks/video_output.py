"""Annotated video's cost: `facelens analyze VIDEO --jsonl OUT` against the same with `-o out.mp4`.

Frames/s is the video's frames over the time from the start of the run to exit, so it includes
finishing the video file but not loading the models (the run's summary says how long it ran); the two commands alternate, --rounds times, so that a busy machine slows both alike. On a machine
others share, frames/s swings from run to run; the process's CPU time (models loaded included)
does much less, and its difference between the two commands is what the video costs. With
--old (a checkout, run through PYTHONPATH, e.g. from `git worktree add /tmp/fl-old <commit>`) both
checkouts are measured, alternating too.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/video_output.py --old /tmp/fl-old
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
VIDEO = SHARED / "data" / "videos" / "street-720p.mp4"


def rate(checkout: Path, video: Path, folder: Path, with_video: bool) -> tuple[float, float, float, int]:
    """(frames/s from the run's start to exit, frames/s the run itself reported, CPU seconds, frames)."""
    command = [sys.executable, "-m", "facelens", "analyze", str(video), "--jsonl", str(folder / "a.jsonl")]
    command += ["-o", str(folder / "a.mp4")] if with_video else []
    env = dict(os.environ, PYTHONPATH=str(checkout), COLUMNS="200")
    env.setdefault("FACELENS_MODELS_DIR", str(SHARED / "models"))
    # From `folder`: `python -m` puts the working folder first on the path, before PYTHONPATH.
    process = subprocess.Popen(command, env=env, cwd=folder, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    summary, summarized = "", 0.0
    for line in process.stderr:
        if re.search(r"\d+ frames, \d+ faces in", line):
            summary, summarized = line, time.perf_counter()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    ended = time.perf_counter()
    match = re.search(r"(\d+) frames, \d+ faces in [\d.]+ s \(([\d.]+) fps", summary)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"{' '.join(command)}: failed ({process.returncode})")
    # The summary comes when the last result is written, `elapsed` after the run started; what
    # follows (the video's last frames and closing it) counts too.
    elapsed = float(re.search(r"faces in ([\d.]+) s", summary)[1])  # type: ignore[index]
    frames = int(match[1])
    return frames / (ended - summarized + elapsed), float(match[2]), usage.ru_utime + usage.ru_stime, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--old", type=Path, help="checkout to compare with (run through PYTHONPATH)")
    parser.add_argument("--new", type=Path, default=REPO, help="checkout measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    checkouts = {"new": args.new.resolve()} | ({"old": args.old.resolve()} if args.old else {})
    runs = [(name, with_video) for name in checkouts for with_video in (False, True)]
    results: dict[tuple[str, bool], list[tuple[float, float, float, int]]] = {run: [] for run in runs}
    sizes: dict[str, int] = {}
    loads = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.rounds):
            for name, with_video in runs if i % 2 == 0 else reversed(runs):
                results[name, with_video].append(rate(checkouts[name], args.video, Path(folder), with_video))
                loads.append(os.getloadavg()[0])
                if with_video:
                    sizes[name] = (Path(folder) / "a.mp4").stat().st_size
    print(f"{args.video.name}, {args.rounds} alternating rounds; load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    for name in checkouts:
        medians = {}
        for with_video in (False, True):
            values = results[name, with_video]
            medians[with_video] = [statistics.median(v[k] for v in values) for k in (0, 1, 2)]
            what = "--jsonl -o a.mp4" if with_video else "--jsonl only     "
            print(
                f"  {name} {what}: {medians[with_video][0]:6.1f} frames/s to exit ({', '.join(f'{v[0]:.1f}' for v in values)}), "
                f"{medians[with_video][1]:6.1f} as the run reports, {medians[with_video][2]:5.1f} s CPU ({', '.join(f'{v[2]:.1f}' for v in values)})"
            )
        print(f"  {name} video / JSON Lines only: {medians[True][0] / medians[False][0]:.2f}x to exit, {medians[True][1] / medians[False][1]:.2f}x as reported")
        extra = medians[True][2] - medians[False][2]
        frames = results[name, True][0][3]
        print(f"  {name} video's cost: {extra:+.1f} s CPU, {1000 * extra / frames:.1f} ms a frame; file {sizes[name] / 1e6:.1f} MB, {sizes[name] / args.video.stat().st_size:.1f}x the input's")


if __name__ == "__main__":
    main()
