"""`niemphong dev init` and `niemphong dev add-identity`: a development environment in one folder.

The folder gets a dev PKI, a SoftHSM2 configuration and token folder, the
niemphongd configuration and a client.env for the shell. The token itself is
initialized by niemphongd's own ``provision`` command, run as a subprocess,
because the client never imports the daemon or python-pkcs11.
"""

from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from niemphong.clients.connection import UNIX_SOCKET_PATH_MAX
from niemphong.clients.context import CommandContext
from niemphong.clients.devpki import (
    DEFAULT_IDENTITIES,
    DEV_PEOPLE,
    ROLES,
    CertificateAuthority,
    create_ca,
    load_ca,
    parse_roles,
    write_ca,
    write_client_identity,
    write_new_file,
    write_server_identity,
)
from niemphong.clients.errors import ClientError, ExitCode, os_error_text

log = logging.getLogger(__name__)

TOKEN_LABEL = "niemphong-dev"
TOKEN_SESSIONS = 4
CHUNK_BYTES = 1024 * 1024
# The daemon's defaults, written out so that the file shows the settings.
AUDIT_CHECKPOINT_RECORDS = 100
AUDIT_CHECKPOINT_SECONDS = 60

# Install locations of SoftHSM2's PKCS#11 module in the Debian and Ubuntu
# packages. NIEMPHONG_PKCS11_MODULE overrides the search.
SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)

# Provisioning SoftHSM2 normally finishes in seconds, so this bound only stops a hung run.
PROVISION_TIMEOUT_SECONDS = 300

_IDENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Per-level policy of the development configuration. Tối mật needs two
# approvals and gets one open within 8 hours. Mật needs one approval and gets
# three opens within 24 hours. Protection periods are those of Article 19 of
# the Law on Protection of State Secrets No. 29/2018/QH14. A change of the
# Tối mật key needs two custodians, of the Mật key one.
_LEVEL_SECTIONS = (
    ("toi-mat", "niemphong-toi-mat", 2, 8, 1, 365, 20, 2),
    ("mat", "niemphong-mat", 1, 24, 3, 730, 10, 1),
)

# The sample catalog of state secrets shipped with the client, marked as
# sample data inside; niemphongd accepts it only in development mode.
SAMPLE_CATALOG = "danh-muc-bmnn-mau.csv"


