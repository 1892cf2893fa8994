"""Language selection, the message catalog and localized formatting."""

from __future__ import annotations

import datetime as dt
import string
import unicodedata

import pytest

from niemphong.clients.catalog import CATALOG
from niemphong.clients.i18n import (
    LANGUAGES,
    format_bytes,
    format_count,
    format_date,
    format_timestamp,
    language_from_argv,
    language_from_environ,
    select_language,
    translate,
    translate_argparse_error,
)


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, "vi"),
        ([], {"LANG": "en_US.UTF-8"}, "en"),
        ([], {"LANG": "en"}, "en"),
        ([], {"LANG": "vi_VN.UTF-8"}, "vi"),
        ([], {"LANG": "de_DE.UTF-8"}, "vi"),
        ([], {"LANG": "C.UTF-8"}, "vi"),
        ([], {"LANG": "POSIX"}, "vi"),
        ([], {"LC_ALL": "en_GB.UTF-8", "LANG": "vi_VN.UTF-8"}, "en"),
        ([], {"LC_ALL": "vi_VN.UTF-8", "LANG": "en_US.UTF-8"}, "vi"),
        ([], {"LC_ALL": "C.UTF-8", "LANG": "en_US.UTF-8"}, "en"),
        ([], {"LC_MESSAGES": "en_US.UTF-8", "LANG": "vi_VN.UTF-8"}, "en"),
        (["--lang", "en"], {"LANG": "vi_VN.UTF-8"}, "en"),
        (["pending", "--lang=en"], {}, "en"),
        (["--lang", "vi"], {"LANG": "en_US.UTF-8"}, "vi"),
        (["--lang", "vi"], {"LC_ALL": "en_US.UTF-8"}, "vi"),
        (["--lang", "fr"], {"LANG": "en_US.UTF-8"}, "en"),
        (["--", "--lang", "en"], {}, "vi"),
    ],
)
def test_select_language_from_argv_and_environ(argv: list[str], environ: dict[str, str], expected: str) -> None:
    assert select_language(argv, environ) == expected


def test_language_from_argv_last_value_wins() -> None:
    assert language_from_argv(["--lang", "en", "scan", "--lang", "vi"]) == "vi"


def test_language_from_environ_empty_value_skipped() -> None:
    assert language_from_environ({"LC_ALL": "", "LANG": "en_US.UTF-8"}) == "en"


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("message_id", sorted(CATALOG))
def test_catalog_message_complete_in_both_languages(message_id: str) -> None:
    texts = CATALOG[message_id]

    assert set(texts) == set(LANGUAGES)
    for lang in LANGUAGES:
        assert texts[lang].strip(), f"{message_id} is empty in {lang}"
    assert _placeholders(texts["vi"]) == _placeholders(texts["en"])


@pytest.mark.parametrize("message_id", sorted(CATALOG))
def test_catalog_text_is_nfc(message_id: str) -> None:
    for lang in LANGUAGES:
        text = CATALOG[message_id][lang]
        assert unicodedata.is_normalized("NFC", text), f"{message_id} ({lang}) is not NFC"


def test_translate_unknown_id_raises() -> None:
    with pytest.raises(KeyError):
        translate("vi", "no.such.message")


def test_translate_output_nfc_with_nfd_parameter() -> None:
    text = translate("vi", "usage.input_missing", path="ta\u0300i-lie\u0323\u0302u.pdf")

    assert unicodedata.is_normalized("NFC", text)
    assert "tài-liệu.pdf" in text


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [(0, "vi", "0"), (1048576, "vi", "1.048.576"), (1048576, "en", "1,048,576"), (999, "en", "999")],
)
def test_format_count_uses_language_separator(value: int, lang: str, expected: str) -> None:
    assert format_count(value, lang) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [
        (512, "vi", "512 byte"),
        (512, "en", "512 bytes"),
        (1024, "en", "1,024 bytes (1.0 KiB)"),
        (1048576, "vi", "1.048.576 byte (1,0 MiB)"),
        (3 * 1024**3, "en", "3,221,225,472 bytes (3.0 GiB)"),
    ],
)
def test_format_bytes_adds_binary_unit(value: int, lang: str, expected: str) -> None:
    assert format_bytes(value, lang) == expected  # type: ignore[arg-type]


def test_format_date_vietnamese_day_first() -> None:
    assert format_date(dt.date(2025, 5, 4), "vi") == "04/05/2025"
    assert format_date(dt.date(2025, 5, 4), "en") == "2025-05-04"


def test_format_timestamp_in_vietnam_time() -> None:
    # 2025-05-14 17:30:00 UTC is 00:30 on 15 May in Vietnam (UTC+07:00).
    moment = int(dt.datetime(2025, 5, 14, 17, 30, tzinfo=dt.timezone.utc).timestamp())

    assert format_timestamp(moment, "vi").startswith("15/05/2025 00:30:00")
    assert format_timestamp(moment, "en").startswith("2025-05-15 00:30:00")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("the following arguments are required: --out", "thiếu đối số bắt buộc: --out"),
        ("unrecognized arguments: --bogus", "đối số không hợp lệ: --bogus"),
        (
            "argument --lang: invalid choice: 'fr' (choose from 'vi', 'en')",
            "đối số --lang: giá trị 'fr' không hợp lệ (chọn một trong: 'vi', 'en')",
        ),
        ("argument --out: expected one argument", "đối số --out: thiếu giá trị"),
        ("something argparse may add later", "something argparse may add later"),
    ],
)
def test_translate_argparse_error_to_vietnamese(message: str, expected: str) -> None:
    assert translate_argparse_error("vi", message) == expected
