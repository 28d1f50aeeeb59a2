"""The HTML report: hand-counted figures from a database and JSON Lines, people apart from fragments,
date-time axes for cameras and streams, selection, k-anonymity, still images as faces, odd inputs, and
the page rendered in headless Chromium; real runs of a stream and of photos."""

from __future__ import annotations

import base64
import json
import random
import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from typer.testing import CliRunner

import facelens.report as report_module
from facelens.cli import app
from facelens.db import Database, Event, PersonRecord, event_to_dict, person_to_dict
from facelens.errors import FacelensError
from facelens.report import BAR_COLOR, build_report
from facelens.types import COUNTED_MIN_FRAMES, COUNTED_MIN_SECONDS

from conftest import DATA, VIDEOS, run_chromium, serve_folder

runner = CliRunner()

JPEG = cv2.imencode(".jpg", np.full((24, 24, 3), (40, 160, 220), np.uint8))[1].tobytes()
AGES = ["child", "teen", "20-29", "30-44", "45-64", "65+", "unknown"]
EMOTION_LABELS = ["neutral", "happy", "sad", "surprise", "anger", "unknown"]


def person(
    source: str,
    track_id: int,
    first_seen: float | None,
    dwell: float | None,
    attention: float | None,
    age: float | None,
    bucket: str,
    gender: str,
    emotion: str,
    **changes: Any,
) -> PersonRecord:
    other = "sad" if emotion == "neutral" else "neutral"
    values: dict[str, Any] = {
        "source": source,
        "track_id": track_id,
        "first_seen": first_seen,
        "last_seen": None if first_seen is None or dwell is None else first_seen + dwell,
        "dwell_seconds": dwell,
        "attention_seconds": attention,
        "frames": 1 if dwell is None else int(dwell * 25) + 1,
        "age": age,
        "age_uncertainty": None if age is None else 2.0,
        "age_bucket": bucket,
        "minor": None if age is None else age < 18,
        "gender": gender,
        "gender_confidence": None if gender == "unknown" else 0.9,
        "emotion": emotion,
        "emotion_probabilities": None if emotion == "unknown" else {emotion: 0.7, other: 0.3},
    }
    values.update(changes)
    return PersonRecord(**values)


def fragment(source: str, track_id: int, first_seen: float, **changes: Any) -> PersonRecord:
    """A record seen too briefly to count as a person: by default in one frame too few."""
    record = person(source, track_id, first_seen, COUNTED_MIN_SECONDS * 2, 0.0, 30.0, "30-44", "male", "neutral")
    return replace(record, **{"frames": COUNTED_MIN_FRAMES - 1, **changes})


# Seven people, counted by hand below, and two fragments. Run 1: one video; run 2: another video and a photo.
RUN_1 = [
    person("door.mp4", 1, 5.0, 30.0, 12.0, 34.2, "30-44", "female", "happy", thumbnail_jpeg=JPEG),
    person("door.mp4", 2, 20.0, 4.0, 0.0, 24.0, "20-29", "male", "neutral"),
    person("door.mp4", 3, 70.0, 65.0, 30.0, 41.0, "30-44", "female", "happy"),
    person("door.mp4", 4, 130.0, 8.0, None, 71.5, "65+", "male", "sad"),
    person("door.mp4", 5, 135.0, 12.0, 6.0, 38.0, "30-44", "female", "neutral"),
    fragment("door.mp4", 6, 50.0),
]
RUN_2 = [
    person("lobby.mp4", 1, 10.0, 25.0, 20.0, 16.0, "teen", "female", "surprise"),
    fragment("lobby.mp4", 2, 12.0, frames=40, dwell_seconds=COUNTED_MIN_SECONDS / 2, last_seen=12.0 + COUNTED_MIN_SECONDS / 2),
    person("photo.jpg", 1, None, None, None, None, "unknown", "unknown", "unknown"),
]
DRAWN = ["people_by_video_time", "age", "gender", "emotion", "dwell", "attention", "attention_share"]
EXPECTED_CHARTS = {
    # First seen at 5, 20 (door 1, 2) and 10 (lobby 1) | - | 70 (door 3) | - | 130, 135 (door 4, 5), in bins of
    # 30 s: 6 people with a time make at most 6 bins, and 135 s needs 5 of 30 s. The photo has no time.
    "people_by_video_time": {
        "labels": ["0:00", "0:30", "1:00", "1:30", "2:00"],
        "values": [3, 0, 1, 0, 2],
        "missing": 1,
        "series": {
            "neutral": [1, 0, 0, 0, 1],
            "happy": [1, 0, 1, 0, 0],
            "sad": [0, 0, 0, 0, 1],
            "surprise": [1, 0, 0, 0, 0],
            "anger": [0, 0, 0, 0, 0],
            "unknown": [0, 0, 0, 0, 0],
        },
        "hidden_part": [0, 0, 0, 0, 0],
    },
    "age": {"labels": AGES, "values": [0, 1, 1, 3, 0, 1, 1], "missing": 0},
    "gender": {"labels": ["female", "male", "unknown"], "values": [4, 2, 1], "missing": 0},
    "emotion": {"labels": EMOTION_LABELS, "values": [2, 2, 1, 1, 0, 1], "missing": 0},
    # dwell 4, 8 | 12 | 25 | 30 | - | - | 65 in bins of 10 s (the largest, 65, needs 7 bins of 10: fewer than 12)
    "dwell": {"labels": [f"{10 * i}–{10 * i + 10}" for i in range(7)], "values": [2, 1, 1, 1, 0, 0, 1], "missing": 1},
    # attention 0 | 6 | 12 | - | 20 | - | 30 in bins of 5 s; door 4 and the photo have none
    "attention": {"labels": [f"{5 * i}–{5 * i + 5}" for i in range(7)], "values": [1, 1, 1, 0, 1, 0, 1], "missing": 2},
    # attention / dwell: 0/4 = 0, 12/30 = 0.4, 30/65 = 0.46, 6/12 = 0.5, 20/25 = 0.8
    "attention_share": {
        "labels": [f"{10 * i}–{10 * i + 10}%" for i in range(10)],
        "values": [1, 0, 0, 0, 2, 1, 0, 0, 1, 0],
        "missing": 2,
    },
}


