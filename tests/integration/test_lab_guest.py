# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test guest boots on a lab host (its own libvirtd, its private instances path)."""
from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.fixtures.guest import ensure_guest
from tests.integration.test_guest_boot import GuestDomain, domain_xml

pytestmark = pytest.mark.slow
HOST = "compute1"
BOOT_TIMEOUT = 120.0


def boot_on_lab_host(lab, spec: GuestDomain, workdir: str) -> float:
    xml_path = Path("/tmp") / ("%s.xml" % spec.name)  # /tmp is shared with the lab host
    xml_path.write_text(domain_xml(spec))
    try:
        lab.virsh(HOST, "define", str(xml_path))
    finally:
        xml_path.unlink()
    started = time.monotonic()
    lab.virsh(HOST, "start", spec.name)
    while time.monotonic() - started < BOOT_TIMEOUT:
        console = lab.run(HOST, ["cat", str(spec.console_log)], check=False).stdout
        if "VIRTOPS-GUEST-READY" in console:
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError("no READY marker on %s within %ss:\n%s" % (HOST, BOOT_TIMEOUT, console))


@pytest.mark.parametrize("boot", ["disk", "kernel"])
def test_guest_boots_on_a_lab_host(lab, boot):
    guest = ensure_guest()
    name = "vo-labguest-%s" % secrets.token_hex(3)
    workdir = "/var/lib/virtops/instances/%s" % name
    lab.run(HOST, ["mkdir", "-p", workdir])
    try:
        if boot == "disk":
            lab.run(HOST, ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                           str(guest.disk_qcow2), workdir + "/disk"])
            spec = GuestDomain(name=name, console_log=Path(workdir) / "console.log",
                               disk=Path(workdir) / "disk")
        else:
            lab.run(HOST, ["cp", str(guest.kernel), str(guest.initrd), workdir])
            spec = GuestDomain(name=name, console_log=Path(workdir) / "console.log",
                               kernel=Path(workdir) / guest.kernel.name,
                               initrd=Path(workdir) / guest.initrd.name, cmdline=guest.cmdline)
        seconds = boot_on_lab_host(lab, spec, workdir)
        print("%s boot to READY on %s: %.1fs" % (boot, HOST, seconds))
        assert lab.domains(HOST) == [name]
        assert name not in lab.domains("compute2")
        assert not Path(workdir).exists(), "the instances path is private to the lab host"
    finally:
        lab.virsh(HOST, "destroy", name, check=False)
        lab.virsh(HOST, "undefine", name, check=False)
        lab.run(HOST, ["rm", "-rf", workdir], check=False)
