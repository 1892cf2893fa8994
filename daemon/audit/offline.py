"""``niemphongd audit verify``: check an audit log on the custody host, without a running daemon.

It opens the token with the daemon's configuration to check checkpoint MACs
and to read the log's anchor. Without the running daemon's memory it cannot
tell the entries after the last checkpoint of an unclean stop from forged
ones, so it reports them as a warning; ``niemphong audit verify`` against the
running daemon has no such gap.

Given the logs of several daemons that share a state database, it verifies
each chain and then merges their records into one order (``merge.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from niemphong.daemon.audit import entries
from niemphong.daemon.audit.merge import MergedRecord, MergeReport, log_records, merge_logs
from niemphong.daemon.audit.token_key import TokenCheckpointKey
from niemphong.daemon.audit.verify import Problem, Report, read_log_lines, verify_log
from niemphong.daemon.config import Config, read_pin
from niemphong.daemon.hsm import Pkcs11Token


def verify_offline(config: Config, log_path: Path | None = None) -> Report:
    """Verify the log at ``log_path`` (default: the configured one) with the token's key and anchor."""
    path = log_path or config.audit.path
    token = Pkcs11Token(config.token, read_pin(config.token))
    try:
        key = TokenCheckpointKey(token)
        anchor = key.load_anchor(_log_id(path))
        return verify_log(read_log_lines(path), key, anchor=anchor)
    finally:
        token.close()


def merge_verified(paths: Sequence[Path]) -> tuple[MergeReport, list[MergedRecord]]:
    """Merge the records of verified logs into the one order their ``state_seq`` numbers give."""
    return merge_logs([log_records(read_log_lines(path)) for path in paths])


def merge_json(report: MergeReport) -> dict[str, object]:
    value = asdict(report)
    value["ordered"] = report.ordered
    return value


def merge_text(report: MergeReport) -> str:
    """Return the merge report as English text for the operator."""
    span = (
        f"state_seq {report.first_state_seq} to {report.last_state_seq}"
        if report.first_state_seq is not None else "no state_seq"
    )
    lines = [f"merged order: {report.records} records from {report.logs} logs, {span}, "
             f"{report.without_state_seq} records without state_seq"]
    if report.ordered:
        lines.append("ordered: every log's records fit one order")
    else:
        lines += [f"NOT ORDERED: {problem}" for problem in report.problems]
    return "\n".join(lines)


def write_merged(records: Sequence[MergedRecord], path: Path) -> None:
    """Write the merged records as JSON Lines, each entry with the id of the log it is from."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({"log_id": record.log_id, **record.entry}, ensure_ascii=False, sort_keys=True))
            handle.write("\n")


def _log_id(path: Path) -> str:
    with path.open("rb") as handle:
        first = handle.readline(entries.MAX_LINE_BYTES + 1)
    try:
        return str(entries.parse_entry(first).get("log_id", ""))
    except entries.EntryError:
        return ""


def report_json(report: Report) -> str:
    """Return the report as JSON with English keys."""
    value = asdict(report)
    value["intact"] = report.intact
    return json.dumps(value, indent=2)


def report_text(report: Report, path: Path) -> str:
    """Return the report as English text for the operator."""
    lines = [
        f"audit log {path} (log id {report.log_id or 'unknown'}): {report.entries} entries, "
        f"{report.records} records, {report.checkpoints} checkpoints, last checkpoint at entry "
        f"{report.last_checkpoint_seq}",
    ]
    if report.problem is None:
        lines.append("intact: every hash, link and checkpoint verifies")
    else:
        lines.append(f"NOT INTACT: {_describe(report.problem)}")
    lines += [f"warning: {_describe(warning)}" for warning in report.warnings]
    return "\n".join(lines)


def _describe(problem: Problem) -> str:
    return f"{problem.kind.lower().replace('_', ' ')} at entry {problem.seq}, line {problem.line}: {problem.detail}"
