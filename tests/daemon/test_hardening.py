"""Process hardening the daemon applies to itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from niemphong.daemon.errors import ConfigError
from niemphong.daemon.hardening import check_user

HARDEN_AND_REPORT = """
import os, resource
from niemphong.daemon.hardening import harden_process, is_dumpable
before = is_dumpable()
harden_process()
print(before, is_dumpable(), resource.getrlimit(resource.RLIMIT_CORE), oct(os.umask(0)))
"""


def test_harden_process_sets_limits() -> None:
    result = subprocess.run([sys.executable, "-c", HARDEN_AND_REPORT], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=1)[0] == "True"
    assert result.stdout.strip().split(maxsplit=1)[1] == "False (0, 0) 0o77"


def test_check_user_root_refused() -> None:
    with pytest.raises(ConfigError) as excinfo:
        check_user(allow_root=False, euid=0)

    assert "allow_root" in str(excinfo.value)


def test_check_user_root_allowed_by_configuration() -> None:
    check_user(allow_root=True, euid=0)


def test_check_user_service_user_accepted() -> None:
    check_user(allow_root=False, euid=998)
