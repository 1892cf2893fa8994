"""sd_notify messages, sent on a socket bound by the test."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from niemphong.daemon.systemd import Notifier


def bound_socket(path: Path) -> socket.socket:
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    return receiver


def test_notifier_without_socket_does_nothing() -> None:
    notifier = Notifier({})

    assert not notifier.enabled
    assert not notifier.ready("serving")


def test_notifier_ready_message(tmp_path: Path) -> None:
    receiver = bound_socket(tmp_path / "notify")
    try:
        assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")}).ready("serving")
        message = receiver.recv(4096).decode()
    finally:
        receiver.close()

    assert message.split("\n") == ["READY=1", "STATUS=serving", f"MAINPID={os.getpid()}"]


def test_notifier_abstract_socket() -> None:
    name = f"niemphong-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        message = receiver.recv(4096)
    finally:
        receiver.close()

    assert message == b"WATCHDOG=1"


def test_notifier_unreachable_socket_reports_false(tmp_path: Path) -> None:
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")}).stopping("draining")


def test_notifier_relative_socket_ignored() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_watchdog_period_from_environment() -> None:
    assert Notifier({"WATCHDOG_USEC": "60000000"}).watchdog_seconds == 60.0
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_seconds is None
    assert Notifier({}).watchdog_seconds is None


def test_watchdog_for_another_process_ignored() -> None:
    environ = {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}

    assert Notifier(environ).watchdog_seconds is None
