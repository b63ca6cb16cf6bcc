# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_xml's driver: gather the inputs, design the domain, write ``<uuid>/libvirt.xml``.

Plain values in, a ``VmXmlResult`` out, ``check_mode`` as a bool: unit-testable without
Ansible. The only libvirt calls read (capabilities and the instance's existing
definition, for stable identity); defining and starting is ``vm_domain``'s job.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._libvirt import host_caps as _host_caps
from ansible_collections.virtops.compute.plugins.module_utils._guest.blockinfo import (
    DiskInfo, get_disk_info)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DEFAULT_INSTANCES_PATH, DEFAULT_STATE_DIR, DISK_INFO, DOMAIN_XML, InstanceLayout)
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import (
    atomic_write, qemu_directory, qemu_file_options, read_text)
from ansible_collections.virtops.compute.plugins.module_utils._model.console import (
    DEFAULT_VNC_LISTEN, valid_vnc_listen)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._guest.config import Guest
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSpec
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdDisks, RbdSettings
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER, valid_firewall_driver)
from ansible_collections.virtops.compute.plugins.module_utils._guest.designer import (
    HostView, InstanceSpec, Recorded, choose_machine_type, design_guest,
    resolve_disk_formats)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    DEFAULT_URI, connect)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.domains import find_domain
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.host_caps import (
    read_domain_capabilities, read_host_capabilities, supports_direct_io)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    parse_network_info)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.virt_probe import (
    resolve_virt_type as resolve_probe)

SUPPORTED_ARCHES = ("x86_64", "i686")


@dataclass(frozen=True)
class VmXmlParams:
    instance: dict
    flavor: dict
    image: dict
    network_info: list = field(default_factory=list)
    disk_info: Optional[dict] = None
    disk_formats: Optional[dict] = None
    instances_path: str = DEFAULT_INSTANCES_PATH
    virt_type: str = "auto"
    state_dir: str = DEFAULT_STATE_DIR
    libvirt_uri: str = DEFAULT_URI
    vnc_listen: str = DEFAULT_VNC_LISTEN      # Nova's [vnc] server_listen
    config_drive: bool = False
    config_drive_format: str = "iso9660"
    disk_cache: str = "auto"
    nwfilter: str = DEFAULT_NWFILTER
    firewall_driver: str = DEFAULT_FIREWALL_DRIVER
    # images_type rbd: the rbd settings and the monitors (address:port) the disks name.
    rbd: Optional[dict] = None
    rbd_monitors: List[str] = field(default_factory=list)

    def __post_init__(self):
        valid_firewall_driver(self.firewall_driver)
        valid_vnc_listen(self.vnc_listen)


@dataclass
class VmXmlResult(Outcome):
    """The domain XML built for an instance (``Outcome``: changed and timings)."""
    path: str = ""
    xml: str = ""
    before: Optional[str] = None
    disk_info: dict = field(default_factory=dict)
    virt_type: str = ""
    virt_type_reason: str = ""
    machine_type: str = ""
    disk_cache: str = ""

    def as_module_result(self) -> dict:
        return {"changed": self.changed, "path": self.path, "xml": self.xml,
                "disk_info": self.disk_info, "virt_type": self.virt_type,
                "virt_type_reason": self.virt_type_reason, "machine_type": self.machine_type,
                "disk_cache": self.disk_cache, "timings": self.timings}


def write_atomic(path: str, text: str) -> None:
    """``libvirt.xml``, written atomically with the owner group and mode of everything in the
    instance directory (``_fileio.qemu_access``)."""
    atomic_write(path, text, **qemu_file_options())


def read_disk_info_file(instance_dir: str) -> Optional[dict]:
    path = os.path.join(instance_dir, DISK_INFO)
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise VirtopsError("%s is not valid JSON: %s" % (path, exc))
    if not isinstance(data, dict):
        raise VirtopsError("%s must hold a JSON object of path: format" % path)
    return data


def nearest_existing_dir(path: str) -> str:
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def choose_disk_cache(requested: str, instance_dir: str) -> str:
    """'none' (O_DIRECT, host page cache bypassed) where the filesystem allows it."""
    if requested != "auto":
        return requested
    return "none" if supports_direct_io(nearest_existing_dir(instance_dir)) else "writeback"


def resolve_virt_type(requested: str, caps, arch: str, state_dir: str = DEFAULT_STATE_DIR):
    """kvm or qemu: as requested, else what host preparation recorded, else a live probe.

    The record (``<state_dir>/host.json``, written by vm_virt_type) and the probe are the same
    ones vm_host_facts uses, so the scheduler and the domain XML always agree.
    """
    probe = resolve_probe(requested, state_dir)
    virt_type, reason = probe.virt_type, probe.reason
    caps.guest_arch(arch, virt_type)     # refuses a type libvirt cannot run here
    return virt_type, reason


