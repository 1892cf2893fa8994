"""Catalogs of state secrets (danh mục bí mật nhà nước) and basis look-up.

A catalog file is CSV, as agencies keep it in a spreadsheet: UTF-8 (a BOM is
accepted), comma- or semicolon-separated, one item per row, with these
Vietnamese headers in any order and any letter case:

    Quyết định | Điều | Khoản | Điểm | Nội dung | Độ mật cao nhất

"Quyết định" is the catalog decision as bases cite it (for example "Quyết
định số 1722/QĐ-TTg"), "Khoản" and "Điểm" may be empty for an item that is a
whole article or clause, and "Độ mật cao nhất" is Tuyệt mật, Tối mật or Mật.
Lines starting with "#" are comments; a comment containing
``niemphong:sample`` marks the file as sample data, which the policy loader
accepts only in development mode.

The catalogs listed in the policy are the ones in force. A basis whose
decision is in force but cites no item of it, or whose decision the policy
lists as superseded, is no longer in the catalog in force: the provincial
guidance on digitizing state-secret documents (UBND tỉnh Đắk Lắk, May 2025)
makes such a document not secret once it is stamped "Giải mật".
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import Level
from niemphong.daemon.policy.basis import Basis, decision_key, fold, normalize_text

SAMPLE_MARK = "niemphong:sample"

_COLUMNS = {
    "quyetdinh": "decision",
    "dieu": "article",
    "khoan": "clause",
    "diem": "point",
    "noidung": "subject",
    "domatcaonhat": "highest",
}

_LEVEL_NAMES = {"mat": Level.MAT, "toimat": Level.TOI_MAT, "tuyetmat": Level.TUYET_MAT}


def level_from_text(text: str) -> Level | None:
    """Return the level written as "Mật", "Tối mật", "Tuyệt mật" or mat/toi-mat/tuyet-mat, or None."""
    return _LEVEL_NAMES.get(fold(text).replace("-", "").replace("_", ""))


@dataclass(frozen=True)
class CatalogItem:
    """One item of a catalog decision."""

    decision: str
    article: int
    clause: int | None
    point: str | None
    subject: str
    highest: Level
    source: str

    def path(self) -> tuple[int, int | None, str | None]:
        return (self.article, self.clause, self.point)

    def describe(self) -> str:
        parts = []
        if self.point is not None:
            parts.append(f"Điểm {self.point}")
        if self.clause is not None:
            parts.append(f"Khoản {self.clause}")
        parts += [f"Điều {self.article}", self.decision]
        return " ".join(parts)


class Lookup(enum.Enum):
    FOUND = "found"
    NOT_IN_FORCE = "not_in_force"
    SUPERSEDED = "superseded"
    UNKNOWN_DECISION = "unknown_decision"


@dataclass(frozen=True)
class LookupResult:
    """The result of looking a basis up in the catalogs in force.

    ``highest`` is the highest level the matched items allow; it is set only
    when ``outcome`` is FOUND.
    """

    outcome: Lookup
    items: tuple[CatalogItem, ...] = ()

    @property
    def highest(self) -> Level | None:
        return max((item.highest for item in self.items), default=None)


@dataclass
class Catalog:
    """The items of the catalog decisions in force, and the decisions superseded."""

    items: list[CatalogItem] = field(default_factory=list)
    superseded: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    sample_files: list[Path] = field(default_factory=list)

    def decisions(self) -> dict[str, list[CatalogItem]]:
        """Return the items grouped by decision key, in file order."""
        grouped: dict[str, list[CatalogItem]] = {}
        for item in self.items:
            grouped.setdefault(decision_key(item.decision), []).append(item)
        return grouped

    def lookup(self, basis: Basis) -> LookupResult:
        """Find the items a basis cites.

        An item matches when one path is a prefix of the other. So a basis
        citing a clause matches every point of it, and the highest level of
        any point applies. A basis citing a point matches an item that is the
        whole clause.
        """
        in_force = [item for item in self.items if decision_key(item.decision) == basis.decision_key]
        if not in_force:
            if basis.decision_key in self.superseded:
                return LookupResult(Lookup.SUPERSEDED)
            return LookupResult(Lookup.UNKNOWN_DECISION)

        matched = tuple(item for item in in_force if _covers(item.path(), basis.path()))
        if not matched:
            return LookupResult(Lookup.NOT_IN_FORCE)
        return LookupResult(Lookup.FOUND, matched)


def _covers(item: tuple[int, int | None, str | None], basis: tuple[int, int | None, str | None]) -> bool:
    for mine, theirs in zip(item, basis):
        if mine is None or theirs is None:
            return True
        if mine != theirs:
            return False
    return True


def load_catalog(paths: Sequence[Path], superseded: Iterable[str]) -> Catalog:
    """Read catalog files; raise ConfigError naming the file, line and column of any problem."""
    catalog = Catalog(files=list(paths))
    seen: dict[tuple[str, tuple[int, int | None, str | None]], str] = {}

    for path in paths:
        items, sample = _read_catalog_file(path)
        if sample:
            catalog.sample_files.append(path)
        for item in items:
            key = (decision_key(item.decision), item.path())
            if key in seen:
                raise ConfigError(f"{item.source}: item {item.describe()} is listed twice (first at {seen[key]})")
            seen[key] = item.source
        catalog.items += items

    in_force = {decision_key(item.decision) for item in catalog.items}
    for name in superseded:
        key = decision_key(name)
        if key in in_force:
            raise ConfigError(f"catalog decision {name!r} is listed as superseded but has items in a catalog in force")
        catalog.superseded[key] = normalize_text(name)
    return catalog


def _read_catalog_file(path: Path) -> tuple[list[CatalogItem], bool]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the catalog file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the catalog file is not UTF-8 (byte {exc.start}); save it as CSV UTF-8") from None

    lines = text.splitlines()
    sample = any(line.lstrip().startswith("#") and SAMPLE_MARK in line for line in lines)
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise ConfigError(f"{path}: the catalog file has no header row")

    delimiter = ";" if numbered[0][1].count(";") > numbered[0][1].count(",") else ","
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in numbered)), delimiter=delimiter))
    header = [_COLUMNS.get(fold(name)) for name in rows[0]]
    missing = [name for name in ("decision", "article", "highest") if name not in header]
    if missing:
        raise ConfigError(
            f"{path}: line {numbered[0][0]}: missing column(s) {', '.join(missing)}; "
            "expected Quyết định, Điều, Khoản, Điểm, Nội dung, Độ mật cao nhất"
        )

    items = []
    for (number, _), row in zip(numbered[1:], rows[1:]):
        values = {name: normalize_text(cell) for name, cell in zip(header, row) if name}
        items.append(_item(path, number, values))
    return items, sample


def _item(path: Path, number: int, values: dict[str, str]) -> CatalogItem:
    where = f"{path}: line {number}"
    decision = values.get("decision", "")
    if not decision:
        raise ConfigError(f"{where}: column Quyết định is empty")

    numbers: dict[str, int | None] = {}
    for name, label in (("article", "Điều"), ("clause", "Khoản")):
        cell = values.get(name, "")
        if not cell and name == "clause":
            numbers[name] = None
            continue
        if not cell.isdigit() or int(cell) == 0:
            raise ConfigError(f"{where}: column {label} must be a positive whole number, got {cell!r}")
        numbers[name] = int(cell)

    point = values.get("point", "").lower() or None
    if point is not None and (len(point) != 1 or not point.isalpha()):
        raise ConfigError(f"{where}: column Điểm must be one letter, got {point!r}")
    if point is not None and numbers["clause"] is None:
        raise ConfigError(f"{where}: column Điểm is set but column Khoản is empty")

    highest = level_from_text(values.get("highest", ""))
    if highest is None:
        raise ConfigError(
            f"{where}: column Độ mật cao nhất must be Tuyệt mật, Tối mật or Mật, got {values.get('highest', '')!r}"
        )

    assert numbers["article"] is not None
    return CatalogItem(
        decision=decision,
        article=numbers["article"],
        clause=numbers["clause"],
        point=point,
        subject=values.get("subject", ""),
        highest=highest,
        source=where,
    )
