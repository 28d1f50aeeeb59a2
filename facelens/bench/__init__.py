"""Benchmarks of facelens: modes side by side on one input (`modes`), and many live streams in one
process (`streams`), with the loopback MJPEG servers they are fed from (`mjpeg`)."""

from .mjpeg import MjpegServer
from .modes import MODES, Bench, Figures, LoopedSource, make_crowd_video, rss_mb, run

__all__ = ["MODES", "Bench", "Figures", "LoopedSource", "MjpegServer", "make_crowd_video", "rss_mb", "run"]
