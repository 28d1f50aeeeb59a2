"""The `facelens` command end to end: real models, real videos and photos, real bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from facelens.cli import app

from conftest import DATA, MODELS_DIR, VIDEOS

PHOTOS = DATA / "compreface-samples"
runner = CliRunner()


def facelens(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def lines(path: Path, kind: str = "frame") -> list[dict]:
    """The records of one "type" in a JSON Lines output: frames by default, or "event" / "person"."""
    return [record for line in path.read_text().splitlines() if (record := json.loads(line))["type"] == kind]


def test_street_video_end_to_end(tmp_path: Path) -> None:
    """The installed command on a real video: one JSONL line per frame, in order, with faces."""
    out, video = tmp_path / "street.jsonl", tmp_path / "street.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "facelens", "analyze", VIDEOS / "street-720p.mp4", "--jsonl", out, "--output", video],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    records = lines(out)
    assert len(records) == 477
    assert [r["frame"] for r in records] == list(range(477))
    assert [r["timestamp"] for r in records] == pytest.approx([i * 0.04 for i in range(477)], abs=1e-3)
    assert {r["source"] for r in records} == {str(VIDEOS / "street-720p.mp4")}
    faces = [f for r in records for f in r["faces"]]
    assert sum(1 for r in records if r["faces"]) > 300 and len(faces) > 600
    for face in faces:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
        assert 0 < face["confidence"] <= 1
        if face["pose"] is not None:  # read five times a second per person
            assert -90 <= face["pose"]["yaw"] <= 90
        if face["age"] is not None:  # the attribute budget skips settled people
            assert 0 < face["age"] < 120
            assert face["gender"] in ("female", "male", "unknown") and 0 <= face["gender_probability"] <= 1
        if face["emotion"] is not None:
            assert set(face["emotion_probabilities"]) == {"neutral", "happy", "sad", "surprise", "anger"}
            assert face["emotion"] == max(face["emotion_probabilities"], key=face["emotion_probabilities"].get)
        if face["track_id"] is not None:
            assert face["person"]["gender"] in ("female", "male", "unknown")
            assert face["quality"] is None or 0 <= face["quality"] <= 1  # measured when a network saw the face
    tracked = [f for f in faces if f["track_id"] is not None]
    assert len(tracked) > 0.8 * len(faces) and sum(f["pose"] is not None for f in tracked) > 0.2 * len(tracked)
    assert sum(f["age"] is not None for f in tracked) < 0.8 * len(tracked)  # the budget saved work
    # Every person who entered left, with one final record each (later records replace earlier ones).
    events, people = lines(out, "event"), lines(out, "person")
    ids = {p["track_id"] for p in people}
    assert {e["track_id"] for e in events if e["kind"] == "enter"} == {e["track_id"] for e in events if e["kind"] == "exit"} == ids
    assert ids == {f["track_id"] for f in tracked} and len(ids) >= 10
    for person in people:
        assert 0 <= person["first_seen"] <= person["last_seen"] <= 19.1 and 0 <= person["attention_seconds"] <= person["dwell_seconds"] + 1e-6
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 477
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    assert "477 frames" in done.stderr


def test_single_image_to_annotated_image_and_stdout_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "out" / "people.png"
    result = facelens("analyze", PHOTOS / "000_5.jpg", "--output", out, "--jsonl", "-")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["frame"] == 0 and record["timestamp"] is None and len(record["faces"]) == 5
    annotated, original = cv2.imread(str(out)), cv2.imread(str(PHOTOS / "000_5.jpg"))
    assert annotated.shape == original.shape and not np.array_equal(annotated, original)


def test_blur_hides_every_face(tmp_path: Path) -> None:
    plain, blurred = tmp_path / "plain.png", tmp_path / "blurred.png"
    assert facelens("analyze", PHOTOS / "000_5.jpg", "-o", plain, "--jsonl", tmp_path / "a.jsonl").exit_code == 0
    assert len(lines(tmp_path / "a.jsonl")[0]["faces"]) == 5
    assert facelens("analyze", PHOTOS / "000_5.jpg", "-o", blurred, "--blur", "--jsonl", tmp_path / "b.jsonl").exit_code == 0
    plain_image, blurred_image = cv2.imread(str(plain)).astype(int), cv2.imread(str(blurred)).astype(int)
    for face in lines(tmp_path / "a.jsonl")[0]["faces"]:
        x1, y1, x2, y2 = (int(v) for v in face["box"])
        w, h = x2 - x1, y2 - y1
        inner = (slice(y1 + h // 4, y2 - h // 4), slice(x1 + w // 4, x2 - w // 4))
        assert np.abs(plain_image[inner] - blurred_image[inner]).mean() > 8
    # Far from every face nothing changes.
    assert np.array_equal(plain_image[-60:, -60:], blurred_image[-60:, -60:])


def test_folder_with_bad_files_keeps_good_results(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(PHOTOS / "000_5.jpg", folder / "a.jpg")
    shutil.copy(PHOTOS / "010_2.jpg", folder / "sub" / "c.jpg")
    data = (PHOTOS / "011_3.jpg").read_bytes()
    (folder / "b_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.png").write_text("not an image either")
    out, jsonl = tmp_path / "annotated", tmp_path / "out.jsonl"
    result = facelens("analyze", folder, "--output", out, "--jsonl", jsonl)
    assert result.exit_code == 0, result.output
    assert [Path(r["source"]).name for r in lines(jsonl)] == ["a.jpg", "c.jpg"]
    assert [len(r["faces"]) for r in lines(jsonl)] == [5, 2]
    assert (out / "a.jpg").is_file() and (out / "sub" / "c.jpg").is_file()
    for name in ("b_truncated.jpg", "notes.txt", "fake.png"):
        assert name in result.stderr
    assert "3 skipped" in result.stderr


def test_glob_source(tmp_path: Path) -> None:
    result = facelens("analyze", str(PHOTOS / "01[0-2]_*.jpg"), "--jsonl", tmp_path / "g.jsonl", "-o", tmp_path / "g")
    assert result.exit_code == 0, result.output
    records = lines(tmp_path / "g.jsonl")
    assert [Path(r["source"]).name for r in records] == ["010_2.jpg", "011_3.jpg", "012_4.jpg"]
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [".facelens-output", "010_2.jpg", "011_3.jpg", "012_4.jpg"]


def test_grayscale_and_four_channel_images(tmp_path: Path) -> None:
    image = cv2.imread(str(PHOTOS / "000_5.jpg"))
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "rgba.png"), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    for name in ("gray.png", "rgba.png"):
        result = facelens("analyze", tmp_path / name, "--jsonl", tmp_path / f"{name}.jsonl", "-o", tmp_path / f"out-{name}")
        assert result.exit_code == 0, result.output
        assert len(lines(tmp_path / f"{name}.jsonl")[0]["faces"]) >= 4
        assert cv2.imread(str(tmp_path / f"out-{name}")).shape == image.shape


def test_truncated_video_keeps_frames_read_before_the_cut(tmp_path: Path) -> None:
    data = (VIDEOS / "street-720p.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    result = facelens("analyze", cut, "--jsonl", tmp_path / "cut.jsonl")
    records = lines(tmp_path / "cut.jsonl") if (tmp_path / "cut.jsonl").exists() else []
    if result.exit_code == 0:
        assert 0 < len(records) < 477
        assert [r["frame"] for r in records] == list(range(len(records)))
    else:
        assert records == [] and "cut.mp4" in result.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "missing.jpg", "no such file"),
        (lambda tmp: _write(tmp / "half.jpg", (PHOTOS / "000_5.jpg").read_bytes()[:20000]), "truncated"),
        (lambda tmp: _write(tmp / "text.jpg", b"hello"), "not a readable image"),
        (lambda tmp: _write(tmp / "text.mp4", b"hello, not a video"), "cannot open"),
        (lambda tmp: _mkdir(tmp / "empty"), "no images"),
        (lambda tmp: tmp / "nothing-*.jpg", "text.jpg"),
    ],
    ids=["missing", "truncated-jpeg", "not-an-image", "not-a-video", "empty-folder", "glob-without-match"],
)
def test_single_bad_input_is_one_clear_line_and_nonzero_exit(tmp_path: Path, make, expected: str) -> None:
    spec = make(tmp_path)
    result = facelens("analyze", spec, "--jsonl", tmp_path / "o.jsonl")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert Path(str(spec)).name in message
    if expected != "text.jpg":
        assert expected in message.lower()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_show_without_gui_says_so(tmp_path: Path) -> None:
    result = facelens("analyze", PHOTOS / "000_5.jpg", "--show")
    assert result.exit_code == 1
    assert "GUI" in result.stderr and "opencv-python" in result.stderr


def test_wrong_options_are_refused(tmp_path: Path) -> None:
    assert facelens("analyze", PHOTOS / "000_5.jpg", "--detector", "nope").exit_code == 2
    result = facelens("analyze", PHOTOS, "--output", tmp_path / "x.jpg")
    assert result.exit_code == 1 and "folder" in result.stderr
    result = facelens("analyze", VIDEOS / "street-720p.mp4", "--output", tmp_path / "x.jpg")
    assert result.exit_code == 1 and "x.jpg" in result.stderr


def test_detect_every_k_frames(tmp_path: Path) -> None:
    """--detect-every 3: the detector sees one frame in three; the others carry the tracked people
    on, marked "detected": false; with --every-frame or --no-track it means nothing, so it is refused."""
    out = tmp_path / "speaker.jsonl"
    result = facelens("analyze", VIDEOS / "speaker-360p.mp4", "--detect-every", "3", "--jsonl", out)
    assert result.exit_code == 0, result.output
    frames = lines(out)
    assert [f.get("detected", True) for f in frames] == [i % 3 == 0 for i in range(len(frames))]
    carried = [face for f in frames if "detected" in f for face in f["faces"]]
    assert len(carried) > 100 and all(face["track_id"] is not None and face["person"] for face in carried)
    for wrong in (["--every-frame"], ["--no-track"]):
        result = facelens("analyze", VIDEOS / "speaker-360p.mp4", "--detect-every", "3", *wrong)
        assert result.exit_code == 2 and "--detect-every" in result.stderr


def test_models_commands(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["models", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and "face-detection-retail-0004" in listed.stdout
    verified = facelens("models", "verify")
    assert verified.exit_code == 0 and " 0 bad" in verified.stderr


def test_several_sources_write_their_own_outputs(tmp_path: Path) -> None:
    result = facelens(
        "analyze", VIDEOS / "speaker-360p.mp4", VIDEOS / "face-demographics-walking.gif", tmp_path / "missing.mp4",
        "--jsonl", tmp_path / "out" / "{name}.jsonl", "--output", tmp_path / "out" / "{index}-{name}.mp4",
    )
    # The two that opened ran to their end; the run still says that one source failed (exit 3).
    assert result.exit_code == 3, result.output
    assert "missing.mp4" in result.stderr and "skipped" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 of 3 sources failed: ")
    speaker, walking = lines(tmp_path / "out" / "speaker-360p.jsonl"), lines(tmp_path / "out" / "face-demographics-walking.jsonl")
    assert [r["frame"] for r in speaker] == list(range(275))
    assert [r["frame"] for r in walking] == list(range(35))
    assert {r["source"] for r in walking} == {str(VIDEOS / "face-demographics-walking.gif")}
    assert sum(len(r["faces"]) for r in walking) > 35
    for name, frames in (("0-speaker-360p.mp4", 275), ("1-face-demographics-walking.mp4", 35)):
        assert cv2.VideoCapture(str(tmp_path / "out" / name)).get(cv2.CAP_PROP_FRAME_COUNT) == frames
    for name in ("speaker-360p", "face-demographics-walking"):
        assert name in result.stderr  # the per-source summary table


def test_several_sources_need_a_path_template(tmp_path: Path) -> None:
    result = facelens("analyze", VIDEOS / "speaker-360p.mp4", VIDEOS / "street-720p.mp4", "--jsonl", tmp_path / "one.jsonl")
    assert result.exit_code == 2 and "{name}" in result.stderr


def test_live_mode_on_a_file_drops_frames(tmp_path: Path) -> None:
    result = facelens("analyze", VIDEOS / "street-720p.mp4", "--live", "--jsonl", tmp_path / "live.jsonl")
    assert result.exit_code == 0, result.output
    frames = [r["frame"] for r in lines(tmp_path / "live.jsonl")]
    assert frames == sorted(set(frames)) and frames[-1] == 476
    assert len(frames) < 477 and "dropped" in result.stderr


def test_bench_prints_every_mode_side_by_side(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", str(VIDEOS / "speaker-360p.mp4"), "--json", str(tmp_path / "b.json")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    figures = {f["mode"]: f for f in json.loads((tmp_path / "b.json").read_text())}
    assert set(figures) == {"decode", "detect", "per-face", "no-track", "every-frame", "facelens"}
    for mode, f in figures.items():
        assert f["frames"] == 275 and f["fps"] > 0 and f["cpu_ms_per_frame"] > 0 and f["peak_rss_mb"] > 50
    assert figures["detect"]["faces"] == figures["per-face"]["faces"] == figures["no-track"]["faces"] > 200
    # Tracked modes also report weak detections that continue a person's track.
    assert figures["every-frame"]["faces"] == figures["facelens"]["faces"] >= figures["detect"]["faces"]
    assert figures["every-frame"]["attribute_share"] == {"age_gender": 1.0, "emotion": 1.0}
    assert figures["facelens"]["attribute_share"]["age_gender"] < 0.5  # one speaker: settled quickly
    assert figures["facelens"]["people"] == figures["every-frame"]["people"] >= 1
    assert figures["facelens"]["latency_p95_ms"] >= figures["facelens"]["latency_p50_ms"] > 0
    assert {"decode (reader thread)", "collect attributes"} <= set(figures["facelens"]["stages_ms"])
    assert "facelens / per-face" in result.stdout and "no-track / detect" in result.stdout


def test_output_names_of_several_sources_never_collide(tmp_path: Path) -> None:
    from facelens.cli import _expand
    from facelens.sources import Source

    class Named(Source):
        def __init__(self, name: str, kind: str) -> None:
            super().__init__(name, kind)

        def _frames(self):
            return iter(())

    assert _expand("o/{name}.mp4", 0, Named("rtsp://user:pw@cam.local:554/live/1", "stream")) == "o/cam.local_554_live_1.mp4"
    assert _expand("o/{name}.mp4", 1, Named("0", "camera")) == "o/camera0.mp4"
    assert _expand("o/{index}-{name}.jsonl", 2, Named("/data/a b.mp4", "video")) == "o/2-a_b.jsonl"
    same = tmp_path / "x" / "street-720p.mp4"
    same.parent.mkdir()
    same.write_bytes((VIDEOS / "street-720p.mp4").read_bytes())
    result = facelens("analyze", VIDEOS / "street-720p.mp4", same, "--jsonl", tmp_path / "{name}.jsonl")
    assert result.exit_code == 1 and "{index}" in result.stderr


# --- issue 9: nothing lost ----------------------------------------------------------------------


def _fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("how", ["same-path", "hard-link", "symlink"])
def test_output_that_is_the_input_photo_is_refused(tmp_path: Path, how: str) -> None:
    photo = tmp_path / "holiday.jpg"
    shutil.copy(PHOTOS / "010_2.jpg", photo)
    target = {"same-path": photo, "hard-link": tmp_path / "link.jpg", "symlink": tmp_path / "sym.jpg"}[how]
    if how == "hard-link":
        os.link(photo, target)
    elif how == "symlink":
        target.symlink_to(photo)
    before = photo.read_bytes()
    result = facelens("analyze", photo, "-o", target)
    assert result.exit_code == 1
    assert photo.read_bytes() == before
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"error: --output {target}: ") and str(photo) in message


def test_output_folder_that_is_the_input_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(PHOTOS / "010_2.jpg", folder)
    shutil.copy(PHOTOS / "007_B.jpg", folder / "sub")
    before = _fingerprint(folder)
    for output in (folder, tmp_path / "photos" / "." ):
        result = facelens("analyze", folder, "-o", output, "--jsonl", tmp_path / "o.jsonl")
        assert result.exit_code == 1 and "the input" in result.stderr, result.output
        assert _fingerprint(folder) == before
    assert not (tmp_path / "o.jsonl").exists()  # refused before any output was opened


def test_video_as_its_own_output_or_jsonl_is_refused(tmp_path: Path) -> None:
    video = tmp_path / "speaker.mp4"
    shutil.copy(VIDEOS / "speaker-360p.mp4", video)
    before = video.read_bytes()
    for option in ("-o", "--jsonl", "--db"):
        result = facelens("analyze", video, option, video)
        assert result.exit_code == 1, (option, result.output)
        assert f"{'--output' if option == '-o' else option} {video}: is the input" in result.stderr
        assert video.read_bytes() == before


def test_output_folder_inside_the_input_folder_is_not_read_again(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("010_2.jpg", "012_4.jpg"):
        shutil.copy(PHOTOS / name, folder)
    for run in range(2):
        result = facelens("analyze", folder, "-o", folder / "annotated", "--jsonl", tmp_path / f"{run}.jsonl")
        assert result.exit_code == 0, result.output
        assert sorted(Path(r["source"]).name for r in lines(tmp_path / f"{run}.jsonl")) == ["010_2.jpg", "012_4.jpg"]
    globbed = facelens("analyze", str(folder / "**" / "*.jpg"), "--jsonl", tmp_path / "g.jsonl")
    assert globbed.exit_code == 0
    assert len(lines(tmp_path / "g.jsonl")) == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--db", "{tmp}/no-such-folder/x.db/y"], "cannot open database"),
        (["--precision", "FP8"], "FP8"),
    ],
    ids=["bad-db", "bad-precision"],
)
def test_run_failing_at_setup_leaves_an_existing_jsonl_as_it_was(tmp_path: Path, args: list[str], expected: str) -> None:
    out = tmp_path / "earlier.jsonl"
    out.write_text('{"type":"frame","frame":0}\n')
    (tmp_path / "no-such-folder").mkdir()
    (tmp_path / "no-such-folder" / "x.db").write_text("a file where a folder should be")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = facelens("analyze", VIDEOS / "speaker-360p.mp4", "--jsonl", out, *args)
    assert result.exit_code != 0
    assert expected in result.stderr
    assert out.read_text() == '{"type":"frame","frame":0}\n'


def test_corrupt_model_at_setup_leaves_outputs_as_they_were(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "intel").mkdir(parents=True)
    for model in (MODELS_DIR / "intel").iterdir():
        if model.name != "emotions-recognition-retail-0003":
            (models / "intel" / model.name).symlink_to(model)
    shutil.copytree(MODELS_DIR / "intel" / "emotions-recognition-retail-0003", models / "intel" / "emotions-recognition-retail-0003")
    for weights in (models / "intel" / "emotions-recognition-retail-0003").rglob("*.bin"):
        weights.write_bytes(weights.read_bytes()[:1000])
    out, video = tmp_path / "earlier.jsonl", tmp_path / "earlier.mp4"
    out.write_text("kept\n")
    video.write_bytes(b"an earlier video")
    result = facelens("analyze", VIDEOS / "speaker-360p.mp4", "--jsonl", out, "-o", video, "--models-dir", models)
    assert result.exit_code == 1 and "emotions-recognition-retail-0003" in result.stderr
    assert out.read_text() == "kept\n" and video.read_bytes() == b"an earlier video"


@pytest.mark.parametrize("name", ["holiday [edited].jpg", "odd[/]name.jpg", "[bold]x[/bold].jpg"])
def test_file_names_print_as_they_are(tmp_path: Path, name: str) -> None:
    bad = tmp_path / name  # "/" in a name makes a folder: the path holds "[/]"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"not an image")
    result = facelens("analyze", bad)
    assert result.exit_code == 1
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith(f"error: {bad}: ") and "not a readable image" in message


def test_parquet_hint_keeps_its_brackets(tmp_path: Path, monkeypatch) -> None:
    from facelens import db

    database = tmp_path / "p.db"
    db.Database(database).close()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    result = facelens("export", database, "--format", "parquet", "-o", tmp_path / "x")
    assert result.exit_code == 1
    assert 'pip install "facelens[parquet]"' in result.stderr


def test_disk_full_is_one_line_keeps_whole_lines_and_ends_the_database_run(tmp_path: Path) -> None:
    """Writing to /dev/full fails every write, as a full disk does."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    database = tmp_path / "people.db"
    result = facelens("analyze", VIDEOS / "face-demographics-walking.gif", "--jsonl", "/dev/full", "--db", database)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == "error: /dev/full: cannot write (No space left on device)"
    import sqlite3

    with sqlite3.connect(database) as conn:
        (ended,) = conn.execute("SELECT ended_at FROM runs").fetchone()
        people = conn.execute("SELECT COUNT(*) FROM people").fetchone()[0]
        kinds = Counter(kind for (kind,) in conn.execute("SELECT kind FROM events"))
    assert ended is not None
    assert people == kinds["enter"] == kinds["exit"]


