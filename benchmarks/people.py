"""People, not boxes: label flicker, tracks against people, and what the attribute budget saves.

1. Flicker: how often a tracked face's shown gender or age bucket changes, per 100 face-frames:
   the per-frame labels of the networks, the fused labels with attributes every frame, and the
   fused labels with the attribute budget (the default). Changes to or from "unknown" are not
   counted as flicker; the share of face-frames still "unknown" is given beside it.
2. Tracks against people counted by eye: face-demographics-walking.gif (2 people) and the first
   10 s (250 frames) of street-720p.mp4 (about 22 people).
3. The attribute budget: frames/s, CPU ms per frame and the share of faces each network saw, every
   frame against the budget, on street-720p.mp4 and the 4x4 1080p crowd of `facelens bench`, with
   the one-call-per-face loop and decode+detect beside them (median of alternating rounds).

    FACELENS_MODELS_DIR=../shared/models python benchmarks/people.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from facelens import Analyzer, ModelStore, open_source
from facelens.bench import Figures, make_crowd_video, run
from facelens.fuse import UNKNOWN, age_bucket
from facelens.people import PeopleConfig

REPO = Path(__file__).resolve().parent.parent
VIDEOS = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "videos"
BY_EYE = {"face-demographics-walking.gif": (None, 2), "street-720p.mp4": (10.0, 22)}
"""People counted by eye: (only those first seen before this many seconds, count)."""


def flicker(tracks: dict[int, list[tuple[str, str]]]) -> tuple[float, float, float]:
    """(gender changes, age-bucket changes) per 100 face-frames, and the share of face-frames unknown."""
    frames = sum(len(labels) for labels in tracks.values())
    gender = bucket = unknown = 0
    for labels in tracks.values():
        unknown += sum(UNKNOWN in pair for pair in labels)
        for i, changes in ((0, "gender"), (1, "bucket")):
            known = [pair[i] for pair in labels if pair[i] != UNKNOWN]
            count = sum(a != b for a, b in zip(known, known[1:]))
            if changes == "gender":
                gender += count
            else:
                bucket += count
    return 100 * gender / max(frames, 1), 100 * bucket / max(frames, 1), unknown / max(frames, 1)


def label_runs(analyzer: Analyzer, video: Path) -> dict[str, dict[int, list[tuple[str, str]]]]:
    raw: dict[int, list] = defaultdict(list)
    fused_every: dict[int, list] = defaultdict(list)
    fused_budget: dict[int, list] = defaultdict(list)
    for result in analyzer.pipeline(people=PeopleConfig(every_frame=True)).run([open_source(video)]):
        for face in result.faces:
            if face.track_id is None or face.person is None:
                continue
            raw[face.track_id].append((face.gender.label if face.gender else UNKNOWN, age_bucket(face.age) if face.age is not None else UNKNOWN))
            fused_every[face.track_id].append((face.person.gender, face.person.age_bucket))
    for result in analyzer.pipeline().run([open_source(video)]):
        for face in result.faces:
            if face.track_id is not None and face.person is not None:
                fused_budget[face.track_id].append((face.person.gender, face.person.age_bucket))
    return {"per-frame": raw, "fused, every frame": fused_every, "fused, budget": fused_budget}


def count_people(analyzer: Analyzer, video: Path, before: float | None) -> int:
    people = {p.track_id: p for r in analyzer.stream(video) for p in r.people}
    return sum(1 for p in people.values() if before is None or (p.first_seen or 0.0) < before)


def show(title: str, figures: list[Figures]) -> None:
    print(f"\n## {title}")
    print(f"{'mode':12} {'frames':>7} {'faces':>7} {'fps':>8} {'CPU ms/f':>9} {'age-gender':>11} {'emotion':>8}")
    for f in figures:
        share = f.attribute_share
        ag = f"{share['age_gender']:.0%}" if share else ""
        em = f"{share['emotion']:.0%}" if share else ""
        print(f"{f.mode:12} {f.frames:7d} {f.faces:7d} {f.fps:8.1f} {f.cpu_ms_per_frame:9.2f} {ag:>11} {em:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per comparison; medians are reported")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    store = ModelStore()
    analyzer = Analyzer(store=store)
    report: dict[str, object] = {}

    print("## 1. Label flicker per 100 face-frames of tracked faces (gender / age bucket), share unknown")
    for name in ("face-demographics-walking.gif", "street-720p.mp4", "speaker-360p.mp4", "office-entry-432p.mp4"):
        for kind, tracks in label_runs(analyzer, VIDEOS / name).items():
            g, b, u = flicker(tracks)
            report[f"flicker {name} {kind}"] = {"gender": g, "age_bucket": b, "unknown": u}
            print(f"{name:30} {kind:20} gender {g:5.1f}  age bucket {b:5.1f}  unknown {u:4.0%}")

    print("\n## 2. Tracks (people recorded) against people counted by eye")
    for name, (before, by_eye) in BY_EYE.items():
        tracks = count_people(analyzer, VIDEOS / name, before)
        scope = "whole clip" if before is None else f"first seen before {before:.0f} s"
        report[f"tracks {name}"] = {"tracks": tracks, "by_eye": by_eye}
        print(f"{name:30} {scope:26} tracks {tracks:3d}  by eye {by_eye}")

    street = str(VIDEOS / "street-720p.mp4")
    figures = run(street, analyzer, store, ["detect", "per-face", "every-frame", "facelens"], rounds=args.rounds)
    show("3a. street-720p.mp4: the attribute budget", figures)
    report["street"] = [f.to_dict() for f in figures]
    with tempfile.TemporaryDirectory() as tmp:
        crowd = str(make_crowd_video(sorted(VIDEOS.glob("*.mp4")), Path(tmp) / "crowd-4x4-1080p.mp4"))
        figures = run(crowd, analyzer, store, ["decode", "detect", "per-face", "every-frame", "facelens"], rounds=args.rounds)
        # The ceiling: the same engine with no attribute network at all (decode, detect, JSON only).
        bare = Analyzer(store=store, age_gender=False, emotion=False, head_pose=False)
        ceiling = run(crowd, bare, store, ["per-face", "no-track"], rounds=args.rounds)
    show("3b. 4x4 1080p crowd: the attribute budget", figures)
    show("3c. 4x4 1080p crowd: the engine with no attribute network (the ceiling of any budget)", ceiling)
    report["crowd ceiling"] = [f.to_dict() for f in ceiling]
    print(f"crowd ceiling: engine without attribute networks / per-face: {ceiling[1].fps / ceiling[0].fps:.2f}x frames/s")
    report["crowd"] = [f.to_dict() for f in figures]
    by_mode = {f.mode: f for f in figures}
    per_face = by_mode["per-face"].fps
    for mode in ("decode", "detect", "every-frame", "facelens"):
        print(f"crowd {mode} / per-face: {by_mode[mode].fps / per_face:.2f}x frames/s")
    saved = 1 - by_mode["facelens"].cpu_ms_per_frame / by_mode["every-frame"].cpu_ms_per_frame
    print(f"crowd CPU per frame saved by the budget: {saved:.0%} (target for facelens / per-face: >= 2.5x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
