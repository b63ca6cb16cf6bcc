# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for unit and integration tests alike: a real PostgreSQL server (tests/fixtures/postgres.py)
and a real Ceph cluster (tests/fixtures/ceph.py)."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.fixtures.ceph import CephCluster, CephUnavailable
from tests.fixtures.daemons import session_daemon
from tests.fixtures.postgres import PostgresServer, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session, stopped at its end. Where PostgreSQL cannot
    run (package, ``postgres`` user or psycopg missing) the tests that need it skip, except
    under CI (``CI`` set), where they fail."""
    yield from session_daemon(PostgresServer, PostgresUnavailable, "PostgreSQL")


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:  # pylint: disable=redefined-outer-name
    """The session server's database ``virtops``: ``postgresql://virtops@127.0.0.1:<port>/virtops``,
    shared by every test of the session."""
    return postgres_server.dsn


@pytest.fixture
def fresh_postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:  # pylint: disable=redefined-outer-name
    """A new empty database of the session server for this test alone (dropped afterwards):
    ``postgresql://virtops@127.0.0.1:<port>/t_<16 hex digits>``."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.dsn_for(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def ceph_cluster() -> Iterator[CephCluster]:
    """One Ceph cluster (a monitor, an OSD, pools ``images`` and ``vms``, ``client.virtops``)
    for the whole session, stopped by PID at its end; about 11 s to start. Where Ceph cannot
    run (packages missing, not root) the tests that need it skip, except under CI."""
    yield from session_daemon(CephCluster, CephUnavailable, "Ceph")
