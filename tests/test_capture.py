"""Capture workers on real files and live servers: pacing, looping, the end marker, the one-frame mailbox, and
what a live camera that will not open is told to say (without its password)."""

from __future__ import annotations

import base64
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import av
import cv2
import numpy as np
import pytest

from analyzer.core.camera_url import why_it_does_not_open, without_password
from analyzer.core.sources import file_path, source_kind, webcam_index
from analyzer.pipeline.capture import (
    CaptureWorker,
    EndOfStream,
    FileClock,
    Frame,
    LatestFrameSlot,
    StreamStatus,
    describe_file_problem,
)
from tests.harness import free_port, wait_for
from tests.stream_server import MjpegServer, RtspCamera, RtspDoor, jpeg_frames


def _read_all(
    clip: Path, loop: bool, limit: int, realtime: bool = False
) -> tuple[list[Frame], list[StreamStatus], bool]:
    slot, statuses, stop = LatestFrameSlot(), [], threading.Event()
    worker = CaptureWorker("cam", str(clip), slot, statuses.append, lambda *_: None, stop, realtime, loop)
    worker.start()
    frames: list[Frame] = []
    ended = False
    while len(frames) < limit:
        item = slot.get(timeout=10)
        assert item is not None, "capture stalled"
        if isinstance(item, EndOfStream):
            ended = True
            break
        frames.append(item)
    stop.set()
    while worker.is_alive():
        slot.get(timeout=0.1)  # let a blocked put see the stop
    return frames, statuses, ended


def test_a_file_plays_every_frame_once_then_ends(walkers_clip: tuple[Path, int]) -> None:
    clip, _ = walkers_clip
    total = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    frames, statuses, ended = _read_all(clip, loop=False, limit=10 * total)
    assert ended and len(frames) == total
    assert [frame.index for frame in frames] == list(range(total))
    assert [status.state for status in statuses] == ["up", "ended"]


