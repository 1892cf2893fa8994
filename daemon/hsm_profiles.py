"""Token profiles: what the daemon needs from one family of PKCS#11 tokens.

A profile is a TOML file in ``hsm_profiles/`` (installed as the package
``niemphong.hsm_profiles``), named by the ``[token] profile`` key of the
daemon configuration. It gives the PKCS#11 module's usual paths, how the
token is selected, which kind of key-encryption key (KEK) the daemon creates
there, the wrapping algorithms in order of preference, whether the token can
encrypt segments itself (in-token mode), a session limit, and the family's
known quirks with a source for each. ``niemphong hsm probe`` checks a token
against a profile (see hsm_probe.py).
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pkcs11 import Mechanism

# Wrapping algorithm names, as recorded in envelope key slots, and the
# standard PKCS#11 mechanism of each. A profile may name a vendor mechanism
# for an algorithm in its [mechanisms] table; it is tried before the standard one.
AES_WRAP_ALGORITHMS: Mapping[str, int] = {
    "AES-KWP": int(Mechanism.AES_KEY_WRAP_PAD),
    "AES-KW": int(Mechanism.AES_KEY_WRAP),
}
RSA_WRAP_ALGORITHMS = ("RSA-OAEP-SHA1", "RSA-OAEP-SHA256")
IN_TOKEN_AEADS = ("AES-GCM",)
KEK_KINDS = ("aes", "rsa")
MIN_RSA_BITS = 2048

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_KEYS = {
    "name", "family", "hardware", "modules", "select_by", "kek", "rsa_bits", "wrapping", "in_token",
    "sessions", "mechanisms", "quirks", "key_generation",
    # Notes on the audit checkpoint key (daemon/audit/token_key.py); not read here.
    "audit",
}


_QUIRK_KEYS = frozenset({"summary", "handling", "source"})
_QUIRK_VI_KEYS = frozenset({"summary_vi", "handling_vi"})


class ProfileError(ValueError):
    """A profile file is missing or invalid; the message names the file and key."""


@dataclass(frozen=True)
class Quirk:
    """A known deviation of the token family, what the daemon does about it, and its source."""

    summary: str
    handling: str
    source: str
    # The summary and handling in Vietnamese, for `niemphong hsm probe`; empty when the profile has none.
    summary_vi: str = ""
    handling_vi: str = ""


@dataclass(frozen=True)
class Profile:
    name: str
    family: str
    hardware: bool
    modules: tuple[str, ...]
    select_by: tuple[str, ...]
    kek: str
    # "token": `niemphongd provision` generates level keys in the token;
    # "external": the token cannot, and keys are made with the vendor's tool.
    key_generation: str
    rsa_bits: int
    aes_wrapping: tuple[str, ...]
    rsa_wrapping: tuple[str, ...]
    in_token: tuple[str, ...]
    max_sessions: int
    mechanisms: Mapping[str, int]
    quirks: tuple[Quirk, ...]
    path: str

    def mechanism_codes(self, algorithm: str) -> tuple[int, ...]:
        """Return the PKCS#11 mechanism codes of an AES wrapping algorithm, the profile's own first."""
        codes = []
        if algorithm in self.mechanisms:
            codes.append(self.mechanisms[algorithm])
        if algorithm in AES_WRAP_ALGORITHMS:
            codes.append(AES_WRAP_ALGORITHMS[algorithm])
        return tuple(codes)

    @property
    def wrapping(self) -> tuple[str, ...]:
        """The wrapping algorithms for this family's KEK kind, in order of preference."""
        return self.rsa_wrapping if self.kek == "rsa" else self.aes_wrapping


def callable_mechanism(code: int) -> Mechanism | None:
    """Return ``code`` as a python-pkcs11 Mechanism, or None when python-pkcs11 cannot call it.

    python-pkcs11 0.10.1 accepts only members of its Mechanism enum, so a
    vendor-defined code (0x80000000 and above) can be probed but not used.
    """
    try:
        return Mechanism(code)
    except ValueError:
        return None


def profile_names() -> list[str]:
    """List the names of the profiles shipped with the daemon."""
    folder = importlib.resources.files("niemphong.hsm_profiles")
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".toml"))


