"""Token faults: clean refusals, NOT_SERVING, and recovery without a restart.

Two kinds of fault, both on a real SoftHSM2 token and a real daemon process:

- a fault-injection wrapper around the daemon's python-pkcs11 objects
  (faulty_niemphongd.py) fails one call at each point of Seal and Open;
- the token's folder is moved away and back, which SoftHSM2 sees as the
  token disappearing.
"""

from __future__ import annotations

import json
import subprocess
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from conftest import (
    DaemonProcess,
    DevEnvironment,
    dev_init,
    error_reason,
    grant_access,
    open_bytes,
    seal_bytes,
)
from niemphong.v1 import niemphong_pb2 as pb

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FAULTY_DAEMON = Path(__file__).with_name("faulty_niemphongd.py")

# Every PKCS#11 call that Seal and Open make, in the order they make them.
SEAL_POINTS = ("get_key", "get_attribute:KEY_TYPE", "generate_random", "create_object", "wrap_key", "destroy")
OPEN_POINTS = ("get_key", "get_attribute:SENSITIVE", "unwrap_key", "get_attribute:VALUE", "destroy")
# The same for a level in in-token mode (Tối mật in this environment).
IN_TOKEN_SEAL_POINTS = (
    "open", "get_key", "generate_key", "wrap_key", "derive_key", "get_attribute:VALUE", "destroy", "encrypt",
)
IN_TOKEN_OPEN_POINTS = ("open", "unwrap_key", "derive_key", "decrypt")

PLAINTEXT = os.urandom(200_000)


def _fast_retry(env: DevEnvironment) -> None:
    config = env.root / "niemphongd.toml"
    text = config.read_text()
    config.write_text(text.replace("[token]\n", "[token]\nretry_max_seconds = 1\n", 1))


@pytest.fixture(scope="module")
def fault_env(tmp_path_factory: pytest.TempPathFactory) -> DevEnvironment:
    env = dev_init(tmp_path_factory.mktemp("faults"))
    _fast_retry(env)
    policy = env.root / "policy.toml"
    policy.write_text(policy.read_text().replace("[levels.toi-mat]\n", '[levels.toi-mat]\nencryption = "token"\n', 1))
    return env


class FaultyDaemon(DaemonProcess):
    def __init__(self, env: DevEnvironment, work: Path) -> None:
        self.plan = work / "plan.json"
        self.events = work / "events.jsonl"
        self.plan.write_text("{}")
        self.events.write_text("")
        super().__init__(env, work / "niemphongd.log", [
            sys.executable, str(FAULTY_DAEMON), "--config", str(env.root / "niemphongd.toml"),
            "--plan", str(self.plan), "--events", str(self.events),
        ])

    def set_plan(self, **plan: object) -> None:
        scratch = self.plan.with_suffix(".tmp")
        scratch.write_text(json.dumps(plan))
        os.replace(scratch, self.plan)

    def read_events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.events.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def faulty(fault_env: DevEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyDaemon]:
    process = FaultyDaemon(fault_env, tmp_path_factory.mktemp("faulty"))
    process.start()
    yield process
    assert process.stop() == 0, process.log()


