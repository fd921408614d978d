"""Cross-camera dynamic batching for the classifier.

One inference call on 16 faces costs far less than 16 calls on one face, so
samples from all cameras wait up to ``max_wait_s`` for company, and a batch is
cut as soon as it holds ``max_batch`` samples. Other items (visit-ended
markers) travel in the same queue, so they always come after the samples that
preceded them: a visit's attributes are final when its marker is handled.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


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
        self, source: queue.Queue, is_sample: Callable[[Item], bool], max_batch: int = 32, max_wait_s: float = 0.02
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
