"""Two niemphongd processes on one PostgreSQL database and one SoftHSM2 token, as behind a load balancer.

The environment is made as a user would make it: ``niemphong dev init A
--postgres DSN`` and ``niemphong dev init B --join A``. The module starts its
own PostgreSQL cluster, because one test stops the database server, and the
daemons reach it over TCP on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import (
    BIN,
    DaemonProcess,
    DevEnvironment,
    dev_init,
    error_reason,
    open_bytes,
    run_niemphong,
    seal_bytes,
    start_cluster,
)
from grpc_health.v1 import health_pb2

from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

PLAINTEXT = "Báo cáo tuần, bản quét thử nghiệm. ".encode() * 2000


@dataclass
class Pair:
    cluster: Any
    a: DevEnvironment
    b: DevEnvironment
    daemon_a: DaemonProcess
    daemon_b: DaemonProcess


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    cluster = start_cluster()
    root = tmp_path_factory.mktemp("two")
    try:
        # Over TCP to 127.0.0.1, as daemons on several hosts would reach their database.
        a = dev_init(root / "a", "--postgres", cluster.create_database(tcp=True))
        joined = run_niemphong("dev", "init", str(root / "b"), "--join", str(a.root))
        assert joined.returncode == 0, joined.stderr
        with (root / "b" / "niemphongd.toml").open("rb") as handle:
            # Daemon B has its own configuration and socket; identities stay A's.
            b = DevEnvironment(a.root, tomllib.load(handle))
        daemon_a = DaemonProcess(a, root / "a.log")
        daemon_b = DaemonProcess(
            b, root / "b.log", [str(BIN / "niemphongd"), "--config", str(root / "b" / "niemphongd.toml")],
        )
        daemon_a.start()
        daemon_b.start()
        yield Pair(cluster, a, b, daemon_a, daemon_b)
        for daemon in (daemon_a, daemon_b):
            if daemon.process is not None and daemon.process.poll() is None:
                assert daemon.stop() == 0, daemon.log()
    finally:
        cluster.stop()


def request_access(env: DevEnvironment, artefact_id: str, viewer: str = "viewer") -> str:
    # The deadline is above the daemon's wait for a database connection.
    with env.channel(viewer) as channel:
        return pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=artefact_id, purpose="kiểm tra"), timeout=30).request_id


def approve(env: DevEnvironment, request_id: str, approver: str = "approver-1") -> pb.AccessRequest:
    with env.channel(approver) as channel:
        return pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request_id), timeout=10)


def test_two_daemons_share_config_but_not_socket(pair: Pair) -> None:
    assert pair.a.config["server"]["unix_socket"] != pair.b.config["server"]["unix_socket"]
    assert pair.a.config["audit"]["path"] != pair.b.config["audit"]["path"]
    assert pair.a.config["state"] == pair.b.config["state"]
    assert pair.a.config["token"] == pair.b.config["token"]


def test_approved_through_a_opened_through_b(pair: Pair) -> None:
    envelope, summary = seal_bytes(pair.a, PLAINTEXT, level=pb.LEVEL_MAT)
    request_id = request_access(pair.b, summary.artefact_id)
    approved = approve(pair.a, request_id)

    assert approved.state == pb.REQUEST_STATE_APPROVED
    assert open_bytes(pair.b, envelope, request_id=request_id) == PLAINTEXT


def test_opens_counted_across_daemons(pair: Pair) -> None:
    # A Mật grant of the development policy allows three opens in all, whichever daemon serves them.
    envelope, summary = seal_bytes(pair.b, PLAINTEXT, level=pb.LEVEL_MAT)
    request_id = request_access(pair.a, summary.artefact_id)
    approve(pair.b, request_id)

    for env in (pair.a, pair.b, pair.a):
        assert open_bytes(env, envelope, request_id=request_id) == PLAINTEXT
    with pytest.raises(grpc.RpcError) as excinfo:
        open_bytes(pair.b, envelope, request_id=request_id)
    assert error_reason(excinfo.value) == "NOT_APPROVED"


def test_second_approval_on_other_daemon_grants_once(pair: Pair) -> None:
    # Tối mật needs two approvals; they arrive at different daemons at the same moment.
    envelope, summary = seal_bytes(pair.a, PLAINTEXT, level=pb.LEVEL_TOI_MAT)
    request_id = request_access(pair.a, summary.artefact_id)
    outcomes: list[Any] = []

    def run(env: DevEnvironment, approver: str) -> None:
        try:
            outcomes.append(approve(env, request_id, approver))
        except grpc.RpcError as error:
            outcomes.append(error)

    threads = [
        threading.Thread(target=run, args=(pair.a, "approver-1")),
        threading.Thread(target=run, args=(pair.b, "approver-2")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert all(isinstance(outcome, pb.AccessRequest) for outcome in outcomes), outcomes
    assert sorted(outcome.state for outcome in outcomes) == [pb.REQUEST_STATE_PENDING, pb.REQUEST_STATE_APPROVED]
    assert open_bytes(pair.b, envelope, request_id=request_id) == PLAINTEXT
    with pytest.raises(grpc.RpcError) as excinfo:
        open_bytes(pair.a, envelope, request_id=request_id)
    assert error_reason(excinfo.value) == "NOT_APPROVED"


def test_sigkill_a_loses_nothing_seen(pair: Pair) -> None:
    # A client seals and requests access through A without pause; A is killed
    # in the middle. Everything the client saw succeed must be there through B.
    sealed: list[tuple[bytes, str]] = []
    requested: list[tuple[bytes, str]] = []
    stop = threading.Event()

    def work() -> None:
        index = 0
        while not stop.is_set():
            index += 1
            try:
                envelope, summary = seal_bytes(pair.a, PLAINTEXT + str(index).encode(), level=pb.LEVEL_MAT)
                sealed.append((envelope, summary.artefact_id))
                requested.append((envelope, request_access(pair.a, summary.artefact_id)))
            except grpc.RpcError:
                return

    client = threading.Thread(target=work)
    client.start()
    deadline = time.monotonic() + 60
    while len(requested) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pair.daemon_a.process is not None
    pair.daemon_a.process.send_signal(signal.SIGKILL)
    pair.daemon_a.process.wait(30)
    stop.set()
    client.join(60)

    assert len(requested) >= 3
    for envelope, request_id in requested:
        assert approve(pair.b, request_id).state == pb.REQUEST_STATE_APPROVED
        plain = open_bytes(pair.b, envelope, request_id=request_id)
        assert plain.startswith(PLAINTEXT)
    # A seal the client saw complete is registered even if its request never was.
    for envelope, artefact_id in sealed[len(requested):]:
        request_id = request_access(pair.b, artefact_id)
        approve(pair.b, request_id)
        assert open_bytes(pair.b, envelope, request_id=request_id).startswith(PLAINTEXT)

    # A comes back on its own audit log and serves the same state.
    pair.daemon_a.start()
    envelope, request_id = requested[0]
    assert open_bytes(pair.a, envelope, request_id=request_id).startswith(PLAINTEXT)


def test_audit_logs_verify_and_merge(pair: Pair, tmp_path: Path) -> None:
    envelope, summary = seal_bytes(pair.b, PLAINTEXT, level=pb.LEVEL_MAT)
    request_id = request_access(pair.a, summary.artefact_id)
    approve(pair.b, request_id)
    merged = tmp_path / "merged.jsonl"

    result = subprocess.run(
        [str(BIN / "niemphongd"), "audit", "verify", "--config", str(pair.a.root / "niemphongd.toml"),
         "--log", pair.a.config["audit"]["path"], "--log", pair.b.config["audit"]["path"],
         "--merged-out", str(merged)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SOFTHSM2_CONF": ""},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ordered: every log's records fit one order" in result.stdout
    import json

    records = [json.loads(line) for line in merged.read_text().splitlines()]
    numbers = [record["state_seq"] for record in records if "state_seq" in record]
    assert numbers == sorted(numbers)
    assert len(numbers) == len(set(numbers))
    assert {record["log_id"] for record in records} == {
        json.loads(Path(path).open().readline())["log_id"]
        for path in (pair.a.config["audit"]["path"], pair.b.config["audit"]["path"])
    }
    # The request made through A and its approval through B are in that order.
    mine = [record["operation"] for record in records
            if record.get("facts", {}).get("access_request_id") == request_id]
    assert mine[:2] == ["AccessService/RequestAccess", "AccessService/Approve"]


def test_database_outage_unavailable_then_recovers(pair: Pair) -> None:
    envelope, summary = seal_bytes(pair.a, PLAINTEXT, level=pb.LEVEL_MAT)
    pair.cluster.halt()
    try:
        with pytest.raises(grpc.RpcError) as excinfo:
            request_access(pair.b, summary.artefact_id)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_reason(excinfo.value) == "STATE_UNAVAILABLE"
        # A seal cannot be registered, so the client never gets a summary for it.
        with pytest.raises(grpc.RpcError) as excinfo:
            seal_bytes(pair.a, PLAINTEXT, level=pb.LEVEL_MAT)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
        assert pair.daemon_a.wait_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        assert pair.daemon_b.wait_health(health_pb2.HealthCheckResponse.NOT_SERVING)
    finally:
        pair.cluster.resume()

    assert pair.daemon_a.wait_health(health_pb2.HealthCheckResponse.SERVING)
    assert pair.daemon_b.wait_health(health_pb2.HealthCheckResponse.SERVING)
    request_id = request_access(pair.b, summary.artefact_id)
    approve(pair.a, request_id)
    assert open_bytes(pair.b, envelope, request_id=request_id) == PLAINTEXT
