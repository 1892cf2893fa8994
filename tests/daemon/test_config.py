"""Configuration loading: a bad file names the file, the key and the problem."""

from __future__ import annotations

import grp
from pathlib import Path

import pytest

from niemphong.daemon.config import load_config, read_pin, read_state_password
from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import Level
from niemphong.daemon.pkcs11_uri import parse_pkcs11_uri

BASE = """
[server]
unix_socket = "run/np.sock"

[tls]
ca = "pki/ca.pem"
cert = "pki/server.pem"
key = "pki/server.key"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "niemphong-dev"
pin_file = "secrets/token.pin"

[state]
sqlite = "state/np.db"

[audit]
path = "state/audit.jsonl"

[policy]
file = "policy.toml"
"""

POLICY = """
development = true

[levels.toi-mat]
approvals = 3

[levels.mat]

[catalog]
files = ["catalog.csv"]
"""

CATALOG = "Quyết định,Điều,Khoản,Điểm,Nội dung,Độ mật cao nhất\n1722/QĐ-TTg,1,1,a,Kế hoạch,Tối mật\n"


def write(tmp_path: Path, text: str, policy: str = POLICY) -> Path:
    path = tmp_path / "niemphongd.toml"
    path.write_text(text, encoding="utf-8")
    (tmp_path / "policy.toml").write_text(policy, encoding="utf-8")
    (tmp_path / "catalog.csv").write_text(CATALOG, encoding="utf-8")
    return path


def test_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))

    assert config.unix_socket == tmp_path / "run/np.sock"
    assert config.levels[Level.TOI_MAT].approvals == 3
    assert config.levels[Level.MAT].approvals == 1
    assert config.levels[Level.TOI_MAT].key_id == "niemphong-toi-mat"
    assert config.chunk_bytes == 1024 * 1024


def test_config_tuyet_mat_policy_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, BASE, POLICY + "\n[levels.tuyet-mat]\napprovals = 5\n"))

    assert str(tmp_path / "policy.toml") in str(excinfo.value)
    assert "levels.tuyet-mat" in str(excinfo.value)


def test_config_shared_level_key_rejected(tmp_path: Path) -> None:
    policy = POLICY.replace("[levels.mat]", '[levels.mat]\nkey_id = "niemphong-toi-mat"')

    with pytest.raises(ConfigError, match="own key"):
        load_config(write(tmp_path, BASE, policy))


def test_config_levels_outside_policy_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy file") as excinfo:
        load_config(write(tmp_path, BASE + "\n[levels.mat]\napprovals = 2\n"))

    assert "'levels'" in str(excinfo.value)


def test_config_policy_section_missing_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'policy'"):
        load_config(write(tmp_path, BASE.replace('[policy]\nfile = "policy.toml"', "")))


def test_config_unknown_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'token.pin'"):
        load_config(write(tmp_path, BASE.replace('pin_file = "secrets/token.pin"', 'pin = "1234"')))


def test_config_approvals_out_of_range_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="levels.toi-mat.approvals"):
        load_config(write(tmp_path, BASE, POLICY.replace("approvals = 3", "approvals = 0")))


def test_config_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


def test_config_token_uri_selects_token(tmp_path: Path) -> None:
    text = BASE.replace('label = "niemphong-dev"', 'uri = "pkcs11:token=S%E1%BB%9F%20TC;serial=0a1b"')

    config = load_config(write(tmp_path, text))

    assert config.token.label == "Sở TC"
    assert config.token.serial == "0a1b"


def test_pkcs11_uri_with_pin_value_rejected() -> None:
    with pytest.raises(ValueError, match="pin-value"):
        parse_pkcs11_uri("pkcs11:token=a?pin-value=1234")


def test_pkcs11_uri_without_scheme_rejected() -> None:
    with pytest.raises(ValueError):
        parse_pkcs11_uri("token=a")


def test_read_pin_from_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE.replace('pin_file = "secrets/token.pin"', 'pin_credential = "token-pin"')
    config = load_config(write(tmp_path, text))
    (tmp_path / "token-pin").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    assert read_pin(config.token) == "s3cret"


def test_read_pin_missing_file_message_has_no_pin(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))

    with pytest.raises(ConfigError, match="cannot read the token PIN"):
        read_pin(config.token)


