"""``niemphongd audit verify``: check an audit log on the custody host, without a running daemon.

It opens the token with the daemon's configuration to check checkpoint MACs
and to read the log's anchor. Without the running daemon's memory it cannot
tell the entries after the last checkpoint of an unclean stop from forged
ones, so it reports them as a warning; ``niemphong audit verify`` against the
running daemon has no such gap.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from niemphong.daemon.audit import entries
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