def test_a_video_output_failing_midway_is_one_line_and_the_people_leave_in_the_other_outputs(tmp_path: Path) -> None:
    """The video is written on its own thread: its error still ends the run as one line, exit 1, and
    the people in view get their exits and records in the JSON Lines. The video goes into a pipe
    whose reader hangs up after the header and part of the first fragment (about frame 12)."""
    video, out = tmp_path / "cut.mp4", tmp_path / "o.jsonl"
    os.mkfifo(video)

    def reader() -> None:
        with open(video, "rb") as pipe:
            pipe.read(20_000)

    threading.Thread(target=reader, daemon=True).start()
    result = facelens("analyze", VIDEOS / "face-demographics-walking.gif", "--jsonl", out, "-o", video)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == f"error: {video}: cannot write video (Broken pipe)"
    assert 10 < len(lines(out)) < 35  # stopped at the error, not at the end
    entered = {e["track_id"] for e in lines(out, "event") if e["kind"] == "enter"}
    left = {e["track_id"] for e in lines(out, "event") if e["kind"] == "exit"}
    assert entered and entered == left
    assert {p["track_id"] for p in lines(out, "person")} >= entered


def test_video_output_has_every_frame(tmp_path: Path) -> None:
    """Drawn and encoded off the command's loop, the video still has every frame, each annotated."""
    source, video, out = VIDEOS / "face-demographics-walking.gif", tmp_path / "walk.mp4", tmp_path / "o.jsonl"
    result = facelens("analyze", source, "--jsonl", out, "-o", video)
    assert result.exit_code == 0, result.output
    frames = lines(out)
    written = []
    capture = cv2.VideoCapture(str(video))
    while (frame := capture.read()[1]) is not None:
        written.append(frame)
    assert len(written) == len(frames) > 10
    original = cv2.VideoCapture(str(source))
    for record, picture in zip(frames, written):
        image = original.read()[1]
        if record["faces"]:  # boxes drawn: the picture differs from the frame inside a face's box
            x1, y1, x2, y2 = (int(round(v)) for v in record["faces"][0]["box"])
            top = max(0, y1 - 1)
            assert np.abs(picture[top : y1 + 2, x1:x2].astype(int) - image[top : y1 + 2, x1:x2]).max() > 40


