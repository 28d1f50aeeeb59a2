"""The runtime's compiled-network cache and its batches, on the real emotion network and real faces."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import COMPREFACE

from facelens.attributes import EMOTION_MODEL
from facelens.models import ModelStore, compiled_cache_dir
from facelens.runtime import Network
from facelens.sources import read_image


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """20 real face crops at the emotion network's 64x64: more than one batch of 16."""
    image = read_image(COMPREFACE / "010_2.jpg")
    height, width = image.shape[:2]
    crops = []
    for i in range(20):  # windows around the photo's middle, each a little shifted and scaled
        side = min(height, width) // 2 + 7 * i
        top, left = (height - side) // 2 + i, (width - side) // 2 - i
        crops.append(cv2.resize(image[max(top, 0) : top + side, max(left, 0) : left + side], (64, 64)))
    return np.stack(crops)


def emotion_network(**options: object) -> Network:
    return Network(*ModelStore().locate(EMOTION_MODEL), **options)  # type: ignore[arg-type]


def blobs(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()} if folder.is_dir() else {}


def test_compiled_network_kept_in_the_user_cache_and_loaded_next_time(faces: np.ndarray) -> None:
    folder = compiled_cache_dir()
    assert folder == Path(os.environ["FACELENS_CACHE_DIR"]) / "compiled"
    network = emotion_network()
    expected = network.infer(faces[:3])
    network.prepare()  # the larger batch sizes are compiled on a thread of their own
    written = blobs(folder)
    assert len(written) == len(network.batch_sizes) == 5 and all(size > 10_000 for size, _ in written.values())
    network = emotion_network()
    again = network.infer(faces[:3])
    network.prepare()
    assert blobs(folder) == written  # loaded: nothing compiled or written again
    for name in expected:
        np.testing.assert_allclose(again[name], expected[name], atol=1e-5)


def test_entries_of_openvino_s_own_cache_are_swept_and_nothing_else(faces: np.ndarray) -> None:
    """Older facelens let OpenVINO keep compiled networks here, as `<digits>.blob`; they go, the rest stays."""
    folder = compiled_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "10083208249511735969.blob").write_bytes(b"OpenVINO's own entry")
    (folder / "notes.txt").write_text("a user's file")
    (folder / "1234.blob.txt").write_text("not an entry either")
    network = emotion_network()
    network.infer(faces[:1])
    left = set(blobs(folder))
    assert "10083208249511735969.blob" not in left and {"notes.txt", "1234.blob.txt"} <= left
    assert any(name.startswith("emotions-recognition-retail-0003-1-") for name in left)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bits flipped"])
def test_a_corrupt_cache_entry_is_compiled_again(faces: np.ndarray, damage: str) -> None:
    network = emotion_network()
    expected = network.infer(faces[:3])
    network.prepare()
    damaged = {}
    for blob in compiled_cache_dir().iterdir():
        data = bytearray(blob.read_bytes())
        size = len(data)
        if damage == "truncated":
            data = data[: size // 3]
        elif damage == "garbage":
            data = bytearray(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
        elif damage == "empty":
            data = bytearray()
        else:
            for i in range(100, size, 101):
                data[i] ^= 0xFF
        os.chmod(blob, 0o600)  # OpenVINO writes its entries read-only
        blob.write_bytes(bytes(data))
        damaged[blob] = (size, bytes(data))
    network = emotion_network()
    network.prepare()
    outputs = network.infer(faces[:7])  # 4 + 2 + 1
    for name in expected:
        np.testing.assert_allclose(outputs[name][:3], expected[name], atol=1e-5)
    for blob, (size, data) in damaged.items():
        rebuilt = blob.read_bytes()
        assert abs(len(rebuilt) - size) < size // 100 and rebuilt != data  # written again in place


def test_a_cache_folder_that_cannot_be_made_only_means_no_cache(faces: np.ndarray, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(blocker))
    network = emotion_network()
    network.prepare()
    assert network.infer(faces[:2]) and blocker.read_text().startswith("a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_only_means_no_cache(faces: np.ndarray) -> None:
    folder = compiled_cache_dir()
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    try:
        network = emotion_network()
        network.prepare()
        assert network.infer(faces[:2])
        assert not any(folder.iterdir())
    finally:
        folder.chmod(0o755)


def test_every_batch_size_runs_on_the_networks_compiled_up_front(faces: np.ndarray) -> None:
    """No batch size compiles anything after the network is made (a compile would write another
    cache entry), and every batch gives each face what it gets alone."""
    network = emotion_network()
    alone = [network.infer(faces[i : i + 1]) for i in range(len(faces))]
    network.prepare()
    written = blobs(compiled_cache_dir())
    assert network.batch_sizes == [1, 2, 4, 8, 16] and len(written) == 5
    for count in (2, 3, 5, 7, 8, 13, 15, 16, 17, 20):
        outputs = network.infer(faces[:count])
        for name, rows in outputs.items():
            assert len(rows) == count
            np.testing.assert_allclose(rows, np.concatenate([a[name] for a in alone[:count]]), atol=1e-4)
    assert blobs(compiled_cache_dir()) == written


def test_compiling_and_loading_never_touch_the_process_locale() -> None:
    """OpenVINO's own compile cache switched the process-wide locale to "C" while it loaded and saved,
    so Python in other threads decoded subprocess output and opened text as ASCII meanwhile. A thread
    watches the text encoding while every network compiles each batch size, then loads it next run."""
    import locale

    from facelens import Analyzer

    before = locale.getpreferredencoding(False)
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.add(locale.getpreferredencoding(False))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(2):  # compiled and kept, then loaded from the cache
            analyzer = Analyzer()
            for network in [analyzer.detector.network, *analyzer.attributes.networks()]:
                network.prepare([1, 2, 4, 8, 16])
    finally:
        done.set()
        watcher.join()
    assert seen == {before}
    assert len(blobs(compiled_cache_dir())) >= 15
