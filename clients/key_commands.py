"""The keys and rewrap commands, on niemphongd's KeyService.

    niemphong keys list | due | pending
    niemphong keys create | rotate --level L
    niemphong keys retire --level L --version N --for sealing|opening
    niemphong keys destroy --level L --version N
    niemphong keys confirm | reject CHANGE_ID
    niemphong rewrap FOLDER
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from pathlib import Path

import grpc

from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import Lang, format_count, translate
from niemphong.clients.key_render import (
    describe_change,
    key_change_json,
    key_version_json,
    keys_json,
    render_changes,
    render_due,
    render_keys,
    report_json,
)
from niemphong.clients.progress import ProgressBar
from niemphong.clients.protocol import normalize_text, parse_level
from niemphong.clients.rewrap import FileStatus, RewrapCall, RewrapReport, rewrap_tree
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, CommandContext], int]
AddCommand = Callable[[argparse._SubParsersAction, str, str, Lang, Handler], argparse.ArgumentParser]
AddClientOptions = Callable[..., None]

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
RETIRE_FOR = {"sealing": kpb.KEY_OPERATION_RETIRE_SEALING, "opening": kpb.KEY_OPERATION_RETIRE_OPENING}


# Argument types -----------------------------------------------------------------------


def level_type(lang: Lang) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_level(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.level_invalid", value=text)) from None

    return parse


def version_type(lang: Lang) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = text.strip()
        if not value.isdigit() or not 1 <= int(value) <= 2**32 - 1:
            raise argparse.ArgumentTypeError(translate(lang, "arg.version_invalid", value=text))
        return int(value)

    return parse


def hex_id_type(lang: Lang, what_id: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if not _HEX_ID.match(value):
            raise argparse.ArgumentTypeError(
                translate(lang, "arg.id_invalid", value=text, what=translate(lang, what_id))
            )
        return value

    return parse


# Parser -------------------------------------------------------------------------------------


def add_key_commands(
    commands: argparse._SubParsersAction, lang: Lang, add_command: AddCommand, add_client_options: AddClientOptions
) -> None:
    """Add ``keys`` with its subcommands, and ``rewrap``, to the top-level parser."""
    keys_help = translate(lang, "help.keys")
    keys = commands.add_parser("keys", help=keys_help, description=keys_help, lang=lang)
    subcommands = keys.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="keys_command", metavar="COMMAND", required=True
    )

    for name, handler in (("list", run_keys_list), ("due", run_keys_due), ("pending", run_keys_pending)):
        parser = add_command(subcommands, name, f"help.keys.{name}", lang, handler)
        add_client_options(parser, lang)

    for name, operation in (("create", kpb.KEY_OPERATION_CREATE), ("rotate", kpb.KEY_OPERATION_ROTATE)):
        parser = add_command(subcommands, name, f"help.keys.{name}", lang, run_keys_change)
        parser.set_defaults(operation=operation)
        _add_level(parser, lang)
        _add_reason(parser, lang, required=False)
        add_client_options(parser, lang)

    retire = add_command(subcommands, "retire", "help.keys.retire", lang, run_keys_change)
    _add_level(retire, lang)
    _add_version(retire, lang)
    retire.add_argument(
        "--for", dest="retire_for", required=True, choices=sorted(RETIRE_FOR), help=translate(lang, "help.keys.retire.for")
    )
    _add_reason(retire, lang, required=False)
    add_client_options(retire, lang)

    destroy = add_command(subcommands, "destroy", "help.keys.destroy", lang, run_keys_change)
    destroy.set_defaults(operation=kpb.KEY_OPERATION_DESTROY)
    _add_level(destroy, lang)
    _add_version(destroy, lang)
    _add_reason(destroy, lang, required=False)
    add_client_options(destroy, lang)

    confirm = add_command(subcommands, "confirm", "help.keys.confirm", lang, run_keys_confirm)
    confirm.add_argument(
        "change_id", type=hex_id_type(lang, "field.change_id"), metavar="CHANGE_ID",
        help=translate(lang, "help.keys.change_id"),
    )
    add_client_options(confirm, lang)

    reject = add_command(subcommands, "reject", "help.keys.reject", lang, run_keys_reject)
    reject.add_argument(
        "change_id", type=hex_id_type(lang, "field.change_id"), metavar="CHANGE_ID",
        help=translate(lang, "help.keys.change_id"),
    )
    _add_reason(reject, lang, required=True)
    add_client_options(reject, lang)

    rewrap = add_command(commands, "rewrap", "help.rewrap", lang, run_rewrap)
    rewrap.add_argument("path", metavar="FOLDER", help=translate(lang, "help.rewrap.path"))
    add_client_options(rewrap, lang)


def _add_level(parser: argparse.ArgumentParser, lang: Lang) -> None:
    parser.add_argument(
        "--level", required=True, type=level_type(lang), metavar="mat|toi-mat", help=translate(lang, "help.keys.level")
    )


def _add_version(parser: argparse.ArgumentParser, lang: Lang) -> None:
    parser.add_argument(
        "--version", required=True, type=version_type(lang), metavar="N", help=translate(lang, "help.keys.version")
    )


def _add_reason(parser: argparse.ArgumentParser, lang: Lang, *, required: bool) -> None:
    parser.add_argument(
        "--reason", required=required, default="", metavar="TEXT",
        help=translate(lang, "help.keys.reject.reason" if required else "help.keys.reason"),
    )


# Handlers -------------------------------------------------------------------------------------


def _list_keys(args: argparse.Namespace, context: CommandContext) -> kpb.ListKeysResponse:
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        return kpb_grpc.KeyServiceStub(channel).ListKeys(kpb.ListKeysRequest(), timeout=UNARY_TIMEOUT_SECONDS)


def run_keys_list(args: argparse.Namespace, context: CommandContext) -> int:
    """Print every key version with its state, token presence and the artefacts still under it."""
    response = _list_keys(args, context)
    if args.json:
        context.console.json(keys_json(response))
    else:
        context.console.data(render_keys(response, context.console.lang))
    return ExitCode.OK


def run_keys_due(args: argparse.Namespace, context: CommandContext) -> int:
    """Print the active key versions older than their level's rotation period."""
    response = _list_keys(args, context)
    due = [key for key in response.keys if key.rotation_due]
    if args.json:
        context.console.json({"due": [key_version_json(key) for key in due]})
    elif not due:
        context.console.say("keys.due_none")
    else:
        context.console.data(render_due(due, context.console.lang, response.levels))
    return ExitCode.OK


