"""People counted against people counted by eye, on every shared video.

For each video of ../shared/data/videos the default tracked pipeline runs (as `facelens analyze`);
its person records (the last per track) are split into people (`PersonRecord.counted`) and
fragments, and compared with tests/data/people_by_eye.csv. Also printed: the median dwell of all
records and of the counted ones, and the genders of the counted people.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/counting.py [--json out.json] [VIDEO ...]
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
from facelens.types import COUNTED_MIN_FRAMES, COUNTED_MIN_SECONDS, PersonRecord

REPO = Path(__file__).resolve().parent.parent
VIDEOS = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared")) / "data" / "videos"
BY_EYE = REPO / "tests" / "data" / "people_by_eye.csv"


def by_eye() -> dict[str, int]:
    """People counted by eye per video file name."""
    if not BY_EYE.exists():
        return {}
    with BY_EYE.open(newline="") as f:
        return {row["video"]: int(row["people_by_eye"]) for row in csv.DictReader(f)}


def people(analyzer: Analyzer, video: Path) -> list[PersonRecord]:
    """The final record of every track of a video, through the default tracked pipeline."""
    final: dict[int, PersonRecord] = {}
    for result in analyzer.stream(video):
        for record in result.people:
            final[record.track_id] = record
    return list(final.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", help="file names in the shared videos folder (default: those of the CSV)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    eye = by_eye()
    names = args.videos or list(eye)
    analyzer = Analyzer(store=ModelStore())
    print(f"counted: frames >= {COUNTED_MIN_FRAMES} and dwell >= {COUNTED_MIN_SECONDS} s")
    print(f"{'video':32} {'by eye':>6} {'tracks':>6} {'counted':>7} {'fragments':>9} {'ratio':>6} "
          f"{'dwell all':>9} {'dwell cnt':>9}  genders of counted (m/f/unknown)  seconds")
    report = {}
    for name in names:
        start = time.perf_counter()
        records = people(analyzer, VIDEOS / name)
        elapsed = time.perf_counter() - start
        counted = [p for p in records if p.counted]
        dwell_all = statistics.median(p.dwell_seconds or 0.0 for p in records) if records else 0.0
        dwell_counted = statistics.median(p.dwell_seconds or 0.0 for p in counted) if counted else 0.0
        genders = Counter(p.gender for p in counted)
        expected = eye.get(name)
        ratio = len(counted) / expected if expected else float("nan")
        report[name] = {
            "by_eye": expected, "tracks": len(records), "counted": len(counted), "fragments": len(records) - len(counted),
            "ratio": ratio, "median_dwell_all": dwell_all, "median_dwell_counted": dwell_counted,
            "genders_counted": dict(genders), "seconds": elapsed,
        }
        mfu = f"{genders['male']}/{genders['female']}/{genders['unknown']}"
        print(f"{name:32} {expected if expected is not None else '-':>6} {len(records):6d} {len(counted):7d} "
              f"{len(records) - len(counted):9d} {ratio:6.2f} {dwell_all:9.2f} {dwell_counted:9.2f}  {mfu:>33}  {elapsed:7.1f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
