"""IncidentService: report, close and list incidents."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from niemphong.daemon import validation
from niemphong.daemon.errors import ServiceError, abort
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.identity import CallContext
from niemphong.daemon.metrics import INCIDENT_GRANTS_SUSPENDED, INCIDENTS_CLOSED, INCIDENTS_REPORTED
from niemphong.daemon.incidents import MAX_INCIDENT_ARTEFACTS, OPEN, IncidentView, Incidents
from niemphong.v1 import archive_pb2 as apb
from niemphong.v1 import archive_pb2_grpc as apb_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")


def incident_to_proto(view: IncidentView) -> apb.Incident:
    incident = view.incident
    return apb.Incident(
        incident_id=incident.incident_id,
        state=apb.INCIDENT_STATE_OPEN if incident.state == OPEN else apb.INCIDENT_STATE_CLOSED,
        reported_by=incident.reported_by,
        text=incident.text,
        artefact_ids=view.artefact_ids,
        reported_at=incident.reported_at,
        grants_suspended=incident.grants_suspended,
        closed_by=incident.closed_by or "",
        closed_at=incident.closed_at or 0,
        resolution=incident.resolution or "",
        grants_revoked=incident.grants_revoked,
    )


class IncidentServicer(apb_grpc.IncidentServiceServicer):
    def __init__(self, incidents: Incidents, audit: AuditTrail) -> None:
        self.incidents = incidents
        self.audit = audit

    def _record(self, context: CallContext) -> Callable[[IncidentView], None]:
        def record(view: IncidentView) -> None:
            # Fail closed: without a durable audit record the report or closing rolls back.
            context.facts.update(incident_id=view.incident.incident_id, artefacts=len(view.artefact_ids))
            if len(view.artefact_ids) == 1:
                context.facts["artefact_id"] = view.artefact_ids[0]
            if view.incident.state == OPEN:
                context.facts.update(alert="incident_reported", grants_suspended=view.incident.grants_suspended)
            self.audit.record_decision(context)

        return record

    def _run(self, context: CallContext, operation: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except ServiceError as error:
            context.facts["reason"] = error.reason
            log.warning(
                "request %s %s by %s refused: %s (%s)",
                context.request_id, operation, context.identity.name, error.reason, error.message,
            )
            abort(context, error)
            raise AssertionError("unreachable") from None

    def ReportIncident(self, request: apb.ReportIncidentRequest, context: CallContext) -> apb.Incident:
        def action() -> apb.Incident:
            if not 1 <= len(request.artefact_ids) <= MAX_INCIDENT_ARTEFACTS:
                raise ServiceError(
                    "INVALID_FIELD", f"an incident names 1 to {MAX_INCIDENT_ARTEFACTS} artefacts",
                    {"field": "artefact_ids", "max": str(MAX_INCIDENT_ARTEFACTS)},
                )
            artefact_ids = [validation.hex_id("artefact_id", value) for value in request.artefact_ids]
            text = validation.text("text", request.text, validation.MAX_REASON)
            view = self.incidents.report(context.identity, artefact_ids, text, self._record(context))
            INCIDENTS_REPORTED.inc()
            INCIDENT_GRANTS_SUSPENDED.inc(view.incident.grants_suspended)
            return incident_to_proto(view)

        return self._run(context, "incident report", action)

    def CloseIncident(self, request: apb.CloseIncidentRequest, context: CallContext) -> apb.Incident:
        def action() -> apb.Incident:
            incident_id = validation.hex_id("incident_id", request.incident_id)
            context.facts["incident_id"] = incident_id
            resolution = validation.text("resolution", request.resolution, validation.MAX_REASON)
            context.facts["grants_revoked"] = int(request.revoke_grants)
            view = self.incidents.close(
                context.identity, incident_id, resolution, request.revoke_grants, self._record(context),
            )
            INCIDENTS_CLOSED.inc()
            return incident_to_proto(view)

        return self._run(context, "incident close", action)

    def ListIncidents(self, request: apb.ListIncidentsRequest, context: CallContext) -> apb.ListIncidentsResponse:
        def action() -> apb.ListIncidentsResponse:
            return apb.ListIncidentsResponse(incidents=[incident_to_proto(view) for view in self.incidents.list()])

        return self._run(context, "list incidents", action)
