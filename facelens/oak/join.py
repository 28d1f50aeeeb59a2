"""Join a camera's frames, detections and per-face recognitions by sequence number.

A device sends three streams: the frames, the detections of each frame, and one recognition per
detected face (its crop through the attribute network), each message stamped with the sequence
number of the frame it came from. They may arrive out of order, twice, late, or not at all. `Join`
gives each frame with exactly its own detections and recognitions, in sequence order:

- a frame whose detections and one recognition per detection are in leaves complete;
- a frame still incomplete `timeout` seconds after its first message leaves with what is sure: its
  detections without recognitions when some are missing (which face a partial set belongs to cannot
  be known), no faces and a note when its detections never came;
- a frame whose image never came is dropped (counted in `lost`); a message for a frame that already
  left, or older than one that left, is late and dropped (counted in `late`);
- a second frame or detections message of one sequence number is a duplicate and dropped (counted
  in `duplicates`); more recognitions than detections make the frame's recognitions unusable.

Recognitions of one frame are taken in the order they came: the device crops and recognizes a frame's
faces one after the other in detection order, on blocking queues, so within a frame they keep it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

F = TypeVar("F")
D = TypeVar("D")
R = TypeVar("R")


@dataclass(frozen=True)
class Joined(Generic[F, D, R]):
    """One frame with its own detections and recognitions."""

    seq: int
    frame: F
    detections: tuple[D, ...]
    recognitions: tuple[R, ...] | None
    """One per detection, in detection order; None when they did not all come in time."""
    note: str | None = None
    """Why the frame left incomplete, if it did."""


@dataclass
class _Pending:
    first: float
    frame: object = None
    has_frame: bool = False
    detections: tuple | None = None
    recognitions: list = field(default_factory=list)
    broken: str | None = None


class Join(Generic[F, D, R]):
    """Frames joined with their detections and recognitions by sequence number (see the module).

    Args:
        timeout: seconds a frame may wait for its missing parts after its first message came.
        clock: monotonic seconds (tests pass their own).
        limit: most frames waiting at once; the oldest leaves as timed out beyond it.
    """

    def __init__(self, timeout: float = 1.0, clock: Callable[[], float] = time.monotonic, limit: int = 64) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.timeout = timeout
        self.clock = clock
        self.limit = limit
        self._pending: dict[int, _Pending] = {}
        self._done = -1  # the highest sequence number that left or was given up
        self.late = 0
        self.duplicates = 0
        self.lost = 0
        self.incomplete = 0

    def _slot(self, seq: int) -> _Pending | None:
        if seq <= self._done:
            self.late += 1
            return None
        slot = self._pending.get(seq)
        if slot is None:
            slot = self._pending[seq] = _Pending(self.clock())
        return slot

    def frame(self, seq: int, frame: F) -> None:
        slot = self._slot(seq)
        if slot is None:
            return
        if slot.has_frame:
            self.duplicates += 1
            return
        slot.frame, slot.has_frame = frame, True

    def detections(self, seq: int, detections: tuple[D, ...] | list[D]) -> None:
        slot = self._slot(seq)
        if slot is None:
            return
        if slot.detections is not None:
            self.duplicates += 1
            return
        slot.detections = tuple(detections)

    def recognition(self, seq: int, recognition: R) -> None:
        slot = self._slot(seq)
        if slot is None:
            return
        slot.recognitions.append(recognition)

    def _complete(self, slot: _Pending) -> bool:
        return slot.has_frame and slot.detections is not None and len(slot.recognitions) == len(slot.detections)

    def ready(self, flush: bool = False) -> list[Joined[F, D, R]]:
        """The frames that can leave now, in sequence order; `flush` gives up waiting for every frame
        (the end of the stream)."""
        out: list[Joined[F, D, R]] = []
        now = self.clock()
        while self._pending:
            seq = min(self._pending)
            slot = self._pending[seq]
            expired = flush or now - slot.first >= self.timeout or len(self._pending) > self.limit
            if not (self._complete(slot) or expired):
                break
            del self._pending[seq]
            self._done = seq
            if not slot.has_frame:
                self.lost += 1
                continue
            out.append(self._joined(seq, slot))
        return out

    def _joined(self, seq: int, slot: _Pending) -> Joined[F, D, R]:
        detections = slot.detections
        if detections is None:
            self.incomplete += 1
            return Joined(seq, slot.frame, (), None, "detections did not come in time")  # type: ignore[arg-type]
        got, wanted = len(slot.recognitions), len(detections)
        if got == wanted:
            return Joined(seq, slot.frame, detections, tuple(slot.recognitions))  # type: ignore[arg-type]
        self.incomplete += 1
        why = f"{got} recognitions for {wanted} faces"
        return Joined(seq, slot.frame, detections, None, why)  # type: ignore[arg-type]

    @property
    def waiting(self) -> int:
        return len(self._pending)
