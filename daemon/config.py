"""The daemon's configuration file (TOML), loaded and validated in one place.

A bad file stops the daemon before it serves, with a message that names the
file, the key and what is wrong. The PIN itself never appears here: the file
names where to read it (a file, or a systemd credential).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import SEALABLE_LEVELS, Level
from niemphong.daemon.recovery_keys import (
    DEFAULT_RECOVERY_WRAP,
    OAEP_HASHES,
    RecoveryPublicKey,
    default_recovery_key_id,
    load_public_key,
)
from niemphong.daemon.spool import SpoolConfig

if TYPE_CHECKING:
    from niemphong.daemon.policy.loader import Policy

DEFAULT_CHUNK_BYTES = 1024 * 1024
MAX_CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_SESSIONS = 4
MAX_SESSIONS = 64
DEFAULT_RETRY_MAX_SECONDS = 30
# How long in-flight calls may run after SIGTERM; keep the unit's
# TimeoutStopSec= above it.
DEFAULT_DRAIN_SECONDS = 30
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
LOG_FORMATS = ("auto", "journal", "text")

# Audit checkpoints: records between checkpoints are protected by the hash
# chain alone, so these bound what an unclean stop leaves without a MAC.
DEFAULT_CHECKPOINT_RECORDS = 100
DEFAULT_CHECKPOINT_SECONDS = 60

DEFAULT_RECOVERY_SESSION_MINUTES = 60


@dataclass(frozen=True)
class TokenConfig:
    module: Path
    label: str | None
    serial: str | None
    pin_file: Path | None
    pin_credential: str | None
    sessions: int
    profile: str
    env: Mapping[str, str]
    # Maximum wait in seconds between two attempts to open the token again after a fault.
    retry_max_seconds: float = DEFAULT_RETRY_MAX_SECONDS


@dataclass(frozen=True)
class LevelPolicy:
    """The key policy of one level, read from the policy file (see daemon/policy/loader.py)."""

    level: Level
    key_id: str
    approvals: int
    grant_seconds: int
    grant_opens: int
    # Empty: any profile except a software one for Tối mật outside development mode.
    token_profiles: tuple[str, ...] = ()
    # Whether a grant at this level may allow printed copies (Article 11 of
    # the Law on Protection of State Secrets No. 29/2018/QH14). Off unless set.
    printing: bool = False
    # Days a key version may seal before `niemphong keys due` lists it and
    # the metric niemphong_key_rotation_due turns to 1. The daemon never
    # rotates keys on its own.
    rotation_days: int = 365
    protection_years: int = 10
    # Distinct custodians who must confirm a change of the level's key.
    custodians: int = 1
    # True: every segment is sealed and opened by the token (in-token mode).
    in_token: bool = False


@dataclass(frozen=True)
class RecoveryConfig:
    """The [recovery] section: where the recovery token is found, and each level's recovery key.

    The recovery token's PIN is never configured: two custodians each send
    one share of it when a recovery session starts.
    """

    module: Path
    label: str | None
    serial: str | None
    session_seconds: int
    keys: Mapping[Level, RecoveryPublicKey]


STATE_BACKENDS = ("sqlite", "postgresql")
DEFAULT_STATE_POOL_SIZE = 8


@dataclass(frozen=True)
class PostgresConfig:
    """Where the shared PostgreSQL state database is, and where its password is read from.

    ``conninfo`` is a libpq connection string or URI that contains no password.
    """

    conninfo: str
    password_file: Path | None = None
    password_credential: str | None = None
    pool_size: int = DEFAULT_STATE_POOL_SIZE


@dataclass(frozen=True)
class AuditSettings:
    """The [audit] section: where the audit log is and how often it gets a checkpoint."""

    path: Path
    checkpoint_records: int
    checkpoint_seconds: float


@dataclass(frozen=True)
class MetricsConfig:
    """The Prometheus listener: ``host`` and ``port``, with TLS when not on loopback."""

    host: str
    port: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    unix_socket: Path | None
    tcp: str | None
    chunk_bytes: int
    workers: int
    tls_ca: Path
    tls_cert: Path
    tls_key: Path
    token: TokenConfig
    # The SQLite database file; with PostgreSQL, None.
    sqlite: Path | None
    levels: Mapping[Level, LevelPolicy]
    audit: AuditSettings
    log_level: str = "info"
    extra: Mapping[str, Any] = field(default_factory=dict)
    policy: Policy | None = None
    # Operations: see docs/operations.md.
    drain_seconds: int = DEFAULT_DRAIN_SECONDS
    allow_root: bool = False
    # Group given the unix socket; None keeps the daemon's own group.
    unix_socket_group: str | None = None
    metrics: MetricsConfig | None = None
    log_format: str = "auto"
    spool: SpoolConfig | None = None
    recovery: RecoveryConfig | None = None
    # The shared state database, when [state] backend = "postgresql".
    postgres: PostgresConfig | None = None


class _Reader:
    """Typed look-ups into a parsed TOML table that name the file and key on error."""

    def __init__(self, path: Path, table: Mapping[str, Any], prefix: str = "") -> None:
        self.path = path
        self.table = table
        self.prefix = prefix

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: key '{self.prefix}{key}': {problem}")

    def section(self, key: str, required: bool = True) -> _Reader:
        value = self.table.get(key)
        if value is None:
            if required:
                raise self.fail(key, "missing section")
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def string(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.table.get(key, default)
        if value is None:
            if required:
                raise self.fail(key, "missing")
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "must be an integer")
        if not minimum <= value <= maximum:
            raise self.fail(key, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def path_value(self, key: str, required: bool = False) -> Path | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute():
            path = self.path.parent / path
        return path

    def reject_unknown(self, known: set[str]) -> None:
        for key in self.table:
            if key not in known:
                raise self.fail(key, f"unknown key; expected one of {sorted(known)}")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the daemon configuration at ``path``."""
    path = Path(path).resolve()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: configuration file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        # tomllib decodes the file itself and lets this through.
        raise ConfigError(f"{path}: the file is not UTF-8 (byte {exc.start}); save it as UTF-8") from exc

    root = _Reader(path, data)
    if "levels" in data:
        raise root.fail("levels", "the key policy of each level is in the policy file named by [policy] file; move [levels.*] there")
    root.reject_unknown({"server", "tls", "token", "state", "policy", "audit", "log", "metrics", "recovery", "spool"})

    server = root.section("server")
    server.reject_unknown(
        {"unix_socket", "unix_socket_group", "tcp", "chunk_bytes", "workers", "drain_seconds", "allow_root"}
    )
    unix_socket = server.path_value("unix_socket")
    tcp = server.string("tcp")
    if unix_socket is None and tcp is None:
        raise server.fail("unix_socket", "set unix_socket, tcp or both")
    # sun_path is 108 bytes on Linux, including the terminating NUL.
    if unix_socket is not None and len(os.fsencode(unix_socket)) > 107:
        raise server.fail("unix_socket", "path is longer than the 107 bytes a unix socket allows")
    chunk_bytes = server.integer("chunk_bytes", DEFAULT_CHUNK_BYTES, 4096, MAX_CHUNK_BYTES)
    workers = server.integer("workers", 32, 2, 1024)
    drain_seconds = server.integer("drain_seconds", DEFAULT_DRAIN_SECONDS, 0, 600)
    allow_root = server.boolean("allow_root", False)
    unix_socket_group = server.string("unix_socket_group")
    if unix_socket_group is not None:
        try:
            grp.getgrnam(unix_socket_group)
        except KeyError:
            raise server.fail("unix_socket_group", f"no group named {unix_socket_group!r} on this host") from None

    tls = root.section("tls")
    tls.reject_unknown({"ca", "cert", "key"})
    tls_ca = tls.path_value("ca", required=True)
    tls_cert = tls.path_value("cert", required=True)
    tls_key = tls.path_value("key", required=True)
    assert tls_ca and tls_cert and tls_key

    token = _load_token(root.section("token"))

    sqlite, postgres = _load_state(root.section("state"))

    policy_section = root.section("policy")
    policy_section.reject_unknown({"file"})
    policy_path = policy_section.path_value("file", required=True)
    assert policy_path is not None
    from niemphong.daemon.policy.loader import load_policy  # imports this module

    policy = load_policy(policy_path, token)
    audit = _load_audit(root.section("audit"))
    recovery = _load_recovery(root.section("recovery", required=False), token, policy.levels)

    log = root.section("log", required=False)
    log.reject_unknown({"level", "format"})
    log_level = log.string("level", default="info") or "info"
    if log_level not in {"debug", "info", "warning", "error"}:
        raise log.fail("level", "must be debug, info, warning or error")
    log_format = log.string("format", default="auto") or "auto"
    if log_format not in LOG_FORMATS:
        raise log.fail("format", f"must be one of {', '.join(LOG_FORMATS)}")

    metrics = _load_metrics(root.section("metrics", required=False))

    return Config(
        path=path,
        unix_socket=unix_socket,
        tcp=tcp,
        chunk_bytes=chunk_bytes,
        workers=workers,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        token=token,
        sqlite=sqlite,
        levels=policy.levels,
        audit=audit,
        log_level=log_level,
        policy=policy,
        recovery=recovery,
        drain_seconds=drain_seconds,
        allow_root=allow_root,
        unix_socket_group=unix_socket_group,
        metrics=metrics,
        log_format=log_format,
        spool=_load_spool(root.section("spool", required=False)),
        postgres=postgres,
    )


