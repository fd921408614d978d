from prometheus_client import CollectorRegistry

from analyzer.core.age_groups import builtin_grouping
from analyzer.core.visits import DIRECTIONS
from analyzer.outputs.metrics import Metrics


def _visitor_series(registry: CollectorRegistry, camera: str) -> dict[tuple[str, str, str], float]:
    return {
        (sample.labels["age_group"], sample.labels["gender"], sample.labels["direction"]): sample.value
        for family in registry.collect()
        if family.name == "footfall_visitors"
        for sample in family.samples
        if sample.name == "footfall_visitors_total" and sample.labels["camera"] == camera
    }


def test_every_visitor_series_of_a_camera_is_there_at_zero_before_its_first_visitor() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    groups = [*builtin_grouping("fairface9").names, "unknown"]
    metrics.start_camera("door", groups, ["female", "male", "unknown"], DIRECTIONS, ["display"])
    metrics.start_camera("till", groups, ["female", "male", "unknown"], ("",))
    door, till = _visitor_series(registry, "door"), _visitor_series(registry, "till")
    assert len(door) == 10 * 3 * 3 and set(door.values()) == {0.0}
    assert len(till) == 10 * 3 and {direction for _, _, direction in till} == {""}
    assert registry.get_sample_value("footfall_line_crossings_total", {"camera": "door", "direction": "out"}) == 0
    assert registry.get_sample_value("footfall_line_crossings_total", {"camera": "till", "direction": "in"}) is None
    assert registry.get_sample_value("footfall_zone_dwell_seconds_count", {"camera": "door", "zone": "display"}) == 0
    for reason in ("behind", "corrupt", "error"):
        assert registry.get_sample_value("analyzer_frames_dropped_total", {"camera": "till", "reason": reason}) == 0
