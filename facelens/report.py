"""One self-contained HTML page, with PNG charts, about the people of a database or JSON Lines file.

`build_report` reads a people database (`facelens.db.Database`) or a JSON Lines file of person
records (`facelens.db.person_to_dict`), told apart by content, and writes `report.html` and
`charts/<name>.png`. The page has its CSS inline and its charts as base64 PNG data URIs, and no
URL at all: it works offline, and its Content-Security-Policy lets it load nothing. Every number
it states is also in its JSON block `<script type="application/json" id="facelens-report-data">`
(null where a value is hidden).

k-anonymity (`k` > 1): no number in the page describes fewer than `k` people.

- Each chart splits all people into bins (bars, histogram bins, minutes, and a "not in the chart"
  bin, e.g. people of still images have no dwell time). A bin of 1 to k-1 people is hidden. As the
  chart's total is stated too, the hidden bins of a chart must hold 0 or at least k people
  together: until they do, the smallest shown bin is hidden as well, so no hidden count can be
  worked out by subtraction.
- Emotion over time refines people per minute: a minute hidden there is hidden here whole, and in
  each shown minute the same rule applies to its emotions.
- The people table becomes a table of (age bucket, gender) groups. A group is listed only if it has
  at least k people and its age bucket and gender bars are shown; and, by the same rule, along each
  shown age bucket, each shown gender and the whole table the groups left out hold 0 or >= k people.
- Headline figures over part of the people (dwell over people with a dwell time, the share of
  attentive people) are hidden when that part, or the attentive or the inattentive, number 1 to k-1.
- With 1 to k-1 people in all, the page says only that. Thumbnails are never shown.

Zero counts are shown. The rule protects each stated number and what subtraction within a chart,
or between a chart and its refinement, reveals; it is no full audit of what combining all charts
could reveal.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .db import Database, PersonRecord, read_jsonl_people
from .errors import FacelensError
from .files import write_atomically, write_pngs
from .fuse import AGE_BUCKETS
from .types import EMOTIONS, GENDERS

__all__ = ["CHART_NAMES", "Report", "build_report"]

SQLITE_MAGIC = b"SQLite format 3\x00"
UNKNOWN = "unknown"

CHART_NAMES: tuple[str, ...] = (
    "people_per_minute",
    "age",
    "gender",
    "emotion_over_time",
    "dwell",
    "attention",
    "attention_share",
)
"""Every chart the page may have, in page order; each is `charts/<name>.png`."""

BAR_COLOR = "#3366cc"
_HIDDEN_COLOR = "#9aa3ad"
_EMOTION_COLORS = {
    "neutral": "#9e9e9e",
    "happy": "#f2b400",
    "sad": "#3f6fb5",
    "surprise": "#8e44ad",
    "anger": "#d0342c",
    UNKNOWN: "#d9d9d9",
}
_MAX_TIME_BINS = 120
_MINUTES_PER_BIN = (1, 5, 15, 60, 240, 1440)
_MAX_HISTOGRAM_BINS = 12
_SECONDS_PER_BIN = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
_SNIFF_BYTES = 1 << 20
_SNIFF_LINES = 64


@dataclass(frozen=True, slots=True)
class Report:
    """What `build_report` wrote."""

    html: Path
    """The page, `out_dir/report.html`."""
    charts: tuple[Path, ...]
    """The charts drawn, `out_dir/charts/<name>.png`, in page order (none without people)."""
    people: int
    """People in the input (also when k-anonymity keeps the page from saying it)."""
    suppressed: int
    """Values the page hides for k-anonymity: bars, bins, cells, groups and headline figures."""


def build_report(
    source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, k: int = 1, title: str | None = None
) -> Report:
    """Write `out_dir/report.html` (one self-contained file) and `out_dir/charts/<name>.png` about
    the people of `source`, a facelens database or JSON Lines file.

    With `k` > 1 no number in the page describes fewer than `k` people (see the module docstring
    for the exact rule) and the people table becomes a table of (age bucket, gender) groups.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise FacelensError(f"k must be a whole number >= 1, not {k!r}")
    path = Path(source)
    people, runs = _load(path)
    page = _Page(people, runs, k)

    out = Path(out_dir)
    pngs: dict[str, bytes] = {chart.name: _draw(chart) for chart in page.charts}
    # An earlier report's chart in the same folder must not pass for one of this report (nor outlive a stricter k).
    written = write_pngs(out / "charts", CHART_NAMES, pngs)
    page_path = out / "report.html"
    text = page.html(title if title is not None else f"facelens report: {path.name}", path.name, pngs)
    write_atomically(page_path, Path.write_text, text, "utf-8")
    return Report(page_path, tuple(written), len(people), page.suppressed)


