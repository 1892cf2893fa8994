"""The PostgreSQL state store: one database shared by several daemons.

It runs the same schema, migrations and queries as :class:`SqliteStore`.
The queries are written in the SQLite dialect with ``?`` placeholders, and
:class:`_PostgresConnection` turns them into psycopg's ``%s`` form. The DDL
changes ``INTEGER`` to ``BIGINT``, because SQLite integers are 64-bit and
PostgreSQL's ``INTEGER`` is 32-bit.

Isolation: every transaction, grouped writes included, first takes one
transaction-level advisory lock (:data:`STATE_LOCK`) and then runs at READ
COMMITTED. Transactions therefore run one at a time across all daemons on
the database, as they do inside one daemon on SQLite. Each statement sees
every transaction that committed before the lock was granted, so the
read-then-write rules in ``access.py``, ``copies.py`` and ``handover.py``
(one grant per request, opens and copies counted against their limits,
batch reconciliation) hold across daemons without serialization failures or
deadlocks to retry. The cost is that state writes do not scale with the
number of daemons. At one province's rates the token and the audit log's
fdatasync, not this lock, bound throughput.

Migrations run under a second advisory lock (:data:`MIGRATION_LOCK`), so
daemons that start together on an empty database migrate it once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from niemphong.daemon.errors import ServiceError
from niemphong.daemon.store import (
    _MIGRATIONS,
    _SCHEMA,
    SCHEMA_VERSION,
    StateTransaction,
    _GroupedWrite,
    _StateQueries,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Keys of the advisory locks, in the single-bigint key space that
# pg_advisory_xact_lock(bigint) uses. Any fixed values work as long as no
# other application on the same database uses them; these spell "NPstate"
# and "NPmigr" in ASCII.
STATE_LOCK = 0x4E507374617465
MIGRATION_LOCK = 0x4E506D696772

# How long a call waits for a pooled connection before it fails with
# STATE_UNAVAILABLE. While the database is down every call waits this long,
# so it stays well under the clients' deadlines.
CONNECT_TIMEOUT_SECONDS = 5.0
# The health check must return quickly even when the database is down.
HEALTH_TIMEOUT_SECONDS = 3.0
DEFAULT_POOL_SIZE = 8
# A daemon whose host vanishes in the middle of a transaction leaves its
# session "idle in transaction" with STATE_LOCK held, and PostgreSQL may not
# notice the dead connection for minutes. The server ends such a session
# after this long, so the other daemons wait at most that. It also bounds
# token calls made inside a transaction (key generation in a key change).
IDLE_IN_TRANSACTION_SECONDS = 60
# A transaction waits at most this long for STATE_LOCK, then fails with
# STATE_UNAVAILABLE rather than hang the call.
LOCK_WAIT_SECONDS = 30

# A sequence gives each audit record a number in one order across daemons
# (see AuditLog). Sequences are not transactional, so taking a number never
# waits for STATE_LOCK. SQLite serves one daemon, whose audit log is the order.
_AUDIT_ORDER = "CREATE SEQUENCE IF NOT EXISTS audit_order"

_INTEGER = re.compile(r"\bINTEGER\b")


class PostgresStore:
    """State in a PostgreSQL database reached through a pool of connections.

    ``conninfo`` is a libpq connection string or URI without a password;
    ``password`` comes from a file or a systemd credential (see
    ``config.read_state_password``) and is passed to libpq apart from it.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        password: str | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        idle_in_transaction_seconds: float = IDLE_IN_TRANSACTION_SECONDS,
        lock_wait_seconds: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self.conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._session_settings = {
            "idle_in_transaction_session_timeout": f"{int(idle_in_transaction_seconds * 1000)}ms",
            "lock_timeout": f"{int(lock_wait_seconds * 1000)}ms",
        }
        # The leader of a grouped commit holds _group_lock; waiting work sits in _queue.
        self._queue: list[_GroupedWrite] = []
        self._queue_lock = threading.Lock()
        self._group_lock = threading.Lock()
        # Wraps the work of one grouped commit, as SqliteStore.group_guard.
        self.group_guard: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext
        kwargs: dict[str, Any] = {"autocommit": True}
        if password is not None:
            kwargs["password"] = password
        self._pool = ConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            # A connection the server closed (a restart, a failover) is
            # replaced before a caller gets it, not after its first query fails.
            check=ConnectionPool.check_connection,
            configure=self._configure,
            timeout=connect_timeout,
            name="niemphong-state",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
            self.migrate()
        except PoolTimeout as exc:
            self._pool.close()
            raise ServiceError(
                "STATE_UNAVAILABLE",
                f"no connection to the state database {self.describe()} within {connect_timeout:.0f} s",
            ) from exc
        except BaseException:
            self._pool.close()
            raise

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        for name, value in self._session_settings.items():
            connection.execute(f"SET {name} = '{value}'")

    def migrate(self) -> int:
        """Bring the database to :data:`SCHEMA_VERSION`; return the version it had before.

        Safe to run on every start and from several daemons at once: the
        migration lock makes the others wait, and they then find nothing to do.
        Raises RuntimeError when the database is newer than this daemon.
        """
        with self._connection() as connection:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                db = _PostgresConnection(connection)
                for statement in _statements(_SCHEMA):
                    db.execute(statement)
                row = db.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    db.execute("INSERT INTO schema_version (version) VALUES (1)")
                    version = 1
                else:
                    version = int(row["version"])
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"state database {self.describe()} has schema {version}, newer than this "
                        f"daemon's {SCHEMA_VERSION}; upgrade the daemon"
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _statements(_MIGRATIONS[target]):
                        db.execute(statement)
                    db.execute("UPDATE schema_version SET version = ?", (target,))
                    log.info("state database %s migrated to schema %d", self.describe(), target)
                connection.execute(_AUDIT_ORDER)
        return version

    def describe(self) -> str:
        """Return the database as host/port/name for logs; never the password."""
        info = psycopg.conninfo.conninfo_to_dict(self.conninfo)
        host = info.get("host") or "localhost"
        port = info.get("port") or "5432"
        return f"postgresql {host}:{port}/{info.get('dbname') or info.get('user') or ''}"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateTransaction]:
        with self._connection() as connection:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (STATE_LOCK,))
                yield _StateQueries(_PostgresConnection(connection))

    @contextlib.contextmanager
    def reading(self) -> Iterator[StateTransaction]:
        """Yield a read-only transaction that does not take the state lock.

        As :meth:`SqliteStore.reading`: it sees the last committed state and
        does not wait for writers or their commits.
        """
        with self._connection() as connection:
            with connection.transaction():
                connection.execute("SET TRANSACTION READ ONLY")
                yield _StateQueries(_PostgresConnection(connection))

    def write_grouped(self, work: Callable[[StateTransaction], T]) -> T:
        """Run ``work`` in a transaction that may share its commit with other callers' work.

        As :meth:`SqliteStore.write_grouped`: a commit waits for the WAL to
        reach disk, so work that arrives meanwhile is queued and run by the
        next leader in one transaction, each caller's work in its own
        savepoint. Grouping is per daemon; daemons do not share commits.
        """
        item = _GroupedWrite(work)
        with self._queue_lock:
            self._queue.append(item)
        with self._group_lock:
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_batch(batch)
        return item.outcome()

    def _commit_batch(self, batch: list[_GroupedWrite]) -> None:
        try:
            with self._connection() as connection:
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (STATE_LOCK,))
                    transaction = _StateQueries(_PostgresConnection(connection))
                    # An error at the end of the guard rolls back the whole batch.
                    with self.group_guard():
                        for item in batch:
                            try:
                                # A nested transaction() is a savepoint: an error
                                # rolls back this caller's work only.
                                with connection.transaction():
                                    item.result = item.work(transaction)
                            except Exception as exc:
                                item.error = exc
        except BaseException as exc:
            for item in batch:
                if item.error is None:
                    item.error = exc
            raise
        finally:
            for item in batch:
                item.done = True

    def next_audit_order(self) -> int:
        """Return the next number of the audit order shared by every daemon on this database."""
        with self._connection() as connection:
            row = connection.execute("SELECT nextval('audit_order')").fetchone()
        assert row is not None
        return int(row[0])

    def check_writable(self) -> bool:
        """Return whether the database responds and accepts writes (a primary, not a standby)."""
        try:
            with self._pool.connection(timeout=HEALTH_TIMEOUT_SECONDS) as connection:
                row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            log.debug("state database %s is not reachable: %s", self.describe(), exc)
            return False
        return row is not None and not row[0]

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """Lend a pooled connection; a database that cannot be reached becomes STATE_UNAVAILABLE.

        Only failures to get or keep a connection are translated. A
        constraint violation or any other error of the statement itself
        reaches the caller unchanged.
        """
        try:
            with self._pool.connection(timeout=self._connect_timeout) as connection:
                yield connection
        except PoolTimeout as exc:
            raise ServiceError(
                "STATE_UNAVAILABLE", f"no connection to the state database {self.describe()} within "
                f"{self._connect_timeout:.0f} s",
            ) from exc
        except (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout) as exc:
            # OperationalError covers a lost connection and LOCK_WAIT_SECONDS
            # passing (LockNotAvailable). The server ending an idle session
            # is a separate class.
            raise ServiceError(
                "STATE_UNAVAILABLE", f"the state database {self.describe()} failed: {_first_line(exc)}",
            ) from exc