def _assert_token_unavailable(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    assert error_reason(error) == "TOKEN_UNAVAILABLE"


def _check_refused_then_recovered(daemon: FaultyDaemon, point: str) -> None:
    injected = [event for event in daemon.read_events() if event["event"] == "injected"]
    assert injected and injected[-1]["point"] == point, "the fault was never reached"
    assert daemon.wait_health(NOT_SERVING, timeout=10), daemon.log()

    daemon.set_plan()
    assert daemon.wait_health(SERVING, timeout=30), daemon.log()


def _violations(daemon: FaultyDaemon) -> list[dict[str, object]]:
    return [event for event in daemon.read_events() if event["event"] == "violation"]


@pytest.mark.parametrize("point", SEAL_POINTS)
def test_seal_fault_refused_then_recovered(faulty: FaultyDaemon, fault_env: DevEnvironment, point: str) -> None:
    faulty.set_plan(fail=[point], then_down=True)

    with pytest.raises(grpc.RpcError) as caught:
        seal_bytes(fault_env, PLAINTEXT)

    _assert_token_unavailable(caught.value)
    _check_refused_then_recovered(faulty, point)
    envelope, summary = seal_bytes(fault_env, PLAINTEXT)
    grant_access(fault_env, summary.artefact_id, ["approver-1"])
    assert open_bytes(fault_env, envelope) == PLAINTEXT
    assert _violations(faulty) == []


@pytest.mark.parametrize("point", OPEN_POINTS)
def test_open_fault_refused_then_recovered(faulty: FaultyDaemon, fault_env: DevEnvironment, point: str) -> None:
    envelope, summary = seal_bytes(fault_env, PLAINTEXT)
    grant_access(fault_env, summary.artefact_id, ["approver-1"])
    received = bytearray()
    faulty.set_plan(fail=[point], then_down=True)

    with pytest.raises(grpc.RpcError) as caught:
        open_bytes(fault_env, envelope, received=received)

    _assert_token_unavailable(caught.value)
    assert received == b""
    _check_refused_then_recovered(faulty, point)
    assert open_bytes(fault_env, envelope) == PLAINTEXT
    assert _violations(faulty) == []


@pytest.mark.parametrize("point", IN_TOKEN_SEAL_POINTS)
def test_in_token_seal_fault_refused_then_recovered(faulty: FaultyDaemon, fault_env: DevEnvironment,
                                                     point: str) -> None:
    faulty.set_plan(fail=[point], then_down=True)

    with pytest.raises(grpc.RpcError) as caught:
        seal_bytes(fault_env, PLAINTEXT, level=pb.LEVEL_TOI_MAT)

    _assert_token_unavailable(caught.value)
    _check_refused_then_recovered(faulty, point)
    envelope, summary = seal_bytes(fault_env, PLAINTEXT, level=pb.LEVEL_TOI_MAT)
    grant_access(fault_env, summary.artefact_id, ["approver-1", "approver-2"])
    assert open_bytes(fault_env, envelope) == PLAINTEXT
    assert _violations(faulty) == []


@pytest.mark.parametrize("point", IN_TOKEN_OPEN_POINTS)
def test_in_token_open_fault_refused_then_recovered(faulty: FaultyDaemon, fault_env: DevEnvironment,
                                                     point: str) -> None:
    envelope, summary = seal_bytes(fault_env, PLAINTEXT, level=pb.LEVEL_TOI_MAT)
    grant_access(fault_env, summary.artefact_id, ["approver-1", "approver-2"])
    received = bytearray()
    faulty.set_plan(fail=[point], then_down=True)

    with pytest.raises(grpc.RpcError) as caught:
        open_bytes(fault_env, envelope, received=received)

    _assert_token_unavailable(caught.value)
    assert received == b""
    _check_refused_then_recovered(faulty, point)
    if point == "decrypt":
        # The grant's single open is counted once the header verified,
        # before any segment is decrypted, so the retry needs a new grant.
        grant_access(fault_env, summary.artefact_id, ["approver-1", "approver-2"])
    assert open_bytes(fault_env, envelope) == PLAINTEXT
    assert _violations(faulty) == []


def test_token_down_refuses_fast_with_exit_6(faulty: FaultyDaemon, fault_env: DevEnvironment,
                                              tmp_path: Path) -> None:
    faulty.set_plan(down=True)
    # The periodic check, or the first call, notices the token is gone.
    with pytest.raises(grpc.RpcError):
        seal_bytes(fault_env, PLAINTEXT)
    assert faulty.wait_health(NOT_SERVING, timeout=10)
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(PLAINTEXT)

    started = time.monotonic()
    result = fault_env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "7/UBND",
                           "--issued", "2025-01-02", "--out", str(tmp_path / "scan.npe"), lang="en_US.UTF-8")
    elapsed = time.monotonic() - started

    assert result.returncode == 6, result.stderr
    assert not (tmp_path / "scan.npe").exists()
    assert elapsed < 10
    faulty.set_plan()
    assert faulty.wait_health(SERVING, timeout=30), faulty.log()
    assert seal_bytes(fault_env, PLAINTEXT)[1].plaintext_bytes == len(PLAINTEXT)


