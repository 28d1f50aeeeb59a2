"""Per-person records and enter/exit events in one SQLite file, written as a run goes.

Every `Database.add_event` and `Database.save_person` is its own committed transaction, so a
crash, a SIGKILL or Ctrl-C loses nothing already reported, and the file is never left corrupt.
The file is in WAL mode: other processes can read it (or `export` it) while a run writes.

What the file stores (schema version 1):

| table | column | type | meaning |
|---|---|---|---|
| `meta` | `key`, `value` | text, text | one row `schema_version` = `1` |
| `runs` | `id` | integer | run number, from 1 |
| | `started_at` | real | unix time the run started |
| | `ended_at` | real, null | unix time the run ended; null while it runs or if it was killed |
| | `facelens_version` | text | version of facelens that wrote the run |
| | `sources` | text | the run's sources, a JSON array of strings |
| | `options` | text | the run's options, a JSON object |
| `people` | `run_id` | integer | the run (`runs.id`); one row per run + source + track |
| | `source` | text | the source the person was seen in (file path, camera index, stream URL) |
| | `track_id` | integer | the person's track number within the source |
| | `first_seen`, `last_seen` | real, null | video position (s) of the first and last sighting; null for still images |
| | `dwell_seconds` | real, null | time from first to last sighting; null for still images |
| | `attention_seconds` | real, null | time the person faced the camera; null when not measured |
| | `frames` | integer | number of frames the person was seen in |
| | `age` | real, null | fused age estimate in years; null when age was not estimated |
| | `age_uncertainty` | real, null | uncertainty of `age` in years |
| | `age_bucket` | text | age range label, e.g. `30-44`, or `unknown` |
| | `minor` | integer, null | 1 if the person is judged under 18, 0 if not, null when unknown |
| | `gender` | text | fused gender label |
| | `gender_confidence` | real, null | confidence of `gender`, 0 to 1 |
| | `emotion` | text | fused emotion label |
| | `emotion_probabilities` | text, null | JSON object emotion -> probability |
| | `thumbnail_jpeg` | blob, null | best shot as JPEG; only stored when asked for (privacy: off by default) |
| | `updated_at` | real | unix time the row was last written |
| `events` | `id` | integer | event number, in the order they were recorded |
| | `run_id` | integer | the run (`runs.id`) |
| | `source`, `track_id` | text, integer | the person, as in `people` |
| | `kind` | text | `enter` or `exit` |
| | `timestamp` | real, null | seconds in the source (video position); null for still images |
| | `wall_time` | real | unix time the event was recorded |

A run that was killed keeps `ended_at` null; its people and events are complete up to the kill.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any

from .errors import FacelensError
from .files import write_atomically
from .types import EVENT_KINDS, Event, PersonRecord

__all__ = ["EVENT_KINDS", "Database", "Event", "PersonRecord", "export", "person_to_dict", "event_to_dict", "read_jsonl_people"]

log = logging.getLogger("facelens")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id               INTEGER PRIMARY KEY,
    started_at       REAL NOT NULL,
    ended_at         REAL,
    facelens_version TEXT NOT NULL,
    sources          TEXT NOT NULL,
    options          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (
    run_id                INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    source                TEXT NOT NULL,
    track_id              INTEGER NOT NULL,
    first_seen            REAL,
    last_seen             REAL,
    dwell_seconds         REAL,
    attention_seconds     REAL,
    frames                INTEGER NOT NULL,
    age                   REAL,
    age_uncertainty       REAL,
    age_bucket            TEXT NOT NULL,
    minor                 INTEGER CHECK (minor IN (0, 1)),
    gender                TEXT NOT NULL,
    gender_confidence     REAL,
    emotion               TEXT NOT NULL,
    emotion_probabilities TEXT,
    thumbnail_jpeg        BLOB,
    updated_at            REAL NOT NULL,
    -- The primary key's index starts with (run_id, source), so it also serves lookups by those.
    PRIMARY KEY (run_id, source, track_id)
);
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY,
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    source    TEXT NOT NULL,
    track_id  INTEGER NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('enter', 'exit')),
    timestamp REAL,
    wall_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run_source ON events (run_id, source);
"""
"""The SQLite schema (version `Database.SCHEMA_VERSION`); the module docstring documents every column."""


