"""A real niemphongd whose audit log cannot be written, or that is killed mid-stream.

With the audit file made unwritable, seal, open and approve, and opening a
batch, printing a copy and reporting an incident, are refused with exit code
6, and nothing is released or changed. Once the file is writable
again, the same commands succeed without a restart. A daemon killed with
SIGKILL while seals and opens stream leaves a log that verifies and that
records every operation a client saw succeed.

The file is made unwritable with ``chattr +i`` when the tests run as root
(as CI does), because root ignores mode bits; otherwise with chmod.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    BIN, REPO, DaemonProcess, DevEnvironment, dev_init, error_reason, grant_access, seal_bytes, state_query,
)
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

# The daemon retries a failed log at most once a second; this bounds the wait for it.
RECOVERY_TIMEOUT_SECONDS = 15


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> DevEnvironment:
    return dev_init(tmp_path_factory.mktemp("npf"))


@pytest.fixture
def running(env: DevEnvironment, tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(env, tmp_path / "niemphongd.log")
    process.start()
    yield process
    if process.process is not None and process.process.poll() is None:
        assert process.stop() == 0, process.log()


def log_path(env: DevEnvironment) -> Path:
    return Path(env.config["audit"]["path"])


def artefact_count(env: DevEnvironment) -> int:
    return int(state_query(env, "SELECT count(*) AS n FROM artefacts")[0]["n"])


class Unwritable:
    """Make a file unwritable for the daemon and back, as root or as an ordinary user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mode = path.stat().st_mode & 0o777

    def __enter__(self) -> Unwritable:
        if os.geteuid() == 0:
            result = subprocess.run(["chattr", "+i", str(self.path)], capture_output=True, text=True)
            if result.returncode != 0:
                pytest.skip(f"chattr +i is not supported here: {result.stderr.strip()}")
        else:
            self.path.chmod(0o400)
        return self

    def restore(self) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(self.path)], check=True)
        else:
            self.path.chmod(self.mode)

    def __exit__(self, *exc: object) -> None:
        self.restore()


