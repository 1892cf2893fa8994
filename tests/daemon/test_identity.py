"""The role table covers every RPC, and certificates map to identities."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from niemphong.daemon.api import api_methods
from niemphong.daemon.identity import METHOD_ROLES, ROLES, StreamLimiter, identity_from_pem


def service_methods() -> set[str]:
    return set(api_methods())


def test_role_table_covers_every_rpc() -> None:
    assert service_methods() - set(METHOD_ROLES) == set()


def test_role_table_names_only_real_rpcs() -> None:
    assert set(METHOD_ROLES) - service_methods() == set()


def test_role_table_uses_known_roles() -> None:
    for method, roles in METHOD_ROLES.items():
        assert roles, method
        assert roles <= ROLES, method


def certificate(common_names: list[str], units: list[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in units]
    name = x509.Name(attributes)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_identity_roles_from_units() -> None:
    identity = identity_from_pem(certificate(["lead"], ["viewer", "approver", "Phòng Hành chính"]))

    assert identity is not None
    assert identity.name == "lead"
    assert identity.roles == frozenset({"viewer", "approver"})


def test_identity_without_known_role_rejected() -> None:
    assert identity_from_pem(certificate(["someone"], ["Phòng Hành chính"])) is None


def test_identity_without_common_name_rejected() -> None:
    assert identity_from_pem(certificate([], ["viewer"])) is None


def test_identity_name_case_folded() -> None:
    identity = identity_from_pem(certificate(["Viewer"], ["approver"]))

    assert identity is not None
    assert identity.name == "viewer"


def test_stream_limiter_bounds_each_identity() -> None:
    limiter = StreamLimiter(per_identity=2, total=3)

    assert limiter.acquire("viewer")
    assert limiter.acquire("viewer")
    assert not limiter.acquire("viewer")
    assert limiter.acquire("scanner")
    assert not limiter.acquire("approver-1")
    limiter.release("viewer")
    assert limiter.acquire("approver-1")
