"""``analyzer run``: the main job; count visitors and publish them on ZeroMQ and Prometheus."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.commands.arguments import command_parser, mp4_file, output_file
from analyzer.commands.cameras import add_camera_arguments, cameras_config, checked_config, ensure_detector_models
from analyzer.errors import ConfigError
from analyzer.service.atomic_files import write_json
from analyzer.service.console import how_many, log_line
from analyzer.service.cores import threads_for_cameras
from analyzer.service.output_locks import claimed

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

    from analyzer.config import Config
    from analyzer.outputs.daily_reports import DailyReportFiles
    from analyzer.outputs.metrics import Health, Metrics
    from analyzer.outputs.mqtt import MqttPublisher
    from analyzer.outputs.publisher import ZmqPublisher
    from analyzer.outputs.report import RunReport
    from analyzer.outputs.web.server import WebPage
    from analyzer.outputs.web.today import Today
    from analyzer.pipeline.runner import Pipeline

#: Visits a single-file ``--report`` lists per camera (about 1.3 KB each in memory); the totals count them all.
MAX_REPORT_VISITS = 50_000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``analyzer run``."""
    parser = command_parser(
        subparsers,
        "run",
        "Count visitors on the configured cameras; publish on ZeroMQ and Prometheus. No arguments: the embedded demo.",
        [
            "analyzer run",
            "analyzer run --source entrance.mp4 --report report.json --fast",
            "analyzer run -c configs/store-entrance.yaml --metrics-port 9108 --zmq-bind tcp://0.0.0.0:5556",
        ],
    )
    add_camera_arguments(parser)
    parser.add_argument(
        "--recorded-at",
        action="extend",
        nargs="+",
        metavar="TIME",
        help="when each --source file's first frame was recorded (2026-12-01T09:00, this box's time, or with a "
        "zone: ...+01:00), one per --source in order; its visits then carry those times",
    )
    parser.add_argument(
        "--report",
        type=output_file,
        metavar="FILE",
        help="write the JSON report (visits and totals per camera) here on exit; a name with {date} in it "
        "('report-{date}.json') gets one file per day instead, written as the day goes (for services)",
    )
    parser.add_argument(
        "--report-every",
        type=float,
        default=60.0,
        metavar="S",
        help="with {date} in --report: rewrite the day's file this often while visits come (default 60)",
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="N", help="Prometheus port (0 = off; default from config, 9108)"
    )
    parser.add_argument("--web-port", type=int, metavar="N", help="web page port (0 = off; default from config, 8108)")
    parser.add_argument(
        "--zmq-bind", metavar="ADDR", help="ZeroMQ PUB address ('' = off; default tcp://127.0.0.1:5556)"
    )
    parser.add_argument(
        "--backend", choices=["auto", "onnxruntime", "tensorrt"], help="classifier backend (default from config: auto)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="ONNX",
        help="our exported age and gender network (default from config: engines/agegender.onnx)",
    )
    parser.add_argument(
        "--fast", action="store_true", help="play files as fast as possible instead of at their own fps"
    )
    parser.add_argument(
        "--naive", action="store_true", help="classify every face in every frame (for comparison; slow)"
    )
    parser.add_argument(
        "--hold-metrics",
        type=float,
        default=0.0,
        metavar="S",
        help="after the cameras end, keep serving /metrics and the web page S seconds (Prometheus scrapes the "
        "final counts; the page stays open)",
    )
    debug = parser.add_argument_group("debug (writes or shows images of faces: off unless asked)")
    debug.add_argument(
        "--preview", type=mp4_file, metavar="FILE.mp4", help="write video with boxes, track ids and attributes"
    )
    debug.add_argument("--show", action="store_true", help="show that video in a window (needs a display)")
    parser.set_defaults(handler=run)


