# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL test server (tests/fixtures/postgres.py, tests/conftest.py) itself."""
from __future__ import annotations

import pytest

from tests.fixtures.postgres import PostgresServer, PostgresUnavailable
from tests.fixtures.daemons import gone, under_ci

# Under CI a missing driver fails the module; elsewhere it skips it.
psycopg = __import__("psycopg") if under_ci() else pytest.importorskip("psycopg")


def test_the_session_server_serves_the_virtops_database_on_loopback(postgres_dsn):
    assert postgres_dsn.startswith("postgresql://virtops@127.0.0.1:")
    assert postgres_dsn.endswith("/virtops")
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT current_database(), current_user, pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert row == ("virtops", "virtops", "UTF8")


def test_the_fixture_server_accepts_connections_and_keeps_tests_apart(postgres_server):
    first = postgres_server.create_database()
    second = postgres_server.create_database()
    try:
        with psycopg.connect(postgres_server.dsn_for(first)) as conn:
            conn.execute("CREATE TABLE instances (uuid text PRIMARY KEY)")
            conn.execute("INSERT INTO instances VALUES ('a')")
        with psycopg.connect(postgres_server.dsn_for(second)) as conn:
            assert conn.execute("SELECT to_regclass('public.instances')").fetchone() == (None,)
            conn.execute("CREATE TABLE instances (uuid text PRIMARY KEY)")
            assert conn.execute("SELECT count(*) FROM instances").fetchone() == (0,)
        # An open session does not keep its database from being dropped.
        held = psycopg.connect(postgres_server.dsn_for(first))
        try:
            postgres_server.drop_database(first)
        finally:
            held.close()
        with psycopg.connect(postgres_server.dsn) as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert first not in names and second in names
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)


def test_a_fresh_database_is_empty_and_this_tests_own(fresh_postgres_dsn, postgres_dsn):
    assert fresh_postgres_dsn != postgres_dsn
    with psycopg.connect(fresh_postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute("CREATE TABLE leftovers (n int)")


def test_stopping_the_server_ends_its_process_and_removes_its_directory():
    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if under_ci():
            raise
        pytest.skip(str(exc))
    with server:
        pid, directory = server.pid, server.directory
        assert directory is not None and directory.name.startswith("virtops-pg-") and str(directory.parent) == "/var/tmp"
        with psycopg.connect(server.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert not gone(pid)
    assert gone(pid)
    assert not directory.exists()
    server.stop()  # idempotent
    assert server.directory is None
