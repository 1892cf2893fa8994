"""Authorization matrix: every RPC of every niemphong.v1 service, called by
every role, by a certificate that names no role, and, where the RPC opens
plaintext, with every kind of grant a viewer can hold.

The list of RPCs comes from the service descriptors of every proto file of
the niemphong.v1 package, so an RPC added to the API fails
``test_matrix_covers_every_rpc`` until it has an expected role set here and
a request to call it with. The expected
sets are written out independently of the daemon's own role table: the test
compares what the daemon does with what this file says it must do, and a
role that gets through where it should not is an unexpected success.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import pkgutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory

from conftest import BIN, SAMPLES, DaemonProcess, DevEnvironment, dev_init, error_reason, seal_bytes, state_query
import niemphong.v1
from niemphong.clients import devpki
from niemphong.daemon import envelope
from niemphong.daemon.identity import ROLES as DAEMON_ROLES
from niemphong.v1 import archive_pb2 as archive_pb
from niemphong.v1 import archive_pb2_grpc as archive_grpc
from niemphong.v1 import audit_pb2 as audit_pb
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc
from niemphong.v1 import keys_pb2 as keys_pb
from niemphong.v1 import keys_pb2_grpc as keys_grpc
from niemphong.v1 import token_pb2 as token_pb

V1 = "niemphong.v1."
ALL_ROLES = frozenset({"scanner", "viewer", "approver", "head", "custodian", "auditor", "operator"})

# RPC (service/method) -> roles that may call it. Written from docs/api.md
# and the proto comments, not copied from the daemon's table.
EXPECTED_ROLES: dict[str, frozenset[str]] = {
    "EnvelopeService/Seal": frozenset({"scanner"}),
    "EnvelopeService/SealSmall": frozenset({"scanner"}),
    "EnvelopeService/Open": frozenset({"viewer"}),
    "EnvelopeService/Inspect": ALL_ROLES,
    "SpoolService/SealFile": frozenset({"scanner"}),
    "SpoolService/OpenFile": frozenset({"viewer"}),
    "AccessService/RequestAccess": frozenset({"viewer"}),
    "AccessService/Approve": frozenset({"approver", "head"}),
    "AccessService/Deny": frozenset({"approver", "head"}),
    "AccessService/ListPending": frozenset({"viewer", "approver", "head"}),
    "AccessService/GetRequest": frozenset({"viewer", "approver", "head"}),
    "PolicyService/GetPolicy": ALL_ROLES,
    "PolicyService/Decide": ALL_ROLES,
    "PolicyService/ListDue": frozenset({"approver", "custodian", "auditor"}),
    "PolicyService/RecordExtension": frozenset({"approver"}),
    "AuditService/Verify": frozenset({"auditor"}),
    "AuditService/Export": frozenset({"auditor"}),
    "AuditService/ArtefactHistory": frozenset({"auditor"}),
    "EnvelopeService/Verify": frozenset({"scanner"}),
    "HandoverService/OpenBatch": frozenset({"scanner"}),
    "HandoverService/ApproveBatch": frozenset({"approver", "head"}),
    "HandoverService/CloseBatch": frozenset({"scanner", "approver", "head"}),
    "HandoverService/GetBatch": frozenset({"scanner", "approver", "head", "auditor"}),
    "HandoverService/GetMinutes": frozenset({"scanner", "approver", "head", "auditor"}),
    "CopyService/Print": frozenset({"viewer"}),
    "CopyService/ListCopies": frozenset({"approver", "head", "auditor"}),
    "IncidentService/ReportIncident": ALL_ROLES,
    "IncidentService/CloseIncident": frozenset({"approver", "head"}),
    "IncidentService/ListIncidents": frozenset({"approver", "head", "auditor"}),
    "TokenService/Probe": frozenset({"operator", "auditor"}),
    "KeyService/ListKeys": frozenset({"custodian", "auditor", "operator"}),
    "KeyService/ProposeKeyChange": frozenset({"custodian"}),
    "KeyService/ConfirmKeyChange": frozenset({"custodian"}),
    "KeyService/RejectKeyChange": frozenset({"custodian"}),
    "KeyService/ListKeyChanges": frozenset({"custodian", "auditor"}),
    "KeyService/Rewrap": frozenset({"custodian", "operator"}),
    "RecoveryService/StartRecovery": frozenset({"custodian"}),
    "RecoveryService/ConfirmRecovery": frozenset({"custodian"}),
    "RecoveryService/EndRecovery": frozenset({"custodian"}),
    "RecoveryService/GetRecovery": frozenset({"custodian", "auditor", "operator"}),
    "RecoveryService/RecoverRewrap": frozenset({"custodian"}),
    "RecoveryService/RecoverOpen": frozenset({"viewer"}),
}

# RPC -> reasons a caller with an allowed role may still get, because the
# request needs state that the matrix does not set up. Keep it short: each
# entry weakens the check for that RPC to "the role was not what refused it".
#
# Key changes and recovery sessions would change the shared test token's
# keys or need the recovery token's PIN shares, so their requests name
# changes and sessions that do not exist, or cannot complete, and an allowed
# role gets the "not found" or "not active" reason instead of success.
ALLOWED_ROLE_REFUSALS: dict[str, frozenset[str]] = {
    # The matrix names no file in a spool directory; past the role check the daemon looks for it.
    "SpoolService/SealFile": frozenset({"SPOOL_DISABLED", "SPOOL_FILE_NOT_FOUND"}),
    "SpoolService/OpenFile": frozenset({"SPOOL_DISABLED", "SPOOL_FILE_NOT_FOUND"}),
    "KeyService/ProposeKeyChange": frozenset({"KEY_NOT_FOUND", "KEY_STATE_CONFLICT", "KEY_CHANGE_PENDING"}),
    "KeyService/ConfirmKeyChange": frozenset({"KEY_CHANGE_NOT_FOUND"}),
    "KeyService/RejectKeyChange": frozenset({"KEY_CHANGE_NOT_FOUND"}),
    "RecoveryService/StartRecovery": frozenset({"RECOVERY_NOT_CONFIGURED", "RECOVERY_LOGIN_FAILED", "RECOVERY_IN_PROGRESS"}),
    "RecoveryService/ConfirmRecovery": frozenset({"RECOVERY_NOT_CONFIGURED", "RECOVERY_NOT_PENDING", "RECOVERY_LOGIN_FAILED"}),
    "RecoveryService/EndRecovery": frozenset({"RECOVERY_NOT_CONFIGURED", "RECOVERY_NOT_ACTIVE", "RECOVERY_NOT_PENDING"}),
    "RecoveryService/RecoverRewrap": frozenset({"RECOVERY_NOT_CONFIGURED", "RECOVERY_NOT_ACTIVE"}),
    "RecoveryService/RecoverOpen": frozenset({"RECOVERY_NOT_CONFIGURED", "RECOVERY_NOT_ACTIVE"}),
}

# RPCs that release plaintext: each must succeed only under the caller's own
# approved, unexpired, unrevoked grant with opens left.
@dataclass(frozen=True)
class GrantRpc:
    """How to call an RPC that releases plaintext, and how its grant is made and counted."""

    request: Callable[[Scenario, bytes, str], Any]  # (scenario, envelope, request id) -> request messages
    copies: int  # printed copies to ask for in the access request
    counter: str  # the grants column one success increments
    refusals: frozenset[str]  # reasons for a grant that does not allow the call
    # Runs on a daemon of its own with an active recovery session.
    needs_recovery_session: bool = False


def _open_request(scenario: Scenario, envelope: bytes, request_id: str) -> list[pb.OpenRequest]:
    return open_messages(envelope, request_id)


def _print_request(scenario: Scenario, envelope: bytes, request_id: str) -> list[archive_pb.PrintRequest]:
    return print_messages(envelope, request_id)


def _spool_open_request(scenario: Scenario, envelope: bytes, request_id: str) -> pb.OpenFileRequest:
    """Put ``envelope`` in the viewer's spool directory and name a fresh output file there."""
    name = f"authz-{os.urandom(6).hex()}"
    folder = scenario.spool_folder(GRANT_CALLER)
    (folder / f"{name}.pdf.npe").write_bytes(envelope)
    scenario.spool_outputs.append(folder / f"{name}.pdf")
    return pb.OpenFileRequest(request_id=request_id, envelope_path=f"{name}.pdf.npe", output_path=f"{name}.pdf")


