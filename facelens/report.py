"""One self-contained HTML page, with PNG charts, that answers a shop owner's questions about the
people of a database or JSON Lines file: how many came, when, who, how long they stayed, whether
they looked.

`build_report` reads a people database (`facelens.db.Database`) or a JSON Lines file (records of
`facelens.db.person_to_dict`, `event_to_dict` and `FrameResult.to_dict`), told apart by content,
and writes `report.html` and `charts/<name>.png`. The page has its CSS inline and its charts as
base64 PNG data URIs, and no URL at all: it works offline, and its Content-Security-Policy lets it
load nothing. Every number it states is also in its JSON block
`<script type="application/json" id="facelens-report-data">` (null where a value is hidden).

What is counted. A person is a record that `PersonRecord.counted` accepts (seen long enough and in
enough frames); shorter records are fragments (glimpses, false detections, pieces of broken tracks):
one figure of their own, in no chart and no table. Faces of still images (frame records without a
timestamp; the database keeps none) are counted as faces, in a section of their own.

Time. People of cameras and streams are placed by the wall-clock time of their first sighting
(local time of the computer writing the report), in bins of a minute to a week; people of video
files by video time, from the start of each video (several videos pooled). Bins are of round widths,
as many as there are k people, but at least 6 and at most `_MAX_TIME_BINS`: sparse data gets wide bins.

Selection (`run`, `source`, `since`, `until`, as `facelens report --run --source --since --until`):
`source` is an exact source name if one has it, else every source whose name contains it.
`since` (inclusive) and `until` (exclusive; a date alone means the end of that day) compare the
first sighting for cameras and streams, and the time the analysis started for video files (a run's
start; in JSON Lines the source's first event); still images have no time and are left out by them.

Values shown. A fused value is shown only with a settled label: a person's age (and its
uncertainty) only under a known age bucket, the gender's confidence only with a known gender;
an unsettled one reads "unknown" and no number.

k-anonymity (`k` > 1): no number in the page describes 1 to k-1 people, and no hidden count can be
worked out by subtraction within a chart.

- Each chart splits all people (or faces) into bins (bars, histogram bins, time bins, and a "not in
  the chart" bin, e.g. people without dwell time). A bin of 1 to k-1 is hidden. As the total is
  stated too, the hidden bins of a chart must hold 0 or at least k together: until they do, one
  more shown bin is hidden, the "unknown" or "not in the chart" bin if it has anyone (hiding it
  hides the chart's own total), else the smallest. So a big bar is hidden only when nothing else
  can protect a small one.
- The date and the video time chart, with the people without a time, are one split of all people.
  They are stacked by emotion: a hidden time bin hides all its emotions; within a shown
  bin the same rule applies to its emotions (their hidden part is drawn as one grey block, its
  height being known); along each shown bar of the emotion chart too (people without a time count
  as hidden there), and an emotion hidden there is hidden in every time bin.
- The people table becomes a table of (age bucket, gender) groups. A group is listed only if it has
  at least k people and its age bucket and gender bars are shown; and, by the same rule, along each
  shown age bucket, each shown gender and the whole table the groups left out hold 0 or >= k people.
- Headline figures over part of the people (dwell over people with a dwell time, the share of
  attentive people) are hidden when that part, or the attentive or the inattentive, number 1 to
  k-1; so is a count of fragments of 1 to k-1.
- With 1 to k-1 people (or faces) in all, the page says only that of them. Thumbnails are never shown.

Hidden values are marked "hidden" in text; no bar is drawn for them. Zero counts are shown. The rule
protects each stated number and what subtraction within a chart, or between a chart and its
refinement, reveals; it is no full audit of what combining all charts could reveal.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import sqlite3
import statistics
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .db import Database, PersonRecord, read_jsonl_people
from .errors import FacelensError
from .files import write_atomically, write_pngs
from .fuse import AGE_BUCKETS, age_bucket
from .sources import STREAM_SCHEMES
from .types import COUNTED_MIN_FRAMES, COUNTED_MIN_SECONDS, EMOTIONS, GENDERS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CHART_NAMES", "Report", "ReportOptionError", "build_report"]

SQLITE_MAGIC = b"SQLite format 3\x00"
UNKNOWN = "unknown"

CHART_NAMES: tuple[str, ...] = (
    "people_by_date",
    "people_by_video_time",
    "age",
    "gender",
    "emotion",
    "dwell",
    "attention",
    "attention_share",
    "faces_age",
    "faces_gender",
    "faces_emotion",
)
"""Every chart the page may have, in page order; each is `charts/<name>.png`."""

BAR_COLOR = "#3366cc"
_HIDDEN_COLOR = "#c3c9d0"
_TEXT_COLOR = "#5b6570"
_EMOTION_COLORS = {
    "neutral": "#9e9e9e",
    "happy": "#f2b400",
    "sad": "#3f6fb5",
    "surprise": "#8e44ad",
    "anger": "#d0342c",
    UNKNOWN: "#e4d9c8",
}
_MIN_TIME_BINS = 6
_MAX_TIME_BINS = 48
_DATE_STEPS: tuple[tuple[str, int], ...] = (
    ("minute", 60),
    ("5 minutes", 300),
    ("15 minutes", 900),
    ("hour", 3600),
    ("3 hours", 3 * 3600),
    ("day", 86400),
    ("week", 7 * 86400),
)
_WIDTH, _HEIGHT = 6.4, 3.4
"""Size of a chart in inches (100 pixels each)."""
_MAX_HISTOGRAM_BINS = 12
_SECONDS_PER_BIN = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
_LABELLED_BARS = 30
_SNIFF_BYTES = 1 << 20
_SNIFF_LINES = 64
_CAMERA = re.compile(r"camera \d+")


class ReportOptionError(FacelensError):
    """A selection (`run`, `source`, `since`, `until`) that is malformed or names nothing in the input."""


@dataclass(frozen=True, slots=True)
class Report:
    """What `build_report` wrote."""

    html: Path
    """The page, `out_dir/report.html`."""
    charts: tuple[Path, ...]
    """The charts drawn, `out_dir/charts/<name>.png`, in page order."""
    people: int
    """People in the selection (counted records; also when k-anonymity keeps the page from saying it)."""
    fragments: int
    """Person records too short to count as people."""
    faces: int
    """Faces of still images in the selection."""
    suppressed: int
    """Values the page hides for k-anonymity: bars, bins, cells, groups and headline figures."""
    selection: str = ""
    """What was selected, in words ("" for everything)."""
    k: int = 1

    @property
    def summary(self) -> str:
        """One line: what the page is about, e.g. "22 people, 50 short fragments not counted, 6 charts"."""
        parts = [f"{self.people} {'person' if self.people == 1 else 'people'}"] if self.people or not self.faces else []
        if self.fragments:
            parts.append(f"{self.fragments} short fragment{'s' if self.fragments != 1 else ''} not counted")
        if self.faces:
            parts.append(f"{self.faces} face{'s' if self.faces != 1 else ''} of still images")
        parts.append(f"{len(self.charts)} chart{'s' if len(self.charts) != 1 else ''}")
        if self.suppressed:
            parts.append(f"{self.suppressed} figure{'s' if self.suppressed != 1 else ''} hidden (k = {self.k})")
        return ", ".join(parts) + (f"; {self.selection}" if self.selection else "")


def build_report(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    k: int = 1,
    title: str | None = None,
    run: int | None = None,
    source: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
) -> Report:
    """Write `out_dir/report.html` (one self-contained file) and `out_dir/charts/<name>.png` about
    the people and still-image faces of `path`, a facelens database or JSON Lines file.

    `run`, `source`, `since` and `until` select (see the module docstring); a bad or unknown value
    raises `ReportOptionError`. With `k` > 1 no number in the page describes fewer than `k` people
    (the exact rule is in the module docstring) and the people table becomes a table of (age bucket,
    gender) groups.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise FacelensError(f"k must be a whole number >= 1, not {k!r}")
    start = None if since is None else _parse_time(since, "--since", end=False)
    end = None if until is None else _parse_time(until, "--until", end=True)
    if start is not None and end is not None and start >= end:
        raise ReportOptionError(f"--since {since} is not before --until {until}")
    path = Path(path)
    data = _load(path)
    chosen = _select(data, path, run, source, start, end)
    page = _Page(data, chosen, k)

    out = Path(out_dir)
    pngs: dict[str, bytes] = {chart.name: _draw(chart) for chart in page.all_charts}
    # An earlier report's chart in the same folder must not pass for one of this report (nor outlive a stricter k).
    written = write_pngs(out / "charts", CHART_NAMES, pngs)
    page_path = out / "report.html"
    text = page.html(title if title is not None else f"facelens report: {path.name}", path.name, pngs)
    write_atomically(page_path, Path.write_text, text, "utf-8")
    return Report(page_path, tuple(written), len(page.people), len(page.fragments), len(page.faces), page.suppressed, chosen, k)


