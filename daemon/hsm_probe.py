"""Check a logged-in token against a token profile, point by point.

Each point compares what the profile needs with what the token offers and
passes or fails. Where a mechanism list could mislead (SoftHSM2 2.6 lists
CKM_RSA_PKCS_OAEP but accepts SHA-1 parameters only), the probe runs the
operation itself on temporary session objects, which end with the session
and never touch the level keys.

Points, in order: module, token, rng, key-generation, wrapping, in-token,
sessions, then one level-key point per classification level.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11x

from niemphong.daemon import rsa_kek
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.hsm import _TOKEN_GONE, Pkcs11Token
from niemphong.daemon.hsm_profiles import Profile, callable_mechanism
from niemphong.daemon.levels import Level

log = logging.getLogger(__name__)

AES_KEY_BYTES = 32
_PROBE_LABEL = "niemphong-probe"


class Status(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    # The profile does not need this point; the token's offer is still shown.
    NOT_REQUIRED = "not-required"


@dataclass(frozen=True)
class ProbePoint:
    """One check: the point's name, what the profile needs, what the token offers, and the outcome.

    ``reason`` is a stable code for a failure or a point that is not
    required (e.g. NOT_OFFERED, ROUND_TRIP_FAILED); the client turns it into
    a sentence. ``required`` and ``offered`` hold technical values only:
    paths, mechanism names, numbers.
    """

    name: str
    status: Status
    required: str
    offered: str
    reason: str = ""


@dataclass(frozen=True)
class ProbeReport:
    profile: Profile
    points: tuple[ProbePoint, ...]

    @property
    def passed(self) -> bool:
        return all(point.status is not Status.FAIL for point in self.points)


def probe(
    token: Pkcs11Token, profile: Profile, sessions: int, levels: Mapping[Level, LevelPolicy] | None = None,
) -> ProbeReport:
    """Check ``token`` against ``profile``; ``sessions`` is the configured pool size.

    Raises:
        TokenUnavailable: the token failed during the probe.
    """
    mechanisms = {int(mechanism) for mechanism in token.token.slot.get_mechanisms()}
    points = [
        _check_module(token, profile),
        _check_token(token, profile),
        _check_rng(token),
        _check_key_generation(token, profile, mechanisms),
        _check_wrapping(token, profile, mechanisms),
        _check_in_token(token, profile, mechanisms),
        _check_sessions(profile, sessions, any(policy.in_token for policy in (levels or {}).values())),
    ]
    if levels:
        points.extend(_check_level_keys(token, profile, levels))
    report = ProbeReport(profile, tuple(points))
    log.info(
        "probe of token %s against profile %s: %s (%s)",
        token.describe(), profile.name, "pass" if report.passed else "fail",
        ", ".join(f"{point.name}={point.status.value}" for point in points),
    )
    return report


def _passed(name: str, required: str, offered: str) -> ProbePoint:
    return ProbePoint(name, Status.PASS, required, offered)


def _failed(name: str, required: str, offered: str, reason: str) -> ProbePoint:
    return ProbePoint(name, Status.FAIL, required, offered, reason)


@contextlib.contextmanager
def _temporary_objects() -> Iterator[list[pkcs11.Object]]:
    """Collect session objects made for a test and destroy them afterwards, unless the token failed."""
    objects: list[pkcs11.Object] = []
    try:
        yield objects
    except _TOKEN_GONE:
        raise
    finally:
        for obj in reversed(objects):
            with contextlib.suppress(p11x.PKCS11Error):
                obj.destroy()


# The English words the checks below put into ``required`` and ``offered``,
# in Vietnamese for `niemphong hsm probe`. Applied in order to the whole
# text; mechanism names, paths, labels and numbers pass through unchanged.
_VIETNAMESE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement) for pattern, replacement in (
        (r"^at most (\d+)$", r"tối đa \1"),
        (r"^selected by (\w+) or (\w+)$", r"chọn theo \1 hoặc \2"),
        (r"^selected by (\w+)$", r"chọn theo \1"),
        (r"; selected by (\w+) and (\w+)$", r"; đang chọn theo cả \1 và \2"),
        (r"; selected by (\w+)$", r"; đang chọn theo \1"),
        (r" for (\d+) bits\b", r" cho khóa \1 bit"),
        (r" for (\d+) bytes\b", r" cho khóa \1 byte"),
        (r" \(keys made with the vendor's tool\)", " (khóa tạo bằng công cụ của hãng)"),
        (r" \(the first usable of ([^)]+)\)", r" (thuật toán dùng được đầu tiên trong \1)"),
        (r"offered, but no test key pair can be generated \((\w+) missing\); test with a level key",
         r"có, nhưng không sinh được cặp khóa thử (thiếu \1); hãy thử bằng khóa của một độ mật"),
        (r"offered only as (\S+), which python-pkcs11 cannot call", r"chỉ có dưới mã \1, python-pkcs11 không gọi được"),
        (r"not offered", "không có"),
        (r"(\S+) offers neither unwrap nor decrypt", r"\1 không hỗ trợ unwrap lẫn decrypt"),
        (r"(\S+) with these parameters failed with (\w+)", r"\1 với các tham số này thất bại (\2)"),
        (r"(\S+) failed with (\w+)", r"\1 thất bại (\2)"),
        (r"(^|: )failed with (\w+)", r"\1thất bại (\2)"),
        (r"(\S+) returned another key", r"\1 trả về một khóa khác"),
        (r"output differs from AES-GCM", "kết quả khác AES-GCM"),
        (r"accepted an altered ciphertext", "chấp nhận bản mã đã bị sửa"),
        (r"no random number generator", "không có bộ sinh số ngẫu nhiên"),
        (r"no mechanism information", "không có thông tin về cơ chế"),
        (r"^(\d+) \(pool of (\d+) and the login session, and up to (\d+) in-token transfers\)$",
         r"\1 (nhóm \2 phiên, phiên đăng nhập và tối đa \3 lượt truyền trong token)"),
        (r"^(\d+) \(pool of (\d+) and the login session\)$", r"\1 (nhóm \2 phiên và phiên đăng nhập)"),
        (r"(^|: )ok(;|$)", r"\1đạt\2"),
        (r"^none$", "không có"),
        (r"^missing$", "chưa có"),
    )
)


def in_vietnamese(text: str) -> str:
    """Return a point's ``required`` or ``offered`` text with the probe's English words in Vietnamese."""
    for pattern, replacement in _VIETNAMESE:
        text = pattern.sub(replacement, text)
    return text


def _mechanism_name(code: int) -> str:
    mechanism = callable_mechanism(code)
    return f"CKM_{mechanism.name}" if mechanism is not None else f"0x{code:08x}"


# Points ----------------------------------------------------------------------


def _check_module(token: Pkcs11Token, profile: Profile) -> ProbePoint:
    configured = str(token.config.module)
    names = {os.path.basename(module) for module in profile.modules}
    required = ", ".join(profile.modules)
    if os.path.basename(configured) in names:
        return _passed("module", required, configured)
    return _failed("module", required, configured, "MODULE_MISMATCH")


def _check_token(token: Pkcs11Token, profile: Profile) -> ProbePoint:
    info = token.token
    offered = (
        f"label={info.label!r} serial={info.serial.decode('ascii', 'replace')!r} "
        f"manufacturer={info.manufacturer_id!r} model={info.model!r}"
    )
    used = [key for key in ("label", "serial") if getattr(token.config, key) is not None]
    required = "selected by " + " or ".join(profile.select_by)
    if not set(used) & set(profile.select_by):
        return _failed("token", required, offered + f"; selected by {' and '.join(used)}", "SELECTION_MISMATCH")
    return _passed("token", required, offered)


def _check_rng(token: Pkcs11Token) -> ProbePoint:
    flags = token.token.flags
    if flags & TokenFlag.RNG:
        return _passed("rng", "CKF_RNG", "CKF_RNG")
    return _failed("rng", "CKF_RNG", "no random number generator", "NOT_OFFERED")


def _mechanism_info(token: Pkcs11Token, code: int) -> pkcs11.MechanismInfo | None:
    mechanism = callable_mechanism(code)
    if mechanism is None:
        return None
    try:
        return token.token.slot.get_mechanism_info(mechanism)
    except _TOKEN_GONE:
        raise
    except p11x.PKCS11Error:
        return None


def _check_key_generation(token: Pkcs11Token, profile: Profile, mechanisms: set[int]) -> ProbePoint:
    if profile.kek == "rsa":
        code, size, unit = int(Mechanism.RSA_PKCS_KEY_PAIR_GEN), profile.rsa_bits, "bits"
    else:
        code, size, unit = int(Mechanism.AES_KEY_GEN), AES_KEY_BYTES, "bytes"
    required = f"{_mechanism_name(code)} for {size} {unit}"
    external = profile.key_generation == "external"

    if code not in mechanisms:
        point = _failed("key-generation", required, "not offered", "NOT_OFFERED")
    else:
        info = _mechanism_info(token, code)
        # Some tokens report AES key sizes in bits rather than bytes.
        sizes = (size,) if unit == "bits" else (size, size * 8)
        if info is not None and any(info.min_key_length <= value <= info.max_key_length for value in sizes):
            point = _passed("key-generation", required, f"{_mechanism_name(code)} {info.min_key_length}..{info.max_key_length}")
        else:
            offered = f"{_mechanism_name(code)} {info.min_key_length}..{info.max_key_length}" if info else "no mechanism information"
            point = _failed("key-generation", required, offered, "KEY_SIZE")
    if external and point.status is Status.FAIL:
        return ProbePoint(point.name, Status.NOT_REQUIRED, required + " (keys made with the vendor's tool)", point.offered, point.reason)
    return point


def _check_wrapping(token: Pkcs11Token, profile: Profile, mechanisms: set[int]) -> ProbePoint:
    """Try every wrapping algorithm of the profile; pass when the one the daemon would seal with works.

    For an AES KEK the daemon seals with the first algorithm the token offers
    as a mechanism python-pkcs11 can call; for an RSA KEK with the first one
    listed, so a token that fails it fails this point even when a later one works.
    """
    outcomes = {}
    for algorithm in profile.wrapping:
        if profile.kek == "rsa":
            outcomes[algorithm] = _rsa_round_trip(token, algorithm, mechanisms)
        else:
            outcomes[algorithm] = _aes_round_trip(token, profile, algorithm, mechanisms)

    if profile.kek == "rsa":
        chosen = profile.wrapping[0]
    else:
        usable = [name for name, outcome in outcomes.items() if not outcome.startswith(("not offered", "offered only"))]
        chosen = usable[0] if usable else profile.wrapping[0]
    required = f"{chosen} (the first usable of {', '.join(profile.wrapping)})"
    offered = "; ".join(f"{algorithm}: {outcome}" for algorithm, outcome in outcomes.items())
    if outcomes[chosen] == "ok":
        return _passed("wrapping", required, offered)
    return _failed("wrapping", required, offered, "ROUND_TRIP_FAILED")


def _aes_round_trip(token: Pkcs11Token, profile: Profile, algorithm: str, mechanisms: set[int]) -> str:
    codes = profile.mechanism_codes(algorithm)
    offered_codes = [code for code in codes if code in mechanisms]
    if not offered_codes:
        return "not offered (" + ", ".join(_mechanism_name(code) for code in codes) + ")"
    callable_codes = [code for code in offered_codes if callable_mechanism(code) is not None]
    if not callable_codes:
        return f"offered only as {_mechanism_name(offered_codes[0])}, which python-pkcs11 cannot call"

    mechanism = callable_mechanism(callable_codes[0])
    assert mechanism is not None
    data_key = os.urandom(AES_KEY_BYTES)
    with token.session() as session, _temporary_objects() as objects:
        try:
            kek = session.generate_key(KeyType.AES, 256, label=_PROBE_LABEL, store=False, template={
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.WRAP: True, Attribute.UNWRAP: True,
            })
            objects.append(kek)
            temporary = session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: data_key,
                Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
            })
            objects.append(temporary)
            wrapped = kek.wrap_key(temporary, mechanism=mechanism)
            unwrapped = kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=mechanism, store=False,
                                       template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
            objects.append(unwrapped)
            value = bytes(unwrapped[Attribute.VALUE])
        except _TOKEN_GONE:
            raise
        except p11x.PKCS11Error as exc:
            return f"{_mechanism_name(callable_codes[0])} failed with {type(exc).__name__}"
    return "ok" if value == data_key else f"{_mechanism_name(callable_codes[0])} returned another key"


def _rsa_round_trip(token: Pkcs11Token, algorithm: str, mechanisms: set[int]) -> str:
    if int(Mechanism.RSA_PKCS_OAEP) not in mechanisms:
        return "not offered (CKM_RSA_PKCS_OAEP)"
    info = _mechanism_info(token, int(Mechanism.RSA_PKCS_OAEP))
    if info is None or not info.flags & (MechanismFlag.UNWRAP | MechanismFlag.DECRYPT):
        return "CKM_RSA_PKCS_OAEP offers neither unwrap nor decrypt"
    if int(Mechanism.RSA_PKCS_KEY_PAIR_GEN) not in mechanisms:
        return "offered, but no test key pair can be generated (CKM_RSA_PKCS_KEY_PAIR_GEN missing); test with a level key"

    hash_mechanism, mgf, _ = rsa_kek.OAEP_PARAMETERS[algorithm]
    data_key = os.urandom(AES_KEY_BYTES)
    with token.session() as session, _temporary_objects() as objects:
        try:
            public, private = session.generate_keypair(
                KeyType.RSA, 2048, label=_PROBE_LABEL, store=False,
                public_template={Attribute.WRAP: True, Attribute.ENCRYPT: True},
                private_template={Attribute.UNWRAP: True, Attribute.DECRYPT: True, Attribute.SENSITIVE: True,
                                  Attribute.EXTRACTABLE: False},
            )
            objects.extend((public, private))
            modulus = int.from_bytes(public[Attribute.MODULUS], "big")
            exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
            host_key = rsa_kek.rsa.RSAPublicNumbers(exponent, modulus).public_key()
            wrapped = rsa_kek.wrap_on_host(host_key, data_key, algorithm)
            parameters = (hash_mechanism, mgf, None)
            if info.flags & MechanismFlag.UNWRAP:
                key = private.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=Mechanism.RSA_PKCS_OAEP,
                                         mechanism_param=parameters, store=False,
                                         template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
                objects.append(key)
                value = bytes(key[Attribute.VALUE])
            else:
                value = bytes(private.decrypt(wrapped, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=parameters))
        except _TOKEN_GONE:
            raise
        except p11x.PKCS11Error as exc:
            return f"CKM_RSA_PKCS_OAEP with these parameters failed with {type(exc).__name__}"
    return "ok" if value == data_key else "CKM_RSA_PKCS_OAEP returned another key"


def _check_in_token(token: Pkcs11Token, profile: Profile, mechanisms: set[int]) -> ProbePoint:
    required = ", ".join(profile.in_token) if profile.in_token else "none"
    needed = (int(Mechanism.AES_ECB_ENCRYPT_DATA), int(Mechanism.AES_GCM))
    missing = [_mechanism_name(code) for code in needed if code not in mechanisms]
    if missing:
        offered = "not offered (" + ", ".join(missing) + ")"
        reason = "NOT_OFFERED"
    else:
        outcome = _gcm_round_trip(token)
        offered = f"AES-GCM: {outcome}"
        reason = "" if outcome == "ok" else "ROUND_TRIP_FAILED"

    if not profile.in_token:
        return ProbePoint("in-token", Status.NOT_REQUIRED, required, offered, "NOT_REQUIRED")
    if reason:
        return _failed("in-token", required, offered, reason)
    return _passed("in-token", required, offered)


def _gcm_round_trip(token: Pkcs11Token) -> str:
    """Derive a key in the token, seal with AES-GCM there, and check the result on the host."""
    nonce = os.urandom(12)
    aad = b"niemphong probe"
    plaintext = os.urandom(4096)
    with token.session() as session, _temporary_objects() as objects:
        try:
            base = session.generate_key(KeyType.AES, 256, label=_PROBE_LABEL, store=False, template={
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.DERIVE: True,
            })
            derived = base.derive_key(
                KeyType.AES, 256, mechanism=Mechanism.AES_ECB_ENCRYPT_DATA, mechanism_param=os.urandom(32), store=False,
                template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.ENCRYPT: True,
                          Attribute.DECRYPT: True},
            )
            objects.extend((base, derived))
            value = bytes(derived[Attribute.VALUE])
            sealed = derived.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(nonce, aad, 128))
            altered = bytes([sealed[0] ^ 1]) + sealed[1:]
            try:
                derived.decrypt(altered, mechanism=Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(nonce, aad, 128))
                rejects_altered = False
            except _TOKEN_GONE:
                raise
            except p11x.PKCS11Error:
                rejects_altered = True
        except _TOKEN_GONE:
            raise
        except p11x.PKCS11Error as exc:
            return f"failed with {type(exc).__name__}"
    try:
        host_plain = AESGCM(value).decrypt(nonce, bytes(sealed), aad)
    except InvalidTag:
        return "output differs from AES-GCM (NIST SP 800-38D)"
    if host_plain != plaintext:
        return "output differs from AES-GCM (NIST SP 800-38D)"
    if not rejects_altered:
        return "accepted an altered ciphertext"
    return "ok"


def _check_sessions(profile: Profile, sessions: int, in_token: bool) -> ProbePoint:
    # The pool plus the login session that stays open, plus as many
    # in-token transfers as the pool size when a level uses in-token mode.
    used = sessions + 1 + (sessions if in_token else 0)
    required = f"at most {profile.max_sessions}"
    offered = f"{used} (pool of {sessions} and the login session"
    offered += f", and up to {sessions} in-token transfers)" if in_token else ")"
    if used <= profile.max_sessions:
        return _passed("sessions", required, offered)
    return _failed("sessions", required, offered, "TOO_MANY")


def _check_level_keys(
    token: Pkcs11Token, profile: Profile, levels: Mapping[Level, LevelPolicy],
) -> Iterable[ProbePoint]:
    keks = token.list_keks()
    for level, policy in sorted(levels.items()):
        name = f"level-key:{level.config_name}"
        versions = [info for info in keks if info.key_id == policy.key_id]
        required = f"{policy.key_id}, {profile.kek.upper()}"
        if not versions:
            yield _failed(name, required, "missing", "MISSING")
            continue
        newest = max(versions, key=lambda info: info.version)
        offered = f"{newest.label}, {newest.kind.upper()}"
        if newest.kind != profile.kek:
            yield _failed(name, required, offered, "WRONG_KIND")
        else:
            yield _passed(name, required, offered)
