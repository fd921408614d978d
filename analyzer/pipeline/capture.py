"""Capture workers: one thread per camera reading frames with OpenCV.

Live sources (RTSP/HTTP URLs, webcams) keep only the newest frame: when the
pipeline falls behind, older frames are dropped and counted, so latency stays
bounded. Files either play at their own pace (``realtime``, same dropping as a
live camera) or as fast as the pipeline takes them (no drops). A lost live
stream is reopened with exponential backoff (capped). FFmpeg's interrupt
callback is the watchdog for live streams: an open or a read that gets no data
for ``read_timeout_s`` is abandoned, reported and retried.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from analyzer.core.camera_url import why_it_does_not_open, without_password
from analyzer.core.sources import file_path, source_kind, webcam_index

_PROBE_TIMEOUT_S = 5.0  # asking a camera's server why its stream does not open waits no longer than this
MIN_FILE_FPS, MAX_FILE_FPS = 1.0, 240.0  # a file's fps outside these is an average over gaps, or nonsense
TRUNCATED_SHARE = 0.9  # a file that ends before this share of the frames it announces is cut short
MAX_UNREADABLE_IN_A_ROW = 3  # a live stream whose reads fail more often in a row than this is broken: reopen it
_FRAME_GRID_TOLERANCE_S = 0.001  # containers round frame times; Matroska to the millisecond
MAX_PACED_GAP_S = 2.0  # played in real time, a longer gap between a file's frames takes one frame's time
ISO_MEDIA_SUFFIXES = (".mp4", ".m4v", ".mov", ".3gp")  # MP4 and QuickTime: boxes, an index in "moov"
# An H.264/H.265 stream can be decoded from a keyframe on; a camera that spaces them further apart than the
# watchdog allows (a long or "smart"/dynamic GOP) opens and then shows nothing.
NO_PICTURE = (
    "it opened but sent no picture it could decode; if the camera spaces keyframes (I-frames) further "
    "apart than read_timeout_s, shorten its I-frame interval or raise read_timeout_s"
)
NO_WEBCAM_PICTURE = "it opened but sent no picture; is another program using the camera?"
STILL_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        camera: camera id.
        index: frame number from the start of the stream.
        timestamp: seconds on the stream's clock (files: the frame's own time in the file; live: since start).
        captured_at: ``time.monotonic()`` when it was read, for latency.
        image: (H, W, 3) uint8 BGR as decoded.
        passed_over: frames decoded just before this one and not handed over, because the reader asked
            for fewer while its camera saw no one (:attr:`LatestFrameSlot.stride`); not dropped, not looked at.
    """

    camera: str
    index: int
    timestamp: float
    captured_at: float
    image: np.ndarray
    passed_over: int = 0


@dataclass(frozen=True)
class StreamStatus:
    """A stream came up, went down or ended."""

    camera: str
    state: str  # up | down | ended | failed
    cause: str  # what happened (and what to do)
    reconnects: int
    next_try: str = ""  # a live stream's retry, e.g. "retry 3 in 4 s"; "" when none follows

    @property
    def detail(self) -> str:
        """The one line logs, ``status.<camera>`` messages and the report show."""
        return f"{self.cause}; {self.next_try}" if self.next_try else self.cause


@dataclass(frozen=True)
class EndOfStream:
    """No more frames will come from this camera.

    Attributes:
        camera: camera id.
        passed_over: frames decoded after the last one handed over and not handed over (see :class:`Frame`).
        frames: how many frames the stream gave in all (the next frame's index).
    """

    camera: str
    passed_over: int = 0
    frames: int = 0


