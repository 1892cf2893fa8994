"""The policy commands, on niemphongd's PolicyService: show, check, due and extend."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import Lang, format_date, translate
from niemphong.clients.manifest import ManifestRow, read_manifest
from niemphong.clients.policy_render import (
    due_json,
    outcome_name,
    policy_json,
    render_check_table,
    render_due_table,
    render_policy,
    row_json,
)
from niemphong.clients.protocol import normalize_text, parse_issued_date, parse_request_id
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# The daemon decides at most this many documents per call.
DECIDE_BATCH = 1000
MAX_WITHIN_DAYS = 3650
_WITHIN = re.compile(r"^(?P<count>[0-9]{1,5})\s*(?P<unit>[dw]?)$")


def parse_within(text: str) -> int:
    """Return a number of days from "90d", "12w" or "90". Raises ValueError otherwise."""
    match = _WITHIN.match(text.strip().lower())
    if match is None:
        raise ValueError(f"invalid duration {text!r}")
    days = int(match["count"]) * (7 if match["unit"] == "w" else 1)
    if days > MAX_WITHIN_DAYS:
        raise ValueError(f"duration {text!r} is over {MAX_WITHIN_DAYS} days")
    return days


def within_type(lang: Lang) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_within(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                translate(lang, "arg.within_invalid", value=text, max=MAX_WITHIN_DAYS)
            ) from None

    return parse


def date_type(lang: Lang) -> Callable[[str], dt.date]:
    def parse(text: str) -> dt.date:
        try:
            return parse_issued_date(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.date_invalid", value=text)) from None

    return parse


def artefact_id_type(lang: Lang) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return parse_request_id(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.artefact_id_invalid", value=text)) from None

    return parse


def run_policy_show(args: argparse.Namespace, context: CommandContext) -> int:
    """Print the policy in force."""
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        summary = pb_grpc.PolicyServiceStub(channel).GetPolicy(pb.GetPolicyRequest(), timeout=UNARY_TIMEOUT_SECONDS)

    if args.json:
        context.console.json(policy_json(summary))
    else:
        context.console.data(render_policy(summary, context.console.lang))
    return ExitCode.OK


def _decide_rows(stub: pb_grpc.PolicyServiceStub, rows: Sequence[ManifestRow], as_of: str) -> dict[int, pb.DecidedDocument]:
    sendable = [(index, row.document) for index, row in enumerate(rows) if row.document is not None]
    decided: dict[int, pb.DecidedDocument] = {}
    for start in range(0, len(sendable), DECIDE_BATCH):
        batch = sendable[start:start + DECIDE_BATCH]
        request = pb.DecideRequest(documents=[document for _, document in batch], as_of=as_of)
        response = stub.Decide(request, timeout=UNARY_TIMEOUT_SECONDS)
        if len(response.documents) != len(batch):
            raise ClientError(ExitCode.FAILURE, "error.bad_stream")
        for (index, _), document in zip(batch, response.documents):
            decided[index] = document
    return decided


def run_policy_check(args: argparse.Namespace, context: CommandContext) -> int:
    """Decide every row of a handover list without sealing anything, and print the decisions."""
    console = context.console
    rows = read_manifest(Path(args.manifest)).rows
    as_of = args.date.isoformat() if args.date else ""

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        decided = _decide_rows(pb_grpc.PolicyServiceStub(channel), rows, as_of)

    results = [(row, decided.get(index)) for index, row in enumerate(rows)]
    log.info("decided %d rows of %s (%d read locally as invalid)", len(decided), args.manifest, len(rows) - len(decided))
    if args.json:
        console.json([row_json(row, document, console.lang) for row, document in results])
    else:
        console.data(render_check_table(results, console.lang))

    # A script checking a list before the batch must tell from the status
    # alone whether every row can go ahead.
    rejected = any(document is None or outcome_name(document.decision) == "refuse" for _, document in results)
    return ExitCode.REFUSED_BY_POLICY if rejected else ExitCode.OK


def run_policy_due(args: argparse.Namespace, context: CommandContext) -> int:
    """List sealed artefacts whose protection ends within the given number of days, or has ended."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        response = pb_grpc.PolicyServiceStub(channel).ListDue(
            pb.ListDueRequest(within_days=args.within), timeout=UNARY_TIMEOUT_SECONDS
        )

    if args.json:
        console.json([due_json(artefact) for artefact in response.artefacts])
    elif not response.artefacts:
        console.say("policy.due_empty", days=args.within)
    else:
        console.data(render_due_table(response.artefacts, console.lang))
    return ExitCode.OK


def run_policy_extend(args: argparse.Namespace, context: CommandContext) -> int:
    """Record an extension of an artefact's protection, decided by the originating agency."""
    console = context.console
    decision = normalize_text(args.decision)
    if not decision:
        raise ClientError(ExitCode.USAGE, "arg.empty", field=translate(console.lang, "field.decision"))
    request = pb.RecordExtensionRequest(
        artefact_id=args.artefact_id, ends_on=args.until.isoformat(), decision=decision,
        decided_on=args.decided_on.isoformat(),
    )

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        artefact = pb_grpc.PolicyServiceStub(channel).RecordExtension(request, timeout=UNARY_TIMEOUT_SECONDS)

    log.info("recorded extension artefact_id=%s protected_until=%s", artefact.artefact_id, artefact.protected_until)
    console.say(
        "policy.extended", artefact_id=artefact.artefact_id,
        until=_date_label(artefact.protected_until, console.lang),
    )
    if args.json:
        console.json(due_json(artefact))
    return ExitCode.OK


def _date_label(value: str, lang: Lang) -> str:
    try:
        return format_date(dt.date.fromisoformat(value), lang)
    except ValueError:
        return value
