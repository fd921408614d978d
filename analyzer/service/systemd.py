"""Telling systemd how the service is doing: sd_notify(3), written out, without libsystemd.

A ``Type=notify`` unit learns from these datagrams when the analyzer is ready
(models loaded, ports bound), what it is doing (``systemctl status``), when it
is stopping, and, with ``WatchdogSec=``, that it is still alive. Outside
systemd ``$NOTIFY_SOCKET`` is not set and every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class SystemdNotifier:
    """The service manager's notification socket, if it gave us one.

    Example:
        >>> notifier = SystemdNotifier.from_environment({})
        >>> notifier.enabled, notifier.watchdog_interval_s
        (False, None)
        >>> notifier.ready()  # outside systemd: nothing happens
    """

    def __init__(self, address: str | None, watchdog_interval_s: float | None) -> None:
        self.address = address
        self.watchdog_interval_s = watchdog_interval_s  # the unit's WatchdogSec, if it asks us to ping
        self._socket: socket.socket | None = None
        self._stopping = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        """What systemd put in the environment: ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``."""
        path = environ.get("NOTIFY_SOCKET") or None
        if path is not None and path.startswith("@"):
            path = "\0" + path[1:]  # Linux abstract namespace
        interval = None
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if path is not None and (not watchdog_pid or watchdog_pid == str(os.getpid())):  # not meant for a child
            try:
                interval = int(environ.get("WATCHDOG_USEC", "")) / 1e6
            except ValueError:
                interval = None
        return cls(path, interval if interval and interval > 0 else None)

    @property
    def enabled(self) -> bool:
        """Running under a ``Type=notify`` unit."""
        return self.address is not None

    def ready(self) -> None:
        """Start-up is over: ``systemctl start`` returns, and the watchdog starts counting."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """The line ``systemctl status`` shows under the unit."""
        self._send("STATUS=" + " ".join(text.split()))  # one line: a newline would start a new assignment

    def ping(self) -> None:
        """Still alive: resets the unit's ``WatchdogSec`` timer."""
        self._send("WATCHDOG=1")

    def trigger(self) -> None:
        """Not alive: systemd acts now as if the watchdog timer ran out (kills and, per the unit, restarts)."""
        self._send("WATCHDOG=trigger")

    def stopping(self) -> None:
        """The shutdown has begun (open visits are being closed); sent once."""
        if not self._stopping:
            self._stopping = True
            self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.setblocking(False)  # a full queue (systemd busy) must not hang the watchdog with it
            self._socket.sendto(message.encode(), self.address)
        except OSError:
            pass  # systemd gone, restarting or behind: the analyzer goes on counting; the next message tries again

    def close(self) -> None:
        """Release the socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
