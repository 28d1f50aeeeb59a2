"""The HTML report: hand-counted figures from a database and JSON Lines, k-anonymity, odd inputs, and
the page rendered in headless Chromium."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import sqlite3
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facelens.db import Database, Event, PersonRecord, event_to_dict, person_to_dict
from facelens.errors import FacelensError
from facelens.report import BAR_COLOR, CHART_NAMES, build_report

JPEG = cv2.imencode(".jpg", np.full((24, 24, 3), (40, 160, 220), np.uint8))[1].tobytes()
AGES = ["child", "teen", "20-29", "30-44", "45-64", "65+", "unknown"]


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


# Seven people, counted by hand below. Run 1: one video; run 2: another video and a photo.
RUN_1 = [
    person("door.mp4", 1, 5.0, 30.0, 12.0, 34.2, "30-44", "female", "happy", thumbnail_jpeg=JPEG),
    person("door.mp4", 2, 20.0, 4.0, 0.0, 24.0, "20-29", "male", "neutral"),
    person("door.mp4", 3, 70.0, 65.0, 30.0, 41.0, "30-44", "female", "happy"),
    person("door.mp4", 4, 130.0, 8.0, None, 71.5, "65+", "male", "sad"),
    person("door.mp4", 5, 135.0, 12.0, 6.0, 38.0, "30-44", "female", "neutral"),
]
RUN_2 = [
    person("lobby.mp4", 1, 10.0, 25.0, 20.0, 16.0, "teen", "female", "surprise"),
    person("photo.jpg", 1, None, None, None, None, "unknown", "unknown", "unknown"),
]
EXPECTED_CHARTS = {
    # first seen in minute 0: door 1, 2 and lobby 1; minute 1: door 3; minute 2: door 4, 5; the photo has no time
    "people_per_minute": {"labels": ["0", "1", "2"], "values": [3, 1, 2], "missing": 1},
    "age": {"labels": AGES, "values": [0, 1, 1, 3, 0, 1, 1], "missing": 0},
    "gender": {"labels": ["female", "male", "unknown"], "values": [4, 2, 1], "missing": 0},
    "emotion_over_time": {
        "labels": ["0", "1", "2"],
        "series": {
            "neutral": [1, 0, 1],
            "happy": [1, 1, 0],
            "sad": [0, 0, 1],
            "surprise": [1, 0, 0],
            "anger": [0, 0, 0],
            "unknown": [0, 0, 0],
        },
        "hidden_part": [0, 0, 0],
    },
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
    """What a report page shows: images, headline figures, table rows, its JSON data and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.body: dict[str, str | None] = {}
        self.stats: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: set[str] = set()
        self.text = ""
        self._stat: str | None = None
        self._value = False
        self._json: list[str] | None = None
        self._script = False
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
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
    found = [data["people"]] if data["people"] is not None else []
    for chart in data["charts"].values():
        for values in [chart.get("values", []), chart.get("hidden_part", []), *chart.get("series", {}).values()]:
            found += [v for v in values if v is not None]
        if chart.get("missing") is not None:
            found.append(chart["missing"])
    found += [group["people"] for group in data.get("groups", [])]
    return found