_PERSON_COLUMNS = tuple(f.name for f in fields(PersonRecord))
_EVENT_COLUMNS = tuple(f.name for f in fields(Event))

# Each field's kind and whether it may be None; drives conversion to plain Python and JSON checks.
_PERSON_FIELDS: dict[str, tuple[str, bool]] = {
    "source": ("str", False),
    "track_id": ("int", False),
    "first_seen": ("float", True),
    "last_seen": ("float", True),
    "dwell_seconds": ("float", True),
    "attention_seconds": ("float", True),
    "frames": ("int", False),
    "age": ("float", True),
    "age_uncertainty": ("float", True),
    "age_bucket": ("str", False),
    "minor": ("bool", True),
    "gender": ("str", False),
    "gender_confidence": ("float", True),
    "emotion": ("str", False),
    "emotion_probabilities": ("probabilities", True),
    "thumbnail_jpeg": ("bytes", True),
}
_EVENT_FIELDS: dict[str, tuple[str, bool]] = {
    "source": ("str", False),
    "track_id": ("int", False),
    "kind": ("str", False),
    "timestamp": ("float", True),
    "wall_time": ("float", False),
}
# Same order as the dataclasses: `_plain` values are bound to SQL columns by position.
assert tuple(_PERSON_FIELDS) == _PERSON_COLUMNS and tuple(_EVENT_FIELDS) == _EVENT_COLUMNS

_PLAIN: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "probabilities": lambda value: {str(k): float(v) for k, v in value.items()},
    "bytes": bytes,
}


def _plain(record: PersonRecord | Event) -> dict[str, Any]:
    """The record's fields as plain Python values: the modules that fill records compute with
    numpy, whose int64 / float32 neither sqlite3 nor json accept."""
    spec = _PERSON_FIELDS if isinstance(record, PersonRecord) else _EVENT_FIELDS
    values = {}
    for name, (kind, _) in spec.items():
        value = getattr(record, name)
        values[name] = None if value is None else _PLAIN[kind](value)
    return values


