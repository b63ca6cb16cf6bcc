# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decisions behind a domain definition: Nova's ``_get_guest_config``.

Inputs are typed (instance, flavor, image, disk mapping, VIFs, what the host offers);
the output is a ``Guest`` from ``_guest_config``. Nothing here touches libvirt, files or the
clock except through arguments, so the same inputs always give the same document.

Stable identity: the domain UUID is the instance UUID, and a port keeps the MAC recorded in
an earlier definition (the file ``libvirt.xml`` or the live domain). When network_info asks
for a different MAC on a port that already has one, the design is refused instead of
silently changing either: the guest's network configuration, DHCP leases and the config
drive's ``network_data.json`` are keyed by the MAC, so one of the two would be wrong.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, Mapping, Optional, Sequence, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._guest.blockinfo import DiskInfo
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    CONFIG_DRIVE, CONSOLE_LOG, KERNEL, NVRAM, RAMDISK, ROOT_DISK)
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import (
    boolish, strict_int)
from ansible_collections.virtops.compute.plugins.module_utils._model.console import (
    DEFAULT_VNC_LISTEN, valid_vnc_listen)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSpec
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdDisks
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER)
from ansible_collections.virtops.compute.plugins.module_utils._guest.config import (
    Guest, GuestChannel, GuestClock, GuestConsole, GuestController, GuestCPU, GuestCPUTopology,
    GuestDisk, GuestFeatures, GuestGraphics, GuestHyperVFeature, GuestInput, GuestInterface,
    GuestMemballoon, GuestMetaFlavor, GuestMetaImage, GuestMetaInstance, GuestMetaIP,
    GuestMetaOwner, GuestMetaPort, GuestOS, GuestOSLoader, GuestOSNvram, GuestRng, GuestSerial,
    GuestSysinfo, GuestTimer, GuestVideo)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.host_caps import (
    DomainCapabilities, HostCapabilities)
from ansible_collections.virtops.compute.plugins.module_utils._model.names import (
    validate_instance_name, validate_text, validate_uuid)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    Vif, is_unicast_mac)

SYSINFO_MANUFACTURER = "virtops"
SYSINFO_PRODUCT = "virtops compute"
SYSINFO_FAMILY = "Virtual Machine"
DEFAULT_MACHINE_TYPE = {"x86_64": "pc", "i686": "pc"}
DISK_FORMATS = ("raw", "qcow2")
DISK_CACHE_MODES = ("none", "writeback", "writethrough", "directsync", "unsafe")
MEM_STATS_PERIOD = 10                    # Nova's mem_stats_period_seconds
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
# Nova's default for direct kernel boot when the image sets no os_command_line.
KERNEL_CONSOLE_ARGS = "console=tty0 console=ttyS0"
# Hyper-V enlightenments Nova gives Windows guests, in this order; each is used only when
# the host's domain capabilities list it (TCG offers fewer than KVM).
WINDOWS_HYPERV = (("relaxed", None), ("vapic", None), ("spinlocks", 8191))


def _int_field(data: Mapping, key: str, what: str, default=None, minimum: int = 0) -> int:
    value = data.get(key, default)
    if value is None:
        raise VirtopsError("%s is missing %r" % (what, key))
    return strict_int(value, "%s %r" % (what, key), minimum=minimum)


# --- typed inputs -------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceSpec:
    uuid: str
    name: str
    hostname: Optional[str] = None
    created_at: Optional[str] = None      # normalised 'YYYY-MM-DD HH:MM:SS' UTC
    owner_user: Optional[str] = None
    owner_project: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Mapping) -> "InstanceSpec":
        if not isinstance(data, Mapping):
            raise VirtopsError("instance must be a dict, got %r" % (data,))
        owner = data.get("owner") or {}
        if not isinstance(owner, Mapping):
            raise VirtopsError("instance owner must be a dict with 'user' and/or 'project'")
        hostname = data.get("hostname")
        return cls(
            uuid=validate_uuid(data.get("uuid")),
            name=validate_instance_name(data.get("name")),
            hostname=validate_text(hostname, "instance hostname") if hostname else None,
            created_at=normalise_time(data["created_at"]) if data.get("created_at") else None,
            owner_user=validate_text(owner["user"], "owner user") if owner.get("user") else None,
            owner_project=validate_text(owner["project"], "owner project")
            if owner.get("project") else None)


