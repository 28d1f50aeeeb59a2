"""Per-face gender with an uncertain band: faces whose p(male) lies within [0.5 - h, 0.5 + h] are
"unknown". For each family and eval mode prints, per half-width h, the share left unknown, the
gender accuracy on the faces labelled (95% bootstrap interval), and by true gender, so the cost in
coverage and the gain in accuracy are side by side.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/gender_unknown.py ../shared/data/utkface-3k/labels.csv
"""

from __future__ import annotations

import argparse

import numpy as np

from facelens import Analyzer, evaluate
from facelens.models import ModelStore
from facelens.sources import read_image

HALF_WIDTHS = (0.0, 0.05, 0.10, 0.15, 0.20)


def p_male(gender) -> float:
    if gender is None:
        return float("nan")
    return gender.probability if gender.label == "male" else 1 - gender.probability


def collect(analyzer: Analyzer, items, mode: str) -> np.ndarray:
    out = []
    for start in range(0, len(items), 32):
        chunk = items[start : start + 32]
        images = [read_image(i.path) for i in chunk]
        if mode == "crop":
            out += [p_male(a.gender) for a in analyzer.describe(images)]
        else:
            for image in images:
                faces = analyzer.analyze(image)
                face = max(faces, key=lambda f: f.box.area, default=None)
                out.append(p_male(None if face is None else face.gender))
    return np.array(out)


def interval(correct: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    if not len(correct):
        return float("nan"), float("nan")
    means = rng.choice(correct, (1000, len(correct))).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--families", default="cc0,omz")
    parser.add_argument("--modes", default="crop,full")
    args = parser.parse_args()
    store = ModelStore()
    items = [i for i in evaluate.sample(evaluate.read_manifest(args.manifest).items, args.limit, 0) if i.gender]
    truth = np.array([i.gender == "male" for i in items])
    ages = np.array([np.nan if i.age is None else i.age for i in items])
    for family in args.families.split(","):
        analyzer = Analyzer(age_gender_model=family, emotion=False, head_pose=False, store=store)
        for mode in args.modes.split(","):
            p = collect(analyzer, items, mode)
            found = ~np.isnan(p)
            print(f"{family} {mode}: {found.sum()} of {len(items)} faces with a gender", flush=True)
            for h in HALF_WIDTHS:
                labelled = found & (np.abs(p - 0.5) > h) if h else found
                correct = (p[labelled] > 0.5) == truth[labelled]
                lo, hi = interval(correct.astype(float), np.random.default_rng(0))
                cells = [f"h {h:.2f} (band {0.5 - h:.2f}-{0.5 + h:.2f}): unknown {1 - labelled.sum() / found.sum():.3f}",
                         f"accuracy on labelled {correct.mean():.3f} [{lo:.3f}-{hi:.3f}]"]
                for name, sel in (("female", ~truth), ("male", truth), ("18-75", (ages >= 18) & (ages <= 75)), ("under 18", ages < 18)):
                    s = labelled & sel
                    cells.append(f"{name} {((p[s] > 0.5) == truth[s]).mean():.3f} unknown {1 - s.sum() / (found & sel).sum():.3f}")
                print("  " + "; ".join(cells), flush=True)
            # Of the faces a band leaves unknown, how many would have been wrong anyway.
            for h in HALF_WIDTHS[1:]:
                band = found & (np.abs(p - 0.5) <= h)
                print(f"  in band h {h:.2f}: {band.sum()} faces, accuracy there {((p[band] > 0.5) == truth[band]).mean():.3f}", flush=True)


if __name__ == "__main__":
    main()
