"""Fixtures shared by the whole suite: a throwaway SoftHSM2 token set up by
``niemphong dev init``, a real niemphongd process on it, and ways to call it
over the unix socket and over TCP, always with mutual TLS.

State lives in SQLite unless NIEMPHONG_TEST_STATE_BACKEND=postgresql, which
puts every daemon the tests start on its own database in a throwaway
PostgreSQL cluster (tests/pg_cluster.py). Tests that open a store
themselves take ``store_factory``, which runs them on both backends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
# The project's shared samples sit beside the clone in CI; NIEMPHONG_SHARED_SAMPLES
# points elsewhere, for a worktree that has them in another place.
SHARED_SAMPLES = Path(os.environ.get("NIEMPHONG_SHARED_SAMPLES") or REPO.parent / "shared" / "samples")
SERVER_NAME = "niemphongd"
STATE_BACKEND = os.environ.get("NIEMPHONG_TEST_STATE_BACKEND", "sqlite")
MESSAGE_LIMIT = 1024 * 1024 + 64 * 1024


def run_niemphong(*args: str, env: dict[str, str] | None = None, input_bytes: bytes | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the niemphong command line as a user would, in Vietnamese unless env says otherwise."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NIEMPHONG_")}
    full_env.setdefault("LANG", "vi_VN.UTF-8")
    full_env.update(env or {})
    return subprocess.run(
        [str(BIN / "niemphong"), *args], env=full_env, capture_output=True, text=True, timeout=timeout,
        input=input_bytes.decode() if input_bytes is not None else None,
    )


@dataclass
class DevEnvironment:
    """A directory made by ``niemphong dev init``, with its daemon's addresses."""

    root: Path
    config: dict = field(default_factory=dict)

    @property
    def unix_target(self) -> str:
        return f"unix:{self.config['server']['unix_socket']}"

    @property
    def tcp_target(self) -> str:
        return self.config["server"]["tcp"]

    def identity(self, name: str) -> Path:
        return self.root / "identities" / name

    def target(self, transport: str) -> str:
        return self.unix_target if transport == "unix" else self.tcp_target

    def channel(self, name: str, transport: str = "unix") -> grpc.Channel:
        identity = self.identity(name)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(identity / "ca.pem").read_bytes(),
            private_key=(identity / "key.pem").read_bytes(),
            certificate_chain=(identity / "cert.pem").read_bytes(),
        )
        return grpc.secure_channel(self.target(transport), credentials, options=[
            ("grpc.ssl_target_name_override", SERVER_NAME),
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ])

    def cli(self, name: str, *args: str, transport: str = "unix", lang: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {"NIEMPHONG_SERVER": self.target(transport), "NIEMPHONG_IDENTITY": str(self.identity(name))}
        if lang:
            env["LANG"] = lang
        return run_niemphong(*args, env=env, timeout=timeout)

    def add_identity(self, name: str, role: str) -> Path:
        result = run_niemphong("dev", "add-identity", str(self.root), name, "--role", role)
        assert result.returncode == 0, result.stderr
        return self.identity(name)


def dev_init(root: Path, *extra: str) -> DevEnvironment:
    """Run ``niemphong dev init`` on the backend this run tests, unless ``extra`` chooses one."""
    if STATE_BACKEND == "postgresql" and not extra:
        extra = ("--postgres", shared_cluster().create_database())
    result = run_niemphong("dev", "init", str(root), *extra, timeout=300)
    assert result.returncode == 0, f"dev init failed:\n{result.stdout}\n{result.stderr}"
    with (root / "niemphongd.toml").open("rb") as handle:
        config = tomllib.load(handle)
    return DevEnvironment(root, config)


class DaemonProcess:
    """niemphongd running as its own process, stopped with SIGTERM."""

    def __init__(self, env: DevEnvironment, log_path: Path, command: list[str] | None = None) -> None:
        self.env = env
        self.log_path = log_path
        self.command = command or [str(BIN / "niemphongd"), "--config", str(env.root / "niemphongd.toml")]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"niemphongd exited with {self.process.returncode}:\n{self.log()}")
            if self.serving():
                return
            time.sleep(0.1)
        raise RuntimeError(f"niemphongd did not become ready:\n{self.log()}")

    def serving(self) -> bool:
        return self.health() == health_pb2.HealthCheckResponse.SERVING

    def health(self) -> int | None:
        """Return the daemon's overall health status, or None when it does not answer."""
        with self.env.channel("operator") as channel:
            try:
                response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.RpcError:
                return None
        return response.status

    def wait_health(self, status: int, timeout: float = 30) -> bool:
        """Wait until the health status is ``status``; return whether it became so in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health() == status:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def state_query(env: DevEnvironment, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Run one statement with ``?`` placeholders on the daemon's state database, committed; return the rows.

    For checks on what is stored and for conditions no RPC produces. Works on
    the SQLite file and on the PostgreSQL database alike.
    """
    state = env.config["state"]
    if state.get("backend") == "postgresql":
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(state["postgresql"], row_factory=dict_row) as connection:
            cursor = connection.execute(statement.replace("?", "%s"), params)
            return list(cursor.fetchall()) if cursor.description else []

    import sqlite3

    database = sqlite3.connect(state["sqlite"], timeout=30)
    database.row_factory = sqlite3.Row
    try:
        with database:
            return [dict(row) for row in database.execute(statement, params)]
    finally:
        database.close()