def normalise_time(value) -> str:
    """ISO 8601 (or a datetime) to Nova's metadata form 'YYYY-MM-DD HH:MM:SS', in UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise VirtopsError("instance created_at %r is not an ISO 8601 time" % (value,))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class HostView:
    """What the designer needs to know about the host, resolved by the caller."""
    virt_type: str
    arch: str
    machine_type: str                    # canonical, see choose_machine_type()
    domcaps: DomainCapabilities
    instance_dir: str
    disk_cache: str = "none"
    vnc_listen: str = DEFAULT_VNC_LISTEN
    nwfilter: str = DEFAULT_NWFILTER
    firewall_driver: str = DEFAULT_FIREWALL_DRIVER      # nwfilter: the XML references nwfilter
    rbd: Optional[RbdDisks] = None       # images_type rbd: root disk and config drive in Ceph


@dataclass(frozen=True)
class Recorded:
    """An earlier definition of the instance: the file libvirt.xml or the live domain."""
    source: str                          # for messages: a path or 'libvirt'
    guest: Guest


# --- choices made before the design (they feed domain capabilities and disk_info) ---------

def machine_family(name: str) -> str:
    if name == "q35" or name.startswith("pc-q35-"):
        return "q35"
    if name == "pc" or name.startswith("pc-i440fx-"):
        return "i440fx"
    return name


def choose_machine_type(image: ImageSpec, caps: HostCapabilities, arch: str, virt_type: str,
                        recorded: Sequence[Recorded] = ()) -> str:
    """The machine type, pinned once chosen.

    An alias ('pc', 'q35', the default) resolves to the host's newest version of it, except
    when an earlier definition already uses a version of the same family that this host still
    offers: that one is kept, so the guest's virtual hardware does not change under it when
    QEMU is upgraded or the instance moves (Nova records the machine type for the same reason).
    """
    requested = image.properties.hw_machine_type or DEFAULT_MACHINE_TYPE.get(arch)
    if requested is None:
        raise VirtopsError("no default machine type for architecture %s; set the image "
                           "property hw_machine_type" % arch)
    canonical = caps.resolve_machine_type(arch, virt_type, requested)
    if canonical == requested:
        return requested        # an explicit version is what the image asks for
    for rec in recorded:
        machine = rec.guest.os.machine if rec.guest.os is not None else None
        if machine and machine_family(machine) == machine_family(requested) \
                and caps.has_machine_type(arch, virt_type, machine):
            return caps.resolve_machine_type(arch, virt_type, machine)
    return canonical


def resolve_disk_formats(disk_formats: Optional[Mapping], instance_dir: str) -> Dict[str, str]:
    """disk.info's {path: format} (or {file name: format}) keyed by file name."""
    result = {}
    for key, fmt in (disk_formats or {}).items():
        key = str(key)
        if os.path.isabs(key):
            if os.path.dirname(os.path.normpath(key)) != os.path.normpath(instance_dir):
                raise VirtopsError("disk format entry %s is not in the instance directory %s"
                                   % (key, instance_dir))
            key = os.path.basename(key)
        if "/" in key:
            raise VirtopsError("disk format entry %r must be a file name" % key)
        result[key] = str(fmt)
    return result


# --- the design ---------------------------------------------------------------------------

