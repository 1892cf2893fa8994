"""Entries of the audit log: the JSON Lines format, its canonical encoding and the hash chain.

Each line of the log is one entry: a JSON object with English keys, UTF-8,
ending in a newline. Every entry has

- ``seq``: its sequence number, 1 for the first entry, one more for each next;
- ``prev``: the ``hash`` of the entry before it (64 zeros for the first);
- ``kind``: ``record`` (one audited call) or ``checkpoint``;
- ``time``: RFC 3339 in UTC with microseconds;
- ``hash``: SHA-256 of the entry's canonical encoding without ``hash``.

The canonical encoding is JSON with sorted keys, no spaces and non-ASCII
characters written as UTF-8. Because each entry names the hash of the one
before, changing, removing or moving an entry breaks the chain where it was.
A checkpoint also carries ``mac``: HMAC-SHA-256, computed inside the token,
over :func:`mac_input`, so nobody without the token can rewrite the chain up
to a checkpoint and make it verify again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

FORMAT = "niemphong-audit/1"
GENESIS_HASH = "0" * 64
# Longest line accepted when reading; a record is well under 16 KiB even with
# a 2,000-character purpose of four-byte characters.
MAX_LINE_BYTES = 64 * 1024

# The API carries sequence numbers as uint64; a log never comes near this.
MAX_SEQ = 2**63 - 1

RECORD = "record"
CHECKPOINT = "checkpoint"

# Why a checkpoint was written.
CHECKPOINT_CREATE = "create"
CHECKPOINT_START = "start"
CHECKPOINT_RECORDS = "records"
CHECKPOINT_INTERVAL = "interval"
CHECKPOINT_SHUTDOWN = "shutdown"

_MAC_DOMAIN = b"niemphong-audit-checkpoint/1\n"
_HEX_64 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = {"seq": int, "prev": str, "kind": str, "time": str, "hash": str}

Entry = dict[str, Any]


class EntryError(ValueError):
    """A line of the log is not a well-formed entry."""


def canonical(entry: Mapping[str, Any]) -> bytes:
    """Encode ``entry`` canonically: sorted keys, no spaces, UTF-8."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: Mapping[str, Any]) -> str:
    """Return the SHA-256 in hex of ``entry`` without its ``hash`` key."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def mac_input(checkpoint: Mapping[str, Any]) -> bytes:
    """Return the bytes a checkpoint's MAC covers: everything but ``hash`` and ``mac``."""
    body = {key: value for key, value in checkpoint.items() if key not in ("hash", "mac")}
    return _MAC_DOMAIN + canonical(body)


def encode_entry(entry: Entry) -> bytes:
    """Set ``entry["hash"]`` and return the entry as one line of the log."""
    entry["hash"] = entry_hash(entry)
    return canonical(entry) + b"\n"


def parse_entry(line: bytes) -> Entry:
    """Parse one line of the log, with or without its newline.

    Checks only the shape of the entry, not its hash or place in the chain.
    Raises EntryError naming what is wrong.
    """
    if len(line) > MAX_LINE_BYTES:
        raise EntryError(f"line of {len(line)} bytes exceeds {MAX_LINE_BYTES}")
    try:
        entry = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EntryError(f"not JSON: {exc}") from None
    if not isinstance(entry, dict):
        raise EntryError("not a JSON object")

    for key, kind in _REQUIRED.items():
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise EntryError(f"key {key!r} is missing or not a {kind.__name__}")
    if not 1 <= entry["seq"] <= MAX_SEQ:
        raise EntryError(f"seq {entry['seq']} is outside 1 to {MAX_SEQ}")
    if entry["kind"] not in (RECORD, CHECKPOINT):
        raise EntryError(f"unknown kind {entry['kind']!r}")
    if not _HEX_64.fullmatch(entry["prev"]) or not _HEX_64.fullmatch(entry["hash"]):
        raise EntryError("prev or hash is not 64 lowercase hex digits")
    if entry["kind"] == CHECKPOINT and not isinstance(entry.get("mac"), str):
        raise EntryError("checkpoint without mac")
    return entry


def utc_timestamp(moment: dt.datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with microseconds and a Z."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> dt.datetime | None:
    """Parse an entry's ``time``; None when it is not RFC 3339."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment
