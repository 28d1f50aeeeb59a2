"""`facelens batch --ray`: the same batch on a local Ray cluster (loopback, torn down), a worker
killed mid-batch has its file given to another, nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import shutil
from collections import Counter
from pathlib import Path

import pytest

from facelens.batch import expand
from facelens.batch.distributed import run_batch_ray

from conftest import COMPREFACE
from test_batch import GIF, PHOTOS, SPEAKER, database, facelens, manifest, output_of, records, same_faces

pytest.importorskip("ray", reason='--ray needs pip install "facelens[ray]"')


def test_ray_batch_gives_the_in_process_faces_and_retries_a_killed_worker(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        shutil.copy(COMPREFACE / name, photos / name)
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    inputs = [str(GIF), str(SPEAKER), str(photos), str(bad)]
    here = tmp_path / "here"
    assert facelens("batch", *inputs, "--out", here).exit_code == 3

    killed: list[int] = []

    def kill_speakers_worker(unit: str, pid: int) -> None:
        if unit == str(SPEAKER) and not killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    units, missing = expand(inputs)
    there = tmp_path / "there"
    result = run_batch_ray(units, missing, there, {"store": None}, workers=2, started_on=kill_speakers_worker)
    assert killed
    assert sorted(result.done) == sorted([str(GIF), str(SPEAKER), str(photos)])
    assert [key for key, _ in result.failed] == [str(bad)]
    entries = manifest(there)
    assert entries[str(SPEAKER)]["attempts"] == 2 and entries[str(SPEAKER)]["status"] == "done"
    for source in (GIF, SPEAKER, photos):
        same_faces(records(output_of(there, source)), records(output_of(here, source)))
    assert [r["frame"] for r in records(output_of(there, SPEAKER))] == list(range(275))
    runs = database(there, "SELECT sources, ended_at FROM runs")
    assert sorted(json.loads(s)[0] for s, _ in runs) == sorted([str(GIF), str(SPEAKER), str(photos)])
    assert all(ended is not None for _, ended in runs)
    assert max(Counter(database(there, "SELECT source, track_id, kind FROM events")).values()) == 1
    for video in (GIF, SPEAKER):
        people = {t for (t,) in database(there, f"SELECT track_id FROM people WHERE source = '{video}'")}
        assert people == {r["track_id"] for r in records(output_of(there, video), "person")}