class _PostgresConnection:
    """Runs the store's SQLite-dialect statements on a psycopg connection."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, statement: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        cursor = self._connection.cursor(row_factory=_row_factory)
        # psycopg sends a Python bool as boolean, which a BIGINT column rejects.
        values = [int(value) if isinstance(value, bool) else value for value in params]
        cursor.execute(_placeholders(statement), values)
        return cursor


class _Row:
    """A result row read by column name or index, like sqlite3.Row."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: list[str], values: Sequence[Any]) -> None:
        self._names = names
        self._values = values

    def keys(self) -> list[str]:
        return self._names

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return self._values[self._names.index(key)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], _Row]:
    names = [column.name for column in cursor.description or ()]
    return lambda values: _Row(names, values)


_placeholder_cache: dict[str, str] = {}


def _placeholders(statement: str) -> str:
    """Turn ``?`` placeholders into ``%s``; no statement of the store has ``?`` or ``%`` in a literal."""
    translated = _placeholder_cache.get(statement)
    if translated is None:
        translated = statement.replace("%", "%%").replace("?", "%s")
        _placeholder_cache[statement] = translated
    return translated


def _statements(script: str) -> list[str]:
    """Split a DDL script on semicolons and translate each statement to PostgreSQL types."""
    return [_INTEGER.sub("BIGINT", part.strip()) for part in script.split(";") if part.strip()]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
