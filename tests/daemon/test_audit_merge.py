"""Merging the audit logs of daemons that share a state database, by state_seq."""

from __future__ import annotations

from typing import Any

from niemphong.daemon.audit.merge import merge_logs


def record(seq: int, state_seq: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"seq": seq, "kind": "record", "operation": f"op-{seq}"}
    if state_seq is not None:
        entry["state_seq"] = state_seq
    return entry


def order(merged: list[Any]) -> list[tuple[str, int]]:
    return [(item.log_id, item.seq) for item in merged]


def test_merge_interleaves_by_state_seq() -> None:
    report, merged = merge_logs([
        ("a", [record(2, 1), record(3, 4), record(4, 5)]),
        ("b", [record(2, 2), record(3, 3), record(4, 7)]),
    ])

    assert report.ordered
    assert order(merged) == [("a", 2), ("b", 2), ("b", 3), ("a", 3), ("a", 4), ("b", 4)]
    assert (report.first_state_seq, report.last_state_seq) == (1, 7)


def test_merge_record_without_number_follows_its_predecessor() -> None:
    report, merged = merge_logs([
        ("a", [record(2, 1), record(3, None), record(4, 6)]),
        ("b", [record(2, 2), record(3, 5)]),
    ])

    assert report.ordered
    assert report.without_state_seq == 1
    assert order(merged) == [("a", 2), ("a", 3), ("b", 2), ("b", 3), ("a", 4)]


def test_merge_duplicate_number_reported() -> None:
    report, _ = merge_logs([("a", [record(2, 1), record(3, 2)]), ("b", [record(2, 2)])])

    assert not report.ordered
    assert report.problems == ["state_seq 2 appears in log a entry 3 and in log b entry 2"]


def test_merge_falling_number_reported() -> None:
    report, _ = merge_logs([("a", [record(2, 5), record(3, 4)]), ("b", [record(2, 1)])])

    assert not report.ordered
    assert report.problems == ["log a: entry 3 has state_seq 4, not above 5 before it"]


def test_merge_log_without_numbers_reported() -> None:
    report, _ = merge_logs([("a", [record(2, 1)]), ("sqlite", [record(2, None)])])

    assert not report.ordered
    assert "log sqlite has no state_seq" in report.problems[0]


def test_merge_single_unnumbered_log_ordered() -> None:
    report, merged = merge_logs([("sqlite", [record(2, None), record(3, None)])])

    assert report.ordered
    assert order(merged) == [("sqlite", 2), ("sqlite", 3)]
