"""In-token mode: the token itself encrypts and decrypts every segment.

Some agencies must have a certified module perform all encryption. For a
level whose policy says ``encryption = "token"``, the data key is generated
inside the token as a sensitive key, wrapped there under the level's AES KEK,
and never leaves it. The token derives the envelope keys from it with
CKM_AES_ECB_ENCRYPT_DATA (docs/format.md, "In-token mode"): the payload key
stays inside and runs CKM_AES_GCM on each segment; the header key and the
commitment come out, because they authenticate the header and do not decrypt
anything. The envelope layout is the same, with aead = 2 in the core.

Each in-token envelope holds a session of its own, opened outside the pool,
for as long as it is being sealed or opened, because python-pkcs11 runs a
key's operations on the session that made the key. Every call still holds
the module's gate shared, and after a token fault the session is never used
again.

SoftHSM2 2.6 reports a failed AES-GCM tag check as CKR_GENERAL_ERROR; the
token is then checked, and if it still answers the failure is an altered
segment (cryptography's InvalidTag), otherwise a token fault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pkcs11
from cryptography.exceptions import InvalidTag
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

from niemphong.daemon.envelope import InTokenKey, KeySlot, SegmentAead, derivation_data
from niemphong.daemon.errors import TokenBusy, TokenUnavailable
from niemphong.daemon.token_faults import check_not_forked

if TYPE_CHECKING:
    from niemphong.daemon.hsm import Pkcs11Token

log = logging.getLogger(__name__)

T = TypeVar("T")

DATA_KEY_BITS = 256
TAG_BITS = 128
SESSION_WAIT_SECONDS = 30.0

# The data key: inside the token only, wrappable under the KEK, able to derive.
_DATA_KEY_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: True,
    Attribute.DERIVE: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
}
# The unwrapped data key on opening may only derive; it is never wrapped again.
_UNWRAPPED_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.DERIVE: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
}
# The unwrapped data key on rewrapping may also be wrapped under the new KEK
# version. Being sensitive, it still leaves the token only wrapped.
_REWRAPPABLE_TEMPLATE = {**_UNWRAPPED_TEMPLATE, Attribute.EXTRACTABLE: True}
_PAYLOAD_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True,
}
_READABLE_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: False,
    Attribute.EXTRACTABLE: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
}

PAYLOAD_INFO = b"payload"
HEADER_INFO = b"header"
COMMITMENT_INFO = b"commitment"


class TokenDataKey(InTokenKey):
    """A data key inside the token, with the session that holds it. Close it when the envelope is done."""

    def __init__(self, token: Pkcs11Token, session: pkcs11.Session, key: pkcs11.SecretKey,
                 release: Callable[[], None] | None = None) -> None:
        self._token = token
        # Gives the session's place back to Pkcs11Token.in_token_sessions.
        self._release = release
        self._session = session
        self._key = key
        self._objects: list[pkcs11.Object] = [key]
        self._closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenDataKey(token={self._token.describe()!r})"

    def call(self, operation: Callable[[], T], function: str, mechanism: Mechanism | None = None) -> T:
        """Run one PKCS#11 call (``function``, its C_ name for the metrics) on this key's session.

        A token fault becomes TokenUnavailable.
        """
        check_not_forked()
        with self._token._gate.shared(), self._lock:
            if self._closed or self._token.broken:
                raise TokenUnavailable(f"token {self._token.describe()} failed earlier; the in-token key is gone")
            try:
                with self._token.timed_call(function, mechanism):
                    return operation()
            except self._token.fault_errors as exc:
                self._token.fault(f"{type(exc).__name__} during an in-token operation")
                raise TokenUnavailable(f"token {self._token.describe()} failed: {type(exc).__name__}") from exc

    def derive(self, artefact_id: bytes) -> tuple[SegmentAead, bytes, bytes]:
        header_key = self._derive_readable(artefact_id, HEADER_INFO)
        commitment = self._derive_readable(artefact_id, COMMITMENT_INFO)
        payload = self.call(lambda: self._key.derive_key(
            KeyType.AES, DATA_KEY_BITS, mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
            mechanism_param=derivation_data(artefact_id, PAYLOAD_INFO), store=False, template=_PAYLOAD_TEMPLATE,
        ), "C_DeriveKey", Mechanism.AES_ECB_ENCRYPT_DATA)
        self._objects.append(payload)
        return TokenAesGcm(self, payload), header_key, commitment

    def _derive_readable(self, artefact_id: bytes, info: bytes) -> bytes:
        def derive() -> bytes:
            derived = self._key.derive_key(
                KeyType.AES, DATA_KEY_BITS, mechanism=Mechanism.AES_ECB_ENCRYPT_DATA,
                mechanism_param=derivation_data(artefact_id, info), store=False, template=_READABLE_TEMPLATE,
            )
            # After a token fault the session is dead: no call on it, not even destroy.
            try:
                value = bytes(derived[Attribute.VALUE])
            except self._token.fault_errors:
                raise
            except BaseException:
                derived.destroy()
                raise
            derived.destroy()
            return value

        return self.call(derive, "C_DeriveKey", Mechanism.AES_ECB_ENCRYPT_DATA)

    def wrap(self, kek: Callable[[pkcs11.Session], pkcs11.SecretKey], mechanism: Mechanism) -> bytes:
        """Wrap this data key under the KEK that ``kek`` finds in this key's session.

        Only a key generated for sealing or unwrapped with ``rewrappable``
        may be wrapped; the token refuses the others.
        """
        return bytes(self.call(lambda: kek(self._session).wrap_key(self._key, mechanism=mechanism),
                               "C_WrapKey", mechanism))

    def close(self) -> None:
        """Destroy the key objects and close the session, unless a token fault already ended them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._release is not None:
                self._release()
            if self._token.broken:
                return
            with self._token._gate.shared():
                try:
                    for obj in reversed(self._objects):
                        self._quietly(obj.destroy)
                    self._quietly(self._session.close)
                except self._token.fault_errors as exc:
                    # A fault during clean-up ends the session: make no further call on it.
                    self._token.fault(f"{type(exc).__name__} while closing an in-token key")

    def _quietly(self, call: Callable[[], object]) -> None:
        """Run one clean-up call, ignoring its errors except those that mean the token is gone."""
        try:
            call()
        except self._token.fault_errors:
            raise
        except p11x.PKCS11Error:
            pass