def test_config_operations_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))

    assert config.drain_seconds == 30
    assert config.allow_root is False
    assert config.unix_socket_group is None
    assert config.metrics is not None
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9464)
    assert config.log_format == "auto"


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("server", "drain_seconds = 601", "server.drain_seconds"),
        ("server", 'allow_root = "yes"', "server.allow_root"),
        ("server", 'unix_socket_group = "no-such-group-np"', "server.unix_socket_group"),
        ("log", 'format = "json"', "log.format"),
        ("metrics", 'listen = "9464"', "metrics.listen"),
        ("metrics", 'listen = "127.0.0.1:70000"', "metrics.listen"),
        ("metrics", 'listen = "0.0.0.0:9464"', "metrics.listen"),
        ("metrics", 'tls_cert = "tls/m.pem"', "metrics.tls_cert"),
        ("metrics", 'tls_ca = "tls/ca.pem"', "metrics.tls_ca"),
        ("metrics", "enabled = 1", "metrics.enabled"),
    ],
)
def test_config_operations_invalid_rejected(tmp_path: Path, section: str, line: str, key: str) -> None:
    text = BASE.replace(f"[{section}]\n", f"[{section}]\n{line}\n") if f"[{section}]\n" in BASE else BASE + f"\n[{section}]\n{line}\n"

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, text))

    assert f"key '{key}'" in str(excinfo.value)


def test_config_metrics_off_loopback_with_tls(tmp_path: Path) -> None:
    text = BASE + '\n[metrics]\nlisten = "[::]:9464"\ntls_cert = "tls/m.pem"\ntls_key = "tls/m.key"\n'

    config = load_config(write(tmp_path, text))

    assert config.metrics is not None
    assert config.metrics.host == "::"
    assert config.metrics.tls_key == tmp_path / "tls/m.key"


def test_config_metrics_disabled(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + "\n[metrics]\nenabled = false\n"))

    assert config.metrics is None


def test_config_example_files_load(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
    text = (examples / "niemphongd.toml.example").read_text(encoding="utf-8")
    if "niemphong-clients" not in {group.gr_name for group in grp.getgrall()}:
        # The example names the group that sysusers creates on a real host.
        text = text.replace('unix_socket_group = "niemphong-clients"\n', "")
    policy = (examples / "policy.toml.example").read_text(encoding="utf-8")
    (tmp_path / "danh-muc-bmnn.csv").write_text(CATALOG, encoding="utf-8")

    config = load_config(write(tmp_path, text, policy))

    assert config.token.pin_credential == "token-pin"
    assert config.metrics is not None
    assert config.metrics.host == "127.0.0.1"
    assert config.policy is not None
    assert config.policy.development is False
    assert config.levels[Level.TOI_MAT].rotation_days == 365
    assert config.levels[Level.MAT].rotation_days == 730
    assert config.levels[Level.TOI_MAT].custodians == 2
    assert config.levels[Level.MAT].custodians == 1
    assert config.recovery is None


POSTGRES_STATE = '[state]\nbackend = "postgresql"\npostgresql = "host=/run/postgresql dbname=niemphong user=niemphong"\n'


def with_state(section: str) -> str:
    return BASE.replace('[state]\nsqlite = "state/np.db"\n', section)


def test_config_postgres_backend(tmp_path: Path) -> None:
    (tmp_path / "db.password").write_text("mật-khẩu\n", encoding="utf-8")
    config = load_config(write(tmp_path, with_state(POSTGRES_STATE + 'password_file = "db.password"\npool_size = 4\n')))

    assert config.sqlite is None
    assert config.postgres is not None
    assert config.postgres.conninfo == "host=/run/postgresql dbname=niemphong user=niemphong"
    assert config.postgres.pool_size == 4
    assert read_state_password(config.postgres) == "mật-khẩu"


def test_config_postgres_password_in_conninfo_rejected(tmp_path: Path) -> None:
    state = POSTGRES_STATE.replace("user=niemphong", "user=niemphong password=secret-value")

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, with_state(state)))

    assert "state.postgresql" in str(excinfo.value)
    assert "password_file" in str(excinfo.value)
    assert "secret-value" not in str(excinfo.value)


def test_config_postgres_uri_password_rejected(tmp_path: Path) -> None:
    state = '[state]\nbackend = "postgresql"\npostgresql = "postgresql://np:secret-value@db.example/np"\n'

    with pytest.raises(ConfigError) as excinfo:
        load_config(write(tmp_path, with_state(state)))

    assert "must not contain a password" in str(excinfo.value)
    assert "secret-value" not in str(excinfo.value)


def test_config_postgres_with_sqlite_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state.sqlite"):
        load_config(write(tmp_path, with_state(POSTGRES_STATE + 'sqlite = "state/np.db"\n')))


def test_config_sqlite_with_postgres_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state.pool_size"):
        load_config(write(tmp_path, with_state('[state]\nsqlite = "state/np.db"\npool_size = 4\n')))


def test_config_unknown_backend_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state.backend"):
        load_config(write(tmp_path, with_state('[state]\nbackend = "mysql"\n')))


def test_config_postgres_both_password_sources_rejected(tmp_path: Path) -> None:
    state = POSTGRES_STATE + 'password_file = "db.password"\npassword_credential = "np-db"\n'

    with pytest.raises(ConfigError, match="state.password_file"):
        load_config(write(tmp_path, with_state(state)))


def test_state_password_credential_needs_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = load_config(write(tmp_path, with_state(POSTGRES_STATE + 'password_credential = "np-db"\n')))
    assert config.postgres is not None

    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        read_state_password(config.postgres)
