"""The `facelens` command end to end: real models, real videos and photos, real bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner, Result

from facelens.cli import app

from conftest import DATA, VIDEOS

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
            assert face["gender"] in ("female", "male") and 0.5 <= face["gender_probability"] <= 1
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
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["010_2.jpg", "011_3.jpg", "012_4.jpg"]


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
    assert result.exit_code == 0, result.output
    assert "missing.mp4" in result.stderr and "skipped" in result.stderr
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