def run_keys_change(args: argparse.Namespace, context: CommandContext) -> int:
    """Propose a key change; it is carried out at once when the level needs one custodian."""
    operation = RETIRE_FOR[args.retire_for] if getattr(args, "retire_for", None) else args.operation
    request = kpb.ProposeKeyChangeRequest(
        operation=operation, level=args.level, version=getattr(args, "version", 0) or 0,
        reason=normalize_text(args.reason),
    )

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        change = kpb_grpc.KeyServiceStub(channel).ProposeKeyChange(request, timeout=UNARY_TIMEOUT_SECONDS)

    log.info("proposed key change change_id=%s state=%s", change.change_id, change.state)
    return _report_change(args, context, change)


def run_keys_confirm(args: argparse.Namespace, context: CommandContext) -> int:
    """Confirm a pending key change."""
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        change = kpb_grpc.KeyServiceStub(channel).ConfirmKeyChange(
            kpb.ConfirmKeyChangeRequest(change_id=args.change_id), timeout=UNARY_TIMEOUT_SECONDS
        )
    log.info("confirmed key change change_id=%s state=%s", change.change_id, change.state)
    return _report_change(args, context, change)


def run_keys_reject(args: argparse.Namespace, context: CommandContext) -> int:
    """Reject a pending key change, giving a reason."""
    reason = normalize_text(args.reason)
    if not reason:
        raise ClientError(ExitCode.USAGE, "arg.empty", field=translate(context.console.lang, "field.reason"))
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        change = kpb_grpc.KeyServiceStub(channel).RejectKeyChange(
            kpb.RejectKeyChangeRequest(change_id=args.change_id, reason=reason), timeout=UNARY_TIMEOUT_SECONDS
        )
    return _report_change(args, context, change)