def test_a_looping_file_starts_again_with_time_still_running(walkers_clip: tuple[Path, int]) -> None:
    clip, _ = walkers_clip
    total = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    frames, _, ended = _read_all(clip, loop=True, limit=total + total // 2)
    assert not ended and len(frames) == total + total // 2
    timestamps = [frame.timestamp for frame in frames]
    assert all(later > earlier for earlier, later in itertools.pairwise(timestamps))
    # the frame after the last one is the first one again
    assert cv2.absdiff(frames[total].image, frames[0].image).mean() < 1.0
    assert cv2.absdiff(frames[total].image, frames[total - 1].image).mean() > 1.0


def test_a_reader_that_asks_for_fewer_frames_gets_every_nth_and_is_told_how_many_were_passed_over(
    walkers_clip: tuple[Path, int],
) -> None:
    """An idle camera asks its slot for every third frame: the others are decoded and counted, not handed over,
    and the frames handed over are the file's own (the decoder did not skip a frame another depends on)."""
    clip, _ = walkers_clip
    every = [image for ok, image in iter(cv2.VideoCapture(str(clip)).read, (False, None))]
    slot, stop, read = LatestFrameSlot(), threading.Event(), []
    slot.stride = 3
    worker = CaptureWorker("cam", str(clip), slot, lambda _: None, lambda *args: read.append(args), stop, False)
    worker.start()
    handed: list[Frame] = []
    while not isinstance(item := slot.get(timeout=10), EndOfStream):
        assert item is not None, "capture stalled"
        handed.append(item)
        if item.index >= 30:
            slot.stride = 1  # something moved: every frame again
    assert len(read) == len(every)  # each frame decoded and reported read, none dropped
    assert not any(dropped for _, dropped, _ in read)
    idle = [frame for frame in handed if frame.index <= 30]
    assert [frame.index for frame in idle] == list(range(0, 31, 3))
    assert [frame.passed_over for frame in idle] == [0] + [2] * 10
    # read as fast as it goes, the writer asks once the reader is done with frame 30: never a frame late
    assert [frame.index for frame in handed[len(idle) :]] == list(range(31, len(every)))
    assert sum(1 + frame.passed_over for frame in handed) == len(every)  # each frame handed over or passed over
    assert all(np.array_equal(frame.image, every[frame.index]) for frame in handed)


def test_a_file_url_plays_the_file_it_names(walkers_clip: tuple[Path, int], tmp_path: Path) -> None:
    # file managers copy a path as a URL, spaces and all; before, it was "not found" though the file was there
    clip = tmp_path / "door 2 tuesday.mp4"
    clip.symlink_to(walkers_clip[0])
    slot, statuses, stop = LatestFrameSlot(), [], threading.Event()
    worker = CaptureWorker("cam", clip.as_uri(), slot, statuses.append, lambda *_: None, stop, realtime=False)
    worker.start()
    frames = 0
    while not isinstance(item := slot.get(timeout=10), EndOfStream):
        assert item is not None, "capture stalled"
        frames += 1
    assert "%20" in clip.as_uri() and [status.state for status in statuses] == ["up", "ended"]
    assert frames == int(cv2.VideoCapture(str(walkers_clip[0])).get(cv2.CAP_PROP_FRAME_COUNT))


def test_a_missing_relative_file_says_where_it_was_looked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert describe_file_problem(Path("videos/door.mp4")) == f"file videos/door.mp4 not found (relative to {tmp_path})"
    assert describe_file_problem(tmp_path / "door.mp4") == f"file {tmp_path / 'door.mp4'} not found"


def test_a_file_source_may_start_at_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_path("~/videos/door.mp4") == tmp_path / "videos" / "door.mp4"
    assert file_path("videos/~door.mp4") == Path("videos/~door.mp4")


@pytest.mark.parametrize("frames_before_stop", [0, 5])
def test_a_file_stopped_early_ends_as_stopped_not_as_broken(
    walkers_clip: tuple[Path, int], frames_before_stop: int
) -> None:
    # a Ctrl-C before the first frame once made the clip "corrupt" and analyzer run exit 1
    slot, statuses, stop = LatestFrameSlot(), [], threading.Event()
    worker = CaptureWorker("cam", str(walkers_clip[0]), slot, statuses.append, lambda *_: None, stop, realtime=False)
    if frames_before_stop == 0:
        stop.set()
    worker.start()
    for _ in range(frames_before_stop):
        assert isinstance(slot.get(timeout=10), Frame)
    stop.set()
    while worker.is_alive():
        slot.get(timeout=0.1)  # let a blocked put see the stop
    assert [status.state for status in statuses] == ["up", "ended"]
    assert statuses[-1].cause.startswith("stopped after ")
    assert int(statuses[-1].cause.split()[2]) >= frames_before_stop


def _h264_clip(path: Path, frame_times_s: list[float], index_first: bool = False) -> Path:
    """An H.264 mp4 whose frames carry exactly these times, as a phone or an NVR export writes them."""
    with av.open(str(path), "w", options={"movflags": "faststart"} if index_first else {}) as container:
        stream = container.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = Fraction(1, 90_000)
        for number, seconds in enumerate(frame_times_s):
            image = np.zeros((120, 160, 3), np.uint8)
            image[40:80, number % 140 : number % 140 + 20] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(seconds * 90_000), stream.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_recording_with_a_gap_keeps_its_own_frame_times(tmp_path: Path) -> None:
    # an NVR export of motion recordings: 2 s at 15 fps, nothing for 100 s, 2 s more. Its average is 0.6 fps;
    # counting frames at an assumed 25 fps put the frames either side of the gap 0.04 s apart: one track could take both
    frame_times_s = [i / 15 for i in range(30)] + [100 + i / 15 for i in range(30)]
    clip = _h264_clip(tmp_path / "motion-export.mp4", frame_times_s)
    frames, statuses, ended = _read_all(clip, loop=False, limit=100)
    assert ended and len(frames) == 60
    assert [frame.timestamp for frame in frames] == pytest.approx(frame_times_s, abs=1e-3)
    assert "variable frame rate" in statuses[0].cause


def test_a_gap_in_a_recording_is_not_waited_out_in_real_time(tmp_path: Path) -> None:
    clip = _h264_clip(tmp_path / "motion-export.mp4", [i / 15 for i in range(15)] + [300 + i / 15 for i in range(15)])
    started = time.monotonic()
    frames, _, ended = _read_all(clip, loop=False, limit=100, realtime=True)
    assert ended and len(frames) >= 1 and frames[-1].timestamp == pytest.approx(300 + 14 / 15, abs=1e-3)
    assert time.monotonic() - started < 60  # 2 s of frames, not 5 min of the gap


def test_a_constant_rate_file_keeps_the_times_a_frame_count_gives(tmp_path: Path) -> None:
    # to the last bit, as before file times were read: counting a clip gives the same visits as it did
    clip = tmp_path / "door.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 15, (64, 48))
    for number in range(400):
        writer.write(np.full((48, 64, 3), number % 256, np.uint8))
    writer.release()
    frames, _, _ = _read_all(clip, loop=False, limit=500)
    assert [frame.timestamp for frame in frames] == [number / 15 for number in range(400)]
    clock = FileClock(nominal_fps=15)  # Matroska stores milliseconds: 0.067, 0.133, ...
    assert [clock.timestamp(round(number / 15, 3)) for number in range(30)] == [number / 15 for number in range(30)]


def test_file_times_that_do_not_move_forward_continue_one_frame_later() -> None:
    # a clock that restarts (a loop back to the start, the next segment of an export), then frames without times
    # (all 0), then a real gap, which is kept
    clock = FileClock(nominal_fps=10)
    file_times_s = [5.0, 5.1, 5.2, 0.0, 0.1, 0.0, 0.0, 0.1, 3.1]
    assert [clock.timestamp(seconds) for seconds in file_times_s] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 3.7]
    )


