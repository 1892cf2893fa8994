"""Protection periods counted as the Civil Code counts periods in years, on the Vietnam calendar."""

from __future__ import annotations

import datetime as dt

import pytest

from niemphong.daemon.policy.periods import add_years, has_ended, protection_end, today_in_vietnam

D = dt.date


@pytest.mark.parametrize(
    ("start", "years", "end"),
    [
        (D(2016, 12, 4), 10, D(2026, 12, 4)),
        (D(2016, 2, 29), 10, D(2026, 2, 28)),
        (D(2004, 2, 29), 20, D(2024, 2, 29)),
        (D(2011, 12, 31), 10, D(2021, 12, 31)),
    ],
)
def test_protection_end_same_day_and_month(start: dt.date, years: int, end: dt.date) -> None:
    assert protection_end(start, years) == end


def test_add_years_29_february_to_common_year() -> None:
    assert add_years(D(2024, 2, 29), 1) == D(2025, 2, 28)


def test_has_ended_not_on_last_day() -> None:
    assert not has_ended(D(2026, 12, 4), D(2026, 12, 4))


def test_has_ended_on_next_day() -> None:
    assert has_ended(D(2026, 12, 4), D(2026, 12, 5))


def test_today_in_vietnam_before_midnight_local() -> None:
    # 16:59:59 UTC is 23:59:59 in Asia/Ho_Chi_Minh (UTC+07:00).
    instant = dt.datetime(2026, 12, 4, 16, 59, 59, tzinfo=dt.timezone.utc).timestamp()

    assert today_in_vietnam(lambda: instant) == D(2026, 12, 4)


def test_today_in_vietnam_after_midnight_local() -> None:
    instant = dt.datetime(2026, 12, 4, 17, 0, 0, tzinfo=dt.timezone.utc).timestamp()

    assert today_in_vietnam(lambda: instant) == D(2026, 12, 5)
