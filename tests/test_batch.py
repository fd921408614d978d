import queue
import threading
import time

import pytest

from analyzer.pipeline.batch import Batcher, ClassifierQueue


def test_batch_cut_by_size_keeps_order_and_markers() -> None:
    items: queue.Queue = queue.Queue()
    for item in [1, 2, "end-a", 3, 4, 5]:
        items.put(item)
    batcher = Batcher(items, lambda item: isinstance(item, int), max_batch=3, max_wait_s=1.0)
    assert batcher.next_batch() == [1, 2, "end-a", 3]
    assert batcher.next_batch() == [4, 5]  # the wait runs out with fewer than max_batch


def test_batch_waits_for_late_samples_up_to_max_wait() -> None:
    items: queue.Queue = queue.Queue()
    batcher = Batcher(items, lambda item: True, max_batch=8, max_wait_s=0.3)
    items.put("a")
    threading.Timer(0.1, items.put, args=("b",)).start()
    started = time.monotonic()
    assert batcher.next_batch() == ["a", "b"]
    assert 0.25 < time.monotonic() - started < 1.0


def test_idle_returns_empty() -> None:
    assert Batcher(queue.Queue(), lambda item: True).next_batch(idle_timeout_s=0.05) == []


def test_the_classifier_queue_refuses_samples_beyond_its_bound_but_never_a_marker() -> None:
    waiting = ClassifierQueue(lambda item: isinstance(item, int), max_samples=3)
    assert [waiting.put(n) for n in range(5)] == [True, True, True, False, False]
    assert waiting.put("visit ended") and waiting.put("camera done")  # markers go in whatever waits
    assert (waiting.samples, len(waiting)) == (3, 5)
    assert waiting.get(timeout=0) == 0 and waiting.put(7)  # room for one more sample once one left
    assert Batcher(waiting, lambda item: isinstance(item, int), max_batch=8, max_wait_s=0).next_batch(0.1) == [
        1,
        2,
        "visit ended",
        "camera done",
        7,
    ]
    with pytest.raises(queue.Empty):
        waiting.get(timeout=0.05)
    waiting.put(1)
    waiting.put("visit ended")
    assert waiting.drain() == [1, "visit ended"] and waiting.samples == 0
