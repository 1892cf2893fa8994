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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11x

from niemphong.daemon import metrics, rsa_kek, token_aead
from niemphong.daemon.config import TokenConfig
from niemphong.daemon.envelope import KeySlot
from niemphong.daemon.errors import TokenBusy, TokenUnavailable
from niemphong.daemon.hsm_profiles import Profile, ProfileError, callable_mechanism, load_profile
from niemphong.daemon.pkcs11_direct import DirectCalls
from niemphong.daemon.token_faults import HANDLE_INVALID_ERRORS, check_not_forked, initialize_module, library_gate

log = logging.getLogger(__name__)

DATA_KEY_BITS = 256
# An AES key wrap of a 32-byte key, with or without padding (RFC 3394, RFC 5649).
WRAPPED_DATA_KEY_BYTES = DATA_KEY_BITS // 8 + 8
SESSION_WAIT_SECONDS = 30.0

# The wrapping algorithms, their order of preference and their mechanism
# codes come from the token profile (hsm_profiles/). RFC 5649 (with padding)
# comes first there; RFC 3394 also fits a 32-byte key, whose length is a
# multiple of the 8-byte block.

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
    *HANDLE_INVALID_ERRORS,
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
        initialize_module(handle, module)
        try:
            _direct_calls[module] = DirectCalls(handle)
        except AttributeError:
            # The module exports only C_GetFunctionList; python-pkcs11's calls are used.
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
    # "aes": a secret key that wraps in the token; "rsa": a key pair whose
    # public half wraps on the host (rsa_kek.py).
    kind: str = "aes"


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
        except _TOKEN_GONE:
            raise
        except p11x.PKCS11Error:
            return f"attribute {attribute.name} cannot be read"
        if actual != expected:
            return f"attribute {attribute.name} is {actual!r}, expected {expected!r}"
    return None


@contextlib.contextmanager
def _session_object(obj: pkcs11.Object) -> Iterator[None]:
    """Destroy a session object after use, unless a token fault ended its session.

    After a fault the session handle may be invalid, and the object ended
    with its session, so no call is made on it.
    """
    try:
        yield
    except _TOKEN_GONE:
        raise
    except BaseException:
        with _token_call("C_DestroyObject"):
            obj.destroy()
        raise
    with _token_call("C_DestroyObject"):
        obj.destroy()


