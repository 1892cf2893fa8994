"""Language selection and localized text for the niemphong command line.

Users read Vietnamese unless they ask for English with ``--lang en`` or run
under an English locale. Code, identifiers and log lines stay in English.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Literal

from niemphong.clients.catalog import CATALOG

Lang = Literal["vi", "en"]
LANGUAGES: tuple[Lang, ...] = ("vi", "en")
DEFAULT_LANG: Lang = "vi"

# POSIX precedence: LC_ALL overrides LC_MESSAGES, which overrides LANG.
_LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")


def _load_vietnam_zone() -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
    except zoneinfo.ZoneInfoNotFoundError:
        # Without the tz database (no tzdata package) use the fixed offset:
        # Vietnam has kept UTC+07:00 without daylight saving since 1975.
        return dt.timezone(dt.timedelta(hours=7), "+07")


VIETNAM_TIME = _load_vietnam_zone()


def language_from_argv(argv: Sequence[str]) -> Lang | None:
    """Return the language named by ``--lang`` in ``argv``, or None.

    The parser needs the language before it exists, so this scans the raw
    arguments. An unknown value returns None and argparse reports it later.
    """
    value: str | None = None
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--lang="):
            value = arg.partition("=")[2]

    if value in LANGUAGES:
        return value  # type: ignore[return-value]
    return None


def language_from_environ(environ: Mapping[str, str]) -> Lang:
    """Choose the language from the locale variables.

    The first of LC_ALL, LC_MESSAGES and LANG that names a language decides:
    English when it starts with "en", Vietnamese otherwise. The C and POSIX
    locales name no language, so they are skipped.
    """
    for variable in _LOCALE_VARIABLES:
        value = environ.get(variable, "")
        if not value or value == "POSIX" or value == "C" or value.startswith("C."):
            continue
        return "en" if value.lower().startswith("en") else "vi"
    return DEFAULT_LANG


def select_language(argv: Sequence[str], environ: Mapping[str, str]) -> Lang:
    """Return the user's language: ``--lang`` first, then the locale."""
    return language_from_argv(argv) or language_from_environ(environ)


def translate(lang: Lang, message_id: str, **params: object) -> str:
    """Return the catalog text for ``message_id`` in ``lang``, filled with ``params``.

    Raises KeyError for an unknown message id, so a typo fails in tests
    rather than showing a user an id.
    """
    text = CATALOG[message_id][lang].format(**params)
    return unicodedata.normalize("NFC", text)


def format_count(value: int, lang: Lang) -> str:
    """Format an integer with the thousands separator of ``lang``."""
    grouped = f"{value:,}"
    if lang == "vi":
        # Vietnamese writes 1.048.576 where English writes 1,048,576.
        return grouped.replace(",", ".")
    return grouped


def format_bytes(value: int, lang: Lang) -> str:
    """Format a byte count, adding the size in KiB, MiB, GiB or TiB from 1 KiB up."""
    exact = translate(lang, "unit.bytes", count=format_count(value, lang))
    if value < 1024:
        return exact

    scaled = float(value)
    unit = "KiB"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        scaled /= 1024
        if scaled < 1024:
            break
    short = f"{scaled:.1f}"
    if lang == "vi":
        short = short.replace(".", ",")
    return f"{exact} ({short} {unit})"


def format_date(value: dt.date, lang: Lang) -> str:
    """Format a calendar date: dd/mm/yyyy in Vietnamese, ISO 8601 in English."""
    if lang == "vi":
        return value.strftime("%d/%m/%Y")
    return value.isoformat()


def format_timestamp(unix_seconds: int, lang: Lang) -> str:
    """Format Unix seconds as Vietnam local time, naming the offset."""
    moment = dt.datetime.fromtimestamp(unix_seconds, tz=VIETNAM_TIME)
    if lang == "vi":
        return moment.strftime("%d/%m/%Y %H:%M:%S") + " (giờ Việt Nam, UTC+07:00)"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + " (Asia/Ho_Chi_Minh, UTC+07:00)"


def today_in_vietnam() -> dt.date:
    """Return today's date on the Vietnam calendar."""
    return dt.datetime.now(tz=VIETNAM_TIME).date()


# argparse (Python 3.11 to 3.13) writes its errors in English through
# gettext. These patterns turn the common ones into catalog messages.
_ARGPARSE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^the following arguments are required: (?P<names>.+)$"), "argparse.required"),
    (re.compile(r"^unrecognized arguments: (?P<names>.+)$"), "argparse.unrecognized"),
    (
        re.compile(r"^argument (?P<name>.+?): invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)$"),
        "argparse.invalid_choice",
    ),
    (re.compile(r"^argument (?P<name>.+?): expected one argument$"), "argparse.expected_one"),
    (re.compile(r"^argument (?P<name>.+?): not allowed with argument (?P<other>.+)$"), "argparse.not_allowed_with"),
    (re.compile(r"^ambiguous option: (?P<option>\S+) could match (?P<matches>.+)$"), "argparse.ambiguous"),
    (re.compile(r"^argument (?P<name>.+?): (?P<detail>.+)$"), "argparse.argument"),
)


def translate_argparse_error(lang: Lang, message: str) -> str:
    """Translate an argparse error message, or return it unchanged when unknown."""
    for pattern, message_id in _ARGPARSE_PATTERNS:
        match = pattern.match(message)
        if match:
            return translate(lang, message_id, **match.groupdict())
    return message