class Database:
    """One SQLite file (WAL), written as a run goes: each event and person update is committed at
    once, so a crash or Ctrl-C loses nothing already reported.

    synchronous=NORMAL means a commit survives any crash of the process; only a power cut or OS
    crash may lose the last few commits, and even then the file stays consistent. Safe to share
    between threads (calls are serialized).
    """

    SCHEMA_VERSION = 1

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Create or open the database at `path`; a file of another schema version is refused."""
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: autocommit, so a single statement is committed when it returns
            # and multi-statement changes use explicit transactions (`_transaction`).
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise FacelensError(f"{self.path}: cannot open database ({error})") from None
        try:
            self._setup()
        except sqlite3.Error as error:  # e.g. "file is not a database"
            self._conn.close()
            raise FacelensError(f"{self.path}: cannot open database ({error})") from None
        except BaseException:
            self._conn.close()
            raise

    def _setup(self) -> None:
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Check before switching to WAL, which is written into the file: a foreign or newer file
        # must be refused untouched.
        version = self._schema_version()
        if version is not None:
            self._check_version(version)
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            # E.g. some network file systems: still correct, but readers then block the writer.
            log.warning("%s: WAL journal not available (journal_mode=%s)", self.path, mode)
        if version is None:
            # IMMEDIATE takes the write lock first, so two processes creating the same new file
            # do not both decide it is empty.
            with self._transaction("IMMEDIATE"):
                if self._schema_version() is None:
                    # Statement by statement: executescript() would commit the transaction first.
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(self.SCHEMA_VERSION),)
                    )
            self._check_version(self._schema_version())

    def _schema_version(self) -> int | str | None:
        """The file's schema version; None for a new, empty file."""
        tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        if "meta" not in tables:
            raise FacelensError(f"{self.path}: not a facelens database (it has tables but no `meta` table)")
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise FacelensError(f"{self.path}: not a facelens database (no schema_version in `meta`)")
        try:
            return int(row[0])
        except (TypeError, ValueError):
            return str(row[0])

    def _check_version(self, version: int | str | None) -> None:
        if version == self.SCHEMA_VERSION:
            return
        if isinstance(version, int) and version > self.SCHEMA_VERSION:
            raise FacelensError(
                f"{self.path}: database schema version {version} is newer than this facelens supports "
                f"({self.SCHEMA_VERSION}); upgrade facelens to read it"
            )
        raise FacelensError(
            f"{self.path}: unknown database schema version {version!r} "
            f"(this facelens reads version {self.SCHEMA_VERSION})"
        )

    @contextmanager
    def _transaction(self, kind: str = "DEFERRED") -> Iterator[None]:
        self._conn.execute(f"BEGIN {kind}")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _write(self, what: str, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        """Run one statement as its own committed transaction; errors name the file."""
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except sqlite3.Error as error:
                raise FacelensError(f"{self.path}: cannot {what} ({error})") from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def start_run(self, sources: Sequence[str], options: Mapping[str, object]) -> int:
        """Record the start of a run and return its id."""
        from . import __version__  # lazily: facelens/__init__ may import this module

        if isinstance(sources, str):  # one source, not its characters
            sources = [sources]

        cursor = self._write(
            "start a run",
            "INSERT INTO runs (started_at, facelens_version, sources, options) VALUES (?, ?, ?, ?)",
            (time.time(), __version__, json.dumps([str(s) for s in sources]), _options_json(options)),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end_run(self, run_id: int) -> None:
        """Record the end of a run (a run without an end was interrupted)."""
        self._write("end run", "UPDATE runs SET ended_at = ? WHERE id = ?", (time.time(), run_id))

    def add_event(self, run_id: int, event: Event) -> None:
        """Store one event, committed at once."""
        self._write(
            f"add event to run {run_id}",
            "INSERT INTO events (run_id, source, track_id, kind, timestamp, wall_time) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, *_plain(event).values()),
        )

    def save_person(self, run_id: int, person: PersonRecord) -> None:
        """Insert the person, or replace the row of the same run, source and track; committed at once.

        The row becomes exactly `person`: a record without a thumbnail clears a stored one.
        """
        values = _person_values(person)
        columns = ", ".join(_PERSON_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _PERSON_COLUMNS[2:])
        self._write(
            f"save person {person.track_id} of {person.source} in run {run_id}",
            f"INSERT INTO people (run_id, {columns}, updated_at) VALUES ({', '.join('?' * (len(values) + 2))}) "
            f"ON CONFLICT (run_id, source, track_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
            (run_id, *values, time.time()),
        )

    def people(self, run_id: int | None = None) -> list[PersonRecord]:
        """Stored people of one run, or of all runs; by run, source and track."""
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        rows = self._read(
            f"SELECT {', '.join(_PERSON_COLUMNS)} FROM people {where} ORDER BY run_id, source, track_id", params
        )
        return [_person_from_row(row) for row in rows]

    def events(self, run_id: int | None = None) -> list[Event]:
        """Stored events of one run, or of all runs; in the order they were recorded."""
        where, params = ("WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        rows = self._read(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events {where} ORDER BY id", params)
        return [Event(*row) for row in rows]

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first: id, started_at, ended_at, facelens_version, sources (list), options (dict)."""
        rows = self._read("SELECT id, started_at, ended_at, facelens_version, sources, options FROM runs ORDER BY id")
        return [
            {
                "id": id_,
                "started_at": started_at,
                "ended_at": ended_at,
                "facelens_version": version,
                "sources": json.loads(sources),
                "options": json.loads(options),
            }
            for id_, started_at, ended_at, version, sources, options in rows
        ]

    def close(self) -> None:
        """Close the file (idempotent); the last connection to close folds the WAL back into it."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _options_json(options: Mapping[str, object]) -> str:
    # default=str: options may hold paths, enums and the like; a run must never fail to start
    # because one of them is not JSON.
    return json.dumps(dict(options), default=str, sort_keys=True)


def _person_values(person: PersonRecord) -> tuple[Any, ...]:
    values = _plain(person)
    if values["minor"] is not None:
        values["minor"] = int(values["minor"])
    if values["emotion_probabilities"] is not None:
        values["emotion_probabilities"] = json.dumps(values["emotion_probabilities"])
    return tuple(values.values())


def _person_from_row(row: Sequence[Any]) -> PersonRecord:
    record = dict(zip(_PERSON_COLUMNS, row, strict=True))
    if record["minor"] is not None:
        record["minor"] = bool(record["minor"])
    if record["emotion_probabilities"] is not None:
        record["emotion_probabilities"] = json.loads(record["emotion_probabilities"])
    return PersonRecord(**record)


# --- export -------------------------------------------------------------------------------------

# Columns of each exported table: (name, type), in order; "bool" columns are 0/1 in SQLite.
_EXPORT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("id", "int"),
        ("started_at", "float"),
        ("ended_at", "float"),
        ("facelens_version", "str"),
        ("sources", "str"),
        ("options", "str"),
    ],
    "people": [
        ("run_id", "int"),
        ("source", "str"),
        ("track_id", "int"),
        ("first_seen", "float"),
        ("last_seen", "float"),
        ("dwell_seconds", "float"),
        ("attention_seconds", "float"),
        ("frames", "int"),
        ("age", "float"),
        ("age_uncertainty", "float"),
        ("age_bucket", "str"),
        ("minor", "bool"),
        ("gender", "str"),
        ("gender_confidence", "float"),
        ("emotion", "str"),
        ("emotion_probabilities", "str"),
        ("updated_at", "float"),
        ("has_thumbnail", "bool"),
        ("thumbnail_jpeg", "bytes"),
    ],
    "events": [
        ("id", "int"),
        ("run_id", "int"),
        ("source", "str"),
        ("track_id", "int"),
        ("kind", "str"),
        ("timestamp", "float"),
        ("wall_time", "float"),
    ],
}
_EXPORT_ORDER = {"runs": "id", "people": "run_id, source, track_id", "events": "id"}
_EXPORT_FORMATS = ("csv", "parquet")
_BATCH = 2000


