"""Health checks: SERVING only while every check passes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from grpc_health.v1 import health, health_pb2

from conftest import DevEnvironment
from niemphong.daemon import metrics
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.health import HealthCheck, HealthMonitor, path_writable
from niemphong.daemon.hsm import Pkcs11Token
from niemphong.daemon.store import SqliteStore
from niemphong.daemon.systemd import Notifier

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def status(servicer: health.HealthServicer, service: str = "") -> int:
    return servicer.Check(health_pb2.HealthCheckRequest(service=service), None).status


def monitor_with(checks: list[HealthCheck]) -> tuple[HealthMonitor, health.HealthServicer]:
    servicer = health.HealthServicer()
    return HealthMonitor(servicer, ("", "niemphong.v1.EnvelopeService"), checks, Notifier({})), servicer


def test_health_all_checks_pass_serving() -> None:
    monitor, servicer = monitor_with([HealthCheck("token", lambda: True), HealthCheck("state_store", lambda: True)])

    assert monitor.run_checks()
    assert status(servicer) == SERVING
    assert status(servicer, "niemphong.v1.EnvelopeService") == SERVING
    assert monitor.describe() == "serving"


def test_health_one_failing_check_not_serving() -> None:
    monitor, servicer = monitor_with([HealthCheck("token", lambda: True), HealthCheck("state_store", lambda: False)])

    assert not monitor.run_checks()
    assert status(servicer) == NOT_SERVING
    assert monitor.describe() == "not serving: failed state_store"
    assert metrics.HEALTH_CHECK_OK.labels("state_store")._value.get() == 0


def test_health_raising_check_counts_as_failed() -> None:
    def broken() -> bool:
        raise OSError("disk gone")

    monitor, servicer = monitor_with([HealthCheck("audit_log", broken)])

    assert not monitor.run_checks()
    assert status(servicer) == NOT_SERVING


def test_health_added_check_applies_next_round() -> None:
    monitor, servicer = monitor_with([HealthCheck("token", lambda: True)])
    monitor.run_checks()

    monitor.add_check(HealthCheck("audit_log", lambda: False))
    monitor.run_checks()

    assert status(servicer) == NOT_SERVING


def test_health_recovers_when_check_passes_again() -> None:
    state = {"ok": False}
    monitor, servicer = monitor_with([HealthCheck("state_store", lambda: state["ok"])])
    monitor.run_checks()

    state["ok"] = True
    monitor.run_checks()

    assert status(servicer) == SERVING


def test_health_draining_stays_not_serving() -> None:
    monitor, servicer = monitor_with([HealthCheck("token", lambda: True)])
    monitor.run_checks()

    monitor.begin_drain()
    monitor.run_checks()

    assert status(servicer) == NOT_SERVING
    assert monitor.describe() == "draining"


def test_health_interval_follows_watchdog() -> None:
    monitor = HealthMonitor(health.HealthServicer(), ("",), [], Notifier({"WATCHDOG_USEC": "3000000"}))

    assert monitor.interval == pytest.approx(1.0)


def test_path_writable_real_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state" / "np.db")
    try:
        assert store.check_writable()
        assert path_writable(store.path)
    finally:
        store.close()


def test_path_writable_too_little_space(tmp_path: Path) -> None:
    # More free space than any test machine has: the check must fail.
    assert not path_writable(tmp_path / "np.db", min_free_bytes=2**62)


def test_path_writable_read_only_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write any folder whatever its mode")
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert not path_writable(folder / "np.db")
    finally:
        folder.chmod(0o700)


def test_path_writable_missing_folder(tmp_path: Path) -> None:
    assert not path_writable(tmp_path / "absent" / "np.db")


def test_health_real_token_session_lost_not_serving(dev_env: DevEnvironment) -> None:
    config = load_config(dev_env.root / "niemphongd.toml")
    token = Pkcs11Token(config.token, read_pin(config.token))
    monitor, servicer = monitor_with([HealthCheck("token", token.check_alive)])
    try:
        serving_before = monitor.run_checks()
        present_before = metrics.TOKEN_PRESENT._value.get()
        # Closing the login session is what the daemon sees when the token
        # is pulled: every later call on it fails.
        token.close()
        serving_after = monitor.run_checks()
    finally:
        token.close()

    assert serving_before
    assert present_before == 1
    assert not serving_after
    assert status(servicer) == NOT_SERVING
    assert monitor.describe() == "not serving: failed token"
    assert metrics.TOKEN_PRESENT._value.get() == 0
