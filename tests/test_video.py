"""The video writer: real frames in, the file read back by OpenCV, PyAV and headless Chromium, also
after the writing process was killed with SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import VIDEOS, run_chromium
from facelens.annotate import Picture, annotate, annotate_i420
from facelens.errors import FacelensError
from facelens.sinks import VideoSink
from facelens.types import Box, Emotion, Face, Frame, FrameResult, Gender
from facelens.video import VideoWriter

SPEAKER = VIDEOS / "speaker-360p.mp4"  # 640x360, 275 frames, 29.97 fps


@pytest.fixture(scope="module")
def speaker() -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(SPEAKER))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    capture.release()
    assert len(frames) == 275 and frames[0].shape == (360, 640, 3)
    return frames, fps


def read_cv2(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"OpenCV cannot open {path}"
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    capture.release()
    return frames


def read_pyav(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Frames and their times, decoded as a player does: up to a last fragment a kill may have cut."""
    frames, times = [], []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="bgr24"))
                times.append(float(frame.time))
        except av.InvalidDataError:
            pass
    return frames, times


def assert_same_pictures(decoded: list[np.ndarray], source: list[np.ndarray]) -> None:
    """Each decoded frame is its source frame (frame i of a looped source), not just any picture:
    closer to it than to the frame half a second away."""
    for i, frame in enumerate(decoded):
        own, other = source[i % len(source)], source[(i + 15) % len(source)]
        assert frame.shape == own.shape
        assert cv2.PSNR(frame, own) > 32, i
        assert cv2.PSNR(frame, own) > cv2.PSNR(frame, other) + 1, i


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi", ".mov"])
def test_every_frame_comes_back(speaker, tmp_path: Path, suffix: str) -> None:
    frames, fps = speaker
    path = tmp_path / f"out{suffix}"
    with VideoWriter(path, fps, (640, 360)) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames == 275

    decoded = read_cv2(path)
    assert len(decoded) == 275
    assert_same_pictures(decoded, frames)
    decoded, times = read_pyav(path)
    assert len(decoded) == 275
    # The first frame at 0 s, then one every 1/29.97 s.
    assert times[0] == 0 and times[-1] == pytest.approx(274 / fps, abs=0.002)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == ("mjpeg" if suffix == ".avi" else "h264")
        assert float(stream.average_rate) == pytest.approx(fps, rel=1e-3)
    if suffix in (".mp4", ".mov"):
        # Fragmented: a header without samples, then a fragment from each keyframe, one a second.
        data = path.read_bytes()
        assert data[4:8] == b"ftyp" and b"moov" in data[:2000] and b"mvex" in data[:2000]
        assert 9 <= data.count(b"moof") <= 11


