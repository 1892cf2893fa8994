"""The recovery token and the dual-control sessions that open it.

The recovery token holds one RSA private key per level (label
``<key_id>/v<version>``, sensitive, non-extractable, unwrap only). It stays
in a safe and is attached only when the working token is lost. Its user PIN
is the XOR of two random 16-byte shares, written as 32 lowercase hex digits;
each of two custodians keeps one share, so neither can log in alone, and
either share alone tells nothing about the PIN.

A session starts when one custodian sends a share, and becomes active when a
second, different custodian sends the other: the daemon then logs in to the
recovery token and keeps that login until the session is ended or expires.
Shares and the PIN live only in this process's memory, never in the state
store. Python cannot reliably wipe memory, so the share bytes are cleared
when no longer needed but copies made by gRPC and protobuf may remain until
the garbage collector reuses them.

Sessions are per daemon process: with several daemons behind a load
balancer, the custodians must reach the daemon the recovery token is
attached to.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import pkcs11
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

from niemphong.daemon.config import RecoveryConfig
from niemphong.daemon.envelope import KeySlot
from niemphong.daemon.errors import ServiceError, TokenUnavailable
from niemphong.daemon.hsm import _DATA_KEY_TEMPLATE, _TOKEN_GONE, UnwrapFailed, _load_library, kek_label
from niemphong.daemon.identity import Identity

log = logging.getLogger(__name__)

SHARE_BYTES = 16
PENDING_SECONDS = 15 * 60

PENDING, ACTIVE, ENDED, EXPIRED, FAILED = "pending", "active", "ended", "expired", "failed"

# Slot algorithm name -> CK_RSA_PKCS_OAEP_PARAMS (hash, MGF, source data).
_OAEP_PARAMETERS = {
    "RSA-OAEP-SHA1": (Mechanism.SHA_1, MGF.SHA1, None),
    "RSA-OAEP-SHA256": (Mechanism.SHA256, MGF.SHA256, None),
}


class RecoveryLoginFailed(Exception):
    """The two shares did not make the recovery token's PIN."""


def combine_shares(first: bytes, second: bytes) -> str:
    """Return the recovery token PIN made from two shares: their XOR as 32 lowercase hex digits."""
    if len(first) != SHARE_BYTES or len(second) != SHARE_BYTES:
        raise ValueError(f"a PIN share is {SHARE_BYTES} bytes")
    return bytes(a ^ b for a, b in zip(first, second)).hex()


def find_token(library: pkcs11.lib, label: str | None, serial: str | None) -> pkcs11.Token:
    """Return the one token with the given label and serial. Raises TokenUnavailable otherwise."""
    matches = []
    for slot in library.get_slots(token_present=True):
        token = slot.get_token()
        if label is not None and token.label != label:
            continue
        if serial is not None and token.serial.decode("ascii", "replace") != serial:
            continue
        matches.append(token)
    if len(matches) != 1:
        raise TokenUnavailable(f"{len(matches)} tokens match label={label!r} serial={serial!r}; expected one")
    return matches[0]


