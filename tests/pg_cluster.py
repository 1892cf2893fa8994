"""A throwaway PostgreSQL cluster for the tests: initdb, pg_ctl and a unix socket in a temporary folder.

The cluster listens on a unix socket in its own folder and on a free TCP
port of 127.0.0.1, never on another address. initdb and postgres refuse to run as root, so under root (as in CI) the
server runs as ``nobody`` through setpriv(1), in a folder that user owns.
The test cluster runs with fsync off: tests kill daemons, never the
database server, so nothing here depends on the server's own durability.

Binaries are found in NIEMPHONG_PG_BIN, on PATH, or in Debian's
/usr/lib/postgresql/VERSION/bin. Without them the PostgreSQL tests skip,
except where ``postgres_required()`` says the run must fail instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "postgres"
# Settings for a short-lived cluster that several daemons and many tests connect to at once.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "400",
    "shared_buffers": "32MB",
}


def postgres_required() -> bool:
    """Return whether a missing PostgreSQL must fail the run: in CI, or when asked to."""
    return bool(os.environ.get("CI") or os.environ.get("NIEMPHONG_REQUIRE_POSTGRES"))


def find_bin() -> Path | None:
    """Return the folder holding initdb, pg_ctl and postgres, or None."""
    override = os.environ.get("NIEMPHONG_PG_BIN")
    if override:
        return Path(override)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


class PostgresCluster:
    """One running test cluster; :meth:`create_database` gives each test its own database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="np-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._as_user = [
                "setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--",
            ]
        self.root.chmod(0o755)

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )
        self.resume()

    def halt(self) -> None:
        """Stop the server and keep its data, as an outage of the database host would."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def resume(self) -> None:
        """Start the server on the existing data."""
        options = " ".join(f"-c {name}={value}" for name, value in SERVER_SETTINGS.items())
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
            "-o", f"-k {self.socket_dir} -p {self.port} {options}", "start",
        )

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                [*self._as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60, check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def conninfo(self, dbname: str = "postgres", tcp: bool = False) -> str:
        """Return a connection string over the unix socket, or over TCP to 127.0.0.1 with ``tcp``."""
        host = "127.0.0.1" if tcp else str(self.socket_dir)
        return f"host={host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def create_database(self, tcp: bool = False) -> str:
        """Create an empty database and return its connection string."""
        import psycopg

        name = f"np_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.conninfo(name, tcp)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as_user, str(self.bin_dir / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{self.log()}")


def _free_port() -> int:
    # NOTE: another process may take the port before the server binds it; start() then fails.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
