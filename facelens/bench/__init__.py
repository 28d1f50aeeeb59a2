"""Benchmarks of facelens: modes side by side on one input (`modes`), and many live streams in one
process (`streams`), with the loopback MJPEG servers they are fed from (`mjpeg`)."""

from .mjpeg import MjpegServer, StreamServers
from .modes import MODES, Bench, Figures, LoopedSource, make_crowd_video, rss_mb, run
from .streams import (
    StreamFigures,
    StreamsFigures,
    peak_rss_per_extra_stream,
    run_streams,
)

__all__ = [
    "MODES",
    "Bench",
    "Figures",
    "LoopedSource",
    "MjpegServer",
    "StreamFigures",
    "StreamServers",
    "StreamsFigures",
    "make_crowd_video",
    "peak_rss_per_extra_stream",
    "rss_mb",
    "run",
    "run_streams",
]
