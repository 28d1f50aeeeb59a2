"""Per-person fusion of attributes over frames, weighted by how good each view of the face is.

Per-frame labels flicker: a blurred profile at 20 px gets the same say as a sharp frontal face at
200 px. `face_quality` scores each view (0..1) and `PersonFusion` accumulates one tracked person's
observations with those weights, showing a label only once the evidence suffices and changing it
only against clear evidence (hysteresis):

    fusion = PersonFusion()
    for frame in track:                            # one tracked person
        q = face_quality(face.box, face.confidence, sharpness(crop))
        shown = fusion.add(Observation(attributes, q, timestamp))
        print(shown.age_bucket, shown.gender, shown.emotion)

Pure numpy/OpenCV; bounded memory per person however long they are seen.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .types import EMOTIONS, Attributes, Box, Fused, Pose

__all__ = ["AGE_BUCKETS", "UNKNOWN", "Fused", "FusionConfig", "Observation", "PersonFusion", "Pose", "age_bucket", "face_quality", "sharpness"]

AGE_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("child", 0, 12),
    ("teen", 13, 19),
    ("20-29", 20, 29),
    ("30-44", 30, 44),
    ("45-64", 45, 64),
    ("65+", 65, 200),
)
"""(label, first year, last year), in whole years; a fractional age belongs to the year it has
completed (29.9 is "20-29"), so bucket edges are at 13, 20, 30, 45 and 65."""

UNKNOWN = "unknown"

# face_quality constants.
MIN_FACE = 16.0
"""Face height (px) at and below which a view counts for nothing: the detectors' smallest anchors,
and the attribute networks (62-64 px inputs) then see a 4x upscaled blur."""
FULL_FACE = 96.0
"""Face height (px) from which size no longer limits quality: larger than the networks' inputs
(62-64 px) with the 1.2x crop margin, so more pixels add nothing."""
SHARPNESS_HALF = 100.0
"""Laplacian variance (at <= 64 px, see `sharpness`) at which the sharpness factor is 1/2. Measured:
UTKFace crops median ~400 (5th percentile ~130), the same blurred with sigma 2 px ~100."""
POSE_SIGMA = 25.0
"""Degrees of yaw/pitch at which the frontalness factor is exp(-1/2) ~ 0.61: the attribute models
were trained mostly on near-frontal faces; at 45 deg (half profile) it is 0.2, at 70 deg 0.02."""
SHARPNESS_SIZE = 64
"""Crops are measured at most this big (the attribute networks' input size)."""


def age_bucket(age: float) -> str:
    """The `AGE_BUCKETS` label of an age in years (below 0 is "child", above 200 "65+")."""
    year = math.floor(age)
    for label, _, last in AGE_BUCKETS:
        if year <= last:
            return label
    return AGE_BUCKETS[-1][0]


def _bucket_range(label: str) -> tuple[float, float]:
    """[start, end) in years of a bucket label."""
    for name, first, last in AGE_BUCKETS:
        if name == label:
            return float(first), float(last + 1)
    raise KeyError(label)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a face crop (BGR uint8, or gray), higher is sharper.

    A crop larger than 64 px is first shrunk to fit 64 px (INTER_AREA): the attribute networks see
    it at that size, so blur that shrinking removes does not matter to them, and the figure means
    the same for a 40 px and a 2,000 px face (at native size a sharp 2,000 px face measures ~10, a
    sharp 100 px one ~1,000). Smaller crops are measured as they are, not upscaled, so smallness is
    left to the size factor of `face_quality`. Noise (sensor grain, GIF dithering) reads as
    sharpness: it is a cheap proxy, not a blur estimator.
    """
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 and crop.shape[2] == 3 else crop
    if gray.ndim != 2:
        raise ValueError(f"expected a BGR (H, W, 3) or gray (H, W) crop, got shape {crop.shape}")
    height, width = gray.shape
    if max(height, width) > SHARPNESS_SIZE:
        scale = SHARPNESS_SIZE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def face_quality(box: Box, confidence: float, sharpness: float | None = None, pose: Pose | None = None) -> float:
    """How much one view of a face should count, 0..1: the product of four factors.

    - size: face height 0 at <= `MIN_FACE` (16 px), rising linearly to 1 at >= `FULL_FACE` (96 px);
    - detector confidence, clipped to 0..1;
    - sharpness s (from `sharpness`): s / (s + `SHARPNESS_HALF`), K = 100; left out when None;
    - frontalness: exp(-(yaw^2 + pitch^2) / (2 * 25^2)) (`POSE_SIGMA`); left out when None. Roll is
      ignored: an in-plane tilt hides nothing of the face.

    A product, because any one bad factor makes the view unreliable on its own.
    """
    size = min(max((box.height - MIN_FACE) / (FULL_FACE - MIN_FACE), 0.0), 1.0)
    quality = size * min(max(float(confidence), 0.0), 1.0)
    if sharpness is not None:
        s = max(float(sharpness), 0.0)
        quality *= s / (s + SHARPNESS_HALF)
    if pose is not None:
        quality *= math.exp(-(pose.yaw**2 + pose.pitch**2) / (2 * POSE_SIGMA**2))
    return 0.0 if math.isnan(quality) else quality


@dataclass(frozen=True)
class Observation:
    """What the attribute networks said about one tracked person in one frame."""

    attributes: Attributes
    """None fields (a network switched off or skipped) contribute nothing to that attribute."""
    quality: float
    """Weight of this view, 0..1, normally from `face_quality`."""
    timestamp: float
    """Seconds (source time); only differences matter, for the emotion's decay."""


@dataclass(frozen=True)
class FusionConfig:
    """When fused attributes are shown and when a shown one changes.

    Weights are sums of `face_quality`: 1 is one ideal view (a sharp, frontal face of 96+ px found
    with full confidence); a 30 px face is worth ~0.15 a frame, a 20 px face ~0.04.
    """

    min_weight: float = 1.0
    """Total quality before an attribute is shown (else "unknown"): one ideal view, or a few
    seconds of a small face; below it a single lucky frame would decide."""
    gender_show: float = 0.8
    """Posterior probability needed to show a gender; one ideal view with p = 0.8 gives exactly it."""
    gender_switch: float = 0.9
    """Posterior of the other gender needed to switch a shown one (hysteresis): gender does not
    change within a visit, so switching needs stronger evidence than showing."""
    gender_agreement: float = 0.8
    """The views must also say the gender with this probability on average (quality-weighted mean of
    their log-odds), or it shows "unknown": views of one person are far from independent, so many
    lukewarm views adding up to a confident posterior is no evidence. Measured on faces whose gender
    we know by eye (benchmarks/gender_bias.py): age-gender-recognition-retail-0013 is right on 86-94%
    of women's and 96-97% of men's frontal utkface chips from 20 to 200 px, but on 29% of women's
    faces in the shared videos against 97% of men's, at every size and turn (p(male) 0.6-0.9 view
    after view). Of the 15 women and 24 men counted in those videos, 9 women were shown male; with
    this 5, and 7 unknown, while 17 men instead of 20 are shown male, none female. 0.5 asks
    nothing of the views (the posterior alone decides)."""
    gender_memory: float = 10.0
    """Weight of views that the mean of `gender_agreement` remembers (older views fade in proportion),
    so that a tracker that swaps two people recovers, as with `gender_max_log_odds`."""
    gender_max_log_odds: float = 10.0
    """The accumulated log-odds is clipped to +-this. Frames of one person are far from independent,
    so evidence should saturate, and a tracker that swaps two people must be recoverable: from the
    cap, ~8 ideal contrary views (p = 0.87) switch the gender, instead of never after an hour."""
    age_margin: float = 2.0
    """Years the fused age must be past a bucket edge before the shown bucket changes (hysteresis).
    The weighted median steps between observed ages, by a few years while views are few; 2 years
    absorbs most of that and stays well inside the model's own ~7-year error, so a real
    difference still shows."""
    age_max_uncertainty: float = 3.0
    """The bucket is "unknown" while the age uncertainty (years) is larger: under a third of the
    narrowest adult bucket (10 years), so the shown bucket is rarely one off from the evidence.
    With `age_min_spread` 5 it takes at least ~3 comparable views."""
    age_min_spread: float = 5.0
    """Floor (years) on the per-view spread of the age before dividing by sqrt(effective n): with one
    or two views the MAD is 0 and would claim certainty. A little above the age model's scatter
    between frames of one person (standard deviation 3.9 and 2.6 years for the two people of
    face-demographics-walking.gif), as frames of one visit are not independent."""
    age_memory: int = 64
    """Age observations kept per person, the highest weight ones: bounds memory and time for a
    person seen for hours; 64 views give a standard error ~1/8 of the spread."""
    emotion_half_life: float = 1.5
    """Seconds after which a view's say in the emotion halves: emotion is the only attribute that
    changes within a visit; 1.5 s bridges blinks and mouth movement, a held expression shows in ~1 s."""
    emotion_margin: float = 0.1
    """A new top emotion must beat the shown one's smoothed probability by this much to replace it."""
    minor_age: float = 18.0
    """`Fused.minor` is True when the fused age is below this."""

    def __post_init__(self) -> None:
        if not self.min_weight >= 0:
            raise ValueError(f"min_weight must be >= 0, got {self.min_weight}")
        if not 0.5 < self.gender_show <= self.gender_switch < 1:
            raise ValueError(f"need 0.5 < gender_show <= gender_switch < 1, got {self.gender_show}, {self.gender_switch}")
        if not (0.5 <= self.gender_agreement < 1 and self.gender_memory > 0):
            raise ValueError(f"need 0.5 <= gender_agreement < 1 and gender_memory > 0, got {self.gender_agreement}, {self.gender_memory}")
        if not self.gender_max_log_odds > _logit(self.gender_switch):
            raise ValueError("gender_max_log_odds must exceed the log-odds of gender_switch, or no gender could switch")
        if not (self.age_margin >= 0 and self.age_max_uncertainty > 0 and self.age_min_spread >= 0):
            raise ValueError("age_margin and age_min_spread must be >= 0, age_max_uncertainty > 0")
        if self.age_memory < 1:
            raise ValueError(f"age_memory must be >= 1, got {self.age_memory}")
        if not (self.emotion_half_life > 0 and self.emotion_margin >= 0):
            raise ValueError("emotion_half_life must be > 0 and emotion_margin >= 0")


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value splitting the total weight in half; halfway between two values when one splits it exactly.

    Equal weights give the ordinary median: [1, 2, 3, 4] -> 2.5.
    """
    order = np.argsort(values, kind="stable")
    values, weights = np.asarray(values, float)[order], np.asarray(weights, float)[order]
    cumulative = np.cumsum(weights)
    half = cumulative[-1] / 2
    i = int(np.searchsorted(cumulative, half * (1 - 1e-12)))
    i = min(i, len(values) - 1)
    if i + 1 < len(values) and math.isclose(cumulative[i], half, rel_tol=1e-9):
        return float((values[i] + values[i + 1]) / 2)
    return float(values[i])


def robust_age(ages: np.ndarray, weights: np.ndarray, min_spread: float = 0.0) -> tuple[float, float]:
    """(weighted median, its uncertainty) of ages with positive weights.

    uncertainty = max(1.4826 * weighted MAD, min_spread) / sqrt(effective n), with effective n =
    (sum w)^2 / sum w^2. The MAD scaled by 1.4826 estimates the standard deviation of normal
    scatter without being inflated by the age model's occasional wild frames (a profile read 20
    years off), as a weighted standard deviation would be; effective n counts how many views
    really carry the weight, so a hundred near-worthless views do not fake certainty.
    """
    median = weighted_median(ages, weights)
    spread = 1.4826 * weighted_median(np.abs(ages - median), weights)
    effective_n = weights.sum() ** 2 / np.square(weights).sum()
    return median, max(spread, min_spread) / math.sqrt(effective_n)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


class PersonFusion:
    """Fuses the observations of one tracked person.

    Age: weighted median of the best `age_memory` views; gender: quality-weighted sum of log-odds,
    shown only while the views also agree on it on average (`FusionConfig.gender_agreement`);
    emotion: exponentially time-decayed, quality-weighted mean of the probability vectors. Shown
    labels follow hysteresis rules (see `FusionConfig`), so one odd frame never flips them.
    Not thread-safe: one instance per person, fed in frame order.

    A posterior over the cc0 age network's 81 ages (`Attributes.age_distribution`) measured no
    better than the median on utkface faces seen 3 and 8 times (benchmarks/age_posterior.py): age
    MAE within 0.2 years, and its 95% interval held the true age only 75-79% of the time, the
    network's own distribution being overconfident (62% for one view).
    """

    def __init__(self, config: FusionConfig = FusionConfig()) -> None:
        self.config = config
        self._count = 0
        self._weight = 0.0
        # Age: a min-heap of (weight, sequence, age) keeping the highest-weight views; the sequence
        # breaks ties so that among equal weights the oldest is dropped first.
        self._ages: list[tuple[float, int, float]] = []
        self._age_weight = 0.0
        self._age_state: tuple[float, float] | None = None
        self._bucket = UNKNOWN
        self._log_odds = 0.0  # log(p_male / p_female), quality-weighted, clipped
        self._gender_weight = 0.0
        self._gender = UNKNOWN  # by the posterior, with hysteresis; shown only if the views agree
        self._agreement = 0.0  # quality-weighted sum of the views' log-odds, over at most gender_memory weight
        self._agreement_weight = 0.0
        self._emotion_sum = np.zeros(len(EMOTIONS))  # decayed sum of w * p
        self._emotion_norm = 0.0  # decayed sum of w
        self._emotion_weight = 0.0  # undecayed, for min_weight
        self._emotion_time: float | None = None
        self._emotion = UNKNOWN
        self._fused = self._snapshot()

    def add(self, observation: Observation) -> Fused:
        """Take one observation; return the new displayed state."""
        w = float(observation.quality)
        if not w >= 0 or math.isinf(w):
            raise ValueError(f"observation quality must be a finite number >= 0, got {observation.quality}")
        attributes = observation.attributes
        self._count += 1
        self._weight += w
        if w > 0:
            if attributes.age is not None and math.isfinite(attributes.age):
                self._add_age(float(attributes.age), w)
            if attributes.gender is not None:
                self._add_gender(attributes.gender.male, w)
        if attributes.emotion is not None:
            self._add_emotion(attributes.emotion.probabilities, w, float(observation.timestamp))
        self._fused = self._snapshot()
        return self._fused

    @property
    def fused(self) -> Fused:
        """The displayed state after the last observation."""
        return self._fused

    @property
    def settled(self) -> bool:
        """Whether gender and age bucket are shown and the age is certain enough: more views of no
        better quality would change nothing (the attribute budget of `facelens.people` asks this)."""
        fused = self._fused
        # A gender the views do not agree on is as settled as a shown one once they weigh enough to
        # show one: views of the same kind change their mean little (better ones are still measured).
        undecided = fused.gender == UNKNOWN and self._gender_weight < self.config.min_weight
        if self._count == 0 or undecided or fused.age_bucket == UNKNOWN:
            return False
        return fused.age_uncertainty is not None and fused.age_uncertainty <= self.config.age_max_uncertainty

    def _add_age(self, age: float, w: float) -> None:
        entry = (w, self._count, age)
        if len(self._ages) < self.config.age_memory:
            heapq.heappush(self._ages, entry)
        else:
            heapq.heappushpop(self._ages, entry)  # drops the lowest weight, maybe this one
        self._age_weight += w
        weights = np.fromiter((e[0] for e in self._ages), float, len(self._ages))
        ages = np.fromiter((e[2] for e in self._ages), float, len(self._ages))
        self._age_state = robust_age(ages, weights, self.config.age_min_spread)
        age, uncertainty = self._age_state
        config = self.config
        if self._age_weight < config.min_weight or uncertainty > config.age_max_uncertainty:
            self._bucket = UNKNOWN
        elif self._bucket == UNKNOWN:
            self._bucket = age_bucket(age)
        else:
            start, end = _bucket_range(self._bucket)
            if age < start - config.age_margin or age >= end + config.age_margin:
                self._bucket = age_bucket(age)

    def _add_gender(self, p_male: float, w: float) -> None:
        # A view the network is unsure of ("unknown") still adds its little evidence.
        config = self.config
        p_male = min(max(p_male, 0.02), 0.98)  # one overconfident frame must not outvote many
        cap = config.gender_max_log_odds
        self._log_odds = min(max(self._log_odds + w * _logit(p_male), -cap), cap)
        self._gender_weight += w
        self._agreement += w * _logit(p_male)
        self._agreement_weight += w
        if self._agreement_weight > config.gender_memory:
            fade = config.gender_memory / self._agreement_weight
            self._agreement *= fade
            self._agreement_weight = config.gender_memory
        p = _sigmoid(self._log_odds)
        if self._gender_weight < config.min_weight:
            return
        if self._gender == UNKNOWN:
            if p >= config.gender_show:
                self._gender = "male"
            elif 1 - p >= config.gender_show:
                self._gender = "female"
        elif self._gender == "male" and 1 - p >= config.gender_switch:
            self._gender = "female"
        elif self._gender == "female" and p >= config.gender_switch:
            self._gender = "male"

    def _add_emotion(self, probabilities: tuple[float, ...], w: float, timestamp: float) -> None:
        if self._emotion_time is not None:
            # Time never runs backwards here: a source restart just stops the decay.
            elapsed = max(timestamp - self._emotion_time, 0.0)
            decay = 0.5 ** (elapsed / self.config.emotion_half_life)
            self._emotion_sum *= decay
            self._emotion_norm *= decay
        self._emotion_time = timestamp if self._emotion_time is None else max(timestamp, self._emotion_time)
        self._emotion_sum += w * np.asarray(probabilities, float)
        self._emotion_norm += w
        self._emotion_weight += w
        if self._emotion_weight < self.config.min_weight or self._emotion_norm <= 0:
            return
        smoothed = self._emotion_sum / self._emotion_norm
        top = int(np.argmax(smoothed))
        shown = None if self._emotion == UNKNOWN else EMOTIONS.index(self._emotion)
        if shown is None or smoothed[top] >= smoothed[shown] + self.config.emotion_margin:
            self._emotion = EMOTIONS[top]

    def _shown_gender(self) -> str:
        """The gender by the posterior, if the views agree on it on average; else "unknown"."""
        if self._gender == UNKNOWN or self.config.gender_agreement == 0.5:
            return self._gender
        mean = self._agreement / self._agreement_weight
        need = _logit(self.config.gender_agreement)
        if (self._gender == "male" and mean >= need) or (self._gender == "female" and mean <= -need):
            return self._gender
        return UNKNOWN

    def _snapshot(self) -> Fused:
        age, uncertainty = self._age_state if self._age_state is not None else (None, None)
        minor = None if self._bucket == UNKNOWN or age is None else age < self.config.minor_age
        p_male = _sigmoid(self._log_odds)
        gender = self._shown_gender()
        if gender == "male":
            confidence = p_male
        elif gender == "female":
            confidence = 1 - p_male
        else:
            confidence = max(p_male, 1 - p_male)
        probabilities = None
        if self._emotion_norm > 0:
            probabilities = tuple((self._emotion_sum / self._emotion_norm).tolist())
        return Fused(
            age=age,
            age_uncertainty=uncertainty,
            age_bucket=self._bucket,
            minor=minor,
            gender=gender,
            gender_confidence=confidence,
            emotion=self._emotion,
            emotion_probabilities=probabilities,
            observations=self._count,
            weight=self._weight,
        )
