"""Provision a token: initialize a SoftHSM2 token for development, create level keys and the audit key.

python-pkcs11 has no binding for C_InitToken, and softhsm2-util takes PINs
only on its command line or from a terminal, so the development token is
initialized through ctypes. PINs are random, written to files of mode 0600
and never passed as arguments.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
from pathlib import Path

from niemphong.daemon.config import Config, read_pin
from niemphong.daemon.errors import ConfigError
from niemphong.daemon.hsm import Pkcs11Token, kek_label

log = logging.getLogger(__name__)

CKR_OK = 0
TOKEN_LABEL_BYTES = 32


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


def init_softhsm_token(config: Config) -> None:
    """Initialize a free SoftHSM2 slot with the configured label and fresh random PINs.

    The user PIN goes to the configured pin_file and the security officer PIN
    to ``so.pin`` beside it. Refuses when the PIN file already exists.
    """
    token = config.token
    if token.label is None or token.pin_file is None:
        raise ValueError("a development token needs token.label and token.pin_file in the configuration")
    if token.pin_file.exists():
        raise FileExistsError(f"{token.pin_file} exists; this token was already initialized")
    for name, value in token.env.items():
        os.environ[name] = value

    so_pin = secrets.token_urlsafe(24)
    user_pin = secrets.token_urlsafe(24)
    label = token.label.encode("utf-8")
    if len(label) > TOKEN_LABEL_BYTES:
        raise ValueError(f"token label {token.label!r} is longer than {TOKEN_LABEL_BYTES} bytes")

    module = ctypes.CDLL(str(token.module))
    ulong = ctypes.c_ulong
    _check(module.C_Initialize(None), "C_Initialize")
    try:
        count = ulong(0)
        _check(module.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList")
        slots = (ulong * count.value)()
        _check(module.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
        if not count.value:
            raise RuntimeError(f"{token.module} offers no slot")
        # SoftHSM2 always lists one free, uninitialized slot last.
        free_slot = ulong(slots[count.value - 1])
        so_bytes = so_pin.encode("ascii")
        _check(
            module.C_InitToken(free_slot, so_bytes, ulong(len(so_bytes)), label.ljust(TOKEN_LABEL_BYTES, b" ")),
            "C_InitToken",
        )
    finally:
        module.C_Finalize(None)

    import pkcs11

    library = pkcs11.lib(str(token.module))
    with library.get_token(token_label=token.label).open(rw=True, so_pin=so_pin) as session:
        session.init_pin(user_pin)
    library.finalize()

    _write_secret(token.pin_file.parent / "so.pin", so_pin)
    _write_secret(token.pin_file, user_pin)
    log.info("initialized SoftHSM2 token %r; PINs written to %s", token.label, token.pin_file.parent)


def _check(result: int, call: str) -> None:
    if result != CKR_OK:
        raise RuntimeError(f"{call} failed with CKR 0x{result:x}")


def create_level_keys(config: Config) -> list[str]:
    """Create version 1 of each level's key where the token has none; return the labels created."""
    token = Pkcs11Token(config.token, read_pin(config.token))
    created = []
    try:
        for level, policy in config.levels.items():
            if token.newest_version(policy.key_id) is None:
                if token.profile.key_generation == "external":
                    raise ConfigError(
                        f"token profile {token.profile.name} cannot generate level keys; make an RSA key pair "
                        f"labelled {kek_label(policy.key_id, 1)} with the token vendor's tool, then run provision again"
                    )
                info = token.create_kek(policy.key_id, 1)
                created.append(info.label)
            else:
                log.info("level %s already has key %s", level.name, policy.key_id)
    finally:
        token.close()
    return created


def create_audit_checkpoint_key(config: Config) -> bool:
    """Create the audit log's checkpoint key where the token has none; return whether it was created."""
    from niemphong.daemon.audit.token_key import create_audit_key

    token = Pkcs11Token(config.token, read_pin(config.token))
    try:
        return create_audit_key(token)
    finally:
        token.close()
