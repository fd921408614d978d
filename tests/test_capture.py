"""Capture workers on real files: pacing off, looping, the end marker, the one-frame mailbox."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import cv2

from analyzer.capture import CaptureWorker, EndOfStream, Frame, LatestFrameSlot, StreamStatus


def _read_all(clip: Path, loop: bool, limit: int) -> tuple[list[Frame], list[StreamStatus], bool]:
    slot, statuses, stop = LatestFrameSlot(), [], threading.Event()
    worker = CaptureWorker("cam", str(clip), slot, statuses.append, lambda *_: None, stop, realtime=False, loop=loop)
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