class Page(HTMLParser):
    """What a report page shows: images, headline figures, captions, table rows, its JSON data and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}
        self.stats: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.captions: dict[str, str] = {}
        self.ids: set[str] = set()
        self.text = ""
        self._stat: str | None = None
        self._value = False
        self._json: list[str] | None = None
        self._script = False
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._figure: str | None = None
        self._caption: list[str] | None = None
        self.json_text = ""
        self.feed(text)
        self.close()
        self.data: dict[str, Any] = json.loads(self.json_text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "img":
            self.images.append(a)
        elif tag == "body":
            self.body = a
        elif tag == "div" and "data-figure" in a:
            self._stat = a["data-figure"]
        elif tag == "span" and a.get("class") == "value" and self._stat:
            self._value = True
        elif tag == "script":
            self._script = True
            if a.get("id") == "facelens-report-data":
                self._json = []
        elif tag == "table":
            self._table = str(a.get("id"))
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "figure":
            self._figure = str(a.get("id"))
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = False
            if self._json is not None:
                self.json_text, self._json = "".join(self._json), None
        elif tag == "span":
            self._value = False
        elif tag == "div":
            self._stat = None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "figcaption" and self._caption is not None and self._figure:
            self.captions[self._figure] = "".join(self._caption)
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._json is not None:
            self._json.append(data)
        if self._script:
            return
        self.text += data
        if self._value and self._stat:
            self.stats[self._stat] = data
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)

    def charts(self) -> list[dict[str, str | None]]:
        return [img for img in self.images if img.get("class") == "chart"]


def read_page(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def write_database(path: Path) -> None:
    with Database(path) as db:
        for sources, people in ((["door.mp4"], RUN_1), (["lobby.mp4", "photo.jpg"], RUN_2)):
            run = db.start_run(sources, {"track": True})
            for p in people:
                db.add_event(run, Event(p.source, p.track_id, "enter", p.first_seen, 1.7e9))
                db.save_person(run, p)
            db.end_run(run)


def write_jsonl(path: Path, people: list[PersonRecord], *extra: str) -> None:
    lines = [json.dumps({"type": "frame", "frame": 0, "timestamp": 0.0, "source": "door.mp4", "faces": []})]
    for p in people:
        lines.append(json.dumps(event_to_dict(Event(p.source, p.track_id, "enter", p.first_seen, 1.7e9))))
        lines.append(json.dumps(person_to_dict(p)))
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")


def counts_in(data: dict[str, Any]) -> list[int]:
    """Every count of people the page's data states."""
    found = [data[key] for key in ("people", "fragments", "faces") if data.get(key) is not None]
    for chart in data["charts"].values():
        for values in [chart.get("values", []), chart.get("hidden_part", []), *chart.get("series", {}).values()]:
            found += [v for v in values if v is not None]
        if chart.get("missing") is not None:
            found.append(chart["missing"])
    found += [group["people"] for group in data.get("groups", [])]
    return found


def local(*moment: int) -> float:
    """Unix time of a local date-time: the report's date axis is in local time, so tests hold in any zone."""
    return datetime(*moment).timestamp()


@pytest.fixture(scope="module")
def db_report(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("db-report")
    write_database(folder / "people.db")
    return build_report(folder / "people.db", folder / "out")


def test_figures_of_a_database_are_the_hand_counted_ones(db_report) -> None:
    report = db_report
    assert (report.people, report.fragments, report.faces, report.suppressed) == (7, 2, 0, 0)
    assert report.html.name == "report.html" and report.html.is_file()
    assert [p.name for p in report.charts] == [f"{name}.png" for name in DRAWN]
    page = read_page(report.html)
    data = page.data
    assert (data["k"], data["people"], data["fragments"], data["sources"], data["runs"], data["suppressed"]) == (1, 7, 2, 3, 2, 0)
    # dwell 4 + 8 + 12 + 25 + 30 + 65 = 144, median (12 + 25) / 2; 4 of the 5 with attention faced the camera
    assert (data["total_dwell_seconds"], data["median_dwell_seconds"], data["attentive_share"]) == (144.0, 18.5, 0.8)
    assert page.stats == {
        "people": "7",
        "fragments": "2",
        "total_dwell": "2 min 24 s",
        "median_dwell": "18.5 s",
        "attentive_share": "80%",
        "sources": "3",
        "runs": "2",
    }
    assert {name: {key: chart[key] for key in EXPECTED_CHARTS[name]} for name, chart in data["charts"].items()} == (
        EXPECTED_CHARTS
    )
    assert page.captions["figure-people_by_video_time"] == (
        "not in the chart: 1 person without a time (still images) · 2 videos pooled, each from its own start; "
        "pick one with --source."
    )
    assert page.captions["figure-attention"] == "not in the chart: 2 people without an attention time"

    # Each chart is in the page as its PNG file's very bytes, and nothing else is loaded.
    charts = page.charts()
    assert [img["id"] for img in charts] == [f"chart-{name}" for name in DRAWN]
    for img, png in zip(charts, report.charts):
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert img["src"] == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    assert all(str(img["src"]).startswith("data:") for img in page.images)
    text = report.html.read_text(encoding="utf-8")
    for remote in ("://", "<link", "url(", "@import", "href="):
        assert remote not in text, remote
    assert "Content-Security-Policy\" content=\"default-src 'none'; img-src data:;" in text

    # The people table: one row per person (no fragment), in input order, with the one thumbnail there is.
    header, *rows = page.tables["people"]
    assert header[:5] == ["run", "source", "track", "first seen", "last seen"] and len(rows) == 7
    people = [p for p in RUN_1 + RUN_2 if p.counted]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("1" if p in RUN_1 else "2", p.source, str(p.track_id)) for p in people
    ]
    assert rows[3] == ["1", "door.mp4", "4", "2:10.0", "2:18.0", "8.0 s", "—", "65+", "71.5 ± 2.0", "male (90%)", "sad", "no", ""]
    assert rows[5][7:12] == ["teen", "16.0 ± 2.0", "female (90%)", "surprise", "yes"]
    assert rows[6][3:] == ["—", "—", "—", "—", "unknown", "—", "unknown", "unknown", "—", ""]
    thumbs = [img for img in page.images if img.get("class") == "thumb"]
    assert [img["src"] for img in thumbs] == ["data:image/jpeg;base64," + base64.b64encode(JPEG).decode("ascii")]
    assert "2 short fragments not listed." in page.text


def test_json_lines_give_the_same_figures_and_frame_lines_are_ignored(db_report, tmp_path: Path, warnings_log) -> None:
    source = tmp_path / "run.jsonl"
    write_jsonl(source, RUN_1 + RUN_2)
    report = build_report(source, tmp_path / "out", title="Lobby <Tuesday> & more")
    assert (report.people, report.fragments) == (7, 2) and len(report.charts) == len(DRAWN)
    assert not warnings_log.records  # the frame and event lines are no bad lines
    page, from_db = read_page(report.html), read_page(db_report.html)
    assert page.data == {**from_db.data, "runs": None}
    assert "runs" not in page.stats and page.stats["people"] == "7"
    assert page.tables["people"][0][0] == "source"  # no run column
    text = report.html.read_text(encoding="utf-8")
    assert "<title>Lobby &lt;Tuesday&gt; &amp; more</title>" in text and "<Tuesday>" not in text
    # A person written twice counts once, with its last record; a line cut short is skipped with a warning.
    again = person("door.mp4", 1, 5.0, 30.0, 12.0, 34.2, "45-64", "female", "happy")
    write_jsonl(source, RUN_1 + RUN_2 + [again], '{"type": "person", "source": "door.mp4", "track_')
    page = read_page(build_report(source, tmp_path / "out").html)
    assert page.data["people"] == 7
    assert page.data["charts"]["age"]["values"] == [0, 1, 1, 2, 1, 1, 1]
    assert [r.getMessage() for r in warnings_log.records][-1] == f"{source}: 1 bad line skipped"


