"""Property tests: the config loader and the message encoder hold up against anything thrown at them."""

from __future__ import annotations

import dataclasses
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.config import CameraConfig, Config, parse_config
from analyzer.errors import ConfigError
from analyzer.outputs import messages

SCALARS = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SECTION_KEYS = [field.name for field in dataclasses.fields(Config)]
RESERVED = ("schema", "seq", "ts", "camera")
CAMERA_KEYS = [field.name for field in dataclasses.fields(CameraConfig)]


def _keys(known: list[str]) -> st.SearchStrategy[str]:
    """Mostly real key names (so the checks deep inside get reached), sometimes typos."""
    return st.sampled_from(known) | st.text(min_size=1, max_size=10)


CAMERAS = st.lists(st.dictionaries(_keys(CAMERA_KEYS), VALUES, max_size=6), max_size=3)
DOCUMENTS = st.dictionaries(_keys(SECTION_KEYS), VALUES, max_size=6).flatmap(
    lambda document: st.builds(lambda cameras: {**document, "cameras": cameras}, CAMERAS) | st.just(document)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_config_loader_accepts_or_names_the_problem(document: dict) -> None:
    """Any document either loads or raises ConfigError with a one-line message; never a traceback."""
    try:
        config = parse_config(document)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message
        assert ":" in message  # "<key path>: <what is wrong>"
        return
    assert config.cameras and all(camera.id and camera.source for camera in config.cameras)
    assert all(math.isfinite(camera.read_timeout_s) for camera in config.cameras)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(messages.TOPIC_KINDS),
    camera=st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True),
    seq=st.integers(1, 2**53),
    ts=st.floats(0, 4e9),
    fields=st.dictionaries(st.text(max_size=10).filter(lambda key: key not in RESERVED), VALUES, max_size=6),
)
def test_message_encoder_round_trips_and_is_always_strict_json(
    kind: str, camera: str, seq: int, ts: float, fields: dict
) -> None:
    frames = messages.encode(kind, camera, seq, ts, fields)
    topic, body = messages.decode(frames)
    json.loads(frames[1], parse_constant=lambda name: (_ for _ in ()).throw(AssertionError(f"{name} in output")))
    assert topic == f"{kind}.{camera}"
    assert (body["schema"], body["seq"], body["camera"]) == (messages.SCHEMA, seq, camera)
    assert abs(body["ts"] - ts) <= 0.0005 + 1e-12  # rounded to the millisecond (half to even)
    assert {key: body[key] for key in fields} == _finite(fields)


def _finite(value: object) -> object:
    """What a JSON consumer must see: NaN and infinities as null, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
