"""Health: SERVING only while every check passes.

The daemon registers named checks (the token is logged in and answers, the
state store is writable; other parts such as the audit log add their own
with :meth:`HealthMonitor.add_check`). A thread runs them every few seconds
and sets the gRPC health status of every service, the health metrics and
the status line systemd shows. After each completed round it pings the
systemd watchdog, so a check that hangs (a USB token that stops answering
inside a PKCS#11 call) stops the pings and systemd restarts the daemon.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health, health_pb2

from niemphong.daemon import metrics
from niemphong.daemon.systemd import Notifier

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
# Below this much free space a store or log counts as not writable: SQLite
# needs room for its WAL and a checkpoint, and a full disk fails mid-write.
MIN_FREE_BYTES = 64 * 1024 * 1024

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class HealthCheck:
    """A named check; ``name`` is the ``check`` label of niemphong_health_check_ok."""

    name: str
    run: Callable[[], bool]


def path_writable(path: Path, min_free_bytes: int = MIN_FREE_BYTES) -> bool:
    """Return whether this process can write ``path`` (or create it) on a file system with room left.

    os.access() reports a read-only mount as not writable (EROFS) as well as
    missing permissions.
    """
    directory = path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    if path.exists() and not os.access(path, os.W_OK):
        return False
    status = os.statvfs(directory)
    return status.f_bavail * status.f_frsize >= min_free_bytes


class HealthMonitor:
    """Run the health checks and publish the result.

    Args:
        servicer: the gRPC health servicer whose statuses are set.
        service_names: every service name to set, "" (the whole server) included.
        checks: the checks that must all pass for SERVING.
        notifier: where readiness, status and watchdog pings go.
        interval: seconds between rounds; shortened to a third of the
            watchdog period when systemd set one.
    """

    def __init__(
        self,
        servicer: health.HealthServicer,
        service_names: Iterable[str],
        checks: Iterable[HealthCheck],
        notifier: Notifier,
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self.servicer = servicer
        self.service_names = tuple(service_names)
        self.notifier = notifier
        self.interval = interval
        if notifier.watchdog_seconds is not None:
            self.interval = min(interval, notifier.watchdog_seconds / 3)
        self._checks: list[HealthCheck] = list(checks)
        self._failing: set[str] = set()
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add_check(self, check: HealthCheck) -> None:
        """Add a check that must pass for SERVING; it runs from the next round on."""
        with self._lock:
            self._checks.append(check)

    def run_checks(self) -> bool:
        """Run every check once, publish the result and return whether all passed."""
        with self._lock:
            checks = list(self._checks)
        failing = set()
        for check in checks:
            passed = _run(check)
            metrics.HEALTH_CHECK_OK.labels(check.name).set(1 if passed else 0)
            if not passed:
                failing.add(check.name)

        for name in sorted(failing - self._failing):
            log.error("health check %s failed; not serving until it passes", name)
        for name in sorted(self._failing - failing):
            log.warning("health check %s passes again", name)
        changed = failing != self._failing
        self._failing = failing

        healthy = not failing
        if not self._draining.is_set():
            status = _SERVING if healthy else _NOT_SERVING
            for name in self.service_names:
                self.servicer.set(name, status)
            metrics.SERVING.set(1 if healthy else 0)
            if changed:
                self.notifier.status(self.describe())
        return healthy

    def describe(self) -> str:
        """Return the one-line status for systemd."""
        if self._draining.is_set():
            return "draining"
        if self._failing:
            return "not serving: failed " + ", ".join(sorted(self._failing))
        return "serving"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="health", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            self.run_checks()
            self.notifier.watchdog()

    def begin_drain(self) -> None:
        """Report NOT_SERVING on every service from now on.

        The checks and watchdog pings go on until :meth:`stop`, so that
        systemd does not kill a daemon that is finishing its calls.
        """
        self._draining.set()
        metrics.SERVING.set(0)
        self.servicer.enter_graceful_shutdown()

    def stop(self) -> None:
        """Stop the checks and the watchdog pings."""
        self._draining.set()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)


def _run(check: HealthCheck) -> bool:
    try:
        return bool(check.run())
    except Exception:
        log.exception("health check %s raised", check.name)
        return False
