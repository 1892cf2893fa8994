"""Wiring of the archive's services: handover batches, printed copies, incidents."""

from __future__ import annotations

import logging

import grpc

from niemphong.daemon.access import AccessControl
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.copies import Copies
from niemphong.daemon.handover import Handover
from niemphong.daemon.incidents import Incidents
from niemphong.daemon.pdf_fonts import FontUnavailable, check_fonts
from niemphong.daemon.services.copy_service import CopyServicer
from niemphong.daemon.services.envelope_service import EnvelopeServicer
from niemphong.daemon.services.handover_service import HandoverServicer
from niemphong.daemon.services.incident_service import IncidentServicer
from niemphong.v1 import archive_pb2_grpc as apb_grpc

log = logging.getLogger(__name__)



def add_archive_services(
    server: grpc.Server, envelopes: EnvelopeServicer, access: AccessControl, audit: AuditTrail
) -> None:
    """Add the handover, copy and incident services to ``server``, on the access rules' store and audit trail."""
    try:
        check_fonts()
    except FontUnavailable as exc:
        # The daemon still seals and opens; minutes and copies fail with RENDERER_UNAVAILABLE.
        log.error("minutes and printed copies are unavailable: %s", exc)

    store = access.store
    apb_grpc.add_HandoverServiceServicer_to_server(
        HandoverServicer(Handover(store, access.clock), audit, envelopes.config.chunk_bytes, access.clock), server,
    )
    apb_grpc.add_CopyServiceServicer_to_server(
        CopyServicer(envelopes, access, Copies(store, access.policies, access.clock), access.clock), server,
    )
    apb_grpc.add_IncidentServiceServicer_to_server(IncidentServicer(Incidents(store, access.clock), audit), server)
