"""Command-line options of the archive's commands: batch scanning, batches, print, copies, incidents."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from niemphong.clients.archive_commands import (
    run_batch_approve,
    run_batch_close,
    run_batch_minutes,
    run_batch_open,
    run_batch_show,
    run_copies,
    run_incident_close,
    run_incident_list,
    run_incident_report,
    run_print,
)
from niemphong.clients.batch_scan import run_batch_scan
from niemphong.clients.context import CommandContext
from niemphong.clients.envelope_commands import run_scan
from niemphong.clients.i18n import Lang, translate

MAX_COPIES = 20

AddCommand = Callable[..., argparse.ArgumentParser]
AddClientOptions = Callable[..., None]
ArgumentType = Callable[[str], str]

# Options of a single-file scan, and of a scan from a handover list. The
# level of a single file may come from --kind instead, which run_scan checks.
_SINGLE_OPTIONS = (("file", "FILE"), ("doc_number", "--doc-number"), ("issued", "--issued"), ("out", "--out"))
# Single-file options with a default, which the handover list gives per row instead.
_SINGLE_ONLY = (("level", "--level"), ("title", "--title"), ("source_name", "--source-name"), ("basis", "--basis"),
                ("stamp_from", "--stamp-from"), ("stamp_until", "--stamp-until"),
                ("extended_until", "--extended-until"), ("extension_decision", "--extension-decision"),
                ("extension_date", "--extension-date"), ("declassified_by", "--declassified-by"),
                ("declassified_on", "--declassified-on"), ("historical_archive", "--historical-archive"),
                ("kind", "--kind"), ("remove_source", "--remove-source"))
_MANIFEST_OPTIONS = (("dir", "--dir"), ("out_dir", "--out-dir"))
_MANIFEST_ONLY = (("batch", "--batch"), ("handed_over_by", "--handed-over-by"), ("note", "--note"),
                  ("remove_sources", "--remove-sources"))


def add_batch_scan_options(scan: argparse.ArgumentParser, lang: Lang, hex_id: ArgumentType) -> None:
    """Add the options of ``scan --manifest`` and ``--remove-source`` to the scan parser."""
    scan.add_argument("--remove-source", action="store_true", help=translate(lang, "help.scan.remove_source"))
    scan.add_argument("--manifest", metavar="CSV", help=translate(lang, "help.scan.manifest"))
    scan.add_argument("--dir", metavar="SCANS", help=translate(lang, "help.scan.dir"))
    scan.add_argument("--out-dir", metavar="OUT", help=translate(lang, "help.scan.out_dir"))
    scan.add_argument("--batch", type=hex_id, metavar="BATCH_ID", help=translate(lang, "help.scan.batch"))
    scan.add_argument("--handed-over-by", metavar="NAME", help=translate(lang, "help.batch.handed_over_by"))
    scan.add_argument("--note", metavar="TEXT", help=translate(lang, "help.batch.note"))
    scan.add_argument("--remove-sources", action="store_true", help=translate(lang, "help.scan.remove_sources"))


def check_scan_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject a mix of the single-file and the handover-list forms of scan, or a form left incomplete."""
    if args.manifest:
        conflicting = [label for name, label in _SINGLE_OPTIONS + _SINGLE_ONLY if getattr(args, name, None)]
        if conflicting:
            parser.error(f"argument {conflicting[0]}: not allowed with argument --manifest")
        required = [label for name, label in _MANIFEST_OPTIONS if not getattr(args, name)]
    else:
        conflicting = [label for name, label in _MANIFEST_OPTIONS + _MANIFEST_ONLY if getattr(args, name)]
        if conflicting:
            parser.error(f"argument {conflicting[0]}: not allowed with argument FILE")
        required = [label for name, label in _SINGLE_OPTIONS if getattr(args, name) is None]
    if required:
        parser.error(f"the following arguments are required: {', '.join(required)}")


def run_scan_command(args: argparse.Namespace, context: CommandContext) -> int:
    """Seal one file, or every scan of a handover list with ``--manifest``."""
    if args.manifest:
        return run_batch_scan(args, context)
    return run_scan(args, context)


def add_request_options(request: argparse.ArgumentParser, lang: Lang) -> None:
    """Add ``--copies`` and ``--recipient`` to the request parser."""
    def copies(text: str) -> int:
        if not text.isdigit() or not 0 <= int(text) <= MAX_COPIES:
            raise argparse.ArgumentTypeError(translate(lang, "arg.copies_invalid", value=text, max=MAX_COPIES))
        return int(text)

    request.add_argument("--copies", type=copies, default=0, metavar="N", help=translate(lang, "help.request.copies"))
    request.add_argument("--recipient", default="", metavar="AGENCY", help=translate(lang, "help.request.recipient"))


