"""The classification policy at the API: proto facts in, decisions and records out.

Shared by EnvelopeService.Seal, which applies a decision, and PolicyService,
which reports decisions without sealing. Both take "today" from the same
clock, read on the Vietnam calendar.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass

from niemphong.daemon import validation
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import CallContext
from niemphong.daemon.levels import Level
from niemphong.daemon.policy.decision import (
    PROTECTION_CODE,
    Decision,
    Declassification,
    DocumentFacts,
    Extension,
    Outcome,
    Stamp,
    decide,
)
from niemphong.daemon.policy.explain import explain
from niemphong.daemon.policy.loader import Policy
from niemphong.daemon.policy.periods import Clock, today_in_vietnam
from niemphong.daemon.store import ClassificationRecord, StateTransaction
from niemphong.v1 import niemphong_pb2 as pb

MAX_FACT_TEXT = 512
MAX_KIND = 64

_OUTCOMES = {
    Outcome.SEAL: pb.DECISION_OUTCOME_SEAL,
    Outcome.NOT_SECRET: pb.DECISION_OUTCOME_NOT_SECRET,
    Outcome.REFUSE: pb.DECISION_OUTCOME_REFUSE,
}
_SOURCES = {"PROTECTED": "period", "PROTECTED_BY_STAMP": "stamp", "PROTECTED_BY_EXTENSION": "extension"}
# Refusals of a Tuyệt mật document, which Seal reports as LEVEL_NEVER_DIGITIZED.
_NEVER_DIGITIZED_CODES = frozenset({"TUYET_MAT", "TUYET_MAT_ARCHIVE_DECISION_REQUIRED"})


@dataclass(frozen=True)
class Verdict:
    """A decision with the facts it was made from and its explanations."""

    facts: DocumentFacts
    decision: Decision
    explanation: str
    explanation_en: str

    def to_proto(self) -> pb.ClassificationDecision:
        decision = self.decision
        return pb.ClassificationDecision(
            outcome=_OUTCOMES[decision.outcome],  # type: ignore[arg-type]
            level=int(decision.level) if decision.level is not None else pb.LEVEL_UNSPECIFIED,  # type: ignore[arg-type]
            rule=decision.rule or "",
            code=decision.code,
            declassification_stamp_required=decision.stamp_required,
            protected_until=decision.protected_until.isoformat() if decision.protected_until else "",
            explanation=self.explanation,
            explanation_en=self.explanation_en,
            catalog_item=decision.catalog_item,
            decided_on=decision.on.isoformat(),
        )

    def record(self, record_id: str, artefact_id: str | None, document: dict[str, str], decided_by: str,
               decided_at: int) -> ClassificationRecord:
        """Return the classification record of this verdict for the registry."""
        decision = self.decision
        facts = self.facts
        return ClassificationRecord(
            record_id=record_id,
            artefact_id=artefact_id,
            outcome=decision.outcome.value,
            code=decision.code,
            rule=decision.rule,
            stated_level=int(facts.level) if facts.level is not None else None,
            level=int(decision.level) if decision.level is not None else None,
            doc_number=document["doc_number"],
            issued_on=document["issued_on"],
            title=document.get("title", ""),
            source_name=document.get("source_name", ""),
            basis=facts.basis,
            catalog_item=decision.catalog_item,
            facts_json=facts_json(facts),
            stamp_required=decision.stamp_required,
            protected_until=decision.protected_until.isoformat() if decision.protected_until else None,
            protection_source=_SOURCES.get(decision.details.get(PROTECTION_CODE, decision.code)),
            extension_decision=facts.extension.decision if facts.extension else None,
            explanation=self.explanation,
            decided_on=decision.on.isoformat(),
            decided_by=decided_by,
            decided_at=decided_at,
        )


class Classifier:
    """Decide documents under the policy in force, with today from ``clock``."""

    def __init__(self, policy: Policy, clock: Clock = time.time) -> None:
        self.policy = policy
        self.rules = policy.rules()
        self.clock = clock

    def today(self) -> dt.date:
        return today_in_vietnam(self.clock)

    def decide(self, facts: DocumentFacts, on: dt.date | None = None) -> Verdict:
        decision = decide(facts, self.rules, on or self.today())
        explanation, explanation_en = explain(decision, facts.issued_on)
        return Verdict(facts, decision, explanation, explanation_en)

    def decide_seal(self, level: Level | None, document: dict[str, str], classification: pb.ClassificationFacts,
                    context: CallContext) -> Verdict:
        """Decide a Seal request; raise ServiceError when the decision is a refusal.

        Tuyệt mật keeps its own reason, LEVEL_NEVER_DIGITIZED, with the
        decision code; every other refusal is CLASSIFICATION_REFUSED with the
        decision code. Both carry the explanation.
        """
        facts = facts_from_proto(level, document["issued_on"], classification)
        verdict = self.decide(facts)
        decision = verdict.decision
        context.facts.update(decision=decision.outcome.value, decision_code=decision.code)
        if decision.rule:
            context.facts["rule"] = decision.rule
        # The grounds the clerk stated, for the audit trail.
        if facts.basis:
            context.facts["basis"] = facts.basis
        if facts.standing_decision:
            context.facts["standing_decision"] = facts.standing_decision
        if facts.declassification is not None:
            context.facts["declassification_decision"] = facts.declassification.decision
            if facts.declassification.decided_on is not None:
                context.facts["declassified_on"] = facts.declassification.decided_on.isoformat()
        if facts.historical_archive:
            context.facts["historical_archive"] = "yes"
        if decision.level is not None:
            context.facts["level"] = decision.level.config_name

        if decision.outcome is Outcome.REFUSE:
            if decision.code in _NEVER_DIGITIZED_CODES:
                raise ServiceError(
                    "LEVEL_NEVER_DIGITIZED",
                    "Tuyệt mật documents are never digitized; keep the paper original",
                    {
                        "level": Level.TUYET_MAT.config_name, "code": decision.code,
                        "explanation": verdict.explanation, "explanation_en": verdict.explanation_en,
                    },
                )
            if decision.code == "LEVEL_MISSING":
                raise ServiceError("LEVEL_MISSING", "the classification level is missing or unknown")
            raise ServiceError(
                "CLASSIFICATION_REFUSED",
                f"classification rules refuse this document: {decision.code}",
                {"code": decision.code, "explanation": verdict.explanation, "explanation_en": verdict.explanation_en},
            )
        if decision.protected_until is not None:
            context.facts["protected_until"] = decision.protected_until.isoformat()
        return verdict

    def record_not_sealed(self, tx: StateTransaction, verdict: Verdict, document: dict[str, str],
                          context: CallContext) -> pb.NotSealed:
        """Record a document declined as not secret and return the response message."""
        record_id = uuid.uuid4().hex
        tx.insert_classification(verdict.record(record_id, None, document, context.identity.name, int(self.clock())))
        context.facts["record_id"] = record_id
        return pb.NotSealed(record_id=record_id, decision=verdict.to_proto())


def facts_json(facts: DocumentFacts) -> str:
    """Return the facts as a JSON object with ISO dates, for the classification record."""
    def plain(value: object) -> object:
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, Level):
            return value.config_name
        if hasattr(value, "__dataclass_fields__"):
            return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
        return value

    return json.dumps(plain(facts), ensure_ascii=False, sort_keys=True)


def _optional_date(field: str, value: str) -> dt.date | None:
    if not value:
        return None
    return dt.date.fromisoformat(validation.iso_date(field, value))


def _text(field: str, value: str, maximum: int = MAX_FACT_TEXT) -> str:
    return validation.text(field, value, maximum, required=False)


def facts_from_proto(level: Level | None, issued_on: str, classification: pb.ClassificationFacts) -> DocumentFacts:
    """Check the classification fields of a request and return the facts.

    Raises:
        ServiceError: INVALID_FIELD or FIELD_TOO_LONG naming the field, for
            example ``classification.stamp.ends_on``.
    """
    # An issue date after today is left to the policy, which rejects it with
    # the dates in its explanation; INVALID_FIELD here would name only the field.
    issued = dt.date.fromisoformat(validation.iso_date("issued_on", issued_on))
    prefix = "classification."

    stamp = None
    if classification.HasField("stamp"):
        ends_on = _optional_date(prefix + "stamp.ends_on", classification.stamp.ends_on)
        if ends_on is None:
            raise ServiceError("INVALID_FIELD", "a protection stamp needs its last day", {"field": prefix + "stamp.ends_on"})
        stamp = Stamp(ends_on=ends_on, starts_on=_optional_date(prefix + "stamp.starts_on", classification.stamp.starts_on))

    extension = None
    if classification.HasField("extension"):
        ends_on = _optional_date(prefix + "extension.ends_on", classification.extension.ends_on)
        if ends_on is None:
            raise ServiceError("INVALID_FIELD", "an extension needs its last day", {"field": prefix + "extension.ends_on"})
        extension = Extension(
            ends_on=ends_on,
            decision=_text(prefix + "extension.decision", classification.extension.decision),
            decided_on=_optional_date(prefix + "extension.decided_on", classification.extension.decided_on),
        )

    declassification = None
    if classification.HasField("declassification"):
        decision = _text(prefix + "declassification.decision", classification.declassification.decision)
        if not decision:
            raise ServiceError(
                "INVALID_FIELD", "a declassification needs the decision it comes from",
                {"field": prefix + "declassification.decision"},
            )
        declassification = Declassification(
            decision=decision,
            decided_on=_optional_date(prefix + "declassification.decided_on", classification.declassification.decided_on),
        )

    kind = _text(prefix + "standing_decision", classification.standing_decision, MAX_KIND)
    return DocumentFacts(
        level=level,
        issued_on=issued,
        basis=_text(prefix + "basis", classification.basis),
        stamp=stamp,
        extension=extension,
        declassification=declassification,
        historical_archive=classification.historical_archive,
        standing_decision=kind,
    )
