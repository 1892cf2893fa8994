"""Token access on the session's SoftHSM2 token."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkcs11 import Attribute

from conftest import BIN, DevEnvironment
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.envelope import KeySlot
from niemphong.daemon.hsm import Pkcs11Token, UnwrapFailed


@pytest.fixture(scope="module")
def token(dev_env: DevEnvironment) -> Iterator[Pkcs11Token]:
    config = load_config(dev_env.root / "niemphongd.toml")
    opened = Pkcs11Token(config.token, read_pin(config.token))
    yield opened
    opened.close()


def test_token_lists_one_key_per_level(token: Pkcs11Token) -> None:
    labels = {info.label for info in token.list_keks()}

    assert {"niemphong-toi-mat/v1", "niemphong-mat/v1"} <= labels


def test_data_key_round_trip(token: Pkcs11Token) -> None:
    data_key, slot = token.new_data_key("niemphong-mat", 1)

    assert len(data_key) == 32
    assert slot.wrap_algorithm == "AES-KWP"
    assert data_key not in slot.wrapped_key
    assert token.unwrap_data_key(slot) == data_key


def test_data_keys_differ_each_time(token: Pkcs11Token) -> None:
    keys = {token.new_data_key("niemphong-mat", 1)[0] for _ in range(20)}

    assert len(keys) == 20


def test_unwrap_altered_wrapped_key_fails(token: Pkcs11Token) -> None:
    _, slot = token.new_data_key("niemphong-mat", 1)
    altered = bytes([slot.wrapped_key[0] ^ 1]) + slot.wrapped_key[1:]

    with pytest.raises(UnwrapFailed):
        token.unwrap_data_key(dataclasses.replace(slot, wrapped_key=altered))


def test_unwrap_under_other_level_key_fails(token: Pkcs11Token) -> None:
    _, slot = token.new_data_key("niemphong-mat", 1)

    with pytest.raises(UnwrapFailed):
        token.unwrap_data_key(dataclasses.replace(slot, key_id="niemphong-toi-mat"))


def test_unwrap_unknown_key_version_raises_key_error(token: Pkcs11Token) -> None:
    _, slot = token.new_data_key("niemphong-mat", 1)

    with pytest.raises(KeyError):
        token.unwrap_data_key(dataclasses.replace(slot, key_version=99))


def test_unwrap_unknown_algorithm_fails(token: Pkcs11Token) -> None:
    slot = KeySlot("niemphong-mat", 1, "ROT13", b"\x00" * 40)

    with pytest.raises(UnwrapFailed):
        token.unwrap_data_key(slot)


@pytest.fixture
def python_pkcs11_only(token: Pkcs11Token) -> Iterator[Pkcs11Token]:
    """The same token using python-pkcs11's calls, as for a module that exports only C_GetFunctionList."""
    direct = token._direct
    token._direct = None
    yield token
    token._direct = direct


def test_token_uses_exported_functions_on_softhsm(token: Pkcs11Token) -> None:
    assert token._direct is not None


def test_python_pkcs11_path_round_trip(python_pkcs11_only: Pkcs11Token) -> None:
    data_key, slot = python_pkcs11_only.new_data_key("niemphong-mat", 1)

    assert python_pkcs11_only.unwrap_data_key(slot) == data_key


def test_exported_and_python_pkcs11_paths_interoperate(token: Pkcs11Token) -> None:
    direct_key, direct_slot = token.new_data_key("niemphong-mat", 1)
    direct = token._direct
    token._direct = None
    try:
        python_key, python_slot = token.new_data_key("niemphong-mat", 1)
        opened_by_python = token.unwrap_data_key(direct_slot)
    finally:
        token._direct = direct

    assert opened_by_python == direct_key
    assert token.unwrap_data_key(python_slot) == python_key


