"""A tiny sd_notify(3): READY, STATUS, WATCHDOG, RELOADING and STOPPING over $NOTIFY_SOCKET."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def watchdog_interval(environ: Mapping[str, str]) -> float:
    """Seconds between WATCHDOG=1 pings: a third of systemd's WatchdogSec, else one second."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        usec = 0
    return usec / 3_000_000 if usec > 0 else 1.0


class SystemdNotifier:
    """Sends state lines to systemd when run as a Type=notify service; does nothing otherwise.

    The address comes from ``$NOTIFY_SOCKET``; a leading '@' names an abstract socket. Send
    failures are logged once and never stop the gate::

        notifier = SystemdNotifier()
        notifier.ready("watching /dev/video0")
        notifier.watchdog(time.monotonic())   # from the frame loop, per frame
    """

    def __init__(self, address: str | None = None, *, environ: Mapping[str, str] | None = None,
                 watchdog_seconds: float | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = (address if address is not None else environ.get("NOTIFY_SOCKET")) or None
        self.interval = watchdog_seconds if watchdog_seconds is not None else watchdog_interval(environ)
        self._socket: socket.socket | None = None
        self._last_ping: float | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; True if it was sent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block the frame loop on a slow reader: drop the message instead.
            self._socket.sendto("\n".join(lines).encode("utf-8"), socket.MSG_DONTWAIT, target)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify: cannot send to %s: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *(() if status is None else (f"STATUS={status}",)))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def reloading(self, clock: Callable[[], float] = time.monotonic) -> bool:
        # Type=notify-reload wants the monotonic time with RELOADING=1.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={int(clock() * 1_000_000)}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def watchdog(self, now: float) -> bool:
        """WATCHDOG=1, at most once per ``interval`` seconds; True if sent."""
        if self.address is None:
            return False
        if self._last_ping is not None and now - self._last_ping < self.interval:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
