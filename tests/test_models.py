"""The model store against the real model files, served by a loopback HTTP server that can misbehave."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import MODELS_DIR

from facelens import models as m
from facelens.errors import ChecksumError, ModelError

DETECTOR = "face-detection-retail-0004"  # FP16-INT8: 229 kB xml + 600 kB bin
AGE_GENDER = "age-gender-recognition-retail-0013"  # FP16-INT8: 86 kB xml + 2.2 MB bin
DROP_AFTER = 1 << 20


def sha384(data: bytes) -> str:
    return hashlib.sha384(data).hexdigest()


def flip(data: bytes) -> bytes:
    """`data` with one byte in the middle inverted."""
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def copy_model(model: str, dest: Path) -> tuple[Path, Path]:
    """Copy the default-precision files of `model` from the shared folder into `dest`, OMZ layout."""
    out = []
    for file in m.model_files(model):
        target = dest / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODELS_DIR / file.path, target)
        out.append(target)
    return out[0], out[1]


class Server(ThreadingHTTPServer):
    """Serves MODELS_DIR; `behaviour[relative path]` makes one file misbehave."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = MODELS_DIR
        self.requests: list[str] = []
        self.behaviour: dict[str, str] = {}
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url_of(self, file: m.ModelFile) -> str:
        return f"{self.url}/{file.path}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        how = self.server.behaviour.get(rel, "ok")
        path = self.server.root / rel
        if how == "404" or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if how == "corrupt":
            data = flip(data)
        elif how == "short":
            data = data[:-1000]
        elif how == "long":
            data = data + b"\0" * 1000
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if how == "stall":
            # Deliver part of the file, then hang until the test lets go.
            self.wfile.write(data[:DROP_AFTER])
            self.wfile.flush()
            self.server.release.wait(10)
            self.close_connection = True
            return
        if how == "drop":
            # Promise the whole file, deliver part of it, then vanish.
            self.wfile.write(data[:DROP_AFTER])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def empty_models(tmp_path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


def no_partial_files(root: Path) -> bool:
    return not any(p.name.endswith(".part") for p in root.rglob("*"))


# --- catalog ---------------------------------------------------------------------------------------


def test_catalog_is_the_manifest():
    """The lock holds the manifest's rows byte for byte: the Open Model Zoo files and the CC0 ONNX
    files (those name the package that carries them instead of a URL)."""
    manifest = (MODELS_DIR / "MANIFEST.csv").read_text(encoding="utf-8")
    assert resources.files("facelens").joinpath("models.lock.csv").read_text(encoding="utf-8") == manifest
    rows = list(csv.DictReader(manifest.splitlines()))
    assert len(rows) == len(m.catalog()) == 50
    assert sum(r["file"].startswith("cc0/") for r in rows) == 2
    assert [(f.model, f.precision, f.path, f.size, f.sha384, f.url) for f in m.catalog()] == sorted(
        (r["model"], r["precision"], r["file"], int(r["size"]), r["sha384"], r["url"]) for r in rows
    )
    # The catalog really describes the shared files.
    xml, bin_ = m.model_files(DETECTOR)
    assert xml.name == f"{DETECTOR}.xml" and bin_.name == f"{DETECTOR}.bin"
    assert sha384((MODELS_DIR / bin_.path).read_bytes()) == bin_.sha384
    assert (MODELS_DIR / xml.path).stat().st_size == xml.size
    assert bin_.url.startswith("https://storage.openvinotoolkit.org/repositories/open_model_zoo/")


def test_models_precisions_and_defaults():
    names = m.models()
    assert names == sorted(set(names)) and len(names) == 14
    assert {DETECTOR, AGE_GENDER, "emotions-recognition-retail-0003"} <= set(names)
    assert m.precisions(DETECTOR) == ["FP16", "FP16-INT8", "FP32"]
    assert m.precisions(AGE_GENDER) == ["FP16-INT8"]
    assert m.precisions("dlib-cc0-age-v1") == ["FP32"] and [f.name for f in m.model_files("dlib-cc0-age-v1")] == ["age-v1.onnx"]
    assert m.DEFAULT_PRECISION == "FP16-INT8"
    assert m.default_precision(DETECTOR) == "FP16-INT8"
    assert m.default_precision("face-detection-0205") == "FP16"  # has no FP16-INT8
    assert [f.precision for f in m.model_files(DETECTOR, "FP32")] == ["FP32", "FP32"]


def test_unknown_model_or_precision(server, empty_models, cache):
    with pytest.raises(ModelError, match=r"^unknown model 'no-such-model' \(available: age-gender") as e:
        m.precisions("no-such-model")
    assert DETECTOR in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelError, match=r"^model age-gender-recognition-retail-0013 has no precision 'FP32' "):
        m.model_files(AGE_GENDER, "FP32")
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    for unknown in ("FP64", "INT8"):
        with pytest.raises(ModelError) as e:
            store.locate(DETECTOR, unknown)
        assert str(e.value) == f"precision {unknown!r}: unknown; choose one of FP16-INT8, FP16, FP32"
    with pytest.raises(ModelError, match="unknown model"):
        store.fetch("no-such-model")
    assert server.requests == []