def _report_change(args: argparse.Namespace, context: CommandContext, change: kpb.KeyChange) -> int:
    console = context.console
    params = describe_change(change, console.lang)
    if change.state == kpb.KEY_CHANGE_STATE_DONE:
        console.say("keys.change_done", **params)
    elif change.state == kpb.KEY_CHANGE_STATE_REJECTED:
        console.say("keys.change_rejected", **params)
    else:
        console.say("keys.change_pending", **params)
    if args.json:
        console.json(key_change_json(change))
    else:
        console.data(change.change_id)
    return ExitCode.OK


def run_keys_pending(args: argparse.Namespace, context: CommandContext) -> int:
    """List the key changes waiting for confirmation."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        response = kpb_grpc.KeyServiceStub(channel).ListKeyChanges(
            kpb.ListKeyChangesRequest(), timeout=UNARY_TIMEOUT_SECONDS
        )
    if args.json:
        console.json({"changes": [key_change_json(change) for change in response.changes]})
    elif not response.changes:
        console.say("keys.pending_empty")
    else:
        console.data(render_changes(response.changes, console.lang))
    return ExitCode.OK


# Rewrap ---------------------------------------------------------------------------------------


def run_rewrap(args: argparse.Namespace, context: CommandContext) -> int:
    """Move every envelope under a folder to the newest key versions, header only."""
    return rewrap_with(args, context, lambda channel: kpb_grpc.KeyServiceStub(channel).Rewrap)


def rewrap_with(
    args: argparse.Namespace,
    context: CommandContext,
    method: Callable[[grpc.Channel], Callable[..., kpb.RewrapResponse]],
) -> int:
    """Run a rewrap over ``args.path`` with ``method`` (Rewrap or RecoverRewrap) and report it."""
    console = context.console
    root = Path(args.path)
    if not root.exists():
        raise ClientError(ExitCode.USAGE, "usage.input_missing", path=str(root))

    channel, server = context.connect(args)
    with channel:
        rpc = method(channel)

        def call(header: bytes) -> kpb.RewrapResponse:
            with rpc_errors_as_client_errors(server.display):
                return rpc(kpb.RewrapRequest(header=header), timeout=UNARY_TIMEOUT_SECONDS)

        def progress(files: int, total_bytes: int) -> ProgressBar:
            return ProgressBar(console.stderr, console.lang, files, total_bytes, enabled=console.stderr.isatty())

        report = _run_tree(root, call, progress, context)

    _say_report(report, context)
    if args.json:
        console.json(report_json(report))
    failure = report.first_failure
    return int(failure.error.exit_code) if failure and failure.error else ExitCode.OK


def _run_tree(
    root: Path, call: RewrapCall, progress: Callable[[int, int], ProgressBar], context: CommandContext
) -> RewrapReport:
    try:
        return rewrap_tree(root, call, progress)
    except ClientError as error:
        error.add_hint("rewrap.resume_hint")
        raise


def _say_report(report: RewrapReport, context: CommandContext) -> None:
    console = context.console
    lang = console.lang
    if report.leftovers_removed:
        console.say("rewrap.leftovers_removed", count=format_count(report.leftovers_removed, lang))
    for outcome in report.outcomes:
        if outcome.status is FileStatus.FAILED and outcome.error is not None:
            console.say("rewrap.failed_file", path=str(outcome.path), message=outcome.error.localize(lang))
    console.say(
        "rewrap.summary",
        rewrapped=format_count(report.count(FileStatus.REWRAPPED), lang),
        current=format_count(report.count(FileStatus.CURRENT), lang),
        skipped=format_count(report.count(FileStatus.SKIPPED), lang),
        failed=format_count(report.count(FileStatus.FAILED), lang),
    )
    log.info(
        "rewrap of %s: rewrapped=%d current=%d skipped=%d failed=%d leftovers_removed=%d",
        report.root, report.count(FileStatus.REWRAPPED), report.count(FileStatus.CURRENT),
        report.count(FileStatus.SKIPPED), report.count(FileStatus.FAILED), report.leftovers_removed,
    )