def test_a_recording_cut_off_before_its_index_says_so(tmp_path: Path) -> None:
    whole = _h264_clip(tmp_path / "whole.mp4", [i / 15 for i in range(60)]).read_bytes()
    cut = tmp_path / "door.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # the recorder lost power: frames, but no moov box after them
    frames, statuses, _ = _read_all(cut, loop=False, limit=100)
    assert not frames and [status.state for status in statuses] == ["failed"]
    assert "cut off before its index was written" in statuses[0].cause and "untrunc" in statuses[0].cause


def test_a_file_shorter_than_its_index_is_counted_and_called_cut_short(tmp_path: Path) -> None:
    whole = _h264_clip(tmp_path / "whole.mp4", [i / 15 for i in range(90)], index_first=True).read_bytes()
    half = tmp_path / "door.mp4"
    half.write_bytes(whole[: len(whole) // 2])  # a copy that stopped halfway; the index, written first, lists all 90
    frames, statuses, ended = _read_all(half, loop=False, limit=200)
    assert ended and 0 < len(frames) < 80
    assert [status.state for status in statuses] == ["up", "ended"]
    assert f"after {len(frames)} frames of the 90 its index lists" in statuses[-1].cause
    assert "cut short" in statuses[-1].cause
    frames, statuses, _ = _read_all(tmp_path / "whole.mp4", loop=False, limit=200)
    assert len(frames) == 90 and statuses[-1].cause == "end of file after 90 frames"


@pytest.mark.parametrize("source", ["7", "/dev/video7"])
def test_a_webcam_is_named_by_index_or_by_its_device(source: str) -> None:
    # /dev/video7 was taken for a file: "file /dev/video7 not found", or with the camera plugged in, "empty (0 bytes)"
    assert source_kind(source) == "webcam" and webcam_index(source) == 7
    frames, statuses, _ = _read_all(Path(source), loop=False, limit=1)
    assert not frames and [status.state for status in statuses] == ["failed"]
    assert statuses[0].cause.startswith("webcam 7 not found (no /dev/video7)")


def test_a_webcams_stable_name_is_the_webcam_it_links_to(monkeypatch: pytest.MonkeyPatch) -> None:
    links = {"/dev/v4l/by-id/usb-Logitech_C920-video-index0": "/dev/video2"}
    monkeypatch.setattr("os.path.realpath", lambda path: links.get(path, path))
    assert webcam_index("/dev/v4l/by-id/usb-Logitech_C920-video-index0") == 2
    assert webcam_index("/dev/v4l/by-id/usb-gone-video-index0") is None


def test_a_path_that_only_looks_like_a_webcam_is_a_file() -> None:
    assert [source_kind(source) for source in ("/dev/video7.mp4", "videos/dev/video7", "07a")] == ["file"] * 3


# --- live URLs: what the log may show, and why a stream does not open --------


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://admin:s3cret@10.0.0.12:554/stream1", "rtsp://admin:***@10.0.0.12:554/stream1"),
        ("rtsp://admin:p@ss:w0rd@10.0.0.12/h264?channel=1", "rtsp://admin:***@10.0.0.12/h264?channel=1"),
        ("http://viewer:pa%40ss@cam.local/mjpeg", "http://viewer:***@cam.local/mjpeg"),
        # a password holding #, / or ? that should have been percent-encoded: no parser finds it, still masked
        ("rtsp://admin:p#ss@10.0.0.12/stream1", "rtsp://admin:***@10.0.0.12/stream1"),
        ("rtsp://admin:pa/ss?w0rd@10.0.0.12:554/s", "rtsp://admin:***@10.0.0.12:554/s"),
        ("rtsp://admin:p@ss#word@10.0.0.12/stream1", "rtsp://admin:***@10.0.0.12/stream1"),
        (
            "rtsp://admin:s3cret@10.0.0.12/live?notify=desk@shop.example",
            "rtsp://admin:***@10.0.0.12/live?notify=desk@shop.example",
        ),
        ("http://cam.local/snap@2x.mjpg", "http://cam.local/snap@2x.mjpg"),
        ("rtsp://admin@10.0.0.12/stream1", "rtsp://admin@10.0.0.12/stream1"),
        ("rtsp://10.0.0.12/stream1", "rtsp://10.0.0.12/stream1"),
        ("videos/door.mp4", "videos/door.mp4"),
        ("0", "0"),
    ],
)
def test_a_camera_urls_password_is_never_shown(source: str, shown: str) -> None:
    assert without_password(source) == shown


