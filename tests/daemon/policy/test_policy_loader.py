"""The policy file: every way it can be wrong stops the daemon with the file, the key and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from niemphong.daemon.config import TokenConfig
from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import Level
from niemphong.daemon.policy.loader import load_policy

from rules_fixtures import SAMPLE_CATALOG

REAL_CATALOG = "Quyết định,Điều,Khoản,Điểm,Nội dung,Độ mật cao nhất\n1722/QĐ-TTg,1,1,,Kế hoạch,Tối mật\n1722/QĐ-TTg,1,2,a,Công văn,Mật\n"

POLICY = """
development = true

[levels.toi-mat]
key_id = "niemphong-toi-mat"
approvals = 2

[levels.mat]
key_id = "niemphong-mat"

[catalog]
files = ["danh-muc.csv"]

[[standing_decisions]]
kind = "bao-cao-tuan"
level = "mat"
basis = "Điểm a Khoản 2 Điều 1 danh mục mẫu"
decision = "Quyết định số 01/QĐ-VP"
decided_on = 2025-01-02
"""


def token(profile: str = "softhsm2") -> TokenConfig:
    return TokenConfig(
        module=Path("/usr/lib/softhsm/libsofthsm2.so"), label="niemphong-dev", serial=None, pin_file=Path("pin"),
        pin_credential=None, sessions=1, profile=profile, env={},
    )


def write(tmp_path: Path, text: str, catalog: str | None = None) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    if catalog is None:
        shutil.copy(SAMPLE_CATALOG, tmp_path / "danh-muc.csv")
    else:
        (tmp_path / "danh-muc.csv").write_text(catalog, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, profile: str = "softhsm2", catalog: str | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_policy(write(tmp_path, text, catalog), token(profile))
    return str(excinfo.value)


def test_policy_loads_levels_catalog_and_standing_decision(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, POLICY), token())

    assert policy.development
    assert policy.levels[Level.TOI_MAT].protection_years == 20
    assert policy.levels[Level.MAT].protection_years == 10
    assert policy.levels[Level.TOI_MAT].approvals == 2
    assert len(policy.catalog.items) == 4
    assert policy.standing_decisions["bao-cao-tuan"].level is Level.MAT
    assert len(policy.sha256) == 64


def test_policy_typo_in_key_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace("approvals = 2", "aprovals = 2"))

    assert str(tmp_path / "policy.toml") in message
    assert "'levels.toi-mat.aprovals'" in message
    assert "unknown key" in message


def test_policy_negative_period_named(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace('key_id = "niemphong-mat"', 'key_id = "niemphong-mat"\nprotection_years = -10'))

    assert "'levels.mat.protection_years'" in message
    assert "-10" in message


def test_policy_period_shorter_than_law_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace("approvals = 2", "approvals = 2\nprotection_years = 15"))

    assert "'levels.toi-mat.protection_years'" in message
    assert "between 20 and" in message


def test_policy_tuyet_mat_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY + '\n[levels.tuyet-mat]\nkey_id = "niemphong-tuyet-mat"\n')

    assert "'levels.tuyet-mat'" in message
    assert "never digitized" in message


def test_policy_tuyet_mat_standing_decision_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace('level = "mat"', 'level = "tuyet-mat"'))

    assert "'standing_decisions[0].level'" in message


def test_policy_software_token_for_toi_mat_outside_development(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace("development = true", "development = false"), catalog=REAL_CATALOG)

    assert "'levels.toi-mat.token_profiles'" in message
    assert "software" in message


def test_policy_hardware_token_outside_development_accepted(tmp_path: Path) -> None:
    text = POLICY.replace("development = true", "development = false").replace("danh mục mẫu", "QĐ 1722/QĐ-TTg")

    policy = load_policy(write(tmp_path, text, REAL_CATALOG), token("luna"))

    assert not policy.development


def test_policy_sample_catalog_outside_development_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace("development = true", "development = false"), profile="luna")

    assert "'catalog.files'" in message
    assert "sample catalog" in message


def test_policy_token_profile_not_acceptable(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace('key_id = "niemphong-mat"', 'key_id = "niemphong-mat"\ntoken_profiles = ["luna"]'))

    assert "'levels.mat.token_profiles'" in message


def test_policy_key_uri_names_key(tmp_path: Path) -> None:
    text = POLICY.replace('key_id = "niemphong-mat"', 'key_uri = "pkcs11:token=niemphong-dev;object=khoa-mat"')

    assert load_policy(write(tmp_path, text), token()).levels[Level.MAT].key_id == "khoa-mat"


def test_policy_key_uri_other_token_rejected(tmp_path: Path) -> None:
    text = POLICY.replace('key_id = "niemphong-mat"', 'key_uri = "pkcs11:token=khac;object=khoa-mat"')

    assert "'levels.mat.key_uri'" in load_error(tmp_path, text)


def test_policy_duplicate_kind_rejected(tmp_path: Path) -> None:
    entry = POLICY[POLICY.index("[[standing_decisions]]"):]

    assert "one decision per kind" in load_error(tmp_path, POLICY + "\n" + entry)


def test_policy_standing_basis_not_in_catalog_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace("Điểm a Khoản 2", "Điểm z Khoản 2"))

    assert "'standing_decisions[0].basis'" in message


def test_policy_catalog_missing_rejected(tmp_path: Path) -> None:
    message = load_error(tmp_path, POLICY.replace('files = ["danh-muc.csv"]', 'files = ["khong-co.csv"]'))

    assert "khong-co.csv" in message


def test_policy_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy file not found"):
        load_policy(tmp_path / "absent.toml", token())
