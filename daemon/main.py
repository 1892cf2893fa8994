"""niemphongd: the command line of the daemon.

    niemphongd --config FILE                         serve
    niemphongd provision --config FILE [--init-softhsm]
                                                     create missing level keys
                                                     (and a development token)
    niemphongd recovery-init --config FILE --out DIR --label LABEL
               (--init-softhsm | --initial-pin-file FILE)
                                                     the recovery key ceremony
    niemphongd probe --config FILE [--profile P] [--json]
                                                     check the token against a
                                                     token profile
    niemphongd audit verify --config FILE [--log PATH]... [--json] [--merged-out FILE]
                                                     check audit logs offline; with
                                                     several, merge them into one order
    niemphongd migrate --config FILE                 create or upgrade the state schema
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.audit.log import AuditLogError
from niemphong.daemon.audit.token_key import CheckpointKeyError
from niemphong.daemon.errors import ConfigError, ServiceError, TokenUnavailable
from niemphong.daemon.logs import setup_logging

log = logging.getLogger("niemphong.daemon")

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTEGRITY = 5
EXIT_UNAVAILABLE = 6


# glibc's mallopt parameter for the number of malloc arenas (malloc.h).
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def _limit_malloc_arenas() -> None:
    """Let glibc keep at most MALLOC_ARENAS malloc arenas, unless MALLOC_ARENA_MAX is set.

    glibc gives threads up to eight arenas per core, and each keeps the
    memory its threads freed. With gRPC's reader and handler threads passing
    1 MiB messages, that raised the peak of a streamed 1 GiB seal from about
    117 MiB to 134 MiB on the benchmark machine. It must run before the
    daemon starts threads. Other C libraries are left alone.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def _serve(config_path: str, open_token: Callable[..., Any] | None = None) -> int:
    """Serve until SIGTERM or SIGINT.

    ``open_token`` replaces the Pkcs11Token constructor; fault-injection
    tests pass a wrapper around the real token through it.
    """
    _limit_malloc_arenas()
    from niemphong.daemon.hardening import check_user, harden_process
    from niemphong.daemon.server import Daemon
    from niemphong.daemon.token_supervisor import TokenSupervisor

    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    check_user(config.allow_root)
    # Before the PIN is read, so that no core dump can ever hold it.
    harden_process()
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.info("received %s again; still draining", signal.Signals(signum).name)
            return
        log.info("received %s; draining", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    token = TokenSupervisor(config.token, open_token) if open_token is not None else None
    daemon = Daemon(config, token=token)
    daemon.start()
    # A signal that the kernel delivers to another thread does not interrupt
    # a wait without timeout, and Python runs handlers only in the main
    # thread: waking twice a second lets a pending handler run.
    while not stop.wait(timeout=0.5):
        pass
    daemon.stop()
    return 0


def _provision(config_path: str, init_softhsm: bool) -> int:
    from niemphong.daemon import provision

    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    if init_softhsm:
        provision.init_softhsm_token(config)
    for label in provision.create_level_keys(config):
        log.info("created level key %s", label)
    if not provision.create_audit_checkpoint_key(config):
        log.info("the token already has the audit checkpoint key")
    return 0


def _recovery_init(options: argparse.Namespace) -> int:
    from pathlib import Path

    from niemphong.daemon.hardening import harden_process
    from niemphong.daemon.recovery_ceremony import run_ceremony

    config = load_config(options.config)
    setup_logging(config.log_level, config.log_format)
    # The recovery PIN and its shares are in this process's memory during the ceremony.
    harden_process()
    try:
        result = run_ceremony(
            config, Path(options.out), label=options.label,
            module=Path(options.module) if options.module else None,
            init_softhsm=options.init_softhsm,
            initial_pin_file=Path(options.initial_pin_file) if options.initial_pin_file else None,
            bits=options.bits, version=options.version,
        )
    except ValueError as exc:
        print(f"niemphongd recovery-init: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"recovery token: label {result.token_label!r}, serial {result.token_serial}")
    for level, key in result.keys.items():
        print(f"{level.config_name}: {key.key_id} v{key.version}, {key.key_bits} bits, SHA-256 {key.fingerprint}")
        print(f"    public key: {key.path}")
    print(f"PIN shares (one per custodian): {result.share_files[0]}, {result.share_files[1]}")
    print(f"configuration to append to niemphongd.toml: {result.config_snippet}")
    return 0


def _recovery_init_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="niemphongd recovery-init",
        description="Create the recovery token's key pairs and split its PIN between two custodians.",
    )
    parser.add_argument("--config", required=True, help="path of niemphongd.toml")
    parser.add_argument("--out", required=True, help="new or empty folder for public keys, PIN shares and recovery.toml")
    parser.add_argument("--label", required=True, help="label of the recovery token")
    parser.add_argument("--module", help="PKCS#11 module of the recovery token (default: the [token] module)")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--init-softhsm", action="store_true", help="initialize a free SoftHSM2 slot as the recovery token")
    start.add_argument(
        "--initial-pin-file", metavar="FILE",
        help="file holding the user PIN the token vendor's tool set; it is replaced by the two shares",
    )
    parser.add_argument("--bits", type=int, default=3072, help="RSA modulus length in bits (default 3072, minimum 3072)")
    parser.add_argument("--version", type=int, help="version number of the new key pairs (default: next free)")
    return parser


def _probe(config_path: str, profile_name: str | None, as_json: bool) -> int:
    """Probe the configured token against a profile without a running daemon; exit 1 when a point fails."""
    import json

    from niemphong.daemon.hsm import Pkcs11Token
    from niemphong.daemon.hsm_probe import probe
    from niemphong.daemon.hsm_profiles import ProfileError, load_profile
    from niemphong.daemon.services.token_service import report_to_proto
    from google.protobuf import json_format

    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    try:
        profile = load_profile(profile_name or config.token.profile)
    except ProfileError as exc:
        raise ConfigError(str(exc)) from None
    token = Pkcs11Token(config.token, read_pin(config.token))
    try:
        report = probe(token, profile, config.token.sessions, config.levels)
    finally:
        token.close()

    if as_json:
        message = report_to_proto(report, config.token.profile)
        print(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), ensure_ascii=False, indent=2))
    else:
        print(f"profile {profile.name} ({profile.family}), configured profile {config.token.profile}")
        for point in report.points:
            reason = f" ({point.reason})" if point.reason else ""
            print(f"{point.status.value.upper():12} {point.name}{reason}")
            print(f"{'':12} required: {point.required}")
            print(f"{'':12} offered:  {point.offered}")
        print("PASS" if report.passed else "FAIL")
    return 0 if report.passed else 1


