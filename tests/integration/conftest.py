# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from tests.lab.handle import LabHandle

# Concurrent test sessions (a developer and CI, or parallel runs) each take a free slot: a lab
# of their own with its own prefix and subnet. The slot's lock is held for the whole session, so
# cleaning a slot's leftovers never touches a lab another session is using.
SLOTS = [("vt", "10.77.1"), ("vt1", "10.77.21"), ("vt2", "10.77.22"), ("vt3", "10.77.23")]
LOCK_DIR = Path("/run/virtops-test-lab")
STATE_ROOT = Path(os.environ.get("VIRTOPS_TEST_LAB_DIR", "/var/tmp/virtops-test-lab"))


def _take_slot():
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for index, (prefix, subnet) in enumerate(SLOTS):
        fd = os.open(str(LOCK_DIR / ("slot%d.lock" % index)), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        state_dir = STATE_ROOT if index == 0 else Path("%s-%d" % (STATE_ROOT, index))
        return fd, LabHandle(state_dir, prefix=prefix, subnet=subnet)
    pytest.fail("all %d lab slots are in use by other test sessions" % len(SLOTS))
    return None


@pytest.fixture(scope="session")
def lab():
    """A two-host lab for this test session; always torn down, even on failure."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    fd, handle = _take_slot()
    try:
        handle.down()  # leftovers of an interrupted run in this slot
        try:
            handle.up(2)
            yield handle
        finally:
            proc = handle.down()
            assert proc.returncode == 0, proc.stderr
    finally:
        os.close(fd)
