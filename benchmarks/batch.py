"""`facelens batch` in-process: photos/s and video frames/s with 1 and 2 files at once (--jobs).

Each figure is the count over the batch's wall time, fingerprints, database and manifest included,
models loaded once beforehand; photos and videos are measured as separate batches, the job counts
alternate for --rounds rounds and the median is reported.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/batch.py --photos 500 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
from pathlib import Path

from rich.console import Console

from facelens.analyzer import Analyzer
from facelens.batch import expand, run_batch

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
VIDEOS = SHARED / "data" / "videos"
PHOTOS = SHARED / "data" / "utkface-3k" / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=500, help="utkface-3k photos to analyze (listed in a text file)")
    parser.add_argument("--videos", nargs="*", default=[str(p) for p in sorted(VIDEOS.iterdir())], help="videos (default: every shared video)")
    parser.add_argument("--jobs", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("facelens").setLevel(logging.ERROR)
    analyzer = Analyzer()
    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory(prefix="facelens-batch-bench-") as tmp:
        listing = Path(tmp) / "photos.txt"
        listing.write_text("".join(f"{p}\n" for p in sorted(PHOTOS.iterdir())[: args.photos]))
        rates: dict[tuple[str, int], list[float]] = {}
        for round_ in range(args.rounds):
            for jobs in args.jobs:
                for what, inputs in (("photos", [str(listing)]), ("video frames", args.videos)):
                    units, missing = expand(inputs)
                    result = run_batch(units, missing, Path(tmp) / f"{what}-{jobs}-{round_}", analyzer, jobs=jobs, console=quiet)
                    count = result.photos if what == "photos" else result.video_frames
                    rates.setdefault((what, jobs), []).append(count / result.seconds)
                    print(f"round {round_ + 1}, --jobs {jobs}: {count} {what} in {result.seconds:.1f} s = {count / result.seconds:.1f}/s", flush=True)
    for (what, jobs), values in rates.items():
        print(f"{what}/s, --jobs {jobs}: median {statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
