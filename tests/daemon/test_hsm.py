"""Token access on the session's SoftHSM2 token."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest

from conftest import DevEnvironment
from niemphong.daemon.config import load_config, read_pin
from niemphong.daemon.envelope import KeySlot
from niemphong.daemon.errors import TokenUnavailable
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


def test_wrong_pin_rejected_without_echo(dev_env: DevEnvironment) -> None:
    config = load_config(dev_env.root / "niemphongd.toml")
    wrong = "wrong-pin-value-123"

    with pytest.raises(TokenUnavailable) as excinfo:
        Pkcs11Token(config.token, wrong)

    assert "incorrect PIN" in str(excinfo.value)
    assert wrong not in str(excinfo.value)


def test_token_selected_by_serial(dev_env: DevEnvironment, token: Pkcs11Token) -> None:
    config = load_config(dev_env.root / "niemphongd.toml")
    serial = token.token.serial.decode()
    by_serial = dataclasses.replace(config.token, label=None, serial=serial)

    opened = Pkcs11Token(by_serial, read_pin(config.token))
    try:
        assert opened.token.label == token.token.label
    finally:
        opened.close()


def test_unknown_token_label_unavailable(dev_env: DevEnvironment) -> None:
    config = load_config(dev_env.root / "niemphongd.toml")
    absent = dataclasses.replace(config.token, label="no-such-token")

    with pytest.raises(TokenUnavailable, match="no token matches"):
        Pkcs11Token(absent, read_pin(config.token))
