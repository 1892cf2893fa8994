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
import pkgutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory

from conftest import DaemonProcess, DevEnvironment, error_reason, seal_bytes
import niemphong.v1
from niemphong.clients import devpki
from niemphong.daemon.identity import ROLES as DAEMON_ROLES
from niemphong.v1 import audit_pb2 as audit_pb
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

V1 = "niemphong.v1."
ALL_ROLES = frozenset({"scanner", "viewer", "approver", "custodian", "auditor", "operator"})

# RPC (service/method) -> roles that may call it. Written from docs/api.md
# and the proto comments, not copied from the daemon's table.
EXPECTED_ROLES: dict[str, frozenset[str]] = {
    "EnvelopeService/Seal": frozenset({"scanner"}),
    "EnvelopeService/Open": frozenset({"viewer"}),
    "EnvelopeService/Inspect": ALL_ROLES,
    "AccessService/RequestAccess": frozenset({"viewer"}),
    "AccessService/Approve": frozenset({"approver"}),
    "AccessService/Deny": frozenset({"approver"}),
    "AccessService/ListPending": frozenset({"viewer", "approver"}),
    "AccessService/GetRequest": frozenset({"viewer", "approver"}),
    "PolicyService/GetPolicy": ALL_ROLES,
    "PolicyService/Decide": ALL_ROLES,
    "PolicyService/ListDue": frozenset({"approver", "custodian", "auditor"}),
    "PolicyService/RecordExtension": frozenset({"approver"}),
    "AuditService/Verify": frozenset({"auditor"}),
    "AuditService/Export": frozenset({"auditor"}),
    "AuditService/ArtefactHistory": frozenset({"auditor"}),
}

# RPC -> reasons a caller with an allowed role may still get, because the
# request needs state that the matrix does not set up. Keep it short: each
# entry weakens the check for that RPC to "the role was not what refused it".
ALLOWED_ROLE_REFUSALS: dict[str, frozenset[str]] = {}

# RPCs that release plaintext: each must succeed only under the caller's own
# approved, unexpired, unrevoked grant with opens left.
# RPC -> function(envelope, request id) returning the request that opens it.
GRANT_RPCS: dict[str, Callable[[bytes, str], Any]] = {
    "EnvelopeService/Open": lambda envelope, request_id: open_messages(envelope, request_id),
}

# Who calls in the matrix: one identity for each role the daemon knows (a
# role added there is called here at once, and fails wherever this file does
# not expect it), one with two roles, and one whose certificate the agency
# CA signed but that names no role.
CALLERS: dict[str, frozenset[str]] = {
    **{f"authz-{role}": frozenset({role}) for role in sorted(DAEMON_ROLES)},
    "authz-viewer-approver": frozenset({"viewer", "approver"}),
    "authz-no-role": frozenset(),
}
OTHER_VIEWER = "authz-viewer-2"
SECOND_APPROVER = "authz-approver-2"


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

    def seal(self, data: bytes = b"authz matrix document", level: int = pb.LEVEL_MAT) -> tuple[bytes, pb.SealSummary]:
        return seal_bytes(self.env, data, level=level, doc_number="77/AUTHZ-MATRIX", identity="authz-scanner")

    def request(self, artefact_id: str, viewer: str = "authz-viewer") -> str:
        with self.env.channel(viewer) as channel:
            made = pb_grpc.AccessServiceStub(channel).RequestAccess(
                pb.RequestAccessRequest(artefact_id=artefact_id, purpose="kiểm tra phân quyền"), timeout=10)
        return made.request_id

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

    def granted(self, viewer: str = "authz-viewer") -> tuple[bytes, str, str]:
        """Seal a Mật document and grant ``viewer`` access; return envelope, artefact id and request id."""
        envelope, summary = self.seal()
        request_id = self.request(summary.artefact_id, viewer)
        self.approve(request_id)
        return envelope, summary.artefact_id, request_id

    def update_grant(self, request_id: str, **values: int) -> None:
        """Change a grant in the state database, for conditions that no RPC produces yet (expiry, revocation)."""
        assignments = ", ".join(f"{column} = ?" for column in values)
        database = sqlite3.connect(self.env.config["state"]["sqlite"], timeout=30)
        try:
            with database:
                database.execute(f"UPDATE grants SET {assignments} WHERE request_id = ?", (*values.values(), request_id))
        finally:
            database.close()

    def grant_row(self, request_id: str) -> tuple[int, int, int]:
        database = sqlite3.connect(self.env.config["state"]["sqlite"], timeout=30)
        try:
            row = database.execute(
                "SELECT opens_used, opens_allowed, revoked FROM grants WHERE request_id = ?", (request_id,),
            ).fetchone()
        finally:
            database.close()
        assert row is not None, f"no grant for request {request_id}"
        return row


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


BUILDERS: dict[str, Callable[[Scenario, str], Built]] = {
    "EnvelopeService/Seal": build_seal,
    "EnvelopeService/Open": build_open,
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
}


