"""RSA key-encryption keys on SoftHSM2: wrap on the host, unwrap in the token."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Attribute, KeyType, ObjectClass

from conftest import BIN, REPO, DaemonProcess, DevEnvironment, dev_init, grant_access, open_bytes, seal_bytes
from niemphong.daemon import rsa_kek
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.hsm import Pkcs11Token, UnwrapFailed
from niemphong.v1 import niemphong_pb2 as pb

KEY_ID = "niemphong-rsa-test"


@pytest.fixture(scope="module")
def token(dev_env: DevEnvironment) -> Iterator[Pkcs11Token]:
    config = load_config(dev_env.root / "niemphongd.toml")
    opened = Pkcs11Token(config.token, read_pin(config.token))
    if opened.newest_version(KEY_ID) is None:
        opened.create_kek(KEY_ID, 1, kind="rsa")
    yield opened
    opened.close()


def test_rsa_kek_listed_as_rsa(token: Pkcs11Token) -> None:
    keys = {info.label: info for info in token.list_keks()}

    assert keys[f"{KEY_ID}/v1"].kind == "rsa"
    assert keys["niemphong-mat/v1"].kind == "aes"


def test_rsa_data_key_round_trip(token: Pkcs11Token) -> None:
    data_key, slot = token.new_data_key(KEY_ID, 1)

    assert slot.wrap_algorithm == "RSA-OAEP-SHA1"
    assert len(slot.wrapped_key) == 3072 // 8
    assert data_key not in slot.wrapped_key
    assert token.unwrap_data_key(slot) == data_key


def test_rsa_wrap_is_standard_oaep(token: Pkcs11Token) -> None:
    # Any RSA-OAEP implementation with SHA-1 and MGF1-SHA1 produces slots
    # the token opens, for example an offline tool holding the public key.
    with token.session() as session:
        public_key = rsa_kek.read_public_key(session, f"{KEY_ID}/v1")
    data_key = bytes(range(32))
    wrapped = public_key.encrypt(data_key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    _, slot = token.new_data_key(KEY_ID, 1)

    assert token.unwrap_data_key(dataclasses.replace(slot, wrapped_key=wrapped)) == data_key


def test_rsa_unwrap_altered_fails(token: Pkcs11Token) -> None:
    _, slot = token.new_data_key(KEY_ID, 1)
    altered = bytes([slot.wrapped_key[0] ^ 1]) + slot.wrapped_key[1:]

    with pytest.raises(UnwrapFailed):
        token.unwrap_data_key(dataclasses.replace(slot, wrapped_key=altered))


def test_rsa_slot_under_aes_key_id_fails(token: Pkcs11Token) -> None:
    _, slot = token.new_data_key(KEY_ID, 1)

    with pytest.raises(KeyError):
        token.unwrap_data_key(dataclasses.replace(slot, key_id="niemphong-mat"))


def test_rsa_oaep_sha256_rejected_by_softhsm(token: Pkcs11Token) -> None:
    # SoftHSM2 2.6 accepts OAEP with SHA-1 only; the slot fails like any
    # slot that does not unwrap.
    data_key, slot = token.new_data_key(KEY_ID, 1)
    with token.session() as session:
        public_key = rsa_kek.read_public_key(session, f"{KEY_ID}/v1")
    wrapped = rsa_kek.wrap_on_host(public_key, data_key, "RSA-OAEP-SHA256")

    with pytest.raises(UnwrapFailed):
        token.unwrap_data_key(dataclasses.replace(slot, wrap_algorithm="RSA-OAEP-SHA256", wrapped_key=wrapped))


def test_rsa_private_key_never_extractable(token: Pkcs11Token) -> None:
    with token.session() as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=f"{KEY_ID}/v1")

        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.SIGN] is False


def test_planted_extractable_rsa_key_ignored(token: Pkcs11Token) -> None:
    label = f"{KEY_ID}/v50"
    with token.session() as session:
        public, private = session.generate_keypair(KeyType.RSA, 2048, label=label, store=True, private_template={
            Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.UNWRAP: True, Attribute.DECRYPT: True,
        })
    try:
        assert label not in {info.label for info in token.list_keks()}
        assert token.newest_version(KEY_ID) == 1
        data_key, slot = token.new_data_key(KEY_ID, 50)
        with pytest.raises(KeyError):
            token.unwrap_data_key(slot)
    finally:
        with token.session():
            public.destroy()
            private.destroy()


# Through the daemon ------------------------------------------------------------

_ADD_RSA_VERSION = """
import sys
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.hsm import Pkcs11Token

import time
from niemphong.daemon.levels import Level
from niemphong.daemon.store import KeyVersionRecord, open_store

config = load_config(sys.argv[1])
token = Pkcs11Token(config.token, read_pin(config.token))
info = token.create_kek("niemphong-mat", 2, kind="rsa")
print(info.label, info.kind)
token.close()

