"""Is gender biased to male on small or turned faces? Per-face accuracy by true gender, face size and
head pose, and the gender shown for each person.

A. utkface-3k, ages 18-75, as many women as men: each aligned 200 px chip shrunk to S px (the face
   itself is about 0.7 S tall), then through the attribute networks as a face crop.
B. Every face of every frame of the shared videos (every-frame attributes), with its true gender by
   eye: by position in the two gifs and the audience shot of speaker-360p.mp4, by time in
   office-entry-432p.mp4, from tests/data/street_faces_by_eye.csv in street-720p.mp4. By true gender,
   face height (detector box) and head turn (yaw/pitch from the head-pose network).
C. The people of those videos (default pipeline, counted people only): the gender shown against the
   true one.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/gender_bias.py [--family omz] [--per-gender 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from facelens import Analyzer, ModelStore, open_source
from facelens.people import PeopleConfig

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data"
VIDEOS = DATA / "videos"
STREET = REPO / "tests" / "data" / "street_faces_by_eye.csv"
SIZES = (20, 28, 40, 64, 200)
HEIGHTS = ((0, 30), (30, 45), (45, 70), (70, 10_000))
TURNS = ((0, 20), (20, 40), (40, 180))


def _street_anchors() -> dict[int, list[tuple[float, float, float, str]]]:
    anchors: dict[int, list[tuple[float, float, float, str]]] = defaultdict(list)
    with STREET.open(newline="") as f:
        for row in csv.DictReader(f):
            anchors[int(row["frame"])].append((float(row["x"]), float(row["y"]), float(row["height"]), row["gender"]))
    return anchors


def true_gender(video: str, frame: int, width: int, box, anchors) -> str | None:
    """The gender of the face in `box` by eye, None where unknown."""
    cx, cy = box.center
    if video == "head-pose-female-and-male.gif":
        return "female" if cx < width / 2 else "male"
    if video == "face-demographics-walking.gif":
        return "female" if cx < 0.58 * width else "male"  # the woman walks on the left all along (x < 265 of 480)
    if video == "single-face-1080p.mp4":
        return "male"
    if video == "speaker-360p.mp4":
        if frame < 211:
            return "male"  # the speaker and the pianist
        # The audience: a laughing man, an older woman, a man and a woman, left to right.
        return "male" if cx < 120 else "female" if cx < 270 else "male" if cx < 385 else "female"
    if video == "office-entry-432p.mp4":
        for first, last, gender in ((60, 210, "female"), (225, 450, "male"), (500, 700, "female"),
                                    (740, 875, "male"), (920, 1200, "female"), (1230, 1365, "male")):
            if first <= frame <= last:
                return gender
        return None
    if video == "street-720p.mp4":
        # Anchors are every third frame: the nearest within 2 frames and half a face height.
        best = None
        for f in (frame, frame - 1, frame + 1, frame - 2, frame + 2):
            for x, y, h, gender in anchors.get(f, []):
                d = max(abs(x - cx), abs(y - cy)) / h
                if d < 0.5 and (best is None or d < best[0]):
                    best = (d, gender)
        return None if best is None else best[1]
    return None


def part_a(analyzer: Analyzer, per_gender: int) -> dict:
    rows = [r for r in csv.DictReader((DATA / "utkface-3k" / "labels.csv").open()) if 18 <= int(r["age"]) <= 75]
    random.Random(0).shuffle(rows)
    picked = [r for g in ("female", "male") for r in [r for r in rows if r["gender"] == g][:per_gender]]
    images = [cv2.imread(str(DATA / "utkface-3k" / r["path"])) for r in picked]
    out = {}
    print(f"\n## A. utkface-3k, {per_gender} women and {per_gender} men aged 18-75: chips shrunk to S px")
    print(f"{'S px':>5} {'acc women':>9} {'acc men':>8} {'said male':>10}  (share of all faces)")
    for size in SIZES:
        crops = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images]
        said = [a.gender.label if a.gender else None for a in analyzer.describe(crops)]
        truth = [r["gender"] for r in picked]
        acc = {g: np.mean([s == t for s, t in zip(said, truth) if t == g]) for g in ("female", "male")}
        male = np.mean([s == "male" for s in said])
        out[size] = {"accuracy_female": acc["female"], "accuracy_male": acc["male"], "said_male": male}
        print(f"{size:5d} {acc['female']:9.1%} {acc['male']:8.1%} {male:10.1%}")
    return out


def part_b(analyzer: Analyzer, anchors) -> tuple[list[dict], dict]:
    faces = []
    for video in sorted(p.name for p in VIDEOS.iterdir()):
        for result in analyzer.pipeline(people=PeopleConfig(every_frame=True)).run([open_source(VIDEOS / video)]):
            width = result.frame.image.shape[1]
            for face in result.faces:
                truth = true_gender(video, result.index, width, face.box, anchors)
                if truth is None or face.gender is None or face.pose is None:
                    continue
                faces.append({
                    "video": video, "truth": truth, "said": face.gender.label, "p": face.gender.probability,
                    "height": face.box.height, "turn": max(abs(face.pose.yaw), abs(face.pose.pitch)),
                    "quality": face.quality,
                })
    print(f"\n## B. {len(faces)} faces of the shared videos with their gender known by eye")
    table = {}

    def show(title: str, key, bins) -> None:
        print(f"{title:>12} {'women':>6} {'acc':>6} {'men':>6} {'acc':>6} {'said male':>10}")
        for low, high in bins:
            rows = [f for f in faces if low <= key(f) < high]
            women = [f for f in rows if f["truth"] == "female"]
            men = [f for f in rows if f["truth"] == "male"]
            acc_w = np.mean([f["said"] == "female" for f in women]) if women else float("nan")
            acc_m = np.mean([f["said"] == "male" for f in men]) if men else float("nan")
            male = np.mean([f["said"] == "male" for f in rows]) if rows else float("nan")
            table[f"{title} {low}-{high}"] = {"women": len(women), "accuracy_female": acc_w, "men": len(men), "accuracy_male": acc_m}
            print(f"{f'{low}-{high}':>12} {len(women):6d} {acc_w:6.1%} {len(men):6d} {acc_m:6.1%} {male:10.1%}")

    show("height px", lambda f: f["height"], HEIGHTS)
    show("turn deg", lambda f: f["turn"], TURNS)
    small_or_turned = lambda f: f["height"] < 45 or f["turn"] >= 40  # noqa: E731
    show("small|turned", lambda f: int(small_or_turned(f)), ((0, 1), (1, 2)))
    return faces, table


def part_c(analyzer: Analyzer, anchors) -> dict:
    print("\n## C. People (counted) of the shared videos: gender shown against the true one")
    shown: Counter = Counter()
    per_video = {}
    for video in sorted(p.name for p in VIDEOS.iterdir()):
        votes: dict[int, Counter] = defaultdict(Counter)
        final = {}
        for result in analyzer.stream(VIDEOS / video):
            width = result.frame.image.shape[1]
            for face in result.faces:
                if face.track_id is not None:
                    truth = true_gender(video, result.index, width, face.box, anchors)
                    if truth:
                        votes[face.track_id][truth] += 1
            for person in result.people:
                final[person.track_id] = person
        counts: Counter = Counter()
        for track_id, person in final.items():
            if person.counted and votes[track_id]:
                truth = votes[track_id].most_common(1)[0][0]
                counts[(truth, person.gender)] += 1
        shown.update(counts)
        per_video[video] = {f"{t} shown {s}": n for (t, s), n in counts.items()}
        print(f"{video:32}", ", ".join(f"{t} shown {s}: {n}" for (t, s), n in sorted(counts.items())))
    for truth in ("female", "male"):
        row = {s: shown[(truth, s)] for s in ("female", "male", "unknown")}
        print(f"all {truth:6}: shown female {row['female']}, male {row['male']}, unknown {row['unknown']}")
    return per_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", help="age and gender model family (default: the analyzer's)")
    parser.add_argument("--per-gender", type=int, default=300, help="utkface faces per gender (part A)")
    parser.add_argument("--parts", default="abc", help="which parts to run")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    options = {"age_gender_model": args.family} if args.family else {}
    analyzer = Analyzer(store=ModelStore(), **options)
    anchors = _street_anchors()
    report: dict = {}
    if "a" in args.parts:
        report["utkface"] = part_a(analyzer, args.per_gender)
    if "b" in args.parts:
        _, report["faces"] = part_b(analyzer, anchors)
    if "c" in args.parts:
        report["people"] = part_c(analyzer, anchors)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
