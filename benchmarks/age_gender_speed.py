"""Tracked frames/s of facelens with its default age and gender family against an older checkout, side by side.

Runs `facelens bench VIDEO --modes facelens --rounds 1` alternately from this checkout and from a
git worktree of another commit (the same machine, the same minute, so the shared CPU's load falls
on both), `--rounds` times, and prints each run's frames/s and the median ratio.

    git worktree add --detach /tmp/facelens-old <commit>
    python benchmarks/age_gender_speed.py /work/shared/data/videos/street-720p.mp4 /tmp/facelens-old --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def fps(checkout: Path, video: str) -> float:
    env = os.environ | {"PYTHONPATH": str(checkout)}
    run = subprocess.run([sys.executable, "-m", "facelens", "bench", video, "--modes", "facelens", "--rounds", "1"], env=env, cwd=checkout, capture_output=True, text=True, check=True)
    text = run.stdout + run.stderr
    row = next(line for line in text.splitlines() if line.strip().startswith("facelens"))
    return float(re.findall(r"\d+\.\d+", row)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("old", type=Path, help="checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    old, new = [], []
    for _ in range(args.rounds):
        old.append(fps(args.old, args.video))
        new.append(fps(HERE, args.video))
        print(f"old {old[-1]:.1f} fps, new {new[-1]:.1f} fps", flush=True)
    ratios = [n / o for n, o in zip(new, old)]
    print(f"median old {statistics.median(old):.1f}, new {statistics.median(new):.1f}, ratio of pairs {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
