"""Ways to tamper with an audit log file, for the verification tests.

Each function takes the log's lines (bytes, with newlines) and returns the
tampered lines. Edits keep the file's inode, as an attacker editing in place
would, so a running daemon keeps the same file open.
"""

from __future__ import annotations

import json
from pathlib import Path

from niemphong.daemon.audit.entries import canonical, encode_entry


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_in_place(path: Path, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.write(data)
        handle.truncate()


def entry_of(line: bytes) -> dict:
    return json.loads(line)


def line_of_seq(lines: list[bytes], seq: int) -> int:
    """Return the index in ``lines`` of entry ``seq``."""
    return next(index for index, line in enumerate(lines) if entry_of(line)["seq"] == seq)


def record_seqs(lines: list[bytes]) -> list[int]:
    return [entry_of(line)["seq"] for line in lines if entry_of(line)["kind"] == "record"]


def edit_record(lines: list[bytes], seq: int, *, rehash: bool) -> list[bytes]:
    """Change who did the operation of record ``seq``; with ``rehash``, give it a fresh hash too."""
    index = line_of_seq(lines, seq)
    entry = entry_of(lines[index])
    entry["identity"] = "someone-else"
    edited = encode_entry(entry) if rehash else canonical(entry) + b"\n"
    return lines[:index] + [edited] + lines[index + 1:]


def remove(lines: list[bytes], seq: int) -> list[bytes]:
    index = line_of_seq(lines, seq)
    return lines[:index] + lines[index + 1:]


def swap(lines: list[bytes], first: int, second: int) -> list[bytes]:
    result = list(lines)
    a, b = line_of_seq(lines, first), line_of_seq(lines, second)
    result[a], result[b] = result[b], result[a]
    return result


def duplicate(lines: list[bytes], seq: int) -> list[bytes]:
    index = line_of_seq(lines, seq)
    return lines[:index + 1] + [lines[index]] + lines[index + 1:]


def forge_tail(lines: list[bytes], count: int) -> list[bytes]:
    """Append ``count`` records that chain correctly from the last entry, as an attacker could."""
    last = entry_of(lines[-1])
    forged = []
    for offset in range(1, count + 1):
        entry = {
            "seq": last["seq"] + 1,
            "prev": last["hash"],
            "kind": "record",
            "time": last["time"],
            "request_id": f"{offset:016x}",
            "identity": "viewer",
            "roles": ["viewer"],
            "operation": "EnvelopeService/Open",
            "decision": "allowed",
            "status": "OK",
            "reason": "",
            "facts": {},
        }
        forged.append(encode_entry(entry))
        last = entry
    return lines + forged


def rewrite_chain(lines: list[bytes], seq: int) -> list[bytes]:
    """Edit record ``seq`` and recompute every later hash and link, keeping the old MACs."""
    index = line_of_seq(lines, seq)
    result = edit_record(lines, seq, rehash=True)
    previous = entry_of(result[index])["hash"]
    for position in range(index + 1, len(result)):
        entry = entry_of(result[position])
        entry["prev"] = previous
        result[position] = encode_entry(entry)
        previous = entry["hash"]
    return result
