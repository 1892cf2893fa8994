"""Request messages built from user input: NFC normalization, chunking and bounds."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata

import pytest

from niemphong.clients.connection import CHUNK_BYTES, MAX_MESSAGE_BYTES
from niemphong.clients.protocol import (
    INSPECT_HEAD_BYTES,
    EmptyFieldError,
    build_deny,
    build_inspect_request,
    build_request_access,
    build_seal_metadata,
    iter_open_requests,
    iter_seal_requests,
    normalize_text,
    protection_end,
)
from niemphong.v1 import niemphong_pb2 as pb

DOC_NUMBER_NFC = "12/KH-Tổ công tác"
TITLE_NFC = "Kế hoạch bảo vệ bí mật nhà nước"
PURPOSE_NFC = "Phục vụ thanh tra đột xuất"
FILE_NAME_NFC = "công-văn.pdf"


def nfd(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    assert decomposed != text
    return decomposed


def test_normalize_text_nfd_to_nfc() -> None:
    assert normalize_text(nfd(TITLE_NFC)) == TITLE_NFC


def test_normalize_text_strips_surrounding_space() -> None:
    assert normalize_text("  1/UBND \n") == "1/UBND"


def test_seal_metadata_fields_nfc() -> None:
    metadata = build_seal_metadata(
        pb.LEVEL_TOI_MAT, nfd(DOC_NUMBER_NFC), dt.date(2025, 5, 14), nfd(TITLE_NFC), nfd(FILE_NAME_NFC)
    )

    assert metadata.document.doc_number == DOC_NUMBER_NFC
    assert metadata.document.title == TITLE_NFC
    assert metadata.document.source_name == FILE_NAME_NFC
    assert metadata.document.issued_on == "2025-05-14"
    assert metadata.level == pb.LEVEL_TOI_MAT


def test_seal_metadata_tuyet_mat_kept() -> None:
    metadata = build_seal_metadata(pb.LEVEL_TUYET_MAT, "1", dt.date(2025, 5, 14), "", "a.pdf")

    assert metadata.level == pb.LEVEL_TUYET_MAT


@pytest.mark.parametrize("doc_number", ["", "   ", "\n"])
def test_seal_metadata_empty_doc_number_rejected(doc_number: str) -> None:
    with pytest.raises(EmptyFieldError) as excinfo:
        build_seal_metadata(pb.LEVEL_MAT, doc_number, dt.date(2025, 5, 14), "", "a.pdf")

    assert excinfo.value.field == "doc_number"


def test_request_access_purpose_nfc() -> None:
    message = build_request_access("a" * 32, nfd(PURPOSE_NFC))

    assert message.purpose == PURPOSE_NFC
    assert message.artefact_id == "a" * 32


def test_request_access_empty_purpose_rejected() -> None:
    with pytest.raises(EmptyFieldError) as excinfo:
        build_request_access("a" * 32, " ")

    assert excinfo.value.field == "purpose"


def test_deny_reason_nfc() -> None:
    message = build_deny("b" * 32, nfd("Không đủ căn cứ"))

    assert message.reason == "Không đủ căn cứ"
    assert message.request_id == "b" * 32


def test_deny_empty_reason_rejected() -> None:
    with pytest.raises(EmptyFieldError) as excinfo:
        build_deny("b" * 32, "")

    assert excinfo.value.field == "reason"


def test_seal_stream_metadata_then_bounded_chunks() -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)
    metadata = build_seal_metadata(pb.LEVEL_MAT, "1", dt.date(2025, 5, 14), "", "a.pdf")

    messages = list(iter_seal_requests(metadata, io.BytesIO(data), CHUNK_BYTES))

    assert messages[0].WhichOneof("payload") == "metadata"
    assert messages[0].metadata == metadata
    chunks = [message.chunk for message in messages[1:]]
    assert all(message.WhichOneof("payload") == "chunk" for message in messages[1:])
    assert all(0 < len(chunk) <= CHUNK_BYTES for chunk in chunks)
    assert b"".join(chunks) == data
    assert max(message.ByteSize() for message in messages) <= MAX_MESSAGE_BYTES


def test_seal_stream_empty_file_sends_metadata_only() -> None:
    metadata = build_seal_metadata(pb.LEVEL_MAT, "1", dt.date(2025, 5, 14), "", "a.pdf")

    messages = list(iter_seal_requests(metadata, io.BytesIO(b""), CHUNK_BYTES))

    assert len(messages) == 1


def test_open_stream_start_then_chunks() -> None:
    envelope = b"x" * (CHUNK_BYTES + 1)

    messages = list(iter_open_requests("c" * 32, io.BytesIO(envelope), CHUNK_BYTES))

    assert messages[0].start.request_id == "c" * 32
    assert [len(message.chunk) for message in messages[1:]] == [CHUNK_BYTES, 1]


def test_open_stream_without_request_id() -> None:
    messages = list(iter_open_requests("", io.BytesIO(b"e"), CHUNK_BYTES))

    assert messages[0].WhichOneof("payload") == "start"
    assert messages[0].start.request_id == ""


def test_inspect_request_head_bounded() -> None:
    envelope = b"h" * (INSPECT_HEAD_BYTES * 3)

    request = build_inspect_request(io.BytesIO(envelope), len(envelope))

    assert len(request.envelope_head) == INSPECT_HEAD_BYTES
    assert request.envelope_bytes == len(envelope)


def test_inspect_request_small_file_sent_whole() -> None:
    request = build_inspect_request(io.BytesIO(b"small"), 5)

    assert request.envelope_head == b"small"
    assert request.envelope_bytes == 5


@pytest.mark.parametrize(
    ("level", "issued", "expected"),
    [
        (pb.LEVEL_MAT, dt.date(2015, 5, 14), dt.date(2025, 5, 14)),
        (pb.LEVEL_TOI_MAT, dt.date(2005, 1, 31), dt.date(2025, 1, 31)),
        (pb.LEVEL_MAT, dt.date(2016, 2, 29), dt.date(2026, 2, 28)),
        (pb.LEVEL_TUYET_MAT, dt.date(1990, 7, 1), dt.date(2020, 7, 1)),
    ],
)
def test_protection_end_counts_years(level: int, issued: dt.date, expected: dt.date) -> None:
    assert protection_end(level, issued) == expected


def test_protection_end_unknown_level_none() -> None:
    assert protection_end(pb.LEVEL_UNSPECIFIED, dt.date(2000, 1, 1)) is None