# --- what a person is, and which values are shown -------------------------------------------------


def test_fragments_are_counted_apart_not_as_people(tmp_path: Path) -> None:
    """Issue 9: a 19 s clip gave 64 "people" (about 22 by eye), a median dwell of 0.7 s and half of them unknown."""
    people = [person("street.mp4", i, 2.0 * i, 3.0 + i, 1.0, 30.0 + i, "30-44", "male", "neutral") for i in range(5)]
    # Seen just long and often enough: a person.
    edge = person("street.mp4", 5, 1.0, COUNTED_MIN_SECONDS, 0.0, 25.0, "20-29", "female", "happy", frames=COUNTED_MIN_FRAMES)
    fragments = [
        fragment("street.mp4", 10, 0.5),  # too few frames
        fragment("street.mp4", 11, 1.5, frames=30, dwell_seconds=COUNTED_MIN_SECONDS * 0.7),  # too short
        fragment("street.mp4", 12, 2.5, frames=2, dwell_seconds=0.1, age=None, age_bucket="unknown", gender="unknown"),
    ]
    source = tmp_path / "street.jsonl"
    write_jsonl(source, people + [edge] + fragments)
    report = build_report(source, tmp_path / "out")
    page = read_page(report.html)
    assert page.stats["people"] == "6" and page.stats["fragments"] == "3"
    assert (report.people, report.fragments) == (6, 3)
    assert "short fragments, not counted" in page.text
    charts = page.data["charts"]
    for name in ("age", "gender", "emotion", "dwell", "people_by_video_time"):
        assert sum(charts[name]["values"]) + charts[name]["missing"] == 6, name
    assert charts["gender"]["values"] == [1, 5, 0]  # none of the fragments' unknowns
    # Dwell 1, 3, 4, 5, 6, 7: the fragments' 0.1 to 2 s are not in the median
    assert page.data["median_dwell_seconds"] == 4.5
    assert len(page.tables["people"]) == 1 + 6 and "3 short fragments not listed." in page.text

    # With k = 5 the 6 people show, and the 3 fragments are a count of fewer than 5.
    page = read_page(build_report(source, tmp_path / "out", k=5).html)
    assert page.data["people"] == 6 and page.data["fragments"] is None and page.stats["fragments"] == "fewer than 5"


def test_one_rule_for_when_a_fused_value_is_shown(tmp_path: Path) -> None:
    """Issue 9: a row showed "31.9 ± 1.6" next to the age bucket "unknown"."""
    unsettled = person(
        "door.mp4", 1, 0.0, 5.0, 1.0, 31.9, "unknown", "unknown", "unknown", age_uncertainty=1.6, gender_confidence=0.62,
        minor=False,
    )
    settled = person("door.mp4", 2, 1.0, 5.0, 1.0, 31.9, "30-44", "male", "happy", age_uncertainty=1.6, gender_confidence=0.97)
    source = tmp_path / "two.jsonl"
    write_jsonl(source, [unsettled, settled])
    header, first, second = read_page(build_report(source, tmp_path / "out").html).tables["people"]
    columns = ["age bucket", "age", "gender", "emotion", "minor"]
    at = [header.index(c) for c in columns]
    assert [first[i] for i in at] == ["unknown", "—", "unknown", "unknown", "—"]
    assert [second[i] for i in at] == ["30-44", "31.9 ± 1.6", "male (97%)", "happy", "no"]


# --- time: dates for cameras and streams, video time for files --------------------------------------


# Two days of a camera and a stream, and a video file analysed on the first day.
LIVE = [
    # (source, track, local first sighting, gender, emotion)
    ("camera 0", 1, (2026, 3, 2, 9, 10), "female", "happy"),
    ("camera 0", 2, (2026, 3, 2, 9, 40), "male", "happy"),
    ("camera 0", 3, (2026, 3, 2, 10, 5), "male", "neutral"),
    ("rtsp://cam.example/door", 1, (2026, 3, 2, 14, 30), "female", "neutral"),
    ("camera 0", 4, (2026, 3, 3, 11, 0), "male", "sad"),
    ("rtsp://cam.example/door", 2, (2026, 3, 3, 11, 20), "female", "happy"),
]
FILE_STARTED = (2026, 3, 2, 20, 0)


def write_mixed_database(path: Path) -> None:
    with Database(path) as db:
        run = db.start_run(["0", "rtsp://cam.example/door"], {})
        start = local(2026, 3, 2, 8, 0)
        for source, track, moment, gender, emotion in LIVE:
            wall = local(*moment)
            # Video time of a camera counts from the run's first frame; the enter event has the wall clock.
            record = person(source, track, wall - start, 6.0, 2.0, 30.0, "30-44", gender, emotion)
            db.add_event(run, Event(source, track, "enter", wall - start, wall + 0.2))
            db.save_person(run, record)
        db.end_run(run)
        run = db.start_run(["door.mp4"], {})
        for p in RUN_1:
            db.add_event(run, Event(p.source, p.track_id, "enter", p.first_seen, 1.7e9))
            db.save_person(run, p)
        db.end_run(run)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE runs SET started_at = ? WHERE id = 2", (local(*FILE_STARTED),))


def test_cameras_and_streams_are_on_a_date_axis_and_files_on_video_time(tmp_path: Path) -> None:
    """Issue 9: the time axis was "minute of the video" pooled over every run and source, so a long
    stream read "start minute 1170" and three videos put 74 of 76 people in minute 0."""
    db = tmp_path / "people.db"
    write_mixed_database(db)
    report = build_report(db, tmp_path / "out")
    page = read_page(report.html)
    charts = page.data["charts"]
    # 6 live people over two days: at most 6 bins, so days (hours and 3 hours need 27 and 9).
    by_date = charts["people_by_date"]
    assert by_date["title"] == "People per day, by emotion (first sighting)"
    assert (by_date["labels"], by_date["values"], by_date["missing"]) == (["Mon 02 Mar", "Tue 03 Mar"], [4, 2], 0)
    assert by_date["series"]["happy"] == [2, 1] and by_date["series"]["neutral"] == [2, 0] and by_date["series"]["sad"] == [0, 1]
    # The door video (5 people) by its own time: 5, 20 | 70 | 130, 135 in bins of 30 s.
    assert charts["people_by_video_time"]["labels"] == ["0:00", "0:30", "1:00", "1:30", "2:00"]
    assert charts["people_by_video_time"]["values"] == [2, 0, 1, 0, 2]
    assert "People of video files are in the next chart." in page.captions["figure-people_by_date"]
    # The table: dates for the camera and stream, positions for the file.
    rows = {(row[1], row[2]): row for row in page.tables["people"][1:]}
    assert rows["camera 0", "1"][3:5] == ["2026-03-02 09:10:00", "2026-03-02 09:10:06"]
    assert rows["rtsp://cam.example/door", "2"][3] == "2026-03-03 11:20:00"
    assert rows["door.mp4", "3"][3:5] == ["1:10.0", "2:15.0"]

    # One day of it: hours.
    page = read_page(build_report(db, tmp_path / "day", since="2026-03-02", until="2026-03-02").html)
    by_date = page.data["charts"]["people_by_date"]
    assert by_date["title"] == "People per hour, by emotion (first sighting)"
    assert by_date["labels"] == ["09:00", "10:00", "11:00", "12:00", "13:00", "14:00"]
    assert by_date["values"] == [2, 1, 0, 0, 0, 1]


