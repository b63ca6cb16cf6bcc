# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the host's libvirt and QEMU offer a guest, as typed objects.

``HostCapabilities`` parses ``virConnect.getCapabilities()`` (architectures, machine types
and their canonical names, domain types); ``DomainCapabilities`` parses
``virConnect.getDomainCapabilities()`` for one virt type, arch and machine type (disk buses,
video and rng models, CPU modes, Hyper-V features and the UEFI firmware paths under
``<os><loader>``). Both are plain data: the designer decides with them, tests build them from
captured XML.

Whether KVM is usable is not decided here: that is ``_virt_probe`` (host preparation records
its answer, see ``vm_virt_type``), because libvirt advertises ``kvm`` whenever /dev/kvm exists.
"""
from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import libvirt
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import parse_xml


def _parse(text, what: str):
    return parse_xml(text, "libvirt %s XML" % what)


@dataclass(frozen=True)
class MachineType:
    name: str
    canonical: Optional[str] = None   # set when ``name`` is an alias such as 'pc' or 'q35'
    max_cpus: Optional[int] = None
    deprecated: bool = False


@dataclass(frozen=True)
class GuestArch:
    os_type: str
    arch: str
    emulator: Optional[str]
    machines: Tuple[MachineType, ...]
    domain_types: Tuple[str, ...]


@dataclass(frozen=True)
class HostCapabilities:
    arch: str
    cpu_model: Optional[str] = None
    guests: Tuple[GuestArch, ...] = ()

    @classmethod
    def from_xml(cls, text) -> "HostCapabilities":
        root = _parse(text, "capabilities")
        guests = []
        for guest in root.findall("guest"):
            arch = guest.find("arch")
            if arch is None:
                continue
            machines = tuple(
                MachineType(name=m.text, canonical=m.get("canonical"),
                            max_cpus=int(m.get("maxCpus")) if m.get("maxCpus") else None,
                            deprecated=m.get("deprecated") == "yes")
                for m in arch.findall("machine"))
            domain_types = tuple(d.get("type") for d in arch.findall("domain"))
            guests.append(GuestArch(os_type=guest.findtext("os_type"), arch=arch.get("name"),
                                    emulator=arch.findtext("emulator"), machines=machines,
                                    domain_types=domain_types))
        return cls(arch=root.findtext("host/cpu/arch"), cpu_model=root.findtext("host/cpu/model"),
                   guests=tuple(guests))

    def guest_arch(self, arch: str, virt_type: str, os_type: str = "hvm") -> GuestArch:
        for guest in self.guests:
            if guest.arch == arch and guest.os_type == os_type and virt_type in guest.domain_types:
                return guest
        raise VirtopsError("this host cannot run %s guests of architecture %s with virt type %s"
                           % (os_type, arch, virt_type))

    def resolve_machine_type(self, arch: str, virt_type: str, name: str) -> str:
        """The canonical machine type for ``name`` ('pc' -> 'pc-i440fx-7.2'), else refuse."""
        guest = self.guest_arch(arch, virt_type)
        for machine in guest.machines:
            if machine.name == name:
                return machine.canonical or machine.name
        raise VirtopsError("machine type %r is not offered by this host's QEMU for %s; "
                           "choose one of: %s" % (name, arch, ", ".join(
                               sorted(m.name for m in guest.machines))))

    def has_machine_type(self, arch: str, virt_type: str, name: str) -> bool:
        try:
            return any(m.name == name for m in self.guest_arch(arch, virt_type).machines)
        except VirtopsError:
            return False


@dataclass(frozen=True)
class DomainCapabilities:
    domain: str
    arch: str
    machine: Optional[str] = None
    path: Optional[str] = None
    max_vcpus: Optional[int] = None
    loader_supported: bool = False
    loader_values: Tuple[str, ...] = ()        # firmware images, e.g. OVMF_CODE.fd
    loader_types: Tuple[str, ...] = ()
    loader_secure: Tuple[str, ...] = ()
    firmware: Tuple[str, ...] = ()             # <enum name='firmware'>: bios, efi
    cpu_modes: Tuple[str, ...] = ()            # the supported ones
    disk_buses: Tuple[str, ...] = ()
    disk_devices: Tuple[str, ...] = ()
    video_models: Tuple[str, ...] = ()
    graphics_types: Tuple[str, ...] = ()
    rng_models: Tuple[str, ...] = ()
    rng_backends: Tuple[str, ...] = ()
    hyperv_features: Tuple[str, ...] = ()
    enums: Dict[str, Tuple[str, ...]] = field(default_factory=dict, compare=False)

    @classmethod
    def from_xml(cls, text) -> "DomainCapabilities":
        root = _parse(text, "domain capabilities")

        def enum(path: str, name: str) -> Tuple[str, ...]:
            el = root.find(path)
            if el is None or el.get("supported") == "no":
                return ()
            return tuple(v.text for v in el.findall("enum[@name='%s']/value" % name))

        loader = root.find("os/loader")
        max_vcpus = root.find("vcpu")
        hyperv = root.find("features/hyperv")
        return cls(
            domain=root.findtext("domain"), arch=root.findtext("arch"),
            machine=root.findtext("machine"), path=root.findtext("path"),
            max_vcpus=int(max_vcpus.get("max")) if max_vcpus is not None else None,
            loader_supported=loader is not None and loader.get("supported") == "yes",
            loader_values=tuple(v.text for v in loader.findall("value"))
            if loader is not None else (),
            loader_types=enum("os/loader", "type"),
            loader_secure=enum("os/loader", "secure"),
            firmware=enum("os", "firmware"),
            cpu_modes=tuple(m.get("name") for m in root.findall("cpu/mode")
                            if m.get("supported") == "yes"),
            disk_buses=enum("devices/disk", "bus"),
            disk_devices=enum("devices/disk", "diskDevice"),
            video_models=enum("devices/video", "modelType"),
            graphics_types=enum("devices/graphics", "type"),
            rng_models=enum("devices/rng", "model"),
            rng_backends=enum("devices/rng", "backendModel"),
            hyperv_features=tuple(v.text for v in hyperv.findall("enum[@name='features']/value"))
            if hyperv is not None and hyperv.get("supported") == "yes" else ())

    def uefi_loader(self) -> Optional[str]:
        """A UEFI firmware image usable without Secure Boot (which also needs SMM and q35)."""
        if not self.loader_supported or "pflash" not in self.loader_types:
            return None
        plain = [p for p in self.loader_values
                 if not any(tag in os.path.basename(p).lower()
                            for tag in ("secboot", ".secure", ".ms.", "_ms.", "snakeoil"))]
        return plain[0] if plain else None


def supports_direct_io(dirpath: str) -> bool:
    """Whether files in ``dirpath`` can be opened with O_DIRECT (Nova's _supports_direct_io).

    A temporary file is created there with O_DIRECT and removed at once; EINVAL means the
    filesystem refuses direct I/O (tmpfs on older kernels, some FUSE filesystems).
    """
    if not hasattr(os, "O_DIRECT"):
        return False
    fd, path = tempfile.mkstemp(prefix=".directio.", dir=dirpath)
    os.close(fd)
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return False
            raise VirtopsError("cannot probe O_DIRECT in %s: %s" % (dirpath, exc))
        os.close(fd)
        return True
    finally:
        os.unlink(path)


# --- reading from libvirt -----------------------------------------------------------------
# Connections come from _libvirt.connection.connect; domain capabilities need a read-write one.

def read_host_capabilities(conn) -> HostCapabilities:
    try:
        return HostCapabilities.from_xml(conn.getCapabilities())
    except libvirt.libvirtError as exc:
        raise VirtopsError("libvirt getCapabilities failed: %s" % exc)


def read_domain_capabilities(conn, virt_type: str, arch: str, machine: str) -> DomainCapabilities:
    try:
        return DomainCapabilities.from_xml(
            conn.getDomainCapabilities(None, arch, machine, virt_type, 0))
    except libvirt.libvirtError as exc:
        raise VirtopsError("libvirt domain capabilities for %s/%s/%s failed: %s"
                           % (virt_type, arch, machine, exc))


def machine_families(machines: List[MachineType]) -> Dict[str, str]:
    """Alias -> canonical (e.g. {'pc': 'pc-i440fx-7.2', 'q35': 'pc-q35-7.2'})."""
    return {m.name: m.canonical for m in machines if m.canonical}
