"""The recover commands, on niemphongd's RecoveryService.

    niemphong recover start --reason TEXT [--share-file FILE]
    niemphong recover confirm SESSION_ID [--share-file FILE]
    niemphong recover status | end [SESSION_ID]
    niemphong recover rewrap FOLDER
    niemphong recover open ENVELOPE --out FILE [--request ID]

A PIN share is read from ``--share-file`` or typed at a prompt that does not
echo it; it is never an argument, so it stays out of shell history and
process listings.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext, open_input_file
from niemphong.clients.envelope_commands import open_to_file
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import Lang, format_timestamp, translate
from niemphong.clients.key_commands import AddClientOptions, AddCommand, hex_id_type, rewrap_with
from niemphong.clients.key_render import render_session, session_json
from niemphong.clients.protocol import normalize_text
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc

log = logging.getLogger(__name__)

_SHARE = re.compile(r"^[0-9a-fA-F]{32}$")


def add_recovery_commands(
    commands: argparse._SubParsersAction, lang: Lang, add_command: AddCommand, add_client_options: AddClientOptions
) -> None:
    """Add ``recover`` and its subcommands to the top-level parser."""
    recover_help = translate(lang, "help.recover")
    recover = commands.add_parser("recover", help=recover_help, description=recover_help, lang=lang)
    subcommands = recover.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="recover_command", metavar="COMMAND", required=True
    )
    session_id = hex_id_type(lang, "field.session_id")

    start = add_command(subcommands, "start", "help.recover.start", lang, run_recover_start)
    start.add_argument("--reason", required=True, metavar="TEXT", help=translate(lang, "help.recover.reason"))
    start.add_argument("--share-file", metavar="FILE", help=translate(lang, "help.recover.share_file"))
    add_client_options(start, lang)

    confirm = add_command(subcommands, "confirm", "help.recover.confirm", lang, run_recover_confirm)
    confirm.add_argument("session_id", type=session_id, metavar="SESSION_ID", help=translate(lang, "help.recover.session_id"))
    confirm.add_argument("--share-file", metavar="FILE", help=translate(lang, "help.recover.share_file"))
    add_client_options(confirm, lang)

    status = add_command(subcommands, "status", "help.recover.status", lang, run_recover_status)
    add_client_options(status, lang)

    end = add_command(subcommands, "end", "help.recover.end", lang, run_recover_end)
    end.add_argument(
        "session_id", nargs="?", type=session_id, metavar="SESSION_ID", help=translate(lang, "help.recover.end.session_id")
    )
    add_client_options(end, lang)

    rewrap = add_command(subcommands, "rewrap", "help.recover.rewrap", lang, run_recover_rewrap)
    rewrap.add_argument("path", metavar="FOLDER", help=translate(lang, "help.rewrap.path"))
    add_client_options(rewrap, lang)

    opened = add_command(subcommands, "open", "help.recover.open", lang, run_recover_open)
    opened.add_argument("envelope", metavar="ENVELOPE", help=translate(lang, "help.envelope"))
    opened.add_argument("--out", required=True, metavar="FILE", help=translate(lang, "help.view.out"))
    opened.add_argument(
        "--request", type=hex_id_type(lang, "field.request_id"), metavar="REQUEST_ID",
        help=translate(lang, "help.view.request"),
    )
    opened.add_argument("--force", action="store_true", help=translate(lang, "help.force"))
    add_client_options(opened, lang)


def read_share(path: str | None, lang: Lang, read_line: Callable[[], str] | None = None) -> str:
    """Return a PIN share from ``path``, or from the terminal without echo, or from one line of stdin.

    Raises ClientError (usage) when it is not 32 hex digits. The message
    names where the share came from, never the share.
    """
    if path is not None:
        source = path
        handle, _ = open_input_file(Path(path))
        with handle:
            lines = [line.strip() for line in handle.read(4096).decode("ascii", "replace").splitlines()]
        text = next((line for line in lines if line), "")
    else:
        source = translate(lang, "share.stdin")
        if read_line is not None:
            text = read_line()
        elif sys.stdin.isatty():
            text = getpass.getpass(translate(lang, "share.prompt"))
        else:
            text = sys.stdin.readline()
    text = text.strip()
    if not _SHARE.match(text):
        raise ClientError(ExitCode.USAGE, "share.invalid", source=source)
    return text.lower()


def _session(context: CommandContext, args: argparse.Namespace, call: Callable[[kpb_grpc.RecoveryServiceStub], kpb.RecoverySession]) -> kpb.RecoverySession:
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        return call(kpb_grpc.RecoveryServiceStub(channel))


def run_recover_start(args: argparse.Namespace, context: CommandContext) -> int:
    """Start a recovery session with this custodian's PIN share; print the session id."""
    console = context.console
    reason = normalize_text(args.reason)
    if not reason:
        raise ClientError(ExitCode.USAGE, "arg.empty", field=translate(console.lang, "field.reason"))
    share = read_share(args.share_file, console.lang)
    request = kpb.StartRecoveryRequest(pin_share=share, reason=reason)
    del share

    session = _session(context, args, lambda stub: stub.StartRecovery(request, timeout=UNARY_TIMEOUT_SECONDS))
    log.info("started recovery session_id=%s", session.session_id)
    console.say("recover.started", session_id=session.session_id, expires=format_timestamp(session.expires_at, console.lang))
    _print_session(args, context, session, session.session_id)
    return ExitCode.OK