def test_each_model_falls_back_to_its_nearest_precision():
    nearest = {
        # wanted: (detector, age-gender, emotion, head pose, face-detection-0205)
        "FP32": ("FP32", "FP16-INT8", "FP16-INT8", "FP16", "FP16"),
        "FP16": ("FP16", "FP16-INT8", "FP16-INT8", "FP16", "FP16"),
        "FP16-INT8": ("FP16-INT8", "FP16-INT8", "FP16-INT8", "FP16-INT8", "FP16"),
    }
    names = (DETECTOR, AGE_GENDER, "emotions-recognition-retail-0003", "head-pose-estimation-adas-0001", "face-detection-0205")
    for wanted, chosen in nearest.items():
        assert tuple(m.nearest_precision(name, wanted) for name in names) == chosen
        assert tuple(m.nearest_precision(name, wanted.lower()) for name in names) == chosen
    # FP16 and FP32 stand in for each other before the quantized files do.
    assert m.nearest_precision("face-detection-0200", "FP32") == "FP16"
    assert all(m.nearest_precision(name, p) in m.precisions(name) for name in m.models() for p in m.PRECISIONS)
    with pytest.raises(ModelError) as e:
        m.nearest_precision(DETECTOR, "bf16")
    assert str(e.value) == "precision 'bf16': unknown; choose one of FP16-INT8, FP16, FP32"


def test_locate_and_fetch_use_the_nearest_precision_and_say_so(server, empty_models, cache, warnings_log):
    store = m.ModelStore(models_dir=MODELS_DIR, cache_dir=cache, mirror=server.url)
    assert store.locate(DETECTOR, "fp32")[0] == MODELS_DIR / m.model_files(DETECTOR, "FP32")[0].path
    assert warnings_log.messages == []
    assert store.locate(AGE_GENDER, "FP32") == tuple(MODELS_DIR / f.path for f in m.model_files(AGE_GENDER))
    assert store.locate("head-pose-estimation-adas-0001", "FP32")[1].parent.name == "FP16"
    assert warnings_log.messages == [
        f"{AGE_GENDER} has no FP32; using FP16-INT8 (it has FP16-INT8)",
        "head-pose-estimation-adas-0001 has no FP32; using FP16 (it has FP16, FP16-INT8)",
    ]
    # `facelens models fetch --precision FP16` brings what `analyze --precision FP16` will use.
    downloaded = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url).fetch(AGE_GENDER, "FP16")
    assert downloaded == [cache / f.path for f in m.model_files(AGE_GENDER, "FP16-INT8")]
    assert warnings_log.messages[-1] == f"{AGE_GENDER} has no FP16; using FP16-INT8 (it has FP16-INT8)"


# --- resolution order ------------------------------------------------------------------------------


def test_explicit_dir_is_used_without_any_request(server, cache):
    store = m.ModelStore(models_dir=MODELS_DIR, cache_dir=cache, mirror=server.url)
    xml, bin_ = store.locate(DETECTOR)
    assert xml == MODELS_DIR / f"intel/{DETECTOR}/FP16-INT8/{DETECTOR}.xml"
    assert bin_ == MODELS_DIR / f"intel/{DETECTOR}/FP16-INT8/{DETECTOR}.bin"
    assert store.fetch(DETECTOR) == [xml, bin_]
    assert server.requests == []
    assert not cache.exists() or files_under(cache) == []


