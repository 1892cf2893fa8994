"""Version numbers the key ceremony gives new recovery key pairs."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from niemphong.daemon.recovery_ceremony import next_recovery_version
from niemphong.daemon.recovery_keys import RecoveryPublicKey

PUBLIC_KEY = rsa.generate_private_key(public_exponent=65537, key_size=3072).public_key()


def configured(version: int) -> RecoveryPublicKey:
    return RecoveryPublicKey("niemphong-recovery-mat", version, "RSA-OAEP-SHA1", PUBLIC_KEY, Path("mat.pem"))


def test_next_recovery_version_first_ceremony() -> None:
    assert next_recovery_version(None, 1) == 1


def test_next_recovery_version_new_token_skips_configured() -> None:
    # A replacement recovery token is empty, but version 1 is taken by the configured key.
    assert next_recovery_version(configured(1), 1) == 2


def test_next_recovery_version_token_ahead_of_configuration() -> None:
    assert next_recovery_version(configured(1), 4) == 4