def run_recover_confirm(args: argparse.Namespace, context: CommandContext) -> int:
    """Confirm a pending recovery session with the second custodian's PIN share."""
    console = context.console
    share = read_share(args.share_file, console.lang)
    request = kpb.ConfirmRecoveryRequest(session_id=args.session_id, pin_share=share)
    del share

    session = _session(context, args, lambda stub: stub.ConfirmRecovery(request, timeout=UNARY_TIMEOUT_SECONDS))
    log.info("confirmed recovery session_id=%s", session.session_id)
    console.say("recover.confirmed", session_id=session.session_id, expires=format_timestamp(session.expires_at, console.lang))
    _print_session(args, context, session, session.session_id)
    return ExitCode.OK


def run_recover_status(args: argparse.Namespace, context: CommandContext) -> int:
    """Show the current or last recovery session."""
    session = _session(context, args, lambda stub: stub.GetRecovery(kpb.GetRecoveryRequest(), timeout=UNARY_TIMEOUT_SECONDS))
    _print_session(args, context, session, render_session(session, context.console.lang))
    return ExitCode.OK


def run_recover_end(args: argparse.Namespace, context: CommandContext) -> int:
    """End the given recovery session, or the current one, and log out of the recovery token."""
    def end(stub: kpb_grpc.RecoveryServiceStub) -> kpb.RecoverySession:
        session_id = args.session_id
        if session_id is None:
            session_id = stub.GetRecovery(kpb.GetRecoveryRequest(), timeout=UNARY_TIMEOUT_SECONDS).session_id
        return stub.EndRecovery(kpb.EndRecoveryRequest(session_id=session_id or "0" * 32), timeout=UNARY_TIMEOUT_SECONDS)

    session = _session(context, args, end)
    context.console.say("recover.ended", session_id=session.session_id)
    _print_session(args, context, session, session.session_id)
    return ExitCode.OK


def _print_session(args: argparse.Namespace, context: CommandContext, session: kpb.RecoverySession, text: str) -> None:
    if args.json:
        context.console.json(session_json(session))
    else:
        context.console.data(text)


def run_recover_rewrap(args: argparse.Namespace, context: CommandContext) -> int:
    """Rewrap every envelope under a folder through the recovery token, onto the working token's newest keys."""
    return rewrap_with(args, context, lambda channel: kpb_grpc.RecoveryServiceStub(channel).RecoverRewrap)


def run_recover_open(args: argparse.Namespace, context: CommandContext) -> int:
    """Open an envelope through its recovery slot and write the plaintext atomically to ``--out``.

    It is an Open like any other: the viewer needs a grant, and the open is counted.
    """
    return open_to_file(args, context, lambda channel: kpb_grpc.RecoveryServiceStub(channel).RecoverOpen)
