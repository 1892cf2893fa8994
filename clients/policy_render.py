"""Tables and JSON objects for the classification policy and its decisions.

Decisions carry niemphongd's own explanation in Vietnamese and English; the
client shows the one in the user's language. JSON keys are English and
stable; levels use the command-line names and dates are ISO 8601.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from niemphong.clients.i18n import Lang, format_date, translate
from niemphong.clients.manifest import ManifestRow, describe_problem, row_number
from niemphong.clients.protocol import level_name
from niemphong.clients.render import level_label, printable
from niemphong.v1 import niemphong_pb2 as pb

_OUTCOME_NAMES = {
    pb.DECISION_OUTCOME_SEAL: "seal",
    pb.DECISION_OUTCOME_NOT_SECRET: "not_secret",
    pb.DECISION_OUTCOME_REFUSE: "refuse",
}


def outcome_name(decision: pb.ClassificationDecision) -> str:
    return _OUTCOME_NAMES.get(decision.outcome, "refuse")


def explanation(decision: pb.ClassificationDecision, lang: Lang) -> str:
    """Return niemphongd's reason in ``lang``."""
    return printable(decision.explanation if lang == "vi" or not decision.explanation_en else decision.explanation_en)


def _date(value: str, lang: Lang) -> str:
    if not value:
        return "—"
    try:
        return format_date(dt.date.fromisoformat(value), lang)
    except ValueError:
        return printable(value)


def decision_label(decision: pb.ClassificationDecision, lang: Lang) -> str:
    """Return "Niêm phong (Mật)", "Không chứa BMNN (điểm d)" or "Từ chối" in ``lang``."""
    outcome = outcome_name(decision)
    if outcome == "seal":
        return translate(lang, "decision.seal", level=level_label(decision.level, lang))
    if outcome == "not_secret":
        return translate(lang, "decision.not_secret", rule=decision.rule)
    return translate(lang, "decision.refuse")


def decision_json(decision: pb.ClassificationDecision, lang: Lang) -> dict[str, object]:
    """Return the JSON object of one decision."""
    outcome = outcome_name(decision)
    return {
        "decision": outcome,
        "level": level_name(decision.level) if outcome == "seal" else None,
        "rule": decision.rule or None,
        "code": decision.code,
        "stamp_required": decision.declassification_stamp_required,
        "protected_until": decision.protected_until or None,
        "catalog_item": decision.catalog_item or None,
        "decided_on": decision.decided_on or None,
        "reason": explanation(decision, lang),
    }


def _problem_text(row: ManifestRow, lang: Lang) -> str:
    assert row.problem is not None
    return translate(lang, "manifest.row_problem", problem=describe_problem(row.problem, lang))


