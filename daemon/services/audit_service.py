"""AuditService: Verify, Export and ArtefactHistory, for the auditor role."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator

from niemphong.daemon import validation
from niemphong.daemon.audit.entries import Entry
from niemphong.daemon.audit.log import AuditLog
from niemphong.daemon.audit.reader import artefact_history, facts_of, records_between
from niemphong.daemon.audit.token_key import CheckpointKeyError, TokenCheckpointKey
from niemphong.daemon.audit.verify import TRUNCATED, Problem, Report, read_log_lines, verify_log
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.identity import CallContext
from niemphong.daemon.levels import Level
from niemphong.v1 import audit_pb2
from niemphong.v1 import audit_pb2_grpc

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 1000


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, audit_log: AuditLog, key: TokenCheckpointKey) -> None:
        self.log = audit_log
        self.key = key

    def Verify(self, request: audit_pb2.VerifyAuditRequest, context: CallContext) -> audit_pb2.VerifyAuditResponse:
        live = self.log.live_head()
        limit = live.file_bytes if live.file_bytes >= 0 else None
        try:
            anchor = self.key.load_anchor(live.log_id)
            report = verify_log(read_log_lines(self.log.path, limit), self.key, anchor=anchor, live=live)
        except OSError as exc:
            report = Report(log_id=live.log_id, problem=Problem(
                TRUNCATED, 1, 1, end_seq=live.seq, detail=f"the log file cannot be read: {exc.strerror or exc}",
            ))
        except TokenUnavailable as exc:
            log.error("request %s audit verify failed: %s", context.request_id, exc)
            abort(context, ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable"))
            raise AssertionError("unreachable") from None
        except CheckpointKeyError as exc:
            log.error("request %s audit verify failed: %s", context.request_id, exc)
            abort(context, ServiceError("KEY_UNAVAILABLE", "the audit checkpoint key is not usable"))
            raise AssertionError("unreachable") from None

        context.facts["intact"] = "yes" if report.intact else "no"
        if report.problem is not None:
            context.facts["problem"] = report.problem.kind
            context.facts["problem_seq"] = report.problem.seq
            log.warning(
                "request %s audit verify by %s: %s at entry %d, line %d: %s",
                context.request_id, context.identity.name, report.problem.kind,
                report.problem.seq, report.problem.line, report.problem.detail,
            )
        return _report_message(report)

    def Export(self, request: audit_pb2.ExportAuditRequest, context: CallContext) -> Iterator[audit_pb2.AuditRecord]:
        try:
            since, until = _time_bounds(request.since, request.until)
        except ServiceError as error:
            abort(context, error)
            raise AssertionError("unreachable") from None
        context.facts.update(since=request.since, until=request.until)

        lines = read_log_lines(self.log.path, self.log.live_head().durable_bytes)
        yield from self._stream(records_between(lines, since, until), context)

    def ArtefactHistory(
        self, request: audit_pb2.ArtefactHistoryRequest, context: CallContext
    ) -> Iterator[audit_pb2.AuditRecord]:
        try:
            artefact_id = validation.hex_id("artefact_id", request.artefact_id)
        except ServiceError as error:
            abort(context, error)
            raise AssertionError("unreachable") from None
        context.facts["artefact_id"] = artefact_id

        lines = read_log_lines(self.log.path, self.log.live_head().durable_bytes)
        yield from self._stream(artefact_history(lines, artefact_id), context)

    @staticmethod
    def _stream(found: Iterable[tuple[Entry, bytes]], context: CallContext) -> Iterator[audit_pb2.AuditRecord]:
        count = 0
        context.facts["records"] = count
        try:
            for entry, line in found:
                count += 1
                context.facts["records"] = count
                yield record_message(entry, line)
        except OSError as exc:
            log.error("request %s cannot read the audit log: %s", context.request_id, exc)
            abort(context, ServiceError("AUDIT_UNAVAILABLE", "the audit log cannot be read"))


def _time_bounds(since: int, until: int) -> tuple[dt.datetime | None, dt.datetime | None]:
    if since < 0:
        raise ServiceError("INVALID_FIELD", "since must not be negative", {"field": "since"})
    if until < 0:
        raise ServiceError("INVALID_FIELD", "until must not be negative", {"field": "until"})
    if since and until and since >= until:
        raise ServiceError("INVALID_FIELD", "since must be before until", {"field": "until"})
    return (
        dt.datetime.fromtimestamp(since, tz=dt.timezone.utc) if since else None,
        dt.datetime.fromtimestamp(until, tz=dt.timezone.utc) if until else None,
    )


def record_message(entry: Entry, line: bytes) -> audit_pb2.AuditRecord:
    """Build the API message for one record entry."""
    facts = facts_of(entry)
    roles = entry.get("roles")
    level = 0
    try:
        level = int(Level.from_config_name(str(facts.get("level", ""))))
    except ValueError:
        pass
    return audit_pb2.AuditRecord(
        seq=entry["seq"],
        time=entry["time"],
        request_id=str(entry.get("request_id", "")),
        identity=str(entry.get("identity", "")),
        roles=[str(role) for role in roles] if isinstance(roles, list) else [],
        operation=str(entry.get("operation", "")),
        decision=str(entry.get("decision", "")),
        status=str(entry.get("status", "")),
        reason=str(entry.get("reason", "")),
        artefact_id=str(facts.get("artefact_id", "")),
        level=level,  # type: ignore[arg-type]
        access_request_id=str(facts.get("access_request_id", "")),
        facts={name: str(value) for name, value in facts.items()},
        hash=entry["hash"],
        entry=line.decode("utf-8").rstrip("\n"),
    )


def _problem_message(problem: Problem) -> audit_pb2.AuditProblem:
    return audit_pb2.AuditProblem(
        kind=audit_pb2.AuditProblemKind.Value(f"AUDIT_PROBLEM_{problem.kind}"),
        seq=problem.seq,
        line=problem.line,
        expected_seq=problem.expected_seq,
        end_seq=problem.end_seq,
        detail=problem.detail[:MAX_DETAIL_CHARS],
    )


def _report_message(report: Report) -> audit_pb2.VerifyAuditResponse:
    response = audit_pb2.VerifyAuditResponse(
        intact=report.intact,
        log_id=report.log_id,
        entries=report.entries,
        records=report.records,
        checkpoints=report.checkpoints,
        last_seq=report.last_seq,
        last_checkpoint_seq=report.last_checkpoint_seq,
        warnings=[_problem_message(warning) for warning in report.warnings],
    )
    if report.problem is not None:
        response.problem.CopyFrom(_problem_message(report.problem))
    return response
