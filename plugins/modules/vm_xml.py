#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_xml
short_description: Write an instance's libvirt domain definition
version_added: 0.1.0
description:
  - Builds the libvirt domain XML of an instance from its flavor, image, disk mapping and
    network_info, the way Nova's libvirt driver does in C(_get_guest_config), and writes it
    atomically to C(<instances_path>/<uuid>/libvirt.xml). It does not define or start the
    domain; M(virtops.compute.vm_domain) does that from this file.
  - The document is built from typed objects, never from strings, and is deterministic; the same
    inputs give byte-identical XML, so a second run reports no change.
  - The domain carries, in the C(https://virtops.dev/xmlns/compute/1.0) namespace of its
    C(<metadata>), the instance name, creation time, flavor, image, owner and ports with their
    MACs and IPs; SMBIOS shows manufacturer C(virtops), product C(virtops compute) and the
    instance UUID as serial number.
  - Identity is stable. The domain UUID is the instance UUID. A port keeps the MAC recorded in
    an existing C(libvirt.xml) or in the live definition; when O(network_info) gives a port a
    different MAC than the recorded one, the module fails instead of changing it, because the
    guest's network configuration and the config drive are keyed by the MAC. It also fails when
    another domain already uses the instance's name, or the instance's domain has another name.
  - A machine type alias (C(pc), C(q35), the default C(pc)) resolves to the host's newest
    version of it, except that a version already recorded for the instance is kept while the
    host offers it, so the guest's virtual hardware does not change under it.
  - Refuses what cannot work, with a message saying why. This includes a disk bus the virt type,
    machine type or host does not offer, more disks than a bus takes (IDE takes four, the
    cdrom included), UEFI (image property C(hw_firmware_type=uefi)) on a host without UEFI
    firmware, unknown VIF models, unsafe instance names and text that XML cannot carry.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.STATE_DIR
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.flavor
  - virtops.compute.libvirt.URI
  - virtops.compute.port_security
  - virtops.compute.console
  - virtops.compute.rbd
options:
  rbd_monitors:
    description:
      - With O(rbd) (images_type rbd), the Ceph monitors the network disks name, as
        C(address:port) (the legacy v1 addresses of C(ceph mon dump); Nova's
        C(get_mon_addrs)). Required with O(rbd); M(virtops.compute.vm_build) reads them itself.
      - With O(rbd) the root disk and the config drive are C(<disk type='network'>) of protocol
        rbd named C(<pool>/<uuid>_disk) and C(<pool>/<uuid>_disk.config), with cephx
        C(<auth>) through the libvirt secret O(rbd.secret_uuid).
    type: list
    elements: str
    default: []
  instance:
    description: The instance.
    type: dict
    required: true
    suboptions:
      uuid:
        description: Instance UUID, also the domain UUID and the name of the instance directory.
        type: str
        required: true
      name:
        description:
          - Domain name. 1 to 63 characters of C(A-Z a-z 0-9 . _ -), not starting with C(.) or
            C(-).
        type: str
        required: true
      hostname:
        description: Guest host name, recorded in the metadata.
        type: str
      created_at:
        description:
          - Creation time, ISO 8601. Recorded in the metadata as UTC. When omitted, the time
            recorded in an existing definition is kept, else the current time is used.
        type: str
      owner:
        description: Owner recorded in the metadata.
        type: dict
        suboptions:
          user:
            description: User name.
            type: str
          project:
            description: Project name.
            type: str
  image:
    description: The image the instance boots from.
    type: dict
    required: true
    suboptions:
      id:
        description: Image id, recorded in the metadata.
        type: str
        required: true
      name:
        description: Image name, recorded in the metadata.
        type: str
      disk_format:
        description: Image disk format; C(iso) makes the root disk a cdrom.
        type: str
      properties:
        description:
          - Image properties. Used are C(hw_disk_bus) (virtio, ide, scsi, sata, usb; default
            virtio), C(hw_cdrom_bus) (default ide, sata on q35), C(hw_vif_model) (virtio, e1000,
            e1000e, rtl8139, ne2k_pci, pcnet; default virtio), C(hw_machine_type) (default pc),
            C(hw_firmware_type) (bios or uefi), C(hw_qemu_guest_agent) (adds the agent's
            channel), C(hw_rng_model) (virtio or none; default virtio on C(/dev/urandom)),
            C(hw_video_model) (default virtio), C(hw_pointer_model) (usbtablet or ps2mouse),
            C(os_type) (C(windows) gets a local-time clock and Hyper-V enlightenments the host
            offers), and C(kernel_id), C(ramdisk_id), C(os_command_line) for direct kernel boot
            from the files C(kernel) and C(ramdisk) of the instance directory.
          - Other properties are ignored.
        type: dict
        default: {}
  network_info:
    description:
      - The instance's VIFs in Nova's network_info shape (see C(plugins/module_utils/_model/network_info.py)).
      - VIF types C(bridge), C(vlan) and C(vxlan) become a bridge interface on C(network.bridge);
        C(network) an interface on the libvirt network named by C(network.label); C(direct) a
        macvtap on C(network.meta.physical_interface) in bridge mode; C(ethernet) a tap libvirt
        creates. The target device is the VIF's C(devname). When C(details.port_filter) is true
        and O(firewall_driver=nwfilter), the interface references the O(nwfilter) filter with
        the port's IPv4 addresses (Nova's C(filterref)); with O(firewall_driver=nftables) it
        references none, since M(virtops.compute.vm_vif) filters the port.
    type: list
    elements: dict
    default: []
  disk_info:
    description:
      - The disk mapping in Nova's shape, as M(virtops.compute.vm_image) returns it
        (C(disk_bus), C(cdrom_bus), C(mapping)). It is checked as strictly as a computed one.
      - When omitted it is computed from the image properties, the flavor and
        O(config_drive)/O(config_drive_format).
    type: dict
  disk_formats:
    description:
      - Format (C(raw) or C(qcow2)) of each instance file, keyed by file name or by absolute
        path as in C(disk.info).
      - When omitted, C(<instances_path>/<uuid>/disk.info) is read. Formats are never guessed;
        a disk without one is an error, except the config drive and ISO roots, which are raw.
    type: dict
  config_drive:
    description: Whether the instance has a config drive; used only when O(disk_info) is omitted.
    type: bool
    default: false
  config_drive_format:
    description:
      - Config drive format; C(iso9660) attaches it as a cdrom, C(vfat) as a disk.
    type: str
    choices: [iso9660, vfat]
    default: iso9660
  virt_type:
    description:
      - Domain type. C(auto) takes the virt type host preparation recorded in
        C(<state_dir>/host.json) (see M(virtops.compute.vm_virt_type)); without a record it runs
        the same probe, which uses C(kvm) only when a tiny guest really runs under KVM, else
        C(qemu) (TCG emulation).
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  disk_cache:
    description:
      - Disk cache mode. C(auto) chooses C(none) when the instance directory's filesystem
        accepts O_DIRECT (probed with a temporary file there), else C(writeback).
    type: str
    choices: [auto, none, writeback, writethrough, directsync, unsafe]
    default: auto
  state:
    description: Only C(present) is supported; removal belongs to the delete flow.
    type: str
    choices: [present]
    default: present
