"""Access to the PKCS#11 token: login, a bounded session pool, and the level keys.

The key-encryption keys (KEKs) live in the token as sensitive, non-extractable
AES-256 keys that may only wrap and unwrap. A data key is drawn from the
token's random generator, wrapped by the level's KEK inside the token, and
used on the host for the bulk AES-GCM work, because tokens are far too slow
for bulk data.

python-pkcs11 sessions are not safe to share between threads (its
docs/concurrency.rst), so each request borrows a whole session from the pool.
PKCS#11 login state belongs to the application, not the session: one
anchor session logs in and stays open for the daemon's life, and pool
sessions opened after it are logged in too (PKCS#11 v2.40, section 5.6).

python-pkcs11 calls C_Initialize with no arguments, which means the
application promises not to call the module from several threads. SoftHSM2
then turns its own locking off, and concurrent sessions fail with
CKR_GENERAL_ERROR. :func:`_load_library` therefore initializes the module
again with CKF_OS_LOCKING_OK before the first session opens.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

from niemphong.daemon import metrics
from niemphong.daemon.config import TokenConfig
from niemphong.daemon.envelope import KeySlot
from niemphong.daemon.errors import TokenUnavailable
from niemphong.daemon.pkcs11_direct import DirectCalls

log = logging.getLogger(__name__)

DATA_KEY_BITS = 256
# An RFC 3394 or RFC 5649 wrap of a 32-byte key: the key plus one 8-byte block.
WRAPPED_DATA_KEY_BYTES = DATA_KEY_BITS // 8 + 8
SESSION_WAIT_SECONDS = 30.0

# Wrapping mechanisms in order of preference, with the name recorded in the
# envelope header. RFC 5649 (with padding) first; RFC 3394 also fits a 32-byte
# key, whose length is a multiple of the 8-byte block.
_WRAP_MECHANISMS = (
    (Mechanism.AES_KEY_WRAP_PAD, "AES-KWP"),
    (Mechanism.AES_KEY_WRAP, "AES-KW"),
)
_MECHANISM_BY_NAME = {name: mechanism for mechanism, name in _WRAP_MECHANISMS}

# Errors that mean the token, or our login to it, is gone, as opposed to an
# operation on bad input failing.
_TOKEN_GONE = (
    p11x.DeviceRemoved,
    p11x.DeviceError,
    p11x.DeviceMemory,
    p11x.TokenNotPresent,
    p11x.TokenNotRecognised,
    p11x.SessionClosed,
    p11x.SessionHandleInvalid,
    p11x.UserNotLoggedIn,
    p11x.PinIncorrect,
    p11x.PinLocked,
    p11x.PinExpired,
    p11x.SlotIDInvalid,
)

_KEK_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}

# The data key exists in the token only for the moment it is wrapped or
# unwrapped: a session object, readable by this daemon, destroyed at once.
_DATA_KEY_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: False,
    Attribute.EXTRACTABLE: True,
}


CKF_OS_LOCKING_OK = 0x00000002
CKR_OK = 0x000


class _InitializeArgs(ctypes.Structure):
    """CK_C_INITIALIZE_ARGS (PKCS#11 v2.40, section 5.4)."""

    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


_libraries: dict[str, pkcs11.lib] = {}
_direct_calls: dict[str, DirectCalls | None] = {}
_libraries_lock = threading.Lock()


def _load_library(module: str) -> pkcs11.lib:
    """Load a PKCS#11 module once per process, initialized to allow calls from several threads.

    python-pkcs11 loads and initializes the module with NULL arguments. Before
    any session exists, the module is then finalized and initialized again
    with CKF_OS_LOCKING_OK, through the functions the module exports. The library object
    python-pkcs11 holds stays valid, because the module is not unloaded.
    """
    with _libraries_lock:
        library = _libraries.get(module)
        if library is not None:
            return library
        try:
            library = pkcs11.lib(module)
            handle = ctypes.CDLL(module)
        except OSError as exc:
            raise TokenUnavailable(f"cannot load PKCS#11 module {module}: {exc}") from exc
        handle.C_Finalize(None)
        result = handle.C_Initialize(ctypes.byref(_InitializeArgs(flags=CKF_OS_LOCKING_OK)))
        if result != CKR_OK:
            raise TokenUnavailable(f"C_Initialize of {module} failed with CKR 0x{result:x}")
        try:
            _direct_calls[module] = DirectCalls(handle)
        except AttributeError:
            # The module exports only C_GetFunctionList; use python-pkcs11's calls.
            _direct_calls[module] = None
        _libraries[module] = library
        return library


class UnwrapFailed(Exception):
    """The token could not unwrap a data key: wrong key, or altered wrapped bytes."""


@dataclass(frozen=True)
class KekInfo:
    key_id: str
    version: int
    label: str
    # CKA_START_DATE, set when the daemon created the key; None when the
    # token has no date for it (keys created by other tools).
    created_on: date | None = None


def _mechanism_label(mechanism: Mechanism | None) -> str:
    return f"CKM_{mechanism.name}" if mechanism is not None else metrics.NONE


@contextlib.contextmanager
def _token_call(function: str, mechanism: Mechanism | None = None) -> Iterator[None]:
    """Count and time one PKCS#11 call; ``function`` is its C_ name, e.g. ``C_WrapKey``."""
    label = _mechanism_label(mechanism)
    started = time.monotonic()
    try:
        yield
    except p11x.PKCS11Error as exc:
        metrics.TOKEN_CALL_ERRORS.labels(function, label, type(exc).__name__).inc()
        raise
    finally:
        metrics.TOKEN_CALLS.labels(function, label).inc()
        metrics.TOKEN_CALL_DURATION.labels(function, label).observe(time.monotonic() - started)


def kek_label(key_id: str, version: int) -> str:
    return f"{key_id}/v{version}"


def _parse_kek_label(label: str) -> tuple[str, int] | None:
    key_id, slash, version = label.rpartition("/v")
    if not slash or not version.isdigit():
        return None
    return key_id, int(version)


# Attribute values every KEK must have. ALWAYS_SENSITIVE and NEVER_EXTRACTABLE
# are set by the token itself and prove the value was never readable.
_KEK_REQUIRED = {
    Attribute.KEY_TYPE: KeyType.AES,
    Attribute.VALUE_LEN: 32,
    Attribute.SENSITIVE: True,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
}


def _kek_weakness(key: pkcs11.SecretKey) -> str | None:
    """Return why ``key`` is unfit to be a KEK, or None when it is fit."""
    for attribute, expected in _KEK_REQUIRED.items():
        try:
            actual = key[attribute]
        except p11x.PKCS11Error:
            return f"attribute {attribute.name} cannot be read"
        if actual != expected:
            return f"attribute {attribute.name} is {actual!r}, expected {expected!r}"
    return None


class Pkcs11Token:
    """A logged-in token with a pool of sessions.

    Args:
        config: the [token] section of the daemon configuration.
        pin: the user PIN. It is used for one C_Login and not kept.
    """

    def __init__(self, config: TokenConfig, pin: str) -> None:
        self.config = config
        self._pool: queue.Queue[pkcs11.Session] = queue.Queue()
        self._sessions: list[pkcs11.Session] = []
        self._kek_cache: dict[tuple[int, str, int], pkcs11.SecretKey] = {}

        for name, value in config.env.items():
            os.environ[name] = value
        try:
            self._lib = _load_library(str(config.module))
            self._direct = _direct_calls.get(str(config.module))
            self.token = self._find_token()
            self._anchor = self.token.open(rw=True, user_pin=pin)
            for _ in range(config.sessions):
                session = self.token.open(rw=True)
                self._sessions.append(session)
                self._pool.put(session)
            metrics.TOKEN_SESSIONS.set(len(self._sessions))
        except p11x.PinIncorrect as exc:
            raise TokenUnavailable(f"login to token {self.describe()} failed: incorrect PIN") from exc
        except p11x.PKCS11Error as exc:
            raise TokenUnavailable(f"cannot open token {self.describe()}: {type(exc).__name__}") from exc

        mechanisms = set(self.token.slot.get_mechanisms())
        available = [(m, name) for m, name in _WRAP_MECHANISMS if m in mechanisms]
        if not available:
            raise TokenUnavailable(f"token {self.describe()} offers neither AES key wrap mechanism")
        self.wrap_mechanism, self.wrap_algorithm = available[0]
        log.info(
            "token opened: %s, %d sessions, wrapping with %s",
            self.describe(), config.sessions, self.wrap_algorithm,
        )

    def describe(self) -> str:
        """Name the configured token without secrets, for logs and errors."""
        parts = []
        if self.config.label:
            parts.append(f"label={self.config.label!r}")
        if self.config.serial:
            parts.append(f"serial={self.config.serial!r}")
        return " ".join(parts) + f" module={self.config.module}"

    def _find_token(self) -> pkcs11.Token:
        matches = []
        for slot in self._lib.get_slots(token_present=True):
            token = slot.get_token()
            if self.config.label is not None and token.label != self.config.label:
                continue
            if self.config.serial is not None and token.serial.decode("ascii", "replace") != self.config.serial:
                continue
            matches.append(token)
        if not matches:
            raise TokenUnavailable(f"no token matches {self.describe()}")
        if len(matches) > 1:
            raise TokenUnavailable(f"{len(matches)} tokens match {self.describe()}; select one by serial")
        return matches[0]

    def close(self) -> None:
        """Close every session, logging out last. The module stays loaded for the process."""
        for session in self._sessions:
            with contextlib.suppress(p11x.PKCS11Error):
                session.close()
        with contextlib.suppress(p11x.PKCS11Error):
            self._anchor.close()
        self._sessions.clear()
        self._kek_cache.clear()
        metrics.TOKEN_SESSIONS.set(0)

    @contextlib.contextmanager
    def session(self) -> Iterator[pkcs11.Session]:
        """Borrow a session for one operation; map a vanished token to TokenUnavailable."""
        started = time.monotonic()
        metrics.TOKEN_SESSIONS_WAITING.inc()
        try:
            session = self._pool.get(timeout=SESSION_WAIT_SECONDS)
        except queue.Empty:
            metrics.TOKEN_SESSION_TIMEOUTS.inc()
            raise TokenUnavailable(f"no token session free after {SESSION_WAIT_SECONDS:.0f} s") from None
        finally:
            metrics.TOKEN_SESSIONS_WAITING.dec()
        metrics.TOKEN_SESSION_WAIT.observe(time.monotonic() - started)
        metrics.TOKEN_SESSIONS_IN_USE.inc()
        try:
            yield session
        except _TOKEN_GONE as exc:
            raise TokenUnavailable(f"token {self.describe()} failed: {type(exc).__name__}") from exc
        finally:
            self._pool.put(session)
            metrics.TOKEN_SESSIONS_IN_USE.dec()

    # Keys ---------------------------------------------------------------

    def list_keks(self) -> list[KekInfo]:
        """List the key-encryption keys in the token, by key id and version.

        A key whose label looks like a KEK but whose attributes would let its
        value leave the token, or let it encrypt data directly, is left out
        and logged: someone with the PIN could plant such a key as a "newer
        version" and decrypt every envelope sealed under it.
        """
        found = []
        with self.session() as session, _token_call("C_FindObjects"):
            for key in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}):
                parsed = _parse_kek_label(key.label or "")
                if parsed is None:
                    continue
                problem = _kek_weakness(key)
                if problem is not None:
                    log.error("ignoring key %s in token %s: %s", key.label, self.describe(), problem)
                    continue
                found.append(KekInfo(parsed[0], parsed[1], key.label, _start_date(key)))
        return sorted(found, key=lambda info: (info.key_id, info.version))

    def newest_version(self, key_id: str) -> int | None:
        versions = [info.version for info in self.list_keks() if info.key_id == key_id]
        return max(versions) if versions else None

    def create_kek(self, key_id: str, version: int) -> KekInfo:
        """Generate an AES-256 KEK in the token: sensitive, non-extractable, wrap and unwrap only."""
        label = kek_label(key_id, version)
        # The creation date, for key age and rotation metrics; PKCS#11 keeps
        # no creation time of its own.
        today = datetime.now(timezone.utc).date()
        template = {**_KEK_TEMPLATE, Attribute.START_DATE: today}
        with self.session() as session, _token_call("C_GenerateKey", Mechanism.AES_KEY_GEN):
            session.generate_key(KeyType.AES, 256, label=label, id=label.encode("ascii"), store=True, template=template)
        log.info("created key-encryption key %s in token %s", label, self.describe())
        return KekInfo(key_id, version, label, today)

    def _kek(self, session: pkcs11.Session, key_id: str, version: int) -> pkcs11.SecretKey:
        cache_key = (id(session), key_id, version)
        key = self._kek_cache.get(cache_key)
        if key is None:
            try:
                with _token_call("C_FindObjects"):
                    key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=kek_label(key_id, version))
            except (p11x.NoSuchKey, p11x.MultipleObjectsReturned) as exc:
                raise KeyError(kek_label(key_id, version)) from exc
            problem = _kek_weakness(key)
            if problem is not None:
                log.error("refusing key %s in token %s: %s", key.label, self.describe(), problem)
                raise KeyError(kek_label(key_id, version))
            self._kek_cache[cache_key] = key
        return key

    # Data keys ----------------------------------------------------------

    def new_data_key(self, key_id: str, version: int) -> tuple[bytes, KeySlot]:
        """Draw a data key from the token's RNG and wrap it under the KEK.

        Returns the data key and its key slot for the envelope header. Raises
        KeyError when the token has no such KEK.
        """
        with self.session() as session:
            kek = self._kek(session, key_id, version)
            with _token_call("C_GenerateRandom"):
                data_key = session.generate_random(DATA_KEY_BITS)
            if self._direct is not None:
                wrapped = self._wrap_direct(self._direct, session, kek, data_key)
            else:
                wrapped = self._wrap_python(session, kek, data_key)
        return data_key, KeySlot(key_id, version, self.wrap_algorithm, wrapped)

    def _wrap_direct(self, direct: DirectCalls, session: pkcs11.Session, kek: pkcs11.SecretKey, data_key: bytes) -> bytes:
        # One call each, where python-pkcs11 also reads the new object's class and key type.
        with _token_call("C_CreateObject"):
            temporary = direct.create_data_key(session, data_key)
        try:
            with _token_call("C_WrapKey", self.wrap_mechanism):
                return direct.wrap_key(session, kek, temporary, self.wrap_mechanism, WRAPPED_DATA_KEY_BYTES)
        finally:
            with _token_call("C_DestroyObject"):
                direct.destroy(session, temporary)

    def _wrap_python(self, session: pkcs11.Session, kek: pkcs11.SecretKey, data_key: bytes) -> bytes:
        with _token_call("C_CreateObject"):
            temporary = session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: data_key,
                **_DATA_KEY_TEMPLATE,
            })
        try:
            with _token_call("C_WrapKey", self.wrap_mechanism):
                return kek.wrap_key(temporary, mechanism=self.wrap_mechanism)
        finally:
            with _token_call("C_DestroyObject"):
                temporary.destroy()

    def unwrap_data_key(self, slot: KeySlot) -> bytes:
        """Unwrap a data key inside the token and return its value.

        Raises:
            KeyError: the token contains no KEK for the slot's key id and version.
            UnwrapFailed: the wrapped bytes do not unwrap under that KEK.
        """
        mechanism = _MECHANISM_BY_NAME.get(slot.wrap_algorithm)
        if mechanism is None:
            raise UnwrapFailed(f"unsupported wrapping algorithm {slot.wrap_algorithm!r}")

        with self.session() as session:
            kek = self._kek(session, slot.key_id, slot.key_version)
            if self._direct is not None:
                data_key = self._unwrap_direct(self._direct, session, kek, mechanism, slot.wrapped_key)
            else:
                data_key = self._unwrap_python(kek, mechanism, slot.wrapped_key)

        if len(data_key) != DATA_KEY_BITS // 8:
            raise UnwrapFailed(f"unwrapped key has {len(data_key)} bytes")
        return data_key

    def _unwrap_direct(
        self, direct: DirectCalls, session: pkcs11.Session, kek: pkcs11.SecretKey,
        mechanism: Mechanism, wrapped: bytes,
    ) -> bytes:
        try:
            with _token_call("C_UnwrapKey", mechanism):
                temporary = direct.unwrap_data_key(session, kek, mechanism, wrapped)
        except _TOKEN_GONE:
            raise
        except p11x.PKCS11Error as exc:
            # SoftHSM2 2.6 reports a failed RFC 5649 integrity check as
            # CKR_GENERAL_ERROR; other tokens use CKR_WRAPPED_KEY_INVALID
            # or CKR_ENCRYPTED_DATA_INVALID. All mean the same here.
            raise UnwrapFailed(type(exc).__name__) from exc
        try:
            with _token_call("C_GetAttributeValue"):
                return direct.read_value(session, temporary, DATA_KEY_BITS // 8)
        finally:
            with _token_call("C_DestroyObject"):
                direct.destroy(session, temporary)

    def _unwrap_python(self, kek: pkcs11.SecretKey, mechanism: Mechanism, wrapped: bytes) -> bytes:
        try:
            with _token_call("C_UnwrapKey", mechanism):
                key = kek.unwrap_key(
                    ObjectClass.SECRET_KEY, KeyType.AES, wrapped,
                    mechanism=mechanism, store=False, template=_DATA_KEY_TEMPLATE,
                )
        except _TOKEN_GONE:
            raise
        except p11x.PKCS11Error as exc:
            # The same failures as in _unwrap_direct.
            raise UnwrapFailed(type(exc).__name__) from exc
        try:
            with _token_call("C_GetAttributeValue"):
                return bytes(key[Attribute.VALUE])
        finally:
            with _token_call("C_DestroyObject"):
                key.destroy()

    def check_alive(self) -> bool:
        """Return whether the token still completes a call on the login session."""
        try:
            with _token_call("C_GenerateRandom"):
                self._anchor.generate_random(64)
        except p11x.PKCS11Error:
            metrics.TOKEN_PRESENT.set(0)
            return False
        metrics.TOKEN_PRESENT.set(1)
        return True


def _start_date(key: pkcs11.SecretKey) -> date | None:
    """Return a key's CKA_START_DATE, or None when it is empty or unreadable."""
    try:
        with _token_call("C_GetAttributeValue"):
            value = key[Attribute.START_DATE]
    except (p11x.PKCS11Error, ValueError):
        # python-pkcs11 raises ValueError parsing an empty date.
        return None
    return value if isinstance(value, date) else None
