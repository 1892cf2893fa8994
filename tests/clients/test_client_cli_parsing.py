"""Argument parsing of the niemphong command: usage errors exit with code 2 before any connection."""

from __future__ import annotations

import datetime as dt

import pytest

from niemphong.clients import cli
from niemphong.clients.cli import build_parser, main
from niemphong.clients.protocol import parse_issued_date, parse_level, parse_request_id
from niemphong.v1 import niemphong_pb2 as pb

# No server is reachable at this address, so a test that got past parsing
# would fail with exit code 6, not 2.
UNREACHABLE = {"NIEMPHONG_SERVER": "unix:/nonexistent/np.sock", "NIEMPHONG_IDENTITY": "/nonexistent", "LANG": "C"}
SCAN_OK = ["scan", "doc.pdf", "--level", "mat", "--doc-number", "1/UBND", "--issued", "2025-05-14", "--out", "x.np"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["scan"],
        ["scan", "doc.pdf", "--level", "mat", "--doc-number", "1", "--issued", "2025-05-14"],
        ["scan", "doc.pdf", "--level", "mat", "--issued", "2025-05-14", "--out", "x"],
        ["scan", "doc.pdf", "--level", "mat", "--doc-number", "1", "--out", "x"],
        ["scan", "doc.pdf", "--doc-number", "1", "--issued", "2025-05-14", "--out", "x"],
        ["scan", "doc.pdf", "--level", "secret", "--doc-number", "1", "--issued", "2025-05-14", "--out", "x"],
        ["inspect"],
        ["request", "e.np"],
        ["approve"],
        ["approve", "not-hex"],
        ["deny", "a" * 32],
        ["show", "a" * 31],
        ["view", "e.np"],
        ["view", "e.np", "--out", "p.pdf", "--request", "xyz"],
        ["pending", "--lang", "fr"],
        ["pending", "--bogus"],
        ["dev"],
        ["dev", "init"],
        ["dev", "add-identity", "d", "name"],
        ["dev", "add-identity", "d", "name", "--role", "king"],
    ],
)
def test_cli_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv, UNREACHABLE) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err


