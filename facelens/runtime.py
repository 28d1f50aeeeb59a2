"""The one module that knows OpenVINO: compile a model and run uint8 BGR batches through it."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import hashlib
import io
import logging
import os
import queue
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import openvino as ov
from openvino.preprocess import PrePostProcessor

from .errors import ModelError
from .models import compiled_cache_dir

log = logging.getLogger(__name__)

_core: ov.Core | None = None
_core_lock = threading.Lock()


def core() -> ov.Core:
    """The process-wide OpenVINO core (creating one is slow, and devices are shared)."""
    global _core
    with _core_lock:
        if _core is None:
            _limit_malloc_arenas()
            _core = ov.Core()
        return _core


def _limit_malloc_arenas() -> None:
    """Cap glibc's malloc at two arenas, process-wide, before OpenVINO and the engine start threads.

    Frames are allocated by reader threads and freed by the engine thread; with glibc's default of
    one arena per thread the freed buffers stay spread over arenas and resident memory grew ~10%
    over the first few thousand frames before levelling off. Two arenas keep it flat (measured
    +0.3% against +9.5% from frame 1,000 to 6,000, and 60 MB less in all). It must happen before
    the threads exist: arenas already made are never merged.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
        except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
            pass


def available_devices() -> list[str]:
    """The devices OpenVINO finds on this machine: "CPU", "GPU", "GPU.1", "NPU", ..."""
    return list(core().available_devices)


# Devices made of others: they are not listed as available, and their compile errors name the part at fault.
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")


def check_device(device: str) -> None:
    """ModelError if `device` is not one OpenVINO finds here, with its reason and the devices that are."""
    if device.partition(":")[0] in _VIRTUAL_DEVICES:
        return
    available = available_devices()
    # "GPU" means the first of "GPU.0", "GPU.1"; a wrong index ("CPU.1") is left to the compiler's own message.
    if device.partition(".")[0] in {d.partition(".")[0] for d in available}:
        return
    try:
        core().get_property(device, "AVAILABLE_DEVICES")
        why = ""
    except RuntimeError as error:  # no such plugin, or it cannot load (a GPU without its OpenCL runtime)
        why = f" (OpenVINO: {_reason(error)})"
    raise ModelError(f"device {device}: not available here; available: {', '.join(available) or 'none'}{why}")


class InferenceError(RuntimeError):
    """An inference request failed or did not finish in time."""


BATCH_SIZES = (1, 2, 4, 8, 16)
"""The batch sizes a network is compiled for (up to its `max_batch`); other counts are split among them."""


