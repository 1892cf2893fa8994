"""The ``niemphong`` command: argument parsing, dispatch and exit codes.

Exit codes: 0 done, 1 other failure, 2 usage error (also INVALID_ARGUMENT
from the daemon), 3 refused by policy, 4 not authorized or not yet approved,
5 integrity failure, 6 daemon or token unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from niemphong.clients.access_commands import run_approve, run_deny, run_pending, run_request, run_show
from niemphong.clients.audit_commands import run_audit_export, run_audit_show, run_audit_verify
from niemphong.clients.audit_render import parse_time_bound
from niemphong.clients.classification_args import add_classification_options
from niemphong.clients.console import Console
from niemphong.clients.context import CommandContext
from niemphong.clients.devinit import run_add_identity, run_dev_init
from niemphong.clients.devpki import ROLES, parse_roles
from niemphong.clients.archive_cli import (
    add_archive_commands,
    add_batch_scan_options,
    add_request_options,
    check_scan_arguments,
    run_scan_command,
)
from niemphong.clients.archive_commands import parse_hex_id
from niemphong.clients.envelope_commands import run_inspect, run_view
from niemphong.clients.errors import ClientError, ExitCode, os_error_text
from niemphong.clients.i18n import (
    LANGUAGES,
    Lang,
    select_language,
    translate,
    translate_argparse_error,
)
from niemphong.clients.hsm_commands import run_hsm_probe
from niemphong.clients.key_commands import add_key_commands
from niemphong.clients.policy_commands import (
    artefact_id_type,
    date_type,
    run_policy_check,
    run_policy_due,
    run_policy_extend,
    run_policy_show,
    within_type,
)
from niemphong.clients.protocol import parse_issued_date, parse_level, parse_request_id
from niemphong.clients.recovery_commands import add_recovery_commands

PROG = "niemphong"
# Exit status when stdout's reader went away, as the shell reports a command killed by SIGPIPE.
PIPE_CLOSED_STATUS = 128 + signal.SIGPIPE

log = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, CommandContext], int]


class LocalizedParser(argparse.ArgumentParser):
    """An ArgumentParser whose help, section titles and errors are in the user's language."""

    def __init__(self, *args: object, lang: Lang, **kwargs: object) -> None:
        usage_prefix = translate(lang, "argparse.usage_prefix")

        class Formatter(argparse.HelpFormatter):
            def add_usage(self, usage, actions, groups, prefix=None):  # type: ignore[no-untyped-def]
                super().add_usage(usage, actions, groups, prefix if prefix is not None else usage_prefix)

        kwargs.setdefault("formatter_class", Formatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lang = lang

        # argparse has no public way to rename its two default sections.
        self._positionals.title = translate(lang, "argparse.positionals")
        self._optionals.title = translate(lang, "argparse.options")
        self.add_argument(
            "-h", "--help", action="help", default=argparse.SUPPRESS, help=translate(lang, "help.help")
        )

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage and a translated error to stderr, then exit with code 2."""
        self.print_usage(sys.stderr)
        translated = translate_argparse_error(self.lang, message)
        line = translate(self.lang, "argparse.error_line", prog=self.prog, message=translated)
        self.exit(ExitCode.USAGE, line + "\n")


def _level_type(lang: Lang) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_level(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.level_invalid", value=text)) from None

    return parse


def _issued_type(lang: Lang) -> Callable[[str], dt.date]:
    def parse(text: str) -> dt.date:
        try:
            issued = parse_issued_date(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.date_invalid", value=text)) from None
        # A well-formed date after today is rejected by run_scan, without the usage text.
        return issued

    return parse


def _output_path_type(lang: Lang) -> Callable[[str], str]:
    def parse(text: str) -> str:
        # Path("") is Path("."), so an empty --out would otherwise be reported as the current folder.
        if not text:
            raise argparse.ArgumentTypeError(translate(lang, "arg.out_empty"))
        if text.endswith("/"):
            raise argparse.ArgumentTypeError(translate(lang, "arg.out_trailing_slash", value=text))
        return text

    return parse


def _request_id_type(lang: Lang) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return parse_request_id(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.request_id_invalid", value=text)) from None

    return parse


def _hex_id_type(lang: Lang) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return parse_hex_id(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.hex_id_invalid", value=text)) from None

    return parse


def _roles_type(lang: Lang) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return ",".join(parse_roles(text))
        except ValueError:
            raise argparse.ArgumentTypeError(
                translate(lang, "dev.bad_role", value=text, roles=", ".join(ROLES))
            ) from None

    return parse


def _add_common_options(parser: argparse.ArgumentParser, lang: Lang, *, top_level: bool) -> None:
    # On subcommands the defaults are suppressed, so that `niemphong --lang en
    # scan ...` keeps the value given before the subcommand.
    default_lang = None if top_level else argparse.SUPPRESS
    default_verbose = False if top_level else argparse.SUPPRESS
    parser.add_argument("--lang", choices=LANGUAGES, default=default_lang, help=translate(lang, "help.lang"))
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default_verbose, help=translate(lang, "help.verbose")
    )


def _add_connection_options(parser: argparse.ArgumentParser, lang: Lang, *, top_level: bool) -> None:
    # As for --lang: a subcommand suppresses its defaults, so that a value
    # given before the subcommand is kept.
    default_text = None if top_level else argparse.SUPPRESS
    default_flag = False if top_level else argparse.SUPPRESS
    parser.add_argument("--server", metavar="ADDRESS", default=default_text, help=translate(lang, "help.server"))
    parser.add_argument("--identity", metavar="DIR", default=default_text, help=translate(lang, "help.identity"))
    parser.add_argument("--json", action="store_true", default=default_flag, help=translate(lang, "help.json"))


def _add_json_option(parser: argparse.ArgumentParser, lang: Lang) -> None:
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=translate(lang, "help.json"))


def _add_client_options(parser: argparse.ArgumentParser, lang: Lang) -> None:
    _add_connection_options(parser, lang, top_level=False)
    _add_common_options(parser, lang, top_level=False)


def _add_command(
    commands: argparse._SubParsersAction, name: str, help_id: str, lang: Lang, handler: Handler
) -> argparse.ArgumentParser:
    help_text = translate(lang, help_id)
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text, lang=lang)
    parser.set_defaults(handler=handler)
    return parser


def _add_envelope_commands(commands: argparse._SubParsersAction, lang: Lang) -> None:
    scan = _add_command(commands, "scan", "help.scan", lang, run_scan_command)
    scan.add_argument("file", metavar="FILE", nargs="?", help=translate(lang, "help.scan.file"))
    # Not required by argparse: --kind may give the level instead (checked in run_scan).
    scan.add_argument(
        "--level", type=_level_type(lang), metavar="mat|toi-mat|tuyet-mat",
        help=translate(lang, "help.scan.level"),
    )
    scan.add_argument("--doc-number", metavar="NO", help=translate(lang, "help.scan.doc_number"))
    scan.add_argument(
        "--issued", type=_issued_type(lang), metavar="YYYY-MM-DD",
        help=translate(lang, "help.scan.issued"),
    )
    scan.add_argument("--title", default="", metavar="T", help=translate(lang, "help.scan.title"))
    scan.add_argument("--source-name", metavar="NAME", help=translate(lang, "help.scan.source_name"))
    scan.add_argument("--out", type=_output_path_type(lang), metavar="ENVELOPE", help=translate(lang, "help.scan.out"))
    scan.add_argument("--force", action="store_true", help=translate(lang, "help.force"))
    scan.add_argument("--spool", metavar="DIR", help=translate(lang, "help.spool"))
    add_classification_options(scan, lang)
    add_batch_scan_options(scan, lang, _hex_id_type(lang))
    scan.set_defaults(check_arguments=lambda args: check_scan_arguments(scan, args))
    _add_client_options(scan, lang)

    inspect = _add_command(commands, "inspect", "help.inspect", lang, run_inspect)
    inspect.add_argument("envelope", metavar="ENVELOPE", help=translate(lang, "help.envelope"))
    _add_client_options(inspect, lang)

    view = _add_command(commands, "view", "help.view", lang, run_view)
    view.add_argument("envelope", metavar="ENVELOPE", help=translate(lang, "help.envelope"))
    view.add_argument(
        "--out", required=True, type=_output_path_type(lang), metavar="FILE", help=translate(lang, "help.view.out")
    )
    view.add_argument(
        "--request", type=_request_id_type(lang), metavar="REQUEST_ID", help=translate(lang, "help.view.request")
    )
    view.add_argument("--force", action="store_true", help=translate(lang, "help.force"))
    view.add_argument("--spool", metavar="DIR", help=translate(lang, "help.spool"))
    _add_client_options(view, lang)


def _add_request_id_argument(parser: argparse.ArgumentParser, lang: Lang) -> None:
    parser.add_argument(
        "request_id", type=_request_id_type(lang), metavar="REQUEST_ID", help=translate(lang, "help.request_id")
    )


def _add_access_commands(commands: argparse._SubParsersAction, lang: Lang) -> None:
    request = _add_command(commands, "request", "help.request", lang, run_request)
    request.add_argument("envelope", metavar="ENVELOPE", help=translate(lang, "help.envelope"))
    request.add_argument("--purpose", required=True, metavar="TEXT", help=translate(lang, "help.request.purpose"))
    add_request_options(request, lang)
    _add_client_options(request, lang)

    approve = _add_command(commands, "approve", "help.approve", lang, run_approve)
    _add_request_id_argument(approve, lang)
    _add_client_options(approve, lang)

    deny = _add_command(commands, "deny", "help.deny", lang, run_deny)
    _add_request_id_argument(deny, lang)
    deny.add_argument("--reason", required=True, metavar="TEXT", help=translate(lang, "help.deny.reason"))
    _add_client_options(deny, lang)

    pending = _add_command(commands, "pending", "help.pending", lang, run_pending)
    _add_client_options(pending, lang)

    show = _add_command(commands, "show", "help.show", lang, run_show)
    _add_request_id_argument(show, lang)
    _add_client_options(show, lang)


def _time_bound_type(lang: Lang, *, end_of_day: bool) -> Callable[[str], dt.datetime]:
    def parse(text: str) -> dt.datetime:
        try:
            return parse_time_bound(text, end_of_day=end_of_day)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.time_invalid", value=text)) from None

    return parse


def _add_audit_commands(commands: argparse._SubParsersAction, lang: Lang) -> None:
    audit_help = translate(lang, "help.audit")
    audit = commands.add_parser("audit", help=audit_help, description=audit_help, lang=lang)
    audit_commands = audit.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="audit_command", metavar="COMMAND", required=True
    )

    verify = _add_command(audit_commands, "verify", "help.audit.verify", lang, run_audit_verify)
    _add_client_options(verify, lang)

    export = _add_command(audit_commands, "export", "help.audit.export", lang, run_audit_export)
    export.add_argument(
        "--since", type=_time_bound_type(lang, end_of_day=False), metavar="TIME",
        help=translate(lang, "help.audit.since"),
    )
    export.add_argument(
        "--until", type=_time_bound_type(lang, end_of_day=True), metavar="TIME",
        help=translate(lang, "help.audit.until"),
    )
    export.add_argument(
        "--format", choices=("csv", "jsonl"), default="csv", help=translate(lang, "help.audit.format"),
    )
    export.add_argument("--out", metavar="FILE", help=translate(lang, "help.audit.out"))
    export.add_argument("--force", action="store_true", help=translate(lang, "help.force"))
    _add_client_options(export, lang)

    show = _add_command(audit_commands, "show", "help.audit.show", lang, run_audit_show)
    show.add_argument("artefact", metavar="ARTEFACT", help=translate(lang, "help.audit.artefact"))
    _add_client_options(show, lang)


def _add_dev_commands(commands: argparse._SubParsersAction, lang: Lang) -> None:
    dev_help = translate(lang, "help.dev")
    dev = commands.add_parser("dev", help=dev_help, description=dev_help, lang=lang)
    dev_commands = dev.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="dev_command", metavar="COMMAND", required=True
    )

    init = _add_command(dev_commands, "init", "help.dev.init", lang, run_dev_init)
    init.add_argument("dir", metavar="DIR", help=translate(lang, "help.dev.dir"))
    shared_state = init.add_mutually_exclusive_group()
    shared_state.add_argument("--postgres", metavar="DSN", help=translate(lang, "help.dev.postgres"))
    shared_state.add_argument("--join", metavar="DIR", help=translate(lang, "help.dev.join"))
    _add_json_option(init, lang)
    _add_common_options(init, lang, top_level=False)

    add_identity = _add_command(dev_commands, "add-identity", "help.dev.add_identity", lang, run_add_identity)
    add_identity.add_argument("dir", metavar="DIR", help=translate(lang, "help.dev.dir"))
    add_identity.add_argument("name", metavar="NAME", help=translate(lang, "help.dev.name"))
    add_identity.add_argument(
        "--role", required=True, type=_roles_type(lang), metavar="ROLE[,ROLE...]",
        help=translate(lang, "help.dev.role", roles=", ".join(ROLES)),
    )
    add_identity.add_argument("--full-name", default="", metavar="NAME", help=translate(lang, "help.dev.full_name"))
    add_identity.add_argument("--title", default="", metavar="TITLE", help=translate(lang, "help.dev.title"))
    _add_json_option(add_identity, lang)
    _add_common_options(add_identity, lang, top_level=False)


def _add_policy_commands(commands: argparse._SubParsersAction, lang: Lang) -> None:
    policy_help = translate(lang, "help.policy")
    policy = commands.add_parser("policy", help=policy_help, description=policy_help, lang=lang)
    policy_commands = policy.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="policy_command", metavar="COMMAND", required=True
    )

    show = _add_command(policy_commands, "show", "help.policy.show", lang, run_policy_show)
    _add_client_options(show, lang)

    check = _add_command(policy_commands, "check", "help.policy.check", lang, run_policy_check)
    check.add_argument("--manifest", required=True, metavar="CSV", help=translate(lang, "help.policy.manifest"))
    check.add_argument("--date", type=date_type(lang), metavar="DATE", help=translate(lang, "help.policy.date"))
    _add_client_options(check, lang)

    due = _add_command(policy_commands, "due", "help.policy.due", lang, run_policy_due)
    due.add_argument("--within", type=within_type(lang), default=90, metavar="90d", help=translate(lang, "help.policy.within"))
    _add_client_options(due, lang)

    extend = _add_command(policy_commands, "extend", "help.policy.extend", lang, run_policy_extend)
    extend.add_argument(
        "artefact_id", type=artefact_id_type(lang), metavar="ARTEFACT_ID", help=translate(lang, "help.policy.artefact_id")
    )
    extend.add_argument("--until", required=True, type=date_type(lang), metavar="DATE", help=translate(lang, "help.policy.until"))
    extend.add_argument("--decision", required=True, metavar="TEXT", help=translate(lang, "help.policy.decision"))
    extend.add_argument(
        "--decided-on", required=True, type=date_type(lang), metavar="DATE", help=translate(lang, "help.policy.decided_on")
    )
    _add_client_options(extend, lang)


def _add_hsm_commands(commands: argparse._SubParsersAction, lang: Lang) -> None:
    hsm_help = translate(lang, "help.hsm")
    hsm = commands.add_parser("hsm", help=hsm_help, description=hsm_help, lang=lang)
    hsm_commands = hsm.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="hsm_command", metavar="COMMAND", required=True
    )
    probe = _add_command(hsm_commands, "probe", "help.hsm.probe", lang, run_hsm_probe)
    probe.add_argument("--profile", metavar="PROFILE", help=translate(lang, "help.hsm.profile"))
    _add_client_options(probe, lang)


def build_parser(lang: Lang) -> argparse.ArgumentParser:
    """Build the argument parser with help text in ``lang``."""
    parser = LocalizedParser(prog=PROG, description=translate(lang, "help.description"), lang=lang)
    _add_connection_options(parser, lang, top_level=True)
    _add_common_options(parser, lang, top_level=True)
    commands = parser.add_subparsers(
        title=translate(lang, "argparse.commands"), dest="command", metavar="COMMAND", required=True
    )
    _add_envelope_commands(commands, lang)
    _add_access_commands(commands, lang)
    add_key_commands(commands, lang, _add_command, _add_client_options)
    add_recovery_commands(commands, lang, _add_command, _add_client_options)
    _add_audit_commands(commands, lang)
    _add_policy_commands(commands, lang)
    add_archive_commands(
        commands, lang, _add_command, _add_client_options, _hex_id_type(lang), _request_id_type(lang),
        _output_path_type(lang),
    )
    _add_hsm_commands(commands, lang)
    _add_dev_commands(commands, lang)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A log handler that writes to whatever sys.stderr is at the time of each record."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _configure_logging(verbose: bool) -> None:
    logger = logging.getLogger("niemphong")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _use_utf8_streams() -> None:
    # Vietnamese text must reach the terminal as UTF-8 whatever the locale's
    # encoding, for example under LANG=vi_VN.TCVN. Messages on stderr may
    # quote file names that are not UTF-8 (legacy TCVN3 or VNI names), whose
    # undecodable bytes Python holds as lone surrogates, so stderr writes
    # them as backslash escapes instead of failing.
    for stream, errors in ((sys.stdout, None), (sys.stderr, "backslashreplace")):
        if not isinstance(stream, io.TextIOWrapper):
            continue
        encoding = (stream.encoding or "").lower().replace("-", "")
        if encoding != "utf8":
            stream.reconfigure(encoding="utf-8", errors=errors or "strict")
        elif errors is not None and stream.errors != errors:
            stream.reconfigure(errors=errors)


class TerminatedBySignal(BaseException):
    """Exception raised on SIGTERM or SIGHUP, so that cleanup runs as it does for Ctrl+C."""


def _raise_terminated(signal_number: int, frame: object) -> None:
    raise TerminatedBySignal(signal.Signals(signal_number).name)


@contextmanager
def raise_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into TerminatedBySignal inside the block.

    Without this, `kill` or a closed terminal would end the process before
    atomic_output could delete a partial plaintext or envelope file. Outside
    the main thread, where Python cannot set signal handlers, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, _raise_terminated) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _exit_status(code: object) -> int:
    if code is None:
        return ExitCode.OK
    if isinstance(code, int):
        return code
    return ExitCode.FAILURE


def _end_on_closed_pipe(command: str) -> int:
    """Return the exit status of a command whose stdout reader went away, as `head` leaves it.

    Like cat or grep killed by SIGPIPE, the command ends without a message,
    and the shell sees status 141 (128 + SIGPIPE). stdout is pointed at
    /dev/null first, so that the interpreter's final flush cannot fail again.
    """
    log.debug("%s stopped: stdout was closed by its reader", command)
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return PIPE_CLOSED_STATUS


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the niemphong command and return its exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    environment = os.environ if environ is None else environ
    _use_utf8_streams()

    lang = select_language(arguments, environment)
    parser = build_parser(lang)
    try:
        args = parser.parse_args(arguments)
        # Checks across options that argparse cannot express, such as scan's two forms.
        check = getattr(args, "check_arguments", None)
        if check is not None:
            check(args)
    except SystemExit as exc:
        return _exit_status(exc.code)

    _configure_logging(args.verbose)
    console = Console(lang=lang, stdout=sys.stdout, stderr=sys.stderr)
    context = CommandContext(console=console, environ=environment)
    try:
        with raise_on_termination():
            status = int(args.handler(args, context))
            # Flush here, so that a reader that went away shows up as BrokenPipeError below.
            sys.stdout.flush()
            return status
    except BrokenPipeError:
        return _end_on_closed_pipe(args.command)
    except ClientError as exc:
        log.debug(
            "%s failed: message=%s reason=%s exit_code=%d", args.command, exc.message_id, exc.reason, exc.exit_code
        )
        console.fail(exc.localize(lang))
        return int(exc.exit_code)
    except KeyboardInterrupt:
        log.debug("%s interrupted", args.command)
        console.say("cli.interrupted")
        return ExitCode.FAILURE
    except TerminatedBySignal as exc:
        log.debug("%s stopped by %s", args.command, exc)
        console.say("cli.terminated", signal=str(exc))
        return ExitCode.FAILURE
    except OSError as exc:
        log.debug("%s failed: %r", args.command, exc)
        console.fail(translate(lang, "error.io", path=exc.filename or "-", error=os_error_text(exc).localize(lang)))
        return ExitCode.FAILURE


if __name__ == "__main__":
    sys.exit(main())