class RecoveryToken:
    """A login to the recovery token that unwraps data keys from recovery slots.

    Args:
        config: The [recovery] section.
        pin: The PIN made from both shares. Used for one C_Login and not kept.

    Raises:
        RecoveryLoginFailed: The PIN is wrong.
        TokenUnavailable: The token is not attached or cannot be opened.
    """

    def __init__(self, config: RecoveryConfig, pin: str) -> None:
        self.config = config
        # One session, used under a lock: python-pkcs11 sessions are not safe
        # to share between threads, and recovery work is rare.
        self._lock = threading.Lock()
        library = _load_library(str(config.module))
        token = find_token(library, config.label, config.serial)
        try:
            self._session = token.open(user_pin=pin)
        except (p11x.PinIncorrect, p11x.PinLenRange, p11x.PinInvalid) as exc:
            raise RecoveryLoginFailed(type(exc).__name__) from exc
        except p11x.PKCS11Error as exc:
            raise TokenUnavailable(f"cannot open the recovery token: {type(exc).__name__}") from exc
        log.info("logged in to the recovery token label=%r serial=%r", config.label, config.serial)

    def unwrap(self, slot: KeySlot) -> bytes:
        """Unwrap a data key from a recovery slot inside the recovery token and return its value.

        Raises:
            KeyError: The token has no private key for the slot's key id and version.
            UnwrapFailed: The slot does not unwrap, or names an unknown algorithm.
            TokenUnavailable: The token went away.
        """
        parameters = _OAEP_PARAMETERS.get(slot.wrap_algorithm)
        if parameters is None:
            raise UnwrapFailed(f"unsupported wrapping algorithm {slot.wrap_algorithm!r}")

        with self._lock:
            try:
                private_key = self._session.get_key(
                    object_class=ObjectClass.PRIVATE_KEY, label=kek_label(slot.key_id, slot.key_version),
                )
            except (p11x.NoSuchKey, p11x.MultipleObjectsReturned) as exc:
                raise KeyError(kek_label(slot.key_id, slot.key_version)) from exc
            except _TOKEN_GONE as exc:
                raise TokenUnavailable(f"the recovery token failed: {type(exc).__name__}") from exc
            try:
                key = private_key.unwrap_key(
                    ObjectClass.SECRET_KEY, KeyType.AES, slot.wrapped_key,
                    mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=parameters,
                    store=False, template=_DATA_KEY_TEMPLATE,
                )
            except _TOKEN_GONE as exc:
                raise TokenUnavailable(f"the recovery token failed: {type(exc).__name__}") from exc
            except p11x.PKCS11Error as exc:
                raise UnwrapFailed(type(exc).__name__) from exc
            try:
                data_key = bytes(key[Attribute.VALUE])
            finally:
                key.destroy()
        return data_key

    def close(self) -> None:
        """Close the session, which logs out of the recovery token."""
        with self._lock:
            try:
                self._session.close()
            except p11x.PKCS11Error as exc:
                log.warning("closing the recovery token session failed: %s", type(exc).__name__)


@dataclass(frozen=True)
class SessionView:
    """A recovery session as callers see it."""

    session_id: str
    state: str
    started_by: str
    reason: str
    started_at: int
    expires_at: int
    confirmed_by: str = ""
    ended_at: int = 0
    ended_by: str = ""


