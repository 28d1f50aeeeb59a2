"""The SQLite store of people and events: round trips, crash safety, concurrent readers, export, JSONL."""

from __future__ import annotations

import csv
import json
import logging
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facelens import __version__
from facelens.db import (
    Database,
    Event,
    PersonRecord,
    event_to_dict,
    export,
    person_to_dict,
    read_jsonl_people,
)
from facelens.errors import FacelensError

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
ODD_SOURCE = 'rtsp://cam/1?a=1,b="x" — café'  # CSV quoting and non-ASCII


def person(track_id: int = 1, source: str = "street.mp4", **changes) -> PersonRecord:
    values = dict(
        source=source,
        track_id=track_id,
        first_seen=1.25,
        last_seen=9.5,
        dwell_seconds=8.25,
        attention_seconds=3.125,
        frames=207,
        age=31.4,
        age_uncertainty=4.5,
        age_bucket="25-34",
        minor=False,
        gender="female",
        gender_confidence=0.93,
        emotion="happy",
        emotion_probabilities={"neutral": 0.1, "happy": 0.8, "sad": 0.05, "surprise": 0.03, "anger": 0.02},
        thumbnail_jpeg=None,
    )
    values.update(changes)
    return PersonRecord(**values)


def bare_person(track_id: int, source: str = "photo.jpg") -> PersonRecord:
    """A person of a still image with every optional value unknown."""
    return person(
        track_id,
        source,
        first_seen=None,
        last_seen=None,
        dwell_seconds=None,
        attention_seconds=None,
        frames=1,
        age=None,
        age_uncertainty=None,
        age_bucket="unknown",
        minor=None,
        gender="unknown",
        gender_confidence=None,
        emotion="unknown",
        emotion_probabilities=None,
    )


def fill(path: Path) -> tuple[list[int], list[PersonRecord], list[Event]]:
    """Two runs: the first ended, with a thumbnail and odd values; the second still open."""
    people = [
        person(1, thumbnail_jpeg=JPEG),
        person(2, minor=True, age=15.5, age_bucket="13-17", gender="male"),
        bare_person(7),
        person(3, source=ODD_SOURCE),
    ]
    events = [
        Event("street.mp4", 1, "enter", 1.25, 1700000000.5),
        Event("street.mp4", 1, "exit", 9.5, 1700000008.75),
        Event("photo.jpg", 7, "enter", None, 1700000009.0),
        Event(ODD_SOURCE, 3, "enter", 0.0, 1700000010.0),
    ]
    with Database(path) as db:
        first = db.start_run(["street.mp4", "photo.jpg"], {"confidence": 0.5, "models_dir": Path("/m")})
        for p in people[:3]:
            db.save_person(first, p)
        for e in events[:3]:
            db.add_event(first, e)
        db.end_run(first)
        second = db.start_run([ODD_SOURCE], {})
        db.save_person(second, people[3])
        db.add_event(second, events[3])
    return [first, second], people, events


def test_round_trip(tmp_path):
    path = tmp_path / "facelens.db"
    started = time.time()
    (first, second), people, events = fill(path)

    def by_key(p: PersonRecord) -> tuple[str, int]:
        return (p.source, p.track_id)

    with Database(path) as db:  # a fresh connection: everything comes from the file
        assert db.people(first) == sorted(people[:3], key=by_key)
        assert db.people(second) == [people[3]]
        assert db.people() == [*sorted(people[:3], key=by_key), people[3]]
        assert db.people(first)[1].thumbnail_jpeg == JPEG
        assert db.events(first) == events[:3]  # in the order recorded
        assert db.events(second) == events[3:]
        assert db.events() == events
        runs = db.runs()
    assert [r["id"] for r in runs] == [first, second]
    assert runs[0]["sources"] == ["street.mp4", "photo.jpg"]
    assert runs[0]["options"] == {"confidence": 0.5, "models_dir": "/m"}  # not JSON -> text
    assert runs[0]["facelens_version"] == __version__
    assert started <= runs[0]["started_at"] <= runs[0]["ended_at"] <= time.time()
    assert runs[1]["ended_at"] is None  # never ended: looks interrupted
    assert runs[1]["sources"] == [ODD_SOURCE] and runs[1]["options"] == {}


