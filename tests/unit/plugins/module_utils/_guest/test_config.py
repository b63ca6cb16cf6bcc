# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each element class: the XML it builds, and that parsing it back gives the same object."""
from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._guest.config import (
    Guest, GuestChannel, GuestClock, GuestConsole, GuestController, GuestCPU, GuestCPUTopology,
    GuestDisk, GuestFeatures, GuestGraphics, GuestHyperVFeature, GuestInput, GuestInterface,
    GuestMemballoon, GuestMetaFlavor, GuestMetaImage, GuestMetaInstance, GuestMetaIP,
    GuestMetaOwner, GuestMetaPort, GuestOS, GuestOSLoader, GuestOSNvram, GuestRng, GuestSerial,
    GuestSysinfo, GuestTimer, GuestVideo)

NS = 'xmlns:virtops="https://virtops.dev/xmlns/compute/1.0"'


def flat(obj) -> str:
    return etree.tostring(obj.format_dom(), encoding="unicode")


def assert_builds_and_parses(obj, expected: str):
    assert flat(obj) == expected
    parsed = type(obj).parse_dom(etree.fromstring(expected))
    assert parsed == obj


CASES = [
    (GuestDisk(source_type="file", device="disk", driver_name="qemu", driver_format="qcow2",
               driver_cache="none", source_path="/i/u/disk", target_dev="vda", target_bus="virtio"),
     '<disk type="file" device="disk"><driver name="qemu" type="qcow2" cache="none"/>'
     '<source file="/i/u/disk"/><target dev="vda" bus="virtio"/></disk>'),
    (GuestDisk(device="cdrom", driver_name="qemu", driver_format="raw",
               source_path="/i/u/disk.config", target_dev="hda", target_bus="ide", readonly=True),
     '<disk type="file" device="cdrom"><driver name="qemu" type="raw"/>'
     '<source file="/i/u/disk.config"/><target dev="hda" bus="ide"/><readonly/></disk>'),
    (GuestDisk(source_type="network", driver_name="qemu", driver_format="raw", driver_cache="none",
               driver_discard="unmap", source_protocol="rbd", source_name="vms/u_disk",
               source_hosts=[("192.0.2.2", "6789"), ("192.0.2.3", None)], auth_username="nova",
               auth_secret_type="ceph", auth_secret_uuid="5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10",
               target_dev="vda", target_bus="virtio"),
     '<disk type="network" device="disk"><driver name="qemu" type="raw" cache="none" discard="unmap"/>'
     '<source protocol="rbd" name="vms/u_disk"><host name="192.0.2.2" port="6789"/><host name="192.0.2.3"/>'
     '</source><auth username="nova"><secret type="ceph" uuid="5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10"/></auth>'
     '<target dev="vda" bus="virtio"/></disk>'),
    (GuestController(type="scsi", index=0, model="virtio-scsi"),
     '<controller type="scsi" index="0" model="virtio-scsi"/>'),
    (GuestInterface(net_type="bridge", mac="fa:16:3e:00:00:01", source_dev="br-private",
                    target_dev="tap1234", model="virtio", mtu=1450, filtername="clean-traffic",
                    filterparams=[("IP", "10.0.0.5"), ("IP", "10.0.0.6")]),
     '<interface type="bridge"><mac address="fa:16:3e:00:00:01"/><source bridge="br-private"/>'
     '<target dev="tap1234"/><model type="virtio"/><filterref filter="clean-traffic">'
     '<parameter name="IP" value="10.0.0.5"/><parameter name="IP" value="10.0.0.6"/>'
     '</filterref><mtu size="1450"/></interface>'),
    (GuestInterface(net_type="network", mac="fa:16:3e:00:00:02", source_dev="default",
                    target_dev="tap5678", model="e1000"),
     '<interface type="network"><mac address="fa:16:3e:00:00:02"/><source network="default"/>'
     '<target dev="tap5678"/><model type="e1000"/></interface>'),
    (GuestInterface(net_type="direct", mac="fa:16:3e:00:00:03", source_dev="eth1",
                    source_mode="bridge", target_dev="tap9abc", model="virtio"),
     '<interface type="direct"><mac address="fa:16:3e:00:00:03"/>'
     '<source dev="eth1" mode="bridge"/><target dev="tap9abc"/><model type="virtio"/>'
     '</interface>'),
    (GuestInterface(net_type="ethernet", mac="fa:16:3e:00:00:04", target_dev="tapdef0"),
     '<interface type="ethernet"><mac address="fa:16:3e:00:00:04"/><target dev="tapdef0"/>'
     '</interface>'),
    (GuestSerial(type="pty", log_file="/i/u/console.log", log_append=True, target_port=0),
     '<serial type="pty"><log file="/i/u/console.log" append="on"/><target port="0"/></serial>'),
    (GuestSerial(type="file", source_path="/i/u/console.log", target_port=1),
     '<serial type="file"><source path="/i/u/console.log"/><target port="1"/></serial>'),
    (GuestConsole(type="pty", target_type="serial", target_port=0),
     '<console type="pty"><target type="serial" port="0"/></console>'),
    (GuestChannel(type="unix", source_mode="bind", target_type="virtio",
                  target_name="org.qemu.guest_agent.0"),
     '<channel type="unix"><source mode="bind"/>'
     '<target type="virtio" name="org.qemu.guest_agent.0"/></channel>'),
    (GuestInput(type="tablet", bus="usb"), '<input type="tablet" bus="usb"/>'),
    (GuestGraphics(type="vnc", autoport=True, listen="127.0.0.1"),
     '<graphics type="vnc" autoport="yes" listen="127.0.0.1"/>'),
    (GuestVideo(model="virtio"), '<video><model type="virtio"/></video>'),
    (GuestVideo(model="cirrus", heads=1), '<video><model type="cirrus" heads="1"/></video>'),
    (GuestRng(model="virtio", rate_bytes=1024, rate_period=2000),
     '<rng model="virtio"><rate bytes="1024" period="2000"/>'
     '<backend model="random">/dev/urandom</backend></rng>'),
    (GuestRng(), '<rng model="virtio"><backend model="random">/dev/urandom</backend></rng>'),
    (GuestMemballoon(model="virtio", stats_period=10),
     '<memballoon model="virtio"><stats period="10"/></memballoon>'),
    (GuestMemballoon(model="none"), '<memballoon model="none"/>'),
    (GuestSysinfo(manufacturer="virtops", product="virtops compute", serial="u-1", uuid="u-1",
                  family="Virtual Machine"),
     '<sysinfo type="smbios"><system><entry name="manufacturer">virtops</entry>'
     '<entry name="product">virtops compute</entry><entry name="serial">u-1</entry>'
     '<entry name="uuid">u-1</entry><entry name="family">Virtual Machine</entry>'
     '</system></sysinfo>'),
    (GuestOS(arch="x86_64", machine="pc-i440fx-7.2", boot_devs=["hd", "cdrom"],
             smbios_mode="sysinfo"),
     '<os><type arch="x86_64" machine="pc-i440fx-7.2">hvm</type><boot dev="hd"/>'
     '<boot dev="cdrom"/><smbios mode="sysinfo"/></os>'),
    (GuestOS(arch="x86_64", machine="pc", kernel="/i/u/kernel", initrd="/i/u/ramdisk",
             cmdline="root=/dev/vda console=ttyS0"),
     '<os><type arch="x86_64" machine="pc">hvm</type><kernel>/i/u/kernel</kernel>'
     '<initrd>/i/u/ramdisk</initrd><cmdline>root=/dev/vda console=ttyS0</cmdline></os>'),
    (GuestOS(machine="q35", loader=GuestOSLoader(path="/usr/share/OVMF/OVMF_CODE_4M.fd",
                                                 type="pflash", readonly=True),
             nvram=GuestOSNvram(path="/i/u/nvram.fd"), boot_devs=["hd"]),
     '<os><type machine="q35">hvm</type><loader readonly="yes" type="pflash">'
     '/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>/i/u/nvram.fd</nvram><boot dev="hd"/></os>'),
    (GuestFeatures(flags=["acpi", "apic"]), '<features><acpi/><apic/></features>'),
    (GuestFeatures(flags=["acpi", "apic"], hyperv=[
        GuestHyperVFeature("relaxed"), GuestHyperVFeature("spinlocks", retries=8191)]),
     '<features><acpi/><apic/><hyperv><relaxed state="on"/>'
     '<spinlocks state="on" retries="8191"/></hyperv></features>'),
    (GuestClock(offset="utc", timers=[GuestTimer("pit", tickpolicy="delay"),
                                      GuestTimer("hpet", present=False)]),
     '<clock offset="utc"><timer name="pit" tickpolicy="delay"/>'
     '<timer name="hpet" present="no"/></clock>'),
    (GuestCPU(mode="host-model"), '<cpu mode="host-model"/>'),
    (GuestCPU(topology=GuestCPUTopology(sockets=2, cores=2, threads=1)),
     '<cpu><topology sockets="2" cores="2" threads="1"/></cpu>'),
    (GuestMetaFlavor(name="m1.tiny", memory=128, disk=1, swap=0, ephemeral=0, vcpus=1),
     '<virtops:flavor %s name="m1.tiny"><virtops:memory>128</virtops:memory>'
     '<virtops:disk>1</virtops:disk><virtops:swap>0</virtops:swap>'
     '<virtops:ephemeral>0</virtops:ephemeral><virtops:vcpus>1</virtops:vcpus>'
     '</virtops:flavor>' % NS),
    (GuestMetaOwner(project="ops"),
     '<virtops:owner %s><virtops:project>ops</virtops:project></virtops:owner>' % NS),
    (GuestMetaImage(id="tiny", name="Tiny"),
     '<virtops:image %s id="tiny" name="Tiny"/>' % NS),
    (GuestMetaPort(id="p1", mac="fa:16:3e:00:00:01",
                   ips=[GuestMetaIP("10.0.0.5", 4), GuestMetaIP("fd00::5", 6)]),
     '<virtops:port %s id="p1" mac="fa:16:3e:00:00:01">'
     '<virtops:ip type="fixed" address="10.0.0.5" ipVersion="4"/>'
     '<virtops:ip type="fixed" address="fd00::5" ipVersion="6"/></virtops:port>' % NS),
]