def _recorded_macs(recorded: Sequence[Recorded]) -> Dict[str, Tuple[str, str]]:
    """port id -> (MAC, where it was recorded), from our metadata of earlier definitions."""
    macs: Dict[str, Tuple[str, str]] = {}
    for rec in recorded:
        meta = rec.guest.metadata
        if meta is None:
            continue
        for port in meta.ports:
            if port.id and port.mac:
                macs.setdefault(port.id, (port.mac.lower(), rec.source))
    return macs


def check_identity(instance: InstanceSpec, vifs: Sequence[Vif],
                   recorded: Sequence[Recorded]) -> None:
    """Refuse what would change the identity of an already defined instance."""
    for rec in recorded:
        if rec.guest.uuid and rec.guest.uuid.lower() != instance.uuid:
            raise VirtopsError("%s defines uuid %s, not this instance's %s; refusing to replace "
                               "another instance's definition"
                               % (rec.source, rec.guest.uuid, instance.uuid))
    seen_ports, seen_macs, seen_devs = set(), {}, set()
    for vif in vifs:
        if vif.id in seen_ports:
            raise VirtopsError("network_info lists port %s twice" % vif.id)
        seen_ports.add(vif.id)
        if not is_unicast_mac(vif.address):
            raise VirtopsError("port %s: %r is not a unicast MAC address" % (vif.id, vif.address))
        if vif.address in seen_macs:
            raise VirtopsError("ports %s and %s have the same MAC %s"
                               % (seen_macs[vif.address], vif.id, vif.address))
        seen_macs[vif.address] = vif.id
        if vif.devname in seen_devs:
            raise VirtopsError("two ports would use the device name %s" % vif.devname)
        seen_devs.add(vif.devname)
    recorded_macs = _recorded_macs(recorded)
    for vif in vifs:
        if vif.id in recorded_macs and recorded_macs[vif.id][0] != vif.address:
            mac, source = recorded_macs[vif.id]
            raise VirtopsError(
                "port %s: network_info gives MAC %s but %s records %s for this port; a NIC must "
                "keep its MAC (the guest's network configuration and DHCP leases follow it). "
                "Pass the recorded MAC in network_info, or detach the port and attach a new one"
                % (vif.id, vif.address, source, mac), port=vif.id, recorded_mac=mac)


def _creation_time(instance: InstanceSpec, recorded: Sequence[Recorded], now: datetime) -> str:
    if instance.created_at:
        return instance.created_at
    for rec in recorded:
        if rec.guest.metadata is not None and rec.guest.metadata.creation_time:
            return rec.guest.metadata.creation_time
    return normalise_time(now)


def _metadata(instance, flavor, image, vifs, creation_time) -> GuestMetaInstance:
    owner = None
    if instance.owner_user or instance.owner_project:
        owner = GuestMetaOwner(user=instance.owner_user, project=instance.owner_project)
    ports = [GuestMetaPort(id=vif.id, mac=vif.address, ips=[
        GuestMetaIP(address=ip, version=ipaddress.ip_address(ip).version, type="fixed")
        for ip in vif.fixed_ips]) for vif in vifs]
    return GuestMetaInstance(
        name=instance.name, hostname=instance.hostname, creation_time=creation_time,
        flavor=GuestMetaFlavor(name=flavor.name, memory=flavor.ram_mb, disk=flavor.root_gb,
                               swap=flavor.swap_mb, ephemeral=flavor.ephemeral_gb,
                               vcpus=flavor.vcpus),
        owner=owner, image=GuestMetaImage(id=image.id, name=image.name), ports=ports)