def _run_config(args: argparse.Namespace) -> Config:
    config = cameras_config(args)
    if args.fast:
        for camera in config.cameras:
            camera.realtime = False
    if args.metrics_port is not None:
        config.metrics.port = args.metrics_port
    if args.zmq_bind is not None:
        config.zmq.bind = args.zmq_bind
    if args.web_port is not None:
        config.web.port = args.web_port
    if args.backend is not None:
        config.classifier.backend = args.backend
    if args.model is not None:
        config.classifier.model = str(args.model.resolve())
    return checked_config(config)


def _outputs(args: argparse.Namespace, config: Config) -> list[tuple[str, Path]]:
    """The files this run writes, with the option that names each."""
    outputs = [("--report", args.report)] if args.report else []
    if args.preview:  # with several cameras, one video each beside the name given
        from analyzer.outputs.preview import preview_paths

        videos = preview_paths(args.preview, [camera.id for camera in config.cameras])
        outputs += [("--preview", video) for video in videos.values()]
    return outputs


def _refuse_writing_over_an_input(config: Config, config_file: Path, outputs: list[tuple[str, Path]]) -> None:
    """A slip of tab completion (``--report door.mp4``) must not overwrite the recording or the config it counts by."""
    from analyzer.core.sources import file_path, source_kind

    inputs = {
        file_path(camera.source).resolve(): "the video being counted"
        for camera in config.cameras
        if source_kind(camera.source) == "file"
    }
    inputs[config_file.resolve()] = "the config of this run"
    for option, path in outputs:
        overwritten = inputs.get(path.resolve())
        if overwritten:
            raise ConfigError(f"{option} {path} is {overwritten}; writing it would destroy it, pick another file")


def run(args: argparse.Namespace) -> int:
    """The main job."""
    if args.hold_metrics < 0:
        raise ConfigError(f"--hold-metrics {args.hold_metrics:g}: give seconds to keep serving, or 0")
    if not 1 <= args.report_every <= 3600:
        raise ConfigError(f"--report-every {args.report_every:g}: give 1..3600 seconds")
    if args.show and sys.platform == "linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # Qt would abort the whole process (and every count) at the first frame
        raise ConfigError("--show needs a display and DISPLAY is not set; write the video with --preview FILE.mp4")
    config = _run_config(args)
    outputs = _outputs(args, config)
    _refuse_writing_over_an_input(config, args.config, outputs)
    with claimed(outputs):  # before any model loads: a second run on one report stops at once
        threads_for_cameras()
        return _count(args, config)