def export(
    db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], formats: Iterable[str] = _EXPORT_FORMATS
) -> list[Path]:
    """Write runs, people and events of the database as `runs.csv`, `people.csv`, `events.csv` and/or
    `.parquet` files into `out_dir`; return the files written.

    Columns are those of the schema; JSON columns stay JSON text. CSV leaves thumbnails out (a
    `has_thumbnail` column says whether there is one); Parquet also has `thumbnail_jpeg` (binary).
    Parquet needs pyarrow (`pip install "facelens[parquet]"`). A database being written can be
    exported: all files show the same moment.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in _EXPORT_FORMATS]
    if unknown:
        raise FacelensError(f"unknown export format {', '.join(unknown)}: use {' or '.join(_EXPORT_FORMATS)}")
    db_path = Path(db_path)
    if not db_path.is_file():
        raise FacelensError(f"{db_path}: no such database")
    # Before anything is written: a missing pyarrow must not leave half an export behind.
    pq = _import_parquet() if "parquet" in formats else None
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FacelensError(f"{out}: cannot create folder ({error.strerror})") from None

    written: list[Path] = []
    with Database(db_path) as db, db._lock:
        conn = db._conn
        # One read transaction for every table and format: a consistent snapshot even while
        # another process keeps writing (WAL readers see the file as of their first read).
        with db._transaction():
            for fmt in formats:
                for table, columns in _EXPORT_COLUMNS.items():
                    if fmt == "csv":
                        columns = [c for c in columns if c[1] != "bytes"]
                    rows = _export_rows(conn, table, columns)
                    target = out / f"{table}.{fmt}"
                    if fmt == "csv":
                        write_atomically(target, _write_csv, columns, rows)
                    else:
                        write_atomically(target, partial(_write_parquet, pq), columns, rows)
                    written.append(target)
    return written


def _import_parquet() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise FacelensError('Parquet export needs pyarrow: pip install "facelens[parquet]"') from None
    return pq


def _export_rows(conn: sqlite3.Connection, table: str, columns: list[tuple[str, str]]) -> Iterator[list[Any]]:
    select = ", ".join("thumbnail_jpeg IS NOT NULL" if name == "has_thumbnail" else name for name, _ in columns)
    cursor = conn.execute(f"SELECT {select} FROM {table} ORDER BY {_EXPORT_ORDER[table]}")
    bools = [i for i, (_, kind) in enumerate(columns) if kind == "bool"]
    while batch := cursor.fetchmany(_BATCH):
        for row in batch:
            values = list(row)
            for i in bools:
                if values[i] is not None:
                    values[i] = bool(values[i])
            yield values


def _write_csv(path: Path, columns: list[tuple[str, str]], rows: Iterable[list[Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([name for name, _ in columns])
        for row in rows:
            # Empty for null; true/false for booleans (pandas and spreadsheets read both).
            writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row])


def _write_parquet(pq: Any, path: Path, columns: list[tuple[str, str]], rows: Iterable[list[Any]]) -> None:
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "bytes": pa.binary()}
    # An explicit schema keeps column types even for an empty table.
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[list[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _BATCH:
                writer.write_table(_arrow_table(pa, schema, batch))
                batch = []
        if batch:  # no rows at all: the file still has the schema
            writer.write_table(_arrow_table(pa, schema, batch))


def _arrow_table(pa: Any, schema: Any, rows: list[list[Any]]) -> Any:
    return pa.Table.from_arrays(
        [pa.array([row[i] for row in rows], type=field.type) for i, field in enumerate(schema)], schema=schema
    )


# --- JSON Lines ---------------------------------------------------------------------------------


def person_to_dict(person: PersonRecord) -> dict[str, Any]:
    """The JSON Lines record of a person: {"type": "person", field: value, ...}; the thumbnail as
    base64 in "thumbnail_jpeg", or no such key when there is none."""
    record: dict[str, Any] = {"type": "person", **_plain(person)}
    thumbnail = record.pop("thumbnail_jpeg")
    if thumbnail is not None:
        record["thumbnail_jpeg"] = base64.b64encode(thumbnail).decode("ascii")
    return record


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON Lines record of an event: {"type": "event", field: value, ...}."""
    return {"type": "event", **_plain(event)}


