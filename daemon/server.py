"""Wiring: build the daemon's parts from the configuration and serve gRPC."""

from __future__ import annotations

import fcntl
import grp
import logging
import os
import socket
import stat
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from niemphong.daemon import metrics
from niemphong.daemon.access import AccessControl
from niemphong.daemon.api import api_services
from niemphong.daemon.archive_wiring import add_archive_services
from niemphong.daemon.audit.log import AuditLog
from niemphong.daemon.audit.token_key import TokenCheckpointKey
from niemphong.daemon.audit.trail import AuditInterceptor, AuditTrail
from niemphong.daemon.config import Config
from niemphong.daemon.health import HealthCheck, HealthMonitor, path_writable
from niemphong.daemon.identity import AuthInterceptor, StreamLimiter
from niemphong.daemon.key_changes import KeyChanges
from niemphong.daemon.keys import ACTIVE, KeyRegistry
from niemphong.daemon.levels import Level
from niemphong.daemon.observe import ObservingInterceptor
from niemphong.daemon.recovery import RecoverySessions
from niemphong.daemon.rewrap import Rewrapper
from niemphong.daemon.services.access_service import AccessServicer
from niemphong.daemon.services.audit_service import AuditServicer
from niemphong.daemon.services.classification import Classifier
from niemphong.daemon.services.envelope_service import EnvelopeServicer
from niemphong.daemon.services.key_service import KeyServicer
from niemphong.daemon.services.policy_service import PolicyServicer
from niemphong.daemon.services.recovery_service import RecoveryServicer
from niemphong.daemon.services.spool_service import SpoolServicer
from niemphong.daemon.services.token_service import TokenServicer
from niemphong.daemon.store import open_store
from niemphong.daemon.systemd import Notifier
from niemphong.daemon.token_supervisor import TokenSupervisor
from niemphong.v1 import audit_pb2_grpc
from niemphong.v1 import keys_pb2_grpc
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc
from niemphong.v1 import token_pb2_grpc

log = logging.getLogger(__name__)

# After a drain's grace period, how long request streams get to reach their
# next message and end with DAEMON_STOPPING before gRPC cancels them.
STREAM_STOP_SECONDS = 5.0
LINGER_SECONDS = 0.5
# After that, how long cancelled handlers get to unwind before the token and
# the store close under them.
HANDLER_EXIT_SECONDS = 5.0
# Streamed transfers one identity may run at once, and server threads kept
# free of streams for unary calls such as approvals and health checks.
STREAMS_PER_IDENTITY = 8
RESERVED_UNARY_WORKERS = 8
# Room for a chunk plus the protobuf framing around it.
MESSAGE_OVERHEAD_BYTES = 64 * 1024

SERVICE_NAMES = tuple(service.full_name for service in api_services())