# Enter it in the key registry as a custodians' rotation would: a version
# found in the token outside the registry never seals.
now = int(time.time())
store = open_store(config)
with store.transaction() as tx:
    tx.set_key_state("niemphong-mat", 1, "retired_sealing", now)
    tx.insert_key_version(KeyVersionRecord("niemphong-mat", 2, int(Level.MAT), "active", now, now))
store.close()
"""


def test_seal_open_with_rsa_level_key(tmp_path: Path) -> None:
    env = dev_init(tmp_path / "env")
    first = DaemonProcess(env, tmp_path / "first.log")
    first.start()
    try:
        aes_envelope, aes_summary = seal_bytes(env, b"sealed under AES v1" * 1000, level=pb.LEVEL_MAT)
    finally:
        assert first.stop() == 0, first.log()
    created = subprocess.run(
        [sys.executable, "-c", _ADD_RSA_VERSION, str(env.root / "niemphongd.toml")],
        capture_output=True, text=True, timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.split() == ["niemphong-mat/v2", "rsa"]

    second = DaemonProcess(env, tmp_path / "second.log")
    second.start()
    try:
        plaintext = b"sealed under RSA v2" * 5000
        rsa_envelope, rsa_summary = seal_bytes(env, plaintext, level=pb.LEVEL_MAT)
        grant_access(env, rsa_summary.artefact_id, ["approver-1"])
        grant_access(env, aes_summary.artefact_id, ["approver-1"])

        assert rsa_summary.key.version == 2
        assert rsa_summary.key.wrap_algorithm == "RSA-OAEP-SHA1"
        assert aes_summary.key.wrap_algorithm == "AES-KWP"
        assert open_bytes(env, rsa_envelope) == plaintext
        assert open_bytes(env, aes_envelope) == b"sealed under AES v1" * 1000
    finally:
        assert second.stop() == 0, second.log()


# Provisioning with an RSA profile ------------------------------------------------

def _rsa_profile(tmp_path: Path, name: str, extra: str = "") -> Path:
    """Write a copy of the SoftHSM2 profile that uses RSA level keys."""
    from niemphong.daemon.hsm_profiles import load_profile

    source = Path(load_profile("softhsm2").path.replace("hsm_profiles/", str(REPO / "hsm_profiles") + "/"))
    text = source.read_text().replace('name = "softhsm2"', f'name = "{name}"').replace('kek = "aes"', f'kek = "rsa"\n{extra}')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _use_profile(env: DevEnvironment, profile: Path, name: str) -> None:
    config = env.root / "niemphongd.toml"
    config.write_text(config.read_text().replace('profile = "softhsm2"', f'profile = "{profile}"'))
    policy = env.root / "policy.toml"
    text = policy.read_text().replace('"softhsm2"', f'"{name}"')
    text = text.replace('key_id = "niemphong-toi-mat"', 'key_id = "rsa-toi-mat"').replace('key_id = "niemphong-mat"', 'key_id = "rsa-mat"')
    policy.write_text(text)


def test_provision_rsa_profile_creates_key_pairs(tmp_path: Path) -> None:
    env = dev_init(tmp_path / "env")
    _use_profile(env, _rsa_profile(tmp_path, "softhsm2-rsa"), "softhsm2-rsa")

    provisioned = subprocess.run([str(BIN / "niemphongd"), "provision", "--config", str(env.root / "niemphongd.toml")],
                                 capture_output=True, text=True, timeout=300)
    probed = subprocess.run([str(BIN / "niemphongd"), "probe", "--config", str(env.root / "niemphongd.toml"), "--json"],
                            capture_output=True, text=True, timeout=300)

    assert provisioned.returncode == 0, provisioned.stderr
    assert "created level key rsa-mat/v1" in provisioned.stderr
    assert probed.returncode == 0, probed.stdout + probed.stderr
    points = {point["name"]: point for point in json.loads(probed.stdout)["points"]}
    assert points["level-key:mat"]["offered"] == "rsa-mat/v1, RSA"
    assert points["wrapping"]["offered"] == "RSA-OAEP-SHA1: ok"


def test_provision_external_key_generation_explains(tmp_path: Path) -> None:
    env = dev_init(tmp_path / "env")
    _use_profile(env, _rsa_profile(tmp_path, "usb-rsa", 'key_generation = "external"'), "usb-rsa")

    result = subprocess.run([str(BIN / "niemphongd"), "provision", "--config", str(env.root / "niemphongd.toml")],
                            capture_output=True, text=True, timeout=300)

    assert result.returncode == 2
    assert "cannot generate level keys" in result.stderr
    assert "labelled rsa-toi-mat/v1" in result.stderr or "labelled rsa-mat/v1" in result.stderr