def test_missing_files_are_downloaded_into_the_cache_then_reused(server, empty_models, cache):
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url + "/")
    xml_file, bin_file = m.model_files(DETECTOR)
    xml, bin_ = store.locate(DETECTOR)
    assert (xml, bin_) == (cache / xml_file.path, cache / bin_file.path)
    assert server.requests == [f"/{xml_file.path}", f"/{bin_file.path}"]
    assert xml.read_bytes() == (MODELS_DIR / xml_file.path).read_bytes()
    assert sha384(bin_.read_bytes()) == bin_file.sha384
    assert files_under(cache) == [bin_, xml]  # nothing else, no .part files
    assert [(r.path, r.ok, r.actual_sha384) for r in store.verify() if r.file.package is None] == [
        (bin_, True, bin_file.sha384),
        (xml, True, xml_file.sha384),
    ]

    # A cache hit, even from a fresh store, asks the server nothing.
    again = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    assert again.locate(DETECTOR) == (xml, bin_)
    assert again.fetch(DETECTOR) == [xml, bin_]
    assert len(server.requests) == 2

    # force downloads again even though the cached copies are fine.
    assert again.fetch(DETECTOR, force=True) == [xml, bin_]
    assert len(server.requests) == 4


def test_download_shows_progress_on_stderr(server, empty_models, cache, capsys):
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    _, bin_ = store.fetch(AGE_GENDER, "FP16-INT8", progress=True)
    assert sha384(bin_.read_bytes()) == m.model_files(AGE_GENDER)[1].sha384
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{AGE_GENDER}.bin" in captured.err and f"{AGE_GENDER}.xml" in captured.err
    assert "2.2 MB" in captured.err  # rich's DownloadColumn with the catalog size as total