def test_person_update_keeps_one_row(tmp_path):
    path = tmp_path / "facelens.db"
    with Database(path) as db:
        run = db.start_run(["street.mp4"], {})
        other = db.start_run(["street.mp4"], {})
        db.save_person(run, person(1, frames=3, thumbnail_jpeg=JPEG))
        db.save_person(run, person(1, source="other.mp4"))  # same track, other source: its own row
        db.save_person(other, person(1))  # same track and source, other run: its own row
        updated = person(1, frames=90, last_seen=20.0, emotion="sad", minor=None, emotion_probabilities=None)
        db.save_person(run, updated)
        assert db.people(run) == [person(1, source="other.mp4"), updated]  # the thumbnail went with the update
        assert db.people(other) == [person(1)]
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT run_id, source, track_id, frames FROM people ORDER BY 1, 2").fetchall()
    conn.close()
    assert rows == [(run, "other.mp4", 1, 207), (run, "street.mp4", 1, 90), (other, "street.mp4", 1, 207)]


def test_numpy_values_are_stored_as_plain_numbers(tmp_path):
    np = pytest.importorskip("numpy")
    p = person(
        np.int64(4),
        age=np.float32(31.5),
        frames=np.int64(12),
        minor=np.bool_(False),
        emotion_probabilities={"happy": np.float32(0.75), "sad": np.float64(0.25)},
        thumbnail_jpeg=bytearray(JPEG),
    )
    e = Event("street.mp4", np.int64(4), "enter", np.float64(0.5), np.float64(1.0))
    with Database(tmp_path / "facelens.db") as db:
        run = db.start_run("street.mp4", {})
        db.save_person(run, p)
        db.add_event(run, e)
        stored = db.people(run)[0]
        assert db.events(run) == [Event("street.mp4", 4, "enter", 0.5, 1.0)]
        assert db.runs()[0]["sources"] == ["street.mp4"]  # one source, not its letters
    assert stored == person(4, age=31.5, frames=12, emotion_probabilities={"happy": 0.75, "sad": 0.25},
                            thumbnail_jpeg=JPEG)
    assert type(stored.frames) is int and type(stored.minor) is bool
    assert json.loads(json.dumps(person_to_dict(p)))["frames"] == 12
    assert json.dumps(event_to_dict(e)) == (
        '{"type": "event", "source": "street.mp4", "track_id": 4, "kind": "enter", "timestamp": 0.5, "wall_time": 1.0}'
    )


def test_wal_mode_and_foreign_keys(tmp_path):
    path = tmp_path / "facelens.db"
    with Database(path) as db:
        run = db.start_run(["a"], {})
        db.add_event(run, Event("a", 1, "enter", 0.0, 1.0))
        assert Path(f"{path}-wal").exists()  # the write went to the WAL
        other = sqlite3.connect(path)  # the mode is in the file, not only in our connection
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other.close()
        with pytest.raises(FacelensError, match=r"facelens\.db: cannot add event to run 99 .*FOREIGN KEY"):
            db.add_event(99, Event("a", 1, "enter", 0.0, 1.0))
    assert not Path(f"{path}-wal").exists()  # closing folded the WAL back into the file
    with pytest.raises(ValueError, match="enter, exit"):
        Event("a", 1, "left", 0.0, 1.0)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    Database(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(FacelensError) as error:
        Database(path)
    assert str(path) in str(error.value)
    assert "schema version 2 is newer" in str(error.value) and "upgrade facelens" in str(error.value)

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'banana' WHERE key = 'schema_version'")
    with pytest.raises(FacelensError, match="unknown database schema version 'banana'"):
        Database(path)


def test_foreign_files_are_refused_untouched(tmp_path):
    other = tmp_path / "photos.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE photos (name TEXT)")
    with pytest.raises(FacelensError, match=f"{re.escape(str(other))}: not a facelens database"):
        Database(other)
    conn = sqlite3.connect(other)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("photos",)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    conn.close()

    text = tmp_path / "notes.db"
    text.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(FacelensError, match=f"{re.escape(str(text))}: cannot open database .*not a database"):
        Database(text)


