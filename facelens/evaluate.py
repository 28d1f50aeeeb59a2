"""Accuracy of facelens on labelled data: attribute figures on a manifest, detection figures on WIDER FACE.

    facelens eval ../shared/data/utkface-3k/labels.csv                # age and gender on face crops
    facelens eval ../shared/data/utkface-3k/labels.csv --mode full    # detector first, as users get it
    facelens eval ../shared/data/fer2013-public/labels.csv            # emotion, with a confusion matrix
    facelens eval ../shared/data/wider-val-300                        # detection AP and PR curve

Inputs
- A manifest: a CSV with a `path` column (relative to the CSV's folder, or absolute) and at least
  one of `age` (years), `gender` (female/male), `age_bucket` (a label of `AGE_BUCKETS`), `emotion`
  (one of `EMOTIONS`); labels are case-insensitive and an empty cell is "not labelled". A row with
  an empty path, a missing file, a bad label or no label at all is skipped with a warning.
- WIDER FACE ground truth: the official `wider_face_val_bbx_gt.txt` format (or its folder), with
  the images under `images/` next to it. Boxes with invalid=1 are ignore regions.

Definitions (the figures of `evaluate_attributes` and `evaluate_detection`)
- Attribute modes: "crop" runs the attribute networks on the whole labelled image (it is the face);
  "full" runs the detector on it and takes the face with the largest box. In full mode an image
  without any face is "missed" (the miss rate is reported) and every attribute figure is over the
  images where a face was found.
- Age MAE: mean |predicted - true| in years, over all labelled ages and over true ages 18-75 (the
  range the model is made for). Age-bucket accuracy: the `AGE_BUCKETS` label of the predicted age
  against the true bucket (the `age_bucket` column if given, else the bucket of the true age).
- Gender: a face the network is unsure of gets "unknown" (`facelens.attributes.UNSURE_GENDER`);
  "gender unknown" is their share, and gender accuracy is over the faces given a gender.
- Confidence intervals: percentile bootstrap, 95%, `BOOTSTRAP_RESAMPLES` resamples of the items
  with replacement, fixed seed. Detection figures resample whole images (faces of one image are
  not independent).
- Detection matching: detections in descending score order (stable for ties); each takes the
  unmatched valid face of highest IoU (the first listed on a tie) if that IoU >= 0.5: a true
  positive. Otherwise it is ignored (neither true nor false positive) when its IoU with an ignore
  region is >= 0.5, else it is a false positive. A face is matched at most once; ignore regions
  absorb any number of detections. Degenerate boxes (zero width or height: the format's
  placeholder for an image without faces) are dropped.
- Size ranges, by box height h in pixels: "<32" h < 32, "32-64" 32 <= h < 64, ">=64" h >= 64. For
  one range, faces outside it become ignore regions, and a detection whose own height is outside
  the range is ignored unless it matches a face in the range. (The COCO rule for area ranges.)
- AP: all-point interpolated average precision (VOC 2010+): the area under the precision envelope
  p_interp(r) = max precision at any recall >= r, which equals the mean over all valid faces of the
  envelope precision at the detection that found it (0 for faces never found). The detector runs
  at confidence `CURVE_CONFIDENCE` so the curve reaches far; recall, precision and false positives
  per image are also given at the default confidence `DEFAULT_THRESHOLD`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .analyzer import Analyzer
from .errors import FacelensError, SourceError
from .files import write_atomically, write_pngs
from .fuse import AGE_BUCKETS, age_bucket
from .sources import read_image
from .types import EMOTIONS, GENDERS, Attributes

__all__ = [
    "CURVE_CONFIDENCE",
    "DEFAULT_THRESHOLD",
    "MODES",
    "SIZE_RANGES",
    "Item",
    "Manifest",
    "Matches",
    "Skip",
    "WiderImage",
    "accuracy",
    "average_precision",
    "bootstrap_ci",
    "confusion_matrix",
    "evaluate_attributes",
    "evaluate_detection",
    "iou_matrix",
    "locate",
    "match_detections",
    "mean_absolute_error",
    "precision_recall",
    "read_manifest",
    "read_wider",
    "sample",
    "summary",
    "write_report",
]

log = logging.getLogger("facelens")

MODES: tuple[str, ...] = ("crop", "full")
IOU = 0.5
DEFAULT_THRESHOLD = 0.5
"""The detector confidence `Analyzer` uses by default: the operating point users get."""
CURVE_CONFIDENCE = 0.02
"""Detector confidence for detection runs: low, so the precision/recall curve reaches far."""
SIZE_RANGES: tuple[tuple[str, float, float], ...] = (("<32", 0.0, 32.0), ("32-64", 32.0, 64.0), (">=64", 64.0, math.inf))
"""(name, low, high) of face heights in pixels, low <= h < high."""
ADULT = (18.0, 75.0)
"""True ages the omz age-gender model is made for (inclusive)."""
MINOR_AGE = 18.0
"""Under this age a person is a minor (`facelens.types.Fused.minor`)."""
BOOTSTRAP_RESAMPLES = 1000
LEVEL = 0.95
CURVE_POINTS = 200
"""Most points of a precision/recall curve kept in results.json."""
SHOWN_WARNINGS = 20
"""Skipped items warned about one by one; the rest are counted in one last warning."""
LABEL_COLUMNS: tuple[str, ...] = ("age", "gender", "age_bucket", "emotion")
BUCKETS: tuple[str, ...] = tuple(label for label, _, _ in AGE_BUCKETS)
MAX_AGE = 150.0

T = TypeVar("T")
Progress = Callable[[int], None]
"""Called with how many more items are done."""


# --- metrics: pure functions ---------------------------------------------------------------------


def mean_absolute_error(truth: np.ndarray, predicted: np.ndarray) -> Any:
    """Mean |predicted - truth| over the last axis: a float for 1-D input, one per row for 2-D."""
    value = np.mean(np.abs(np.asarray(predicted, float) - np.asarray(truth, float)), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def mean_error(truth: np.ndarray, predicted: np.ndarray) -> Any:
    """Mean predicted - truth (the bias) over the last axis, like `mean_absolute_error`."""
    value = np.mean(np.asarray(predicted, float) - np.asarray(truth, float), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> Any:
    """Share of equal labels over the last axis: a float for 1-D input, one per row for 2-D."""
    value = np.mean(np.asarray(truth) == np.asarray(predicted), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def share(flags: np.ndarray) -> Any:
    """Share of true values over the last axis (a rate, e.g. of missed faces)."""
    value = np.mean(np.asarray(flags, bool), axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def confusion_matrix(truth: Sequence[Any], predicted: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """Counts (len(labels), len(labels)): row = true label, column = predicted label, in `labels`
    order. A value not in `labels` is a ValueError."""
    index = {label: i for i, label in enumerate(labels)}
    if len(truth) != len(predicted):
        raise ValueError(f"truth and predicted differ in length: {len(truth)} != {len(predicted)}")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        if t not in index or p not in index:
            raise ValueError(f"label {t if t not in index else p!r} is not one of {list(labels)}")
        matrix[index[t], index[p]] += 1
    return matrix


def bootstrap_ci(
    statistic: Callable[..., Any], *arrays: np.ndarray, n: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of `statistic(*arrays)`.

    The items (same index across `arrays`) are resampled with replacement `n` times; `statistic`
    gets the resampled arrays with a leading resample axis, shape (k, N), and must reduce the last
    axis to k values (`mean_absolute_error` and `accuracy` do). Returns the (1 - level) / 2 and
    (1 + level) / 2 percentiles of the n values (NaN ones left out); (nan, nan) without items.
    Deterministic for a seed.
    """
    data = [np.asarray(a) for a in arrays]
    if not data:
        raise ValueError("bootstrap_ci needs at least one array")
    size = len(data[0])
    if any(len(a) != size for a in data):
        raise ValueError("bootstrap_ci: the arrays differ in length")
    if size == 0 or n < 1:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    rows = max(1, 4_000_000 // size)  # bounded memory for big inputs; the same draws for a seed and size
    values = []
    for start in range(0, n, rows):
        index = rng.integers(0, size, size=(min(rows, n - start), size))
        values.append(np.asarray(statistic(*(a[index] for a in data)), float).reshape(-1))
    stats = np.concatenate(values)
    if stats.shape != (n,):
        raise ValueError(f"the statistic must reduce the last axis: got {stats.shape[0]} values for {n} resamples")
    if np.all(np.isnan(stats)):
        return (math.nan, math.nan)
    low, high = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def precision_recall(
    scores: Sequence[float], is_true_positive: Sequence[bool], n_positives: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, score) after each detection, detections in descending score order
    (stable: equal scores keep their order). Ignored detections must be left out by the caller."""
    scores_ = np.asarray(scores, float).reshape(-1)
    tp = np.asarray(is_true_positive, bool).reshape(-1)
    if len(scores_) != len(tp):
        raise ValueError("scores and is_true_positive differ in length")
    order = np.argsort(-scores_, kind="stable")
    hits = np.cumsum(tp[order])
    precision = hits / np.arange(1, len(tp) + 1)
    recall = hits / n_positives if n_positives > 0 else np.full(len(tp), math.nan)
    return precision, recall, scores_[order]


def average_precision(scores: Sequence[float], is_true_positive: Sequence[bool], n_positives: int) -> float:
    """All-point interpolated AP (VOC 2010+): area under the precision envelope of the
    precision/recall curve, recall running to `n_positives`. NaN when `n_positives` is 0."""
    tp = np.asarray(is_true_positive, bool).reshape(-1)
    if n_positives <= 0:
        return math.nan
    if tp.sum() > n_positives:
        raise ValueError(f"{int(tp.sum())} true positives but only {n_positives} positives")
    precision, _, _ = precision_recall(scores, tp, n_positives)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    order = np.argsort(-np.asarray(scores, float).reshape(-1), kind="stable")
    # Recall steps up by 1/n_positives at each true positive; the envelope is the height there.
    return float(envelope[tp[order]].sum() / n_positives)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` (N, 4) with every box of `b` (M, 4): (N, M).
    Boxes are x1, y1, x2, y2 in pixels; a pair with an empty union has IoU 0."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass(frozen=True, eq=False)
class Matches:
    """How the detections of one image fared, each array in the order the detections were given."""

    true_positive: np.ndarray
    """bool: matched a valid face (in the size range, if any)."""
    ignored: np.ndarray
    """bool: neither true nor false positive (on an ignore region, or outside the size range)."""
    matched: np.ndarray
    """int: index of the ground-truth box a true positive matched, else -1."""
    n_positives: int
    """Valid faces (in the size range, if any): what recall is out of."""

    @property
    def false_positive(self) -> np.ndarray:
        return ~self.true_positive & ~self.ignored


def match_detections(
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    gt_boxes: np.ndarray,
    ignore_mask: np.ndarray,
    iou: float = IOU,
    height_range: tuple[float, float] | None = None,
) -> Matches:
    """Greedy matching of one image's detections to its ground truth (see the module docstring).

    Boxes are (N, 4) x1, y1, x2, y2. `ignore_mask` marks ground-truth ignore regions. With
    `height_range` (low, high), only faces with low <= height < high count; the others become
    ignore regions, and unmatched detections outside the range are ignored.
    """
    pred = np.asarray(pred_boxes, float).reshape(-1, 4)
    scores = np.asarray(pred_scores, float).reshape(-1)
    gt = np.asarray(gt_boxes, float).reshape(-1, 4)
    ignore = np.asarray(ignore_mask, bool).reshape(-1).copy()
    if len(scores) != len(pred) or len(ignore) != len(gt):
        raise ValueError("match_detections: boxes and scores (or ground truth and ignore mask) differ in length")
    if height_range is not None:
        low, high = height_range
        heights = gt[:, 3] - gt[:, 1]
        ignore |= ~((heights >= low) & (heights < high))
    overlaps = iou_matrix(pred, gt)
    taken = np.zeros(len(gt), bool)
    true_positive = np.zeros(len(pred), bool)
    ignored = np.zeros(len(pred), bool)
    matched = np.full(len(pred), -1, dtype=np.int64)
    for i in np.argsort(-scores, kind="stable"):
        free = np.where(~ignore & ~taken, overlaps[i], -1.0)
        j = int(np.argmax(free)) if len(gt) else -1
        if j >= 0 and free[j] >= iou:
            true_positive[i], matched[i], taken[j] = True, j, True
        elif ignore.any() and overlaps[i][ignore].max() >= iou:
            ignored[i] = True
    if height_range is not None:
        heights = pred[:, 3] - pred[:, 1]
        ignored |= ~true_positive & ~((heights >= height_range[0]) & (heights < height_range[1]))
    return Matches(true_positive, ignored, matched, int((~ignore).sum()))


# --- inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skip:
    """An item left out, and why."""

    item: str
    reason: str
    """A short kind: "missing file", "bad age", "unreadable image", ..."""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason, "detail": self.detail}


class _Skips:
    """Collects skipped items, warning about the first `SHOWN_WARNINGS` and counting the rest."""

    def __init__(self) -> None:
        self.items: list[Skip] = []

    def add(self, item: str, reason: str, detail: str = "") -> None:
        self.items.append(Skip(item, reason, detail))
        if len(self.items) <= SHOWN_WARNINGS:
            log.warning("%s: %s%s, skipped", item, reason, f" ({detail})" if detail else "")

    def finish(self) -> list[Skip]:
        if len(self.items) > SHOWN_WARNINGS:
            log.warning("%d more skipped (%d in all; the first %d shown)", len(self.items) - SHOWN_WARNINGS, len(self.items), SHOWN_WARNINGS)
        return self.items


@dataclass(frozen=True)
class Item:
    """One labelled image of a manifest; None where the manifest has no label."""

    path: Path
    age: float | None = None
    gender: str | None = None
    age_bucket: str | None = None
    """From the `age_bucket` column, else the bucket of `age`."""
    emotion: str | None = None
    row: int = 0
    """Line of the manifest."""


@dataclass(frozen=True)
class Manifest:
    path: Path
    items: list[Item]
    skipped: list[Skip]
    labels: tuple[str, ...]
    """Label columns present, of `LABEL_COLUMNS`."""


def read_manifest(path: str | Path) -> Manifest:
    """The labelled images of a CSV manifest (see the module docstring).

    Bad rows are warned about and returned in `skipped`; a missing or unreadable file, one without
    a `path` column or without any label column, or one without a usable row is a FacelensError.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise FacelensError(f"{path}: no such manifest") from None
    except IsADirectoryError:
        raise FacelensError(f"{path}: is a folder, not a CSV manifest") from None
    except OSError as error:
        raise FacelensError(f"{path}: cannot read ({error.strerror or error})") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise FacelensError(f"{path}: not a CSV manifest ({error})") from None
    columns = {name.strip().lower(): name for name in header if name is not None}
    if "path" not in columns:
        shown = ", ".join(header) if header else "none"
        raise FacelensError(f"{path}: no 'path' column (columns: {shown})")
    labels = tuple(c for c in LABEL_COLUMNS if c in columns)
    if not labels:
        raise FacelensError(f"{path}: no label column; need at least one of {', '.join(LABEL_COLUMNS)}")
    folder = path.parent
    skips = _Skips()
    items = []
    for number, row in enumerate(rows, start=2):

        def cell(name: str, row: dict[str, Any] = row) -> str:
            value = row.get(columns[name]) if name in columns else None
            return value.strip() if isinstance(value, str) else ""

        raw = cell("path")
        where = f"{path.name} row {number}" + (f" ({raw})" if raw else "")
        if not raw:
            skips.add(where, "empty path")
            continue
        label, problem = _labels(cell("age"), cell("gender"), cell("age_bucket"), cell("emotion"))
        if problem is not None:
            skips.add(where, *problem)
            continue
        file_path = Path(raw) if Path(raw).is_absolute() else folder / raw
        if not file_path.is_file():
            skips.add(where, "missing file")
            continue
        items.append(Item(file_path, row=number, **label))
    skipped = skips.finish()
    if not items:
        raise FacelensError(f"{path}: no usable row" + (f" (all {len(rows)} skipped)" if rows else ""))
    return Manifest(path, items, skipped, labels)


def _labels(age: str, gender: str, bucket: str, emotion: str) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The labels of one row, or the reason (kind, detail) it is bad."""
    label: dict[str, Any] = {}
    if age:
        try:
            value = float(age)
        except ValueError:
            value = math.nan
        if not 0 <= value <= MAX_AGE:
            return label, ("bad age", repr(age))
        label["age"] = value
    if gender:
        if gender.lower() not in GENDERS:
            return label, ("bad gender", f"{gender!r}, not one of {'/'.join(GENDERS)}")
        label["gender"] = gender.lower()
    if bucket:
        if bucket.lower() not in BUCKETS:
            return label, ("bad age_bucket", f"{bucket!r}, not one of {', '.join(BUCKETS)}")
        label["age_bucket"] = bucket.lower()
    elif "age" in label:
        label["age_bucket"] = age_bucket(label["age"])
    if emotion:
        if emotion.lower() not in EMOTIONS:
            return label, ("bad emotion", f"{emotion!r}, not one of {', '.join(EMOTIONS)}")
        label["emotion"] = emotion.lower()
    if not label:
        return label, ("no label", "")
    return label, None


@dataclass(frozen=True, eq=False)
class WiderImage:
    """One image of WIDER FACE ground truth."""

    path: Path
    name: str
    """Path as written in the ground truth file (relative to `images/`)."""
    boxes: np.ndarray
    """(N, 4) float: x1, y1, x2, y2 (x + w, y + h of the file)."""
    invalid: np.ndarray
    """(N,) bool: the box is an ignore region (invalid=1)."""


def locate(path: str | Path) -> tuple[str, Path]:
    """What an evaluation input is: ("wider", the .txt) or ("manifest", the .csv).

    A folder is WIDER FACE when it holds one *bbx_gt*.txt (or a single .txt), else a manifest when
    it holds labels.csv."""
    path = Path(path)
    if not path.exists():
        raise FacelensError(f"{path}: no such file or folder")
    if path.is_dir():
        texts = sorted(path.glob("*.txt"))
        wider = [p for p in texts if "bbx_gt" in p.name] or texts
        if len(wider) == 1:
            return "wider", wider[0]
        if (path / "labels.csv").is_file():
            return "manifest", path / "labels.csv"
        raise FacelensError(f"{path}: no WIDER FACE ground truth (*bbx_gt*.txt) or labels.csv in this folder")
    if path.suffix.lower() == ".txt":
        return "wider", path
    return "manifest", path


def read_wider(path: str | Path) -> list[WiderImage]:
    """The images and boxes of WIDER FACE ground truth: the .txt, or a folder holding it.

    Images are in `images/` next to the file. A missing or malformed file is a FacelensError
    naming the line; missing images are found (and skipped) when evaluating.
    """
    kind, text_path = locate(path)
    if kind != "wider":
        raise FacelensError(f"{path}: not WIDER FACE ground truth (a .txt or its folder)")
    try:
        lines = text_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FacelensError(f"{text_path}: no such file") from None
    except OSError as error:
        raise FacelensError(f"{text_path}: cannot read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise FacelensError(f"{text_path}: not a WIDER FACE ground truth file (not text)") from None
    root = text_path.parent / "images"
    images = []
    i = 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        try:
            count = int(lines[i + 1])
            if count < 0:
                raise ValueError
        except (IndexError, ValueError):
            raise FacelensError(f"{text_path}:{i + 2}: expected the number of faces of {name}") from None
        rows = []
        for k in range(i + 2, i + 2 + count):
            try:
                values = [float(v) for v in lines[k].split()]
                if len(values) < 8:
                    raise ValueError
            except (IndexError, ValueError):
                raise FacelensError(f"{text_path}:{k + 1}: expected 'x y w h blur expression illumination invalid occlusion pose'") from None
            rows.append(values)
        i += 2 + count
        if count == 0 and i < len(lines) and lines[i].split() and all(v == "0" for v in lines[i].split()):
            i += 1  # the official files follow a zero count with one placeholder row of zeros
        data = np.array(rows, float).reshape(-1, len(rows[0]) if rows else 10)
        boxes = np.stack([data[:, 0], data[:, 1], data[:, 0] + data[:, 2], data[:, 1] + data[:, 3]], axis=1) if rows else np.zeros((0, 4))
        images.append(WiderImage(root / name, name, boxes, data[:, 7] == 1 if rows else np.zeros(0, bool)))
    if not images:
        raise FacelensError(f"{text_path}: no images in this WIDER FACE ground truth file")
    return images


def sample(items: Sequence[T], limit: int | None, seed: int = 0) -> list[T]:
    """A reproducible random sample of `limit` items, in their original order (all when `limit`
    is None or not smaller)."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    picked = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return [items[int(i)] for i in picked]


# --- running -------------------------------------------------------------------------------------


def evaluate_attributes(
    analyzer: Analyzer,
    items: Sequence[Item],
    mode: str = "crop",
    progress: Progress | None = None,
    *,
    skipped: Sequence[Skip] = (),
    seed: int = 0,
    batch: int = 32,
) -> dict[str, Any]:
    """Age, gender and emotion figures of `analyzer` on labelled images (see the module docstring).

    `skipped` are items left out before (a manifest's bad rows), reported with the unreadable
    images. Returns a JSON-ready dict: "figures" (value, ci95, n, by_age_bucket, by_gender),
    "confusion" matrices, counts and "skipped".
    """
    if mode not in MODES:
        raise FacelensError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    skips = _Skips()
    read: list[Item] = []
    predictions: list[Attributes | None] = []  # None: no face found (full mode)

    def load(item: Item) -> np.ndarray | None:
        try:
            return read_image(item.path)
        except SourceError as error:
            skips.add(f"row {item.row} ({item.path})", "unreadable image", str(error).removeprefix(f"{item.path}: "))
            return None

    if mode == "crop":
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            pairs = [(item, image) for item in chunk if (image := load(item)) is not None]
            if pairs:
                predictions.extend(analyzer.describe([image for _, image in pairs]))
                read.extend(item for item, _ in pairs)
            if progress:
                progress(len(chunk))
    else:
        for item in items:
            image = load(item)
            if image is not None:
                faces = analyzer.analyze(image)
                # The largest face: a labelled image is about one person, mostly filling it. On a tie
                # the first (most confident) wins.
                face = max(faces, key=lambda f: f.box.area, default=None)
                predictions.append(None if face is None else Attributes(face.age, face.gender, face.emotion, face.pose))
                read.append(item)
            if progress:
                progress(1)
    skips.finish()
    if not read:
        raise FacelensError("none of the images could be read")

    found = np.array([p is not None for p in predictions], bool)
    results: dict[str, Any] = {
        "kind": "attributes",
        "mode": mode,
        "items": len(items),
        "evaluated": len(read),
        "found": int(found.sum()),
        "skipped": _skipped([*skipped, *skips.items]),
    }
    if mode == "full":
        results["note"] = (
            "full mode: detector, then the face with the largest box; images without any face are "
            "counted as missed, and the attribute figures are over the images where a face was found"
        )
    figures: dict[str, Any] = {}
    confusion: dict[str, Any] = {}
    groups = _groups(read)
    if mode == "full" and read:
        figures["miss_rate"] = _figure(share, [~found], np.ones(len(read), bool), groups, seed)
    data = _attribute_arrays(read, predictions)
    has_age = ~np.isnan(data["true_age"]) & ~np.isnan(data["pred_age"])
    adult = has_age & (data["true_age"] >= ADULT[0]) & (data["true_age"] <= ADULT[1])
    if has_age.any():
        figures["age_mae"] = _figure(mean_absolute_error, [data["true_age"], data["pred_age"]], has_age, groups, seed)
        if adult.any():
            figures["age_mae_18_75"] = _figure(mean_absolute_error, [data["true_age"], data["pred_age"]], adult, groups, seed)
        figures["age_bias"] = _figure(mean_error, [data["true_age"], data["pred_age"]], has_age, groups, seed)
        true_minor, said_minor = data["true_age"] < MINOR_AGE, data["pred_age"] < MINOR_AGE
        if (has_age & true_minor).any():
            figures["age_mae_under_18"] = _figure(mean_absolute_error, [data["true_age"], data["pred_age"]], has_age & true_minor, groups, seed)
            # `minor` (the person-level flag) is said for an age under 18: how often it is right, how many minors it finds.
            figures["minor_recall"] = _figure(share, [said_minor], has_age & true_minor, groups, seed)
        if (has_age & said_minor).any():
            figures["minor_precision"] = _figure(share, [true_minor], has_age & said_minor, groups, seed)
    has_bucket = (data["true_bucket"] >= 0) & (data["pred_bucket"] >= 0)
    if has_bucket.any():
        figures["age_bucket_accuracy"] = _figure(accuracy, [data["true_bucket"], data["pred_bucket"]], has_bucket, groups, seed)
        confusion["age_bucket"] = _confusion(data["true_bucket"][has_bucket], data["pred_bucket"][has_bucket], BUCKETS)
    # A face the network is unsure of is "unknown": not in the accuracy, counted on its own.
    said_gender = (data["true_gender"] >= 0) & ((data["pred_gender"] >= 0) | data["unsure_gender"])
    if said_gender.any():
        figures["gender_unknown"] = _figure(share, [data["unsure_gender"]], said_gender, groups, seed)
    has_gender = (data["true_gender"] >= 0) & (data["pred_gender"] >= 0)
    if has_gender.any():
        figures["gender_accuracy"] = _figure(accuracy, [data["true_gender"], data["pred_gender"]], has_gender, groups, seed)
        adult_gender = has_gender & (data["true_age"] >= ADULT[0]) & (data["true_age"] <= ADULT[1])
        if adult_gender.any():
            figures["gender_accuracy_18_75"] = _figure(accuracy, [data["true_gender"], data["pred_gender"]], adult_gender, groups, seed)
        confusion["gender"] = _confusion(data["true_gender"][has_gender], data["pred_gender"][has_gender], GENDERS)
    has_emotion = (data["true_emotion"] >= 0) & (data["pred_emotion"] >= 0)
    if has_emotion.any():
        figures["emotion_accuracy"] = _figure(accuracy, [data["true_emotion"], data["pred_emotion"]], has_emotion, groups, seed)
        confusion["emotion"] = _confusion(data["true_emotion"][has_emotion], data["pred_emotion"][has_emotion], EMOTIONS)
    results["figures"] = figures
    results["confusion"] = confusion
    return results


def _attribute_arrays(items: Sequence[Item], predictions: Sequence[Attributes | None]) -> dict[str, np.ndarray]:
    """Truth and prediction per item as numbers: NaN / -1 where unknown (labels as indexes)."""

    def index(labels: Sequence[str], value: str | None) -> int:
        return labels.index(value) if value in labels else -1

    none = Attributes()
    preds = [p or none for p in predictions]
    pred_age = np.array([math.nan if p.age is None else float(p.age) for p in preds], float)
    return {
        "true_age": np.array([math.nan if i.age is None else i.age for i in items], float),
        "pred_age": pred_age,
        "true_bucket": np.array([index(BUCKETS, i.age_bucket) for i in items], np.int64),
        "pred_bucket": np.array([-1 if math.isnan(a) else BUCKETS.index(age_bucket(a)) for a in pred_age], np.int64),
        "true_gender": np.array([index(GENDERS, i.gender) for i in items], np.int64),
        "pred_gender": np.array([index(GENDERS, None if p.gender is None else p.gender.label) for p in preds], np.int64),
        "unsure_gender": np.array([p.gender is not None and p.gender.label not in GENDERS for p in preds], bool),
        "true_emotion": np.array([index(EMOTIONS, i.emotion) for i in items], np.int64),
        "pred_emotion": np.array([index(EMOTIONS, None if p.emotion is None else p.emotion.label) for p in preds], np.int64),
    }


def _groups(items: Sequence[Item]) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Breakdowns the labels allow: name -> (group labels, group index per item, -1 unknown)."""
    groups = {}
    buckets = np.array([BUCKETS.index(i.age_bucket) if i.age_bucket else -1 for i in items], np.int64)
    if (buckets >= 0).any():
        groups["age_bucket"] = (BUCKETS, buckets)
    genders = np.array([GENDERS.index(i.gender) if i.gender else -1 for i in items], np.int64)
    if (genders >= 0).any():
        groups["gender"] = (GENDERS, genders)
    return groups


def _figure(
    statistic: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    mask: np.ndarray,
    groups: dict[str, tuple[tuple[str, ...], np.ndarray]],
    seed: int,
) -> dict[str, Any]:
    """{"value", "ci95", "n"} of `statistic` over the masked items, and the same per group."""

    def one(selected: np.ndarray) -> dict[str, Any]:
        picked = [a[selected] for a in arrays]
        n = int(selected.sum())
        value = statistic(*picked) if n else math.nan
        return {"value": _num(value), "ci95": [_num(v) for v in bootstrap_ci(statistic, *picked, seed=seed)], "n": n}

    figure = one(mask)
    for name, (labels, index) in groups.items():
        breakdown = {label: one(mask & (index == g)) for g, label in enumerate(labels) if (mask & (index == g)).any()}
        if breakdown:
            figure[f"by_{name}"] = breakdown
    return figure


def _confusion(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    matrix = confusion_matrix(truth.tolist(), predicted.tolist(), list(range(len(labels))))
    rows = matrix.sum(axis=1)
    recall = {label: _num(matrix[i, i] / rows[i]) if rows[i] else None for i, label in enumerate(labels)}
    return {"labels": list(labels), "matrix": matrix.tolist(), "recall": recall, "note": "rows: true label, columns: predicted"}


def evaluate_detection(
    analyzer: Analyzer,
    images: Sequence[WiderImage],
    progress: Progress | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    iou: float = IOU,
    seed: int = 0,
) -> dict[str, Any]:
    """Detection figures of `analyzer` on WIDER FACE images (see the module docstring).

    Run the analyzer's detector at a low confidence (`CURVE_CONFIDENCE`): detections below its own
    threshold are never seen. Returns a JSON-ready dict with one entry per size range under
    "ranges" ("all", then `SIZE_RANGES`): AP, recall, precision and false positives per image at
    `threshold`, each with a 95% CI over images, and the PR curve (<= `CURVE_POINTS` points).
    """
    skips = _Skips()
    ranges: list[tuple[str, tuple[float, float] | None]] = [("all", None), *((name, (low, high)) for name, low, high in SIZE_RANGES)]
    collected: dict[str, dict[str, list[Any]]] = {name: {"image": [], "score": [], "tp": [], "positives": []} for name, _ in ranges}
    evaluated = invalid = placeholders = detections = 0
    for image in images:
        try:
            pixels = read_image(image.path)
        except SourceError as error:
            skips.add(image.name, "unreadable image", str(error).removeprefix(f"{image.path}: "))
            if progress:
                progress(1)
            continue
        found = analyzer.detect(pixels)
        detections += len(found)
        boxes = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in found], float).reshape(-1, 4)
        scores = np.array([d.confidence for d in found], float)
        real = (image.boxes[:, 2] > image.boxes[:, 0]) & (image.boxes[:, 3] > image.boxes[:, 1])
        placeholders += int((~real).sum())
        invalid += int((image.invalid & real).sum())
        for name, height_range in ranges:
            matches = match_detections(boxes, scores, image.boxes[real], image.invalid[real], iou, height_range)
            counted = ~matches.ignored
            into = collected[name]
            into["image"].append(np.full(int(counted.sum()), evaluated))
            into["score"].append(scores[counted])
            into["tp"].append(matches.true_positive[counted])
            into["positives"].append(matches.n_positives)
        evaluated += 1
        if progress:
            progress(1)
    skips.finish()
    results: dict[str, Any] = {
        "kind": "detection",
        "images": len(images),
        "evaluated": evaluated,
        "skipped": _skipped(skips.items),
        "detector_confidence": analyzer.detector.confidence,
        "threshold": threshold,
        "iou": iou,
        "ignore_regions": invalid,
        "placeholder_boxes": placeholders,
        "detections": detections,
        "ranges": {},
    }
    if not evaluated:
        raise FacelensError("none of the images could be read")
    for name, height_range in ranges:
        into = collected[name]
        results["ranges"][name] = _detection_figures(
            np.concatenate(into["image"]).astype(np.int64),
            np.concatenate(into["score"]).astype(float),
            np.concatenate(into["tp"]).astype(bool),
            np.array(into["positives"], float),
            threshold,
            seed,
        )
        results["ranges"][name]["height_range"] = None if height_range is None else [height_range[0], None if math.isinf(height_range[1]) else height_range[1]]
    return results


def _detection_figures(image: np.ndarray, scores: np.ndarray, tp: np.ndarray, positives: np.ndarray, threshold: float, seed: int) -> dict[str, Any]:
    """AP, operating point at `threshold` and PR curve of counted detections, CIs over images."""
    n_images = len(positives)
    n_positives = int(positives.sum())
    order = np.argsort(-scores, kind="stable")
    image, scores, tp = image[order], scores[order], tp[order]
    above = scores >= threshold
    precision, recall, _ = precision_recall(scores, tp, n_positives)
    at_tp, at_fp = int((tp & above).sum()), int((~tp & above).sum())
    point = {
        "ap": average_precision(scores, tp, n_positives),
        "recall": at_tp / n_positives if n_positives else math.nan,
        "precision": at_tp / (at_tp + at_fp) if at_tp + at_fp else math.nan,
        "false_positives_per_image": at_fp / n_images,
    }
    intervals = _image_bootstrap(image, tp, above, positives, seed)
    figures: dict[str, Any] = {"faces": n_positives, "images": n_images, "true_positives": at_tp, "false_positives": at_fp}
    for key, value in point.items():
        figures[key if key == "ap" else f"{key}_at_threshold"] = {"value": _num(value), "ci95": [_num(v) for v in intervals[key]], "n": n_images}
    keep = np.unique(np.linspace(0, len(scores) - 1, min(CURVE_POINTS, len(scores))).round().astype(int)) if len(scores) else np.zeros(0, int)
    figures["pr_curve"] = {
        "recall": [_num(v) for v in recall[keep]],
        "precision": [_num(v) for v in precision[keep]],
        "score": [_num(v) for v in scores[keep]],
    }
    return figures


def _image_bootstrap(
    image: np.ndarray, tp: np.ndarray, above: np.ndarray, positives: np.ndarray, seed: int, n: int = BOOTSTRAP_RESAMPLES, level: float = LEVEL
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CIs of AP, recall, precision and false positives per image, resampling
    whole images: each resample weighs every detection and face by its image's draw count.
    Detections must come in descending score order."""
    n_images = len(positives)
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {"ap": [], "recall": [], "precision": [], "false_positives_per_image": []}
    rows = max(1, 2_000_000 // max(len(tp), 1))
    for start in range(0, n, rows):
        counts = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=min(rows, n - start)).astype(float)
        total = counts @ positives
        weights = counts[:, image]
        hits = weights * tp
        cum_hits, cum_all = np.cumsum(hits, axis=1), np.cumsum(weights, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(cum_all > 0, cum_hits / np.where(cum_all > 0, cum_all, 1), 0.0)
            envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
            valid = total > 0
            values["ap"].append(np.where(valid, (envelope * hits).sum(axis=1) / np.where(valid, total, 1), math.nan))
            found = hits[:, above].sum(axis=1)
            kept = weights[:, above].sum(axis=1)
            values["recall"].append(np.where(valid, found / np.where(valid, total, 1), math.nan))
            values["precision"].append(np.where(kept > 0, found / np.where(kept > 0, kept, 1), math.nan))
            values["false_positives_per_image"].append((kept - found) / n_images)
    intervals = {}
    for key, chunks in values.items():
        stats = np.concatenate(chunks)
        if np.all(np.isnan(stats)):
            intervals[key] = (math.nan, math.nan)
        else:
            low, high = np.nanpercentile(stats, [50 * (1 - level), 50 * (1 + level)])
            intervals[key] = (float(low), float(high))
    return intervals


def _skipped(skips: Sequence[Skip]) -> dict[str, Any]:
    return {
        "count": len(skips),
        "reasons": dict(Counter(s.reason for s in skips).most_common()),
        "items": [s.to_dict() for s in skips[:100]],
    }


def _num(value: Any, digits: int = 6) -> float | None:
    """A JSON-ready number: rounded, None for NaN or infinity."""
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


# --- report --------------------------------------------------------------------------------------

FIGURE_TITLES: dict[str, tuple[str, str]] = {
    "miss_rate": ("no face found (miss rate)", "share"),
    "age_mae": ("age MAE, all ages", "years"),
    "age_mae_18_75": ("age MAE, true age 18-75", "years"),
    "age_mae_under_18": ("age MAE, true age under 18", "years"),
    "minor_precision": ("minor (age < 18) precision", "share"),
    "minor_recall": ("minor (age < 18) recall", "share"),
    "age_bias": ("age bias (mean predicted - true)", "signed years"),
    "age_bucket_accuracy": ("age-bucket accuracy", "share"),
    "gender_unknown": ("gender unknown (network unsure)", "share"),
    "gender_accuracy": ("gender accuracy, all ages, faces labelled", "share"),
    "gender_accuracy_18_75": ("gender accuracy, true age 18-75, faces labelled", "share"),
    "emotion_accuracy": ("emotion accuracy (5 classes)", "share"),
}
DETECTION_TITLES: dict[str, tuple[str, str]] = {
    "ap": ("AP @ IoU 0.5", "share"),
    "recall_at_threshold": ("recall @ confidence 0.5", "share"),
    "precision_at_threshold": ("precision @ confidence 0.5", "share"),
    "false_positives_per_image_at_threshold": ("false positives per image @ 0.5", "count"),
}
PLOT_NAMES = ("precision_recall", "age_error_by_bucket", "gender_accuracy_by_bucket", "emotion_confusion")


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit == "signed years":
        return f"{value:+.2f}"
    return f"{value:.2f}"


def _interval(ci: Sequence[float | None], unit: str) -> str:
    if ci[0] is None or ci[1] is None:
        return "—"
    return f"{_format(ci[0], unit)} – {_format(ci[1], unit)}"


def summary(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The headline figures as rows (figure, value, 95% CI, n), for a table."""
    rows = []
    if results["kind"] == "detection":
        short = {"ap": "AP", "recall_at_threshold": "recall @0.5", "false_positives_per_image_at_threshold": "FP/image @0.5"}
        for name, figures in results["ranges"].items():
            label = "all faces" if name == "all" else f"h {name} px"
            for key, title in short.items():
                f, unit = figures[key], DETECTION_TITLES[key][1]
                n = f"{f['n']} images" if key.startswith("false") else f"{figures['faces']} faces"
                rows.append((f"{title}, {label}", _format(f["value"], unit), _interval(f["ci95"], unit), n))
        return rows
    for key, f in results["figures"].items():
        title, unit = FIGURE_TITLES[key]
        rows.append((title, _format(f["value"], unit), _interval(f["ci95"], unit), str(f["n"])))
    return rows


def write_report(results: dict[str, Any], out_dir: str | Path, command: str) -> list[Path]:
    """Write `out_dir/results.json`, `out_dir/report.md` and `out_dir/plots/*.png`; the files written.

    `command` is the command line that produced the results; it is stored in both files. Plots of
    an earlier report in the same folder that this one does not draw are removed.
    """
    out = Path(out_dir)
    results = {**results, "command": command}
    results.setdefault("created", time.strftime("%Y-%m-%d %H:%M:%S %z"))
    results.setdefault("facelens", _version())
    pngs = _plots(results)
    written = write_pngs(out / "plots", PLOT_NAMES, pngs)
    json_path, md_path = out / "results.json", out / "report.md"
    write_atomically(json_path, Path.write_text, json.dumps(results, indent=2, allow_nan=False) + "\n", "utf-8")
    write_atomically(md_path, Path.write_text, _markdown(results, sorted(pngs)), "utf-8")
    return [json_path, md_path, *written]


def _version() -> str:
    from . import __version__

    return __version__


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: int = 1) -> list[str]:
    """A Markdown table; columns from `right` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines + [""]


def _markdown(results: dict[str, Any], plots: Sequence[str]) -> str:
    source = results.get("input", "?")
    lines = [
        f"# facelens eval: {source}",
        "",
        "Produced by:",
        "",
        "```",
        results["command"],
        "```",
        "",
        f"facelens {results['facelens']}, {results['created']}; detector {results.get('detector', '?')}.",
        "",
    ]
    if results["kind"] == "detection":
        lines += _detection_markdown(results, plots)
    else:
        lines += _attribute_markdown(results, plots)
    skipped = results["skipped"]
    lines += ["## Skipped", ""]
    if skipped["count"]:
        lines += [f"{skipped['count']} items skipped."] + [""]
        lines += _table(["reason", "count"], [(reason, str(n)) for reason, n in skipped["reasons"].items()])
        lines += _table(["item", "reason", "detail"], [(s["item"], s["reason"], s["detail"]) for s in skipped["items"][:SHOWN_WARNINGS]], right=3)
        if skipped["count"] > SHOWN_WARNINGS:
            lines += [f"... and {skipped['count'] - SHOWN_WARNINGS} more (see results.json).", ""]
    else:
        lines += ["None.", ""]
    lines += ["## Method", "", *_METHOD, ""]
    return "\n".join(lines)


_METHOD = [
    "- Confidence intervals: 95% percentile bootstrap, 1000 resamples with replacement, seed 0; attribute figures",
    "  resample items, detection figures resample whole images. A group where every answer is right (or wrong) gets a",
    "  zero-width interval, a known limit of the percentile bootstrap: read small groups with care.",
    "- Attributes, crop mode: the whole labelled image is the face. Full mode: the detector (confidence 0.5) runs on",
    "  the image and the face with the largest box is taken; images without a face are missed, and the attribute",
    "  figures are over the images where a face was found.",
    "- Age bucket: the true bucket is the `age_bucket` column if given, else the bucket of the true age; the predicted",
    "  one is the bucket of the predicted age. Buckets: "
    + ", ".join(label if label in (f"{first}-{last}", f"{first}+") else f"{label} ({first}-{last})" for label, first, last in AGE_BUCKETS)
    + ".",
    "- Detection: greedy matching in descending score order; a detection is a true positive when its best IoU with a",
    "  still unmatched valid face is >= 0.5, ignored when its IoU with an ignore region (invalid=1) is >= 0.5, else a",
    "  false positive. Each face is matched at most once.",
    "- Size ranges by box height h: <32 (h < 32), 32-64 (32 <= h < 64), >=64 (h >= 64). Within a range, faces outside it",
    "  become ignore regions and detections whose own height is outside it are ignored unless they match a face in it.",
    "- AP: all-point interpolated (VOC 2010+), the area under the precision envelope (the highest precision at any",
    "  higher recall) of the precision/recall curve; the detector runs at confidence 0.02 to trace the curve. Recall,",
    "  precision and false positives per image are also given at the default confidence 0.5.",
]


def _attribute_markdown(results: dict[str, Any], plots: Sequence[str]) -> list[str]:
    lines = [
        f"Mode **{results['mode']}**: {results['items']} items, {results['evaluated']} evaluated"
        + (f", a face found in {results['found']}" if results["mode"] == "full" else "")
        + f", {results['skipped']['count']} skipped.",
        "",
    ]
    if "note" in results:
        lines += [f"Note: {results['note']}.", ""]
    figures = results["figures"]
    lines += ["## Summary", ""]
    lines += _table(["figure", "value", "95% CI", "n"], summary(results))
    for key, f in figures.items():
        title, unit = FIGURE_TITLES[key]
        breakdowns = [(name, f[f"by_{name}"]) for name in ("age_bucket", "gender") if f"by_{name}" in f]
        if not breakdowns:
            continue
        lines += [f"## {title[0].upper()}{title[1:]}", ""]
        for name, groups in breakdowns:
            label = "true age bucket" if name == "age_bucket" else "true gender"
            rows = [(group, str(g["n"]), _format(g["value"], unit), _interval(g["ci95"], unit)) for group, g in groups.items()]
            lines += _table([label, "n", "value", "95% CI"], rows)
    for name, c in results["confusion"].items():
        lines += [f"## Confusion matrix: {name.replace('_', ' ')}", "", "Rows: true label; columns: predicted; last column: recall of the row.", ""]
        rows = [(label, *map(str, row), _format(c["recall"][label], "share")) for label, row in zip(c["labels"], c["matrix"])]
        lines += _table(["true \\ predicted", *c["labels"], "recall"], rows)
    pictures = {
        "age_error_by_bucket": "Age error by true age bucket (MAE and bias, 95% CI)",
        "gender_accuracy_by_bucket": "Gender accuracy by true age bucket (95% CI)",
        "emotion_confusion": "Emotion confusion matrix (share of each true label)",
    }
    shown = [name for name in pictures if name in plots]
    if shown:
        lines += ["## Plots", ""]
        for name in shown:
            lines += [f"![{pictures[name]}](plots/{name}.png)", ""]
    return lines


def _detection_markdown(results: dict[str, Any], plots: Sequence[str]) -> list[str]:
    lines = [
        f"{results['images']} images, {results['evaluated']} evaluated, {results['skipped']['count']} skipped; "
        f"{results['ranges']['all']['faces']} valid faces, {results['ignore_regions']} ignore regions (invalid=1)"
        + (f", {results['placeholder_boxes']} zero-size placeholder boxes dropped" if results["placeholder_boxes"] else "")
        + f"; {results['detections']} detections at confidence >= {results['detector_confidence']}.",
        "",
        "## Summary",
        "",
    ]
    rows = []
    for name, figures in results["ranges"].items():
        cells = [name, str(figures["faces"])]
        for key, (_, unit) in DETECTION_TITLES.items():
            f = figures[key]
            cells += [_format(f["value"], unit), _interval(f["ci95"], unit)]
        rows.append(cells)
    header = ["face height (px)", "faces"]
    for title, _ in DETECTION_TITLES.values():
        header += [title, "95% CI"]
    lines += _table(header, rows)
    if "precision_recall" in plots:
        lines += ["## Precision/recall", "", "![Precision/recall curves by face height](plots/precision_recall.png)", ""]
    return lines


def _plots(results: dict[str, Any]) -> dict[str, bytes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new(size: tuple[float, float] = (6.4, 4.0)) -> tuple[Any, Any]:
        figure = Figure(figsize=size, dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
        return figure, figure.add_subplot()

    def png(figure: Any) -> bytes:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()

    pngs: dict[str, bytes] = {}
    if results["kind"] == "detection":
        figure, ax = new((6.4, 5.0))
        for name, figures in results["ranges"].items():
            curve = figures["pr_curve"]
            if not curve["recall"] or figures["faces"] == 0:
                continue
            ap = figures["ap"]["value"]
            line = ax.plot(curve["recall"], curve["precision"], label=f"{name} ({figures['faces']} faces, AP {_format(ap, 'share')})", linewidth=1.6 if name == "all" else 1.1)
            point = figures["recall_at_threshold"]["value"], figures["precision_at_threshold"]["value"]
            if None not in point:
                ax.plot(*point, "o", color=line[0].get_color(), markersize=5)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"Precision/recall at IoU 0.5 (dots: confidence {results['threshold']})", fontsize=11)
        ax.legend(fontsize=8, loc="lower left", frameon=False)
        ax.grid(alpha=0.3)
        pngs["precision_recall"] = png(figure)
        return pngs

    figures = results["figures"]

    def bars(ax: Any, key: str, unit_scale: float, offset: float, width: float, label: str, color: str) -> list[str]:
        groups = figures.get(key, {}).get("by_age_bucket", {})
        names = list(groups)
        xs = np.array([BUCKETS.index(n) for n in names], float) + offset
        values = np.array([groups[n]["value"] for n in names], float) * unit_scale
        lows = np.array([groups[n]["ci95"][0] if groups[n]["ci95"][0] is not None else np.nan for n in names], float) * unit_scale
        highs = np.array([groups[n]["ci95"][1] if groups[n]["ci95"][1] is not None else np.nan for n in names], float) * unit_scale
        errors = np.nan_to_num(np.stack([values - lows, highs - values]))
        ax.bar(xs, values, width, yerr=errors, capsize=3, label=label, color=color)
        return names

    if "by_age_bucket" in figures.get("age_mae", {}):
        figure, ax = new()
        bars(ax, "age_mae", 1.0, -0.2, 0.4, "MAE", "#4c78a8")
        if "by_age_bucket" in figures.get("age_bias", {}):
            bars(ax, "age_bias", 1.0, 0.2, 0.4, "bias (predicted - true)", "#f58518")
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_xticks(range(len(BUCKETS)), BUCKETS)
        ax.set_xlabel("true age bucket")
        ax.set_ylabel("years")
        ax.set_title(f"Age error by true age bucket ({results['mode']} mode, 95% CI)", fontsize=11)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        pngs["age_error_by_bucket"] = png(figure)
    if "by_age_bucket" in figures.get("gender_accuracy", {}):
        figure, ax = new()
        bars(ax, "gender_accuracy", 100.0, 0.0, 0.6, "gender accuracy", "#54a24b")
        ax.set_xticks(range(len(BUCKETS)), BUCKETS)
        ax.set_ylim(0, 105)
        ax.set_xlabel("true age bucket")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"Gender accuracy by true age bucket ({results['mode']} mode, 95% CI)", fontsize=11)
        ax.spines[["top", "right"]].set_visible(False)
        pngs["gender_accuracy_by_bucket"] = png(figure)
    if "emotion" in results["confusion"]:
        c = results["confusion"]["emotion"]
        matrix = np.array(c["matrix"], float)
        rows = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
        figure, ax = new((5.6, 4.8))
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(c["labels"])):
            for j in range(len(c["labels"])):
                ax.text(j, i, f"{shares[i, j]:.0%}\n{int(matrix[i, j])}", ha="center", va="center", fontsize=8, color="white" if shares[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(c["labels"])), c["labels"], rotation=30)
        ax.set_yticks(range(len(c["labels"])), c["labels"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        accuracy_value = figures.get("emotion_accuracy", {}).get("value")
        ax.set_title(f"Emotion confusion ({results['mode']} mode, accuracy {_format(accuracy_value, 'share')})", fontsize=11)
        figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true label")
        pngs["emotion_confusion"] = png(figure)
    return pngs