def test_python_pkcs11_path_altered_key_fails(python_pkcs11_only: Pkcs11Token) -> None:
    _, slot = python_pkcs11_only.new_data_key("niemphong-mat", 1)
    altered = bytes([slot.wrapped_key[0] ^ 1]) + slot.wrapped_key[1:]

    with pytest.raises(UnwrapFailed):
        python_pkcs11_only.unwrap_data_key(dataclasses.replace(slot, wrapped_key=altered))


def test_rewrap_under_another_key_opens(token: Pkcs11Token) -> None:
    data_key, _ = token.new_data_key("niemphong-mat", 1)

    slot = token.wrap_data_key("niemphong-toi-mat", 1, data_key)

    assert slot.key_id == "niemphong-toi-mat"
    assert token.unwrap_data_key(slot) == data_key


def test_data_keys_leave_no_session_objects(token: Pkcs11Token) -> None:
    for _ in range(5):
        data_key, slot = token.new_data_key("niemphong-mat", 1)
        token.wrap_data_key("niemphong-mat", 1, data_key)
        token.unwrap_data_key(slot)
        altered = bytes([slot.wrapped_key[0] ^ 1]) + slot.wrapped_key[1:]
        with pytest.raises(UnwrapFailed):
            token.unwrap_data_key(dataclasses.replace(slot, wrapped_key=altered))

    # Temporary data keys are session objects; every one must be destroyed.
    with token.session() as session:
        leftovers = list(session.get_objects({Attribute.TOKEN: False}))
    assert leftovers == []


def test_concurrent_requests_share_pool(token: Pkcs11Token) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                data_key, slot = token.new_data_key("niemphong-toi-mat", 1)
                assert token.unwrap_data_key(slot) == data_key
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []


def provision_with(dev_env: DevEnvironment, tmp_path: Path, token_lines: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``niemphongd provision`` on a copy of the configuration, replacing the line of each key.

    A separate process, because PKCS#11 login state is shared by everything
    in one process and the token is already logged in here.
    """
    text = (dev_env.root / "niemphongd.toml").read_text(encoding="utf-8")
    for key, value in token_lines.items():
        text = re.sub(rf"(?m)^{key} = .*$", value, text)
    config = tmp_path / "niemphongd.toml"
    config.write_text(text, encoding="utf-8")
    return subprocess.run(
        [str(BIN / "niemphongd"), "provision", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )


def test_wrong_pin_rejected_without_echo(dev_env: DevEnvironment, tmp_path: Path) -> None:
    wrong = "wrong-pin-value-123"
    pin_file = tmp_path / "wrong.pin"
    pin_file.write_text(wrong + "\n", encoding="utf-8")

    result = provision_with(dev_env, tmp_path, {"pin_file": f'pin_file = "{pin_file}"'})

    assert result.returncode == 6
    assert "incorrect PIN" in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_token_selected_by_serial(dev_env: DevEnvironment, token: Pkcs11Token, tmp_path: Path) -> None:
    serial = token.token.serial.decode()

    result = provision_with(dev_env, tmp_path, {"label": f'serial = "{serial}"'})

    assert result.returncode == 0, result.stderr
    assert "already has key niemphong-mat" in result.stderr


def test_token_unknown_label_unavailable(dev_env: DevEnvironment, tmp_path: Path) -> None:
    result = provision_with(dev_env, tmp_path, {"label": 'label = "no-such-token"'})

    assert result.returncode == 6
    assert "no token matches" in result.stderr


def test_planted_extractable_key_ignored(token: Pkcs11Token) -> None:
    # A key someone with the PIN created outside the daemon, readable and
    # labelled as a newer version, must never be used to seal.
    from pkcs11 import Attribute, KeyType

    label = "niemphong-mat/v99"
    with token.session() as session:
        planted = session.generate_key(KeyType.AES, 256, label=label, store=True, template={
            Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.WRAP: True, Attribute.UNWRAP: True,
        })
    try:
        assert label not in {info.label for info in token.list_keks()}
        assert token.newest_version("niemphong-mat") == 1
        with pytest.raises(KeyError):
            token.new_data_key("niemphong-mat", 99)
    finally:
        with token.session():
            planted.destroy()
