"""The classification decision: seal at a level, not secret by a rule, or refuse.

The rules come from the provincial guidance on digitizing state-secret
documents (UBND tỉnh Đắk Lắk, công văn hướng dẫn số hóa tài liệu BMNN,
tháng 5/2025), which applies the Law on Protection of State Secrets No.
29/2018/QH14. A Tối mật or Mật document is digitized as not secret when:

(c) its protection period (Article 19) and any extension (Article 20) have
    ended: automatic declassification under Article 22;
(d) it carries a "Thời hạn bảo vệ BMNN" stamp whose last day has passed;
(đ) its basis is no longer in the catalog of state secrets in force; it is
    stamped "Giải mật" first;
(e) a competent person declassified it by decision (Article 22); stamped
    "Giải mật" first;
(g) a historical archive holds it, its originating agency cannot be
    determined, and the archive has declassified it by a dated decision
    under the law on archives; stamped "Giải mật" first.

Being held by a historical archive with no known originating agency is only
the precondition of g: it names who decides. Until the archive's decision
is cited, a Tối mật or Mật document stays secret (unless c, d or đ applies)
and a Tuyệt mật document is refused.

A Tuyệt mật document is never digitized unless it was declassified by
decision (e or g); the passing of its 30 years changes nothing.

Order of evaluation, so that one document gets one answer: formal
declassification (g when the archive holds the document, e otherwise)
first, because a decision overrides dates and catalogs; then Tuyệt mật;
then every check on the inputs themselves, which refuses inconsistent facts
before any rule relies on them; then the dates (d when a stamp governs, c
otherwise), which need no stamp; then the catalog (đ); and otherwise seal
until the last protected day.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from niemphong.daemon.levels import Level
from niemphong.daemon.policy.basis import Basis, parse_basis
from niemphong.daemon.policy.catalog import Catalog, Lookup
from niemphong.daemon.policy.periods import has_ended, protection_end


# Key in ``Decision.details`` of ARCHIVE_DECISION_REQUIRED naming the seal
# code (PROTECTED, PROTECTED_BY_STAMP or PROTECTED_BY_EXTENSION) that gives
# the last protected day.
PROTECTION_CODE = "protection_code"


class Outcome(enum.Enum):
    SEAL = "seal"
    NOT_SECRET = "not_secret"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Stamp:
    """A "Thời hạn bảo vệ BMNN" stamp: protected from ``starts_on`` (optional) through ``ends_on``."""

    ends_on: dt.date
    starts_on: dt.date | None = None


@dataclass(frozen=True)
class Extension:
    """An extension of the protection period by the originating agency, through ``ends_on``."""

    ends_on: dt.date
    decision: str = ""
    decided_on: dt.date | None = None


@dataclass(frozen=True)
class Declassification:
    """A declassification decision (quyết định giải mật).

    When ``DocumentFacts.historical_archive`` is set, this is the historical
    archive's decision (rule g), and ``decided_on`` is required.
    """

    decision: str
    decided_on: dt.date | None = None


@dataclass(frozen=True)
class StandingDecision:
    """One level decision for a recurring kind of electronic document."""

    kind: str
    name: str
    level: Level
    basis: Basis
    decision: str
    decided_on: dt.date


@dataclass(frozen=True)
class DocumentFacts:
    """The facts a clerk states about one document.

    ``level`` may be None only when ``standing_decision`` names a kind,
    whose decision then gives the level.
    """

    level: Level | None
    issued_on: dt.date
    basis: str = ""
    stamp: Stamp | None = None
    extension: Extension | None = None
    declassification: Declassification | None = None
    historical_archive: bool = False
    standing_decision: str = ""


@dataclass(frozen=True)
class Rules:
    """The parts of the policy that decisions depend on."""

    protection_years: Mapping[Level, int]
    catalog: Catalog
    standing_decisions: Mapping[str, StandingDecision] = field(default_factory=dict)
    require_basis: bool = False


@dataclass(frozen=True)
class Decision:
    """The outcome for one document, with a stable ``code`` and the facts its explanation cites.

    ``level`` is the level to seal at for SEAL and the stated level
    otherwise. ``protected_until`` is the last protected day for SEAL, and
    the day protection ended for rules c and d. ``details`` contains the
    values the explanation names (dates as ISO strings, the basis, the decision).
    """

    outcome: Outcome
    code: str
    level: Level | None
    on: dt.date
    rule: str | None = None
    stamp_required: bool = False
    protected_until: dt.date | None = None
    catalog_item: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


def decide(facts: DocumentFacts, rules: Rules, today: dt.date) -> Decision:
    """Decide what to do with one document on ``today`` (a date in Asia/Ho_Chi_Minh)."""
    level = facts.level
    basis_text = facts.basis

    def refuse(code: str, **details: str) -> Decision:
        return Decision(Outcome.REFUSE, code, level, today, details=details)

    def not_secret(rule: str, code: str, stamp: bool, until: dt.date | None = None, **details: str) -> Decision:
        return Decision(
            Outcome.NOT_SECRET, code, level, today, rule=rule, stamp_required=stamp, protected_until=until,
            details=details,
        )

    standing: StandingDecision | None = None
    if facts.standing_decision:
        standing = rules.standing_decisions.get(facts.standing_decision)
        if standing is None:
            return refuse("STANDING_DECISION_UNKNOWN", kind=facts.standing_decision)
        if level is None:
            level = standing.level
        elif level != standing.level:
            return refuse("STANDING_DECISION_LEVEL_MISMATCH", kind=standing.kind, decided_level=standing.level.config_name)
        if basis_text:
            try:
                stated = parse_basis(basis_text)
            except ValueError:
                return refuse("BASIS_UNPARSABLE", basis=basis_text)
            if (stated.decision_key, stated.path()) != (standing.basis.decision_key, standing.basis.path()):
                return refuse("STANDING_DECISION_BASIS_MISMATCH", kind=standing.kind, basis=standing.basis.describe())
        basis_text = standing.basis.describe()
        if facts.issued_on < standing.decided_on:
            return refuse(
                "STANDING_DECISION_LATER", kind=standing.kind, decision=standing.decision,
                decided_on=standing.decided_on.isoformat(),
            )
    if level is None:
        return refuse("LEVEL_MISSING")
    if facts.issued_on > today:
        return refuse("ISSUED_AFTER_TODAY", issued_on=facts.issued_on.isoformat())

    # Formal declassification comes first: a decision overrides dates and catalogs.
    declassification = facts.declassification
    if declassification is not None:
        decided_on = declassification.decided_on
        if decided_on is not None and decided_on > today:
            return refuse("DECLASSIFICATION_AFTER_TODAY", decided_on=decided_on.isoformat())
        if decided_on is not None and decided_on < facts.issued_on:
            return refuse("DECLASSIFICATION_BEFORE_ISSUE", decided_on=decided_on.isoformat())
        # The date is what the digitizing rests on, and without it neither
        # check above can run; a Tuyệt mật document would otherwise leave
        # protection on a decision number alone.
        if decided_on is None:
            code = "ARCHIVE_DECISION_UNDATED" if facts.historical_archive else "DECLASSIFICATION_UNDATED"
            return refuse(code, decision=declassification.decision)
        if not facts.historical_archive:
            return not_secret(
                "e", "DECLASSIFIED", True, decision=declassification.decision, decided_on=decided_on.isoformat(),
            )
        # With no originating agency to ask, only the archive's own decision declassifies.
        return not_secret(
            "g", "HISTORICAL_ARCHIVE", True, decision=declassification.decision, decided_on=decided_on.isoformat(),
        )

    if level is Level.TUYET_MAT:
        return refuse("TUYET_MAT_ARCHIVE_DECISION_REQUIRED" if facts.historical_archive else "TUYET_MAT")

    years = rules.protection_years[level]
    statutory_end = protection_end(facts.issued_on, years)
    refusal = _check_dates(facts, statutory_end, today)
    if refusal is not None:
        code, details = refusal
        return refuse(code, **details)

    lookup = None
    basis: Basis | None = None
    if basis_text:
        try:
            basis = parse_basis(basis_text)
        except ValueError:
            return refuse("BASIS_UNPARSABLE", basis=basis_text)
        lookup = rules.catalog.lookup(basis)
        if lookup.outcome is Lookup.UNKNOWN_DECISION:
            return refuse("BASIS_DECISION_UNKNOWN", basis=basis.describe(), decision=basis.decision)
        highest = lookup.highest
        if lookup.outcome is Lookup.FOUND and highest is not None and level > highest:
            return refuse(
                "ABOVE_CATALOG_LEVEL", basis=basis.describe(), highest=highest.config_name,
                item=lookup.items[0].describe() if len(lookup.items) == 1 else basis.describe(),
            )
    elif rules.require_basis:
        return refuse("BASIS_REQUIRED")

    # Dates: the stamp or the extension names the last day when there is one.
    details = {"issued_on": facts.issued_on.isoformat(), "years": str(years)}
    if facts.extension is not None:
        last_day, code_ended, code_running = facts.extension.ends_on, "EXTENSION_ENDED", "PROTECTED_BY_EXTENSION"
        details["extension_decision"] = facts.extension.decision
    elif facts.stamp is not None:
        last_day, code_ended, code_running = facts.stamp.ends_on, "STAMP_ENDED", "PROTECTED_BY_STAMP"
    else:
        last_day, code_ended, code_running = statutory_end, "PERIOD_ENDED", "PROTECTED"
    details["last_day"] = last_day.isoformat()
    if has_ended(last_day, today):
        rule = "d" if code_ended == "STAMP_ENDED" else "c"
        return not_secret(rule, code_ended, False, last_day, **details)

    if basis is not None and lookup is not None and lookup.outcome is not Lookup.FOUND:
        code = "CATALOG_SUPERSEDED" if lookup.outcome is Lookup.SUPERSEDED else "NOT_IN_CATALOG"
        return not_secret("đ", code, True, basis=basis.describe(), decision=basis.decision)

    item = ""
    if lookup is not None and lookup.items:
        item = "; ".join(found.describe() for found in lookup.items)
    if standing is not None:
        details["kind"] = standing.kind
        details["standing_decision"] = standing.decision
    code = code_running
    if facts.historical_archive:
        # Without the archive's decision rule g does not apply, so the document
        # stays secret and its explanation tells the archive to decide.
        details[PROTECTION_CODE] = code_running
        code = "ARCHIVE_DECISION_REQUIRED"
    return Decision(
        Outcome.SEAL, code, level, today, protected_until=last_day, catalog_item=item, details=details,
    )


def _check_dates(facts: DocumentFacts, statutory_end: dt.date, today: dt.date) -> tuple[str, dict[str, str]] | None:
    """Return a refusal code and its details when the stamp or extension contradicts the dates."""
    stamp = facts.stamp
    if stamp is not None:
        if stamp.starts_on is not None and stamp.starts_on < facts.issued_on:
            return "STAMP_STARTS_BEFORE_ISSUE", {"starts_on": stamp.starts_on.isoformat()}
        if stamp.starts_on is not None and stamp.ends_on < stamp.starts_on:
            return "STAMP_ENDS_BEFORE_START", {"ends_on": stamp.ends_on.isoformat()}
        if stamp.ends_on < facts.issued_on:
            return "STAMP_ENDS_BEFORE_ISSUE", {"ends_on": stamp.ends_on.isoformat()}
        # A stamp may only shorten the period (Article 19).
        if stamp.ends_on > statutory_end:
            return "STAMP_BEYOND_PERIOD", {"ends_on": stamp.ends_on.isoformat(), "last_day": statutory_end.isoformat()}

    extension = facts.extension
    if extension is not None:
        base_end = stamp.ends_on if stamp is not None else statutory_end
        if extension.ends_on <= base_end:
            return "EXTENSION_NOT_LATER", {"ends_on": extension.ends_on.isoformat(), "last_day": base_end.isoformat()}
        if extension.decided_on is not None and extension.decided_on > today:
            return "EXTENSION_DECIDED_AFTER_TODAY", {"decided_on": extension.decided_on.isoformat()}
        # A protection that ended without an extension was declassified
        # automatically (Article 22); a later decision cannot revive it.
        if extension.decided_on is not None and extension.decided_on > base_end:
            return "EXTENSION_DECIDED_LATE", {
                "decided_on": extension.decided_on.isoformat(), "last_day": base_end.isoformat(),
            }
    return None