@pytest.mark.parametrize("obj, expected", CASES, ids=lambda v: type(v).__name__
                         if not isinstance(v, str) else "")
def test_element_builds_and_parses_back(obj, expected):
    assert_builds_and_parses(obj, expected)


def test_unset_attributes_are_not_emitted():
    assert flat(GuestDisk(target_dev="vdb")) == \
        '<disk type="file" device="disk"><target dev="vdb"/></disk>'
    assert flat(GuestInterface(net_type="bridge")) == '<interface type="bridge"/>'
    assert flat(GuestGraphics()) == '<graphics type="vnc"/>'


def test_metadata_instance_uses_our_namespace_and_escapes_text():
    meta = GuestMetaInstance(
        name="web1", hostname="web1.example", creation_time="2026-01-02 03:04:05",
        flavor=GuestMetaFlavor(name="m1 <small> & \"fast\"", memory=2048, disk=20, swap=0,
                               ephemeral=0, vcpus=2),
        owner=GuestMetaOwner(user="alice", project="ops & dev"),
        image=GuestMetaImage(id="tiny", name="Tiny"),
        ports=[GuestMetaPort(id="p1", mac="fa:16:3e:00:00:01",
                             ips=[GuestMetaIP("10.0.0.5", 4)])])
    text = meta.to_xml(pretty_print=False)
    assert text.startswith('<virtops:instance xmlns:virtops="https://virtops.dev/xmlns/compute/1.0">')
    assert 'name="m1 &lt;small&gt; &amp; &quot;fast&quot;"' in text
    assert "<virtops:project>ops &amp; dev</virtops:project>" in text
    assert GuestMetaInstance.parse_dom(etree.fromstring(text)) == meta


