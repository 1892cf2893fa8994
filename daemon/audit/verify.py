"""Verification of a whole audit log, naming the first bad entry and what was done to it.

:func:`verify_log` reads the log once, in order, and stops at the first
problem. It tells apart:

- an edited entry: its content no longer matches its ``hash``, or it no
  longer matches the hash the next entry links to, or the line is not an
  entry at all;
- removed entries: sequence numbers jump and the missing ones appear
  nowhere later;
- reordered entries: sequence numbers jump and the missing one appears later;
- a duplicated entry: a sequence number appears again;
- a cut-off tail: the file ends in the middle of a line, or before the last
  entry the daemon wrote, or before the checkpoint the token's anchor names;
- a forged tail: entries after the last one the daemon wrote, entries after
  the last checkpoint that differ from what it wrote, or entries after a
  shutdown checkpoint;
- a forged checkpoint: its MAC does not verify with the token's key, which
  is what rewriting the chain with fresh hashes leads to.

Without the running daemon's memory (``live``), entries after the last
checkpoint of a daemon that stopped uncleanly cannot be told from forged
ones, so they are reported as a warning instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from niemphong.daemon.audit import entries
from niemphong.daemon.audit.entries import Entry, EntryError
from niemphong.daemon.audit.log import LiveHead
from niemphong.daemon.audit.token_key import Anchor

EDITED = "EDITED"
REMOVED = "REMOVED"
REORDERED = "REORDERED"
DUPLICATED = "DUPLICATED"
TRUNCATED = "TRUNCATED"
FORGED_TAIL = "FORGED_TAIL"
FORGED_CHECKPOINT = "FORGED_CHECKPOINT"
# Warnings: facts an inspector should know that do not show tampering.
UNAUTHENTICATED_TAIL = "UNAUTHENTICATED_TAIL"
RECOVERED_AFTER_CRASH = "RECOVERED_AFTER_CRASH"

MAX_WARNINGS = 100


class MacVerifier(Protocol):
    def verify(self, data: bytes, mac: bytes) -> bool: ...


@dataclass(frozen=True)
class Problem:
    """One finding. ``seq`` is the first bad entry; ``line`` where it is or should be, from 1."""

    kind: str
    seq: int
    line: int
    expected_seq: int = 0
    end_seq: int = 0
    detail: str = ""


@dataclass
class Report:
    """The result of verifying a log; counts stop at the first problem."""

    log_id: str = ""
    entries: int = 0
    records: int = 0
    checkpoints: int = 0
    last_seq: int = 0
    last_checkpoint_seq: int = 0
    problem: Problem | None = None
    warnings: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.problem is None

    def warn(self, warning: Problem) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(warning)


def read_log_lines(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """Yield the lines of the log at ``path`` with their newlines, reading at most ``limit`` bytes.

    A line longer than any entry is cut to ``MAX_LINE_BYTES + 1`` bytes and
    the rest of it skipped, so a damaged file cannot exhaust memory.
    """
    remaining = limit
    bound = entries.MAX_LINE_BYTES + 1
    with path.open("rb") as handle:
        while remaining is None or remaining > 0:
            line = handle.readline(bound if remaining is None else min(bound, remaining))
            if not line:
                return
            if remaining is not None:
                remaining -= len(line)
            if len(line) == bound and not line.endswith(b"\n"):
                # Skip to the end of the over-long line.
                while remaining is None or remaining > 0:
                    rest = handle.readline(bound if remaining is None else min(bound, remaining))
                    if remaining is not None:
                        remaining -= len(rest)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield line


def verify_log(
    lines: Iterable[bytes],
    key: MacVerifier,
    *,
    anchor: Anchor | None = None,
    live: LiveHead | None = None,
) -> Report:
    """Verify the entries in ``lines`` and return the report.

    Args:
        lines: the log's lines in file order, each with its newline.
        key: checks checkpoint MACs inside the token.
        anchor: the token's record of the log's newest checkpoint, if any.
        live: what the running daemon wrote; None when verifying offline.

    Raises TokenUnavailable or CheckpointKeyError when the token cannot check a MAC.
    """
    report = Report()
    scan = _Scan(report, key, live)
    iterator = iter(lines)
    for line_number, line in enumerate(iterator, start=1):
        problem = scan.check_line(line_number, line, iterator)
        if problem is not None:
            report.problem = problem
            return report

    report.problem = scan.check_end(anchor)
    return report


class _Scan:
    """The state of one pass over the log."""

    def __init__(self, report: Report, key: MacVerifier, live: LiveHead | None) -> None:
        self.report = report
        self.key = key
        self.live = live
        self.expected_seq = 1
        self.expected_prev = entries.GENESIS_HASH
        self.line_count = 0
        self.last_checkpoint: Entry | None = None
        self.last_checkpoint_line = 0
        # Hashes of the entries the live daemon still remembers, and where the
        # first entry beyond its head stands.
        self.remembered = dict(live.recent) if live is not None else {}
        self.seen_remembered: dict[int, tuple[str, int]] = {}
        self.beyond_head_line = 0

    def check_line(self, line_number: int, line: bytes, rest: Iterator[bytes]) -> Problem | None:
        self.line_count = line_number
        seq = self.expected_seq
        if len(line) > entries.MAX_LINE_BYTES:
            return Problem(EDITED, seq, line_number, detail=f"line {line_number} is longer than any entry")
        if not line.endswith(b"\n"):
            return Problem(
                TRUNCATED, seq, line_number,
                detail=f"the log ends inside line {line_number}: an entry was cut off",
            )
        try:
            entry = entries.parse_entry(line)
        except EntryError as exc:
            return Problem(EDITED, seq, line_number, detail=f"line {line_number} is not an entry: {exc}")

        problem = self._check_order(entry, line_number, rest)
        if problem is not None:
            return problem
        problem = self._check_chain(entry, line_number)
        if problem is not None:
            return problem
        if entry["kind"] == entries.CHECKPOINT:
            problem = self._check_checkpoint(entry, line_number)
            if problem is not None:
                return problem
        else:
            self.report.records += 1

        seq = entry["seq"]
        if seq in self.remembered:
            self.seen_remembered[seq] = (entry["hash"], line_number)
        if self.live is not None and seq == self.live.seq + 1:
            self.beyond_head_line = line_number
        self.report.entries += 1
        self.report.last_seq = seq
        self.expected_seq = seq + 1
        self.expected_prev = entry["hash"]
        return None

    def _check_order(self, entry: Entry, line_number: int, rest: Iterator[bytes]) -> Problem | None:
        seq = entry["seq"]
        expected = self.expected_seq
        if seq == expected:
            return None
        if seq < expected:
            return Problem(
                DUPLICATED, seq, line_number, expected_seq=expected,
                detail=f"line {line_number} repeats entry {seq} where entry {expected} belongs",
            )
        if _appears_later(expected, rest):
            return Problem(
                REORDERED, seq, line_number, expected_seq=expected,
                detail=f"line {line_number} holds entry {seq}, but entry {expected} belongs there and comes later",
            )
        return Problem(
            REMOVED, expected, line_number, expected_seq=expected, end_seq=seq - 1,
            detail=f"entries {expected} to {seq - 1} are missing before line {line_number}",
        )

    def _check_chain(self, entry: Entry, line_number: int) -> Problem | None:
        seq = entry["seq"]
        if entries.entry_hash(entry) != entry["hash"]:
            return Problem(
                EDITED, seq, line_number,
                detail=f"entry {seq} on line {line_number} no longer matches its hash",
            )
        if entry["prev"] != self.expected_prev:
            # This entry's own hash holds, so the one before it was changed
            # and given a fresh hash that this link no longer matches.
            if seq == 1:
                return Problem(EDITED, 1, line_number, detail="the first entry does not start the chain")
            return Problem(
                EDITED, seq - 1, line_number - 1,
                detail=f"entry {seq - 1} was changed: entry {seq} on line {line_number} links to another hash",
            )
        return None

    def _check_checkpoint(self, entry: Entry, line_number: int) -> Problem | None:
        seq = entry["seq"]
        log_id = str(entry.get("log_id", ""))
        if seq == 1:
            self.report.log_id = log_id
        elif log_id != self.report.log_id:
            return Problem(EDITED, seq, line_number, detail=f"checkpoint {seq} belongs to another log ({log_id})")

        try:
            mac = bytes.fromhex(str(entry["mac"]))
        except ValueError:
            mac = b""
        if not self.key.verify(entries.mac_input(entry), mac):
            since = self.last_checkpoint["seq"] + 1 if self.last_checkpoint is not None else 1
            return Problem(
                FORGED_CHECKPOINT, seq, line_number, expected_seq=since,
                detail=f"checkpoint {seq} does not verify with the token's key: entries {since} to {seq} were rewritten",
            )

        recovered = entry.get("recovered")
        if isinstance(recovered, dict):
            self.report.warn(Problem(
                RECOVERED_AFTER_CRASH, int(recovered.get("from_seq", 0)), line_number,
                end_seq=int(recovered.get("to_seq", 0)),
                detail=f"entries after the checkpoint before them were covered only at restart, by checkpoint {seq}",
            ))
        self.report.checkpoints += 1
        self.report.last_checkpoint_seq = seq
        self.last_checkpoint = entry
        self.last_checkpoint_line = line_number
        return None

    def check_end(self, anchor: Anchor | None) -> Problem | None:
        last_seq = self.report.last_seq
        next_line = self.line_count + 1

        if self.live is not None:
            problem = self._check_against_live(last_seq, next_line)
            if problem is not None:
                return problem
        if anchor is not None and last_seq < anchor.seq:
            return Problem(
                TRUNCATED, last_seq + 1, next_line, end_seq=anchor.seq,
                detail=f"the log ends at entry {last_seq}, but the token's anchor names checkpoint {anchor.seq}",
            )

        checkpoint = self.last_checkpoint
        if self.live is None and checkpoint is not None and last_seq > checkpoint["seq"]:
            first = checkpoint["seq"] + 1
            if checkpoint.get("reason") == entries.CHECKPOINT_SHUTDOWN:
                return Problem(
                    FORGED_TAIL, first, self.last_checkpoint_line + 1, end_seq=last_seq,
                    detail=f"entries {first} to {last_seq} follow the shutdown checkpoint {checkpoint['seq']}",
                )
            self.report.warn(Problem(
                UNAUTHENTICATED_TAIL, first, self.last_checkpoint_line + 1, end_seq=last_seq,
                detail=f"entries {first} to {last_seq} follow the last checkpoint; no MAC covers them yet",
            ))
        return None

    def _check_against_live(self, last_seq: int, next_line: int) -> Problem | None:
        live = self.live
        assert live is not None
        for seq, remembered_hash in sorted(self.remembered.items()):
            seen = self.seen_remembered.get(seq)
            if seen is not None and seen[0] != remembered_hash:
                return Problem(
                    FORGED_TAIL, seq, seen[1], end_seq=last_seq,
                    detail=f"entries from {seq} on differ from what niemphongd wrote after its last checkpoint",
                )
        if last_seq < live.seq:
            return Problem(
                TRUNCATED, last_seq + 1, next_line, end_seq=live.seq,
                detail=f"the log ends at entry {last_seq}, but niemphongd wrote up to entry {live.seq}",
            )
        if last_seq > live.seq:
            return Problem(
                FORGED_TAIL, live.seq + 1, self.beyond_head_line, end_seq=last_seq,
                detail=f"entries {live.seq + 1} to {last_seq} follow the last entry niemphongd wrote",
            )
        return None


def _appears_later(seq: int, rest: Iterator[bytes]) -> bool:
    """Return whether an entry numbered ``seq`` is among the remaining lines."""
    for line in rest:
        try:
            value = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(value, dict) and value.get("seq") == seq:
            return True
    return False
