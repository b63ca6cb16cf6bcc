# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.lab.handle import LabHandle

SESSION_LAB_DIR = Path(os.environ.get("VIRTOPS_TEST_LAB_DIR", "/var/tmp/virtops-test-lab"))


@pytest.fixture(scope="session")
def lab():
    """A two-host lab shared by the integration tests; always torn down, even on failure."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    handle = LabHandle(SESSION_LAB_DIR, prefix="vt", subnet="10.77.1")
    handle.down()  # leftovers of an interrupted run
    try:
        handle.up(2)
        yield handle
    finally:
        proc = handle.down()
        assert proc.returncode == 0, proc.stderr
