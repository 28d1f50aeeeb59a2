"""Stage 4: from faces to people. Tracks the faces of one source, fuses each person's attributes,
decides which faces the attribute networks must see (the attribute budget), and keeps presence:
enter and exit events, dwell and attention time, and a best shot if asked for.

The engine calls `People.plan` with each frame's detections, in frame order, then runs the attribute
networks on the faces the plan picks, then calls `People.observe` with what they said, again in frame
order. Only video sources are tracked: frames without a timestamp (still images) are separate scenes,
and their faces are reported as they are.

Nothing biometric outlives the run: a person is a track number, boxes, times and fused labels; the
best-shot thumbnail exists only when `PeopleConfig.thumbnails` asks for it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .annotate import blur
from .crop import CropConfig, crop
from .fuse import FusionConfig, Observation, PersonFusion, face_quality, sharpness
from .track import Track, Tracker, TrackerConfig
from .types import (
    EMOTIONS,
    Attributes,
    Box,
    Detection,
    Event,
    Face,
    Frame,
    PersonRecord,
    Pose,
)

__all__ = ["Observed", "People", "PeopleConfig", "PeopleStats", "Plan"]


@dataclass(frozen=True)
class PeopleConfig:
    """How faces become people, and how much attribute work that saves."""

    tracker: TrackerConfig = TrackerConfig()
    fusion: FusionConfig = FusionConfig()
    every_frame: bool = False
    """Run the attribute networks on every face of every frame (no budget)."""
    detect_every: int = 1
    """Look for faces on every k-th frame only; in between, the tracker predicts where each face
    has moved, and the faces are reported at their predicted boxes with their person's labels (the
    attribute networks run on detected frames only). DL Streamer's inference interval."""
    max_detect_every: int = 8
    """Live sources: while the box falls behind, the engine detects on fewer frames, down to every
    this-many-th (or `detect_every`-th, if that is more), rather than drop frames; it goes back to
    `detect_every` once it keeps up. 8 at 25 fps still looks three times a second."""
    better_view: float = 0.1
    """Budget: a settled person's age and gender are measured again when a view is this much (10%)
    better than the best one measured so far."""
    recheck_seconds: float = 5.0
    """Budget: a settled person's age and gender are measured again at least this often, so that a
    tracker mistake (two people swapping ids) is noticed."""
    emotion_seconds: float = 0.5
    """Budget: a person's emotion is measured at least this often, as emotion changes within a visit
    (the fused emotion's half-life is 1.5 s, so 3 views a half-life keep it current)."""
    pose_seconds: float = 0.2
    """Budget: a person's head pose is measured at least this often (and with every age-gender or
    emotion run, to weigh that view); attention time follows the latest pose, and a glance shorter
    than this is too brief to count as attention."""
    attention_degrees: float = 20.0
    """A face counts as attentive (looking at the camera) while its yaw and pitch are both within this."""
    update_seconds: float = 10.0
    """A person still in view gets an updated record this often (source time), so a crash loses at
    most this much of a long visit."""
    thumbnails: bool = False
    """Keep a best-shot JPEG of each person (the view of highest quality). Off by default: it is the
    only image facelens would keep of a person."""
    blur_thumbnails: bool = False
    """Pixelate the best shots beyond recognition (`--blur`)."""
    thumbnail_size: int = 128
    """Longest side of a best shot, in pixels."""

    def __post_init__(self) -> None:
        if min(self.detect_every, self.max_detect_every) < 1:
            raise ValueError(f"detect_every and max_detect_every must be 1 or more, not {self.detect_every} and {self.max_detect_every}")
        if min(self.better_view, self.recheck_seconds, self.emotion_seconds, self.pose_seconds, self.update_seconds) < 0:
            raise ValueError("better_view and the *_seconds settings must be >= 0")
        if not 0 < self.attention_degrees <= 90:
            raise ValueError(f"attention_degrees must be within (0, 90], got {self.attention_degrees}")


_THUMBNAIL_CROP = CropConfig(scale=1.4, square=True)


