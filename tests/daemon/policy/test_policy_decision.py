"""The classification rules, each on both sides of its dates."""

from __future__ import annotations

import datetime as dt

import pytest

from rules_fixtures import catalog, rules  # noqa: F401  (fixtures)
from niemphong.daemon.levels import Level
from niemphong.daemon.policy.decision import (
    Declassification,
    DocumentFacts,
    Extension,
    Outcome,
    Rules,
    Stamp,
    decide,
)
from niemphong.daemon.policy.explain import codes, explain

D = dt.date
TODAY = D(2026, 12, 4)
BASIS_MAT = "Điểm a Khoản 2 Điều 1 danh mục mẫu"


def mat(issued: dt.date, **facts: object) -> DocumentFacts:
    return DocumentFacts(level=Level.MAT, issued_on=issued, **facts)  # type: ignore[arg-type]


# Rule c: the protection period has passed without an extension.

def test_mat_issued_2011_never_extended_is_rule_c(rules: Rules) -> None:
    decision = decide(mat(D(2011, 5, 20)), rules, TODAY)

    assert decision.outcome is Outcome.NOT_SECRET
    assert decision.rule == "c"
    assert decision.code == "PERIOD_ENDED"
    assert not decision.stamp_required
    assert decision.protected_until == D(2021, 5, 20)


def test_mat_issued_2011_extended_to_2031_sealed(rules: Rules) -> None:
    facts = mat(D(2011, 5, 20), extension=Extension(ends_on=D(2031, 5, 20), decision="Quyết định số 7/QĐ-UBND"))

    decision = decide(facts, rules, TODAY)

    assert decision.outcome is Outcome.SEAL
    assert decision.level is Level.MAT
    assert decision.code == "PROTECTED_BY_EXTENSION"
    assert decision.protected_until == D(2031, 5, 20)


def test_rule_c_last_protected_day_sealed(rules: Rules) -> None:
    decision = decide(mat(D(2016, 12, 4)), rules, D(2026, 12, 4))

    assert decision.outcome is Outcome.SEAL
    assert decision.protected_until == D(2026, 12, 4)


def test_rule_c_day_after_last_day(rules: Rules) -> None:
    decision = decide(mat(D(2016, 12, 4)), rules, D(2026, 12, 5))

    assert decision.outcome is Outcome.NOT_SECRET
    assert decision.rule == "c"


def test_rule_c_29_february_ends_28_february(rules: Rules) -> None:
    facts = mat(D(2016, 2, 29))

    assert decide(facts, rules, D(2026, 2, 28)).outcome is Outcome.SEAL
    assert decide(facts, rules, D(2026, 3, 1)).rule == "c"


def test_rule_c_toi_mat_twenty_years(rules: Rules) -> None:
    facts = DocumentFacts(level=Level.TOI_MAT, issued_on=D(2006, 12, 4))

    assert decide(facts, rules, D(2026, 12, 4)).outcome is Outcome.SEAL
    assert decide(facts, rules, D(2026, 12, 5)).rule == "c"


def test_rule_c_extension_ended(rules: Rules) -> None:
    facts = mat(D(2011, 5, 20), extension=Extension(ends_on=D(2026, 12, 4)))

    assert decide(facts, rules, D(2026, 12, 4)).outcome is Outcome.SEAL
    ended = decide(facts, rules, D(2026, 12, 5))
    assert ended.rule == "c"
    assert ended.code == "EXTENSION_ENDED"


# Rule d: a protection-period stamp whose last day has passed.

def test_rule_d_stamp_last_day_sealed(rules: Rules) -> None:
    decision = decide(mat(D(2026, 3, 15), stamp=Stamp(ends_on=D(2026, 9, 30))), rules, D(2026, 9, 30))

    assert decision.outcome is Outcome.SEAL
    assert decision.code == "PROTECTED_BY_STAMP"
    assert decision.protected_until == D(2026, 9, 30)