GRANT_RPCS: dict[str, GrantRpc] = {
    "EnvelopeService/Open": GrantRpc(_open_request, 0, "opens_used", frozenset({"NOT_APPROVED"})),
    "SpoolService/OpenFile": GrantRpc(_spool_open_request, 0, "opens_used", frozenset({"NOT_APPROVED"})),
    "CopyService/Print": GrantRpc(
        _print_request, 1, "copies_made", frozenset({"NOT_APPROVED", "NOT_APPROVED_FOR_PRINTING"})),
    "RecoveryService/RecoverOpen": GrantRpc(
        _open_request, 0, "opens_used", frozenset({"NOT_APPROVED"}), needs_recovery_session=True),
}
# The response messages that carry plaintext, or report plaintext written to
# a file. An RPC that returns one of them must be in GRANT_RPCS.
PLAINTEXT_RESPONSES = frozenset({f"{V1}OpenResponse", f"{V1}PrintResponse", f"{V1}OpenSummary"})
GRANT_CALLER = "authz-viewer"

# Who calls in the matrix: one identity for each role the daemon knows (a
# role added there is called here at once, and fails wherever this file does
# not expect it), one with two roles, and one whose certificate the agency
# CA signed but that names no role.
CALLERS: dict[str, frozenset[str]] = {
    **{f"authz-{role}": frozenset({role}) for role in sorted(DAEMON_ROLES)},
    "authz-viewer-approver": frozenset({"viewer", "approver"}),
    "authz-no-role": frozenset(),
}
# A scan the copy service can stamp and print.
PRINTABLE = (SAMPLES / "giay-de-nghi-mau.jpg").read_bytes()
OTHER_VIEWER = "authz-viewer-2"
SECOND_APPROVER = "authz-approver-2"
SECOND_CUSTODIAN = "authz-custodian-2"


def v1_methods() -> list[pb_descriptor.MethodDescriptor]:
    """Every method of every service in every proto file of the niemphong.v1 package, from the generated code."""
    services: dict[str, pb_descriptor.ServiceDescriptor] = {}
    for module_info in pkgutil.iter_modules(niemphong.v1.__path__):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"niemphong.v1.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            services[service.full_name] = service
    return [method for service in services.values() for method in service.methods]


def rpc_name(method: pb_descriptor.MethodDescriptor) -> str:
    return f"{method.containing_service.name}/{method.name}"


def call_rpc(channel: grpc.Channel, method: pb_descriptor.MethodDescriptor, request: Any) -> list[Any]:
    """Call ``method`` generically from its descriptor and return every response message.

    ``request`` is one message, or a list of messages for a client-streaming method.
    """
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = message_factory.GetMessageClass(method.output_type)
    options = {"request_serializer": lambda message: message.SerializeToString(),
               "response_deserializer": response_class.FromString}
    if method.client_streaming and method.server_streaming:
        return list(channel.stream_stream(path, **options)(iter(request), timeout=30))
    if method.client_streaming:
        return [channel.stream_unary(path, **options)(iter(request), timeout=30)]
    if method.server_streaming:
        return list(channel.unary_stream(path, **options)(request, timeout=30))
    return [channel.unary_unary(path, **options)(request, timeout=30)]