class LatestFrameSlot:
    """A one-frame mailbox: ``put`` replaces an unread frame (counted as dropped).

    The reader may ask for every ``stride``-th frame only (while its camera sees no one and nothing
    moves): the writer still decodes each frame, since the next is predicted from it, but does not make
    the others a picture or hand them over.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Frame | EndOfStream | None = None
        self._reader_waiting = False
        self.dropped = 0
        self.stride = 1

    def wants(self, index: int, settled: bool = False, stop: threading.Event | None = None) -> bool:
        """Whether the reader wants frame ``index`` made a picture and handed over.

        With ``settled`` (a file read as fast as it goes) it answers once the reader is done with every frame
        handed over before and waits for the next, so the answer never depends on how far the reader got:
        a file is counted the same on every run.
        """
        if settled:
            with self._condition:
                while not (self._item is None and self._reader_waiting) and not (stop and stop.is_set()):
                    self._condition.wait(0.1)
        return index % self.stride == 0

    def put(self, item: Frame | EndOfStream, block: bool = False, stop: threading.Event | None = None) -> bool:
        """Offer an item; with ``block`` wait for the reader instead of dropping.

        Returns:
            True if an unread frame was replaced (a drop).
        """
        with self._condition:
            # The end marker never replaces an unread frame: the last frame is not lost.
            if block or isinstance(item, EndOfStream):
                while self._item is not None and not (stop and stop.is_set()):
                    self._condition.wait(0.1)
            if isinstance(self._item, EndOfStream):
                return False
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._condition.notify_all()
            return replaced

    def get(self, timeout: float | None = None) -> Frame | EndOfStream | None:
        """The newest item, or None after ``timeout`` seconds."""
        with self._condition:
            if self._item is None:
                self._reader_waiting = True
                self._condition.notify_all()  # a writer asking for a settled answer (wants) gets it now
                self._condition.wait(timeout)
                self._reader_waiting = False
            item, self._item = self._item, None
            self._condition.notify_all()
            return item


def describe_file_problem(path: Path) -> str | None:
    """A one-line reason a video file cannot be played, or None if it looks fine."""
    if not path.exists():  # a service's working folder is rarely the one the config was written in
        return f"file {path} not found" + ("" if path.is_absolute() else f" (relative to {Path.cwd()})")
    if path.is_dir():
        return f"{path} is a directory, not a video file"
    if path.stat().st_size == 0:
        return f"file {path} is empty (0 bytes)"
    if path.suffix.lower() in STILL_IMAGE_SUFFIXES:
        return f"{path} is a still image, not a video"
    if _looks_like_text(path):
        return f"{path} is a text file, not a video"
    return None


def _looks_like_text(path: Path) -> bool:
    """Video containers are binary from the first bytes; FFmpeg would otherwise 'play' text as ANSI art."""
    with path.open("rb") as stream:
        head = stream.read(4096)
    if b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum(character.isprintable() or character.isspace() for character in text) >= 0.95 * len(text)


def why_a_file_does_not_open(path: Path) -> str:
    """OpenCV only says it failed; an MP4 or MOV cut off before its index was written can be told apart.

    A recorder that loses power or is killed mid-file leaves its frames in an
    ``mdat`` box but never writes the ``moov`` box that indexes them. Nothing
    plays such a file, but tools can rebuild the index, so say so.
    """
    if path.suffix.lower() in ISO_MEDIA_SUFFIXES:
        boxes = _top_level_boxes(path)
        if boxes[:1] == [b"ftyp"] and b"moov" not in boxes:
            return (
                f"{path} was cut off before its index was written (no moov box: the recording stopped mid-file); "
                "rebuild the index with a tool such as untrunc and a good file from the same camera, or export it again"
            )
    return f"cannot open {path} as video (unsupported codec or not a video file)"


def _top_level_boxes(path: Path) -> list[bytes]:
    """The types of an ISO media file's top-level boxes, in order, as far as their sizes are whole."""
    file_size = path.stat().st_size
    kinds: list[bytes] = []
    offset = 0
    with path.open("rb") as stream:
        while offset + 8 <= file_size and len(kinds) < 10_000:
            stream.seek(offset)
            header = stream.read(16)
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if size == 1:  # a 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            elif size == 0:  # the box runs to the end of the file
                size = file_size - offset
            if size < 8:
                break
            kinds.append(kind)
            offset += size
    return kinds


def describe_webcam_problem(index: int) -> str | None:
    """Why a webcam index cannot be a camera on this box (Linux: no /dev/videoN), or None."""
    device = Path(f"/dev/video{index}")
    if Path("/dev").is_dir() and Path("/sys/class").is_dir() and not device.exists():
        return f"webcam {index} not found (no {device})"
    return None