def test_a_long_stream_gets_hours_and_days_not_minutes(tmp_path: Path) -> None:
    """Three weeks of a camera: days (a week of 3-hour bins would be 56); a day of it: hours."""
    rng = random.Random(3)
    people = []
    for day in range(21):
        for hour in range(9, 19):
            for _ in range(rng.randint(0, 4)):
                wall = local(2026, 2, 2 + day, hour, rng.randint(0, 59))
                people.append((wall, person("camera 1", len(people) + 1, wall - local(2026, 2, 2), 8.0, 2.0, 40.0, "30-44", "male", "happy")))
    source = tmp_path / "weeks.jsonl"
    lines = []
    for wall, p in people:
        lines += [json.dumps(event_to_dict(Event(p.source, p.track_id, "enter", p.first_seen, wall))), json.dumps(person_to_dict(p))]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    chart = read_page(build_report(source, tmp_path / "out").html).data["charts"]["people_by_date"]
    assert chart["title"] == "People per day, by emotion (first sighting)"
    assert chart["labels"][:2] == ["Mon 02 Feb", "Tue 03 Feb"] and len(chart["labels"]) == 21
    assert chart["values"] == [sum(1 for wall, _ in people if local(2026, 2, 2 + d) <= wall < local(2026, 2, 3 + d)) for d in range(21)]
    # --until with a date alone includes that day.
    chart = read_page(build_report(source, tmp_path / "out", since="2026-02-10", until="2026-02-10").html).data["charts"]["people_by_date"]
    assert chart["title"] == "People per hour, by emotion (first sighting)" and chart["labels"][0] == "09:00"
    assert sum(chart["values"]) == sum(1 for wall, _ in people if local(2026, 2, 10) <= wall < local(2026, 2, 11))


# --- selection -----------------------------------------------------------------------------------


def test_run_source_since_and_until_select(tmp_path: Path) -> None:
    db = tmp_path / "people.db"
    write_mixed_database(db)

    def select(**selection: Any) -> tuple[Any, Page]:
        report = build_report(db, tmp_path / "out", **selection)
        return report, read_page(report.html)

    report, page = select(run=1)
    assert (report.people, report.selection) == (6, "run 1") and page.data["runs"] == 1
    assert "people_by_video_time" not in page.data["charts"] and "Selected: run 1" in page.text
    report, page = select(source="camera 0")
    assert (report.people, report.selection) == (3 + 1, 'source "camera 0"')
    report, page = select(source="door")  # no source is named "door": those containing it
    assert report.people == 2 + 5 and report.selection == '2 sources containing "door"'
    assert {row[1] for row in page.tables["people"][1:]} == {"rtsp://cam.example/door", "door.mp4"}
    # The second day: its two live people; the file was analysed on the first day.
    report, page = select(since="2026-03-03", until="2026-03-03")
    by_date = page.data["charts"]["people_by_date"]
    assert report.people == 2 and (by_date["labels"], by_date["values"]) == (["11:00", "11:05", "11:10", "11:15", "11:20"], [1, 0, 0, 0, 1])
    assert report.selection.startswith("from 2026-03-03 00:00") and "until 2026-03-04 00:00" in report.selection
    # Until 20:00 exclusive, since 14:30 inclusive: the stream's first person; the file started at 20:00.
    assert select(since="2026-03-02T14:30", until="2026-03-02T20:00")[0].people == 1
    assert select(since="2026-03-02T14:30", until="2026-03-02T20:00:01")[0].people == 1 + 5
    assert select(run=2, since=datetime(2026, 3, 2, 19))[0].people == 5

    # Bad values: one line each, naming the option and the value.
    for selection, message in (
        ({"run": 9}, f"--run 9: {db} has no such run (its runs: 1, 2)"),
        ({"source": "garden"}, f"--source garden: no source of {db} is or contains it (its sources: camera 0, door.mp4, "
                               "rtsp://cam.example/door)"),
        ({"run": 2, "source": "camera"}, f"--source camera: no source of run 2 of {db} is or contains it (its sources: door.mp4)"),
        ({"since": "yesterday"}, "--since yesterday: not an ISO date-time (e.g. 2026-01-12, 2026-01-12T14:30 or 2026-01-12T14:30+01:00)"),
        ({"until": "2026-02-30"}, "--until 2026-02-30: not an ISO date-time (e.g. 2026-01-12, 2026-01-12T14:30 or 2026-01-12T14:30+01:00)"),
        ({"since": "2026-03-03", "until": "2026-03-02T12:00"}, "--since 2026-03-03 is not before --until 2026-03-02T12:00"),
    ):
        with pytest.raises(report_module.ReportOptionError) as error:
            build_report(db, tmp_path / "bad", **selection)
        assert str(error.value) == message
    jsonl = tmp_path / "run.jsonl"
    write_jsonl(jsonl, RUN_1)
    with pytest.raises(report_module.ReportOptionError, match=r"^--run 1: .*run\.jsonl is a JSON Lines file, which has no runs; --run needs a database$"):
        build_report(jsonl, tmp_path / "bad", run=1)
    assert not (tmp_path / "bad").exists()


def test_report_command_selects_and_refuses_bad_values_with_exit_2(tmp_path: Path) -> None:
    db = tmp_path / "people.db"
    write_mixed_database(db)
    out = tmp_path / "out"
    result = runner.invoke(app, ["report", str(db), "-o", str(out), "--run", "2", "--source", "door.mp4", "--k", "2"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        f'{out / "report.html"} (5 people, 1 short fragment not counted, 7 charts, 27 figures hidden (k = 2); run 2; source "door.mp4")'
    )
    for args, message in (
        (["--run", "3"], f"error: --run 3: {db} has no such run (its runs: 1, 2)"),
        (["--since", "2026-13-01"], "error: --since 2026-13-01: not an ISO date-time (e.g. 2026-01-12, 2026-01-12T14:30 or 2026-01-12T14:30+01:00)"),
        (["--source", "nowhere"], "error: --source nowhere: no source of"),
    ):
        result = runner.invoke(app, ["report", str(db), "-o", str(tmp_path / "bad"), *args])
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "bad").exists()


# --- k-anonymity ---------------------------------------------------------------------------------