def test_rule_d_stamp_day_after(rules: Rules) -> None:
    decision = decide(mat(D(2026, 3, 15), stamp=Stamp(ends_on=D(2026, 9, 30))), rules, D(2026, 10, 1))

    assert decision.outcome is Outcome.NOT_SECRET
    assert decision.rule == "d"
    assert not decision.stamp_required


def test_stamp_beyond_period_refused(rules: Rules) -> None:
    decision = decide(mat(D(2020, 1, 1), stamp=Stamp(ends_on=D(2030, 1, 2))), rules, TODAY)

    assert decision.outcome is Outcome.REFUSE
    assert decision.code == "STAMP_BEYOND_PERIOD"


def test_stamp_ending_on_statutory_last_day_accepted(rules: Rules) -> None:
    decision = decide(mat(D(2020, 1, 1), stamp=Stamp(ends_on=D(2030, 1, 1))), rules, TODAY)

    assert decision.outcome is Outcome.SEAL


def test_stamp_ends_before_start_refused(rules: Rules) -> None:
    stamp = Stamp(starts_on=D(2026, 5, 1), ends_on=D(2026, 4, 30))

    assert decide(mat(D(2026, 4, 1), stamp=stamp), rules, TODAY).code == "STAMP_ENDS_BEFORE_START"


def test_stamp_starts_before_issue_refused(rules: Rules) -> None:
    stamp = Stamp(starts_on=D(2026, 3, 31), ends_on=D(2026, 12, 31))

    assert decide(mat(D(2026, 4, 1), stamp=stamp), rules, TODAY).code == "STAMP_STARTS_BEFORE_ISSUE"


def test_stamp_ends_before_issue_refused(rules: Rules) -> None:
    assert decide(mat(D(2026, 4, 1), stamp=Stamp(ends_on=D(2026, 3, 1))), rules, TODAY).code == "STAMP_ENDS_BEFORE_ISSUE"


# Rule đ: the basis is no longer in the catalog in force.

def test_rule_dd_basis_not_in_catalog(rules: Rules) -> None:
    decision = decide(mat(D(2025, 3, 1), basis="Điểm c Khoản 2 Điều 1 danh mục mẫu"), rules, TODAY)

    assert decision.outcome is Outcome.NOT_SECRET
    assert decision.rule == "đ"
    assert decision.code == "NOT_IN_CATALOG"
    assert decision.stamp_required


def test_rule_dd_superseded_catalog(rules: Rules) -> None:
    decision = decide(mat(D(2025, 3, 1), basis="Điểm a Khoản 2 Điều 1 danh mục mẫu cũ"), rules, TODAY)

    assert decision.rule == "đ"
    assert decision.code == "CATALOG_SUPERSEDED"
    assert decision.stamp_required


def test_rule_dd_last_protected_day_then_c(rules: Rules) -> None:
    facts = mat(D(2016, 12, 4), basis="Điểm c Khoản 2 Điều 1 danh mục mẫu")

    assert decide(facts, rules, D(2026, 12, 4)).rule == "đ"
    assert decide(facts, rules, D(2026, 12, 5)).rule == "c"


def test_basis_unknown_decision_refused(rules: Rules) -> None:
    decision = decide(mat(D(2025, 3, 1), basis="Điểm a Khoản 2 Điều 1 Quyết định số 9999/QĐ-TTg"), rules, TODAY)

    assert decision.outcome is Outcome.REFUSE
    assert decision.code == "BASIS_DECISION_UNKNOWN"


def test_basis_unparsable_refused(rules: Rules) -> None:
    assert decide(mat(D(2025, 3, 1), basis="theo danh mục"), rules, TODAY).code == "BASIS_UNPARSABLE"


def test_level_above_catalog_item_refused(rules: Rules) -> None:
    facts = DocumentFacts(level=Level.TOI_MAT, issued_on=D(2025, 3, 1), basis=BASIS_MAT)

    decision = decide(facts, rules, TODAY)

    assert decision.outcome is Outcome.REFUSE
    assert decision.code == "ABOVE_CATALOG_LEVEL"