@pytest.fixture()
def rtsp_door() -> Iterator[RtspDoor]:
    door = RtspDoor().start()
    yield door
    door.stop()


@pytest.mark.parametrize("qop", [False, True])
def test_why_an_rtsp_camera_does_not_open(qop: bool) -> None:
    door = RtspDoor(qop=qop).start()
    password = quote(door.password, safe="")  # "s3cr@t:pw" in a URL
    try:
        assert "wants a user name and password (401 Unauthorized)" in why_it_does_not_open(door.url(), 2)
        wrong = why_it_does_not_open(door.url("admin", "s3cr@t"), 2)
        assert "refused the user name or password (401 Unauthorized)" in wrong
        assert "no stream at /live (404 Not Found)" in why_it_does_not_open(door.url("admin", password, "/live"), 2)
        # the right credentials and path get in (Digest answered correctly); the door then plays nothing
        assert "accepts this URL, but its video would not start" in why_it_does_not_open(door.url("admin", password), 2)
    finally:
        door.stop()
    assert [status for agent, method, status in door.answers if agent == "footfall-analyzer"][-2:] == [401, 200]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_why_a_live_address_does_not_answer(tmp_path: Path) -> None:
    closed = free_port()
    assert f"nothing listens on 127.0.0.1:{closed} (connection refused)" in why_it_does_not_open(
        f"rtsp://127.0.0.1:{closed}/stream1", 2
    )
    assert "host name camera.invalid is not found (DNS)" in why_it_does_not_open("rtsp://camera.invalid/stream1", 2)
    if _has_ipv6_loopback():  # an IPv6 address is written as in its URL (it read "::1:554")
        assert f"nothing listens on [::1]:{closed} (connection" in why_it_does_not_open(f"rtsp://[::1]:{closed}/", 2)
    with socket.socket() as silent:  # accepts connections and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        assert f"no answer from 127.0.0.1:{port} within 0.5 s" in why_it_does_not_open(f"rtsp://127.0.0.1:{port}/", 0.5)
    camera = MjpegServer([b"frame"]).start()
    (tmp_path / "index.html").write_text("<html><body>camera settings</body></html>")
    pages = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    try:
        assert "not as an RTSP server" in why_it_does_not_open(camera.url.replace("http", "rtsp"), 2)
        assert "failed the TLS handshake" in why_it_does_not_open(camera.url.replace("http", "https"), 2)
        assert "no stream at /video (404" in why_it_does_not_open(camera.url.replace("/stream", "/video"), 2)
        assert "is a web page (text/html), not a video stream" in why_it_does_not_open(
            f"http://127.0.0.1:{pages.server_address[1]}/", 2
        )
    finally:
        camera.stop()
        pages.shutdown()
        pages.server_close()
    assert why_it_does_not_open("rtmp://127.0.0.1/live", 2) is None  # a scheme it cannot ask