@dataclass
class Outcome:
    code: grpc.StatusCode
    reason: str = ""


def attempt(env: DevEnvironment, caller: str, method: pb_descriptor.MethodDescriptor, request: Any) -> Outcome:
    with env.channel(caller) as channel:
        try:
            call_rpc(channel, method, request)
        except grpc.RpcError as error:
            try:
                reason = error_reason(error)
            except AssertionError:
                reason = ""
            return Outcome(error.code(), reason)
    return Outcome(grpc.StatusCode.OK)


class Scenario:
    """Real artefacts, requests and grants on the shared daemon for the matrix to refer to."""

    def __init__(self, env: DevEnvironment) -> None:
        self.env = env
        # Output files named in SpoolService/OpenFile requests.
        self.spool_outputs: list[Path] = []

    def spool_folder(self, identity: str) -> Path:
        return Path(self.env.config["spool"]["root"]) / identity

    def seal(self, data: bytes = b"authz matrix document", level: int = pb.LEVEL_MAT,
             scanner: str = "authz-scanner") -> tuple[bytes, pb.SealSummary]:
        return seal_bytes(self.env, data, level=level, doc_number="77/AUTHZ-MATRIX", identity=scanner)

    def request(self, artefact_id: str, viewer: str = "authz-viewer", copies: int = 0) -> str:
        with self.env.channel(viewer) as channel:
            made = pb_grpc.AccessServiceStub(channel).RequestAccess(
                pb.RequestAccessRequest(artefact_id=artefact_id, purpose="kiểm tra phân quyền", copies=copies),
                timeout=10)
        return made.request_id

    def open_batch(self) -> str:
        document = archive_pb.BatchDocument(number=1, doc_number="80/AUTHZ-BATCH", issued_on="2025-05-20",
                                            sheets=1, pages=1, level=pb.LEVEL_MAT)
        with self.env.channel("authz-scanner") as channel:
            batch = archive_grpc.HandoverServiceStub(channel).OpenBatch(archive_pb.OpenBatchRequest(
                handed_over_by="Văn thư", documents=[document]), timeout=10)
        return batch.batch_id

    def approve_batch(self, batch_id: str) -> None:
        with self.env.channel(SECOND_APPROVER) as channel:
            archive_grpc.HandoverServiceStub(channel).ApproveBatch(
                archive_pb.ApproveBatchRequest(batch_id=batch_id), timeout=10)

    def report_incident(self, artefact_id: str) -> str:
        with self.env.channel("authz-scanner") as channel:
            incident = archive_grpc.IncidentServiceStub(channel).ReportIncident(archive_pb.ReportIncidentRequest(
                artefact_ids=[artefact_id], text="Nghi lộ bản quét"), timeout=10)
        return incident.incident_id

    def close_incident(self, incident_id: str, revoke_grants: bool = False) -> None:
        with self.env.channel(SECOND_APPROVER) as channel:
            archive_grpc.IncidentServiceStub(channel).CloseIncident(archive_pb.CloseIncidentRequest(
                incident_id=incident_id, resolution="Đã xác minh", revoke_grants=revoke_grants), timeout=10)

    def approve(self, request_id: str, approver: str = SECOND_APPROVER) -> None:
        with self.env.channel(approver) as channel:
            pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request_id), timeout=10)

    def deny(self, request_id: str) -> None:
        with self.env.channel(SECOND_APPROVER) as channel:
            pb_grpc.AccessServiceStub(channel).Deny(pb.DenyRequest(request_id=request_id, reason="không cần"), timeout=10)

    def settle(self, request_id: str) -> None:
        """Deny ``request_id`` if it is still pending, so viewers stay under their pending limit."""
        with self.env.channel(SECOND_APPROVER) as channel:
            shown = pb_grpc.AccessServiceStub(channel).GetRequest(pb.GetRequestRequest(request_id=request_id), timeout=10)
        if shown.state == pb.REQUEST_STATE_PENDING:
            self.deny(request_id)

    def granted(self, viewer: str = "authz-viewer", copies: int = 0) -> tuple[bytes, str, str]:
        """Seal a printable Mật document and grant ``viewer`` access; return envelope, artefact id and request id."""
        envelope, summary = self.seal(PRINTABLE)
        request_id = self.request(summary.artefact_id, viewer, copies)
        self.approve(request_id)
        return envelope, summary.artefact_id, request_id

    def update_grant(self, request_id: str, **values: int) -> None:
        """Change a grant in the state database, for conditions that no RPC produces yet (expiry, revocation)."""
        assignments = ", ".join(f"{column} = ?" for column in values)
        state_query(self.env, f"UPDATE grants SET {assignments} WHERE request_id = ?", (*values.values(), request_id))

    def grant_row(self, request_id: str) -> dict[str, int]:
        """Return the grant's counters and flags as stored: opens, copies, expiry, revocation."""
        rows = state_query(self.env, "SELECT * FROM grants WHERE request_id = ?", (request_id,))
        assert rows, f"no grant for request {request_id}"
        return rows[0]


def print_messages(envelope: bytes, request_id: str = "") -> list[archive_pb.PrintRequest]:
    return [archive_pb.PrintRequest(start=archive_pb.PrintStart(request_id=request_id)),
            archive_pb.PrintRequest(chunk=envelope)]


def open_messages(envelope: bytes, request_id: str = "") -> list[pb.OpenRequest]:
    return [pb.OpenRequest(start=pb.OpenStart(request_id=request_id)), pb.OpenRequest(chunk=envelope)]


# Request builders: RPC -> function(scenario, caller) returning (request,
# cleanup). The request is valid and, for a caller with an allowed role,
# succeeds; the cleanup settles what it left pending.