def _audit_verify(config_path: str, log_paths: list[str] | None, as_json: bool, merged_out: str | None) -> int:
    import json
    from pathlib import Path

    from niemphong.daemon.audit import offline

    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    paths = [Path(path) for path in log_paths] if log_paths else [config.audit.path]
    reports = []
    for path in paths:
        try:
            reports.append(offline.verify_offline(config, path))
        except OSError as exc:
            print(f"niemphongd: cannot read audit log {path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
    intact = all(report.intact for report in reports)
    if len(paths) == 1 and merged_out is None:
        print(offline.report_json(reports[0]) if as_json else offline.report_text(reports[0], paths[0]))
        return 0 if intact else EXIT_INTEGRITY

    # Several daemons' logs: each chain first, then one order over all of them.
    merge, records = offline.merge_verified(paths)
    if merged_out is not None:
        offline.write_merged(records, Path(merged_out))
    if as_json:
        print(json.dumps({
            "logs": [json.loads(offline.report_json(report)) for report in reports],
            "merge": offline.merge_json(merge),
        }, indent=2))
    else:
        print("\n".join(offline.report_text(report, path) for report, path in zip(reports, paths)))
        print(offline.merge_text(merge))
    return 0 if intact and merge.ordered else EXIT_INTEGRITY


def _migrate(config_path: str) -> int:
    from niemphong.daemon.store import SCHEMA_VERSION, open_store

    config = load_config(config_path)
    setup_logging(config.log_level, config.log_format)
    store = open_store(config)
    store.close()
    print(f"state database at schema {SCHEMA_VERSION}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "recovery-init":
        recovery_options = _recovery_init_parser().parse_args(args[1:])
        action = lambda: _recovery_init(recovery_options)  # noqa: E731
    elif args and args[0] == "provision":
        parser = argparse.ArgumentParser(prog="niemphongd provision", description="Create missing level keys in the token.")
        parser.add_argument("--config", required=True, help="path of niemphongd.toml")
        parser.add_argument(
            "--init-softhsm", action="store_true",
            help="first initialize a SoftHSM2 development token with random PINs",
        )
        options = parser.parse_args(args[1:])
        action = lambda: _provision(options.config, options.init_softhsm)  # noqa: E731
    elif args and args[0] == "probe":
        parser = argparse.ArgumentParser(
            prog="niemphongd probe",
            description="Check the configured token against a token profile, without a running daemon. "
                        "Exit status 0 when every point passes, 1 when one fails, 6 when the token is unavailable.",
        )
        parser.add_argument("--config", required=True, help="path of niemphongd.toml")
        parser.add_argument("--profile", help="profile name in hsm_profiles/ or a profile file path; "
                                              "default: [token] profile of the configuration")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        options = parser.parse_args(args[1:])
        action = lambda: _probe(options.config, options.profile, options.json)  # noqa: E731
    elif args and args[0] == "audit":
        parser = argparse.ArgumentParser(prog="niemphongd audit", description="Audit log tools for the custody host.")
        commands = parser.add_subparsers(dest="command", required=True)
        verify = commands.add_parser(
            "verify", help="check the whole audit log with the token's key; exit 5 when it was altered",
        )
        verify.add_argument("--config", required=True, help="path of niemphongd.toml")
        verify.add_argument(
            "--log", action="append",
            help="log file to check instead of [audit] path, such as a copy; give it once per daemon to "
                 "check the logs of daemons sharing a PostgreSQL state database and merge them into one order",
        )
        verify.add_argument("--json", action="store_true", help="print the report as JSON")
        verify.add_argument(
            "--merged-out", metavar="FILE", help="write every record of the logs in the merged order to FILE as JSON Lines",
        )
        options = parser.parse_args(args[1:])
        action = lambda: _audit_verify(options.config, options.log, options.json, options.merged_out)  # noqa: E731
    elif args and args[0] == "migrate":
        parser = argparse.ArgumentParser(
            prog="niemphongd migrate",
            description="Create or upgrade the state database's schema; safe to run on every start and from "
                        "several daemons at once.",
        )
        parser.add_argument("--config", required=True, help="path of niemphongd.toml")
        options = parser.parse_args(args[1:])
        action = lambda: _migrate(options.config)  # noqa: E731
    else:
        parser = argparse.ArgumentParser(prog="niemphongd", description="Niêm Phong key-custody daemon.")
        parser.add_argument("--config", required=True, help="path of niemphongd.toml")
        options = parser.parse_args(args)
        action = lambda: _serve(options.config)  # noqa: E731

    try:
        return action()
    except ConfigError as exc:
        print(f"niemphongd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except TokenUnavailable as exc:
        print(f"niemphongd: token unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (AuditLogError, CheckpointKeyError) as exc:
        print(f"niemphongd: audit log unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ServiceError as exc:
        # STATE_UNAVAILABLE: the state database cannot be reached.
        print(f"niemphongd: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OSError as exc:
        print(f"niemphongd: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
