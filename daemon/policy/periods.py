"""Calendar arithmetic for protection periods, on the Vietnam calendar.

Protection periods run from the day a level was set, which for a document is
its issue date (Article 19 of the Law on Protection of State Secrets No.
29/2018/QH14). They are counted as the Civil Code 2015 counts periods:

- Article 147: the day of the event is not counted, so a period starts on
  the next day.
- Article 148: a period in years ends at the end (24:00) of the same day and
  month of its last year. The Code's rule for months gives the last day of
  the month when that day does not exist, so a period from 29 February ends
  on 28 February in a year that is not a leap year.

So a Mật document issued on 04/12/2016 is protected through 04/12/2026 and
its protection has expired from 05/12/2026. A protection-period stamp or an
extension that names its last day works the same way: protected through that
day, expired from the next.

NOTE: Article 148 also moves a last day that falls on a weekend or public
holiday to the next working day. That clause is not applied here: it governs
deadlines for acts, the public-holiday calendar (Tết follows the lunar
calendar) is not available to the daemon. Ignoring it can end a protection
earlier than that clause would, by the length of the weekend or holiday.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections.abc import Callable

VIETNAM = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")

Clock = Callable[[], float]


def add_years(start: dt.date, years: int) -> dt.date:
    """Return the same day and month ``years`` later; 29 February becomes 28 February in a common year."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


def protection_end(issued_on: dt.date, years: int) -> dt.date:
    """Return the last protected day of a period of ``years`` years from ``issued_on``."""
    return add_years(issued_on, years)


def has_ended(last_day: dt.date, today: dt.date) -> bool:
    """Return True when a period whose last day is ``last_day`` is over on ``today``."""
    return today > last_day


def today_in_vietnam(clock: Clock = time.time) -> dt.date:
    """Return the calendar date in Asia/Ho_Chi_Minh at the instant ``clock()`` returns."""
    return dt.datetime.fromtimestamp(clock(), tz=VIETNAM).date()