# --- input ---------------------------------------------------------------------------------------


def _load(path: Path) -> tuple[list[PersonRecord], int | None]:
    """The people of the file, and its number of runs (None for JSON Lines)."""
    try:
        with open(path, "rb") as file:
            head = file.read(_SNIFF_BYTES)
    except OSError as error:
        raise FacelensError(f"{path}: cannot read ({error.strerror or error})") from None
    if head.startswith(SQLITE_MAGIC):
        return _read_database(path)
    if not _has_json_object(head):
        raise FacelensError(f"{path}: neither a facelens database nor a JSON Lines file")
    people, _ = read_jsonl_people(path)
    return people, None


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


def _read_database(path: Path) -> tuple[list[PersonRecord], int]:
    # Database() creates its tables in an SQLite file without any: look first, read-only, so a
    # report never changes a foreign file.
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as error:
        raise FacelensError(f"{path}: cannot open database ({error})") from None
    if not tables:
        raise FacelensError(f"{path}: not a facelens database (it has no tables)")
    with Database(path) as db:
        try:
            return db.people(), len(db.runs())
        except sqlite3.Error as error:
            raise FacelensError(f"{path}: cannot read database ({error})") from None


# --- figures -------------------------------------------------------------------------------------


@dataclass
class _Chart:
    """One chart: bars over `labels`, or stacked bars when `series` is set; None marks a hidden value."""

    name: str
    title: str
    xlabel: str
    labels: list[str]
    values: list[int | None]
    """Bar heights; for stacked bars the known height of each bar's hidden part (0 if none)."""
    missing: int | None = 0
    """People the chart cannot place (e.g. without video time)."""
    missing_text: str = ""
    series: dict[str, list[int | None]] = field(default_factory=dict)

    def hidden(self) -> int:
        """How many values the chart hides."""
        if self.series:
            return sum(v is None for values in self.series.values() for v in values)
        return sum(v is None for v in self.values) + (self.missing is None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"title": self.title, "labels": self.labels}
        if self.series:
            data["series"] = self.series
            data["hidden_part"] = self.values
        else:
            data["values"] = self.values
            data["missing"] = self.missing
        return data