def _first_two_statuses(source: str, within: float, **worker_options: float) -> list[StreamStatus]:
    """A live camera's statuses until it has reported twice (retries 0.2 s apart, doubling)."""
    slot, statuses, stop = LatestFrameSlot(), [], threading.Event()
    worker = CaptureWorker(
        "door", source, slot, statuses.append, lambda *_: None, stop, reconnect_backoff_s=0.2, **worker_options
    )
    worker.start()
    try:
        wait_for(lambda: len(statuses) >= 2, within, "two statuses")
    finally:
        stop.set()
        worker.join(5)
    return statuses


def test_a_camera_that_refuses_its_password_says_so_and_never_shows_it(rtsp_door: RtspDoor) -> None:
    statuses = _first_two_statuses(rtsp_door.url("admin", "Wr0ngPass"), within=10)
    assert {status.state for status in statuses} == {"down"}
    for status in statuses:
        assert f"rtsp://admin:***@127.0.0.1:{rtsp_door.port}/stream1:" in status.detail
        assert "refused the user name or password (401 Unauthorized); check them; retry" in status.detail
        assert "Wr0ngPass" not in status.detail
    assert ("footfall-analyzer", "DESCRIBE", 401) in rtsp_door.answers and any(
        agent.startswith("Lavf") for agent, _, _ in rtsp_door.answers
    )  # OpenCV's FFmpeg asked first, then the worker asked why


def test_a_camera_whose_keyframes_are_further_apart_than_the_watchdog_is_never_up_and_says_why(
    walkers_clip: tuple[Path, int],
) -> None:
    """H.264 decodes from a keyframe on: one every 12 s, and each connection joins just after one."""
    frames = jpeg_frames(walkers_clip[0])
    camera = RtspCamera(frames, keyframe_every=len(frames), join_at=1).start()
    try:
        statuses = _first_two_statuses(camera.url(camera.user, quote(camera.password, safe="")), 15, read_timeout_s=1.5)
    finally:
        camera.stop()
    assert [status.state for status in statuses[:2]] == ["down", "down"]  # never "up": no picture came
    assert statuses[0].detail == (
        f"rtsp://admin:***@127.0.0.1:{camera.port}/stream1: it opened but sent no picture it could decode; if the "
        "camera spaces keyframes (I-frames) further apart than read_timeout_s, shorten its I-frame interval or "
        "raise read_timeout_s; retry 1 in 0.2 s"
    )
    assert statuses[1].detail.endswith("retry 2 in 0.4 s")  # waits grow as after a failed open
    assert sum(method == "PLAY" for _, method, _ in camera.answers) >= 2  # it played each time: no refusal


def test_an_rtsp_session_is_kept_alive_past_the_camera_s_session_timeout(walkers_clip: tuple[Path, int]) -> None:
    """Cameras end a session they hear nothing on for its timeout (60 s is usual; 2 s here): no reconnects."""
    camera = RtspCamera(jpeg_frames(walkers_clip[0]), session_timeout_s=2).start()
    slot, statuses, stop, frames = LatestFrameSlot(), [], threading.Event(), []
    source = camera.url(camera.user, quote(camera.password, safe=""))
    worker = CaptureWorker("door", source, slot, statuses.append, lambda *frame: frames.append(frame), stop)
    worker.start()
    try:
        wait_for(lambda: statuses, 15, "the stream to come up")
        time.sleep(4 * camera.session_timeout_s)
    finally:
        stop.set()
        worker.join(5)
        camera.stop()
    assert [status.state for status in statuses] == ["up"] and camera.sessions_expired == 0
    assert len(frames) >= 4 * camera.session_timeout_s * camera.fps * 0.8
    assert [method for _, method, _ in camera.answers].count("OPTIONS") >= 4  # FFmpeg's keep-alives