def test_store_defaults_come_from_the_environment(monkeypatch, tmp_path):
    (tmp_path / "m").mkdir()
    monkeypatch.setenv("FACELENS_MODELS_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("FACELENS_MODELS_URL", "http://mirror.example/omz/")
    store = m.ModelStore()
    assert (store.models_dir, store.cache_dir, store.mirror) == (
        tmp_path / "m",
        tmp_path / "c",
        "http://mirror.example/omz/",
    )
    file = m.model_files(DETECTOR)[1]
    assert store.url(file) == f"http://mirror.example/omz/{file.path}"

    for var in ("FACELENS_MODELS_DIR", "FACELENS_CACHE_DIR", "FACELENS_MODELS_URL"):
        monkeypatch.delenv(var)
    store = m.ModelStore()
    assert store.models_dir is None and store.mirror is None
    assert store.cache_dir.name == "models" and "facelens" in store.cache_dir.parts
    assert store.url(file) == file.url


def test_status_says_where_each_file_is(server, empty_models, cache):
    everything = m.ModelStore(models_dir=MODELS_DIR, cache_dir=cache).status()
    assert [f for f, _ in everything] == list(m.catalog())
    assert all(path == MODELS_DIR / f.path for f, path in everything)

    # Outside the folder and the cache, only the files an installed package carries are there.
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    assert all(path == (m.packaged_path(f) if f.package else None) for f, path in store.status())
    assert {f.model for f, path in store.status() if path is not None} == {"dlib-cc0-age-v1", "dlib-cc0-gender-v1"}
    store.fetch(DETECTOR)
    found = {f.path: path for f, path in store.status() if path is not None and f.package is None}
    assert found == {f.path: cache / f.path for f in m.model_files(DETECTOR)}


# --- failures --------------------------------------------------------------------------------------


def test_corrupted_download_is_refused_and_leaves_nothing(server, empty_models, cache):
    xml_file, bin_file = m.model_files(DETECTOR)
    server.behaviour[bin_file.path] = "corrupt"
    bad = sha384(flip((MODELS_DIR / bin_file.path).read_bytes()))
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    with pytest.raises(ChecksumError) as e:
        store.locate(DETECTOR)
    assert (
        f"; {server.url_of(bin_file)}: checksum mismatch (expected sha384 {bin_file.sha384}, got {bad}). Point facelens at"
        in str(e.value)
    )
    assert not (cache / bin_file.path).exists()
    assert files_under(cache) == [cache / xml_file.path]  # the good file stays, no .part
    assert server.requests == [f"/{xml_file.path}", f"/{bin_file.path}"]


def test_server_vanishing_mid_download(server, empty_models, cache):
    xml_file, bin_file = m.model_files(AGE_GENDER)
    server.behaviour[bin_file.path] = "drop"
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    with pytest.raises(ModelError) as e:
        store.fetch(AGE_GENDER)
    assert not isinstance(e.value, ChecksumError)
    assert (
        f"; download of {server.url_of(bin_file)} failed: "
        f"server closed the connection after {DROP_AFTER} of {bin_file.size} bytes. "
    ) in str(e.value)
    assert not (cache / bin_file.path).exists() and no_partial_files(cache)

    server.behaviour.clear()
    _, bin_ = store.fetch(AGE_GENDER)
    assert sha384(bin_.read_bytes()) == bin_file.sha384
    assert all(r.ok for r in store.verify()) and len([r for r in store.verify() if r.file.package is None]) == 2
    assert server.requests[-1] == f"/{bin_file.path}"  # the valid xml was not fetched twice
    assert server.requests.count(f"/{xml_file.path}") == 1


@pytest.mark.parametrize(("how", "reason"), [("short", "server sent {n} of {size} bytes"), ("long", "more than")])
def test_wrong_length_body_is_refused(server, empty_models, cache, how, reason):
    bin_file = m.model_files(DETECTOR)[1]
    server.behaviour[bin_file.path] = how
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    with pytest.raises(ModelError) as e:
        store.locate(DETECTOR)
    assert f"; download of {server.url_of(bin_file)} failed: " in str(e.value)
    assert reason.format(n=bin_file.size - 1000, size=bin_file.size) in str(e.value)
    assert not (cache / bin_file.path).exists() and no_partial_files(cache)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_ctrl_c_mid_download_leaves_nothing(server, tmp_path):
    bin_file = m.model_files(AGE_GENDER)[1]
    server.behaviour[bin_file.path] = "stall"
    dest = tmp_path / "dl" / bin_file.name
    code = (
        "import sys; from pathlib import Path; from facelens.models import download; "
        "download(sys.argv[1], Path(sys.argv[2]), size=int(sys.argv[3]), sha384=sys.argv[4])"
    )
    package_root = str(Path(m.__file__).parent.parent)  # wherever this run imports facelens from
    proc = subprocess.Popen(
        [sys.executable, "-c", code, server.url_of(bin_file), str(dest), str(bin_file.size), bin_file.sha384],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": package_root},
        stderr=subprocess.PIPE,
        encoding="utf-8",
        # Ctrl-C as a terminal gives it, whatever this test process has done with SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size >= DROP_AFTER for p in dest.parent.glob("*.part")):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the download never got going: {proc.communicate()[1] if proc.poll() else ''}")
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert list(dest.parent.iterdir()) == []


def test_http_404(server, empty_models, cache):
    bin_file = m.model_files(DETECTOR)[1]
    server.behaviour[bin_file.path] = "404"
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    with pytest.raises(ModelError) as e:
        store.fetch(DETECTOR)
    assert f"; download of {server.url_of(bin_file)} failed: HTTP 404 Not Found. " in str(e.value)
    assert not (cache / bin_file.path).exists() and no_partial_files(cache)


def refused_url() -> str:
    """A loopback URL nothing listens on: a stand-in for a machine without internet."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


HINT = (
    "Point facelens at a folder of models with --models-dir or FACELENS_MODELS_DIR, "
    "or run `facelens models fetch` where there is internet."
)


def test_offline_error_says_where_it_looked_and_what_to_do(empty_models, cache):
    offline = refused_url()
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=offline)
    xml_file = m.model_files(DETECTOR)[0]
    with pytest.raises(ModelError) as e:
        store.locate(DETECTOR)
    message = str(e.value)
    assert message.startswith(
        f"{DETECTOR} (FP16-INT8): {xml_file.path} is not in {empty_models} (models folder) or {cache} (cache); "
        f"download of {offline}/{xml_file.path} failed: cannot connect ("
    )
    assert message.endswith(f"). {HINT}")
    assert "refused" in message.lower() and "\n" not in message
    assert files_under(cache) == []

    # The head pose network has no FP32: the message names the precision that was looked for.
    pose_xml = m.model_files("head-pose-estimation-adas-0001", "FP16")[0]
    with pytest.raises(ModelError, match=rf"^head-pose-estimation-adas-0001 \(FP16\): {pose_xml.path} is not in "):
        store.fetch("head-pose-estimation-adas-0001", "FP32")


def test_offline_command_is_one_line_naming_the_cache(cache, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from facelens.cli import app

    from conftest import DATA

    offline = refused_url()
    monkeypatch.setenv("FACELENS_MODELS_DIR", "")
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(cache))
    monkeypatch.setenv("FACELENS_MODELS_URL", offline)
    xml_file = m.model_files(DETECTOR)[0]
    result = CliRunner().invoke(app, ["analyze", str(DATA / "compreface-samples" / "000_5.jpg"), "--jsonl", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(
        f"error: {DETECTOR} (FP16-INT8): {xml_file.path} is not in {cache} (cache; no models folder set); "
        f"download of {offline}/{xml_file.path} failed: cannot connect ("
    )
    assert line.endswith(HINT) and "\n" not in line and "Traceback" not in result.output


def test_models_dir_must_be_an_existing_folder(tmp_path, cache, monkeypatch):
    from typer.testing import CliRunner

    from facelens.cli import app

    from conftest import DATA

    missing, archive = tmp_path / "no-such-models", tmp_path / "models.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ModelError) as e:
        m.ModelStore(models_dir=missing, cache_dir=cache)
    assert str(e.value) == f"models folder {missing}: no such folder"
    with pytest.raises(ModelError) as e:
        m.ModelStore(models_dir=archive, cache_dir=cache)
    assert str(e.value) == f"models folder {archive}: not a folder"
    monkeypatch.setenv("FACELENS_MODELS_DIR", str(missing))
    with pytest.raises(ModelError) as e:
        m.ModelStore(cache_dir=cache)
    assert str(e.value) == f"FACELENS_MODELS_DIR={missing}: no such folder"

    # The command refuses it before opening anything, whether it comes from the option or the environment.
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(cache))
    monkeypatch.setenv("FACELENS_MODELS_URL", refused_url())  # were it passed over, nothing could be downloaded
    photo, out = DATA / "compreface-samples" / "000_5.jpg", tmp_path / "out.jsonl"
    runner = CliRunner(env={"COLUMNS": "500"})  # the usage error's box would wrap the paths
    for args, named, why in [
        (["analyze", photo, "--jsonl", out], missing, "does not exist"),
        (["analyze", photo, "--jsonl", out, "--models-dir", archive], archive, "is a file"),
        (["models", "list"], missing, "does not exist"),
        (["models", "verify", "--models-dir", archive], archive, "is a file"),
        (["models", "fetch"], missing, "does not exist"),
    ]:
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, (args, result.output)
        assert f"'{named}' {why}" in result.stderr and "FACELENS_MODELS_DIR" in result.stderr, result.stderr
        assert "Traceback" not in result.output and not out.exists() and files_under(cache) == []


def test_corrupt_file_in_models_dir_is_refused(server, tmp_path, cache):
    models_dir = tmp_path / "models"
    _, bin_ = copy_model(DETECTOR, models_dir)
    corrupted = flip(bin_.read_bytes())
    bin_.write_bytes(corrupted)
    bin_file = m.model_files(DETECTOR)[1]
    store = m.ModelStore(models_dir=models_dir, cache_dir=cache, mirror=server.url)
    expected = f"{bin_}: checksum mismatch (expected sha384 {bin_file.sha384}, got {sha384(corrupted)})"
    with pytest.raises(ChecksumError) as e:
        store.locate(DETECTOR)
    assert str(e.value) == expected
    # fetch does not overwrite or shadow the user's own folder either.
    with pytest.raises(ChecksumError):
        store.fetch(DETECTOR)
    assert bin_.read_bytes() == corrupted
    assert server.requests == [] and not cache.exists()


def test_truncated_file_in_models_dir_names_both_sizes(tmp_path, cache):
    models_dir = tmp_path / "models"
    xml, _ = copy_model(DETECTOR, models_dir)
    xml.write_bytes(xml.read_bytes()[:1000])
    xml_file = m.model_files(DETECTOR)[0]
    with pytest.raises(ChecksumError) as e:
        m.ModelStore(models_dir=models_dir, cache_dir=cache, mirror="http://127.0.0.1:9").locate(DETECTOR)
    assert str(e.value) == (
        f"{xml}: checksum mismatch (expected {xml_file.size} bytes, sha384 {xml_file.sha384}; "
        f"got 1000 bytes, sha384 {sha384(xml.read_bytes())})"
    )


def test_corrupt_file_in_cache_is_kept_until_fetch_replaces_it(server, empty_models, cache):
    _, bin_ = copy_model(DETECTOR, cache)
    corrupted = flip(bin_.read_bytes())
    bin_.write_bytes(corrupted)
    bin_file = m.model_files(DETECTOR)[1]
    store = m.ModelStore(models_dir=empty_models, cache_dir=cache, mirror=server.url)
    with pytest.raises(ChecksumError) as e:
        store.locate(DETECTOR)
    assert str(e.value).startswith(
        f"{bin_}: checksum mismatch (expected sha384 {bin_file.sha384}, got {sha384(corrupted)})"
    )
    assert bin_.read_bytes() == corrupted and server.requests == []

    assert store.fetch(DETECTOR)[1] == bin_
    assert server.requests == [f"/{bin_file.path}"]
    assert sha384(bin_.read_bytes()) == bin_file.sha384
    assert store.locate(DETECTOR)[1] == bin_


def test_verify_reports_good_and_bad_copies(server, tmp_path, cache):
    models_dir = tmp_path / "models"
    det_xml, det_bin = copy_model(DETECTOR, models_dir)
    corrupted = flip(det_bin.read_bytes())
    det_bin.write_bytes(corrupted)
    ag_xml, ag_bin = copy_model(AGE_GENDER, cache)
    everything = m.ModelStore(models_dir=models_dir, cache_dir=cache).verify()
    # The installed package's own copies are checked too.
    packaged = {r.path: r for r in everything if r.file.package is not None}
    assert set(packaged) == {m.packaged_path(f) for f in m.catalog() if f.package} and all(r.ok for r in packaged.values())
    results = {r.path: r for r in everything if r.file.package is None}
    assert set(results) == {det_xml, det_bin, ag_xml, ag_bin}
    assert {p for p, r in results.items() if not r.ok} == {det_bin}
    assert results[det_bin].actual_sha384 == sha384(corrupted) != results[det_bin].file.sha384
    assert results[ag_bin].file == m.model_files(AGE_GENDER)[1]
    assert results[ag_bin].actual_sha384 == results[ag_bin].file.sha384


def test_verified_files_are_not_hashed_again(tmp_path, cache):
    models_dir = tmp_path / "models"
    _, bin_ = copy_model(DETECTOR, models_dir)
    store = m.ModelStore(models_dir=models_dir, cache_dir=cache, mirror="http://127.0.0.1:9")
    assert store.locate(DETECTOR)[1] == bin_
    # Same size and mtime: the remembered hash is trusted, so the change goes unseen...
    st = bin_.stat()
    bin_.write_bytes(flip(bin_.read_bytes()))
    os.utime(bin_, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert store.locate(DETECTOR)[1] == bin_
    # ...until the file is touched.
    os.utime(bin_, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(ChecksumError):
        store.locate(DETECTOR)


# --- the command -----------------------------------------------------------------------------------


def test_command_fetches_into_the_cache_then_analyzes_offline_and_catches_corruption(server, cache, monkeypatch):
    from typer.testing import CliRunner

    from facelens.attribute_models import DEFAULT_FAMILY
    from facelens.cli import app

    from conftest import DATA

    runner = CliRunner()
    monkeypatch.setenv("FACELENS_MODELS_DIR", "")
    monkeypatch.setenv("FACELENS_CACHE_DIR", str(cache))
    monkeypatch.setenv("FACELENS_MODELS_URL", server.url)
    photo = DATA / "compreface-samples" / "000_5.jpg"

    fetched = runner.invoke(app, ["models", "fetch"])
    assert fetched.exit_code == 0, fetched.output
    # xml + bin of the detector, landmark, emotion and head-pose networks, and of omz's age-gender
    # network when omz is the default family (cc0's files come with its package, never downloaded).
    downloaded = 2 * (4 + (DEFAULT_FAMILY == "omz"))
    assert len(server.requests) == downloaded and len(files_under(cache)) == downloaded
    monkeypatch.setenv("FACELENS_MODELS_URL", "http://127.0.0.1:9/")  # nothing may be downloaded from now on
    analyzed = runner.invoke(app, ["analyze", str(photo), "--jsonl", "-"])
    assert analyzed.exit_code == 0, analyzed.output
    assert '"gender"' in analyzed.stdout and len(server.requests) == downloaded

    weights = next(p for p in files_under(cache) if p.name == "emotions-recognition-retail-0003.bin")
    good = weights.read_bytes()
    weights.write_bytes(flip(good))
    verified = runner.invoke(app, ["models", "verify"])
    assert verified.exit_code == 1 and "1 bad" in verified.stderr and sha384(flip(good)) in verified.stderr
    refused = runner.invoke(app, ["analyze", str(photo)])
    assert refused.exit_code == 1
    assert str(weights) in refused.stderr and sha384(good) in refused.stderr and sha384(flip(good)) in refused.stderr
    assert "Traceback" not in refused.output
