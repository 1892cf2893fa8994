"""Wiring: build the daemon's parts from the configuration and serve gRPC."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from niemphong.daemon.access import AccessControl
from niemphong.daemon.config import Config, read_pin
from niemphong.daemon.hsm import Pkcs11Token
from niemphong.daemon.identity import AuthInterceptor, StreamLimiter
from niemphong.daemon.services.access_service import AccessServicer
from niemphong.daemon.services.classification import Classifier
from niemphong.daemon.services.envelope_service import EnvelopeServicer, KeyRing
from niemphong.daemon.services.policy_service import PolicyServicer
from niemphong.daemon.services.spool_service import SpoolServicer
from niemphong.daemon.store import SqliteStore
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

HEALTH_INTERVAL_SECONDS = 5.0
# Streamed transfers one identity may run at once, and server threads kept
# free of streams for unary calls such as approvals and health checks.
STREAMS_PER_IDENTITY = 8
RESERVED_UNARY_WORKERS = 8
# Room for a chunk plus the protobuf framing around it.
MESSAGE_OVERHEAD_BYTES = 64 * 1024

SERVICE_NAMES = tuple(service.full_name for service in pb.DESCRIPTOR.services_by_name.values())


class Daemon:
    """niemphongd: the token, the state store and the gRPC server around them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._state_lock = _lock_state(config.sqlite)
        self.token = Pkcs11Token(config.token, read_pin(config.token))
        self.store = SqliteStore(config.sqlite)
        self.access = AccessControl(self.store, config.levels)
        self.keys = KeyRing(self.token, config)
        self.health = health.HealthServicer()
        self.tcp_port: int | None = None
        self._stopping = threading.Event()
        self._server: grpc.Server | None = None
        self._health_thread: threading.Thread | None = None
        self._spool: SpoolServicer | None = None
        self._envelopes: EnvelopeServicer | None = None

    def start(self) -> None:
        config = self.config
        message_limit = config.chunk_bytes + MESSAGE_OVERHEAD_BYTES
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="rpc"),
            interceptors=[AuthInterceptor(StreamLimiter(
                per_identity=STREAMS_PER_IDENTITY, total=max(1, config.workers - RESERVED_UNARY_WORKERS),
            ))],
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
                # Without this a second daemon could bind the same TCP port.
                ("grpc.so_reuseport", 0),
            ],
        )
        assert config.policy is not None
        classifier = Classifier(config.policy)
        envelopes = EnvelopeServicer(config, self.token, self.keys, self.access, classifier)
        self._envelopes = envelopes
        pb_grpc.add_EnvelopeServiceServicer_to_server(envelopes, server)
        self._spool = SpoolServicer(config.spool, envelopes)
        pb_grpc.add_SpoolServiceServicer_to_server(self._spool, server)
        pb_grpc.add_AccessServiceServicer_to_server(AccessServicer(self.access), server)
        pb_grpc.add_PolicyServiceServicer_to_server(PolicyServicer(config, self.store, classifier), server)
        _log_policy(config)
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

        server.start()
        if config.unix_socket is not None:
            # Owner and group only: local clients are in the service's group.
            os.chmod(config.unix_socket, 0o660)
        self._server = server
        self._update_health()
        self._health_thread = threading.Thread(target=self._watch_health, name="health", daemon=True)
        self._health_thread.start()
        log.info(
            "niemphongd serving on %s",
            ", ".join(filter(None, [
                f"unix:{config.unix_socket}" if config.unix_socket else None,
                f"{config.tcp.rsplit(':', 1)[0]}:{self.tcp_port}" if config.tcp else None,
            ])),
        )

    def _update_health(self) -> None:
        healthy = self.token.check_alive() and self.store.check_writable()
        status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("",) + SERVICE_NAMES:
            self.health.set(name, status)

    def _watch_health(self) -> None:
        was_healthy = True
        while not self._stopping.wait(HEALTH_INTERVAL_SECONDS):
            self._update_health()
            healthy = self.token.check_alive()
            if healthy != was_healthy:
                log.warning("token is %s", "available again" if healthy else "not answering")
                was_healthy = healthy

    def wait(self) -> None:
        assert self._server is not None
        self._server.wait_for_termination()

    def stop(self, grace: float = 30.0) -> None:
        """Refuse new calls, let running ones finish within ``grace`` seconds, then close the token."""
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
        if self._spool is not None:
            self._spool.close()
        if self._envelopes is not None:
            self._envelopes.close()
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


def _lock_state(sqlite_path: os.PathLike[str] | str) -> int:
    """Take an exclusive lock beside the state database, so one daemon serves one configuration.

    Returns the descriptor, which must stay open for the daemon's life.
    """
    lock_path = f"{os.fspath(sqlite_path)}.lock"
    os.makedirs(os.path.dirname(lock_path), mode=0o700, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise OSError(f"another niemphongd already uses the state database {sqlite_path}; stop it first") from None
    return descriptor