def test_basis_citing_clause_takes_highest_point(rules: Rules) -> None:
    facts = DocumentFacts(level=Level.TOI_MAT, issued_on=D(2024, 11, 2), basis="Khoản 1 Điều 1 danh mục mẫu")

    decision = decide(facts, rules, TODAY)

    assert decision.outcome is Outcome.SEAL
    assert decision.level is Level.TOI_MAT
    assert "Điểm a Khoản 1 Điều 1 danh mục mẫu" in decision.catalog_item


def test_basis_required_by_policy(rules: Rules) -> None:
    strict = Rules(protection_years=rules.protection_years, catalog=rules.catalog, require_basis=True)

    assert decide(mat(D(2025, 3, 1)), strict, TODAY).code == "BASIS_REQUIRED"
    assert decide(mat(D(2025, 3, 1), basis=BASIS_MAT), strict, TODAY).outcome is Outcome.SEAL


# Rule e: declassified by decision.

def test_rule_e_decision_dated_today(rules: Rules) -> None:
    facts = mat(D(2025, 3, 1), declassification=Declassification("Quyết định số 3/QĐ-UBND", TODAY))

    decision = decide(facts, rules, TODAY)

    assert decision.outcome is Outcome.NOT_SECRET
    assert decision.rule == "e"
    assert decision.stamp_required


def test_rule_e_decision_dated_tomorrow_refused(rules: Rules) -> None:
    facts = mat(D(2025, 3, 1), declassification=Declassification("Quyết định số 3/QĐ-UBND", D(2026, 12, 5)))

    assert decide(facts, rules, TODAY).code == "DECLASSIFICATION_AFTER_TODAY"


def test_rule_e_decision_before_issue_refused(rules: Rules) -> None:
    facts = mat(D(2025, 3, 1), declassification=Declassification("Quyết định số 3/QĐ-UBND", D(2025, 2, 28)))

    assert decide(facts, rules, TODAY).code == "DECLASSIFICATION_BEFORE_ISSUE"
    facts = mat(D(2025, 3, 1), declassification=Declassification("Quyết định số 3/QĐ-UBND", D(2025, 3, 1)))
    assert decide(facts, rules, TODAY).rule == "e"


def test_rule_e_tuyet_mat_declassified(rules: Rules) -> None:
    facts = DocumentFacts(
        level=Level.TUYET_MAT, issued_on=D(1990, 1, 1), declassification=Declassification("QĐ 1", D(2020, 1, 1)),
    )

    assert decide(facts, rules, TODAY).rule == "e"


@pytest.mark.parametrize("level", [Level.MAT, Level.TOI_MAT, Level.TUYET_MAT])
def test_rule_e_undated_decision_refused(rules: Rules, level: Level) -> None:
    # Without its date a decision cannot be checked against today and the
    # issue date, so no level leaves protection on a decision number alone.
    facts = DocumentFacts(level=level, issued_on=D(1990, 1, 1), declassification=Declassification("QĐ 1"))

    decision = decide(facts, rules, TODAY)

    assert decision.outcome is Outcome.REFUSE
    assert decision.code == "DECLASSIFICATION_UNDATED"


# Rule g: a historical archive with no known originating agency decides itself.

ARCHIVE_DECISION = "Quyết định số 15/QĐ-LTLS"
ARCHIVE_ISSUED = D(1980, 1, 1)
# Issued within both periods, so that without the archive's decision nothing but g could make it not secret.
RECENT_ISSUED = D(2020, 1, 1)


def archive(level: Level, issued: dt.date, decided_on: dt.date | None = None, decided: bool = True) -> DocumentFacts:
    declassification = Declassification(ARCHIVE_DECISION, decided_on) if decided else None
    return DocumentFacts(level=level, issued_on=issued, declassification=declassification, historical_archive=True)


