"""Tampering with a running daemon's audit log: `niemphong audit verify` names what was done.

Each test edits the live log in place, as someone with access to the custody
host's disk could, runs the auditor's command, and puts the bytes back. The
daemon has its own dev environment, with a checkpoint every four records.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

import audit_tamper as tamper
from conftest import BIN, DaemonProcess, DevEnvironment, dev_init, error_reason, grant_access, open_bytes, seal_bytes
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> DevEnvironment:
    env = dev_init(tmp_path_factory.mktemp("npt"))
    config = env.root / "niemphongd.toml"
    config.write_text(config.read_text().replace("checkpoint_records = 100", "checkpoint_records = 4"))
    return env


@pytest.fixture(scope="module")
def running(env: DevEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    process = DaemonProcess(env, tmp_path_factory.mktemp("logs") / "niemphongd.log")
    process.start()
    for number in range(3):
        sealed, summary = seal_bytes(env, f"tài liệu {number}".encode(), doc_number=f"{number}/UBND")
    grant_access(env, summary.artefact_id, ["approver-1"])
    open_bytes(env, sealed)
    yield process
    if process.process is not None and process.process.poll() is None:
        assert process.stop() == 0, process.log()


def log_path(env: DevEnvironment) -> Path:
    return Path(env.config["audit"]["path"])


def wait_until_recording(env: DevEnvironment) -> None:
    """Wait until the daemon accepts audited calls again after a tampered log was put back."""
    deadline = time.monotonic() + 10
    while True:
        with env.channel("operator") as channel:
            try:
                pb_grpc.EnvelopeServiceStub(channel).Inspect(pb.InspectRequest(), timeout=5)
            except grpc.RpcError as error:
                if error_reason(error) != "AUDIT_UNAVAILABLE":
                    return
        if time.monotonic() > deadline:
            raise AssertionError("the daemon did not resume writing its audit log")
        time.sleep(0.2)


@contextlib.contextmanager
def tampered(env: DevEnvironment, change: Callable[[list[bytes]], list[bytes]]) -> Iterator[list[bytes]]:
    """Apply ``change`` to the live log in place; afterwards put the original bytes back."""
    path = log_path(env)
    original = path.read_bytes()
    lines = tamper.read_lines(path)
    changed = b"".join(change(lines))
    tamper.write_in_place(path, changed)
    try:
        yield lines
    finally:
        current = path.read_bytes()
        # Keep what the daemon appended after the change, if it could append.
        appended = current[len(changed):] if current.startswith(changed) else b""
        tamper.write_in_place(path, original + appended)
        wait_until_recording(env)


def verify(env: DevEnvironment, *arguments: str) -> subprocess.CompletedProcess[str]:
    return env.cli("auditor", "audit", "verify", *arguments)


def problem(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 5, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["intact"] is False
    return report["problem"]


def test_tamper_untouched_log_verifies(running: DaemonProcess, env: DevEnvironment) -> None:
    result = verify(env, "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["intact"] is True
    assert report["problem"] is None
    # The creation checkpoint, and one after the first four records.
    assert report["checkpoints"] >= 2


def test_tamper_edited_record_named(running: DaemonProcess, env: DevEnvironment) -> None:
    seq = tamper.record_seqs(tamper.read_lines(log_path(env)))[2]

    with tampered(env, lambda lines: tamper.edit_record(lines, seq, rehash=False)):
        text = verify(env)
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"], found["line"]) == ("edited", seq, seq)
    assert text.returncode == 5
    assert f"Mục số {seq} (dòng {seq}) đã bị sửa" in text.stdout
    assert "báo ngay cho người đứng đầu cơ quan" in text.stdout


def test_tamper_edited_and_rehashed_record_named(running: DaemonProcess, env: DevEnvironment) -> None:
    seq = tamper.record_seqs(tamper.read_lines(log_path(env)))[1]

    with tampered(env, lambda lines: tamper.edit_record(lines, seq, rehash=True)):
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"]) == ("edited", seq)


def test_tamper_removed_record_named(running: DaemonProcess, env: DevEnvironment) -> None:
    seq = tamper.record_seqs(tamper.read_lines(log_path(env)))[3]

    with tampered(env, lambda lines: tamper.remove(lines, seq)):
        text = verify(env, "--lang", "en")
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"], found["end_seq"]) == ("removed", seq, seq)
    assert f"Entries {seq} to {seq} were removed" in text.stdout


def test_tamper_reordered_records_named(running: DaemonProcess, env: DevEnvironment) -> None:
    first, second = tamper.record_seqs(tamper.read_lines(log_path(env)))[1:3]
    assert second == first + 1

    with tampered(env, lambda lines: tamper.swap(lines, first, second)):
        text = verify(env)
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"], found["expected_seq"], found["line"]) == ("reordered", second, first, first)
    assert f"dòng {first} chứa mục số {second}" in text.stdout


def test_tamper_cut_off_tail_named(running: DaemonProcess, env: DevEnvironment) -> None:
    last = tamper.entry_of(tamper.read_lines(log_path(env))[-1])["seq"]

    with tampered(env, lambda lines: lines[:-3]):
        text = verify(env)
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"], found["end_seq"]) == ("truncated", last - 2, last)
    assert f"thiếu các mục từ số {last - 2} đến số {last}" in text.stdout


def test_tamper_cut_inside_entry_named(running: DaemonProcess, env: DevEnvironment) -> None:
    last = tamper.entry_of(tamper.read_lines(log_path(env))[-1])["seq"]

    with tampered(env, lambda lines: lines[:-1] + [lines[-1][:30]]):
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"], found["line"]) == ("truncated", last, last)


def test_tamper_forged_tail_named(running: DaemonProcess, env: DevEnvironment) -> None:
    last = tamper.entry_of(tamper.read_lines(log_path(env))[-1])["seq"]

    with tampered(env, lambda lines: tamper.forge_tail(lines, 2)):
        text = verify(env)
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"], found["end_seq"]) == ("forged_tail", last + 1, last + 2)
    assert f"từ mục số {last + 1} (dòng {last + 1}) trở đi không phải do niemphongd ghi" in text.stdout


def test_tamper_rewritten_chain_named(running: DaemonProcess, env: DevEnvironment) -> None:
    lines = tamper.read_lines(log_path(env))
    seq = tamper.record_seqs(lines)[0]
    next_checkpoint = next(
        tamper.entry_of(line)["seq"] for line in lines
        if tamper.entry_of(line)["kind"] == "checkpoint" and tamper.entry_of(line)["seq"] > seq
    )

    with tampered(env, lambda lines: tamper.rewrite_chain(lines, seq)):
        found = problem(verify(env, "--json"))

    assert (found["kind"], found["seq"]) == ("forged_checkpoint", next_checkpoint)
    assert found["expected_seq"] <= seq


def test_tamper_log_recovers_after_restore(running: DaemonProcess, env: DevEnvironment) -> None:
    sealed, summary = seal_bytes(env, b"sau khi phuc hoi")
    result = verify(env, "--json")

    assert summary.artefact_id
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["intact"] is True


def niemphongd(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "niemphongd"), *arguments], capture_output=True, text=True, timeout=120)


def test_tamper_offline_verify_after_stop(running: DaemonProcess, env: DevEnvironment) -> None:
    config = str(env.root / "niemphongd.toml")
    assert running.stop() == 0, running.log()
    path = log_path(env)
    original = path.read_bytes()

    intact = niemphongd("audit", "verify", "--config", config)
    path.write_bytes(b"".join(tamper.forge_tail(tamper.read_lines(path), 1)))
    forged = niemphongd("audit", "verify", "--config", config, "--json")
    refused_start = niemphongd("--config", config)
    path.write_bytes(original)

    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "intact" in intact.stdout
    assert forged.returncode == 5, forged.stdout + forged.stderr
    assert json.loads(forged.stdout)["problem"]["kind"] == "FORGED_TAIL"
    # A log whose tail does not follow its last checkpoint is never continued.
    assert refused_start.returncode == 6
    assert "audit log unavailable" in refused_start.stderr
