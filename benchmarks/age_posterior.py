"""Person-level age from several views: the weighted median of the per-view ages (today's fusion)
against a posterior over cc0's 81 ages, on utkface faces as pseudo-tracks (we have no age labels
for tracked people). Each face is seen `--views` times, each view the whole image shifted, scaled,
shrunk (face 40-200 px) and brightened at random, run as users run it (detector, then the largest
face, cc0 on its aligned chip) and weighted by `face_quality`. Prints fused age MAE (95% bootstrap
interval, and the paired difference to the median), and for each rule's stated 95% interval how
often the true age falls inside it and how wide it is.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/age_posterior.py ../shared/data/utkface-3k/labels.csv --limit 1000
"""

from __future__ import annotations

import argparse
import math
import os

import cv2
import numpy as np

from facelens import Analyzer, evaluate
from facelens.attribute_models.cc0 import AGES
from facelens.fuse import FusionConfig, face_quality, robust_age, sharpness
from facelens.sources import read_image

Z95 = 1.959964


def view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented view: shift up to 8%, scale 0.9-1.1, shrink so the face is ~40-200 px, brightness 0.7-1.3."""
    h, w = image.shape[:2]
    scale = rng.uniform(0.9, 1.1)
    shift = rng.uniform(-0.08, 0.08, 2) * (w, h)
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    matrix[:, 2] += shift
    out = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    shrink = rng.uniform(0.25, 1.0)
    if shrink < 0.98:
        out = cv2.resize(out, (max(8, round(w * shrink)), max(8, round(h * shrink))), interpolation=cv2.INTER_AREA)
    gain, offset = rng.uniform(0.7, 1.3), rng.uniform(-20, 20)
    return np.clip(out.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def collect(analyzer: Analyzer, items, views: int, seed: int) -> dict[str, np.ndarray]:
    """Per face and view: age, distribution, quality (NaN / 0 where no face was found)."""
    rng = np.random.default_rng(seed)
    ages = np.full((len(items), views), np.nan)
    dists = np.zeros((len(items), views, len(AGES)))
    quality = np.zeros((len(items), views))
    for n, item in enumerate(items):
        image = read_image(item.path)
        for k in range(views):
            frame = view(image, rng)
            faces = analyzer.analyze(frame)
            face = max(faces, key=lambda f: f.box.area, default=None)
            if face is None or face.age is None:
                continue
            attributes = analyzer.attributes(frame, [face.box])[0]  # the distribution (Face does not carry it)
            b = face.box
            crop = frame[max(0, int(b.y1)) : int(b.y2), max(0, int(b.x1)) : int(b.x2)]
            ages[n, k] = attributes.age
            dists[n, k] = attributes.age_distribution
            quality[n, k] = face_quality(b, face.confidence, sharpness(crop))
        if n % 100 == 99:
            print(f"  {n + 1} faces", flush=True)
    return {"ages": ages, "dists": dists, "quality": quality, "truth": np.array([i.age for i in items], float)}


def posterior(dists: np.ndarray, weights: np.ndarray, temper: str, floor: float) -> np.ndarray:
    """Tempered product of the views' distributions (each mixed with `floor` of uniform), normalised."""
    p = (1 - floor) * dists + floor / len(AGES)
    if temper == "linear":  # the quality-weighted mixture
        post = (weights[:, None] * p).sum(0)
        return post / post.sum()
    a = weights / weights.sum()
    if temper == "sqrt_n":
        a = a * math.sqrt(weights.sum() ** 2 / np.square(weights).sum())
    elif temper == "n":
        a = a * weights.sum() ** 2 / np.square(weights).sum()
    log = (a[:, None] * np.log(p)).sum(0)
    post = np.exp(log - log.max())
    return post / post.sum()


def credible(post: np.ndarray, mass: float = 0.95) -> tuple[float, float]:
    """Central interval over the ages, treating each of the 81 as a point."""
    c = np.cumsum(post)
    lo = AGES[int(np.searchsorted(c, (1 - mass) / 2))]
    hi = AGES[min(int(np.searchsorted(c, 1 - (1 - mass) / 2)), len(AGES) - 1)]
    return float(lo), float(hi)


def fuse(data: dict[str, np.ndarray], views: int) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Rule -> (age, interval low, interval high) per face, from its first `views` views."""
    spread = FusionConfig().age_min_spread
    rules: dict[str, list] = {}
    for n in range(len(data["truth"])):
        q = data["quality"][n, :views]
        ok = (q > 0) & ~np.isnan(data["ages"][n, :views])
        if not ok.any():
            continue
        ages, w, dists = data["ages"][n, :views][ok], q[ok], data["dists"][n, :views][ok]
        median, se = robust_age(ages, w, spread)
        rules.setdefault("median, +-1.96 se (today)", []).append((n, median, median - Z95 * se, median + Z95 * se))
        for temper, floor in (("linear", 0.0), ("geometric", 0.01), ("sqrt_n", 0.01), ("n", 0.01), ("n", 0.05)):
            post = posterior(dists, w, temper, floor)
            lo, hi = credible(post)
            rules.setdefault(f"posterior {temper}, floor {floor}", []).append((n, float(post @ AGES), lo, hi))
    return {k: tuple(np.array(c) for c in zip(*v)) for k, v in rules.items()}


def boot(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    means = values[rng.integers(0, len(values), (1000, len(values)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="npz of the per-view outputs: read if it exists, else written")
    args = parser.parse_args()
    if args.cache and os.path.exists(args.cache):
        data = dict(np.load(args.cache))
    else:
        items = [i for i in evaluate.sample(evaluate.read_manifest(args.manifest).items, args.limit, args.seed) if i.age is not None]
        analyzer = Analyzer(age_gender_model="cc0", emotion=False, head_pose=False)
        data = collect(analyzer, items, args.views, args.seed)
        if args.cache:
            np.savez_compressed(args.cache, **data)
    truth = data["truth"]
    single = data["ages"][:, 0]
    has = ~np.isnan(single)
    print(f"{len(truth)} faces; one view (the first): age MAE {np.abs(single[has] - truth[has]).mean():.2f}")
    for views in sorted({3, data["ages"].shape[1]}):
        rules = fuse(data, views)
        base_n, base_age = rules["median, +-1.96 se (today)"][:2]
        base_err = dict(zip(base_n.tolist(), np.abs(base_age - truth[base_n])))
        print(f"{views} views a face:")
        for name, (n, age, lo, hi) in rules.items():
            err = np.abs(age - truth[n])
            t = truth[n]
            adult = (t >= 18) & (t <= 75)
            diff = err - np.array([base_err[i] for i in n.tolist()])
            rng = np.random.default_rng(0)
            a, b = boot(err, rng)
            d1, d2 = boot(diff, rng)
            inside = (t >= lo) & (t <= hi + 1)  # an age in whole years falls in [lo, hi + 1)
            in80 = t <= 80
            print(
                f"  {name}: MAE {err.mean():.2f} [{a:.2f}-{b:.2f}], 18-75 {err[adult].mean():.2f}, under 18 {err[t < 18].mean():.2f};"
                f" minus median {diff.mean():+.2f} [{d1:+.2f}-{d2:+.2f}]; 95% interval holds the true age"
                f" {inside.mean():.3f} (ages <= 80: {inside[in80].mean():.3f}), median width {np.median(hi - lo):.1f} y"
            )


if __name__ == "__main__":
    main()