@pytest.mark.parametrize("level", [Level.MAT, Level.TOI_MAT, Level.TUYET_MAT])
@pytest.mark.parametrize(
    ("issued", "decided_on", "outcome", "code"),
    [
        # The archive decided, dated today or on the issue date: not secret under g.
        (ARCHIVE_ISSUED, TODAY, Outcome.NOT_SECRET, "HISTORICAL_ARCHIVE"),
        (RECENT_ISSUED, RECENT_ISSUED, Outcome.NOT_SECRET, "HISTORICAL_ARCHIVE"),
        # A decision without a date, dated tomorrow, or dated before the issue date.
        (ARCHIVE_ISSUED, None, Outcome.REFUSE, "ARCHIVE_DECISION_UNDATED"),
        (ARCHIVE_ISSUED, TODAY + dt.timedelta(days=1), Outcome.REFUSE, "DECLASSIFICATION_AFTER_TODAY"),
        (RECENT_ISSUED, RECENT_ISSUED - dt.timedelta(days=1), Outcome.REFUSE, "DECLASSIFICATION_BEFORE_ISSUE"),
    ],
)
def test_rule_g_with_archive_decision(rules: Rules, level: Level, issued: dt.date, decided_on: dt.date | None,
                                      outcome: Outcome, code: str) -> None:
    decision = decide(archive(level, issued, decided_on), rules, TODAY)

    assert decision.outcome is outcome
    assert decision.code == code
    assert decision.rule == ("g" if outcome is Outcome.NOT_SECRET else None)
    assert decision.stamp_required is (outcome is Outcome.NOT_SECRET)
    if outcome is Outcome.NOT_SECRET:
        assert decision.details["decision"] == ARCHIVE_DECISION
        assert decision.details["decided_on"] == decided_on.isoformat()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("level", "outcome", "code"),
    [
        (Level.MAT, Outcome.SEAL, "ARCHIVE_DECISION_REQUIRED"),
        (Level.TOI_MAT, Outcome.SEAL, "ARCHIVE_DECISION_REQUIRED"),
        (Level.TUYET_MAT, Outcome.REFUSE, "TUYET_MAT_ARCHIVE_DECISION_REQUIRED"),
    ],
)
def test_rule_g_without_archive_decision(rules: Rules, level: Level, outcome: Outcome, code: str) -> None:
    decision = decide(archive(level, RECENT_ISSUED, decided=False), rules, TODAY)

    assert decision.outcome is outcome
    assert decision.code == code
    assert decision.rule is None
    assert not decision.stamp_required


@pytest.mark.parametrize("level", [Level.MAT, Level.TOI_MAT])
def test_rule_g_without_decision_sealed_at_level(rules: Rules, level: Level) -> None:
    decision = decide(archive(level, RECENT_ISSUED, decided=False), rules, TODAY)

    assert decision.level is level
    assert decision.protected_until == D(2020 + rules.protection_years[level], 1, 1)
    assert decision.details["protection_code"] == "PROTECTED"


def test_rule_g_without_decision_keeps_stamp_date(rules: Rules) -> None:
    facts = DocumentFacts(level=Level.MAT, issued_on=D(2026, 3, 15), stamp=Stamp(ends_on=D(2026, 12, 31)),
                          historical_archive=True)

    decision = decide(facts, rules, TODAY)

    assert decision.code == "ARCHIVE_DECISION_REQUIRED"
    assert decision.protected_until == D(2026, 12, 31)
    assert decision.details["protection_code"] == "PROTECTED_BY_STAMP"


def test_rule_g_without_decision_other_rules_apply(rules: Rules) -> None:
    # Rules c and đ need no decision from anyone, so the archive's silence does not keep the document secret.
    period_ended = decide(archive(Level.MAT, D(2011, 5, 20), decided=False), rules, TODAY)
    not_in_catalog = decide(
        DocumentFacts(level=Level.MAT, issued_on=D(2025, 3, 1), basis="Điểm c Khoản 2 Điều 1 danh mục mẫu",
                      historical_archive=True),
        rules, TODAY,
    )

    assert (period_ended.outcome, period_ended.rule) == (Outcome.NOT_SECRET, "c")
    assert (not_in_catalog.outcome, not_in_catalog.rule) == (Outcome.NOT_SECRET, "đ")


