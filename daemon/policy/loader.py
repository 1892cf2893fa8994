"""The policy file (TOML): key policy per level, catalogs and standing decisions.

niemphongd.toml names it in ``[policy] file``. It is a file of its own
because the agency's head approves the policy while operators run the
server. ``niemphong policy show`` prints its SHA-256, so that the copy in
force can be compared with the approved one. A bad file stops the daemon
before it serves, with a message naming the file, the key and the problem.
docs/policy.md describes every key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from niemphong.daemon.config import LevelPolicy, TokenConfig, _Reader
from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import SEALABLE_LEVELS, Level
from niemphong.daemon.pkcs11_uri import parse_pkcs11_uri
from niemphong.daemon.policy.basis import parse_basis
from niemphong.daemon.policy.catalog import Catalog, Lookup, load_catalog
from niemphong.daemon.policy.decision import Rules, StandingDecision

# Protection periods of Article 19 of the Law on Protection of State Secrets
# No. 29/2018/QH14. A policy may lengthen them but never shorten them.
LAW_PROTECTION_YEARS = {Level.TOI_MAT: 20, Level.MAT: 10}
MAX_PROTECTION_YEARS = 100

# Token profiles known to keep keys in software, for a profile whose file
# cannot be loaded; otherwise the file's hardware = false decides. Tối mật
# needs hardware outside development mode, because devices storing state
# secrets must be protected up to the Tối mật level.
SOFTWARE_TOKEN_PROFILES = frozenset({"softhsm2"})

# Rotation: a year for Tối mật and two for Mật, within the two-year
# originator-usage period NIST SP 800-57 Part 1 suggests for key-wrapping keys.
DEFAULTS = {
    Level.TOI_MAT: {
        "approvals": 2, "grant_hours": 8, "grant_opens": 1, "printing": False, "rotation_days": 365, "custodians": 2,
    },
    Level.MAT: {
        "approvals": 1, "grant_hours": 24, "grant_opens": 3, "printing": False, "rotation_days": 730, "custodians": 1,
    },
}

# Distinct custodians who must confirm a change of a level's key. Tối mật
# never takes fewer than two.
MIN_CUSTODIANS = {Level.TOI_MAT: 2, Level.MAT: 1}

_KIND = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_LEVEL_KEYS = {
    "key_id", "key_uri", "token_profiles", "approvals", "grant_hours", "grant_opens", "printing",
    "rotation_days", "protection_years", "custodians", "encryption",
}
# Places a level's segments are encrypted: the host (AES-GCM with a data key
# the token unwraps) or the token itself (in-token mode).
ENCRYPTION_MODES = ("host", "token")


@dataclass(frozen=True)
class Policy:
    """The policy in force, as loaded from its file."""

    path: Path
    sha256: str
    development: bool
    require_basis: bool
    levels: Mapping[Level, LevelPolicy]
    catalog: Catalog
    standing_decisions: Mapping[str, StandingDecision] = field(default_factory=dict)

    def rules(self) -> Rules:
        return Rules(
            protection_years={level: policy.protection_years for level, policy in self.levels.items()},
            catalog=self.catalog,
            standing_decisions=self.standing_decisions,
            require_basis=self.require_basis,
        )


def load_policy(path: Path, token: TokenConfig) -> Policy:
    """Read and validate the policy file at ``path`` against the configured token."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: policy file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None

    root = _Reader(path, data)
    root.reject_unknown({"development", "require_basis", "levels", "catalog", "standing_decisions"})
    development = _boolean(root, "development", False)
    require_basis = _boolean(root, "require_basis", False)

    levels = _load_levels(root.section("levels"), token, development)
    catalog = _load_catalog_section(root.section("catalog"), development)
    standing = _load_standing_decisions(root, catalog)

    return Policy(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        development=development,
        require_basis=require_basis,
        levels=levels,
        catalog=catalog,
        standing_decisions=standing,
    )


def _boolean(reader: _Reader, key: str, default: bool) -> bool:
    value = reader.table.get(key, default)
    if not isinstance(value, bool):
        raise reader.fail(key, "must be true or false")
    return value


