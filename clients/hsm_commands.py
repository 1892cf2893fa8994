"""The hsm commands, on niemphongd's TokenService: probe.

The client never talks to a token: `niemphong hsm probe` asks the daemon,
which holds the login, to check its token against a profile.
"""

from __future__ import annotations

import argparse
import logging

from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext
from niemphong.clients.errors import ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import Lang, translate
from niemphong.clients.protocol import parse_level
from niemphong.clients.render import level_label, printable
from niemphong.v1 import token_pb2 as tpb
from niemphong.v1 import token_pb2_grpc as tpb_grpc

log = logging.getLogger(__name__)

# A probe generates temporary RSA key pairs in the token, which takes seconds on slow USB tokens.
PROBE_TIMEOUT_SECONDS = 120

_STATUS_TEXT = {
    tpb.PROBE_PASS: "probe.status.pass",
    tpb.PROBE_FAIL: "probe.status.fail",
    tpb.PROBE_NOT_REQUIRED: "probe.status.not_required",
}
_STATUS_JSON = {tpb.PROBE_PASS: "pass", tpb.PROBE_FAIL: "fail", tpb.PROBE_NOT_REQUIRED: "not-required"}


def run_hsm_probe(args: argparse.Namespace, context: CommandContext) -> int:
    """Print the daemon's probe of its token against a profile; exit 1 when a point fails."""
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        report = tpb_grpc.TokenServiceStub(channel).Probe(
            tpb.ProbeRequest(profile=args.profile or ""), timeout=max(UNARY_TIMEOUT_SECONDS, PROBE_TIMEOUT_SECONDS),
        )

    if args.json:
        context.console.json(probe_json(report))
    else:
        context.console.data(render_probe(report, context.console.lang))
    return ExitCode.OK if report.passed else ExitCode.FAILURE


def point_label(name: str, lang: Lang) -> str:
    """Return the user's name for a probe point such as "wrapping" or "level-key:toi-mat"."""
    if name.startswith("level-key:"):
        level = name.split(":", 1)[1]
        try:
            label = level_label(parse_level(level), lang)
        except ValueError:
            label = printable(level)
        return translate(lang, "probe.point.level-key", level=label)
    message_id = f"probe.point.{name}"
    try:
        return translate(lang, message_id)
    except KeyError:
        # A point added by a newer daemon: show its name as sent.
        return printable(name)


def _reason_text(reason: str, lang: Lang) -> str:
    try:
        return translate(lang, f"probe.reason.{reason}")
    except KeyError:
        return printable(reason)


def _in_lang(english: str, vietnamese: str, lang: Lang) -> str:
    # A daemon that predates the Vietnamese fields sends them empty.
    return vietnamese if lang == "vi" and vietnamese else english


def render_probe(report: tpb.ProbeReport, lang: Lang) -> str:
    """Return the probe report: one block per point, the result, then the family's known quirks."""
    needs, offers = translate(lang, "probe.header").split("|")[2:]
    lines = [
        translate(lang, "probe.title", profile=printable(report.profile), family=printable(report.family),
                  configured=printable(report.configured_profile)),
        "",
    ]
    for point in report.points:
        status = translate(lang, _STATUS_TEXT.get(point.status, "probe.status.fail"))
        head = f"[{status}] {point_label(point.name, lang)}"
        if point.reason and point.status == tpb.PROBE_FAIL:
            head += f": {_reason_text(point.reason, lang)}"
        lines.append(head)
        lines.append(f"    {needs}: {printable(_in_lang(point.required, point.required_vi, lang))}")
        lines.append(f"    {offers}: {printable(_in_lang(point.offered, point.offered_vi, lang))}")

    failed = sum(1 for point in report.points if point.status == tpb.PROBE_FAIL)
    lines.append("")
    if report.passed:
        lines.append(translate(lang, "probe.passed", profile=printable(report.profile)))
    else:
        lines.append(translate(lang, "probe.failed", profile=printable(report.profile), count=failed))
    if report.quirks:
        lines.extend(["", translate(lang, "probe.quirks")])
        for quirk in report.quirks:
            summary = _in_lang(quirk.summary, quirk.summary_vi, lang)
            handling = _in_lang(quirk.handling, quirk.handling_vi, lang)
            lines.append(translate(lang, "probe.quirk", summary=printable(summary), handling=printable(handling),
                                   source=printable(quirk.source)))
    return "\n".join(lines)


def probe_json(report: tpb.ProbeReport) -> dict[str, object]:
    return {
        "profile": report.profile,
        "family": report.family,
        "hardware": report.hardware,
        "configured_profile": report.configured_profile,
        "passed": report.passed,
        "points": [
            {
                "name": point.name, "status": _STATUS_JSON.get(point.status, "fail"), "required": point.required,
                "offered": point.offered, "reason": point.reason or None,
            }
            for point in report.points
        ],
        "quirks": [{"summary": q.summary, "handling": q.handling, "source": q.source} for q in report.quirks],
    }
