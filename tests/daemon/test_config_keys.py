"""Key rotation and custodians in the policy file, and the recovery token in
niemphongd.toml: each bad value names its file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from niemphong.daemon.config import load_config
from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import Level
from niemphong.daemon.recovery_keys import public_key_pem

from test_config import BASE, CATALOG, POLICY, write


@pytest.fixture(scope="module")
def rsa_3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def recovery_section(public_key: Path, extra: str = "") -> str:
    return f"""
[recovery]
label = "niemphong-recovery"
{extra}
[recovery.keys.mat]
public_key = "{public_key}"
"""


def write_pem(tmp_path: Path, key: object, name: str = "mat.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(public_key_pem(key.public_key()))  # type: ignore[attr-defined]
    return path


def test_config_rotation_and_custodian_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))

    assert config.levels[Level.TOI_MAT].rotation_days == 365
    assert config.levels[Level.MAT].rotation_days == 730
    assert config.levels[Level.TOI_MAT].custodians == 2
    assert config.levels[Level.MAT].custodians == 1
    assert config.recovery is None


def test_config_custodians_from_policy_file(tmp_path: Path) -> None:
    policy = POLICY.replace("approvals = 3", "approvals = 3\ncustodians = 3").replace("[levels.mat]", "[levels.mat]\ncustodians = 2")

    config = load_config(write(tmp_path, BASE, policy))

    assert config.levels[Level.TOI_MAT].custodians == 3
    assert config.levels[Level.MAT].custodians == 2


def test_config_toi_mat_one_custodian_rejected(tmp_path: Path) -> None:
    policy = POLICY.replace("approvals = 3", "approvals = 3\ncustodians = 1")

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE, policy))

    assert "policy.toml" in str(excinfo.value)
    assert "levels.toi-mat.custodians" in str(excinfo.value)


def test_config_rotation_days_zero_rejected(tmp_path: Path) -> None:
    policy = POLICY.replace("[levels.mat]", "[levels.mat]\nrotation_days = 0")

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE, policy))

    assert "levels.mat.rotation_days" in str(excinfo.value)


def test_config_recovery_key_loaded(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    pem = write_pem(tmp_path, rsa_3072)

    config = load_config(write(tmp_path, BASE + recovery_section(pem, "session_minutes = 30")))

    assert config.recovery is not None
    assert config.recovery.session_seconds == 1800
    assert config.recovery.module == Path("/usr/lib/softhsm/libsofthsm2.so")
    key = config.recovery.keys[Level.MAT]
    assert key.key_id == "niemphong-recovery-mat"
    assert key.version == 1
    assert key.wrap_algorithm == "RSA-OAEP-SHA1"
    assert key.key_bits == 3072
    assert Level.TOI_MAT not in config.recovery.keys


def test_config_recovery_short_rsa_key_rejected(tmp_path: Path) -> None:
    pem = write_pem(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE + recovery_section(pem)))

    assert "recovery.keys.mat.public_key" in str(excinfo.value)
    assert "2048 bits" in str(excinfo.value)


def test_config_recovery_ec_key_rejected(tmp_path: Path) -> None:
    pem = write_pem(tmp_path, ec.generate_private_key(ec.SECP256R1()))

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE + recovery_section(pem)))

    assert "must be RSA" in str(excinfo.value)


def test_config_recovery_not_pem_rejected(tmp_path: Path) -> None:
    pem = tmp_path / "mat.pem"
    pem.write_text("not a key\n", encoding="ascii")

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE + recovery_section(pem)))

    assert "not a PEM public key" in str(excinfo.value)


def test_config_recovery_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE + recovery_section(tmp_path / "absent.pem")))

    assert "cannot read" in str(excinfo.value)


def test_config_recovery_same_token_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    text = BASE + recovery_section(write_pem(tmp_path, rsa_3072)).replace('"niemphong-recovery"', '"niemphong-dev"')

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert "different token" in str(excinfo.value)


def test_config_recovery_key_id_of_level_key_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    text = BASE + recovery_section(write_pem(tmp_path, rsa_3072)) + 'key_id = "niemphong-mat"\n'

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert "recovery.keys.mat.key_id" in str(excinfo.value)


def test_config_recovery_unknown_algorithm_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    text = BASE + recovery_section(write_pem(tmp_path, rsa_3072)) + 'wrap_algorithm = "RSA-PKCS1"\n'

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert "recovery.keys.mat.wrap_algorithm" in str(excinfo.value)


def test_config_recovery_tuyet_mat_key_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    pem = write_pem(tmp_path, rsa_3072)
    text = BASE + recovery_section(pem) + f'\n[recovery.keys.tuyet-mat]\npublic_key = "{pem}"\n'

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert "recovery.keys.tuyet-mat" in str(excinfo.value)


def test_config_recovery_shared_between_levels_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    pem = write_pem(tmp_path, rsa_3072)
    text = (BASE + recovery_section(pem) + 'key_id = "shared-recovery"\n'
            + f'\n[recovery.keys.toi-mat]\npublic_key = "{pem}"\nkey_id = "shared-recovery"\n')

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert "own recovery key" in str(excinfo.value)


def test_config_recovery_without_token_name_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    text = BASE + recovery_section(write_pem(tmp_path, rsa_3072)).replace('label = "niemphong-recovery"', "")

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert "recovery.label" in str(excinfo.value)


def test_config_example_recovery_section_loads(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    examples = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
    text = (examples / "niemphongd.toml.example").read_text(encoding="utf-8")
    # Uncomment the example [recovery] block, as an operator would.
    start = text.index("# [recovery]\n")
    end = text.index("[metrics]")
    block = "\n".join(line.removeprefix("# ").removeprefix("#") for line in text[start:end].splitlines())
    text = text[:start] + block + "\n\n" + text[end:]
    text = text.replace('unix_socket_group = "niemphong-clients"\n', "")
    (tmp_path / "recovery").mkdir()
    other = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    write_pem(tmp_path / "recovery", rsa_3072, "niemphong-recovery-toi-mat-v1.pem")
    write_pem(tmp_path / "recovery", other, "niemphong-recovery-mat-v1.pem")
    policy = (examples / "policy.toml.example").read_text(encoding="utf-8")
    (tmp_path / "danh-muc-bmnn.csv").write_text(CATALOG, encoding="utf-8")

    config = load_config(write(tmp_path, text, policy))

    assert config.recovery is not None
    assert config.recovery.label == "NIEMPHONG-RECOVERY"
    assert config.recovery.session_seconds == 3600
    assert config.recovery.keys[Level.TOI_MAT].key_id == "niemphong-recovery-toi-mat"
    assert config.recovery.keys[Level.MAT].path == tmp_path / "recovery" / "niemphong-recovery-mat-v1.pem"


def test_config_recovery_key_for_in_token_level_rejected(tmp_path: Path, rsa_3072: rsa.RSAPrivateKey) -> None:
    policy = POLICY.replace("[levels.mat]", '[levels.mat]\nencryption = "token"')
    text = BASE + recovery_section(write_pem(tmp_path, rsa_3072))

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text, policy))

    assert "recovery.keys.mat" in str(excinfo.value)
    assert "cannot carry a recovery slot" in str(excinfo.value)
