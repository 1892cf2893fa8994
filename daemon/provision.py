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
    init_softhsm_slot(token.module, token.label, so_pin, user_pin)

    _write_secret(token.pin_file.parent / "so.pin", so_pin)
    _write_secret(token.pin_file, user_pin)
    log.info("initialized SoftHSM2 token %r; PINs written to %s", token.label, token.pin_file.parent)


def init_softhsm_slot(module_path: Path, label: str, so_pin: str, user_pin: str) -> None:
    """Initialize SoftHSM2's free slot as a token called ``label`` with the given PINs."""
    label_bytes = label.encode("utf-8")
    if len(label_bytes) > TOKEN_LABEL_BYTES:
        raise ValueError(f"token label {label!r} is longer than {TOKEN_LABEL_BYTES} bytes")

    module = ctypes.CDLL(str(module_path))
    ulong = ctypes.c_ulong
    _check(module.C_Initialize(None), "C_Initialize")
    try:
        count = ulong(0)
        _check(module.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList")
        slots = (ulong * count.value)()
        _check(module.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
        if not count.value:
            raise RuntimeError(f"{module_path} offers no slot")
        # SoftHSM2 always lists one free, uninitialized slot last.
        free_slot = ulong(slots[count.value - 1])
        so_bytes = so_pin.encode("ascii")
        _check(
            module.C_InitToken(free_slot, so_bytes, ulong(len(so_bytes)), label_bytes.ljust(TOKEN_LABEL_BYTES, b" ")),
            "C_InitToken",
        )
    finally:
        module.C_Finalize(None)

    import pkcs11

    library = pkcs11.lib(str(module_path))
    with library.get_token(token_label=label).open(rw=True, so_pin=so_pin) as session:
        session.init_pin(user_pin)
    library.finalize()


def _check(result: int, call: str) -> None:
    if result != CKR_OK:
        raise RuntimeError(f"{call} failed with CKR 0x{result:x}")


def create_level_keys(config: Config) -> list[str]:
    """Create a key version for each level that has no active one in the token; return the labels created.

    The versions go through the key registry in the state store, so a level
    whose token was lost gets the next unused version number, never one that
    old envelopes name. This is the installation step and needs no
    custodian; later changes go through KeyService.
    """
    from niemphong.daemon import keys
    from niemphong.daemon.store import open_store

    token = Pkcs11Token(config.token, read_pin(config.token))
    store = open_store(config)
    recovery_keys = config.recovery.keys if config.recovery else {}
    registry = keys.KeyRegistry(store, token, config.levels, recovery_keys)
    created = []
    try:
        registry.reconcile()
        in_token = {(info.key_id, info.version) for info in token.list_keks()}
        for level, policy in config.levels.items():
            with store.transaction() as tx:
                records = tx.list_key_versions(policy.key_id)
                active = [
                    record for record in records
                    if record.state == keys.ACTIVE and (policy.key_id, record.version) in in_token
                ]
                if active:
                    log.info("level %s already has key %s v%d", level.name, policy.key_id, active[0].version)
                    continue
                if token.profile.key_generation == "external":
                    used = {record.version for record in records}
                    used |= {version for key_id, version in in_token if key_id == policy.key_id}
                    raise ConfigError(
                        f"token profile {token.profile.name} cannot generate level keys; make an RSA key pair "
                        f"labelled {kek_label(policy.key_id, max(used, default=0) + 1)} with the token vendor's "
                        "tool, then run provision again"
                    )
                operation = keys.ROTATE if any(record.state == keys.ACTIVE for record in records) else keys.CREATE
                version = registry.apply_change(tx, operation, level, None)
            created.append(kek_label(policy.key_id, version))
    finally:
        token.close()
        store.close()
    return created


def create_audit_checkpoint_key(config: Config) -> bool:
    """Create the audit log's checkpoint key where the token has none; return whether it was created."""
    from niemphong.daemon.audit.token_key import create_audit_key

    token = Pkcs11Token(config.token, read_pin(config.token))
    try:
        return create_audit_key(token)
    finally:
        token.close()