def full_guest() -> Guest:
    uuid = "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11"
    return Guest(
        virt_type="qemu", name="web1", uuid=uuid,
        metadata=GuestMetaInstance(name="web1", creation_time="2026-01-02 03:04:05",
                                   ports=[GuestMetaPort(id="p1", mac="fa:16:3e:00:00:01")]),
        memory_kib=131072, current_memory_kib=131072, vcpus=1,
        sysinfo=GuestSysinfo(manufacturer="virtops", serial=uuid, uuid=uuid),
        os=GuestOS(arch="x86_64", machine="pc-i440fx-7.2", boot_devs=["hd"],
                   smbios_mode="sysinfo"),
        features=GuestFeatures(flags=["acpi", "apic"]), cpu=None,
        clock=GuestClock(offset="utc", timers=[GuestTimer("rtc", tickpolicy="catchup")]),
        devices=[GuestDisk(driver_name="qemu", driver_format="qcow2", source_path="/d",
                           target_dev="vda", target_bus="virtio"),
                 GuestInterface(net_type="ethernet", mac="fa:16:3e:00:00:01", target_dev="tap1"),
                 GuestSerial(type="pty", log_file="/c.log", log_append=True, target_port=0),
                 GuestConsole(type="pty", target_type="serial", target_port=0),
                 GuestMemballoon(model="virtio", stats_period=10)])


def test_guest_round_trips_through_text():
    guest = full_guest()
    text = guest.to_xml()
    assert Guest.from_xml(text) == guest
    assert guest.to_xml() == text          # formatting is repeatable


def test_guest_parse_ignores_what_libvirt_adds():
    guest = full_guest()
    root = guest.format_dom()
    disk = root.find("devices/disk")
    etree.SubElement(disk, "address", type="pci", domain="0x0000", bus="0x00", slot="0x04")
    etree.SubElement(disk, "alias", name="virtio-disk0")
    etree.SubElement(root.find("devices"), "controller", type="usb", index="0")
    etree.SubElement(root.find("devices"), "emulator").text = "/usr/bin/qemu-system-x86_64"
    etree.SubElement(root, "on_crash").text = "destroy"
    parsed = Guest.parse_dom(root)
    guest.devices.append(GuestController(type="usb", index=0))
    assert parsed == guest


def test_memory_in_other_units_is_read_as_kib():
    text = ('<domain type="qemu"><name>x</name><memory unit="MiB">128</memory>'
            '<currentMemory unit="GiB">1</currentMemory></domain>')
    guest = Guest.from_xml(text)
    assert guest.memory_kib == 131072
    assert guest.current_memory_kib == 1048576


def test_from_xml_refuses_other_documents_and_garbage():
    with pytest.raises(VirtopsError, match="expected a <domain> element"):
        Guest.from_xml("<network><name>x</name></network>")
    with pytest.raises(VirtopsError, match="cannot parse"):
        Guest.from_xml("<domain><name>x</domain>")


def test_from_xml_does_not_expand_external_entities(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    text = ('<?xml version="1.0"?><!DOCTYPE domain [<!ENTITY x SYSTEM "file://%s">]>'
            '<domain type="qemu"><name>&x;</name></domain>' % secret)
    guest = Guest.from_xml(text)
    assert guest.name is None or "TOP-SECRET" not in guest.name
