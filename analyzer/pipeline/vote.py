"""The vote stage: classifies batches of samples, votes per track, and finishes visits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from analyzer.backends.base import ClassifierBackend, FaceAttributes, classify_chips
from analyzer.core.visits import TrackAttributes
from analyzer.pipeline.footfall import VisitEnded
from analyzer.pipeline.sample import Sample
from analyzer.service.console import ErrorTally, log_line

if TYPE_CHECKING:
    from analyzer.outputs.metrics import Metrics
    from analyzer.pipeline.attributes import AttributeVoter


@dataclass(frozen=True)
class CameraDone:
    """Marker: a camera has sent its last sample and visit."""

    camera: str


class ClassifierStage:
    """Classifies batches of samples, votes per track, and finishes visits.

    Samples of a track that is already confident are skipped (unless ``naive``),
    so a clear face costs two or three classifier calls, not K.

    A backend that raises (a bad batch, a CUDA or ONNX Runtime error) costs
    that batch's votes, never a visit: the visits in it are finished with the
    votes their tracks already had (``unknown`` if none), the failure is
    counted (``analyzer_classifier_errors_total``) and the next batch is tried.
    A backend that hangs is taken over from another thread with
    :meth:`take_over`, which finishes the visits the stuck call holds and
    those still waiting; when the call returns, its late answer is dropped.
    """

    def __init__(
        self,
        backend: ClassifierBackend,
        voter: AttributeVoter,
        metrics: Metrics,
        naive: bool = False,
        captions: dict[tuple[str, int], str] | None = None,
        log: Callable[[str], None] = log_line,
    ) -> None:
        self.backend = backend
        self.log = log
        self.voter = voter
        self.metrics = metrics
        self.naive = naive
        self.captions = captions
        self.calls = 0
        self.faces = 0
        self.skipped = 0
        self.errors = ErrorTally()
        self._lock = threading.Lock()  # the voter and the batch in flight: the classifier thread and take_over
        self._in_flight: list[object] = []
        self._taken_over = False

    def process(self, items: list[object]) -> list[object]:
        """Run one batch; return visits and pass-through markers in arrival order."""
        samples = [item for item in items if isinstance(item, Sample)]
        with self._lock:
            wanted = [s for s in samples if self.naive or not self.voter.is_confident((s.camera, s.track_id))]
            self._in_flight, self._taken_over = items, False
        self.skipped += len(samples) - len(wanted)
        result = self._classify(wanted) if wanted else None
        with self._lock:
            self._in_flight = []
            if self._taken_over:
                return []  # its visits were finished while this call hung; its answer comes too late
            if result is not None:
                self._vote(wanted, result)
            return self._finish(items)

    def take_over(self, waiting: list[object]) -> list[object]:
        """Finish the visits of the batch in flight and of ``waiting`` (taken from the queue) without classifying.

        For a classifier that hangs: called from another thread, it returns
        their visits (with the votes they had) and markers, in order; their
        samples are dropped and counted.
        """
        with self._lock:
            items, self._in_flight = [*self._in_flight, *waiting], []
            self._taken_over = True
            for item in items:
                if isinstance(item, Sample):
                    self.metrics.samples_dropped.labels(camera=item.camera, reason="classifier_stalled").inc()
            return self._finish(items)

    def salvage(self, items: list[object]) -> list[object]:
        """After :meth:`process` itself failed on ``items``: their visits with unknown attributes, and the markers."""
        outputs: list[object] = []
        with self._lock:
            self._in_flight = []
            for item in items:
                if isinstance(item, VisitEnded):
                    self.voter.discard([(item.camera, track_id) for track_id in item.track_ids])
                    if item.counted:
                        outputs.append(item.visit(TrackAttributes.unknown()))
                elif not isinstance(item, Sample):
                    outputs.append(item)
        return outputs

    def _classify(self, wanted: list[Sample]) -> FaceAttributes | None:
        """The backend's answer for ``wanted``, or None (counted and noted) when it raises."""
        started = time.perf_counter()
        try:
            result = classify_chips(self.backend, np.stack([sample.chip for sample in wanted]), max_batch=len(wanted))
        except Exception as error:  # any backend failure: this batch votes nothing, the next one is tried
            self.metrics.classifier_errors.inc()
            for sample in wanted:
                self.metrics.samples_dropped.labels(camera=sample.camera, reason="classifier_error").inc()
            if self.errors.add(f"{type(error).__name__}: {error}"):
                self.log(
                    f"classifier failed: {type(error).__name__}: {error}; the faces of this batch are not classified "
                    "and its visits count with the votes they have (unknown if none); trying the next batch"
                )
            return None
        self.metrics.stage_seconds.labels(stage="classify").observe(time.perf_counter() - started)
        self.metrics.inference_batch.observe(len(wanted))
        self.metrics.classified_faces.inc(len(wanted))
        self.calls += 1
        self.faces += len(wanted)
        return result

    def _vote(self, wanted: list[Sample], result: FaceAttributes) -> None:
        finished = time.monotonic()
        for index, sample in enumerate(wanted):
            key = (sample.camera, sample.track_id)
            self.voter.add(
                key, result.age_probs[index], result.gender_probs[index], sample.quality, sample.face_presence
            )
            self.metrics.stage_seconds.labels(stage="end_to_end").observe(finished - sample.captured_at)
            if self.captions is not None:
                self.captions[key] = self.voter.caption(key)

    def _finish(self, items: list[object]) -> list[object]:
        """The visits ended among ``items`` with their attributes, and the other markers, in order."""
        outputs: list[object] = []
        for item in items:
            if isinstance(item, VisitEnded):
                keys = [(item.camera, track_id) for track_id in item.track_ids]
                if self.captions is not None:
                    for key in keys:
                        self.captions.pop(key, None)
                if item.counted:
                    outputs.append(item.visit(self.voter.finish(keys)))
                else:
                    self.voter.discard(keys)
            elif not isinstance(item, Sample):
                outputs.append(item)
        return outputs