def _count(args: argparse.Namespace, config: Config) -> int:
    """Run the cameras until they end or a signal; print the table and write the report."""
    from prometheus_client import CollectorRegistry

    from analyzer.backends.selection import create_backend
    from analyzer.outputs.daily_reports import DailyReportFiles, is_daily
    from analyzer.outputs.metrics import Metrics
    from analyzer.outputs.web.today import Today
    from analyzer.pipeline.runner import Pipeline, RunOptions
    from analyzer.service.liveness import Heartbeats, Watchdog
    from analyzer.service.systemd import SystemdNotifier

    ensure_detector_models()
    if args.preview or args.show:
        print(
            "WARNING: debug preview is ON: video frames with faces are written/shown; do not use in production",
            file=sys.stderr,
        )
    backend = create_backend(config.classifier, log=log_line)
    registry = CollectorRegistry()
    metrics = Metrics(registry, tuple(sorted({key for camera in config.cameras for key in camera.labels})))
    heartbeats = Heartbeats()
    stall_after_s = config.health.stall_after_s
    publisher, server = _open_outputs(config, registry, lambda: heartbeats.health(stall_after_s))
    if sys.__stderr__ is not None:  # a kill by systemd's watchdog (SIGABRT) or a native crash logs every stack
        faulthandler.enable(sys.__stderr__, all_threads=True)
    notifier = SystemdNotifier.from_environment()
    stop = threading.Event()
    _install_signal_handlers(stop, on_stop=notifier.stopping)
    report_files = (
        DailyReportFiles(args.report, config.grouping(), rewrite_every_s=args.report_every, log=log_line)
        if args.report and is_daily(args.report)
        else None
    )
    # the report lists visits only when one is written: all of them for one day's file (finished days are let
    # go), the latest MAX_REPORT_VISITS per camera for one file (a service's would grow for months)
    keep_visits = (None if report_files else MAX_REPORT_VISITS) if args.report else 0
    options = RunOptions(
        naive=args.naive,
        preview=args.preview,
        show=args.show,
        heartbeats=heartbeats,
        report_files=report_files,
        keep_visits=keep_visits,
        **_set_up_keeping(args),
    )
    options.mqtt = _open_mqtt(config, metrics) if config.mqtt.host else None
    pipeline = Pipeline(config, backend, metrics, publisher, options)
    page = None
    if config.web.port:  # the page's day asks the run's report which cameras count in and out
        options.today = Today(
            config.grouping(),
            [camera.id for camera in config.cameras],
            pipeline.report.has_line,
            saved_day=report_files.saved_day if report_files else lambda day: None,
            saved_totals=report_files.saved_totals if report_files else lambda day: None,
        )
        page = _open_page(config, options.today, pipeline)
    watchdog = Watchdog(heartbeats, stall_after_s, notifier, log_line, pipeline.report.service_status)
    notifier.ready()  # models loaded and ports bound: `systemctl start` returns now
    counted = threading.Event()
    threading.Thread(target=watchdog.run_until, args=(counted,), name="watchdog", daemon=True).start()
    try:
        report = pipeline.run(stop)
        if page and args.hold_metrics == 0 and _watched_demo(config) and not stop.is_set():
            print(f"the demo has ended; its page stays open at {page.url} until Ctrl-C", file=sys.stderr)
            stop.wait()
        elif (server or page) and args.hold_metrics > 0 and not stop.is_set():
            print(f"serving the final counts for {args.hold_metrics:g} s more", file=sys.stderr)
            stop.wait(args.hold_metrics)
    finally:
        counted.set()
        notifier.stopping()  # (at once on a signal; here when the files have ended)
        notifier.close()
        if publisher:
            publisher.close()
        if options.mqtt:
            options.mqtt.close()
        if page:
            page.close()
        if server:
            server.shutdown()
            server.server_close()  # the listening socket too: the port is free at once
    print(report.table())  # first: a report that cannot be written must not take the table with it
    _write_report(args.report, report, report_files)
    return 1 if len(report.problems) == len(config.cameras) else 0


def _open_outputs(
    config: Config, registry: CollectorRegistry, health: Health
) -> tuple[ZmqPublisher | None, WSGIServer | None]:
    """The ZeroMQ publisher and the metrics server the config asks for, said on stderr."""
    from analyzer.outputs.metrics import serve
    from analyzer.outputs.publisher import ZmqPublisher

    publisher = ZmqPublisher(config.zmq.bind, send_hwm=config.zmq.send_hwm) if config.zmq.bind else None
    server = serve(registry, config.metrics.host, config.metrics.port, health) if config.metrics.port else None
    where = []
    if publisher:
        where.append(f"ZeroMQ on {publisher.endpoint}")
    if server:
        where.append(f"metrics on http://{config.metrics.host}:{config.metrics.port}/metrics (and /healthz)")
    print(
        f"analyzer: {how_many(len(config.cameras), 'camera')}; " + ", ".join(where or ["no outputs"]), file=sys.stderr
    )
    return publisher, server


def _open_mqtt(config: Config, metrics: Metrics) -> MqttPublisher:
    """MQTT out with its outbox, connecting in the background; said on stderr."""
    from analyzer.outputs.mqtt import MqttPublisher
    from analyzer.service.outbox import Outbox

    settings = config.mqtt
    outbox = Outbox(settings.outbox_path(), settings.outbox_max_messages, settings.outbox_max_age_s, log=log_line)
    publisher = MqttPublisher(settings, config.site or config.site_of(config.cameras[0]), outbox, metrics, log_line)
    publisher.start()
    print(f"MQTT to {publisher.where} (outbox {outbox.path})", file=sys.stderr)
    return publisher


