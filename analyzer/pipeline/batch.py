"""Cross-camera dynamic batching for the classifier.

One inference call on 16 faces costs far less than 16 calls on one face, so
samples from all cameras wait up to ``max_wait_s`` for company, and a batch is
cut as soon as it holds ``max_batch`` samples. Other items (visit-ended
markers) travel in the same queue, so they always come after the samples that
preceded them: a visit's attributes are final when its marker is handled.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

Item = TypeVar("Item")


class Source(Protocol[Item]):  # type: ignore[misc]
    """What the batcher reads: ``queue.Queue`` or :class:`ClassifierQueue`."""

    def get(self, block: bool = True, timeout: float | None = None) -> Item:
        """The oldest item; ``queue.Empty`` after ``timeout``."""
        ...

    def get_nowait(self) -> Item:
        """The oldest item, or ``queue.Empty`` at once."""
        ...


class ClassifierQueue(Generic[Item]):
    """The FIFO between the camera threads and the classifier: samples are bounded, markers never refused.

    A classifier that falls behind or hangs must not grow memory: beyond
    ``max_samples`` waiting samples :meth:`put` refuses the new one (the
    caller counts it; its track votes with the samples it has). A marker
    (a visit that ended, a camera that finished) always goes in, so no visit
    is lost; markers are small, and :meth:`drain` lets another thread finish
    them while the classifier is stuck.

    Example:
        >>> waiting = ClassifierQueue(lambda item: isinstance(item, int), max_samples=1)
        >>> waiting.put(1), waiting.put(2), waiting.put("visit ended")
        (True, False, True)
        >>> waiting.drain()
        [1, 'visit ended']
    """

    def __init__(self, is_sample: Callable[[Item], bool], max_samples: int) -> None:
        self.is_sample = is_sample
        self.max_samples = max_samples
        self._items: deque[Item] = deque()
        self._samples = 0
        self._ready = threading.Condition()

    def put(self, item: Item) -> bool:
        """Queue ``item``; False (not queued) for a sample beyond ``max_samples``."""
        sample = self.is_sample(item)
        with self._ready:
            if sample and self._samples >= self.max_samples:
                return False
            self._items.append(item)
            self._samples += sample
            self._ready.notify()
        return True

    def get(self, block: bool = True, timeout: float | None = None) -> Item:
        """The oldest item, waiting up to ``timeout`` for one; ``queue.Empty`` if none came."""
        with self._ready:
            if block and not self._ready.wait_for(lambda: bool(self._items), timeout):
                raise queue.Empty
            if not self._items:
                raise queue.Empty
            return self._take()

    def get_nowait(self) -> Item:
        """The oldest item, or ``queue.Empty`` at once."""
        return self.get(block=False)

    def drain(self) -> list[Item]:
        """Everything waiting, oldest first, taken out."""
        with self._ready:
            items = list(self._items)
            self._items.clear()
            self._samples = 0
            return items

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)

    @property
    def samples(self) -> int:
        """Samples waiting."""
        with self._ready:
            return self._samples

    def _take(self) -> Item:
        item = self._items.popleft()
        self._samples -= self.is_sample(item)
        return item


class Batcher(Generic[Item]):
    """Cuts a FIFO queue into batches by size and waiting time.

    Args:
        source: the queue of samples and markers.
        is_sample: tells samples (which count toward ``max_batch``) from markers.
        max_batch: most samples in one batch; raising it improves throughput
            on GPUs and costs latency.
        max_wait_s: longest a sample waits for others; raising it fills
            batches better when cameras are few, and adds that much latency.

    Example:
        >>> q = queue.Queue()
        >>> for n in range(5):
        ...     q.put(n)
        >>> Batcher(q, lambda item: True, max_batch=2, max_wait_s=0.0).next_batch(0.1)
        [0, 1]
    """

    def __init__(
        self, source: Source[Item], is_sample: Callable[[Item], bool], max_batch: int = 32, max_wait_s: float = 0.02
    ) -> None:
        self.source = source
        self.is_sample = is_sample
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s

    def next_batch(self, idle_timeout_s: float = 0.5) -> list[Item]:
        """The next items in arrival order; empty after ``idle_timeout_s`` with nothing queued."""
        try:
            first = self.source.get(timeout=idle_timeout_s)
        except queue.Empty:
            return []
        items = [first]
        samples = 1 if self.is_sample(first) else 0
        deadline = time.monotonic() + self.max_wait_s
        while samples < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self.source.get(timeout=remaining) if remaining > 0 else self.source.get_nowait()
            except queue.Empty:
                break
            items.append(item)
            samples += 1 if self.is_sample(item) else 0
        return items
