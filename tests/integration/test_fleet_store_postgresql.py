# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every fleet store test of tests/unit/plugins/plugin_utils/_store/test_fleet_store.py, again on
a real PostgreSQL (tests/fixtures/postgres.py): one schema, two engines, the same behaviour."""
from __future__ import annotations

import pytest

# The tests and fixtures are the unit module's; only the store they open differs.
from tests.unit.plugins.plugin_utils._store.test_fleet_store import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import


@pytest.fixture
def store_url(fresh_postgres_dsn):
    return fresh_postgres_dsn
