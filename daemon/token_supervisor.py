"""Keep the token usable across faults: detect them, refuse cleanly, recover alone.

:class:`TokenSupervisor` takes the place of a :class:`Pkcs11Token` in the
daemon and forwards every method call to the current one. When a call fails with a
token fault, or the periodic check finds the token gone, the supervisor
marks the token unavailable, tells its listeners (health turns NOT_SERVING)
and starts recovering in a background thread: finalize and initialize the
module again, read the PIN again, log in again and open new sessions, with
exponential backoff between attempts. Its listeners then find the keys again
and turn health back to SERVING.

While the token is unavailable every call fails at once with
TokenUnavailable, which the services report as UNAVAILABLE with reason
TOKEN_UNAVAILABLE (client exit code 6).

Errors that are ambiguous, such as an unwrap failure (SoftHSM2 2.6 reports
a bad RFC 5649 check as CKR_GENERAL_ERROR) or a key that cannot be found,
are checked against the token: if the token no longer answers, the error is
a fault, otherwise it is passed on unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pkcs11 import exceptions as p11x

from niemphong.daemon import metrics
from niemphong.daemon.config import TokenConfig, read_pin
from niemphong.daemon.errors import ConfigError, TokenBusy, TokenUnavailable
from niemphong.daemon.hsm import Pkcs11Token, UnwrapFailed
from niemphong.daemon.token_faults import check_not_forked, reinitialize_module

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 5.0
RETRY_INITIAL_SECONDS = 0.5

# Errors after which the token is checked before the error is passed on.
_AMBIGUOUS_ERRORS = (KeyError, UnwrapFailed, p11x.PKCS11Error)

Listener = Callable[[bool], None]


class TokenSupervisor:
    """A :class:`Pkcs11Token` that is replaced by a fresh one after a token fault.

    Args:
        config: the [token] section of the daemon configuration.
        open_token: builds a logged-in token from the configuration and PIN;
            a fault-injection test passes a wrapper around Pkcs11Token.
        check_interval: seconds between health checks of an available token.
        retry_max: the maximum wait between two recovery attempts, in seconds.

    Raises:
        TokenUnavailable: the token cannot be opened at start. The daemon
            does not start without its token.
    """

    def __init__(
        self,
        config: TokenConfig,
        open_token: Callable[[TokenConfig, str], Pkcs11Token] = Pkcs11Token,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        retry_max: float | None = None,
    ) -> None:
        self.config = config
        self._open_token = open_token
        self._check_interval = check_interval
        self._retry_max = retry_max if retry_max is not None else config.retry_max_seconds
        self._token = self._watch(open_token(config, read_pin(config)))
        self._available = True
        # A fault reported but not yet passed on to the listeners.
        self._fault_unannounced = False
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.recoveries = 0
        self.faults = 0

    # Lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that checks the token and recovers it."""
        self._thread = threading.Thread(target=self._run, name="token-supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the supervisor thread and close the current token's sessions."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._token.close()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(available)`` after each change of availability, from the supervisor thread."""
        self._listeners.append(listener)

    @property
    def available(self) -> bool:
        return self._available

    # Calls -----------------------------------------------------------------

    def current(self) -> Pkcs11Token:
        """Return the token in use, or raise TokenUnavailable while it is being recovered."""
        check_not_forked()
        with self._lock:
            if not self._available:
                raise TokenUnavailable(f"token {self._token.describe()} is unavailable; recovering")
            return self._token

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` of the current token, turning a token fault into recovery."""
        token = self.current()
        try:
            return getattr(token, method)(*args, **kwargs)
        except TokenBusy:
            # Every session is busy: load, not a fault.
            raise
        except TokenUnavailable as exc:
            self.report_fault(token, str(exc))
            raise
        except _AMBIGUOUS_ERRORS as exc:
            if token.check_alive():
                raise
            self.report_fault(token, f"{method} failed with {type(exc).__name__} and the token no longer answers")
            raise TokenUnavailable(f"token {token.describe()} failed during {method}") from exc

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        # Forward everything a Pkcs11Token offers, so the services need not
        # know about the supervisor and new token methods are covered too.
        attribute = getattr(Pkcs11Token, name, None)
        if callable(attribute):
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        return getattr(self.current(), name)

    def describe(self) -> str:
        return self._token.describe()

    def check_alive(self) -> bool:
        """Return whether the token is available and answers now; a token that stopped answering starts recovery."""
        token = self._token
        if not self._available:
            metrics.TOKEN_PRESENT.set(0)
            return False
        if token.check_alive():
            return True
        self.report_fault(token, "the health check found the token not answering")
        return False

    # Faults and recovery ---------------------------------------------------

    def _watch(self, token: Pkcs11Token) -> Pkcs11Token:
        # A fault seen outside call(), for example by an in-token key
        # during a streamed seal, starts recovery as well.
        token.on_fault = lambda reason: self.report_fault(token, reason)
        return token

    def report_fault(self, token: Pkcs11Token, reason: str) -> None:
        """Mark ``token`` unusable and start recovering, unless it was already replaced."""
        with self._lock:
            token.mark_broken()
            if token is not self._token or not self._available:
                return
            self._available = False
            self._fault_unannounced = True
            self.faults += 1
        log.error("token %s fault: %s; refusing token calls until it is back", token.describe(), reason)
        # The supervisor thread notifies the listeners. The caller may hold locks
        # that a listener takes, such as the audit log's during a checkpoint
        # MAC or a state transaction, and would wait for itself.
        self._wake.set()

    def _run(self) -> None:
        delay = RETRY_INITIAL_SECONDS
        attempt = 0
        while not self._stopping.is_set():
            if self._available:
                delay, attempt = RETRY_INITIAL_SECONDS, 0
                self._wake.wait(self._check_interval)
                self._wake.clear()
                if self._stopping.is_set():
                    return
                token = self._token
                if self._available and not token.check_alive():
                    self.report_fault(token, "the periodic check found the token not answering")
                continue

            with self._lock:
                announce, self._fault_unannounced = self._fault_unannounced, False
            if announce:
                self._notify(False)
            attempt += 1
            if self._recover(attempt):
                continue
            log.warning("token recovery attempt %d failed; next attempt in %.1f s", attempt, delay)
            self._stopping.wait(delay)
            delay = min(delay * 2, self._retry_max)

    def _recover(self, attempt: int) -> bool:
        """Initialize the module again and open a new token; return whether it worked.

        NOTE: a PKCS#11 call that never returns keeps the module's gate
        shared, so re-initializing waits for it, and the daemon stays
        NOT_SERVING until it is restarted.
        """
        old = self._token
        module = str(self.config.module)
        old.abandon()
        try:
            reinitialize_module(module)
            pin = read_pin(self.config)
            fresh = self._watch(self._open_token(self.config, pin))
            del pin
        except (TokenUnavailable, ConfigError, p11x.PKCS11Error, OSError) as exc:
            log.warning("token recovery attempt %d: %s", attempt, exc)
            return False

        with self._lock:
            self._token = fresh
            self._available = True
            self.recoveries += 1
        log.info("token %s is back after %d attempts; sessions and login renewed", fresh.describe(), attempt)
        self._notify(True)
        return True

    def _notify(self, available: bool) -> None:
        for listener in self._listeners:
            try:
                listener(available)
            except Exception:
                # A listener that fails must not stop recovery; it is logged and retried at the next change.
                log.exception("token availability listener %r failed", listener)
