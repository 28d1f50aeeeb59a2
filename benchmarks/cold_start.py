"""Cold start: `facelens analyze PHOTO --jsonl OUT` from command to exit, a checkout against another.

Each run is a new process (the OS file cache warm: one unmeasured run of each first); the two
checkouts alternate, --rounds times, so that a busy machine slows both alike. The old checkout runs
through PYTHONPATH, e.g. from `git worktree add /tmp/fl-old <commit>`. Also prints the imports that
took longest (cumulative, `python -X importtime`), each checkout's from one more run.

    FACELENS_MODELS_DIR=../shared/models python benchmarks/cold_start.py --old /tmp/fl-old
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACELENS_SHARED", REPO.parent / "shared"))
PHOTO = SHARED / "data" / "compreface-samples" / "010_2.jpg"


def command(photo: Path, out: Path, *python_options: str) -> list[str]:
    return [sys.executable, *python_options, "-m", "facelens", "analyze", str(photo), "--jsonl", str(out)]


def run(checkout: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """`command` with `checkout`'s facelens: run from the output's folder, as `python -m` puts the
    working folder first on the path (before PYTHONPATH)."""
    return subprocess.run(command, env=environment(checkout), cwd=Path(command[-1]).parent, check=True, capture_output=True, text=True)


def environment(checkout: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    env.setdefault("FACELENS_MODELS_DIR", str(SHARED / "models"))
    return env


def wall(checkout: Path, photo: Path, out: Path) -> float:
    started = time.perf_counter()
    run(checkout, command(photo, out))
    return time.perf_counter() - started


def top_imports(checkout: Path, photo: Path, out: Path, count: int) -> list[tuple[float, str, int]]:
    """(cumulative ms, module, depth) of the `count` slowest imports at depths 0-2 of the import tree."""
    result = run(checkout, command(photo, out, "-X", "importtime"))
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+-?\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and (depth := (len(match[2]) - 1) // 2) <= 2:
            rows.append((int(match[1]) / 1000, match[3], depth))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout to compare with (run through PYTHONPATH)")
    parser.add_argument("--new", type=Path, default=REPO, help="checkout measured (default: this one)")
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "o.jsonl"
        for name, checkout in checkouts.items():
            print(f"slowest imports, {name} ({checkout}):")
            for ms, module, depth in top_imports(checkout, args.photo, out, args.top):
                print(f"  {ms:7.0f} ms  {'  ' * depth}{module}")
            wall(checkout, args.photo, out)  # warms the file cache
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        for i in range(args.rounds):
            for name in checkouts if i % 2 == 0 else reversed(list(checkouts)):
                times[name].append(wall(checkouts[name], args.photo, out))
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.2f} s of {', '.join(f'{v:.2f}' for v in values)}")
    print(f"new / old: {statistics.median(times['new']) / statistics.median(times['old']):.2f}x the time; load: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