attributes:
  check_mode:
    support: full
    description: Computes the document and the diff, writes nothing.
  diff_mode:
    support: full
    description: Returns the file's content before and after.
  idempotent:
    support: full
    description: The same inputs give byte-identical XML and C(changed=false).
requirements:
  - python3-libvirt
  - python3-lxml
notes:
  - O(libvirt_uri) is only read (host and domain capabilities, the instance's existing
    definition), but opened read-write, because libvirtd refuses domain capabilities on a
    read-only connection.
  - The console is a pty serial port whose output libvirt's virtlogd also appends to
    C(<uuid>/console.log), so both C(virsh console) and the log work.
  - In check mode with O(disk_cache=auto) the O_DIRECT probe still creates and removes a
    temporary file in the instance directory (or its nearest existing parent).
seealso:
  - module: virtops.compute.vm_image
  - module: virtops.compute.vm_domain
  - module: virtops.compute.vm_virt_type
"""

EXAMPLES = r"""
- name: Write the domain definition of web1
  virtops.compute.vm_xml:
    instance:
      uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11
      name: web1
      created_at: "2026-01-02T03:04:05Z"
    flavor: "{{ flavors['m1.tiny'] | combine({'name': 'm1.tiny'}) }}"
    image:
      id: tiny
      properties:
        hw_qemu_guest_agent: true
    disk_info: "{{ image_result.disk_info }}"
    network_info: "{{ instance_record.network_info }}"
  register: domain_xml

