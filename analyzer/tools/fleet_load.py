"""What a fleet puts on its central store and broker, measured with simulated shops (``analyzer fleet-bench``).

A simulated shop exports exactly what a real box does: the analyzer's own
``/metrics`` for its cameras (every series at zero from the start, as
``Metrics.start_camera`` makes them), labelled as its Prometheus agent sends
them (``site``, ``job``, ``instance``). Scrapes of many shops are written to
a VictoriaMetrics through its import API as fast as it takes them, which
measures its ingest; visits are published to an MQTT broker, QoS 1 with one
in flight per shop as the analyzer's outbox sends them, which measures the
broker. docs/FLEET.md turns the figures into sizes for 10 to 10,000 shops.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass

import paho.mqtt.client as mqtt
from prometheus_client import CollectorRegistry, generate_latest

from analyzer.core.age_groups import builtin_grouping
from analyzer.core.visits import DIRECTIONS, UNKNOWN
from analyzer.outputs import messages
from analyzer.outputs.metrics import STAGES, Metrics

#: Seconds between two scrapes of one shop by its agent (configs/prometheus/agent.yml).
SCRAPE_INTERVAL_S = 15
#: The labels a shop's agent puts on every series: its site (external label), job and instance.
SHOP_LABELS = 'site="shop{shop:05d}",job="footfall-analyzer",instance="127.0.0.1:9108"'


def shop_series(cameras: int, zones_per_camera: int = 1, grouping: str = "fairface9") -> list[str]:
    """One box's samples as ``name{labels} value`` lines: its cameras with a line and zones, and the box's own."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    groups = [*builtin_grouping(grouping).names, UNKNOWN]
    for index in range(cameras):
        camera = f"camera{index + 1}"
        metrics.camera_info.labels(camera).set(1)
        zones = [f"zone{zone + 1}" for zone in range(zones_per_camera)]
        metrics.start_camera(camera, groups, ["female", "male", UNKNOWN], DIRECTIONS, zones)
        metrics.frames.labels(camera=camera)
        metrics.stream_up.labels(camera=camera).set(1)
        metrics.stream_reconnects.labels(camera=camera)
        metrics.faces_in_view.labels(camera=camera)
        metrics.fixtures_in_view.labels(camera=camera)
        for reason in ("behind", "corrupt", "error"):
            metrics.frames_dropped.labels(camera=camera, reason=reason)
        for reason in ("classifier_behind", "classifier_error", "classifier_stalled"):
            metrics.samples_dropped.labels(camera=camera, reason=reason)
    for stage in STAGES:
        metrics.stage_seconds.labels(stage=stage).observe(0.01)
    metrics.inference_batch.observe(4)
    for outcome in ("sent", "dropped"):
        metrics.zmq_messages.labels(outcome=outcome)
    for outcome in ("delivered", "not_sent"):
        metrics.mqtt_messages.labels(outcome=outcome)
    for reason in ("full", "expired"):
        metrics.mqtt_outbox_dropped.labels(reason=reason)
    metrics.build_info.labels(version="1", backend="onnxruntime", model="1").set(1)
    lines = [line for line in generate_latest(registry).decode().splitlines() if line and not line.startswith("#")]
    agents_own = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling")
    return [*lines, *(f"{name} 1" for name in (*agents_own, "scrape_series_added"))]


def _labelled(line: str, labels: str) -> str:
    name, brace, rest = line.partition("{")
    if brace:
        return f"{name}{{{labels},{rest}"
    name, _, value = line.partition(" ")
    return f"{name}{{{labels}}} {value}"


@dataclass
class FleetLoad:
    """The figures of one ``fleet-bench`` run."""

    cameras_per_shop: int
    series_per_shop: int
    series_per_camera: float  # the camera's share: (shop's series - a cameraless box's) / cameras
    shops: int
    scrapes: int
    samples_written: int
    write_seconds: float
    samples_per_s: float
    series_in_store: int
    store_bytes: int  # the store's data on disk after the writes, flushed
    bytes_per_sample: float
    store_memory_bytes: int  # the store's resident memory after the writes
    mqtt_shops: int = 0
    mqtt_visits: int = 0
    mqtt_seconds: float = 0.0
    mqtt_visits_per_s: float = 0.0
    mqtt_ack_ms_p50: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """For ``--json``."""
        return asdict(self)


