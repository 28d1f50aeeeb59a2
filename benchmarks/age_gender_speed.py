"""Tracked frames/s of the age and gender families side by side, or of this checkout against an older one.

Families (default): one process loads an `Analyzer` per family and runs `facelens.bench`'s
`facelens` mode (tracked, fused, with the attribute budget) on VIDEO for each in turn, the order
flipped every round (ABBA...), so the shared CPU's load falls on both alike. Prints each run's
frames/s, the time per frame in each engine stage, the share of faces each network saw, and the
median of the per-round ratios against the first family.

    python benchmarks/age_gender_speed.py /work/shared/data/videos/street-720p.mp4 --families omz,cc0 --rounds 6

With `--old CHECKOUT`, `facelens bench VIDEO --modes facelens` runs alternately from this checkout
and from a git worktree of another commit (each at its own default family):

    git worktree add --detach /tmp/facelens-old <commit>
    python benchmarks/age_gender_speed.py /work/shared/data/videos/street-720p.mp4 --old /tmp/facelens-old --rounds 3
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


def checkout_fps(checkout: Path, video: str) -> float:
    env = os.environ | {"PYTHONPATH": str(checkout)}
    run = subprocess.run([sys.executable, "-m", "facelens", "bench", video, "--modes", "facelens", "--rounds", "1"], env=env, cwd=checkout, capture_output=True, text=True, check=True)
    text = run.stdout + run.stderr
    row = next(line for line in text.splitlines() if line.strip().startswith("facelens"))
    return float(re.findall(r"\d+\.\d+", row)[0])


def against_checkout(video: str, old: Path, rounds: int) -> None:
    olds, news = [], []
    for _ in range(rounds):
        olds.append(checkout_fps(old, video))
        news.append(checkout_fps(HERE, video))
        print(f"old {olds[-1]:.2f} fps, new {news[-1]:.2f} fps", flush=True)
    ratios = [n / o for n, o in zip(news, olds)]
    print(f"median old {statistics.median(olds):.2f}, new {statistics.median(news):.2f}, ratio of pairs {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


def families(video: str, names: list[str], rounds: int) -> None:
    from facelens import bench
    from facelens.analyzer import Analyzer
    from facelens.models import ModelStore

    store = ModelStore()
    analyzers = {name: Analyzer(age_gender_model=name, store=store) for name in names}
    for analyzer in analyzers.values():
        for network in analyzer.attributes.networks():
            network.prepare(range(1, network.max_batch + 1))  # as `facelens bench` does: no run pays for compiling
    fps: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            figures = bench.run(video, analyzers[name], store, ["facelens"])[0]
            fps[name].append(figures.fps)
            stages = ", ".join(f"{k} {v:.2f}" for k, v in figures.stages_ms.items())
            shares = ", ".join(f"{k} {v:.0%}" for k, v in figures.attribute_share.items())
            print(f"round {round_ + 1} {name}: {figures.fps:.2f} frames/s, {figures.cpu_ms_per_frame:.1f} CPU ms/frame; ms/frame: {stages}; faces seen: {shares}", flush=True)
    first = names[0]
    for name in names:
        line = f"{name}: median {statistics.median(fps[name]):.2f} frames/s (runs {' '.join(f'{v:.2f}' for v in fps[name])})"
        if name != first:
            ratios = [a / b for a, b in zip(fps[name], fps[first])]
            line += f"; {name}/{first} per round: median {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--families", default="omz,cc0", help="comma-separated families; ratios are against the first")
    parser.add_argument("--old", type=Path, help="checkout of an older commit to compare this one with instead")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.old:
        against_checkout(args.video, args.old, args.rounds)
    else:
        families(args.video, [n.strip() for n in args.families.split(",") if n.strip()], args.rounds)


if __name__ == "__main__":
    main()