# A child that writes as fast as it can and reports each committed write on stdout.
WRITER = """
import os, sys, time
from facelens.db import Database, Event, PersonRecord
db = Database(sys.argv[1])
run = db.start_run(["cam"], {"child": True})
print("run", run, flush=True)
stop = sys.argv[2] if len(sys.argv) > 2 else None
i = 0
while not (stop and os.path.exists(stop)):
    db.add_event(run, Event("cam", i, "enter", i / 25, time.time()))
    db.save_person(run, PersonRecord("cam", i % 40, 0.0, i / 25, i / 25, None, i, 30.0, 5.0, "25-34", False,
                                     "male", 0.9, "neutral", {"neutral": 1.0}, os.urandom(3000)))
    print(i, flush=True)
    i += 1
    if stop:
        time.sleep(0.002)
"""


def test_sigkill_mid_run_loses_nothing_reported(tmp_path):
    path = tmp_path / "facelens.db"
    for round_ in range(2):  # the second child opens the file the first one left after its kill
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        guard = threading.Timer(30, child.kill)
        guard.start()
        try:
            run = int(child.stdout.readline().split()[1])
            reported = []
            for line in child.stdout:
                reported.append(int(line))
                if len(reported) == 400 + 300 * round_:
                    child.send_signal(signal.SIGKILL)
                    break
            rest = child.communicate()[0]  # lines already in the pipe were reported too
            reported += [int(line) for line in rest.split("\n")[:-1]]  # a cut last line does not count
        finally:
            guard.cancel()
        assert child.returncode == -signal.SIGKILL
        assert Path(f"{path}-wal").exists()  # really killed mid-run: nobody folded the WAL back

        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()
        with Database(path) as db:
            stored = {e.track_id for e in db.events(run)}
            assert set(reported) <= stored
            assert max(stored) <= reported[-1] + 1  # at most the write in flight was unreported
            frames = {p.track_id: p.frames for p in db.people(run)}
            for i in reported:
                assert frames[i % 40] >= i  # a person's row holds its latest reported update
            assert db.runs()[-1]["id"] == run and db.runs()[-1]["ended_at"] is None
        assert len(reported) >= 400


READER = """
import json, sys, time
from facelens.db import Database
counts = []
with Database(sys.argv[1]) as db:
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        counts.append((len(db.events()), len(db.people())))
print(json.dumps(counts))
"""


