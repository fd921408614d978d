"""Many shops, one view, with the real servers on loopback (Debian: mosquitto, victoria-metrics, prometheus).

Three analyzers (sites north, south, east) each play a clip of walkers at its
own speed; three Prometheus agents (the shipped configs/prometheus/agent.yml)
scrape them and remote-write to one VictoriaMetrics; all three publish to one
Mosquitto that asks for a password. Mid-run the broker is stopped and started
30 s later, VictoriaMetrics is stopped and started again, and east is
restarted while the broker is down. Afterwards every visit of every site's
report has arrived over MQTT, in order, and the central store's visitors per
site equal the reports'; a box killed outright is announced offline by its
last will.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from analyzer.tools.fleet_load import shop_series
from tests.harness import free_port, run_cli, wait_for

REPO = Path(__file__).resolve().parents[1]
SITES = ("north", "south", "east")


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    return found or next((str(path) for path in (Path("/usr/sbin") / name,) if path.is_file()), None)


MOSQUITTO, VICTORIA, PROMETHEUS = _binary("mosquitto"), _binary("victoria-metrics"), _binary("prometheus")
MOSQUITTO_PASSWD = _binary("mosquitto_passwd")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        None in (MOSQUITTO, VICTORIA, PROMETHEUS, MOSQUITTO_PASSWD),
        reason="needs mosquitto, victoria-metrics and prometheus (Debian packages; .ci/run installs them)",
    ),
]


class Server:
    """A server process the test starts, stops and starts again on the same port and data."""

    def __init__(self, name: str, command: list[str], log: Path, ready: str, env: dict[str, str] | None = None):
        self.name, self.command, self.log, self.ready, self.env = name, command, log, ready, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log, env=self.env)
        if self.ready:
            wait_for(lambda: _answers(self.ready), 60, f"{self.name} to answer")

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(how)
            self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Centre:
    """The central subscriber: a persistent session, so nothing published while it reconnects is missed."""

    def __init__(self, port: int, password: str) -> None:
        self.visits: list[tuple[str, dict]] = []
        self.availability: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="centre", clean_session=False)
        self.client.username_pw_set("centre", password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: client.subscribe("footfall/#", qos=1)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            parts = message.topic.split("/")
            if parts[-1] == "visit":
                self.visits.append((parts[1], json.loads(message.payload)))
            elif parts[-1] == "availability":
                self.availability[parts[1]] = message.payload

    def visit_ids(self, site: str) -> list[str]:
        """The site's visit ids in the order they first arrived (a repeat after a crash dropped)."""
        with self._lock:
            ids = [visit["visit_id"] for visit_site, visit in self.visits if visit_site == site]
        return list(dict.fromkeys(ids))


def _reported(folder: Path) -> list[dict]:
    """Today's visits in the site's daily report, in the order the file lists them."""
    path = folder / f"report-{date.today().isoformat()}.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [visit for body in document["cameras"].values() for visit in body["visits"]]