Built = tuple[Any, Callable[[], None]]


def _nothing() -> None:
    return None


def build_seal(scenario: Scenario, caller: str) -> Built:
    return [
        pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
            doc_number="78/AUTHZ-MATRIX", issued_on="2025-05-20", source_name="scan.pdf"))),
        pb.SealRequest(chunk=b"sealed by " + caller.encode()),
    ], _nothing


def build_seal_small(scenario: Scenario, caller: str) -> Built:
    return pb.SealSmallRequest(
        metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
            doc_number="79/AUTHZ-MATRIX", issued_on="2025-05-20", source_name="scan.pdf")),
        document=b"sealed by " + caller.encode(),
    ), _nothing


def build_seal_file(scenario: Scenario, caller: str) -> Built:
    return pb.SealFileRequest(
        metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
            doc_number="80/AUTHZ-MATRIX", issued_on="2025-05-20", source_name="scan.pdf")),
        source_path="authz-missing.pdf", envelope_path="authz-missing.pdf.npe",
    ), _nothing


def build_open_file(scenario: Scenario, caller: str) -> Built:
    return pb.OpenFileRequest(envelope_path="authz-missing.pdf.npe", output_path="authz-missing.pdf"), _nothing


def build_open(scenario: Scenario, caller: str) -> Built:
    # The grant belongs to the caller, so only the role decides the outcome.
    envelope, summary = scenario.seal()
    request_id = ""
    if CALLERS[caller] & {"viewer"}:
        request_id = scenario.request(summary.artefact_id, caller)
        scenario.approve(request_id)
    return open_messages(envelope, request_id), _nothing


def build_inspect(scenario: Scenario, caller: str) -> Built:
    envelope, _ = scenario.seal()
    return pb.InspectRequest(envelope_head=envelope[:4096], envelope_bytes=len(envelope)), _nothing


def build_request_access(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()

    def cleanup() -> None:
        with scenario.env.channel(SECOND_APPROVER) as channel:
            listed = pb_grpc.AccessServiceStub(channel).ListPending(pb.ListPendingRequest(), timeout=10)
        for request in listed.requests:
            if request.artefact_id == summary.artefact_id:
                scenario.deny(request.request_id)

    return pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="xem lại hồ sơ"), cleanup


