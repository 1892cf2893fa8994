"""The client must run on a scanning station without a token: no daemon, no python-pkcs11."""

from __future__ import annotations

import subprocess
import sys

import pytest

CLIENT_MODULES = [
    "niemphong.clients.cli",
    "niemphong.clients.devinit",
    "niemphong.clients.devpki",
    "niemphong.clients.envelope_commands",
    "niemphong.clients.access_commands",
]


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_client_import_without_daemon_or_pkcs11(module: str) -> None:
    check = (
        f"import {module}, sys; "
        "assert 'pkcs11' not in sys.modules, 'pkcs11 imported'; "
        "leaked = [m for m in sys.modules if m.startswith('niemphong.daemon')]; "
        "assert not leaked, leaked"
    )

    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_client_cli_import_contract() -> None:
    # The exact check from the project's contract.
    check = (
        "import niemphong.clients.cli, sys; "
        "assert 'pkcs11' not in sys.modules and not any(m.startswith('niemphong.daemon') for m in sys.modules)"
    )

    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_client_help_runs_without_daemon_or_pkcs11() -> None:
    # Running a command must not pull them in either; --help parses the full command tree.
    check = (
        "import sys\n"
        "from niemphong.clients.cli import main\n"
        "try:\n"
        "    main(['scan', '--help'], {})\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'pkcs11' not in sys.modules\n"
        "assert not any(m.startswith('niemphong.daemon') for m in sys.modules)\n"
    )

    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
