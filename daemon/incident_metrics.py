"""Prometheus metrics that raise the alarm on incidents.

Loss or suspected exposure of a state secret must reach the head of the
agency at once, so an open incident shows as a gauge an alert rule can fire
on (``niemphong_incidents_open > 0``). The gauge is read from the state store
at each scrape, so daemons that share one store report the same number, and
a restart does not reset it. The counters count what this process saw.

The metrics live in prometheus_client's default registry, which the daemon's
metrics listener serves. No label carries an artefact id, a person or the
report's text.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from niemphong.daemon.incidents import Incidents

log = logging.getLogger(__name__)

OPEN_NAME = "niemphong_incidents_open"
OPEN_HELP = "Incidents reported and not yet closed; every grant on their artefacts is suspended."

INCIDENTS_REPORTED = Counter(
    "niemphong_incidents_reported",
    "Incidents (loss or suspected exposure) reported to this daemon since it started.",
)
INCIDENTS_CLOSED = Counter(
    "niemphong_incidents_closed",
    "Incidents closed on this daemon since it started, by whether their grants were revoked.",
    ["grants"],
)
GRANTS_SUSPENDED = Counter(
    "niemphong_incident_grants_suspended",
    "Usable grants suspended by incidents reported to this daemon since it started.",
)


class OpenIncidentsCollector(Collector):
    """The open-incident gauge, counted in the state store when scraped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._incidents: Incidents | None = None

    def attach(self, incidents: Incidents) -> None:
        with self._lock:
            self._incidents = incidents

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(OPEN_NAME, OPEN_HELP)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            incidents = self._incidents
        if incidents is None:
            return
        try:
            count = incidents.count_open()
        except sqlite3.Error as exc:
            # Prometheus can alert on a missing gauge with absent(), but a made-up zero would hide an incident.
            log.error("cannot count open incidents for the metrics: %s", exc)
            return
        yield GaugeMetricFamily(OPEN_NAME, OPEN_HELP, value=count)


OPEN_INCIDENTS = OpenIncidentsCollector()
REGISTRY.register(OPEN_INCIDENTS)