class Network:
    """A model that takes uint8 BGR images of its own size in NHWC order and returns named outputs.

    `xml` is an OpenVINO IR file with its `weights`, or an ONNX file (weights None). `rgb` feeds the
    network RGB; `mean` (per channel, in the network's colour order) and `scale` normalise its input
    as (byte - mean) / scale. Layout and type conversion are folded into the compiled model, so callers hand over crops as
    they come from OpenCV, without float copies. The network is compiled for each of `BATCH_SIZES` up
    to `max_batch` (and `max_batch`): batch 1 here, the others at once on a compiling thread, so a
    stream never waits for a compile when a new number of faces turns up. A batch is split among the
    sizes compiled so far (13 faces: 8 + 4 + 1; 1 + 1 + ... until then).
    Compiled networks are kept in `cache_dir` (by default `facelens.models.compiled_cache_dir()`):
    the next run loads them instead of compiling. An unreadable, corrupt or stale entry is compiled
    again, and a cache folder that cannot be written only means no cache.
    By default models are compiled for
    throughput (one stream per core), so several requests in flight share the cores without threads
    spinning; hint="LATENCY" spreads each single request over all cores instead. `single_thread`
    gives each request one CPU thread: right for small networks whose requests from several frames
    already run side by side.
    """

    def __init__(
        self,
        xml: Path,
        weights: Path | None = None,
        device: str = "CPU",
        max_batch: int = 16,
        hint: str = "THROUGHPUT",
        single_thread: bool = False,
        *,
        rgb: bool = False,
        mean: tuple[float, float, float] | None = None,
        scale: float | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        check_device(device)
        try:
            # An ONNX file (weights None) holds its weights; OpenVINO reads it as it reads IR.
            model = core().read_model(str(xml)) if weights is None else core().read_model(str(xml), str(weights))
        except RuntimeError as error:
            raise ModelError(f"{xml}: cannot read model ({_reason(error)})") from None
        if len(model.inputs) != 1:
            raise ModelError(f"{xml}: expected one input, found {len(model.inputs)}")
        shape = model.inputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or not shape[2].is_static or not shape[3].is_static:
            raise ModelError(f"{xml}: expected an NCHW image input, found {shape}")
        self.name = xml.stem
        self.height = shape[2].get_length()
        self.width = shape[3].get_length()
        self.device = device
        self.max_batch = max_batch
        self.config: dict[str, object] = {"PERFORMANCE_HINT": hint}
        if device == "CPU" and hint == "THROUGHPUT":
            # Several compiled models (one per batch size, per network) each pin their threads to
            # the same cores while decoding floats: unpinned measured 4-8% less CPU per frame.
            self.config["ENABLE_CPU_PINNING"] = False
            if single_thread:
                self.config |= {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": 1}
        self.output_names = [output.get_any_name() for output in model.outputs]

        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        # A network's own colour order and normalisation are folded in too: callers always pass BGR bytes.
        steps = ppp.input().preprocess()
        if rgb:
            steps.reverse_channels()
        if mean is not None or scale is not None:
            steps.convert_element_type(ov.Type.f32)
            if mean is not None:
                steps.mean(list(mean))
            if scale is not None:
                steps.scale(scale)
        recipe = str(ppp)  # the preprocessing, for the cache key
        model = ppp.build()
        # A static shape per batch size: on CPU a batch of N runs about twice as fast as N single
        # calls, and a dynamic batch gave wrong results (landmarks-regression-retail-0009, OpenVINO 2026.4).
        self.batch_sizes = sorted({b for b in BATCH_SIZES if b < max_batch} | {max_batch})
        folder = _writable(cache_dir or compiled_cache_dir())
        cache = _Cache(folder, self.name, (xml, weights), recipe, device, self.config) if folder else None
        if model.inputs[0].get_partial_shape()[0] != ov.Dimension(1):
            model.reshape({model.inputs[0]: [1, self.height, self.width, 3]})
        larger = self.batch_sizes[1:]
        spare = model.clone() if larger else None  # the compiling thread's own copy to reshape
        # Batch 1 now, so a device that refuses the model fails here, not on the first frame; the
        # larger sizes on the compiling thread, while the first frames run as smaller batches.
        self._compiled: dict[int, ov.CompiledModel] = {1: self._compile(model, cache)}
        self._idle: dict[int, list[ov.InferRequest]] = {batch: [] for batch in self.batch_sizes}
        self._lock = threading.Lock()
        self._all_compiled = threading.Event()
        self._pending = len(larger)
        if not larger:
            self._all_compiled.set()
        for batch in larger:
            _compiler.put(lambda batch=batch: self._compile_later(batch, spare, cache))

    def _compile_later(self, batch: int, model: ov.Model, cache: _Cache | None) -> None:
        try:
            sized = model if batch == self.batch_sizes[-1] else model.clone()
            sized.reshape({sized.inputs[0]: [batch, self.height, self.width, 3]})
            compiled = self._compile(sized, cache)
        except ModelError as error:  # that size stays unused: its batches run as smaller ones
            log.warning("%s: batch size %d unused: %s", self.name, batch, error)
        else:
            with self._lock:
                self._compiled[batch] = compiled
        finally:
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._all_compiled.set()

    def _compile(self, model: ov.Model, cache: _Cache | None) -> ov.CompiledModel:
        """`model` compiled for this network's device, or loaded from `cache` (and kept there)."""
        global _foreground_used
        batch = model.inputs[0].get_partial_shape()[0].get_length()
        compiled = cache.load(batch) if cache is not None else None
        if compiled is None:
            try:
                compiled = core().compile_model(model, self.device, self.config)
            except RuntimeError as error:
                raise ModelError(
                    f"{self.name}: cannot compile for device {self.device}: {_reason(error)} "
                    f"(available devices: {', '.join(available_devices())})"
                ) from None
            if cache is not None:
                cache.keep(batch, compiled)
        if threading.current_thread() is not _compiler._thread:
            _foreground_used = time.monotonic()
        return compiled

    @property
    def size(self) -> tuple[int, int]:
        """Input (width, height) in pixels."""
        return self.width, self.height

    def _take(self, batch: int) -> ov.InferRequest:
        with self._lock:
            idle = self._idle[batch]
            return idle.pop() if idle else self._compiled[batch].create_infer_request()

    def _release(self, batch: int, request: ov.InferRequest) -> None:
        with self._lock:
            self._idle[batch].append(request)

    def _split(self, count: int) -> list[int]:
        """`count` images as compiled batch sizes, largest first: 13 -> 8, 4, 1 (no padding)."""
        with self._lock:
            ready = sorted(self._compiled, reverse=True)
        sizes = []
        while count:
            sizes.append(next(b for b in ready if b <= count))
            count -= sizes[-1]
        return sizes

    def prepare(self, batch_sizes: Iterable[int] = ()) -> None:
        """Wait until every batch size is compiled, then run each of `batch_sizes` once on blank
        images, so a benchmark's first timed call pays no first-use cost either."""
        self._all_compiled.wait()
        for batch in batch_sizes:
            self.infer(np.zeros((min(batch, self.max_batch), self.height, self.width, 3), np.uint8))

    def submit(self, images: np.ndarray) -> Inference:
        """Start inference on a uint8 batch (N, height, width, 3) without waiting for it."""
        if images.ndim != 4 or images.shape[1:] != (self.height, self.width, 3) or images.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected uint8 (N, {self.height}, {self.width}, 3), got {images.dtype} {images.shape}")
        sizes = self._split(len(images))
        inference = Inference(self)
        start = 0
        for batch in sizes:
            chunk, start = images[start : start + batch], start + batch
            request = self._take(batch)
            inference._parts.append((batch, request))
            try:
                request.start_async({0: chunk})
            except RuntimeError as error:
                raise InferenceError(f"{self.name}: {_reason(error)}") from None
        return inference

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run a uint8 batch (N, height, width, 3); return each output as an array with N rows."""
        return self.submit(images).result()


class _Compiler:
    """One thread that compiles networks' larger batch sizes in the order asked, once no other
    thread has compiled anything for `QUIET` seconds: a start-up should not share the CPU with sizes
    it may never use (one photo). At exit it stops after the compile under way, so a run that ends
    first does not wait for the rest."""

    QUIET = 0.5

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._start = threading.Lock()

    def put(self, job: Callable[[], None]) -> None:
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="facelens-compile", daemon=True)
                self._thread.start()
                atexit.register(self._stop)
        self._jobs.put(job)

    def _run(self) -> None:
        # Below the threads that run frames: on a busy box the first results come first.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while (job := self._jobs.get()) is not None and not self._stopping.is_set():
            while (wait := _foreground_used + self.QUIET - time.monotonic()) > 0:
                if self._stopping.wait(wait):
                    return
            job()

    def _stop(self) -> None:
        self._stopping.set()
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join()


_compiler = _Compiler()
_foreground_used = 0.0
"""When a thread other than the compiling one last compiled or loaded a network (time.monotonic())."""


class _Cache:
    """Compiled networks of one model kept as files, one per batch size, and loaded next run.

    OpenVINO's own CACHE_DIR is not used: it switches the process-wide locale while it loads and
    saves, so Python in other threads decoded subprocess output and opened text as ASCII meanwhile.
    Exporting and importing compiled models leaves the locale alone. An entry is named by everything
    the compiled network depends on (model files, preprocessing, device, settings, OpenVINO's
    version), so a changed model or upgrade makes a new entry; a damaged entry fails its checksum
    and is compiled and written again.
    """

    _MAGIC = b"FLCN"

    def __init__(
        self,
        folder: Path,
        name: str,
        files: tuple[Path, Path | None],
        recipe: str,
        device: str,
        config: dict[str, object],
    ) -> None:
        self.folder = folder
        self.name = name
        self.device = device
        self.config = config
        key = [ov.get_version(), device, _device_name(device), repr(sorted(config.items())), recipe]
        for file in files:
            if file is not None:
                with contextlib.suppress(OSError):  # read_model has just read them
                    stat = file.stat()
                    key.append(f"{file.resolve()} {stat.st_size} {stat.st_mtime_ns}")
        self._digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:24]

    def path(self, batch: int) -> Path:
        return self.folder / f"{self.name}-{batch}-{self._digest}.blob"

    def load(self, batch: int) -> ov.CompiledModel | None:
        """The compiled network for `batch`, or None when there is no good entry."""
        path = self.path(batch)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.debug("%s: cannot read %s: %s", self.name, path, error)
            return None
        blob = memoryview(data)[8:]
        if data[:4] != self._MAGIC or int.from_bytes(data[4:8], "little") != zlib.crc32(blob):
            log.warning("%s: compiled-network cache entry %s is damaged; compiling again", self.name, path)
            return None
        try:
            return core().import_model(io.BytesIO(blob), self.device, self.config)
        except RuntimeError as error:  # written by a build that this one cannot read
            log.warning("%s: cannot load %s (%s); compiling again", self.name, path, _reason(error))
            return None

    def keep(self, batch: int, compiled: ov.CompiledModel) -> None:
        """Write `compiled` as the entry for `batch`; one that cannot be written only costs the cache."""
        path = self.path(batch)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            blob = compiled.export_model().getbuffer()
            temporary.write_bytes(self._MAGIC + zlib.crc32(blob).to_bytes(4, "little") + blob)
            os.replace(temporary, path)  # whole or not at all, also beside another run writing it
        except (OSError, RuntimeError) as error:  # as a folder that cannot be written: no cache, quietly
            log.debug("%s: not kept in the cache %s (%s)", self.name, self.folder, _reason(error))
            with contextlib.suppress(OSError):
                temporary.unlink()


@functools.cache
def _device_name(device: str) -> str:
    """The device's full name (its model of CPU, ...): a compiled network is kept per machine."""
    try:
        return str(core().get_property(device, "FULL_DEVICE_NAME"))
    except RuntimeError:
        return ""


class Inference:
    """Inference in flight; `result()` waits for it. Each output has one row per image."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._parts: list[tuple[int, ov.InferRequest]] = []  # (batch size, request), emptied by `result()`
        self._outputs: dict[str, np.ndarray] | None = None

    def done(self) -> bool:
        """Whether `result()` would return without waiting."""
        return self._outputs is not None or all(request.wait_for(0) for _, request in self._parts)

    def result(self, timeout: float | None = None) -> dict[str, np.ndarray]:
        """The outputs; raises `InferenceError` if a request fails or takes longer than `timeout` seconds."""
        if self._outputs is not None:
            return self._outputs
        network = self.network
        chunks: dict[str, list[np.ndarray]] = {name: [] for name in network.output_names}
        parts, self._parts = self._parts, []
        failure = None
        for batch, request in parts:
            try:
                if timeout is None:
                    request.wait()
                elif not request.wait_for(max(1, int(timeout * 1000))):
                    request.cancel()
                    failure = failure or f"{network.name}: no result after {timeout:g} s"
                    continue  # a cancelled request is not reused
                for name in network.output_names:
                    chunks[name].append(request.get_tensor(name).data.copy())
            except RuntimeError as error:
                failure = failure or f"{network.name}: {_reason(error)}"
                continue
            network._release(batch, request)
        if failure:
            raise InferenceError(failure)
        if not parts:
            self._outputs = {name: np.empty((0,)) for name in network.output_names}
        else:
            self._outputs = {name: np.concatenate(c) for name, c in chunks.items()}
        return self._outputs


def _writable(folder: Path) -> Path | None:
    """`folder`, made if need be, if this process can write there; else None (no cache). The first
    time in a process, OpenVINO's old entries there are swept."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.debug("no compiled-network cache: %s", error)
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    if folder not in _swept:
        _swept.add(folder)
        _sweep(folder)
    return folder


_swept: set[Path] = set()
_OPENVINO_ENTRY = re.compile(r"\d+\.blob")


def _sweep(folder: Path) -> None:
    """Delete the entries OpenVINO's own cache left in `folder` when facelens used it (`<digits>.blob`,
    ~17 MB): nothing reads them any more, and no entry of `_Cache` is named so."""
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if _OPENVINO_ENTRY.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    entry.unlink()


# OpenVINO's messages open with one "Exception from <file>:<line>:" per layer the error passed
# through (or a failed check's location), and the reason comes last.
_LOCATION = re.compile(r"(?:Exception from|Check '.*?' failed at) \S+:\d+:")


def _reason(error: BaseException) -> str:
    """OpenVINO's reason for `error` on one line, without the source locations around it."""
    lines = (line.strip() for line in _LOCATION.sub("", str(error)).splitlines())
    return " ".join(line for line in lines if line) or type(error).__name__
