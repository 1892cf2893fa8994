"""The mapping from niemphongd's errors to exit codes and localized messages."""

from __future__ import annotations

import errno
import os
import unicodedata

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from niemphong.clients.errors import (
    REASON_RULES,
    ClientError,
    ExitCode,
    TransferProgress,
    describe_rpc_error,
    error_from_rpc,
    os_error_text,
    track_requests,
)

SERVER = "unix:/run/niemphong/niemphongd.sock"

# The contract: reason, the gRPC code niemphongd sends with it, the exit code.
REASON_TABLE = [
    ("LEVEL_NEVER_DIGITIZED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("LEVEL_MISSING", grpc.StatusCode.INVALID_ARGUMENT, 2),
    ("INVALID_FIELD", grpc.StatusCode.INVALID_ARGUMENT, 2),
    ("FIELD_TOO_LONG", grpc.StatusCode.INVALID_ARGUMENT, 2),
    ("PROTOCOL_VIOLATION", grpc.StatusCode.INVALID_ARGUMENT, 2),
    ("ROLE_REQUIRED", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("UNKNOWN_IDENTITY", grpc.StatusCode.UNAUTHENTICATED, 4),
    ("NOT_APPROVED", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("SELF_APPROVAL", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("NOT_YOUR_REQUEST", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("ALREADY_APPROVED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("REQUEST_NOT_PENDING", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("TOO_MANY_PENDING", grpc.StatusCode.RESOURCE_EXHAUSTED, 3),
    ("TOO_MANY_STREAMS", grpc.StatusCode.RESOURCE_EXHAUSTED, 6),
    ("REQUEST_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 1),
    ("ARTEFACT_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 1),
    ("INTEGRITY_FAILURE", grpc.StatusCode.DATA_LOSS, 5),
    ("TOKEN_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, 6),
    ("KEY_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, 6),
    ("UNKNOWN_PROFILE", grpc.StatusCode.INVALID_ARGUMENT, 2),
    ("AUDIT_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, 6),
    ("STATE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, 6),
    ("DAEMON_STOPPING", grpc.StatusCode.UNAVAILABLE, 6),
    ("INTERNAL", grpc.StatusCode.INTERNAL, 1),
    ("SPOOL_DISABLED", grpc.StatusCode.FAILED_PRECONDITION, 1),
    ("SPOOL_PATH_INVALID", grpc.StatusCode.INVALID_ARGUMENT, 2),
    ("SPOOL_FILE_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 2),
    ("SPOOL_FILE_REJECTED", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("SPOOL_OUTPUT_EXISTS", grpc.StatusCode.ALREADY_EXISTS, 2),
    ("SPOOL_IO_FAILED", grpc.StatusCode.INTERNAL, 1),
    ("KEY_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 1),
    ("KEY_STATE_CONFLICT", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("KEY_STILL_NEEDED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("KEY_RETIRED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("KEY_CHANGE_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 1),
    ("KEY_CHANGE_NOT_PENDING", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("KEY_CHANGE_PENDING", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("ALREADY_CONFIRMED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("RECOVERY_NOT_CONFIGURED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("RECOVERY_NOT_ACTIVE", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("RECOVERY_IN_PROGRESS", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("RECOVERY_NOT_PENDING", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("RECOVERY_LOGIN_FAILED", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("REWRAP_UNSUPPORTED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("BATCH_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 1),
    ("BATCH_NOT_APPROVED", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("BATCH_STATE_CONFLICT", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("NOT_IN_BATCH", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("ALREADY_SEALED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("NOT_YOUR_ARTEFACT", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("BATCH_UNCONFIRMED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("ARTEFACT_ABANDONED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("SEAL_CONFIRMED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("ENVELOPE_MISMATCH", grpc.StatusCode.DATA_LOSS, 5),
    ("PRINTING_NOT_ALLOWED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("NOT_APPROVED_FOR_PRINTING", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("UNPRINTABLE_DOCUMENT", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("RENDERER_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, 6),
    ("SUSPENDED_BY_INCIDENT", grpc.StatusCode.PERMISSION_DENIED, 4),
    ("INCIDENT_NOT_FOUND", grpc.StatusCode.NOT_FOUND, 1),
    ("INCIDENT_CLOSED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("CLASSIFICATION_REFUSED", grpc.StatusCode.FAILED_PRECONDITION, 3),
    ("EXTENSION_REJECTED", grpc.StatusCode.FAILED_PRECONDITION, 3),
]

# Metadata the daemon attaches to some reasons.
REASON_METADATA = {
    "INVALID_FIELD": {"field": "issued_on"},
    "FIELD_TOO_LONG": {"field": "title", "max": "512"},
    "ROLE_REQUIRED": {"required_role": "approver", "role": "viewer"},
    "SPOOL_FILE_REJECTED": {"field": "source_path", "problem": "symlink"},
    "SPOOL_PATH_INVALID": {"field": "envelope_path"},
    "KEY_NOT_FOUND": {"key_id": "niemphong-mat", "version": "7"},
    "KEY_STATE_CONFLICT": {"operation": "destroy", "state": "active"},
    "KEY_STILL_NEEDED": {"artefacts": "12", "key_id": "niemphong-mat", "version": "1"},
    "KEY_RETIRED": {"key_id": "niemphong-mat", "version": "1", "state": "retired_opening"},
    "KEY_CHANGE_NOT_PENDING": {"state": "expired"},
    "KEY_CHANGE_PENDING": {"change_id": "a" * 32},
    "RECOVERY_IN_PROGRESS": {"session_id": "b" * 32, "state": "active"},
    "RECOVERY_NOT_PENDING": {"state": "failed"},
    "TOO_MANY_PENDING": {"max": "50"},
    "TOO_MANY_STREAMS": {"max": "8"},
    "CLASSIFICATION_REFUSED": {"code": "ABOVE_CATALOG_LEVEL", "explanation": "Từ chối: …", "explanation_en": "Rejected: …"},
    "EXTENSION_REJECTED": {"code": "NOT_LATER"},
    "UNKNOWN_PROFILE": {"profile": "nshield"},
    "BATCH_UNCONFIRMED": {"count": "1", "doc_numbers": "701/FB"},
    "ARTEFACT_ABANDONED": {"artefact_id": "c" * 32},
    "SEAL_CONFIRMED": {"artefact_id": "c" * 32},
    "ENVELOPE_MISMATCH": {"artefact_id": "c" * 32},
}


class FakeRpcError(grpc.RpcError):
    """A failed call as grpcio raises it: code, details and trailing metadata."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple = ()) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self._trailing_metadata = trailing_metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return self._trailing_metadata


def rich_error(
    code: grpc.StatusCode, reason: str, metadata: dict[str, str] | None = None, domain: str = "niemphong.v1"
) -> FakeRpcError:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata or {})
    detail = any_pb2.Any()
    detail.Pack(info)
    message = f"English status text for {reason}"
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))
    return FakeRpcError(status.code, status.details, status.trailing_metadata)


def test_reason_rules_match_contract() -> None:
    assert set(REASON_RULES) == {reason for reason, _, _ in REASON_TABLE}
    for reason, code, exit_code in REASON_TABLE:
        assert REASON_RULES[reason].status_code == code, reason
        assert REASON_RULES[reason].exit_code == exit_code, reason


@pytest.mark.parametrize(("reason", "code", "exit_code"), REASON_TABLE)
def test_rpc_error_reason_exit_code(reason: str, code: grpc.StatusCode, exit_code: int) -> None:
    error = error_from_rpc(rich_error(code, reason, REASON_METADATA.get(reason)), SERVER)

    assert error.exit_code == exit_code
    assert error.reason == reason


@pytest.mark.parametrize(("reason", "code", "exit_code"), REASON_TABLE)
def test_rpc_error_reason_message_both_languages(reason: str, code: grpc.StatusCode, exit_code: int) -> None:
    error = rich_error(code, reason, REASON_METADATA.get(reason))

    vi_code, vietnamese = describe_rpc_error(error, "vi", SERVER)
    en_code, english = describe_rpc_error(error, "en", SERVER)

    assert vi_code == en_code == exit_code
    assert vietnamese and english
    assert vietnamese != english
    assert unicodedata.is_normalized("NFC", vietnamese)
    assert any(ord(char) > 127 for char in vietnamese), "Vietnamese text without diacritics"
    assert "English status text" not in vietnamese
    assert "English status text" not in english
    assert "{" not in vietnamese
    assert "{" not in english


def test_level_never_digitized_cites_law_and_guidance() -> None:
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "LEVEL_NEVER_DIGITIZED")

    _, message = describe_rpc_error(error, "vi", SERVER)

    assert "Tuyệt mật không được số hóa" in message
    assert "Luật Bảo vệ bí mật nhà nước số 29/2018/QH14" in message
    assert "UBND tỉnh Đắk Lắk" in message
    assert "tháng 5/2025" in message
    assert "dạng giấy" in message


def test_level_never_digitized_english_cites_law() -> None:
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "LEVEL_NEVER_DIGITIZED")

    _, message = describe_rpc_error(error, "en", SERVER)

    assert "never digitized" in message
    assert "29/2018/QH14" in message
    assert "on paper" in message


def test_level_never_digitized_shows_archive_explanation() -> None:
    metadata = {"level": "tuyet-mat", "code": "TUYET_MAT_ARCHIVE_DECISION_REQUIRED",
                "explanation": "Từ chối: Lưu trữ lịch sử phải quyết định việc giải mật.",
                "explanation_en": "Rejected: the archive must decide on declassification."}
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "LEVEL_NEVER_DIGITIZED", metadata)

    _, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert "Tuyệt mật không được số hóa" in vietnamese
    assert "Lưu trữ lịch sử phải quyết định việc giải mật." in vietnamese
    assert "the archive must decide on declassification." in english


def test_level_never_digitized_plain_has_no_explanation_hint() -> None:
    metadata = {"level": "tuyet-mat", "code": "TUYET_MAT", "explanation": "Từ chối: EXPLANATION"}
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "LEVEL_NEVER_DIGITIZED", metadata)

    _, vietnamese = describe_rpc_error(error, "vi", SERVER)

    assert "EXPLANATION" not in vietnamese


def test_field_too_long_names_field_and_max() -> None:
    error = rich_error(grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG", {"field": "title", "max": "512"})

    _, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert "trích yếu (--title)" in vietnamese
    assert "512" in vietnamese
    assert "title (--title)" in english


def test_invalid_field_unknown_field_shown_raw() -> None:
    error = rich_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", {"field": "segment_bytes"})

    _, message = describe_rpc_error(error, "vi", SERVER)

    assert "segment_bytes" in message


def test_role_required_names_both_roles() -> None:
    error = rich_error(
        grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED", {"required_role": "approver", "role": "viewer"}
    )

    _, message = describe_rpc_error(error, "vi", SERVER)

    assert "người phê duyệt (approver)" in message
    assert "người khai thác (viewer)" in message


def test_role_required_caller_roles_joined_with_and() -> None:
    error = rich_error(
        grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED", {"required_role": "scanner", "role": "approver,viewer"}
    )

    _, message = describe_rpc_error(error, "en", SERVER)

    assert "approver and viewer" in message


def test_not_approved_tells_to_request() -> None:
    error = rich_error(grpc.StatusCode.PERMISSION_DENIED, "NOT_APPROVED")

    _, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert "niemphong request" in vietnamese
    assert "niemphong request" in english


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        (grpc.StatusCode.UNAVAILABLE, 6),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 6),
        (grpc.StatusCode.PERMISSION_DENIED, 4),
        (grpc.StatusCode.UNAUTHENTICATED, 4),
        (grpc.StatusCode.DATA_LOSS, 5),
        (grpc.StatusCode.INVALID_ARGUMENT, 2),
        (grpc.StatusCode.FAILED_PRECONDITION, 3),
        (grpc.StatusCode.NOT_FOUND, 1),
        (grpc.StatusCode.INTERNAL, 1),
        (grpc.StatusCode.UNKNOWN, 1),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 1),
    ],
)
def test_rpc_error_unknown_reason_falls_back_on_code(code: grpc.StatusCode, exit_code: int) -> None:
    with_unknown_reason = rich_error(code, "SOMETHING_NEW")
    without_details = FakeRpcError(code, "no details")

    for error in (with_unknown_reason, without_details):
        for lang in ("vi", "en"):
            result_code, message = describe_rpc_error(error, lang, SERVER)
            assert result_code == exit_code
            assert message


def test_rpc_error_foreign_domain_ignored() -> None:
    error = rich_error(grpc.StatusCode.PERMISSION_DENIED, "LEVEL_NEVER_DIGITIZED", domain="example.com")

    client_error = error_from_rpc(error, SERVER)

    assert client_error.exit_code == ExitCode.NOT_AUTHORIZED
    assert client_error.reason is None


def test_rpc_error_inconsistent_status_falls_back_on_code() -> None:
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "LEVEL_NEVER_DIGITIZED")
    # A proxy rewrote the status message, so the rich status no longer matches the call.
    tampered = FakeRpcError(error.code(), "rewritten", error.trailing_metadata())

    client_error = error_from_rpc(tampered, SERVER)

    assert client_error.exit_code == ExitCode.REFUSED_BY_POLICY
    assert client_error.reason is None


def test_connection_failure_names_server() -> None:
    error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")

    code, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert code == 6
    assert SERVER in vietnamese
    assert "niemphongd --config" in vietnamese
    assert "failed to connect to all addresses" in vietnamese
    assert "Cannot connect to niemphongd at " + SERVER in english


def test_token_unavailable_differs_from_connection_failure() -> None:
    error = rich_error(grpc.StatusCode.UNAVAILABLE, "TOKEN_UNAVAILABLE")

    code, message = describe_rpc_error(error, "vi", SERVER)

    assert code == 6
    assert "token" in message
    assert SERVER not in message


def test_client_error_hint_follows_message() -> None:
    error = ClientError(ExitCode.USAGE, "usage.input_missing", path="a.pdf")
    error.add_hint("usage.out_is_dir", path="out")

    lines = error.localize("en").splitlines()

    assert lines == ["File a.pdf not found.", "out is a folder; --out must be a file path."]


def test_role_required_several_roles_joined() -> None:
    error = rich_error(
        grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED", {"required_role": "approver,viewer", "role": "scanner"}
    )

    _, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert "người phê duyệt (approver) hoặc người khai thác (viewer)" in vietnamese
    assert "approver or viewer" in english


def test_key_state_conflict_names_state_in_language() -> None:
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "KEY_STATE_CONFLICT", {"operation": "destroy", "state": "active"})

    _, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert "đang dùng để niêm phong" in vietnamese
    assert "hủy phiên bản khóa" in vietnamese
    assert "active" in english
    assert "destroy the key version" in english


def test_key_still_needed_names_count() -> None:
    error = rich_error(
        grpc.StatusCode.FAILED_PRECONDITION, "KEY_STILL_NEEDED",
        {"artefacts": "12", "key_id": "niemphong-mat", "version": "1"},
    )

    code, message = describe_rpc_error(error, "vi", SERVER)

    assert code == 3
    assert "12 tài liệu" in message
    assert "niemphong rewrap" in message


def test_key_reason_without_metadata_shows_placeholder() -> None:
    error = rich_error(grpc.StatusCode.FAILED_PRECONDITION, "KEY_RETIRED")

    _, message = describe_rpc_error(error, "en", SERVER)

    assert "version ?" in message
    assert "{" not in message
def test_connection_lost_after_transfer_started() -> None:
    error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)")

    client_error = error_from_rpc(error, SERVER, transfer_started=True)

    assert client_error.exit_code == ExitCode.UNAVAILABLE
    assert client_error.message_id == "error.connection_lost"
    english = client_error.localize("en")
    assert "lost during the transfer" in english
    assert SERVER in english
    assert "Socket closed" in english


def test_track_requests_started_after_first_sent() -> None:
    progress = TransferProgress()
    messages = track_requests(iter(["start", "chunk-1", "chunk-2"]), progress)

    assert next(messages) == "start"
    assert progress.started is False
    assert next(messages) == "chunk-1"
    assert progress.started is True


def test_too_many_pending_names_maximum() -> None:
    error = rich_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PENDING", {"max": "50"})

    code, vietnamese = describe_rpc_error(error, "vi", SERVER)
    _, english = describe_rpc_error(error, "en", SERVER)

    assert code == 3
    assert "50 yêu cầu đang chờ duyệt" in vietnamese
    assert "50 pending requests" in english
    assert "niemphong pending" in english


def test_write_failed_disk_full_in_vietnamese() -> None:
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    error = ClientError(ExitCode.FAILURE, "error.write_failed", path="small/cv2.npe", error=os_error_text(exc))

    vietnamese = error.localize("vi")
    english = error.localize("en")

    assert "Hết chỗ trống trên ổ đĩa" in vietnamese
    assert "No space" not in vietnamese
    assert os.strerror(errno.ENOSPC) in english


@pytest.mark.parametrize("name", ["ENOSPC", "EDQUOT", "EFBIG", "EACCES", "EPERM", "EROFS", "ENOENT", "EIO",
                                  "EISDIR", "ENOTDIR", "EEXIST", "EPIPE"])
def test_os_error_text_common_errno_localized(name: str) -> None:
    number = getattr(errno, name)
    text = os_error_text(OSError(number, os.strerror(number)))

    assert text.localize("vi") != os.strerror(number)
    assert text.localize("en") == os.strerror(number)


def test_os_error_text_unknown_errno_keeps_system_text() -> None:
    text = os_error_text(OSError(errno.ENOTSOCK, "Socket operation on non-socket"))

    assert text.localize("vi") == "Socket operation on non-socket"