def test_recovery_logged_without_pin(faulty: FaultyDaemon, fault_env: DevEnvironment) -> None:
    pin = Path(fault_env.config["token"]["pin_file"]).read_text().strip()
    faulty.set_plan(down=True)
    assert faulty.wait_health(NOT_SERVING, timeout=15), faulty.log()
    faulty.set_plan()
    assert faulty.wait_health(SERVING, timeout=30), faulty.log()
    log = faulty.log()

    assert "token recovery attempt" in log
    assert "is back after" in log
    assert pin not in log


# Moving the token folder away and back ----------------------------------------


@pytest.fixture
def folder_daemon(tmp_path: Path) -> Iterator[tuple[DevEnvironment, DaemonProcess]]:
    env = dev_init(tmp_path / "env")
    _fast_retry(env)
    process = DaemonProcess(env, tmp_path / "niemphongd.log")
    process.start()
    yield env, process
    assert process.stop() == 0, process.log()


def _token_folder(env: DevEnvironment) -> Path:
    for line in (env.root / "softhsm2.conf").read_text().splitlines():
        if line.startswith("directories.tokendir"):
            return Path(line.split("=", 1)[1].strip())
    raise AssertionError("softhsm2.conf names no token folder")


def test_token_folder_moved_away_and_back(folder_daemon: tuple[DevEnvironment, DaemonProcess],
                                          tmp_path: Path) -> None:
    env, process = folder_daemon
    envelope, summary = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
    grant_access(env, summary.artefact_id, ["approver-1"])
    folder = _token_folder(env)
    away = folder.with_name(folder.name + ".away")

    folder.rename(away)
    try:
        with pytest.raises(grpc.RpcError) as sealing:
            seal_bytes(env, PLAINTEXT)
        with pytest.raises(grpc.RpcError) as opening:
            open_bytes(env, envelope)
        assert process.wait_health(NOT_SERVING, timeout=15), process.log()
        # A few recovery attempts fail while the folder is away.
        time.sleep(2)
        assert process.health() == NOT_SERVING
    finally:
        away.rename(folder)

    _assert_token_unavailable(sealing.value)
    _assert_token_unavailable(opening.value)
    assert process.wait_health(SERVING, timeout=30), process.log()
    assert open_bytes(env, envelope) == PLAINTEXT
    sealed, _ = seal_bytes(env, PLAINTEXT)
    assert len(sealed) > len(PLAINTEXT)
    assert process.process is not None and process.process.poll() is None


# A busy token is not a faulty one -----------------------------------------------

_BUSY_SCRIPT = """
import contextlib, sys
from niemphong.daemon import hsm
from niemphong.daemon.config import load_config
from niemphong.daemon.errors import TokenBusy
from niemphong.daemon.token_supervisor import TokenSupervisor

hsm.SESSION_WAIT_SECONDS = 0.5
config = load_config(sys.argv[1])
supervisor = TokenSupervisor(config.token)
token = supervisor.current()
with contextlib.ExitStack() as stack:
    for _ in range(config.token.sessions):
        stack.enter_context(token.session())
    try:
        supervisor.new_data_key("niemphong-mat", 1)
    except TokenBusy:
        print("busy")
print("available", supervisor.available, "faults", supervisor.faults)
supervisor.new_data_key("niemphong-mat", 1)
print("works")
supervisor.close()
"""


def test_busy_pool_is_not_a_fault(dev_env: DevEnvironment) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BUSY_SCRIPT, str(dev_env.root / "niemphongd.toml")],
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["busy", "available", "True", "faults", "0", "works"]
