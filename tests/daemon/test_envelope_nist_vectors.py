"""The envelope's segment layer against NIST's published AES-GCM vectors.

The vectors are the CAVS 14.0 files gcmEncryptExtIV256.rsp and
gcmDecrypt256.rsp from NIST's GCM validation suite, as shipped in the
``cryptography-vectors`` package. The segment layer uses AES-256 with a
96-bit nonce and a 128-bit tag, so the vectors with those sizes apply.

Each vector runs through ``Sealer._seal_segment`` and ``Opener._open_segment``
themselves: the data key and associated data of a real sealer and opener are
replaced by the vector's, and the nonce function by one that returns the
vector's IV. Vectors whose IV already has the segment nonce layout (7-byte
prefix, 32-bit index, last-segment flag 0 or 1) also run without replacing
the nonce function. The format's own known-answer vectors, in both
directions, are in test_envelope.py.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from niemphong.daemon import envelope

KEY_BITS, IV_BITS, TAG_BITS = 256, 96, 128


@dataclass(frozen=True)
class GcmVector:
    source: str
    count: int
    key: bytes
    iv: bytes
    plaintext: bytes | None  # None for a vector that must fail to decrypt
    aad: bytes
    ciphertext: bytes
    tag: bytes

    @property
    def name(self) -> str:
        return f"{self.source}#{self.count}"


def _vector_folder() -> Path:
    spec = importlib.util.find_spec("cryptography_vectors")
    if spec is None or spec.origin is None:
        pytest.fail("the cryptography-vectors package is missing; run scripts/bootstrap")
    return Path(spec.origin).parent / "ciphers" / "AES" / "GCM"


def read_rsp(path: Path) -> Iterator[GcmVector]:
    """Yield the AES-256, 96-bit IV, 128-bit tag vectors of one CAVS .rsp file."""
    sizes: dict[str, int] = {}
    entry: dict[str, str] = {}

    def finish() -> Iterator[GcmVector]:
        if "Count" in entry and (sizes.get("Keylen"), sizes.get("IVlen"), sizes.get("Taglen")) == (
            KEY_BITS, IV_BITS, TAG_BITS,
        ):
            yield GcmVector(
                source=path.name,
                count=int(entry["Count"]),
                key=bytes.fromhex(entry["Key"]),
                iv=bytes.fromhex(entry["IV"]),
                plaintext=None if "FAIL" in entry else bytes.fromhex(entry.get("PT", "")),
                aad=bytes.fromhex(entry.get("AAD", "")),
                ciphertext=bytes.fromhex(entry.get("CT", "")),
                tag=bytes.fromhex(entry["Tag"]),
            )
        entry.clear()

    for raw in path.read_text(encoding="ascii").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            yield from finish()
            name, _, value = line.strip("[]").partition("=")
            sizes[name.strip()] = int(value)
            continue
        if line == "FAIL":
            entry["FAIL"] = ""
            continue
        name, _, value = line.partition("=")
        if name.strip() == "Count":
            yield from finish()
        entry[name.strip()] = value.strip()
    yield from finish()


def load_vectors() -> list[GcmVector]:
    folder = _vector_folder()
    return [
        vector
        for name in ("gcmEncryptExtIV256.rsp", "gcmDecrypt256.rsp")
        for vector in read_rsp(folder / name)
    ]


VECTORS = load_vectors()
VALID = [vector for vector in VECTORS if vector.plaintext is not None]
INVALID = [vector for vector in VECTORS if vector.plaintext is None]
# IVs whose last byte is a valid last-segment flag fit the nonce layout as they are.
NONCE_SHAPED = [vector for vector in VALID if vector.iv[-1] in (0, 1)]


def _real_sealer() -> envelope.Sealer:
    return envelope.Sealer(
        bytes(range(32)), artefact_id=bytes(16), level=envelope.LEVEL_MAT, metadata={"doc_number": "1/NIST"},
        slots=[envelope.KeySlot("niemphong-mat", 1, "AES-KWP", bytes(40))], sealed_at=0,
    )


def _real_opener() -> envelope.Opener:
    sealer = _real_sealer()
    header = envelope.parse_header(sealer.header_bytes)
    return envelope.Opener(header, bytes(range(32)))


def _sealer_for(vector: GcmVector) -> envelope.Sealer:
    sealer = _real_sealer()
    sealer._aead = AESGCM(vector.key)
    sealer._aad = vector.aad
    return sealer


def _opener_for(vector: GcmVector) -> envelope.Opener:
    opener = _real_opener()
    opener._aead = AESGCM(vector.key)
    opener._aad = vector.aad
    return opener


def test_vector_files_have_enough_cases() -> None:
    # cryptography-vectors 50.0.2 has 559 passing and 191 failing vectors of
    # these sizes; a much smaller count means the files were not parsed.
    assert len(VALID) >= 500
    assert len(INVALID) >= 150
    assert len(NONCE_SHAPED) >= 1


def test_segment_seal_matches_nist_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    mismatched = []
    for vector in VALID:
        monkeypatch.setattr(envelope, "_segment_nonce", lambda prefix, index, last, iv=vector.iv: iv)
        assert vector.plaintext is not None
        sealed = _sealer_for(vector)._seal_segment(vector.plaintext, last=False)
        if sealed != vector.ciphertext + vector.tag:
            mismatched.append(vector.name)

    assert mismatched == []


def test_segment_open_matches_nist_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    mismatched = []
    for vector in VALID:
        monkeypatch.setattr(envelope, "_segment_nonce", lambda prefix, index, last, iv=vector.iv: iv)
        opened = _opener_for(vector)._open_segment(vector.ciphertext + vector.tag, last=False)
        if opened != vector.plaintext:
            mismatched.append(vector.name)

    assert mismatched == []


def test_segment_open_rejects_nist_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    accepted = []
    for vector in INVALID:
        monkeypatch.setattr(envelope, "_segment_nonce", lambda prefix, index, last, iv=vector.iv: iv)
        opener = _opener_for(vector)
        try:
            opener._open_segment(vector.ciphertext + vector.tag, last=False)
        except envelope.IntegrityError:
            continue
        accepted.append(vector.name)

    assert accepted == []


@pytest.mark.parametrize("vector", NONCE_SHAPED, ids=lambda vector: vector.name)
def test_segment_nonce_layout_nist_vector(vector: GcmVector) -> None:
    # No replaced nonce function: the IV is split into the segment layer's
    # prefix, index and flag, and the real nonce function rebuilds it.
    prefix, index, flag = vector.iv[:7], int.from_bytes(vector.iv[7:11], "big"), vector.iv[11] == 1
    sealer = _sealer_for(vector)
    sealer._nonce_prefix = prefix
    sealer._index = index
    opener = _opener_for(vector)
    opener._index = index
    object.__setattr__(opener.header, "nonce_prefix", prefix)
    assert vector.plaintext is not None

    sealed = sealer._seal_segment(vector.plaintext, last=flag)
    opened = opener._open_segment(sealed, last=flag)

    assert sealed == vector.ciphertext + vector.tag
    assert opened == vector.plaintext
