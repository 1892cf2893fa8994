"""Classification options of `niemphong scan` and the facts message built from them.

The daemon decides from these facts whether a document is sealed, at which
level, or declined as not secret; the client only checks their form.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable

from niemphong.clients.i18n import Lang, translate
from niemphong.clients.protocol import normalize_text, parse_issued_date
from niemphong.v1 import niemphong_pb2 as pb


def _date_type(lang: Lang) -> Callable[[str], dt.date]:
    def parse(text: str) -> dt.date:
        try:
            return parse_issued_date(text)
        except ValueError:
            raise argparse.ArgumentTypeError(translate(lang, "arg.date_invalid", value=text)) from None

    return parse


def add_classification_options(parser: argparse.ArgumentParser, lang: Lang) -> None:
    """Add the options that describe a document's classification to ``parser``."""
    date = _date_type(lang)
    group = parser.add_argument_group(translate(lang, "help.classification"))
    group.add_argument("--basis", default="", metavar="TEXT", help=translate(lang, "help.scan.basis"))
    group.add_argument("--stamp-from", type=date, metavar="DATE", help=translate(lang, "help.scan.stamp_from"))
    group.add_argument("--stamp-until", type=date, metavar="DATE", help=translate(lang, "help.scan.stamp_until"))
    group.add_argument("--extended-until", type=date, metavar="DATE", help=translate(lang, "help.scan.extended_until"))
    group.add_argument("--extension-decision", default="", metavar="TEXT", help=translate(lang, "help.scan.extension_decision"))
    group.add_argument("--extension-date", type=date, metavar="DATE", help=translate(lang, "help.scan.extension_date"))
    group.add_argument("--declassified-by", default="", metavar="TEXT", help=translate(lang, "help.scan.declassified_by"))
    group.add_argument("--declassified-on", type=date, metavar="DATE", help=translate(lang, "help.scan.declassified_on"))
    group.add_argument("--historical-archive", action="store_true", help=translate(lang, "help.scan.historical_archive"))
    group.add_argument("--kind", default="", metavar="KIND", help=translate(lang, "help.scan.kind"))


def _iso(value: dt.date | None) -> str:
    return value.isoformat() if value is not None else ""


class OptionMissing(ValueError):
    """An option needs another one, e.g. --stamp-from without --stamp-until."""

    def __init__(self, option: str, needs: str) -> None:
        super().__init__(f"{option} needs {needs}")
        self.option = option
        self.needs = needs


def classification_from_args(args: argparse.Namespace) -> pb.ClassificationFacts:
    """Build the facts message from the parsed options. Raises OptionMissing for an incomplete pair."""
    facts = pb.ClassificationFacts(
        basis=normalize_text(args.basis),
        historical_archive=args.historical_archive,
        standing_decision=normalize_text(args.kind),
    )
    if args.stamp_from is not None and args.stamp_until is None:
        raise OptionMissing("--stamp-from", "--stamp-until")
    if args.stamp_until is not None:
        facts.stamp.CopyFrom(pb.ProtectionStamp(starts_on=_iso(args.stamp_from), ends_on=_iso(args.stamp_until)))

    if (args.extension_decision or args.extension_date) and args.extended_until is None:
        raise OptionMissing("--extension-decision/--extension-date", "--extended-until")
    if args.extended_until is not None:
        facts.extension.CopyFrom(pb.ProtectionExtension(
            ends_on=_iso(args.extended_until),
            decision=normalize_text(args.extension_decision),
            decided_on=_iso(args.extension_date),
        ))

    declassified_by = normalize_text(args.declassified_by)
    if args.declassified_on is not None and not declassified_by:
        raise OptionMissing("--declassified-on", "--declassified-by")
    # A declassification decision (rule e, or the archive's under rule g) is cited with its date.
    if declassified_by and args.declassified_on is None:
        raise OptionMissing("--declassified-by", "--declassified-on")
    if declassified_by:
        facts.declassification.CopyFrom(pb.Declassification(
            decision=declassified_by, decided_on=_iso(args.declassified_on),
        ))
    return facts


def has_classification_facts(args: argparse.Namespace) -> bool:
    """Return True when any option beyond the level and issue date describes the classification."""
    return bool(
        args.basis or args.stamp_until or args.extended_until or args.declassified_by
        or args.historical_archive or args.kind
    )