@pytest.fixture(scope="module")
def db_report(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("db-report")
    write_database(folder / "people.db")
    return build_report(folder / "people.db", folder / "out")


def test_figures_of_a_database_are_the_hand_counted_ones(db_report) -> None:
    report = db_report
    assert report.people == 7 and report.suppressed == 0
    assert report.html.name == "report.html" and report.html.is_file()
    assert [p.name for p in report.charts] == [f"{name}.png" for name in CHART_NAMES]
    page = read_page(report.html)
    data = page.data
    assert (data["k"], data["people"], data["sources"], data["runs"], data["suppressed"]) == (1, 7, 3, 2, 0)
    # dwell 4 + 8 + 12 + 25 + 30 + 65 = 144, median (12 + 25) / 2; 4 of the 5 with attention faced the camera
    assert (data["total_dwell_seconds"], data["median_dwell_seconds"], data["attentive_share"]) == (144.0, 18.5, 0.8)
    assert page.stats == {
        "people": "7",
        "total_dwell": "2 min 24 s",
        "median_dwell": "18.5 s",
        "attentive_share": "80%",
        "sources": "3",
        "runs": "2",
    }
    assert {name: {key: chart[key] for key in EXPECTED_CHARTS[name]} for name, chart in data["charts"].items()} == (
        EXPECTED_CHARTS
    )
    assert "not in the chart: 1 person without video time (still images)" in page.text
    assert "not in the chart: 2 people without attention time" in page.text

    # Each chart is in the page as its PNG file's very bytes, and nothing else is loaded.
    charts = page.charts()
    assert [img["id"] for img in charts] == [f"chart-{name}" for name in CHART_NAMES]
    for img, png in zip(charts, report.charts):
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert img["src"] == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    assert all(str(img["src"]).startswith("data:") for img in page.images)
    text = report.html.read_text(encoding="utf-8")
    for remote in ("://", "<link", "url(", "@import", "href="):
        assert remote not in text, remote
    assert "Content-Security-Policy\" content=\"default-src 'none'; img-src data:;" in text

    # The people table: one row per person, in input order, with the one thumbnail there is.
    header, *rows = page.tables["people"]
    assert header[:4] == ["source", "track", "first seen", "last seen"] and len(rows) == 7
    assert [(row[0], row[1]) for row in rows] == [(p.source, str(p.track_id)) for p in RUN_1 + RUN_2]
    assert rows[3] == ["door.mp4", "4", "2:10.0", "2:18.0", "8.0 s", "—", "65+", "71.5 ± 2.0", "male (90%)", "sad", "no", ""]
    assert rows[5][6:11] == ["teen", "16.0 ± 2.0", "female (90%)", "surprise", "yes"]
    assert rows[6][2:] == ["—", "—", "—", "—", "unknown", "—", "unknown", "unknown", "—", ""]
    thumbs = [img for img in page.images if img.get("class") == "thumb"]
    assert [img["src"] for img in thumbs] == ["data:image/jpeg;base64," + base64.b64encode(JPEG).decode("ascii")]


def test_json_lines_give_the_same_figures_and_frame_lines_are_ignored(db_report, tmp_path: Path, warnings_log) -> None:
    source = tmp_path / "run.jsonl"
    write_jsonl(source, RUN_1 + RUN_2)
    report = build_report(source, tmp_path / "out", title="Lobby <Tuesday> & more")
    assert report.people == 7 and len(report.charts) == len(CHART_NAMES)
    assert not warnings_log.records  # the frame and event lines are no bad lines
    page, from_db = read_page(report.html), read_page(db_report.html)
    assert page.data == {**from_db.data, "runs": None}
    assert "runs" not in page.stats and page.stats["people"] == "7"
    text = report.html.read_text(encoding="utf-8")
    assert "<title>Lobby &lt;Tuesday&gt; &amp; more</title>" in text and "<Tuesday>" not in text
    # A person written twice counts once, with its last record; a line cut short is skipped with a warning.
    again = person("door.mp4", 1, 5.0, 30.0, 12.0, 34.2, "45-64", "female", "happy")
    write_jsonl(source, RUN_1 + RUN_2 + [again], '{"type": "person", "source": "door.mp4", "track_')
    page = read_page(build_report(source, tmp_path / "out").html)
    assert page.data["people"] == 7
    assert page.data["charts"]["age"]["values"] == [0, 1, 1, 2, 1, 1, 1]
    assert [r.getMessage() for r in warnings_log.records][-1] == f"{source}: 1 bad line skipped"


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
    # Minutes 0 and 1 hold the groups; minute 12 (the lone man) and the 2 without time are hidden.
    assert charts["people_per_minute"]["values"] == [3, 3] + [0] * 10 + [None]
    assert charts["people_per_minute"]["missing"] is None
    series = charts["emotion_over_time"]["series"]
    assert series["happy"][:2] == [3, 0] and series["neutral"][:2] == [0, 3]
    assert all(values[12] is None for values in series.values()) and series["sad"] == [0] * 12 + [None]
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
    # age 2 + per minute 2 + emotion 6 (all of minute 12) + dwell 2 + attention 2 + share 4 + groups 2
    assert report.suppressed == data["suppressed"] == 20
    assert "k-anonymity, k = 3: no number here describes fewer than 3 people. 20 values are hidden" in page.text

    # No person is shown: no people table, no thumbnail, nothing of the lone man.
    assert "people" not in page.tables and not [img for img in page.images if img.get("class") != "chart"]
    assert page.tables["groups"] == [["age bucket", "gender", "people"], ["20-29", "male", "3"], ["30-44", "female", "3"]]
    text = report.html.read_text(encoding="utf-8")
    for trace in ("lonely.mp4", "12:34", "image/jpeg", base64.b64encode(JPEG).decode("ascii")[:40]):
        assert trace not in text, trace


@pytest.mark.parametrize(("seed", "k"), [(1, 3), (2, 5)])
def test_k_anonymity_holds_on_random_people(tmp_path: Path, seed: int, k: int) -> None:
    """No stated count of 1 to k-1 people, and none to be had as a chart's total minus its shown bars."""
    rng = random.Random(seed)
    people = []
    for i in range(300):
        still = rng.random() < 0.1
        first = None if still else rng.uniform(0, 3 * 3600)
        dwell = None if still else rng.expovariate(1 / 30)
        attention = None if dwell is None or rng.random() < 0.2 else dwell * rng.random() * (rng.random() < 0.7)
        bucket, gender = rng.choice(AGES), rng.choice(["female", "male", "unknown"])
        emotion = rng.choice(["neutral", "happy", "sad", "surprise", "anger", "unknown"])
        people.append(person(rng.choice(["a.mp4", "b.mp4"]), i, first, dwell, attention, 30.0, bucket, gender, emotion))
    source = tmp_path / "random.jsonl"
    write_jsonl(source, people)
    report = build_report(source, tmp_path / "out", k=k)
    data = read_page(report.html).data
    assert data["people"] == 300 and report.suppressed > 0
    assert [n for n in counts_in(data) if 0 < n < k] == []
    charts = data["charts"]
    assert len(charts["people_per_minute"]["labels"]) == 36  # 3 hours in bins of 5 minutes
    for name, chart in charts.items():
        if "values" in chart:
            rest = 300 - sum(v for v in chart["values"] if v is not None) - (chart["missing"] or 0)
            assert rest == 0 or rest >= k, (name, rest)
    for i, total in enumerate(charts["people_per_minute"]["values"]):
        series = charts["emotion_over_time"]["series"].values()
        if total is not None:
            assert total - sum(s[i] for s in series if s[i] is not None) == charts["emotion_over_time"]["hidden_part"][i]
        else:
            assert all(s[i] is None for s in series)
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
    assert data["charts"]["people_per_minute"]["values"] == [3, None, 2]
    assert data["charts"]["people_per_minute"]["missing"] is None


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
    assert len(build_report(source, out).charts) == len(CHART_NAMES)
    report = build_report(source, out, k=3)
    assert (report.people, report.charts, report.suppressed) == (2, (), 1)
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


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("FACELENS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed: apt-get install chromium (FACELENS_REQUIRE_BROWSER=1 needs it)")
        pytest.skip("chromium is not installed (apt-get install chromium; FACELENS_REQUIRE_BROWSER=1 makes this a failure)")
    return path


def run_chromium(page: Path, profile: Path, *args: str) -> str:
    """Load `page` in headless Chromium (a fresh profile, no network) and return its stdout."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # as root, and in containers without user namespaces
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
        page.as_uri(),
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{command} failed ({result.returncode}): {result.stderr[-2000:]}"
    return result.stdout


def test_chromium_renders_every_chart(db_report, tmp_path: Path) -> None:
    rendered = Page(run_chromium(db_report.html, tmp_path / "profile", "--dump-dom"))
    charts = rendered.charts()
    assert [(img["id"], img.get("data-rendered")) for img in charts] == [(f"chart-{name}", "true") for name in CHART_NAMES]
    assert rendered.body.get("data-charts-rendered") == f"{len(CHART_NAMES)}/{len(CHART_NAMES)}"

    # The check can fail: a chart that does not decode is reported as such.
    broken = tmp_path / "broken.html"
    png = base64.b64encode(db_report.charts[1].read_bytes()).decode("ascii")
    garbage = base64.b64encode(b"not a PNG at all").decode("ascii")
    broken.write_text(db_report.html.read_text(encoding="utf-8").replace(png, garbage), encoding="utf-8")
    rendered = Page(run_chromium(broken, tmp_path / "profile", "--dump-dom"))
    assert [img.get("data-rendered") for img in rendered.charts()] == ["true", "false"] + ["true"] * (len(CHART_NAMES) - 2)
    assert rendered.body.get("data-charts-rendered") == f"{len(CHART_NAMES) - 1}/{len(CHART_NAMES)}"

    # And the screenshot shows the bars: the charts' bar colour covers a good part of the page.
    shot = tmp_path / "shot.png"
    run_chromium(db_report.html, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars")
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    blue, green, red = (int(BAR_COLOR[i : i + 2], 16) for i in (5, 3, 1))
    bars = np.all(np.abs(image.astype(int) - (blue, green, red)) <= 4, axis=2).sum()
    assert bars > 20_000, bars
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # not a blank page


def test_chromium_shows_an_empty_report(tmp_path: Path) -> None:
    source = tmp_path / "frames.jsonl"
    write_jsonl(source, [])
    report = build_report(source, tmp_path / "out")
    rendered = Page(run_chromium(report.html, tmp_path / "profile", "--dump-dom"))
    assert rendered.body.get("data-charts-rendered") == "0/0"
    assert "No people were recorded." in rendered.text