# --- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Person:
    """A person record and where and when it belongs."""

    record: PersonRecord
    run: int | None
    """The database run; None for JSON Lines."""
    live: bool
    """Of a camera or stream (else of a video file, or a still image)."""
    wall: float | None
    """Unix time of the first sighting, for cameras and streams."""
    when: float | None
    """What --since and --until compare: `wall` for cameras and streams, the start of the analysis for files."""


@dataclass(frozen=True, slots=True)
class _Face:
    """A face of a still image."""

    image: str
    age_bucket: str
    gender: str
    emotion: str


@dataclass
class _Input:
    people: list[_Person]
    """Every person record, fragments included."""
    faces: list[_Face]
    images: list[str]
    """One entry per still image (frame without a timestamp), faces or not."""
    runs: list[dict[str, Any]] | None
    """The database's runs; None for JSON Lines."""


def _is_live(source: str) -> bool:
    """Whether a source name is a camera's ("camera 0") or a stream's (a URL), as `facelens.sources` names them."""
    return source.lower().startswith(STREAM_SCHEMES) or _CAMERA.fullmatch(source) is not None


def _load(path: Path) -> _Input:
    try:
        with open(path, "rb") as file:
            head = file.read(_SNIFF_BYTES)
    except OSError as error:
        raise FacelensError(f"{path}: cannot read ({error.strerror or error})") from None
    if head.startswith(SQLITE_MAGIC):
        return _read_database(path)
    if not _has_json_object(head):
        raise FacelensError(f"{path}: neither a facelens database nor a JSON Lines file")
    records, events = read_jsonl_people(path)
    entered: dict[tuple[str, int], float] = {}
    started: dict[str, float] = {}
    for event in events:
        if event.kind == "enter":
            key = (event.source, event.track_id)
            entered[key] = min(entered.get(key, math.inf), event.wall_time)
        started[event.source] = min(started.get(event.source, math.inf), event.wall_time)
    people = []
    for record in records:
        live = _is_live(record.source)
        wall = entered.get((record.source, record.track_id)) if live else None
        people.append(_Person(record, None, live, wall, wall if live else started.get(record.source)))
    faces, images = _read_still_faces(path)
    return _Input(people, faces, images, None)


def _has_json_object(head: bytes) -> bool:
    """Whether the start of a file can be JSON Lines: empty, or a JSON object on one of its first
    lines (read_jsonl_people skips bad lines, but a file of nothing else is another format)."""
    lines = head.split(b"\n")
    if len(head) == _SNIFF_BYTES:
        if len(lines) == 1:
            return True  # one line longer than the sniff: read_jsonl_people judges it
        lines.pop()  # cut short by the read
    lines = [line for line in lines if line.strip()][:_SNIFF_LINES]
    return not lines or any(_is_json_object(line) for line in lines)


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8
        return False


def _read_still_faces(path: Path) -> tuple[list[_Face], list[str]]:
    """The faces of the frame records without a timestamp (still images), and those images.

    Bad lines are skipped silently: `read_jsonl_people` has warned of them."""
    faces: list[_Face] = []
    images: list[str] = []
    with open(path, "rb") as file:
        for raw in file:
            # Cheap test first: a long stream's file holds millions of frame lines with a time.
            if b'"timestamp":null' not in raw and b'"timestamp": null' not in raw:
                continue
            try:
                record = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if not isinstance(record, dict) or record.get("type") != "frame" or record.get("timestamp", 0) is not None:
                continue
            image, found = record.get("source"), record.get("faces")
            if not isinstance(image, str) or not isinstance(found, list) or record.get("error") is not None:
                continue  # a frame whose inference failed tells nothing about its faces
            images.append(image)
            for face in found:
                if isinstance(face, dict):
                    age = face.get("age")
                    bucket = age_bucket(age) if isinstance(age, (int, float)) and _finite(age) else UNKNOWN
                    faces.append(_Face(image, bucket, _label(face.get("gender")), _label(face.get("emotion"))))
    return faces, images