def _store_figure(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def write_scrapes(
    url: str, lines: list[str], shops: int, scrapes: int, log: Callable[[str], None] = print
) -> tuple[int, float]:
    """``scrapes`` scrapes of ``shops`` shops, 15 s apart in time, written as fast as the store takes them."""
    first = int(time.time()) - scrapes * SCRAPE_INTERVAL_S
    written, started = 0, time.perf_counter()
    for scrape in range(scrapes):
        stamp = (first + scrape * SCRAPE_INTERVAL_S) * 1000
        for chunk in range(0, shops, 100):
            shop_labels = [SHOP_LABELS.format(shop=shop) for shop in range(chunk, min(chunk + 100, shops))]
            body = "\n".join(f"{_labelled(line, labels)} {stamp}" for labels in shop_labels for line in lines)
            request = urllib.request.Request(f"{url}/api/v1/import/prometheus", data=body.encode(), method="POST")
            with urllib.request.urlopen(request, timeout=120):
                pass
            written += len(lines) * len(shop_labels)
        log(f"scrape {scrape + 1} of {scrapes}: {written} samples written")
    return written, time.perf_counter() - started


def series_in_store(url: str) -> int:
    """Series the store holds (today's; the bench wants a store of its own)."""
    with urllib.request.urlopen(f"{url}/api/v1/series/count", timeout=60) as response:
        return int(json.loads(response.read())["data"][0])


def publish_visits(host: str, port: int, shops: int, visits_per_shop: int) -> tuple[float, list[float]]:
    """Every shop sends its visits as the outbox does (QoS 1, the next one after the broker's ack), all at once."""
    payload = messages.body("visit", "door", 1, time.time(), {"visit_id": "0" * 12, "age_group": "20-29"}, "shop")
    acks: list[float] = []
    lock = threading.Lock()

    def shop(index: int) -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-bench-{index}")
        client.connect(host, port)
        client.loop_start()
        mine = []
        for _ in range(visits_per_shop):
            sent_at = time.perf_counter()
            client.publish(f"footfall/shop{index:05d}/door/visit", payload, qos=1).wait_for_publish(30)
            mine.append((time.perf_counter() - sent_at) * 1000)
        client.disconnect()
        client.loop_stop()
        with lock:
            acks.extend(mine)

    threads = [threading.Thread(target=shop, args=(index,)) for index in range(shops)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, acks


def fleet_load(
    victoria: str,
    shops: int,
    scrapes: int,
    cameras: int = 4,
    mqtt_address: tuple[str, int] | None = None,
    mqtt_shops: int = 50,
    visits_per_shop: int = 100,
    log: Callable[[str], None] = print,
) -> FleetLoad:
    """Write ``shops`` simulated shops' scrapes to ``victoria`` and, given a broker, their visits to it."""
    lines = shop_series(cameras)
    bare = len(shop_series(0))
    samples, seconds = write_scrapes(victoria, lines, shops, scrapes, log)
    urllib.request.urlopen(f"{victoria}/internal/force_flush", timeout=60).read()
    stored = series_in_store(victoria)
    disk = int(_store_figure(victoria, "vm_data_size_bytes"))
    load = FleetLoad(
        cameras_per_shop=cameras,
        series_per_shop=len(lines),
        series_per_camera=round((len(lines) - bare) / max(cameras, 1), 1),
        shops=shops,
        scrapes=scrapes,
        samples_written=samples,
        write_seconds=round(seconds, 2),
        samples_per_s=round(samples / seconds),
        series_in_store=stored,
        store_bytes=disk,
        bytes_per_sample=round(disk / max(samples, 1), 2),
        store_memory_bytes=int(_store_figure(victoria, "process_resident_memory_bytes")),
    )
    if mqtt_address is not None:
        spent, acks = publish_visits(*mqtt_address, mqtt_shops, visits_per_shop)
        acks.sort()
        load.mqtt_shops, load.mqtt_visits = mqtt_shops, len(acks)
        load.mqtt_seconds = round(spent, 2)
        load.mqtt_visits_per_s = round(len(acks) / spent)
        load.mqtt_ack_ms_p50 = round(acks[len(acks) // 2], 2) if acks else 0.0
    return load