# k = 3: two groups of 3 people, a lone 65+ man first seen at 12:34 and two people of photos.
GROUPED = [
    *(
        person("hall.mp4", i, 5.0 + 10 * i, 10.0 + 2 * i, 5.0, 35.0, "30-44", "female", "happy", thumbnail_jpeg=JPEG)
        for i in range(3)
    ),
    *(person("hall.mp4", 3 + i, 65.0 + 10 * i, 20.0 + 2 * i, 0.0, 25.0, "20-29", "male", "neutral") for i in range(3)),
    person("lonely.mp4", 7, 754.0, 300.0, 100.0, 70.0, "65+", "male", "sad"),
    *(person("photo.jpg", 8 + i, None, None, None, None, "unknown", "male", "unknown") for i in range(2)),
]


def test_k_anonymity_hides_every_count_of_fewer_than_k_people(tmp_path: Path) -> None:
    source = tmp_path / "grouped.jsonl"
    write_jsonl(source, GROUPED)
    report = build_report(source, tmp_path / "out", k=3)
    page = read_page(report.html)
    data, charts = page.data, page.data["charts"]
    assert report.people == data["people"] == 9
    assert all(n == 0 or n >= 3 for n in counts_in(data)), counts_in(data)
    # 65+ (1 person) and unknown (2) are hidden; together 3, so no further bar must go.
    assert charts["age"]["values"] == [0, 0, 3, 3, 0, None, None]
    assert charts["gender"]["values"] == [3, 6, 0]
    # sad (the lone man) and unknown (the photos) are hidden, 3 together.
    assert charts["emotion"]["values"] == [3, 3, None, 0, 0, None]
    # 7 people with a time: at most 6 bins (at least 6 even for 7 / 3), so 5 minutes up to 754 s. The groups
    # are in the first; the lone man (bin 3) and the 2 without a time are hidden, 3 together.
    over_time = charts["people_by_video_time"]
    assert (over_time["labels"], over_time["values"], over_time["missing"]) == (["0:00", "5:00", "10:00"], [6, 0, None], None)
    # Emotions of the shown bins; sad and unknown are hidden in every bin, as in the emotion chart.
    assert over_time["series"] == {
        "neutral": [3, 0, None],
        "happy": [3, 0, None],
        "sad": [None, None, None],
        "surprise": [0, 0, None],
        "anger": [0, 0, None],
        "unknown": [None, None, None],
    }
    assert over_time["hidden_part"] == [0, 0, None]
    # dwell 10..14 and 20..24 in the first 30 s bin; 300 s alone in the last; the photos have none
    assert charts["dwell"]["values"] == [6] + [0] * 9 + [None] and charts["dwell"]["missing"] is None
    assert charts["attention"]["values"] == [6] + [0] * 9 + [None]
    # Shares 0 (3 men), 0.36, 0.42, 0.5 (the women) and 0.33 (the lone man): only the 3 zeros show.
    assert charts["attention_share"]["values"] == [3, 0, 0, None, None, None, 0, 0, 0, 0]
    # Headline: 7 with a dwell time; 4 attentive of 7 measured, 3 not.
    assert (data["total_dwell_seconds"], data["median_dwell_seconds"], data["attentive_share"]) == (402.0, 20.0, 0.5714)
    assert data["groups"] == [
        {"age_bucket": "20-29", "gender": "male", "people": 3},
        {"age_bucket": "30-44", "gender": "female", "people": 3},
    ]
    assert data["hidden_groups"] == 2
    # age 2 + emotion 2 + over time 6 (a bin, the missing, sad and unknown in the 2 shown bins) + dwell 2
    # + attention 2 + share 4 + groups 2
    assert report.suppressed == data["suppressed"] == 20
    assert "k-anonymity, k = 3: no number here describes fewer than 3 people. 20 values are hidden" in page.text

    # No person is shown: no people table, no thumbnail, nothing of the lone man.
    assert "people" not in page.tables and not [img for img in page.images if img.get("class") != "chart"]
    assert page.tables["groups"] == [["age bucket", "gender", "people"], ["20-29", "male", "3"], ["30-44", "female", "3"]]
    text = report.html.read_text(encoding="utf-8")
    for trace in ("lonely.mp4", "12:34", "image/jpeg", base64.b64encode(JPEG).decode("ascii")[:40]):
        assert trace not in text, trace


def test_k_5_hides_the_small_bars_not_the_big_ones(tmp_path: Path) -> None:
    """Issue 9: with --k 5, 2 women beside 35 men and 39 unknown hid the 35 men, and 74 people of
    minute 0 beside 2 later hid the 74 and with them the whole emotion chart."""
    people = []
    for i in range(76):
        gender = "female" if i < 2 else "male" if i < 37 else "unknown"
        first = 130.0 if i == 0 else 70.0 if i == 1 else 0.7 * i
        emotion = ("neutral", "happy", "sad")[i % 3]
        people.append(person(f"clip{i % 3}.mp4", i, first, 3.0, 1.0, 30.0, "30-44", gender, emotion))
    source = tmp_path / "clips.jsonl"
    write_jsonl(source, people)
    data = read_page(build_report(source, tmp_path / "out", k=5).html).data
    assert all(n == 0 or n >= 5 for n in counts_in(data))
    # The 2 women need one more hidden bar: the unknown, not the 35 men.
    assert data["charts"]["gender"]["values"] == [None, 35, None]
    # 74 people in 0 to 52 s and 2 alone at 70 s and 130 s: 10 s bins, the 2 hidden with the smallest
    # other bin; the biggest bins and their emotions show.
    over_time = data["charts"]["people_by_video_time"]
    assert over_time["labels"][:2] == ["0:00", "0:10"] and len(over_time["labels"]) == 14
    shown = [v for v in over_time["values"] if v]
    assert sum(shown) >= 74 - 14 and max(shown) >= 14
    assert sum(1 for v in over_time["values"] if v is None) == 3
    parts = sum(v for values in over_time["series"].values() for v in values if v)
    assert parts >= sum(shown) / 2, over_time["series"]


