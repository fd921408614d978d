"""ZeroMQ PUB publisher that never blocks the pipeline, and counts what it drops.

The socket's send high-water mark (``zmq.send_hwm``) bounds memory per
subscriber. A plain PUB socket drops a message silently, inside libzmq, for a
subscriber whose queue is full: the publisher could not know. With
``ZMQ_XPUB_NODROP`` set, libzmq refuses the send instead (``zmq.Again``),
and the refused message is counted as dropped. The price: a message refused
for one slow subscriber is refused for all, since PUB sends each message to
every subscriber or none. ZeroMQ heartbeats close the queue of a subscriber
whose host has gone, so a vanished one does not hold the feed. ``seq``
increases with every message offered, dropped or not, so each subscriber
sees exactly which ones it missed. With no subscriber at all a message goes
nowhere, and counts as sent, as ZeroMQ treats it.
"""

from __future__ import annotations

import time

import zmq

from analyzer.errors import ConfigError
from analyzer.outputs import messages

#: A subscriber whose host stops answering ZeroMQ's heartbeats for this long is disconnected (its queue freed).
HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS = 10_000, 30_000


class ZmqPublisher:
    """Publishes ``[topic, json]`` messages on a bound PUB socket.

    Example:
        >>> publisher = ZmqPublisher("tcp://127.0.0.1:0")  # doctest: +SKIP
        >>> publisher.publish("visit", "door", {"visit_id": "ab12"})  # doctest: +SKIP
        True
    """

    def __init__(self, bind: str, context: zmq.Context | None = None, send_hwm: int = 10000) -> None:
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, send_hwm)
        self._socket.setsockopt(zmq.XPUB_NODROP, 1)  # at the HWM: zmq.Again (counted), not a silent drop
        self._socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self._socket.setsockopt(zmq.LINGER, 1000)
        try:
            self._socket.bind(bind)
        except zmq.ZMQError as error:
            self._socket.close(linger=0)
            raise ConfigError(
                f"zmq.bind: cannot bind {bind} ({error.strerror}); pick a free port or interface with --zmq-bind"
            ) from None
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.seq = 0
        self.sent = 0
        self.dropped = 0

    def publish(self, kind: str, camera: str, fields: dict[str, object], site: str = "") -> bool:
        """Send one message without blocking; False (and counted) if a subscriber's full queue refused it."""
        self.seq += 1
        frames = messages.encode(kind, camera, self.seq, time.time(), fields, site)
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the socket, giving queued messages up to a second to leave."""
        self._socket.close()
