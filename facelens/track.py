"""Multi-face tracking: a stable id for each face across the frames of one source.

ByteTrack-style (Zhang et al., 2022) on SORT's machinery: each track has a constant-velocity Kalman
filter over (cx, cy, w/h, h); every frame, confident detections are matched to the tracks' predicted
boxes by IoU with the Hungarian method, then weak detections get a second chance to extend the tracks
left over, so a face keeps its id while the detector hesitates. Weak detections never start a
track, and a new track gets an id only once it is confirmed, so a one-frame false positive gets none.

Given the frames, the tracker also follows the camera (BoT-SORT's camera motion compensation): the
picture's shift, turn and zoom since the previous frame, measured by optical flow on a 320 px
thumbnail, moves every track's state before matching. A handheld camera that pans moves every face
at once; without this, a face the detector misses for a few frames is sought where the camera's
earlier motion would have taken it, and comes back as a new person. A scene cut (no common motion)
ends every track: faces after a cut are new ones, not the nearest of before.

Nothing biometric is kept: a track is boxes, times and counters.

```python
analyzer = Analyzer(confidence=0.1)  # weak detections too: they keep tracks alive
tracker = Tracker()
with open_source("street.mp4") as source:
    for frame in source:
        ids = tracker.update(analyzer.detect(frame.image), frame.timestamp, frame.image)
        for track in tracker.pop_ended():
            print("exit", track.id, track.last_seen)
tracker.finish()
```
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .types import Box, Detection

__all__ = ["CameraMotion", "Track", "Tracker", "TrackerConfig"]


@dataclass(frozen=True)
class TrackerConfig:
    """How detections become tracks."""

    high: float = 0.5
    """Detections at or above this confidence start tracks and are matched first."""
    low: float = 0.1
    """Detections from `low` up to `high` only extend existing tracks (ByteTrack's second association);
    below `low` they are ignored. ByteTrack's value; measured against 0.2 on street-720p.mp4 (with
    camera motion followed), it keeps the faces of people seen turning or in profile: tracks of at
    least 0.8 s went from 21 to 30 (about 30 people show their face, counted by eye)."""
    match_iou: float = 0.2
    """Minimum IoU between a confident detection and a track's predicted box."""
    low_match_iou: float = 0.4
    """Minimum IoU for a weak detection: stricter, as weak ones are more often wrong."""
    weak_misses: int = 5
    """A weak detection may extend a track unmatched for up to this many frames, not only one matched
    in the previous frame (ByteTrack's rule): a face the detector loses for a blink comes back weak as
    often as strong. Not longer, as a coasting prediction drifts: on street-720p.mp4, of 16 weak
    detections that took up a track after more than 5 frames, at least 5 were another face, a hand
    or a phone; within 5 frames they were the same face."""
    lost_seconds: float = 1.5
    """A track unmatched for longer than this ends (by frame timestamps)."""
    lost_frames: int = 30
    """The same in frames, used when timestamps are None."""
    confirm_hits: int = 3
    """A new track is confirmed, and gets an id, once matched in this many consecutive frames; on the
    first frame of a run every confident detection is confirmed at once. Measured: 2 -> 3 took
    office-entry-432p.mp4 from 8 people to 3 (the 5 dropped were glimpses of 1-4 frames, one of
    them a pair of legs) and the first 10 s of street-720p.mp4 from 41 to 36; 4 gained little more."""
    duplicate: float = 0.5
    """A new face whose box and the box of a face tracked in the same frame overlap by this share of
    the smaller one is the detector finding that face twice (a large profile, say), not a new person:
    it starts no track."""
    cut: float = 0.1
    """With frames given: a scene cut is declared, and every track ends, when fewer than this share
    of the thumbnail's corner points follow one camera motion. Measured: 0.03-0.04 at the three cuts
    of speaker-360p.mp4, at least 0.21 on every other frame of the shared videos (0.4 while the
    street camera whips round)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"need 0 <= low <= high <= 1, not low={self.low} and high={self.high}")
        if not (0.0 < self.match_iou <= 1.0 and 0.0 < self.low_match_iou <= 1.0):
            raise ValueError("match_iou and low_match_iou must be within (0, 1]")
        if self.lost_seconds < 0 or self.lost_frames < 0 or self.confirm_hits < 1 or self.weak_misses < 0:
            raise ValueError("need lost_seconds >= 0, lost_frames >= 0, weak_misses >= 0 and confirm_hits >= 1")
        if not (0.0 < self.duplicate <= 1.0 and 0.0 <= self.cut < 1.0):
            raise ValueError("duplicate must be within (0, 1] and cut within [0, 1)")


# Noise of the Kalman filter, relative to the box height so that it works at any face size; the values
# of DeepSORT and ByteTrack. The aspect ratio gets small fixed noise: a face's shape hardly changes.
_POSITION_NOISE = 1 / 20
_VELOCITY_NOISE = 1 / 160


def _spread(height: float, position: float, velocity: float) -> np.ndarray:
    """Standard deviations of the state (cx, cy, w/h, h and their velocities) for a box `height` tall."""
    p, v = position * height, velocity * height
    return np.array([p, p, 1e-2, p, v, v, 1e-5, v])


def _box_to_z(box: Box) -> np.ndarray:
    cx, cy = box.center
    return np.array([cx, cy, box.width / box.height, box.height])


def _state_box(mean: np.ndarray) -> Box:
    cx, cy, aspect, height = mean[:4]
    width = aspect * height
    return Box(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


@dataclass(eq=False)
class Track:
    """One face followed over frames. Read its attributes; only `Tracker` changes them."""

    id: int
    """From 1, in order of confirmation; 0 while tentative (never seen outside the tracker)."""
    box: Box
    """Kalman-smoothed box in frame pixels: predicted while the face is unmatched; for an ended
    track, the box of its last matched frame."""
    first_seen: float | None
    """Timestamp of the first matched frame (None without timestamps)."""
    last_seen: float | None
    """Timestamp of the last matched frame."""
    first_frame: int
    """Number of the first matched frame, counting `Tracker.update` calls from 0."""
    last_frame: int
    """Number of the last matched frame."""
    hits: int = 1
    """Frames in which a detection was matched."""
    misses: int = 0
    """Frames since the last match."""
    confirmed: bool = False
    """Whether the track is reported; tentative ones never leave the tracker."""
    confidence: float = 1.0
    """Detector confidence of the last matched detection."""
    _mean: np.ndarray = field(init=False, repr=False)
    _covariance: np.ndarray = field(init=False, repr=False)
    _matched_box: Box = field(init=False, repr=False)

    def __post_init__(self) -> None:
        z = _box_to_z(self.box)
        self._mean = np.concatenate([z, np.zeros(4)])
        # Position known to about a detection's error; velocity unknown, hence the wide spread.
        self._covariance = np.diag(np.square(_spread(z[3], 2 * _POSITION_NOISE, 10 * _VELOCITY_NOISE)))
        self._matched_box = self.box

    def _predict(self, step: float) -> None:
        """Move the state `step` frames ahead at constant velocity."""
        if self.misses:
            # ByteTrack's rule: a face out of sight keeps moving but stops growing or shrinking, so
            # a long coast cannot blow the box up or shrink it to nothing.
            self._mean[7] = 0.0
        motion = np.eye(8)
        motion[:4, 4:] = step * np.eye(4)
        noise = step * np.diag(np.square(_spread(self._mean[3], _POSITION_NOISE, _VELOCITY_NOISE)))
        self._mean = motion @ self._mean
        self._covariance = motion @ self._covariance @ motion.T + noise
        self._mean[3] = max(self._mean[3], 1.0)  # a box keeps some height, so w/h stays defined
        self.box = _state_box(self._mean)

    def _update(self, detection: Detection, timestamp: float | None, frame: int) -> None:
        """Correct the state with the detection matched in this frame."""
        box = detection.box
        self.confidence = detection.confidence
        p = _POSITION_NOISE * self._mean[3]
        noise = np.diag(np.square([p, p, 1e-1, p]))  # of a detection
        projected = self._covariance[:4, :4] + noise
        gain = np.linalg.solve(projected, self._covariance[:4, :]).T  # P H^T S^-1, as S is symmetric
        self._mean = self._mean + gain @ (_box_to_z(box) - self._mean[:4])
        self._covariance = self._covariance - gain @ projected @ gain.T
        self.box = self._matched_box = _state_box(self._mean)
        self.last_seen, self.last_frame = timestamp, frame
        self.hits += 1
        self.misses = 0

    def _warp(self, motion: np.ndarray) -> None:
        """Carry the state into the next frame's pixels after the camera moved (a 2x3 similarity)."""
        turn = motion[:, :2]
        zoom = math.sqrt(abs(np.linalg.det(turn)))
        transform = np.eye(8)
        transform[:2, :2] = transform[4:6, 4:6] = turn
        transform[3, 3] = transform[7, 7] = zoom
        self._mean = transform @ self._mean
        self._mean[:2] += motion[:, 2]
        self._covariance = transform @ self._covariance @ transform.T
        self.box = _state_box(self._mean)

    def _end(self) -> None:
        # Report where the face was last seen, not where a coast extrapolated it.
        self.box = self._matched_box