def test_a_failed_write_is_cut_back_to_the_last_whole_line(tmp_path: Path) -> None:
    """A file that fills up mid-line (RLIMIT_FSIZE stands in for a full disk) keeps only whole lines."""
    out = tmp_path / "o.jsonl"
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "from facelens.cli import app\n"
        "sys.argv = ['facelens', 'analyze', sys.argv[1], '--jsonl', sys.argv[2]]\n"
        "app()\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(VIDEOS / "speaker-360p.mp4"), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {out}: cannot write (File too large)"
    text = out.read_text()
    assert 0 < len(text) <= 20000 and text.endswith("\n")
    frames = [json.loads(line) for line in text.splitlines()]
    assert [r["frame"] for r in frames if r["type"] == "frame"] == list(range(sum(r["type"] == "frame" for r in frames)))


def test_nohup_keeps_running_through_sighup(tmp_path: Path) -> None:
    """A SIGHUP ignored on start (`nohup`) stays ignored; SIGTERM still stops the run."""
    out = tmp_path / "o.jsonl"
    process = _started(["analyze", VIDEOS / "street-720p.mp4", "--jsonl", out], signal.SIG_IGN, set())
    try:
        hung_up = _wait_for_frames(process, out, 60)
        process.send_signal(signal.SIGHUP)
        _wait_for_frames(process, out, hung_up + 60)  # still running well after the hangup
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGHUP" not in stderr and "SIGTERM: stopped after" in stderr
    assert hung_up + 60 <= len(lines(out)) < 477