@pytest.mark.parametrize(("seed", "k"), [(1, 3), (2, 5)])
def test_k_anonymity_holds_on_random_people(tmp_path: Path, seed: int, k: int) -> None:
    """No stated count of 1 to k-1 people, and none to be had as a chart's total minus its shown bars,
    a time bin minus its shown emotions, or an emotion minus its shown time bins."""
    rng = random.Random(seed)
    people, walls = [], {}
    for i in range(300):
        kind = rng.random()
        source = "camera 0" if kind < 0.4 else "photo.jpg" if kind < 0.5 else rng.choice(["a.mp4", "b.mp4"])
        still = source == "photo.jpg"
        first = None if still else rng.uniform(0, 3 * 3600)
        dwell = None if still else rng.expovariate(1 / 30) + COUNTED_MIN_SECONDS
        attention = None if dwell is None or rng.random() < 0.2 else dwell * rng.random() * (rng.random() < 0.7)
        bucket, gender = rng.choice(AGES), rng.choice(["female", "male", "unknown"])
        emotion = rng.choice(EMOTION_LABELS)
        people.append(person(source, i, first, dwell, attention, 30.0, bucket, gender, emotion))
        if source == "camera 0":
            walls[i] = local(2026, 5, 4, 8) + first * 20  # spread over 2.5 days
    source = tmp_path / "random.jsonl"
    lines = []
    for p in people:
        lines.append(json.dumps(event_to_dict(Event(p.source, p.track_id, "enter", p.first_seen, walls.get(p.track_id, 1.7e9)))))
        lines.append(json.dumps(person_to_dict(p)))
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = build_report(source, tmp_path / "out", k=k)
    data = read_page(report.html).data
    assert data["people"] == 300 and report.suppressed > 0
    assert [n for n in counts_in(data) if 0 < n < k] == []
    charts = data["charts"]
    assert {"people_by_date", "people_by_video_time"} <= set(charts)
    time_charts = [charts["people_by_date"], charts["people_by_video_time"]]
    for name, chart in charts.items():
        if name.startswith("people_by"):
            continue
        rest = 300 - sum(v for v in chart["values"] if v is not None) - (chart["missing"] or 0)
        assert rest == 0 or rest >= k, (name, rest)
    # The two time charts and the people without a time are one partition.
    rest = 300 - sum(v for c in time_charts for v in c["values"] if v is not None) - (time_charts[0]["missing"] or 0)
    assert rest == 0 or rest >= k, rest
    emotions = dict(zip(charts["emotion"]["labels"], charts["emotion"]["values"]))
    for chart in time_charts:
        for i, total in enumerate(chart["values"]):
            if total is not None:
                assert total - sum(s[i] for s in chart["series"].values() if s[i] is not None) == chart["hidden_part"][i]
                assert chart["hidden_part"][i] == 0 or chart["hidden_part"][i] >= k
            else:
                assert all(s[i] is None for s in chart["series"].values())
    for label, total in emotions.items():
        cells = [v for chart in time_charts for v in chart["series"][label]]
        if total is None:
            assert all(v is None or v == 0 for v in cells)
        else:
            rest = total - sum(v for v in cells if v is not None)
            assert rest == 0 or rest >= k, (label, rest)
    # A group is listed only under shown age and gender bars, and no bar minus its listed groups is 1 to k-1.
    assert data["groups"] and all(group["people"] >= k for group in data["groups"])
    for axis, labels in (("age_bucket", AGES), ("gender", ["female", "male", "unknown"])):
        bars = dict(zip(labels, charts["age" if axis == "age_bucket" else "gender"]["values"]))
        assert all(bars[group[axis]] is not None for group in data["groups"])
        for label, total in bars.items():
            rest = (total or 0) - sum(group["people"] for group in data["groups"] if group[axis] == label)
            assert total is None or rest == 0 or rest >= k, (label, rest)


def test_k_2_also_hides_what_subtraction_would_reveal(db_report, tmp_path: Path) -> None:
    report = build_report(db_report.html.parent.parent / "people.db", tmp_path / "out", k=2)
    data = read_page(report.html).data
    assert all(n == 0 or n >= 2 for n in counts_in(data))
    # teen, 20-29, 65+ and unknown have 1 person each: hidden (4 people together).
    assert data["charts"]["age"]["values"] == [0, None, None, 3, 0, None, None]
    # 1 of unknown gender is hidden; 7 - 4 female would still tell it, so the 2 men go too.
    assert data["charts"]["gender"]["values"] == [4, None, None]
    # The 3 women of 30-44 would leave the teen woman as 4 - 3: every group is left out.
    assert data["groups"] == [] and data["hidden_groups"] == 5
    # Door 3 alone at 1:00 and the photo without a time: 2 together.
    assert data["charts"]["people_by_video_time"]["values"] == [3, 0, None, 0, 2]
    assert data["charts"]["people_by_video_time"]["missing"] is None
    assert data["fragments"] == 2


def test_groups_do_not_give_away_a_bar_hidden_to_protect_another(tmp_path: Path) -> None:
    counts = {("20-29", "male"): 4, ("20-29", "female"): 3, ("30-44", "female"): 7, ("30-44", "male"): 3, ("65+", "male"): 1}
    people = [
        person("photo.jpg", i, None, None, None, 30.0, bucket, gender, "happy")
        for i, (bucket, gender) in enumerate(group for group, n in counts.items() for _ in range(n))
    ]
    source = tmp_path / "photos.jsonl"
    write_jsonl(source, people)
    data = read_page(build_report(source, tmp_path / "out", k=3).html).data
    # 65+ (1 man) is hidden, so 20-29 (7) must go too; listing its groups of 4 and 3 would tell 7 again.
    assert data["charts"]["age"]["values"] == [0, 0, None, 10, 0, None, 0]
    assert data["charts"]["gender"]["values"] == [10, 8, 0]
    assert data["groups"] == [
        {"age_bucket": "30-44", "gender": "female", "people": 7},
        {"age_bucket": "30-44", "gender": "male", "people": 3},
    ]
    assert data["hidden_groups"] == 3


def test_fewer_than_k_people_shows_nothing_of_them(tmp_path: Path) -> None:
    source = tmp_path / "two.jsonl"
    write_jsonl(source, RUN_2)
    out = tmp_path / "out"
    assert len(build_report(source, out).charts) == 7
    report = build_report(source, out, k=3)
    assert (report.people, report.charts, report.suppressed) == (2, (), 2)  # the people and the fragments
    assert sorted((out / "charts").iterdir()) == []  # the k=1 charts are gone
    page = read_page(report.html)
    assert "too-few" in page.ids and page.stats["people"] == "fewer than 3" and page.data["people"] is None
    assert page.data["charts"] == {} and not page.images
    assert "lobby.mp4" not in report.html.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["database", "jsonl"])
def test_no_people_is_a_valid_page(tmp_path: Path, kind: str) -> None:
    if kind == "database":
        source = tmp_path / "people.db"
        with Database(source) as db:
            db.end_run(db.start_run(["door.mp4"], {}))
    else:
        source = tmp_path / "frames.jsonl"
        write_jsonl(source, [])
    report = build_report(source, tmp_path / "out", k=2)
    assert (report.people, report.charts, report.suppressed) == (0, (), 0)
    page = read_page(report.html)
    assert "no-people" in page.ids and "No people were recorded." in page.text
    assert page.data["people"] == 0 and page.data["charts"] == {}
    assert page.stats == {"people": "0", "sources": "0", **({"runs": "1"} if kind == "database" else {})}
    # A database has no faces of still images: the page says where they are.
    assert ("the faces of still images are in the run's JSON Lines file" in page.text) == (kind == "database")