# PostgreSQL ---------------------------------------------------------------------

_cluster: Any = None


def start_cluster() -> Any:
    """Start a new PostgreSQL test cluster; skip (or fail in CI) without PostgreSQL. The caller stops it."""
    from pg_cluster import PostgresCluster, find_bin, postgres_required

    bin_dir = find_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        message = "PostgreSQL server binaries not found (install postgresql or set NIEMPHONG_PG_BIN)"
        if postgres_required():
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def shared_cluster() -> Any:
    """Return the session's PostgreSQL cluster, started on first use."""
    global _cluster
    if _cluster is None:
        _cluster = start_cluster()
    return _cluster


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _cluster is not None:
        _cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    return shared_cluster()


@dataclass
class StoreFactory:
    """Opens state stores on one test's database, on the backend the test runs with."""

    backend: str
    open: Callable[[], Any]
    # What a duplicate key raises on this backend.
    integrity_error: type[Exception]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Open stores on a new SQLite file or a new PostgreSQL database; every store opened is closed after."""
    opened: list[Any] = []
    if request.param == "sqlite":
        import sqlite3

        from niemphong.daemon.store import SqliteStore

        path = tmp_path / "state" / "np.db"

        def open_sqlite() -> Any:
            opened.append(SqliteStore(path))
            return opened[-1]

        yield StoreFactory("sqlite", open_sqlite, sqlite3.IntegrityError)
    else:
        import psycopg

        from niemphong.daemon.store_postgres import PostgresStore

        conninfo = shared_cluster().create_database()

        def open_postgres() -> Any:
            opened.append(PostgresStore(conninfo))
            return opened[-1]

        yield StoreFactory("postgresql", open_postgres, psycopg.IntegrityError)
    for store in opened:
        store.close()


@pytest.fixture(scope="session")
def dev_env(tmp_path_factory: pytest.TempPathFactory) -> DevEnvironment:
    """One throwaway SoftHSM2 token and PKI for the whole test session."""
    env = dev_init(tmp_path_factory.mktemp("np"))
    env.add_identity("viewer-2", "viewer")
    return env


@pytest.fixture(scope="session")
def daemon(dev_env: DevEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(dev_env, tmp_path_factory.mktemp("logs") / "niemphongd.log")
    process.start()
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(params=["unix", "tcp"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


# gRPC helpers used by the end-to-end tests ------------------------------------

CHUNK = 1024 * 1024


def seal_bytes(env: DevEnvironment, data: bytes, level: int = pb.LEVEL_MAT, doc_number: str = "1479/UBND-NC",
               issued_on: str = "2025-05-20", identity: str = "scanner", transport: str = "unix",
               title: str = "") -> tuple[bytes, pb.SealSummary]:
    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=pb.SealMetadata(level=level, document=pb.DocumentMetadata(
            doc_number=doc_number, issued_on=issued_on, title=title, source_name="scan.pdf")))
        for start in range(0, len(data), CHUNK):
            yield pb.SealRequest(chunk=data[start:start + CHUNK])

    with env.channel(identity, transport) as channel:
        out = bytearray()
        summary = None
        for response in pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=60):
            if response.WhichOneof("payload") == "chunk":
                out += response.chunk
            else:
                summary = response.summary
    assert summary is not None
    return bytes(out), summary


def open_bytes(env: DevEnvironment, envelope: bytes, identity: str = "viewer", transport: str = "unix",
               request_id: str = "", received: bytearray | None = None) -> bytes:
    def requests() -> Iterator[pb.OpenRequest]:
        yield pb.OpenRequest(start=pb.OpenStart(request_id=request_id))
        for start in range(0, len(envelope), CHUNK):
            yield pb.OpenRequest(chunk=envelope[start:start + CHUNK])

    plain = received if received is not None else bytearray()
    with env.channel(identity, transport) as channel:
        for response in pb_grpc.EnvelopeServiceStub(channel).Open(requests(), timeout=60):
            if response.WhichOneof("payload") == "chunk":
                plain += response.chunk
    return bytes(plain)


def grant_access(env: DevEnvironment, artefact_id: str, approvers: list[str], viewer: str = "viewer",
                 transport: str = "unix") -> str:
    with env.channel(viewer, transport) as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=artefact_id, purpose="kiểm tra"), timeout=10)
    for approver in approvers:
        with env.channel(approver, transport) as channel:
            pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request.request_id), timeout=10)
    return request.request_id


def error_reason(error: grpc.RpcError) -> str:
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    raise AssertionError(f"no ErrorInfo in {error}")