def _label(value: Any) -> str:
    return value if isinstance(value, str) and value else UNKNOWN


def _read_database(path: Path) -> _Input:
    # Database() creates its tables in an SQLite file without any: look first, read-only, so a
    # report never changes a foreign file.
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as error:
        raise FacelensError(f"{path}: cannot open database ({error})") from None
    if not tables:
        raise FacelensError(f"{path}: not a facelens database (it has no tables)")
    people = []
    with Database(path) as db:
        try:
            runs = db.runs()
            for run in runs:
                entered: dict[tuple[str, int], float] = {}
                for event in db.events(run["id"]):
                    if event.kind == "enter":
                        entered.setdefault((event.source, event.track_id), event.wall_time)
                for record in db.people(run["id"]):
                    live = _is_live(record.source)
                    wall = None
                    if live:
                        wall = entered.get((record.source, record.track_id))
                        if wall is None and _finite(record.first_seen):  # no enter event: the run's clock
                            wall = run["started_at"] + record.first_seen
                    people.append(_Person(record, run["id"], live, wall, wall if live else run["started_at"]))
        except sqlite3.Error as error:
            raise FacelensError(f"{path}: cannot read database ({error})") from None
    return _Input(people, [], [], runs)


# --- selection -----------------------------------------------------------------------------------


def _parse_time(value: str | datetime, option: str, *, end: bool) -> float:
    """Unix time of an ISO date-time (local time unless it has an offset); with `end`, a date alone
    is the end of that day."""
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportOptionError(
            f"{option} {value}: not an ISO date-time (e.g. 2026-01-12, 2026-01-12T14:30 or 2026-01-12T14:30+01:00)"
        ) from None
    try:
        date.fromisoformat(text)
        if end:
            moment += timedelta(days=1)
    except ValueError:
        pass  # it has a time of day
    return moment.timestamp()


def _select(data: _Input, path: Path, run: int | None, source: str | None, since: float | None, until: float | None) -> str:
    """Narrow `data` to the selection, in place; return it in words ("" for everything)."""
    said = []
    if run is not None:
        if data.runs is None:
            raise ReportOptionError(f"--run {run}: {path} is a JSON Lines file, which has no runs; --run needs a database")
        ids = [r["id"] for r in data.runs]
        if run not in ids:
            have = "none" if not ids else _some([str(i) for i in ids])
            raise ReportOptionError(f"--run {run}: {path} has no such run (its runs: {have})")
        data.people = [p for p in data.people if p.run == run]
        data.runs = [r for r in data.runs if r["id"] == run]
        data.faces, data.images = [], []
        said.append(f"run {run}")
    if source is not None:
        names = sorted({p.record.source for p in data.people} | set(data.images))
        if source in names:
            wanted = {source}
            said.append(f'source "{source}"')
        else:
            wanted = {name for name in names if source in name}
            if not wanted:
                where = f"run {run} of {path}" if run is not None else str(path)
                listed = f" (its sources: {_some(names)})" if names else " (it has none)"
                raise ReportOptionError(f"--source {source}: no source of {where} is or contains it{listed}")
            said.append(f'{len(wanted)} source{"s" if len(wanted) != 1 else ""} containing "{source}"')
        data.people = [p for p in data.people if p.record.source in wanted]
        data.faces = [f for f in data.faces if f.image in wanted]
        data.images = [i for i in data.images if i in wanted]
    if since is not None or until is not None:
        low, high = -math.inf if since is None else since, math.inf if until is None else until
        data.people = [p for p in data.people if p.when is not None and low <= p.when < high]
        stills = ", still images (no time) left out" if data.images else ""
        data.faces, data.images = [], []
        span = " ".join(([] if since is None else [f"from {_local(since)}"]) + ([] if until is None else [f"until {_local(until)}"]))
        said.append(f"{span} (cameras and streams by first sighting, video files by the start of their analysis{stills})")
    return "; ".join(said)


def _some(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _local(t: float) -> str:
    moment = datetime.fromtimestamp(t).astimezone()
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"


# --- figures -------------------------------------------------------------------------------------


@dataclass
class _Chart:
    """One chart: bars over `labels` (None marks a hidden value), stacked when `series` is set."""

    name: str
    title: str
    xlabel: str
    labels: list[str]
    values: list[int | None]
    """Bar heights: people per label (for stacked bars, each bar's total)."""
    missing: int | None = 0
    """People the chart cannot place (e.g. without a dwell time); None when hidden."""
    missing_text: str = ""
    series: dict[str, list[int | None]] = field(default_factory=dict)
    """Stacked parts: each label's part of each bar; None where hidden."""
    note: str = ""
    """What else the caption says."""

    def hidden_part(self) -> list[int | None]:
        """For stacked bars, each bar's hidden part (its total minus its shown parts); None where the total is hidden."""
        return [
            None if total is None else total - sum(values[i] or 0 for values in self.series.values())
            for i, total in enumerate(self.values)
        ]

    def hidden(self) -> int:
        """How many values the chart hides: bars, the "not in the chart" count, and parts of shown bars."""
        parts = sum(
            values[i] is None for values in self.series.values() for i, total in enumerate(self.values) if total is not None
        )
        return sum(v is None for v in self.values) + (self.missing is None) + parts

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "title": self.title,
            "xlabel": self.xlabel,
            "labels": self.labels,
            "values": self.values,
            "missing": self.missing,
        }
        if self.series:
            data["series"] = self.series
            data["hidden_part"] = self.hidden_part()
        return data


def _hide(
    counts: Mapping[Hashable, int],
    k: int,
    lines: Iterable[Sequence[Hashable]],
    forced: Iterable[Hashable] = (),
    spare: Iterable[Hashable] = (),
) -> set[Hashable]:
    """Keys of the counts to hide: the `forced` ones, those of 1 to k-1 people, then along each line
    (counts whose sum the page states) one more shown count at a time until the line's hidden counts
    add up to 0 or at least k: a `spare` one (e.g. "unknown") if any, else the smallest."""
    hidden = set(forced) | {key for key, n in counts.items() if 0 < n < k}
    spare = set(spare)
    lines = [list(line) for line in lines]
    changed = True
    while changed:
        changed = False
        for line in lines:
            if 0 < sum(counts[key] for key in line if key in hidden) < k:
                shown = [key for key in line if key not in hidden and counts[key] > 0]
                if shown:
                    hidden.add(min(shown, key=lambda key: (key not in spare, counts[key])))
                    changed = True
    return hidden


