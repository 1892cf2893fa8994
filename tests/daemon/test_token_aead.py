"""In-token key derivation and AES-GCM follow docs/format.md, checked against host code."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11x

from conftest import DevEnvironment
from niemphong.daemon import envelope
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.hsm import Pkcs11Token
from niemphong.daemon.token_aead import TokenDataKey

DEK = bytes(range(32))
ARTEFACT_ID = bytes(range(100, 116))


@pytest.fixture(scope="module")
def token(dev_env: DevEnvironment) -> Iterator[Pkcs11Token]:
    config = load_config(dev_env.root / "niemphongd.toml")
    opened = Pkcs11Token(config.token, read_pin(config.token))
    yield opened
    opened.close()


@pytest.fixture
def known_key(token: Pkcs11Token) -> Iterator[TokenDataKey]:
    # A data key of known value, so that the host can recompute what the
    # token derives; real in-token keys are generated sensitive.
    session = token.token.open(rw=True)
    key = session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: DEK,
        Attribute.TOKEN: False, Attribute.DERIVE: True, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
    })
    holder = TokenDataKey(token, session, key)
    yield holder
    holder.close()


def host_key(info: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(DEK), modes.ECB()).encryptor()
    return encryptor.update(envelope.derivation_data(ARTEFACT_ID, info)) + encryptor.finalize()


def test_token_derivation_matches_spec(known_key: TokenDataKey) -> None:
    _, header_key, commitment = known_key.derive(ARTEFACT_ID)

    assert header_key == host_key(b"header")
    assert commitment == host_key(b"commitment")
    assert header_key != commitment


def test_token_gcm_matches_host_gcm(known_key: TokenDataKey) -> None:
    aead, _, _ = known_key.derive(ARTEFACT_ID)
    host = AESGCM(host_key(b"payload"))
    nonce, aad, plaintext = os.urandom(12), b"aad", os.urandom(70_000)

    sealed = aead.encrypt(nonce, plaintext, aad)

    assert host.decrypt(nonce, sealed, aad) == plaintext
    assert aead.decrypt(nonce, host.encrypt(nonce, plaintext, aad), aad) == plaintext


def test_token_gcm_altered_raises_invalid_tag(known_key: TokenDataKey) -> None:
    aead, _, _ = known_key.derive(ARTEFACT_ID)
    nonce = os.urandom(12)
    sealed = bytearray(aead.encrypt(nonce, b"x" * 1000, b"aad"))
    sealed[-1] ^= 1

    with pytest.raises(InvalidTag):
        aead.decrypt(nonce, bytes(sealed), b"aad")


def test_in_token_sealer_opener_round_trip(token: Pkcs11Token) -> None:
    data_key, slot = token.new_in_token_data_key("niemphong-mat", 1)
    try:
        sealer = envelope.Sealer(data_key, artefact_id=ARTEFACT_ID, level=envelope.LEVEL_MAT,
                                 metadata={"doc_number": "1/T"}, slots=[slot], sealed_at=0, segment_size=4096)
        sealed = sealer.header_bytes + sealer.update(b"z" * 10_000) + sealer.finalize()
    finally:
        data_key.close()
    header = envelope.parse_header(sealed)
    opening_key = token.unwrap_in_token_data_key(header.slots[0])
    try:
        opener = envelope.Opener(header, opening_key)
        plaintext = opener.update(sealed[header.header_len:]) + opener.finalize()
    finally:
        opening_key.close()

    assert header.aead == envelope.AEAD_TOKEN_AES256GCM
    assert plaintext == b"z" * 10_000


def test_in_token_data_key_never_readable(token: Pkcs11Token) -> None:
    data_key, _ = token.new_in_token_data_key("niemphong-mat", 1)
    try:
        inner = data_key._key

        assert inner[Attribute.SENSITIVE] is True
        with pytest.raises(p11x.AttributeSensitive):
            inner[Attribute.VALUE]
    finally:
        data_key.close()


def test_host_key_cannot_open_in_token_envelope(token: Pkcs11Token) -> None:
    data_key, slot = token.new_in_token_data_key("niemphong-mat", 1)
    try:
        sealer = envelope.Sealer(data_key, artefact_id=ARTEFACT_ID, level=envelope.LEVEL_MAT,
                                 metadata={"doc_number": "1/T"}, slots=[slot], sealed_at=0)
        sealed = sealer.header_bytes + sealer.finalize()
    finally:
        data_key.close()

    with pytest.raises(envelope.IntegrityError):
        envelope.Opener(envelope.parse_header(sealed), os.urandom(32))
