"""The streaming engine's targets, each measured side by side in one run on this machine.

1. street-720p.mp4, both attribute networks, JSON Lines: facelens frames/s against decode+detect-only.
2. A 1920x1080 4x4 crowd video built from the shared clips: facelens against the one-call-per-face loop.
3. 20,000 frames (street-720p.mp4 looped): resident memory growth after the first 1,000 frames.
4. Live mode on a 30 fps stream (single-face-1080p.mp4 served as MJPEG on loopback): latency p50/p95.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/streaming.py [--rounds 3] [--skip-soak]

Every figure is also available one at a time from `facelens bench` (see --help).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from facelens import Analyzer, ModelStore
from facelens.bench import Figures, make_crowd_video, run

REPO = Path(__file__).resolve().parent.parent
VIDEOS = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "videos"


def show(title: str, figures: list[Figures]) -> None:
    print(f"\n## {title}")
    print(f"{'mode':16} {'frames':>7} {'faces':>7} {'fps':>8} {'faces/s':>8} {'CPU ms/f':>9} {'p50 ms':>7} {'p95 ms':>7} {'peak MB':>8} {'dropped':>8}")
    for f in figures:
        p50 = "" if f.latency_p50_ms is None else f"{f.latency_p50_ms:.1f}"
        p95 = "" if f.latency_p95_ms is None else f"{f.latency_p95_ms:.1f}"
        print(f"{f.mode:16} {f.frames:7d} {f.faces:7d} {f.fps:8.1f} {f.faces_per_second:8.1f} {f.cpu_ms_per_frame:9.2f} {p50:>7} {p95:>7} {f.peak_rss_mb:8.0f} {f.dropped:8d}")
    for f in figures:
        if f.stages_ms:
            print(f"  {f.mode} per frame: " + ", ".join(f"{k} {v:.2f} ms" for k, v in f.stages_ms.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per comparison; medians are reported")
    parser.add_argument("--skip-soak", action="store_true", help="leave out the 20,000-frame memory run (about 3 minutes)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()

    store = ModelStore()
    # The streaming engine as it was built and targeted: untracked, the two attribute networks only
    # (benchmarks/people.py measures the default, tracked pipeline with head pose and the budget).
    analyzer = Analyzer(store=store, head_pose=False)
    report: dict[str, list[dict]] = {}
    verdicts = []

    street = str(VIDEOS / "street-720p.mp4")
    figures = run(street, analyzer, store, ["detect", "no-track"], rounds=args.rounds)
    show("street-720p.mp4: facelens vs decode+detect-only", figures)
    ratio = figures[1].fps / figures[0].fps
    verdicts.append(f"street-720p facelens / decode+detect = {ratio:.2f} (target >= 0.90)")
    report["street"] = [f.to_dict() for f in figures]

    with tempfile.TemporaryDirectory() as tmp:
        clips = sorted(VIDEOS.glob("*.mp4"))
        crowd = str(make_crowd_video(clips, Path(tmp) / "crowd-4x4-1080p.mp4"))
        figures = run(crowd, analyzer, store, ["decode", "detect", "per-face", "no-track"], rounds=args.rounds)
    show("crowd 4x4 1080p: facelens vs the one-call-per-face loop", figures)
    by_mode = {f.mode: f for f in figures}
    ratio = by_mode["no-track"].fps / by_mode["per-face"].fps
    verdicts.append(f"crowd facelens / per-face loop = {ratio:.2f}x (target >= 1.5x)")
    report["crowd"] = [f.to_dict() for f in figures]

    if not args.skip_soak:
        (soak,) = run(street, analyzer, store, ["no-track"], loop=42)
        show("20,000 frames (street-720p.mp4 x 42)", [soak])
        print("  resident MB every 1000 frames: " + " ".join(f"{m:.0f}" for m in soak.rss_every_1000_mb))
        verdicts.append(f"memory growth after the first 1000 of {soak.frames} frames = {100 * soak.rss_growth:+.1f}% (target < 5%)")
        report["soak"] = [soak.to_dict()]

    (live,) = run(str(VIDEOS / "single-face-1080p.mp4"), analyzer, store, ["no-track"], live=True)
    show("live: single-face-1080p.mp4 as a 30 fps MJPEG stream on loopback", [live])
    verdicts.append(f"live latency p95 = {live.latency_p95_ms:.1f} ms, p50 = {live.latency_p50_ms:.1f} ms (target p95 < 100 ms)")
    report["live"] = [live.to_dict()]

    print("\n## Targets")
    for line in verdicts:
        print("- " + line)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