def _hide(
    counts: Mapping[Hashable, int], k: int, lines: Iterable[Sequence[Hashable]], forced: Iterable[Hashable] = ()
) -> set[Hashable]:
    """Keys of the counts to hide: the `forced` ones, those of 1 to k-1 people, then along each line
    (counts whose sum the page states) the smallest shown ones until the line's hidden counts add
    up to 0 or at least k."""
    hidden = set(forced) | {key for key, n in counts.items() if 0 < n < k}
    lines = [list(line) for line in lines]
    changed = True
    while changed:
        changed = False
        for line in lines:
            if 0 < sum(counts[key] for key in line if key in hidden) < k:
                shown = [key for key in line if key not in hidden and counts[key] > 0]
                if shown:
                    hidden.add(min(shown, key=lambda key: counts[key]))
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
    for a person the chart cannot place. Also returns the hidden labels."""
    counts = Counter(keys)
    bins: dict[Any, int] = {label: counts.get(label, 0) for label in labels}
    bins[None] = counts.get(None, 0)
    hidden = _hide(bins, k, [list(bins)])
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


class _Page:
    """The figures of a report, k-anonymized, and their HTML."""

    def __init__(self, people: list[PersonRecord], runs: int | None, k: int) -> None:
        self.people = people
        self.runs = runs
        self.k = k
        self.sources = len({p.source for p in people})
        self.charts: list[_Chart] = []
        self.notes: list[str] = []
        self.groups: list[tuple[str, str, int]] = []
        self.hidden_groups = 0
        self.headline: dict[str, float | None] = {}
        self.dwell_hidden = self.share_hidden = False
        self.too_few = 0 < len(people) < k
        if people and not self.too_few:
            self._figures()

    @property
    def suppressed(self) -> int:
        if self.too_few:
            return 1  # the number of people itself
        headline = 2 * self.dwell_hidden + self.share_hidden  # total and median dwell, attentive share
        return sum(chart.hidden() for chart in self.charts) + self.hidden_groups + headline

    def _figures(self) -> None:
        people, k = self.people, self.k
        self._headline()

        timed = [p.first_seen if _finite(p.first_seen) else None for p in people]
        minute_labels: list[str] = []
        minute_keys: list[str | None] = []
        minutes_hidden: set[Any] = set()
        per_minute = None
        if any(t is not None for t in timed):
            minutes = [math.floor(t / 60) for t in timed if t is not None]
            first, last = min(minutes), max(minutes)
            step = next((m for m in _MINUTES_PER_BIN if (last - first) // m < _MAX_TIME_BINS), _MINUTES_PER_BIN[-1])
            start = first - first % step
            minute_labels = [str(m) for m in range(start, last + 1, step)]
            minute_keys = [None if t is None else str(start + (math.floor(t / 60) - start) // step * step) for t in timed]
            what = "minute" if step == 1 else f"{step} minutes"
            per_minute, minutes_hidden = _partition(
                "people_per_minute",
                f"People per {what} (by first sighting)",
                f"{'minute' if step == 1 else 'start minute'} of the video",
                minute_labels,
                minute_keys,
                k,
                "without video time (still images)",
            )
            self.charts.append(per_minute)
        else:
            self.notes.append("No video times (still images only): there are no charts over time.")

        ages = _labels((label for label, _, _ in AGE_BUCKETS), (p.age_bucket for p in people))
        age, ages_hidden = _partition("age", "Age", "age bucket", ages, [p.age_bucket for p in people], k)
        genders = _labels(GENDERS, (p.gender for p in people))
        gender, genders_hidden = _partition("gender", "Gender", "gender", genders, [p.gender for p in people], k)
        self.charts += [age, gender]

        if per_minute is not None:
            self.charts.append(self._emotion_over_time(minute_labels, minute_keys, minutes_hidden, per_minute))

        dwell = _histogram("dwell", "Dwell time", [p.dwell_seconds for p in people], k, "without dwell time (still images)")
        attention = _histogram(
            "attention",
            "Attention time (facing the camera)",
            [p.attention_seconds for p in people],
            k,
            "without attention time",
        )
        shares = [_share(p) for p in people]
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
                "without attention or dwell time",
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

    def _headline(self) -> None:
        k = self.k
        dwells = [p.dwell_seconds for p in self.people if _finite(p.dwell_seconds)]
        attentions = [p.attention_seconds for p in self.people if _finite(p.attention_seconds)]
        attentive = sum(a > 0 for a in attentions)
        self.dwell_hidden = 0 < len(dwells) < k
        self.share_hidden = any(0 < n < k for n in (len(attentions), attentive, len(attentions) - attentive))
        self.headline = {
            "total_dwell_seconds": None if self.dwell_hidden or not dwells else math.fsum(dwells),
            "median_dwell_seconds": None if self.dwell_hidden or not dwells else statistics.median(dwells),
            "attentive_share": None if self.share_hidden or not attentions else attentive / len(attentions),
        }

    def _emotion_over_time(
        self, minutes: list[str], keys: list[str | None], minutes_hidden: set[Any], per_minute: _Chart
    ) -> _Chart:
        emotions = _labels(EMOTIONS, (p.emotion for p in self.people))
        counts = Counter((key, p.emotion) for key, p in zip(keys, self.people) if key is not None)
        cells = {(m, e): counts.get((m, e), 0) for m in minutes for e in emotions}
        shown_minutes = [m for m in minutes if m not in minutes_hidden]
        lines = [[(m, e) for e in emotions] for m in shown_minutes]
        if None not in minutes_hidden:  # then the number of people with a video time is stated
            lines.append(list(cells))
        forced = [(m, e) for m in minutes if m in minutes_hidden for e in emotions]
        hidden = _hide(cells, self.k, lines, forced)
        series = {e: [None if (m, e) in hidden else cells[m, e] for m in minutes] for e in emotions}
        rest = []
        for i, m in enumerate(minutes):
            total = per_minute.values[i]
            shown = sum(v or 0 for v in (series[e][i] for e in emotions))
            # The hidden part's height is known only where the minute's total is shown.
            rest.append(None if total is None else total - shown)
        return _Chart(
            "emotion_over_time",
            "Emotion over time (people by first sighting)",
            per_minute.xlabel,
            minutes,
            rest,
            series=series,
        )

    def _groups(self, ages: list[str], ages_hidden: set[Any], genders: list[str], genders_hidden: set[Any]) -> None:
        counts: dict[Hashable, int] = dict(Counter((p.age_bucket, p.gender) for p in self.people))
        cells = {(a, g): counts.get((a, g), 0) for a in ages for g in genders}
        lines = [[(a, g) for g in genders] for a in ages if a not in ages_hidden]
        lines += [[(a, g) for a in ages] for g in genders if g not in genders_hidden]
        lines.append(list(cells))
        forced = [(a, g) for (a, g) in cells if a in ages_hidden or g in genders_hidden]
        hidden = _hide(cells, self.k, lines, forced)
        self.groups = [(a, g, n) for (a, g), n in cells.items() if n and (a, g) not in hidden]
        self.hidden_groups = sum(1 for key, n in cells.items() if n and key in hidden)

    # --- HTML ------------------------------------------------------------------------------------

    def data(self) -> dict[str, Any]:
        """Every number the page states; null where hidden."""
        data: dict[str, Any] = {
            "k": self.k,
            "people": None if self.too_few else len(self.people),
            "sources": self.sources,
            "runs": self.runs,
            "suppressed": self.suppressed,
            **{key: None if v is None else round(v, 4) for key, v in self.headline.items()},
            "charts": {chart.name: chart.to_dict() for chart in self.charts},
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
            f'<p class="sub">From {e(input_name)} · {e(generated)}</p></header>',
        ]
        parts.append(self._headline_html())
        if k > 1:
            parts.append(
                f'<p class="notice" id="k-anonymity">k-anonymity, k = {k}: no number here describes fewer than {k} '
                f"people. {self.suppressed} value{'s' if self.suppressed != 1 else ''} "
                f"{'are' if self.suppressed != 1 else 'is'} hidden: those of 1 to {k - 1} people, and those that would "
                "let such a number be worked out by subtraction. People are shown only as age and gender groups "
                f"of at least {k}; no pictures.</p>"
            )
        if not self.people:
            parts.append('<p class="empty" id="no-people">No people were recorded.</p>')
        elif self.too_few:
            parts.append(
                f'<p class="empty" id="too-few">Fewer than {k} people were recorded: with k = {k} this report '
                "shows nothing about them.</p>"
            )
        else:
            parts.append('<section class="charts">')
            for chart in self.charts:
                parts.append(self._chart_html(chart, pngs[chart.name]))
            parts.append("</section>")
            parts += [f'<p class="note">{e(note)}</p>' for note in self.notes]
            parts.append(self._people_html() if k == 1 else self._groups_html())
        data = json.dumps(self.data(), ensure_ascii=False, separators=(",", ":"))
        # Inside <script>, "</script>" in a source name would end the block: escape <, > and & as JSON does.
        data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        parts += [
            f'<script type="application/json" id="facelens-report-data">{data}</script>',
            f"<script>{_CHECK_SCRIPT}</script>",
            "</body></html>",
        ]
        return "\n".join(parts) + "\n"

    def _headline_html(self) -> str:
        def stat(key: str, value: str, label: str) -> str:
            return (
                f'<div class="stat" data-figure="{key}"><span class="value">{html.escape(value)}</span>'
                f'<span class="label">{html.escape(label)}</span></div>'
            )

        def shown(value: float | None, hidden: bool, fmt: Any) -> str:
            return "hidden" if hidden else "—" if value is None else fmt(value)

        n = len(self.people)
        hidden = self.too_few
        stats = [stat("people", f"fewer than {self.k}" if hidden else str(n), "person" if n == 1 and not hidden else "people")]
        if self.people and not hidden:
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
        if self.runs is not None:
            stats.append(stat("runs", str(self.runs), "run" if self.runs == 1 else "runs"))
        return '<section class="headline">' + "".join(stats) + "</section>"

    def _chart_html(self, chart: _Chart, png: bytes) -> str:
        e = html.escape
        caption = e(chart.title)
        hidden = chart.hidden()
        if hidden:
            caption += f" · {hidden} value{'s' if hidden != 1 else ''} hidden (k = {self.k})"
        if chart.missing is None:
            caption += f" · not in the chart: people {e(chart.missing_text)}, number hidden"
        elif chart.missing:
            caption += (
                f" · not in the chart: {chart.missing} {'person' if chart.missing == 1 else 'people'} {e(chart.missing_text)}"
            )
        source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return (
            f'<figure class="chart" id="figure-{chart.name}"><img class="chart" id="chart-{chart.name}" '
            f'alt="{e(chart.title)}" src="{source}"><figcaption>{caption}</figcaption></figure>'
        )

    def _people_html(self) -> str:
        e = html.escape
        head = (
            "<tr><th>source</th><th class=num>track</th><th class=num>first seen</th><th class=num>last seen</th>"
            "<th class=num>dwell</th><th class=num>attention</th><th>age bucket</th><th class=num>age</th>"
            "<th>gender</th><th>emotion</th><th>minor</th><th>picture</th></tr>"
        )
        rows = []
        for p in self.people:
            age = "—" if not _finite(p.age) else f"{p.age:.1f}"
            if _finite(p.age) and _finite(p.age_uncertainty):
                age += f" ± {p.age_uncertainty:.1f}"
            gender = p.gender + (f" ({100 * p.gender_confidence:.0f}%)" if _finite(p.gender_confidence) else "")
            minor = "—" if p.minor is None else "yes" if p.minor else "no"
            picture = ""
            if p.thumbnail_jpeg:
                jpeg = base64.b64encode(p.thumbnail_jpeg).decode("ascii")
                picture = f'<img class="thumb" alt="" src="data:image/jpeg;base64,{jpeg}">'
            cells = [
                f"<td>{e(p.source)}</td>",
                f"<td class=num>{p.track_id}</td>",
                f"<td class=num>{_clock(p.first_seen)}</td>",
                f"<td class=num>{_clock(p.last_seen)}</td>",
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
        return (
            '<section><h2>People</h2><table class="people" id="people"><thead>'
            + head
            + "</thead><tbody>"
            + "\n".join(rows)
            + "</tbody></table></section>"
        )

    def _groups_html(self) -> str:
        e = html.escape
        rows = "".join(f"<tr><td>{e(a)}</td><td>{e(g)}</td><td class=num>{n}</td></tr>" for a, g, n in self.groups)
        left_out = (
            f"<p>{self.hidden_groups} group{'s' if self.hidden_groups != 1 else ''} left out (k = {self.k}).</p>"
            if self.hidden_groups
            else ""
        )
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


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if _finite(value) else "—"


# --- charts --------------------------------------------------------------------------------------


def _draw(chart: _Chart) -> bytes:
    """The chart as PNG; drawn on its own Figure and Agg canvas, never pyplot's global state."""
    figure = Figure(figsize=(6.4, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    xs = list(range(len(chart.labels)))
    if chart.series:
        tops = [0.0] * len(xs)
        for label, values in chart.series.items():
            heights = [v or 0 for v in values]
            if any(heights):
                ax.bar(xs, heights, bottom=tops, color=_EMOTION_COLORS.get(label, "#7fb3d5"), label=label, width=0.8)
                tops = [t + h for t, h in zip(tops, heights)]
        known = [v or 0 for v in chart.values]
        ax.bar(xs, known, bottom=tops, color="none", edgecolor=_HIDDEN_COLOR, hatch="///", linewidth=0, width=0.8)
        tops = [t + h for t, h in zip(tops, known)]
        ceiling = max([*tops, 1.0]) * 1.15
        for i, v in enumerate(chart.values):
            if v is None:  # a hidden minute: its height is not known either
                ax.bar(i, ceiling - tops[i], bottom=tops[i], color="none", edgecolor=_HIDDEN_COLOR, hatch="///", linewidth=0)
        if any(any(v for v in values) for values in chart.series.values()):
            ax.legend(fontsize=8, ncols=3, loc="upper right", frameon=False)
        ax.set_ylim(0, ceiling * 1.25)  # room for the legend
    else:
        heights = [v or 0 for v in chart.values]
        bars = ax.bar(xs, heights, color=BAR_COLOR, width=0.8)
        ceiling = max([*heights, 1]) * 1.15
        hidden = [i for i, v in enumerate(chart.values) if v is None]
        if hidden:
            ax.bar(hidden, [ceiling] * len(hidden), color="none", edgecolor=_HIDDEN_COLOR, hatch="///", linewidth=0)
        if len(xs) <= 30:
            ax.bar_label(bars, labels=[str(v) if v else "" for v in chart.values], fontsize=8, padding=2)
            for i in hidden:
                ax.text(i, ceiling / 2, "hidden", rotation=90, ha="center", va="center", fontsize=8, color="#4a525b")
        ax.set_ylim(0, ceiling)
    step = max(1, math.ceil(len(xs) / 16))
    ax.set_xticks(xs[::step], chart.labels[::step], fontsize=8, rotation=30 if len(xs) > 8 else 0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(chart.title, fontsize=11)
    ax.set_xlabel(chart.xlabel, fontsize=9)
    ax.set_ylabel("people", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# Nothing may be loaded: the page is one file, charts included, and must work offline.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232b; background: #fff;
       max-width: 1280px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; }
.sub, figcaption, .note, .stat .label { color: #5b6570; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 20px 0; }
.stat { border: 1px solid #dde2e8; border-radius: 8px; padding: 10px 14px; }
.stat .value { display: block; font-size: 1.6em; font-weight: 600; }
.notice { background: #fff6e0; border: 1px solid #f0d890; border-radius: 8px; padding: 10px 14px; }
.empty { font-size: 1.2em; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid #dde2e8; border-radius: 8px; padding: 8px; }
img.chart { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: .9em; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: .9em; }
th, td { border-bottom: 1px solid #e6e9ee; padding: 4px 8px; text-align: left; vertical-align: middle; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
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