@dataclass(eq=False)
class _Person:
    track_id: int
    fusion: PersonFusion
    first_seen: float
    last_seen: float
    frames: int = 0
    attention: float = 0.0
    pose: Pose | None = None
    """Head pose of the latest view, to predict the next view's quality before its pose is known."""
    best_measured: float = 0.0
    """Highest planned quality of a view sent to the age-gender network (ahead of the fusion, whose
    results arrive frames later)."""
    measured_at: float = -math.inf
    emotion_at: float = -math.inf
    pose_at: float = -math.inf
    updated_at: float | None = None
    best_shot: tuple[float, np.ndarray] | None = None


@dataclass(frozen=True)
class Plan:
    """What to do with one frame's faces: the engine runs the networks on the faces picked."""

    frame: Frame
    detections: tuple[Detection, ...]
    """The faces to report, most confident first."""
    track_ids: tuple[int | None, ...]
    sharpness: tuple[float | None, ...]
    """Of the faces the attribute networks see (None for the others: their quality is not needed)."""
    age_gender: tuple[int, ...]
    """Indexes of the faces the age-gender network must see."""
    emotion: tuple[int, ...]
    """Indexes of the faces the emotion network must see."""
    head_pose: tuple[int, ...]
    """Indexes of the faces the head-pose network must see."""
    entered: tuple[Track, ...] = ()
    ended: tuple[Track, ...] = ()
    tracked: bool = True
    """False for a frame without a timestamp: its faces are reported as they are."""
    detected: bool = True
    """False for a frame the detector skipped: its faces are the tracker's predictions."""


@dataclass
class Observed:
    """What `People.observe` and `People.finish` give back for one frame."""

    faces: tuple[Face, ...]
    events: tuple[Event, ...] = ()
    people: tuple[PersonRecord, ...] = ()


@dataclass
class PeopleStats:
    """People of a run, and how much attribute work the budget saved."""

    people: int = 0
    """Tracks confirmed as people."""
    faces: int = 0
    """Faces reported."""
    age_gender: int = 0
    """Faces the age-gender network saw."""
    emotion: int = 0
    """Faces the emotion network saw."""
    head_pose: int = 0
    """Faces the head-pose network saw."""