def scrape(env: DevEnvironment) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of the daemon's /metrics by name and sorted labels."""
    with urllib.request.urlopen(f"http://{env.config['metrics']['listen']}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def refusals(samples: dict, rpc: str) -> float:
    return sum(
        value for (name, labels), value in samples.items()
        if name == "niemphong_refusals_total" and dict(labels).get("rpc") == rpc
        and dict(labels).get("reason") == "AUDIT_UNAVAILABLE"
    )


def retry_until_done(command: Callable[[], subprocess.CompletedProcess[str]]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` until it exits 0 or the recovery timeout passes; return the last result."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while True:
        result = command()
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_fail_closed_unwritable_log_refuses_then_resumes(
    running: DaemonProcess, env: DevEnvironment, tmp_path: Path,
) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 ban quet " + os.urandom(3000))
    envelope = tmp_path / "sealed.npe"
    sealed = env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "12/UBND", "--issued",
                     "2025-05-20", "--out", str(envelope))
    assert sealed.returncode == 0, sealed.stderr
    artefact_id = json.loads(env.cli("scanner", "inspect", str(envelope), "--json").stdout)["artefact_id"]
    request_id = grant_access(env, artefact_id, ["approver-1"])
    with env.channel("viewer") as channel:
        pending = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=artefact_id, purpose="đối chiếu"), timeout=10)
    artefacts_before = artefact_count(env)
    log_bytes_before = log_path(env).stat().st_size
    metrics_before = scrape(env)
    second = tmp_path / "second.npe"
    opened = tmp_path / "opened.pdf"

    with Unwritable(log_path(env)) as unwritable:
        refused_scan = env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "13/UBND",
                               "--issued", "2025-05-20", "--out", str(second))
        refused_view = env.cli("viewer", "view", str(envelope), "--out", str(opened))
        refused_approve = env.cli("approver-1", "approve", pending.request_id)
        refused_english = env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "14/UBND",
                                  "--issued", "2025-05-20", "--out", str(second), "--lang", "en")
        artefacts_while_refused = artefact_count(env)
        log_bytes_while_refused = log_path(env).stat().st_size
        outputs_while_refused = (second.exists(), opened.exists())
        metrics_while_refused = scrape(env)
        unwritable.restore()
        resumed_scan = retry_until_done(lambda: env.cli(
            "scanner", "scan", str(scan), "--level", "mat", "--doc-number", "13/UBND", "--issued", "2025-05-20",
            "--out", str(second)))
        resumed_view = env.cli("viewer", "view", str(envelope), "--out", str(opened), "--request", request_id)
        resumed_approve = env.cli("approver-1", "approve", pending.request_id)
    grant = json.loads(env.cli("viewer", "show", request_id, "--json").stdout)
    metrics_after = scrape(env)

    assert refused_scan.returncode == 6, refused_scan.stderr
    assert "không ghi được nhật ký kiểm toán" in refused_scan.stderr
    assert "released nothing" in refused_english.stderr
    assert outputs_while_refused == (False, False)
    assert refused_view.returncode == 6, refused_view.stderr
    assert refused_approve.returncode == 6, refused_approve.stderr
    # Nothing was registered, counted, approved or written while the log was unwritable.
    assert artefacts_while_refused == artefacts_before
    assert log_bytes_while_refused == log_bytes_before
    assert resumed_scan.returncode == 0, resumed_scan.stderr
    assert artefact_count(env) == artefacts_before + 1
    assert resumed_view.returncode == 0, resumed_view.stderr
    assert opened.read_bytes() == scan.read_bytes()
    # The refused open was not counted against the grant: only the one after recovery was.
    assert grant["grant"]["opens_used"] == 1
    assert resumed_approve.returncode == 0, resumed_approve.stderr
    assert "cannot be written" in running.log()
    assert "writable again" in running.log()
    # The metrics say so too, and return to normal by themselves.
    assert metrics_while_refused[("niemphong_audit_writable", ())] == 0
    assert metrics_after[("niemphong_audit_writable", ())] == 1
    failures = ("niemphong_audit_write_failures_total", ())
    assert metrics_while_refused[failures] > metrics_before.get(failures, 0)
    # The scan is small enough for one SealSmall call.
    assert refusals(metrics_while_refused, "EnvelopeService/SealSmall") - refusals(metrics_before, "EnvelopeService/SealSmall") == 2
    assert refusals(metrics_while_refused, "EnvelopeService/Open") - refusals(metrics_before, "EnvelopeService/Open") == 1
    assert env.cli("auditor", "audit", "verify").returncode == 0


def test_fail_closed_refused_scan_leaves_no_output(running: DaemonProcess, env: DevEnvironment, tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    scan = folder / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 " + os.urandom(2000))
    out = folder / "scan.pdf.npe"

    with Unwritable(log_path(env)):
        refused = env.cli("scanner", "scan", str(scan), "--level", "toi-mat", "--doc-number", "7/UBND",
                          "--issued", "2025-05-20", "--out", str(out))
        leftovers = sorted(path.name for path in folder.iterdir())

    assert refused.returncode == 6, refused.stderr
    assert leftovers == ["scan.pdf"]


def test_fail_closed_grpc_refusal_reason(running: DaemonProcess, env: DevEnvironment) -> None:
    with Unwritable(log_path(env)), env.channel("operator") as channel, pytest.raises(grpc.RpcError) as excinfo:
        pb_grpc.EnvelopeServiceStub(channel).Inspect(pb.InspectRequest(), timeout=10)

    assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(excinfo.value) == "AUDIT_UNAVAILABLE"


# SIGKILL during a stream of seals and opens ---------------------------------------


def request_id_of(call: grpc.Call) -> str | None:
    """Return the call's x-request-id trailer, or None for a call cut off before the daemon sent it."""
    return dict(call.trailing_metadata() or ()).get("x-request-id")


def succeeded_request_id(call: grpc.Call) -> str | None:
    """Return the request id of a call that ended with OK, or None.

    A call cut off by the kill ends with UNAVAILABLE and without the
    x-request-id trailer, so it is not a success the client saw complete.
    """
    if call.code() != grpc.StatusCode.OK:
        return None
    return request_id_of(call)


@dataclass
class Outcome:
    """What one Seal or Open call showed the client.

    ``acknowledged`` is true once the seal's summary, or all of the opened
    plaintext, arrived, whether or not the call then ended with OK.
    ``request_id`` is set only for a call that ended with OK.
    """

    acknowledged: bool
    request_id: str | None = None
    artefact_id: str = ""


def seal_once(env: DevEnvironment, data: bytes, number: int) -> Outcome:
    """Seal ``data`` and return what the client saw."""
    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
            doc_number=f"{number}/KILL", issued_on="2025-05-20", source_name="scan.pdf")))
        yield pb.SealRequest(chunk=data)

    with env.channel("scanner") as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=20)
        try:
            for response in call:
                if response.WhichOneof("payload") == "summary":
                    return Outcome(True, succeeded_request_id(call), response.summary.artefact_id)
        except grpc.RpcError:
            pass
    return Outcome(False)


def open_once(env: DevEnvironment, envelope: bytes, expected: bytes) -> Outcome:
    """Open ``envelope`` and return what the client saw, which is acknowledged once all of ``expected`` arrived."""
    def requests() -> Iterator[pb.OpenRequest]:
        yield pb.OpenRequest(start=pb.OpenStart())
        yield pb.OpenRequest(chunk=envelope)

    with env.channel("viewer") as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Open(requests(), timeout=20)
        plain = bytearray()
        try:
            for response in call:
                if response.WhichOneof("payload") == "chunk":
                    plain += response.chunk
                elif bytes(plain) == expected:
                    return Outcome(True, succeeded_request_id(call))
        except grpc.RpcError:
            pass
    return Outcome(bytes(plain) == expected)


def test_fail_closed_sigkill_during_stream_keeps_acknowledged(
    running: DaemonProcess, env: DevEnvironment, tmp_path: Path,
) -> None:
    # One document with a grant of many opens, so that opens can run alongside seals.
    base = os.urandom(5000)
    envelope, summary = seal_bytes(env, base, doc_number="1/KILL")
    with env.channel("viewer") as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="thử dừng đột ngột"), timeout=10)
    with env.channel("approver-1") as channel:
        pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request.request_id), timeout=10)

    succeeded: list[str] = []  # request ids of calls that ended with OK
    sealed: list[str] = []  # artefact ids whose seal summary arrived
    opens_seen = 0  # opens whose plaintext all arrived
    lock = threading.Lock()
    stop = threading.Event()

    def seal_stream(worker: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            outcome = seal_once(env, os.urandom(20_000), worker * 10_000 + number)
            with lock:
                if outcome.acknowledged:
                    sealed.append(outcome.artefact_id)
                if outcome.request_id is not None:
                    succeeded.append(outcome.request_id)
            if outcome.request_id is None:
                return

    def open_stream() -> None:
        nonlocal opens_seen
        while not stop.is_set():
            outcome = open_once(env, envelope, base)
            with lock:
                opens_seen += outcome.acknowledged
                if outcome.request_id is not None:
                    succeeded.append(outcome.request_id)
            if outcome.request_id is None:
                return

    threads = [threading.Thread(target=seal_stream, args=(worker,)) for worker in range(3)]
    threads.append(threading.Thread(target=open_stream))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(succeeded) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.process is not None
    running.process.send_signal(signal.SIGKILL)
    running.process.wait(timeout=30)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    config = str(env.root / "niemphongd.toml")
    offline = subprocess.run([str(BIN / "niemphongd"), "audit", "verify", "--config", config, "--json"],
                             capture_output=True, text=True, timeout=120)
    stored = [json.loads(line) for line in log_path(env).read_bytes().splitlines()]
    allowed_records = [entry for entry in stored if entry["kind"] == "record" and entry["decision"] == "allowed"]
    allowed = {entry["request_id"] for entry in allowed_records}
    sealed_recorded = {entry["facts"].get("artefact_id") for entry in allowed_records
                       if entry["operation"].endswith("Seal")}
    opens_recorded = sum(1 for entry in allowed_records if entry["operation"].endswith("Open")
                         and entry["facts"].get("artefact_id") == summary.artefact_id)
    registered = {row["artefact_id"] for row in state_query(env, "SELECT artefact_id FROM artefacts")}
    running.start()
    online = env.cli("auditor", "audit", "verify", "--json")

    assert all(not thread.is_alive() for thread in threads)
    assert len(succeeded) >= 20, "the stream did not get going before the kill"
    assert offline.returncode == 0, offline.stdout + offline.stderr
    assert json.loads(offline.stdout)["intact"] is True
    assert set(succeeded) <= allowed
    assert set(sealed) <= sealed_recorded, "a seal whose summary arrived has no allowed record"
    assert set(sealed) <= registered, "a seal whose summary arrived is not registered"
    assert opens_recorded >= opens_seen, f"{opens_seen} opens arrived whole, {opens_recorded} recorded"
    assert online.returncode == 0, online.stdout + online.stderr
    report = json.loads(online.stdout)
    assert report["intact"] is True
    assert "recovered_after_crash" in {warning["kind"] for warning in report["warnings"]}


# The log fails while a call is in progress ------------------------------------------


def test_fail_closed_seal_rolled_back_midway(running: DaemonProcess, env: DevEnvironment) -> None:
    """The log fails after Seal passed its first check: the artefact is not registered and no summary is sent."""
    started = threading.Event()
    resume = threading.Event()

    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
            doc_number="20/MIDWAY", issued_on="2025-05-20", source_name="scan.pdf")))
        started.set()
        resume.wait(timeout=30)
        yield pb.SealRequest(chunk=os.urandom(3000))

    artefacts_before = artefact_count(env)
    kinds: list[str] = []
    with env.channel("scanner") as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=60)
        # The envelope header arrives once the call passed the daemon's check of the log.
        kinds.append(next(call).WhichOneof("payload"))
        assert started.wait(timeout=30)
        with Unwritable(log_path(env)):
            resume.set()
            with pytest.raises(grpc.RpcError) as excinfo:
                for response in call:
                    kinds.append(response.WhichOneof("payload"))
            artefacts_after = artefact_count(env)
    request_id = request_id_of(excinfo.value)

    assert error_reason(excinfo.value) == "AUDIT_UNAVAILABLE"
    assert "summary" not in kinds
    assert artefacts_after == artefacts_before
    assert f"request {request_id} EnvelopeService/Seal by scanner refused: its audit record cannot be written" in running.log()


def test_fail_closed_open_rolled_back_midway(running: DaemonProcess, env: DevEnvironment) -> None:
    """The log fails after Open passed its first check: no open is counted and no plaintext is sent."""
    envelope, summary = seal_bytes(env, os.urandom(4000), doc_number="21/MIDWAY")
    request_id = grant_access(env, summary.artefact_id, ["approver-1"])
    started = threading.Event()
    resume = threading.Event()

    def requests() -> Iterator[pb.OpenRequest]:
        yield pb.OpenRequest(start=pb.OpenStart(request_id=request_id))
        started.set()
        resume.wait(timeout=30)
        yield pb.OpenRequest(chunk=envelope)

    kinds: list[str] = []
    with env.channel("viewer") as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Open(requests(), timeout=60)
        assert started.wait(timeout=30)
        # Open sends nothing before it reads the envelope, so give the daemon time to start the call;
        # the log line checked below shows whether the refusal came from the record, as intended.
        time.sleep(1)
        with Unwritable(log_path(env)):
            resume.set()
            with pytest.raises(grpc.RpcError) as excinfo:
                for response in call:
                    kinds.append(response.WhichOneof("payload"))
    # The daemon takes up to a second to resume after the file is writable again.
    shown = retry_until_done(lambda: env.cli("viewer", "show", request_id, "--json"))
    grant = json.loads(shown.stdout)["grant"]

    assert error_reason(excinfo.value) == "AUDIT_UNAVAILABLE"
    assert kinds == []
    assert grant["opens_used"] == 0
    call_id = request_id_of(excinfo.value)
    assert f"request {call_id} EnvelopeService/Open by viewer refused: its audit record cannot be written" in running.log()


def wait_for_health(running: DaemonProcess, serving: bool) -> bool:
    """Wait until gRPC health reports ``serving``; return whether it did within the recovery timeout."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if running.serving() == serving:
            return True
        time.sleep(0.5)
    return False


def test_fail_closed_health_reports_audit_log(running: DaemonProcess, env: DevEnvironment) -> None:
    with Unwritable(log_path(env)):
        not_serving = wait_for_health(running, serving=False)
        check_while_refused = scrape(env)[("niemphong_health_check_ok", (("check", "audit_log"),))]
    serving_again = wait_for_health(running, serving=True)

    assert not_serving
    assert check_while_refused == 0
    assert serving_again
    assert scrape(env)[("niemphong_health_check_ok", (("check", "audit_log"),))] == 1


def count_rows(env: DevEnvironment, table: str) -> int:
    return int(state_query(env, f"SELECT count(*) AS n FROM {table}")[0]["n"])


def test_fail_closed_archive_changes_refused(running: DaemonProcess, env: DevEnvironment, tmp_path: Path) -> None:
    scan = tmp_path / "scan.jpg"
    scan.write_bytes((REPO / "samples" / "giay-de-nghi-mau.jpg").read_bytes())
    envelope = tmp_path / "scan.npe"
    sealed = env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "21/AR", "--issued",
                     "2025-05-20", "--out", str(envelope))
    assert sealed.returncode == 0, sealed.stderr
    requested = env.cli("viewer", "request", str(envelope), "--purpose", "in", "--copies", "1")
    assert env.cli("approver-1", "approve", requested.stdout.strip()).returncode == 0
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_text("Số tài liệu;Ngày ban hành;Số trang;Độ mật;Tệp\n22/AR;20/05/2025;1;Mật;g.jpg\n", encoding="utf-8")
    copy = tmp_path / "ban-sao.pdf"
    before = {table: count_rows(env, table) for table in ("batches", "copies", "incidents")}

    with Unwritable(log_path(env)) as unwritable:
        opened = env.cli("scanner", "batch", "open", "--manifest", str(manifest), "--handed-over-by", "Phạm Thị Dung")
        printed = env.cli("viewer", "print", str(envelope), "--out", str(copy))
        reported = env.cli("viewer", "incident", "report", "--artefact", str(envelope), "--text", "Nghi lộ")
        while_refused = {table: count_rows(env, table) for table in ("batches", "copies", "incidents")}
        copy_while_refused = copy.exists()
        unwritable.restore()
        resumed = retry_until_done(lambda: env.cli("viewer", "print", str(envelope), "--out", str(copy), "--json"))

    assert opened.returncode == 6, opened.stderr
    assert printed.returncode == 6, printed.stderr
    assert reported.returncode == 6, reported.stderr
    # No batch, copy number or incident was kept while its record could not be written.
    assert while_refused == before
    assert not copy_while_refused
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["copy_number"] == 1
    assert env.cli("auditor", "audit", "verify").returncode == 0
