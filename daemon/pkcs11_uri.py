"""Parse the token-selecting part of a PKCS#11 URI (RFC 7512)."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

# Path attributes of RFC 7512 section 2.3. Only token and serial select a
# token here; the others are accepted so a URI copied from p11tool works.
_PATH_ATTRIBUTES = {
    "token", "serial", "manufacturer", "model", "library-manufacturer",
    "library-description", "library-version", "slot-description",
    "slot-manufacturer", "slot-id", "object", "type", "id",
}


def parse_pkcs11_uri(uri: str) -> dict[str, str]:
    """Return the path attributes of ``uri``, percent-decoded.

    Raises:
        ValueError: the text is not a PKCS#11 URI, repeats an attribute, or
            carries a PIN (``pin-value``), which must never sit in a
            configuration file or on a command line.
    """
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "pkcs11" or not _:
        raise ValueError("a PKCS#11 URI starts with 'pkcs11:'")

    path, _, query = rest.partition("?")
    for item in filter(None, query.split("&")):
        name = item.partition("=")[0]
        if name == "pin-value":
            raise ValueError("the URI carries pin-value; put the PIN in pin_file or a systemd credential")

    attributes: dict[str, str] = {}
    for item in filter(None, path.split(";")):
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"attribute {name!r} has no value")
        if name not in _PATH_ATTRIBUTES:
            raise ValueError(f"unknown path attribute {name!r}")
        if name in attributes:
            raise ValueError(f"attribute {name!r} appears twice")
        try:
            attributes[name] = unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"attribute {name!r} is not UTF-8 after percent-decoding") from exc
    return attributes