def test_readers_while_writing(tmp_path):
    path, stop = tmp_path / "facelens.db", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(stop)], stdout=subprocess.PIPE, text=True)
    guard = threading.Timer(30, writer.kill)
    guard.start()
    written = [-1]

    def drain() -> None:  # keep the writer's pipe empty, so only SQLite could slow it down
        for line in writer.stdout:
            if line[0].isdigit():
                written[0] = int(line)

    readers: list[subprocess.Popen] = []
    conn = sqlite3.connect(path, isolation_level=None, timeout=1)
    try:
        assert writer.stdout.readline().startswith("run")
        drainer = threading.Thread(target=drain)
        drainer.start()
        readers = [
            subprocess.Popen([sys.executable, "-c", READER, str(path)], stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]

        # A read transaction held open here does not stop the writer, and keeps its snapshot.
        conn.execute("BEGIN")
        before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        target = written[0] + 50
        deadline = time.monotonic() + 10
        while written[0] < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert written[0] >= target, "the writer was blocked by a reader"
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == before
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > before

        outputs = [reader.communicate(timeout=20) for reader in readers]
    finally:
        conn.close()
        stop.touch()
        for child in (writer, *readers):
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        guard.cancel()
    drainer.join()
    assert writer.returncode == 0
    for reader, (out, _) in zip(readers, outputs, strict=True):
        assert reader.returncode == 0
        counts = json.loads(out)
        events = [c[0] for c in counts]
        assert events == sorted(events)  # never goes back
        assert events[-1] > events[0]  # saw the writer's progress while it wrote
        assert all(0 < p <= 40 for _, p in counts[1:])
    with Database(path) as db:
        assert len(db.events()) == written[0] + 1


def test_export_csv_and_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "facelens.db"
    (first, second), _, events = fill(path)
    with Database(path) as db:
        runs = db.runs()
        stored = [(first, p) for p in db.people(first)] + [(second, p) for p in db.people(second)]
        conn = sqlite3.connect(path)
        updated = [row[0] for row in conn.execute("SELECT updated_at FROM people ORDER BY run_id, source, track_id")]
        conn.close()

    files = export(path, tmp_path / "out")
    assert sorted(f.name for f in files) == sorted(
        f"{t}.{f}" for t in ("runs", "people", "events") for f in ("csv", "parquet")
    )
    assert all(f.parent == tmp_path / "out" and f.is_file() for f in files)

    def number(text: str) -> float | None:
        return None if text == "" else float(text)

    def boolean(text: str) -> bool | None:
        return {"": None, "true": True, "false": False}[text]

    with open(tmp_path / "out" / "people.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert "thumbnail_jpeg" not in rows[0]
    assert len(rows) == len(stored) == 4
    for row, (run_id, p), updated_at in zip(rows, stored, updated, strict=True):
        assert int(row["run_id"]) == run_id and row["source"] == p.source and int(row["track_id"]) == p.track_id
        for name in ("first_seen", "last_seen", "dwell_seconds", "attention_seconds", "age", "age_uncertainty",
                     "gender_confidence"):
            assert number(row[name]) == getattr(p, name), name
        assert int(row["frames"]) == p.frames
        assert (row["age_bucket"], row["gender"], row["emotion"]) == (p.age_bucket, p.gender, p.emotion)
        assert boolean(row["minor"]) == p.minor
        assert (json.loads(row["emotion_probabilities"]) if row["emotion_probabilities"] else None) == (
            p.emotion_probabilities
        )
        assert boolean(row["has_thumbnail"]) == (p.thumbnail_jpeg is not None)
        assert float(row["updated_at"]) == updated_at
    assert sum(boolean(row["has_thumbnail"]) for row in rows) == 1

    with open(tmp_path / "out" / "events.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [
        Event(r["source"], int(r["track_id"]), r["kind"], number(r["timestamp"]), float(r["wall_time"])) for r in rows
    ] == events
    assert [int(r["run_id"]) for r in rows] == [first, first, first, second]

    with open(tmp_path / "out" / "runs.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["id"]) for r in rows] == [first, second]
    assert [json.loads(r["sources"]) for r in rows] == [r["sources"] for r in runs]
    assert [json.loads(r["options"]) for r in rows] == [r["options"] for r in runs]
    assert float(rows[0]["ended_at"]) == runs[0]["ended_at"] and rows[1]["ended_at"] == ""
    assert [float(r["started_at"]) for r in rows] == [r["started_at"] for r in runs]

    table = pq.read_table(tmp_path / "out" / "people.parquet")
    assert str(table.schema.field("minor").type) == "bool" and str(table.schema.field("frames").type) == "int64"
    for row, (run_id, p) in zip(table.to_pylist(), stored, strict=True):
        probabilities = row.pop("emotion_probabilities")
        assert (json.loads(probabilities) if probabilities else None) == p.emotion_probabilities
        assert row.pop("has_thumbnail") == (p.thumbnail_jpeg is not None)
        assert row.pop("run_id") == run_id and row.pop("updated_at") in updated
        assert PersonRecord(**row, emotion_probabilities=p.emotion_probabilities) == p  # thumbnail included
    rows = pq.read_table(tmp_path / "out" / "events.parquet").to_pylist()
    assert [Event(r["source"], r["track_id"], r["kind"], r["timestamp"], r["wall_time"]) for r in rows] == events
    assert [(r["id"], r["run_id"]) for r in rows] == [(1, first), (2, first), (3, first), (4, second)]
    runs_table = pq.read_table(tmp_path / "out" / "runs.parquet").to_pylist()
    assert [(r["id"], r["started_at"], r["ended_at"], r["facelens_version"]) for r in runs_table] == [
        (r["id"], r["started_at"], r["ended_at"], r["facelens_version"]) for r in runs
    ]

    # CSV only, into an existing folder: only those files are rewritten.
    assert sorted(f.name for f in export(path, tmp_path / "out", formats=("csv",))) == [
        "events.csv", "people.csv", "runs.csv"
    ]
    with pytest.raises(FacelensError, match="unknown export format xlsx"):
        export(path, tmp_path / "out", formats=("xlsx",))
    with pytest.raises(FacelensError, match="no such database"):
        export(tmp_path / "missing.db", tmp_path / "out")


def test_export_of_empty_database_keeps_columns(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    Database(tmp_path / "empty.db").close()
    export(tmp_path / "empty.db", tmp_path / "out")
    assert (tmp_path / "out" / "events.csv").read_text().strip() == "id,run_id,source,track_id,kind,timestamp,wall_time"
    table = pq.read_table(tmp_path / "out" / "people.parquet")
    assert table.num_rows == 0 and "has_thumbnail" in table.column_names and "thumbnail_jpeg" in table.column_names


def test_export_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    fill(tmp_path / "facelens.db")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(FacelensError, match=r'pip install "facelens\[parquet\]"'):
        export(tmp_path / "facelens.db", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing half-written
    assert len(export(tmp_path / "facelens.db", tmp_path / "out", formats=("csv",))) == 3


def test_jsonl_round_trip_with_bad_lines(tmp_path, caplog):
    with_thumbnail = person(1, thumbnail_jpeg=JPEG)
    first = person(1, frames=5)
    still = bare_person(2)
    enter = Event("street.mp4", 1, "enter", 1.25, 1700000000.5)
    on_photo = Event("photo.jpg", 2, "enter", None, 1700000001.0)
    assert "thumbnail_jpeg" not in person_to_dict(first)
    assert isinstance(person_to_dict(with_thumbnail)["thumbnail_jpeg"], str)

    def good(record: dict) -> bytes:
        return json.dumps(record).encode() + b"\n"

    truncated = good(person_to_dict(still))[:-40] + b"\n"
    wrong_type = dict(person_to_dict(still), frames="ten")
    lines = [
        good(person_to_dict(first)),  # 1
        good(event_to_dict(enter)),  # 2
        b"this is not json\n",  # 3 bad
        truncated,  # 4 bad: cut by a crash
        good(wrong_type),  # 5 bad
        b'{"type": "person", "source": "\xff\xfe"}\n',  # 6 bad: not UTF-8
        b"[1, 2, 3]\n",  # 7 bad: not an object
        good(dict(event_to_dict(enter), kind="jump")),  # 8 bad
        good({"frame": 3, "faces": []}),  # 9 bad: no "type"
        b"\n",  # 10 blank: fine
        good({"type": "summary", "frames": 10}),  # 11 another kind of record: fine
        good(person_to_dict(still)),  # 12
        good(person_to_dict(with_thumbnail)),  # 13: updates track 1
        good(event_to_dict(on_photo)),  # 14
    ]
    path = tmp_path / "people.jsonl"
    path.write_bytes(b"".join(lines) + b'{"type": "event", "sou')  # and a last line without end

    with caplog.at_level(logging.WARNING, logger="facelens"):
        people, events = read_jsonl_people(path)
    assert people == [with_thumbnail, still]  # the latest line of a track wins
    assert people[0].thumbnail_jpeg == JPEG
    assert events == [enter, on_photo]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "facelens"]
    assert [w.split(":")[1] for w in warnings[:-1]] == ["3", "4", "5", "6", "7", "8", "9", "15"]
    assert all(w.startswith(f"{path}:") and "bad line skipped" in w for w in warnings[:-1])
    assert '"frames" must be an integer' in warnings[2] and "enter, exit" in warnings[5]
    assert warnings[-1] == f"{path}: 8 bad lines skipped"

    with pytest.raises(FacelensError, match=r"missing\.jsonl: cannot read"):
        read_jsonl_people(tmp_path / "missing.jsonl")