def _load_state(state: _Reader) -> tuple[Path | None, PostgresConfig | None]:
    """Read [state]: the SQLite file by default, or the PostgreSQL database several daemons share."""
    state.reject_unknown({"backend", "sqlite", "postgresql", "password_file", "password_credential", "pool_size"})
    backend = state.string("backend", default="sqlite")
    if backend not in STATE_BACKENDS:
        raise state.fail("backend", f"must be one of {', '.join(STATE_BACKENDS)}, got {backend!r}")
    if backend == "sqlite":
        for key in ("postgresql", "password_file", "password_credential", "pool_size"):
            if key in state.table:
                raise state.fail(key, 'applies only with backend = "postgresql"')
        return state.path_value("sqlite", required=True), None

    if "sqlite" in state.table:
        raise state.fail("sqlite", 'applies only with backend = "sqlite"; remove it')
    conninfo = state.string("postgresql", required=True)
    assert conninfo is not None
    try:
        import psycopg.conninfo

        parameters = psycopg.conninfo.conninfo_to_dict(conninfo)
    except ImportError:
        raise state.fail("backend", "the PostgreSQL backend needs psycopg; install niemphong[daemon]") from None
    except psycopg.ProgrammingError as exc:
        raise state.fail("postgresql", f"invalid connection string: {exc}") from None
    # The configuration is readable by operators and ends up in backups and
    # tickets; the password is read from its own file at start.
    if "password" in parameters:
        raise state.fail("postgresql", "must not contain a password; use password_file or password_credential")
    password_file = state.path_value("password_file")
    password_credential = state.string("password_credential")
    if password_file is not None and password_credential is not None:
        raise state.fail("password_file", "set at most one of password_file and password_credential")
    return None, PostgresConfig(
        conninfo=conninfo,
        password_file=password_file,
        password_credential=password_credential,
        pool_size=state.integer("pool_size", DEFAULT_STATE_POOL_SIZE, 1, 256),
    )


