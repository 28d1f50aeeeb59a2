"""`facelens batch`: photos/s and video frames/s in-process with 1 and 2 files at once (--jobs), and
with --ray on a local Ray cluster with 1 and 2 workers (started once; each batch's figure includes
its workers loading the networks), with each worker's resident memory.

Each figure is the count over the batch's wall time, fingerprints, database and manifest included,
models loaded once beforehand; photos and videos are measured as separate batches, the job counts
alternate for --rounds rounds and the median is reported.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/batch.py --photos 500 --rounds 3 [--ray]
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
from facelens.batch.distributed import run_batch_ray

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
    parser.add_argument("--ray", action="store_true", help="also on a local Ray cluster with 1 and 2 workers")
    args = parser.parse_args()
    logging.getLogger("facelens").setLevel(logging.ERROR)
    analyzer = Analyzer()
    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory(prefix="facelens-batch-bench-") as tmp:
        listing = Path(tmp) / "photos.txt"
        listing.write_text("".join(f"{p}\n" for p in sorted(PHOTOS.iterdir())[: args.photos]))
        rates: dict[tuple[str, int], list[float]] = {}
        memory: dict[int, list[float]] = {}
        if args.ray:
            import ray

            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        modes = [("--jobs", jobs) for jobs in args.jobs] + ([("--ray workers", n) for n in (1, 2)] if args.ray else [])
        for round_ in range(args.rounds):
            for mode, n in modes:
                for what, inputs in (("photos", [str(listing)]), ("video frames", args.videos)):
                    units, missing = expand(inputs)
                    out = Path(tmp) / f"{what}-{mode}-{n}-{round_}"
                    if mode == "--jobs":
                        result = run_batch(units, missing, out, analyzer, jobs=n, console=quiet)
                    else:
                        seen: set[int] = set()

                        def measure(_: str, pid: int, n: int = n, seen: set[int] = seen) -> None:
                            if pid not in seen:  # its networks loaded, its first file about to start
                                seen.add(pid)
                                memory.setdefault(n, []).append(_rss_mb(pid))

                        result = run_batch_ray(units, missing, out, {}, workers=n, console=quiet, started_on=measure)
                    count = result.photos if what == "photos" else result.video_frames
                    rates.setdefault((what, f"{mode} {n}"), []).append(count / result.seconds)
                    print(f"round {round_ + 1}, {mode} {n}: {count} {what} in {result.seconds:.1f} s = {count / result.seconds:.1f}/s", flush=True)
    for workers, values in memory.items():
        print(f"--ray workers {workers}: resident memory per worker with its networks loaded {statistics.median(values):.0f} MB (median)")
    for (what, jobs), values in rates.items():
        print(f"{what}/s, {jobs}: median {statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


if __name__ == "__main__":
    main()