def _frames_read(port: int) -> float:
    """Frames the analyzer on ``port`` has read (its /metrics)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("analyzer_frames_total"))


def _central(port: int, expression: str) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            result = json.loads(response.read())["data"]["result"]
    except OSError:
        return {}
    return {entry["metric"].get("site", ""): float(entry["value"][1]) for entry in result}


def _check_boards(port: int, totals: dict[str, float]) -> None:
    """Every query of both Grafana boards runs on the central store; the fleet's visitors by shop are the reports'."""
    boards = [
        json.loads((REPO / "configs/grafana/dashboards" / name).read_text()) for name in ("fleet.json", "footfall.json")
    ]
    for board in boards:
        for expression in [target["expr"] for panel in board["panels"] for target in panel["targets"]]:
            concrete = expression.replace("$site", "north|south").replace("$camera", ".*").replace("$direction", ".*")
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": concrete})
            with urllib.request.urlopen(url, timeout=10) as response:
                assert json.loads(response.read())["status"] == "success", expression
    by_shop = next(panel for panel in boards[0]["panels"] if panel["title"] == "Visitors by shop, last 24 h")
    assert _central(port, by_shop["targets"][0]["expr"]) == totals
    sites = next(item for item in boards[1]["templating"]["list"] if item["name"] == "site")  # the site selector
    assert sites["query"]["query"] == "label_values(analyzer_build_info, site)"


def test_three_shops_lose_nothing_through_a_broker_outage_a_restart_and_a_central_outage(
    tmp_path: Path, walkers_clip: tuple[Path, int]
) -> None:
    broker_port, central_port = free_port(), free_port()
    password = "shop-password-1"
    (tmp_path / "broker-password").write_text(password + "\n")
    users = tmp_path / "mosquitto.passwd"
    for user in ("centre", *SITES):
        create = ["-c"] if user == "centre" else []
        subprocess.run([MOSQUITTO_PASSWD, *create, "-b", str(users), user, password], check=True)
    (tmp_path / "broker").mkdir()
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous false\npassword_file {users}\n"
        f"persistence true\npersistence_location {tmp_path / 'broker'}/\n"
        f"user {getpass.getuser()}\n"  # as root, mosquitto would drop to a user that cannot read the test's files
    )
    broker = Server("mosquitto", [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], tmp_path / "broker.log", "")
    central = Server(
        "victoria-metrics",
        [
            VICTORIA,
            f"-storageDataPath={tmp_path / 'central'}",
            f"-httpListenAddr=127.0.0.1:{central_port}",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ],
        tmp_path / "central.log",
        f"http://127.0.0.1:{central_port}/health",
    )
    shipped_agent = yaml.safe_load((REPO / "configs/prometheus/agent.yml").read_text())
    analyzers, agents, commands, metrics_ports = {}, [], {}, {}
    centre = None
    try:
        broker.start()
        wait_for(lambda: _listening(broker_port), 30, "the broker")
        central.start()
        centre = Centre(broker_port, password)
        for site in SITES:
            folder = tmp_path / site
            folder.mkdir()
            metrics_ports[site] = free_port()
            config = {
                "site": site,
                "cameras": [
                    {"id": "door", "source": str(walkers_clip[0]), "line": {"start": [0.5, 1], "end": [0.5, 0]}}
                ],
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": broker_port,
                    "username": site,
                    "password_file": str(tmp_path / "broker-password"),
                    "keepalive_s": 5,
                    "outbox": str(folder / "outbox.sqlite"),
                },
            }
            (folder / "site.yaml").write_text(yaml.safe_dump(config))
            commands[site] = [sys.executable, "-m", "analyzer", "run", "-c", str(folder / "site.yaml")]
            commands[site] += ["--report", str(folder / "report-{date}.json"), "--report-every", "1"]
            commands[site] += ["--metrics-port", str(metrics_ports[site]), "--web-port", "0", "--zmq-bind", ""]
            commands[site] += ["--hold-metrics", "600"]
            analyzers[site] = subprocess.Popen(
                commands[site], stdout=subprocess.DEVNULL, stderr=(folder / "run.log").open("a")
            )
            agent = dict(shipped_agent)  # the shipped agent config, pointed at this test's ports
            agent["global"] = {**agent["global"], "scrape_interval": "1s"}
            agent["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_ports[site]}"]}]
            agent["remote_write"] = [
                {
                    "url": f"http://127.0.0.1:{central_port}/api/v1/write",
                    "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"},
                }
            ]
            (folder / "agent.yml").write_text(yaml.safe_dump(agent))
            agents.append(
                Server(
                    f"agent {site}",
                    [
                        PROMETHEUS,
                        "--enable-feature=agent,expand-external-labels",
                        f"--config.file={folder / 'agent.yml'}",
                        f"--storage.agent.path={folder / 'agent'}",
                        f"--web.listen-address=127.0.0.1:{free_port()}",
                    ],
                    folder / "agent.log",
                    "",
                    env={**os.environ, "FOOTFALL_SITE": site},
                )
            )
            agents[-1].start()
        # mid-run: every shop connected and counting (its first visitors then wait out the outage)
        wait_for(lambda: all(centre.availability.get(site) == b"online" for site in SITES), 120, "every shop online")
        wait_for(lambda: all(_frames_read(metrics_ports[site]) > 30 for site in SITES), 60, "every clip playing")

        broker.stop()  # the uplink or the broker goes; counting goes on
        down_at = time.monotonic()
        central.stop()
        analyzers["east"].send_signal(signal.SIGTERM)  # a restart while the broker is down
        assert analyzers["east"].wait(timeout=60) == 0
        analyzers["east"] = subprocess.Popen(
            commands["east"], stdout=subprocess.DEVNULL, stderr=(tmp_path / "east" / "run.log").open("a")
        )
        # back before the shops' next try (paho waits 1, 2, 4 s ... up to 30 s between them), not after
        time.sleep(max(0.0, down_at + 6 - time.monotonic()))
        broker.start()
        time.sleep(max(0.0, down_at + 8 - time.monotonic()))
        central.start()

        def delivered(site: str) -> bool:
            reported = [visit["visit_id"] for visit in _reported(tmp_path / site)]
            return len(reported) >= walkers_clip[1] and centre.visit_ids(site) == reported

        wait_for(lambda: all(delivered(site) for site in SITES), 120, "every reported visit over MQTT")
        # east's report holds both of its runs: the first run's visits waited in the outbox through the restart
        assert len(_reported(tmp_path / "east")) > len(_reported(tmp_path / "north")) - 1

        totals = {site: float(len(_reported(tmp_path / site))) for site in SITES}
        counted = 'sum by (site) (increase(footfall_visitors_total{job="footfall-analyzer"}[30m]))'
        wait_for(lambda: _central(central_port, counted) == totals, 60, f"the central store to hold {totals}")
        now = _central(central_port, 'sum by (site) (footfall_visitors_total{job="footfall-analyzer"})')
        assert {site: now[site] for site in ("north", "south")} == {site: totals[site] for site in ("north", "south")}
        waiting = "sum by (site) (analyzer_mqtt_outbox_messages)"
        wait_for(lambda: _central(central_port, waiting) == dict.fromkeys(SITES, 0.0), 20, "empty outboxes")
        delivered_total = _central(central_port, 'sum by (site) (analyzer_mqtt_messages_total{outcome="delivered"})')
        assert delivered_total["north"] == totals["north"]

        analyzers["south"].kill()  # the box dies outright: the broker says so with its last will (in 7.5 s)
        _check_boards(central_port, totals)
        # the simulated shops of `analyzer fleet-bench` export what a real box does (ZeroMQ is off here: 2 fewer)
        real = _central(central_port, 'count by (site) ({job="footfall-analyzer", site="north"})')
        assert real == {"north": len(shop_series(1, zones_per_camera=0)) - 2}

        wait_for(lambda: centre.availability.get("south") == b"offline", 30, "south's last will")
        assert centre.availability["north"] == b"online"
    finally:
        for process in analyzers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in analyzers.values():
            process.wait(timeout=60)
        for agent in agents:
            agent.stop()
        if centre is not None:
            centre.client.loop_stop()
        central.stop()
        broker.stop()
    for site in ("north", "east"):  # a clean stop: delivered, and the outbox left empty
        log = (tmp_path / site / "run.log").read_text()
        assert "wait in" not in log.splitlines()[-1] and "Traceback" not in log
    assert "MQTT broker 127.0.0.1" in (tmp_path / "north" / "run.log").read_text()  # lost and reachable again


def test_fleet_bench_writes_whole_shops_to_the_store_and_visits_to_the_broker(tmp_path: Path) -> None:
    central_port, broker_port = free_port(), free_port()
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
    )
    broker = Server("mosquitto", [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], tmp_path / "broker.log", "")
    central = Server(
        "victoria-metrics",
        [VICTORIA, f"-storageDataPath={tmp_path / 'central'}", f"-httpListenAddr=127.0.0.1:{central_port}"],
        tmp_path / "central.log",
        f"http://127.0.0.1:{central_port}/health",
    )
    try:
        broker.start()
        central.start()
        wait_for(lambda: _listening(broker_port), 30, "the broker")
        result = run_cli(
            "fleet-bench",
            f"--victoria=http://127.0.0.1:{central_port}",
            "--shops=7",
            "--scrapes=3",
            f"--mqtt=127.0.0.1:{broker_port}",
            "--mqtt-shops=3",
            "--visits=20",
            f"--json={tmp_path / 'fleet.json'}",
        )
    finally:
        central.stop()
        broker.stop()
    assert result.returncode == 0, result.stderr
    load = json.loads((tmp_path / "fleet.json").read_text())
    assert load["series_per_shop"] == len(shop_series(4)) and load["series_in_store"] == 7 * load["series_per_shop"]
    assert load["samples_written"] == 7 * 3 * load["series_per_shop"] and load["samples_per_s"] > 0
    assert load["mqtt_visits"] == 60 and load["store_bytes"] > 0


def _certificates(folder: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a broker certificate it signed for 127.0.0.1, and another CA that signed nothing here."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    for ca in ("ca", "other-ca"):
        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={ca}",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
        )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "broker.key", "-out", "broker.csr"
    )
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.cnf",
        "-out",
        "broker.pem",
    )
    return folder / "ca.pem", folder / "broker.pem", folder / "broker.key", folder / "other-ca.pem"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make test certificates")
def test_visits_go_to_a_broker_over_tls_and_a_broker_with_a_certificate_not_trusted_gets_none(
    tmp_path: Path, walkers_clip: tuple[Path, int]
) -> None:
    ca, certificate, key, other_ca = _certificates(tmp_path)
    port = free_port()
    (tmp_path / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {certificate}\nkeyfile {key}\n"
        f"allow_anonymous true\nuser {getpass.getuser()}\n"
    )
    broker = Server("mosquitto", [MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], tmp_path / "broker.log", "")
    received: list[str] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="centre")
    listener.tls_set(ca_certs=str(ca))
    listener.on_message = lambda client, userdata, message: received.append(json.loads(message.payload)["visit_id"])

    def run(trusted: Path, name: str) -> str:
        config = {
            "site": "tls-shop",
            "cameras": [{"id": "door", "source": str(walkers_clip[0]), "realtime": False}],
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "tls": True,
                "ca_file": str(trusted),
                "outbox": str(tmp_path / f"{name}.sqlite"),
            },
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
        result = run_cli(
            "run",
            "-c",
            str(tmp_path / f"{name}.yaml"),
            "--report",
            str(tmp_path / f"{name}.json"),
            "--metrics-port",
            "0",
            "--web-port",
            "0",
            "--zmq-bind",
            "",
        )
        assert result.returncode == 0, result.stderr
        return result.stderr

    try:
        broker.start()
        wait_for(lambda: _listening(port), 30, "the broker")
        listener.connect("127.0.0.1", port)
        listener.subscribe("footfall/tls-shop/+/visit", qos=1)
        listener.loop_start()
        run(ca, "trusted")
        reported = [
            visit["visit_id"]
            for visit in json.loads((tmp_path / "trusted.json").read_text())["cameras"]["door"]["visits"]
        ]
        wait_for(lambda: received == reported, 20, "the visits over TLS")
        log = run(other_ca, "untrusted")
    finally:
        listener.loop_stop()
        broker.stop()
    assert reported and "MQTT broker 127.0.0.1" in log and "not reachable" in log
    untrusted = json.loads((tmp_path / "untrusted.json").read_text())["totals"]["visitors"]
    assert f"MQTT: {untrusted} visits wait in" in log and received == reported  # kept for a broker it can trust
