"""Races between two stores on one database, as between two daemons: the access rules stay exact.

Each store stands for one daemon: its own connections (its own pool on
PostgreSQL, its own connection on SQLite) on the same database. Every round
starts the racing calls together from a barrier and widens the window
between reading and committing with a short sleep inside the transaction.
NIEMPHONG_RACE_ROUNDS sets the number of rounds (default 25).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import StoreFactory

from niemphong.daemon.access import AccessControl
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.copies import Copies
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.levels import Level
from niemphong.daemon.store import ArtefactRecord

ROUNDS = int(os.environ.get("NIEMPHONG_RACE_ROUNDS", "25"))
# Seconds each transaction sleeps between its reads and its commit.
WINDOW_SECONDS = 0.002

VIEWER = Identity("viewer", frozenset({"viewer"}))
APPROVERS = [Identity(f"approver-{index}", frozenset({"approver"})) for index in range(1, 5)]
POLICIES = {
    Level.TOI_MAT: LevelPolicy(Level.TOI_MAT, "niemphong-toi-mat", approvals=2, grant_seconds=3600, grant_opens=1,
                               printing=True),
    Level.MAT: LevelPolicy(Level.MAT, "niemphong-mat", approvals=1, grant_seconds=7200, grant_opens=3,
                           printing=True),
}


def widen(*_: Any) -> None:
    time.sleep(WINDOW_SECONDS)


def artefact_record(artefact_id: str, level: Level = Level.MAT) -> ArtefactRecord:
    return ArtefactRecord(
        artefact_id=artefact_id, level=int(level), doc_number="12/BB-TCT", issued_on="2024-11-02",
        title="", source_name="", key_id=POLICIES[level].key_id, key_version=1,
        wrap_algorithm="AES-KWP", plaintext_bytes=10, envelope_bytes=100, envelope_sha256="0" * 64,
        sealed_by="scanner", sealed_at=int(time.time()),
    )


def insert_artefact(access: AccessControl, artefact_id: str, level: Level) -> None:
    with access.store.transaction() as tx:
        tx.insert_artefact(artefact_record(artefact_id, level))


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Start ``calls`` together; return each one's result or the ServiceError it raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(10)
        try:
            return call()
        except ServiceError as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture
def daemons(store_factory: StoreFactory) -> tuple[AccessControl, AccessControl]:
    """Access control on two stores that share one database."""
    return (AccessControl(store_factory.open(), POLICIES), AccessControl(store_factory.open(), POLICIES))


def test_concurrent_approvals_one_grant(daemons: tuple[AccessControl, AccessControl]) -> None:
    first, second = daemons
    for round_number in range(ROUNDS):
        artefact_id = f"{round_number:032x}"
        insert_artefact(first, artefact_id, Level.TOI_MAT)
        request_id = first.request_access(VIEWER, artefact_id, "kiểm tra").request.request_id

        outcomes = race([
            lambda: first.approve(APPROVERS[0], request_id, before_commit=widen),
            lambda: second.approve(APPROVERS[1], request_id, before_commit=widen),
        ])

        errors = [outcome for outcome in outcomes if isinstance(outcome, ServiceError)]
        assert errors == [], f"round {round_number}: {[error.reason for error in errors]}"
        grants = [outcome.grant for outcome in outcomes if outcome.grant is not None]
        assert len(grants) == 1, f"round {round_number}: {len(grants)} grants"
        with second.store.transaction() as tx:
            assert tx.get_request(request_id).state == "approved"
            assert len(tx.list_approvals(request_id)) == 2
            assert tx.get_grant(request_id) == grants[0]


def test_concurrent_approvals_of_last_slot(daemons: tuple[AccessControl, AccessControl]) -> None:
    # Three approvers race for the second of two approvals: one completes the
    # grant, the others find the request decided.
    first, second = daemons
    for round_number in range(ROUNDS):
        artefact_id = f"{round_number:032x}"
        insert_artefact(first, artefact_id, Level.TOI_MAT)
        request_id = first.request_access(VIEWER, artefact_id, "kiểm tra").request.request_id
        first.approve(APPROVERS[0], request_id)

        outcomes = race([
            lambda: first.approve(APPROVERS[1], request_id, before_commit=widen),
            lambda: second.approve(APPROVERS[2], request_id, before_commit=widen),
            lambda: second.approve(APPROVERS[3], request_id, before_commit=widen),
        ])

        granted = [outcome for outcome in outcomes if not isinstance(outcome, ServiceError) and outcome.grant]
        refused = [outcome.reason for outcome in outcomes if isinstance(outcome, ServiceError)]
        assert len(granted) == 1, f"round {round_number}"
        assert refused == ["REQUEST_NOT_PENDING", "REQUEST_NOT_PENDING"], f"round {round_number}"


def test_opens_limit_across_daemons(daemons: tuple[AccessControl, AccessControl]) -> None:
    first, second = daemons
    for round_number in range(ROUNDS):
        artefact_id = f"{round_number:032x}"
        insert_artefact(first, artefact_id, Level.MAT)
        request_id = first.request_access(VIEWER, artefact_id, "kiểm tra").request.request_id
        first.approve(APPROVERS[0], request_id)

        outcomes = race([
            (lambda access=access: access.count_open(VIEWER, artefact_id, None, before_commit=widen))
            for access in (first, second) * 4
        ])

        counted = sorted(outcome.opens_used for outcome in outcomes if not isinstance(outcome, ServiceError))
        refused = [outcome.reason for outcome in outcomes if isinstance(outcome, ServiceError)]
        assert counted == [1, 2, 3], f"round {round_number}"
        assert refused == ["NOT_APPROVED"] * 5, f"round {round_number}"
        with second.store.transaction() as tx:
            assert tx.get_grant(request_id).opens_used == 3


def test_copy_numbers_unique_across_daemons(daemons: tuple[AccessControl, AccessControl]) -> None:
    first, second = daemons
    registers = [Copies(access.store, POLICIES) for access in daemons]
    for round_number in range(ROUNDS):
        artefact_id = f"{round_number:032x}"
        insert_artefact(first, artefact_id, Level.MAT)
        request_id = first.request_access(VIEWER, artefact_id, "in bản sao", copies=4).request.request_id
        first.approve(APPROVERS[0], request_id)

        outcomes = race([
            (lambda register=register: register.assign(VIEWER, artefact_id, None, before_commit=widen))
            for register in registers * 3
        ])

        numbers = sorted(outcome[0].copy_number for outcome in outcomes if not isinstance(outcome, ServiceError))
        refused = [outcome for outcome in outcomes if isinstance(outcome, ServiceError)]
        assert numbers == [1, 2, 3, 4], f"round {round_number}"
        assert len(refused) == 2, f"round {round_number}"
        with second.store.transaction() as tx:
            assert [copy.copy_number for copy in tx.list_copies(artefact_id)] == [1, 2, 3, 4]
            assert tx.get_grant(request_id).copies_made == 4


def test_stalled_daemon_releases_lock(pg_cluster: Any) -> None:
    # A daemon that stops in the middle of a transaction (its host froze)
    # holds the state lock until the server ends its idle session; the other
    # daemon then proceeds, and the stalled transaction commits nothing.
    from niemphong.daemon.store_postgres import PostgresStore

    conninfo = pg_cluster.create_database()
    stalled = PostgresStore(conninfo, idle_in_transaction_seconds=1)
    other = PostgresStore(conninfo)
    holding = threading.Event()
    outcome: list[BaseException] = []

    def stall() -> None:
        try:
            with stalled.transaction() as tx:
                tx.insert_artefact(artefact_record("a" * 32))
                holding.set()
                time.sleep(3)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=stall)
    thread.start()
    assert holding.wait(10)
    started = time.monotonic()
    insert_artefact(AccessControl(other, POLICIES), "b" * 32, Level.MAT)
    waited = time.monotonic() - started
    thread.join(10)

    assert waited < 2.5
    assert len(outcome) == 1
    assert isinstance(outcome[0], ServiceError)
    assert outcome[0].reason == "STATE_UNAVAILABLE"
    with other.transaction() as tx:
        assert tx.get_artefact("a" * 32) is None
        assert tx.get_artefact("b" * 32) is not None
    stalled.close()
    other.close()
