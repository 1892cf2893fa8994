"""Prometheus metrics of niemphongd, served on their own HTTP listener.

The metrics live in prometheus_client's default registry, so any module
records into them by importing this one. docs/operations.md documents every
metric here; a test checks that the two agree.

Labels carry only values from small fixed sets: RPC names from the service
definitions, level names, gRPC status code names, reason codes from
``errors.REASON_CODES``, PKCS#11 function and mechanism names, PKCS#11 error
class names, health check names and key versions. An artefact id, request
id, user, document number or free text never becomes a label value, because
each new value creates a time series that lives forever in Prometheus and
would leak who touched what to anyone who can read the metrics.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import metadata
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from niemphong.daemon.config import MetricsConfig
from niemphong.daemon.levels import Level

log = logging.getLogger(__name__)


# The *_created series would double the series count for a start time that
# process_start_time_seconds already gives.
disable_created_metrics()

# Label value for a call that never named a level (Inspect, ListPending, a
# refusal before the level was read) or a token call without a mechanism.
NONE = "none"

_RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKEN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# Calls -----------------------------------------------------------------------

RPC_REQUESTS = Counter(
    "niemphong_rpc_requests",
    "Finished gRPC calls by RPC, classification level and outcome (gRPC status code name).",
    ["rpc", "level", "outcome"],
)
RPC_DURATION = Histogram(
    "niemphong_rpc_duration_seconds",
    "Time from the start of a gRPC call to its last response, by RPC and level.",
    ["rpc", "level"],
    buckets=_RPC_BUCKETS,
)
RPC_IN_FLIGHT = Gauge(
    "niemphong_rpc_in_flight",
    "gRPC calls running now, by RPC.",
    ["rpc"],
)
REFUSALS = Counter(
    "niemphong_refusals",
    "Calls refused or failed with a reason code, by RPC, level and reason.",
    ["rpc", "level", "reason"],
)
SEALED_BYTES = Counter(
    "niemphong_sealed_bytes",
    "Plaintext bytes taken in by completed seals, by level.",
    ["level"],
)
ENVELOPE_BYTES = Counter(
    "niemphong_envelope_bytes",
    "Envelope bytes produced by completed seals, by level.",
    ["level"],
)
OPENED_BYTES = Counter(
    "niemphong_opened_bytes",
    "Plaintext bytes released by completed opens, by level.",
    ["level"],
)

# Token -----------------------------------------------------------------------

TOKEN_CALLS = Counter(
    "niemphong_token_calls",
    "PKCS#11 calls made to the token, by function and mechanism.",
    ["function", "mechanism"],
)
TOKEN_CALL_DURATION = Histogram(
    "niemphong_token_call_duration_seconds",
    "Duration of PKCS#11 calls, by function and mechanism.",
    ["function", "mechanism"],
    buckets=_TOKEN_BUCKETS,
)
TOKEN_CALL_ERRORS = Counter(
    "niemphong_token_call_errors",
    "PKCS#11 calls that failed, by function, mechanism and python-pkcs11 error class.",
    ["function", "mechanism", "error"],
)
TOKEN_PRESENT = Gauge(
    "niemphong_token_present",
    "1 while the token is present and the daemon's login session completes a call, else 0.",
)
TOKEN_SESSIONS = Gauge(
    "niemphong_token_sessions",
    "Sessions in the token session pool.",
)
TOKEN_SESSIONS_IN_USE = Gauge(
    "niemphong_token_sessions_in_use",
    "Pool sessions borrowed by a request now.",
)
TOKEN_SESSIONS_WAITING = Gauge(
    "niemphong_token_sessions_waiting",
    "Requests waiting now for a free pool session.",
)
TOKEN_SESSION_WAIT = Histogram(
    "niemphong_token_session_wait_seconds",
    "Time a request waited for a pool session.",
    buckets=_TOKEN_BUCKETS + (10, 30),
)
TOKEN_SESSION_TIMEOUTS = Counter(
    "niemphong_token_session_timeouts",
    "Requests that gave up waiting for a pool session.",
)

# Health and lifecycle --------------------------------------------------------

HEALTH_CHECK_OK = Gauge(
    "niemphong_health_check_ok",
    "Result of the last run of each health check: 1 passed, 0 failed.",
    ["check"],
)
SERVING = Gauge(
    "niemphong_serving",
    "1 while gRPC health reports SERVING, 0 while not serving or draining.",
)
BUILD_INFO = Info("niemphong_build", "Version of the running niemphongd.")

# Audit -----------------------------------------------------------------------

# Incremented by the audit log whenever an entry cannot be made durable; the
# operation it describes is then refused. The log line names the cause.
AUDIT_WRITE_FAILURES = Counter(
    "niemphong_audit_write_failures",
    "Audit log entries that could not be made durable (the operation was refused).",
)
AUDIT_WRITABLE = Gauge(
    "niemphong_audit_writable",
    "1 while the audit log accepts entries, 0 while audited calls are refused.",
)
AUDIT_RECORDS = Counter("niemphong_audit_records", "Audit records made durable, one per audited call outcome.")
AUDIT_CHECKPOINTS = Counter(
    "niemphong_audit_checkpoints", "Audit log checkpoints made durable, each authenticated by the token.",
)

# Incidents -------------------------------------------------------------------

# Counted by IncidentService on this daemon; the open incidents are a gauge of
# StateCollector, read from the shared store.
INCIDENTS_REPORTED = Counter(
    "niemphong_incidents_reported",
    "Incidents (loss or suspected exposure of a state secret) reported to this daemon.",
)
INCIDENTS_CLOSED = Counter(
    "niemphong_incidents_closed",
    "Incidents closed on this daemon, with the suspension lifted or the grants revoked.",
)
INCIDENT_GRANTS_SUSPENDED = Counter(
    "niemphong_incident_grants_suspended",
    "Usable grants suspended by incidents reported to this daemon.",
)

# Collected at scrape time (see StateCollector) -------------------------------

STATE_METRIC_NAMES = (
    "niemphong_access_requests_pending",
    "niemphong_access_request_oldest_pending_seconds",
    "niemphong_grants_active",
    "niemphong_key_version_created_timestamp_seconds",
    "niemphong_key_version_age_seconds",
    "niemphong_key_rotation_period_seconds",
    "niemphong_key_rotation_due",
    "niemphong_incidents_open",
)


def level_label(value: object) -> str:
    """Return the label value for a level fact: a configuration name such as ``toi-mat``, or ``none``."""
    if isinstance(value, str) and value in _LEVEL_NAMES:
        return value
    return NONE


_LEVEL_NAMES = frozenset(level.config_name for level in Level)


def set_build_info() -> None:
    try:
        version = metadata.version("niemphong")
    except metadata.PackageNotFoundError:
        version = "unknown"
    BUILD_INFO.info({"version": version})


@dataclass(frozen=True)
class KeyVersionState:
    """One version of a level's key, as the key registry records it."""

    level: Level
    version: int
    # Seconds since the epoch; None when unknown.
    created_at: float | None
    # Whether new seals use this version; rotation is judged on it alone.
    active: bool = True


