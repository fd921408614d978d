"""Wiring: capture → detect → track → sample → batch → classify → footfall → publish.

Threads: one capture thread and one processing thread per camera, one
classifier thread for all cameras (cross-camera batches), and the caller's
thread for publishing. Stages talk through queues of plain dataclasses, in
one direction. Stage logic lives in the stage modules; this file only wires.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analyzer import __version__
from analyzer.backends.base import ClassifierBackend
from analyzer.config import CameraConfig, Config
from analyzer.core.age_groups import AgeGrouping
from analyzer.core.model_meta import ModelMetadata
from analyzer.core.tracks import Tracks
from analyzer.core.visits import DIRECTIONS, UNKNOWN, Visit, random_visit_id
from analyzer.outputs.daily_reports import DailyReportFiles
from analyzer.outputs.metrics import Metrics
from analyzer.outputs.mqtt import MqttPublisher
from analyzer.outputs.preview import PreviewSink, Window, annotate, show_in_window
from analyzer.outputs.publisher import ZmqPublisher
from analyzer.outputs.report import RunReport, visit_document
from analyzer.outputs.web.today import Today
from analyzer.pipeline.appearance import FaceLikeness
from analyzer.pipeline.attributes import AttributeVoter
from analyzer.pipeline.batch import Batcher, ClassifierQueue
from analyzer.pipeline.camera_stages import CameraStages, FrameOutcome
from analyzer.pipeline.capture import CaptureWorker, Frame, LatestFrameSlot, StreamStatus
from analyzer.pipeline.detect import FaceDetector, KeypointRefiner, SharedGraphs, model_file
from analyzer.pipeline.face_check import FaceCheck, FacePresence
from analyzer.pipeline.footfall import FootfallCounter
from analyzer.pipeline.live_setup import LiveSetup
from analyzer.pipeline.sample import Sample, Sampler
from analyzer.pipeline.vote import CameraDone, ClassifierStage
from analyzer.service.config_file import ConfigFile
from analyzer.service.console import ErrorTally, how_many, log_line
from analyzer.service.cores import decoder_threads, usable_cores
from analyzer.service.liveness import Heartbeats
from analyzer.service.model_assets import asset_path

FPS_WINDOW_S = 2.0
#: Samples waiting for the classifier, per sample of its largest batch; beyond, new ones are dropped and counted.
QUEUED_BATCHES = 16
#: Visits, statuses and markers waiting for the publishing thread; beyond, the classifier waits for it.
OUTPUT_QUEUE_SIZE = 10_000
#: How often repeated failures (a camera's frames, classifier calls) are summed up in the log.
ERROR_REPORT_EVERY_S = 60.0
#: After a stop (SIGTERM), how long the classifier may go without a turn before its visits are finished without it.
STOPPING_CLASSIFIER_GRACE_S = 2.0


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
    window: Window = show_in_window  # draws --show's frames (from the publishing thread only)
    keep_visits: int | None = None  # visits the report lists per camera: None all, 0 none, N the latest N
    today: Today | None = None  # the web page's day: told of each visit (may be set after the Pipeline is made)
    mqtt: MqttPublisher | None = None  # MQTT out (docs/FLEET.md), beside ZeroMQ
    config_file: ConfigFile | None = None  # where the web page's set-up is kept; None: not kept
    not_saved_because: str = ""  # why there is no config file to keep it in


def _graph_key(camera: CameraConfig) -> tuple[str, float]:
    return camera.detector.model, camera.detector.min_score


def shared_graphs(cameras: list[CameraConfig], cores: int) -> dict[tuple[str, float], SharedGraphs]:
    """The detector graphs the cameras share: per model and ``min_score``, one per core (fewer for fewer cameras)."""
    users = collections.Counter(_graph_key(camera) for camera in cameras)
    graphs: dict[tuple[str, float], SharedGraphs] = {}
    try:
        for (model, min_score), count in users.items():
            graphs[(model, min_score)] = SharedGraphs(model_file(model), min_score, min(count, cores))
    except Exception:
        for made in graphs.values():
            made.close()
        raise
    return graphs


def attribute_voter(
    config: Config, grouping: AgeGrouping, metadata: ModelMetadata, keep_sample_log: bool = False
) -> AttributeVoter:
    """The vote ``config`` asks for, over ``metadata``'s outputs (a run's, and ``accuracy``'s replays)."""
    return AttributeVoter.for_model(
        grouping,
        metadata,
        confident_at=config.sampler.confident_at,
        samples_per_track=config.sampler.samples_per_track,
        keep_sample_log=keep_sample_log,
        min_gender_p=config.attributes.min_gender_p,
        min_age_group_p=config.attributes.min_age_group_p,
        min_face_presence=config.attributes.min_face_presence,
    )


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
        self.sites = {camera.id: config.site_of(camera) for camera in config.cameras}
        self.report = RunReport(
            [camera.id for camera in config.cameras],
            self.grouping,
            lined={camera.id for camera in config.cameras if camera.line is not None},
            keep_visits=self.options.keep_visits,
            sites=self.sites,
        )
        self.classify_queue: ClassifierQueue[object] = ClassifierQueue(
            lambda item: isinstance(item, Sample), QUEUED_BATCHES * config.classifier.max_batch
        )
        self.output_queue: queue.Queue = queue.Queue(maxsize=OUTPUT_QUEUE_SIZE)
        self.frame_errors = {camera.id: ErrorTally() for camera in config.cameras}
        self._finished = threading.Event()  # the publishing loop is done: the classifier thread may end
        self._classifier_stuck_since: float | None = None
        self.captions: dict[tuple[str, int], str] = {}
        heartbeats, stall_after_s = self.options.heartbeats, config.health.stall_after_s
        metrics.loops_stalled.set_function(lambda: len(heartbeats.stalls(stall_after_s)))  # read at each scrape
        # Models are loaded here, before any thread starts, so a missing model
        # file is one clear error at start-up rather than a dead camera; the
        # likeness and the face check first, as a failing one must not leave MediaPipe graphs open.
        self.likeness = FaceLikeness.for_tracker(config.tracker)
        self.presence = {  # one interpreter per camera thread
            camera.id: FacePresence(asset_path("face_landmark.tflite")) if config.face_check.enabled else None
            for camera in config.cameras
        }
        self.graphs = shared_graphs(config.cameras, usable_cores())
        self.detectors = {
            camera.id: FaceDetector.from_config(camera.detector, self.graphs[_graph_key(camera)])
            for camera in config.cameras
        }
        self.refiners = {
            camera.id: KeypointRefiner() if config.sampler.refine_keypoints else None for camera in config.cameras
        }
        self.classifier = ClassifierStage(
            backend,
            attribute_voter(config, self.grouping, backend.metadata, keep_sample_log=self.options.keep_sample_log),
            metrics,
            naive=self.options.naive,
            captions=self.captions if (self.options.preview or self.options.show) else None,
            log=self.options.log,
        )
        self.live = LiveSetup(
            config,
            self.options.config_file,
            self.options.not_saved_because,
            on_reshaped=self._reshaped,
            log=self.options.log,
            show_faces=config.web.show_faces_in_stills,
        )

    def _close_detectors(self) -> None:
        """Release every camera's MediaPipe graphs once the camera threads are done (closing silences stderr)."""
        for camera_id, detector in self.detectors.items():
            detector.close()
            refiner = self.refiners[camera_id]
            if refiner is not None:
                refiner.close()
        for graphs in self.graphs.values():
            graphs.close()
        self.live.close()

    # --- threads -------------------------------------------------------

    def _camera_loop(self, camera: CameraConfig, slot: LatestFrameSlot, preview: PreviewSink | None) -> None:
        refiner, presence = self.refiners[camera.id], self.presence[camera.id]
        face_check = None if presence is None else FaceCheck.from_config(presence, self.config.face_check)
        sampler = Sampler(
            self.backend.metadata.input_size,
            self.config.sampler.samples_per_track,
            self.config.sampler.min_face_px,
            self.config.sampler.interval_s,
            refine=None if refiner is None else refiner.refine,
            max_classified_per_track=self.config.sampler.calls_per_track,
            is_face=None if face_check is None else face_check.presence,
        )
        stages = CameraStages.for_camera(
            camera,
            self.config,
            self.detectors[camera.id],
            self.likeness,
            face_check,
            sampler,
            every_face=self.options.naive,
            new_visit_id=self.options.new_visit_id,
        )
        if preview is not None:  # the debug video and window keep every frame
            stages.idle_every_n_frames = 1
        if camera.recorded_at is not None:  # a recording: its visits happened then, not now
            stages.counter.clock_origin = camera.recorded_at.timestamp()
        self.live.attach(camera.id, stages)
        stats = self.report.stats[camera.id]
        window_start, window_frames = time.monotonic(), 0
        last_capture = time.monotonic()
        loop = f"camera {camera.id}"
        try:
            self.options.heartbeats.beat(loop)
            for done in stages.frames(slot, camera.detector.every_n_frames, wait_s=0.5):
                self.options.heartbeats.beat(loop)
                if done is None:
                    continue
                self.live.frame_done(camera.id, done)
                if done.still:
                    self.metrics.frames_motionless.labels(camera=camera.id).inc(done.still)
                    stats.motionless += done.still
                if done.motionless:
                    for ended in done.ended:
                        self.classify_queue.put(ended)
                    self._show_in_view(camera.id, stages.counter)  # a lost face's track may have ended
                    if preview is not None:  # the debug video keeps every frame: no one in it to draw
                        self._preview(camera, done.frame, stages, Tracks.empty(), preview)
                if done.error is not None:
                    self._frame_failed(camera.id, done.frame, done.error)
                elif done.outcome is not None:
                    self._frame_done(camera, done.frame, stages, done.outcome, preview)
                last_capture = done.frame.captured_at
                stats.frames += 1 + done.frame.passed_over
                window_frames += 1 + done.frame.passed_over
                now = time.monotonic()
                if now - window_start >= FPS_WINDOW_S:
                    stats.fps = window_frames / (now - window_start)
                    window_start, window_frames = now, 0
        finally:
            stats.frames += stages.passed_over_at_end
            stats.motionless += stages.still_at_end
            self.metrics.frames_motionless.labels(camera=camera.id).inc(stages.still_at_end)
            for ended in stages.close(last_capture):
                self.classify_queue.put(ended)
            stats.faces_in_view = stats.fixtures_in_view = 0
            self.metrics.faces_in_view.labels(camera=camera.id).set(0)
            self.metrics.fixtures_in_view.labels(camera=camera.id).set(0)
            self.classify_queue.put(CameraDone(camera.id))
            self.options.heartbeats.finished(loop)

    def _frame_failed(self, camera: str, frame: Frame, error: Exception) -> None:
        """A stage raised on ``frame``: counted, the first logged at once, later ones summed up now and then."""
        self.metrics.frames_dropped.labels(camera=camera, reason="error").inc()
        if self.frame_errors[camera].add(f"frame {frame.index}: {type(error).__name__}: {error}"):
            self.options.log(f"[{camera}] frame {frame.index} skipped: {type(error).__name__}: {error}")

    def _frame_done(
        self,
        camera: CameraConfig,
        frame: Frame,
        stages: CameraStages,
        outcome: FrameOutcome,
        preview: PreviewSink | None,
    ) -> None:
        """Queue what a searched frame produced; record its timings, faces in view and preview."""
        for sample in outcome.samples:
            if not self.classify_queue.put(sample):  # the classifier is behind: this chip does not vote
                self.metrics.samples_dropped.labels(camera=camera.id, reason="classifier_behind").inc()
        for ended in outcome.ended:
            self.classify_queue.put(ended)
        if outcome.error is not None:
            self._frame_failed(camera.id, frame, outcome.error)
        for stage, seconds in outcome.seconds.items():
            self.metrics.stage_seconds.labels(stage=stage).observe(seconds)
        self._show_in_view(camera.id, stages.counter)
        self.report.stats[camera.id].faces_seen += len(outcome.tracks)
        if preview is not None:
            self._preview(camera, frame, stages, outcome.tracks, preview)

    def _show_in_view(self, camera: str, counter: FootfallCounter) -> None:
        """The faces and fixtures the counter holds now, for the metrics and the status line."""
        stats = self.report.stats[camera]
        stats.faces_in_view, stats.fixtures_in_view = counter.faces_in_view, counter.fixtures_in_view
        self.metrics.faces_in_view.labels(camera=camera).set(counter.faces_in_view)
        self.metrics.fixtures_in_view.labels(camera=camera).set(counter.fixtures_in_view)

    def _preview(
        self, camera: CameraConfig, frame: Frame, stages: CameraStages, tracks: Tracks, preview: PreviewSink
    ) -> None:
        """One frame of the debug video: the tracks it had, the line, zones, masks and what was counted."""
        counter = stages.counter
        counted = self.report.headline(camera.id)
        canvas = annotate(
            frame.image, camera.id, tracks, self.captions, counted, counter.line, counter.zones, stages.masks
        )
        preview.write(camera.id, canvas, frame.timestamp)

    def _classifier_loop(self) -> None:
        batcher: Batcher = Batcher(
            self.classify_queue,
            lambda item: isinstance(item, Sample),
            self.config.classifier.max_batch,
            self.config.classifier.max_wait_ms / 1000,
        )
        remaining = len(self.config.cameras)
        while remaining and not self._finished.is_set():
            self.options.heartbeats.beat("classifier")
            items = batcher.next_batch()
            try:
                outputs = self.classifier.process(items)
            except Exception as error:  # a fault outside the backend call: its visits still count, unclassified
                self.options.log(
                    f"classifier stage failed: {type(error).__name__}: {error}; its visits count with unknown "
                    "age and gender"
                )
                outputs = self.classifier.salvage(items)
            for output in outputs:
                if isinstance(output, CameraDone):
                    remaining -= 1
                self.output_queue.put(output)
        self.options.heartbeats.finished("classifier")

    # --- publishing (caller's thread) ----------------------------------

    def _publish(self, kind: str, camera: str, fields: dict[str, object]) -> None:
        site = self.sites[camera]
        if self.options.mqtt is not None:
            self.options.mqtt.publish(kind, camera, fields, site)
        if self.publisher is None:
            return
        sent = self.publisher.publish(kind, camera, fields, site)
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
        if self.options.today is not None:
            self.options.today.add(visit_document(visit))
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
            self.report.stats[status.camera].reconnects += 1
        self.output_queue.put(status)

    def _on_frame(self, camera: str, dropped: bool, decode_seconds: float) -> None:
        self.metrics.frames.labels(camera=camera).inc()
        self.live.frame_read(camera)
        self.metrics.stage_seconds.labels(stage="decode").observe(decode_seconds)
        if dropped:
            self.metrics.frames_dropped.labels(camera=camera, reason="behind").inc()
            self.report.stats[camera].dropped += 1

    def _on_unreadable(self, camera: str, frames: int) -> None:
        self.metrics.frames_dropped.labels(camera=camera, reason="corrupt").inc(frames)
        self.report.stats[camera].dropped += frames

    def _start_series(self, camera: CameraConfig) -> None:
        """Every series the camera can increment with its line and zones, at zero (see Metrics.start_camera)."""
        self.metrics.start_camera(
            camera.id,
            [*self.grouping.names, UNKNOWN],
            [*self.backend.metadata.gender_labels, UNKNOWN],
            DIRECTIONS if camera.line is not None else ("",),
            [zone.name for zone in camera.zones],
        )

    def _reshaped(self, camera: CameraConfig) -> None:
        """A camera's set-up was changed from the web page: in/out shown, and its new series at zero."""
        (self.report.lined.add if camera.line is not None else self.report.lined.discard)(camera.id)
        self._start_series(camera)

    def health(self) -> dict[str, dict[str, object]]:
        """Each camera's stream state, rate, drops and reconnects (the web page's health tiles)."""
        return {
            camera: {
                "state": stats.state,
                "fps": round(stats.fps, 1),
                "frames_dropped": stats.dropped,
                "reconnects": stats.reconnects,
                "faces_in_view": stats.faces_in_view,
                "problem": self.report.problems.get(camera, ""),
            }
            for camera, stats in self.report.stats.items()
        }

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
            PreviewSink(self.options.preview, self.options.show, self.report.cameras, self.options.window)
            if (self.options.preview or self.options.show)
            else None
        )
        workers: list[threading.Thread] = []
        threads_per_decoder = decoder_threads(len(self.config.cameras), usable_cores())
        for camera in self.config.cameras:
            extra = [camera.labels.get(name, "") for name in self.metrics.camera_label_names]
            self.metrics.camera_info.labels(camera.id, *extra).set(1)
            self._start_series(camera)
            slot = LatestFrameSlot()
            capture = CaptureWorker(
                camera.id,
                camera.source,
                slot,
                self._on_status,
                self._on_frame,
                stop,
                camera.realtime,
                loop=camera.loop,
                reconnect_backoff_s=camera.reconnect_backoff_s,
                max_backoff_s=camera.max_backoff_s,
                read_timeout_s=camera.read_timeout_s,
                on_unreadable=self._on_unreadable,
                decoder_threads=threads_per_decoder,
            )
            processing = threading.Thread(
                target=self._camera_loop, args=(camera, slot, preview), name=f"camera-{camera.id}", daemon=True
            )
            workers += [capture, processing]
        classifier = threading.Thread(target=self._classifier_loop, name="classifier", daemon=True)
        for worker in [*workers, classifier]:
            worker.start()
        done = 0
        now = time.monotonic()
        next_status, next_summary = now + self.config.status_interval_s, now + self.config.zmq.summary_interval_s
        next_error_report = now + ERROR_REPORT_EVERY_S
        wait_s = 0.03 if self.options.show else 0.2  # --show draws its windows from this loop
        while done < len(self.config.cameras):
            self.options.heartbeats.beat("publishing")
            try:
                items = [self.output_queue.get(timeout=wait_s)]
            except queue.Empty:
                items = []
            items += self._without_a_stuck_classifier(stop)
            for item in items:
                if isinstance(item, Visit):
                    self._handle_visit(item)
                elif isinstance(item, StreamStatus):
                    self._handle_status(item)
                elif isinstance(item, CameraDone):
                    done += 1
            if preview is not None and self.options.show:
                preview.show_latest()
            now = time.monotonic()
            if self.config.status_interval_s and now >= next_status:
                for camera in self.report.cameras:
                    self.options.log(self.report.status_line(camera))
                next_status = now + self.config.status_interval_s
            if now >= next_summary:
                self._summaries()
                next_summary = now + self.config.zmq.summary_interval_s
            if now >= next_error_report:
                self._report_errors()
                next_error_report = now + ERROR_REPORT_EVERY_S
            if self.options.report_files is not None and self.options.report_files.due():
                self.options.report_files.write(self.report)
        self.options.heartbeats.finished("publishing")
        self._report_errors()
        self._summaries()
        self._finished.set()
        classifier.join(timeout=5 if self._classifier_stuck_since is None else 0)  # a hung call is left behind
        self._close_detectors()
        if preview is not None:
            preview.close()
        return self.report

    def _without_a_stuck_classifier(self, stop: threading.Event) -> list[object]:
        """While the classifier has not made a turn for too long, finish the visits waiting for it here.

        Too long is ``health.stall_after_s`` (the watchdog reports it stalled
        then too), or a moment once a stop (SIGTERM) came: the report must be
        written in seconds, with every visit in it. The visits count with the
        votes their tracks had; their waiting samples are dropped and counted.
        """
        silent = self.options.heartbeats.silent_for("classifier")
        limit = STOPPING_CLASSIFIER_GRACE_S if stop.is_set() else self.config.health.stall_after_s
        if silent is None or silent <= limit:
            if self._classifier_stuck_since is not None:
                self.options.log("classifier answering again: visits are classified again")
                self._classifier_stuck_since = None
            return []
        if self._classifier_stuck_since is None:
            self._classifier_stuck_since = silent
            self.options.log(
                f"classifier has not answered for {silent:.0f} s: visits are published without it, with the votes "
                "they have (unknown age and gender if none), until it answers again"
            )
        return self.classifier.take_over(self.classify_queue.drain())

    def _report_errors(self) -> None:
        """Sum up the failures since the last report, one line per camera and one for the classifier."""
        for camera, errors in self.frame_errors.items():
            count, last = errors.take_unreported()
            if count:
                self.options.log(f"[{camera}] {how_many(count, 'more frame')} skipped since (last: {last})")
        count, last = self.classifier.errors.take_unreported()
        if count:
            self.options.log(f"classifier: {how_many(count, 'more call')} failed since (last: {last})")
