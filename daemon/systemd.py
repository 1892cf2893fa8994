"""Service notifications to systemd (sd_notify), written on the socket module.

With ``Type=notify`` systemd passes the path of a datagram socket in
NOTIFY_SOCKET and waits for ``READY=1`` before it counts the service as
started. ``STOPPING=1`` announces a drain, ``WATCHDOG=1`` proves the daemon
is alive when ``WatchdogSec=`` is set, and ``STATUS=`` is the one line that
``systemctl status`` shows. The protocol is described in sd_notify(3). Outside
systemd NOTIFY_SOCKET is unset and every call here does nothing. It is
written here rather than taken from systemd-python for the reason given in
logs.py.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Send state changes to the service manager named by NOTIFY_SOCKET.

    Args:
        environ: where NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read;
            the process environment by default.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            # An abstract socket: a leading NUL byte instead of the '@'.
            address = "\0" + address[1:]
        elif address and not address.startswith("/"):
            log.warning("ignoring NOTIFY_SOCKET %r: neither a path nor an abstract socket name", address)
            address = ""
        self.address = address
        self.watchdog_seconds = _watchdog_seconds(environ)

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; return whether it was sent."""
        if not self.address:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify systemd on %s: %s", self.address.replace("\0", "@"), exc.strerror)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """Return the watchdog period that systemd set for this process, or None."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process that must send; a child that inherited
    # the environment must not keep its parent alive.
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
