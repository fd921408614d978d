"""MQTT out (paho-mqtt): the ZeroMQ messages' JSON on ``<prefix>/<site>/<camera>/<kind>``, visits through an outbox.

Visits go into the on-disk outbox first (:mod:`analyzer.service.outbox`) and
leave it one at a time, QoS 1, each removed only when the broker has
acknowledged it: a broker or uplink down for an hour, or the analyzer
restarted meanwhile, loses none, and they arrive in the order they were
counted. One in flight at a time is what keeps that order through a
reconnect; it delivers a backlog at one round trip per visit (docs/FLEET.md).
Summaries and status messages are snapshots: sent while connected, QoS 1,
not kept. ``<prefix>/<site>/availability`` is retained: ``online`` once
connected, ``offline`` at a clean stop, and the same ``offline`` as the last
will the broker publishes when the box goes silent.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from analyzer.config import MqttConfig
from analyzer.outputs import messages
from analyzer.outputs.metrics import Metrics
from analyzer.service.outbox import Outbox

#: How long a visit waits for the broker's acknowledgement before it is sent again.
ACK_TIMEOUT_S = 10.0
#: At a clean stop, how long the outbox may keep sending before what is left waits for the next run.
DRAIN_AT_STOP_S = 3.0
#: How often what waited too long is dropped from the outbox.
EXPIRE_EVERY_S = 60.0


class MqttPublisher:
    """Publishes to one broker for one box; ``publish`` never blocks on the network.

    Example:
        >>> publisher = MqttPublisher(settings, "corner-cafe", outbox, metrics)  # doctest: +SKIP
        >>> publisher.publish("visit", "door", {"visit_id": "ab12", ...}, site="corner-cafe")  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: MqttConfig,
        site: str,
        outbox: Outbox,
        metrics: Metrics,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings, self.site, self.outbox, self.metrics, self.log = settings, site, outbox, metrics, log
        self.availability = f"{settings.topic_prefix}/{site}/availability"
        self.seq = 0
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._said_down = False
        self._drain_until = 0.0
        self._client = self._client_for(settings, site)
        self._sender = threading.Thread(target=self._send_outbox, name="mqtt-outbox", daemon=True)
        metrics.mqtt_outbox_messages.set_function(lambda: len(outbox))
        outbox.on_drop = lambda reason, count: metrics.mqtt_outbox_dropped.labels(reason=reason).inc(count)
        for reason in ("full", "expired"):
            metrics.mqtt_outbox_dropped.labels(reason=reason)
        for outcome in ("delivered", "not_sent"):
            metrics.mqtt_messages.labels(outcome=outcome)

    def _client_for(self, settings: MqttConfig, site: str) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id or f"footfall-{site}", clean_session=True
        )
        client.will_set(self.availability, b"offline", qos=1, retain=True)
        if settings.username:
            password = Path(settings.password_file).expanduser().read_text().strip() if settings.password_file else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            client.tls_set(
                ca_certs=settings.ca_file or None,
                certfile=settings.cert_file or None,
                keyfile=settings.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        return client

    @property
    def where(self) -> str:
        """The broker, for the start-up line."""
        scheme = "mqtts" if self.settings.tls else "mqtt"
        return f"{scheme}://{self.settings.host}:{self.settings.port} as {self.settings.topic_prefix}/{self.site}/..."

    def start(self) -> None:
        """Connect in the background (a broker that is down is retried, every visit kept meanwhile)."""
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
        self._client.loop_start()
        self._sender.start()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            if not self._said_down:  # once per outage: paho keeps retrying
                self._said_down = True
                self.log(
                    f"MQTT broker {self.settings.host}:{self.settings.port} refused the connection: {reason}; "
                    "retrying, visits wait in the outbox"
                )
            return
        client.publish(self.availability, b"online", qos=1, retain=True)
        self.metrics.mqtt_connected.set(1)
        waiting = len(self.outbox)
        again = "reachable again" if self._said_down else "connected"
        self.log(f"MQTT broker {self.settings.host}:{self.settings.port} {again}; {waiting} visits to send")
        self._said_down = False
        self._connected.set()
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        """A connection attempt failed (refused, unreachable, TLS): said once per outage, retried meanwhile."""
        if not self._said_down:
            self._said_down = True
            self.log(
                f"MQTT broker {self.settings.host}:{self.settings.port} not reachable; retrying, visits wait in the "
                f"outbox {self.outbox.path}"
            )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        self._connected.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._stopping.is_set() and not self._said_down:
            self._said_down = True
            self.log(
                f"MQTT broker {self.settings.host}:{self.settings.port} lost ({reason}); visits wait in the outbox "
                f"{self.outbox.path}"
            )

    def publish(self, kind: str, camera: str, fields: dict[str, object], site: str) -> None:
        """A visit into the outbox (sent in order, kept until acknowledged); a summary or status now, if connected."""
        self.seq += 1
        topic = f"{self.settings.topic_prefix}/{site}/{camera}/{kind}"
        payload = messages.body(kind, camera, self.seq, time.time(), fields, site)
        if kind == "visit":
            self.outbox.put(topic, payload)
            self._wake.set()
        elif self._connected.is_set():
            self._client.publish(topic, payload, qos=1)
        else:
            self.metrics.mqtt_messages.labels(outcome="not_sent").inc()

    def _send_outbox(self) -> None:
        """One visit in flight at a time, oldest first; removed once the broker acknowledged it."""
        next_expiry = 0.0
        while not self._stopping.is_set() or (self._connected.is_set() and len(self.outbox) and self._draining()):
            if time.monotonic() >= next_expiry:
                self.outbox.expire()
                next_expiry = time.monotonic() + EXPIRE_EVERY_S
            if not self._connected.wait(0.5):
                continue
            waiting = self.outbox.oldest(1)
            if not waiting:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            message = waiting[0]
            sent = self._client.publish(message.topic, message.payload, qos=1)
            try:
                sent.wait_for_publish(ACK_TIMEOUT_S)
            except (RuntimeError, ValueError):  # not queued (the connection went): sent again once back
                time.sleep(0.2)
                continue
            if sent.is_published():
                self.outbox.remove(message.number)
                self.metrics.mqtt_messages.labels(outcome="delivered").inc()

    def _draining(self) -> bool:
        return time.monotonic() < self._drain_until

    def close(self) -> None:
        """Send what waits for up to ``DRAIN_AT_STOP_S``, say ``offline``, disconnect; the rest stays for next run."""
        self._drain_until = time.monotonic() + DRAIN_AT_STOP_S
        self._stopping.set()
        self._wake.set()
        self._sender.join(timeout=DRAIN_AT_STOP_S + ACK_TIMEOUT_S)
        if self._connected.is_set():
            with contextlib.suppress(RuntimeError, ValueError):  # gone meanwhile: the last will says it instead
                self._client.publish(self.availability, b"offline", qos=1, retain=True).wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()
        left = len(self.outbox)
        if left:
            self.log(f"MQTT: {left} visits wait in {self.outbox.path} for the next run")
        self.outbox.close()
