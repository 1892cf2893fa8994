"""Stopping, readiness and health of a real niemphongd process.

Each test runs its own daemon on its own `dev init` folder, because each
stops it with SIGTERM or runs it with a different configuration.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from conftest import BIN, DaemonProcess, DevEnvironment, dev_init, error_reason, grant_access, open_bytes
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

CHUNK = 1024 * 1024


class ConfiguredDaemon(DaemonProcess):
    """A DaemonProcess started with extra environment variables."""

    def __init__(self, env: DevEnvironment, log_path: Path, environ: dict[str, str] | None = None) -> None:
        super().__init__(env, log_path)
        self.environ = environ or {}

    def wait_exit(self) -> int:
        """Wait for the process to exit after a SIGTERM the test sent, and return its exit code."""
        assert self.process is not None
        return self.process.wait(timeout=60)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "niemphongd"), "--config", str(self.env.root / "niemphongd.toml")],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.environ},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"niemphongd exited with {self.process.returncode}:\n{self.log()}")
            if self.serving():
                return
            time.sleep(0.1)
        raise RuntimeError(f"niemphongd did not become ready:\n{self.log()}")


def set_server_option(env: DevEnvironment, line: str) -> None:
    """Add ``line`` to the [server] section of the folder's niemphongd.toml."""
    path = env.root / "niemphongd.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[server]\n", f"[server]\n{line}\n", 1), encoding="utf-8")


@pytest.fixture
def own_env(tmp_path_factory: pytest.TempPathFactory) -> DevEnvironment:
    # A short path: the unix socket path must fit in 107 bytes.
    return dev_init(tmp_path_factory.mktemp("life"))


def slow_seal_requests(chunks: int, delay: float, sent: list[int]) -> Iterator[pb.SealRequest]:
    yield pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
        doc_number="88/UBND-VP", issued_on="2025-03-01", source_name="scan.pdf")))
    for index in range(chunks):
        yield pb.SealRequest(chunk=bytes([index % 251]) * CHUNK)
        sent.append(CHUNK)
        time.sleep(delay)


class SealInThread:
    """A Seal call running in a thread, recording what the client received."""

    def __init__(self, env: DevEnvironment, chunks: int, delay: float) -> None:
        self.env = env
        self.chunks = chunks
        self.delay = delay
        self.sent: list[int] = []
        self.received = bytearray()
        self.summary: pb.SealSummary | None = None
        self.error: grpc.RpcError | None = None
        self.first_chunk = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            with self.env.channel("scanner") as channel:
                stub = pb_grpc.EnvelopeServiceStub(channel)
                for response in stub.Seal(slow_seal_requests(self.chunks, self.delay, self.sent), timeout=120):
                    if response.WhichOneof("payload") == "chunk":
                        self.received += response.chunk
                        self.first_chunk.set()
                    else:
                        self.summary = response.summary
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.first_chunk.set()

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()


def inspect(env: DevEnvironment, envelope: bytes) -> pb.InspectResponse:
    with env.channel("operator") as channel:
        return pb_grpc.EnvelopeServiceStub(channel).Inspect(
            pb.InspectRequest(envelope_head=envelope[:80 * 1024], envelope_bytes=len(envelope)), timeout=10)


def test_sigterm_during_slow_seal_ends_with_clear_error(own_env: DevEnvironment, tmp_path: Path) -> None:
    set_server_option(own_env, "drain_seconds = 1")
    daemon = ConfiguredDaemon(own_env, tmp_path / "niemphongd.log")
    daemon.start()
    # 40 chunks 0.1 s apart: about 4 s, far past the 1 s grace period.
    seal = SealInThread(own_env, chunks=40, delay=0.1)
    seal.start()
    assert seal.first_chunk.wait(30)

    daemon.process.send_signal(signal.SIGTERM)
    seal.join()
    exit_code = daemon.wait_exit()

    assert exit_code == 0, daemon.log()
    assert seal.summary is None
    assert seal.error is not None
    assert seal.error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(seal.error) == "DAEMON_STOPPING"
    assert len(seal.sent) < 40
    assert "draining" in daemon.log()

    # What the client received before the error is not a registered envelope.
    restarted = ConfiguredDaemon(own_env, tmp_path / "niemphongd-2.log")
    restarted.start()
    try:
        response = inspect(own_env, bytes(seal.received))
    finally:
        restarted.stop()
    assert not response.registered
    assert response.plaintext_bytes == 0 or response.plaintext_bytes < len(seal.sent) * CHUNK


def test_sigterm_during_seal_within_grace_completes(own_env: DevEnvironment, tmp_path: Path) -> None:
    set_server_option(own_env, "drain_seconds = 20")
    daemon = ConfiguredDaemon(own_env, tmp_path / "niemphongd.log")
    daemon.start()
    seal = SealInThread(own_env, chunks=6, delay=0.2)
    seal.start()
    assert seal.first_chunk.wait(30)

    daemon.process.send_signal(signal.SIGTERM)
    seal.join()
    assert daemon.wait_exit() == 0, daemon.log()

    assert seal.error is None, seal.error
    assert seal.summary is not None
    assert seal.summary.envelope_bytes == len(seal.received)
    assert seal.summary.plaintext_bytes == 6 * CHUNK

    restarted = ConfiguredDaemon(own_env, tmp_path / "niemphongd-2.log")
    restarted.start()
    try:
        assert inspect(own_env, bytes(seal.received)).registered
        grant_access(own_env, seal.summary.artefact_id, ["approver-1"])
        opened = open_bytes(own_env, bytes(seal.received))
    finally:
        restarted.stop()
    assert opened == b"".join(bytes([index % 251]) * CHUNK for index in range(6))


