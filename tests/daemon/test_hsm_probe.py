"""`niemphong hsm probe` and `niemphongd probe` against the session's SoftHSM2 token."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, DaemonProcess, DevEnvironment
from niemphong.daemon.hsm_profiles import ProfileError, load_profile, profile_names


def probe_json(env: DevEnvironment, *args: str, identity: str = "operator") -> tuple[int, dict]:
    result = env.cli(identity, "hsm", "probe", "--json", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def statuses(report: dict) -> dict[str, str]:
    return {point["name"]: point["status"] for point in report["points"]}


def test_probe_softhsm2_profile_passes(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    code, report = probe_json(dev_env)

    assert code == 0
    assert report["profile"] == "softhsm2"
    assert report["passed"] is True
    assert set(statuses(report).values()) == {"pass"}
    assert list(statuses(report)) == [
        "module", "token", "rng", "key-generation", "wrapping", "in-token", "sessions",
        "level-key:mat", "level-key:toi-mat",
    ]


def test_probe_vietnamese_report(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("operator", "hsm", "probe")

    assert result.returncode == 0, result.stderr
    assert "[ĐẠT] bọc khóa dữ liệu" in result.stdout
    assert "Kết quả: token đáp ứng hồ sơ softhsm2." in result.stdout
    assert "Nguồn: https://github.com/softhsm/SoftHSMv2/issues/474" in result.stdout


# English words the daemon's checks and the shipped quirks use, which the Vietnamese report must not show.
ENGLISH_WORDS = re.compile(r"\b(at most|selected by|for \d+ (bits|bytes)|first usable|not offered|pool of|"
                           r"login session|missing|none|ok|the|and|is|are|with|when)\b")


@pytest.mark.parametrize("profile", ["softhsm2", "yubihsm2", "luna", "rsa-usb-token"])
def test_probe_vietnamese_report_has_no_english(daemon: DaemonProcess, dev_env: DevEnvironment, profile: str) -> None:
    result = dev_env.cli("operator", "hsm", "probe", "--profile", profile)
    # Mechanism names, paths, token labels and the quirks' source links are technical values, not English text.
    lines = [line for line in result.stdout.splitlines() if "Nguồn:" not in line]
    text = re.sub(r"(CKM_\w+|CKR_\w+|CKF_\w+|'[^']*'|/\S+)", "", "\n".join(lines))

    assert result.stdout, result.stderr
    assert ENGLISH_WORDS.findall(text) == []
    assert "khóa của độ Mật" in result.stdout
    assert "khóa của độ Tối mật" in result.stdout
    assert "độ mat" not in result.stdout


def test_probe_english_report_keeps_english(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("operator", "hsm", "probe", lang="en_US.UTF-8")

    assert "Profile needs: at most" in result.stdout
    assert "Known quirks of this token family:" in result.stdout
    assert "CKM_RSA_PKCS_OAEP accepts only SHA-1" in result.stdout


def test_probe_english_report(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("operator", "hsm", "probe", "--profile", "luna", lang="en_US.UTF-8")

    assert result.returncode == 1
    assert "[FAIL] PKCS#11 module: the module in use is not this family's module" in result.stdout
    assert "Result: the token does NOT meet profile luna (1 points failed)." in result.stdout


def test_probe_yubihsm2_reports_what_is_missing(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    code, report = probe_json(dev_env, "--profile", "yubihsm2")
    points = {point["name"]: point for point in report["points"]}

    assert code == 1
    assert report["passed"] is False
    assert points["module"]["status"] == "fail"
    assert points["module"]["reason"] == "MODULE_MISMATCH"
    # The family seals with RSA-OAEP-SHA256, which SoftHSM2 2.6 rejects.
    assert points["wrapping"]["status"] == "fail"
    assert points["wrapping"]["reason"] == "ROUND_TRIP_FAILED"
    assert "RSA-OAEP-SHA256: CKM_RSA_PKCS_OAEP with these parameters failed with ArgumentsBad" in points["wrapping"]["offered"]
    assert "RSA-OAEP-SHA1: ok" in points["wrapping"]["offered"]
    assert points["key-generation"]["status"] == "pass"
    assert points["level-key:mat"]["reason"] == "WRONG_KIND"
    assert points["level-key:toi-mat"]["reason"] == "WRONG_KIND"
    assert points["sessions"]["status"] == "pass"
    assert points["in-token"]["status"] == "not-required"


def test_probe_small_session_limit_fails(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    code, report = probe_json(dev_env, "--profile", "smartcard-hsm")
    points = {point["name"]: point for point in report["points"]}

    assert code == 1
    assert points["sessions"]["reason"] == "TOO_MANY"
    assert points["sessions"]["required"] == "at most 4"


def test_probe_unknown_profile_exit_2(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("operator", "hsm", "probe", "--profile", "nshield")

    assert result.returncode == 2
    assert "niemphongd không có hồ sơ thiết bị nshield" in result.stderr


def test_probe_path_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("operator", "hsm", "probe", "--profile", "/etc/passwd")

    assert result.returncode == 2


def test_probe_needs_operator_role(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("viewer", "hsm", "probe")

    assert result.returncode == 4


def test_probe_leaves_token_objects_unchanged(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    before = probe_json(dev_env)[1]
    probe_json(dev_env, "--profile", "yubihsm2")
    after = probe_json(dev_env)[1]

    assert [p["offered"] for p in before["points"] if p["name"].startswith("level-key")] == \
        [p["offered"] for p in after["points"] if p["name"].startswith("level-key")]


def test_niemphongd_probe_without_daemon(dev_env: DevEnvironment) -> None:
    result = subprocess.run(
        [str(BIN / "niemphongd"), "probe", "--config", str(dev_env.root / "niemphongd.toml"), "--profile", "utimaco"],
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 1
    assert "FAIL         module (MODULE_MISMATCH)" in result.stdout
    assert "PASS         in-token" in result.stdout
    assert result.stdout.rstrip().endswith("FAIL")


def test_niemphongd_probe_json_passes(dev_env: DevEnvironment) -> None:
    result = subprocess.run(
        [str(BIN / "niemphongd"), "probe", "--config", str(dev_env.root / "niemphongd.toml"), "--json"],
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passed"] is True


# Profile files ---------------------------------------------------------------

EXPECTED_PROFILES = {"softhsm2", "yubihsm2", "smartcard-hsm", "luna", "utimaco", "rsa-usb-token"}


def test_every_family_has_a_profile() -> None:
    assert EXPECTED_PROFILES <= set(profile_names())


@pytest.mark.parametrize("name", sorted(EXPECTED_PROFILES))
def test_profile_quirks_have_sources(name: str) -> None:
    profile = load_profile(name)

    assert profile.quirks
    for quirk in profile.quirks:
        assert quirk.source.strip()
        assert quirk.handling.strip()
        assert quirk.summary_vi.strip()
        assert quirk.handling_vi.strip()


def test_rsa_only_families_use_rsa_keys() -> None:
    for name in ("yubihsm2", "smartcard-hsm", "rsa-usb-token"):
        profile = load_profile(name)

        assert profile.kek == "rsa", name
        assert profile.aes_wrapping == (), name


def test_softhsm2_profile_rsa_is_sha1_only() -> None:
    assert load_profile("softhsm2").rsa_wrapping == ("RSA-OAEP-SHA1",)


@pytest.mark.parametrize("text, key", [
    ('name = "x"', "family"),
    ('name = "x"\nfamily = "X"\nhardware = "yes"', "hardware"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["slot"]', "select_by"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["label"]\nkek = "des"', "kek"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["label"]\nkek = "aes"\n'
     '[wrapping]\naes = ["AES-CBC"]', "wrapping.aes"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["label"]\nkek = "rsa"\n'
     '[wrapping]\nrsa = []', "wrapping.rsa"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["label"]\nkek = "aes"\n'
     '[wrapping]\naes = ["AES-KWP"]\n[sessions]\nmax = 1', "sessions.max"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["label"]\nkek = "aes"\n'
     '[wrapping]\naes = ["AES-KWP"]\n[sessions]\nmax = 8\n[mechanisms]\nAES-KWP = "vendor"', "mechanisms.AES-KWP"),
    ('name = "x"\nfamily = "X"\nhardware = true\nmodules = ["/m.so"]\nselect_by = ["label"]\nkek = "aes"\n'
     '[wrapping]\naes = ["AES-KWP"]\n[sessions]\nmax = 8\n[[quirks]]\nsummary = "s"', "quirks[0]"),
    ('colour = "blue"', "colour"),
])
def test_invalid_profile_names_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(ProfileError) as caught:
        load_profile(str(path))

    assert f"key '{key}'" in str(caught.value)