@dataclass(frozen=True)
class DevLayout:
    """The paths of a development environment under one root folder."""

    root: Path
    # The TCP port written to the configuration; 0 until it is chosen.
    tcp_port: int = 0
    # The loopback port of the Prometheus metrics listener; 0 until it is chosen.
    metrics_port: int = 0

    @property
    def config(self) -> Path:
        return self.root / "niemphongd.toml"

    @property
    def policy(self) -> Path:
        return self.root / "policy.toml"

    @property
    def catalog(self) -> Path:
        return self.root / SAMPLE_CATALOG

    @property
    def softhsm_config(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def client_env(self) -> Path:
        return self.root / "client.env"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def identities(self) -> Path:
        return self.root / "identities"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def audit_log(self) -> Path:
        return self.state / "audit.jsonl"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def socket(self) -> Path:
        return self.run / "niemphongd.sock"

    @property
    def spool(self) -> Path:
        """The root of the per-identity spool directories of local spool mode."""
        return self.root / "spool"

    @property
    def pin_file(self) -> Path:
        return self.secrets / "token.pin"

    @property
    def sqlite(self) -> Path:
        return self.state / "niemphong.db"

    def identity(self, name: str) -> Path:
        """Return the folder of the identity called ``name``."""
        return self.identities / name

    def entries(self) -> tuple[Path, ...]:
        """Return every file and folder that `dev init` creates directly under the root."""
        folders = (self.pki, self.identities, self.tokens, self.secrets, self.state, self.run, self.spool)
        return (self.config, self.policy, self.catalog, self.softhsm_config, self.client_env, *folders)


def toml_string(value: str) -> str:
    """Return ``value`` as a TOML basic string, escaping quotes, backslashes and control characters."""
    escaped = []
    for char in value:
        if char == '"':
            escaped.append('\\"')
        elif char == "\\":
            escaped.append("\\\\")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def render_config(layout: DevLayout, module_path: str, tcp_port: int, postgres: str | None = None) -> str:
    """Return the text of niemphongd.toml for ``layout``, with state in SQLite or in the ``postgres`` database."""
    lines = [
        "# niemphongd development configuration, written by niemphong dev init.",
        "[server]",
        f"unix_socket = {toml_string(str(layout.socket))}",
        f'tcp = "127.0.0.1:{tcp_port}"',
        f"chunk_bytes = {CHUNK_BYTES}",
        "",
        "[tls]",
        f"ca = {toml_string(str(layout.pki / 'ca.pem'))}",
        f"cert = {toml_string(str(layout.pki / 'server.pem'))}",
        f"key = {toml_string(str(layout.pki / 'server.key'))}",
        "",
        "[token]",
        f"module = {toml_string(module_path)}",
        f"label = {toml_string(TOKEN_LABEL)}",
        f"pin_file = {toml_string(str(layout.pin_file))}",
        f"sessions = {TOKEN_SESSIONS}",
        'profile = "softhsm2"',
        "",
        "[token.env]",
        f"SOFTHSM2_CONF = {toml_string(str(layout.softhsm_config))}",
        "",
        "[state]",
        *(
            [f"sqlite = {toml_string(str(layout.sqlite))}"] if postgres is None
            else ['backend = "postgresql"', f"postgresql = {toml_string(postgres)}"]
        ),
        "",
        "[audit]",
        f"path = {toml_string(str(layout.audit_log))}",
        f"checkpoint_records = {AUDIT_CHECKPOINT_RECORDS}",
        f"checkpoint_seconds = {AUDIT_CHECKPOINT_SECONDS}",
        "",
        "[policy]",
        f"file = {toml_string(str(layout.policy))}",
        "",
        "[spool]",
        f"root = {toml_string(str(layout.spool))}",
        "",
        "[metrics]",
        f'listen = "127.0.0.1:{layout.metrics_port}"',
    ]
    if os.geteuid() == 0:
        # niemphongd refuses to run as root unless allowed, and whoever ran
        # dev init as root will run the development daemon as root too.
        server_end = lines.index("")
        lines.insert(server_end, "allow_root = true")
    return "\n".join(lines) + "\n"


def render_policy(layout: DevLayout) -> str:
    """Return the text of policy.toml: development mode, the sample catalog and one sample standing decision."""
    lines = [
        "# Niêm Phong development policy, written by niemphong dev init.",
        "# Development mode accepts a software token for Tối mật and the sample",
        "# catalog; a policy for state secrets sets development = false.",
        "development = true",
        "require_basis = false",
    ]
    for level, key_id, approvals, grant_hours, grant_opens, rotation_days, years, custodians in _LEVEL_SECTIONS:
        lines += [
            "",
            f"[levels.{level}]",
            f"key_id = {toml_string(key_id)}",
            'token_profiles = ["softhsm2"]',
            f"approvals = {approvals}",
            f"grant_hours = {grant_hours}",
            f"grant_opens = {grant_opens}",
            "# Grants at this level may allow printed copies.",
            "printing = true",
            f"rotation_days = {rotation_days}",
            f"protection_years = {years}",
            f"custodians = {custodians}",
        ]
    lines += [
        "",
        "[catalog]",
        f"files = [{toml_string(str(layout.catalog))}]",
        'superseded = ["danh mục mẫu cũ"]',
        "",
        "# Sample standing decision for a recurring kind of electronic document.",
        "[[standing_decisions]]",
        'kind = "bao-cao-tuan"',
        'name = "[Mẫu] Báo cáo tuần về một việc giả định"',
        'level = "mat"',
        'basis = "Điểm a Khoản 2 Điều 1 danh mục mẫu"',
        'decision = "[Mẫu] Quyết định số 01/QĐ-MẪU"',
        "decided_on = 2025-01-02",
    ]
    return "\n".join(lines) + "\n"


def sample_catalog_bytes() -> bytes:
    """Return the sample catalog of state secrets shipped with the client."""
    return (importlib.resources.files("niemphong.clients") / "data" / SAMPLE_CATALOG).read_bytes()


def render_softhsm_config(layout: DevLayout) -> str:
    """Return the text of softhsm2.conf, which keeps the token files under the root."""
    return (
        "# SoftHSM2 configuration for the niemphong development token.\n"
        f"directories.tokendir = {layout.tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
    )


def _shell_quote(value: str) -> str:
    quoted = shlex.quote(value)
    # shlex.quote leaves a value of only safe characters bare; quote it anyway
    # so that every line of client.env has the same form.
    return quoted if quoted.startswith("'") else f"'{quoted}'"


def render_client_env(layout: DevLayout, tcp_port: int) -> str:
    """Return the text of client.env, in POSIX shell syntax."""
    return (
        f"# Load into a shell with: . {shlex.quote(str(layout.client_env))}\n"
        f"export NIEMPHONG_SERVER={_shell_quote('unix:' + str(layout.socket))}\n"
        f"export NIEMPHONG_SERVER_TCP={_shell_quote(f'127.0.0.1:{tcp_port}')}\n"
        f"export NIEMPHONG_IDENTITY_DIR={_shell_quote(str(layout.identities))}\n"
        f"export NIEMPHONG_METRICS_URL={_shell_quote(f'http://127.0.0.1:{layout.metrics_port}/metrics')}\n"
    )


def find_softhsm_module(environ: Mapping[str, str]) -> str:
    """Return the path of SoftHSM2's PKCS#11 module. Raises ClientError when none is found."""
    override = environ.get("NIEMPHONG_PKCS11_MODULE", "")
    if override:
        if not Path(override).is_file():
            raise ClientError(ExitCode.USAGE, "dev.module_override_missing", path=override)
        return override

    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise ClientError(ExitCode.UNAVAILABLE, "dev.module_missing", paths=", ".join(SOFTHSM_MODULE_CANDIDATES))


def pick_free_tcp_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    NOTE: another process may take the port before niemphongd binds it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Characters that softhsm2.conf cannot hold in a path, because it has no
# quoting: a line break ends the line, "#" starts a comment anywhere on a
# line, and "=" splits the key from the value (checked with SoftHSM 2.6.1).
_SOFTHSM_CONFIG_UNSAFE = {"\n": "\\n", "\r": "\\r", "#": "#", "=": "="}


def _check_folder_characters(root: Path) -> None:
    text = str(root)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # The configuration files are UTF-8, so a folder name in a legacy encoding cannot be written into them.
        raise ClientError(ExitCode.USAGE, "dev.folder_not_utf8", path=repr(text)) from exc
    unsafe = sorted({_SOFTHSM_CONFIG_UNSAFE[char] for char in text if char in _SOFTHSM_CONFIG_UNSAFE})
    if unsafe:
        raise ClientError(ExitCode.USAGE, "dev.bad_folder", path=repr(text), characters=", ".join(unsafe))


def _check_new_layout(layout: DevLayout) -> None:
    _check_folder_characters(layout.root)

    socket_length = len(os.fsencode(str(layout.socket)))
    if socket_length > UNIX_SOCKET_PATH_MAX:
        raise ClientError(
            ExitCode.USAGE,
            "dev.socket_too_long",
            path=str(layout.socket),
            length=socket_length,
            max=UNIX_SOCKET_PATH_MAX,
        )

    if layout.config.exists():
        raise ClientError(ExitCode.USAGE, "dev.already_initialized", path=str(layout.config))
    if layout.root.exists() and not layout.root.is_dir():
        raise ClientError(ExitCode.USAGE, "dev.not_folder", path=str(layout.root))
    for entry in layout.entries():
        if entry.exists() or entry.is_symlink():
            raise ClientError(ExitCode.USAGE, "dev.entry_exists", path=str(entry))


def remove_dev_files(layout: DevLayout, *, remove_root: bool) -> None:
    """Delete what `dev init` creates under the root, and the root itself if ``remove_root``."""
    for entry in layout.entries():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.exists() or entry.is_symlink():
            entry.unlink(missing_ok=True)
    if remove_root:
        try:
            layout.root.rmdir()
        except OSError as exc:
            log.warning("cannot remove %s: %s", layout.root, exc)


def write_dev_files(
    layout: DevLayout,
    *,
    module_path: str,
    tcp_port: int,
    identities: Mapping[str, str] = DEFAULT_IDENTITIES,
    postgres: str | None = None,
) -> CertificateAuthority:
    """Write the PKI, the identities and every configuration file into an existing, checked root."""
    os.chmod(layout.root, 0o700)
    for folder in (layout.pki, layout.identities, layout.tokens, layout.secrets, layout.state, layout.run, layout.spool):
        folder.mkdir(mode=0o700)

    ca = create_ca()
    write_ca(layout.pki, ca)
    write_server_identity(layout.pki, ca)
    for name, role in identities.items():
        full_name, title = DEV_PEOPLE.get(name, ("", ""))
        write_client_identity(layout.identity(name), name, role, ca, full_name=full_name, title=title)
        (layout.spool / name).mkdir(mode=0o700)

    write_new_file(layout.softhsm_config, render_softhsm_config(layout).encode(), 0o600)
    write_new_file(layout.config, render_config(layout, module_path, tcp_port, postgres).encode(), 0o600)
    write_new_file(layout.policy, render_policy(layout).encode(), 0o600)
    write_new_file(layout.catalog, sample_catalog_bytes(), 0o600)
    write_new_file(layout.client_env, render_client_env(layout, tcp_port).encode(), 0o600)
    return ca


def prepare_dev_folder(
    root: Path,
    *,
    module_path: str,
    tcp_port: int | None = None,
    identities: Mapping[str, str] = DEFAULT_IDENTITIES,
    postgres: str | None = None,
) -> DevLayout:
    """Create a development environment under ``root``, without provisioning the token.

    This is every step of `dev init` except running niemphongd's
    ``provision``. Raises ClientError (usage) when ``root`` was initialized
    before, is not empty of the entries it would create, or gives a socket
    path too long for a Unix socket. On any failure it removes what it created.
    """
    port = tcp_port if tcp_port is not None else pick_free_tcp_port()
    metrics_port = pick_free_tcp_port()
    while metrics_port == port:
        metrics_port = pick_free_tcp_port()
    layout = DevLayout(Path(os.path.abspath(root.expanduser())), tcp_port=port, metrics_port=metrics_port)
    _check_new_layout(layout)

    created_root = not layout.root.exists()
    try:
        layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_dev_files(layout, module_path=module_path, tcp_port=port, identities=identities, postgres=postgres)
    except BaseException as exc:
        remove_dev_files(layout, remove_root=created_root)
        if isinstance(exc, OSError):
            raise ClientError(
                ExitCode.FAILURE, "dev.write_failed", path=str(exc.filename or layout.root), error=os_error_text(exc)
            ) from exc
        raise
    return layout


def provision_token(layout: DevLayout, environ: Mapping[str, str]) -> None:
    """Run niemphongd's ``provision`` command on the layout's configuration.

    The daemon initializes the SoftHSM2 token, writes random PINs into the
    secrets folder with mode 0600 and creates the per-level keys. PINs never
    appear on a command line. Raises ClientError (unavailable) on failure,
    naming the last line the subprocess wrote; its whole output goes to the
    debug log (``--verbose``).
    """
    command = [
        sys.executable,
        "-m",
        "niemphong.daemon.main",
        "provision",
        "--config",
        str(layout.config),
        "--init-softhsm",
    ]
    child_environ = {**environ, "SOFTHSM2_CONF": str(layout.softhsm_config)}
    log.info("provisioning token: %s", shlex.join(command))
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=child_environ,
            timeout=PROVISION_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ClientError(
            ExitCode.UNAVAILABLE, "dev.provision_timeout", seconds=PROVISION_TIMEOUT_SECONDS, dir=str(layout.root)
        ) from exc

    if completed.returncode != 0:
        streams = (completed.stdout, completed.stderr)
        output = "\n".join(stream.decode("utf-8", errors="replace").strip() for stream in streams).strip()
        log.debug("niemphongd provision output:\n%s", output)
        raise ClientError(
            ExitCode.UNAVAILABLE,
            "dev.provision_failed",
            code=completed.returncode,
            dir=str(layout.root),
            detail=last_line(output) or "-",
        )
    log.info("token provisioned for %s", layout.root)


def last_line(text: str) -> str:
    """Return the last non-empty line of ``text``: for a Python traceback, the exception and its message."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def add_identity(root: Path, name: str, role: str, full_name: str = "", title: str = "") -> Path:
    """Issue one more identity signed by the dev CA under ``root`` and return its folder.

    ``role`` is one role of devpki.ROLES or a comma-separated list of them;
    ``full_name`` and ``title`` are optional and go into the certificate.
    Raises ClientError (usage) for an invalid name or role, a missing CA or
    an identity that exists already.
    """
    layout = DevLayout(Path(os.path.abspath(root.expanduser())))
    if not _IDENTITY_NAME.match(name):
        raise ClientError(ExitCode.USAGE, "dev.bad_name", value=name)
    try:
        parse_roles(role)
    except ValueError as exc:
        raise ClientError(ExitCode.USAGE, "dev.bad_role", value=role, roles=", ".join(ROLES)) from exc
    folder = layout.identity(name)
    if folder.exists():
        raise ClientError(ExitCode.USAGE, "dev.identity_exists", path=str(folder))

    try:
        ca = load_ca(layout.pki)
    except FileNotFoundError as exc:
        raise ClientError(ExitCode.USAGE, "dev.no_ca", path=str(exc.filename), dir=str(layout.root)) from exc
    except (OSError, ValueError) as exc:
        raise ClientError(ExitCode.FAILURE, "dev.ca_unreadable", path=str(layout.pki), error=str(exc)) from exc

    try:
        write_client_identity(folder, name, role, ca, full_name=full_name, title=title)
        if layout.spool.is_dir():
            (layout.spool / name).mkdir(mode=0o700, exist_ok=True)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise ClientError(
                ExitCode.FAILURE, "dev.write_failed", path=str(exc.filename or folder), error=os_error_text(exc)
            ) from exc
        raise
    return folder


def _next_steps(layout: DevLayout) -> dict[str, str]:
    scanner = layout.identity("scanner")
    scan = [
        "niemphong",
        "scan",
        "tai-lieu.pdf",
        "--level",
        "mat",
        "--doc-number",
        "12/UBND-VP",
        "--issued",
        "2025-05-14",
        "--out",
        "tai-lieu.pdf.npe",
    ]
    return {
        "daemon_command": shlex.join(["niemphongd", "--config", str(layout.config)]),
        "source_command": f". {shlex.quote(str(layout.client_env))}",
        "scan_command": f"NIEMPHONG_IDENTITY={shlex.quote(str(scanner))} {shlex.join(scan)}",
    }


def run_dev_init(args: argparse.Namespace, context: CommandContext) -> int:
    """Create a development environment and provision its SoftHSM2 token."""
    console = context.console
    environ = context.environ
    root = Path(args.dir)
    # Checked first, so that a folder SoftHSM2 cannot use is reported before any other problem.
    _check_folder_characters(Path(os.path.abspath(root.expanduser())))
    if args.join:
        # The first daemon's folder has the token and the module path already.
        return _run_join(args, context, root)
    if importlib.util.find_spec("niemphong.daemon") is None:
        raise ClientError(ExitCode.UNAVAILABLE, "dev.daemon_missing")
    module_path = find_softhsm_module(environ)

    created_root = not root.exists()
    layout = prepare_dev_folder(root, module_path=module_path, postgres=args.postgres)
    try:
        provision_token(layout, environ)
    except BaseException:
        remove_dev_files(layout, remove_root=created_root)
        raise

    steps = _next_steps(layout)
    console.say(
        "dev.created",
        dir=str(layout.root),
        config=str(layout.config),
        tokens=str(layout.tokens),
        pki=str(layout.pki),
        identities=str(layout.identities),
        names=", ".join(DEFAULT_IDENTITIES),
        client_env=str(layout.client_env),
        **steps,
    )
    if args.json:
        console.json(
            {
                "dir": str(layout.root),
                "config": str(layout.config),
                "client_env": str(layout.client_env),
                "unix_socket": str(layout.socket),
                "tcp": f"127.0.0.1:{layout.tcp_port}",
                "metrics_url": f"http://127.0.0.1:{layout.metrics_port}/metrics",
                "identities": {name: str(layout.identity(name)) for name in DEFAULT_IDENTITIES},
            }
        )
    return ExitCode.OK


def render_joined_config(shared_text: str, layout: DevLayout) -> str:
    """Return the configuration of a second daemon: the first one's, with its own socket, ports, audit log and spool.

    The token, PKI, policy and state database stay those of the first
    daemon. ``shared_text`` is the first daemon's niemphongd.toml as dev
    init wrote it.
    """
    # The (section, key) settings that must differ from the first daemon's.
    own = {
        ("server", "unix_socket"): toml_string(str(layout.socket)),
        ("server", "tcp"): toml_string(f"127.0.0.1:{layout.tcp_port}"),
        ("audit", "path"): toml_string(str(layout.audit_log)),
        ("metrics", "listen"): toml_string(f"127.0.0.1:{layout.metrics_port}"),
        ("spool", "root"): toml_string(str(layout.spool)),
    }
    section = ""
    lines = []
    for line in shared_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped.strip("[]").strip()
        key = stripped.split("=", 1)[0].strip() if "=" in stripped and not stripped.startswith("#") else ""
        if (section, key) in own:
            line = f"{key} = {own[(section, key)]}"
        lines.append(line)
    lines[0] = "# niemphongd development configuration of a second daemon, written by niemphong dev init --join."
    return "\n".join(lines) + "\n"


def _run_join(args: argparse.Namespace, context: CommandContext, root: Path) -> int:
    """Write a second daemon's folder that shares ``args.join``'s token, keys, identities and database."""
    import tomllib

    shared = DevLayout(Path(os.path.abspath(Path(args.join).expanduser())))
    try:
        shared_text = shared.config.read_text(encoding="utf-8")
        shared_config = tomllib.loads(shared_text)
    except FileNotFoundError as exc:
        raise ClientError(ExitCode.USAGE, "dev.join_missing", path=str(shared.config)) from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ClientError(ExitCode.FAILURE, "dev.join_unreadable", path=str(shared.config), error=str(exc)) from exc
    if shared_config.get("state", {}).get("backend") != "postgresql":
        # Two daemons on one SQLite file would each lock it; they can share only PostgreSQL.
        raise ClientError(ExitCode.USAGE, "dev.join_not_postgres", path=str(shared.config))

    tcp_port = pick_free_tcp_port()
    metrics_port = pick_free_tcp_port()
    layout = DevLayout(Path(os.path.abspath(root.expanduser())), tcp_port=tcp_port, metrics_port=metrics_port)
    _check_new_layout(layout)
    created_root = not layout.root.exists()
    try:
        layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(layout.root, 0o700)
        for folder in (layout.state, layout.run, layout.spool):
            folder.mkdir(mode=0o700)
        if shared.identities.is_dir():
            for identity in sorted(shared.identities.iterdir()):
                (layout.spool / identity.name).mkdir(mode=0o700)
        write_new_file(layout.config, render_joined_config(shared_text, layout).encode(), 0o600)
        client_env = render_client_env(layout, tcp_port).replace(str(layout.identities), str(shared.identities))
        write_new_file(layout.client_env, client_env.encode(), 0o600)
    except BaseException as exc:
        remove_dev_files(layout, remove_root=created_root)
        if isinstance(exc, OSError):
            raise ClientError(
                ExitCode.FAILURE, "dev.write_failed", path=str(exc.filename or layout.root), error=exc.strerror
            ) from exc
        raise

    context.console.say(
        "dev.joined", dir=str(layout.root), shared=str(shared.root), config=str(layout.config),
        socket=str(layout.socket), daemon_command=shlex.join(["niemphongd", "--config", str(layout.config)]),
    )
    if args.json:
        context.console.json({
            "dir": str(layout.root),
            "joins": str(shared.root),
            "config": str(layout.config),
            "client_env": str(layout.client_env),
            "unix_socket": str(layout.socket),
            "tcp": f"127.0.0.1:{tcp_port}",
            "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
        })
    return ExitCode.OK


def run_add_identity(args: argparse.Namespace, context: CommandContext) -> int:
    """Issue an extra identity from the dev CA of ``args.dir``."""
    console = context.console
    folder = add_identity(
        Path(args.dir), args.name, args.role,
        full_name=getattr(args, "full_name", "") or "", title=getattr(args, "title", "") or "",
    )

    console.say("dev.identity_created", name=args.name, role=args.role, path=str(folder))
    if args.json:
        console.json({"name": args.name, "role": args.role, "identity": str(folder)})
    return ExitCode.OK