def test_new_calls_refused_while_draining(own_env: DevEnvironment, tmp_path: Path) -> None:
    set_server_option(own_env, "drain_seconds = 20")
    metrics_url = f"http://{own_env.config['metrics']['listen']}/metrics"
    daemon = ConfiguredDaemon(own_env, tmp_path / "niemphongd.log")
    daemon.start()
    seal = SealInThread(own_env, chunks=15, delay=0.2)
    seal.start()
    assert seal.first_chunk.wait(30)

    daemon.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(grpc.RpcError) as excinfo:
        inspect(own_env, b"\0" * 64)
    scrape = _scrape(metrics_url)
    seal.join()
    assert daemon.wait_exit() == 0, daemon.log()

    assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(excinfo.value) == "DAEMON_STOPPING"
    assert "niemphong_serving 0.0" in scrape
    assert 'niemphong_rpc_in_flight{rpc="EnvelopeService/Seal"} 1.0' in scrape
    assert seal.summary is not None
    # The refusal is on record, and the shutdown checkpoint comes after every record.
    request_id = dict(excinfo.value.trailing_metadata() or ())["x-request-id"]
    entries = [json.loads(line) for line in Path(own_env.config["audit"]["path"]).read_bytes().splitlines()]
    refused = [entry for entry in entries if entry.get("request_id") == request_id]
    assert [(entry["operation"], entry["decision"], entry["reason"]) for entry in refused] == [
        ("EnvelopeService/Inspect", "failed", "DAEMON_STOPPING"),
    ]
    assert (entries[-1]["kind"], entries[-1]["reason"]) == ("checkpoint", "shutdown")


def test_cli_scan_interrupted_leaves_no_output(own_env: DevEnvironment, tmp_path: Path) -> None:
    set_server_option(own_env, "drain_seconds = 0")
    daemon = ConfiguredDaemon(own_env, tmp_path / "niemphongd.log")
    daemon.start()
    source = tmp_path / "scan.bin"
    source.write_bytes(os.urandom(1024 * 1024) * 192)
    out = tmp_path / "scan.bin.npe"
    command = [
        str(BIN / "niemphong"), "scan", str(source), "--level", "mat", "--doc-number", "7/UBND",
        "--issued", "2025-02-02", "--out", str(out), "--lang", "en",
    ]
    environ = {
        **os.environ, "NIEMPHONG_SERVER": own_env.unix_target,
        "NIEMPHONG_IDENTITY": str(own_env.identity("scanner")),
    }
    client = subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_seal_in_flight(f"http://{own_env.config['metrics']['listen']}/metrics", client)

    daemon.process.send_signal(signal.SIGTERM)
    stdout, stderr = client.communicate(timeout=120)
    assert daemon.wait_exit() == 0, daemon.log()

    if client.returncode == 0:
        # The seal finished before the signal arrived: a whole envelope.
        assert out.stat().st_size > source.stat().st_size
    else:
        assert client.returncode == 6, stderr
        assert "stopping" in stderr
        assert not out.exists()
        assert sorted(path.name for path in tmp_path.iterdir()) == ["niemphongd.log", "scan.bin"]


def test_systemd_notifications(own_env: DevEnvironment, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(30)
    # A 0.6 s watchdog makes the health checks run every 0.2 s.
    daemon = ConfiguredDaemon(
        own_env, tmp_path / "niemphongd.log", {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "600000"},
    )
    try:
        daemon.start()
        messages = [listener.recv(4096).decode() for _ in range(3)]
        daemon.process.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages[-1]:
            messages.append(listener.recv(4096).decode())
        assert daemon.wait_exit() == 0, daemon.log()
    finally:
        listener.close()

    assert "READY=1" in messages[0].split("\n")
    assert "STATUS=serving" in messages[0].split("\n")
    assert f"MAINPID={daemon.process.pid}" in messages[0].split("\n")
    assert "WATCHDOG=1" in messages[1:]
    assert messages[-1].startswith("STOPPING=1\nSTATUS=draining")


def test_daemon_as_root_refused_without_allow_root(own_env: DevEnvironment, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs to run as root to see the refusal")
    path = own_env.root / "niemphongd.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("allow_root = true\n", ""), encoding="utf-8")

    result = subprocess.run(
        [str(BIN / "niemphongd"), "--config", str(path)], capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 2
    assert "running as root" in result.stderr
    assert "allow_root" in result.stderr


def test_daemon_process_not_dumpable(own_env: DevEnvironment, tmp_path: Path) -> None:
    daemon = ConfiguredDaemon(own_env, tmp_path / "niemphongd.log")
    daemon.start()
    try:
        limits = Path(f"/proc/{daemon.process.pid}/limits").read_text()
        status = os.stat(f"/proc/{daemon.process.pid}")
    finally:
        daemon.stop()

    core_line = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core_line.split()[4:6] == ["0", "0"]
    # A non-dumpable process's /proc entries belong to root, whoever runs it.
    assert status.st_uid == 0


def _scrape(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _wait_for_seal_in_flight(metrics_url: str, client: subprocess.Popen[str]) -> None:
    """Wait until the daemon's metrics show a Seal call running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.poll() is not None:
            return
        if 'niemphong_rpc_in_flight{rpc="EnvelopeService/Seal"} 1.0' in _scrape(metrics_url):
            return
        time.sleep(0.01)
    raise AssertionError("no Seal call started")