class FileClock:
    """The stream clock of a video file, from each frame's own time in the file.

    A frame count over the file's fps is wrong for much real footage: phones
    record at a variable rate, and an NVR's export of motion recordings skips
    the quiet minutes, so its average fps is far below its real one (0.6 fps
    reported for a 15 fps clip with a gap). The tracker's seconds, visit
    durations and dwell need the real times. A time that does not move
    forward (a file without frame times, a loop back to the start, a segment
    whose clock restarts) is taken as one ``nominal_fps`` frame after the last.
    A time within a millisecond of the nominal frame grid is taken as on it:
    containers round frame times (Matroska to the millisecond), and a
    constant-rate file then keeps exactly the times a frame count gives.
    """

    def __init__(self, nominal_fps: float) -> None:
        self.nominal_fps = nominal_fps
        self.last_s: float | None = None
        self._offset_s = 0.0

    @property
    def frame_step_s(self) -> float:
        """One nominal frame's time."""
        return 1.0 / self.nominal_fps

    def timestamp(self, file_s: float) -> float:
        """Seconds on the stream clock (0 at the first frame) of a frame ``file_s`` into the file."""
        on_grid = round(file_s * self.nominal_fps) / self.nominal_fps
        if abs(file_s - on_grid) < _FRAME_GRID_TOLERANCE_S:
            file_s = on_grid
        if self.last_s is None:
            self._offset_s = -file_s
        elif file_s + self._offset_s <= self.last_s:
            self._offset_s = self.last_s + self.frame_step_s - file_s
        self.last_s = file_s + self._offset_s
        return self.last_s


def _timed_grab(capture: cv2.VideoCapture) -> tuple[bool, float]:
    """Decode the next frame (False at the end or on error), and the seconds it took; no picture yet."""
    started = time.perf_counter()
    ok = capture.grab()
    return ok, time.perf_counter() - started


def _timed_picture(capture: cv2.VideoCapture) -> tuple[np.ndarray | None, float]:
    """The decoded frame as a BGR picture (None if it cannot be made one), and the seconds it took."""
    started = time.perf_counter()
    ok, image = capture.retrieve()
    return (image if ok else None), time.perf_counter() - started


