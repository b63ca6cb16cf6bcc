# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet store's two engines behind one small interface: SQLite and PostgreSQL.

The store's SQL is written once, in the subset both engines speak (``ON CONFLICT ... DO
UPDATE ... WHERE``, ``RETURNING``, ``DOUBLE PRECISION``), with ``?`` placeholders; this module
turns them into psycopg's ``%s``. A store is named by one setting, ``virtops_fleet_store``:

- ``sqlite:////var/lib/virtops/fleet.db`` or an absolute path: an embedded SQLite database for
  one controller (Python's own sqlite3, nothing to install). Writers take the database lock at
  the start of a transaction (``BEGIN IMMEDIATE``) and wait up to 30 s for each other.
- ``postgresql://user:password@host:port/dbname``: PostgreSQL, for several controllers or an
  AWX cluster (AWX already runs one). Needs psycopg 3 on the controller or in the execution
  environment.

Every write is one transaction; a unique-constraint conflict is raised as :class:`Conflict`
so callers can read again and retry (what Neutron does on a duplicate IP allocation).
The URL's password never appears in a message (:func:`redact`).
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from typing import Any, Iterator, List, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

try:
    import psycopg
    HAS_PSYCOPG = True
except ImportError:
    psycopg = None
    HAS_PSYCOPG = False

SQLITE_TIMEOUT = 30.0
SCHEMA_VERSION = 1
# pg_advisory_xact_lock key: serialises schema creation between controllers starting at once.
SCHEMA_LOCK_KEY = 0x766F7073


class Conflict(VirtopsError):
    """A write broke a unique constraint: somebody else holds that name, address or MAC."""


def redact(url: str) -> str:
    """The store URL with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", str(url))


def _sqlite_path(url: str) -> Optional[str]:
    if url.startswith("sqlite:///"):
        return url[len("sqlite://"):]
    if url.startswith("/"):
        return url
    return None


class Database:
    """One open connection to the store, either engine."""

    def __init__(self, connection: Any, engine: str):
        self.connection = connection
        self.engine = engine

    # -- statements ----------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.engine == "postgresql" else sql

    def execute(self, sql: str, params: Sequence = ()) -> List[tuple]:
        """Run one statement; the rows it returns (none for most writes)."""
        try:
            cursor = self.connection.execute(self._sql(sql), tuple(params))
            if cursor.description is None:
                return []
            return [tuple(row) for row in cursor.fetchall()]
        except sqlite3.IntegrityError as exc:
            raise Conflict("the fleet store refused a duplicate: %s" % exc) from exc
        except Exception as exc:  # psycopg's errors are only importable when it is installed
            if HAS_PSYCOPG and isinstance(exc, psycopg.errors.UniqueViolation):
                raise Conflict("the fleet store refused a duplicate: %s"
                               % (exc.diag.message_detail or exc)) from exc
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Database"]:
        """One write transaction: committed at the end, rolled back on any exception.

        SQLite takes its write lock at the start (``BEGIN IMMEDIATE``), so two controllers'
        read-then-write sequences never interleave; PostgreSQL relies on row locks and the
        unique constraints, and on conditional updates for compare-and-swap."""
        if self.engine == "sqlite":
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")
        else:
            with self.connection.transaction():
                yield self

    def close(self) -> None:
        self.connection.close()


def connect(url: str) -> Database:
    """Open the store named by ``url`` (see the module docstring) and make sure its schema
    exists. Errors say which setting to fix."""
    if not isinstance(url, str) or not url.strip():
        raise VirtopsError("virtops_fleet_store is empty: give an absolute path or "
                           "sqlite:////path/fleet.db for SQLite, or postgresql://... for "
                           "PostgreSQL")
    url = url.strip()
    path = _sqlite_path(url)
    if path is not None:
        database = _connect_sqlite(path)
    elif url.startswith(("postgresql://", "postgres://")):
        database = _connect_postgresql(url)
    else:
        raise VirtopsError("virtops_fleet_store %r is not a store URL: give an absolute path or "
                           "sqlite:////path/fleet.db for SQLite, or postgresql://user@host/db "
                           "for PostgreSQL" % redact(url))
    try:
        _ensure_schema(database)
    except BaseException:
        database.close()
        raise
    return database


def _connect_sqlite(path: str) -> Database:
    directory = os.path.dirname(path) or "/"
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700)
        except OSError as exc:
            raise VirtopsError("cannot create the fleet store's directory %s: %s"
                               % (directory, exc.strerror)) from exc
    try:
        # isolation_level None: we issue BEGIN/COMMIT ourselves.
        connection = sqlite3.connect(path, timeout=SQLITE_TIMEOUT, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise VirtopsError("cannot open the SQLite fleet store %s: %s (check the path and its "
                           "permissions)" % (path, exc)) from exc
    return Database(connection, "sqlite")


def _connect_postgresql(url: str) -> Database:
    if not HAS_PSYCOPG:
        raise VirtopsError("virtops_fleet_store names PostgreSQL, but psycopg is not installed "
                           "on the controller: pip install 'psycopg[binary]>=3.1' (in AWX, add "
                           "it to the execution environment)")
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise VirtopsError("cannot connect to the PostgreSQL fleet store %s: %s"
                           % (redact(url), str(exc).strip())) from exc
    return Database(connection, "postgresql")


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS virtops_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    # A compute host's last report: its whole host facts, and the three numbers placement's
    # candidate query reads (the filters' own arithmetic, at report time).
    """CREATE TABLE IF NOT EXISTS hosts (
        name TEXT PRIMARY KEY,
        facts TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        vcpus DOUBLE PRECISION NOT NULL,
        free_vcpus DOUBLE PRECISION NOT NULL,
        free_ram_mb DOUBLE PRECISION NOT NULL,
        free_disk_mb DOUBLE PRECISION NOT NULL,
        reported_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS hosts_free_ram ON hosts (free_ram_mb)",
    # A server of the fleet: its name (unique), where its allocation is, and what it holds.
    """CREATE TABLE IF NOT EXISTS servers (
        uuid TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        host TEXT,
        vcpus DOUBLE PRECISION NOT NULL,
        ram_mb DOUBLE PRECISION NOT NULL,
        disk_gb DOUBLE PRECISION NOT NULL,
        summary TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS servers_host ON servers (host)",
    # A port: its address unique in its network, its MAC unique in the fleet.
    """CREATE TABLE IF NOT EXISTS ports (
        port_id TEXT PRIMARY KEY,
        server_uuid TEXT NOT NULL,
        server_name TEXT NOT NULL,
        network TEXT NOT NULL,
        address TEXT,
        mac TEXT NOT NULL UNIQUE,
        UNIQUE (network, address))""",
    "CREATE INDEX IF NOT EXISTS ports_server ON ports (server_uuid)",
    # Who is operating on a server, taken by compare-and-swap; expires.
    """CREATE TABLE IF NOT EXISTS leases (
        server TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        operation TEXT NOT NULL,
        since DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL)""",
)


def _ensure_schema(database: Database) -> None:
    with database.transaction():
        if database.engine == "postgresql":
            database.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
        for statement in SCHEMA:
            database.execute(statement)
        rows = database.execute("SELECT value FROM virtops_meta WHERE key = 'schema_version'")
        if not rows:
            database.execute("INSERT INTO virtops_meta (key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
        elif int(rows[0][0]) > SCHEMA_VERSION:
            raise VirtopsError("the fleet store has schema version %s, newer than this "
                               "collection's %d: upgrade virtops.compute on this controller"
                               % (rows[0][0], SCHEMA_VERSION))