def build_approve(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()
    request_id = scenario.request(summary.artefact_id)
    return pb.ApproveRequest(request_id=request_id), lambda: scenario.settle(request_id)


def build_deny(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()
    request_id = scenario.request(summary.artefact_id)
    return pb.DenyRequest(request_id=request_id, reason="chưa đủ căn cứ"), lambda: scenario.settle(request_id)


def build_list_pending(scenario: Scenario, caller: str) -> Built:
    return pb.ListPendingRequest(), _nothing


def build_get_request(scenario: Scenario, caller: str) -> Built:
    # A viewer may read its own request, so the caller asks when it can.
    _, summary = scenario.seal()
    requester = caller if "viewer" in CALLERS[caller] else "authz-viewer"
    request_id = scenario.request(summary.artefact_id, requester)
    return pb.GetRequestRequest(request_id=request_id), lambda: scenario.settle(request_id)


def build_get_policy(scenario: Scenario, caller: str) -> Built:
    return pb.GetPolicyRequest(), _nothing


def build_decide(scenario: Scenario, caller: str) -> Built:
    document = pb.DocumentToDecide(row="1", level=pb.LEVEL_MAT, doc_number="79/AUTHZ", issued_on="2025-05-20")
    return pb.DecideRequest(documents=[document]), _nothing


def build_list_due(scenario: Scenario, caller: str) -> Built:
    return pb.ListDueRequest(within_days=30), _nothing


def build_record_extension(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    return pb.RecordExtensionRequest(
        artefact_id=summary.artefact_id, ends_on="2045-12-31",
        decision="Quyết định số 12/QĐ-UBND", decided_on=yesterday,
    ), _nothing


def build_audit_verify(scenario: Scenario, caller: str) -> Built:
    return audit_pb.VerifyAuditRequest(), _nothing


def build_audit_export(scenario: Scenario, caller: str) -> Built:
    # The last minute only: the shared daemon's log grows with the whole suite.
    now = int(time.time())
    return audit_pb.ExportAuditRequest(since=now - 60, until=now + 60), _nothing


def build_audit_history(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()
    return audit_pb.ArtefactHistoryRequest(artefact_id=summary.artefact_id), _nothing


def build_verify(scenario: Scenario, caller: str) -> Built:
    # Only the scanner who sealed an artefact may verify it, so a scanner caller seals its own.
    scanner = caller if "scanner" in CALLERS[caller] else "authz-scanner"
    envelope, _ = scenario.seal(scanner=scanner)
    return [pb.VerifyRequest(chunk=envelope)], _nothing


def build_open_batch(scenario: Scenario, caller: str) -> Built:
    document = archive_pb.BatchDocument(number=1, doc_number="81/AUTHZ-BATCH", issued_on="2025-05-20",
                                        sheets=2, pages=3, level=pb.LEVEL_MAT)
    return archive_pb.OpenBatchRequest(handed_over_by="Văn thư", documents=[document]), _nothing


def build_approve_batch(scenario: Scenario, caller: str) -> Built:
    return archive_pb.ApproveBatchRequest(batch_id=scenario.open_batch()), _nothing


def build_close_batch(scenario: Scenario, caller: str) -> Built:
    batch_id = scenario.open_batch()
    scenario.approve_batch(batch_id)
    return archive_pb.CloseBatchRequest(batch_id=batch_id, note="Trả đủ"), _nothing


def build_get_batch(scenario: Scenario, caller: str) -> Built:
    return archive_pb.GetBatchRequest(batch_id=scenario.open_batch()), _nothing


def build_get_minutes(scenario: Scenario, caller: str) -> Built:
    batch_id = scenario.open_batch()
    scenario.approve_batch(batch_id)
    return archive_pb.GetMinutesRequest(batch_id=batch_id), _nothing


def build_print(scenario: Scenario, caller: str) -> Built:
    envelope, summary = scenario.seal(PRINTABLE)
    request_id = ""
    if "viewer" in CALLERS[caller]:
        request_id = scenario.request(summary.artefact_id, caller, copies=1)
        scenario.approve(request_id)
    return print_messages(envelope, request_id), _nothing


def build_list_copies(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()
    return archive_pb.ListCopiesRequest(artefact_id=summary.artefact_id), _nothing


def build_report_incident(scenario: Scenario, caller: str) -> Built:
    # A fresh artefact, so that the suspension it causes touches nothing else.
    _, summary = scenario.seal()
    request = archive_pb.ReportIncidentRequest(artefact_ids=[summary.artefact_id], text="Nghi mất bản quét")

    def cleanup() -> None:
        with scenario.env.channel(SECOND_APPROVER) as channel:
            listed = archive_grpc.IncidentServiceStub(channel).ListIncidents(archive_pb.ListIncidentsRequest(), timeout=10)
        for incident in listed.incidents:
            if summary.artefact_id in incident.artefact_ids and incident.state == archive_pb.INCIDENT_STATE_OPEN:
                scenario.close_incident(incident.incident_id)

    return request, cleanup


def build_close_incident(scenario: Scenario, caller: str) -> Built:
    _, summary = scenario.seal()
    incident_id = scenario.report_incident(summary.artefact_id)
    request = archive_pb.CloseIncidentRequest(incident_id=incident_id, resolution="Không có sự cố")

    def cleanup() -> None:
        with scenario.env.channel(SECOND_APPROVER) as channel:
            listed = archive_grpc.IncidentServiceStub(channel).ListIncidents(archive_pb.ListIncidentsRequest(), timeout=10)
        if any(i.incident_id == incident_id and i.state == archive_pb.INCIDENT_STATE_OPEN for i in listed.incidents):
            scenario.close_incident(incident_id)

    return request, cleanup


def build_list_incidents(scenario: Scenario, caller: str) -> Built:
    return archive_pb.ListIncidentsRequest(), _nothing


def build_token_probe(scenario: Scenario, caller: str) -> Built:
    # Empty profile: the daemon probes the token against its configured profile.
    return token_pb.ProbeRequest(), _nothing


UNKNOWN_ID = "0f" * 16


def build_list_keys(scenario: Scenario, caller: str) -> Built:
    return keys_pb.ListKeysRequest(), _nothing


def build_propose_key_change(scenario: Scenario, caller: str) -> Built:
    # Version 99 does not exist: the change cannot go through, whatever the policy's custodian count.
    request = keys_pb.ProposeKeyChangeRequest(operation=keys_pb.KEY_OPERATION_RETIRE_SEALING,
                                              level=pb.LEVEL_TOI_MAT, version=99, reason="kiểm tra phân quyền")

    def cleanup() -> None:
        with scenario.env.channel(SECOND_CUSTODIAN) as channel:
            stub = keys_grpc.KeyServiceStub(channel)
            for change in stub.ListKeyChanges(keys_pb.ListKeyChangesRequest(), timeout=10).changes:
                if change.state == keys_pb.KEY_CHANGE_STATE_PENDING:
                    stub.RejectKeyChange(keys_pb.RejectKeyChangeRequest(change_id=change.change_id, reason="thử"),
                                         timeout=10)

    return request, cleanup


def build_confirm_key_change(scenario: Scenario, caller: str) -> Built:
    return keys_pb.ConfirmKeyChangeRequest(change_id=UNKNOWN_ID), _nothing


def build_reject_key_change(scenario: Scenario, caller: str) -> Built:
    return keys_pb.RejectKeyChangeRequest(change_id=UNKNOWN_ID, reason="không cần"), _nothing


def build_list_key_changes(scenario: Scenario, caller: str) -> Built:
    return keys_pb.ListKeyChangesRequest(), _nothing


def _header(envelope_bytes: bytes) -> bytes:
    return envelope_bytes[:envelope.read_header_length(envelope_bytes)]


def build_rewrap(scenario: Scenario, caller: str) -> Built:
    sealed, _ = scenario.seal()
    return keys_pb.RewrapRequest(header=_header(sealed)), _nothing


def build_start_recovery(scenario: Scenario, caller: str) -> Built:
    request = keys_pb.StartRecoveryRequest(pin_share="0" * 32, reason="kiểm tra phân quyền")

    def cleanup() -> None:
        with scenario.env.channel(SECOND_CUSTODIAN) as channel:
            stub = keys_grpc.RecoveryServiceStub(channel)
            try:
                session = stub.GetRecovery(keys_pb.GetRecoveryRequest(), timeout=10)
                stub.EndRecovery(keys_pb.EndRecoveryRequest(session_id=session.session_id), timeout=10)
            except grpc.RpcError:
                pass

    return request, cleanup


def build_confirm_recovery(scenario: Scenario, caller: str) -> Built:
    return keys_pb.ConfirmRecoveryRequest(session_id=UNKNOWN_ID, pin_share="0" * 32), _nothing


def build_end_recovery(scenario: Scenario, caller: str) -> Built:
    return keys_pb.EndRecoveryRequest(session_id=UNKNOWN_ID), _nothing


def build_get_recovery(scenario: Scenario, caller: str) -> Built:
    return keys_pb.GetRecoveryRequest(), _nothing


def build_recover_rewrap(scenario: Scenario, caller: str) -> Built:
    sealed, _ = scenario.seal()
    return keys_pb.RewrapRequest(header=_header(sealed)), _nothing


def build_recover_open(scenario: Scenario, caller: str) -> Built:
    sealed, summary = scenario.seal()
    request_id = ""
    if "viewer" in CALLERS[caller]:
        request_id = scenario.request(summary.artefact_id, caller)
        scenario.approve(request_id)
    return open_messages(sealed, request_id), _nothing


BUILDERS: dict[str, Callable[[Scenario, str], Built]] = {
    "EnvelopeService/Seal": build_seal,
    "EnvelopeService/SealSmall": build_seal_small,
    "EnvelopeService/Open": build_open,
    "SpoolService/SealFile": build_seal_file,
    "SpoolService/OpenFile": build_open_file,
    "EnvelopeService/Inspect": build_inspect,
    "AccessService/RequestAccess": build_request_access,
    "AccessService/Approve": build_approve,
    "AccessService/Deny": build_deny,
    "AccessService/ListPending": build_list_pending,
    "AccessService/GetRequest": build_get_request,
    "PolicyService/GetPolicy": build_get_policy,
    "PolicyService/Decide": build_decide,
    "PolicyService/ListDue": build_list_due,
    "PolicyService/RecordExtension": build_record_extension,
    "AuditService/Verify": build_audit_verify,
    "AuditService/Export": build_audit_export,
    "AuditService/ArtefactHistory": build_audit_history,
    "EnvelopeService/Verify": build_verify,
    "HandoverService/OpenBatch": build_open_batch,
    "HandoverService/ApproveBatch": build_approve_batch,
    "HandoverService/CloseBatch": build_close_batch,
    "HandoverService/GetBatch": build_get_batch,
    "HandoverService/GetMinutes": build_get_minutes,
    "CopyService/Print": build_print,
    "CopyService/ListCopies": build_list_copies,
    "IncidentService/ReportIncident": build_report_incident,
    "IncidentService/CloseIncident": build_close_incident,
    "IncidentService/ListIncidents": build_list_incidents,
    "TokenService/Probe": build_token_probe,
    "KeyService/ListKeys": build_list_keys,
    "KeyService/ProposeKeyChange": build_propose_key_change,
    "KeyService/ConfirmKeyChange": build_confirm_key_change,
    "KeyService/RejectKeyChange": build_reject_key_change,
    "KeyService/ListKeyChanges": build_list_key_changes,
    "KeyService/Rewrap": build_rewrap,
    "RecoveryService/StartRecovery": build_start_recovery,
    "RecoveryService/ConfirmRecovery": build_confirm_recovery,
    "RecoveryService/EndRecovery": build_end_recovery,
    "RecoveryService/GetRecovery": build_get_recovery,
    "RecoveryService/RecoverRewrap": build_recover_rewrap,
    "RecoveryService/RecoverOpen": build_recover_open,
}


@pytest.fixture(scope="module")
def scenario(daemon: DaemonProcess, dev_env: DevEnvironment) -> Scenario:
    _add_scenario_identities(dev_env)
    no_role = dev_env.identity("authz-no-role")
    if not no_role.exists():
        _write_identity_without_role(dev_env, no_role)
    return Scenario(dev_env)


def _add_scenario_identities(env: DevEnvironment) -> None:
    for name, roles in CALLERS.items():
        if roles and not env.identity(name).exists():
            env.add_identity(name, ",".join(sorted(roles)))
    for name, role in ((OTHER_VIEWER, "viewer"), (SECOND_APPROVER, "approver"), (SECOND_CUSTODIAN, "custodian")):
        if not env.identity(name).exists():
            env.add_identity(name, role)


@pytest.fixture(scope="module")
def recovery_scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """A daemon of its own whose levels have recovery keys, with a recovery session that two custodians opened.

    The key ceremony makes a recovery token in SoftHSM2 and splits its PIN
    into two shares; envelopes sealed afterwards carry a recovery slot.
    """
    root = tmp_path_factory.mktemp("authz-recovery")
    env = dev_init(root / "env")
    _add_scenario_identities(env)
    config = env.root / "niemphongd.toml"
    shares = env.root / "recovery"
    ceremony = subprocess.run(
        [str(BIN / "niemphongd"), "recovery-init", "--config", str(config), "--out", str(shares),
         "--label", "niemphong-recovery", "--init-softhsm"],
        capture_output=True, text=True, timeout=300,
    )
    assert ceremony.returncode == 0, ceremony.stderr
    with config.open("a", encoding="utf-8") as handle:
        handle.write("\n" + (shares / "recovery.toml").read_text(encoding="utf-8"))
    daemon = DaemonProcess(env, root / "niemphongd.log")
    daemon.start()
    try:
        started = env.cli("authz-custodian", "recover", "start", "--reason", "Kiểm tra phân quyền",
                          "--share-file", str(shares / "share-1.txt"))
        assert started.returncode == 0, started.stderr
        confirmed = env.cli(SECOND_CUSTODIAN, "recover", "confirm", started.stdout.strip(),
                            "--share-file", str(shares / "share-2.txt"))
        assert confirmed.returncode == 0, confirmed.stderr
        yield Scenario(env)
    finally:
        assert daemon.stop() == 0, daemon.log()


def _write_identity_without_role(env: DevEnvironment, folder: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = devpki.load_ca(env.root / "pki")
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "authz-no-role"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "visitor"),
    ])
    certificate, key = devpki._issue(ca, subject, ExtendedKeyUsageOID.CLIENT_AUTH, None)
    folder.mkdir(mode=0o700)
    devpki.write_certificate(folder / "cert.pem", certificate)
    devpki.write_private_key(folder / "key.pem", key)
    devpki.write_certificate(folder / "ca.pem", ca.certificate)


def test_matrix_covers_every_rpc() -> None:
    names = {rpc_name(method) for method in v1_methods()}

    missing_expectation = sorted(names - set(EXPECTED_ROLES))
    missing_builder = sorted(names - set(BUILDERS))
    stale = sorted(set(EXPECTED_ROLES) - names)

    assert not missing_expectation, f"RPCs without an expected role set in this file: {missing_expectation}"
    assert not missing_builder, f"RPCs without a request builder in this file: {missing_builder}"
    assert not stale, f"expectations for RPCs that no longer exist: {stale}"


def test_plaintext_rpcs_have_grant_cases() -> None:
    releasing = {rpc_name(method) for method in v1_methods() if method.output_type.full_name in PLAINTEXT_RESPONSES}

    assert releasing - set(GRANT_RPCS) == set(), "add these RPCs to GRANT_RPCS"


def test_daemon_role_table_matches_matrix() -> None:
    from niemphong.daemon.identity import METHOD_ROLES

    daemon_table = {name.removeprefix(f"/{V1}"): set(roles) for name, roles in METHOD_ROLES.items()}
    expected = {name: set(roles) for name, roles in EXPECTED_ROLES.items()}

    assert daemon_table == expected


MATRIX = [
    pytest.param(method, caller, id=f"{rpc_name(method)}-{caller}")
    for method in v1_methods()
    for caller in CALLERS
]


@pytest.mark.parametrize(("method", "caller"), MATRIX)
def test_rpc_by_role(scenario: Scenario, method: pb_descriptor.MethodDescriptor, caller: str) -> None:
    name = rpc_name(method)
    if name not in BUILDERS or name not in EXPECTED_ROLES:
        pytest.fail(f"{name} has no expectation in the matrix; add it to EXPECTED_ROLES and BUILDERS")
    roles = CALLERS[caller]
    request, cleanup = BUILDERS[name](scenario, caller)

    try:
        outcome = attempt(scenario.env, caller, method, request)
    finally:
        cleanup()

    if not roles:
        assert (outcome.code, outcome.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_IDENTITY")
    elif roles & EXPECTED_ROLES[name]:
        tolerated = ALLOWED_ROLE_REFUSALS.get(name, frozenset())
        assert outcome.code == grpc.StatusCode.OK or outcome.reason in tolerated, f"{caller} was refused {name}: {outcome}"
    else:
        assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")


# Grants ---------------------------------------------------------------------


@dataclass
class GrantCase:
    """An envelope, the request id the viewer names (may be empty), the grant to watch, and the reasons expected."""

    envelope: bytes
    request_id: str
    watched: str | None
    cleanup: Callable[[], None] = _nothing
    reasons: frozenset[str] | None = None  # None: the RPC's own refusal reasons


def case_no_request(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, _ = scenario.seal(PRINTABLE)
    return GrantCase(envelope, "", None)


def case_pending(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, summary = scenario.seal(PRINTABLE)
    request_id = scenario.request(summary.artefact_id, copies=rpc.copies)
    return GrantCase(envelope, request_id, None, lambda: scenario.settle(request_id))


def case_denied(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, summary = scenario.seal(PRINTABLE)
    request_id = scenario.request(summary.artefact_id, copies=rpc.copies)
    scenario.deny(request_id)
    return GrantCase(envelope, request_id, None)


def case_expired(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    # NOTE: no clock can be moved in the running daemon, so the expiry is set
    # in the state database, which the daemon reads on every call.
    envelope, _, request_id = scenario.granted(copies=rpc.copies)
    scenario.update_grant(request_id, expires_at=int(time.time()) - 1)
    return GrantCase(envelope, "", request_id)


def case_used_up(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, _, request_id = scenario.granted(copies=rpc.copies)
    limit = "copies_allowed" if rpc.counter == "copies_made" else "opens_allowed"
    scenario.update_grant(request_id, **{rpc.counter: scenario.grant_row(request_id)[limit]})
    return GrantCase(envelope, "", request_id)


def case_used_up_by_opens(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    # The same condition reached the way a viewer reaches it: by opening.
    envelope, _, request_id = scenario.granted(copies=rpc.copies)
    for _ in range(scenario.grant_row(request_id)["opens_allowed"]):
        assert attempt(scenario.env, "authz-viewer", _open_method(), open_messages(envelope)).code == grpc.StatusCode.OK
    return GrantCase(envelope, "", request_id)


def case_revoked(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    # Closing an incident with revoke_grants revokes every grant on its artefacts.
    envelope, artefact_id, request_id = scenario.granted(copies=rpc.copies)
    scenario.close_incident(scenario.report_incident(artefact_id), revoke_grants=True)
    return GrantCase(envelope, "", request_id)


def case_suspended(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, artefact_id, request_id = scenario.granted(copies=rpc.copies)
    incident_id = scenario.report_incident(artefact_id)
    return GrantCase(envelope, request_id, request_id, lambda: scenario.close_incident(incident_id),
                     frozenset({"SUSPENDED_BY_INCIDENT"}))


def case_other_viewers_grant(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, _, request_id = scenario.granted(viewer=OTHER_VIEWER, copies=rpc.copies)
    return GrantCase(envelope, "", request_id)


def case_other_viewers_request_named(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, _, request_id = scenario.granted(viewer=OTHER_VIEWER, copies=rpc.copies)
    return GrantCase(envelope, request_id, request_id)


def case_grant_for_other_artefact(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    _, _, request_id = scenario.granted(copies=rpc.copies)
    envelope, _ = scenario.seal(PRINTABLE)
    return GrantCase(envelope, request_id, request_id)


def case_own_grant(scenario: Scenario, rpc: GrantRpc) -> GrantCase:
    envelope, _, request_id = scenario.granted(copies=rpc.copies)
    return GrantCase(envelope, request_id, request_id)


REFUSED_GRANT_CASES: dict[str, Callable[[Scenario, GrantRpc], GrantCase]] = {
    "no-request": case_no_request,
    "pending": case_pending,
    "denied": case_denied,
    "expired": case_expired,
    "used-up": case_used_up,
    "revoked": case_revoked,
    "suspended-by-incident": case_suspended,
    "other-viewers-grant": case_other_viewers_grant,
    "other-viewers-request-named": case_other_viewers_request_named,
    "grant-for-other-artefact": case_grant_for_other_artefact,
}


def _open_method() -> pb_descriptor.MethodDescriptor:
    return pb.DESCRIPTOR.services_by_name["EnvelopeService"].methods_by_name["Open"]


def _grant_methods() -> list[pb_descriptor.MethodDescriptor]:
    return [method for method in v1_methods() if rpc_name(method) in GRANT_RPCS]


def _grant_scenario(request: pytest.FixtureRequest, rpc: GrantRpc) -> Scenario:
    scenario: Scenario = request.getfixturevalue("recovery_scenario" if rpc.needs_recovery_session else "scenario")
    scenario.spool_outputs.clear()
    return scenario


@pytest.mark.parametrize("method", _grant_methods(), ids=rpc_name)
@pytest.mark.parametrize("case", sorted(REFUSED_GRANT_CASES))
def test_grant_condition_refused(request: pytest.FixtureRequest, method: pb_descriptor.MethodDescriptor, case: str) -> None:
    rpc = GRANT_RPCS[rpc_name(method)]
    scenario = _grant_scenario(request, rpc)
    prepared = REFUSED_GRANT_CASES[case](scenario, rpc)
    before = scenario.grant_row(prepared.watched) if prepared.watched else None

    try:
        outcome = attempt(scenario.env, GRANT_CALLER, method, rpc.request(scenario, prepared.envelope, prepared.request_id))
    finally:
        prepared.cleanup()

    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED, outcome
    assert outcome.reason in (prepared.reasons or rpc.refusals), outcome
    if prepared.watched:
        assert scenario.grant_row(prepared.watched) == before, "a refused call changed the grant"
    written = [path.name for path in scenario.spool_outputs if path.exists()]
    assert written == [], "a refused call wrote plaintext to the spool"


@pytest.mark.parametrize("method", _grant_methods(), ids=rpc_name)
def test_grant_own_valid_succeeds(request: pytest.FixtureRequest, method: pb_descriptor.MethodDescriptor) -> None:
    rpc = GRANT_RPCS[rpc_name(method)]
    scenario = _grant_scenario(request, rpc)
    prepared = case_own_grant(scenario, rpc)
    used_before = scenario.grant_row(prepared.request_id)[rpc.counter]

    outcome = attempt(scenario.env, GRANT_CALLER, method, rpc.request(scenario, prepared.envelope, prepared.request_id))

    assert outcome.code == grpc.StatusCode.OK, outcome
    assert scenario.grant_row(prepared.request_id)[rpc.counter] == used_before + 1
    for path in scenario.spool_outputs:
        assert path.read_bytes() == PRINTABLE


def test_open_used_up_by_real_opens_refused(scenario: Scenario) -> None:
    rpc = GRANT_RPCS["EnvelopeService/Open"]
    prepared = case_used_up_by_opens(scenario, rpc)
    assert prepared.watched is not None
    before = scenario.grant_row(prepared.watched)

    outcome = attempt(scenario.env, GRANT_CALLER, _open_method(), rpc.request(scenario, prepared.envelope, ""))

    assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_APPROVED")
    assert scenario.grant_row(prepared.watched) == before


def test_print_without_copies_refused(scenario: Scenario) -> None:
    method = archive_pb.DESCRIPTOR.services_by_name["CopyService"].methods_by_name["Print"]
    envelope, _, request_id = scenario.granted(copies=0)

    outcome = attempt(scenario.env, "authz-viewer", method, print_messages(envelope, request_id))

    assert outcome.code == grpc.StatusCode.PERMISSION_DENIED
    assert outcome.reason == "NOT_APPROVED_FOR_PRINTING"


def test_viewer_cannot_read_other_viewers_request(scenario: Scenario) -> None:
    _, summary = scenario.seal()
    request_id = scenario.request(summary.artefact_id, OTHER_VIEWER)
    method = pb.DESCRIPTOR.services_by_name["AccessService"].methods_by_name["GetRequest"]

    try:
        outcome = attempt(scenario.env, "authz-viewer", method, pb.GetRequestRequest(request_id=request_id))
    finally:
        scenario.settle(request_id)

    assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_YOUR_REQUEST")


def test_viewer_lists_only_own_pending(scenario: Scenario) -> None:
    _, summary = scenario.seal()
    others = scenario.request(summary.artefact_id, OTHER_VIEWER)
    own = scenario.request(summary.artefact_id, "authz-viewer")

    try:
        with scenario.env.channel("authz-viewer") as channel:
            listed = pb_grpc.AccessServiceStub(channel).ListPending(pb.ListPendingRequest(), timeout=10)
    finally:
        scenario.settle(others)
        scenario.settle(own)

    requesters = {request.requester for request in listed.requests}
    listed_ids = {request.request_id for request in listed.requests}
    assert requesters == {"authz-viewer"}
    assert own in listed_ids
    assert others not in listed_ids


def test_approver_cannot_approve_own_request(scenario: Scenario) -> None:
    _, summary = scenario.seal()
    request_id = scenario.request(summary.artefact_id, "authz-viewer-approver")
    method = pb.DESCRIPTOR.services_by_name["AccessService"].methods_by_name["Approve"]

    try:
        outcome = attempt(scenario.env, "authz-viewer-approver", method, pb.ApproveRequest(request_id=request_id))
    finally:
        scenario.settle(request_id)

    assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SELF_APPROVAL")
