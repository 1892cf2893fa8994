"""A throwaway PKI for development: a CA, niemphongd's server certificate and client identities.

Keys are EC P-256 and are written unencrypted with mode 0600, because gRPC
reads PEM keys without a passphrase. Nothing here is fit for production,
because the CA key sits on disk beside the certificates it signs.

An identity's subject carries its name as CN and each of its roles as an OU
attribute, which is where niemphongd reads them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("scanner", "viewer", "approver", "head", "custodian", "auditor", "operator")

# Identities that `niemphong dev init` creates, by name, with their roles.
DEFAULT_IDENTITIES: dict[str, str] = {
    "scanner": "scanner",
    "viewer": "viewer",
    "approver-1": "approver",
    "approver-2": "approver",
    "head": "approver,head",
    "custodian": "custodian",
    "auditor": "auditor",
    "operator": "operator",
}

# Made-up full names and titles (chức vụ) of the dev identities that approve,
# printed on copy stamps and handover minutes.
DEV_PEOPLE: dict[str, tuple[str, str]] = {
    "approver-1": ("Trần Thị Bình", "Phó Chánh Văn phòng"),
    "approver-2": ("Lê Văn Cường", "Phó Giám đốc"),
    "head": ("Nguyễn Văn An", "Giám đốc"),
}

CA_COMMON_NAME = "Niêm Phong dev CA"
SERVER_COMMON_NAME = "niemphongd"
SERVER_DNS_NAMES = ("niemphongd", "localhost")
SERVER_IP_ADDRESSES = ("127.0.0.1", "::1")

LEAF_VALIDITY = dt.timedelta(days=730)
# The CA outlives the identities it signs, so that `dev add-identity` near
# the end of a CA's life still gets a usable certificate.
CA_VALIDITY = dt.timedelta(days=3 * 365)
# Certificates start slightly in the past to tolerate clock differences
# between the machine that issues them and the one that checks them.
CLOCK_SKEW = dt.timedelta(minutes=5)

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"


@dataclass(frozen=True)
class CertificateAuthority:
    """The dev CA's certificate and private key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_ca(now: dt.datetime | None = None) -> CertificateAuthority:
    """Create a self-signed CA that may sign end-entity certificates only."""
    now = now or _now()
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(certificate=certificate, private_key=key)


def _issue(
    ca: CertificateAuthority,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    now: dt.datetime | None,
    alternative_names: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = now or _now()
    key = _new_key()
    public_key = key.public_key()
    not_after = min(now + LEAF_VALIDITY, ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()), critical=False
        )
    )
    if alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    return builder.sign(ca.private_key, hashes.SHA256()), key


def issue_server_certificate(
    ca: CertificateAuthority, now: dt.datetime | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Issue niemphongd's TLS server certificate, valid for its name and for loopback."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)])
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_DNS_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_IP_ADDRESSES]
    return _issue(ca, subject, ExtendedKeyUsageOID.SERVER_AUTH, now, names)


def parse_roles(text: str) -> tuple[str, ...]:
    """Split a comma-separated role list such as "viewer,approver". Raises ValueError for an unknown or empty list."""
    roles = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [role for role in roles if role not in ROLES]
    if not roles or unknown:
        raise ValueError(f"invalid roles {text!r}; expected some of {', '.join(ROLES)}")
    return roles


def issue_client_certificate(
    ca: CertificateAuthority,
    name: str,
    role: str,
    now: dt.datetime | None = None,
    full_name: str = "",
    title: str = "",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Issue a client certificate with subject CN=name and one OU per role.

    ``role`` is one role or a comma-separated list, such as "viewer,approver".
    A ``full_name`` goes into the surname (first word) and given name (the
    rest) attributes, a ``title`` into the title attribute. Raises ValueError
    for an unknown role.
    """
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, each) for each in parse_roles(role)]
    surname, _, given_name = unicodedata.normalize("NFC", full_name).strip().partition(" ")
    if surname:
        attributes.append(x509.NameAttribute(NameOID.SURNAME, surname))
    if given_name.strip():
        attributes.append(x509.NameAttribute(NameOID.GIVEN_NAME, given_name.strip()))
    if title.strip():
        attributes.append(x509.NameAttribute(NameOID.TITLE, unicodedata.normalize("NFC", title).strip()))
    return _issue(ca, x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, now)


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` and write ``data``. Raises FileExistsError if it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        # The mode given to os.open is reduced by the umask; set it exactly.
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        os.close(descriptor)


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM private key with mode 0600."""
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    write_new_file(path, pem, 0o600)


def write_certificate(path: Path, certificate: x509.Certificate) -> None:
    """Write a PEM certificate with mode 0644."""
    write_new_file(path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def write_ca(pki_folder: Path, ca: CertificateAuthority) -> None:
    """Write the CA's certificate and key into ``pki_folder``."""
    write_certificate(pki_folder / CA_CERT_FILE, ca.certificate)
    write_private_key(pki_folder / CA_KEY_FILE, ca.private_key)


def load_ca(pki_folder: Path) -> CertificateAuthority:
    """Read the CA's certificate and key from ``pki_folder``.

    Raises OSError if either file is missing, and ValueError if the key is not an EC key.
    """
    certificate = x509.load_pem_x509_certificate((pki_folder / CA_CERT_FILE).read_bytes())
    key = serialization.load_pem_private_key((pki_folder / CA_KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki_folder / CA_KEY_FILE} is not an EC private key")
    return CertificateAuthority(certificate=certificate, private_key=key)


def write_server_identity(pki_folder: Path, ca: CertificateAuthority) -> None:
    """Issue niemphongd's certificate and write server.pem and server.key into ``pki_folder``."""
    certificate, key = issue_server_certificate(ca)
    write_certificate(pki_folder / SERVER_CERT_FILE, certificate)
    write_private_key(pki_folder / SERVER_KEY_FILE, key)


def write_client_identity(
    folder: Path, name: str, role: str, ca: CertificateAuthority, full_name: str = "", title: str = ""
) -> Path:
    """Issue a client identity and write cert.pem, key.pem and ca.pem into the new ``folder``.

    Raises FileExistsError if ``folder`` exists, and ValueError for an unknown role.
    """
    certificate, key = issue_client_certificate(ca, name, role, full_name=full_name, title=title)
    folder.mkdir(mode=0o700)
    write_certificate(folder / "cert.pem", certificate)
    write_private_key(folder / "key.pem", key)
    write_certificate(folder / "ca.pem", ca.certificate)
    return folder