def _labels(known: Iterable[str], seen: Iterable[str]) -> list[str]:
    """The known labels and "unknown", always (a label's presence must not say someone has it),
    then any others in the data."""
    labels = [*known, UNKNOWN]
    return labels + sorted(set(seen) - set(labels))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _partition(
    name: str, title: str, xlabel: str, labels: list[str], keys: list[Any], k: int, missing_text: str = ""
) -> tuple[_Chart, set[Any]]:
    """A bar chart of how many people have each label; `keys` has one label per person, or None
    for a person the chart cannot place. Also returns the hidden labels (None: the missing count)."""
    counts = Counter(keys)
    bins: dict[Any, int] = {label: counts.get(label, 0) for label in labels}
    bins[None] = counts.get(None, 0)
    hidden = _hide(bins, k, [list(bins)], spare=[UNKNOWN, None])
    values = [None if label in hidden else bins[label] for label in labels]
    missing = None if None in hidden else bins[None]
    return _Chart(name, title, xlabel, labels, values, missing, missing_text), hidden


def _histogram_width(largest: float) -> float:
    """The first round width that takes fewer than `_MAX_HISTOGRAM_BINS` bins up to `largest`."""
    for width in _SECONDS_PER_BIN:
        if largest < width * _MAX_HISTOGRAM_BINS:
            return width
    return _SECONDS_PER_BIN[-1] * (int(largest // (_SECONDS_PER_BIN[-1] * _MAX_HISTOGRAM_BINS)) + 1)


def _histogram(name: str, title: str, values: list[float | None], k: int, missing_text: str) -> _Chart | None:
    """Seconds in bins of a round width (so the axis does not give away the largest value)."""
    measured = [max(0.0, v) for v in values if _finite(v)]
    if not measured:
        return None
    width = _histogram_width(max(measured))
    count = int(max(measured) // width) + 1
    labels = [f"{i * width:g}–{(i + 1) * width:g}" for i in range(count)]
    keys = [labels[int(max(0.0, v) // width)] if _finite(v) else None for v in values]
    return _partition(name, title, "seconds", labels, keys, k, missing_text)[0]


def _time_bins(n: int, k: int) -> int:
    """At most this many time bins: about k people each, within bounds."""
    return min(_MAX_TIME_BINS, max(_MIN_TIME_BINS, math.ceil(n / k)))


def _floor_local(t: float, step: int) -> datetime:
    """Start (local time) of the bin of `step` seconds holding `t`: bins start on the hour, at
    midnight, or on Monday."""
    moment = datetime.fromtimestamp(t)
    if step < 86400:
        minutes = step // 60
        of_day = moment.hour * 60 + moment.minute
        of_day -= of_day % minutes
        return moment.replace(hour=of_day // 60, minute=of_day % 60, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if step >= 7 * 86400 else day


def _date_axis(times: list[float], k: int) -> tuple[list[float], str, list[str], str]:
    """Bins of local time over `times`: their starts (unix time), the unit's name, their labels and the axis label."""
    first, last = min(times), max(times)
    limit = _time_bins(len(times), k)
    unit, step = _DATE_STEPS[-1]
    for unit, step in _DATE_STEPS:
        span = (_floor_local(last, step) - _floor_local(first, step)).total_seconds()
        if span // step + 1 <= limit:
            break
    starts = [_floor_local(first, step)]
    end = _floor_local(last, step)
    while starts[-1] < end:
        # 1.5 steps on, then back to a bin start: days of 23 or 25 hours stay one bin each.
        starts.append(_floor_local(starts[-1].timestamp() + 1.5 * step, step))
    one_day = starts[0].date() == (starts[-1] + timedelta(seconds=step - 1)).date()
    if step < 86400:
        labels = [f"{s:%H:%M}" if one_day else f"{s:%d %b %H:%M}" for s in starts]
    elif step == 86400:
        labels = [f"{s:%a %d %b}" for s in starts]
    else:
        labels = [f"{s:%d %b}" for s in starts]
    zone = datetime.fromtimestamp(first).astimezone().tzname()
    days = f"{starts[0]:%Y-%m-%d}" if one_day else f"{starts[0]:%Y-%m-%d} to {starts[-1] + timedelta(seconds=step - 1):%Y-%m-%d}"
    weeks = "weeks from Monday, " if unit == "week" else ""
    return [start.timestamp() for start in starts], unit, labels, f"{weeks}{days}, local time ({zone})"


def _video_axis(times: list[float], k: int) -> tuple[float, list[str], str]:
    """Bins of video time over `times`: their width, labels and the axis label."""
    limit = _time_bins(len(times), k)
    largest = max(0.0, max(times))
    width = next((w for w in _SECONDS_PER_BIN if largest // w + 1 <= limit), None)
    if width is None:
        width = _SECONDS_PER_BIN[-1] * (int(largest // (_SECONDS_PER_BIN[-1] * limit)) + 1)
    count = int(largest // width) + 1
    return width, [_position(i * width) for i in range(count)], f"video time from the start (bins of {_duration_round(width)})"


def _position(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def _duration_round(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    if seconds < 86400:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 86400:g} days"


class _Page:
    """The figures of a report, k-anonymized, and their HTML."""

    def __init__(self, data: _Input, selection: str, k: int) -> None:
        self.k = k
        self.selection = selection
        self.records = data.people
        self.people = [p for p in data.people if p.record.counted]
        self.fragments = [p for p in data.people if not p.record.counted]
        self.faces = data.faces
        self.images = data.images
        self.runs = None if data.runs is None else len(data.runs)
        self.database = data.runs is not None
        self.sources = len({p.record.source for p in data.people})
        self.charts: list[_Chart] = []
        self.face_charts: list[_Chart] = []
        self.notes: list[str] = []
        self.groups: list[tuple[str, str, int]] = []
        self.hidden_groups = 0
        self.headline: dict[str, float | None] = {}
        self.dwell_hidden = self.share_hidden = False
        self.too_few = 0 < len(self.people) < k
        self.too_few_faces = 0 < len(self.faces) < k
        self.fragments_hidden = 0 < len(self.fragments) < k
        if self.people and not self.too_few:
            self._figures()
        if self.faces and not self.too_few_faces:
            self._face_figures()

    @property
    def all_charts(self) -> list[_Chart]:
        return self.charts + self.face_charts

    @property
    def suppressed(self) -> int:
        headline = 2 * self.dwell_hidden + self.share_hidden + self.too_few + self.too_few_faces + self.fragments_hidden
        return sum(chart.hidden() for chart in self.all_charts) + self.hidden_groups + headline

    # --- people ----------------------------------------------------------------------------------

    def _figures(self) -> None:
        people, k = self.people, self.k
        records = [p.record for p in people]
        self._headline()

        ages = _labels((label for label, _, _ in AGE_BUCKETS), (r.age_bucket for r in records))
        age, ages_hidden = _partition("age", "Age", "age bucket", ages, [r.age_bucket for r in records], k)
        genders = _labels(GENDERS, (r.gender for r in records))
        gender, genders_hidden = _partition("gender", "Gender", "gender", genders, [r.gender for r in records], k)
        emotions = _labels(EMOTIONS, (r.emotion for r in records))
        emotion, emotions_hidden = _partition(
            "emotion", "Emotion (fused over each person's views)", "emotion", emotions, [r.emotion for r in records], k
        )
        self.charts += self._over_time(emotions, emotions_hidden)
        self.charts += [age, gender, emotion]

        dwell = _histogram("dwell", "Dwell time", [r.dwell_seconds for r in records], k, "without a dwell time (still images)")
        attention = _histogram(
            "attention",
            "Attention time (facing the camera)",
            [r.attention_seconds for r in records],
            k,
            "without an attention time",
        )
        shares = [_share(r) for r in records]
        share = None
        if any(s is not None for s in shares):
            labels = [f"{10 * i}–{10 * (i + 1)}%" for i in range(10)]
            share = _partition(
                "attention_share",
                "Attention share (attention / dwell)",
                "share of the dwell time facing the camera",
                labels,
                [None if s is None else labels[min(int(s * 10), 9)] for s in shares],
                k,
                "without an attention or dwell time",
            )[0]
        for chart, note in (
            (dwell, "No dwell times (still images only)."),
            (attention, "Attention was not measured."),
            (share, None),
        ):
            if chart is not None:
                self.charts.append(chart)
            elif note:
                self.notes.append(note)

        if k > 1:
            self._groups(ages, ages_hidden, genders, genders_hidden)

    def _over_time(self, emotions: list[str], emotions_hidden: set[Any]) -> list[_Chart]:
        """People per time bin, stacked by emotion: a date axis for cameras and streams, video time
        for files. One partition of all people over both axes' bins and "without a time"."""
        k, people = self.k, self.people
        live = [p.wall for p in people if p.live and _finite(p.wall)]
        filed = [p for p in people if not p.live and _finite(p.record.first_seen)]
        axes: list[tuple[str, str, str, list[str], str]] = []  # name, title, axis label, bin labels, caption note
        if live:
            bounds, unit, labels, xlabel = _date_axis(live, k)
            note = "People of video files are in the next chart." if filed else ""
            axes.append(("people_by_date", f"People per {unit}, by emotion (first sighting)", xlabel, labels, note))
        if filed:
            width, labels, xlabel = _video_axis([p.record.first_seen for p in filed], k)
            files = len({p.record.source for p in filed})
            note = f"{files} videos pooled, each from its own start; pick one with --source." if files > 1 else ""
            axes.append(("people_by_video_time", "People by video time, by emotion (first sighting)", xlabel, labels, note))
        if not axes:
            self.notes.append("No times (still images only): there are no charts over time.")
            return []

        def key(p: _Person) -> tuple[str, int] | None:
            if p.live and _finite(p.wall):
                return ("people_by_date", bisect_right(bounds, p.wall) - 1)
            if not p.live and _finite(p.record.first_seen):
                return ("people_by_video_time", int(max(0.0, p.record.first_seen) // width))
            return None

        keys = [key(p) for p in people]
        bins = [(name, i) for name, _, _, labels, _ in axes for i in range(len(labels))]
        counts = Counter(keys)
        totals: dict[Any, int] = {b: counts.get(b, 0) for b in bins}
        totals[None] = counts.get(None, 0)
        bins_hidden = _hide(totals, k, [list(totals)], spare=[None])

        # The emotions of each bin; (None, e) holds the people without a time, never stated.
        cells = {(b, e): 0 for b in [*bins, None] for e in emotions}
        for key, p in zip(keys, people):
            cells[key, p.record.emotion] += 1
        lines = [[(b, e) for e in emotions] for b in bins if b not in bins_hidden]
        lines += [[(b, e) for b in [*bins, None]] for e in emotions if e not in emotions_hidden]
        lines.append(list(cells))
        forced = [(b, e) for (b, e) in cells if b is None or b in bins_hidden or e in emotions_hidden]
        hidden = _hide(cells, k, lines, forced, spare=[(b, UNKNOWN) for b in [*bins, None]])

        charts = []
        for number, (name, title, xlabel, labels, note) in enumerate(axes):
            mine = [(name, i) for i in range(len(labels))]
            charts.append(
                _Chart(
                    name,
                    title,
                    xlabel,
                    labels,
                    [None if b in bins_hidden else totals[b] for b in mine],
                    # The people without a time are stated (or hidden) once, under the first chart.
                    0 if number else None if None in bins_hidden else totals[None],
                    "without a time (still images)",
                    {e: [None if (b, e) in hidden else cells[b, e] for b in mine] for e in emotions},
                    note,
                )
            )
        return charts

    def _headline(self) -> None:
        k = self.k
        records = [p.record for p in self.people]
        dwells = [r.dwell_seconds for r in records if _finite(r.dwell_seconds)]
        attentions = [r.attention_seconds for r in records if _finite(r.attention_seconds)]
        attentive = sum(a > 0 for a in attentions)
        self.dwell_hidden = 0 < len(dwells) < k
        self.share_hidden = any(0 < n < k for n in (len(attentions), attentive, len(attentions) - attentive))
        self.headline = {
            "total_dwell_seconds": None if self.dwell_hidden or not dwells else math.fsum(dwells),
            "median_dwell_seconds": None if self.dwell_hidden or not dwells else statistics.median(dwells),
            "attentive_share": None if self.share_hidden or not attentions else attentive / len(attentions),
        }

    def _groups(self, ages: list[str], ages_hidden: set[Any], genders: list[str], genders_hidden: set[Any]) -> None:
        counts: dict[Hashable, int] = dict(Counter((p.record.age_bucket, p.record.gender) for p in self.people))
        cells = {(a, g): counts.get((a, g), 0) for a in ages for g in genders}
        lines = [[(a, g) for g in genders] for a in ages if a not in ages_hidden]
        lines += [[(a, g) for a in ages] for g in genders if g not in genders_hidden]
        lines.append(list(cells))
        forced = [(a, g) for (a, g) in cells if a in ages_hidden or g in genders_hidden]
        hidden = _hide(cells, self.k, lines, forced, spare=[(a, g) for (a, g) in cells if UNKNOWN in (a, g)])
        self.groups = [(a, g, n) for (a, g), n in cells.items() if n and (a, g) not in hidden]
        self.hidden_groups = sum(1 for key, n in cells.items() if n and key in hidden)

    # --- faces of still images -------------------------------------------------------------------

    def _face_figures(self) -> None:
        k, faces = self.k, self.faces
        ages = _labels((label for label, _, _ in AGE_BUCKETS), (f.age_bucket for f in faces))
        genders = _labels(GENDERS, (f.gender for f in faces))
        emotions = _labels(EMOTIONS, (f.emotion for f in faces))
        self.face_charts = [
            _partition("faces_age", "Faces: age", "age bucket", ages, [f.age_bucket for f in faces], k)[0],
            _partition("faces_gender", "Faces: gender", "gender", genders, [f.gender for f in faces], k)[0],
            _partition("faces_emotion", "Faces: emotion", "emotion", emotions, [f.emotion for f in faces], k)[0],
        ]

    # --- HTML ------------------------------------------------------------------------------------

    def data(self) -> dict[str, Any]:
        """Every number the page states; null where hidden."""
        data: dict[str, Any] = {
            "k": self.k,
            "selection": self.selection,
            "people": None if self.too_few else len(self.people),
            "fragments": None if self.fragments_hidden else len(self.fragments),
            "faces": None if self.too_few_faces else len(self.faces),
            "images": len(self.images),
            "sources": self.sources,
            "runs": self.runs,
            "suppressed": self.suppressed,
            **{key: None if v is None else round(v, 4) for key, v in self.headline.items()},
            "charts": {chart.name: chart.to_dict() for chart in self.all_charts},
        }
        if self.k > 1:
            data["groups"] = [{"age_bucket": a, "gender": g, "people": n} for a, g, n in self.groups]
            data["hidden_groups"] = self.hidden_groups
        return data

    def html(self, title: str, input_name: str, pngs: Mapping[str, bytes]) -> str:
        e = html.escape
        k = self.k
        generated = f"generated {time.strftime('%Y-%m-%d %H:%M')} by facelens {_version()}"
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
            f"<header><h1>{e(title)}</h1>",
            f'<p class="sub">From {e(input_name)} · {e(generated)}</p>',
        ]
        if self.selection:
            parts.append(f'<p class="sub" id="selection">Selected: {e(self.selection)}</p>')
        parts.append("</header>")
        parts.append(self._headline_html())
        if k > 1:
            parts.append(
                f'<p class="notice" id="k-anonymity">k-anonymity, k = {k}: no number here describes fewer than {k} '
                f"people{' or faces' if self.images else ''}. {self.suppressed} value{'s' if self.suppressed != 1 else ''} "
                f"{'are' if self.suppressed != 1 else 'is'} hidden: those of 1 to {k - 1}, and those that would "
                "let such a number be worked out by subtraction. "
                + (f"People are shown only as age and gender groups of at least {k}; " if self.records else "")
                + "no pictures.</p>"
            )
        if not self.records and not self.images:
            parts.append('<p class="empty" id="no-people">No people were recorded.</p>')
            if self.database:
                parts.append(
                    '<p class="note">A database keeps the people of videos, cameras and streams; the faces of still '
                    "images are in the run's JSON Lines file (--jsonl), which this command reports too.</p>"
                )
        if self.records:
            parts.append(self._people_section(pngs))
        if self.images:
            parts.append(self._faces_section(pngs))
        data = json.dumps(self.data(), ensure_ascii=False, separators=(",", ":"))
        # Inside <script>, "</script>" in a source name would end the block: escape <, > and & as JSON does.
        data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        parts += [
            f'<script type="application/json" id="facelens-report-data">{data}</script>',
            f"<script>{_CHECK_SCRIPT}</script>",
            "</body></html>",
        ]
        return "\n".join(parts) + "\n"

    def _people_section(self, pngs: Mapping[str, bytes]) -> str:
        k = self.k
        parts = ['<section id="people-section">']
        if self.images:
            parts.append("<h2>People in videos, cameras and streams</h2>")
        parts.append(
            f'<p class="note" id="counted">A person is someone seen for at least {COUNTED_MIN_SECONDS:g} s in at least '
            f"{COUNTED_MIN_FRAMES} frames; shorter sightings (glimpses, false detections, pieces of a broken track) "
            "are short fragments, counted apart and in no chart.</p>"
        )
        if not self.people:
            parts.append(
                '<p class="empty" id="no-people">No one was seen long enough to count as a person '
                f"(at least {COUNTED_MIN_SECONDS:g} s and {COUNTED_MIN_FRAMES} frames).</p>"
            )
        elif self.too_few:
            parts.append(
                f'<p class="empty" id="too-few">Fewer than {k} people were recorded: with k = {k} this report '
                "shows nothing about them.</p>"
            )
        else:
            parts.append(self._charts_html(self.charts, pngs))
            parts += [f'<p class="note">{html.escape(note)}</p>' for note in self.notes]
            parts.append(self._people_html() if k == 1 else self._groups_html())
        parts.append("</section>")
        return "".join(parts)

    def _faces_section(self, pngs: Mapping[str, bytes]) -> str:
        n, k = len(self.faces), self.k
        parts = ['<section id="faces-section"><h2>Faces in still images</h2>']
        images = f"{len(self.images)} still image{'s' if len(self.images) != 1 else ''}"
        if not n:
            parts.append(f'<p class="empty" id="no-faces">No faces in {images}.</p>')
        elif self.too_few_faces:
            parts.append(f'<p class="empty" id="too-few-faces">Fewer than {k} faces in {images}: with k = {k} this '
                         "report shows nothing about them.</p>")
        else:
            parts.append(
                f'<p class="note">Each face of each image counts once: the same person in two photos counts twice. '
                f"{n} face{'s' if n != 1 else ''} in {images}.</p>"
            )
            parts.append(self._charts_html(self.face_charts, pngs))
        parts.append("</section>")
        return "".join(parts)

    def _charts_html(self, charts: list[_Chart], pngs: Mapping[str, bytes]) -> str:
        return '<div class="charts">' + "".join(self._chart_html(chart, pngs[chart.name]) for chart in charts) + "</div>"

    def _headline_html(self) -> str:
        def stat(key: str, value: str, label: str) -> str:
            return (
                f'<div class="stat" data-figure="{key}"><span class="value">{html.escape(value)}</span>'
                f'<span class="label">{html.escape(label)}</span></div>'
            )

        def shown(value: float | None, hidden: bool, fmt: Any) -> str:
            return "hidden" if hidden else "—" if value is None else fmt(value)

        k = self.k
        stats = []
        if self.records or not self.images:
            n = len(self.people)
            stats.append(
                stat("people", f"fewer than {k}" if self.too_few else str(n), "person" if n == 1 and not self.too_few else "people")
            )
            if self.records:
                stats.append(
                    stat(
                        "fragments",
                        f"fewer than {k}" if self.fragments_hidden else str(len(self.fragments)),
                        "short fragments, not counted",
                    )
                )
            if self.people and not self.too_few:
                head = self.headline
                stats += [
                    stat("total_dwell", shown(head["total_dwell_seconds"], self.dwell_hidden, _duration), "total dwell"),
                    stat("median_dwell", shown(head["median_dwell_seconds"], self.dwell_hidden, _duration), "median dwell"),
                    stat(
                        "attentive_share",
                        shown(head["attentive_share"], self.share_hidden, lambda v: f"{100 * v:.0f}%"),
                        "attentive (faced the camera)",
                    ),
                ]
            stats.append(stat("sources", str(self.sources), "source" if self.sources == 1 else "sources"))
        if self.images:
            n = len(self.faces)
            images = len(self.images)
            stats.append(
                stat(
                    "faces",
                    f"fewer than {k}" if self.too_few_faces else str(n),
                    f"face{'s' if n != 1 or self.too_few_faces else ''} in {images} still image{'s' if images != 1 else ''}",
                )
            )
        if self.runs is not None:
            stats.append(stat("runs", str(self.runs), "run" if self.runs == 1 else "runs"))
        return '<section class="headline">' + "".join(stats) + "</section>"

    def _chart_html(self, chart: _Chart, png: bytes) -> str:
        e = html.escape
        notes = []
        hidden = chart.hidden()
        if hidden:
            notes.append(f"{hidden} value{'s' if hidden != 1 else ''} hidden (k = {self.k})")
        if chart.missing is None:
            notes.append(f"not in the chart: people {e(chart.missing_text)}, number hidden")
        elif chart.missing:
            notes.append(f"not in the chart: {chart.missing} {'person' if chart.missing == 1 else 'people'} {e(chart.missing_text)}")
        if chart.note:
            notes.append(e(chart.note))
        caption = f"<figcaption>{' · '.join(notes)}</figcaption>" if notes else ""
        source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return (
            f'<figure class="chart" id="figure-{chart.name}"><img class="chart" id="chart-{chart.name}" '
            f'alt="{e(chart.title)}" src="{source}">{caption}</figure>'
        )

    def _people_html(self) -> str:
        e = html.escape
        runs = self.database
        head = (
            ("<th class=num>run</th>" if runs else "")
            + "<th>source</th><th class=num>track</th><th class=num>first seen</th><th class=num>last seen</th>"
            "<th class=num>dwell</th><th class=num>attention</th><th>age bucket</th><th class=num>age</th>"
            "<th>gender</th><th>emotion</th><th>minor</th><th>picture</th>"
        )
        rows = []
        for person in self.people:
            p = person.record
            settled_age = p.age_bucket != UNKNOWN and _finite(p.age)
            age = "—"
            if settled_age:
                age = f"{p.age:.1f}" + (f" ± {p.age_uncertainty:.1f}" if _finite(p.age_uncertainty) else "")
            gender = p.gender
            if p.gender != UNKNOWN and _finite(p.gender_confidence):
                gender += f" ({100 * p.gender_confidence:.0f}%)"
            minor = "—" if p.minor is None or p.age_bucket == UNKNOWN else "yes" if p.minor else "no"
            picture = ""
            if p.thumbnail_jpeg:
                jpeg = base64.b64encode(p.thumbnail_jpeg).decode("ascii")
                picture = f'<img class="thumb" alt="" src="data:image/jpeg;base64,{jpeg}">'
            if person.live and _finite(person.wall):
                first, last = _moment(person.wall), "—"
                if _finite(p.first_seen) and _finite(p.last_seen):
                    last = _moment(person.wall + p.last_seen - p.first_seen)
            else:
                first, last = _clock(p.first_seen), _clock(p.last_seen)
            name = p.source if person.live else Path(p.source).name or p.source
            cells = [
                f"<td class=num>{person.run}</td>" if runs else "",
                f'<td class="source" title="{e(p.source)}">{e(name)}</td>',
                f"<td class=num>{p.track_id}</td>",
                f"<td class=num>{first}</td>",
                f"<td class=num>{last}</td>",
                f"<td class=num>{_seconds(p.dwell_seconds)}</td>",
                f"<td class=num>{_seconds(p.attention_seconds)}</td>",
                f"<td>{e(p.age_bucket)}</td>",
                f"<td class=num>{age}</td>",
                f"<td>{e(gender)}</td>",
                f"<td>{e(p.emotion)}</td>",
                f"<td>{minor}</td>",
                f"<td>{picture}</td>",
            ]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        left_out = ""
        if self.fragments:
            n = len(self.fragments)
            left_out = f"<p class=note>{n} short fragment{'s' if n != 1 else ''} not listed.</p>"
        return (
            '<section><h2>People</h2><p class="note">Fused values are shown once settled: an age under a known '
            "age bucket, a gender's confidence with a known gender. Times of cameras and streams are local "
            'date-times, those of video files positions in the video.</p><table class="people" id="people"><thead><tr>'
            + head
            + "</tr></thead><tbody>"
            + "\n".join(rows)
            + "</tbody></table>"
            + left_out
            + "</section>"
        )

    def _groups_html(self) -> str:
        e = html.escape
        n = self.hidden_groups
        left_out = f"<p>{n} group{'s' if n != 1 else ''} left out (k = {self.k}).</p>" if n else ""
        if not self.groups:
            return (
                f"<section><h2>Groups of at least {self.k} people</h2><p>No (age bucket, gender) group can be listed "
                f"without revealing one of fewer than {self.k} people.</p>{left_out}</section>"
            )
        rows = "".join(f"<tr><td>{e(a)}</td><td>{e(g)}</td><td class=num>{n}</td></tr>" for a, g, n in self.groups)
        return (
            f'<section><h2>Groups of at least {self.k} people</h2><table class="groups" id="groups"><thead>'
            "<tr><th>age bucket</th><th>gender</th><th class=num>people</th></tr></thead><tbody>"
            f"{rows}</tbody></table>{left_out}</section>"
        )


def _share(p: PersonRecord) -> float | None:
    """Attention / dwell, 0 to 1; None when either is unknown or the dwell is 0."""
    attention, dwell = p.attention_seconds, p.dwell_seconds
    if attention is None or dwell is None or not (math.isfinite(attention) and math.isfinite(dwell)) or dwell <= 0:
        return None
    return min(1.0, max(0.0, attention / dwell))


def _version() -> str:
    # Lazily: facelens/__init__ may come to import this module before it sets __version__.
    from . import __version__

    return __version__


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _clock(seconds: float | None) -> str:
    """Video position as m:ss.s (h:mm:ss.s from an hour on)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    minutes, rest = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def _moment(t: float) -> str:
    """Local date and time."""
    return f"{datetime.fromtimestamp(t):%Y-%m-%d %H:%M:%S}"


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if _finite(value) else "—"


# --- charts --------------------------------------------------------------------------------------


def _figure(chart: _Chart) -> Figure:
    """The chart on its own Figure and Agg canvas, never pyplot's global state.

    Hidden values get no bar, only the word "hidden" at their place; the value axis fits the
    largest shown bar."""
    # Here: matplotlib takes ~0.5 s to import, and a report on the page or a failed option needs none.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(_WIDTH, _HEIGHT), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    count = len(chart.labels)
    xs = list(range(count))
    totals = [v or 0 for v in chart.values]
    if chart.series:
        bottoms = [0] * count
        for label, values in chart.series.items():
            heights = [v or 0 for v in values]
            if any(heights):
                ax.bar(xs, heights, bottom=bottoms, color=_EMOTION_COLORS.get(label, "#7fb3d5"), label=label, width=0.8)
                bottoms = [b + h for b, h in zip(bottoms, heights)]
        rest = [h or 0 for h in chart.hidden_part()]
        if any(rest):  # the known size of the hidden parts of shown bars
            ax.bar(xs, rest, bottom=bottoms, color=_HIDDEN_COLOR, label="hidden", width=0.8)
        if any(totals):
            ax.legend(fontsize=8, title="emotion", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    else:
        ax.bar(xs, totals, color=BAR_COLOR, width=0.8)
    small = 7 if count > _LABELLED_BARS else 8
    for i, value in enumerate(chart.values):
        if value is None:
            # At the foot of the axis, in axis units: no height that could pass for a count.
            ax.text(i, 0.02, "hidden", transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
                    fontsize=small, color=_TEXT_COLOR)
        elif value and count <= _LABELLED_BARS:
            ax.annotate(str(value), (i, value), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    top = max(totals, default=0)
    ax.set_ylim(0, max(top, 1) * 1.12)
    if top == 0:
        ax.set_yticks([0])
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, math.ceil(count / 12))
    long = count > 8 or max((len(label) for label in chart.labels), default=0) * count > 60
    ax.set_xticks(xs[::step], chart.labels[::step], fontsize=8, rotation=30 if long else 0,
                  ha="right" if long else "center", rotation_mode="anchor")
    if chart.series:  # a lone time bin is no wider than one of six
        middle, half = (count - 1) / 2, max(count, _MIN_TIME_BINS) / 2
        ax.set_xlim(middle - half, middle + half)
    ax.set_title(chart.title, fontsize=11)
    ax.set_xlabel(chart.xlabel, fontsize=9)
    ax.set_ylabel("faces" if chart.name.startswith("faces") else "people", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    # Fixed margins in inches (a constrained layout would draw every chart twice): room for the
    # value axis, the title, slanted labels, and the legend of stacked bars.
    right = 1.25 if chart.series and any(totals) else 0.15
    bottom = 0.75 if long else 0.5
    figure.subplots_adjust(left=0.62 / _WIDTH, right=1 - right / _WIDTH, bottom=bottom / _HEIGHT, top=1 - 0.32 / _HEIGHT)
    return figure


def _draw(chart: _Chart) -> bytes:
    """The chart as PNG."""
    buffer = io.BytesIO()
    _figure(chart).savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# Nothing may be loaded: the page is one file, charts included, and must work offline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232b; background: #fff;
       max-width: 1280px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; }
.sub, figcaption, .note, .stat .label { color: #5b6570; }
.sub { margin: 2px 0; }
.headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 12px; margin: 20px 0; }
.stat { border: 1px solid #dde2e8; border-radius: 8px; padding: 10px 14px; }
.stat .value { display: block; font-size: 1.35em; font-weight: 600; white-space: nowrap; }
.notice { background: #fff6e0; border: 1px solid #f0d890; border-radius: 8px; padding: 10px 14px; }
.empty { font-size: 1.2em; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
/* An odd last chart takes the whole row: no empty cell. */
.charts > figure:last-child:nth-child(odd) { grid-column: 1 / -1; }
.charts > figure:last-child:nth-child(odd) img.chart { max-width: calc(50% - 8px); }
@media (max-width: 1000px) {
  .charts { grid-template-columns: minmax(0, 1fr); }
  .charts > figure:last-child:nth-child(odd) img.chart { max-width: 100%; }
}
figure.chart { margin: 0; border: 1px solid #dde2e8; border-radius: 8px; padding: 8px; }
img.chart { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: .9em; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: .9em; }
th, td { border-bottom: 1px solid #e6e9ee; padding: 4px 8px; text-align: left; vertical-align: middle; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
table.people td { white-space: nowrap; }
table.people td.source { white-space: normal; overflow-wrap: anywhere; }
img.thumb { height: 48px; border-radius: 4px; }
@media print { .charts { grid-template-columns: 1fr 1fr; } }
"""

# Marks each chart image with whether it decoded (data-rendered) and the page with the tally: a
# broken chart shows in any browser's DOM, and headless tests read it.
_CHECK_SCRIPT = """
addEventListener("load", () => {
  const charts = document.querySelectorAll("img.chart");
  let ok = 0;
  for (const img of charts) {
    const rendered = img.complete && img.naturalWidth > 0;
    img.dataset.rendered = String(rendered);
    if (rendered) ok += 1;
  }
  document.body.dataset.chartsRendered = ok + "/" + charts.length;
});
"""
