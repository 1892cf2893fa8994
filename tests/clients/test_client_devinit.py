"""The dev folder: PKI, niemphongd.toml, softhsm2.conf and client.env. Provisioning is not run here."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from niemphong.clients import devinit
from niemphong.clients.cli import main
from niemphong.clients.devinit import DevLayout, add_identity, prepare_dev_folder, toml_string
from niemphong.clients.devpki import CA_COMMON_NAME, DEFAULT_IDENTITIES
from niemphong.clients.errors import ClientError, ExitCode

from fake_niemphongd import FAKE_MODULE, dev_layout, short_tmp  # noqa: F401 (pytest fixtures)


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def subject_value(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    return str(certificate.subject.get_attributes_for_oid(oid)[0].value)


def test_dev_identities_match_contract() -> None:
    assert DEFAULT_IDENTITIES == {
        "scanner": "scanner",
        "viewer": "viewer",
        "approver-1": "approver",
        "approver-2": "approver",
        "head": "approver,head",
        "custodian": "custodian",
        "auditor": "auditor",
        "operator": "operator",
    }


def test_dev_ca_self_signed_p256(dev_layout: DevLayout) -> None:
    ca = load_certificate(dev_layout.pki / "ca.pem")

    assert subject_value(ca, NameOID.COMMON_NAME) == CA_COMMON_NAME == "Niêm Phong dev CA"
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


@pytest.mark.parametrize(("name", "role"), sorted(DEFAULT_IDENTITIES.items()))
def test_dev_identity_chains_to_ca(dev_layout: DevLayout, name: str, role: str) -> None:
    folder = dev_layout.identity(name)
    ca = load_certificate(dev_layout.pki / "ca.pem")
    certificate = load_certificate(folder / "cert.pem")

    certificate.verify_directly_issued_by(ca)
    assert subject_value(certificate, NameOID.COMMON_NAME) == name
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    assert ",".join(str(unit.value) for unit in units) == role
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (folder / "ca.pem").read_bytes() == (dev_layout.pki / "ca.pem").read_bytes()
    assert mode(folder / "key.pem") == 0o600
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert 729 <= lifetime.days <= 731


def test_dev_identity_key_matches_certificate(dev_layout: DevLayout) -> None:
    from cryptography.hazmat.primitives import serialization

    folder = dev_layout.identity("viewer")
    key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), password=None)
    certificate = load_certificate(folder / "cert.pem")

    assert key.public_key() == certificate.public_key()


def test_dev_server_certificate_names(dev_layout: DevLayout) -> None:
    ca = load_certificate(dev_layout.pki / "ca.pem")
    server = load_certificate(dev_layout.pki / "server.pem")

    server.verify_directly_issued_by(ca)
    assert subject_value(server, NameOID.COMMON_NAME) == "niemphongd"
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"niemphongd", "localhost"}
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_dev_private_keys_mode_0600(dev_layout: DevLayout) -> None:
    keys = [dev_layout.pki / "server.key", dev_layout.pki / "ca.key"]
    keys += [dev_layout.identity(name) / "key.pem" for name in DEFAULT_IDENTITIES]

    for key in keys:
        assert mode(key) == 0o600, key


def test_dev_folders_mode_0700(dev_layout: DevLayout) -> None:
    for folder in (dev_layout.root, dev_layout.tokens, dev_layout.secrets, dev_layout.pki, dev_layout.run):
        assert mode(folder) == 0o700, folder


def test_dev_config_parses_with_paths(dev_layout: DevLayout) -> None:
    root = str(dev_layout.root)

    with dev_layout.config.open("rb") as handle:
        config = tomllib.load(handle)

    assert config["server"]["unix_socket"] == f"{root}/run/niemphongd.sock"
    host, port = config["server"]["tcp"].split(":")
    assert host == "127.0.0.1"
    assert 0 < int(port) < 65536
    assert int(port) == dev_layout.tcp_port
    assert config["server"]["chunk_bytes"] == 1048576
    assert config["tls"] == {
        "ca": f"{root}/pki/ca.pem",
        "cert": f"{root}/pki/server.pem",
        "key": f"{root}/pki/server.key",
    }
    assert config["token"] == {
        "module": FAKE_MODULE,
        "label": "niemphong-dev",
        "pin_file": f"{root}/secrets/token.pin",
        "sessions": 4,
        "profile": "softhsm2",
        "env": {"SOFTHSM2_CONF": f"{root}/softhsm2.conf"},
    }
    assert config["state"] == {"sqlite": f"{root}/state/niemphong.db"}
    assert config["policy"] == {"file": f"{root}/policy.toml"}
    assert config["metrics"] == {"listen": f"127.0.0.1:{dev_layout.metrics_port}"}
    assert dev_layout.metrics_port not in (0, dev_layout.tcp_port)
    assert "levels" not in config
    for value in (config["tls"]["ca"], config["token"]["pin_file"], config["state"]["sqlite"]):
        assert os.path.isabs(value)


def test_dev_policy_holds_key_policy_and_sample_catalog(dev_layout: DevLayout) -> None:
    with dev_layout.policy.open("rb") as handle:
        policy = tomllib.load(handle)

    assert policy["development"] is True
    assert policy["levels"]["toi-mat"] == {
        "key_id": "niemphong-toi-mat", "token_profiles": ["softhsm2"], "approvals": 2, "grant_hours": 8,
        "grant_opens": 1, "printing": True, "rotation_days": 365, "protection_years": 20,
        "custodians": 2,
    }
    assert policy["levels"]["mat"]["key_id"] == "niemphong-mat"
    assert policy["levels"]["mat"]["protection_years"] == 10
    assert policy["levels"]["mat"]["printing"] is True
    assert policy["catalog"]["files"] == [str(dev_layout.catalog)]
    assert "niemphong:sample" in dev_layout.catalog.read_text(encoding="utf-8")
    assert policy["standing_decisions"][0]["kind"] == "bao-cao-tuan"


def test_dev_softhsm_config_points_at_tokens(dev_layout: DevLayout) -> None:
    lines = dev_layout.softhsm_config.read_text().splitlines()

    assert f"directories.tokendir = {dev_layout.tokens}" in lines
    assert "objectstore.backend = file" in lines
    assert "log.level = ERROR" in lines


def test_dev_client_env_sets_variables_in_shell(dev_layout: DevLayout) -> None:
    script = (
        '. "$1" && printf "%s\\n" "$NIEMPHONG_SERVER" "$NIEMPHONG_SERVER_TCP" "$NIEMPHONG_IDENTITY_DIR" '
        '"$NIEMPHONG_METRICS_URL"'
    )

    result = subprocess.run(
        ["sh", "-c", script, "sh", str(dev_layout.client_env)], capture_output=True, text=True, check=True
    )

    assert result.stdout.splitlines() == [
        f"unix:{dev_layout.socket}",
        f"127.0.0.1:{dev_layout.tcp_port}",
        str(dev_layout.identities),
        f"http://127.0.0.1:{dev_layout.metrics_port}/metrics",
    ]


def test_dev_folder_with_quotes_and_spaces(short_tmp: Path) -> None:
    root = short_tmp / "it's \"dev\" \\ x"
    layout = prepare_dev_folder(root, module_path=FAKE_MODULE)

    with layout.config.open("rb") as handle:
        config = tomllib.load(handle)
    result = subprocess.run(
        ["sh", "-c", '. "$1" && printf "%s" "$NIEMPHONG_IDENTITY_DIR"', "sh", str(layout.client_env)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert config["server"]["unix_socket"] == str(layout.socket)
    assert result.stdout == str(layout.identities)


@pytest.mark.parametrize("value", ['a"b', "a\\b", "tab\there", "new\nline", "Niêm Phong", "\x7f"])
def test_toml_string_round_trips(value: str) -> None:
    assert tomllib.loads(f"key = {toml_string(value)}")["key"] == value


def test_dev_init_twice_exits_2(dev_layout: DevLayout, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(path.name for path in dev_layout.root.iterdir())

    code = main(["dev", "init", str(dev_layout.root)], {"LANG": "vi_VN.UTF-8"})

    assert code == 2
    err = capsys.readouterr().err
    assert str(dev_layout.config) in err
    assert "đã được khởi tạo" in err
    assert sorted(path.name for path in dev_layout.root.iterdir()) == before


def test_dev_prepare_existing_entry_rejected(short_tmp: Path) -> None:
    root = short_tmp / "dev"
    (root / "pki").mkdir(parents=True)

    with pytest.raises(ClientError) as excinfo:
        prepare_dev_folder(root, module_path=FAKE_MODULE)

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert sorted(path.name for path in root.iterdir()) == ["pki"]


def test_dev_socket_path_too_long_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / ("d" * 100)

    with pytest.raises(ClientError) as excinfo:
        prepare_dev_folder(root, module_path=FAKE_MODULE)

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert excinfo.value.message_id == "dev.socket_too_long"
    assert "/tmp/np" in excinfo.value.localize("vi")
    assert not root.exists()


def test_dev_add_identity_signed_by_ca(dev_layout: DevLayout) -> None:
    folder = add_identity(dev_layout.root, "viewer-2", "viewer")

    certificate = load_certificate(folder / "cert.pem")
    certificate.verify_directly_issued_by(load_certificate(dev_layout.pki / "ca.pem"))
    assert folder == dev_layout.identity("viewer-2")
    assert subject_value(certificate, NameOID.COMMON_NAME) == "viewer-2"
    assert subject_value(certificate, NameOID.ORGANIZATIONAL_UNIT_NAME) == "viewer"
    assert mode(folder / "key.pem") == 0o600


def test_dev_add_identity_command(dev_layout: DevLayout, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["dev", "add-identity", str(dev_layout.root), "approver-3", "--role", "approver", "--json"],
        {"LANG": "en_US.UTF-8"},
    )

    assert code == 0
    captured = capsys.readouterr()
    assert str(dev_layout.identity("approver-3")) in captured.out
    assert "Issued identity approver-3" in captured.err
    assert (dev_layout.identity("approver-3") / "cert.pem").exists()


def test_dev_add_identity_existing_rejected(dev_layout: DevLayout) -> None:
    with pytest.raises(ClientError) as excinfo:
        add_identity(dev_layout.root, "viewer", "viewer")

    assert excinfo.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "-dash", "tên", "x" * 65])
def test_dev_add_identity_bad_name_rejected(dev_layout: DevLayout, name: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        add_identity(dev_layout.root, name, "viewer")

    assert excinfo.value.message_id == "dev.bad_name"


def test_dev_add_identity_without_ca_rejected(short_tmp: Path) -> None:
    with pytest.raises(ClientError) as excinfo:
        add_identity(short_tmp, "viewer-2", "viewer")

    assert excinfo.value.message_id == "dev.no_ca"
    assert not (short_tmp / "identities").exists()


def test_dev_init_missing_module_override_exits_2(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = short_tmp / "dev"

    code = main(["dev", "init", str(root)], {"NIEMPHONG_PKCS11_MODULE": "/nonexistent/lib.so", "LANG": "en_US"})

    assert code == 2
    assert "/nonexistent/lib.so" in capsys.readouterr().err
    assert not root.exists()


def test_dev_add_identity_several_roles(dev_layout: DevLayout) -> None:
    folder = add_identity(dev_layout.root, "lead", "viewer, approver")

    certificate = load_certificate(folder / "cert.pem")
    units = [str(unit.value) for unit in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert units == ["viewer", "approver"]
    assert subject_value(certificate, NameOID.COMMON_NAME) == "lead"


def test_dev_add_identity_several_roles_command(dev_layout: DevLayout, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dev", "add-identity", str(dev_layout.root), "lead", "--role", "viewer,approver"], {})

    assert code == 0, capsys.readouterr().err
    assert (dev_layout.identity("lead") / "cert.pem").exists()


@pytest.mark.parametrize("role", ["", ",", "king", "viewer,king"])
def test_dev_add_identity_bad_role_rejected(dev_layout: DevLayout, role: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        add_identity(dev_layout.root, "someone", role)

    assert excinfo.value.message_id == "dev.bad_role"
    assert not dev_layout.identity("someone").exists()


def test_dev_add_identity_corrupt_ca_key_rejected(dev_layout: DevLayout) -> None:
    (dev_layout.pki / "ca.key").write_bytes(b"not a key")

    with pytest.raises(ClientError) as excinfo:
        add_identity(dev_layout.root, "viewer-2", "viewer")

    assert excinfo.value.message_id == "dev.ca_unreadable"
    assert not dev_layout.identity("viewer-2").exists()


@pytest.mark.parametrize("name", ["a#b", "a=b", "line\nbreak"])
def test_dev_init_folder_unsafe_for_softhsm_exits_2(short_tmp: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = short_tmp / name

    code = main(["dev", "init", str(root)], {"LANG": "en_US.UTF-8"})

    err = capsys.readouterr().err
    assert code == 2
    assert "softhsm2.conf" in err
    assert "Traceback" not in err
    assert not root.exists()


def test_dev_prepare_folder_with_hash_rejected(short_tmp: Path) -> None:
    with pytest.raises(ClientError) as excinfo:
        prepare_dev_folder(short_tmp / "dev#1", module_path=FAKE_MODULE)

    assert excinfo.value.exit_code == ExitCode.USAGE
    assert excinfo.value.message_id == "dev.bad_folder"
    assert "#" in excinfo.value.localize("vi")


def test_dev_init_folder_not_utf8_exits_2(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(os.fsdecode(bytes(short_tmp) + b"/t\xe0i-li\xeau"))

    code = main(["dev", "init", str(root)], {"LANG": "vi_VN.UTF-8"})

    assert code == 2
    assert "UTF-8" in capsys.readouterr().err
    assert not root.exists()


def test_dev_provision_failure_shows_last_line(dev_layout: DevLayout, monkeypatch: pytest.MonkeyPatch) -> None:
    traceback_text = (
        b"Traceback (most recent call last):\n"
        b'  File "/work/main/daemon/provision.py", line 87, in _check\n'
        b"RuntimeError: C_Initialize failed with CKR 0x5\n"
    )

    def failed_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(command, 1, stdout=b"", stderr=traceback_text)

    monkeypatch.setattr(devinit.subprocess, "run", failed_run)

    with pytest.raises(ClientError) as excinfo:
        devinit.provision_token(dev_layout, {})

    message = excinfo.value.localize("en")
    assert excinfo.value.exit_code == ExitCode.UNAVAILABLE
    assert "RuntimeError: C_Initialize failed with CKR 0x5" in message
    assert "Traceback" not in message
    assert "--verbose" in message


def test_dev_next_steps_use_npe_extension(dev_layout: DevLayout) -> None:
    steps = devinit._next_steps(dev_layout)

    assert "--out tai-lieu.pdf.npe" in steps["scan_command"]


def test_dev_postgres_config_has_no_sqlite(short_tmp: Path) -> None:
    conninfo = "host=/run/postgresql dbname=np user=np"
    layout = prepare_dev_folder(short_tmp / "dev", module_path=FAKE_MODULE, postgres=conninfo)

    with layout.config.open("rb") as handle:
        config = tomllib.load(handle)

    assert config["state"] == {"backend": "postgresql", "postgresql": conninfo}


def test_dev_join_shares_all_but_own_paths(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = prepare_dev_folder(short_tmp / "a", module_path=FAKE_MODULE, postgres="host=/run/postgresql dbname=np")
    second = short_tmp / "b"

    code = main(["dev", "init", str(second), "--join", str(first.root), "--json"], {"LANG": "en_US.UTF-8"})

    assert code == 0, capsys.readouterr().err
    with first.config.open("rb") as handle:
        shared = tomllib.load(handle)
    with (second / "niemphongd.toml").open("rb") as handle:
        joined = tomllib.load(handle)
    for section in ("tls", "token", "state", "policy"):
        assert joined[section] == shared[section], section
    assert joined["server"]["unix_socket"] == f"{second}/run/niemphongd.sock"
    assert joined["server"]["tcp"] != shared["server"]["tcp"]
    assert joined["audit"]["path"] == f"{second}/state/audit.jsonl"
    assert joined["spool"]["root"] == f"{second}/spool"
    assert joined["metrics"]["listen"] != shared["metrics"]["listen"]
    assert sorted(path.name for path in (second / "spool").iterdir()) == sorted(DEFAULT_IDENTITIES)
    client_env = (second / "client.env").read_text()
    assert f"{second}/run/niemphongd.sock" in client_env
    assert f"{first.root}/identities" in client_env


def test_dev_join_sqlite_folder_rejected(dev_layout: DevLayout, short_tmp: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dev", "init", str(short_tmp / "b"), "--join", str(dev_layout.root)], {"LANG": "vi_VN.UTF-8"})

    assert code == 2
    assert "SQLite" in capsys.readouterr().err
    assert not (short_tmp / "b").exists()


def test_dev_join_missing_folder_rejected(short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dev", "init", str(short_tmp / "b"), "--join", str(short_tmp / "none")], {"LANG": "en_US.UTF-8"})

    assert code == 2
    assert "--postgres" in capsys.readouterr().err