def _iou(boxes_a: Sequence[Box], boxes_b: Sequence[Box]) -> np.ndarray:
    """IoU of every box of `boxes_a` with every box of `boxes_b`, shape (len(a), len(b))."""

    def corners(boxes: Sequence[Box]) -> np.ndarray:
        return np.array([(box.x1, box.y1, box.x2, box.y2) for box in boxes], dtype=np.float64).reshape(-1, 4)

    a, b = corners(boxes_a)[:, None], corners(boxes_b)[None, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def _overlap(box: Box, others: Sequence[Box]) -> float:
    """The largest share of the smaller box that `box` and one of `others` have in common."""
    best = 0.0
    for other in others:
        width = min(box.x2, other.x2) - max(box.x1, other.x1)
        height = min(box.y2, other.y2) - max(box.y1, other.y1)
        if width > 0 and height > 0:
            best = max(best, width * height / max(min(box.area, other.area), 1e-9))
    return best


def _associate(
    tracks: list[Track], candidates: list[int], detections: Sequence[Detection], min_iou: float
) -> tuple[list[tuple[Track, int]], list[Track], list[int]]:
    """Match tracks to detections (by index) maximizing total IoU; pairs below `min_iou` do not count.

    Returns the pairs, the tracks left and the detection indexes left.
    """
    if not tracks or not candidates:
        return [], list(tracks), list(candidates)
    iou = _iou([t.box for t in tracks], [detections[i].box for i in candidates])
    # Zero the pairs that may not match before solving, so that they cannot steer the assignment.
    iou[iou < min_iou] = 0.0
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize takes ~0.4 s to import

    rows, cols = linear_sum_assignment(iou, maximize=True)
    pairs = [(tracks[r], candidates[c]) for r, c in zip(rows, cols) if iou[r, c] > 0]
    matched_tracks = {t for t, _ in pairs}
    matched_detections = {i for _, i in pairs}
    return (
        pairs,
        [t for t in tracks if t not in matched_tracks],
        [i for i in candidates if i not in matched_detections],
    )


class Tracker:
    """Gives each face a stable id across the frames of one source.

    Call `update` once per frame, in order, with all of the frame's detections (including those with
    confidence down to `TrackerConfig.low`) and, for a moving camera or a video with cuts, the frame
    itself. Use one tracker per source.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._tracks: list[Track] = []  # alive: confirmed (matched or coasting) and tentative
        self._ended: list[Track] = []  # confirmed tracks that ended and were not popped yet
        self._last_id = 0
        self._frame = -1
        self._run_start = 0  # frame number where the current run (since creation or finish) began
        self._last_time: float | None = None
        # Recent timestamp gaps; their median is the frame interval that Kalman velocities count in.
        self._gaps: deque[float] = deque(maxlen=30)
        self._camera = CameraMotion()
        self._camera_frame = -1  # the frame the camera's motion was last measured to
        self._camera_moving = False

    @property
    def active(self) -> list[Track]:
        """Confirmed tracks alive: matched in this frame or unmatched within the lost budget."""
        return [t for t in self._tracks if t.confirmed]

    def update(
        self, detections: Sequence[Detection], timestamp: float | None = None, image: np.ndarray | None = None
    ) -> list[int | None]:
        """Follow the faces into the next frame.

        `image` is the frame itself (BGR or gray): given every frame, the tracker follows the camera's
        motion and ends every track at a scene cut. Returns the track id of each detection, in the
        given order: None for a detection that belongs to no confirmed track (a weak one that matched
        nothing, or one starting a tentative track).
        """
        config = self.config
        self._move_on(timestamp, image)

        # Empty boxes cannot enter the filter (it keeps w/h); they get no id, like ignored detections.
        usable = [i for i, d in enumerate(detections) if d.confidence >= config.low and d.box.area > 0]
        strong = [i for i in usable if detections[i].confidence >= config.high]
        weak = [i for i in usable if detections[i].confidence < config.high]
        # Tracks matched in the previous frame, whose prediction is sharp; coasting ones; new ones.
        recent = [t for t in self._tracks if t.confirmed and not t.misses]
        coasting = [t for t in self._tracks if t.confirmed and t.misses]
        tentative = [t for t in self._tracks if not t.confirmed]

        # 1. Confident detections, to recent tracks first: in a crowd, a coasting track's prediction
        #    drifts onto a neighbour's face, which must not steal it from its own track (DeepSORT's cascade).
        first, recent_left, strong_left = _associate(recent, strong, detections, config.match_iou)
        second, coasting_left, strong_left = _associate(coasting, strong_left, detections, config.match_iou)
        # 2. Weak detections only extend tracks seen a moment ago, with a closer fit (ByteTrack's second
        #    association, widened from the previous frame to `weak_misses` frames), recent ones first.
        third, recent_left, weak_left = _associate(recent_left, weak, detections, config.low_match_iou)
        brief = [t for t in coasting_left if t.misses <= config.weak_misses]
        extended, brief_left, weak_left = _associate(brief, weak_left, detections, config.low_match_iou)
        coasting_left = [t for t in coasting_left if t not in brief or t in brief_left]
        # 3. Tentative tracks take what remains, confident detections first, then weak ones. Unlike
        #    ByteTrack, a weak detection may confirm a track that a confident one started, as a small
        #    face's confidence often wavers around `high` from frame to frame.
        fourth, tentative_left, strong_left = _associate(tentative, strong_left, detections, config.match_iou)
        fifth, tentative_left, _ = _associate(tentative_left, weak_left, detections, config.low_match_iou)
        pairs = first + second + third + extended + fourth + fifth
        unmatched = recent_left + coasting_left

        ids: list[int | None] = [None] * len(detections)
        for track, index in pairs:
            track._update(detections[index], timestamp, self._frame)
            # Detecting on every k-th frame (see `predict`), two matches as far apart as
            # `confirm_hits` consecutive frames show the face as long: a glimpse still gets no id.
            seen_for = self._frame - track.first_frame + 1
            if not track.confirmed and (track.hits >= config.confirm_hits or (track.hits >= 2 and seen_for >= config.confirm_hits)):
                self._confirm(track)
            if track.confirmed:
                ids[index] = track.id

        # A tentative track must be matched in consecutive frames: one miss and it is gone, unseen.
        gone = set(tentative_left)
        for track in unmatched:
            track.misses += 1
            if self._expired(track, timestamp):
                gone.add(track)
                track._end()
                self._ended.append(track)
        self._tracks = [t for t in self._tracks if t not in gone]

        first_frame_of_run = self._frame == self._run_start
        tracked = [t.box for t, _ in pairs]
        for index in strong_left:
            if tracked and _overlap(detections[index].box, tracked) >= config.duplicate:
                continue  # the same face found twice
            track = Track(0, detections[index].box, timestamp, timestamp, self._frame, self._frame, confidence=detections[index].confidence)
            if first_frame_of_run or config.confirm_hits <= 1:
                # Faces already in view when a source starts are real as surely as they will ever be.
                self._confirm(track)
                ids[index] = track.id
            self._tracks.append(track)
        return ids

    def predict(self, timestamp: float | None = None, image: np.ndarray | None = None) -> list[Track]:
        """Follow the faces into a frame nobody looked for them in (detection runs on every k-th
        frame only): every track moves on at its own velocity, none is missed or ended.

        Returns the confirmed tracks seen in the last frame that had detections, at their predicted
        boxes: where their faces are now.
        """
        # The camera is followed on these frames too only while it moves: a still camera's
        # frames cost a prediction and nothing more.
        self._move_on(timestamp, image if self._camera_moving else None)
        return [t for t in self._tracks if t.confirmed and not t.misses]

    def _move_on(self, timestamp: float | None, image: np.ndarray | None) -> None:
        """Into the next frame: every track predicted at its velocity and carried with the camera."""
        self._frame += 1
        step = self._step(timestamp)
        motion = None if image is None else self._camera.update(image, measure=bool(self._tracks))
        agreement = self._camera.agreement if image is not None else None
        if agreement is not None and agreement < self.config.cut:
            self._end_all()  # a scene cut: nothing carries over
            motion = None
        if image is not None:
            frames, self._camera_frame = self._frame - self._camera_frame, self._frame
            self._camera_moving = motion is not None and _moving(motion, image.shape[1], frames)
        for track in self._tracks:
            track._predict(step)
            if motion is not None:
                track._warp(motion)

    def pop_ended(self) -> list[Track]:
        """Confirmed tracks that ended since the last call, in the order they ended."""
        ended, self._ended = self._ended, []
        return ended

    def finish(self) -> list[Track]:
        """End every track (the source is over); returns every confirmed track not popped yet.

        The tracker can then go on with a new run; ids keep counting up.
        """
        self._end_all()
        self._run_start = self._frame + 1
        self._last_time = None
        self._gaps.clear()
        self._camera = CameraMotion()
        self._camera_moving = False
        return self.pop_ended()

    def _end_all(self) -> None:
        for track in self._tracks:
            if track.confirmed:
                track._end()
                self._ended.append(track)
        self._tracks = []

    def _confirm(self, track: Track) -> None:
        self._last_id += 1
        track.id = self._last_id
        track.confirmed = True

    def _step(self, timestamp: float | None) -> float:
        """How many frame intervals passed since the previous frame.

        1 without timestamps; with them, the gap over the typical gap, so that a frame dropped in live
        mode moves the prediction twice as far instead of breaking the constant-velocity model.
        """
        previous, self._last_time = self._last_time, timestamp
        if timestamp is None or previous is None:
            return 1.0
        gap = timestamp - previous
        if gap <= 0:  # a repeated or backward timestamp says nothing: count it as an ordinary frame
            return 1.0
        self._gaps.append(gap)
        return gap / statistics.median(self._gaps)

    def _expired(self, track: Track, timestamp: float | None) -> bool:
        if timestamp is not None and track.last_seen is not None:
            return timestamp - track.last_seen > self.config.lost_seconds
        return track.misses > self.config.lost_frames


def _moving(motion: np.ndarray, width: int, frames: int) -> bool:
    """Whether `motion`, measured over `frames` frames of a picture `width` pixels wide, is a camera
    moving: by more than 0.3% of the width, or turning or zooming by more than 0.3%, a frame."""
    shift = math.hypot(*motion[:, 2]) / width
    turn_or_zoom = float(np.abs(motion[:, :2] - np.eye(2)).max())
    return max(shift, turn_or_zoom) > 0.003 * max(frames, 1)


class CameraMotion:
    """How the picture moved between consecutive frames: a 2x3 similarity (shift, turn, zoom) in
    frame pixels, from sparse optical flow on a small gray thumbnail (RANSAC keeps the motion most
    points share, the background's, not a walker's). 1-5 ms a frame on this project's 2-core test
    machine (street-720p.mp4: 5 ms; flat studio backgrounds, fewer corners: 1 ms), whatever the size
    of the frame; only measured while a track is alive."""

    WIDTH = 320
    """Thumbnail width: enough corners to follow, cheap at any frame size."""
    CORNERS = 100

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self.agreement: float | None = None
        """Share of the previous thumbnail's corners that follow the motion last measured (near 0
        at a scene cut); None when nothing was measured."""

    def update(self, image: np.ndarray, measure: bool = True) -> np.ndarray | None:
        """The motion from the previous image to this one; None for the first image, after a size
        change, without texture enough to tell or no common motion, or when not asked to `measure`."""
        scale = self.WIDTH / image.shape[1]
        small = cv2.resize(image, (self.WIDTH, max(1, round(image.shape[0] * scale))), interpolation=cv2.INTER_LINEAR)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        previous, self._previous = self._previous, gray
        self.agreement = None
        if not measure or previous is None or previous.shape != gray.shape:
            return None
        corners = cv2.goodFeaturesToTrack(previous, self.CORNERS, 0.01, 8)
        if corners is None or len(corners) < 10:
            return None  # a blank picture: nothing to follow, and no sign of a cut either
        moved, found, _ = cv2.calcOpticalFlowPyrLK(previous, gray, corners, None)
        found = found.ravel() == 1
        motion, inliers = None, None
        if found.sum() >= 3:
            motion, inliers = cv2.estimateAffinePartial2D(corners[found], moved[found], method=cv2.RANSAC, ransacReprojThreshold=1.0)
        self.agreement = 0.0 if inliers is None else float(inliers.sum()) / len(corners)
        if motion is None:
            return None
        motion[:, 2] /= scale
        return motion