class Daemon:
    """niemphongd: the token, the state store and the gRPC server around them."""

    def __init__(self, config: Config, token: TokenSupervisor | None = None) -> None:
        self.config = config
        # On SQLite one daemon owns the database file. Daemons that share a
        # PostgreSQL database each own their audit log instead.
        if config.sqlite is not None:
            self._state_lock = _lock_state(config.sqlite, "the state database")
        else:
            self._state_lock = _lock_state(config.audit.path, "the audit log")
        # The token is supervised: a fault turns health NOT_SERVING and the
        # supervisor opens the token again by itself (token_supervisor.py).
        self.token = token if token is not None else TokenSupervisor(config.token)
        self.store = open_store(config)
        self.access = AccessControl(self.store, config.levels)
        recovery_keys = config.recovery.keys if config.recovery else {}
        self.keys = KeyRegistry(self.store, self.token, config.levels, recovery_keys)
        self.keys.reconcile()
        self.key_changes = KeyChanges(self.store, self.keys)
        self.recovery = RecoverySessions(config.recovery)
        self.rewrapper = Rewrapper(self.keys, self.store)
        self.audit_key = TokenCheckpointKey(self.token)
        # With a shared database every record gets a number in one order
        # across the daemons' logs, for `niemphongd audit verify` to merge them.
        audit_order = getattr(self.store, "next_audit_order", None)
        self.audit_log = AuditLog(config.audit, self.audit_key, order_source=audit_order)
        self.audit = AuditTrail(self.audit_log)
        self.store.group_guard = self.audit.grouped_decisions
        self.health = health.HealthServicer()
        self.notifier = Notifier()
        # Calls a drain refuses never reach the audit interceptor, so the observer reports them.
        self.observer = ObservingInterceptor(on_drain_refusal=self.audit.record_refusal)
        self.health_monitor = HealthMonitor(
            self.health,
            ("",) + SERVICE_NAMES,
            [
                HealthCheck("token", self.token.check_alive),
                HealthCheck("state_store", self._state_writable),
                # Also retries a failed audit log, at most once a second.
                HealthCheck("audit_log", lambda: self.audit_log.writable() and path_writable(config.audit.path)),
            ],
            self.notifier,
        )
        self.metrics_listener = metrics.MetricsListener(config.metrics) if config.metrics else None
        self.state_collector = metrics.StateCollector(
            self._level_counts,
            self._key_versions,
            {level: 86400 * policy.rotation_days for level, policy in config.levels.items()},
            open_incidents=self._open_incidents,
        )
        self.tcp_port: int | None = None
        self._server: grpc.Server | None = None
        self._spool: SpoolServicer | None = None

    def start(self) -> None:
        config = self.config
        self.audit_log.open()
        message_limit = config.chunk_bytes + MESSAGE_OVERHEAD_BYTES
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="rpc"),
            # The observer goes first so that it also counts calls that
            # authentication or the stream limit rejects, and so that a drain
            # waits for their audit records. The audit trail comes next, so
            # that it records refusals by the role check too.
            interceptors=[
                self.observer,
                AuditInterceptor(self.audit),
                AuthInterceptor(StreamLimiter(
                    per_identity=STREAMS_PER_IDENTITY, total=max(1, config.workers - RESERVED_UNARY_WORKERS),
                )),
            ],
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
                # Without this a second daemon could bind the same TCP port.
                ("grpc.so_reuseport", 0),
            ],
        )
        assert config.policy is not None
        classifier = Classifier(config.policy)
        envelopes = EnvelopeServicer(config, self.token, self.keys, self.access, self.audit, classifier)
        pb_grpc.add_EnvelopeServiceServicer_to_server(envelopes, server)
        self._spool = SpoolServicer(config.spool, envelopes)
        pb_grpc.add_SpoolServiceServicer_to_server(self._spool, server)
        add_archive_services(server, envelopes, self.access, self.audit)
        pb_grpc.add_AccessServiceServicer_to_server(AccessServicer(self.access, self.audit), server)
        keys_pb2_grpc.add_KeyServiceServicer_to_server(
            KeyServicer(self.keys, self.key_changes, self.rewrapper, self.audit), server,
        )
        keys_pb2_grpc.add_RecoveryServiceServicer_to_server(
            RecoveryServicer(
                config, self.token, self.keys, self.access, self.recovery, self.rewrapper, self.audit, classifier,
            ),
            server,
        )
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditServicer(self.audit_log, self.audit_key), server)
        pb_grpc.add_PolicyServiceServicer_to_server(PolicyServicer(config, self.store, self.audit, classifier), server)
        _log_policy(config)
        token_pb2_grpc.add_TokenServiceServicer_to_server(TokenServicer(config, self.token), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            SERVICE_NAMES + (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )

        credentials = grpc.ssl_server_credentials(
            [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
            root_certificates=config.tls_ca.read_bytes(),
            require_client_auth=True,
        )
        if config.unix_socket is not None:
            _prepare_socket_path(config.unix_socket)
            server.add_secure_port(f"unix:{config.unix_socket}", credentials)
        if config.tcp is not None:
            self.tcp_port = server.add_secure_port(config.tcp, credentials)
            if self.tcp_port == 0:
                raise OSError(f"cannot listen on {config.tcp}")

        if self.metrics_listener is not None:
            metrics.set_build_info()
            metrics.REGISTRY.register(self.state_collector)
            self.metrics_listener.start()

        server.start()
        if config.unix_socket is not None:
            # Owner and group only: local clients are in the socket's group.
            if config.unix_socket_group is not None:
                os.chown(config.unix_socket, -1, grp.getgrnam(config.unix_socket_group).gr_gid)
            os.chmod(config.unix_socket, 0o660)
        self._server = server
        self.health_monitor.run_checks()
        self.token.add_listener(self._on_token_change)
        self.token.start()
        self.health_monitor.start()
        self.notifier.ready(self.health_monitor.describe())
        log.info(
            "niemphongd serving on %s",
            ", ".join(filter(None, [
                f"unix:{config.unix_socket}" if config.unix_socket else None,
                f"{config.tcp.rsplit(':', 1)[0]}:{self.tcp_port}" if config.tcp else None,
            ])),
        )

    def _on_token_change(self, available: bool) -> None:
        # Compare the token with the key registry again before turning
        # SERVING, since the token that came back may not hold the same keys.
        if available:
            self.keys.reconcile()
        self.health_monitor.run_checks()

    def _state_writable(self) -> bool:
        if not self.store.check_writable():
            return False
        return self.config.sqlite is None or path_writable(self.config.sqlite)

    def _level_counts(self) -> list[metrics.LevelAccessState]:
        with self.store.transaction() as tx:
            counts = {Level(row.level): row for row in tx.level_counts(int(time.time()))}
        states = []
        for level in self.config.levels:
            row = counts.get(level)
            states.append(metrics.LevelAccessState(
                level=level,
                pending=row.pending if row else 0,
                oldest_pending_created_at=row.oldest_pending_created_at if row else None,
                active_grants=row.active_grants if row else 0,
            ))
        return states

    def _open_incidents(self) -> int:
        with self.store.transaction() as tx:
            return tx.count_open_incidents()

    def _key_versions(self) -> list[metrics.KeyVersionState]:
        # From the key registry, so that the metric and `niemphong keys due` agree.
        return [
            metrics.KeyVersionState(level, record.version, float(record.created_at), active=record.state == ACTIVE)
            for level, record in self.keys.live_versions()
        ]

    def wait(self) -> None:
        assert self._server is not None
        self._server.wait_for_termination()

    def stop(self, grace: float | None = None) -> None:
        """Drain: refuse new calls, let running ones finish within ``grace`` seconds, then close.

        ``grace`` defaults to ``[server] drain_seconds``. New calls fail at
        once with DAEMON_STOPPING while health checks report NOT_SERVING. A
        request stream still open when the grace period ends is ended at its
        next message with DAEMON_STOPPING, and gRPC cancels whatever still
        runs after STREAM_STOP_SECONDS more. A seal ended either way
        registers no artefact.
        """
        grace = self.config.drain_seconds if grace is None else grace
        in_flight = self.observer.in_flight
        log.info("draining: %d calls in flight, up to %.0f s to finish", in_flight, grace)
        self.notifier.stopping(f"draining {in_flight} calls")
        self.observer.begin_drain()
        self.health_monitor.begin_drain()
        if not self.observer.wait_idle(grace):
            log.warning("%d calls still running after %.0f s; ending their streams", self.observer.in_flight, grace)
            self.observer.stop_streams()
            self.observer.wait_idle(STREAM_STOP_SECONDS)
        if self._server is not None:
            # A handler that has returned may still be sending its last
            # messages and status, and a client may still be sending on a
            # call that ended with DAEMON_STOPPING. Closing the connections
            # at once would leave either client with only a broken pipe.
            time.sleep(LINGER_SECONDS)
            self._server.stop(LINGER_SECONDS).wait()
        if self._spool is not None:
            self._spool.close()
        if not self.observer.wait_idle(HANDLER_EXIT_SECONDS):
            log.warning("%d calls still unwinding after the drain; closing the token under them", self.observer.in_flight)
        if self.metrics_listener is not None:
            self.metrics_listener.stop()
            metrics.REGISTRY.unregister(self.state_collector)
        self.health_monitor.stop()
        self.recovery.close()
        # After the last handler: nothing may follow the shutdown checkpoint.
        self.audit_log.close()
        self.token.close()
        self.store.close()
        os.close(self._state_lock)
        if self.config.unix_socket is not None:
            try:
                os.unlink(self.config.unix_socket)
            except FileNotFoundError:
                pass
        log.info("niemphongd stopped")


def _log_policy(config: Config) -> None:
    policy = config.policy
    assert policy is not None
    log.info(
        "policy %s (sha256 %s): %d catalog items, %d superseded catalog decisions, %d standing decisions",
        policy.path, policy.sha256, len(policy.catalog.items), len(policy.catalog.superseded),
        len(policy.standing_decisions),
    )
    if policy.development:
        log.warning("policy %s is in development mode: a software token and the sample catalog are accepted; "
                    "never use it for state secrets", policy.path)


def _prepare_socket_path(path: os.PathLike[str] | str) -> None:
    directory = os.path.dirname(os.fspath(path))
    os.makedirs(directory, mode=0o750, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; refusing to replace it")

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        # Nobody listens: a socket left by a daemon that did not stop cleanly.
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(f"another process is serving on {path}; stop it first")


def _lock_state(owned_path: os.PathLike[str] | str, description: str) -> int:
    """Take an exclusive lock beside the file one daemon owns (its SQLite database or audit log).

    So one daemon serves one configuration. Returns the descriptor, which
    must stay open for the daemon's life.
    """
    lock_path = f"{os.fspath(owned_path)}.lock"
    os.makedirs(os.path.dirname(lock_path), mode=0o700, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise OSError(f"another niemphongd already uses {description} {owned_path}; stop it first") from None
    return descriptor
