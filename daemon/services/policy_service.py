"""PolicyService: GetPolicy, Decide, ListDue and RecordExtension."""

from __future__ import annotations

import datetime as dt
import logging

from niemphong.daemon import validation
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.config import Config
from niemphong.daemon.errors import ServiceError, abort
from niemphong.daemon.identity import CallContext
from niemphong.daemon.levels import SEALABLE_LEVELS, Level
from niemphong.daemon.policy.decision import Decision, DocumentFacts, Outcome
from niemphong.daemon.policy.explain import explain
from niemphong.daemon.policy.periods import protection_end
from niemphong.daemon.services.classification import MAX_FACT_TEXT, Classifier, Verdict, facts_from_proto
from niemphong.daemon.store import ArtefactRecord, ClassificationRecord, ExtensionRecord, StateStore
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

MAX_DECIDE_DOCUMENTS = 1000
MAX_ROW_LABEL = 32
MAX_DUE_DAYS = 3650
MAX_DUE_ARTEFACTS = 1000


class PolicyServicer(pb_grpc.PolicyServiceServicer):
    def __init__(
        self, config: Config, store: StateStore, audit: AuditTrail, classifier: Classifier | None = None,
    ) -> None:
        assert config.policy is not None
        self.config = config
        self.policy = config.policy
        self.store = store
        self.audit = audit
        self.classifier = classifier or Classifier(config.policy)

    # GetPolicy ------------------------------------------------------------

    def GetPolicy(self, request: pb.GetPolicyRequest, context: CallContext) -> pb.PolicySummary:
        policy = self.policy
        catalog = policy.catalog
        sample_items = {id(item) for path in catalog.sample_files for item in catalog.items if item.source.startswith(f"{path}:")}

        summary = pb.PolicySummary(
            policy_file=str(policy.path),
            policy_sha256=policy.sha256,
            development=policy.development,
            require_basis=policy.require_basis,
            token_profile=self.config.token.profile,
            catalog_files=[str(path) for path in catalog.files],
            today=self.classifier.today().isoformat(),
        )
        for level in SEALABLE_LEVELS:
            level_policy = policy.levels[level]
            summary.levels.append(pb.LevelKeyPolicy(
                level=int(level),  # type: ignore[arg-type]
                key_id=level_policy.key_id,
                token_profiles=list(level_policy.token_profiles),
                approvals=level_policy.approvals,
                grant_hours=level_policy.grant_seconds // 3600,
                grant_opens=level_policy.grant_opens,
                printing=level_policy.printing,
                rotation_days=level_policy.rotation_days,
                protection_years=level_policy.protection_years,
                custodians=level_policy.custodians,
                encryption="token" if level_policy.in_token else "host",
            ))
        for items in catalog.decisions().values():
            summary.catalog.append(pb.CatalogDecisionSummary(
                decision=items[0].decision, items=len(items), in_force=True,
                sample=any(id(item) in sample_items for item in items),
            ))
        for name in catalog.superseded.values():
            summary.catalog.append(pb.CatalogDecisionSummary(decision=name, in_force=False))
        for standing in policy.standing_decisions.values():
            summary.standing_decisions.append(pb.StandingDecisionSummary(
                kind=standing.kind, name=standing.name, level=int(standing.level),  # type: ignore[arg-type]
                basis=standing.basis.describe(), decision=standing.decision,
                decided_on=standing.decided_on.isoformat(),
            ))
        return summary

    # Decide ---------------------------------------------------------------

    def Decide(self, request: pb.DecideRequest, context: CallContext) -> pb.DecideResponse:
        try:
            return self._decide(request, context)
        except ServiceError as error:
            context.facts["reason"] = error.reason
            log.warning(
                "request %s decide by %s rejected: %s (%s)",
                context.request_id, context.identity.name, error.reason, error.message,
            )
            abort(context, error)
            raise AssertionError("unreachable") from None

    def _decide(self, request: pb.DecideRequest, context: CallContext) -> pb.DecideResponse:
        if len(request.documents) > MAX_DECIDE_DOCUMENTS:
            raise ServiceError(
                "FIELD_TOO_LONG", f"{len(request.documents)} documents; at most {MAX_DECIDE_DOCUMENTS} per call",
                {"field": "documents", "max": str(MAX_DECIDE_DOCUMENTS)},
            )
        on = dt.date.fromisoformat(validation.iso_date("as_of", request.as_of)) if request.as_of else self.classifier.today()

        response = pb.DecideResponse()
        counts = {outcome: 0 for outcome in Outcome}
        for document in request.documents:
            row = validation.text("row", document.row, MAX_ROW_LABEL, required=False)
            doc_number = validation.text("doc_number", document.doc_number, validation.MAX_DOC_NUMBER, required=False)
            verdict = self._decide_one(document, on)
            counts[verdict.decision.outcome] += 1
            response.documents.append(pb.DecidedDocument(row=row, doc_number=doc_number, decision=verdict.to_proto()))

        context.facts.update(documents=len(request.documents), **{f"decided_{k.value}": v for k, v in counts.items()})
        log.info(
            "request %s decided %d documents for %s as on %s: %d seal, %d not secret, %d rejected",
            context.request_id, len(request.documents), context.identity.name, on.isoformat(),
            counts[Outcome.SEAL], counts[Outcome.NOT_SECRET], counts[Outcome.REFUSE],
        )
        return response

    def _decide_one(self, document: pb.DocumentToDecide, on: dt.date) -> Verdict:
        level = Level.from_proto(document.level)
        try:
            facts = facts_from_proto(level, document.issued_on, document.classification)
        except ServiceError as error:
            # One bad row is that row's refusal, not the whole list's.
            field = error.metadata.get("field", "?")
            decision = Decision(Outcome.REFUSE, "INVALID_FIELD", level, on, details={"field": field})
            explanation, explanation_en = explain(decision)
            placeholder = DocumentFacts(level=level, issued_on=on)
            return Verdict(placeholder, decision, explanation, explanation_en)
        return self.classifier.decide(facts, on)

    # ListDue --------------------------------------------------------------

    def ListDue(self, request: pb.ListDueRequest, context: CallContext) -> pb.ListDueResponse:
        if request.within_days > MAX_DUE_DAYS:
            log.warning("request %s list due by %s rejected: within_days %d", context.request_id,
                        context.identity.name, request.within_days)
            abort(context, ServiceError(
                "INVALID_FIELD", f"within_days must be at most {MAX_DUE_DAYS}", {"field": "within_days"},
            ))
        today = self.classifier.today()
        until = today + dt.timedelta(days=request.within_days)

        with self.store.transaction() as tx:
            records = tx.list_sealed_due(until.isoformat(), MAX_DUE_ARTEFACTS)
            legacy = tx.list_unclassified_artefacts(MAX_DUE_ARTEFACTS)

        due = [self._due_from_record(record, today) for record in records]
        # Artefacts sealed before classification records existed: the period of their level.
        for artefact in legacy:
            entry = self._due_from_artefact(artefact, today)
            if entry.protected_until <= until.isoformat():
                due.append(entry)
        due.sort(key=lambda entry: (entry.protected_until, entry.artefact_id))

        context.facts["artefacts"] = min(len(due), MAX_DUE_ARTEFACTS)
        return pb.ListDueResponse(artefacts=due[:MAX_DUE_ARTEFACTS])

    @staticmethod
    def _due_from_record(record: ClassificationRecord, today: dt.date) -> pb.DueArtefact:
        assert record.artefact_id is not None
        assert record.protected_until is not None
        assert record.level is not None
        until = dt.date.fromisoformat(record.protected_until)
        return pb.DueArtefact(
            artefact_id=record.artefact_id,
            level=record.level,  # type: ignore[arg-type]
            doc_number=record.doc_number,
            issued_on=record.issued_on,
            protected_until=record.protected_until,
            days_left=(until - today).days,
            source=record.protection_source or "period",
            basis=record.basis,
            extension_decision=record.extension_decision or "",
        )

    def _due_from_artefact(self, artefact: ArtefactRecord, today: dt.date) -> pb.DueArtefact:
        years = self.policy.levels[Level(artefact.level)].protection_years
        until = protection_end(dt.date.fromisoformat(artefact.issued_on), years)
        return pb.DueArtefact(
            artefact_id=artefact.artefact_id,
            level=artefact.level,  # type: ignore[arg-type]
            doc_number=artefact.doc_number,
            issued_on=artefact.issued_on,
            protected_until=until.isoformat(),
            days_left=(until - today).days,
            source="period",
        )

    # RecordExtension ------------------------------------------------------

    def RecordExtension(self, request: pb.RecordExtensionRequest, context: CallContext) -> pb.DueArtefact:
        try:
            return self._record_extension(request, context)
        except ServiceError as error:
            context.facts["reason"] = error.reason
            log.warning(
                "request %s extension by %s rejected: %s (%s)",
                context.request_id, context.identity.name, error.reason, error.message,
            )
            abort(context, error)
            raise AssertionError("unreachable") from None

    def _record_extension(self, request: pb.RecordExtensionRequest, context: CallContext) -> pb.DueArtefact:
        artefact_id = validation.hex_id("artefact_id", request.artefact_id)
        ends_on = dt.date.fromisoformat(validation.iso_date("ends_on", request.ends_on))
        decided_on = dt.date.fromisoformat(validation.iso_date("decided_on", request.decided_on))
        decision = validation.text("decision", request.decision, MAX_FACT_TEXT)
        context.facts["artefact_id"] = artefact_id
        today = self.classifier.today()
        now = int(self.classifier.clock())

        with self.store.transaction() as tx:
            artefact = tx.get_artefact(artefact_id)
            if artefact is None:
                raise ServiceError("ARTEFACT_NOT_FOUND", f"artefact {artefact_id} is not in the registry")
            record = tx.get_classification(artefact_id)
            if record is None:
                record = self._legacy_record(artefact, now)
                tx.insert_classification(record)
            assert record.protected_until is not None
            current = dt.date.fromisoformat(record.protected_until)

            if ends_on <= current:
                raise _extension_rejected("NOT_LATER", f"the extension to {ends_on} does not go past {current}")
            if decided_on > today:
                raise _extension_rejected("DECIDED_AFTER_TODAY", f"the extension decision is dated after today ({today})")
            # An ended protection was declassified automatically (Article 22
            # of the Law on Protection of State Secrets); a decision made
            # after that day cannot revive it.
            if decided_on > current:
                raise _extension_rejected("DECIDED_LATE", f"the extension was decided after protection ended on {current}")

            tx.record_extension(ExtensionRecord(
                artefact_id=artefact_id, previous_until=current.isoformat(), ends_on=ends_on.isoformat(),
                decision=decision, decided_on=decided_on.isoformat(), recorded_by=context.identity.name,
                recorded_at=now,
            ))
            updated = tx.get_classification(artefact_id)
            context.facts.update(
                level=Level(artefact.level).config_name, previous_until=current.isoformat(),
                protected_until=ends_on.isoformat(), extension_decision=decision, decided_on=decided_on.isoformat(),
            )
            # Fail closed: without a durable audit record the extension rolls back.
            self.audit.record_decision(context)
        assert updated is not None

        log.info(
            "request %s extended protection of artefact %s from %s to %s, recorded by %s",
            context.request_id, artefact_id, current.isoformat(), ends_on.isoformat(), context.identity.name,
        )
        return self._due_from_record(updated, today)

    def _legacy_record(self, artefact: ArtefactRecord, now: int) -> ClassificationRecord:
        level = Level(artefact.level)
        issued = dt.date.fromisoformat(artefact.issued_on)
        verdict = self.classifier.decide(DocumentFacts(level=level, issued_on=issued), issued)
        document = {"doc_number": artefact.doc_number, "issued_on": artefact.issued_on,
                    "title": artefact.title, "source_name": artefact.source_name}
        return verdict.record(artefact.artefact_id, artefact.artefact_id, document, artefact.sealed_by, now)


def _extension_rejected(code: str, message: str) -> ServiceError:
    return ServiceError("EXTENSION_REJECTED", message, {"code": code})