def row_json(row: ManifestRow, decided: pb.DecidedDocument | None, lang: Lang) -> dict[str, object]:
    """Return the JSON object for one row of a handover list."""
    stated = level_name(row.document.level) if row.document is not None and row.document.level else None
    head: dict[str, object] = {"row": row_number(row.row), "doc_number": row.doc_number, "stated_level": stated}
    if decided is None:
        return head | {
            "decision": "refuse", "level": None, "rule": None, "code": "INVALID_ROW", "stamp_required": False,
            "protected_until": None, "catalog_item": None, "decided_on": None, "reason": _problem_text(row, lang),
        }
    return head | decision_json(decided.decision, lang)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    cells = [[printable(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def render_check_table(results: Sequence[tuple[ManifestRow, pb.DecidedDocument | None]], lang: Lang) -> str:
    """Return the `policy check` table, the reason for each row below it, and a count of outcomes."""
    header = [
        translate(lang, "check.row"), translate(lang, "check.doc_number"), translate(lang, "check.stated_level"),
        translate(lang, "check.decision"), translate(lang, "check.stamp"), translate(lang, "check.until"),
    ]
    rows = []
    reasons = []
    counts = {"seal": 0, "not_secret": 0, "refuse": 0}
    for row, decided in results:
        stated = level_label(row.document.level, lang) if row.document is not None and row.document.level else "—"
        if decided is None:
            counts["refuse"] += 1
            rows.append([row.row, row.doc_number, stated, translate(lang, "decision.refuse"), "—", "—"])
            reasons.append((row.row, _problem_text(row, lang)))
            continue
        decision = decided.decision
        counts[outcome_name(decision)] += 1
        stamp = translate(lang, "word.yes" if decision.declassification_stamp_required else "word.no")
        until = _date(decision.protected_until, lang) if outcome_name(decision) == "seal" else "—"
        rows.append([row.row, row.doc_number, stated, decision_label(decision, lang), stamp, until])
        reasons.append((row.row, explanation(decision, lang)))

    lines = [_table(header, rows), "", translate(lang, "check.reasons")]
    lines += [translate(lang, "check.reason_line", row=printable(label), reason=text) for label, text in reasons]
    lines += ["", translate(lang, "check.summary", total=len(results), **counts)]
    return "\n".join(lines)


def policy_json(summary: pb.PolicySummary) -> dict[str, object]:
    """Return the JSON object printed by `policy show --json`."""
    return {
        "policy_file": summary.policy_file,
        "policy_sha256": summary.policy_sha256,
        "development": summary.development,
        "require_basis": summary.require_basis,
        "token_profile": summary.token_profile,
        "today": summary.today,
        "levels": [
            {
                "level": level_name(level.level), "key_id": level.key_id,
                "token_profiles": list(level.token_profiles), "approvals": level.approvals,
                "grant_hours": level.grant_hours, "grant_opens": level.grant_opens, "printing": level.printing,
                "rotation_days": level.rotation_days, "protection_years": level.protection_years,
                "custodians": level.custodians,
                "encryption": level.encryption or "host",
            }
            for level in summary.levels
        ],
        "catalog_files": list(summary.catalog_files),
        "catalog": [
            {"decision": entry.decision, "items": entry.items, "in_force": entry.in_force, "sample": entry.sample}
            for entry in summary.catalog
        ],
        "standing_decisions": [
            {
                "kind": entry.kind, "name": entry.name, "level": level_name(entry.level), "basis": entry.basis,
                "decision": entry.decision, "decided_on": entry.decided_on,
            }
            for entry in summary.standing_decisions
        ],
    }


def render_policy(summary: pb.PolicySummary, lang: Lang) -> str:
    """Return the `policy show` text."""
    yes_no = {True: translate(lang, "word.yes"), False: translate(lang, "word.no")}
    lines = [
        translate(lang, "policy.file", path=summary.policy_file),
        translate(lang, "policy.sha256", sha256=summary.policy_sha256),
        translate(lang, "policy.development_on" if summary.development else "policy.development_off"),
        translate(lang, "policy.token_profile", profile=summary.token_profile),
        translate(lang, "policy.require_basis", value=yes_no[summary.require_basis]),
        translate(lang, "policy.today", today=_date(summary.today, lang)),
        "",
    ]

    header = [
        translate(lang, "policy.col.level"), translate(lang, "policy.col.key"), translate(lang, "policy.col.profiles"),
        translate(lang, "policy.col.approvals"), translate(lang, "policy.col.grant"),
        translate(lang, "policy.col.printing"), translate(lang, "policy.col.rotation"),
        translate(lang, "policy.col.custodians"), translate(lang, "policy.col.years"),
        translate(lang, "policy.col.encryption"),
    ]
    rows = [
        [
            level_label(level.level, lang), level.key_id,
            ", ".join(level.token_profiles) or translate(lang, "policy.any_hardware"), str(level.approvals),
            translate(lang, "policy.grant_value", hours=level.grant_hours, opens=level.grant_opens),
            yes_no[level.printing], translate(lang, "policy.days", days=level.rotation_days),
            str(level.custodians), translate(lang, "policy.years", years=level.protection_years),
            translate(lang, "policy.encryption.token" if level.encryption == "token" else "policy.encryption.host"),
        ]
        for level in summary.levels
    ]
    lines += [_table(header, rows), "", translate(lang, "policy.catalog")]
    for path in summary.catalog_files:
        lines.append(f"  {printable(path)}")
    for entry in summary.catalog:
        if entry.in_force:
            key = "policy.catalog_sample" if entry.sample else "policy.catalog_in_force"
            lines.append(translate(lang, key, decision=printable(entry.decision), items=entry.items))
        else:
            lines.append(translate(lang, "policy.catalog_superseded", decision=printable(entry.decision)))

    lines += ["", translate(lang, "policy.standing")]
    if not summary.standing_decisions:
        lines.append("  " + translate(lang, "word.none"))
    for entry in summary.standing_decisions:
        lines.append(translate(
            lang, "policy.standing_entry", kind=printable(entry.kind), name=printable(entry.name),
            level=level_label(entry.level, lang), basis=printable(entry.basis), decision=printable(entry.decision),
            decided_on=_date(entry.decided_on, lang),
        ))

    return "\n".join(lines)


def due_json(artefact: pb.DueArtefact) -> dict[str, object]:
    """Return the JSON object for one artefact of `policy due`."""
    return {
        "artefact_id": artefact.artefact_id,
        "level": level_name(artefact.level),
        "doc_number": artefact.doc_number,
        "issued_on": artefact.issued_on,
        "protected_until": artefact.protected_until,
        "days_left": artefact.days_left,
        "source": artefact.source,
        "basis": artefact.basis or None,
        "extension_decision": artefact.extension_decision or None,
    }


def render_due_table(artefacts: Sequence[pb.DueArtefact], lang: Lang) -> str:
    """Return the `policy due` table, soonest end first."""
    header = [
        translate(lang, "due.artefact_id"), translate(lang, "due.level"), translate(lang, "due.doc_number"),
        translate(lang, "due.issued_on"), translate(lang, "due.until"), translate(lang, "due.days_left"),
        translate(lang, "due.source"),
    ]
    rows = []
    for artefact in artefacts:
        if artefact.days_left < 0:
            left = translate(lang, "due.ended", days=-artefact.days_left)
        else:
            left = str(artefact.days_left)
        rows.append([
            artefact.artefact_id, level_label(artefact.level, lang), artefact.doc_number,
            _date(artefact.issued_on, lang), _date(artefact.protected_until, lang), left,
            translate(lang, f"due.source.{artefact.source if artefact.source in ('period', 'stamp', 'extension') else 'period'}"),
        ])
    return _table(header, rows)
