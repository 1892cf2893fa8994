"""Recovery keys: the public halves that every envelope of a level is also wrapped to.

A level may name a recovery key, the public half of an RSA key pair whose
private half never leaves a second token kept in a safe. Sealing and
rewrapping then add a key slot holding the data key encrypted to that public
key with RSA-OAEP. The encryption happens on the host with ``cryptography``,
because only the public key is needed; decryption happens inside the
recovery token (``recovery.py``).

RSA-OAEP here uses SHA-1 for both the label hash and MGF1 by default,
because SoftHSM2 2.6 unwraps with CKM_RSA_PKCS_OAEP only under SHA-1 and
MGF1-SHA1. OAEP uses the hash to digest the (empty) label and inside MGF1,
where collision resistance plays no part, so SHA-1 is not the weakness here
that it is in signatures. Tokens that unwrap with SHA-256 can be configured
with "RSA-OAEP-SHA256".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from niemphong.daemon.envelope import KeySlot

MIN_RSA_BITS = 3072

# Slot algorithm name -> hash used for the OAEP label and for MGF1.
OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "RSA-OAEP-SHA1": hashes.SHA1,
    "RSA-OAEP-SHA256": hashes.SHA256,
}
DEFAULT_RECOVERY_WRAP = "RSA-OAEP-SHA1"


def default_recovery_key_id(level_config_name: str) -> str:
    """Return the key id a level's recovery key has unless the configuration names another."""
    return f"niemphong-recovery-{level_config_name}"


def oaep_padding(wrap_algorithm: str) -> padding.OAEP:
    """Return the OAEP padding for a slot algorithm name. Raises KeyError for an unknown name."""
    algorithm = OAEP_HASHES[wrap_algorithm]
    return padding.OAEP(mgf=padding.MGF1(algorithm()), algorithm=algorithm(), label=None)


def public_key_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """Return the SHA-256 of the DER SubjectPublicKeyInfo as 64 lowercase hex digits."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class RecoveryPublicKey:
    """The public half of one level's recovery key, with the name its private half has in the recovery token.

    Attributes:
        key_id: Key id written into envelope slots; the private key's label
            in the recovery token is ``<key_id>/v<version>``.
        version: Version of the recovery key pair, from 1.
        wrap_algorithm: A key of OAEP_HASHES.
        public_key: The RSA public key, at least MIN_RSA_BITS long.
        path: The PEM file it was read from, for messages.
    """

    key_id: str
    version: int
    wrap_algorithm: str
    public_key: rsa.RSAPublicKey = field(repr=False)
    path: Path

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_key)

    @property
    def key_bits(self) -> int:
        return self.public_key.key_size

    def wrap(self, data_key: bytes) -> KeySlot:
        """Encrypt ``data_key`` to this public key and return the envelope slot holding it."""
        wrapped = self.public_key.encrypt(data_key, oaep_padding(self.wrap_algorithm))
        return KeySlot(self.key_id, self.version, self.wrap_algorithm, wrapped)

    def matches(self, slot: KeySlot) -> bool:
        """Return whether ``slot`` names this key, version and algorithm."""
        return (slot.key_id, slot.key_version, slot.wrap_algorithm) == (self.key_id, self.version, self.wrap_algorithm)


def load_public_key(path: Path) -> rsa.RSAPublicKey:
    """Read an RSA public key of at least MIN_RSA_BITS from a PEM file.

    Raises:
        OSError: The file cannot be read.
        ValueError: The file holds no PEM public key, the key is not RSA, or
            it is too short.
    """
    data = path.read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"a recovery key must be RSA, not {type(key).__name__}")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required")
    return key


def public_key_pem(public_key: rsa.RSAPublicKey) -> bytes:
    """Encode a public key as a PEM SubjectPublicKeyInfo."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
