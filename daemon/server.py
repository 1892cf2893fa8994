"""Wiring: build the daemon's parts from the configuration and serve gRPC."""

from __future__ import annotations

import logging
import os
import stat
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from niemphong.daemon.access import AccessControl
from niemphong.daemon.config import Config, read_pin
from niemphong.daemon.hsm import Pkcs11Token
from niemphong.daemon.identity import AuthInterceptor
from niemphong.daemon.services.access_service import AccessServicer
from niemphong.daemon.services.envelope_service import EnvelopeServicer, KeyRing
from niemphong.daemon.services.spool_service import SpoolServicer
from niemphong.daemon.store import SqliteStore
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

HEALTH_INTERVAL_SECONDS = 5.0
# Room for a chunk plus the protobuf framing around it.
MESSAGE_OVERHEAD_BYTES = 64 * 1024

SERVICE_NAMES = tuple(service.full_name for service in pb.DESCRIPTOR.services_by_name.values())


class Daemon:
    """niemphongd: the token, the state store and the gRPC server around them."""

    def __init__(self, config: Config) -> None:
        self.config = config
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

    def start(self) -> None:
        config = self.config
        message_limit = config.chunk_bytes + MESSAGE_OVERHEAD_BYTES
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="rpc"),
            interceptors=[AuthInterceptor()],
            options=[
                ("grpc.max_receive_message_length", message_limit),
                ("grpc.max_send_message_length", message_limit),
            ],
        )
        envelopes = EnvelopeServicer(config, self.token, self.keys, self.access)
        pb_grpc.add_EnvelopeServiceServicer_to_server(envelopes, server)
        self._spool = SpoolServicer(config.spool, envelopes)
        pb_grpc.add_SpoolServiceServicer_to_server(self._spool, server)
        pb_grpc.add_AccessServiceServicer_to_server(AccessServicer(self.access), server)
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
        self.token.close()
        self.store.close()
        if self.config.unix_socket is not None:
            try:
                os.unlink(self.config.unix_socket)
            except FileNotFoundError:
                pass
        log.info("niemphongd stopped")


def _prepare_socket_path(path: os.PathLike[str] | str) -> None:
    directory = os.path.dirname(os.fspath(path))
    os.makedirs(directory, mode=0o750, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; refusing to replace it")
    # A socket left by a daemon that did not stop cleanly.
    os.unlink(path)