class RecoverySessions:
    """At most one recovery session at a time, and the recovery token login it holds.

    Args:
        config: The [recovery] section, or None when recovery is not configured.
        clock: Seconds since the epoch; tests pass their own.
        open_token: Opens the recovery token with a PIN; tests may wrap it.
    """

    def __init__(
        self,
        config: RecoveryConfig | None,
        clock: Callable[[], float] = time.time,
        open_token: Callable[[RecoveryConfig, str], RecoveryToken] = RecoveryToken,
    ) -> None:
        self.config = config
        self.clock = clock
        self._open_token = open_token
        self._lock = threading.Lock()
        self._session: SessionView | None = None
        self._share = bytearray()
        self._token: RecoveryToken | None = None
        self._timer: threading.Timer | None = None

    def _now(self) -> int:
        return int(self.clock())

    def _require_config(self) -> RecoveryConfig:
        if self.config is None:
            raise ServiceError("RECOVERY_NOT_CONFIGURED", "the daemon configuration has no [recovery] section")
        return self.config

    def start(self, custodian: Identity, share: bytes, reason: str) -> SessionView:
        """Start a pending session with one custodian's share."""
        self._require_config()
        now = self._now()

        with self._lock:
            current = self._current_locked(now)
            if current is not None and current.state in (PENDING, ACTIVE):
                raise ServiceError(
                    "RECOVERY_IN_PROGRESS", f"recovery session {current.session_id} is {current.state}",
                    {"session_id": current.session_id, "state": current.state},
                )
            self._session = SessionView(
                session_id=uuid.uuid4().hex, state=PENDING, started_by=custodian.name, reason=reason,
                started_at=now, expires_at=now + PENDING_SECONDS,
            )
            self._share = bytearray(share)
            session = self._session

        log.info("recovery session %s started by %s", session.session_id, custodian.name)
        return session

    def confirm(self, custodian: Identity, session_id: str, share: bytes) -> SessionView:
        """Add the second share from a second custodian and log in to the recovery token."""
        config = self._require_config()
        now = self._now()

        with self._lock:
            session = self._current_locked(now)
            if session is None or session.session_id != session_id or session.state != PENDING:
                state = session.state if session is not None and session.session_id == session_id else "none"
                raise ServiceError(
                    "RECOVERY_NOT_PENDING", f"recovery session {session_id} is not pending", {"state": state},
                )
            if session.started_by == custodian.name:
                raise ServiceError("ALREADY_CONFIRMED", "the custodian who started a recovery session cannot confirm it")

            pin = combine_shares(bytes(self._share), share)
            self._clear_share()
            try:
                token = self._open_token(config, pin)
            except RecoveryLoginFailed:
                self._session = replace(session, state=FAILED, confirmed_by=custodian.name, ended_at=now)
                log.warning("recovery session %s: the two shares did not log in to the recovery token", session_id)
                raise ServiceError("RECOVERY_LOGIN_FAILED", "the two PIN shares do not open the recovery token") from None
            except TokenUnavailable:
                self._session = replace(session, state=FAILED, confirmed_by=custodian.name, ended_at=now)
                raise
            finally:
                del pin

            self._token = token
            self._session = replace(
                session, state=ACTIVE, confirmed_by=custodian.name, expires_at=now + config.session_seconds,
            )
            self._timer = threading.Timer(config.session_seconds, self._expire, args=(session_id,))
            self._timer.daemon = True
            self._timer.start()
            active = self._session

        log.info("recovery session %s confirmed by %s; recovery token open", session_id, custodian.name)
        return active

    def end(self, custodian: Identity, session_id: str) -> SessionView:
        """End a pending or active session and log out of the recovery token."""
        now = self._now()

        with self._lock:
            session = self._current_locked(now)
            if session is None or session.session_id != session_id or session.state not in (PENDING, ACTIVE):
                state = session.state if session is not None and session.session_id == session_id else "none"
                raise ServiceError(
                    "RECOVERY_NOT_ACTIVE", f"recovery session {session_id} is not pending or active", {"state": state},
                )
            self._close_locked()
            self._session = replace(session, state=ENDED, ended_at=now, ended_by=custodian.name)
            ended = self._session

        log.info("recovery session %s ended by %s", session_id, custodian.name)
        return ended

    def current(self) -> SessionView | None:
        """Return the current or last session, or None if none was started since the daemon started."""
        with self._lock:
            return self._current_locked(self._now())

    def unwrap(self, slot: KeySlot) -> tuple[bytes, str]:
        """Unwrap a recovery slot with the active session's token; return the data key and the session id.

        Raises:
            ServiceError: RECOVERY_NOT_ACTIVE when no session is active.
            KeyError, UnwrapFailed, TokenUnavailable: as RecoveryToken.unwrap.
        """
        with self._lock:
            session = self._current_locked(self._now())
            token = self._token
            if session is None or session.state != ACTIVE or token is None:
                raise ServiceError("RECOVERY_NOT_ACTIVE", "no active recovery session")
            session_id = session.session_id
        return token.unwrap(slot), session_id

    def require_active(self) -> str:
        """Return the active session's id, or raise RECOVERY_NOT_ACTIVE before any other work is done."""
        with self._lock:
            session = self._current_locked(self._now())
            if session is None or session.state != ACTIVE:
                raise ServiceError("RECOVERY_NOT_ACTIVE", "no active recovery session")
            return session.session_id

    def close(self) -> None:
        """End any session at daemon shutdown."""
        with self._lock:
            self._close_locked()
            if self._session is not None and self._session.state in (PENDING, ACTIVE):
                self._session = replace(self._session, state=ENDED, ended_at=self._now(), ended_by="niemphongd")

    def _expire(self, session_id: str) -> None:
        # The timer runs on the monotonic clock, which may be a moment ahead
        # of the wall clock that expires_at is counted in, so expire here
        # whatever the wall clock says.
        with self._lock:
            session = self._session
            if session is not None and session.session_id == session_id and session.state == ACTIVE:
                self._close_locked()
                self._session = replace(session, state=EXPIRED, ended_at=self._now())
                log.info("recovery session %s expired", session_id)

    def _current_locked(self, now: int) -> SessionView | None:
        session = self._session
        if session is not None and session.state in (PENDING, ACTIVE) and now >= session.expires_at:
            self._close_locked()
            self._session = replace(session, state=EXPIRED, ended_at=now)
            log.info("recovery session %s expired", session.session_id)
        return self._session

    def _close_locked(self) -> None:
        self._clear_share()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._token is not None:
            self._token.close()
            self._token = None
            log.info("logged out of the recovery token")

    def _clear_share(self) -> None:
        for index in range(len(self._share)):
            self._share[index] = 0
        self._share = bytearray()