@pytest.mark.parametrize("issued", ["2025-02-30", "2025-13-01", "14-05-2025", "2025/05/14", "20250514", "31/04/2025", ""])
def test_cli_issued_invalid_exits_2(issued: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", "doc.pdf", "--level", "mat", "--doc-number", "1", "--issued", issued, "--out", "x.np"]

    assert main(argv, UNREACHABLE) == 2
    assert "--issued" in capsys.readouterr().err


def test_cli_issued_in_future_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    argv = ["scan", "doc.pdf", "--level", "mat", "--doc-number", "1", "--issued", tomorrow.isoformat(), "--out", "x.np"]

    assert main(argv, UNREACHABLE) == 2
    stderr = capsys.readouterr().err
    assert f"Ngày ban hành {tomorrow:%d/%m/%Y} sau ngày hôm nay" in stderr
    assert "Cách dùng" not in stderr


def test_cli_usage_error_in_vietnamese_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan"], {"LANG": "C.UTF-8"})

    err = capsys.readouterr().err
    assert err.startswith("Cách dùng: niemphong scan")
    assert "lỗi: thiếu đối số bắt buộc:" in err


def test_cli_usage_error_in_english_with_lang(capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", "--lang", "en"], {"LANG": "vi_VN.UTF-8"})

    err = capsys.readouterr().err
    assert err.startswith("usage: niemphong scan")
    assert "error: the following arguments are required:" in err


def test_cli_bad_level_message_localized(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", "d.pdf", "--level", "secret", "--doc-number", "1", "--issued", "2025-05-14", "--out", "x"]
    main(argv, {"LANG": "vi_VN.UTF-8"})

    err = capsys.readouterr().err
    assert "đối số --level: độ mật không hợp lệ: secret" in err


def test_cli_help_exits_0_in_vietnamese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"], {}) == 0

    out = capsys.readouterr().out
    assert out.startswith("Cách dùng: niemphong")
    assert "tùy chọn:" in out
    assert "niêm phong một tệp quét" in out


def test_cli_help_exits_0_in_english(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--help"], {"LANG": "en_US.UTF-8"}) == 0

    out = capsys.readouterr().out
    assert out.startswith("usage: niemphong scan")
    assert "issue date: YYYY-MM-DD or dd/mm/yyyy" in out


def test_cli_lang_before_command_is_kept() -> None:
    args = build_parser("vi").parse_args(["--lang", "en", *SCAN_OK])

    assert args.lang == "en"


def test_cli_scan_arguments_parsed() -> None:
    argv = ["scan", "a.pdf", "--level", "toi-mat", "--doc-number", "9/QĐ", "--issued", "4/5/2025", "--out", "a.np"]
    args = build_parser("vi").parse_args(argv)

    assert args.level == pb.LEVEL_TOI_MAT
    assert args.issued == dt.date(2025, 5, 4)
    assert args.handler is cli.run_scan_command
    assert args.force is False
    assert args.json is False


def test_cli_tuyet_mat_level_accepted_by_parser() -> None:
    # The daemon, not the parser, rejects Tuyệt mật, so the request must get through.
    argv = ["scan", "a.pdf", "--level", "tuyet-mat", "--doc-number", "1", "--issued", "2025-05-14", "--out", "a.np"]
    args = build_parser("vi").parse_args(argv)

    assert args.level == pb.LEVEL_TUYET_MAT


def test_cli_request_id_lowercased() -> None:
    args = build_parser("vi").parse_args(["approve", "ABCDEF0123456789ABCDEF0123456789"])

    assert args.request_id == "abcdef0123456789abcdef0123456789"


@pytest.mark.parametrize("command", ["scan", "inspect", "request", "approve", "deny", "pending", "show", "view"])
def test_cli_data_commands_have_json(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"], {"LANG": "en_US.UTF-8"}) == 0

    help_text = capsys.readouterr().out
    assert "--json" in help_text
    assert "--server" in help_text
    assert "--identity" in help_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-05-14", dt.date(2025, 5, 14)),
        ("14/05/2025", dt.date(2025, 5, 14)),
        ("4/5/2025", dt.date(2025, 5, 4)),
        (" 29/02/2024 ", dt.date(2024, 2, 29)),
    ],
)
def test_parse_issued_date_accepts_both_forms(text: str, expected: dt.date) -> None:
    assert parse_issued_date(text) == expected


@pytest.mark.parametrize("text", ["29/02/2025", "2025-5-14", "05/14/2025", "14.05.2025", "ngày 14/05/2025", "2025-05-14T00:00"])
def test_parse_issued_date_rejects_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_issued_date(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mat", pb.LEVEL_MAT),
        ("toi-mat", pb.LEVEL_TOI_MAT),
        ("tuyet-mat", pb.LEVEL_TUYET_MAT),
        ("Tối mật", pb.LEVEL_TOI_MAT),
        ("MẬT", pb.LEVEL_MAT),
        ("tuyệt_mật", pb.LEVEL_TUYET_MAT),
        ("To\u0302\u0301i ma\u0323\u0302t", pb.LEVEL_TOI_MAT),
    ],
)
def test_parse_level_accepts_names(text: str, expected: int) -> None:
    assert parse_level(text) == expected


@pytest.mark.parametrize("text", ["", "secret", "toi", "mat mat", "khong-mat"])
def test_parse_level_rejects_unknown(text: str) -> None:
    with pytest.raises(ValueError):
        parse_level(text)


@pytest.mark.parametrize("text", ["", "abc", "g" * 32, "a" * 33, "a" * 31])
def test_parse_request_id_rejects_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_request_id(text)


def test_cli_archive_decision_without_date_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = SCAN_OK + ["--historical-archive", "--declassified-by", "Quyết định số 15/QĐ-LTLS"]

    assert main(argv, UNREACHABLE) == 2
    assert "--declassified-on" in capsys.readouterr().err


def test_cli_archive_decision_with_date_parsed() -> None:
    from niemphong.clients.classification_args import classification_from_args

    args = build_parser("en").parse_args(SCAN_OK + [
        "--historical-archive", "--declassified-by", "Quyết định số 15/QĐ-LTLS", "--declassified-on", "10/03/2026",
    ])
    facts = classification_from_args(args)

    assert facts.historical_archive is True
    assert facts.declassification.decision == "Quyết định số 15/QĐ-LTLS"
    assert facts.declassification.decided_on == "2026-03-10"