def test_every_source_failing_exits_nonzero(tmp_path: Path) -> None:
    result = facelens("analyze", tmp_path / "a.mp4", tmp_path / "b.mp4", "--jsonl", tmp_path / "{name}.jsonl")
    assert result.exit_code == 1
    assert "none of the sources could be opened" in result.stderr


def _started(args: list[object], sighup: signal.Handlers, blocked: set[int]) -> subprocess.Popen[str]:
    """`facelens args` started with SIGHUP's disposition set to `sighup` and `blocked` signals blocked,
    as a supervisor, a CI runner or `nohup` may start it (both survive exec)."""
    wrapper = (
        "import os, signal, sys\n"
        f"signal.signal(signal.SIGHUP, signal.{sighup.name})\n"
        f"signal.pthread_sigmask(signal.SIG_SETMASK, {sorted(map(int, blocked))!r})\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'facelens', *sys.argv[1:]])\n"
    )
    return subprocess.Popen([sys.executable, "-c", wrapper, *map(str, args)], stderr=subprocess.PIPE, text=True)


def _wait_for_frames(process: subprocess.Popen[str], out: Path, count: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and (not out.exists() or len(lines(out)) < count):
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[1]
    return len(lines(out))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_finish_like_ctrl_c(tmp_path: Path, signum: int) -> None:
    """systemd, docker and kill stop a service with SIGTERM: everyone in view gets an exit and a
    record, the database run is ended, and the run exits with 128 + the signal's number. It works even
    when the parent handed the signal down blocked."""
    out, database = tmp_path / "o.jsonl", tmp_path / "people.db"
    process = _started(["analyze", VIDEOS / "street-720p.mp4", "--jsonl", out, "--db", database], signal.SIG_DFL, {signum})
    try:
        _wait_for_frames(process, out, 120)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    assert f"{signal.Signals(signum).name}: stopped after" in stderr
    frames = lines(out)
    assert 120 <= len(frames) < 477
    events = lines(out, "event")
    entered = {(e["source"], e["track_id"]) for e in events if e["kind"] == "enter"}
    left = {(e["source"], e["track_id"]) for e in events if e["kind"] == "exit"}
    assert entered and entered == left
    assert {(p["source"], p["track_id"]) for p in lines(out, "person")} == entered
    import sqlite3

    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT ended_at FROM runs").fetchone()[0] is not None
        assert conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] == len(entered)