class TokenAesGcm:
    """AES-256-GCM run by the token on the payload key; the same interface as cryptography's AESGCM."""

    def __init__(self, owner: TokenDataKey, key: pkcs11.SecretKey) -> None:
        self._owner = owner
        self._key = key

    def __repr__(self) -> str:
        return "TokenAesGcm(<in token>)"

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        parameters = pkcs11.GCMParams(nonce, associated_data, TAG_BITS)
        return bytes(self._owner.call(lambda: self._key.encrypt(
            bytes(data), mechanism=Mechanism.AES_GCM, mechanism_param=parameters,
        ), "C_Encrypt", Mechanism.AES_GCM))

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes:
        parameters = pkcs11.GCMParams(nonce, associated_data, TAG_BITS)
        token = self._owner._token

        def decrypt() -> bytes | None:
            try:
                return bytes(self._key.decrypt(bytes(data), mechanism=Mechanism.AES_GCM, mechanism_param=parameters))
            except token.fault_errors:
                raise
            except p11x.PKCS11Error:
                return None

        plaintext = self._owner.call(decrypt, "C_Decrypt", Mechanism.AES_GCM)
        if plaintext is None:
            if not token.check_alive():
                token.fault("the token stopped answering during an in-token decryption")
                raise TokenUnavailable(f"token {token.describe()} failed during an in-token decryption")
            raise InvalidTag()
        return plaintext


def new_data_key(token: Pkcs11Token, kek: Callable[[pkcs11.Session], pkcs11.SecretKey], key_id: str,
                 version: int) -> tuple[TokenDataKey, KeySlot]:
    """Generate a data key inside the token and wrap it under the level's AES KEK there."""
    session, release = _open_session(token)
    holder = TokenDataKey(token, session, None, release)  # type: ignore[arg-type]
    try:
        def generate() -> tuple[pkcs11.SecretKey, bytes]:
            wrapping_key = kek(session)
            key = session.generate_key(KeyType.AES, DATA_KEY_BITS, store=False, template=_DATA_KEY_TEMPLATE)
            holder._objects = [key]
            return key, wrapping_key.wrap_key(key, mechanism=token.wrap_mechanism)

        key, wrapped = holder.call(generate, "C_WrapKey", token.wrap_mechanism)
        holder._key = key
    except BaseException:
        holder.close()
        raise
    return holder, KeySlot(key_id, version, token.wrap_algorithm, wrapped)


class UnwrapRejected(Exception):
    """The token did not unwrap the slot: wrong key or altered bytes."""


def unwrap_data_key(token: Pkcs11Token, kek: Callable[[pkcs11.Session], pkcs11.SecretKey], slot: KeySlot,
                    mechanism: Mechanism, *, rewrappable: bool = False) -> TokenDataKey:
    """Unwrap a data key into the token as a sensitive key that may derive, and be wrapped again if ``rewrappable``."""
    template = _REWRAPPABLE_TEMPLATE if rewrappable else _UNWRAPPED_TEMPLATE
    session, release = _open_session(token)
    holder = TokenDataKey(token, session, None, release)  # type: ignore[arg-type]
    try:
        def unwrap() -> pkcs11.SecretKey | None:
            wrapping_key = kek(session)
            try:
                return wrapping_key.unwrap_key(
                    ObjectClass.SECRET_KEY, KeyType.AES, slot.wrapped_key, mechanism=mechanism, store=False,
                    template=template,
                )
            except token.fault_errors:
                raise
            except p11x.PKCS11Error:
                return None

        key = holder.call(unwrap, "C_UnwrapKey", mechanism)
        if key is None:
            raise UnwrapRejected()
        holder._key = key
        holder._objects = [key]
    except BaseException:
        holder.close()
        raise
    return holder


def _open_session(token: Pkcs11Token) -> tuple[pkcs11.Session, Callable[[], None]]:
    """Open a session outside the pool for one in-token transfer; return it and the call that frees its place."""
    check_not_forked()
    if not token.in_token_sessions.acquire(timeout=SESSION_WAIT_SECONDS):
        raise TokenBusy(f"no in-token session free after {SESSION_WAIT_SECONDS:.0f} s")
    try:
        with token._gate.shared():
            if token.broken:
                raise TokenUnavailable(f"token {token.describe()} failed earlier; waiting for it to be opened again")
            try:
                with token.timed_call("C_OpenSession"):
                    session = token.token.open(rw=True)
            except token.fault_errors as exc:
                token.fault(f"{type(exc).__name__} opening an in-token session")
                raise TokenUnavailable(f"token {token.describe()} failed: {type(exc).__name__}") from exc
            except p11x.SessionCount as exc:
                raise TokenBusy(f"token {token.describe()} has no free session for in-token mode") from exc
    except BaseException:
        token.in_token_sessions.release()
        raise
    return session, token.in_token_sessions.release