def add_archive_commands(
    commands: argparse._SubParsersAction,
    lang: Lang,
    add_command: AddCommand,
    add_client_options: AddClientOptions,
    hex_id: ArgumentType,
    request_id: ArgumentType,
    output_path: ArgumentType,
) -> None:
    """Add the batch, print, copies and incident commands."""
    batch_help = translate(lang, "help.batch")
    batch = commands.add_parser("batch", help=batch_help, description=batch_help, lang=lang)
    batch_commands = batch.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="batch_command", metavar="COMMAND", required=True
    )

    opened = add_command(batch_commands, "open", "help.batch.open", lang, run_batch_open)
    opened.add_argument("--manifest", required=True, metavar="CSV", help=translate(lang, "help.scan.manifest"))
    opened.add_argument("--handed-over-by", required=True, metavar="NAME", help=translate(lang, "help.batch.handed_over_by"))
    opened.add_argument("--note", default="", metavar="TEXT", help=translate(lang, "help.batch.note"))
    add_client_options(opened, lang)

    for name, handler in (("approve", run_batch_approve), ("show", run_batch_show)):
        parser = add_command(batch_commands, name, f"help.batch.{name}", lang, handler)
        parser.add_argument("batch_id", type=hex_id, metavar="BATCH_ID", help=translate(lang, "help.batch.id"))
        add_client_options(parser, lang)

    close = add_command(batch_commands, "close", "help.batch.close", lang, run_batch_close)
    close.add_argument("batch_id", type=hex_id, metavar="BATCH_ID", help=translate(lang, "help.batch.id"))
    close.add_argument("--missing", action="append", metavar="DOC_NUMBER", help=translate(lang, "help.batch.missing"))
    close.add_argument("--damaged", action="append", metavar="DOC_NUMBER", help=translate(lang, "help.batch.damaged"))
    close.add_argument("--note", default="", metavar="TEXT", help=translate(lang, "help.batch.note"))
    add_client_options(close, lang)

    minutes = add_command(batch_commands, "minutes", "help.batch.minutes", lang, run_batch_minutes)
    minutes.add_argument("batch_id", type=hex_id, metavar="BATCH_ID", help=translate(lang, "help.batch.id"))
    minutes.add_argument("--out", required=True, type=output_path, metavar="FILE.pdf", help=translate(lang, "help.batch.minutes_out"))
    minutes.add_argument("--force", action="store_true", help=translate(lang, "help.force"))
    add_client_options(minutes, lang)

    printed = add_command(commands, "print", "help.print", lang, run_print)
    printed.add_argument("envelope", metavar="ENVELOPE", help=translate(lang, "help.envelope"))
    printed.add_argument("--out", required=True, type=output_path, metavar="COPY.pdf", help=translate(lang, "help.print.out"))
    printed.add_argument("--request", type=request_id, metavar="REQUEST_ID", help=translate(lang, "help.print.request"))
    printed.add_argument("--force", action="store_true", help=translate(lang, "help.force"))
    add_client_options(printed, lang)

    copies = add_command(commands, "copies", "help.copies", lang, run_copies)
    copies.add_argument("artefact", metavar="ENVELOPE|ARTEFACT_ID", help=translate(lang, "help.copies.artefact"))
    add_client_options(copies, lang)

    incident_help = translate(lang, "help.incident")
    incident = commands.add_parser("incident", help=incident_help, description=incident_help, lang=lang)
    incident_commands = incident.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="incident_command", metavar="COMMAND", required=True
    )
    report = add_command(incident_commands, "report", "help.incident.report", lang, run_incident_report)
    report.add_argument(
        "--artefact", action="append", required=True, metavar="ENVELOPE|ARTEFACT_ID",
        help=translate(lang, "help.incident.artefact"),
    )
    report.add_argument("--text", required=True, metavar="TEXT", help=translate(lang, "help.incident.text"))
    add_client_options(report, lang)

    close_incident = add_command(incident_commands, "close", "help.incident.close", lang, run_incident_close)
    close_incident.add_argument("incident_id", type=hex_id, metavar="INCIDENT_ID", help=translate(lang, "help.incident.id"))
    close_incident.add_argument("--resolution", required=True, metavar="TEXT", help=translate(lang, "help.incident.resolution"))
    close_incident.add_argument("--revoke-grants", action="store_true", help=translate(lang, "help.incident.revoke"))
    add_client_options(close_incident, lang)

    listed = add_command(incident_commands, "list", "help.incident.list", lang, run_incident_list)
    add_client_options(listed, lang)