class People:
    """The people of one source. Feed `plan` and then `observe` every frame, both in frame order.

    Args:
        source: name of the source, for events and records.
        config: tracking, fusion and budget settings.
        confidence: detections below this are reported only when they extend a track (the detector
            should run with a threshold down to `config.tracker.low` so weak views keep tracks alive).
    """

    def __init__(self, source: str, config: PeopleConfig = PeopleConfig(), confidence: float = 0.5) -> None:
        self.source = source
        self.config = config
        self.confidence = confidence
        tracker = config.tracker
        # Only faces the user asked for start tracks; weaker ones may only extend them.
        self.tracker = Tracker(replace(tracker, high=confidence, low=min(tracker.low, confidence)))
        self._people: dict[int, _Person] = {}
        self.stats = PeopleStats()
        self.detect_every = config.detect_every
        """Detect on every this-many-th frame; the engine raises it for a live source that falls behind."""
        self._countdown = 0

    def should_detect(self, frame: Frame) -> bool:
        """Whether the detector must look at this frame: one video frame in `detect_every`, every
        still image. Call once per frame, in frame order, before `plan`."""
        if frame.timestamp is None:
            return True
        self._countdown -= 1
        if self._countdown > 0:
            return False
        self._countdown = self.detect_every
        return True

    @property
    def detector_threshold(self) -> float:
        """The confidence the detector must run at: down to the weakest detection a track accepts."""
        return self.tracker.config.low

    def plan(self, frame: Frame, detections: list[Detection] | None) -> Plan:
        """Assign this frame's detections to tracks and pick the faces the networks must see;
        `detections` None for a frame the detector skipped (see `should_detect`)."""
        timestamp = frame.timestamp
        if detections is None and timestamp is not None:
            tracks = self.tracker.predict(timestamp, frame.image)
            predicted = tuple(Detection(t.box, t.confidence) for t in tracks)
            self.stats.faces += len(predicted)
            return Plan(frame, predicted, tuple(t.id for t in tracks), (None,) * len(tracks), (), (), (), detected=False)
        detections = detections or []
        if timestamp is None:
            kept = tuple(d for d in detections if d.confidence >= self.confidence)
            everyone = tuple(range(len(kept)))
            return Plan(frame, kept, (None,) * len(kept), (None,) * len(kept), everyone, everyone, everyone, tracked=False)

        ids = self.tracker.update(detections, timestamp, frame.image)
        kept_ids: list[int | None] = []
        kept: list[Detection] = []
        for detection, track_id in zip(detections, ids):
            if track_id is not None or detection.confidence >= self.confidence:
                kept.append(detection)
                kept_ids.append(track_id)
        entered = tuple(t for t in self.tracker.active if t.id not in self._people)
        self.stats.people += len(entered)
        for track in entered:
            self._people[track.id] = _Person(track.id, PersonFusion(self.config.fusion), track.first_seen or timestamp, timestamp)
        ended = tuple(self.tracker.pop_ended())

        config = self.config
        sharp: list[float | None] = [None] * len(kept)
        age_gender: list[int] = []
        emotion: list[int] = []
        head_pose: list[int] = []
        for index, (detection, track_id) in enumerate(zip(kept, kept_ids)):
            if config.every_frame:
                sharp[index] = _sharpness(frame.image, detection.box)
                age_gender.append(index)
                emotion.append(index)
                head_pose.append(index)
                continue
            if track_id is None:
                continue  # not a person yet (a new face's first frame, or a one-frame false positive)
            person = self._people[track_id]
            measure = self._needs_age_gender(person, detection, frame, sharp, index)
            if measure:
                person.measured_at = timestamp
            feel = measure or person.fusion.fused.emotion == "unknown" or timestamp - person.emotion_at >= config.emotion_seconds
            if feel:
                emotion.append(index)
                person.emotion_at = timestamp
            if measure or feel or timestamp - person.pose_at >= config.pose_seconds:
                head_pose.append(index)
                person.pose_at = timestamp
            if (measure or feel) and sharp[index] is None:
                sharp[index] = _sharpness(frame.image, detection.box)
            if measure:
                age_gender.append(index)
        self.stats.faces += len(kept)
        self.stats.age_gender += len(age_gender)
        self.stats.emotion += len(emotion)
        self.stats.head_pose += len(head_pose)
        return Plan(frame, tuple(kept), tuple(kept_ids), tuple(sharp), tuple(age_gender), tuple(emotion), tuple(head_pose), entered, ended)

    def _needs_age_gender(self, person: _Person, detection: Detection, frame: Frame, sharp: list[float | None], index: int) -> bool:
        """Whether this view must go through the age-gender network (fills `sharp[index]` if it measured it)."""
        timestamp = frame.timestamp
        assert timestamp is not None
        if person.fusion.settled and timestamp - person.measured_at < self.config.recheck_seconds:
            # Better than the best view so far? Size, confidence and the latest pose bound the
            # quality from above; only a view passing that bound needs its sharpness measured.
            bar = person.best_measured * (1 + self.config.better_view)
            if face_quality(detection.box, detection.confidence, None, person.pose) <= bar:
                return False
            sharp[index] = _sharpness(frame.image, detection.box)
            if face_quality(detection.box, detection.confidence, sharp[index], person.pose) <= bar:
                return False
        if sharp[index] is None:
            sharp[index] = _sharpness(frame.image, detection.box)
        expected = face_quality(detection.box, detection.confidence, sharp[index], person.pose)
        person.best_measured = max(person.best_measured, expected)
        return True

    def observe(self, plan: Plan, attributes: list[Attributes] | None) -> Observed:
        """Fuse what the networks said about the planned faces; `attributes` None if they failed."""
        attributes = attributes or [Attributes()] * len(plan.detections)
        if not plan.tracked:
            return Observed(tuple(Face.of(d, a) for d, a in zip(plan.detections, attributes)))
        timestamp = plan.frame.timestamp
        assert timestamp is not None
        wall = time.time()
        faces = []
        for index, (detection, track_id, a) in enumerate(zip(plan.detections, plan.track_ids, attributes)):
            face = Face.of(detection, a)
            person = self._people.get(track_id) if track_id is not None else None
            if person is None:
                faces.append(face)
                continue
            person.pose = a.pose or person.pose
            # A view no attribute network saw adds no evidence; its quality was not measured.
            sharp = plan.sharpness[index]
            quality = None if sharp is None else face_quality(detection.box, detection.confidence, sharp, person.pose)
            fused = person.fusion.add(Observation(a, quality or 0.0, timestamp))
            if person.frames and person.pose is not None and person.pose.facing(self.config.attention_degrees):
                # The time since the previous sighting, capped so a gap in tracking is not counted.
                person.attention += min(timestamp - person.last_seen, self.tracker.config.lost_seconds)
            person.frames += 1
            person.last_seen = timestamp
            if self.config.thumbnails and quality is not None and (person.best_shot is None or quality > person.best_shot[0]):
                person.best_shot = (quality, self._thumbnail(plan.frame.image, detection.box))
            faces.append(replace(face, track_id=track_id, quality=quality, person=fused))

        events = [Event(self.source, t.id, "enter", t.first_seen, wall) for t in plan.entered]
        records = []
        for track in plan.ended:
            person = self._people.pop(track.id, None)
            if person is not None:
                events.append(Event(self.source, track.id, "exit", person.last_seen, wall))
                records.append(self._record(person))
        for person in self._people.values():
            due = person.first_seen if person.updated_at is None else person.updated_at
            if person.frames and timestamp - due >= self.config.update_seconds:
                person.updated_at = timestamp
                records.append(self._record(person))
        return Observed(tuple(faces), tuple(events), tuple(records))

    def finish(self) -> Observed:
        """End every person still in view (the source is over): their exit events and final records."""
        self.tracker.finish()
        wall = time.time()
        events, records = [], []
        for person in self._people.values():
            if person.frames:
                events.append(Event(self.source, person.track_id, "exit", person.last_seen, wall))
                records.append(self._record(person))
        self._people.clear()
        return Observed((), tuple(events), tuple(records))

    def _record(self, person: _Person) -> PersonRecord:
        fused = person.fusion.fused
        thumbnail = None
        if person.best_shot is not None:
            ok, jpeg = cv2.imencode(".jpg", person.best_shot[1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            thumbnail = jpeg.tobytes() if ok else None
        return PersonRecord(
            source=self.source,
            track_id=person.track_id,
            first_seen=person.first_seen,
            last_seen=person.last_seen,
            dwell_seconds=person.last_seen - person.first_seen,
            attention_seconds=person.attention,
            frames=person.frames,
            age=fused.age,
            age_uncertainty=fused.age_uncertainty,
            age_bucket=fused.age_bucket,
            minor=fused.minor,
            gender=fused.gender,
            gender_confidence=fused.gender_confidence if fused.gender != "unknown" else None,
            emotion=fused.emotion,
            emotion_probabilities=None
            if fused.emotion_probabilities is None
            else dict(zip(EMOTIONS, fused.emotion_probabilities)),
            thumbnail_jpeg=thumbnail,
        )

    def _thumbnail(self, image: np.ndarray, box: Box) -> np.ndarray:
        region = _THUMBNAIL_CROP.region(box)
        side = max(1, min(self.config.thumbnail_size, round(region.height)))
        shot = crop(image, region, (side, side))
        if self.config.blur_thumbnails:
            blur(shot, [Box(0, 0, side, side)])
        return shot


def _sharpness(image: np.ndarray, box: Box) -> float:
    height, width = image.shape[:2]
    visible = box.clip(width, height)
    x1, y1, x2, y2 = int(visible.x1), int(visible.y1), math.ceil(visible.x2), math.ceil(visible.y2)
    return sharpness(image[y1:y2, x1:x2]) if x2 > x1 and y2 > y1 else 0.0
