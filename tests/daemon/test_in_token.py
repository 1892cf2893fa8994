"""In-token mode on SoftHSM2: the token seals and opens every segment itself."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import DaemonProcess, DevEnvironment, dev_init, error_reason, grant_access, open_bytes, seal_bytes
from niemphong.clients.devinit import TOKEN_SESSIONS
from niemphong.daemon import envelope
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

PLAINTEXT = os.urandom(300_000)


def set_encryption(env: DevEnvironment, level: str, mode: str) -> None:
    """Set ``encryption = mode`` in the [levels.<level>] section of the development policy."""
    policy = env.root / "policy.toml"
    text = policy.read_text()
    marker = f'[levels.{level}]\n'
    assert marker in text
    text = text.replace(marker, f"{marker}encryption = \"{mode}\"\n", 1)
    policy.write_text(text)


def token_unwraps(env: DevEnvironment) -> float:
    """Return the number of C_UnwrapKey calls the daemon has counted, over all mechanisms."""
    with urllib.request.urlopen(f"http://{env.config['metrics']['listen']}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "niemphong_token_calls_total" and sample.labels.get("function") == "C_UnwrapKey"
    )


@pytest.fixture(scope="module")
def token_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevEnvironment, DaemonProcess]]:
    work = tmp_path_factory.mktemp("in-token")
    env = dev_init(work / "env")
    process = DaemonProcess(env, work / "host.log")
    process.start()
    try:
        host_envelope, host_summary = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
    finally:
        assert process.stop() == 0, process.log()
    (work / "host.npe").write_bytes(host_envelope)
    (work / "host.id").write_text(host_summary.artefact_id)

    set_encryption(env, "mat", "token")
    process = DaemonProcess(env, work / "token.log")
    process.start()
    yield env, process
    assert process.stop() == 0, process.log()


def test_in_token_round_trip(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    sealed, summary = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
    grant_access(env, summary.artefact_id, ["approver-1"])

    assert open_bytes(env, sealed) == PLAINTEXT


def test_in_token_envelope_records_mode(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    sealed, summary = seal_bytes(env, b"x" * 5000, level=pb.LEVEL_MAT)
    header = envelope.parse_header(sealed)

    assert header.aead == envelope.AEAD_TOKEN_AES256GCM
    assert summary.key.wrap_algorithm == "AES-KWP"
    # Same layout as host mode: one tag per segment, nothing else added.
    assert len(sealed) == header.header_len + 5000 + envelope.TAG_LEN


def test_in_token_other_level_stays_host(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    sealed, _ = seal_bytes(env, b"y" * 5000, level=pb.LEVEL_TOI_MAT)

    assert envelope.parse_header(sealed).aead == envelope.AEAD_HOST_AES256GCM


def test_host_envelope_still_opens(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    work = env.root.parent
    host_envelope = (work / "host.npe").read_bytes()
    grant_access(env, (work / "host.id").read_text(), ["approver-1"])

    assert envelope.parse_header(host_envelope).aead == envelope.AEAD_HOST_AES256GCM
    assert open_bytes(env, host_envelope) == PLAINTEXT


def test_in_token_altered_segment_integrity_failure(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, process = token_env
    sealed, summary = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
    grant_access(env, summary.artefact_id, ["approver-1"])
    header_len = envelope.parse_header(sealed).header_len
    altered = bytearray(sealed)
    altered[header_len + 70_000] ^= 1

    with pytest.raises(grpc.RpcError) as caught:
        open_bytes(env, bytes(altered))

    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert error_reason(caught.value) == "INTEGRITY_FAILURE"
    # A bad tag is not a token fault: the daemon keeps serving.
    assert process.serving()


def test_in_token_aead_flipped_to_host_fails(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    sealed, summary = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
    grant_access(env, summary.artefact_id, ["approver-1"])
    header = envelope.parse_header(sealed)
    core_start = envelope.PREAMBLE_LEN + 4
    altered = bytearray(sealed)
    altered[core_start + 17] = envelope.AEAD_HOST_AES256GCM
    assert envelope.parse_header(bytes(altered)).aead == envelope.AEAD_HOST_AES256GCM
    assert header.aead == envelope.AEAD_TOKEN_AES256GCM

    unwraps_before = token_unwraps(env)

    with pytest.raises(grpc.RpcError) as caught:
        open_bytes(env, bytes(altered))

    assert error_reason(caught.value) == "INTEGRITY_FAILURE"
    # The registry's core hash rejects the header before any unwrap, so the
    # in-token data key never reaches host memory.
    assert token_unwraps(env) == unwraps_before


def test_in_token_policy_rejected_for_luna(tmp_path: Path) -> None:
    from niemphong.daemon.config import TokenConfig
    from niemphong.daemon.errors import ConfigError
    from niemphong.daemon.policy.loader import load_policy

    env_root = tmp_path / "p"
    env = dev_init(env_root)
    set_encryption(env, "mat", "token")
    token = TokenConfig(module=Path("/m.so"), label="x", serial=None, pin_file=None, pin_credential="pin",
                        sessions=2, profile="luna", env={})
    text = (env_root / "policy.toml").read_text().replace('token_profiles = ["softhsm2"]', 'token_profiles = ["luna"]')
    (env_root / "policy.toml").write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_policy(env_root / "policy.toml", token)

    assert "levels.mat.encryption" in str(caught.value)
    assert "offers no encryption inside the token" in str(caught.value)


def test_policy_show_names_encryption_place(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    shown = env.cli("operator", "policy", "show", "--json")
    text = env.cli("operator", "policy", "show")

    assert shown.returncode == 0, shown.stderr
    levels = {level["level"]: level["encryption"] for level in json.loads(shown.stdout)["levels"]}
    assert levels == {"mat": "token", "toi-mat": "host"}
    assert "trong token" in text.stdout
    assert "trên máy chủ" in text.stdout


def test_in_token_verify_returns_plaintext_digest(token_env: tuple[DevEnvironment, DaemonProcess]) -> None:
    env, _ = token_env
    sealed, _ = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
    chunks = [sealed[start:start + 65_536] for start in range(0, len(sealed), 65_536)]

    # Verify unwraps the data key inside the token as Open does. More calls
    # than the token has sessions show that each call gives its session back.
    for _ in range(TOKEN_SESSIONS + 1):
        with env.channel("scanner") as channel:
            answer = pb_grpc.EnvelopeServiceStub(channel).Verify(
                iter([pb.VerifyRequest(chunk=chunk) for chunk in chunks]), timeout=30)
        assert answer.plaintext_sha256 == hashlib.sha256(PLAINTEXT).hexdigest()


def test_in_token_envelope_rewrapped_inside_token(tmp_path: Path) -> None:
    env = dev_init(tmp_path / "env")
    set_encryption(env, "mat", "token")
    process = DaemonProcess(env, tmp_path / "niemphongd.log")
    process.start()
    try:
        archive = tmp_path / "archive"
        archive.mkdir()
        sealed, summary = seal_bytes(env, PLAINTEXT, level=pb.LEVEL_MAT)
        path = archive / "cong-van.npe"
        path.write_bytes(sealed)
        old_header = envelope.parse_header(sealed)
        assert [(slot.key_id, slot.key_version) for slot in old_header.slots] == [("niemphong-mat", 1)]

        rotated = env.cli("custodian", "keys", "rotate", "--level", "mat")
        assert rotated.returncode == 0, rotated.stderr
        rewrapped = env.cli("custodian", "rewrap", str(archive), "--json")
        assert rewrapped.returncode == 0, rewrapped.stderr
        assert json.loads(rewrapped.stdout)["rewrapped"] == 1

        data = path.read_bytes()
        new_header = envelope.parse_header(data)
        assert new_header.aead == envelope.AEAD_TOKEN_AES256GCM
        assert [(slot.key_id, slot.key_version) for slot in new_header.slots] == [("niemphong-mat", 2)]
        assert data[new_header.header_len:] == sealed[old_header.header_len:]

        # Version 1 no longer opens anything, so the file opens under version 2.
        retired = env.cli("custodian", "keys", "retire", "--level", "mat", "--version", "1", "--for", "opening")
        assert retired.returncode == 0, retired.stderr
        grant_access(env, summary.artefact_id, ["approver-1"])
        assert open_bytes(env, data) == PLAINTEXT
    finally:
        assert process.stop() == 0, process.log()