def test_only_fragments_is_no_people(tmp_path: Path) -> None:
    source = tmp_path / "glimpses.jsonl"
    write_jsonl(source, [fragment("door.mp4", i, float(i)) for i in range(3)])
    report = build_report(source, tmp_path / "out")
    page = read_page(report.html)
    assert page.stats["people"] == "0" and page.stats["fragments"] == "3"
    assert (report.people, report.fragments, report.charts) == (0, 3, ())
    assert "No one was seen long enough to count as a person" in page.text


# --- still images --------------------------------------------------------------------------------


def face(age: float | None, gender: str | None, emotion: str | None) -> dict[str, Any]:
    return {"box": [0, 0, 10, 10], "confidence": 0.9, "age": age, "gender": gender, "emotion": emotion, "track_id": None}


def test_faces_of_still_images_are_reported_as_faces(tmp_path: Path) -> None:
    """Issue 9, defect 10: a JSON Lines file of photos said "No people were recorded" though it held 45 faces."""
    frames = [
        ("a.jpg", [face(25.0, "female", "happy"), face(33.0, "male", "neutral"), face(34.9, "male", "happy")]),
        ("b.jpg", [face(70.0, "female", "sad"), face(None, None, None)]),
        ("c.jpg", []),
    ]
    lines = [json.dumps({"type": "frame", "frame": 0, "timestamp": None, "source": s, "faces": f}) for s, f in frames]
    # A frame whose inference failed says nothing about its faces; a video frame's faces belong to people.
    lines.append(json.dumps({"type": "frame", "frame": 0, "timestamp": None, "source": "d.jpg", "faces": [], "error": "timeout"}))
    lines.append(json.dumps({"type": "frame", "frame": 3, "timestamp": 0.1, "source": "v.mp4", "faces": [face(40.0, "male", "sad")]}))
    source = tmp_path / "photos.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = build_report(source, tmp_path / "out")
    page = read_page(report.html)
    assert "No people were recorded" not in page.text and page.stats == {"faces": "5"}
    assert (report.people, report.faces) == (0, 5)
    assert [p.name for p in report.charts] == ["faces_age.png", "faces_gender.png", "faces_emotion.png"]
    assert "faces in 3 still images" in page.text
    charts = page.data["charts"]
    assert (page.data["faces"], page.data["images"]) == (5, 3)
    assert charts["faces_age"]["values"] == [0, 0, 1, 2, 0, 1, 1]
    assert charts["faces_gender"]["values"] == [2, 2, 1]
    assert charts["faces_emotion"]["values"] == [1, 2, 1, 0, 0, 1]
    assert report.summary == "5 faces of still images, 3 charts"

    # k = 2: the single 20-29 and 65+ faces are hidden, and so are the unknowns.
    data = read_page(build_report(source, tmp_path / "out", k=2).html).data
    assert data["charts"]["faces_age"]["values"] == [0, 0, None, 2, 0, None, None]
    assert all(n == 0 or n >= 2 for n in counts_in(data))
    # k = 6: fewer faces than that, so nothing of them.
    page = read_page(build_report(source, tmp_path / "out", k=6).html)
    assert "too-few-faces" in page.ids and page.data["faces"] is None and page.data["charts"] == {}


def test_report_of_real_photos(tmp_path: Path) -> None:
    """A real run over four photos of 1, 2, 3 and 4 faces (the last character of each name)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("007_B.jpg", "010_2.jpg", "011_3.jpg", "012_4.jpg"):
        (photos / name).symlink_to(DATA / "compreface-samples" / name)
    jsonl, db = tmp_path / "photos.jsonl", tmp_path / "people.db"
    result = runner.invoke(app, ["analyze", str(photos), "--jsonl", str(jsonl), "--db", str(db)])
    assert result.exit_code == 0, result.output
    found = sum(len(json.loads(line)["faces"]) for line in jsonl.read_text().splitlines() if '"type":"frame"' in line)
    assert 8 <= found <= 12
    result = runner.invoke(app, ["report", str(jsonl), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert f"({found} faces of still images, 3 charts)" in result.stderr
    page = read_page(tmp_path / "report" / "report.html")
    assert page.data["faces"] == found and page.data["images"] == 4
    for name in ("faces_age", "faces_gender", "faces_emotion"):
        assert sum(page.data["charts"][name]["values"]) == found
    # The database of the same run holds no faces of still images, and its report says where they are.
    page = read_page(build_report(db, tmp_path / "db-report").html)
    assert page.data["people"] == 0 and "the faces of still images are in the run's JSON Lines file" in page.text


# --- the charts themselves -------------------------------------------------------------------------


def drawn_figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every figure the report saves, by the title of its axes."""
    figures: dict[str, Any] = {}
    save = Figure.savefig

    def capture(figure: Figure, *args: Any, **kwargs: Any) -> None:
        figures[figure.axes[0].get_title()] = figure.axes[0]
        save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    return figures


def test_hidden_values_are_words_not_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9: hidden bars were drawn full height and hatched, so they looked like data."""
    people = [person("clip.mp4", i, 0.5 * i, 3.0, 1.0, 30.0, "30-44", "male", "neutral") for i in range(74)]
    people += [person("clip.mp4", 100, 80.0, 3.0, 1.0, 70.0, "65+", "female", "sad")]
    source = tmp_path / "clip.jsonl"
    write_jsonl(source, people)
    axes = drawn_figures(monkeypatch)
    data = read_page(build_report(source, tmp_path / "out", k=2).html).data
    checked = 0
    for chart in data["charts"].values():
        ax = axes[chart["title"]]
        hidden = [i for i, v in enumerate(chart["values"]) if v is None]
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
        at = {round(bar.get_x() + bar.get_width() / 2) for bar in bars}
        assert not at & set(hidden), (chart["title"], hidden)  # no bar where the value is hidden
        words = [t for t in ax.texts if t.get_text() == "hidden"]
        assert sorted(round(t.get_position()[0]) for t in words) == hidden, chart["title"]
        # Bar heights are the shown values (stacked parts add up to them).
        tops: dict[int, float] = {}
        for bar in bars:
            x = round(bar.get_x() + bar.get_width() / 2)
            tops[x] = max(tops.get(x, 0), bar.get_y() + bar.get_height())
        assert tops == {i: v for i, v in enumerate(chart["values"]) if v}, chart["title"]
        checked += bool(hidden)
    assert checked >= 4  # people by video time, age, gender, emotion at least


def test_value_axes_fit_the_largest_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 9: an axis ran to 105 for a largest bar of 74."""
    people = [person("clip.mp4", i, 0.1 * i, 3.0, 1.0, 30.0, "30-44", "male", ("neutral", "happy")[i % 2]) for i in range(74)]
    source = tmp_path / "clip.jsonl"
    write_jsonl(source, people)
    axes = drawn_figures(monkeypatch)
    data = read_page(build_report(source, tmp_path / "out").html).data
    for chart in data["charts"].values():
        # The bars' heights: values, or (in an older page's stacked chart) the sums of the parts.
        top = max(chart.get("values") or [sum(col) for col in zip(*chart["series"].values())])
        assert top <= axes[chart["title"]].get_ylim()[1] <= top * 1.15, (chart["title"], top, axes[chart["title"]].get_ylim())