def test_a_stream_given_up_exits_nonzero_and_says_which(tmp_path: Path, street_parts) -> None:
    """A supervisor restarts a service that exits non-zero: a stream that does not come back is a failure
    (exit 1 when it was the only source, 3 when others ran to their end)."""
    from test_streams import MjpegServer

    for extra, code in (([], 1), ([VIDEOS / "face-demographics-walking.gif"], 3)):
        server = MjpegServer(street_parts)
        threading.Timer(2.0, server.stop).start()
        try:
            result = facelens("analyze", server.url, *extra, "--retry-for", "1", "--all-frames", "--jsonl", tmp_path / "{index}.jsonl")
        finally:
            server.stop()
        assert result.exit_code == code, result.output
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and f"{server.url}: stream lost and not back after 1 s, giving up" in last
        assert len(lines(tmp_path / "0.jsonl")) >= 10  # what came before the loss is kept


@pytest.fixture(scope="module")
def street_parts() -> list[bytes]:
    from test_streams import _jpeg_parts

    return _jpeg_parts("street-720p.mp4", 50)


def test_db_with_photos_says_their_faces_are_not_people(tmp_path: Path) -> None:
    result = facelens("analyze", PHOTOS / "010_2.jpg", "--db", tmp_path / "p.db", "--jsonl", tmp_path / "p.jsonl")
    assert result.exit_code == 0, result.output
    assert f"warning: --db: still images ({PHOTOS / '010_2.jpg'}) have faces, not people" in result.stderr
    assert len(lines(tmp_path / "p.jsonl")[0]["faces"]) >= 1