@pytest.fixture(scope="module")
def scenario(daemon: DaemonProcess, dev_env: DevEnvironment) -> Scenario:
    for name, roles in CALLERS.items():
        if roles and not dev_env.identity(name).exists():
            dev_env.add_identity(name, ",".join(sorted(roles)))
    for name, role in ((OTHER_VIEWER, "viewer"), (SECOND_APPROVER, "approver")):
        if not dev_env.identity(name).exists():
            dev_env.add_identity(name, role)
    no_role = dev_env.identity("authz-no-role")
    if not no_role.exists():
        _write_identity_without_role(dev_env, no_role)
    return Scenario(dev_env)


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
    # Every RPC that answers with OpenResponse messages releases plaintext.
    releasing = {rpc_name(method) for method in v1_methods() if method.output_type.full_name == f"{V1}OpenResponse"}

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
    """An envelope, the request id the viewer names when opening (may be empty), and the grant to watch."""

    envelope: bytes
    request_id: str
    watched: str | None
    cleanup: Callable[[], None] = _nothing


def case_no_request(scenario: Scenario) -> GrantCase:
    envelope, _ = scenario.seal()
    return GrantCase(envelope, "", None)


def case_pending(scenario: Scenario) -> GrantCase:
    envelope, summary = scenario.seal()
    request_id = scenario.request(summary.artefact_id)
    return GrantCase(envelope, request_id, None, lambda: scenario.settle(request_id))


def case_denied(scenario: Scenario) -> GrantCase:
    envelope, summary = scenario.seal()
    request_id = scenario.request(summary.artefact_id)
    scenario.deny(request_id)
    return GrantCase(envelope, request_id, None)


def case_expired(scenario: Scenario) -> GrantCase:
    envelope, _, request_id = scenario.granted()
    scenario.update_grant(request_id, expires_at=int(time.time()) - 1)
    return GrantCase(envelope, "", request_id)


def case_used_up(scenario: Scenario) -> GrantCase:
    envelope, _, request_id = scenario.granted()
    _, allowed, _ = scenario.grant_row(request_id)
    for _ in range(allowed):
        assert attempt(scenario.env, "authz-viewer", _open_method(), open_messages(envelope)).code == grpc.StatusCode.OK
    return GrantCase(envelope, "", request_id)


def case_revoked(scenario: Scenario) -> GrantCase:
    # NOTE: no RPC revokes a grant yet; the state database column is what
    # the daemon checks, so the test sets it there.
    envelope, _, request_id = scenario.granted()
    scenario.update_grant(request_id, revoked=1)
    return GrantCase(envelope, "", request_id)


def case_other_viewers_grant(scenario: Scenario) -> GrantCase:
    envelope, _, request_id = scenario.granted(viewer=OTHER_VIEWER)
    return GrantCase(envelope, "", request_id)


def case_other_viewers_request_named(scenario: Scenario) -> GrantCase:
    envelope, _, request_id = scenario.granted(viewer=OTHER_VIEWER)
    return GrantCase(envelope, request_id, request_id)


def case_grant_for_other_artefact(scenario: Scenario) -> GrantCase:
    _, _, request_id = scenario.granted()
    envelope, _ = scenario.seal()
    return GrantCase(envelope, request_id, request_id)


def case_own_grant(scenario: Scenario) -> GrantCase:
    envelope, _, request_id = scenario.granted()
    return GrantCase(envelope, request_id, request_id)


REFUSED_GRANT_CASES = {
    "no-request": case_no_request,
    "pending": case_pending,
    "denied": case_denied,
    "expired": case_expired,
    "used-up": case_used_up,
    "revoked": case_revoked,
    "other-viewers-grant": case_other_viewers_grant,
    "other-viewers-request-named": case_other_viewers_request_named,
    "grant-for-other-artefact": case_grant_for_other_artefact,
}


def _open_method() -> pb_descriptor.MethodDescriptor:
    return pb.DESCRIPTOR.services_by_name["EnvelopeService"].methods_by_name["Open"]


def _grant_methods() -> list[pb_descriptor.MethodDescriptor]:
    return [method for method in v1_methods() if rpc_name(method) in GRANT_RPCS]


@pytest.mark.parametrize("method", _grant_methods(), ids=rpc_name)
@pytest.mark.parametrize("case", sorted(REFUSED_GRANT_CASES))
def test_grant_condition_refused(scenario: Scenario, method: pb_descriptor.MethodDescriptor, case: str) -> None:
    prepared = REFUSED_GRANT_CASES[case](scenario)
    before = scenario.grant_row(prepared.watched) if prepared.watched else None

    try:
        request = GRANT_RPCS[rpc_name(method)](prepared.envelope, prepared.request_id)
        outcome = attempt(scenario.env, "authz-viewer", method, request)
    finally:
        prepared.cleanup()

    assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_APPROVED")
    if prepared.watched:
        assert scenario.grant_row(prepared.watched) == before, "a refused open changed the grant"


@pytest.mark.parametrize("method", _grant_methods(), ids=rpc_name)
def test_grant_own_valid_opens(scenario: Scenario, method: pb_descriptor.MethodDescriptor) -> None:
    prepared = case_own_grant(scenario)
    used_before, _, _ = scenario.grant_row(prepared.request_id)

    request = GRANT_RPCS[rpc_name(method)](prepared.envelope, prepared.request_id)
    outcome = attempt(scenario.env, "authz-viewer", method, request)

    assert outcome.code == grpc.StatusCode.OK
    assert scenario.grant_row(prepared.request_id)[0] == used_before + 1


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