def _watched_demo(config: Config) -> bool:
    """The embedded demo, run by someone at a terminal: its page is what they came to see, so it stays open."""
    from analyzer.tools.demo import demo_clip

    at_terminal = sys.stdin is not None and sys.stdin.isatty()
    return at_terminal and all(camera.source == str(demo_clip()) for camera in config.cameras)


def _set_up_keeping(args: argparse.Namespace) -> dict[str, object]:
    """Where the web page's set-up of a camera is kept: the config file, unless it is the demo's or --source's."""
    from analyzer.commands.cameras import DEFAULT_CONFIG
    from analyzer.pipeline.live_setup import not_saved_because
    from analyzer.service.config_file import ConfigFile

    because = not_saved_because(args.config, bool(args.source), DEFAULT_CONFIG)
    return {"config_file": None if because else ConfigFile(args.config), "not_saved_because": because}


def _open_page(config: Config, today: Today, pipeline: Pipeline) -> WebPage:
    """The web page, bound and serving before the first frame; its address said on stderr."""
    from analyzer.outputs.web.access import Access
    from analyzer.outputs.web.server import WebPage

    page = WebPage(
        config.web.host,
        config.web.port,
        today,
        pipeline.live,
        Access(config.web.users, required=not config.web.loopback),
        pipeline.health,
        log_line,
    )
    page.start()
    guarded = "" if config.web.loopback else f" (users: {', '.join(sorted(config.web.users))}; password needed)"
    print(f"web page: {page.url} (camera set-up: {page.url}setup){guarded}", file=sys.stderr)
    if config.web.show_faces_in_stills:
        print(
            "WARNING: web.show_faces_in_stills is ON: set-up stills show faces unblurred to whoever opens the page",
            file=sys.stderr,
        )
    return page


def _write_report(path: Path | None, report: RunReport, report_files: DailyReportFiles | None) -> None:
    """The final report: into its day's files, or into the one file ``--report`` names."""
    if report_files:
        written = report_files.write(report, final=True)
        print(f"report written to {', '.join(map(str, written))}" if written else "daily reports were up to date")
    elif path:
        write_json(path, report.to_dict())
        print(f"report written to {path}")
        if any(report.left_out.values()):
            print(
                f"the report lists the latest {MAX_REPORT_VISITS} visits per camera (its totals count them all); "
                "for a service, name it with {date} ('report-{date}.json') to keep every visit, one file a day",
                file=sys.stderr,
            )


def _say(line: str) -> None:
    """Write a line to stderr from a signal handler.

    The handler runs in the main thread, possibly inside that thread's own
    ``print`` (a status line blocked on a full pipe): printing again there
    raises "reentrant call" and the stop would never be set. One unbuffered
    write to the descriptor cannot re-enter Python's stream.
    """
    with contextlib.suppress(OSError):  # no stderr to tell: the stop is set all the same
        os.write(2, (line + "\n").encode())


def _install_signal_handlers(stop: threading.Event, on_stop: Callable[[], None]) -> None:
    """The first SIGINT/SIGTERM/SIGHUP ends the run cleanly (open visits counted, report written); a second at once."""
    received = itertools.count()  # next() is one C call: a signal handled inside another's handler still counts

    def handle(signum: int, _frame: object) -> None:
        if next(received) or stop.is_set():
            _say("second signal: exiting now")
            os._exit(130)
        stop.set()
        on_stop()
        _say(f"{signal.Signals(signum).name}: finishing open visits and writing the report ...")

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
    # The terminal of a run started by hand closing (an SSH session dropping) stops it the same clean way, so its
    # report is written; a run under nohup keeps ignoring the hang-up, as nohup asked.
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None and signal.getsignal(hangup) == signal.SIG_DFL:
        signal.signal(hangup, handle)