@dataclass(frozen=True)
class LevelAccessState:
    """Counts from the state store for one level."""

    level: Level
    pending: int
    oldest_pending_created_at: int | None
    active_grants: int


class StateCollector(Collector):
    """Gauges read from the state store and the token when Prometheus scrapes.

    Args:
        access_state: returns the per-level request and grant counts.
        key_state: returns every key version of every level.
        rotation_seconds: each level's rotation period; a level without one
            exports no rotation metrics.
        clock: seconds since the epoch.
        open_incidents: returns the number of open incidents; None exports no
            incident gauge.
    """

    def __init__(
        self,
        access_state: Callable[[], Iterable[LevelAccessState]],
        key_state: Callable[[], Iterable[KeyVersionState]],
        rotation_seconds: Mapping[Level, int],
        clock: Callable[[], float] = time.time,
        open_incidents: Callable[[], int] | None = None,
    ) -> None:
        self._access_state = access_state
        self._key_state = key_state
        self._rotation_seconds = dict(rotation_seconds)
        self._clock = clock
        self._open_incidents = open_incidents

    def describe(self) -> list[GaugeMetricFamily]:
        # Describing without collecting keeps registration free of store and
        # token calls.
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self._clock()
        yield from self._collect_access(now)
        yield from self._collect_keys(now)
        yield from self._collect_incidents()

    def _collect_incidents(self) -> Iterable[GaugeMetricFamily]:
        if self._open_incidents is None:
            return
        try:
            count = self._open_incidents()
        except Exception:
            # Prometheus can alert on the missing gauge with absent(); a
            # made-up zero would hide an incident.
            log.exception("cannot count open incidents in the state store for metrics")
            return
        yield GaugeMetricFamily(
            "niemphong_incidents_open",
            "Incidents reported and not yet closed; every grant on their artefacts is suspended.",
            value=count,
        )

    def _collect_access(self, now: float) -> Iterable[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "niemphong_access_requests_pending", "Access requests waiting for approval, by level.", labels=["level"],
        )
        oldest = GaugeMetricFamily(
            "niemphong_access_request_oldest_pending_seconds",
            "Age of the oldest access request still waiting for approval, by level (0 when none waits).",
            labels=["level"],
        )
        grants = GaugeMetricFamily(
            "niemphong_grants_active",
            "Grants that can still open: approved, unexpired, unrevoked, with opens left; by level.",
            labels=["level"],
        )
        try:
            states = list(self._access_state())
        except Exception:
            # A scrape must not fail because the store is busy or gone; the
            # health check reports the store itself.
            log.exception("cannot read access counts from the state store for metrics")
            return
        for state in states:
            label = [state.level.config_name]
            pending.add_metric(label, state.pending)
            age = 0.0 if state.oldest_pending_created_at is None else max(0.0, now - state.oldest_pending_created_at)
            oldest.add_metric(label, age)
            grants.add_metric(label, state.active_grants)
        yield from (pending, oldest, grants)

    def _collect_keys(self, now: float) -> Iterable[GaugeMetricFamily]:
        created = GaugeMetricFamily(
            "niemphong_key_version_created_timestamp_seconds",
            "Creation time of each key version that is not destroyed, as the key registry records it; "
            "by level and version.",
            labels=["level", "version"],
        )
        age = GaugeMetricFamily(
            "niemphong_key_version_age_seconds",
            "Age of each key version since its creation date, by level and version.",
            labels=["level", "version"],
        )
        period = GaugeMetricFamily(
            "niemphong_key_rotation_period_seconds", "Configured rotation period of each level's key.", labels=["level"],
        )
        due = GaugeMetricFamily(
            "niemphong_key_rotation_due",
            "1 when the active version of a level's key is at least as old as its rotation period, else 0.",
            labels=["level"],
        )
        try:
            keys = list(self._key_state())
        except Exception:
            log.exception("cannot list key versions for metrics")
            return
        active: dict[Level, KeyVersionState] = {}
        for key in keys:
            if key.active and (key.level not in active or key.version > active[key.level].version):
                active[key.level] = key
            if key.created_at is not None:
                labels = [key.level.config_name, str(key.version)]
                created.add_metric(labels, key.created_at)
                age.add_metric(labels, max(0.0, now - key.created_at))
        for level, seconds in self._rotation_seconds.items():
            period.add_metric([level.config_name], seconds)
            key = active.get(level)
            # A level without a key is reported by KEY_UNAVAILABLE refusals,
            # and a key of unknown age cannot be judged; neither gets a value.
            if key is None or key.created_at is None:
                continue
            # The same rule as `niemphong keys due`: due once the age reaches the period.
            overdue = now - key.created_at >= seconds
            due.add_metric([level.config_name], 1.0 if overdue else 0.0)
        yield from (created, age, period, due)



def date_timestamp(day: date) -> float:
    """Return midnight UTC of ``day`` in seconds since the epoch."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


class MetricsListener:
    """The HTTP listener serving ``/metrics`` from the default registry."""

    def __init__(self, config: MetricsConfig) -> None:
        self.config = config
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> None:
        config = self.config
        try:
            self._server, self._thread = start_http_server(
                config.port,
                addr=config.host,
                registry=REGISTRY,
                certfile=str(config.tls_cert) if config.tls_cert else None,
                keyfile=str(config.tls_key) if config.tls_key else None,
                client_cafile=str(config.tls_ca) if config.tls_ca else None,
                client_auth_required=config.tls_ca is not None,
                tls_min_version=ssl.TLSVersion.TLSv1_2,
            )
        except OSError as exc:
            raise OSError(f"cannot listen for metrics on {config.host}:{config.port}: {exc.strerror}") from exc
        log.info(
            "metrics on %s://%s:%d/metrics", "https" if config.tls_cert else "http", config.host, self.port,
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