class _BasicAuthCamera(BaseHTTPRequestHandler):
    """An MJPEG camera behind HTTP Basic authentication (user ``viewer``, password ``pa@ss``)."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"viewer:pa@ss").decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_why_an_http_camera_with_basic_credentials_does_not_open() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthCamera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}/mjpeg"
    try:
        assert "wants a user name and password (401" in why_it_does_not_open(f"http://{address}", 2)
        assert "refused the user name or password (401" in why_it_does_not_open(f"http://viewer:pass@{address}", 2)
        let_in = why_it_does_not_open(f"http://viewer:pa%40ss@{address}", 2)  # the password percent-encoded
        assert "the server answers (200 OK, multipart/x-mixed-replace" in let_in
    finally:
        server.shutdown()
        server.server_close()


def test_a_live_camera_read_for_an_idle_reader_decodes_every_frame_and_hands_over_every_third(
    walkers_clip: tuple[Path, int],
) -> None:
    """An H.264 camera over RTSP, its reader idle (``stride`` 3): each frame is still decoded and counted read,
    every third is handed over telling of the two passed over before it, and none is dropped."""
    camera = RtspCamera(jpeg_frames(walkers_clip[0])).start()
    slot, statuses, stop, read = LatestFrameSlot(), [], threading.Event(), []
    slot.stride = 3
    source = camera.url(camera.user, quote(camera.password, safe=""))
    worker = CaptureWorker("door", source, slot, statuses.append, lambda *frame: read.append(frame), stop)
    worker.start()
    handed: list[Frame] = []
    try:
        while not handed or time.monotonic() - handed[0].captured_at < 3.0:
            item = slot.get(timeout=15)
            assert isinstance(item, Frame), (item, statuses)
            handed.append(item)
        while_reading = list(read)  # what came after is not read: the next frame would replace it
    finally:
        stop.set()
        worker.join(5)
        camera.stop()
    assert [status.state for status in statuses] == ["up"]
    assert len(handed) >= 3.0 * camera.fps / 3 * 0.8
    assert all(frame.index % 3 == 0 for frame in handed)
    assert [frame.passed_over for frame in handed[1:]] == [2] * (len(handed) - 1)
    assert not any(dropped for _, dropped, _ in while_reading) and len(while_reading) >= handed[-1].index + 1


@pytest.mark.parametrize("threads", [1, 3])
def test_a_file_and_a_live_camera_decode_on_the_threads_they_are_given(
    walkers_clip: tuple[Path, int], threads: int
) -> None:
    """A box with a camera per core decodes each on one FFmpeg thread (``cores.decoder_threads``); same pictures."""

    def opened(source: str, decoder_threads: int = 0) -> cv2.VideoCapture:
        worker = CaptureWorker(
            "door", source, LatestFrameSlot(), print, print, threading.Event(), decoder_threads=decoder_threads
        )
        capture = worker._open()
        assert capture is not None, source
        return capture

    camera = RtspCamera(jpeg_frames(walkers_clip[0])).start()
    try:
        for source in (str(walkers_clip[0]), camera.url(camera.user, quote(camera.password, safe=""))):
            capture = opened(source, threads)
            assert capture.get(cv2.CAP_PROP_N_THREADS) == threads, source
            capture.release()
    finally:
        camera.stop()
    own_choice, given = opened(str(walkers_clip[0])), opened(str(walkers_clip[0]), threads)
    for _ in range(20):
        (_, expected), (_, decoded) = own_choice.read(), given.read()
        assert np.array_equal(expected, decoded)
