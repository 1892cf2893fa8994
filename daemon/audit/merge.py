"""One order over the audit logs of several daemons that share a state database.

Each daemon keeps its own hash-chained log. With a PostgreSQL state store
every record also carries ``state_seq``, a number from one database sequence
that all daemons draw from while holding their own log's lock. So
``state_seq`` rises along each log, no two records of any logs share one,
and a record written after another record was durable has the larger
number. Sorting by ``state_seq`` therefore gives one order of all records
that keeps each log's own order.

A record without ``state_seq`` (the database gave none when it was written)
goes right after the record before it in its own log. Numbers may have gaps:
a daemon killed after taking a number and before writing leaves one unused.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from niemphong.daemon.audit import entries
from niemphong.daemon.audit.entries import Entry


@dataclass(frozen=True)
class MergedRecord:
    """One record in the merged order: which log it is from and where."""

    log_id: str
    seq: int
    state_seq: int | None
    entry: Entry


@dataclass
class MergeReport:
    """Findings of a merge; with ``problems`` empty the logs fit one order."""

    logs: int = 0
    records: int = 0
    without_state_seq: int = 0
    first_state_seq: int | None = None
    last_state_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ordered(self) -> bool:
        return not self.problems


def log_records(lines: Iterable[bytes]) -> tuple[str, list[Entry]]:
    """Return a log's id and its records, in file order; lines that are not entries are skipped.

    Run the chain verification first: this only reads what a verified log holds.
    """
    log_id = ""
    records: list[Entry] = []
    for line in lines:
        try:
            entry = entries.parse_entry(line)
        except entries.EntryError:
            continue
        if entry["kind"] == entries.CHECKPOINT:
            log_id = log_id or str(entry.get("log_id", ""))
        else:
            records.append(entry)
    return log_id, records


def merge_logs(logs: Sequence[tuple[str, list[Entry]]]) -> tuple[MergeReport, list[MergedRecord]]:
    """Merge the records of ``logs`` (log id, records in file order) into one order and check it."""
    report = MergeReport(logs=len(logs))
    owner: dict[int, tuple[str, int]] = {}
    for log_id, records in logs:
        previous: int | None = None
        numbered = 0
        for entry in records:
            state_seq = _state_seq(entry)
            if state_seq is None:
                report.without_state_seq += 1
                continue
            numbered += 1
            if previous is not None and state_seq <= previous:
                report.problems.append(
                    f"log {log_id}: entry {entry['seq']} has state_seq {state_seq}, not above {previous} before it"
                )
            if state_seq in owner:
                other_log, other_seq = owner[state_seq]
                report.problems.append(
                    f"state_seq {state_seq} appears in log {other_log} entry {other_seq} "
                    f"and in log {log_id} entry {entry['seq']}"
                )
            owner[state_seq] = (log_id, entry["seq"])
            previous = state_seq
        if records and numbered == 0 and len(logs) > 1:
            report.problems.append(
                f"log {log_id} has no state_seq in any record, so it was not written on a shared "
                "state database and has no place in a merged order"
            )

    merged = _merge(logs)
    report.records = len(merged)
    numbers = [record.state_seq for record in merged if record.state_seq is not None]
    if numbers:
        report.first_state_seq = min(numbers)
        report.last_state_seq = max(numbers)
    return report, merged


def _merge(logs: Sequence[tuple[str, list[Entry]]]) -> list[MergedRecord]:
    # A k-way merge on each log's next record. A record without a number
    # takes the number of the record before it in its log, which is then the
    # smallest key left, so it comes out next.
    heap: list[tuple[int, int, int]] = []
    for index, (_, records) in enumerate(logs):
        if records:
            heapq.heappush(heap, (_key(records[0], 0), index, 0))
    merged: list[MergedRecord] = []
    while heap:
        key, index, position = heapq.heappop(heap)
        log_id, records = logs[index]
        entry = records[position]
        merged.append(MergedRecord(log_id, entry["seq"], _state_seq(entry), entry))
        if position + 1 < len(records):
            following = records[position + 1]
            heapq.heappush(heap, (_key(following, key), index, position + 1))
    return merged


def _key(entry: Entry, previous: int) -> int:
    state_seq = _state_seq(entry)
    return previous if state_seq is None else state_seq


def _state_seq(entry: Entry) -> int | None:
    value = entry.get("state_seq")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
