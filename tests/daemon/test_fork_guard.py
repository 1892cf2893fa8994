"""Nothing forks after PKCS#11 is initialized, and a forked child cannot use the token."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO, DevEnvironment

# Calls and modules that fork the daemon process. A fork that is followed by
# exec (subprocess) would be safe, but the daemon has no need for either.
FORKING_CALLS = {"fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen", "spawnv", "spawnl"}
FORKING_MODULES = {"multiprocessing", "subprocess", "pty"}


def test_daemon_source_never_forks() -> None:
    found = []
    for path in sorted((REPO / "daemon").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            elif isinstance(node, ast.Attribute) and node.attr in FORKING_CALLS:
                names = {f"os.{node.attr}"}
            else:
                continue
            for name in names & (FORKING_MODULES | {f"os.{call}" for call in FORKING_CALLS}):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
            if isinstance(node, ast.Attribute) and node.attr == "ProcessPoolExecutor":
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: ProcessPoolExecutor")

    assert found == []


_CHILD_SCRIPT = """
import os, sys
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.errors import TokenUnavailable
from niemphong.daemon.hsm import Pkcs11Token

config = load_config(sys.argv[1])
token = Pkcs11Token(config.token, read_pin(config.token))
token.new_data_key("niemphong-mat", 1)
pid = os.fork()
if pid == 0:
    try:
        token.new_data_key("niemphong-mat", 1)
    except TokenUnavailable as exc:
        print("child refused:", exc, flush=True)
        os._exit(0)
    os._exit(1)
_, status = os.waitpid(pid, 0)
token.new_data_key("niemphong-mat", 1)
print("parent still works", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_forked_child_cannot_use_token(dev_env: DevEnvironment) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD_SCRIPT, str(dev_env.root / "niemphongd.toml")],
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "child refused: PKCS#11 was initialized in process" in result.stdout
    assert "parent still works" in result.stdout
    assert "forks after initializing PKCS#11" in result.stderr
