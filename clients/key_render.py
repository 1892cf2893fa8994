"""Tables and JSON for the key registry, key changes, recovery sessions and rewrap reports.

JSON keys are English and stable; states and operations use the daemon's
names (``active``, ``retired_sealing``, ``rotate``); times are ISO 8601 UTC
with the Unix seconds beside them, as in render.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from niemphong.clients.i18n import Lang, format_count, format_timestamp, translate
from niemphong.clients.protocol import level_name
from niemphong.clients.render import level_label, printable
from niemphong.clients.rewrap import FileOutcome, FileStatus, RewrapReport
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import niemphong_pb2 as pb

KEY_STATE_NAMES = {
    kpb.KEY_STATE_ACTIVE: "active",
    kpb.KEY_STATE_RETIRED_SEALING: "retired_sealing",
    kpb.KEY_STATE_RETIRED_OPENING: "retired_opening",
    kpb.KEY_STATE_DESTROYED: "destroyed",
}
OPERATION_NAMES = {
    kpb.KEY_OPERATION_CREATE: "create",
    kpb.KEY_OPERATION_ROTATE: "rotate",
    kpb.KEY_OPERATION_RETIRE_SEALING: "retire_sealing",
    kpb.KEY_OPERATION_RETIRE_OPENING: "retire_opening",
    kpb.KEY_OPERATION_DESTROY: "destroy",
}
CHANGE_STATE_NAMES = {
    kpb.KEY_CHANGE_STATE_PENDING: "pending",
    kpb.KEY_CHANGE_STATE_DONE: "done",
    kpb.KEY_CHANGE_STATE_REJECTED: "rejected",
    kpb.KEY_CHANGE_STATE_EXPIRED: "expired",
}
SESSION_STATE_NAMES = {
    kpb.RECOVERY_STATE_PENDING: "pending",
    kpb.RECOVERY_STATE_ACTIVE: "active",
    kpb.RECOVERY_STATE_ENDED: "ended",
    kpb.RECOVERY_STATE_EXPIRED: "expired",
    kpb.RECOVERY_STATE_FAILED: "failed",
    kpb.RECOVERY_STATE_NONE: "none",
}


def _utc(unix_seconds: int) -> str | None:
    if not unix_seconds:
        return None
    return dt.datetime.fromtimestamp(unix_seconds, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _time(unix_seconds: int, lang: Lang) -> str:
    return format_timestamp(unix_seconds, lang) if unix_seconds else translate(lang, "word.unknown")


def _yes_no(value: bool, lang: Lang) -> str:
    return translate(lang, "word.yes" if value else "word.no")


def _table(header: list[str], rows: list[list[str]]) -> str:
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]
    )


def state_label(name: str, lang: Lang) -> str:
    return translate(lang, f"key_state.{name}")


def operation_label(name: str, lang: Lang) -> str:
    return translate(lang, f"key_operation.{name}")


def _age_days(seconds: int) -> int:
    return seconds // 86400


# Key registry -------------------------------------------------------------------


def key_version_json(key: kpb.KeyVersion) -> dict[str, object]:
    return {
        "level": level_name(key.level),
        "key_id": key.key_id,
        "version": key.version,
        "state": KEY_STATE_NAMES.get(key.state, "unspecified"),
        "created_at": _utc(key.created_at),
        "created_at_unix": key.created_at,
        "state_changed_at": _utc(key.state_changed_at),
        "in_token": key.in_token,
        "artefacts": key.artefacts,
        "age_seconds": key.age_seconds if key.state == kpb.KEY_STATE_ACTIVE else None,
        "rotation_due": key.rotation_due,
    }


def keys_json(response: kpb.ListKeysResponse) -> dict[str, object]:
    """Return the JSON object printed by ``keys list --json``."""
    levels = []
    for policy in response.levels:
        recovery: dict[str, object] | None = None
        if policy.HasField("recovery_key"):
            key = policy.recovery_key
            recovery = {
                "key_id": key.key_id,
                "version": key.version,
                "wrap_algorithm": key.wrap_algorithm,
                "fingerprint_sha256": key.fingerprint_sha256,
                "key_bits": key.key_bits,
                "artefacts_without": policy.artefacts_without_recovery,
            }
        levels.append({
            "level": level_name(policy.level),
            "key_id": policy.key_id,
            "rotation_days": policy.rotation_days,
            "custodians": policy.custodians,
            "recovery_key": recovery,
        })
    return {"keys": [key_version_json(key) for key in response.keys], "levels": levels}


def render_keys(response: kpb.ListKeysResponse, lang: Lang) -> str:
    """Return the ``keys list`` table followed by one line of policy per level."""
    header = [translate(lang, f"keys.column.{name}") for name in (
        "level", "key_id", "version", "state", "created_at", "in_token", "artefacts", "rotation",
    )]
    rows = []
    for key in response.keys:
        rotation = ""
        if key.state == kpb.KEY_STATE_ACTIVE:
            rotation = translate(
                lang, "keys.rotation_due" if key.rotation_due else "keys.rotation_age",
                days=format_count(_age_days(key.age_seconds), lang),
            )
        rows.append([
            level_label(key.level, lang),
            key.key_id,
            str(key.version),
            state_label(KEY_STATE_NAMES.get(key.state, "none"), lang),
            _time(key.created_at, lang),
            _yes_no(key.in_token, lang),
            format_count(key.artefacts, lang),
            rotation,
        ])
    lines = [_table(header, rows), ""]
    for policy in response.levels:
        lines.append(translate(
            lang, "keys.policy_line", level=level_label(policy.level, lang), key_id=policy.key_id,
            days=format_count(policy.rotation_days, lang), custodians=policy.custodians,
        ))
        if policy.HasField("recovery_key"):
            key = policy.recovery_key
            lines.append(translate(
                lang, "keys.recovery_line", key_id=key.key_id, version=key.version, algorithm=key.wrap_algorithm,
                bits=key.key_bits, fingerprint=key.fingerprint_sha256,
                missing=format_count(policy.artefacts_without_recovery, lang),
            ))
        else:
            lines.append(translate(lang, "keys.no_recovery_line"))
    return "\n".join(lines)


def render_due(keys: Sequence[kpb.KeyVersion], lang: Lang, policies: Sequence[kpb.LevelKeyStatus]) -> str:
    """Return one line per key version past its rotation period."""
    periods = {policy.level: policy.rotation_days for policy in policies}
    return "\n".join(
        translate(
            lang, "keys.due_line", level=level_label(key.level, lang), key_id=key.key_id, version=key.version,
            days=format_count(_age_days(key.age_seconds), lang), period=format_count(periods.get(key.level, 0), lang),
        )
        for key in keys
    )


# Key changes ----------------------------------------------------------------------


def key_change_json(change: kpb.KeyChange) -> dict[str, object]:
    return {
        "change_id": change.change_id,
        "operation": OPERATION_NAMES.get(change.operation, "unspecified"),
        "level": level_name(change.level),
        "key_id": change.key_id,
        "version": change.version or None,
        "reason": change.reason or None,
        "proposer": change.proposer,
        "state": CHANGE_STATE_NAMES.get(change.state, "unspecified"),
        "confirmations": [
            {"custodian": c.custodian, "confirmed_at": _utc(c.confirmed_at), "confirmed_at_unix": c.confirmed_at}
            for c in change.confirmations
        ],
        "custodians_required": change.custodians_required,
        "created_at": _utc(change.created_at),
        "expires_at": _utc(change.expires_at),
        "decided_at": _utc(change.decided_at),
        "rejected_by": change.rejected_by or None,
        "reject_reason": change.reject_reason or None,
    }


def describe_change(change: kpb.KeyChange, lang: Lang) -> dict[str, object]:
    """Return the parameters the key change messages share."""
    return {
        "change_id": change.change_id,
        "operation": operation_label(OPERATION_NAMES.get(change.operation, "create"), lang),
        "level": level_label(change.level, lang),
        "key_id": change.key_id,
        "version": change.version or "?",
        "count": len(change.confirmations),
        "required": change.custodians_required,
    }


def render_changes(changes: Sequence[kpb.KeyChange], lang: Lang) -> str:
    """Return the ``keys pending`` table."""
    header = [translate(lang, f"keys.column.{name}") for name in (
        "change_id", "operation", "level", "version", "proposer", "confirmations", "expires_at", "reason",
    )]
    rows = [
        [
            change.change_id,
            operation_label(OPERATION_NAMES.get(change.operation, "create"), lang),
            level_label(change.level, lang),
            str(change.version) if change.version else "",
            change.proposer,
            f"{len(change.confirmations)}/{change.custodians_required}",
            _time(change.expires_at, lang),
            " ".join(change.reason.split()),
        ]
        for change in changes
    ]
    return _table(header, rows)


# Recovery sessions --------------------------------------------------------------------


def session_json(session: kpb.RecoverySession) -> dict[str, object]:
    return {
        "session_id": session.session_id or None,
        "state": SESSION_STATE_NAMES.get(session.state, "unspecified"),
        "started_by": session.started_by or None,
        "confirmed_by": session.confirmed_by or None,
        "reason": session.reason or None,
        "started_at": _utc(session.started_at),
        "expires_at": _utc(session.expires_at),
        "ended_at": _utc(session.ended_at),
        "ended_by": session.ended_by or None,
    }


def render_session(session: kpb.RecoverySession, lang: Lang) -> str:
    """Return the ``recover status`` lines."""
    state = SESSION_STATE_NAMES.get(session.state, "none")
    if state == "none":
        return translate(lang, "recover.no_session")
    rows = [
        (translate(lang, "recover.field.session_id"), session.session_id),
        (translate(lang, "recover.field.state"), state_label(state, lang)),
        (translate(lang, "recover.field.started_by"), session.started_by),
        (translate(lang, "recover.field.confirmed_by"), session.confirmed_by or translate(lang, "word.none")),
        (translate(lang, "recover.field.reason"), " ".join(session.reason.split())),
        (translate(lang, "recover.field.started_at"), _time(session.started_at, lang)),
        (translate(lang, "recover.field.expires_at"), _time(session.expires_at, lang)),
    ]
    if session.ended_at:
        rows.append((translate(lang, "recover.field.ended_at"), _time(session.ended_at, lang)))
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{(label + ':').ljust(width)}{printable(value)}" for label, value in rows)


# Rewrap reports ---------------------------------------------------------------------------


def _keys_text(keys: Sequence[pb.KeyRef]) -> list[dict[str, object]]:
    return [{"key_id": key.key_id, "version": key.version, "wrap_algorithm": key.wrap_algorithm} for key in keys]


def outcome_json(outcome: FileOutcome) -> dict[str, object]:
    return {
        "path": str(outcome.path),
        "status": outcome.status.value,
        "artefact_id": outcome.artefact_id or None,
        "previous_keys": _keys_text(outcome.previous_keys),
        "keys": _keys_text(outcome.keys),
        "recorded": outcome.recorded,
        "skip_reason": outcome.skip_reason or None,
        "error_reason": (outcome.error.reason or outcome.error.message_id) if outcome.error else None,
    }


def report_json(report: RewrapReport) -> dict[str, object]:
    """Return the JSON object printed by ``rewrap --json`` and ``recover rewrap --json``."""
    return {
        "root": str(report.root),
        "rewrapped": report.count(FileStatus.REWRAPPED),
        "current": report.count(FileStatus.CURRENT),
        "skipped": report.count(FileStatus.SKIPPED),
        "failed": report.count(FileStatus.FAILED),
        "leftovers_removed": report.leftovers_removed,
        "files": [outcome_json(outcome) for outcome in report.outcomes],
    }
