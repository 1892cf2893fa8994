"""Fault injection around a real niemphongd: failed PKCS#11 calls, SIGKILL and
SIGTERM of the daemon mid-stream, clients that vanish mid-stream, and a
state database on a file system that is full or read-only.

After every fault the same invariants are checked:

- no envelope that the daemon inspects as registered and whole fails to open;
- the state database passes SQLite's integrity and foreign-key checks, every
  sealed artefact has its classification record, and every approved request
  has its grant;
- every seal whose summary the client received is in the registry with the
  same SHA-256, and every open the client saw complete was counted;
- the audit log verifies as intact, and has an allowed record of every seal
  and every open the client saw succeed;
- the daemon serves the next request normally.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import CHUNK, DaemonProcess, DevEnvironment, dev_init, error_reason, grant_access, open_bytes, seal_bytes
from niemphong.daemon import envelope
from niemphong.v1 import audit_pb2 as audit_pb
from niemphong.v1 import audit_pb2_grpc as audit_grpc
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

LAUNCHER = Path(__file__).resolve().parent / "faulty_niemphongd.py"
SEGMENT = envelope.DEFAULT_SEGMENT_SIZE


class FaultyDaemon(DaemonProcess):
    """niemphongd started through faulty_niemphongd.py, which fails PKCS#11 calls when armed."""

    def __init__(self, env: DevEnvironment, log_path: Path) -> None:
        super().__init__(env, log_path)
        self.fault_file = env.root / "fault.armed"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--config", str(self.env.root / "niemphongd.toml")],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "NIEMPHONG_TEST_FAULT_FILE": str(self.fault_file)},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"niemphongd exited with {self.process.returncode}:\n{self.log()}")
            if self.serving():
                return
            time.sleep(0.1)
        raise RuntimeError(f"niemphongd did not become ready:\n{self.log()}")

    def arm(self, function: str, action: str, skip: int = 0) -> None:
        """Fail the call of ``function`` after ``skip`` more go through: raise ``action``, or SIGKILL the daemon."""
        self.fault_file.write_text(f"{function} {action} {skip}")

    def fault_fired(self) -> bool:
        return not self.fault_file.exists()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)

    def restart(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
        self.start()


@dataclass
class Ledger:
    """What the client saw succeed, to compare with what the daemon recorded."""

    seals: dict[str, str] = field(default_factory=dict)  # artefact id -> envelope SHA-256
    opens: dict[str, int] = field(default_factory=dict)  # request id -> opens seen complete
    open_artefacts: dict[str, str] = field(default_factory=dict)  # request id -> artefact id
    envelopes: list[bytes] = field(default_factory=list)  # every envelope or part of one received
    partial: list[bytes] = field(default_factory=list)  # parts of envelopes whose seal never completed
    audited: set[str] = field(default_factory=set)  # artefacts whose audit records were checked

    def sealed(self, data: bytes, summary: pb.SealSummary) -> None:
        assert hashlib.sha256(data).hexdigest() == summary.envelope_sha256
        self.seals[summary.artefact_id] = summary.envelope_sha256
        self.envelopes.append(data)
        self.audited.discard(summary.artefact_id)

    def opened(self, request_id: str, artefact_id: str) -> None:
        self.opens[request_id] = self.opens.get(request_id, 0) + 1
        self.open_artefacts[request_id] = artefact_id
        self.audited.discard(artefact_id)


def _database(env: DevEnvironment) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{env.config['state']['sqlite']}?mode=ro", uri=True, timeout=30)


def check_state(env: DevEnvironment, ledger: Ledger) -> None:
    database = _database(env)
    try:
        assert database.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert database.execute("PRAGMA foreign_key_check").fetchall() == []
        unclassified = database.execute(
            "SELECT count(*) FROM artefacts a LEFT JOIN classifications c ON c.artefact_id = a.artefact_id "
            "WHERE c.record_id IS NULL").fetchone()[0]
        assert unclassified == 0, "a sealed artefact has no classification record"
        without_grant = database.execute(
            "SELECT count(*) FROM requests r LEFT JOIN grants g ON g.request_id = r.request_id "
            "WHERE r.state = 'approved' AND g.request_id IS NULL").fetchone()[0]
        assert without_grant == 0, "an approved request has no grant"
        for artefact_id, sha256 in ledger.seals.items():
            row = database.execute("SELECT envelope_sha256 FROM artefacts WHERE artefact_id = ?", (artefact_id,)).fetchone()
            assert row == (sha256,), f"sealed artefact {artefact_id} the client saw is not recorded"
        for request_id, seen in ledger.opens.items():
            row = database.execute("SELECT opens_used FROM grants WHERE request_id = ?", (request_id,)).fetchone()
            assert row is not None and row[0] >= seen, f"an open under {request_id} the client saw was not counted"
    finally:
        database.close()


def check_audit(env: DevEnvironment, ledger: Ledger) -> None:
    """The audit log is intact and records every seal and open the client saw succeed."""
    with env.channel("auditor") as channel:
        stub = audit_grpc.AuditServiceStub(channel)
        verified = stub.Verify(audit_pb.VerifyAuditRequest(), timeout=60)
        assert verified.intact, f"audit log not intact: {verified.problem}"
        for artefact_id in set(ledger.seals) - ledger.audited:
            records = list(stub.ArtefactHistory(audit_pb.ArtefactHistoryRequest(artefact_id=artefact_id), timeout=60))
            allowed = [record for record in records if record.decision == "allowed"]
            assert any(record.operation.lower().endswith("seal") for record in allowed), (
                f"no allowed seal record for artefact {artefact_id}")
            opens_seen = sum(seen for request_id, seen in ledger.opens.items()
                             if ledger.open_artefacts[request_id] == artefact_id)
            opens_recorded = sum(1 for record in allowed if record.operation.lower().endswith("open"))
            assert opens_recorded >= opens_seen, f"artefact {artefact_id}: {opens_seen} opens seen, {opens_recorded} recorded"
            ledger.audited.add(artefact_id)


def check_envelopes(env: DevEnvironment, ledger: Ledger) -> None:
    """Each envelope or part of one the client holds: registered and whole means it opens.

    The part of an envelope whose seal never completed is not registered at all.
    """
    for data in ledger.partial:
        try:
            header = envelope.parse_header(data)
        except envelope.IntegrityError:
            continue
        with env.channel("scanner") as channel:
            inspected = pb_grpc.EnvelopeServiceStub(channel).Inspect(
                pb.InspectRequest(envelope_head=data[:header.header_len], envelope_bytes=len(data)), timeout=30)
        assert not inspected.registered, f"an unfinished seal registered artefact {inspected.artefact_id}"
    for data in ledger.envelopes:
        try:
            header = envelope.parse_header(data)
        except envelope.IntegrityError:
            continue
        with env.channel("scanner") as channel:
            inspected = pb_grpc.EnvelopeServiceStub(channel).Inspect(
                pb.InspectRequest(envelope_head=data[:header.header_len], envelope_bytes=len(data)), timeout=30)
        if not inspected.registered:
            continue
        if envelope.plaintext_length(len(data), header.header_len, header.segment_size) is None:
            continue
        request_id = grant_access(env, inspected.artefact_id, _approvers(inspected.level))
        opened = open_bytes(env, data, request_id=request_id)
        assert len(opened) == inspected.plaintext_bytes


def _approvers(level: int) -> list[str]:
    return ["approver-1", "approver-2"] if level == pb.LEVEL_TOI_MAT else ["approver-1"]


def check_serving(env: DevEnvironment, ledger: Ledger) -> None:
    """A fresh seal and open work, so the daemon recovered from the fault."""
    data = os.urandom(3 * SEGMENT + 5)
    sealed, summary = seal_bytes(env, data)
    ledger.sealed(sealed, summary)
    request_id = grant_access(env, summary.artefact_id, ["approver-1"])
    assert open_bytes(env, sealed, request_id=request_id) == data
    ledger.opened(request_id, summary.artefact_id)


def wait_for_token(env: DevEnvironment, timeout: float = 60) -> None:
    """Wait until the daemon has recovered its token after a token fault and reports SERVING.

    After a fault that means the token is gone, the daemon refuses token
    calls at once and reopens the token in the background, with backoff.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with env.channel("operator") as channel:
            try:
                status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            except grpc.RpcError:
                status = None
        if status == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.25)
    raise AssertionError(f"the daemon did not report SERVING within {timeout:.0f} s after the fault")


def check_invariants(env: DevEnvironment, ledger: Ledger) -> None:
    wait_for_token(env)
    check_serving(env, ledger)
    check_state(env, ledger)
    check_audit(env, ledger)
    check_envelopes(env, ledger)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyDaemon]:
    root = tmp_path_factory.mktemp("faults")
    env = dev_init(root / "env")
    daemon = FaultyDaemon(env, root / "niemphongd.log")
    daemon.start()
    yield daemon
    if daemon.process is not None and daemon.process.poll() is None:
        assert daemon.stop() == 0, daemon.log()


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


# PKCS#11 failures -------------------------------------------------------------

SEAL_CALLS = ["C_GenerateRandom", "C_CreateObject", "C_WrapKey", "C_DestroyObject"]
OPEN_CALLS = ["C_UnwrapKey", "C_GetAttributeValue", "C_DestroyObject"]
# DeviceRemoved: the token went away. GeneralError: the token failed the call.
TOKEN_EXCEPTIONS = ["DeviceRemoved", "GeneralError"]
# The reasons a client may receive when the token fails a call. SoftHSM2 reports a
# wrapped key that does not unwrap as CKR_GENERAL_ERROR, so the daemon cannot
# tell a failing unwrap from an altered envelope and reports both as an
# integrity failure.
SEAL_FAILURE_REASONS = {"TOKEN_UNAVAILABLE", "INTERNAL"}
OPEN_FAILURE_REASONS = {"TOKEN_UNAVAILABLE", "INTERNAL", "INTEGRITY_FAILURE"}


@pytest.mark.parametrize("exception", TOKEN_EXCEPTIONS)
@pytest.mark.parametrize("function", SEAL_CALLS)
def test_token_failure_during_seal(faulty: FaultyDaemon, ledger: Ledger, function: str, exception: str) -> None:
    faulty.arm(function, exception)

    with pytest.raises(grpc.RpcError) as excinfo:
        seal_bytes(faulty.env, b"fault during seal" * 1000)

    assert faulty.fault_fired()
    assert error_reason(excinfo.value) in SEAL_FAILURE_REASONS
    check_invariants(faulty.env, ledger)


@pytest.mark.parametrize("exception", TOKEN_EXCEPTIONS)
@pytest.mark.parametrize("function", OPEN_CALLS)
def test_token_failure_during_open(faulty: FaultyDaemon, ledger: Ledger, function: str, exception: str) -> None:
    data = b"fault during open" * 1000
    sealed, summary = seal_bytes(faulty.env, data)
    ledger.sealed(sealed, summary)
    request_id = grant_access(faulty.env, summary.artefact_id, ["approver-1"])
    faulty.arm(function, exception)

    with pytest.raises(grpc.RpcError) as excinfo:
        open_bytes(faulty.env, sealed, request_id=request_id)

    assert faulty.fault_fired()
    assert error_reason(excinfo.value) in OPEN_FAILURE_REASONS
    wait_for_token(faulty.env)
    # The open failed before any plaintext, so it is not counted.
    assert open_bytes(faulty.env, sealed, request_id=request_id) == data
    ledger.opened(request_id, summary.artefact_id)
    check_invariants(faulty.env, ledger)


# Interrupted streams ------------------------------------------------------------


class PausedStream:
    """A Seal or Open call whose request stream stops after ``before_pause`` messages until released."""

    def __init__(self, env: DevEnvironment, identity: str, method: str, messages: list, before_pause: int) -> None:
        self.release = threading.Event()
        self.paused = threading.Event()
        self.responses: list = []
        self.error: grpc.RpcError | None = None
        self._messages = messages
        self._before_pause = before_pause
        self._channel = env.channel(identity)
        stub = pb_grpc.EnvelopeServiceStub(self._channel)
        self.call = getattr(stub, method)(self._requests(), timeout=60)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _requests(self) -> Iterator:
        for index, message in enumerate(self._messages):
            if index == self._before_pause:
                self.paused.set()
                self.release.wait(timeout=60)
            yield message

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.append(response)
        except grpc.RpcError as error:
            self.error = error

    def wait_for_responses(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while len(self.responses) < count and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.responses) >= count, f"only {len(self.responses)} responses arrived: {self.error}"

    def finish(self) -> None:
        self.release.set()
        self._thread.join(timeout=60)
        self._channel.close()

    def received_bytes(self) -> bytes:
        return b"".join(response.chunk for response in self.responses if response.WhichOneof("payload") == "chunk")

    def summary(self):  # type: ignore[no-untyped-def]
        last = self.responses[-1] if self.responses else None
        return last.summary if last is not None and last.WhichOneof("payload") == "summary" else None


def seal_messages(data: bytes, chunk: int = SEGMENT) -> list[pb.SealRequest]:
    metadata = pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
        doc_number="5/FAULT", issued_on="2025-05-20", source_name="fault.pdf")))
    return [metadata] + [pb.SealRequest(chunk=data[i:i + chunk]) for i in range(0, len(data), chunk)]


def open_messages(sealed: bytes, request_id: str, chunk: int = SEGMENT) -> list[pb.OpenRequest]:
    return [pb.OpenRequest(start=pb.OpenStart(request_id=request_id))] + [
        pb.OpenRequest(chunk=sealed[i:i + chunk]) for i in range(0, len(sealed), chunk)
    ]


def _record_seal(ledger: Ledger, stream: PausedStream) -> None:
    summary = stream.summary()
    if summary is not None:
        ledger.sealed(stream.received_bytes(), summary)
    else:
        ledger.envelopes.append(stream.received_bytes())
        ledger.partial.append(stream.received_bytes())


def _grant_row(env: DevEnvironment, request_id: str) -> int:
    database = _database(env)
    try:
        return database.execute("SELECT opens_used FROM grants WHERE request_id = ?", (request_id,)).fetchone()[0]
    finally:
        database.close()


def test_sigkill_during_seal(faulty: FaultyDaemon, ledger: Ledger) -> None:
    stream = PausedStream(faulty.env, "scanner", "Seal", seal_messages(os.urandom(6 * SEGMENT)), before_pause=4)
    stream.wait_for_responses(2)

    faulty.kill()
    stream.finish()
    faulty.start()

    assert stream.error is not None
    assert stream.error.code() == grpc.StatusCode.UNAVAILABLE
    _record_seal(ledger, stream)
    check_invariants(faulty.env, ledger)


def test_sigkill_during_open(faulty: FaultyDaemon, ledger: Ledger) -> None:
    data = os.urandom(8 * SEGMENT)
    sealed, summary = seal_bytes(faulty.env, data)
    ledger.sealed(sealed, summary)
    request_id = grant_access(faulty.env, summary.artefact_id, ["approver-1"])
    stream = PausedStream(faulty.env, "viewer", "Open", open_messages(sealed, request_id), before_pause=5)
    stream.wait_for_responses(2)

    faulty.kill()
    stream.finish()
    faulty.start()

    assert stream.error is not None
    assert data.startswith(stream.received_bytes())
    # The open was counted when the first plaintext left the daemon.
    assert _grant_row(faulty.env, request_id) == 1
    check_invariants(faulty.env, ledger)


@pytest.mark.parametrize("method", ["Seal", "Open"])
def test_client_disconnect_mid_stream(faulty: FaultyDaemon, ledger: Ledger, method: str) -> None:
    data = os.urandom(6 * SEGMENT)
    sealed, summary = seal_bytes(faulty.env, data)
    ledger.sealed(sealed, summary)

    # More cancelled streams than one identity may hold open at once: each
    # must give its slot back.
    for _ in range(10):
        if method == "Seal":
            messages: list = seal_messages(data)
            identity = "scanner"
        else:
            # A cancelled open has used one of the grant's opens, so each gets its own grant.
            request_id = grant_access(faulty.env, summary.artefact_id, ["approver-1"])
            messages = open_messages(sealed, request_id)
            identity = "viewer"
        stream = PausedStream(faulty.env, identity, method, messages, before_pause=4)
        stream.wait_for_responses(1)
        stream.call.cancel()
        stream.finish()
        if method == "Seal":
            _record_seal(ledger, stream)

    check_invariants(faulty.env, ledger)


@pytest.mark.parametrize("method", ["Seal", "Open"])
def test_sigterm_mid_stream(faulty: FaultyDaemon, ledger: Ledger, method: str) -> None:
    data = os.urandom(6 * SEGMENT)
    request_id = ""
    if method == "Seal":
        messages: list = seal_messages(data)
        identity = "scanner"
    else:
        sealed, summary = seal_bytes(faulty.env, data)
        ledger.sealed(sealed, summary)
        request_id = grant_access(faulty.env, summary.artefact_id, ["approver-1"])
        messages = open_messages(sealed, request_id)
        identity = "viewer"
    stream = PausedStream(faulty.env, identity, method, messages, before_pause=3)
    stream.wait_for_responses(1)

    assert faulty.process is not None
    faulty.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    stream.finish()
    exit_code = faulty.process.wait(timeout=90)
    faulty.start()

    assert exit_code == 0, faulty.log()
    # Draining lets the stream in progress finish when its client keeps sending.
    assert stream.error is None, stream.error
    if method == "Seal":
        _record_seal(ledger, stream)
        assert stream.summary() is not None
    else:
        assert stream.received_bytes() == data
        ledger.opened(request_id, summary.artefact_id)
    check_invariants(faulty.env, ledger)


# SIGKILL during a rewrap ----------------------------------------------------------

REWRAP_FILES = 5


def _rewrap(env: DevEnvironment, folder: Path) -> subprocess.CompletedProcess[str]:
    result = env.cli("custodian", "rewrap", str(folder), "--json")
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _registered_version(env: DevEnvironment, artefact_id: str) -> int:
    database = _database(env)
    try:
        return database.execute("SELECT key_version FROM artefacts WHERE artefact_id = ?", (artefact_id,)).fetchone()[0]
    finally:
        database.close()


def _audited_rewraps(env: DevEnvironment, artefact_id: str) -> list[audit_pb.AuditRecord]:
    with env.channel("auditor") as channel:
        records = audit_grpc.AuditServiceStub(channel).ArtefactHistory(
            audit_pb.ArtefactHistoryRequest(artefact_id=artefact_id), timeout=60)
        return [record for record in records if record.operation == "KeyService/Rewrap" and record.decision == "allowed"]


# Each file costs two Rewrap calls: one gets the new header (C_UnwrapKey,
# then C_WrapKey), and one, after the file was replaced, records it
# (C_UnwrapKey only). The client takes the files in name order, one at a
# time. The skips put the kill in the third file's first call, or between
# replacing the third file and recording it. Either way the client saw the
# first two files rewrapped and recorded.
REWRAP_KILL_POINTS = {
    "new_header": ("C_WrapKey", 2),
    "replaced_not_recorded": ("C_UnwrapKey", 5),
}
REWRAP_SEEN_DONE = 2


@pytest.mark.parametrize("point", sorted(REWRAP_KILL_POINTS))
def test_sigkill_during_rewrap(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path, point: str) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    paths = [folder / f"{index}.npe" for index in range(REWRAP_FILES)]
    documents: dict[Path, tuple[bytes, str]] = {}
    for index, path in enumerate(paths):
        data = os.urandom(2 * SEGMENT + index)
        sealed, summary = seal_bytes(faulty.env, data, doc_number=f"{index + 1}/REWRAP")
        ledger.sealed(sealed, summary)
        path.write_bytes(sealed)
        documents[path] = (data, summary.artefact_id)
    original = {path: path.read_bytes() for path in paths}
    bodies = {path: original[path][envelope.parse_header(original[path]).header_len:] for path in paths}
    rotated = faulty.env.cli("custodian", "keys", "rotate", "--level", "mat")
    assert rotated.returncode == 0, rotated.stderr
    old_version = _registered_version(faulty.env, documents[paths[0]][1])
    new_version = old_version + 1
    function, skip = REWRAP_KILL_POINTS[point]
    faulty.arm(function, "SIGKILL", skip)

    killed = _rewrap(faulty.env, folder)
    assert faulty.process is not None
    assert faulty.process.wait(timeout=60) == -signal.SIGKILL
    faulty.start()

    assert faulty.fault_fired()
    assert killed.returncode == 6, killed.stderr  # UNAVAILABLE
    replaced = REWRAP_SEEN_DONE + (1 if point == "replaced_not_recorded" else 0)
    assert sorted(folder.iterdir()) == paths, "the killed run left a temporary file or lost one"
    for path in paths[replaced:]:
        assert path.read_bytes() == original[path], f"{path.name} changed before its turn"
    for path in paths[:replaced]:
        header = envelope.parse_header(path.read_bytes())
        assert [slot.key_version for slot in header.slots] == [new_version], path.name
    # Every rewrap the client saw recorded is in the registry under the new
    # version, with one audit record of the recording call.
    for path in paths[:REWRAP_SEEN_DONE]:
        artefact_id = documents[path][1]
        assert _registered_version(faulty.env, artefact_id) == new_version, path.name
        recording = [record for record in _audited_rewraps(faulty.env, artefact_id) if record.facts["recorded"] == "1"]
        assert len(recording) == 1, f"{path.name}: {len(recording)} audit records of recording its rewrap"
    # The file replaced but not recorded stays under the old version in the
    # registry, which keeps that version from being destroyed, and opens.
    for path in paths[REWRAP_SEEN_DONE:]:
        assert _registered_version(faulty.env, documents[path][1]) == old_version, path.name
    # The old envelopes stay in the ledger: a copy that the rewrap did not
    # reach, such as a backup, must still open.
    for path in paths[:replaced]:
        ledger.envelopes.append(path.read_bytes())
    check_invariants(faulty.env, ledger)

    resumed = _rewrap(faulty.env, folder)

    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["failed"] == 0
    assert report["current"] == replaced
    assert report["rewrapped"] == REWRAP_FILES - replaced
    for path, (data, artefact_id) in documents.items():
        assert _registered_version(faulty.env, artefact_id) == new_version, path.name
        header = envelope.parse_header(path.read_bytes())
        assert [slot.key_version for slot in header.slots] == [new_version], path.name
        assert path.read_bytes()[header.header_len:] == bodies[path], f"{path.name}: the body changed"
        request_id = grant_access(faulty.env, artefact_id, ["approver-1"])
        assert open_bytes(faulty.env, path.read_bytes(), request_id=request_id) == data, path.name
        ledger.opened(request_id, artefact_id)
        if path.read_bytes() not in ledger.envelopes:
            ledger.envelopes.append(path.read_bytes())
    check_invariants(faulty.env, ledger)


REWRAP_CALLS = ["C_UnwrapKey", "C_CreateObject", "C_WrapKey", "C_DestroyObject"]


@pytest.mark.parametrize("exception", TOKEN_EXCEPTIONS)
@pytest.mark.parametrize("function", REWRAP_CALLS)
def test_token_failure_during_rewrap(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path, function: str,
                                     exception: str) -> None:
    path = tmp_path / "0.npe"
    data = os.urandom(SEGMENT + 7)
    sealed, summary = seal_bytes(faulty.env, data, doc_number="9/REWRAP-TOKEN")
    ledger.sealed(sealed, summary)
    path.write_bytes(sealed)
    rotated = faulty.env.cli("custodian", "keys", "rotate", "--level", "mat")
    assert rotated.returncode == 0, rotated.stderr
    old_version = _registered_version(faulty.env, summary.artefact_id)
    faulty.arm(function, exception)

    failed = _rewrap(faulty.env, path)
    wait_for_token(faulty.env)

    assert faulty.fault_fired()
    assert failed.returncode != 0, failed.stdout
    # The new header is made before the file is touched, so the file is
    # still the old envelope, and the registry still names the old version.
    assert path.read_bytes() == sealed
    assert _registered_version(faulty.env, summary.artefact_id) == old_version
    assert list(tmp_path.glob(".niemphong-*")) == []
    check_invariants(faulty.env, ledger)

    resumed = _rewrap(faulty.env, path)

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["rewrapped"] == 1
    assert _registered_version(faulty.env, summary.artefact_id) == old_version + 1
    request_id = grant_access(faulty.env, summary.artefact_id, ["approver-1"])
    assert open_bytes(faulty.env, path.read_bytes(), request_id=request_id) == data
    ledger.opened(request_id, summary.artefact_id)
    ledger.envelopes.append(path.read_bytes())


# Audit checkpoint MAC ------------------------------------------------------------


@pytest.fixture
def checkpoint_every_record(tmp_path: Path) -> Iterator[FaultyDaemon]:
    """A daemon of its own that writes an audit checkpoint, and so calls C_Sign, before every record."""
    env = dev_init(tmp_path / "env")
    config_path = env.root / "niemphongd.toml"
    text = config_path.read_text()
    assert "checkpoint_records = 100" in text
    config_path.write_text(text.replace("checkpoint_records = 100", "checkpoint_records = 1"))
    daemon = FaultyDaemon(env, tmp_path / "niemphongd.log")
    daemon.start()
    yield daemon
    if daemon.process is not None and daemon.process.poll() is None:
        assert daemon.stop() == 0, daemon.log()


@pytest.mark.parametrize("exception", TOKEN_EXCEPTIONS)
def test_token_failure_during_checkpoint(checkpoint_every_record: FaultyDaemon, exception: str) -> None:
    daemon = checkpoint_every_record
    ledger = Ledger()
    check_serving(daemon.env, ledger)
    artefacts_before = _count_artefacts(daemon.env)
    daemon.arm("C_Sign", exception)

    # Seal until one is refused. The checkpoint that takes the fault is
    # written either by a seal's record or by the log's checkpoint thread,
    # whose failure refuses the next record.
    reason = None
    sealed_meanwhile = 0
    for _ in range(100):
        try:
            sealed, summary = seal_bytes(daemon.env, os.urandom(SEGMENT))
        except grpc.RpcError as error:
            reason = error_reason(error)
            break
        ledger.sealed(sealed, summary)
        sealed_meanwhile += 1
    artefacts_during = _count_artefacts(daemon.env)
    # The daemon retries the log at most once a second.
    time.sleep(1.5)

    assert daemon.fault_fired()
    # When the checkpoint thread takes DeviceRemoved, the next seal meets
    # the token down before it reaches the log.
    expected = {"AUDIT_UNAVAILABLE", "TOKEN_UNAVAILABLE"} if exception == "DeviceRemoved" else {"AUDIT_UNAVAILABLE"}
    assert reason in expected
    assert artefacts_during == artefacts_before + sealed_meanwhile, "a seal went ahead without its audit record"
    assert "the checkpoint key cannot be used" in daemon.log()
    check_invariants(daemon.env, ledger)


# File systems -------------------------------------------------------------------


class SmallFileSystem:
    """A tmpfs of ``size`` bytes mounted at ``path`` for one test: real ENOSPC and EROFS from the kernel."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")

    def fill(self) -> Path:
        """Write a file that takes every free block, and return it."""
        filler = self.path / "filler"
        block = b"\0" * 4096
        with filler.open("wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(block)
            except OSError:
                pass
        return filler

    def remount(self, option: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{option}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def _daemon_on_tmpfs(tmp_path: Path, moved: str) -> Iterator[tuple[FaultyDaemon, SmallFileSystem]]:
    """A daemon of its own whose state database (``moved`` = "state") or audit log ("audit") lives on an 80 MiB tmpfs.

    The daemon reports itself healthy only with 64 MiB free beside its
    database and its audit log, and the harness waits for healthy.
    """
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    filesystem = SmallFileSystem(tmp_path / f"{moved}fs", 80 * 1024 * 1024)
    daemon = None
    try:
        env = dev_init(tmp_path / "env")
        config_path = env.root / "niemphongd.toml"
        section, key, name = ("state", "sqlite", "niemphong.db") if moved == "state" else ("audit", "path", "audit.jsonl")
        old = env.config[section][key]
        new = str(filesystem.path / name)
        config_path.write_text(config_path.read_text().replace(old, new))
        env.config[section][key] = new
        daemon = FaultyDaemon(env, tmp_path / "niemphongd.log")
        daemon.start()
        yield daemon, filesystem
    finally:
        if daemon is not None and daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()
        filesystem.unmount()


@pytest.fixture
def state_on_tmpfs(tmp_path: Path) -> Iterator[tuple[FaultyDaemon, SmallFileSystem]]:
    yield from _daemon_on_tmpfs(tmp_path, "state")


@pytest.fixture
def audit_on_tmpfs(tmp_path: Path) -> Iterator[tuple[FaultyDaemon, SmallFileSystem]]:
    yield from _daemon_on_tmpfs(tmp_path, "audit")


def _count_artefacts(env: DevEnvironment) -> int:
    database = _database(env)
    try:
        return database.execute("SELECT count(*) FROM artefacts").fetchone()[0]
    finally:
        database.close()


def test_audit_disk_full(audit_on_tmpfs: tuple[FaultyDaemon, SmallFileSystem]) -> None:
    daemon, filesystem = audit_on_tmpfs
    ledger = Ledger()
    check_serving(daemon.env, ledger)
    artefacts_before = _count_artefacts(daemon.env)
    filler = filesystem.fill()

    # Records still fit in the log's last, partly used page; seal until one does not.
    reason = None
    sealed_meanwhile = 0
    try:
        for _ in range(200):
            try:
                sealed, summary = seal_bytes(daemon.env, os.urandom(SEGMENT))
            except grpc.RpcError as error:
                reason = error_reason(error)
                break
            ledger.sealed(sealed, summary)
            sealed_meanwhile += 1
        artefacts_during = _count_artefacts(daemon.env)
    finally:
        filler.unlink()
    # The daemon retries the log at most once a second.
    time.sleep(1.5)

    assert reason == "AUDIT_UNAVAILABLE"
    assert artefacts_during == artefacts_before + sealed_meanwhile, "a seal went ahead without its audit record"
    check_invariants(daemon.env, ledger)


def _scan_until_refused(env: DevEnvironment, folder: Path, lang: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``niemphong scan`` until the daemon refuses one, at most five times; return the last run and its output path."""
    source = folder / f"scan-{lang[:2]}.pdf"
    source.write_bytes(os.urandom(SEGMENT))
    for attempt in range(5):
        output = folder / f"scan-{lang[:2]}-{attempt}.pdf.npe"
        result = env.cli("scanner", "scan", str(source), "--level", "mat", "--doc-number", f"{attempt + 1}/FULL",
                         "--issued", "2025-05-20", "--out", str(output), lang=lang)
        if result.returncode != 0:
            break
    return result, output


def test_state_disk_full_seal(state_on_tmpfs: tuple[FaultyDaemon, SmallFileSystem], tmp_path: Path) -> None:
    daemon, filesystem = state_on_tmpfs
    ledger = Ledger()
    check_serving(daemon.env, ledger)
    artefacts_before = _count_artefacts(daemon.env)
    filler = filesystem.fill()

    # SQLite reuses the space of its write-ahead log, so a few commits may
    # still fit after the disk is full.
    failures = []
    try:
        for _ in range(5):
            try:
                sealed, summary = seal_bytes(daemon.env, os.urandom(2 * SEGMENT))
            except grpc.RpcError as error:
                failures.append(error_reason(error))
                continue
            ledger.sealed(sealed, summary)
        artefacts_during = _count_artefacts(daemon.env)
        vietnamese, vietnamese_output = _scan_until_refused(daemon.env, tmp_path, "vi_VN.UTF-8")
        english, english_output = _scan_until_refused(daemon.env, tmp_path, "en_US.UTF-8")
    finally:
        filler.unlink()

    assert failures, "no seal failed on a full file system"
    assert set(failures) == {"STATE_UNAVAILABLE"}, failures
    assert artefacts_during == artefacts_before + len(ledger.seals) - 1, "a refused seal was registered"
    assert vietnamese.returncode == 6, vietnamese.stderr
    assert "cơ sở dữ liệu trạng thái" in vietnamese.stderr
    assert "Traceback" not in vietnamese.stderr
    assert english.returncode == 6, english.stderr
    assert "cannot write its state database" in english.stderr
    assert not vietnamese_output.exists(), "a refused scan left its output"
    assert not english_output.exists(), "a refused scan left its output"
    assert list(tmp_path.glob(".niemphong-*")) == [], "a refused scan left a temporary file"
    check_invariants(daemon.env, ledger)


def _open_collecting(env: DevEnvironment, sealed: bytes, request_id: str) -> tuple[bytes, str]:
    """Open ``sealed`` and return the plaintext received and the refusal reason ("" when it opened)."""
    received = bytearray()
    with env.channel("viewer") as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Open(iter(open_messages(sealed, request_id)), timeout=60)
        try:
            for response in call:
                if response.WhichOneof("payload") == "chunk":
                    received += response.chunk
        except grpc.RpcError as error:
            return bytes(received), error_reason(error)
    return bytes(received), ""


def test_state_disk_full_open(state_on_tmpfs: tuple[FaultyDaemon, SmallFileSystem]) -> None:
    daemon, filesystem = state_on_tmpfs
    ledger = Ledger()
    check_serving(daemon.env, ledger)
    data = os.urandom(2 * SEGMENT)
    sealed, summary = seal_bytes(daemon.env, data)
    ledger.sealed(sealed, summary)
    request_ids = [grant_access(daemon.env, summary.artefact_id, ["approver-1"]) for _ in range(5)]
    filler = filesystem.fill()

    outcomes = []
    try:
        for request_id in request_ids:
            received, reason = _open_collecting(daemon.env, sealed, request_id)
            outcomes.append((request_id, received, reason))
            if not reason:
                ledger.opened(request_id, summary.artefact_id)
    finally:
        filler.unlink()

    reasons = [reason for _, _, reason in outcomes if reason]
    assert reasons, "no open failed on a full file system"
    assert set(reasons) == {"STATE_UNAVAILABLE"}, reasons
    for request_id, received, reason in outcomes:
        if reason:
            assert received == b"", "plaintext left the daemon for an open that was not counted"
            assert _grant_row(daemon.env, request_id) == 0, "a refused open was counted"
        else:
            assert received == data
    check_invariants(daemon.env, ledger)


def test_audit_disk_full_open(audit_on_tmpfs: tuple[FaultyDaemon, SmallFileSystem]) -> None:
    daemon, filesystem = audit_on_tmpfs
    ledger = Ledger()
    check_serving(daemon.env, ledger)
    data = os.urandom(2 * SEGMENT)
    sealed, summary = seal_bytes(daemon.env, data)
    ledger.sealed(sealed, summary)
    # Enough grants to outlast the records that still fit in the log's last page.
    request_ids = [grant_access(daemon.env, summary.artefact_id, ["approver-1"]) for _ in range(60)]
    filler = filesystem.fill()

    outcomes = []
    try:
        for request_id in request_ids:
            received, reason = _open_collecting(daemon.env, sealed, request_id)
            outcomes.append((request_id, received, reason))
            if reason:
                break
            ledger.opened(request_id, summary.artefact_id)
    finally:
        filler.unlink()
    time.sleep(1.5)

    request_id, received, reason = outcomes[-1]
    assert reason == "AUDIT_UNAVAILABLE"
    assert received == b""
    assert _grant_row(daemon.env, request_id) == 0, "an open refused for want of its audit record was counted"
    check_invariants(daemon.env, ledger)


@pytest.fixture(params=["state", "audit"])
def state_or_audit_on_tmpfs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[FaultyDaemon, SmallFileSystem]]:
    yield from _daemon_on_tmpfs(tmp_path, request.param)


def test_read_only_at_start(state_or_audit_on_tmpfs: tuple[FaultyDaemon, SmallFileSystem]) -> None:
    # Linux refuses to remount a file system read-only while a process has
    # a file on it open for writing, so the daemon meets the read-only
    # file system when it starts.
    daemon, filesystem = state_or_audit_on_tmpfs
    ledger = Ledger()
    check_serving(daemon.env, ledger)
    assert daemon.stop() == 0
    filesystem.remount("ro")

    try:
        with pytest.raises(RuntimeError) as excinfo:
            daemon.start()
    finally:
        filesystem.remount("rw")
    daemon.start()

    assert "Traceback" not in str(excinfo.value)
    assert "Read-only file system" in str(excinfo.value)
    check_invariants(daemon.env, ledger)


def test_envelope_output_read_only(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    filesystem = SmallFileSystem(tmp_path / "outfs", 1024 * 1024)
    try:
        filesystem.remount("ro")
        source = tmp_path / "scan.pdf"
        source.write_bytes(os.urandom(SEGMENT))
        result = faulty.env.cli("scanner", "scan", str(source), "--level", "mat", "--doc-number", "7/FAULT",
                                "--issued", "2025-05-20", "--out", str(filesystem.path / "scan.pdf.npe"))
        left = sorted(path.name for path in filesystem.path.iterdir())
    finally:
        filesystem.unmount()

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert left == []
    check_invariants(faulty.env, ledger)


def test_envelope_output_disk_full(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    filesystem = SmallFileSystem(tmp_path / "outfs", 256 * 1024)
    try:
        source = tmp_path / "scan.pdf"
        source.write_bytes(os.urandom(CHUNK))
        output = filesystem.path / "scan.pdf.npe"

        result = faulty.env.cli("scanner", "scan", str(source), "--level", "mat", "--doc-number", "6/FAULT",
                                "--issued", "2025-05-20", "--out", str(output))
        left = sorted(path.name for path in filesystem.path.iterdir())
    finally:
        filesystem.unmount()

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert str(output) in result.stderr, "the message does not name the output file"
    assert left == [], "a failed scan left files behind"
    check_invariants(faulty.env, ledger)


def _view_onto(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path, filesystem: SmallFileSystem,
               size: int) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Seal ``size`` random bytes, grant the viewer, and run ``niemphong view --out`` into ``filesystem``."""
    sealed, summary = seal_bytes(faulty.env, os.urandom(size))
    ledger.sealed(sealed, summary)
    envelope_path = tmp_path / "view.pdf.npe"
    envelope_path.write_bytes(sealed)
    grant_access(faulty.env, summary.artefact_id, ["approver-1"])
    result = faulty.env.cli("viewer", "view", str(envelope_path), "--out", str(filesystem.path / "view.pdf"))
    left = sorted(path.name for path in filesystem.path.iterdir())
    return result, left


def test_view_output_read_only(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    filesystem = SmallFileSystem(tmp_path / "outfs", 1024 * 1024)
    try:
        filesystem.remount("ro")
        result, left = _view_onto(faulty, ledger, tmp_path, filesystem, SEGMENT)
    finally:
        filesystem.unmount()

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert left == []
    check_invariants(faulty.env, ledger)


def test_view_output_disk_full(faulty: FaultyDaemon, ledger: Ledger, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    filesystem = SmallFileSystem(tmp_path / "outfs", 256 * 1024)
    try:
        result, left = _view_onto(faulty, ledger, tmp_path, filesystem, 6 * SEGMENT)
    finally:
        filesystem.unmount()

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(filesystem.path / "view.pdf") in result.stderr, "the message does not name the output file"
    assert left == [], "a failed view left files behind"
    check_invariants(faulty.env, ledger)
