"""Ask niemphongd directly whether it accepts the client certificate, after a connection closed at once.

Under TLS 1.3 the server checks the client certificate after the client
has finished its side of the handshake, so grpcio reports a rejected
certificate only as "Socket closed", as it reports a daemon that died.
This module repeats the handshake with the standard library's ssl module
and reads the server's first record. A daemon that accepts the certificate
sends its HTTP/2 settings at once; one that rejects it sends a certificate
alert, or, as grpcio 1.85's server does, closes the connection without a
record. A refused connection or any other outcome means something else went
wrong.
"""

from __future__ import annotations

import logging
import socket
import ssl

from niemphong.clients.connection import Identity, ServerAddress

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 5
# OpenSSL reasons of the alerts a TLS server sends for a client certificate it does not accept.
_CERTIFICATE_ALERTS = (
    "ALERT_BAD_CERTIFICATE", "ALERT_UNKNOWN_CA", "ALERT_UNSUPPORTED_CERTIFICATE", "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_CERTIFICATE_REQUIRED", "ALERT_CERTIFICATE_EXPIRED", "ALERT_CERTIFICATE_REVOKED", "ALERT_DECRYPT_ERROR",
    "ALERT_HANDSHAKE_FAILURE",
)


def _connect(server: ServerAddress) -> socket.socket:
    if server.unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CHECK_TIMEOUT_SECONDS)
        sock.connect(server.unix_path)
        return sock
    host, _, port = server.target.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=CHECK_TIMEOUT_SECONDS)


def client_certificate_rejected(server: ServerAddress, identity: Identity, server_name: str) -> bool:
    """Return True when niemphongd rejects the identity's certificate with a certificate alert or a close."""
    context = ssl.create_default_context(cafile=str(identity.folder / "ca.pem"))
    context.load_cert_chain(str(identity.folder / "cert.pem"), str(identity.folder / "key.pem"))
    context.set_alpn_protocols(["h2"])
    try:
        raw = _connect(server)
    except (OSError, ValueError) as exc:
        log.debug("TLS check of %s could not connect: %s", server.display, exc)
        return False

    with raw:
        try:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                first = tls.recv(1)
        except ssl.SSLEOFError as exc:
            # The daemon closed the connection without a TLS close_notify, right after the handshake.
            log.debug("TLS check of %s: connection closed: %s", server.display, exc.reason)
            return True
        except ssl.SSLError as exc:
            log.debug("TLS check of %s: %s", server.display, exc.reason)
            return any(alert in str(exc.reason) for alert in _CERTIFICATE_ALERTS)
        except (ConnectionResetError, BrokenPipeError) as exc:
            # The daemon listened, then dropped the connection during or right after the handshake.
            log.debug("TLS check of %s: connection dropped: %s", server.display, exc)
            return True
        except OSError as exc:
            log.debug("TLS check of %s failed: %s", server.display, exc)
            return False

    log.debug("TLS check of %s: handshake done, first read returned %d bytes", server.display, len(first))
    return first == b""
