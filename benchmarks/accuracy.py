"""Accuracy figures of the core pipeline on the shared labelled data (the samples the tests use).

- detection: recall of the annotated faces of compreface-samples (nose point inside a box) and
  boxes on no annotated face, for every supported detector;
- age and gender: 300 random adults (18-75, seed 2) of utkface-3k, each whole image a face;
- emotion: 300 random faces (seed 3) of fer2013-public.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/accuracy.py
"""

from __future__ import annotations

import csv
import os
import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from facelens import Analyzer
from facelens.detect import DETECTORS
from facelens.sources import read_image

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data"


def detection() -> None:
    root = DATA / "compreface-samples"
    noses: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(root / "noses.csv", newline="") as f:
        for row in csv.DictReader(f):
            noses.setdefault(row["image"], [])
            if row["nose_x"]:
                noses[row["image"]].append((float(row["nose_x"]), float(row["nose_y"])))
    images = {name: read_image(root / name) for name in noses}
    print(f"{'detector':28} {'recall':>8} {'false boxes':>12}")
    for detector in DETECTORS:
        analyzer = Analyzer(detector, age_gender=False, emotion=False)
        found = total = false = 0
        for name, points in noses.items():
            boxes = [d.box for d in analyzer.detect(images[name])]
            total += len(points)
            found += sum(any(b.contains(*p) for b in boxes) for p in points)
            false += sum(not any(b.contains(*p) for p in points) for b in boxes)
        print(f"{detector:28} {found / total:8.3f} {false:12d}   ({found}/{total})")


def attributes(analyzer: Analyzer) -> None:
    root = DATA / "utkface-3k"
    with open(root / "labels.csv", newline="") as f:
        rows = random.Random(2).sample([r for r in csv.DictReader(f) if 18 <= int(r["age"]) <= 75], 300)
    results = analyzer.describe([read_image(root / r["path"]) for r in rows])
    truth = np.array([int(r["age"]) for r in rows])
    predicted = np.array([a.age for a in results])
    errors = np.abs(predicted - truth)
    gender = np.mean([a.gender.label == r["gender"] for a, r in zip(results, rows)])
    print(f"\nutkface-3k, 300 adults: gender accuracy {gender:.3f}, age MAE {errors.mean():.1f} years, "
          f"within 10 years {np.mean(errors <= 10):.2f}, bias {np.mean(predicted - truth):+.1f} years")
    for low in range(18, 76, 10):
        inside = (truth >= low) & (truth < low + 10)
        print(f"  ages {low}-{low + 9}: MAE {errors[inside].mean():.1f} years ({inside.sum()} faces)")

    root = DATA / "fer2013-public"
    with open(root / "labels.csv", newline="") as f:
        rows = random.Random(3).sample(list(csv.DictReader(f)), 300)
    results = analyzer.describe([read_image(root / r["path"]) for r in rows])
    accuracy = np.mean([a.emotion.label == r["emotion"] for a, r in zip(results, rows)])
    print(f"\nfer2013-public, 300 faces: 5-class emotion accuracy {accuracy:.3f}")


if __name__ == "__main__":
    detection()
    attributes(Analyzer())
