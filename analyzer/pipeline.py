"""Wiring: capture → detect → track → sample → batch → classify → footfall → publish.

Threads: one capture thread and one processing thread per camera, one
classifier thread for all cameras (cross-camera batches), and the caller's
thread for publishing. Stages talk through queues of plain dataclasses, in
one direction. Stage logic lives in the stage modules; this file only wires.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from analyzer import __version__
from analyzer.appearance import FaceLikeness
from analyzer.attributes import UNKNOWN, AttributeVoter
from analyzer.batch import Batcher
from analyzer.capture import CaptureWorker, EndOfStream, Frame, LatestFrameSlot, StreamStatus
from analyzer.classify import CameraDone, ClassifierBackend, ClassifierStage
from analyzer.config import CameraConfig, Config
from analyzer.console import log_line
from analyzer.detect import FaceDetector, KeypointRefiner
from analyzer.exporter import Metrics
from analyzer.footfall import DIRECTIONS, FootfallCounter, Visit, random_visit_id
from analyzer.liveness import Heartbeats
from analyzer.preview import PreviewSink, annotate
from analyzer.publisher import ZmqPublisher
from analyzer.report import RunReport
from analyzer.report_files import DailyReportFiles
from analyzer.sample import Sample, Sampler
from analyzer.track import ByteTracker

FPS_WINDOW_S = 2.0


@dataclass
class RunOptions:
    """Per-run switches that are not configuration."""

    naive: bool = False  # classify every face in every frame (the bench's comparison)
    preview: Path | None = None  # write annotated video here
    show: bool = False  # show annotated frames in a window
    log: Callable[[str], None] = log_line
    new_visit_id: Callable[[], str] = random_visit_id
    keep_sample_log: bool = False  # keep per-sample probabilities on visits (accuracy analysis)
    heartbeats: Heartbeats = field(default_factory=Heartbeats)  # each loop beats every turn: /healthz, watchdog
    report_files: DailyReportFiles | None = None  # --report 'report-{date}.json': written as the day goes


class Pipeline:
    """One analyzer run over the configured cameras.

    Example:
        >>> pipeline = Pipeline(config, backend, Metrics(CollectorRegistry()), publisher)  # doctest: +SKIP
        >>> report = pipeline.run(threading.Event())  # doctest: +SKIP
    """

    def __init__(
        self,
        config: Config,
        backend: ClassifierBackend,
        metrics: Metrics,
        publisher: ZmqPublisher | None,
        options: RunOptions | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.metrics = metrics
        self.publisher = publisher
        self.options = options or RunOptions()
        self.grouping = config.grouping()
        self.report = RunReport(
            [camera.id for camera in config.cameras],
            self.grouping,
            lined={camera.id for camera in config.cameras if camera.line is not None},
        )
        self.classify_queue: queue.Queue = queue.Queue()
        self.output_queue: queue.Queue = queue.Queue()
        self.labels: dict[tuple[str, int], str] = {}
        heartbeats, stall_after_s = self.options.heartbeats, config.health.stall_after_s
        metrics.loops_stalled.set_function(lambda: len(heartbeats.stalls(stall_after_s)))  # read at each scrape
        # Models are loaded here, before any thread starts, so a missing model
        # file is one clear error at start-up rather than a dead camera; the
        # likeness first, as a failing one must not leave MediaPipe graphs open.
        self.likeness = FaceLikeness.for_tracker(config.tracker)
        self.detectors = {camera.id: FaceDetector.from_config(camera.detector) for camera in config.cameras}
        self.refiners = {
            camera.id: KeypointRefiner() if config.sampler.refine_keypoints else None for camera in config.cameras
        }
        self.classifier = ClassifierStage(
            backend,
            AttributeVoter.for_model(
                self.grouping,
                backend.metadata,
                confident_at=config.sampler.confident_at,
                samples_per_track=config.sampler.samples_per_track,
                keep_sample_log=self.options.keep_sample_log,
            ),
            metrics,
            naive=self.options.naive,
            labels=self.labels if (self.options.preview or self.options.show) else None,
        )

    def _close_detectors(self) -> None:
        """Release every camera's MediaPipe graphs once the camera threads are done (closing silences stderr)."""
        for camera_id, detector in self.detectors.items():
            detector.close()
            refiner = self.refiners[camera_id]
            if refiner is not None:
                refiner.close()

    # --- threads -------------------------------------------------------

    def _camera_loop(self, camera: CameraConfig, slot: LatestFrameSlot, preview: PreviewSink | None) -> None:
        detector = self.detectors[camera.id]
        refiner = self.refiners[camera.id]
        tracker = ByteTracker.from_config(self.config.tracker, max_lost_s=self.config.footfall.linger_s)
        sampler = Sampler(
            self.backend.metadata.input_size,
            self.config.sampler.samples_per_track,
            self.config.sampler.min_face_px,
            self.config.sampler.interval_s,
            refine=None if refiner is None else refiner.refine,
            max_classified_per_track=self.config.sampler.calls_per_track,
        )
        counter = FootfallCounter.for_camera(
            camera, self.config.footfall, self.config.tracker.min_similarity, self.options.new_visit_id
        )
        if camera.recorded_at is not None:  # a recording: its visits happened then, not now
            counter.clock_origin = camera.recorded_at.timestamp()
        stats = self.report.stats[camera.id]
        window_start, window_frames = time.monotonic(), 0
        last_capture = time.monotonic()
        errors = 0
        loop = f"camera {camera.id}"
        try:
            while True:
                self.options.heartbeats.beat(loop)
                item = slot.get(timeout=0.5)
                if item is None:
                    continue
                if isinstance(item, EndOfStream):
                    break
                try:
                    self._process_frame(camera, item, detector, tracker, sampler, counter, preview)
                except Exception as error:  # one bad frame must not stop this camera or the others
                    self.metrics.frames_dropped.labels(camera=camera.id, reason="error").inc()
                    if not errors:
                        self.options.log(f"[{camera.id}] frame {item.index} skipped: {type(error).__name__}: {error}")
                    errors += 1
                last_capture = item.captured_at
                stats.frames += 1
                window_frames += 1
                now = time.monotonic()
                if now - window_start >= FPS_WINDOW_S:
                    stats.fps = window_frames / (now - window_start)
                    window_start, window_frames = now, 0
        finally:
            for ended in counter.close(last_capture):
                self.classify_queue.put(ended)
            tracker.reset()
            stats.faces_in_view = 0
            self.metrics.faces_in_view.labels(camera=camera.id).set(0)
            self.classify_queue.put(CameraDone(camera.id))
            self.options.heartbeats.finished(loop)

    def _process_frame(
        self,
        camera: CameraConfig,
        frame: Frame,
        detector: FaceDetector,
        tracker: ByteTracker,
        sampler: Sampler,
        counter: FootfallCounter,
        preview: PreviewSink | None,
    ) -> None:
        """Detect, track, sample and count one frame; queue samples and ended visits."""
        stage = self.metrics.stage_seconds
        if not counter.clock_origin:
            counter.clock_origin = time.time() - frame.timestamp
        if frame.index % camera.detector.every_n_frames:
            return  # not a detection frame: the tracker predicts across the gap at the next one
        started = time.perf_counter()
        rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
        faces = detector.detect(rgb, int(frame.timestamp * 1000))
        detected = time.perf_counter()
        size = (frame.image.shape[1], frame.image.shape[0])
        update = tracker.update_with_appearance(faces, rgb, frame.timestamp, self.likeness)
        tracked = time.perf_counter()
        samples = sampler.select(camera.id, rgb, update.tracks, frame.timestamp, frame.captured_at, self.options.naive)
        sampled = time.perf_counter()
        for sample in samples:
            self.classify_queue.put(sample)
        for ended in counter.update(
            update.tracks, update.ended, frame.timestamp, frame.captured_at, size, update.exited
        ):
            self.classify_queue.put(ended)
        sampler.forget(update.ended)
        stage.labels(stage="detect").observe(detected - started)
        stage.labels(stage="track").observe(tracked - detected)
        stage.labels(stage="sample").observe(sampled - tracked)
        self.metrics.faces_in_view.labels(camera=camera.id).set(counter.faces_in_view)
        self.report.stats[camera.id].faces_in_view = counter.faces_in_view
        self.report.stats[camera.id].faces_seen += len(update.tracks)
        if preview is not None:
            counted = self.report.headline(camera.id)
            canvas = annotate(frame.image, camera.id, update.tracks, self.labels, counted, counter.line, counter.zones)
            preview.write(camera.id, canvas)

    def _classifier_loop(self) -> None:
        batcher: Batcher = Batcher(
            self.classify_queue,
            lambda item: isinstance(item, Sample),
            self.config.classifier.max_batch,
            self.config.classifier.max_wait_ms / 1000,
        )
        remaining = len(self.config.cameras)
        while remaining:
            self.options.heartbeats.beat("classifier")
            for output in self.classifier.process(batcher.next_batch()):
                if isinstance(output, CameraDone):
                    remaining -= 1
                self.output_queue.put(output)
        self.options.heartbeats.finished("classifier")

    # --- publishing (caller's thread) ----------------------------------

    def _publish(self, kind: str, camera: str, fields: dict[str, object]) -> None:
        if self.publisher is None:
            return
        sent = self.publisher.publish(kind, camera, fields)
        self.metrics.zmq_messages.labels(outcome="sent" if sent else "dropped").inc()

    def _handle_visit(self, visit: Visit) -> None:
        started = time.perf_counter()
        self.report.add(visit)
        attributes = visit.attributes
        self.metrics.visitors.labels(  # direction "" (no label) on a camera without a line
            camera=visit.camera,
            age_group=attributes.age_group,
            gender=attributes.gender,
            direction=visit.direction or "",
        ).inc()
        self.metrics.dwell.labels(camera=visit.camera).observe(visit.dwell_s)
        if visit.direction is not None:
            self.metrics.line_crossings.labels(camera=visit.camera, direction=visit.direction).inc()
        for zone, seconds in visit.zone_dwell_s.items():
            if seconds > 0:
                self.metrics.zone_dwell.labels(camera=visit.camera, zone=zone).observe(seconds)
        self._publish("visit", visit.camera, visit.to_dict())
        self.metrics.stage_seconds.labels(stage="publish").observe(time.perf_counter() - started)

    def _handle_status(self, status: StreamStatus) -> None:
        stats = self.report.stats[status.camera]
        stats.state = status.state
        self.metrics.stream_up.labels(camera=status.camera).set(1 if status.state == "up" else 0)
        if status.state == "failed":
            self.report.problems[status.camera] = status.detail
        self.options.log(f"[{status.camera}] stream {status.state}: {status.detail}")
        self._publish(
            "status", status.camera, {"state": status.state, "detail": status.detail, "reconnects": status.reconnects}
        )

    def _on_status(self, status: StreamStatus) -> None:
        if status.state == "down":
            self.metrics.stream_reconnects.labels(camera=status.camera).inc()
        self.output_queue.put(status)

    def _on_frame(self, camera: str, dropped: bool, decode_seconds: float) -> None:
        self.metrics.frames.labels(camera=camera).inc()
        self.metrics.stage_seconds.labels(stage="decode").observe(decode_seconds)
        if dropped:
            self.metrics.frames_dropped.labels(camera=camera, reason="behind").inc()
            self.report.stats[camera].dropped += 1

    def _on_unreadable(self, camera: str, frames: int) -> None:
        self.metrics.frames_dropped.labels(camera=camera, reason="corrupt").inc(frames)
        self.report.stats[camera].dropped += frames

    def _summaries(self) -> None:
        for camera in self.report.cameras:
            self._publish(
                "summary", camera, {"interval_s": self.config.zmq.summary_interval_s, **self.report.summary(camera)}
            )

    def run(self, stop: threading.Event) -> RunReport:
        """Run until every camera has ended (files) or ``stop`` is set; return the report."""
        self.metrics.build_info.labels(
            version=__version__, backend=self.backend.name, model=self.backend.metadata.version
        ).set(1)
        if self.publisher is not None:
            for outcome in ("sent", "dropped"):  # at zero from the start, like every camera's series
                self.metrics.zmq_messages.labels(outcome=outcome)
        preview = (
            PreviewSink(self.options.preview, self.options.show, self.report.cameras)
            if (self.options.preview or self.options.show)
            else None
        )
        workers: list[threading.Thread] = []
        for camera in self.config.cameras:
            extra = [camera.labels.get(name, "") for name in self.metrics.camera_label_names]
            self.metrics.camera_info.labels(camera.id, *extra).set(1)
            self.metrics.start_camera(
                camera.id,
                [*self.grouping.names, UNKNOWN],
                [*self.backend.metadata.gender_labels, UNKNOWN],
                DIRECTIONS if camera.line is not None else ("",),
                [zone.name for zone in camera.zones],
            )
            slot = LatestFrameSlot()
            capture = CaptureWorker(
                camera.id, camera.source, slot, self._on_status, self._on_frame, stop, camera.realtime,
                loop=camera.loop, reconnect_backoff_s=camera.reconnect_backoff_s, max_backoff_s=camera.max_backoff_s,
                read_timeout_s=camera.read_timeout_s, on_unreadable=self._on_unreadable,
            )  # fmt: skip
            processing = threading.Thread(
                target=self._camera_loop, args=(camera, slot, preview), name=f"camera-{camera.id}", daemon=True
            )
            workers += [capture, processing]
        classifier = threading.Thread(target=self._classifier_loop, name="classifier", daemon=True)
        for worker in [*workers, classifier]:
            worker.start()
        done = 0
        next_status = time.monotonic() + self.config.status_interval_s
        next_summary = time.monotonic() + self.config.zmq.summary_interval_s
        while done < len(self.config.cameras):
            self.options.heartbeats.beat("publishing")
            try:
                item = self.output_queue.get(timeout=0.2)
            except queue.Empty:
                item = None
            if isinstance(item, Visit):
                self._handle_visit(item)
            elif isinstance(item, StreamStatus):
                self._handle_status(item)
            elif isinstance(item, CameraDone):
                done += 1
            now = time.monotonic()
            if self.config.status_interval_s and now >= next_status:
                for camera in self.report.cameras:
                    self.options.log(self.report.status_line(camera))
                next_status = now + self.config.status_interval_s
            if now >= next_summary:
                self._summaries()
                next_summary = now + self.config.zmq.summary_interval_s
            if self.options.report_files is not None and self.options.report_files.due():
                self.options.report_files.write(self.report)
        self.options.heartbeats.finished("publishing")
        self._summaries()
        classifier.join(timeout=5)
        self._close_detectors()
        if preview is not None:
            preview.close()
        return self.report