def _os(image: ImageSpec, disk_info: DiskInfo, host: HostView) -> GuestOS:
    props = image.properties
    conf = GuestOS(type="hvm", arch=host.arch, machine=host.machine_type, smbios_mode="sysinfo")
    if props.hw_firmware_type == "uefi":
        loader = host.domcaps.uefi_loader()
        if loader is None:
            raise VirtopsError(
                "the image asks for UEFI (hw_firmware_type=uefi) but this host has no UEFI "
                "firmware: libvirt's domain capabilities for %s/%s list no <os><loader> image. "
                "Install OVMF (Debian: ovmf) or boot the image with BIOS"
                % (host.virt_type, host.machine_type))
        conf.loader = GuestOSLoader(path=loader, type="pflash", readonly=True)
        conf.nvram = GuestOSNvram(path=os.path.join(host.instance_dir, NVRAM))
    if props.kernel_id:
        # Direct kernel boot: vm_image fetched the kernel and ramdisk images into these files.
        conf.kernel = os.path.join(host.instance_dir, KERNEL)
        if props.ramdisk_id:
            conf.initrd = os.path.join(host.instance_dir, RAMDISK)
        conf.cmdline = props.os_command_line or "root=/dev/%s %s" % (disk_info.root.dev,
                                                                     KERNEL_CONSOLE_ARGS)
    else:
        conf.boot_devs = disk_info.boot_devs()
    return conf


def _features_and_clock(image: ImageSpec, host: HostView) -> Tuple[GuestFeatures, GuestClock]:
    windows = (image.properties.os_type or "").lower() == "windows"
    hyperv = []
    if windows:
        hyperv = [GuestHyperVFeature(name=name, state=True, retries=retries)
                  for name, retries in WINDOWS_HYPERV if name in host.domcaps.hyperv_features]
    features = GuestFeatures(flags=["acpi", "apic"], hyperv=hyperv)
    # Windows keeps its RTC in local time; the timers are Nova's for x86 guests.
    clock = GuestClock(offset="localtime" if windows else "utc", timers=[
        GuestTimer(name="pit", tickpolicy="delay"),
        GuestTimer(name="rtc", tickpolicy="catchup"),
        GuestTimer(name="hpet", present=False)])
    return features, clock


def _cpu(flavor: Flavor, host: HostView) -> Optional[GuestCPU]:
    topology = flavor.cpu_topology()
    topo = GuestCPUTopology(topology.sockets, topology.cores, topology.threads) \
        if topology else None
    if host.virt_type == "kvm" and "host-model" in host.domcaps.cpu_modes:
        return GuestCPU(mode="host-model", topology=topo)
    # TCG emulates its default CPU model; nothing is forced beyond the topology.
    return GuestCPU(topology=topo) if topo else None


# The disks kept in Ceph with images_type rbd (Nova's Rbd backend: root and config drive here).
RBD_DISKS = (ROOT_DISK, CONFIG_DRIVE)


def _rbd_disk(instance_uuid: str, name: str, mapping, host: HostView) -> GuestDisk:
    """A network disk as Nova's ``Rbd.libvirt_info`` writes it: protocol rbd, the pool's
    ``<uuid>_<disk>``, every monitor, cephx auth through the host's libvirt secret."""
    rbd = host.rbd
    return GuestDisk(
        source_type="network", device=mapping.type, driver_name="qemu", driver_format="raw",
        driver_cache=host.disk_cache, source_protocol="rbd",
        source_name=rbd.source_name(instance_uuid, name), source_hosts=list(rbd.hosts),
        auth_username=rbd.settings.user, auth_secret_type="ceph",
        auth_secret_uuid=rbd.settings.secret_uuid, target_dev=mapping.dev,
        target_bus=mapping.bus, readonly=mapping.type == "cdrom")