def _load_metrics(metrics: _Reader) -> MetricsConfig | None:
    metrics.reject_unknown({"enabled", "listen", "tls_cert", "tls_key", "tls_ca"})
    if not metrics.boolean("enabled", True):
        return None
    listen = metrics.string("listen", default=DEFAULT_METRICS_LISTEN)
    assert listen is not None
    host, port = _split_host_port(metrics, "listen", listen)
    tls_cert = metrics.path_value("tls_cert")
    tls_key = metrics.path_value("tls_key")
    tls_ca = metrics.path_value("tls_ca")
    if (tls_cert is None) != (tls_key is None):
        raise metrics.fail("tls_cert", "set both tls_cert and tls_key, or neither")
    if tls_ca is not None and tls_cert is None:
        raise metrics.fail("tls_ca", "client certificates need tls_cert and tls_key too")
    # Counts of opens per level say how busy the archive is; off the host
    # they travel only under TLS.
    if tls_cert is None and not _is_loopback(host):
        raise metrics.fail("listen", f"{host} is not a loopback address; set tls_cert and tls_key to listen on it")
    return MetricsConfig(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca)


def _split_host_port(reader: _Reader, key: str, value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise reader.fail(key, f"must be HOST:PORT, e.g. {DEFAULT_METRICS_LISTEN}; got {value!r}")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_token(token: _Reader) -> TokenConfig:
    token.reject_unknown({"module", "label", "serial", "uri", "pin_file", "pin_credential", "sessions", "profile", "env",
                         "retry_max_seconds"})
    module = token.path_value("module", required=True)
    assert module is not None
    label = token.string("label")
    serial = token.string("serial")
    uri = token.string("uri")
    if uri is not None:
        from niemphong.daemon.pkcs11_uri import parse_pkcs11_uri

        try:
            attributes = parse_pkcs11_uri(uri)
        except ValueError as exc:
            raise token.fail("uri", str(exc)) from exc
        label = label or attributes.get("token")
        serial = serial or attributes.get("serial")
    if label is None and serial is None:
        raise token.fail("label", "set label, serial or a uri naming the token")

    pin_file = token.path_value("pin_file")
    pin_credential = token.string("pin_credential")
    if (pin_file is None) == (pin_credential is None):
        raise token.fail("pin_file", "set exactly one of pin_file and pin_credential")

    env_table = token.section("env", required=False)
    env: dict[str, str] = {}
    for key in env_table.table:
        value = env_table.string(key, required=True)
        assert value is not None
        env[key] = value

    profile = token.string("profile", default="softhsm2") or "softhsm2"
    from niemphong.daemon.hsm_profiles import ProfileError, load_profile

    try:
        load_profile(profile if "/" not in profile else str(token.path_value("profile")))
    except ProfileError as exc:
        raise token.fail("profile", str(exc)) from None
    if "/" in profile:
        profile = str(token.path_value("profile"))

    return TokenConfig(
        module=module,
        label=label,
        serial=serial,
        pin_file=pin_file,
        pin_credential=pin_credential,
        sessions=token.integer("sessions", DEFAULT_SESSIONS, 1, MAX_SESSIONS),
        profile=profile,
        env=env,
        retry_max_seconds=token.integer("retry_max_seconds", DEFAULT_RETRY_MAX_SECONDS, 1, 3600),
    )


def _load_spool(spool: _Reader) -> SpoolConfig | None:
    """Read the optional [spool] section; without it local spool mode is off."""
    spool.reject_unknown({"root", "workers"})
    root = spool.path_value("root")
    if root is None:
        return None
    if not root.is_dir():
        raise spool.fail("root", f"{root} is not an existing folder")
    return SpoolConfig(root=root, workers=spool.integer("workers", min(4, os.cpu_count() or 1), 1, 64))


def _load_recovery(
    recovery: _Reader, token: TokenConfig, levels: Mapping[Level, LevelPolicy]
) -> RecoveryConfig | None:
    if not recovery.table:
        return None
    recovery.reject_unknown({"module", "label", "serial", "session_minutes", "keys"})
    module = recovery.path_value("module") or token.module
    label = recovery.string("label")
    serial = recovery.string("serial")
    if label is None and serial is None:
        raise recovery.fail("label", "set label or serial to name the recovery token")
    if module == token.module and ((label and label == token.label) or (serial and serial == token.serial)):
        raise recovery.fail("label", "the recovery token must be a different token from [token]")
    minutes = recovery.integer("session_minutes", DEFAULT_RECOVERY_SESSION_MINUTES, 5, 24 * 60)

    keys_table = recovery.section("keys", required=False)
    known = {level.config_name for level in SEALABLE_LEVELS}
    for key in keys_table.table:
        if key not in known:
            raise keys_table.fail(key, f"unknown level; expected one of {sorted(known)}")
    primary_ids = {policy.key_id for policy in levels.values()}
    keys: dict[Level, RecoveryPublicKey] = {}
    for level in SEALABLE_LEVELS:
        if level.config_name in keys_table.table:
            if levels[level].in_token:
                # In-token data keys never leave the token, so the host cannot encrypt them to a recovery key.
                raise keys_table.fail(
                    level.config_name,
                    f"{level.vietnamese_name} uses encryption = \"token\" in the policy file, whose data keys "
                    "cannot carry a recovery slot; use encryption = \"host\" or remove this recovery key",
                )
            keys[level] = _load_recovery_key(keys_table.section(level.config_name), level, primary_ids)
    recovery_ids = [key.key_id for key in keys.values()]
    if len(set(recovery_ids)) != len(recovery_ids):
        raise keys_table.fail("toi-mat.key_id", "each level needs its own recovery key; Tối mật and Mật share one")

    return RecoveryConfig(
        module=module, label=label, serial=serial, session_seconds=60 * minutes, keys=keys,
    )


def _load_recovery_key(section: _Reader, level: Level, primary_ids: set[str]) -> RecoveryPublicKey:
    section.reject_unknown({"public_key", "key_id", "version", "wrap_algorithm"})
    key_id = section.string("key_id", default=default_recovery_key_id(level.config_name))
    assert key_id is not None
    if not key_id.isascii() or not key_id.isprintable() or len(key_id) > 64:
        raise section.fail("key_id", "must be printable ASCII of at most 64 characters")
    if key_id in primary_ids:
        raise section.fail("key_id", "must differ from every level's key_id")
    wrap_algorithm = section.string("wrap_algorithm", default=DEFAULT_RECOVERY_WRAP)
    if wrap_algorithm not in OAEP_HASHES:
        raise section.fail("wrap_algorithm", f"must be one of {sorted(OAEP_HASHES)}")
    path = section.path_value("public_key", required=True)
    assert path is not None and wrap_algorithm is not None
    try:
        public_key = load_public_key(path)
    except OSError as exc:
        raise section.fail("public_key", f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise section.fail("public_key", f"{path}: {exc}") from None
    return RecoveryPublicKey(
        key_id=key_id,
        version=section.integer("version", 1, 1, 2**32 - 1),
        wrap_algorithm=wrap_algorithm,
        public_key=public_key,
        path=path,
    )


def _load_audit(audit: _Reader) -> AuditSettings:
    audit.reject_unknown({"path", "checkpoint_records", "checkpoint_seconds"})
    path = audit.path_value("path", required=True)
    assert path is not None
    return AuditSettings(
        path=path,
        checkpoint_records=audit.integer("checkpoint_records", DEFAULT_CHECKPOINT_RECORDS, 1, 1_000_000),
        checkpoint_seconds=audit.integer("checkpoint_seconds", DEFAULT_CHECKPOINT_SECONDS, 1, 24 * 3600),
    )


def read_state_password(postgres: PostgresConfig) -> str | None:
    """Read the state database password from its file or systemd credential; None when neither is set.

    Without one, libpq still finds a password in ~/.pgpass or PGPASSFILE, or
    authenticates without one (peer, certificate).
    """
    if postgres.password_credential is not None:
        path = _credential_path("state.password_credential", postgres.password_credential)
    elif postgres.password_file is not None:
        path = postgres.password_file
    else:
        return None

    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the state database password from {path}: {exc.strerror}") from None
    password = raw[:-1] if raw.endswith("\n") else raw
    if not password:
        raise ConfigError(f"the state database password file {path} is empty")
    return password


def _credential_path(key: str, name: str) -> Path:
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(
            f"{key} is {name!r} but CREDENTIALS_DIRECTORY is not set (set LoadCredential= in the systemd unit)"
        )
    return Path(directory) / name


def read_pin(token: TokenConfig) -> str:
    """Read the token PIN from its file or systemd credential, stripping one trailing newline."""
    if token.pin_credential is not None:
        pin_path = _credential_path("token.pin_credential", token.pin_credential)
    else:
        assert token.pin_file is not None
        pin_path = token.pin_file

    try:
        raw = pin_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the token PIN from {pin_path}: {exc.strerror}") from None

    pin = raw[:-1] if raw.endswith("\n") else raw
    if not pin:
        raise ConfigError(f"the token PIN file {pin_path} is empty")
    return pin
