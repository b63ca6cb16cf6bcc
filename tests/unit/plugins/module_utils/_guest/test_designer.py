# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The designer: every generated document is valid for libvirt, stable, and honest.

Host capabilities come from XML captured on a Debian 12 host (tests/fixtures/host_caps), so
these tests need no libvirtd; libvirt itself judges the documents through its RNG schema
(virt-xml-validate) and the in-process test:///default driver.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import libvirt
import pytest

from ansible_collections.virtops.compute.plugins.module_utils._guest.blockinfo import get_disk_info
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._guest.config import (
    Guest, GuestChannel, GuestCPU, GuestDisk, GuestInterface, GuestOS, GuestRng, GuestSerial, GuestVideo)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSpec
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdDisks, RbdSettings
from ansible_collections.virtops.compute.plugins.module_utils._guest.designer import (
    HostView, InstanceSpec, Recorded, choose_machine_type, design_guest,
    resolve_disk_formats)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.host_caps import (
    DomainCapabilities, HostCapabilities)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    parse_network_info)

REPO = Path(__file__).resolve().parents[5]
CAPS_DIR = REPO / "tests" / "fixtures" / "host_caps"
GOLDEN = REPO / "tests" / "fixtures" / "golden" / "domain_full.xml"
UUID = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
INSTANCE_DIR = "/var/lib/virtops/instances/" + UUID
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)

CAPS = HostCapabilities.from_xml((CAPS_DIR / "capabilities_x86_64.xml").read_text())


def domcaps(name: str) -> DomainCapabilities:
    return DomainCapabilities.from_xml((CAPS_DIR / ("domcaps_%s.xml" % name)).read_text())


def vif(n: int, vif_type: str = "bridge", port_filter: bool = False, **meta) -> dict:
    return {
        "id": "%08x-0000-4000-8000-00000000000%x" % (0x1c2d3e40 + n, n), "address": "fa:16:3e:00:00:%02x" % n,
        "type": vif_type, "details": {"port_filter": port_filter},
        "network": {"id": "net-%d" % n, "label": "default", "bridge": "br-private",
                    "meta": dict({"mtu": 1450}, **meta),
                    "subnets": [{"cidr": "10.10.0.0/24", "gateway": {"address": "10.10.0.1"},
                                 "ips": [{"address": "10.10.0.%d" % (10 + n)}]},
                                {"cidr": "fd00:10::/64", "ips": [{"address": "fd00:10::%d" % n}]}]}}


def instance(**over) -> InstanceSpec:
    data = {"uuid": UUID, "name": "web1", "hostname": "web1", "created_at": "2026-01-02T03:04:05Z",
            "owner": {"user": "alice", "project": "ops"}}
    data.update(over)
    return InstanceSpec.from_dict(data)


def flavor(**over) -> Flavor:
    data = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1}
    data.update(over)
    return Flavor.from_dict(data)


def image(disk_format=None, **props) -> ImageSpec:
    return ImageSpec.from_dict({"id": "tiny", "name": "Tiny", "disk_format": disk_format,
                                "properties": props})


def design(inst=None, flv=None, img=None, vifs=(), virt_type="qemu", config_drive=None,
           formats=None, recorded=(), disk_cache="none", caps_name=None, **host_over):
    inst, flv, img = inst or instance(), flv or flavor(), img or image()
    machine = choose_machine_type(img, CAPS, "x86_64", virt_type, recorded)
    family = "q35" if "q35" in machine else "pc"
    dc = domcaps(caps_name or "%s_%s" % (virt_type, family))
    props = img.properties
    disk_info = get_disk_info(virt_type, disk_bus=props.hw_disk_bus,
                              cdrom_bus=props.hw_cdrom_bus, machine_type=machine,
                              ephemeral_gb=flv.ephemeral_gb, swap_mb=flv.swap_mb,
                              config_drive_format=config_drive,
                              image_disk_format=img.disk_format, host_buses=dc.disk_buses)
    host = HostView(virt_type=virt_type, arch="x86_64", machine_type=machine, domcaps=dc,
                    instance_dir=INSTANCE_DIR, disk_cache=disk_cache, **host_over)
    if formats is None:
        formats = {"disk": "qcow2", "disk.local": "qcow2", "disk.swap": "raw"}
    return design_guest(inst, flv, img, disk_info, formats, parse_network_info(list(vifs)), host,
                        recorded, NOW)


