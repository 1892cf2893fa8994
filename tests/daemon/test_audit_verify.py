"""Verification names the first bad entry and tells each kind of tampering apart.

The logs are real: written by AuditLog with checkpoints whose MACs come from
the SoftHSM2 token, then tampered with as an attacker with file access could.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import audit_tamper as tamper
from conftest import DevEnvironment
from niemphong.daemon.audit import verify
from niemphong.daemon.audit.log import AuditLog
from niemphong.daemon.audit.token_key import TokenCheckpointKey
from niemphong.daemon.audit.verify import read_log_lines, verify_log
from niemphong.daemon.config import AuditSettings, load_config, read_pin
from niemphong.daemon.hsm import Pkcs11Token

# The closed log below: entry 1 creates it, checkpoints follow every four
# records, and the last entry is the shutdown checkpoint.
#   1 create | 2-5 records | 6 checkpoint | 7-10 records | 11 checkpoint | 12-13 records | 14 shutdown
RECORDS = 10
LAST = 14


@pytest.fixture(scope="module")
def key(dev_env: DevEnvironment) -> Iterator[TokenCheckpointKey]:
    config = load_config(dev_env.root / "niemphongd.toml")
    token = Pkcs11Token(config.token, read_pin(config.token))
    yield TokenCheckpointKey(token)
    token.close()


def record(number: int) -> dict[str, object]:
    return {
        "request_id": f"{number:016x}",
        "identity": "scanner",
        "roles": ["scanner"],
        "operation": "EnvelopeService/Seal",
        "decision": "allowed",
        "status": "OK",
        "reason": "",
        "facts": {"artefact_id": f"{number:032x}", "plaintext_bytes": 1000 + number},
    }


@pytest.fixture(scope="module")
def closed_log(tmp_path_factory: pytest.TempPathFactory, key: TokenCheckpointKey) -> Path:
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    audit_log = AuditLog(AuditSettings(path, 4, 3600), key)
    audit_log.open()
    for number in range(RECORDS):
        audit_log.append(record(number))
    audit_log.close()
    return path


def verify_copy(source: Path, tmp_path: Path, key: TokenCheckpointKey, change: Callable[[list[bytes]], list[bytes]]) -> verify.Report:
    copy = tmp_path / "copy.jsonl"
    shutil.copyfile(source, copy)
    lines = tamper.read_lines(copy)
    copy.write_bytes(b"".join(change(lines)))
    log_id = tamper.entry_of(lines[0])["log_id"]
    return verify_log(read_log_lines(copy), key, anchor=key.load_anchor(log_id))


def test_verify_untouched_log_intact(closed_log: Path, tmp_path: Path, key: TokenCheckpointKey) -> None:
    report = verify_copy(closed_log, tmp_path, key, lambda lines: lines)

    assert report.intact, report.problem
    assert report.entries == LAST
    assert report.records == RECORDS
    assert report.checkpoints == 4
    assert report.last_checkpoint_seq == LAST
    assert report.warnings == []


@pytest.mark.parametrize(
    ("change", "kind", "seq", "line", "expected_seq", "end_seq"),
    [
        (lambda lines: tamper.edit_record(lines, 8, rehash=False), verify.EDITED, 8, 8, 0, 0),
        (lambda lines: tamper.edit_record(lines, 8, rehash=True), verify.EDITED, 8, 8, 0, 0),
        (lambda lines: tamper.remove(lines, 8), verify.REMOVED, 8, 8, 8, 8),
        (lambda lines: tamper.remove(tamper.remove(lines, 8), 9), verify.REMOVED, 8, 8, 8, 9),
        (lambda lines: tamper.swap(lines, 8, 9), verify.REORDERED, 9, 8, 8, 0),
        (lambda lines: tamper.duplicate(lines, 8), verify.DUPLICATED, 8, 9, 9, 0),
        (lambda lines: lines[:-1] + [lines[-1][:40]], verify.TRUNCATED, LAST, LAST, 0, 0),
        (lambda lines: lines[:-3], verify.TRUNCATED, 12, 12, 0, LAST),
        (lambda lines: tamper.forge_tail(lines, 2), verify.FORGED_TAIL, LAST + 1, LAST + 1, 0, LAST + 2),
        (lambda lines: tamper.rewrite_chain(lines, 3), verify.FORGED_CHECKPOINT, 6, 6, 2, 0),
        (lambda lines: lines[:7] + [b"not an entry\n"] + lines[8:], verify.EDITED, 8, 8, 0, 0),
        (lambda lines: lines[1:], verify.REMOVED, 1, 1, 1, 1),
    ],
    ids=[
        "edited", "edited-and-rehashed", "removed", "two-removed", "reordered", "duplicated",
        "cut-mid-line", "cut-at-entry", "forged-tail", "rewritten-chain", "garbled-line", "first-removed",
    ],
)
def test_verify_tampered_log_names_first_bad_entry(
    closed_log: Path, tmp_path: Path, key: TokenCheckpointKey,
    change: Callable[[list[bytes]], list[bytes]], kind: str, seq: int, line: int, expected_seq: int, end_seq: int,
) -> None:
    report = verify_copy(closed_log, tmp_path, key, change)

    assert report.problem is not None
    assert report.problem.kind == kind, report.problem
    assert report.problem.seq == seq, report.problem
    assert report.problem.line == line, report.problem
    assert report.problem.expected_seq == expected_seq, report.problem
    assert report.problem.end_seq == end_seq, report.problem
    assert not report.intact


def test_verify_offline_unclean_tail_is_warning(tmp_path: Path, key: TokenCheckpointKey) -> None:
    path = tmp_path / "audit.jsonl"
    audit_log = AuditLog(AuditSettings(path, 100, 3600), key)
    audit_log.open()
    audit_log.append(record(1))
    audit_log.append(record(2))
    # Stop as a killed daemon would: no shutdown checkpoint.
    audit_log._stopping.set()
    audit_log._open = False
    audit_log._file.close()

    report = verify_log(read_log_lines(path), key, anchor=key.load_anchor(audit_log.log_id))

    assert report.intact, report.problem
    assert [(w.kind, w.seq, w.end_seq) for w in report.warnings] == [(verify.UNAUTHENTICATED_TAIL, 2, 3)]


@pytest.fixture
def live_log(tmp_path: Path, key: TokenCheckpointKey) -> Iterator[AuditLog]:
    audit_log = AuditLog(AuditSettings(tmp_path / "live.jsonl", 4, 3600), key)
    audit_log.open()
    for number in range(6):
        audit_log.append(record(number))
    # 1 create | 2-5 records | 6 checkpoint | 7-8 records
    yield audit_log
    audit_log.close()


def verify_live(audit_log: AuditLog, key: TokenCheckpointKey, change: Callable[[list[bytes]], list[bytes]]) -> verify.Report:
    original = audit_log.path.read_bytes()
    tamper.write_in_place(audit_log.path, b"".join(change(tamper.read_lines(audit_log.path))))
    live = audit_log.live_head()
    try:
        return verify_log(read_log_lines(audit_log.path, live.file_bytes), key, anchor=key.load_anchor(audit_log.log_id), live=live)
    finally:
        tamper.write_in_place(audit_log.path, original)


@pytest.mark.parametrize(
    ("change", "kind", "seq", "line", "end_seq"),
    [
        (lambda lines: tamper.forge_tail(lines, 3), verify.FORGED_TAIL, 9, 9, 11),
        (lambda lines: tamper.edit_record(lines, 8, rehash=True), verify.FORGED_TAIL, 8, 8, 8),
        (lambda lines: tamper.rewrite_chain(lines, 7), verify.FORGED_TAIL, 7, 7, 8),
        (lambda lines: lines[:-2], verify.TRUNCATED, 7, 7, 8),
    ],
    ids=["appended", "last-record-rehashed", "tail-rewritten", "cut-at-entry"],
)
def test_verify_live_tail_against_daemon_memory(
    live_log: AuditLog, key: TokenCheckpointKey,
    change: Callable[[list[bytes]], list[bytes]], kind: str, seq: int, line: int, end_seq: int,
) -> None:
    report = verify_live(live_log, key, change)

    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq, report.problem.line, report.problem.end_seq) == (
        kind, seq, line, end_seq,
    ), report.problem


def test_verify_live_untouched_tail_intact(live_log: AuditLog, key: TokenCheckpointKey) -> None:
    report = verify_live(live_log, key, lambda lines: lines)

    assert report.intact, report.problem
    assert report.warnings == []
