"""People counted against people counted by eye, on every shared video, and what detecting on
every k-th frame only costs.

For each video of ../shared/data/videos the default tracked pipeline runs (as `facelens analyze`);
its person records (the last per track) are split into people (`PersonRecord.counted`) and
fragments, and compared with tests/data/people_by_eye.csv. Also printed: the median dwell of all
records and of the counted ones, and the genders of the counted people.

With `--detect-every 1,2,4,8` each video runs once per interval, and each run with k > 1 is compared
with the k = 1 run (detection on every frame) as reference, frame by frame:
- coverage: the share of the reference's tracked faces (face-frames with a person id) that the run
  also reports with an id, its box overlapping by IoU >= 0.5;
- ids per track: for each reference person of at least 0.8 s, how many different ids the run gave
  the faces that overlap it (1.0: every person kept one id throughout; more: broken tracks).

    FACELENS_MODELS_DIR=../shared/models python benchmarks/counting.py [--detect-every 1,2,4,8] [--json out.json] [VIDEO ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path

from facelens import Analyzer, ModelStore
from facelens.people import PeopleConfig
from facelens.track import _iou
from facelens.types import COUNTED_MIN_FRAMES, COUNTED_MIN_SECONDS, Face, PersonRecord

REPO = Path(__file__).resolve().parent.parent
VIDEOS = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "videos"
BY_EYE = REPO / "tests" / "data" / "people_by_eye.csv"


def by_eye() -> dict[str, int]:
    """People counted by eye per video file name."""
    if not BY_EYE.exists():
        return {}
    with BY_EYE.open(newline="") as f:
        return {row["video"]: int(row["people_by_eye"]) for row in csv.DictReader(f)}


Tracked = dict[int, list[Face]]
"""Frame index -> the faces with a person id in it."""


def people(analyzer: Analyzer, video: Path, detect_every: int = 1) -> tuple[list[PersonRecord], Tracked]:
    """The final record of every track of a video through the default tracked pipeline, and its
    tracked faces frame by frame."""
    final: dict[int, PersonRecord] = {}
    tracked: Tracked = {}
    for result in analyzer.stream(video, people=PeopleConfig(detect_every=detect_every)):
        for record in result.people:
            final[record.track_id] = record
        if not result.end:
            tracked[result.index] = [f for f in result.faces if f.track_id is not None]
    return list(final.values()), tracked


def continuity(reference: Tracked, run: Tracked, records: list[PersonRecord]) -> tuple[float, float]:
    """(coverage, ids per reference person) of `run` against `reference` (see the module's doc)."""
    counted = {p.track_id for p in records if p.counted}
    covered = total = 0
    ids: dict[int, set[int]] = {}
    for index, faces in reference.items():
        theirs = run.get(index, [])
        iou = _iou([f.box for f in faces], [f.box for f in theirs]) if faces and theirs else None
        for i, face in enumerate(faces):
            total += 1
            if iou is None or iou.shape[1] == 0 or iou[i].max() < 0.5:
                continue
            covered += 1
            if face.track_id in counted:
                ids.setdefault(face.track_id, set()).add(theirs[int(iou[i].argmax())].track_id)  # type: ignore[arg-type]
    per_person = statistics.mean(len(v) for v in ids.values()) if ids else float("nan")
    return covered / total if total else float("nan"), per_person


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", help="file names in the shared videos folder (default: those of the CSV)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--detect-every", default="1", help="comma-separated detection intervals to run (default 1)")
    args = parser.parse_args()
    intervals = sorted({int(k) for k in args.detect_every.split(",")} | {1})
    eye = by_eye()
    names = args.videos or list(eye)
    analyzer = Analyzer(store=ModelStore())
    print(f"counted: frames >= {COUNTED_MIN_FRAMES} and dwell >= {COUNTED_MIN_SECONDS} s")
    print(f"{'video':32} {'k':>2} {'by eye':>6} {'tracks':>6} {'counted':>7} {'fragments':>9} {'ratio':>6} "
          f"{'dwell all':>9} {'dwell cnt':>9}  genders of counted (m/f/unknown)  {'coverage':>8} {'ids/person':>10}  seconds")
    report = {}
    for name, k in ((name, k) for name in names for k in intervals):
        start = time.perf_counter()
        records, tracked = people(analyzer, VIDEOS / name, k)
        elapsed = time.perf_counter() - start
        if k == 1:
            reference, reference_records = tracked, records
        coverage, ids = continuity(reference, tracked, reference_records)
        counted = [p for p in records if p.counted]
        dwell_all = statistics.median(p.dwell_seconds or 0.0 for p in records) if records else 0.0
        dwell_counted = statistics.median(p.dwell_seconds or 0.0 for p in counted) if counted else 0.0
        genders = Counter(p.gender for p in counted)
        expected = eye.get(name)
        ratio = len(counted) / expected if expected else float("nan")
        report[f"{name} k={k}"] = {
            "video": name, "detect_every": k, "coverage": coverage, "ids_per_person": ids,
            "by_eye": expected, "tracks": len(records), "counted": len(counted), "fragments": len(records) - len(counted),
            "ratio": ratio, "median_dwell_all": dwell_all, "median_dwell_counted": dwell_counted,
            "genders_counted": dict(genders), "seconds": elapsed,
        }
        mfu = f"{genders['male']}/{genders['female']}/{genders['unknown']}"
        print(f"{name:32} {k:2d} {expected if expected is not None else '-':>6} {len(records):6d} {len(counted):7d} "
              f"{len(records) - len(counted):9d} {ratio:6.2f} {dwell_all:9.2f} {dwell_counted:9.2f}  {mfu:>33}  "
              f"{coverage:8.2f} {ids:10.2f}  {elapsed:7.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
