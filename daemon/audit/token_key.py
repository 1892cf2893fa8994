"""The audit log's checkpoint key and anchors, both kept in the token.

The checkpoint key is a 256-bit generic secret that may only compute and
verify HMAC-SHA-256 (CKM_SHA256_HMAC). It is sensitive and non-extractable, so
its value never leaves the token and nobody without the token and its PIN can
make a forged checkpoint verify.

An anchor is a small data object (CKO_DATA) naming the newest checkpoint of
one log: its sequence number and hash. With it, a log cut off before its
newest checkpoints is recognised even after a restart. SoftHSM2 2.6 refuses
to change CKA_VALUE of a data object (CKR_ATTRIBUTE_READ_ONLY), so each
update creates a new object and then destroys the older ones. A crash in
between leaves two, and the one with the higher sequence number counts.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

from niemphong.daemon.errors import TokenUnavailable
from niemphong.daemon.hsm import Pkcs11Token

log = logging.getLogger(__name__)

AUDIT_KEY_LABEL = "niemphong-audit-hmac"
AUDIT_KEY_BITS = 256
ANCHOR_APPLICATION = "niemphong-audit-anchor"

_AUDIT_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}


class CheckpointKeyError(Exception):
    """The token has no usable checkpoint key, or refused to compute a MAC with it."""


@dataclass(frozen=True)
class Anchor:
    """The newest checkpoint of one log, as the token remembers it."""

    log_id: str
    host: str
    path: str
    seq: int
    hash: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, value: bytes) -> Anchor | None:
        try:
            fields = json.loads(value.decode("utf-8"))
            return cls(**fields)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
            return None


class TokenCheckpointKey:
    """HMAC-SHA-256 with the checkpoint key, and anchor objects, through the daemon's token sessions.

    Raises TokenUnavailable when the token is gone and CheckpointKeyError when
    the key is missing or the token refuses the operation.
    """

    def __init__(self, token: Pkcs11Token, label: str = AUDIT_KEY_LABEL) -> None:
        self.token = token
        self.label = label
        self._keys: dict[int, pkcs11.SecretKey] = {}
        self._keys_lock = threading.Lock()

    def _key(self, session: pkcs11.Session) -> pkcs11.SecretKey:
        with self._keys_lock:
            key = self._keys.get(id(session))
        if key is None:
            try:
                key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=self.label)
            except (p11x.NoSuchKey, p11x.MultipleObjectsReturned) as exc:
                raise CheckpointKeyError(
                    f"token {self.token.describe()} has no single checkpoint key {self.label!r}; "
                    "run niemphongd provision"
                ) from exc
            with self._keys_lock:
                self._keys[id(session)] = key
        return key

    def check(self) -> None:
        """Raise unless the key exists and computes a MAC."""
        self.sign(b"niemphong-audit-key-check")

    def sign(self, data: bytes) -> bytes:
        """Return the HMAC-SHA-256 of ``data`` computed inside the token."""
        # Token.session() turns the errors that mean "token gone" into
        # TokenUnavailable; any other PKCS#11 error is a refusal by the token.
        try:
            with self.token.session() as session:
                key = self._key(session)
                with self.token.timed_call("C_Sign", Mechanism.SHA256_HMAC):
                    return bytes(key.sign(data, mechanism=Mechanism.SHA256_HMAC))
        except p11x.PKCS11Error as exc:
            raise CheckpointKeyError(f"HMAC with {self.label!r} failed: {type(exc).__name__}") from exc

    def verify(self, data: bytes, mac: bytes) -> bool:
        """Return whether ``mac`` is the HMAC-SHA-256 of ``data``, checked inside the token."""
        try:
            with self.token.session() as session:
                key = self._key(session)
                try:
                    with self.token.timed_call("C_Verify", Mechanism.SHA256_HMAC):
                        return bool(key.verify(data, mac, mechanism=Mechanism.SHA256_HMAC))
                except (p11x.SignatureInvalid, p11x.SignatureLenRange):
                    return False
        except p11x.PKCS11Error as exc:
            raise CheckpointKeyError(f"HMAC check with {self.label!r} failed: {type(exc).__name__}") from exc

    # Anchors --------------------------------------------------------------

    def _anchor_objects(self, session: pkcs11.Session) -> list[tuple[pkcs11.Object, Anchor]]:
        found = []
        template = {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: ANCHOR_APPLICATION}
        for item in session.get_objects(template):
            anchor = Anchor.decode(bytes(item[Attribute.VALUE]))
            if anchor is None:
                log.warning("ignoring an unreadable audit anchor object in token %s", self.token.describe())
                continue
            found.append((item, anchor))
        return found

    def anchors(self) -> list[Anchor]:
        """Return the newest anchor of every log the token knows."""
        with self.token.session() as session:
            newest: dict[str, Anchor] = {}
            for _, anchor in self._anchor_objects(session):
                known = newest.get(anchor.log_id)
                if known is None or anchor.seq > known.seq:
                    newest[anchor.log_id] = anchor
        return list(newest.values())

    def load_anchor(self, log_id: str) -> Anchor | None:
        """Return the newest anchor of log ``log_id``, or None."""
        return next((anchor for anchor in self.anchors() if anchor.log_id == log_id), None)

    def save_anchor(self, anchor: Anchor) -> None:
        """Store ``anchor`` as the newest of its log and destroy the older ones."""
        with self.token.session() as session:
            older = [item for item, known in self._anchor_objects(session) if known.log_id == anchor.log_id]
            session.create_object({
                Attribute.CLASS: ObjectClass.DATA,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.MODIFIABLE: False,
                Attribute.LABEL: f"niemphong-audit-anchor:{anchor.log_id}",
                Attribute.APPLICATION: ANCHOR_APPLICATION,
                Attribute.VALUE: anchor.encode(),
            })
            for item in older:
                item.destroy()


def create_audit_key(token: Pkcs11Token, label: str = AUDIT_KEY_LABEL) -> bool:
    """Create the checkpoint key unless the token has one; return whether it was created.

    Raises TokenUnavailable when the token offers no HMAC-SHA-256 with generic secret keys.
    """
    mechanisms = set(token.token.slot.get_mechanisms())
    missing = {Mechanism.GENERIC_SECRET_KEY_GEN, Mechanism.SHA256_HMAC} - mechanisms
    if missing:
        names = ", ".join(sorted(mechanism.name for mechanism in missing))
        raise TokenUnavailable(f"token {token.describe()} lacks {names}, needed for the audit checkpoint key")

    with token.session() as session:
        existing = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))
        if existing:
            return False
        session.generate_key(
            KeyType.GENERIC_SECRET, AUDIT_KEY_BITS, label=label, id=label.encode("ascii"),
            store=True, template=_AUDIT_KEY_TEMPLATE,
        )
    log.info("created audit checkpoint key %s in token %s", label, token.describe())
    return True
