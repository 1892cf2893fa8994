"""Recovery sessions: two distinct custodians, expiry and logout.

The recovery token's login is replaced here by a recorder, because these
tests are about the session rules and their timing; tests/daemon/test_recovery.py
runs them against a real recovery token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from niemphong.daemon.config import RecoveryConfig
from niemphong.daemon.envelope import KeySlot
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.recovery import PENDING_SECONDS, RecoveryLoginFailed, RecoverySessions, combine_shares

FIRST = Identity("custodian", frozenset({"custodian"}))
SECOND = Identity("custodian-2", frozenset({"custodian"}))
SHARE_A = bytes(range(16))
SHARE_B = bytes(range(16, 32))
CONFIG = RecoveryConfig(module=Path("/nonexistent.so"), label="rec", serial=None, session_seconds=3600, keys={})


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


class RecordingToken:
    """Stands in for RecoveryToken: remembers the PIN it was opened with and whether it was closed."""

    def __init__(self, pin: str) -> None:
        self.pin = pin
        self.closed = False

    def unwrap(self, slot: KeySlot) -> bytes:
        assert not self.closed
        return b"\x01" * 32

    def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self, correct_pin: str) -> None:
        self.correct_pin = correct_pin
        self.tokens: list[RecordingToken] = []

    def __call__(self, config: RecoveryConfig, pin: str) -> RecordingToken:
        if pin != self.correct_pin:
            raise RecoveryLoginFailed("PinIncorrect")
        token = RecordingToken(pin)
        self.tokens.append(token)
        return token


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def opener() -> Opener:
    return Opener(combine_shares(SHARE_A, SHARE_B))


@pytest.fixture
def sessions(clock: Clock, opener: Opener) -> RecoverySessions:
    return RecoverySessions(CONFIG, clock=clock, open_token=opener)  # type: ignore[arg-type]


def reason_of(call, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as excinfo:
        call(*args)
    return excinfo.value.reason


def test_combine_shares_is_order_free_xor() -> None:
    assert combine_shares(SHARE_A, SHARE_B) == combine_shares(SHARE_B, SHARE_A)
    assert combine_shares(SHARE_A, SHARE_B) == bytes(a ^ b for a, b in zip(SHARE_A, SHARE_B)).hex()
    assert len(combine_shares(SHARE_A, SHARE_B)) == 32


def test_session_active_after_second_custodian(sessions: RecoverySessions, opener: Opener) -> None:
    started = sessions.start(FIRST, SHARE_A, "token lost")

    assert started.state == "pending"
    assert reason_of(sessions.require_active) == "RECOVERY_NOT_ACTIVE"

    active = sessions.confirm(SECOND, started.session_id, SHARE_B)

    assert active.state == "active"
    assert active.confirmed_by == "custodian-2"
    assert sessions.require_active() == started.session_id
    assert sessions.unwrap(KeySlot("r", 1, "RSA-OAEP-SHA1", b"\x00"))[1] == started.session_id
    assert len(opener.tokens) == 1


def test_session_starter_cannot_confirm(sessions: RecoverySessions, opener: Opener) -> None:
    started = sessions.start(FIRST, SHARE_A, "token lost")

    assert reason_of(sessions.confirm, FIRST, started.session_id, SHARE_B) == "ALREADY_CONFIRMED"
    assert opener.tokens == []


def test_session_wrong_share_fails(sessions: RecoverySessions) -> None:
    started = sessions.start(FIRST, SHARE_A, "token lost")

    assert reason_of(sessions.confirm, SECOND, started.session_id, bytes(16)) == "RECOVERY_LOGIN_FAILED"
    current = sessions.current()
    assert current is not None
    assert current.state == "failed"
    assert reason_of(sessions.confirm, SECOND, started.session_id, SHARE_B) == "RECOVERY_NOT_PENDING"


def test_second_session_while_one_pending_rejected(sessions: RecoverySessions) -> None:
    sessions.start(FIRST, SHARE_A, "token lost")

    assert reason_of(sessions.start, SECOND, SHARE_B, "again") == "RECOVERY_IN_PROGRESS"


def test_pending_session_expires(sessions: RecoverySessions, clock: Clock) -> None:
    started = sessions.start(FIRST, SHARE_A, "token lost")
    clock.now += PENDING_SECONDS

    assert reason_of(sessions.confirm, SECOND, started.session_id, SHARE_B) == "RECOVERY_NOT_PENDING"
    assert sessions.start(SECOND, SHARE_B, "again").state == "pending"


def test_active_session_expires_and_logs_out(sessions: RecoverySessions, clock: Clock, opener: Opener) -> None:
    started = sessions.start(FIRST, SHARE_A, "token lost")
    sessions.confirm(SECOND, started.session_id, SHARE_B)
    clock.now += CONFIG.session_seconds

    assert reason_of(sessions.require_active) == "RECOVERY_NOT_ACTIVE"
    current = sessions.current()
    assert current is not None
    assert current.state == "expired"
    assert opener.tokens[0].closed


def test_end_logs_out(sessions: RecoverySessions, opener: Opener) -> None:
    started = sessions.start(FIRST, SHARE_A, "token lost")
    sessions.confirm(SECOND, started.session_id, SHARE_B)

    ended = sessions.end(FIRST, started.session_id)

    assert ended.state == "ended"
    assert ended.ended_by == "custodian"
    assert opener.tokens[0].closed
    assert reason_of(sessions.unwrap, KeySlot("r", 1, "RSA-OAEP-SHA1", b"\x00")) == "RECOVERY_NOT_ACTIVE"


def test_end_unknown_session_rejected(sessions: RecoverySessions) -> None:
    assert reason_of(sessions.end, FIRST, "a" * 32) == "RECOVERY_NOT_ACTIVE"


def test_sessions_without_configuration_rejected(clock: Clock) -> None:
    sessions = RecoverySessions(None, clock=clock)

    assert reason_of(sessions.start, FIRST, SHARE_A, "token lost") == "RECOVERY_NOT_CONFIGURED"
