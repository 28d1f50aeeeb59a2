"""Fit facelens' age calibration on half of utkface-3k and measure it on the other half.

age-gender-recognition-retail-0013 reads older adults younger than they are (on utkface-3k: -12
years at 48-57, -22 at 68-75). The calibration maps the network's age to the median true age of
faces the network gave that age, a monotone piecewise-linear table. It is fitted on the faces
whose true age is 18-75 (the model's valid range) of one half of utkface-3k, chosen by a hash of
the file name, and measured on the other half, which it never saw.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/age_calibration.py [--write]

`--write` stores the table as facelens/age_calibration.csv (applied with `Analyzer(calibrate_age=True)`
or `facelens analyze --calibrate-age`).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from facelens import Analyzer
from facelens.attributes import AgeCalibration
from facelens.sources import read_image

REPO = Path(__file__).resolve().parent.parent
UTK = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "utkface-3k"
TABLE = REPO / "facelens" / "age_calibration.csv"
KNOTS = 12


def held_out(path: str) -> bool:
    """The half of utkface-3k the table is measured on (never fitted on)."""
    return hashlib.sha1(path.encode()).digest()[0] % 2 == 1


def fit(predicted: np.ndarray, truth: np.ndarray, knots: int = KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """(network ages, calibrated ages): the median true age in each of `knots` equal-count bins of the
    network's age, made non-decreasing so the mapping keeps the order of ages."""
    edges = np.quantile(predicted, np.linspace(0, 1, knots + 1))
    x, y = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (predicted >= low) & (predicted <= high)
        x.append(float(np.median(predicted[inside])))
        y.append(float(np.median(truth[inside])))
    return np.array(x), np.maximum.accumulate(np.array(y))


def bootstrap(errors: np.ndarray, seed: int = 0, n: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = errors[rng.integers(0, len(errors), (n, len(errors)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"store the table as {TABLE.relative_to(REPO)}")
    args = parser.parse_args()
    rows = list(csv.DictReader(open(UTK / "labels.csv", encoding="utf-8")))
    analyzer = Analyzer(emotion=False, head_pose=False, calibrate_age=False)
    predicted = []
    for start in range(0, len(rows), 64):
        chunk = rows[start : start + 64]
        predicted += [a.age for a in analyzer.describe([read_image(UTK / r["path"]) for r in chunk])]
    predicted = np.array(predicted)
    truth = np.array([float(r["age"]) for r in rows])
    test = np.array([held_out(r["path"]) for r in rows])
    adult = (truth >= 18) & (truth <= 75)
    x, y = fit(predicted[~test & adult], truth[~test & adult])
    calibrated = AgeCalibration(tuple(x), tuple(y))(predicted)  # exactly as the package applies it

    print(f"fitted on {np.sum(~test & adult)} faces aged 18-75; measured on the other half ({np.sum(test)} faces)")
    print(f"{'held-out faces':24} {'n':>5} {'MAE before':>11} {'MAE after':>10}  95% CI after   bias before -> after")
    for name, mask in (("aged 18-75", test & adult), ("all ages", test), ("under 18", test & (truth < 18)), ("over 75", test & (truth > 75))):
        before, after = np.abs(predicted[mask] - truth[mask]), np.abs(calibrated[mask] - truth[mask])
        low, high = bootstrap(after)
        bias = (np.mean(predicted[mask] - truth[mask]), np.mean(calibrated[mask] - truth[mask]))
        print(f"{name:24} {mask.sum():5d} {before.mean():11.2f} {after.mean():10.2f}  {low:5.2f}-{high:5.2f}   {bias[0]:+6.2f} -> {bias[1]:+6.2f}")
    for low, high in ((18, 28), (28, 38), (38, 48), (48, 58), (58, 68), (68, 76)):
        mask = test & (truth >= low) & (truth < high)
        print(f"  {low}-{high - 1}: MAE {np.abs(predicted[mask] - truth[mask]).mean():5.1f} -> {np.abs(calibrated[mask] - truth[mask]).mean():5.1f} (n={mask.sum()})")
    print("table: " + ", ".join(f"{a:.1f}->{b:.1f}" for a, b in zip(x, y)))
    if args.write:
        with open(TABLE, "w", encoding="utf-8", newline="") as file:
            file.write("# network age -> calibrated age; fitted by benchmarks/age_calibration.py on half of utkface-3k (ages 18-75)\n")
            writer = csv.writer(file)
            writer.writerow(["network_age", "calibrated_age"])
            writer.writerows([round(a, 2), round(b, 2)] for a, b in zip(x, y))
        print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