def validate_with_libvirt(xml: str, tmp_path) -> str:
    """virt-xml-validate, then define on test:///default; returns libvirt's own rendering."""
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr + xml
    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(xml)
        try:
            return dom.XMLDesc(0)
        finally:
            dom.undefine()
    finally:
        conn.close()


# --- the table: flavors x image properties x disk mappings x VIF types --------------------

FLAVORS = [
    flavor(),
    flavor(name="m1.eph", vcpus=2, ram_mb=512, ephemeral_gb=1, swap_mb=256),
    flavor(name="m1.topo", vcpus=4, ram_mb=1024, extra_specs={
        "hw:cpu_sockets": "2", "hw:cpu_cores": "2", "hw_rng:rate_bytes": "2048"}),
]
IMAGES = [
    ("default", "qemu", image()),
    ("kvm", "kvm", image(hw_qemu_guest_agent="yes")),
    ("ide-e1000", "qemu", image(hw_disk_bus="ide", hw_vif_model="e1000", hw_video_model="cirrus")),
    ("scsi", "kvm", image(hw_disk_bus="scsi", hw_cdrom_bus="scsi", hw_rng_model="none")),
    ("q35-sata", "qemu", image(hw_machine_type="q35", hw_disk_bus="sata")),
    ("q35-uefi", "qemu", image(hw_machine_type="q35", hw_firmware_type="uefi")),
    ("kernel", "qemu", image(kernel_id="k1", ramdisk_id="r1", hw_pointer_model="ps2mouse")),
    ("windows", "kvm", image(os_type="windows", hw_vif_model="e1000e", hw_disk_bus="sata")),
    ("iso", "qemu", image(disk_format="iso")),
]
VIF_SETS = [
    ("none", []),
    ("bridge-filtered", [vif(1, "bridge", port_filter=True)]),
    ("network", [vif(2, "network")]),
    ("direct", [vif(3, "direct", physical_interface="eth1")]),
    ("ethernet", [vif(4, "ethernet", port_filter=True)]),
    ("vlan+vxlan", [vif(5, "vlan", vlan=100), vif(6, "vxlan", vxlan_id=7)]),
]
CONFIG_DRIVES = [None, "iso9660", "vfat"]
MATRIX = [(img, vifs, FLAVORS[i % len(FLAVORS)], CONFIG_DRIVES[(i // 2) % len(CONFIG_DRIVES)])
          for i, (img, vifs) in enumerate(itertools.product(IMAGES, VIF_SETS))]


@pytest.mark.parametrize(
    "img_case, vif_case, flv, config_drive", MATRIX,
    ids=["%s-%s-%s-%s" % (i[0], v[0], f.name, c) for i, v, f, c in MATRIX])
def test_matrix_validates_defines_and_parses_back(img_case, vif_case, flv, config_drive, tmp_path):
    virt_type, img = img_case[1:]
    caps_name = None
    if img.properties.hw_firmware_type == "uefi":
        caps_name = "qemu_q35_ovmf"
    guest = design(flv=flv, img=img, vifs=vif_case[1], virt_type=virt_type,
                   config_drive=config_drive, caps_name=caps_name)
    xml = guest.to_xml()
    assert Guest.from_xml(xml) == guest

    live = Guest.from_xml(validate_with_libvirt(xml, tmp_path))
    # libvirt kept what we said (it adds controllers, addresses and defaults of its own)
    assert (live.uuid, live.name, live.virt_type) == (UUID, "web1", virt_type)
    assert live.metadata == guest.metadata
    assert live.sysinfo == guest.sysinfo
    assert live.memory_kib == flv.ram_mb * 1024 and live.vcpus == flv.vcpus
    assert live.os.machine == guest.os.machine and live.os.kernel == guest.os.kernel
    if guest.os.kernel is None:     # with a kernel, libvirt shows its default <boot dev='hd'/>
        assert live.os.boot_devs == guest.os.boot_devs
    assert live.devices_of(GuestDisk) == guest.devices_of(GuestDisk)
    assert [(i.mac, i.net_type, i.source_dev, i.target_dev, i.model, i.mtu, i.filterparams)
            for i in live.devices_of(GuestInterface)] == \
        [(i.mac, i.net_type, i.source_dev, i.target_dev, i.model, i.mtu, i.filterparams)
         for i in guest.devices_of(GuestInterface)]
    assert live.devices_of(GuestSerial) == guest.devices_of(GuestSerial)


# --- one full document, pinned byte for byte ---------------------------------------------

def golden_guest() -> Guest:
    return design(
        flv=flavor(name="m1.small", vcpus=2, ram_mb=2048, root_gb=20, ephemeral_gb=1,
                   swap_mb=512, extra_specs={"hw:cpu_sockets": "1", "hw_rng:rate_bytes": "1024",
                                             "hw_rng:rate_period": "1000"}),
        img=image(hw_qemu_guest_agent=True, os_type="linux"),
        vifs=[vif(1, "bridge", port_filter=True), vif(2, "ethernet")],
        virt_type="kvm", config_drive="iso9660", firewall_driver="nwfilter")


def test_golden_document_is_byte_identical(tmp_path):
    xml = golden_guest().to_xml()
    if os.environ.get("VIRTOPS_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(xml)
    assert xml == GOLDEN.read_text()
    validate_with_libvirt(xml, tmp_path)


def test_same_inputs_give_the_same_bytes_whatever_the_dict_order():
    props = {"hw_qemu_guest_agent": "true", "hw_disk_bus": "scsi", "hw_vif_model": "e1000"}
    specs = {"hw:cpu_threads": "1", "hw:cpu_sockets": "2"}
    one = design(img=image(**props), flv=flavor(vcpus=2, extra_specs=specs),
                 vifs=[vif(1), vif(2)]).to_xml()
    two = design(img=image(**dict(reversed(list(props.items())))),
                 flv=flavor(vcpus=2, extra_specs=dict(reversed(list(specs.items())))),
                 vifs=[vif(1), vif(2)]).to_xml()
    assert one == two


# --- decisions ----------------------------------------------------------------------------

def test_kvm_gets_host_model_and_qemu_gets_no_cpu():
    assert design(virt_type="kvm").cpu == GuestCPU(mode="host-model")
    assert design(virt_type="qemu").cpu is None
    topo = design(virt_type="qemu", flv=flavor(vcpus=4, extra_specs={"hw:cpu_cores": "2"})).cpu
    assert (topo.mode, topo.topology.sockets, topo.topology.cores) == (None, 2, 2)


def test_metadata_records_instance_flavor_image_owner_and_ports():
    guest = design(flv=flavor(ephemeral_gb=2, swap_mb=64), vifs=[vif(1)])
    meta = guest.metadata
    assert (meta.name, meta.hostname, meta.creation_time) == ("web1", "web1", "2026-01-02 03:04:05")
    assert (meta.flavor.name, meta.flavor.memory, meta.flavor.disk, meta.flavor.swap,
            meta.flavor.ephemeral, meta.flavor.vcpus) == ("m1.tiny", 128, 1, 64, 2, 1)
    assert (meta.owner.user, meta.owner.project) == ("alice", "ops")
    assert meta.image.id == "tiny"
    assert [(p.id, p.mac, [(ip.address, ip.version) for ip in p.ips]) for p in meta.ports] == [
        ("1c2d3e41-0000-4000-8000-000000000001", "fa:16:3e:00:00:01",
         [("10.10.0.11", 4), ("fd00:10::1", 6)])]
    assert (guest.sysinfo.serial, guest.sysinfo.uuid, guest.sysinfo.manufacturer,
            guest.sysinfo.product) == (UUID, UUID, "virtops", "virtops compute")
    assert guest.os.smbios_mode == "sysinfo"


def test_disks_use_formats_cache_and_the_instance_dir():
    guest = design(flv=flavor(ephemeral_gb=1), config_drive="iso9660", disk_cache="writeback",
                   formats={"disk": "qcow2", "disk.local": "raw"})
    assert [(d.source_path, d.driver_format, d.driver_cache, d.target_dev, d.device, d.readonly)
            for d in guest.devices_of(GuestDisk)] == [
        (INSTANCE_DIR + "/disk", "qcow2", "writeback", "vda", "disk", False),
        (INSTANCE_DIR + "/disk.local", "raw", "writeback", "vdb", "disk", False),
        (INSTANCE_DIR + "/disk.config", "raw", "writeback", "hda", "cdrom", True)]


def test_console_is_a_logged_pty():
    serial = design().devices_of(GuestSerial)
    assert serial == [GuestSerial(type="pty", log_file=INSTANCE_DIR + "/console.log",
                                  log_append=True, target_port=0)]


def test_interfaces_per_vif_type_with_libvirt_s_nwfilter():
    guest = design(vifs=[vif(1, "bridge", port_filter=True), vif(2, "network"),
                         vif(3, "direct", physical_interface="eth1"), vif(4, "ethernet"),
                         vif(5, "vlan", vlan=12)], img=image(hw_vif_model="rtl8139"),
                   firewall_driver="nwfilter")
    got = [(i.net_type, i.source_dev, i.source_mode, i.target_dev, i.model, i.mtu, i.filtername,
            i.filterparams) for i in guest.devices_of(GuestInterface)]
    assert got == [
        ("bridge", "br-private", None, "tap1c2d3e41-00", "rtl8139", 1450, "clean-traffic",
         [("IP", "10.10.0.11")]),
        ("network", "default", None, "tap1c2d3e42-00", "rtl8139", 1450, None, []),
        ("direct", "eth1", "bridge", "tap1c2d3e43-00", "rtl8139", 1450, None, []),
        ("ethernet", None, None, "tap1c2d3e44-00", "rtl8139", 1450, None, []),
        ("bridge", "br-private", None, "tap1c2d3e45-00", "rtl8139", 1450, None, [])]


def test_a_filtered_port_references_no_nwfilter_when_nftables_filters_it():
    guest = design(vifs=[vif(1, "bridge", port_filter=True)])
    [iface] = guest.devices_of(GuestInterface)
    assert (iface.filtername, iface.filterparams) == (None, [])
    assert "filterref" not in guest.to_xml()
    with pytest.raises(VirtopsError, match="direct .macvtap. has none"):
        design(vifs=[vif(3, "direct", physical_interface="eth1", port_filter=True)])


def test_direct_kernel_boot_uses_the_instance_files():
    guest = design(img=image(kernel_id="k", ramdisk_id="r"))
    assert (guest.os.kernel, guest.os.initrd, guest.os.cmdline, guest.os.boot_devs) == (
        INSTANCE_DIR + "/kernel", INSTANCE_DIR + "/ramdisk",
        "root=/dev/vda console=tty0 console=ttyS0", [])
    guest = design(img=image(kernel_id="k", os_command_line="console=ttyS0 quiet"))
    assert (guest.os.initrd, guest.os.cmdline) == (None, "console=ttyS0 quiet")


def test_uefi_uses_a_firmware_without_secure_boot():
    guest = design(img=image(hw_firmware_type="uefi"), caps_name="qemu_pc_ovmf")
    assert guest.os.loader.path == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert (guest.os.loader.type, guest.os.loader.readonly) == ("pflash", True)
    assert guest.os.nvram.path == INSTANCE_DIR + "/nvram.fd"


def test_uefi_without_firmware_is_refused_clearly():
    with pytest.raises(VirtopsError, match=r"hw_firmware_type=uefi.*no UEFI firmware.*OVMF"):
        design(img=image(hw_firmware_type="uefi"))


def test_windows_gets_localtime_and_only_the_hyperv_features_the_host_offers():
    tcg = design(img=image(os_type="windows"), virt_type="qemu")
    assert tcg.clock.offset == "localtime"
    assert [f.name for f in tcg.features.hyperv] == ["spinlocks"]
    assert tcg.features.hyperv[0].retries == 8191
    assert design(img=image(os_type="linux")).features.hyperv == []


def test_optional_devices_follow_image_properties():
    plain = design()
    assert plain.devices_of(GuestChannel) == []
    assert plain.devices_of(GuestRng) == [GuestRng(model="virtio", backend_model="random",
                                                   backend_path="/dev/urandom")]
    assert plain.devices_of(GuestVideo) == [GuestVideo(model="virtio")]
    asked = design(img=image(hw_qemu_guest_agent="yes", hw_rng_model="none",
                             hw_video_model="cirrus"))
    assert [c.target_name for c in asked.devices_of(GuestChannel)] == ["org.qemu.guest_agent.0"]
    assert asked.devices_of(GuestRng) == []
    assert asked.devices_of(GuestVideo) == [GuestVideo(model="cirrus")]
    assert design(flv=flavor(extra_specs={"hw_rng:allowed": "false"})).devices_of(GuestRng) == []


# --- stable identity ----------------------------------------------------------------------

def recorded_from(guest: Guest, source="libvirt.xml") -> Recorded:
    return Recorded(source=source, guest=Guest.from_xml(guest.to_xml()))


def test_an_alias_machine_type_keeps_the_recorded_version():
    old = dataclasses.replace(design(), os=dataclasses.replace(design().os,
                                                               machine="pc-i440fx-6.2"))
    again = design(recorded=[recorded_from(old)])
    assert again.os.machine == "pc-i440fx-6.2"
    explicit = design(img=image(hw_machine_type="pc-i440fx-7.2"), recorded=[recorded_from(old)])
    assert explicit.os.machine == "pc-i440fx-7.2"
    other_family = design(img=image(hw_machine_type="q35"), recorded=[recorded_from(old)])
    assert other_family.os.machine == "pc-q35-7.2"
    assert design().os.machine == "pc-i440fx-7.2"


def test_creation_time_is_kept_when_not_given():
    first = design()
    again = design(inst=instance(created_at=None), recorded=[recorded_from(first)])
    assert again.metadata.creation_time == "2026-01-02 03:04:05"
    fresh = design(inst=instance(created_at=None))
    assert fresh.metadata.creation_time == "2026-03-04 05:06:07"


def test_a_changed_mac_for_a_recorded_port_is_refused():
    first = design(vifs=[vif(1)])
    changed = vif(1)
    changed["address"] = "fa:16:3e:aa:bb:cc"
    with pytest.raises(VirtopsError, match=r"port 1c2d3e41-0000-4000-8000-000000000001: "
                                           r"network_info gives MAC fa:16:3e:aa:bb:cc but "
                                           r"libvirt.xml records fa:16:3e:00:00:01"):
        design(vifs=[changed], recorded=[recorded_from(first)])
    # the same MAC, a new port, or a removed port are all fine
    assert design(vifs=[vif(1), vif(2)], recorded=[recorded_from(first)]).to_xml()
    assert design(vifs=[], recorded=[recorded_from(first)]).to_xml()


def test_a_recorded_definition_of_another_uuid_is_refused():
    other = design(inst=instance(uuid="11111111-2222-4333-8444-555555555555"))
    with pytest.raises(VirtopsError, match="defines uuid 11111111-.*refusing"):
        design(recorded=[recorded_from(other)])


# --- refusals -----------------------------------------------------------------------------

@pytest.mark.parametrize("build, message", [
    (lambda: instance(name="-bad"), "invalid instance name '-bad'"),
    (lambda: instance(name="a" * 64), "invalid instance name"),
    (lambda: instance(name="../etc"), "invalid instance name"),
    (lambda: instance(uuid="not-a-uuid"), "invalid instance uuid"),
    (lambda: instance(uuid="{%s}" % UUID), "canonical form"),
    (lambda: instance(hostname="web\x01"), "control character"),
    (lambda: instance(created_at="yesterday"), "not an ISO 8601 time"),
    (lambda: flavor(vcpus=0), "vcpus must be at least 1"),
    (lambda: flavor(ram_mb="lots"), "ram_mb must be an integer"),
    (lambda: image(hw_vif_model="vmxnet9"), "hw_vif_model 'vmxnet9' is not supported"),
    (lambda: image(hw_firmware_type="coreboot"), "hw_firmware_type 'coreboot'"),
    (lambda: image(hw_qemu_guest_agent="maybe"), "must be a boolean"),
    (lambda: image(ramdisk_id="r"), "ramdisk_id needs kernel_id"),
    (lambda: design(img=image(hw_machine_type="pc-i440fx-99.0")),
     "machine type 'pc-i440fx-99.0' is not offered"),
    (lambda: design(img=image(hw_video_model="voodoo")), "hw_video_model 'voodoo' is not offered"),
    (lambda: design(img=image(hw_rng_model="egd-magic")), "hw_rng_model 'egd-magic'"),
    (lambda: design(flv=flavor(vcpus=3, extra_specs={"hw:cpu_sockets": "2"})),
     "does not give its 3 vCPUs"),
    (lambda: design(flv=flavor(vcpus=300)), "allows at most 255"),
    (lambda: design(vifs=[vif(1, "direct", port_filter=True, physical_interface="eth1")]),
     "VIF type direct \\(macvtap\\) has none"),
    (lambda: design(vifs=[vif(1, "direct")]), "needs network.meta.physical_interface"),
    (lambda: design(vifs=[vif(1), vif(1)]), "lists port .* twice"),
    (lambda: design(vifs=[vif(1), dict(vif(2), address="fa:16:3e:00:00:01")]),
     "have the same MAC"),
    (lambda: design(vifs=[dict(vif(1), address="01:00:5e:00:00:01")]), "not a unicast MAC"),
    (lambda: design(formats={}), "format of disk is unknown"),
    (lambda: design(formats={"disk": "vmdk"}), "disk has format 'vmdk'"),
    (lambda: design(disk_cache="sometimes"), "unsupported disk cache mode"),
    (lambda: design(vnc_listen="0.0.0.0; rm"), "vnc_listen must be an IP address"),
])
def test_refusals(build, message):
    with pytest.raises(VirtopsError, match=message):
        build()


def test_a_bridge_vif_without_a_bridge_is_refused():
    broken = vif(1)
    broken["network"]["bridge"] = None
    with pytest.raises(VirtopsError, match="VIF type bridge needs network.bridge"):
        design(vifs=[broken])


def test_disk_formats_from_disk_info_paths():
    formats = resolve_disk_formats({INSTANCE_DIR + "/disk": "qcow2", "disk.swap": "raw"},
                                   INSTANCE_DIR)
    assert formats == {"disk": "qcow2", "disk.swap": "raw"}
    with pytest.raises(VirtopsError, match="not in the instance directory"):
        resolve_disk_formats({"/etc/disk": "raw"}, INSTANCE_DIR)
    with pytest.raises(VirtopsError, match="must be a file name"):
        resolve_disk_formats({"../x/disk": "raw"}, INSTANCE_DIR)


@pytest.mark.parametrize("listen", ["127.0.0.1", "192.0.2.11", "0.0.0.0", "fd00::11"])
def test_the_vnc_console_listens_on_the_hosts_vnc_listen_with_autoport(listen):
    graphics = [d for d in design(vnc_listen=listen).devices if d.root_name == "graphics"]
    assert [(g.type, g.listen, g.autoport) for g in graphics] == [("vnc", listen, True)]


def test_the_vnc_console_listens_on_the_loopback_unless_told_otherwise():
    (graphics,) = [d for d in design().devices if d.root_name == "graphics"]
    assert graphics.listen == "127.0.0.1"


def test_a_guest_with_its_root_disk_and_config_drive_on_rbd_is_valid_for_libvirt(tmp_path):
    """The network disks Nova writes for images_type = rbd pass libvirt's schema and its
    test driver keeps them as written (pool/image, monitors, cephx auth)."""
    guest = Guest(virt_type="qemu", name="rbd1", uuid="0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a12", memory_kib=131072,
                  current_memory_kib=131072, vcpus=1)
    guest.os = GuestOS(arch="x86_64", machine="pc")
    secret = "5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10"
    for name, dev, device, bus in (("vms/%s_disk" % guest.uuid, "vda", "disk", "virtio"),
                                   ("vms/%s_disk.config" % guest.uuid, "hda", "cdrom", "ide")):
        guest.devices.append(GuestDisk(
            source_type="network", device=device, driver_name="qemu", driver_format="raw", driver_cache="none",
            source_protocol="rbd", source_name=name, source_hosts=[("192.0.2.2", "6789")], auth_username="nova",
            auth_secret_type="ceph", auth_secret_uuid=secret, target_dev=dev, target_bus=bus, readonly=device == "cdrom"))
    live = Guest.from_xml(validate_with_libvirt(guest.to_xml(), tmp_path))
    disks = live.devices_of(GuestDisk)
    assert [(d.source_protocol, d.source_name, d.source_hosts, d.auth_username, d.auth_secret_uuid) for d in disks] == [
        ("rbd", "vms/%s_disk" % guest.uuid, [("192.0.2.2", "6789")], "nova", secret),
        ("rbd", "vms/%s_disk.config" % guest.uuid, [("192.0.2.2", "6789")], "nova", secret)]


# --- images_type rbd: network disks with cephx auth ----------------------------------------

def test_rbd_root_and_config_drive_are_network_disks_with_every_monitor_and_cephx_auth_libvirt_accepts(tmp_path):
    settings = RbdSettings(user="virtops", secret_uuid="5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10", pool="vms")
    rbd = RbdDisks.from_values(settings, ["192.0.2.2:6789", "[2001:db8::1]:6789"])
    guest = design(config_drive="iso9660", formats={"disk": "raw"}, rbd=rbd)
    disks = guest.devices_of(GuestDisk)
    assert [(d.source_type, d.source_protocol, d.source_name, d.driver_format, d.target_dev, d.readonly)
            for d in disks] == [
        ("network", "rbd", "vms/%s_disk" % UUID, "raw", "vda", False),
        ("network", "rbd", "vms/%s_disk.config" % UUID, "raw", "hda", True)]
    assert all(d.source_hosts == [("192.0.2.2", "6789"), ("2001:db8::1", "6789")] for d in disks)
    assert {(d.auth_username, d.auth_secret_type, d.auth_secret_uuid) for d in disks} == {
        ("virtops", "ceph", settings.secret_uuid)}
    assert all(d.source_path is None for d in disks)
    # libvirt's schema and the test driver take it, and it parses back the same.
    defined = validate_with_libvirt(guest.to_xml(), tmp_path)
    assert "protocol='rbd'" in defined and "<secret type='ceph' uuid='%s'/>" % settings.secret_uuid in defined
    assert Guest.from_xml(guest.to_xml()).devices_of(GuestDisk) == disks
