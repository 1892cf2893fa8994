"""The classification policy through the command line and the API, against a real daemon."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import grpc
import pytest

from conftest import BIN, SAMPLES, SHARED_SAMPLES, DaemonProcess, DevEnvironment, error_reason
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

# The day the handover list was checked by hand; --date pins it so the test keeps its meaning later.
CHECK_DATE = "2026-12-04"

SHARED_LIST_COPY = (
    "\ufeffSTT,Số tài liệu,Ngày ban hành,Số tờ,Số trang,Độ mật,Thời hạn bảo vệ đến,Căn cứ xác định độ mật,Tệp\r\n"
    "1,1479/UBND-NC,20/05/2025,2,4,Mật,,Điểm a Khoản 2 Điều 1 danh mục mẫu,cong-van-so-hoa.pdf\r\n"
    "2,12/BB-TCT,02/11/2024,1,2,Tối mật,,Khoản 1 Điều 1 danh mục mẫu,bien-ban-hop.tiff\r\n"
    "3,07/GĐN,15/03/2026,1,1,Mật,30/09/2026,Điểm b Khoản 2 Điều 1 danh mục mẫu,giay-de-nghi.jpg\r\n"
    "4,03/BC-TM,10/01/2024,3,5,Tuyệt mật,,Khoản 1 Điều 1 danh mục mẫu,\r\n"
)


def today() -> dt.date:
    from niemphong.daemon.policy.periods import today_in_vietnam

    return today_in_vietnam()


def check_json(env: DevEnvironment, manifest: Path, *extra: str) -> list[dict[str, object]]:
    result = env.cli("scanner", "policy", "check", "--manifest", str(manifest), "--json", *extra)
    rows = json.loads(result.stdout)
    rejected = any(row["decision"] == "refuse" for row in rows)
    assert result.returncode == (3 if rejected else 0), result.stderr
    return rows


def assert_handover_decisions(rows: list[dict[str, object]]) -> None:
    assert [row["row"] for row in rows] == [1, 2, 3, 4]
    assert (rows[0]["decision"], rows[0]["level"], rows[0]["rule"]) == ("seal", "mat", None)
    assert (rows[1]["decision"], rows[1]["level"], rows[1]["rule"]) == ("seal", "toi-mat", None)
    assert (rows[2]["decision"], rows[2]["level"], rows[2]["rule"]) == ("not_secret", None, "d")
    assert (rows[3]["decision"], rows[3]["level"], rows[3]["rule"]) == ("refuse", None, None)
    assert rows[3]["code"] == "TUYET_MAT"


@pytest.mark.skipif(not SHARED_SAMPLES.exists(), reason="the shared samples folder is not beside this clone")
def test_policy_check_shared_handover_list(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    assert_handover_decisions(check_json(dev_env, SHARED_SAMPLES / "danh-muc-ban-giao.csv", "--date", CHECK_DATE))


def test_policy_check_handover_list_copy(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "danh-muc-ban-giao.csv"
    manifest.write_bytes(SHARED_LIST_COPY.encode("utf-8"))

    assert_handover_decisions(check_json(dev_env, manifest, "--date", CHECK_DATE))


def test_policy_check_stamp_boundary(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(SHARED_LIST_COPY.encode("utf-8"))

    assert check_json(dev_env, manifest, "--date", "2026-09-30")[2]["decision"] == "seal"
    assert check_json(dev_env, manifest, "--date", "2026-10-01")[2]["rule"] == "d"


def test_policy_check_table_in_vietnamese(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(SHARED_LIST_COPY.encode("utf-8"))

    result = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest), "--date", CHECK_DATE)

    assert result.returncode == 3, result.stderr
    assert "Niêm phong (Tối mật)" in result.stdout
    assert "Không chứa BMNN (điểm d)" in result.stdout
    assert "Từ chối" in result.stdout
    assert "Chưa có gì được niêm phong" in result.stdout


def test_policy_check_project_sample_semicolons(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    rows = check_json(dev_env, SAMPLES / "danh-muc-mau.csv", "--date", CHECK_DATE)

    assert [row["decision"] for row in rows] == ["seal", "seal", "seal", "refuse"]
    assert [row["level"] for row in rows] == ["mat", "toi-mat", "mat", None]


def test_policy_check_bad_row_named(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text("STT;Số tài liệu;Ngày ban hành;Độ mật\n1;1/A;31/02/2025;Mật\n2;2/B;01/02/2025;Mật\n",
                        encoding="utf-8")

    rows = check_json(dev_env, manifest)

    assert rows[0]["decision"] == "refuse"
    assert rows[0]["code"] == "INVALID_ROW"
    assert "Ngày ban hành" in str(rows[0]["reason"])
    assert rows[1]["decision"] == "seal"


def test_policy_check_all_rows_fine_exits_0(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text("STT;Số tài liệu;Ngày ban hành;Độ mật\n1;1/A;01/02/2025;Mật\n2;2/B;01/02/2025;Tối mật\n",
                        encoding="utf-8")

    result = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest))

    assert result.returncode == 0, result.stderr
    assert "Từ chối" not in result.stdout


def test_policy_check_invalid_row_exits_3(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text("STT;Số tài liệu;Ngày ban hành;Độ mật\n1;1/A;31/02/2025;Mật\n", encoding="utf-8")

    result = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest))

    assert result.returncode == 3, result.stderr


def test_policy_check_future_issue_date_explained(
    daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path,
) -> None:
    tomorrow = today() + dt.timedelta(days=1)
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"STT;Số tài liệu;Ngày ban hành;Độ mật\n1;1/A;{tomorrow:%d/%m/%Y};Mật\n", encoding="utf-8")

    vietnamese = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest))
    english = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest), lang="en_US.UTF-8")

    assert vietnamese.returncode == 3, vietnamese.stderr
    assert f"ngày ban hành {tomorrow:%d/%m/%Y} sau ngày hôm nay ({today():%d/%m/%Y})" in vietnamese.stdout
    assert "issued_on" not in vietnamese.stdout
    assert "after today" in english.stdout
    assert "issued_on" not in english.stdout


def test_scan_future_issue_date_without_usage(
    daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path,
) -> None:
    tomorrow = today() + dt.timedelta(days=1)

    result, out = scan(dev_env, tmp_path, "future", "--level", "mat", "--issued", f"{tomorrow:%d/%m/%Y}")

    assert result.returncode == 2
    assert f"Ngày ban hành {tomorrow:%d/%m/%Y} sau ngày hôm nay ({today():%d/%m/%Y})" in result.stderr
    assert "Cách dùng" not in result.stderr
    assert not out.exists()


def test_policy_check_missing_column_exits_2(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text("STT;Số tài liệu;Độ mật\n1;1/A;Mật\n", encoding="utf-8")

    result = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest))

    assert result.returncode == 2
    assert "Ngày ban hành" in result.stderr


def scan(env: DevEnvironment, tmp_path: Path, name: str, *options: str, lang: str | None = None):
    source = tmp_path / f"{name}.pdf"
    source.write_bytes(b"%PDF-1.4 " + name.encode())
    out = tmp_path / f"{name}.npe"
    result = env.cli("scanner", "scan", str(source), "--doc-number", f"{name}/VP", "--out", str(out), *options,
                     lang=lang)
    return result, out


def test_scan_mat_2011_not_sealed_rule_c(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "c2011", "--level", "mat", "--issued", "2011-05-20", "--json")

    assert result.returncode == 3, result.stderr
    assert not out.exists()
    answer = json.loads(result.stdout)
    assert (answer["decision"], answer["rule"], answer["code"]) == ("not_secret", "c", "PERIOD_ENDED")
    assert len(answer["record_id"]) == 32
    assert "điểm c" in result.stderr
    assert "Lỗi" not in result.stderr


def test_scan_mat_2011_extended_to_2031_sealed(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "ext", "--level", "mat", "--issued", "2011-05-20",
                       "--extended-until", "2031-05-20", "--extension-decision", "Quyết định số 7/QĐ-UBND", "--json")

    assert result.returncode == 0, result.stderr
    assert out.exists()
    summary = json.loads(result.stdout)
    assert summary["decision"]["code"] == "PROTECTED_BY_EXTENSION"
    assert summary["decision"]["protected_until"] == "2031-05-20"


def test_scan_period_boundary_relative_to_today(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    from niemphong.daemon.policy.periods import add_years

    last_day_today = add_years(today(), -10)
    # Issued ten years ago today: this is the last protected day.
    sealed, sealed_out = scan(dev_env, tmp_path, "edge", "--level", "mat", "--issued", last_day_today.isoformat())
    # Issued one day earlier: the period ended yesterday.
    ended, ended_out = scan(dev_env, tmp_path, "past", "--level", "mat",
                            "--issued", (last_day_today - dt.timedelta(days=1)).isoformat())

    assert sealed.returncode == 0, sealed.stderr
    assert sealed_out.exists()
    assert ended.returncode == 3, ended.stderr
    assert not ended_out.exists()


def test_scan_basis_not_in_catalog_rule_dd(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "dd", "--level", "mat", "--issued", "2025-03-01",
                       "--basis", "Điểm c Khoản 2 Điều 1 danh mục mẫu", "--json")

    assert result.returncode == 3
    assert not out.exists()
    answer = json.loads(result.stdout)
    assert (answer["rule"], answer["stamp_required"]) == ("đ", True)
    assert "Giải mật" in result.stderr


def test_scan_refusal_leaves_nothing(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "above", "--level", "toi-mat", "--issued", "2025-03-01",
                       "--basis", "Điểm a Khoản 2 Điều 1 danh mục mẫu", lang="en_US.UTF-8")

    assert result.returncode == 3
    assert not out.exists()
    assert "highest level" in result.stderr
    assert not list(tmp_path.glob(".niemphong-*"))


def test_scan_standing_decision_gives_level(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "kind", "--kind", "bao-cao-tuan", "--issued", "2025-06-02", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["level"] == "mat"


def test_scan_without_level_or_kind_exits_2(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "nolevel", "--issued", "2025-06-02")

    assert result.returncode == 2
    assert "--kind" in result.stderr


def test_seal_not_secret_records_decision(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    metadata = pb.SealMetadata(
        level=pb.LEVEL_MAT,
        document=pb.DocumentMetadata(doc_number="5/GM", issued_on="2025-01-01", source_name="x.pdf"),
        classification=pb.ClassificationFacts(declassification=pb.Declassification(
            decision="Quyết định số 3/QĐ-UBND", decided_on="2026-01-15",
        )),
    )

    with dev_env.channel("scanner") as channel:
        responses = list(pb_grpc.EnvelopeServiceStub(channel).Seal(
            iter([pb.SealRequest(metadata=metadata), pb.SealRequest(chunk=b"data")]), timeout=30))

    assert len(responses) == 1
    not_sealed = responses[0].not_sealed
    assert not_sealed.decision.outcome == pb.DECISION_OUTCOME_NOT_SECRET
    assert not_sealed.decision.rule == "e"
    assert not_sealed.decision.declassification_stamp_required
    assert len(not_sealed.record_id) == 32


def test_seal_bad_stamp_date_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    metadata = pb.SealMetadata(
        level=pb.LEVEL_MAT, document=pb.DocumentMetadata(doc_number="6/GM", issued_on="2025-01-01"),
        classification=pb.ClassificationFacts(stamp=pb.ProtectionStamp(ends_on="30/09/2026")),
    )

    with dev_env.channel("scanner") as channel, pytest.raises(grpc.RpcError) as excinfo:
        list(pb_grpc.EnvelopeServiceStub(channel).Seal(iter([pb.SealRequest(metadata=metadata)]), timeout=30))

    assert error_reason(excinfo.value) == "INVALID_FIELD"


def test_policy_due_and_extension_moves_date(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    from niemphong.daemon.policy.periods import add_years

    # A Mật document whose protection ends 30 days from today.
    issued = add_years(today() + dt.timedelta(days=30), -10)
    result, _ = scan(dev_env, tmp_path, "due", "--level", "mat", "--issued", issued.isoformat(), "--json")
    assert result.returncode == 0, result.stderr
    artefact_id = json.loads(result.stdout)["artefact_id"]

    def due(days: str) -> dict[str, dict[str, object]]:
        listed = dev_env.cli("approver-1", "policy", "due", "--within", days, "--json")
        assert listed.returncode == 0, listed.stderr
        return {entry["artefact_id"]: entry for entry in json.loads(listed.stdout)}

    assert artefact_id not in due("29d")
    assert due("30d")[artefact_id]["days_left"] == 30

    extended = dev_env.cli("approver-1", "policy", "extend", artefact_id, "--until", "2040-01-01",
                           "--decision", "Quyết định số 9/QĐ-UBND", "--decided-on", today().isoformat())
    assert extended.returncode == 0, extended.stderr
    assert artefact_id not in due("90d")

    again = dev_env.cli("approver-1", "policy", "extend", artefact_id, "--until", "2039-01-01",
                        "--decision", "Quyết định số 10/QĐ-UBND", "--decided-on", today().isoformat())
    assert again.returncode == 3
    assert "không sau" in again.stderr


def test_policy_extend_needs_approver(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("scanner", "policy", "extend", "a" * 32, "--until", "2040-01-01", "--decision", "QĐ 1",
                         "--decided-on", "2026-01-01")

    assert result.returncode == 4


def test_policy_show_prints_policy_in_force(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("auditor", "policy", "show", "--json")

    assert result.returncode == 0, result.stderr
    policy = json.loads(result.stdout)
    assert policy["development"] is True
    assert policy["policy_file"] == str(dev_env.root / "policy.toml")
    assert [level["level"] for level in policy["levels"]] == ["toi-mat", "mat"]
    assert [level["protection_years"] for level in policy["levels"]] == [20, 10]
    assert policy["catalog"][0]["sample"] is True
    text = dev_env.cli("auditor", "policy", "show")
    assert "DỮ LIỆU MẪU" in text.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("approvals = 2", "aprovals = 2"), "levels.toi-mat.aprovals"),
        (("protection_years = 10", "protection_years = -1"), "levels.mat.protection_years"),
        (("[catalog]", '[levels.tuyet-mat]\nkey_id = "k"\n\n[catalog]'), "levels.tuyet-mat"),
    ],
)
def test_daemon_bad_policy_stops_at_start(dev_env: DevEnvironment, tmp_path: Path, change: tuple[str, str],
                                          named: str) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text((dev_env.root / "policy.toml").read_text(encoding="utf-8").replace(*change, 1), encoding="utf-8")
    config = tmp_path / "niemphongd.toml"
    config.write_text((dev_env.root / "niemphongd.toml").read_text(encoding="utf-8")
                      .replace(str(dev_env.root / "policy.toml"), str(policy)), encoding="utf-8")

    result = subprocess.run([str(BIN / "niemphongd"), "--config", str(config)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 2
    assert str(policy) in result.stderr
    assert named in result.stderr


# Rule g: a historical archive with no known originating agency must decide before a document is not secret.

ARCHIVE_LIST = (
    "STT;Số tài liệu;Ngày ban hành;Độ mật;Quyết định giải mật;Ngày giải mật;Lưu trữ lịch sử\n"
    "1;1/HA;01/01/2020;Mật;;;có\n"
    "2;2/HA;01/01/2020;Tối mật;;;có\n"
    "3;3/HA;01/01/1980;Tuyệt mật;;;có\n"
    "4;4/HA;01/01/2020;Mật;Quyết định số 15/QĐ-LTLS;10/03/2026;có\n"
    "5;5/HA;01/01/2020;Tối mật;Quyết định số 15/QĐ-LTLS;10/03/2026;x\n"
    "6;6/HA;01/01/1980;Tuyệt mật;Quyết định số 15/QĐ-LTLS;10/03/2026;có\n"
    "7;7/HA;01/01/2020;Tối mật;Quyết định số 15/QĐ-LTLS;;có\n"
    "8;8/HA;01/01/2020;Mật;Quyết định số 15/QĐ-LTLS;05/12/2026;có\n"
    "9;9/HA;01/01/1980;Tuyệt mật;Quyết định số 15/QĐ-LTLS;31/12/1979;có\n"
    "10;10/HA;20/05/2011;Mật;;;có\n"
)


def test_policy_check_historical_archive_rows(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    manifest = tmp_path / "luu-tru-lich-su.csv"
    manifest.write_text(ARCHIVE_LIST, encoding="utf-8")

    rows = {row["row"]: row for row in check_json(dev_env, manifest, "--date", CHECK_DATE)}

    expected = {
        1: ("seal", "mat", None, "ARCHIVE_DECISION_REQUIRED"),
        2: ("seal", "toi-mat", None, "ARCHIVE_DECISION_REQUIRED"),
        3: ("refuse", None, None, "TUYET_MAT_ARCHIVE_DECISION_REQUIRED"),
        4: ("not_secret", None, "g", "HISTORICAL_ARCHIVE"),
        5: ("not_secret", None, "g", "HISTORICAL_ARCHIVE"),
        6: ("not_secret", None, "g", "HISTORICAL_ARCHIVE"),
        7: ("refuse", None, None, "ARCHIVE_DECISION_UNDATED"),
        8: ("refuse", None, None, "DECLASSIFICATION_AFTER_TODAY"),
        9: ("refuse", None, None, "DECLASSIFICATION_BEFORE_ISSUE"),
        10: ("not_secret", None, "c", "PERIOD_ENDED"),
    }
    for number, (decision, level, rule, code) in expected.items():
        assert (rows[number]["decision"], rows[number]["level"], rows[number]["rule"], rows[number]["code"]) == (
            decision, level, rule, code,
        ), number
    assert rows[1]["protected_until"] == "2030-01-01"
    assert rows[2]["protected_until"] == "2040-01-01"
    assert "điểm g" in str(rows[1]["reason"])
    assert "Quyết định số 15/QĐ-LTLS" in str(rows[4]["reason"])
    assert rows[4]["stamp_required"] is True


def test_scan_tuyet_mat_archive_without_decision_refused(daemon: DaemonProcess, dev_env: DevEnvironment,
                                                         tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "tmha", "--level", "tuyet-mat", "--issued", "1980-01-01",
                       "--historical-archive")

    assert result.returncode == 3
    assert not out.exists()
    assert "Lưu trữ lịch sử phải quyết định việc giải mật" in result.stderr
    assert "Không chứa BMNN" not in result.stderr
    assert not list(tmp_path.glob(".niemphong-*"))


def test_scan_tuyet_mat_archive_without_decision_english(daemon: DaemonProcess, dev_env: DevEnvironment,
                                                         tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "tmhaen", "--level", "tuyet-mat", "--issued", "1980-01-01",
                       "--historical-archive", lang="en_US.UTF-8")

    assert result.returncode == 3
    assert not out.exists()
    assert "the archive must decide" in result.stderr


def test_scan_mat_archive_without_decision_sealed(daemon: DaemonProcess, dev_env: DevEnvironment,
                                                  tmp_path: Path) -> None:
    result, out = scan(dev_env, tmp_path, "mha", "--level", "mat", "--issued", "2020-01-01", "--historical-archive",
                       "--json")

    assert result.returncode == 0, result.stderr
    assert out.exists()
    decision = json.loads(result.stdout)["decision"]
    assert (decision["decision"], decision["level"], decision["code"]) == ("seal", "mat", "ARCHIVE_DECISION_REQUIRED")
    assert decision["protected_until"] == "2030-01-01"
    assert "điểm g" in decision["reason"]


def test_scan_archive_decision_not_sealed_and_audited(daemon: DaemonProcess, dev_env: DevEnvironment,
                                                      tmp_path: Path) -> None:
    audit_log = Path(dev_env.config["audit"]["path"])
    offset = audit_log.stat().st_size

    result, out = scan(dev_env, tmp_path, "gha", "--level", "toi-mat", "--issued", "1980-01-01", "--historical-archive",
                       "--declassified-by", "Quyết định số 16/QĐ-LTLS", "--declassified-on", "2026-03-10", "--json")

    assert result.returncode == 3, result.stderr
    assert not out.exists()
    answer = json.loads(result.stdout)
    assert (answer["decision"], answer["rule"], answer["code"]) == ("not_secret", "g", "HISTORICAL_ARCHIVE")
    assert answer["stamp_required"] is True
    entries = [json.loads(line) for line in audit_log.read_bytes()[offset:].splitlines()]
    [record] = [entry for entry in entries if entry["kind"] == "record"
                and entry["facts"].get("declassification_decision") == "Quyết định số 16/QĐ-LTLS"]
    assert record["facts"]["rule"] == "g"
    assert record["facts"]["declassified_on"] == "2026-03-10"
    assert record["facts"]["historical_archive"] == "yes"


def test_archive_undecided_seal_due_by_stamp(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    stamp_until = today() + dt.timedelta(days=10)
    result, _ = scan(dev_env, tmp_path, "hadue", "--level", "mat", "--issued", "2026-01-01", "--historical-archive",
                     "--stamp-until", stamp_until.isoformat(), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["decision"]["code"] == "ARCHIVE_DECISION_REQUIRED"

    listed = dev_env.cli("approver-1", "policy", "due", "--within", "30d", "--json")

    assert listed.returncode == 0, listed.stderr
    entry = {item["artefact_id"]: item for item in json.loads(listed.stdout)}[summary["artefact_id"]]
    assert entry["source"] == "stamp"
    assert entry["protected_until"] == stamp_until.isoformat()
