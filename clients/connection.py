"""Server addresses, client identities and the mTLS channel to niemphongd.

Every connection uses mutual TLS, over a Unix socket as well as over TCP:
the daemon learns the caller's name and role from the client certificate.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from niemphong.clients.errors import ClientError, ExitCode, os_error_text

log = logging.getLogger(__name__)

# Streamed chunks are at most 1 MiB by default. The daemon accepts messages of
# up to the chunk bound plus 64 KiB, which leaves room for protobuf framing.
CHUNK_BYTES = 1024 * 1024
MAX_MESSAGE_BYTES = CHUNK_BYTES + 64 * 1024

# Deadline for unary calls. Seal and Open streams have none, because their
# duration grows with the document's size and the link's speed.
UNARY_TIMEOUT_SECONDS = 30.0

# The server certificate's name, checked instead of the address's host name
# because a Unix socket has none. NIEMPHONG_SERVER_NAME overrides it.
DEFAULT_SERVER_NAME = "niemphongd"

# Linux's sockaddr_un.sun_path is 108 bytes including the terminating NUL.
UNIX_SOCKET_PATH_MAX = 107

IDENTITY_FILES = ("cert.pem", "key.pem", "ca.pem")

_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})$")


@dataclass(frozen=True)
class ServerAddress:
    """A daemon address: the gRPC target and the text the user wrote."""

    target: str
    display: str
    unix_path: str | None = None


@dataclass(frozen=True)
class Identity:
    """A client certificate, its private key and the CA that signs niemphongd's certificate."""

    folder: Path
    certificate: bytes
    private_key: bytes = field(repr=False)
    ca_certificates: bytes
    key_mode: int


def identity_common_name(identity: Identity) -> str | None:
    """Return the CN of the identity's certificate, the name niemphongd knows the caller by, or None."""
    try:
        certificate = x509.load_pem_x509_certificate(identity.certificate)
    except ValueError:
        return None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return None
    return str(names[0].value)


def check_unix_socket_path(path: str) -> None:
    """Raise ClientError (usage) when ``path`` is too long for a Unix socket."""
    length = len(os.fsencode(path))
    if length > UNIX_SOCKET_PATH_MAX:
        raise ClientError(
            ExitCode.USAGE, "usage.socket_too_long", path=path, length=length, max=UNIX_SOCKET_PATH_MAX
        )


def parse_server_address(value: str) -> ServerAddress:
    """Parse ``unix:/abs/path``, ``unix:///abs/path`` or ``HOST:PORT``.

    Raises ClientError (usage) for anything else, including a relative socket
    path, a missing port and a port outside 1 to 65535.
    """
    text = value.strip()

    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if path.startswith("//"):
            # unix:///abs/path is the URI form; its authority must be empty.
            path = path.removeprefix("//")
        if not path.startswith("/") or path.startswith("//"):
            raise ClientError(ExitCode.USAGE, "usage.bad_server", value=value)
        check_unix_socket_path(path)
        return ServerAddress(target=f"unix:{path}", display=value, unix_path=path)

    match = _HOST_PORT.match(text)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise ClientError(ExitCode.USAGE, "usage.bad_server", value=value)
    return ServerAddress(target=text, display=value)


def resolve_server(option: str | None, environ: Mapping[str, str]) -> ServerAddress:
    """Return the daemon address from ``--server`` or NIEMPHONG_SERVER."""
    value = option or environ.get("NIEMPHONG_SERVER", "")
    if not value.strip():
        raise ClientError(ExitCode.USAGE, "usage.no_server")
    return parse_server_address(value)


def resolve_identity_folder(option: str | None, environ: Mapping[str, str]) -> Path:
    """Return the identity folder from ``--identity`` or NIEMPHONG_IDENTITY.

    A bare name such as ``viewer`` that is not a folder here is looked up in
    NIEMPHONG_IDENTITY_DIR, which ``niemphong dev init`` writes to client.env.
    """
    value = option or environ.get("NIEMPHONG_IDENTITY", "")
    if not value:
        raise ClientError(ExitCode.USAGE, "usage.no_identity")

    folder = Path(value).expanduser()
    identities_root = environ.get("NIEMPHONG_IDENTITY_DIR", "")
    if identities_root and "/" not in value and not folder.is_dir():
        folder = Path(identities_root).expanduser() / value
    return folder


def load_identity(folder: Path) -> Identity:
    """Read cert.pem, key.pem and ca.pem from ``folder``.

    Raises ClientError (usage) naming the first file that is missing or
    unreadable.
    """
    contents: dict[str, bytes] = {}
    for name in IDENTITY_FILES:
        path = folder / name
        try:
            contents[name] = path.read_bytes()
        except FileNotFoundError as exc:
            raise ClientError(ExitCode.USAGE, "usage.identity_file_missing", path=str(path)) from exc
        except OSError as exc:
            raise ClientError(
                ExitCode.USAGE, "usage.identity_unreadable", path=str(path), error=os_error_text(exc)
            ) from exc

    key_mode = stat.S_IMODE((folder / "key.pem").stat().st_mode)
    return Identity(
        folder=folder,
        certificate=contents["cert.pem"],
        private_key=contents["key.pem"],
        ca_certificates=contents["ca.pem"],
        key_mode=key_mode,
    )


def channel_options(environ: Mapping[str, str]) -> list[tuple[str, object]]:
    """Return the gRPC channel options: server name and message size bounds."""
    server_name = environ.get("NIEMPHONG_SERVER_NAME") or DEFAULT_SERVER_NAME
    return [
        ("grpc.ssl_target_name_override", server_name),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]


def open_channel(server: ServerAddress, identity: Identity, environ: Mapping[str, str]) -> grpc.Channel:
    """Open an mTLS channel to niemphongd; the connection is made on the first call."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_certificates,
        private_key=identity.private_key,
        certificate_chain=identity.certificate,
    )
    log.debug("opening channel to %s with identity %s", server.target, identity.folder)
    return grpc.secure_channel(server.target, credentials, options=channel_options(environ))