def test_rule_g_tuyet_mat_1980_undecided_refused(rules: Rules) -> None:
    decision = decide(archive(Level.TUYET_MAT, ARCHIVE_ISSUED, decided=False), rules, TODAY)

    assert decision.outcome is Outcome.REFUSE
    assert decision.code == "TUYET_MAT_ARCHIVE_DECISION_REQUIRED"


def test_rule_g_decision_overrides_running_period(rules: Rules) -> None:
    # The archive's decision does not wait for the period: the last protected day is still rule g.
    facts = archive(Level.MAT, D(2016, 12, 4), decided_on=D(2026, 12, 1))

    assert decide(facts, rules, D(2026, 12, 4)).rule == "g"


# Tuyệt mật and the inputs.

def test_tuyet_mat_refused_after_thirty_years(rules: Rules) -> None:
    decision = decide(DocumentFacts(level=Level.TUYET_MAT, issued_on=D(1980, 1, 1)), rules, TODAY)

    assert decision.outcome is Outcome.REFUSE
    assert decision.code == "TUYET_MAT"


def test_issued_today_sealed_tomorrow_refused(rules: Rules) -> None:
    assert decide(mat(TODAY), rules, TODAY).outcome is Outcome.SEAL
    assert decide(mat(D(2026, 12, 5)), rules, TODAY).code == "ISSUED_AFTER_TODAY"


def test_level_missing_refused(rules: Rules) -> None:
    assert decide(DocumentFacts(level=None, issued_on=D(2025, 1, 1)), rules, TODAY).code == "LEVEL_MISSING"


def test_extension_not_later_refused(rules: Rules) -> None:
    facts = mat(D(2020, 1, 1), extension=Extension(ends_on=D(2030, 1, 1)))

    assert decide(facts, rules, TODAY).code == "EXTENSION_NOT_LATER"


def test_extension_decided_on_last_day_accepted_day_after_refused(rules: Rules) -> None:
    on_time = mat(D(2011, 5, 20), extension=Extension(ends_on=D(2031, 5, 20), decided_on=D(2021, 5, 20)))
    late = mat(D(2011, 5, 20), extension=Extension(ends_on=D(2031, 5, 20), decided_on=D(2021, 5, 21)))

    assert decide(on_time, rules, TODAY).outcome is Outcome.SEAL
    assert decide(late, rules, TODAY).code == "EXTENSION_DECIDED_LATE"


def test_extension_decided_after_today_refused(rules: Rules) -> None:
    facts = mat(D(2020, 1, 1), extension=Extension(ends_on=D(2040, 1, 1), decided_on=D(2026, 12, 5)))

    assert decide(facts, rules, TODAY).code == "EXTENSION_DECIDED_AFTER_TODAY"


# Standing decisions for recurring kinds of electronic documents.

def test_standing_decision_gives_level(rules: Rules) -> None:
    decision = decide(DocumentFacts(level=None, issued_on=D(2025, 6, 1), standing_decision="bao-cao-tuan"), rules, TODAY)

    assert decision.outcome is Outcome.SEAL
    assert decision.level is Level.MAT
    assert decision.details["standing_decision"] == "Quyết định số 01/QĐ-VP"


def test_standing_decision_unknown_refused(rules: Rules) -> None:
    facts = DocumentFacts(level=None, issued_on=D(2025, 6, 1), standing_decision="khong-co")

    assert decide(facts, rules, TODAY).code == "STANDING_DECISION_UNKNOWN"


def test_standing_decision_level_mismatch_refused(rules: Rules) -> None:
    facts = DocumentFacts(level=Level.TOI_MAT, issued_on=D(2025, 6, 1), standing_decision="bao-cao-tuan")

    assert decide(facts, rules, TODAY).code == "STANDING_DECISION_LEVEL_MISMATCH"


