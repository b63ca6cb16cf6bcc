# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import libvirt
import pytest

from tests.fixtures.guest import GuestBuildError, ensure_guest
from tests.integration.vif_lab import Instances, lab_fleet
from tests.lab.handle import LabHandle

# Concurrent test sessions (a developer and CI, or parallel runs) each take a free slot: a lab
# of their own with its own prefix and subnet. The slot's lock is held for the whole session, so
# cleaning a slot's leftovers never touches a lab another session is using.
LIBVIRT_URI = "qemu:///system"
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


# A persistent domain of the machine's own, running while the session lab comes up: a lab host
# is a fresh compute host and must not inherit it (as it once inherited `make demo`'s server).
MACHINE_DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>
<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><serial type='pty'/><console type='pty'/></devices></domain>"""


@pytest.fixture(scope="session")
def machine_domain():
    """The name of a domain defined and started on this machine's libvirtd for the session."""
    if os.geteuid() != 0:
        pytest.skip("defining a domain needs root")
    try:
        connection = libvirt.open(LIBVIRT_URI)
    except libvirt.libvirtError as exc:
        pytest.skip("%s not reachable: %s" % (LIBVIRT_URI, exc))
    name = "vo-machine-%s" % uuid.uuid4().hex[:8]
    domain = connection.defineXML(MACHINE_DOMAIN.format(name=name))
    try:
        domain.create()
        yield name
    finally:
        if domain.isActive():
            domain.destroy()
        domain.undefine()
        connection.close()


@pytest.fixture(scope="session")
def lab(machine_domain):  # pylint: disable=unused-argument,redefined-outer-name
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


# The vm_vif / vm_domain lab (prefix vn), brought up per test module that asks for it.
@pytest.fixture(scope="module")
def vif_fleet():
    yield from lab_fleet()


@pytest.fixture(scope="session")
def guest():
    """The test guest's files (built once, cached); the tests that boot it skip where it
    cannot be built."""
    try:
        return ensure_guest()
    except GuestBuildError as exc:
        pytest.skip("the test guest cannot be built here: %s" % exc)


@pytest.fixture
def var_tmp():
    """A temporary directory libvirt's qemu user can traverse (pytest's tmp_path has 0700
    parents), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="vo-test-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def conn():
    """A libvirt connection to this machine's libvirtd (not a lab host's)."""
    try:
        connection = libvirt.open(LIBVIRT_URI)
    except libvirt.libvirtError as exc:
        pytest.skip("%s not reachable: %s" % (LIBVIRT_URI, exc))
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def vif_instances(vif_fleet):
    """Instances a test makes on the vif lab, removed afterwards whatever happened."""
    made = Instances(vif_fleet)
    try:
        yield made
    finally:
        made.cleanup()