def load_profile(name_or_path: str) -> Profile:
    """Load a shipped profile by name, or a profile file by path (a value containing '/').

    Raises:
        ProfileError: no such profile, or the file is invalid.
    """
    if "/" in name_or_path:
        path = Path(name_or_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProfileError(f"cannot read token profile {path}: {exc.strerror}") from None
        origin = str(path)
    else:
        if not _NAME.match(name_or_path):
            raise ProfileError(f"invalid token profile name {name_or_path!r}; expected one of {profile_names()}")
        resource = importlib.resources.files("niemphong.hsm_profiles").joinpath(f"{name_or_path}.toml")
        if not resource.is_file():
            raise ProfileError(f"unknown token profile {name_or_path!r}; expected one of {profile_names()}")
        text = resource.read_text(encoding="utf-8")
        origin = f"hsm_profiles/{name_or_path}.toml"

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{origin}: invalid TOML: {exc}") from None
    return _parse(data, origin)


def _parse(data: Mapping[str, Any], origin: str) -> Profile:
    def fail(key: str, problem: str) -> ProfileError:
        return ProfileError(f"{origin}: key '{key}': {problem}")

    def strings(table: Mapping[str, Any], key: str, prefix: str = "") -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise fail(prefix + key, "must be a list of non-empty strings")
        return tuple(value)

    def table(key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise fail(key, "must be a table")
        return value

    unknown = set(data) - _KEYS
    if unknown:
        raise fail(sorted(unknown)[0], f"unknown key; expected one of {sorted(_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", "must be lowercase letters, digits and '-'")
    family = data.get("family")
    if not isinstance(family, str) or not family:
        raise fail("family", "must be a non-empty string")
    hardware = data.get("hardware")
    if not isinstance(hardware, bool):
        raise fail("hardware", "must be true or false")
    modules = strings(data, "modules")
    if not modules:
        raise fail("modules", "name at least one module path")
    select_by = strings(data, "select_by")
    if not select_by or set(select_by) - {"label", "serial"}:
        raise fail("select_by", "must list label, serial or both")

    kek = data.get("kek")
    if kek not in KEK_KINDS:
        raise fail("kek", f"must be one of {list(KEK_KINDS)}")
    key_generation = data.get("key_generation", "token")
    if key_generation not in ("token", "external"):
        raise fail("key_generation", "must be \"token\" or \"external\"")
    rsa_bits = data.get("rsa_bits", 3072)
    if isinstance(rsa_bits, bool) or not isinstance(rsa_bits, int) or not MIN_RSA_BITS <= rsa_bits <= 8192:
        raise fail("rsa_bits", f"must be an integer from {MIN_RSA_BITS} to 8192")

    wrapping = table("wrapping")
    aes_wrapping = strings(wrapping, "aes", "wrapping.")
    rsa_wrapping = strings(wrapping, "rsa", "wrapping.")
    for algorithm in aes_wrapping:
        if algorithm not in AES_WRAP_ALGORITHMS:
            raise fail("wrapping.aes", f"unknown algorithm {algorithm!r}; expected one of {list(AES_WRAP_ALGORITHMS)}")
    for algorithm in rsa_wrapping:
        if algorithm not in RSA_WRAP_ALGORITHMS:
            raise fail("wrapping.rsa", f"unknown algorithm {algorithm!r}; expected one of {list(RSA_WRAP_ALGORITHMS)}")
    if kek == "aes" and not aes_wrapping:
        raise fail("wrapping.aes", "an AES KEK needs at least one AES wrapping algorithm")
    if kek == "rsa" and not rsa_wrapping:
        raise fail("wrapping.rsa", "an RSA KEK needs at least one RSA-OAEP algorithm")

    in_token = strings(table("in_token"), "aead", "in_token.")
    for aead in in_token:
        if aead not in IN_TOKEN_AEADS:
            raise fail("in_token.aead", f"unknown AEAD {aead!r}; expected one of {list(IN_TOKEN_AEADS)}")

    sessions = table("sessions")
    max_sessions = sessions.get("max")
    if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or not 2 <= max_sessions <= 4096:
        raise fail("sessions.max", "must be an integer from 2 to 4096")

    mechanisms: dict[str, int] = {}
    for algorithm, code in table("mechanisms").items():
        if algorithm not in AES_WRAP_ALGORITHMS:
            raise fail(f"mechanisms.{algorithm}", f"expected one of {list(AES_WRAP_ALGORITHMS)}")
        if not isinstance(code, str) or not re.fullmatch(r"0x[0-9a-fA-F]{1,8}", code):
            raise fail(f"mechanisms.{algorithm}", "must be a hexadecimal mechanism code such as \"0x80000171\"")
        mechanisms[algorithm] = int(code, 16)

    quirks_value = data.get("quirks", [])
    if not isinstance(quirks_value, list):
        raise fail("quirks", "must be an array of tables")
    quirks = []
    for index, entry in enumerate(quirks_value):
        if not isinstance(entry, dict) or not _QUIRK_KEYS <= set(entry) <= _QUIRK_KEYS | _QUIRK_VI_KEYS:
            raise fail(f"quirks[{index}]", "needs summary, handling and source, and may add summary_vi and handling_vi")
        if not all(isinstance(entry[key], str) and entry[key] for key in entry):
            raise fail(f"quirks[{index}]", "summary, handling, source and their translations must be non-empty strings")
        quirks.append(Quirk(
            entry["summary"], entry["handling"], entry["source"], entry.get("summary_vi", ""), entry.get("handling_vi", ""),
        ))

    return Profile(
        name=name, family=family, hardware=hardware, modules=modules, select_by=select_by, kek=kek,
        key_generation=key_generation, rsa_bits=rsa_bits, aes_wrapping=aes_wrapping, rsa_wrapping=rsa_wrapping, in_token=in_token,
        max_sessions=max_sessions, mechanisms=mechanisms, quirks=tuple(quirks), path=origin,
    )
