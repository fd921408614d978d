"""Is anything moving? A cheap look at a small grey copy of each frame, so an empty doorway skips the detector.

The decoded frame is shrunk once (to ``width`` pixels across, area
averaging, which also averages camera noise away) and compared with a
background that adapts slowly. Three things must not keep it awake:

- **light changes** (clouds, a door's shadow, auto exposure): each small
  frame and the background are compared after taking away their own mean
  brightness, so the whole picture getting lighter or darker is no change;
- **camera noise**: a pixel counts as changed only past ``threshold`` grey
  levels (on the shrunk copy, each pixel an average of many, where noise is a
  fraction of that), and the picture only when ``min_changed`` of its pixels did;
- **a flickering screen** or a blinking sign: a pixel that keeps changing
  (in more than ``restless_share`` of the recent frames) is left out until it
  settles; a walker changes each place only while passing.

It answers for one frame in a fraction of a millisecond; the detector costs
several. The caller still searches every frame while a face is in view.

The background learns slow changes away (someone who came in unseen sitting
down, a face slowly turning up), so the caller also searches a still picture
now and then; :meth:`MotionGate.changed_since_search` says whether that is
worth it: whether the picture differs from the one last searched, compared
after taking away each one's mean brightness and contrast (light changes
scale both), so an empty doorway is not searched again and again for
nothing (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import cv2
import numpy as np


class MotionGate:
    """Says per frame whether the picture moved; keeps its own small background.

    Example:
        >>> gate = MotionGate()
        >>> gate.moving(np.zeros((720, 1280, 3), np.uint8))
        True
    """

    def __init__(
        self,
        width: int = 160,
        threshold: float = 18.0,
        min_changed: float = 0.002,
        adapt: float = 0.05,
        restless_share: float = 0.4,
        memory_frames: int = 75,
        recheck_threshold: float = 9.0,
    ) -> None:
        self.width = width
        self.threshold = threshold
        self.min_changed = min_changed
        self.adapt = adapt
        self.restless_share = restless_share
        self._restless_decay = 1.0 - 1.0 / memory_frames
        self.recheck_threshold = recheck_threshold  # grey levels, as ``threshold``, for a change since a search
        self._background: np.ndarray | None = None
        self._activity: np.ndarray | None = None  # per pixel: how often it changed lately (0..1)
        self._looked_at: np.ndarray | None = None  # the last frame looked at, small and grey
        self._at_search: np.ndarray | None = None  # the last frame searched, small and grey

    def _small(self, image: np.ndarray) -> np.ndarray:
        """The frame at ``width`` across, grey, less its mean brightness.

        A linear shrink to twice the width (hundredths of a millisecond at 720p), then 2x2 area averages.
        """
        height = max(round(image.shape[0] * self.width / image.shape[1]), 1)
        coarse = cv2.resize(image, (2 * self.width, 2 * height), interpolation=cv2.INTER_LINEAR)
        small = cv2.resize(coarse, (self.width, height), interpolation=cv2.INTER_AREA)
        grey = (cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small).astype(np.float32)
        return grey - float(grey.mean())

    def moving(self, image: np.ndarray, frames: int = 1) -> bool:
        """Whether ``image`` (BGR, any size) differs from the recent background; the first frame always does.

        ``frames``: how many frames of the stream this one stands for (those passed over before it and
        itself), so the background learns and the restless pixels settle at the same pace in time.
        """
        small = self._looked_at = self._small(image)
        if self._background is None or self._background.shape != small.shape:
            self._background, self._activity = small, np.zeros_like(small)
            return True
        changed = np.abs(small - self._background) > self.threshold
        assert self._activity is not None
        decay = self._restless_decay**frames
        self._activity *= decay
        self._activity[changed] += 1.0 - decay
        moved = self._enough(np.count_nonzero(changed & self._steady()))
        rate = self.adapt * (0.2 if moved else 1.0)  # a person standing still is not learned away at once
        # 1 - (1 - rate) is not ``rate`` to the last bit: a gate looking at every frame keeps its old sums.
        learned = rate if frames == 1 else 1.0 - (1.0 - rate) ** frames
        self._background += learned * (small - self._background)
        return bool(moved)

    def searched(self) -> None:
        """The detector searched the frame last looked at: :meth:`changed_since_search` compares with it."""
        if self._looked_at is not None:
            self._at_search = self._looked_at.copy()

    def changed_since_search(self) -> bool:
        """Whether the frame last looked at differs from the last one searched, beyond light and noise.

        Against that picture, not the background: a change too slow to move the gate still adds up. Both are
        taken at the searched one's mean and contrast, over the pixels that do not keep changing (a screen
        neither counts nor shifts the others). With nothing searched or looked at yet, it did change.
        """
        now, then = self._looked_at, self._at_search
        if now is None or then is None or now.shape != then.shape:
            return True
        steady = self._steady()
        if not steady.any():
            return True
        now, then = now[steady], then[steady]
        now, then = now - now.mean(), then - then.mean()
        spread_now, spread_then = float(now.std()), float(then.std())
        if min(spread_now, spread_then) >= _FLAT_SPREAD:  # light scaled the picture: scale it back
            now *= spread_then / spread_now
        return self._enough(np.count_nonzero(np.abs(now - then) > self.recheck_threshold))

    def _steady(self) -> np.ndarray:
        """Pixels that have not kept changing lately: a flickering screen's are left out of every comparison."""
        assert self._activity is not None
        return self._activity < self.restless_share

    def _enough(self, changed_pixels: int) -> bool:
        """Whether that many changed pixels make the picture changed (``min_changed`` of all of them)."""
        assert self._activity is not None
        return bool(changed_pixels >= self.min_changed * self._activity.size)


#: A small picture whose grey levels spread less than this is flat (dark, a lens cap): nothing to scale by.
_FLAT_SPREAD = 4.0
