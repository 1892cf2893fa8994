"""The key ceremony that makes the recovery token: ``niemphongd recovery-init``.

For each sealable level the ceremony generates an RSA key pair inside the
recovery token: the private half sensitive, non-extractable and allowed only
to unwrap; the public half exported as a PEM file for the daemon's
configuration. It proves each pair works by encrypting a random test key to
the exported public half on the host and unwrapping it in the token.

The token's user PIN becomes the XOR of two random 16-byte shares, each
written to its own file for one custodian, so that no one person can log in
to the recovery token. A SoftHSM2 token is initialized here
(``--init-softhsm``, for development and tests); a hardware token is
initialized first with its vendor's tool and an initial user PIN, which the
ceremony replaces (``--initial-pin-file``). docs/key-ceremony.md describes
the whole ceremony, people and paper included.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11x

from niemphong.daemon.config import Config, read_pin
from niemphong.daemon.errors import TokenUnavailable
from niemphong.daemon.hsm import _load_library, kek_label
from niemphong.daemon.levels import Level
from niemphong.daemon.recovery import SHARE_BYTES, RecoveryToken, combine_shares, find_token
from niemphong.daemon.recovery_keys import (
    DEFAULT_RECOVERY_WRAP,
    MIN_RSA_BITS,
    RecoveryPublicKey,
    default_recovery_key_id,
    public_key_pem,
)

log = logging.getLogger(__name__)

DEFAULT_RSA_BITS = 3072

_PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.WRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.VERIFY: False,
    Attribute.MODIFIABLE: False,
}
_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.UNWRAP: True,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}


@dataclass(frozen=True)
class CeremonyResult:
    """What the ceremony made, for the minutes (biên bản) of the ceremony."""

    token_label: str
    token_serial: str
    keys: dict[Level, RecoveryPublicKey]
    share_files: tuple[Path, Path]
    config_snippet: Path


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_ceremony(
    config: Config,
    out: Path,
    *,
    label: str,
    module: Path | None = None,
    init_softhsm: bool = False,
    initial_pin_file: Path | None = None,
    bits: int = DEFAULT_RSA_BITS,
    version: int | None = None,
) -> CeremonyResult:
    """Create recovery key pairs in the recovery token and write the public keys and PIN shares to ``out``.

    Args:
        config: The daemon configuration, for its levels and token module.
        out: A new or empty folder for the PEM files, the two share files and
            ``recovery.toml``.
        label: The recovery token's label.
        module: Its PKCS#11 module; the working token's module by default.
        init_softhsm: Initialize a free SoftHSM2 slot as the recovery token.
        initial_pin_file: For a token initialized beforehand: the file
            holding its initial user PIN, replaced by the combined shares.
        bits: RSA modulus length, at least MIN_RSA_BITS.
        version: Version number of the new key pairs; by default one more
            than the newest the token holds for each key id.

    Raises:
        ValueError: Bad arguments, or a folder that is not empty.
        TokenUnavailable: The token cannot be found or logged in to.
        RuntimeError: A key pair failed its self-test.
    """
    if init_softhsm == (initial_pin_file is not None):
        raise ValueError("give exactly one of --init-softhsm and --initial-pin-file")
    if bits < MIN_RSA_BITS:
        raise ValueError(f"--bits must be at least {MIN_RSA_BITS}")
    if label == config.token.label:
        raise ValueError("the recovery token must not be the working token")
    module_path = module or config.token.module
    # recovery.toml names files by absolute path, since it is appended to a
    # configuration that may sit in another folder.
    out = Path(os.path.abspath(out))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise ValueError(f"{out} is not empty; the ceremony writes into an empty folder")
    for name, value in config.token.env.items():
        os.environ[name] = value

    shares = (secrets.token_bytes(SHARE_BYTES), secrets.token_bytes(SHARE_BYTES))
    pin = combine_shares(*shares)
    if init_softhsm:
        from niemphong.daemon.provision import init_softhsm_slot

        init_softhsm_slot(module_path, label, secrets.token_urlsafe(24), pin)
        log.info("initialized SoftHSM2 token %r as the recovery token", label)
    else:
        assert initial_pin_file is not None
        _replace_pin(module_path, label, initial_pin_file, pin)

    library = _load_library(str(module_path))
    token = find_token(library, label, None)
    serial = token.serial.decode("ascii", "replace").strip()
    recovery_ids = config.recovery.keys if config.recovery else {}
    created: dict[Level, RecoveryPublicKey] = {}
    try:
        with token.open(rw=True, user_pin=pin) as session:
            for level in config.levels:
                existing = recovery_ids.get(level)
                key_id = existing.key_id if existing else default_recovery_key_id(level.config_name)
                key_version = version or next_recovery_version(existing, _next_version(session, key_id))
                created[level] = _generate(session, key_id, key_version, bits, out)
    except p11x.PKCS11Error as exc:
        raise TokenUnavailable(f"recovery token {label!r} failed: {type(exc).__name__}") from exc

    _self_test(config, module_path, label, pin, created)
    del pin

    share_files = (out / "share-1.txt", out / "share-2.txt")
    for path, share in zip(share_files, shares):
        _write_private(path, share.hex().encode("ascii") + b"\n")
    snippet = out / "recovery.toml"
    _write_private(snippet, _render_snippet(module_path, label, serial, created).encode("utf-8"))
    log.info("recovery ceremony done: %d key pairs in token %r (serial %s)", len(created), label, serial)
    return CeremonyResult(label, serial, created, share_files, snippet)


def _replace_pin(module_path: Path, label: str, initial_pin_file: Path, pin: str) -> None:
    from niemphong.daemon.config import TokenConfig

    initial = read_pin(TokenConfig(
        module=module_path, label=label, serial=None, pin_file=initial_pin_file, pin_credential=None,
        sessions=1, profile="", env={},
    ))
    library = _load_library(str(module_path))
    token = find_token(library, label, None)
    try:
        with token.open(rw=True, user_pin=initial) as session:
            session.set_pin(initial, pin)
    except p11x.PinIncorrect as exc:
        raise TokenUnavailable(f"the initial PIN in {initial_pin_file} is incorrect") from exc
    log.info("replaced the initial user PIN of token %r with the combined shares", label)


def next_recovery_version(configured: RecoveryPublicKey | None, next_in_token: int) -> int:
    """Return the version for a new recovery key pair: past both the configured key and the token's keys.

    A new recovery token starts empty, but its pairs must not reuse the
    configured version: slots name a recovery key by id and version only,
    so a rewrap would take an old slot for a current one and keep it.
    """
    if configured is None:
        return next_in_token
    return max(configured.version + 1, next_in_token)


def _next_version(session: object, key_id: str) -> int:
    versions = []
    for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):  # type: ignore[attr-defined]
        name, slash, number = (key.label or "").rpartition("/v")
        if slash and name == key_id and number.isdigit():
            versions.append(int(number))
    return max(versions, default=0) + 1


def _generate(session: object, key_id: str, version: int, bits: int, out: Path) -> RecoveryPublicKey:
    label = kek_label(key_id, version)
    public, _private = session.generate_keypair(  # type: ignore[attr-defined]
        KeyType.RSA, bits, label=label, id=label.encode("ascii"), store=True,
        public_template=_PUBLIC_TEMPLATE, private_template=_PRIVATE_TEMPLATE,
    )
    modulus = int.from_bytes(public[Attribute.MODULUS], "big")
    exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    public_key = rsa.RSAPublicNumbers(exponent, modulus).public_key()

    path = out / f"{key_id}-v{version}.pem"
    _write_private(path, public_key_pem(public_key))
    os.chmod(path, 0o644)
    key = RecoveryPublicKey(key_id, version, DEFAULT_RECOVERY_WRAP, public_key, path)
    log.info("generated recovery key pair %s (%d bits), fingerprint %s", label, bits, key.fingerprint)
    return key


def _self_test(config: Config, module_path: Path, label: str, pin: str, keys: dict[Level, RecoveryPublicKey]) -> None:
    from niemphong.daemon.config import RecoveryConfig

    recovery = RecoveryConfig(module=module_path, label=label, serial=None, session_seconds=60, keys=keys)
    token = RecoveryToken(recovery, pin)
    try:
        for key in keys.values():
            probe = secrets.token_bytes(32)
            if token.unwrap(key.wrap(probe)) != probe:
                raise RuntimeError(f"recovery key {key.key_id} v{key.version} failed its self-test")
    finally:
        token.close()


def _render_snippet(module_path: Path, label: str, serial: str, keys: dict[Level, RecoveryPublicKey]) -> str:
    lines = [
        "# Recovery configuration written by niemphongd recovery-init. Append it to",
        "# niemphongd.toml. The PIN is never configured: two custodians hold its shares.",
        f"# Recovery token serial: {serial}",
        "[recovery]",
        f"module = {_toml_string(str(module_path))}",
        f"label = {_toml_string(label)}",
    ]
    for level, key in keys.items():
        lines += [
            "",
            f"# SHA-256 fingerprint of the public key: {key.fingerprint}",
            f"[recovery.keys.{level.config_name}]",
            f"public_key = {_toml_string(str(key.path))}",
            f"key_id = {_toml_string(key.key_id)}",
            f"version = {key.version}",
            f"wrap_algorithm = {_toml_string(key.wrap_algorithm)}",
        ]
    return "\n".join(lines) + "\n"
