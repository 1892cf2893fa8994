"""Parsing one line of the audit log: each way a line can be malformed has its own error."""

from __future__ import annotations

import json

import pytest

from niemphong.daemon.audit import entries
from niemphong.daemon.audit.entries import EntryError, encode_entry, entry_hash, parse_entry


def valid_record() -> dict[str, object]:
    entry: dict[str, object] = {
        "seq": 2, "prev": "a" * 64, "kind": "record", "time": "2025-06-01T03:04:05.000000Z", "identity": "Nguyễn",
    }
    entry["hash"] = entry_hash(entry)
    return entry


def line_of(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, ensure_ascii=False).encode("utf-8")


def test_entry_round_trip() -> None:
    entry = valid_record()
    line = encode_entry(dict(entry))

    assert parse_entry(line) == entry
    assert line.endswith(b"\n")
    assert "Nguyễn".encode("utf-8") in line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": 0}, "seq 0 is outside"),
        ({"seq": 2**64}, "is outside"),
        ({"seq": "2"}, "'seq' is missing or not a int"),
        ({"seq": True}, "'seq' is missing or not a int"),
        ({"kind": "note"}, "unknown kind"),
        ({"prev": "A" * 64}, "prev or hash"),
        ({"hash": "0" * 63}, "prev or hash"),
        ({"time": 5}, "'time' is missing"),
        ({"kind": "checkpoint"}, "checkpoint without mac"),
    ],
    ids=["seq-zero", "seq-too-large", "seq-text", "seq-bool", "kind-unknown", "prev-uppercase", "hash-short",
         "time-number", "checkpoint-no-mac"],
)
def test_entry_malformed_field_rejected(change: dict[str, object], message: str) -> None:
    entry = {**valid_record(), **change}

    with pytest.raises(EntryError) as excinfo:
        parse_entry(line_of(entry))

    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{\"seq\": 1", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b" " * (entries.MAX_LINE_BYTES + 1), "exceeds"),
    ],
    ids=["not-utf8", "cut-off", "array", "too-long"],
)
def test_entry_malformed_line_rejected(line: bytes, message: str) -> None:
    with pytest.raises(EntryError) as excinfo:
        parse_entry(line)

    assert message in str(excinfo.value)


def test_entry_hash_ignores_hash_key() -> None:
    entry = valid_record()

    assert entry_hash(entry) == entry_hash({**entry, "hash": "0" * 64})
    assert entry_hash(entry) != entry_hash({**entry, "identity": "someone-else"})
