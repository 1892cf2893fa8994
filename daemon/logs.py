"""Logging of niemphongd: structured records for journald, or text on stderr.

Every record made while a gRPC call runs carries that call's request id,
which the daemon also returns to the client in the ``x-request-id`` trailer
of a successful call. Under systemd, records go to journald's native socket
as separate fields (``REQUEST_ID``, ``LOGGER``, ``CODE_FILE`` ...), so that
``journalctl -u niemphongd REQUEST_ID=...`` finds one call. Elsewhere they go
to stderr as one line each.

The level comes from ``[log] level`` in the configuration and nothing else:
no environment variable or command-line option changes it.

The native protocol (systemd's "Native Journal Protocol" document) is a few
lines on the socket module. systemd's own binding, systemd-python, has no
wheels on PyPI and would need a C compiler and libsystemd headers on the
custody host.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import sys
import traceback
from typing import TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "niemphongd"

# The request id of the gRPC call the current thread is serving, or "-".
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("niemphong_request_id", default="-")

# syslog(3) priorities that journald uses for PRIORITY=.
_PRIORITIES = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def priority(levelno: int) -> int:
    """Return the syslog priority for a logging level."""
    for threshold in sorted(_PRIORITIES, reverse=True):
        if levelno >= threshold:
            return _PRIORITIES[threshold]
    return 7


class RequestIdFilter(logging.Filter):
    """Attach the current call's request id to every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def journal_field_bytes(name: str, value: str) -> bytes:
    """Encode one field in journald's native protocol.

    A value without a newline is sent as ``NAME=value``. A value with one is
    sent as the name, a newline, its length as a 64-bit little-endian integer
    and the raw bytes, which is how the protocol carries multi-line values.
    """
    data = value.encode("utf-8", "replace")
    if b"\n" not in data:
        return name.encode("ascii") + b"=" + data + b"\n"
    return name.encode("ascii") + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"


class JournalHandler(logging.Handler):
    """Send each record to journald's native socket as a datagram of fields.

    A record that the socket rejects (journald gone, or larger than a
    datagram may be) is written to stderr instead, which journald also
    collects, so nothing is lost silently.
    """

    def __init__(self, path: str = JOURNAL_SOCKET, fallback: TextIO | None = None) -> None:
        super().__init__()
        self.path = path
        self.fallback = fallback if fallback is not None else sys.stderr
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            fields = {
                "MESSAGE": message,
                "PRIORITY": str(priority(record.levelno)),
                "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
                "LOGGER": record.name,
                "REQUEST_ID": getattr(record, "request_id", "-"),
                "CODE_FILE": record.pathname or "",
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName or "",
                "THREAD_NAME": record.threadName or "",
            }
            datagram = b"".join(journal_field_bytes(name, value) for name, value in fields.items())
        except Exception:
            self.handleError(record)
            return
        try:
            self._socket.sendto(datagram, self.path)
        except OSError:
            # <N> tells journald the priority of a line read from stderr.
            self.fallback.write(f"<{priority(record.levelno)}>[{fields['REQUEST_ID']}] {message}\n")
            self.fallback.flush()

    def close(self) -> None:
        self._socket.close()
        super().close()


def stderr_is_journal(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Return whether stderr is connected to journald.

    systemd sets JOURNAL_STREAM to the device and inode of the stream it
    connected, as ``DEVICE:INODE``; stderr is the journal only when both match.
    """
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return status.st_dev == int(device) and status.st_ino == int(inode)


def setup_logging(level: str, log_format: str = "auto") -> None:
    """Configure the root logger once, from the ``[log]`` section of the configuration.

    ``log_format`` is ``journal`` (journald's native protocol), ``text``
    (lines on stderr) or ``auto`` (journal when stderr is connected to it).
    """
    use_journal = log_format == "journal" or (log_format == "auto" and stderr_is_journal())
    handler: logging.Handler
    if use_journal:
        handler = JournalHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())

    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
