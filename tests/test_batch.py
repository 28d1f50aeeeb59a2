"""`facelens batch`: many files into one folder, resumable, on the real models and shared data."""

from __future__ import annotations

import fcntl
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner, Result

from facelens.batch import expand
from facelens.cli import app

from conftest import COMPREFACE, SURE, VIDEOS

GIF = VIDEOS / "face-demographics-walking.gif"
SPEAKER = VIDEOS / "speaker-360p.mp4"
PHOTOS = ["000_5.jpg", "001_A.jpg", "002_A.jpg"]
runner = CliRunner()


def facelens(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def records(path: Path, kind: str = "frame") -> list[dict]:
    return [r for line in path.read_text().splitlines() if (r := json.loads(line))["type"] == kind]


def manifest(out: Path) -> dict[str, dict]:
    with closing(sqlite3.connect(out / "manifest.db")) as conn:
        conn.row_factory = sqlite3.Row
        return {row["key"]: dict(row) for row in conn.execute("SELECT * FROM files")}


def status(out: Path, key: Path) -> str | None:
    """A unit's status while another process writes the manifest (None before it is there)."""
    if not (out / "manifest.db").exists():
        return None
    try:
        return manifest(out).get(str(key), {}).get("status")
    except sqlite3.OperationalError:  # created, its table not yet
        return None


def database(out: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(out / "people.db")) as conn:
        return conn.execute(sql).fetchall()


def output_of(out: Path, key: str | Path) -> Path:
    return out / manifest(out)[str(key)]["output"]


def same_faces(ours: list[dict], theirs: list[dict]) -> None:
    """Frame by frame, every sure face of one run is in the other at the same place with the same age."""
    assert [r["frame"] for r in ours] == [r["frame"] for r in theirs]
    for mine, other in zip(ours, theirs):
        for a, b in ((mine, other), (other, mine)):
            for face in (f for f in a["faces"] if f["confidence"] >= SURE):
                match = [g for g in b["faces"] if max(abs(p - q) for p, q in zip(face["box"], g["box"])) < 2]
                assert match, (a["source"], a["frame"], face["box"])
                if face["age"] is not None and match[0]["age"] is not None:
                    assert abs(face["age"] - match[0]["age"]) < 1.0


def test_mixed_batch_gives_analyzes_faces_lists_bad_files_and_a_rerun_skips(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        shutil.copy(COMPREFACE / name, photos / name)
    (photos / "cut.jpg").write_bytes((COMPREFACE / "004_A.jpg").read_bytes()[:5000])
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{SPEAKER}\n# a comment\n\nnotes.mp4\n")  # relative to the list
    out = tmp_path / "out"

    done = facelens("batch", GIF, listing, photos, "--out", out)
    assert done.exit_code == 3, done.output  # some failed, the rest done
    entries = manifest(out)
    assert {k: e["status"] for k, e in entries.items()} == {str(GIF): "done", str(SPEAKER): "done", str(photos): "done", str(bad): "failed"}
    assert "cannot open video" in entries[str(bad)]["error"] and str(bad) in done.output
    assert json.loads(entries[str(photos)]["skipped"]) == [[str(photos / "cut.jpg"), "truncated image"]]
    assert entries[str(SPEAKER)]["frames"] == 275 and entries[str(GIF)]["frames"] == 35 and entries[str(photos)]["frames"] == 3
    assert all(len(e["fingerprint"]) == 32 and e["seconds"] > 0 for k, e in entries.items() if k != str(bad))
    assert not list(out.glob("*.part"))

    # The same records as `analyze` on each input.
    for source in (GIF, SPEAKER, photos):
        alone = tmp_path / f"{Path(source).name}.jsonl"
        assert facelens("analyze", source, "--jsonl", alone).exit_code == 0
        ours = records(output_of(out, source))
        assert sum(len(r["faces"]) for r in ours) == entries[str(source)]["faces"] > 0
        same_faces(ours, records(alone))
    # The database: one finished run per input done, its people those of the input's JSON Lines.
    runs = database(out, "SELECT id, sources, ended_at FROM runs")
    assert sorted(json.loads(s)[0] for _, s, _ in runs) == sorted([str(GIF), str(SPEAKER), str(photos)])
    assert all(ended is not None for _, _, ended in runs)
    for video in (GIF, SPEAKER):
        people = {track for (track,) in database(out, f"SELECT track_id FROM people WHERE source = '{video}'")}
        assert people and people == {r["track_id"] for r in records(output_of(out, video), "person")}

    # A rerun skips what was done: nothing analyzed, written or added again.
    written = {p: p.stat().st_mtime_ns for p in out.glob("*.jsonl")}
    again = facelens("batch", GIF, listing, photos, "--out", out)
    assert again.exit_code == 3 and "0 done, 3 already done, 1 failed" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.jsonl")} == written
    assert database(out, "SELECT id, sources, ended_at FROM runs") == runs
    after = manifest(out)
    assert all(after[k] == entries[k] for k in entries if k != str(bad))
    assert after[str(bad)]["attempts"] == 2


def test_a_changed_file_is_done_again_without_duplicates(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(COMPREFACE / PHOTOS[0], photos / "a.jpg")
    out = tmp_path / "out"
    assert facelens("batch", photos, "--out", out).exit_code == 0
    first = manifest(out)[str(photos)]
    shutil.copy(COMPREFACE / PHOTOS[1], photos / "b.jpg")
    assert facelens("batch", photos, "--out", out).exit_code == 0
    second = manifest(out)[str(photos)]
    assert second["fingerprint"] != first["fingerprint"] and second["attempts"] == 2 and second["frames"] == 2
    assert [r["source"] for r in records(out / second["output"])] == [str(photos / "a.jpg"), str(photos / "b.jpg")]
    assert len(database(out, "SELECT id FROM runs")) == 1


def test_inputs_expand_into_videos_and_photo_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    for name in ("x.jpg", "y.png", "clip.mp4", "readme.md"):
        (tmp_path / "a" / name).write_bytes(b"")
    (tmp_path / "loose.jpg").write_bytes(b"")
    units, missing = expand([str(tmp_path / "a"), str(tmp_path / "*.jpg"), str(tmp_path / "nothing-*.mp4"), str(tmp_path / "gone.mp4")])
    assert [(u.kind, u.key, [Path(f).name for f in u.files]) for u in units] == [
        ("video", str(tmp_path / "a" / "clip.mp4"), ["clip.mp4"]),
        ("photos", str(tmp_path / "a"), ["x.jpg", "y.png"]),
        ("photos", str(tmp_path), ["loose.jpg"]),
    ]
    assert [why for _, why in missing] == ["the pattern matches nothing", "no such file or directory"]
    assert len({u.output for u in units}) == 3


def test_a_killed_batch_resumes_the_file_in_flight_and_keeps_the_finished_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "facelens", "batch", str(GIF), str(SPEAKER), "--jobs", "1", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if status(out, SPEAKER) == "in-flight" and process.poll() is None:
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.02)
        else:
            raise AssertionError("the second file never came in flight")
        time.sleep(0.5)  # some of its frames and people written
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    killed = manifest(out)
    assert killed[str(GIF)]["status"] == "done" and killed[str(SPEAKER)]["status"] == "in-flight"
    gif_output = output_of(out, GIF)
    gif_written = gif_output.stat().st_mtime_ns
    assert not (out / killed[str(SPEAKER)]["output"]).exists()  # only its .part

    again = facelens("batch", GIF, SPEAKER, "--jobs", "1", "--out", out)
    assert again.exit_code == 0, again.output
    assert "1 done, 1 already done, 0 failed" in again.output
    entries = manifest(out)
    assert entries[str(GIF)] == killed[str(GIF)] and gif_output.stat().st_mtime_ns == gif_written
    assert entries[str(SPEAKER)]["status"] == "done" and entries[str(SPEAKER)]["attempts"] == 2
    assert [r["frame"] for r in records(output_of(out, SPEAKER))] == list(range(275))
    assert not list(out.glob("*.part"))
    runs = database(out, "SELECT sources FROM runs")
    assert sorted(json.loads(s)[0] for (s,) in runs) == sorted([str(GIF), str(SPEAKER)])
    events = database(out, "SELECT source, track_id, kind FROM events")
    assert events and max(Counter(events).values()) == 1
    people = {track for (track,) in database(out, f"SELECT track_id FROM people WHERE source = '{SPEAKER}'")}
    assert people == {r["track_id"] for r in records(output_of(out, SPEAKER), "person")}


def test_sigterm_stops_cleanly_and_leaves_the_file_in_flight(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "facelens", "batch", str(SPEAKER), "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while status(out, SPEAKER) != "in-flight":
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "timeout"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM" in stderr and manifest(out)[str(SPEAKER)]["status"] == "in-flight"


def test_a_second_batch_into_the_same_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        refused = facelens("batch", COMPREFACE / PHOTOS[0], "--out", out)
    assert refused.exit_code == 1 and "another facelens batch is writing into this folder" in refused.output
    assert facelens("batch", COMPREFACE / PHOTOS[0], "--out", out).exit_code == 0
