# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test guest boots under the real libvirtd and reports what it was given.

These tests prove the fixture other integration tests rely on: both boot paths
reach VIRTOPS-GUEST-READY, a config drive is read, a NIC is configured from
network_data.json and reaches its gateway, and `virsh shutdown` powers the
guest off cleanly.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

libvirt = pytest.importorskip("libvirt")
etree = pytest.importorskip("lxml.etree")

LIBVIRT_URI = "qemu:///system"
BOOT_TIMEOUT = 120.0  # TCG on 2 shared cores; a boot takes ~6 s when idle


# --- domain XML ------------------------------------------------------------------


@dataclasses.dataclass
class Nic:
    bridge: str
    mac: str


@dataclasses.dataclass
class GuestDomain:
    name: str
    console_log: Path
    disk: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    cdrom: Path | None = None
    nics: list[Nic] = dataclasses.field(default_factory=list)
    memory_mib: int = 128


def domain_xml(spec: GuestDomain) -> str:
    """Libvirt XML for a TCG guest of machine type pc (the cloud kernel has no AHCI)."""
    domain = etree.Element("domain", type="qemu")
    etree.SubElement(domain, "name").text = spec.name
    etree.SubElement(domain, "memory", unit="MiB").text = str(spec.memory_mib)
    etree.SubElement(domain, "vcpu").text = "1"
    os_el = etree.SubElement(domain, "os")
    etree.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    if spec.kernel is not None:
        etree.SubElement(os_el, "kernel").text = str(spec.kernel)
        etree.SubElement(os_el, "initrd").text = str(spec.initrd)
        etree.SubElement(os_el, "cmdline").text = spec.cmdline
    features = etree.SubElement(domain, "features")
    etree.SubElement(features, "acpi")  # without it the guest cannot power off
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "destroy"),
                          ("on_crash", "destroy")):
        etree.SubElement(domain, event).text = action

    devices = etree.SubElement(domain, "devices")
    if spec.disk is not None:
        disk = etree.SubElement(devices, "disk", type="file", device="disk")
        etree.SubElement(disk, "driver", name="qemu", type="qcow2")
        etree.SubElement(disk, "source", file=str(spec.disk))
        etree.SubElement(disk, "target", dev="vda", bus="virtio")
        if spec.kernel is None:
            etree.SubElement(disk, "boot", order="1")
    if spec.cdrom is not None:
        cdrom = etree.SubElement(devices, "disk", type="file", device="cdrom")
        etree.SubElement(cdrom, "driver", name="qemu", type="raw")
        etree.SubElement(cdrom, "source", file=str(spec.cdrom))
        etree.SubElement(cdrom, "target", dev="hdc", bus="ide")
        etree.SubElement(cdrom, "readonly")
    for nic in spec.nics:
        interface = etree.SubElement(devices, "interface", type="bridge")
        etree.SubElement(interface, "mac", address=nic.mac)
        etree.SubElement(interface, "source", bridge=nic.bridge)
        etree.SubElement(interface, "model", type="virtio")
    serial = etree.SubElement(devices, "serial", type="file")
    etree.SubElement(serial, "source", path=str(spec.console_log), append="off")
    etree.SubElement(serial, "target", port="0")
    etree.SubElement(devices, "memballoon", model="none")
    return etree.tostring(domain, encoding="unicode", pretty_print=True)


# --- helpers -----------------------------------------------------------------------


def random_mac() -> str:
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def console_text(spec: GuestDomain) -> str:
    try:
        return spec.console_log.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for_marker(spec: GuestDomain, marker: str, started: float,
                    timeout: float = BOOT_TIMEOUT) -> float:
    """Seconds from `started` until `marker` appears on the guest console."""
    while time.monotonic() - started < timeout:
        if marker in console_text(spec):
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"no {marker!r} on the console within {timeout}s:\n{console_text(spec)[-3000:]}")


def make_config_drive(path: Path, meta: dict, network: dict | None) -> Path:
    """A Nova-style config drive ISO (label config-2)."""
    with tempfile.TemporaryDirectory() as tmp:
        latest = Path(tmp, "openstack", "latest")
        latest.mkdir(parents=True)
        (latest / "meta_data.json").write_text(json.dumps(meta))
        if network is not None:
            (latest / "network_data.json").write_text(json.dumps(network))
        subprocess.run(
            ["xorriso", "-as", "mkisofs", "-V", "config-2", "-J", "-R", "-quiet",
             "-o", str(path), tmp],
            check=True, capture_output=True,
        )
    return path


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
def boot_disk(guest, var_tmp) -> Path:
    """A qcow2 overlay on a private copy of the built disk."""
    base = var_tmp / "base.qcow2"
    shutil.copyfile(guest.disk_qcow2, base)
    overlay = var_tmp / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
        check=True,
    )
    return overlay


@pytest.fixture
def run_domain(conn):
    """Define and start domains; destroy and undefine them afterwards."""
    domains = []

    def start(spec: GuestDomain):
        dom = conn.defineXML(domain_xml(spec))
        domains.append(dom)
        dom.create()
        return dom

    try:
        yield start
    finally:
        for dom in domains:
            try:
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
            try:
                dom.undefine()
            except libvirt.libvirtError:
                pass


