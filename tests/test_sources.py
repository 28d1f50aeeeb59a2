"""Sources on real photos and videos of the shared data, and bad files derived from them in tmp_path."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, VIDEOS, serve_folder

from facelens.errors import SourceError
from facelens.sources import Reconnect, Source, open_source, read_image

PHOTOS = DATA / "compreface-samples"
PHOTO = PHOTOS / "007_B.jpg"  # 416x624, small enough to decode often
SMALL = [PHOTOS / name for name in ("007_B.jpg", "008_B.jpg", "009_C.jpg", "017_0.jpg")]
STREET = VIDEOS / "street-720p.mp4"


def frames_of(spec) -> tuple[Source, list]:
    with open_source(spec) as source:
        return source, list(source)


def imread(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def assert_bgr(image: np.ndarray) -> None:
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.flags["C_CONTIGUOUS"]


def cut_in_half(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def png_of(image: np.ndarray, target: Path) -> Path:
    assert cv2.imwrite(str(target), image)
    return target


# ------------------------------------------------------------------------------------------ single images


def test_single_image_is_one_frame_of_the_decoded_file():
    source, frames = frames_of(PHOTO)  # a Path works as well as a str
    assert (source.kind, source.length, source.fps, source.is_live) == ("image", 1, None, False)
    assert source.name == str(PHOTO)
    assert len(frames) == 1
    frame = frames[0]
    assert (frame.index, frame.timestamp, frame.source) == (0, None, str(PHOTO))
    assert_bgr(frame.image)
    assert np.array_equal(frame.image, imread(PHOTO))
    assert source.skipped == []


def test_largest_sample_photo_loads_at_full_size():
    largest = max(PHOTOS.glob("*.jpg"), key=lambda path: path.stat().st_size)
    image = read_image(largest)
    assert sorted(image.shape[:2]) == [4912, 7360]
    assert_bgr(image)


def test_exif_orientation_is_applied(tmp_path):
    data = PHOTO.read_bytes()
    # A minimal big-endian EXIF block with one tag: Orientation = 6 (rotate 90 degrees clockwise).
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:])
    height, width = imread(PHOTO).shape[:2]
    assert read_image(rotated).shape == (width, height, 3)


@pytest.mark.parametrize(
    "name, convert",
    [
        ("gray.png", lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)),
        ("alpha.png", lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)),
        ("deep.png", lambda image: image.astype(np.uint16) * 257),
        ("deep.tif", lambda image: image.astype(np.uint16) * 257),
        ("alpha.webp", lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)),
    ],
)
def test_gray_alpha_and_16_bit_images_become_8_bit_bgr(tmp_path, name, convert):
    original = imread(PHOTO)
    if name.endswith(".webp"):
        assert cv2.imwrite(str(tmp_path / name), convert(original), [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless
    else:
        png_of(convert(original), tmp_path / name)
    source, frames = frames_of(tmp_path / name)
    image = frames[0].image
    assert_bgr(image)
    assert image.shape == original.shape
    if name.startswith("gray"):
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
        assert np.array_equal(image[..., 0], cv2.cvtColor(original, cv2.COLOR_BGR2GRAY))
    else:
        assert np.array_equal(image, original)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_single_image_fails_at_open_without_decoder_noise(tmp_path, capfd, suffix):
    whole = PHOTO if suffix == ".jpg" else png_of(imread(PHOTO), tmp_path / "whole.png")
    cut = cut_in_half(whole, tmp_path / f"cut{suffix}")
    capfd.readouterr()
    with pytest.raises(SourceError) as error:
        open_source(cut)
    assert str(error.value) == f"{cut}: truncated image"
    assert capfd.readouterr().err == ""  # libpng prints "PNG input buffer is incomplete" when decoding one


def test_jpeg_end_marker_check(tmp_path):
    data = PHOTO.read_bytes()
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 100 + b"\r\n")
    trailer = tmp_path / "trailer.jpg"  # phones append data after the end marker
    trailer.write_bytes(data + b"SEFH" + bytes(range(256)) * 40 + b"SEFT")
    no_end = tmp_path / "no_end.jpg"
    no_end.write_bytes(data[:-2])
    expected = imread(PHOTO)
    assert np.array_equal(read_image(padded), expected)
    assert np.array_equal(read_image(trailer), expected)
    with pytest.raises(SourceError, match="truncated image"):
        read_image(no_end)


def test_files_that_are_no_images(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")
    empty = tmp_path / "empty.png"
    empty.touch()
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    with pytest.raises(SourceError) as error:
        open_source(text)
    assert str(error.value) == f"{text}: not a readable image"
    with pytest.raises(SourceError, match=f"{empty}: empty file"):
        open_source(empty)
    with pytest.raises(SourceError, match=f"{folder}: is a directory"):
        read_image(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_image_file(tmp_path):
    locked = tmp_path / "locked.jpg"
    shutil.copy(PHOTO, locked)
    locked.chmod(0)
    with pytest.raises(SourceError, match="permission denied"):
        open_source(locked)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(SourceError) as error:
        open_source("photo.jpg")
    assert str(error.value) == "photo.jpg: no such file or directory"
    with pytest.raises(SourceError, match="no such file or directory"):
        open_source(tmp_path / "gone" / "clip.mp4")


# ------------------------------------------------------------------------------------ folders and globs


@pytest.fixture
def tree(tmp_path) -> Path:
    """root/img10.jpg, root/img2.jpg (link), root/sub/b.png, root/sub/deeper/a.jpg (link), plus noise."""
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    shutil.copy(SMALL[0], root / "img10.jpg")
    (root / "img2.jpg").symlink_to(SMALL[1])
    png_of(imread(SMALL[2]), root / "sub" / "b.png")
    (root / "sub" / "deeper" / "a.jpg").symlink_to(SMALL[3])
    (root / "notes.txt").write_text("not an image\n")
    (root / ".hidden.jpg").write_text("hidden files are ignored, so this never gets decoded\n")
    shutil.copy(SMALL[0], root / ".cache" / "thumb.jpg")
    return root


def test_folder_is_searched_recursively_in_natural_order(tree, warnings_log):
    source, frames = frames_of(str(tree))
    expected = [tree / "img2.jpg", tree / "img10.jpg", tree / "sub" / "b.png", tree / "sub" / "deeper" / "a.jpg"]
    assert (source.kind, source.length, source.name, source.is_live) == ("images", 4, str(tree), False)
    assert [frame.source for frame in frames] == [str(path) for path in expected]
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    assert all(frame.timestamp is None for frame in frames)
    for frame, original in zip(frames, [SMALL[1], SMALL[0], SMALL[2], SMALL[3]]):
        assert np.array_equal(frame.image, imread(original))
    # The text file is reported once; hidden files and folders are not mentioned at all.
    assert source.skipped == [(str(tree / "notes.txt"), "not an image file")]
    messages = [record.getMessage() for record in warnings_log.records]
    assert messages == [f"{tree / 'notes.txt'}: not an image file, skipped"]


def test_linked_folders_are_followed_once(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    shutil.copy(PHOTO, root / "a" / "x.jpg")
    (root / "a" / "up").symlink_to("..")  # a loop
    (root / "b").symlink_to(root / "a")  # the same folder again
    source, frames = frames_of(root)
    assert [frame.source for frame in frames] == [str(root / "a" / "x.jpg")]


def test_bad_images_in_a_folder_are_skipped_with_a_warning(tmp_path, warnings_log):
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(SMALL[0], folder / "1-good.jpg")
    cut_in_half(PHOTO, folder / "2-cut.jpg")
    cut_in_half(png_of(imread(PHOTO), tmp_path / "whole.png"), folder / "3-cut.png")
    (folder / "4-text.jpg").write_text("not a picture\n")
    shutil.copy(SMALL[1], folder / "5-good.jpg")
    source, frames = frames_of(folder)
    assert source.length == 5
    assert [(frame.index, Path(frame.source).name) for frame in frames] == [(0, "1-good.jpg"), (1, "5-good.jpg")]
    assert np.array_equal(frames[1].image, imread(SMALL[1]))
    expected = [
        (str(folder / "2-cut.jpg"), "truncated image"),
        (str(folder / "3-cut.png"), "truncated image"),
        (str(folder / "4-text.jpg"), "not a readable image"),
    ]
    assert source.skipped == expected
    messages = [record.getMessage() for record in warnings_log.records]
    assert messages == [f"{path}: {why}, skipped" for path, why in expected]
    assert all(record.levelno == logging.WARNING for record in warnings_log.records)


def test_folder_without_images_fails(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError) as error:
        open_source(empty)
    assert str(error.value) == f"{empty}: no images found"
    (empty / "readme.txt").write_text("still no images\n")
    (empty / "sub").mkdir()
    with pytest.raises(SourceError, match="no images found"):
        open_source(empty)


def test_glob_matches_recursively_and_sorted(tree):
    source, frames = frames_of(str(tree / "**" / "*.jpg"))
    assert source.kind == "images"
    assert [frame.source for frame in frames] == [
        str(tree / "img2.jpg"),
        str(tree / "img10.jpg"),
        str(tree / "sub" / "deeper" / "a.jpg"),
    ]
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert source.skipped == []
    source, frames = frames_of(str(tree / "img*"))
    assert [Path(frame.source).name for frame in frames] == ["img2.jpg", "img10.jpg"]


def test_glob_without_match_fails(tree):
    with pytest.raises(SourceError, match="no images match"):
        open_source(str(tree / "*.webp"))
    with pytest.raises(SourceError, match="no images match"):
        open_source(str(tree / "*.txt"))  # matches, but no image


# ---------------------------------------------------------------------------------------------- videos


def test_video_frames_have_indices_and_timestamps_of_the_file(warnings_log):
    with open_source(STREET) as source:
        assert (source.kind, source.length, source.fps, source.is_live) == ("video", 477, 25.0, False)
        count = 0
        for frame in source:
            assert frame.index == count
            assert frame.timestamp == pytest.approx(count * 0.04, abs=1e-6)
            assert frame.source == str(STREET)
            assert frame.image.shape == (720, 1280, 3)
            count += 1
        assert_bgr(frame.image)
    assert count == 477
    assert warnings_log.records == []


def test_animated_gif_is_a_video():
    gif = VIDEOS / "face-demographics-walking.gif"
    source, frames = frames_of(gif)
    assert (source.kind, source.length, len(frames)) == ("video", 35, 35)
    timestamps = [frame.timestamp for frame in frames]
    # Its frames last 80 or 90 ms, so these are the file's own times, not index / fps (12.5).
    assert timestamps[:4] == pytest.approx([0.0, 0.08, 0.17, 0.25])
    assert all(later > earlier for earlier, later in zip(timestamps, timestamps[1:]))
    assert frames[0].image.shape == (270, 480, 3)


def test_text_file_named_mp4_fails_at_open(tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video\n")
    with pytest.raises(SourceError) as error:
        open_source(fake)
    assert str(error.value).startswith(f"{fake}: cannot open video (")


def test_truncated_video_gives_frames_up_to_the_cut_then_a_warning(tmp_path, warnings_log, capfd):
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(STREET.read_bytes()[:100_000])  # the index (moov) is at the start, so it opens
    capfd.readouterr()
    source, frames = frames_of(cut)
    assert source.length == 477
    assert 0 < len(frames) < 477
    assert [frame.index for frame in frames] == list(range(len(frames)))
    assert [frame.timestamp for frame in frames] == pytest.approx([i * 0.04 for i in range(len(frames))])
    messages = [record.getMessage() for record in warnings_log.records]
    assert messages == [f"{cut}: video ended early at frame {len(frames)} of 477"]
    assert "NAL" not in capfd.readouterr().err  # FFmpeg's per-packet complaints are silenced


def test_leaving_with_releases_the_video_and_a_second_pass_is_refused(warnings_log):
    with open_source(STREET) as source:
        frames = iter(source)
        assert next(frames).index == 0
        assert next(frames).index == 1
        with pytest.raises(RuntimeError, match="only once"):
            iter(source)
    assert next(frames, None) is None
    assert warnings_log.records == []  # stopping on purpose is not "ended early"


# ------------------------------------------------------------------------------------ cameras and streams


@pytest.mark.parametrize("spec", [9, "9"])
def test_camera_that_does_not_exist_fails_fast_without_retries(spec):
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        open_source(spec, reconnect=Reconnect(retry_for=0))
    assert str(error.value) == "camera 9: cannot open"
    assert time.monotonic() - started < 5


def test_camera_that_does_not_come_is_retried_then_given_up(warnings_log):
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        open_source(9, reconnect=Reconnect(retry_for=1, first_delay=0.2, max_delay=0.4))
    assert str(error.value) == "camera 9: cannot open; gave up after 1 s"
    assert 1 <= time.monotonic() - started < 5
    assert [r.getMessage() for r in warnings_log.records] == ["camera 9: cannot open; retrying for up to 1 s"]


@pytest.fixture(scope="module")
def http_videos():
    """Base URL of a loopback HTTP server over the shared videos (no Range support, like a simple server)."""
    with serve_folder(VIDEOS) as base:
        yield base


def test_http_stream_gives_the_frames_of_the_file(http_videos):
    url = f"{http_videos}/street-720p.mp4"
    frames_meta, first = [], None
    with open_source(url) as source:
        assert (source.kind, source.is_live, source.name, source.fps) == ("stream", True, url, 25.0)
        for frame in source:
            if frame.index == 0:
                first = frame.image
            frames_meta.append((frame.index, frame.timestamp, frame.source))
    assert len(frames_meta) == 477
    assert [meta[0] for meta in frames_meta] == list(range(477))
    assert [meta[1] for meta in frames_meta] == pytest.approx([i * 0.04 for i in range(477)])
    assert {meta[2] for meta in frames_meta} == {url}
    capture = cv2.VideoCapture(str(STREET))
    ok, expected = capture.read()
    capture.release()
    assert ok and np.array_equal(first, expected)


def test_http_stream_that_cannot_be_decoded_fails_at_open(http_videos):
    # speaker-360p.mp4 keeps its index at the end; without Range requests FFmpeg cannot reach its frames.
    with pytest.raises(SourceError, match="cannot open stream"):
        open_source(f"{http_videos}/speaker-360p.mp4")


def test_stream_to_a_closed_port_fails_within_the_timeout_without_retries():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        open_source(f"http://viewer:secret@127.0.0.1:{port}/live.mp4", reconnect=Reconnect(retry_for=0))
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert message.startswith(f"http://viewer:***@127.0.0.1:{port}/live.mp4: cannot open stream")
    assert "secret" not in message


def test_closing_a_video_from_another_thread_while_it_is_read_is_safe():
    """OpenCV crashes or deadlocks if a capture is released during a read; close() must wait its turn."""
    for round_ in range(40):
        source = open_source(VIDEOS / "street-720p.mp4")
        read = []
        reader = threading.Thread(target=lambda read=read, source=source: read.extend(1 for _ in source), daemon=True)
        reader.start()
        time.sleep(0.002 * (round_ % 10))
        source.close()
        reader.join(5)
        assert not reader.is_alive(), f"round {round_}: the reader hung after close()"
        assert len(read) < 477
