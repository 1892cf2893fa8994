"""The classification basis (căn cứ) as agencies write it, parsed tolerantly.

A drafter cites the point, clause and article of the catalog decision that a
level rests on, for example "Điểm a Khoản 2 Điều 1 Quyết định số
1722/QĐ-TTg". Clerks type it by hand, so parsing accepts any letter case,
NFC or NFD, extra spaces and commas, "của"/"thuộc"/"tại" before the decision,
a trailing "ngày …" or "của Thủ tướng Chính phủ", and the components in any
order. Decisions are compared by a folded key (no diacritics, no case, no
spaces), so "QD-TTg" typed without diacritics still matches "QĐ-TTg".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# U+00D0 (Icelandic eth) looks like Đ and is a common typing slip for it.
_ETH = str.maketrans({"\u00d0": "Đ", "\u00f0": "đ"})

# Points are single Latin letters or "đ", in either case; the case-blind flag
# is switched off for the value, since it would also let look-alikes such as
# "İ" (U+0130) in and lower-case them to two characters.
_COMPONENT = re.compile(
    r"\b(?P<kind>điểm|khoản|điều)\s*(?P<value>[0-9]+|(?-i:[a-zA-ZđĐ]))(?![0-9a-zà-ỹđ])",
    re.IGNORECASE,
)
_LEADING_WORDS = re.compile(r"^(?:của|thuộc|tại|theo|trong)\s+", re.IGNORECASE)
# Applied to folded text, so that "QD so" typed without diacritics is also a prefix.
_FOLDED_DECISION_PREFIX = re.compile(r"^(?:quyetdinh|qd)(?:so)?")
_TRAILING = re.compile(r"\s*(?:,|\s)\s*(?:ngày\s+[0-9].*|của\s+thủ\s+tướng.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Basis:
    """A parsed basis: the decision as written and its folded key, article, clause and point."""

    decision: str
    decision_key: str
    article: int
    clause: int | None
    point: str | None

    def path(self) -> tuple[int, int | None, str | None]:
        return (self.article, self.clause, self.point)

    def describe(self) -> str:
        """Return the basis in the standard written form."""
        parts = []
        if self.point is not None:
            parts.append(f"Điểm {self.point}")
        if self.clause is not None:
            parts.append(f"Khoản {self.clause}")
        parts.append(f"Điều {self.article}")
        parts.append(self.decision)
        return " ".join(parts)


def normalize_text(text: str) -> str:
    """Return ``text`` in NFC with Đ look-alikes fixed and runs of white space collapsed."""
    nfc = unicodedata.normalize("NFC", text).translate(_ETH)
    return " ".join(nfc.split())


def fold(text: str) -> str:
    """Return the comparison key of a decision name: no diacritics, lower case, no spaces or dots."""
    text = normalize_text(text).replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char)).lower()
    return re.sub(r"[\s.,;:]+", "", bare)


def decision_key(decision: str) -> str:
    """Return the folded key of a decision as cited, without "Quyết định số" and a trailing date."""
    return _FOLDED_DECISION_PREFIX.sub("", fold(_clean_decision(normalize_text(decision))))


def _clean_decision(text: str) -> str:
    text = text.strip(" ,;:.-")
    text = _LEADING_WORDS.sub("", text)
    text = _TRAILING.sub("", text)
    return text.strip(" ,;:.-")


def parse_basis(text: str) -> Basis:
    """Parse a written basis.

    Raises:
        ValueError: no article is cited, a component is repeated, a point is
            cited without its clause, or no decision is named.
    """
    normalized = normalize_text(text)

    found: dict[str, str] = {}
    start = end = 0
    for match in _COMPONENT.finditer(normalized):
        kind = fold(match["kind"])
        if kind in found:
            raise ValueError(f"'{match['kind']}' is cited twice")
        if not found:
            start = match.start()
        found[kind] = match["value"].lower()
        end = match.end()
    if "dieu" not in found:
        raise ValueError("no article (Điều) is cited")
    if "diem" in found and "khoan" not in found:
        raise ValueError("a point (Điểm) is cited without its clause (Khoản)")
    if not found["dieu"].isdigit() or not found.get("khoan", "1").isdigit():
        raise ValueError("articles and clauses are numbered")
    if int(found["dieu"]) == 0 or found.get("khoan", "1").strip("0") == "":
        raise ValueError("articles and clauses are numbered from 1")
    if "diem" in found and found["diem"].isdigit():
        raise ValueError("points are lettered")

    # The decision usually follows the components; some write it first.
    decision = _clean_decision(normalized[end:]) or _clean_decision(normalized[:start])
    if not decision:
        raise ValueError("no catalog decision is named with the article")

    return Basis(
        decision=decision,
        decision_key=decision_key(decision),
        article=int(found["dieu"]),
        clause=int(found["khoan"]) if "khoan" in found else None,
        point=found.get("diem"),
    )
