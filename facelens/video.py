"""Annotated video files that play in a browser and survive a killed run.

.mp4, .m4v and .mov hold H.264 (libx264, which PyAV's FFmpeg brings) in fragmented MP4: the header
comes first and each keyframe, one about every second, starts a fragment that goes to the file
whole. A file cut anywhere, by a SIGKILL or a power loss, plays up to its last whole fragment, and
closing rewrites nothing. .mkv holds the same H.264 in Matroska, a cluster per keyframe; .avi holds
Motion JPEG, a frame at a time, for old players.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .errors import FacelensError

if TYPE_CHECKING:
    import av

__all__ = ["SUFFIXES", "VideoWriter"]

# The encoder is nearly all the CPU an annotated video costs (libx264 was 95% of it under perf), CPU
# the analysis then lacks on a machine it keeps busy. So: libx264's fastest preset with only the
# deblocking filter back (cheap, and it keeps a high quantiser clean), at the CRF that keeps the quality
# of OpenCV's MPEG-4 Part 2 (tests/test_video.py). On street-720p's annotated frames the encoder alone
# takes ~5 ms a frame where CRF 24 with CABAC, 8x8 transform and sub-pixel motion took ~8.5 ms, and the
# file is 10 MB where that gave 12 MB; those tools saved 10-25% of the size for 15-40% more CPU.
# No B-frames: with them the first frame would not be at 0 s.
_X264 = {"preset": "ultrafast", "crf": "28", "x264-params": "deblock=1"}
# empty_moov: the header holds no samples, so it is whole before the first frame; frag_keyframe: a
# fragment from each keyframe; default_base_moof: fragments address their own data, as browsers expect.
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
SUFFIXES: dict[str, tuple[str, str, dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", _FRAGMENTED),
    ".m4v": ("mp4", "libx264", _FRAGMENTED),
    ".mov": ("mov", "libx264", _FRAGMENTED),
    ".mkv": ("matroska", "libx264", {"cluster_time_limit": "1000"}),
    ".avi": ("avi", "mjpeg", {}),
}
"""The file suffixes a `VideoWriter` takes -> (FFmpeg container, encoder, muxer options)."""

_SMPTE170M = 6  # BT.601, the matrix of OpenCV's BGR -> YUV; said in the file, or browsers take HD video for BT.709
_MPEG_RANGE = 1  # video levels (16-235), as OpenCV's conversion gives


class VideoWriter:
    """BGR frames (uint8, height x width x 3) into the video file `path`, at `fps` frames a second.

    Frames are stored at `size` (width, height); one of another size is scaled to it, and an odd side
    is padded by one pixel (4:2:0 video needs even sides). The file is open from the start; errors are
    one-line `FacelensError`s naming `path`. A context manager, or call `close`.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        """Frames written so far."""
        suffix = self.path.suffix.lower()
        if suffix not in SUFFIXES:
            raise FacelensError(f"{self.path}: video output must end in one of {', '.join(SUFFIXES)}")
        if not 0 < fps < 1000:
            raise FacelensError(f"{self.path}: frame rate must be above 0 and below 1000, not {fps}")
        if min(self.size) < 2:
            raise FacelensError(f"{self.path}: {self.size[0]}x{self.size[1]} pixels is too small for video")
        container_format, encoder, muxer_options = SUFFIXES[suffix]
        import av  # here: PyAV takes ~0.1 s to import, and only a run that writes video needs it

        self._pad = (self.size[0] % 2, self.size[1] % 2)
        with self._errors():
            # flush_packets: what the muxer writes goes to the file at once, not when a 32 KiB buffer
            # has filled, so a killed run leaves whole fragments.
            options = {"flush_packets": "1", **muxer_options}
            self._container: av.container.OutputContainer | None = av.open(
                str(self.path), "w", format=container_format, options=options
            )
            try:
                self._stream = self._container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001))
                context = self._stream.codec_context
                context.width, context.height = self.size[0] + self._pad[0], self.size[1] + self._pad[1]
                if encoder == "mjpeg":
                    context.pix_fmt = "yuvj420p"
                    context.qmin = context.qmax = 3  # a fixed quantiser: about OpenCV's Motion JPEG in size and quality
                else:
                    context.pix_fmt = "yuv420p"
                    context.gop_size = max(1, round(fps))  # a keyframe, so a fragment, about every second
                    context.colorspace = context.color_primaries = context.color_trc = _SMPTE170M
                    context.color_range = _MPEG_RANGE
                    context.options = _X264
                    # One thread, the caller's (the sink's own): x264's frame threads, 3 on 2 cores, cost
                    # ~0.5-1 ms more CPU a 720p frame and hold frames back; the analysis has the other core.
                    context.thread_count = 1
                self._container.start_encoding()  # opens the file and writes the header
            except BaseException:
                self._container.close()
                raise

    def write(self, frame: np.ndarray) -> None:
        """Add a frame."""
        if self._container is None:
            raise FacelensError(f"{self.path}: the video is closed")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise FacelensError(f"{self.path}: a frame must be a uint8 BGR picture, not {frame.dtype} of shape {frame.shape}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        if self._pad != (0, 0):
            frame = cv2.copyMakeBorder(frame, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_REPLICATE)
        import av

        if self._stream.codec_context.pix_fmt == "yuv420p":
            # OpenCV's conversion (BT.601, video levels) costs a third of the one the encoder would make.
            picture = av.VideoFrame.from_ndarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
        else:
            picture = av.VideoFrame.from_ndarray(frame, format="bgr24")
        self._encode(picture)

    def _encode(self, picture: av.VideoFrame) -> None:
        assert self._container is not None
        picture.pts = self.frames
        with self._errors():
            self._container.mux(self._stream.encode(picture))
        self.frames += 1

    @property
    def takes_i420(self) -> bool:
        """Whether `write_i420` may be used: H.264 at even sides."""
        return self._stream.codec_context.pix_fmt == "yuv420p" and self._pad == (0, 0)

    def write_i420(self, frame: np.ndarray) -> None:
        """Add a frame given as YUV I420, as OpenCV's COLOR_BGR2YUV_I420 gives it: `size` high and
        half as high again, `size` wide. Only when `takes_i420`; `frame` may be reused once this returns."""
        if self._container is None:
            raise FacelensError(f"{self.path}: the video is closed")
        width, height = self.size
        if not self.takes_i420 or frame.dtype != np.uint8 or frame.shape != (height * 3 // 2, width):
            raise FacelensError(f"{self.path}: not an I420 frame of {width}x{height} this video can take: {frame.dtype} of shape {frame.shape}")
        import av

        if height % 4 == 0:
            # No copy: the encoder copies the frame in before `encode` returns. PyAV takes the height
            # as a multiple of 4 here (270 rows would be read as 268, the chroma planes from the wrong place).
            self._encode(av.VideoFrame.from_numpy_buffer(frame, format="yuv420p"))
        else:
            self._encode(av.VideoFrame.from_ndarray(frame, format="yuv420p"))

    def close(self) -> None:
        """Write out the frames the encoder still holds and close the file. Closing again does nothing."""
        container, self._container = self._container, None
        if container is None:
            return
        with self._errors():
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import av

        try:
            yield
        except (av.FFmpegError, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise FacelensError(f"{self.path}: cannot write video ({reason})") from None
