"""Scraping with a real Prometheus server (Debian package `prometheus`; .ci/run installs it)."""

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="prometheus/promtool not installed (apt-get install prometheus; .ci/run does it)",
)


def query(port: int, expr: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def scraped_run(walkers_clip: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory):
    clip, _ = walkers_clip
    work = tmp_path_factory.mktemp("prometheus")
    metrics_port, prometheus_port = free_port(), free_port()
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{REPO / 'configs/prometheus/alerts.yml'}]\n"
        "scrape_configs:\n  - job_name: footfall-analyzer\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n        labels: {{site: test-store}}\n"
    )
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(work / "prometheus.log").open("w"),
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{prometheus_port}/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("prometheus did not become ready within 60 s")
        report, site = work / "report.json", work / "site.yaml"
        site.write_text(  # the same walkers seen by a door camera with a counting line and one without
            f"cameras:\n  - {{id: door, source: '{clip}', line: {{start: [0.5, 1.0], end: [0.5, 0.0]}}}}\n"
            f"  - {{id: street, source: '{clip}'}}\n"
        )
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "analyzer",
                "run",
                "-c",
                str(site),
                "--report",
                str(report),
                "--metrics-port",
                str(metrics_port),
                "--web-port",
                "0",
                "--zmq-bind",
                "",
                "--hold-metrics",
                "4",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        yield prometheus_port, json.loads(report.read_text())
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_prometheus_counts_equal_the_report(scraped_run) -> None:
    port, report = scraped_run
    for _ in range(30):  # the last scrapes may still be being ingested
        result = query(port, "max_over_time(footfall_visitors_total[5m])")
        assert result["status"] == "success"
        if result["data"]["result"]:
            break
        time.sleep(0.5)
    assert result["data"]["result"], query(port, "up")
    scraped = {
        (s["metric"]["age_group"], s["metric"]["gender"], s["metric"].get("direction", "")): float(s["value"][1])
        for s in result["data"]["result"]
        if float(s["value"][1])  # every series exists from the start, at 0 until its first visitor
    }
    visits = [visit for camera in report["cameras"].values() for visit in camera["visits"]]
    expected = Counter((visit["age_group"], visit["gender"], visit.get("direction", "")) for visit in visits)
    assert scraped == {key: float(count) for key, count in expected.items()}
    assert sum(scraped.values()) == report["totals"]["visitors"] > 0
    # the dashboard's direction filter: who came in, by gender, is the report's visits that crossed inward
    came_in = query(port, 'sum by (gender) (max_over_time(footfall_visitors_total{direction=~"in"}[5m]))')
    by_gender = {s["metric"]["gender"]: float(s["value"][1]) for s in came_in["data"]["result"] if float(s["value"][1])}
    entrants = Counter(visit["gender"] for visit in visits if visit.get("direction") == "in")
    assert by_gender == {gender: float(count) for gender, count in entrants.items()}
    assert sum(by_gender.values()) == report["totals"]["by_direction"]["in"] > 0
    info = query(port, "last_over_time(analyzer_build_info[5m])")["data"]["result"]  # the run has ended: stale now
    assert info and info[0]["metric"]["site"] == "test-store" and info[0]["metric"]["backend"] == "onnxruntime"


def test_promtool_accepts_the_shipped_config_and_rules() -> None:
    for args in (
        ["check", "config", "configs/prometheus/prometheus.yml"],
        ["check", "rules", "configs/prometheus/alerts.yml"],
    ):
        result = subprocess.run(["promtool", *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_when_it_should_and_not_before() -> None:
    # promtool's rule unit tests: series as the analyzer exports them, alerts expected minute by minute
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        cwd=REPO / "tests" / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_dashboard_query_evaluates(scraped_run) -> None:
    port, _ = scraped_run
    dashboard = json.loads((REPO / "configs/grafana/dashboards/footfall.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    expressions += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert len(expressions) >= 15
    directions = next(v for v in dashboard["templating"]["list"] if v["name"] == "direction")
    assert directions["query"].split(",") == ["in", "out", "none"]  # the values footfall_visitors_total carries
    for expression in expressions:
        concrete = expression.replace("$site", ".*").replace("$camera", ".*").replace("$direction", ".*")
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", concrete)
        if match:  # a Grafana variable query: check its selector
            concrete = match.group(1)
        result = query(port, concrete)
        assert result["status"] == "success", (expression, result)


def test_the_dashboards_increase_counts_every_visitor(scraped_run) -> None:
    # Prometheus takes a series' first sample as its baseline: every series must be scraped at 0 before
    # its first visitor, or increase() loses one visitor per age group, gender and direction
    port, report = scraped_run
    dashboard = json.loads((REPO / "configs/grafana/dashboards/footfall.json").read_text())
    expressions = {target["expr"] for panel in dashboard["panels"] for target in panel["targets"]}
    visitors = next(e for e in expressions if e.startswith("sum(increase(footfall_visitors_total"))
    by_gender = next(e for e in expressions if e.startswith("sum by (gender) (increase(footfall_visitors_total"))
    entries = next(e for e in expressions if e.startswith("sum by (direction) (increase(footfall_line_crossings"))
    visits = [visit for camera in report["cameras"].values() for visit in camera["visits"]]

    def counts_every_visitor(expression: str, expected: dict[str, int], direction: str = ".*") -> None:
        concrete = expression.replace("$site", ".*").replace("$camera", ".*").replace("$direction", direction)
        result = query(port, concrete)["data"]["result"]
        evaluated = {"/".join(s["metric"].values()): float(s["value"][1]) for s in result if float(s["value"][1])}
        assert evaluated.keys() == expected.keys() and expected, (evaluated, expected)
        for key, count in expected.items():
            # every series starts at 0, so increase() only ever extrapolates upwards, to the range's end:
            # by at most 1.1 scrape intervals (1 s) over this 12 s run; a lost visitor is a whole one less
            assert count <= evaluated[key] <= 1.2 * count, (key, evaluated, expected)

    assert report["totals"]["visitors"] > 0
    counts_every_visitor(visitors, {"": report["totals"]["visitors"]})
    counts_every_visitor(by_gender, Counter(v["gender"] for v in visits if v.get("direction") == "in"), "in")
    counts_every_visitor(entries, report["totals"]["by_direction"])


def test_alert_rules_load_into_the_server(scraped_run) -> None:
    port, _ = scraped_run
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"CameraStreamDown", "CameraNoFrames", "CameraHighDropRate", "NoVisitorsUnusuallyLong"} <= names
    assert all(rule["health"] != "err" for group in groups for rule in group["rules"])
