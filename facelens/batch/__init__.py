"""Batch analysis of many files into one folder, resumable: `facelens batch INPUTS... --out DIR`.

DIR receives one JSON Lines file per video and per folder of photos (the records of `facelens
analyze`), `people.db` (each unit its own run) and `manifest.db` (status, fingerprint, timings,
counts and error of each unit, see `facelens.batch.manifest`). A later run into the same DIR
skips the units done and unchanged, and does again those that were in flight.
"""

from .inputs import Unit, expand
from .manifest import Entry, Manifest
from .runner import DATABASE, MANIFEST, BatchResult, run_batch

__all__ = ["DATABASE", "MANIFEST", "BatchResult", "Entry", "Manifest", "Unit", "expand", "run_batch"]