def _strings(reader: _Reader, key: str) -> list[str]:
    value = reader.table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise reader.fail(key, "must be a list of non-empty strings")
    return value


def _date(reader: _Reader, key: str) -> dt.date:
    value = reader.table.get(key)
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise reader.fail(key, f"must be a date written YYYY-MM-DD, got {value!r}") from None
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise reader.fail(key, "must be a date written YYYY-MM-DD")
    return value


def _load_levels(levels: _Reader, token: TokenConfig, development: bool) -> dict[Level, LevelPolicy]:
    known = {level.config_name for level in SEALABLE_LEVELS}
    for key in levels.table:
        if key == Level.TUYET_MAT.config_name:
            raise levels.fail(key, "Tuyệt mật is never digitized and can have no key policy")
        if key not in known:
            raise levels.fail(key, f"unknown level; expected one of {sorted(known)}")

    policies = {level: _load_level(levels.section(level.config_name), level, token, development) for level in SEALABLE_LEVELS}

    key_ids = [policy.key_id for policy in policies.values()]
    if len(set(key_ids)) != len(key_ids):
        raise levels.fail("toi-mat.key_id", "each level needs its own key; Tối mật and Mật share one")
    return policies


def _load_level(section: _Reader, level: Level, token: TokenConfig, development: bool) -> LevelPolicy:
    section.reject_unknown(_LEVEL_KEYS)
    defaults = DEFAULTS[level]

    key_id = _key_id(section, level, token)
    profiles = tuple(_strings(section, "token_profiles"))
    profile_name, software = _profile_facts(token)
    if profiles and profile_name not in profiles:
        raise section.fail(
            "token_profiles",
            f"the token profile {profile_name!r} set in [token] profile is not acceptable for "
            f"{level.vietnamese_name}; acceptable: {', '.join(profiles)}",
        )
    if level is Level.TOI_MAT and software and not development:
        raise section.fail(
            "token_profiles",
            f"the token profile {token.profile!r} keeps keys in software, which is refused for Tối mật "
            "outside development mode; use a hardware token or HSM",
        )

    encryption = section.string("encryption", default="host") or "host"
    if encryption not in ENCRYPTION_MODES:
        raise section.fail("encryption", f"must be one of {list(ENCRYPTION_MODES)}, got {encryption!r}")
    if encryption == "token":
        _check_in_token_profile(section, token)

    law_years = LAW_PROTECTION_YEARS[level]
    return LevelPolicy(
        level=level,
        key_id=key_id,
        approvals=section.integer("approvals", defaults["approvals"], 1, 10),
        grant_seconds=3600 * section.integer("grant_hours", defaults["grant_hours"], 1, 24 * 30),
        grant_opens=section.integer("grant_opens", defaults["grant_opens"], 1, 100),
        token_profiles=profiles,
        printing=_boolean(section, "printing", bool(defaults["printing"])),
        rotation_days=section.integer("rotation_days", defaults["rotation_days"], 1, 3650),
        protection_years=section.integer("protection_years", law_years, law_years, MAX_PROTECTION_YEARS),
        custodians=section.integer("custodians", defaults["custodians"], MIN_CUSTODIANS[level], 10),
        in_token=encryption == "token",
    )


def _profile_facts(token: TokenConfig) -> tuple[str, bool]:
    """Return the configured profile's name and whether it keeps keys in software.

    ``[token] profile`` may be a file path; the policy names profiles by the
    ``name`` inside the file.
    """
    from niemphong.daemon.hsm_profiles import ProfileError, load_profile

    try:
        profile = load_profile(token.profile)
    except ProfileError:
        return token.profile, token.profile in SOFTWARE_TOKEN_PROFILES
    return profile.name, not profile.hardware


def _check_in_token_profile(section: _Reader, token: TokenConfig) -> None:
    from niemphong.daemon.hsm_profiles import ProfileError, load_profile

    try:
        profile = load_profile(token.profile)
    except ProfileError as exc:
        raise section.fail("encryption", str(exc)) from None
    if not profile.in_token:
        raise section.fail(
            "encryption",
            f"the token profile {profile.name!r} offers no encryption inside the token; "
            "use encryption = \"host\" or a token whose profile lists [in_token] aead",
        )
    if profile.kek != "aes":
        raise section.fail("encryption", f"in-token mode needs AES level keys; profile {profile.name!r} uses {profile.kek.upper()}")


