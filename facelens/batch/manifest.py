"""The batch manifest: one SQLite row per unit with its status, timings, counts and error.

| column | meaning |
|---|---|
| `key` | the video's absolute path, or the photos' folder |
| `kind` | `video` or `photos` |
| `fingerprint` | size, mtime and a hash of the first and last MiB of each file (`Unit.fingerprint`) |
| `status` | `in-flight` (started, not finished: redone by the next run), `done` or `failed` |
| `output` | its JSON Lines file in the batch folder (written as `.part`, renamed when done) |
| `run_id` | its run in `people.db` |
| `started_at`, `ended_at`, `seconds` | unix times and wall seconds of the last attempt |
| `frames`, `faces`, `people` | counts of the last attempt |
| `skipped` | photos passed over, a JSON array of [path, reason] |
| `error` | why it failed |
| `attempts` | how many times it was started |
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FacelensError

STATUSES = ("in-flight", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    key         TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    fingerprint TEXT,
    status      TEXT NOT NULL CHECK (status IN ('in-flight', 'done', 'failed')),
    output      TEXT,
    run_id      INTEGER,
    started_at  REAL,
    ended_at    REAL,
    seconds     REAL,
    frames      INTEGER NOT NULL DEFAULT 0,
    faces       INTEGER NOT NULL DEFAULT 0,
    people      INTEGER NOT NULL DEFAULT 0,
    skipped     TEXT NOT NULL DEFAULT '[]',
    error       TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str
    fingerprint: str | None
    status: str
    output: str | None
    run_id: int | None
    started_at: float | None
    ended_at: float | None
    seconds: float | None
    frames: int
    faces: int
    people: int
    skipped: list[list[str]]
    error: str | None
    attempts: int


class Manifest:
    """`manifest.db` of a batch folder; every change is committed at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as error:
            raise FacelensError(f"{self.path}: cannot open the manifest ({error})") from None

    def entries(self) -> dict[str, Entry]:
        rows = self._conn.execute(f"SELECT {', '.join(Entry.__dataclass_fields__)} FROM files").fetchall()
        return {row[0]: Entry(*row[:12], json.loads(row[12]), *row[13:]) for row in rows}

    def start(self, key: str, kind: str, fingerprint: str, output: str, run_id: int) -> None:
        self._set(key, kind, fingerprint=fingerprint, status="in-flight", output=output, run_id=run_id,
                  started_at=time.time(), ended_at=None, seconds=None, frames=0, faces=0, people=0, skipped="[]", error=None,
                  attempts=self._attempts(key) + 1)

    def finish(self, key: str, kind: str, *, status: str, seconds: float, frames: int = 0, faces: int = 0, people: int = 0,
               skipped: list[tuple[str, str]] | None = None, error: str | None = None) -> None:
        """Record the end of an attempt that `start` recorded."""
        self._set(key, kind, status=status, ended_at=time.time(), seconds=seconds, frames=frames, faces=faces, people=people,
                  skipped=json.dumps([list(s) for s in skipped or ()]), error=error)

    def fail(self, key: str, kind: str, fingerprint: str | None, error: str) -> None:
        """Record a unit that failed before it could start (unreadable, would not open)."""
        now = time.time()
        self._set(key, kind, fingerprint=fingerprint, status="failed", output=None, run_id=None, started_at=now, ended_at=now,
                  seconds=0.0, frames=0, faces=0, people=0, skipped="[]", error=error, attempts=self._attempts(key) + 1)

    def _attempts(self, key: str) -> int:
        row = self._conn.execute("SELECT attempts FROM files WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def _set(self, key: str, kind: str, **values: Any) -> None:
        columns = ["key", "kind", *values]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        try:
            self._conn.execute(
                f"INSERT INTO files ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) ON CONFLICT (key) DO UPDATE SET {updates}",
                (key, kind, *values.values()),
            )
        except sqlite3.Error as error:
            raise FacelensError(f"{self.path}: cannot write the manifest ({error})") from None

    def close(self) -> None:
        self._conn.close()
