"""The audit log file against the real SoftHSM2 token: order, checkpoints, restarts and faults.

Faults are injected by wrapping the real file calls and the real token key:
a write that stops halfway with ENOSPC, an fdatasync that fails with EIO, a
token that is gone. Everything else is the real file and the real token.
"""

from __future__ import annotations

import errno
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from conftest import DevEnvironment
from niemphong.daemon.audit import entries
from niemphong.daemon.audit.log import RECOVERY_INTERVAL_SECONDS, AuditLog, AuditLogError, AuditUnavailable, LogFile
from niemphong.daemon.audit.token_key import Anchor, TokenCheckpointKey
from niemphong.daemon.audit.verify import RECOVERED_AFTER_CRASH, read_log_lines, verify_log
from niemphong.daemon.config import AuditSettings, load_config, read_pin
from niemphong.daemon.errors import TokenUnavailable
from niemphong.daemon.hsm import Pkcs11Token


@pytest.fixture(scope="module")
def token(dev_env: DevEnvironment) -> Iterator[Pkcs11Token]:
    config = load_config(dev_env.root / "niemphongd.toml")
    opened = Pkcs11Token(config.token, read_pin(config.token))
    yield opened
    opened.close()


@pytest.fixture
def key(token: Pkcs11Token) -> TokenCheckpointKey:
    return TokenCheckpointKey(token)


class Faults:
    """Switches shared by every LogFile a log opens, including after recovery reopens it."""

    def __init__(self) -> None:
        self.write_error: int | None = None
        self.sync_error: int | None = None