_MAX_LINE_WARNINGS = 20


def read_jsonl_people(path: str | os.PathLike[str]) -> tuple[list[PersonRecord], list[Event]]:
    """The people and events of a JSON Lines file (records of `person_to_dict`, `event_to_dict`).

    A person's latest line wins (a run may write updates of the same track). Records of other
    types are ignored; blank lines too. A bad line (not JSON, a missing or mistyped field, e.g. a
    line cut short by a crash) is a warning and is skipped, and a last warning counts them.
    """
    path = Path(path)
    people: dict[tuple[str, int], PersonRecord] = {}
    events: list[Event] = []
    bad = 0
    try:
        file = open(path, "rb")
    except OSError as error:
        raise FacelensError(f"{path}: cannot read ({error.strerror})") from None
    with file:
        # Bytes, decoded line by line: one line of bad UTF-8 must not end the whole file.
        for number, raw in enumerate(file, 1):
            try:
                text = raw.decode("utf-8")
                if not text.strip():
                    continue
                record = json.loads(text)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                kind = record.get("type")
                if kind == "person":
                    person = _person_from_dict(record)
                    people[(person.source, person.track_id)] = person
                elif kind == "event":
                    events.append(_event_from_dict(record))
                elif not isinstance(kind, str):
                    raise ValueError('no "type"')
            except (ValueError, RecursionError) as error:  # ValueError covers JSON and UTF-8 errors
                bad += 1
                if bad <= _MAX_LINE_WARNINGS:
                    log.warning("%s:%d: bad line skipped (%s)", path, number, _short(error))
    if bad:
        more = f", only the first {_MAX_LINE_WARNINGS} shown" if bad > _MAX_LINE_WARNINGS else ""
        log.warning("%s: %d bad line%s skipped%s", path, bad, "" if bad == 1 else "s", more)
    return list(people.values()), events


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 120 else text[:117] + "..."


def _field(record: Mapping[str, Any], name: str, kind: str, optional: bool) -> Any:
    value = record.get(name)
    if value is None:
        if optional:
            return None
        raise ValueError(f'"{name}" missing')
    # bool is an int in Python, but true/false in a number field is a bad record.
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "probabilities" and isinstance(value, dict):
        return {str(k): _field(value, k, "float", False) for k in value}
    if kind == "bytes" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    raise ValueError(f'"{name}" must be {_KIND_NAMES[kind]}, not {json.dumps(value)[:40]}')


_KIND_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "probabilities": "an object of numbers",
    "bytes": "base64 text",
}


def _person_from_dict(record: Mapping[str, Any]) -> PersonRecord:
    return PersonRecord(**{name: _field(record, name, *spec) for name, spec in _PERSON_FIELDS.items()})


def _event_from_dict(record: Mapping[str, Any]) -> Event:
    return Event(**{name: _field(record, name, *spec) for name, spec in _EVENT_FIELDS.items()})  # kind checked there