def _key_id(section: _Reader, level: Level, token: TokenConfig) -> str:
    key_id = section.string("key_id")
    key_uri = section.string("key_uri")
    if key_id is not None and key_uri is not None:
        raise section.fail("key_uri", "set key_id or key_uri, not both")
    if key_uri is not None:
        try:
            attributes = parse_pkcs11_uri(key_uri)
        except ValueError as exc:
            raise section.fail("key_uri", str(exc)) from None
        if "object" not in attributes:
            raise section.fail("key_uri", "the URI must name the key with an object attribute")
        for name, configured in (("token", token.label), ("serial", token.serial)):
            if name in attributes and configured is not None and attributes[name] != configured:
                raise section.fail("key_uri", f"the URI names {name} {attributes[name]!r} but [token] uses {configured!r}")
        key_id = attributes["object"]
    if key_id is None:
        key_id = f"niemphong-{level.config_name}"
    if not key_id.isascii() or not key_id.isprintable() or len(key_id) > 64 or "/" in key_id:
        raise section.fail("key_id", "must be printable ASCII of at most 64 characters, without '/'")
    return key_id


def _load_catalog_section(section: _Reader, development: bool) -> Catalog:
    section.reject_unknown({"files", "superseded"})
    files = [_relative(section, name) for name in _strings(section, "files")]
    if not files:
        raise section.fail("files", "list at least one catalog file of the catalogs of state secrets in force")
    catalog = load_catalog(files, _strings(section, "superseded"))
    if catalog.sample_files and not development:
        raise section.fail(
            "files",
            f"{catalog.sample_files[0]} is the sample catalog shipped with Niêm Phong, not a catalog of state "
            "secrets; load your agency's catalogs (docs/policy.md) or set development = true for tests",
        )
    return catalog


def _relative(reader: _Reader, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else reader.path.parent / path


def _load_standing_decisions(root: _Reader, catalog: Catalog) -> dict[str, StandingDecision]:
    entries = root.table.get("standing_decisions", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise root.fail("standing_decisions", "must be an array of tables ([[standing_decisions]])")

    decisions: dict[str, StandingDecision] = {}
    for index, entry in enumerate(entries):
        reader = _Reader(root.path, entry, f"standing_decisions[{index}].")
        reader.reject_unknown({"kind", "name", "level", "basis", "decision", "decided_on"})
        kind = reader.string("kind", required=True)
        assert kind is not None
        if not _KIND.fullmatch(kind):
            raise reader.fail("kind", "must be 1 to 64 lowercase letters, digits or '-', starting with a letter or digit")
        if kind in decisions:
            raise reader.fail("kind", f"kind {kind!r} already has a standing decision; one decision per kind")

        level_name = reader.string("level", required=True)
        try:
            level = Level.from_config_name(level_name or "")
        except ValueError:
            raise reader.fail("level", "must be toi-mat or mat") from None
        if not level.sealable:
            raise reader.fail("level", "Tuyệt mật is never digitized")

        basis_text = reader.string("basis", required=True) or ""
        try:
            basis = parse_basis(basis_text)
        except ValueError as exc:
            raise reader.fail("basis", f"cannot parse {basis_text!r}: {exc}") from None
        found = catalog.lookup(basis)
        if found.outcome is not Lookup.FOUND:
            raise reader.fail("basis", f"{basis.describe()!r} is not an item of a catalog in force")
        highest = found.highest
        assert highest is not None
        if level > highest:
            raise reader.fail("level", f"{level.vietnamese_name} is above {highest.vietnamese_name}, the highest level of {basis.describe()!r}")

        decisions[kind] = StandingDecision(
            kind=kind,
            name=reader.string("name", default=kind) or kind,
            level=level,
            basis=basis,
            decision=reader.string("decision", required=True) or "",
            decided_on=_date(reader, "decided_on"),
        )
    return decisions