def quiet_video_library_logs() -> None:
    """Silence OpenCV's and FFmpeg's own lines (a refused connection, a missing moov atom, per retry).

    The capture worker logs one line per failure with its reason; the
    libraries' lines would repeat it in their own words on every retry. An
    operator who wants them sets ``OPENCV_FFMPEG_LOGLEVEL`` (e.g. 24) or
    ``OPENCV_LOG_LEVEL`` (e.g. INFO) before starting, and those win.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read once, when FFmpeg first opens or writes anything
    if "OPENCV_LOG_LEVEL" not in os.environ:  # read at import, so set the live level instead
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class CaptureWorker(threading.Thread):
    """Reads one camera into a :class:`LatestFrameSlot` until the stream ends or ``stop`` is set.

    Args:
        camera: camera id.
        source: path, URL or webcam index.
        slot: where frames go.
        on_status: called with every :class:`StreamStatus`.
        on_frame: called with (camera, dropped_now, decode_seconds) for each frame read.
        on_unreadable: called with (camera, frames) when a live stream's frames came damaged and were skipped.
        realtime: for files, pace at the file's fps and drop like a live camera.
        loop: for files, start again at the end; timestamps keep increasing.
        reconnect_backoff_s: first wait before reopening a live stream; doubles up to ``max_backoff_s``.
        read_timeout_s: watchdog: how long opening or reading a live stream may go without data.
        decoder_threads: FFmpeg's threads for this stream's decoder; 0 lets FFmpeg choose
            (:func:`analyzer.service.cores.decoder_threads`).
    """

    def __init__(
        self,
        camera: str,
        source: str,
        slot: LatestFrameSlot,
        on_status: Callable[[StreamStatus], None],
        on_frame: Callable[[str, bool, float], None],
        stop: threading.Event,
        realtime: bool = True,
        loop: bool = False,
        reconnect_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        read_timeout_s: float = 10.0,
        on_unreadable: Callable[[str, int], None] = lambda camera, frames: None,
        decoder_threads: int = 0,
    ) -> None:
        super().__init__(name=f"capture-{camera}", daemon=True)
        self.decoder_threads = decoder_threads
        self.camera = camera
        self.source = source
        self.kind = source_kind(source)
        self.webcam = webcam_index(source)
        self.slot = slot
        self.on_status = on_status
        self.on_frame = on_frame
        self.on_unreadable = on_unreadable
        self.stop_event = stop
        self.realtime = realtime
        self.loop = loop
        self.reconnect_backoff_s = reconnect_backoff_s
        self.max_backoff_s = max_backoff_s
        self.read_timeout_s = read_timeout_s
        self.reconnects = 0
        self.frames_read = 0  # the next frame's index
        self.passed_over = 0  # frames passed over since the last one handed over

    def _status(self, state: str, cause: str, next_try: str = "") -> None:
        self.on_status(StreamStatus(self.camera, state, cause, self.reconnects, next_try))

    def _open(self) -> cv2.VideoCapture | None:
        threads = [cv2.CAP_PROP_N_THREADS, self.decoder_threads] if self.decoder_threads else []
        if self.webcam is not None:
            capture = cv2.VideoCapture(self.webcam)
        elif self.kind == "live":
            timeout_ms = int(self.read_timeout_s * 1000)
            capture = cv2.VideoCapture(
                self.source,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms, *threads],
            )
        else:
            path = str(file_path(self.source))
            capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, threads) if threads else cv2.VideoCapture(path)
            if threads and not capture.isOpened():  # not FFmpeg's to play: let OpenCV's other readers try
                capture.release()
                capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            capture.release()
            return None
        return capture

    def _why_it_does_not_open(self) -> str:
        """OpenCV only says it failed; a URL's server can say why (wrong port, path or password)."""
        return why_it_does_not_open(self.source, min(self.read_timeout_s, _PROBE_TIMEOUT_S)) or "cannot open it"

    def _down(self, cause: str, backoff: float, was_up: bool = False) -> float:
        """Report the live stream down and wait ``backoff`` seconds (or until stopped); returns the next wait."""
        self.reconnects += 1
        next_try = f"reconnecting in {backoff:g} s" if was_up else f"retry {self.reconnects} in {backoff:g} s"
        self._status("down", cause, next_try=next_try)
        self.stop_event.wait(backoff)
        return min(backoff * 2, self.max_backoff_s)

    def _timed_out(self, seconds: float) -> bool:
        """Did a failed open or read last as long as the watchdog allows (no answer, not a refusal)?"""
        return self.kind == "live" and seconds >= 0.9 * self.read_timeout_s

    def run(self) -> None:
        """Read until the end (files) or until stopped (live, with reconnects)."""
        try:
            if self.kind == "file":
                self._run_file()
            else:
                self._run_live()
        finally:
            self.slot.put(EndOfStream(self.camera, self.passed_over, self.frames_read), stop=self.stop_event)

    def _pass_over(self, decode_seconds: float) -> None:
        """The reader asked for fewer frames (its camera is idle): this one was decoded, and that is all."""
        self.on_frame(self.camera, False, decode_seconds)
        self.frames_read += 1
        self.passed_over += 1

    def _hand_over(self, timestamp: float, captured_at: float, image: np.ndarray, read_seconds: float) -> None:
        frame = Frame(self.camera, self.frames_read, timestamp, captured_at, image, self.passed_over)
        dropped = self.slot.put(frame, block=self.kind == "file" and not self.realtime, stop=self.stop_event)
        self.on_frame(self.camera, dropped, read_seconds)
        self.frames_read += 1
        self.passed_over = 0

    def _run_file(self) -> None:
        path = file_path(self.source)
        problem = describe_file_problem(path)
        if problem:
            self._status("failed", f"{problem}; check the camera's source path")
            return
        capture = self._open()
        if capture is None:
            self._status("failed", why_a_file_does_not_open(path))
            return
        if capture.getBackendName() == "CV_IMAGES":
            capture.release()
            self._status("failed", f"{self.source} is a still image or image sequence, not a video")
            return
        fps = capture.get(cv2.CAP_PROP_FPS)
        steady = MIN_FILE_FPS <= fps <= MAX_FILE_FPS
        rate = f"at {fps:.1f} fps" if steady else "at a variable frame rate"
        self._status("up", f"playing {self.source} {rate}" + ("" if self.realtime else " (as fast as possible)"))
        clock = FileClock(fps if steady else 25.0)
        indexed = path.suffix.lower() in ISO_MEDIA_SUFFIXES  # elsewhere the count is a guess
        announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if indexed else 0
        started = time.monotonic()
        try:
            while not self.stop_event.is_set():
                ok, decode_seconds = _timed_grab(capture)
                if not ok and self.loop and self.frames_read > 0:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, decode_seconds = _timed_grab(capture)
                if not ok:
                    break
                previous_s = clock.last_s
                timestamp = clock.timestamp(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
                if self.realtime:
                    if previous_s is not None and timestamp - previous_s > MAX_PACED_GAP_S:
                        started -= timestamp - previous_s - clock.frame_step_s  # a gap in a recording: not waited out
                    delay = started + timestamp - time.monotonic()
                    if delay > 0:
                        self.stop_event.wait(delay)
                if not self.slot.wants(self.frames_read, settled=not self.realtime, stop=self.stop_event):
                    self._pass_over(decode_seconds)
                    continue
                image, picture_seconds = _timed_picture(capture)
                if image is None:
                    break
                self._hand_over(timestamp, time.monotonic(), image, decode_seconds + picture_seconds)
        finally:
            capture.release()
        if self.stop_event.is_set():  # Ctrl-C or SIGTERM, maybe before the first frame: not the file's fault
            self._status("ended", f"stopped after {self.frames_read} frames")
        elif self.frames_read == 0:
            self._status("failed", f"{self.source} has no decodable frames (corrupt, truncated or not a video)")
        elif self.frames_read < TRUNCATED_SHARE * announced:  # the frames the index lists are not in the file
            self._status(
                "ended",
                f"end of file after {self.frames_read} frames of the {announced} its index lists: "
                f"{self.source} is cut short (copied or downloaded in part?); what it holds is counted",
            )
        else:
            self._status("ended", f"end of file after {self.frames_read} frames")

    def _run_live(self) -> None:
        if self.webcam is not None:
            problem = describe_webcam_problem(self.webcam)
            if problem:
                self._status("failed", f"{problem}; check the camera's source index")
                return
        backoff = self.reconnect_backoff_s
        started = time.monotonic()
        what = f"webcam {self.webcam}" if self.webcam is not None else without_password(self.source)
        while not self.stop_event.is_set():
            opening = time.monotonic()
            capture = self._open()
            if capture is None:
                why = (
                    f"no answer within {self.read_timeout_s:g} s"
                    if self._timed_out(time.monotonic() - opening)
                    else self._why_it_does_not_open()
                )
                backoff = self._down(f"{what}: {why}", backoff)
                continue
            read_seconds = 0.0
            unreadable = 0  # frames in a row that came but did not decode
            pictures = 0  # frames decoded since this open
            try:
                while not self.stop_event.is_set():
                    ok, read_seconds = _timed_grab(capture)
                    image = None
                    wanted = ok and (self.slot.wants(self.frames_read) or not pictures)
                    if wanted:
                        image, picture_seconds = _timed_picture(capture)
                        read_seconds += picture_seconds
                    if not ok or (wanted and image is None):
                        if self._timed_out(read_seconds) or unreadable >= MAX_UNREADABLE_IN_A_ROW:
                            break
                        unreadable += 1  # a damaged frame (an MJPEG camera on a bad link): the next one may be fine
                        continue
                    if not pictures:  # up at the first picture: a stream that opens and shows nothing is not up
                        self._status("up", f"connected to {what}")
                        backoff = self.reconnect_backoff_s
                    pictures += 1
                    if unreadable:
                        self.on_unreadable(self.camera, unreadable)
                        unreadable = 0
                    if image is None:
                        self._pass_over(read_seconds)
                        continue
                    now = time.monotonic()
                    self._hand_over(now - started, now, image, read_seconds)
            finally:
                capture.release()
            if self.stop_event.is_set():
                break
            if not pictures:  # as a failed open: the wait grows
                backoff = self._down(f"{what}: {NO_WEBCAM_PICTURE if self.webcam is not None else NO_PICTURE}", backoff)
                continue
            why = (
                f"no frame for {self.read_timeout_s:g} s (watchdog)"
                if self._timed_out(read_seconds)
                else "the stream ended or broke"
            )
            self._down(f"{what}: {why}", backoff, was_up=True)
