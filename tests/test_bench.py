"""facelens bench --streams: real-time MJPEG streams of the shared videos on loopback, one facelens process on all."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import VIDEOS
from typer.testing import CliRunner

from facelens.analyzer import Analyzer
from facelens.bench.mjpeg import StreamServers
from facelens.bench.streams import peak_rss_per_extra_stream, run_streams
from facelens.cli import app
from facelens.people import PeopleConfig
from facelens.sources import Reconnect, open_source

CLIPS = sorted(str(p) for p in VIDEOS.glob("*.mp4"))


def test_streams_are_720p_from_their_own_videos_and_the_server_process_ends() -> None:
    with StreamServers(CLIPS, 5, seconds=1) as servers:
        process = servers._process
        assert servers.urls and all(
            url.startswith("http://127.0.0.1:") for url in servers.urls
        )
        # Stream 4 plays the first video again, from another moment.
        assert [name.split(" +")[0] for name in servers.names] == [
            Path(c).stem for c in CLIPS
        ] + [Path(CLIPS[0]).stem]
        assert servers.names[0] != servers.names[4]
        with open_source(servers.urls[3], reconnect=Reconnect(retry_for=0)) as source:
            frames = [frame for frame, _ in zip(source, range(5))]
        assert [f.image.shape for f in frames] == [(720, 1280, 3)] * 5
        assert servers.sent(3) >= 5 and servers.sent(2) == 0
        ticks = 25 * (
            servers.due(3, 1) - servers.due(3, 0)
        )  # whole ticks of 1/25 s apart (more if one was skipped)
        assert ticks >= 1 and ticks == pytest.approx(round(ticks))
    assert process is not None and not process.is_alive()


def test_a_video_that_cannot_be_served_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with (
        pytest.raises(ValueError, match="notes.mp4: cannot open video"),
        StreamServers([CLIPS[0], str(bad)], 2, seconds=1),
    ):
        pass


def test_two_live_streams_in_one_process_give_every_figure() -> None:
    analyzer = Analyzer()
    runs = run_streams(CLIPS, analyzer, [1, 2], seconds=3, warmup=2, clip_seconds=4)
    assert [run.streams for run in runs] == [1, 2]
    for run in runs:
        assert (
            run.seconds >= 3
            and run.cpu_seconds > 0
            and run.server_cpu_seconds is not None
        )
        assert 0 < run.rss_start_mb <= run.rss_peak_mb and run.rss_end_mb > 0
        assert (
            run.rss_growth is None
        )  # under two minutes: no growth after the first minute
        for stream in run.per_stream:
            assert stream.error is None and stream.errors == 0
            assert (
                stream.results > 0
                and stream.served > 0
                and stream.read > 0
                and stream.fps > 0
            )
            assert 0 <= stream.lost < 1 and stream.ticks >= 75
            assert stream.latency_p95_ms >= stream.latency_p50_ms > 0
            assert stream.engine_latency_p95_ms >= stream.engine_latency_p50_ms >= 0
            # Results per detector run: live streams may be detected on every k-th frame only.
            assert 1 <= stream.detect_interval <= PeopleConfig().max_detect_every + 1
    # single-face-1080p (stream 1) has a face in every frame; office-entry (stream 0) is mostly empty.
    assert runs[1].per_stream[1].faces > runs[1].per_stream[1].results / 2
    assert peak_rss_per_extra_stream(runs) == runs[1].rss_peak_mb - runs[0].rss_peak_mb


def test_bench_streams_refuses_bad_counts_and_missing_videos(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["bench", "--streams", "two", str(VIDEOS)])
    assert result.exit_code == 2 and "--streams two" in result.output
    result = runner.invoke(app, ["bench", "--streams", "2", str(tmp_path / "none")])
    assert result.exit_code == 1 and "none: no such file or folder" in result.output
    result = runner.invoke(app, ["bench", "--streams", "2", str(tmp_path)])
    assert result.exit_code == 1 and "no videos" in result.output