def _disks(disk_info: DiskInfo, disk_formats: Mapping[str, str], host: HostView,
           instance_uuid: str = "") -> list:
    disks = []
    for name, mapping in disk_info.disks():
        if host.rbd is not None and name in RBD_DISKS:
            disks.append(_rbd_disk(instance_uuid, name, mapping, host))
            continue
        fmt = disk_formats.get(name)
        if fmt is None and (name == CONFIG_DRIVE or mapping.type == "cdrom"):
            fmt = "raw"      # config drives and ISO images are raw by construction
        if fmt is None:
            raise VirtopsError("the format of %s is unknown: pass disk_formats or let vm_image "
                               "write %s/disk.info (formats are never guessed)"
                               % (name, host.instance_dir))
        if fmt not in DISK_FORMATS:
            raise VirtopsError("%s has format %r; virtops writes only %s"
                               % (name, fmt, ", ".join(DISK_FORMATS)))
        disks.append(GuestDisk(
            source_type="file", device=mapping.type, driver_name="qemu", driver_format=fmt,
            driver_cache=host.disk_cache, source_path=os.path.join(host.instance_dir, name),
            target_dev=mapping.dev, target_bus=mapping.bus, readonly=mapping.type == "cdrom"))
    return disks


def _interface(vif: Vif, model: str, host: HostView) -> GuestInterface:
    conf = GuestInterface(mac=vif.address, target_dev=vif.devname, model=model, mtu=vif.mtu)
    if vif.vif_type in ("bridge", "vlan", "vxlan"):
        # vm_vif puts the VLAN/VXLAN interface on the network's bridge; the guest sees a bridge.
        if not vif.bridge:
            raise VirtopsError("port %s: VIF type %s needs network.bridge"
                               % (vif.id, vif.vif_type))
        conf.net_type, conf.source_dev = "bridge", vif.bridge
    elif vif.vif_type == "network":
        # A libvirt network named like the network's label.
        conf.net_type, conf.source_dev = "network", vif.network_label
    elif vif.vif_type == "direct":
        if not vif.physical_interface:
            raise VirtopsError("port %s: VIF type direct needs network.meta.physical_interface"
                               % vif.id)
        conf.net_type, conf.source_dev, conf.source_mode = "direct", vif.physical_interface, \
            "bridge"
    elif vif.vif_type == "ethernet":
        # vm_vif pre-creates the tap; libvirt 9 refuses an existing tap unless unmanaged.
        conf.net_type, conf.target_managed = "ethernet", "no"
    else:
        raise VirtopsError("port %s: VIF type %r cannot be expressed in domain XML"
                           % (vif.id, vif.vif_type))
    if vif.port_filter:
        if conf.net_type == "direct":
            raise VirtopsError("port %s asks for an anti-spoofing filter, which needs a tap "
                               "device; VIF type direct (macvtap) has none" % vif.id)
        if host.firewall_driver == "nwfilter":
            # Nova's designer.set_vif_host_backend_filter: libvirt instantiates the filter
            # at every start. With nftables vm_vif writes the port's rules instead.
            conf.filtername = host.nwfilter
            conf.filterparams = [("IP", ip) for ip in vif.fixed_ips
                                 if ipaddress.ip_address(ip).version == 4]
    return conf


def _rng(image: ImageSpec, flavor: Flavor, host: HostView) -> Optional[GuestRng]:
    model = image.properties.hw_rng_model or "virtio"
    allowed = flavor.extra("hw_rng:allowed")
    if model == "none" or (allowed is not None and not boolish(allowed, "hw_rng:allowed")):
        return None
    if host.domcaps.rng_models and model not in host.domcaps.rng_models:
        raise VirtopsError("image property hw_rng_model %r is not offered by this host "
                           "(offered: %s, or none)" % (model, ", ".join(host.domcaps.rng_models)))
    rate_bytes = flavor.extra("hw_rng:rate_bytes")
    rate_period = flavor.extra("hw_rng:rate_period")
    conf = GuestRng(model=model, backend_model="random", backend_path="/dev/urandom")
    if rate_bytes is not None:
        conf.rate_bytes = _int_field({"b": rate_bytes}, "b", "extra spec hw_rng:rate_bytes",
                                     minimum=1)
        conf.rate_period = _int_field({"p": rate_period or 1000}, "p",
                                      "extra spec hw_rng:rate_period", minimum=1)
    return conf


