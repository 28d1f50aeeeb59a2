"""The tuning experiments behind facelens' defaults (README, "What was tuned, and what was kept").

1. Crop enlargement and squaring, in full mode (detector -> crop -> attributes): 700 utkface-3k
   adults (age, gender) and 700 fer2013 faces (emotion), the largest face of each image.
2. Horizontal-flip test-time augmentation (mean of a face and its mirror) on all of utkface-3k
   (ages 18-75) and fer2013-public, with paired bootstrap 95% intervals of the gain.
3. The detector threshold: precision, recall and false positives per image on WIDER val at
   thresholds around the default 0.5, for the default detector.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/tuning.py

The detectors' AP: `facelens eval ../shared/data/wider-val-300 --detector NAME`; the age
calibration: benchmarks/age_calibration.py.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import cv2
import numpy as np

from facelens import Analyzer, CropConfig
from facelens.evaluate import evaluate_detection, read_wider
from facelens.sources import read_image
from facelens.types import EMOTIONS

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data"


def rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(open(DATA / name / "labels.csv", encoding="utf-8")))


def crops() -> None:
    print("## 1. Crop enlargement and squaring (full mode)")
    utk = random.Random(11).sample([r for r in rows("utkface-3k") if 18 <= int(r["age"]) <= 75], 700)
    fer = random.Random(12).sample(rows("fer2013-public"), 700)
    faces_u = [read_image(DATA / "utkface-3k" / r["path"]) for r in utk]
    faces_f = [read_image(DATA / "fer2013-public" / r["path"]) for r in fer]
    plain = Analyzer(head_pose=False)
    largest = lambda image: max(plain.detect(image), key=lambda d: d.box.area, default=None)  # noqa: E731
    boxes_u, boxes_f = [largest(i) for i in faces_u], [largest(i) for i in faces_f]
    print(f"faces found: utkface {sum(b is not None for b in boxes_u)}/700, fer2013 {sum(b is not None for b in boxes_f)}/700")
    for scale in (1.0, 1.1, 1.2, 1.3, 1.5):
        for square in (True, False):
            analyzer = Analyzer(head_pose=False, crop=CropConfig(scale, square))
            age_errors, genders, emotions = [], [], []
            for image, detection, row in zip(faces_u, boxes_u, utk):
                if detection is not None:
                    (found,) = analyzer.attributes(image, [detection.box])
                    age_errors.append(abs(found.age - int(row["age"])))
                    genders.append(found.gender.label == row["gender"])
            for image, detection, row in zip(faces_f, boxes_f, fer):
                if detection is not None:
                    (found,) = analyzer.attributes(image, [detection.box])
                    emotions.append(found.emotion.label == row["emotion"])
            print(f"scale {scale:.1f} {'square   ' if square else 'unsquared'}: age MAE {np.mean(age_errors):5.2f}  gender {np.mean(genders):.3f}  emotion {np.mean(emotions):.3f}")


def paired_gain(before: np.ndarray, after: np.ndarray, seed: int = 0) -> str:
    """Mean of after - before with a paired percentile bootstrap 95% interval."""
    picks = np.random.default_rng(seed).integers(0, len(before), (2000, len(before)))
    gains = (after[picks] - before[picks]).mean(axis=1)
    low, high = np.percentile(gains, [2.5, 97.5])
    return f"{np.mean(after - before):+.4f} [{low:+.4f}, {high:+.4f}]"


def flips() -> None:
    print("\n## 2. Horizontal-flip test-time augmentation (crop mode, every face)")
    analyzer = Analyzer(head_pose=False)
    utk = [r for r in rows("utkface-3k") if 18 <= int(r["age"]) <= 75]
    truth_age = np.array([float(r["age"]) for r in utk])
    male = np.array([r["gender"] == "male" for r in utk])
    age, age_flip, p_male, p_male_flip = [], [], [], []
    for start in range(0, len(utk), 64):
        images = [read_image(DATA / "utkface-3k" / r["path"]) for r in utk[start : start + 64]]
        for plain, mirrored in zip(analyzer.describe(images), analyzer.describe([cv2.flip(i, 1) for i in images])):
            age.append(plain.age)
            age_flip.append((plain.age + mirrored.age) / 2)
            to_male = lambda g: g.probability if g.label == "male" else 1 - g.probability  # noqa: E731
            p_male.append(to_male(plain.gender))
            p_male_flip.append((to_male(plain.gender) + to_male(mirrored.gender)) / 2)
    right = (np.array(p_male) > 0.5) == male
    right_flip = (np.array(p_male_flip) > 0.5) == male
    print(f"utkface-3k 18-75 (n={len(utk)}): gender {right.mean():.4f} -> {right_flip.mean():.4f}, gain {paired_gain(right * 1.0, right_flip * 1.0)}")
    error, error_flip = np.abs(np.array(age) - truth_age), np.abs(np.array(age_flip) - truth_age)
    print(f"  age MAE {error.mean():.2f} -> {error_flip.mean():.2f}, error reduction {paired_gain(error_flip, error)}")
    fer = rows("fer2013-public")
    truth = np.array([EMOTIONS.index(r["emotion"]) for r in fer])
    probabilities, probabilities_flip = [], []
    for start in range(0, len(fer), 64):
        images = [read_image(DATA / "fer2013-public" / r["path"]) for r in fer[start : start + 64]]
        for plain, mirrored in zip(analyzer.describe(images), analyzer.describe([cv2.flip(i, 1) for i in images])):
            probabilities.append(plain.emotion.probabilities)
            probabilities_flip.append(np.add(plain.emotion.probabilities, mirrored.emotion.probabilities))
    right = np.argmax(probabilities, axis=1) == truth
    right_flip = np.argmax(probabilities_flip, axis=1) == truth
    print(f"fer2013-public (n={len(fer)}): emotion {right.mean():.4f} -> {right_flip.mean():.4f}, gain {paired_gain(right * 1.0, right_flip * 1.0)}")


def thresholds() -> None:
    print("\n## 3. Detector threshold (default detector, WIDER val)")
    images = read_wider(DATA / "wider-val-300")
    analyzer = Analyzer(confidence=0.02, age_gender=False, emotion=False, head_pose=False)
    value = lambda figure: figure["value"] if isinstance(figure, dict) else figure  # noqa: E731
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        ranges = evaluate_detection(analyzer, images, threshold=threshold)["ranges"]
        cells = []
        for name in ("all", ">=64"):
            r = ranges[name]
            cells.append(
                f"{name}: precision {value(r['precision_at_threshold']):.3f} recall {value(r['recall_at_threshold']):.3f} "
                f"FP/image {value(r['false_positives_per_image_at_threshold']):.2f}"
            )
        print(f"threshold {threshold:.1f}  " + "  |  ".join(cells))


if __name__ == "__main__":
    crops()
    flips()
    thresholds()
