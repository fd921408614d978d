"""The ZeroMQ message contract (see docs/ZMQ.md).

Multipart ``[topic, json]``; every message carries ``schema``, ``seq`` (per
publisher, monotonic, so a subscriber sees gaps), ``ts`` (unix seconds),
``camera`` and ``site`` (the shop). MQTT carries the same JSON.
"""

from __future__ import annotations

import json
import math

SCHEMA = "footfall/1"
TOPIC_KINDS = ("visit", "summary", "status")


def topic(kind: str, camera: str) -> str:
    """``visit.<camera>``, ``summary.<camera>`` or ``status.<camera>``."""
    if kind not in TOPIC_KINDS:
        raise ValueError(f"unknown message kind '{kind}'; one of {TOPIC_KINDS}")
    return f"{kind}.{camera}"


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


#: Fields every message carries, set by the publisher: a message's own fields may not replace them.
ENVELOPE = ("schema", "seq", "ts", "camera", "site")


def body(kind: str, camera: str, seq: int, ts: float, fields: dict[str, object], site: str = "") -> bytes:
    """A message's JSON (ZeroMQ's second frame, an MQTT payload); NaN/inf become null so every consumer parses it."""
    clashing = [key for key in ENVELOPE if key in fields]
    if clashing:  # a subscriber's gap count and topic filter rest on these
        raise ValueError(f"a {kind} message's fields may not set {', '.join(clashing)}: the publisher does")
    envelope = {"schema": SCHEMA, "seq": seq, "ts": round(ts, 3), "camera": camera, **({"site": site} if site else {})}
    document = {**envelope, **fields}
    return json.dumps(_finite(document), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def encode(kind: str, camera: str, seq: int, ts: float, fields: dict[str, object], site: str = "") -> list[bytes]:
    """The two ZeroMQ frames of one message."""
    return [topic(kind, camera).encode(), body(kind, camera, seq, ts, fields, site)]


def decode(frames: list[bytes]) -> tuple[str, dict[str, object]]:
    """Topic and body of a received message."""
    if len(frames) != 2:
        raise ValueError(f"expected 2 frames [topic, json], got {len(frames)}")
    return frames[0].decode(), json.loads(frames[1])
