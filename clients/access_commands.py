"""The request, approve, deny, pending and show commands, on niemphongd's AccessService."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext
from niemphong.clients.envelope_commands import empty_field_error, read_inspect_request
from niemphong.clients.errors import ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import format_count, format_timestamp
from niemphong.clients.protocol import EmptyFieldError, build_deny, build_request_access, normalize_text
from niemphong.clients.render import (
    access_request_json,
    level_label,
    printable,
    render_request_detail,
    render_request_table,
)
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def run_request(args: argparse.Namespace, context: CommandContext) -> int:
    """Ask for access to an envelope's artefact; print only the request id."""
    console = context.console
    try:
        # The artefact id comes from Inspect below; the purpose is checked first.
        message = build_request_access("", args.purpose)
    except EmptyFieldError as exc:
        raise empty_field_error(exc) from exc
    message.copies = getattr(args, "copies", 0) or 0
    message.recipient = normalize_text(getattr(args, "recipient", "") or "")

    inspect_request, _ = read_inspect_request(Path(args.envelope))

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        inspected = pb_grpc.EnvelopeServiceStub(channel).Inspect(inspect_request, timeout=UNARY_TIMEOUT_SECONDS)
        message.artefact_id = inspected.artefact_id
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(message, timeout=UNARY_TIMEOUT_SECONDS)

    log.info("requested access request_id=%s artefact_id=%s", request.request_id, request.artefact_id)
    console.say(
        "request.sent",
        request_id=request.request_id,
        doc_number=printable(request.doc_number or inspected.document.doc_number),
        level=level_label(request.level or inspected.level, console.lang),
        required=request.approvals_required,
        envelope=args.envelope,
    )
    if args.json:
        console.json(access_request_json(request))
    else:
        console.data(request.request_id)
    return ExitCode.OK


def run_approve(args: argparse.Namespace, context: CommandContext) -> int:
    """Approve a pending request and report how many approvals it still needs."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        request = pb_grpc.AccessServiceStub(channel).Approve(
            pb.ApproveRequest(request_id=args.request_id), timeout=UNARY_TIMEOUT_SECONDS
        )

    log.info("approved request_id=%s state=%s", request.request_id, request.state)
    if request.state == pb.REQUEST_STATE_APPROVED:
        console.say(
            "approve.complete",
            request_id=request.request_id,
            requester=printable(request.requester),
            opens=format_count(request.grant.opens_allowed, console.lang),
            expires=format_timestamp(request.grant.expires_at, console.lang),
        )
        if request.grant.copies_allowed:
            console.say("approve.copies", copies=format_count(request.grant.copies_allowed, console.lang))
    elif request.awaiting_head and len(request.approvals) >= request.approvals_required:
        console.say("approve.awaiting_head", request_id=request.request_id, recipient=printable(request.recipient))
    else:
        console.say(
            "approve.partial",
            request_id=request.request_id,
            count=len(request.approvals),
            required=request.approvals_required,
        )
    if args.json:
        console.json(access_request_json(request))
    return ExitCode.OK


def run_deny(args: argparse.Namespace, context: CommandContext) -> int:
    """Deny a pending request, giving a reason."""
    try:
        message = build_deny(args.request_id, args.reason)
    except EmptyFieldError as exc:
        raise empty_field_error(exc) from exc

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        request = pb_grpc.AccessServiceStub(channel).Deny(message, timeout=UNARY_TIMEOUT_SECONDS)

    log.info("denied request_id=%s", request.request_id)
    context.console.say("deny.done", request_id=request.request_id)
    if args.json:
        context.console.json(access_request_json(request))
    return ExitCode.OK


def run_pending(args: argparse.Namespace, context: CommandContext) -> int:
    """List pending requests: all of them for approvers, their own for viewers."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        response = pb_grpc.AccessServiceStub(channel).ListPending(
            pb.ListPendingRequest(), timeout=UNARY_TIMEOUT_SECONDS
        )

    if args.json:
        requests = [access_request_json(request) for request in response.requests]
        console.json({"requests": requests, "truncated": response.truncated})
    elif not response.requests:
        console.say("pending.empty")
    else:
        console.data(render_request_table(response.requests, console.lang))
        if response.truncated:
            console.data(console.text("pending.truncated", count=format_count(len(response.requests), console.lang)))
    return ExitCode.OK


def run_show(args: argparse.Namespace, context: CommandContext) -> int:
    """Print one request."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        request = pb_grpc.AccessServiceStub(channel).GetRequest(
            pb.GetRequestRequest(request_id=args.request_id), timeout=UNARY_TIMEOUT_SECONDS
        )

    if args.json:
        console.json(access_request_json(request))
    else:
        console.data(render_request_detail(request, console.lang))
    return ExitCode.OK