def _video(image: ImageSpec, host: HostView) -> Optional[GuestVideo]:
    # virtio (virtio-vga on pc/q35) works under TCG and KVM; cirrus is deprecated in QEMU.
    model = image.properties.hw_video_model or "virtio"
    if host.domcaps.video_models and model not in host.domcaps.video_models:
        raise VirtopsError("image property hw_video_model %r is not offered by this host "
                           "(offered: %s)" % (model, ", ".join(host.domcaps.video_models)))
    return None if model == "none" else GuestVideo(model=model)


def design_guest(instance: InstanceSpec, flavor: Flavor, image: ImageSpec,
                 disk_info: DiskInfo, disk_formats: Mapping[str, str], vifs: Sequence[Vif],
                 host: HostView, recorded: Sequence[Recorded] = (),
                 now: Optional[datetime] = None) -> Guest:
    """The domain for ``instance``. ``now`` is used only when no creation time is known."""
    props = image.properties
    check_identity(instance, vifs, recorded)
    if host.disk_cache not in DISK_CACHE_MODES:
        raise VirtopsError("unsupported disk cache mode %r (expected one of %s)"
                           % (host.disk_cache, ", ".join(DISK_CACHE_MODES)))
    # Nova's [vnc] server_listen: QEMU's VNC server binds to this address of the host.
    valid_vnc_listen(host.vnc_listen)
    if host.domcaps.max_vcpus and flavor.vcpus > host.domcaps.max_vcpus:
        raise VirtopsError("flavor %s has %d vCPUs; machine type %s allows at most %d"
                           % (flavor.name, flavor.vcpus, host.machine_type,
                              host.domcaps.max_vcpus))

    features, clock = _features_and_clock(image, host)
    devices: list = _disks(disk_info, disk_formats, host, instance.uuid)
    if any(d.target_bus == "scsi" for d in devices):
        devices.append(GuestController(type="scsi", index=0, model="virtio-scsi"))
    model = props.hw_vif_model or "virtio"
    devices.extend(_interface(vif, model, host) for vif in vifs)
    # A pty serial port: 'virsh console' attaches to the pty while virtlogd copies all output
    # to console.log (a file-type port would give the log but no interactive console).
    console_log = os.path.join(host.instance_dir, CONSOLE_LOG)
    devices.append(GuestSerial(type="pty", log_file=console_log, log_append=True, target_port=0))
    devices.append(GuestConsole(type="pty", target_type="serial", target_port=0))
    if props.hw_qemu_guest_agent:
        devices.append(GuestChannel(type="unix", source_mode="bind", target_type="virtio",
                                    target_name=GUEST_AGENT_CHANNEL))
    if props.hw_pointer_model != "ps2mouse":
        # An absolute pointer keeps the VNC cursor in step with the guest's (Nova's default).
        devices.append(GuestInput(type="tablet", bus="usb"))
    devices.append(GuestGraphics(type="vnc", autoport=True, listen=host.vnc_listen))
    video = _video(image, host)
    if video is not None:
        devices.append(video)
    devices.append(GuestMemballoon(model="virtio", stats_period=MEM_STATS_PERIOD))
    rng = _rng(image, flavor, host)
    if rng is not None:
        devices.append(rng)

    now = now or datetime.now(timezone.utc)
    return Guest(
        virt_type=host.virt_type, name=instance.name, uuid=instance.uuid,
        metadata=_metadata(instance, flavor, image, vifs,
                           _creation_time(instance, recorded, now)),
        memory_kib=flavor.ram_mb * 1024, current_memory_kib=flavor.ram_mb * 1024,
        vcpus=flavor.vcpus,
        sysinfo=GuestSysinfo(manufacturer=SYSINFO_MANUFACTURER, product=SYSINFO_PRODUCT,
                             serial=instance.uuid, uuid=instance.uuid, family=SYSINFO_FAMILY),
        os=_os(image, disk_info, host), features=features, cpu=_cpu(flavor, host), clock=clock,
        devices=devices)