- name: Preview the change without writing
  virtops.compute.vm_xml:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web1}
    flavor: {name: m1.small, vcpus: 2, ram_mb: 2048, root_gb: 20}
    image: {id: tiny}
    disk_formats: {disk: qcow2}
    virt_type: qemu
  check_mode: true
  diff: true
"""

RETURN = r"""
path:
  description: Path of the domain definition file.
  returned: always
  type: str
  sample: /var/lib/virtops/instances/0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11/libvirt.xml
xml:
  description: The domain XML (what the file holds, or would hold in check mode).
  returned: success
  type: str
disk_info:
  description: The disk mapping used, in Nova's shape.
  returned: success
  type: dict
  sample:
    disk_bus: virtio
    cdrom_bus: ide
    mapping:
      root: {bus: virtio, dev: vda, type: disk, boot_index: "1"}
      disk: {bus: virtio, dev: vda, type: disk, boot_index: "1"}
      disk.config: {bus: ide, dev: hda, type: cdrom}
virt_type:
  description: Domain type used.
  returned: success
  type: str
  sample: qemu
virt_type_reason:
  description: Why that domain type was used.
  returned: success
  type: str
machine_type:
  description: The canonical machine type in the document.
  returned: success
  type: str
  sample: pc-i440fx-7.2
disk_cache:
  description: Disk cache mode used.
  returned: success
  type: str
  sample: none
timings:
  description: Seconds spent per phase (inputs, host, design, write).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.console import VNC_LISTEN_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RBD_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.network import PORT_SECURITY_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS, STATE_DIR_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import (
    HAS_LXML, LXML_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LIBVIRT_IMPORT_ERROR, LIBVIRT_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import (
    VmXmlParams, ensure_libvirt_xml)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import flavor_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            instance=dict(type="dict", required=True, options=dict(
                uuid=dict(type="str", required=True),
                name=dict(type="str", required=True),
                hostname=dict(type="str"),
                created_at=dict(type="str"),
                owner=dict(type="dict", options=dict(user=dict(type="str"),
                                                     project=dict(type="str"))))),
            flavor=flavor_spec(),
            image=dict(type="dict", required=True, options=dict(
                id=dict(type="str", required=True),
                name=dict(type="str"),
                disk_format=dict(type="str"),
                properties=dict(type="dict", default={}))),
            network_info=dict(type="list", elements="dict", default=[]),
            disk_info=dict(type="dict"),
            disk_formats=dict(type="dict"),
            config_drive=dict(type="bool", default=False),
            config_drive_format=dict(type="str", choices=["iso9660", "vfat"],
                                     default="iso9660"),
            **INSTANCES_PATH_ARGS,
            virt_type=dict(type="str", choices=["auto", "kvm", "qemu"], default="auto"),
            **STATE_DIR_ARGS,
            **LIBVIRT_ARGS,
            **VNC_LISTEN_ARGS,
            **RBD_ARGS,
            rbd_monitors=dict(type="list", elements="str", default=[]),
            disk_cache=dict(type="str", default="auto", choices=[
                "auto", "none", "writeback", "writethrough", "directsync", "unsafe"]),
            **PORT_SECURITY_ARGS,
            state=dict(type="str", choices=["present"], default="present"),
        ),
        required_if=[("state", "present", ("flavor",))],
        supports_check_mode=True,
    )
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python"),
                         exception=LIBVIRT_IMPORT_ERROR)
    p = module.params
    params = params_from_module(VmXmlParams, p, sparse=("instance", "flavor", "image"))
    try:
        result = ensure_libvirt_xml(params, check_mode=module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    output = result.as_module_result()
    if module._diff:
        output["diff"] = {"before": result.before or "", "after": result.xml,
                          "before_header": result.path, "after_header": result.path}
    module.exit_json(**output)


if __name__ == "__main__":
    main()