@contextlib.contextmanager
def _direct_session_object(direct: DirectCalls, session: pkcs11.Session, handle: int) -> Iterator[None]:
    """:func:`_session_object` for an object known only by its handle (pkcs11_direct.py)."""
    try:
        yield
    except _TOKEN_GONE:
        raise
    except BaseException:
        with _token_call("C_DestroyObject"):
            direct.destroy(session, handle)
        raise
    with _token_call("C_DestroyObject"):
        direct.destroy(session, handle)


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
        # Set by the first error that may have invalidated a session or the
        # login; from then on no session of this object is used again.
        self._broken = False
        # Called once with a reason when a token fault breaks this object
        # (the token supervisor sets it to start recovering).
        self.on_fault: Callable[[str], None] | None = None
        self._gate = library_gate(str(config.module))
        # In-token transfers each hold a session outside the pool; at most
        # this many at once, so the token's session limit is never reached.
        self.in_token_sessions = threading.BoundedSemaphore(config.sessions)
        try:
            self.profile: Profile = load_profile(config.profile)
        except ProfileError as exc:
            raise TokenUnavailable(str(exc)) from None
        # (key_id, version) -> "aes" or "rsa", and RSA public keys, found once per login.
        self._kek_kinds: dict[tuple[str, int], str] = {}
        self._rsa_public: dict[tuple[str, int], rsa_kek.rsa.RSAPublicKey] = {}

        for name, value in config.env.items():
            os.environ[name] = value
        try:
            self._lib = _load_library(str(config.module))
            # One PKCS#11 call per step of a data key's wrap and unwrap
            # (pkcs11_direct.py), or None to use python-pkcs11's calls.
            self._direct: DirectCalls | None = _direct_calls.get(str(config.module))
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

        self._choose_mechanisms()
        log.info(
            "token opened: %s, %d sessions, wrapping with %s",
            self.describe(), config.sessions, self.wrap_algorithm,
        )

    def _choose_mechanisms(self) -> None:
        """Pick the first AES wrapping algorithm of the profile that the token offers and python-pkcs11 can call."""
        offered = {int(mechanism) for mechanism in self.token.slot.get_mechanisms()}
        self._aes_unwrap_mechanisms: dict[str, Mechanism] = {}
        for name in self.profile.aes_wrapping:
            for code in self.profile.mechanism_codes(name):
                mechanism = callable_mechanism(code)
                if code in offered and mechanism is not None:
                    self._aes_unwrap_mechanisms.setdefault(name, mechanism)
                elif code in offered:
                    log.warning("token %s offers %s as mechanism 0x%x, which python-pkcs11 cannot call",
                                self.describe(), name, code)
        if not self._aes_unwrap_mechanisms and self.profile.kek == "aes":
            raise TokenUnavailable(
                f"token {self.describe()} offers none of the AES wrapping algorithms "
                f"{', '.join(self.profile.aes_wrapping)} of profile {self.profile.name} as a mechanism python-pkcs11 can call"
            )
        first = next(iter(self._aes_unwrap_mechanisms.items()), None)
        self.wrap_algorithm, self.wrap_mechanism = first if first else ("", None)
        self.rsa_wrap_algorithm = self.profile.rsa_wrapping[0] if self.profile.rsa_wrapping else "RSA-OAEP-SHA1"

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
        if self._broken:
            # The handles may be invalid, or may name sessions that a later
            # initialization handed out again; C_Finalize ends them instead.
            self.abandon()
            return
        for session in self._sessions:
            with contextlib.suppress(p11x.PKCS11Error):
                session.close()
        with contextlib.suppress(p11x.PKCS11Error):
            self._anchor.close()
        self._sessions.clear()
        self._kek_cache.clear()
        metrics.TOKEN_SESSIONS.set(0)

    @property
    def broken(self) -> bool:
        """Whether a token fault has made this object's sessions unusable."""
        return self._broken

    def mark_broken(self) -> None:
        """Stop handing out sessions; borrowed ones are dropped when returned."""
        self._broken = True

    @property
    def fault_errors(self) -> tuple[type[Exception], ...]:
        """The python-pkcs11 errors that mean the token, a session or the login is gone."""
        return _TOKEN_GONE

    def timed_call(self, function: str, mechanism: Mechanism | None = None) -> contextlib.AbstractContextManager[None]:
        """Count and time one PKCS#11 call in the token metrics, for modules that make calls of their own."""
        return _token_call(function, mechanism)

    def fault(self, reason: str) -> None:
        """Mark this object broken after a token fault and report it to ``on_fault`` once."""
        first = not self._broken
        self._broken = True
        if first and self.on_fault is not None:
            self.on_fault(reason)

    def abandon(self) -> None:
        """Forget every session and key handle without calling the token.

        Used after a fault, before the module is finalized: C_Finalize ends
        the sessions, and calling C_CloseSession on a handle that a fault
        invalidated could close a session that is not ours to close.
        """
        self._broken = True
        while True:
            try:
                self._pool.get_nowait()
            except queue.Empty:
                break
        self._sessions.clear()
        self._kek_cache.clear()
        metrics.TOKEN_SESSIONS.set(0)

    @contextlib.contextmanager
    def session(self) -> Iterator[pkcs11.Session]:
        """Borrow a session for one operation; map a vanished token to TokenUnavailable.

        The module's gate is held shared for the whole borrow, so the module
        is never re-initialized under a running call. A session that saw a
        token fault is not returned to the pool.
        """
        check_not_forked()
        if self._broken:
            raise TokenUnavailable(f"token {self.describe()} failed earlier; waiting for it to be opened again")
        started = time.monotonic()
        metrics.TOKEN_SESSIONS_WAITING.inc()
        try:
            session = self._pool.get(timeout=SESSION_WAIT_SECONDS)
        except queue.Empty:
            metrics.TOKEN_SESSION_TIMEOUTS.inc()
            raise TokenBusy(f"no token session free after {SESSION_WAIT_SECONDS:.0f} s") from None
        finally:
            metrics.TOKEN_SESSIONS_WAITING.dec()
        metrics.TOKEN_SESSION_WAIT.observe(time.monotonic() - started)
        metrics.TOKEN_SESSIONS_IN_USE.inc()
        try:
            with self._gate.shared():
                if self._broken:
                    raise TokenUnavailable(f"token {self.describe()} failed earlier; waiting for it to be opened again")
                yield session
        except _TOKEN_GONE as exc:
            self.fault(f"{type(exc).__name__} on a pool session")
            raise TokenUnavailable(f"token {self.describe()} failed: {type(exc).__name__}") from exc
        finally:
            if not self._broken:
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
            for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.TOKEN: True}):
                parsed = _parse_kek_label(key.label or "")
                if parsed is None or key.key_type != KeyType.RSA:
                    continue
                problem = rsa_kek.private_key_weakness(key, _TOKEN_GONE)
                if problem is not None:
                    log.error("ignoring key %s in token %s: %s", key.label, self.describe(), problem)
                    continue
                found.append(KekInfo(parsed[0], parsed[1], key.label, _start_date(key), "rsa"))
        return sorted(found, key=lambda info: (info.key_id, info.version))

    def newest_version(self, key_id: str) -> int | None:
        versions = [info.version for info in self.list_keks() if info.key_id == key_id]
        return max(versions) if versions else None

    def create_kek(self, key_id: str, version: int, kind: str | None = None) -> KekInfo:
        """Generate a KEK in the token, of the profile's kind unless ``kind`` is given.

        An AES KEK is AES-256, sensitive, non-extractable, wrap and unwrap
        only. An RSA KEK is a key pair of the profile's rsa_bits (rsa_kek.py).
        """
        label = kek_label(key_id, version)
        kind = kind or self.profile.kek
        # The creation date, for key age and rotation metrics; PKCS#11 keeps
        # no creation time of its own.
        today = datetime.now(timezone.utc).date()
        if kind == "rsa":
            with self.session() as session, _token_call("C_GenerateKeyPair", Mechanism.RSA_PKCS_KEY_PAIR_GEN):
                rsa_kek.create_key_pair(session, label, self.profile.rsa_bits, today)
            log.info("created RSA key-encryption key %s in token %s", label, self.describe())
            return KekInfo(key_id, version, label, today, "rsa")
        template = {**_KEK_TEMPLATE, Attribute.START_DATE: today}
        with self.session() as session, _token_call("C_GenerateKey", Mechanism.AES_KEY_GEN):
            session.generate_key(KeyType.AES, 256, label=label, id=label.encode("ascii"), store=True, template=template)
        log.info("created key-encryption key %s in token %s", label, self.describe())
        return KekInfo(key_id, version, label, today)

    def destroy_kek(self, key_id: str, version: int) -> bool:
        """Destroy a KEK in the token. Return False when the token has no such key."""
        label = kek_label(key_id, version)
        with self.session() as session:
            with _token_call("C_FindObjects"):
                keys = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
            for key in keys:
                with _token_call("C_DestroyObject"):
                    key.destroy()
            # Cached handles of a destroyed object would name nothing, or a
            # later object that reuses the handle.
            for cache_key in [cached for cached in self._kek_cache if cached[1:] == (key_id, version)]:
                del self._kek_cache[cache_key]
        if keys:
            log.info("destroyed key-encryption key %s in token %s", label, self.describe())
        return bool(keys)

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
        if self.kek_kind(key_id, version) == "rsa":
            return self._new_data_key_rsa(key_id, version)
        with self.session() as session:
            kek = self._kek(session, key_id, version)
            with _token_call("C_GenerateRandom"):
                data_key = session.generate_random(DATA_KEY_BITS)
            wrapped = self._wrap(session, kek, data_key)
        return data_key, KeySlot(key_id, version, self.wrap_algorithm, wrapped)

    def _wrap(self, session: pkcs11.Session, kek: pkcs11.SecretKey, data_key: bytes) -> bytes:
        """Import ``data_key`` as a session object, wrap it under ``kek`` and destroy it.

        With the module's exported functions this is three PKCS#11 calls.
        python-pkcs11 makes six: it reads the class and key type of the
        object it creates, and calls C_WrapKey once more to learn the length.
        """
        direct = self._direct
        if direct is None:
            with _token_call("C_CreateObject"):
                temporary = session.create_object({
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.VALUE: data_key,
                    **_DATA_KEY_TEMPLATE,
                })
            with _session_object(temporary), _token_call("C_WrapKey", self.wrap_mechanism):
                return bytes(kek.wrap_key(temporary, mechanism=self.wrap_mechanism))
        with _token_call("C_CreateObject"):
            handle = direct.create_data_key(session, data_key)
        with _direct_session_object(direct, session, handle), _token_call("C_WrapKey", self.wrap_mechanism):
            return direct.wrap_key(session, kek, handle, self.wrap_mechanism, WRAPPED_DATA_KEY_BYTES)

    def wrap_data_key(self, key_id: str, version: int, data_key: bytes) -> KeySlot:
        """Wrap an existing data key under a KEK, for rewrapping an envelope.

        Raises KeyError when the token has no such KEK.
        """
        with self.session() as session:
            kek = self._kek(session, key_id, version)
            wrapped = self._wrap(session, kek, data_key)
        return KeySlot(key_id, version, self.wrap_algorithm, wrapped)

    def unwrap_data_key(self, slot: KeySlot) -> bytes:
        """Unwrap a data key inside the token and return its value.

        Raises:
            KeyError: the token contains no KEK for the slot's key id and version.
            UnwrapFailed: the wrapped bytes do not unwrap under that KEK.
        """
        if slot.wrap_algorithm in rsa_kek.OAEP_PARAMETERS:
            return self._unwrap_data_key_rsa(slot)
        mechanism = self._aes_unwrap_mechanisms.get(slot.wrap_algorithm)
        if mechanism is None:
            raise UnwrapFailed(f"unsupported wrapping algorithm {slot.wrap_algorithm!r}")

        direct = self._direct
        with self.session() as session:
            kek = self._kek(session, slot.key_id, slot.key_version)
            try:
                with _token_call("C_UnwrapKey", mechanism):
                    if direct is not None:
                        handle = direct.unwrap_data_key(session, kek, mechanism, slot.wrapped_key)
                    else:
                        key = kek.unwrap_key(
                            ObjectClass.SECRET_KEY, KeyType.AES, slot.wrapped_key,
                            mechanism=mechanism, store=False, template=_DATA_KEY_TEMPLATE,
                        )
            except _TOKEN_GONE:
                raise
            except p11x.PKCS11Error as exc:
                # SoftHSM2 2.6 reports a failed RFC 5649 integrity check as
                # CKR_GENERAL_ERROR; other tokens use CKR_WRAPPED_KEY_INVALID
                # or CKR_ENCRYPTED_DATA_INVALID. All mean the same here.
                raise UnwrapFailed(type(exc).__name__) from exc
            if direct is not None:
                # Three calls: C_UnwrapKey, C_GetAttributeValue, C_DestroyObject.
                with _direct_session_object(direct, session, handle), _token_call("C_GetAttributeValue"):
                    data_key = direct.read_value(session, handle, DATA_KEY_BITS // 8)
            else:
                with _session_object(key), _token_call("C_GetAttributeValue"):
                    data_key = bytes(key[Attribute.VALUE])

        if len(data_key) != DATA_KEY_BITS // 8:
            raise UnwrapFailed(f"unwrapped key has {len(data_key)} bytes")
        return data_key

    # In-token mode ------------------------------------------------------

    def new_in_token_data_key(self, key_id: str, version: int) -> tuple[token_aead.TokenDataKey, KeySlot]:
        """Generate a data key that stays in the token, wrapped under an AES KEK (token_aead.py).

        The caller closes the returned key. Raises KeyError when the token
        has no such AES KEK.
        """
        if self.kek_kind(key_id, version) != "aes":
            raise KeyError(f"{kek_label(key_id, version)}: in-token mode needs an AES key-encryption key")
        return token_aead.new_data_key(self, lambda session: self._find_kek(session, key_id, version), key_id, version)

    def wrap_in_token_data_key(self, key_id: str, version: int, data_key: token_aead.TokenDataKey) -> KeySlot:
        """Wrap an in-token data key under another AES KEK, inside the token, for rewrapping an envelope.

        Raises KeyError when the token has no such AES KEK.
        """
        if self.kek_kind(key_id, version) != "aes":
            raise KeyError(f"{kek_label(key_id, version)}: in-token mode needs an AES key-encryption key")
        wrapped = data_key.wrap(lambda session: self._find_kek(session, key_id, version), self.wrap_mechanism)
        return KeySlot(key_id, version, self.wrap_algorithm, wrapped)

    def unwrap_in_token_data_key(self, slot: KeySlot, *, rewrappable: bool = False) -> token_aead.TokenDataKey:
        """Unwrap a data key into the token for an in-token envelope; the caller closes it.

        With ``rewrappable`` the key may also be wrapped again under another
        KEK (wrap_in_token_data_key), which only a rewrap needs.

        Raises:
            KeyError: the token contains no AES KEK for the slot.
            UnwrapFailed: the wrapped bytes do not unwrap under that KEK.
        """
        mechanism = self._aes_unwrap_mechanisms.get(slot.wrap_algorithm)
        if mechanism is None:
            raise UnwrapFailed(f"unsupported wrapping algorithm {slot.wrap_algorithm!r} for in-token mode")
        try:
            return token_aead.unwrap_data_key(
                self, lambda session: self._find_kek(session, slot.key_id, slot.key_version), slot, mechanism,
                rewrappable=rewrappable,
            )
        except token_aead.UnwrapRejected:
            raise UnwrapFailed("the token rejected the wrapped key") from None

    def _find_kek(self, session: pkcs11.Session, key_id: str, version: int) -> pkcs11.SecretKey:
        """Find an AES KEK in ``session`` without the per-session cache, for sessions outside the pool."""
        label = kek_label(key_id, version)
        try:
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        except (p11x.NoSuchKey, p11x.MultipleObjectsReturned) as exc:
            raise KeyError(label) from exc
        problem = _kek_weakness(key)
        if problem is not None:
            log.error("refusing key %s in token %s: %s", label, self.describe(), problem)
            raise KeyError(label)
        return key

    # RSA key-encryption keys -------------------------------------------

    def kek_kind(self, key_id: str, version: int) -> str:
        """Return "aes" or "rsa" for the KEK ``key_id`` version ``version``; KeyError when absent."""
        kind = self._kek_kinds.get((key_id, version))
        if kind is not None:
            return kind
        label = kek_label(key_id, version)
        with self.session() as session:
            secret = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
            private = [] if secret else list(
                session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
            )
        if secret:
            kind = "aes"
        elif private:
            kind = "rsa"
        else:
            raise KeyError(label)
        self._kek_kinds[(key_id, version)] = kind
        return kind

    def _new_data_key_rsa(self, key_id: str, version: int) -> tuple[bytes, KeySlot]:
        public_key = self._rsa_public.get((key_id, version))
        with self.session() as session:
            if public_key is None:
                try:
                    public_key = rsa_kek.read_public_key(session, kek_label(key_id, version))
                except rsa_kek.RsaKekError as exc:
                    log.error("cannot seal under %s in token %s: %s", kek_label(key_id, version), self.describe(), exc)
                    raise KeyError(kek_label(key_id, version)) from None
                self._rsa_public[(key_id, version)] = public_key
            with _token_call("C_GenerateRandom"):
                data_key = session.generate_random(DATA_KEY_BITS)
        wrapped = rsa_kek.wrap_on_host(public_key, data_key, self.rsa_wrap_algorithm)
        return data_key, KeySlot(key_id, version, self.rsa_wrap_algorithm, wrapped)

    def _unwrap_data_key_rsa(self, slot: KeySlot) -> bytes:
        """Recover a data key wrapped with RSA-OAEP, inside the token.

        C_UnwrapKey is used when the token's CKM_RSA_PKCS_OAEP has
        CKF_UNWRAP. Some USB tokens offer OAEP for decryption only; C_Decrypt
        then returns the same bytes.
        """
        hash_mechanism, mgf, _ = rsa_kek.OAEP_PARAMETERS[slot.wrap_algorithm]
        parameters = (hash_mechanism, mgf, None)
        label = kek_label(slot.key_id, slot.key_version)
        with self.session() as session:
            try:
                private_key = rsa_kek.find_private_key(session, label)
            except rsa_kek.RsaKekError:
                raise KeyError(label) from None
            if private_key is None:
                raise KeyError(label)
            problem = rsa_kek.private_key_weakness(private_key, _TOKEN_GONE)
            if problem is not None:
                log.error("refusing key %s in token %s: %s", label, self.describe(), problem)
                raise KeyError(label)
            try:
                if self._oaep_unwraps():
                    with _token_call("C_UnwrapKey", Mechanism.RSA_PKCS_OAEP):
                        key = private_key.unwrap_key(
                            ObjectClass.SECRET_KEY, KeyType.AES, slot.wrapped_key, mechanism=Mechanism.RSA_PKCS_OAEP,
                            mechanism_param=parameters, store=False, template=_DATA_KEY_TEMPLATE,
                        )
                    with _session_object(key), _token_call("C_GetAttributeValue"):
                        data_key = bytes(key[Attribute.VALUE])
                else:
                    with _token_call("C_Decrypt", Mechanism.RSA_PKCS_OAEP):
                        data_key = bytes(private_key.decrypt(
                            slot.wrapped_key, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=parameters,
                        ))
            except _TOKEN_GONE:
                raise
            except p11x.PKCS11Error as exc:
                # A wrong key or altered bytes fail the OAEP check: CKR_ENCRYPTED_DATA_INVALID
                # or, on SoftHSM2 2.6, CKR_GENERAL_ERROR.
                raise UnwrapFailed(type(exc).__name__) from exc

        if len(data_key) != DATA_KEY_BITS // 8:
            raise UnwrapFailed(f"unwrapped key has {len(data_key)} bytes")
        return data_key

    def _oaep_unwraps(self) -> bool:
        info = self.token.slot.get_mechanism_info(Mechanism.RSA_PKCS_OAEP)
        return bool(info.flags & MechanismFlag.UNWRAP)

    def check_alive(self) -> bool:
        """Return whether the token still answers on the login session and is still listed.

        SoftHSM2 2.6 keeps drawing random numbers after its token folder is
        moved away, but C_GetSlotList then fails with CKR_GENERAL_ERROR, so
        both calls are made.
        """
        if self._broken:
            metrics.TOKEN_PRESENT.set(0)
            return False
        try:
            check_not_forked()
            with self._gate.shared():
                with _token_call("C_GenerateRandom"):
                    self._anchor.generate_random(64)
                with _token_call("C_GetSlotList"):
                    self._find_token()
        except (p11x.PKCS11Error, TokenUnavailable):
            metrics.TOKEN_PRESENT.set(0)
            return False
        metrics.TOKEN_PRESENT.set(1)
        return True


def _start_date(key: pkcs11.Key) -> date | None:
    """Return a key's CKA_START_DATE, or None when it is empty or unreadable."""
    try:
        with _token_call("C_GetAttributeValue"):
            value = key[Attribute.START_DATE]
    except _TOKEN_GONE:
        raise
    except (p11x.PKCS11Error, ValueError):
        # python-pkcs11 raises ValueError parsing an empty date.
        return None
    return value if isinstance(value, date) else None
