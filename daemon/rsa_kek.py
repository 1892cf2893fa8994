"""RSA key-encryption keys, for tokens that keep RSA keys only.

An RSA level key is a key pair in the token under the usual label
``<key_id>/v<version>``: the private key is sensitive and never extractable
and may only unwrap and decrypt; the public key may only wrap and encrypt.
A data key is drawn from the token's random generator and wrapped with
RSA-OAEP on the host, with the public key read from the token, so sealing
needs the token only for random bytes. Opening unwraps inside the token.

RSA-OAEP-SHA1 uses SHA-1 for the label hash and MGF1, because SoftHSM2 2.6
accepts no other parameters; RSA-OAEP-SHA256 uses SHA-256 for both. OAEP's
security does not rest on SHA-1's collision resistance.

Anyone with the public key can wrap a data key, so an RSA slot proves
nothing about who sealed the envelope (docs/format.md says so too).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

# Slot algorithm name -> (hash mechanism, MGF, host hash) of the OAEP parameters.
OAEP_PARAMETERS: Mapping[str, tuple[Mechanism, MGF, type[hashes.HashAlgorithm]]] = {
    "RSA-OAEP-SHA1": (Mechanism.SHA_1, MGF.SHA1, hashes.SHA1),
    "RSA-OAEP-SHA256": (Mechanism.SHA256, MGF.SHA256, hashes.SHA256),
}
MIN_RSA_BITS = 2048

PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.UNWRAP: True,
    Attribute.DECRYPT: True,
    Attribute.SIGN: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}
PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.WRAP: True,
    Attribute.ENCRYPT: True,
    Attribute.VERIFY: False,
    Attribute.MODIFIABLE: False,
}

# Attribute values every RSA private KEK must have; the token sets
# ALWAYS_SENSITIVE and NEVER_EXTRACTABLE itself.
_PRIVATE_REQUIRED = {
    Attribute.KEY_TYPE: KeyType.RSA,
    Attribute.SENSITIVE: True,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.NEVER_EXTRACTABLE: True,
}


class RsaKekError(Exception):
    """An RSA key pair is missing, unfit to be a KEK, or too short."""


def private_key_weakness(key: pkcs11.PrivateKey, fault_errors: tuple[type[Exception], ...]) -> str | None:
    """Return why ``key`` is unfit to be a KEK, or None when it is fit; ``fault_errors`` propagate."""
    for attribute, expected in _PRIVATE_REQUIRED.items():
        try:
            actual = key[attribute]
        except fault_errors:
            raise
        except p11x.PKCS11Error:
            return f"attribute {attribute.name} cannot be read"
        if actual != expected:
            return f"attribute {attribute.name} is {actual!r}, expected {expected!r}"
    return None


def create_key_pair(session: pkcs11.Session, label: str, bits: int, created_on: date) -> None:
    """Generate an RSA key pair in the token under ``label``, for use as a KEK, dated ``created_on``."""
    if bits < MIN_RSA_BITS:
        raise ValueError(f"an RSA KEK needs at least {MIN_RSA_BITS} bits, got {bits}")
    session.generate_keypair(
        KeyType.RSA, bits, label=label, id=label.encode("ascii"), store=True,
        public_template=PUBLIC_TEMPLATE, private_template={**PRIVATE_TEMPLATE, Attribute.START_DATE: created_on},
    )


def find_private_key(session: pkcs11.Session, label: str) -> pkcs11.PrivateKey | None:
    """Return the private key with ``label``, or None when the token has none."""
    try:
        return session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.RSA, label=label)
    except p11x.NoSuchKey:
        return None
    except p11x.MultipleObjectsReturned as exc:
        raise RsaKekError(f"the token contains several private keys labelled {label}") from exc


def read_public_key(session: pkcs11.Session, label: str) -> rsa.RSAPublicKey:
    """Read the public half of the key pair ``label`` from the token."""
    try:
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.RSA, label=label)
    except (p11x.NoSuchKey, p11x.MultipleObjectsReturned) as exc:
        raise RsaKekError(f"no single RSA public key labelled {label} in the token") from exc
    modulus = int.from_bytes(public[Attribute.MODULUS], "big")
    exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if key.key_size < MIN_RSA_BITS:
        raise RsaKekError(f"RSA key {label} has {key.key_size} bits; at least {MIN_RSA_BITS} are needed")
    return key


def wrap_on_host(public_key: rsa.RSAPublicKey, data_key: bytes, algorithm: str) -> bytes:
    """Wrap ``data_key`` with RSA-OAEP under ``public_key``."""
    _, _, host_hash = OAEP_PARAMETERS[algorithm]
    return public_key.encrypt(data_key, padding.OAEP(mgf=padding.MGF1(host_hash()), algorithm=host_hash(), label=None))