class FaultyFile(LogFile):
    def __init__(self, path: Path, faults: Faults) -> None:
        super().__init__(path)
        self.faults = faults

    def append(self, data: bytes) -> None:
        if self.faults.write_error is not None:
            # A short write, then the error: what a full disk does to a large append.
            super().append(data[: len(data) // 2])
            raise OSError(self.faults.write_error, "injected write failure")
        super().append(data)

    def sync(self) -> None:
        if self.faults.sync_error is not None:
            raise OSError(self.faults.sync_error, "injected fdatasync failure")
        super().sync()


class FaultyKey:
    """The real token key, except that signing fails while ``gone`` is set."""

    def __init__(self, real: TokenCheckpointKey) -> None:
        self.real = real
        self.label = real.label
        self.gone = False

    def sign(self, data: bytes) -> bytes:
        if self.gone:
            raise TokenUnavailable("injected: token removed")
        return self.real.sign(data)

    def verify(self, data: bytes, mac: bytes) -> bool:
        return self.real.verify(data, mac)

    def anchors(self) -> list[Anchor]:
        return self.real.anchors()

    def load_anchor(self, log_id: str) -> Anchor | None:
        return self.real.load_anchor(log_id)

    def save_anchor(self, anchor: Anchor) -> None:
        self.real.save_anchor(anchor)


def open_log(path: Path, key: object, *, records: int = 100, seconds: float = 3600, faults: Faults | None = None) -> AuditLog:
    factory = (lambda p: FaultyFile(p, faults)) if faults is not None else LogFile
    audit_log = AuditLog(AuditSettings(path, records, seconds), key, file_factory=factory)  # type: ignore[arg-type]
    audit_log.open()
    return audit_log


def record(number: int) -> dict[str, object]:
    return {
        "request_id": f"{number:016x}",
        "identity": "tester",
        "roles": ["scanner"],
        "operation": "EnvelopeService/Seal",
        "decision": "allowed",
        "status": "OK",
        "reason": "",
        "facts": {"number": number},
    }


def stored(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def crash(audit_log: AuditLog) -> None:
    """Leave the log as a killed process would: no shutdown checkpoint, file closed."""
    audit_log._stopping.set()
    audit_log._open = False
    audit_log._file.close()


def wait_for_recovery(audit_log: AuditLog) -> bool:
    deadline = time.monotonic() + 5 * RECOVERY_INTERVAL_SECONDS
    while time.monotonic() < deadline:
        if audit_log.writable():
            return True
        time.sleep(0.1)
    return False


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_audit_log_concurrent_appends_one_total_order(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key, records=7)
    threads = [
        threading.Thread(target=lambda base=base: [audit_log.append(record(base + n)) for n in range(25)])
        for base in range(0, 800, 100)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    live = audit_log.live_head()

    report = verify_log(read_log_lines(path), key, anchor=key.load_anchor(audit_log.log_id), live=live)
    found = stored(path)
    audit_log.close()

    assert report.intact, report.problem
    assert [entry["seq"] for entry in found] == list(range(1, len(found) + 1))
    assert sorted(entry["facts"]["number"] for entry in found if entry["kind"] == "record") == sorted(
        base + n for base in range(0, 800, 100) for n in range(25)
    )


def test_audit_log_checkpoint_every_n_records(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key, records=5)
    for number in range(12):
        audit_log.append(record(number))

    reasons = [entry["reason"] for entry in stored(path) if entry["kind"] == "checkpoint"]
    audit_log.close()

    assert reasons == ["create", "records", "records"]


def test_audit_log_checkpoint_after_interval(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key, seconds=1)
    audit_log.append(record(1))

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and stored(path)[-1]["kind"] != "checkpoint":
        time.sleep(0.1)
    last = stored(path)[-1]
    audit_log.close()

    assert last["kind"] == "checkpoint"
    assert last["reason"] == "interval"


def test_audit_log_checkpoint_mac_verifies_in_token(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key)
    audit_log.close()
    checkpoint = stored(path)[-1]

    assert checkpoint["reason"] == "shutdown"
    assert key.verify(entries.mac_input(checkpoint), bytes.fromhex(checkpoint["mac"]))
    assert not key.verify(entries.mac_input({**checkpoint, "seq": 99}), bytes.fromhex(checkpoint["mac"]))


def test_audit_log_restart_continues_chain(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    first = open_log(path, key)
    first.append(record(1))
    first.close()

    second = open_log(path, key)
    second.append(record(2))
    second.close()
    found = stored(path)
    report = verify_log(read_log_lines(path), key, anchor=key.load_anchor(found[0]["log_id"]))

    assert report.intact, report.problem
    assert [entry.get("reason") for entry in found if entry["kind"] == "checkpoint"] == [
        "create", "shutdown", "start", "shutdown",
    ]
    assert report.warnings == []


def test_audit_log_restart_after_crash_covers_tail(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    first = open_log(path, key)
    for number in range(3):
        first.append(record(number))
    crash(first)

    second = open_log(path, key)
    start = stored(path)[-1]
    second.close()
    report = verify_log(read_log_lines(path), key, anchor=key.load_anchor(start["log_id"]))

    assert start["reason"] == "start"
    assert start["recovered"] == {"from_seq": 2, "to_seq": 4}
    assert report.intact, report.problem
    assert [warning.kind for warning in report.warnings] == [RECOVERED_AFTER_CRASH]


def test_audit_log_torn_tail_removed_at_start(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    first = open_log(path, key)
    first.append(record(1))
    crash(first)
    with path.open("ab") as handle:
        handle.write(b'{"seq":3,"prev":"')

    second = open_log(path, key)
    second.close()
    found = stored(path)

    assert found[2]["reason"] == "start"
    assert found[2]["torn_bytes"] == len(b'{"seq":3,"prev":"')
    assert verify_log(read_log_lines(path), key).intact


def test_audit_log_cut_off_refused_at_start(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key)
    audit_log.append(record(1))
    audit_log.close()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))

    with pytest.raises(AuditLogError) as excinfo:
        open_log(path, key)

    assert "cut off" in str(excinfo.value)


def test_audit_log_missing_refused_at_start(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    open_log(path, key).close()
    path.unlink()

    with pytest.raises(AuditLogError) as excinfo:
        open_log(path, key)

    assert "missing" in str(excinfo.value)


def test_audit_log_rewritten_tail_refused_at_start(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key)
    audit_log.append(record(1))
    crash(audit_log)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1].replace(b"tester", b"intruder"))

    with pytest.raises(AuditLogError) as excinfo:
        open_log(path, key)

    assert "entry 2" in str(excinfo.value)


def test_audit_log_record_after_shutdown_refused_at_start(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = open_log(path, key)
    audit_log.append(record(1))
    audit_log.close()
    shutdown = stored(path)[-1]
    forged = {**record(2), "seq": shutdown["seq"] + 1, "prev": shutdown["hash"], "kind": "record", "time": shutdown["time"]}
    with path.open("ab") as handle:
        handle.write(entries.encode_entry(forged))

    with pytest.raises(AuditLogError) as excinfo:
        open_log(path, key)

    assert "follow the shutdown checkpoint" in str(excinfo.value)


def test_audit_log_write_failure_refuses_then_recovers(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faults = Faults()
    audit_log = open_log(path, key, faults=faults)
    audit_log.append(record(1))
    failures_before = metric("niemphong_audit_write_failures_total")

    faults.write_error = errno.ENOSPC
    with pytest.raises(AuditUnavailable):
        audit_log.append(record(2))
    writable_while_failing = audit_log.writable()
    gauge_while_failing = metric("niemphong_audit_writable")
    with pytest.raises(AuditUnavailable):
        audit_log.append(record(3))
    faults.write_error = None
    recovered = wait_for_recovery(audit_log)
    audit_log.append(record(4))
    audit_log.close()
    numbers = [entry["facts"]["number"] for entry in stored(path) if entry["kind"] == "record"]

    assert not writable_while_failing
    assert gauge_while_failing == 0
    assert metric("niemphong_audit_write_failures_total") == failures_before + 1
    assert recovered
    assert numbers == [1, 4]
    assert verify_log(read_log_lines(path), key).intact


def test_audit_log_sync_failure_leaves_no_record(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faults = Faults()
    audit_log = open_log(path, key, faults=faults)

    faults.sync_error = errno.EIO
    with pytest.raises(AuditUnavailable):
        audit_log.append(record(1))
    faults.sync_error = None
    recovered = wait_for_recovery(audit_log)
    audit_log.close()

    # The refused operation's record reached the page cache but was never
    # durable; recovery removed it.
    assert recovered
    assert [entry for entry in stored(path) if entry["kind"] == "record"] == []
    assert verify_log(read_log_lines(path), key).intact


def test_audit_log_foreign_bytes_stay_refused(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faults = Faults()
    audit_log = open_log(path, key, faults=faults)
    audit_log.append(record(1))
    original = path.read_bytes()

    with path.open("ab") as handle:
        handle.write(b'{"forged":true}\n')
    with pytest.raises(AuditUnavailable):
        audit_log.append(record(2))
    time.sleep(RECOVERY_INTERVAL_SECONDS * 1.5)
    refused_with_foreign_bytes = not audit_log.writable()
    path.write_bytes(original)
    recovered = wait_for_recovery(audit_log)
    audit_log.close()

    assert refused_with_foreign_bytes
    assert recovered
    assert b"forged" not in path.read_bytes()


def test_audit_log_token_gone_refuses_then_recovers(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faulty = FaultyKey(key)
    audit_log = open_log(path, faulty, records=2)
    audit_log.append(record(1))
    audit_log.append(record(2))

    faulty.gone = True
    with pytest.raises(AuditUnavailable):
        audit_log.append(record(3))  # needs a checkpoint first
    refused = not audit_log.writable()
    faulty.gone = False
    recovered = wait_for_recovery(audit_log)
    audit_log.append(record(4))
    audit_log.close()
    numbers = [entry["facts"]["number"] for entry in stored(path) if entry["kind"] == "record"]

    assert refused
    assert recovered
    assert numbers == [1, 2, 4]
    assert verify_log(read_log_lines(path), key).intact


def test_grouped_sync_one_fdatasync_for_group(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    syncs = []
    audit_log = open_log(path, key, faults=Faults())
    real_sync = audit_log._file.sync
    audit_log._file.sync = lambda: (syncs.append(1), real_sync())  # type: ignore[method-assign]

    with audit_log.grouped_sync():
        for number in range(1, 6):
            audit_log.append(record(number))
    audit_log._file.sync = real_sync  # type: ignore[method-assign]
    audit_log.close()
    numbers = [entry["facts"]["number"] for entry in stored(path) if entry["kind"] == "record"]

    assert len(syncs) == 1
    assert numbers == [1, 2, 3, 4, 5]
    assert verify_log(read_log_lines(path), key).intact


def test_grouped_sync_failure_drops_group_then_recovers(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faults = Faults()
    audit_log = open_log(path, key, faults=faults)
    audit_log.append(record(1))

    with pytest.raises(AuditUnavailable):
        with audit_log.grouped_sync():
            audit_log.append(record(2))
            audit_log.append(record(3))
            faults.sync_error = errno.EIO
    faults.sync_error = None
    recovered = wait_for_recovery(audit_log)
    audit_log.append(record(4))
    audit_log.close()
    numbers = [entry["facts"]["number"] for entry in stored(path) if entry["kind"] == "record"]

    assert recovered
    assert numbers == [1, 4]
    assert verify_log(read_log_lines(path), key).intact


def test_grouped_sync_write_failure_fails_whole_group(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faults = Faults()
    audit_log = open_log(path, key, faults=faults)

    with pytest.raises(AuditUnavailable):
        with audit_log.grouped_sync():
            audit_log.append(record(1))
            faults.write_error = errno.ENOSPC
            with pytest.raises(AuditUnavailable):
                audit_log.append(record(2))
            faults.write_error = None
            with pytest.raises(AuditUnavailable):
                audit_log.append(record(3))
    recovered = wait_for_recovery(audit_log)
    audit_log.append(record(4))
    audit_log.close()
    numbers = [entry["facts"]["number"] for entry in stored(path) if entry["kind"] == "record"]

    assert recovered
    assert numbers == [4]
    assert verify_log(read_log_lines(path), key).intact


def test_grouped_sync_checkpoint_inside_group(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    faults = Faults()
    audit_log = open_log(path, key, records=3, faults=faults)

    with pytest.raises(AuditUnavailable):
        with audit_log.grouped_sync():
            for number in range(1, 6):
                audit_log.append(record(number))
            faults.sync_error = errno.EIO
    faults.sync_error = None
    recovered = wait_for_recovery(audit_log)
    audit_log.close()
    numbers = [entry["facts"]["number"] for entry in stored(path) if entry["kind"] == "record"]

    # The checkpoint after record 3 made records 1 to 3 durable; 4 and 5 were not.
    assert recovered
    assert numbers == [1, 2, 3]
    assert verify_log(read_log_lines(path), key).intact


def test_audit_log_records_carry_state_seq(tmp_path: Path, key: TokenCheckpointKey) -> None:
    numbers = iter([41, 42, 57])
    audit_log = AuditLog(AuditSettings(tmp_path / "audit.jsonl", 100, 3600), key, order_source=lambda: next(numbers))
    audit_log.open()
    for number in range(3):
        audit_log.append(record(number))
    audit_log.close()

    records = [entry for entry in stored(tmp_path / "audit.jsonl") if entry["kind"] == "record"]
    assert [entry["state_seq"] for entry in records] == [41, 42, 57]
    assert verify_log(read_log_lines(tmp_path / "audit.jsonl"), key).problem is None


def test_audit_log_record_kept_without_state_seq(tmp_path: Path, key: TokenCheckpointKey) -> None:
    def database_down() -> int:
        raise ConnectionError("state database unreachable")

    audit_log = AuditLog(AuditSettings(tmp_path / "audit.jsonl", 100, 3600), key, order_source=database_down)
    audit_log.open()
    audit_log.append(record(1))
    audit_log.close()

    records = [entry for entry in stored(tmp_path / "audit.jsonl") if entry["kind"] == "record"]
    assert len(records) == 1
    assert "state_seq" not in records[0]