@pytest.fixture
def bridge():
    """A Linux bridge holding the guest's gateway address 10.99.0.1/24."""
    name = f"vo-tst{secrets.token_hex(2)}"
    try:
        subprocess.run(["ip", "link", "add", "name", name, "type", "bridge",
                        "stp_state", "0", "forward_delay", "0"], check=True)
        subprocess.run(["ip", "addr", "add", "10.99.0.1/24", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", "dev", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", "dev", name], check=False, capture_output=True)


def new_domain(var_tmp: Path, **kwargs) -> GuestDomain:
    return GuestDomain(
        name=f"vo-test-{secrets.token_hex(4)}",
        console_log=var_tmp / "console.log",
        **kwargs,
    )


# --- tests ------------------------------------------------------------------------------


def test_boots_from_disk(var_tmp, boot_disk, run_domain, record_property):
    spec = new_domain(var_tmp, disk=boot_disk)
    started = time.monotonic()
    run_domain(spec)
    seconds = wait_for_marker(spec, "VIRTOPS-GUEST-READY", started)
    record_property("boot_seconds", round(seconds, 1))
    print(f"disk boot to READY: {seconds:.1f}s")
    console = console_text(spec)
    assert "SYSLINUX" in console  # really booted through the disk's boot loader
    assert "VIRTOPS-CONFIGDRIVE none" in console


def test_direct_kernel_boot(guest, var_tmp, run_domain, record_property):
    kernel = shutil.copyfile(guest.kernel, var_tmp / "vmlinuz")
    initrd = shutil.copyfile(guest.initrd, var_tmp / "initrd.gz")
    spec = new_domain(var_tmp, kernel=kernel, initrd=initrd, cmdline=guest.cmdline)
    started = time.monotonic()
    run_domain(spec)
    seconds = wait_for_marker(spec, "VIRTOPS-GUEST-READY", started)
    record_property("boot_seconds", round(seconds, 1))
    print(f"direct kernel boot to READY: {seconds:.1f}s")
    assert "SYSLINUX" not in console_text(spec)


def test_config_drive_metadata(var_tmp, boot_disk, run_domain):
    instance_uuid = str(uuid.uuid4())
    iso = make_config_drive(
        var_tmp / "config.iso",
        {"hostname": "guest-one", "name": "guest-one", "uuid": instance_uuid,
         "availability_zone": "nova", "launch_index": 0},
        None,
    )
    spec = new_domain(var_tmp, disk=boot_disk, cdrom=iso)
    started = time.monotonic()
    run_domain(spec)
    wait_for_marker(spec, "VIRTOPS-GUEST-READY", started)
    assert f"VIRTOPS-META uuid={instance_uuid} hostname=guest-one" in console_text(spec)


def test_network_from_config_drive(guest, var_tmp, bridge, run_domain):
    mac = random_mac()
    network_data = {
        "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": mac,
                   "mtu": 1450, "vif_id": str(uuid.uuid4())}],
        "networks": [{"id": "network0", "network_id": str(uuid.uuid4()), "type": "ipv4",
                      "link": "tap0", "ip_address": "10.99.0.10",
                      "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0",
                                  "gateway": "10.99.0.1"}],
                      "services": []}],
        "services": [],
    }
    iso = make_config_drive(
        var_tmp / "config.iso",
        {"uuid": str(uuid.uuid4()), "hostname": "guest-net"},
        network_data,
    )
    kernel = shutil.copyfile(guest.kernel, var_tmp / "vmlinuz")
    initrd = shutil.copyfile(guest.initrd, var_tmp / "initrd.gz")
    spec = new_domain(var_tmp, kernel=kernel, initrd=initrd, cmdline=guest.cmdline,
                      cdrom=iso, nics=[Nic(bridge, mac)])
    started = time.monotonic()
    run_domain(spec)
    wait_for_marker(spec, "VIRTOPS-GUEST-READY", started)
    console = console_text(spec)
    assert f"VIRTOPS-NET eth0 {mac} 10.99.0.10/24" in console
    assert "VIRTOPS-PING 10.99.0.1 ok" in console


def test_virsh_shutdown_powers_off(var_tmp, boot_disk, conn, run_domain):
    spec = new_domain(var_tmp, disk=boot_disk)
    started = time.monotonic()
    dom = run_domain(spec)
    wait_for_marker(spec, "VIRTOPS-GUEST-READY", started)

    subprocess.run(["virsh", "-c", LIBVIRT_URI, "shutdown", spec.name],
                   check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and dom.isActive():
        time.sleep(0.2)
    state, reason = dom.state()
    assert state == libvirt.VIR_DOMAIN_SHUTOFF, console_text(spec)[-2000:]
    assert reason == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN  # the guest powered off itself
    assert "VIRTOPS-SHUTDOWN" in console_text(spec)


def test_poweroff_cmdline_option(guest, var_tmp, conn, run_domain):
    kernel = shutil.copyfile(guest.kernel, var_tmp / "vmlinuz")
    initrd = shutil.copyfile(guest.initrd, var_tmp / "initrd.gz")
    spec = new_domain(var_tmp, kernel=kernel, initrd=initrd,
                      cmdline=f"{guest.cmdline} virtops.poweroff")
    started = time.monotonic()
    dom = run_domain(spec)
    wait_for_marker(spec, "VIRTOPS-GUEST-READY", started)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and dom.isActive():
        time.sleep(0.2)
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
    assert "VIRTOPS-SHUTDOWN" in console_text(spec)
