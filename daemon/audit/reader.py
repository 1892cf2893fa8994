"""Reading records back from the audit log: by time, and by artefact.

Readers take the lines as they are, skipping any that are not entries;
``audit verify`` is the tool that judges whether the log was changed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator

from niemphong.daemon.audit import entries
from niemphong.daemon.audit.entries import Entry, EntryError

log = logging.getLogger(__name__)


def iter_records(lines: Iterable[bytes]) -> Iterator[tuple[Entry, bytes]]:
    """Yield each record entry with its line, in file order, skipping checkpoints and malformed lines."""
    skipped = 0
    for line in lines:
        if not line.endswith(b"\n"):
            skipped += 1
            continue
        try:
            entry = entries.parse_entry(line)
        except EntryError:
            skipped += 1
            continue
        if entry["kind"] == entries.RECORD:
            yield entry, line
    if skipped:
        log.warning("skipped %d lines of the audit log that are not entries; run audit verify", skipped)


def facts_of(entry: Entry) -> dict[str, object]:
    """Return the facts of a record entry, or an empty dict."""
    facts = entry.get("facts")
    return facts if isinstance(facts, dict) else {}


def records_between(
    lines: Iterable[bytes], since: dt.datetime | None, until: dt.datetime | None
) -> Iterator[tuple[Entry, bytes]]:
    """Yield the records whose time is in [since, until); a bound of None is open."""
    for entry, line in iter_records(lines):
        moment = entries.parse_timestamp(entry["time"])
        if moment is None:
            continue
        if since is not None and moment < since:
            continue
        if until is not None and moment >= until:
            continue
        yield entry, line


def artefact_history(lines: Iterable[bytes], artefact_id: str) -> Iterator[tuple[Entry, bytes]]:
    """Yield the records about ``artefact_id``, including those of its access requests.

    A refused approval or denial names only the access request, so the
    requests first seen with this artefact are followed through the log.
    """
    requests: set[str] = set()
    for entry, line in iter_records(lines):
        facts = facts_of(entry)
        access_request_id = facts.get("access_request_id")
        # A seal that replaced an unconfirmed artefact names it as superseded_artefact_id.
        if artefact_id in (facts.get("artefact_id"), facts.get("superseded_artefact_id")):
            if isinstance(access_request_id, str):
                requests.add(access_request_id)
            yield entry, line
        elif access_request_id in requests:
            yield entry, line