def test_standing_decision_basis_mismatch_refused(rules: Rules) -> None:
    facts = mat(D(2025, 6, 1), standing_decision="bao-cao-tuan", basis="Điểm b Khoản 2 Điều 1 danh mục mẫu")

    assert decide(facts, rules, TODAY).code == "STANDING_DECISION_BASIS_MISMATCH"


def test_standing_decision_covers_from_its_date(rules: Rules) -> None:
    on_date = DocumentFacts(level=None, issued_on=D(2025, 1, 2), standing_decision="bao-cao-tuan")
    before = DocumentFacts(level=None, issued_on=D(2025, 1, 1), standing_decision="bao-cao-tuan")

    assert decide(on_date, rules, TODAY).outcome is Outcome.SEAL
    assert decide(before, rules, TODAY).code == "STANDING_DECISION_LATER"


# Explanations.

def test_explanation_cites_rule_and_law(rules: Rules) -> None:
    decision = decide(mat(D(2011, 5, 20)), rules, TODAY)

    vietnamese, english = explain(decision, D(2011, 5, 20))

    assert "điểm c" in vietnamese
    assert "29/2018/QH14" in vietnamese
    assert "20/05/2021" in vietnamese
    assert "rule c" in english
    assert "2021-05-20" in english


def test_explanation_rule_dd_says_stamp_giai_mat(rules: Rules) -> None:
    decision = decide(mat(D(2025, 3, 1), basis="Điểm c Khoản 2 Điều 1 danh mục mẫu"), rules, TODAY)

    vietnamese, _ = explain(decision, D(2025, 3, 1))

    assert 'đóng dấu "Giải mật"' in vietnamese


def test_explanation_rule_g_cites_archive_decision(rules: Rules) -> None:
    decision = decide(archive(Level.TOI_MAT, ARCHIVE_ISSUED, decided_on=D(2026, 3, 10)), rules, TODAY)

    vietnamese, english = explain(decision, ARCHIVE_ISSUED)

    assert "điểm g" in vietnamese
    assert ARCHIVE_DECISION in vietnamese
    assert "10/03/2026" in vietnamese
    assert 'đóng dấu "Giải mật"' in vietnamese
    assert "rule g" in english
    assert "2026-03-10" in english


def test_explanation_archive_decision_required(rules: Rules) -> None:
    decision = decide(archive(Level.MAT, RECENT_ISSUED, decided=False), rules, TODAY)

    vietnamese, english = explain(decision, RECENT_ISSUED)

    assert vietnamese.startswith("Niêm phong độ Mật")
    assert "01/01/2030" in vietnamese
    assert "điểm g" in vietnamese
    assert "chưa có quyết định giải mật của Lưu trữ lịch sử" in vietnamese
    assert "rule g" in english
    assert "has not decided" in english


def test_explanation_tuyet_mat_archive_decision_required(rules: Rules) -> None:
    decision = decide(archive(Level.TUYET_MAT, ARCHIVE_ISSUED, decided=False), rules, TODAY)

    vietnamese, english = explain(decision, ARCHIVE_ISSUED)

    assert vietnamese.startswith("Từ chối")
    assert "điểm g" in vietnamese
    assert "Lưu trữ lịch sử phải quyết định việc giải mật" in vietnamese
    assert "must decide" in english


@pytest.mark.parametrize("code", sorted(codes()))
def test_explanation_has_no_unfilled_placeholder(code: str) -> None:
    from niemphong.daemon.policy.decision import Decision

    details = {"issued_on": "2025-01-01", "last_day": "2035-01-01", "years": "10", "basis": "b", "decision": "d",
               "item": "i", "highest": "mat", "kind": "k", "decided_on": "2025-01-01", "starts_on": "2025-01-01",
               "ends_on": "2025-01-01", "decided_level": "mat", "field": "issued_on", "extension_decision": "x"}
    decision = Decision(Outcome.REFUSE, code, Level.MAT, TODAY, details=details)

    for text in explain(decision, D(2025, 1, 1)):
        assert "{" not in text
        assert "?" not in text