def test_h264_in_mp4_is_smaller_than_mpeg4_part2_at_the_same_quality(speaker, tmp_path: Path) -> None:
    """What cv2.VideoWriter's mp4v gave before: the new file is smaller and no worse."""
    frames, fps = speaker
    old = cv2.VideoWriter(str(tmp_path / "old.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 360))
    with VideoWriter(tmp_path / "new.mp4", fps, (640, 360)) as new:
        for frame in frames:
            old.write(frame)
            new.write(frame)
    old.release()
    quality = {
        name: np.mean([cv2.PSNR(a, b) for a, b in zip(read_cv2(tmp_path / f"{name}.mp4"), frames)]) for name in ("old", "new")
    }
    size = {name: (tmp_path / f"{name}.mp4").stat().st_size for name in ("old", "new")}
    assert size["new"] < 0.85 * size["old"], size
    assert quality["new"] > quality["old"] - 0.5, quality


CHILD = """
import sys
import cv2
path, source, count, which = sys.argv[1:]
capture = cv2.VideoCapture(source)
frames = []
while (frame := capture.read()[1]) is not None:
    frames.append(frame)
size = (frames[0].shape[1], frames[0].shape[0])
if which == "opencv":
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 30, size)
else:
    from facelens.video import VideoWriter
    writer = VideoWriter(path, 30, size)
for i in range(int(count)):
    writer.write(frames[i % len(frames)])
    print(i + 1, flush=True)
"""


def write_and_kill(path: Path, after: int, writer: str = "facelens") -> int:
    """Write the speaker video in a loop into `path` (30 fps) from another process, SIGKILL it once it
    has written `after` frames, and return how many it had written."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(SPEAKER), "3000", writer],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = "0"
        for line in process.stdout:  # ends when the child does: 3000 frames take far longer than the kill
            if int(line) >= after:
                break
        assert process.poll() is None, f"the writer ended before it could be killed: {process.stderr.read()[-2000:]}"
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    return int((line + rest).split()[-1])  # it may have written a few more before it died


@pytest.fixture(scope="module")
def killed_mp4(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("killed") / "killed.mp4"
    return path, write_and_kill(path, after=160)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_a_killed_run_leaves_a_video_that_plays(speaker, killed_mp4, tmp_path: Path, suffix: str) -> None:
    frames, _ = speaker
    if suffix == ".mp4":
        path, written = killed_mp4
    else:
        path = tmp_path / f"killed{suffix}"
        written = write_and_kill(path, after=160)
    assert written >= 160
    # Lost at most the fragment in the making (a second, 30 frames) and the few the encoder held.
    for decoded in (read_cv2(path), read_pyav(path)[0]):
        assert written - 40 <= len(decoded) <= written
        assert_same_pictures(decoded, frames)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_a_file_cut_anywhere_plays_up_to_the_cut(speaker, tmp_path: Path, suffix: str) -> None:
    """A power loss leaves any prefix of the file: each plays the frames before the cut, losing at
    most the fragment (or cluster) the cut fell in."""
    frames, fps = speaker
    path = tmp_path / f"whole{suffix}"
    with VideoWriter(path, fps, (640, 360)) as writer:
        for frame in frames:
            writer.write(frame)
    with av.open(str(path)) as container:
        ends = [packet.pos + packet.size for packet in container.demux(video=0) if packet.size]
    assert len(ends) == 275
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    for fraction in (0.13, 0.5, 0.9):
        cut.write_bytes(data[: int(len(data) * fraction)])
        before = sum(end <= int(len(data) * fraction) for end in ends)
        for decoded in (read_cv2(cut), read_pyav(cut)[0]):
            # Motion JPEG shows what it has of a frame cut in two (one more, damaged frame).
            whole = decoded[:before] if suffix == ".avi" else decoded
            assert before - 31 <= len(whole) <= before, fraction
            assert_same_pictures(whole, frames)


def test_the_old_writer_left_nothing_to_play_when_killed(tmp_path: Path) -> None:
    """Why fragments: OpenCV's MP4 gets its index at the end, so a killed run's file does not open."""
    path = tmp_path / "old.mp4"
    assert write_and_kill(path, after=160, writer="opencv") >= 160
    assert path.stat().st_size > 100_000  # frames were written...
    assert not cv2.VideoCapture(str(path)).isOpened()  # ...and cannot be read


@pytest.mark.parametrize("size", [(640, 360), (480, 270)])
def test_i420_frames_from_one_reused_buffer_are_the_bgr_frames(speaker, tmp_path: Path, size: tuple[int, int]) -> None:
    """write_i420 takes the frame before it returns (the sink fills one buffer again for each frame),
    and encodes just what `write` does with the same frame in BGR, at a height of 4k and 4k + 2."""
    frames = [cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in speaker[0][:60]]
    buffer = np.empty((size[1] * 3 // 2, size[0]), np.uint8)
    with VideoWriter(tmp_path / "i420.mp4", 30, size) as writer, VideoWriter(tmp_path / "bgr.mp4", 30, size) as bgr:
        assert writer.takes_i420
        for frame in frames:
            writer.write_i420(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420, dst=buffer))
            bgr.write(frame)
        with pytest.raises(FacelensError, match=f"not an I420 frame of {size[0]}x{size[1]}"):
            writer.write_i420(buffer[:-2])
    decoded = read_pyav(tmp_path / "i420.mp4")[0]
    assert len(decoded) == 60
    assert_same_pictures(decoded, frames)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, read_pyav(tmp_path / "bgr.mp4")[0], strict=True))
    with VideoWriter(tmp_path / "odd.mp4", 30, (639, 360)) as odd, VideoWriter(tmp_path / "mjpeg.avi", 30, (640, 360)) as mjpeg:
        assert not odd.takes_i420 and not mjpeg.takes_i420  # these take BGR (padded; full-range JPEG)


def awkward_faces(width: int, height: int) -> list[Face]:
    """Faces at fractional pixels that overlap, run off each edge, have their label above or (at the
    top) below the box, one with no label."""
    boxes = [
        (101.4, 93.6, 161.2, 170.9),
        (140.3, 120.1, 200.7, 195.5),  # overlaps the first, its label over the first's box
        (width - 31.5, height - 41.3, width + 5.0, height + 3.0),
        (-4.0, height / 2, 27.3, height / 2 + 33.0),
        (width / 2 + 0.5, 0.0, width / 2 + 40.5, 45.0),
        (width / 3 + 1.0, height / 3 + 1.0, width / 3 + 60.0, height / 3 + 80.0),
    ]
    faces = [Face(Box(*box), 0.9, 30.0 + i, Gender("female" if i % 2 else "male", 0.9), Emotion("happy", (0.1, 0.6, 0.1, 0.1, 0.1))) for i, box in enumerate(boxes)]
    return [*faces, Face(Box(width * 0.7, height * 0.6, width * 0.7 + 30, height * 0.6 + 30), 0.8)]


@pytest.mark.parametrize("blur_faces", [False, True])
def test_pictures_drawn_for_the_encoder_are_the_annotated_pictures_to_the_bit(speaker, blur_faces: bool) -> None:
    """annotate_i420 converts the frame whole and draws only the faces' parts again: the same picture
    as drawing in BGR and converting, at 360p (1-pixel lines) and 720p (2-pixel lines)."""
    frames, _ = speaker
    for frame in (frames[100], cv2.resize(frames[200], (1280, 720))):
        height, width = frame.shape[:2]
        faces = awkward_faces(width, height)
        before = frame.copy()
        expected = cv2.cvtColor(annotate(frame, faces, blur_faces=blur_faces), cv2.COLOR_BGR2YUV_I420)
        drawn = annotate_i420(frame, faces, blur_faces=blur_faces)
        assert np.array_equal(drawn, expected)
        assert np.array_equal(frame, before)  # the frame itself is not drawn on
        assert not np.array_equal(drawn, cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420))
        picture = Picture(frame, faces, blur_faces=blur_faces)
        assert picture.size == (width, height) and np.array_equal(picture.i420(), expected)
        assert np.array_equal(picture(), annotate(frame, faces, blur_faces=blur_faces))
        assert np.array_equal(picture.i420(np.empty_like(expected)), expected)  # from the BGR picture once drawn


def test_odd_and_changing_sizes(speaker, tmp_path: Path) -> None:
    """An odd side is padded by a pixel (4:2:0 needs even sides); a frame of another size is scaled."""
    frames, fps = speaker
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps, (639, 359)) as writer:
        for frame in frames[:30]:
            writer.write(frame[:359, :639])
        writer.write(cv2.resize(frames[30], (1280, 720)))
    decoded = read_cv2(path)
    assert len(decoded) == 31 and decoded[0].shape == (360, 640, 3)
    assert cv2.PSNR(decoded[0][:359, :639], frames[0][:359, :639]) > 32
    assert np.abs(decoded[0][:, 639].astype(int) - decoded[0][:, 638]).mean() < 3  # the padding repeats the last column
    assert cv2.PSNR(decoded[30][:359, :639], cv2.resize(frames[30], (639, 359))) > 30


def test_bad_output_is_a_one_line_error_naming_it(speaker, tmp_path: Path) -> None:
    frame = speaker[0][0]
    cases = [
        (tmp_path / "out.webm", 25, "video output must end in one of .mp4, .m4v, .mov, .mkv, .avi"),
        (tmp_path / "no-such-folder" / "out.mp4", 25, "cannot write video (No such file or directory)"),
        (tmp_path / "out.mp4", 0, "frame rate must be above 0"),
    ]
    for path, fps, message in cases:
        with pytest.raises(FacelensError) as raised:
            VideoWriter(path, fps, (640, 360))
        assert str(raised.value).startswith(f"{path}: ") and message in str(raised.value) and "\n" not in str(raised.value)
    with VideoWriter(tmp_path / "grey.mp4", 25, (640, 360)) as writer, pytest.raises(FacelensError, match="uint8 BGR picture"):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_a_full_disk_is_an_error_naming_the_file(speaker, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"full{suffix}"
    path.symlink_to("/dev/full")
    with pytest.raises(FacelensError) as raised:
        with VideoWriter(path, 25, (640, 360)) as writer:
            for frame in speaker[0][:100]:
                writer.write(frame)
    assert str(raised.value) == f"{path}: cannot write video (No space left on device)"


def results(frames: list[np.ndarray]) -> list[tuple[FrameResult, Picture]]:
    """What the command's loop hands a video sink: each frame's result and its (lazy) picture."""
    made = []
    for i, image in enumerate(frames):
        made.append((FrameResult(Frame(image, i, i / 25, "speaker"), ()), Picture(image, ())))
    return made


def test_video_sink_writes_every_frame_in_order_on_its_own_thread(speaker, tmp_path: Path) -> None:
    frames, fps = speaker
    path = tmp_path / "sink.mp4"
    sink = VideoSink(path, fps)
    for result, picture in results(frames[:120]):
        sink.write(result, picture)
    sink.write(FrameResult(Frame(frames[0], 120, None, "speaker"), (), end=True), None)
    assert any(t.name == "facelens video sink.mp4" for t in threading.enumerate())
    sink.close()  # every waiting frame written and the file finished
    assert not any(t.name.startswith("facelens video") for t in threading.enumerate())
    decoded, times = read_pyav(path)
    assert len(decoded) == 120
    assert_same_pictures(decoded, frames)
    assert times[-1] == pytest.approx(119 / fps, abs=0.002)


def test_video_sink_holds_the_caller_up_rather_than_queueing_without_end(speaker, tmp_path: Path) -> None:
    """A writer that falls behind slows the loop: no more than QUEUE frames wait, none is dropped."""
    frames, fps = speaker
    gate = threading.Event()
    drawn = []

    class Slow(Picture):
        __slots__ = ()

        def __call__(self) -> np.ndarray:
            gate.wait(10)
            drawn.append(1)
            return super().__call__()

        def i420(self, out: np.ndarray | None = None) -> np.ndarray:
            gate.wait(10)
            drawn.append(1)
            return super().i420(out)

    sink = VideoSink(tmp_path / "slow.mp4", fps)
    writing = threading.Thread(target=lambda: [sink.write(FrameResult(Frame(f, i, None, "s"), ()), Slow(f, ())) for i, f in enumerate(frames[:40])])
    writing.start()
    writing.join(1.0)
    assert writing.is_alive()  # held up: the writer thread has one frame, QUEUE more wait
    assert sink._queue.qsize() == VideoSink.QUEUE and not drawn
    gate.set()
    writing.join(10)
    sink.close()
    assert len(drawn) == 40 and len(read_cv2(tmp_path / "slow.mp4")) == 40


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_video_sink_raises_its_thread_s_error_naming_the_file(speaker, tmp_path: Path) -> None:
    """A full disk on the writer thread: the next write (or close) raises it, once, as one line."""
    path = tmp_path / "full.mp4"
    path.symlink_to("/dev/full")
    sink = VideoSink(path, 25)
    with pytest.raises(FacelensError) as raised:
        for result, picture in results(speaker[0][:275]):
            sink.write(result, picture)
        sink.close()
    assert str(raised.value) == f"{path}: cannot write video (No space left on device)"
    sink.close()  # reported once; closing after the error neither hangs nor raises again

    late = tmp_path / "late.mp4"
    late.symlink_to("/dev/full")
    sink = VideoSink(late, 25)
    sink.write(*results(speaker[0][:1])[0])  # the header fails on the thread, after write returned
    with pytest.raises(FacelensError, match=f"^{late}: cannot write video"):
        sink.close()


# --- headless Chromium ---------------------------------------------------------------------------

PAGE = """<!doctype html>
<meta charset="utf-8">
<body>
<video muted preload="auto"></video>
<script>
// Notes in <body data-*>, for --dump-dom: the video's size and duration once its first frame is in,
// that frame's colours at four points across its middle, and whether it then played on.
const video = document.querySelector("video");
const body = document.body;
function note(state) {
  Object.assign(body.dataset, {
    state, width: video.videoWidth, height: video.videoHeight, duration: video.duration, time: video.currentTime,
  });
}
video.addEventListener("loadeddata", () => {
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  body.dataset.colours = [1, 3, 5, 7].map(eighth => {
    const pixel = context.getImageData(Math.round(eighth * video.videoWidth / 8), video.videoHeight >> 1, 1, 1).data;
    return `${pixel[0]},${pixel[1]},${pixel[2]}`;
  }).join(" ");
  note("loaded");
  video.play().catch(error => note(`cannot play: ${error}`));
});
video.addEventListener("timeupdate", () => {
  if (video.currentTime >= 0.5) {
    note("played");
    video.pause();
  }
});
video.addEventListener("error", () => note(`error ${video.error.code} ${video.error.message}`));
video.src = decodeURIComponent(location.hash.slice(1));
</script>
"""


class Body(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.data = {name.removeprefix("data-"): value or "" for name, value in attrs}


def play_in_chromium(video: Path, tmp_path: Path) -> dict[str, str]:
    """What headless Chromium's <video> made of `video` (the body's data-* of PAGE)."""
    page = video.parent / "play.html"
    page.write_text(PAGE, encoding="utf-8")
    # --allow-file-access-from-files: the page reads the video's pixels
    stdout = run_chromium(f"{page.as_uri()}#{video.name}", tmp_path / "profile", "--allow-file-access-from-files", "--dump-dom", budget_ms=10000, timeout=90)
    return Body(stdout).data


def test_chromium_plays_the_video(speaker, tmp_path: Path) -> None:
    frames, fps = speaker
    path = tmp_path / "speaker.mp4"
    with VideoWriter(path, fps, (640, 360)) as writer:
        for frame in frames:
            writer.write(frame)
    shown = play_in_chromium(path, tmp_path)
    assert shown.get("state") == "played", shown
    assert (shown["width"], shown["height"]) == ("640", "360")
    assert float(shown["duration"]) == pytest.approx(275 / fps, abs=0.05)

    # The check can fail: OpenCV's MPEG-4 Part 2, what facelens wrote before, does not play.
    old = tmp_path / "old.mp4"
    writer = cv2.VideoWriter(str(old), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 360))
    for frame in frames[:60]:
        writer.write(frame)
    writer.release()
    assert play_in_chromium(old, tmp_path).get("state", "").startswith("error 4"), "mp4v should not play"


def test_chromium_plays_a_killed_runs_video(killed_mp4, tmp_path: Path) -> None:
    path, written = killed_mp4
    shown = play_in_chromium(path, tmp_path)
    assert shown.get("state") == "played", shown
    assert (shown["width"], shown["height"]) == ("640", "360")
    assert (written - 40) / 30 <= float(shown["duration"]) <= written / 30


def test_chromium_shows_the_colours_written(tmp_path: Path) -> None:
    """Chromium takes HD video that does not name its colour matrix for BT.709; the writer converts
    with BT.601 and says so in the file, so saturated colours come out as they went in."""
    bars = np.zeros((720, 1280, 3), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (220, 160, 40)]  # RGB
    for i, (red, green, blue) in enumerate(colours):
        bars[:, i * 320 : (i + 1) * 320] = (blue, green, red)
    path = tmp_path / "bars.mp4"
    with VideoWriter(path, 25, (1280, 720)) as writer:
        for _ in range(50):
            writer.write(bars)
    shown = play_in_chromium(path, tmp_path)
    assert shown.get("state") == "played", shown
    seen = [tuple(int(v) for v in colour.split(",")) for colour in shown["colours"].split()]
    for got, want in zip(seen, colours, strict=True):
        assert max(abs(g - w) for g, w in zip(got, want)) <= 6, (seen, colours)
