"""TokenService: check the daemon's token against a token profile."""

from __future__ import annotations

import logging

from niemphong.daemon import hsm_probe
from niemphong.daemon.config import Config
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.hsm_profiles import ProfileError, load_profile
from niemphong.daemon.identity import CallContext
from niemphong.daemon.token_supervisor import TokenSupervisor
from niemphong.v1 import token_pb2 as tpb
from niemphong.v1 import token_pb2_grpc as tpb_grpc

log = logging.getLogger(__name__)

MAX_PROFILE_NAME = 64

_STATUS = {
    hsm_probe.Status.PASS: tpb.PROBE_PASS,
    hsm_probe.Status.FAIL: tpb.PROBE_FAIL,
    hsm_probe.Status.NOT_REQUIRED: tpb.PROBE_NOT_REQUIRED,
}


def report_to_proto(report: hsm_probe.ProbeReport, configured_profile: str) -> tpb.ProbeReport:
    profile = report.profile
    return tpb.ProbeReport(
        profile=profile.name,
        family=profile.family,
        hardware=profile.hardware,
        passed=report.passed,
        points=[
            tpb.ProbePoint(
                name=point.name, status=_STATUS[point.status], required=point.required, offered=point.offered,
                reason=point.reason, required_vi=hsm_probe.in_vietnamese(point.required),
                offered_vi=hsm_probe.in_vietnamese(point.offered),
            )
            for point in report.points
        ],
        quirks=[
            tpb.Quirk(summary=q.summary, handling=q.handling, source=q.source, summary_vi=q.summary_vi,
                      handling_vi=q.handling_vi)
            for q in profile.quirks
        ],
        configured_profile=configured_profile,
    )


class TokenServicer(tpb_grpc.TokenServiceServicer):
    def __init__(self, config: Config, token: TokenSupervisor) -> None:
        self.config = config
        self.token = token

    def Probe(self, request: tpb.ProbeRequest, context: CallContext) -> tpb.ProbeReport:
        name = request.profile or self.config.token.profile
        if len(name) > MAX_PROFILE_NAME:
            abort(context, ServiceError(
                "FIELD_TOO_LONG", f"profile exceeds {MAX_PROFILE_NAME} characters",
                {"field": "profile", "max": str(MAX_PROFILE_NAME)},
            ))
        # Only shipped profiles by name: a caller must not make the daemon read arbitrary paths.
        if request.profile and "/" in request.profile:
            abort(context, ServiceError("UNKNOWN_PROFILE", "profile must be a name, not a path", {"profile": name}))
        try:
            profile = load_profile(name)
        except ProfileError as exc:
            abort(context, ServiceError("UNKNOWN_PROFILE", str(exc), {"profile": name}))
            raise AssertionError("unreachable") from exc

        try:
            token = self.token.current()
            try:
                report = hsm_probe.probe(token, profile, self.config.token.sessions, self.config.levels)
            except TokenUnavailable as exc:
                self.token.report_fault(token, str(exc))
                raise
        except TokenUnavailable as exc:
            log.error("request %s probe by %s failed: %s", context.request_id, context.identity.name, exc)
            abort(context, ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable"))
            raise AssertionError("unreachable") from exc

        log.info(
            "request %s probe of profile %s by %s: %s", context.request_id, profile.name, context.identity.name,
            "pass" if report.passed else "fail",
        )
        return report_to_proto(report, self.config.token.profile)