def read_live_definition(conn, uuid: str, name: str) -> List[Recorded]:
    """The instance's live (inactive) definition, if libvirt has one; refuse conflicts."""
    libvirt = _host_caps.libvirt
    recorded = []
    dom = find_domain(conn, uuid=uuid)
    if dom is not None:
        guest = Guest.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if guest.name != name:
            raise VirtopsError("domain %s is defined in libvirt as %r, not %r; vm_xml does not "
                               "rename defined domains" % (uuid, guest.name, name))
        recorded.append(Recorded(source="the libvirt domain %s" % name, guest=guest))
    other = find_domain(conn, name=name)
    if other is not None and other.UUIDString().lower() != uuid:
        raise VirtopsError("another domain named %r (uuid %s) is defined on this host"
                           % (name, other.UUIDString()))
    return recorded


def build(params: VmXmlParams, now: Optional[datetime] = None) -> VmXmlResult:
    """Design the document and compare it with the file; write nothing."""
    timings: Dict[str, float] = {}
    started = time.monotonic()
    instance = InstanceSpec.from_dict(params.instance)
    flavor = Flavor.from_dict(params.flavor)
    if not flavor.name:
        # The domain's <metadata> records the flavor by name.
        raise VirtopsError("flavor name is missing: the domain definition records it; give "
                           "flavor.name (for example m1.tiny)")
    image = ImageSpec.from_dict(params.image)
    vifs = parse_network_info(params.network_info)
    if not os.path.isabs(params.instances_path):
        raise VirtopsError("instances_path must be absolute, got %r" % params.instances_path)
    instance_dir = InstanceLayout(os.path.normpath(params.instances_path)).instance_dir(
        instance.uuid)
    path = os.path.join(instance_dir, DOMAIN_XML)

    before = read_text(path)
    recorded: List[Recorded] = []
    if before is not None:
        try:
            recorded.append(Recorded(source=path, guest=Guest.from_xml(before)))
        except VirtopsError as exc:
            raise VirtopsError("%s exists but cannot be read (%s); move it away to start over"
                               % (path, exc.msg))
    timings["inputs"] = time.monotonic() - started

    started = time.monotonic()
    # Read-write: libvirtd refuses domain capabilities on a read-only connection.
    with connect(params.libvirt_uri) as conn:
        caps = read_host_capabilities(conn)
        arch = caps.arch
        if arch not in SUPPORTED_ARCHES:
            raise VirtopsError("host architecture %s is not supported (only %s)"
                               % (arch, ", ".join(SUPPORTED_ARCHES)))
        virt_type, reason = resolve_virt_type(params.virt_type, caps, arch, params.state_dir)
        recorded.extend(read_live_definition(conn, instance.uuid, instance.name))
        machine = choose_machine_type(image, caps, arch, virt_type, recorded)
        domcaps = read_domain_capabilities(conn, virt_type, arch, machine)
    disk_cache = choose_disk_cache(params.disk_cache, instance_dir)
    timings["host"] = time.monotonic() - started

    started = time.monotonic()
    props = image.properties
    host_buses = domcaps.disk_buses or None
    if params.disk_info:
        disk_info = DiskInfo.from_dict(params.disk_info, virt_type, machine, host_buses)
    else:
        disk_info = get_disk_info(
            virt_type, disk_bus=props.hw_disk_bus, cdrom_bus=props.hw_cdrom_bus,
            machine_type=machine, ephemeral_gb=flavor.ephemeral_gb, swap_mb=flavor.swap_mb,
            config_drive_format=params.config_drive_format if params.config_drive else None,
            image_disk_format=image.disk_format, host_buses=host_buses)
    formats = params.disk_formats
    if formats is None:
        formats = read_disk_info_file(instance_dir)
    host = HostView(virt_type=virt_type, arch=arch, machine_type=machine, domcaps=domcaps,
                    instance_dir=instance_dir, disk_cache=disk_cache,
                    vnc_listen=params.vnc_listen, nwfilter=params.nwfilter,
                    firewall_driver=params.firewall_driver,
                    rbd=RbdDisks.from_values(RbdSettings.from_dict(params.rbd), params.rbd_monitors)
                    if params.rbd else None)
    guest = design_guest(instance, flavor, image, disk_info,
                         resolve_disk_formats(formats, instance_dir), vifs, host, recorded, now)
    xml = guest.to_xml()
    timings["design"] = time.monotonic() - started
    return VmXmlResult(changed=xml != before, path=path, xml=xml, before=before,
                       disk_info=disk_info.to_dict(), virt_type=virt_type,
                       virt_type_reason=reason, machine_type=machine, disk_cache=disk_cache,
                       timings=timings)


def ensure_libvirt_xml(params: VmXmlParams, check_mode: bool = False,
                       now: Optional[datetime] = None) -> VmXmlResult:
    result = build(params, now)
    started = time.monotonic()
    if result.changed and not check_mode:
        qemu_directory(os.path.dirname(result.path))
        write_atomic(result.path, result.xml)
    result.timings["write"] = time.monotonic() - started
    result.timings = {k: round(v, 4) for k, v in result.timings.items()}
    return result