def test_captions_add_to_the_charts_without_repeating_them(db_report) -> None:
    """Issue 9: captions repeated the chart titles."""
    page = read_page(db_report.html)
    for name, chart in page.data["charts"].items():
        caption = page.captions.get(f"figure-{name}", "")
        assert chart["title"] not in caption, name
    assert set(page.captions) == {"figure-people_by_video_time", "figure-dwell", "figure-attention", "figure-attention_share"}


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(FacelensError) as e:
        build_report(missing, tmp_path / "out")
    assert str(e.value) == f"{missing}: cannot read (No such file or directory)"
    with pytest.raises(FacelensError, match=r": cannot read \(Is a directory\)$"):
        build_report(tmp_path, tmp_path / "out")
    for name, content in (
        ("picture.png", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()),
        ("notes.txt", b"hello\nworld\n"),
    ):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(FacelensError) as e:
            build_report(tmp_path / name, tmp_path / "out")
        assert str(e.value) == f"{tmp_path / name}: neither a facelens database nor a JSON Lines file"

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE foo (x)")
    conn.close()
    with pytest.raises(FacelensError, match=r"foreign\.db: not a facelens database"):
        build_report(foreign, tmp_path / "out")
    # An SQLite file without tables is refused untouched (the Database class would fill it).
    bare = tmp_path / "bare.db"
    with sqlite3.connect(bare) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = bare.read_bytes()
    with pytest.raises(FacelensError, match=r"bare\.db: not a facelens database \(it has no tables\)$"):
        build_report(bare, tmp_path / "out")
    assert bare.read_bytes() == before

    good = tmp_path / "good.jsonl"
    write_jsonl(good, RUN_2)
    for k in (0, -1):
        with pytest.raises(FacelensError, match="k must be a whole number >= 1"):
            build_report(good, tmp_path / "out", k=k)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(FacelensError, match=r"a-file/charts: cannot create folder"):
        build_report(good, tmp_path / "a-file")
    assert not (tmp_path / "out").exists()


# --- headless browser ----------------------------------------------------------------------------


def test_chromium_renders_every_chart(db_report, tmp_path: Path) -> None:
    rendered = Page(run_chromium(db_report.html, tmp_path / "profile", "--dump-dom", "--window-size=1200,3000"))
    charts = rendered.charts()
    assert [(img["id"], img.get("data-rendered")) for img in charts] == [(f"chart-{name}", "true") for name in DRAWN]
    assert rendered.body.get("data-charts-rendered") == f"{len(DRAWN)}/{len(DRAWN)}"

    # The check can fail: a chart that does not decode is reported as such.
    broken = tmp_path / "broken.html"
    png = base64.b64encode(db_report.charts[1].read_bytes()).decode("ascii")
    garbage = base64.b64encode(b"not a PNG at all").decode("ascii")
    broken.write_text(db_report.html.read_text(encoding="utf-8").replace(png, garbage), encoding="utf-8")
    rendered = Page(run_chromium(broken, tmp_path / "profile", "--dump-dom"))
    assert [img.get("data-rendered") for img in rendered.charts()] == ["true", "false"] + ["true"] * (len(DRAWN) - 2)
    assert rendered.body.get("data-charts-rendered") == f"{len(DRAWN) - 1}/{len(DRAWN)}"

    # And the screenshot shows the bars: the charts' bar colour covers a good part of the page.
    shot = tmp_path / "shot.png"
    run_chromium(db_report.html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars")
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    blue, green, red = (int(BAR_COLOR[i : i + 2], 16) for i in (5, 3, 1))
    bars = np.all(np.abs(image.astype(int) - (blue, green, red)) <= 4, axis=2).sum()
    assert bars > 20_000, bars
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # not a blank page


# Measures, once the page is laid out, how far the last chart of each grid stops short of the grid's right edge.
GAP_PROBE = """<script>addEventListener("load", () => {
  document.body.dataset.gaps = [...document.querySelectorAll(".charts")].map((grid) =>
    Math.round(grid.getBoundingClientRect().right - grid.lastElementChild.getBoundingClientRect().right)).join(" ");
});</script>"""


@pytest.mark.parametrize("count", [7, 8])
def test_chart_grid_has_no_empty_cell(tmp_path: Path, count: int) -> None:
    """Issue 9: one grid cell was empty. Seven charts in two columns: the last one takes its row."""
    source = tmp_path / "people.db"
    if count == 7:
        write_database(source)
    else:
        write_mixed_database(source)  # a date axis too
    report = build_report(source, tmp_path / "out")
    assert len(report.charts) == count
    probed = tmp_path / "probed.html"
    probed.write_text(report.html.read_text(encoding="utf-8").replace("</body>", GAP_PROBE + "</body>"), encoding="utf-8")
    rendered = Page(run_chromium(probed, tmp_path / "profile", "--dump-dom", "--window-size=1200,3000"))
    assert rendered.body.get("data-gaps") == "0"


def test_chromium_shows_an_empty_report(tmp_path: Path) -> None:
    source = tmp_path / "frames.jsonl"
    write_jsonl(source, [])
    report = build_report(source, tmp_path / "out")
    rendered = Page(run_chromium(report.html, tmp_path / "profile", "--dump-dom"))
    assert rendered.body.get("data-charts-rendered") == "0/0"
    assert "No people were recorded." in rendered.text


# --- a real stream -------------------------------------------------------------------------------


def test_report_of_a_real_stream_shows_its_dates(tmp_path: Path) -> None:
    """The street clip served over loopback HTTP, analysed as a stream: the report places its people on
    the date and time they were seen, and the table gives date-times."""
    db = tmp_path / "people.db"
    with serve_folder(VIDEOS) as base:
        before = datetime.now()
        result = runner.invoke(app, ["analyze", f"{base}/street-720p.mp4", "--all-frames", "--db", str(db), "--jsonl", str(tmp_path / "s.jsonl")])
        after = datetime.now()
    assert result.exit_code == 0, result.output
    report = build_report(db, tmp_path / "report")
    with Database(db) as database:
        records = database.people()
    assert report.people == sum(p.counted for p in records) >= 5 and report.fragments == len(records) - report.people
    page = read_page(report.html)
    chart = page.data["charts"]["people_by_date"]
    assert "people_by_video_time" not in page.data["charts"]
    assert f"{before:%Y-%m-%d}" in chart["xlabel"]
    # Minutes of the wall clock the run took (a minute, or two if it crossed one).
    minutes = {f"{before:%H:%M}", f"{after:%H:%M}"}
    assert set(chart["labels"]) <= minutes and sum(chart["values"]) == report.people
    seen = [row[3] for row in page.tables["people"][1:]]
    assert len(seen) == report.people and all(before.strftime("%Y-%m-%d %H:") <= s[:14] <= after.strftime("%Y-%m-%d %H:") for s in seen)
