#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_build
short_description: Build and start one instance on its compute host, in one run
version_added: 0.2.0
description:
  - Builds one instance on the host it was placed on and starts it, in one process, as Nova's
    compute manager does in C(_build_and_run_instance). The steps, in order, are those of the
    single-purpose modules, with the same code and the same checks.
  - "V(claim): M(virtops.compute.vm_instance) with C(state=present). Nova's C(instance_claim) under
    the host's claim lock against O(limits) (or the host's totals times the allocation ratios);
    the record C(instance.json) in vm_state C(building), then task_state C(spawning)."
  - "V(image): M(virtops.compute.vm_image) with C(state=present). The image is fetched once into
    the host's cache, verified and inspected; then the disks, C(disk.info) and the config
    drive."
  - "V(vif): M(virtops.compute.vm_vif). The ports of O(network_info) are plugged (bridges,
    VLAN and VXLAN members, taps, the anti-spoofing rules of O(firewall_driver))."
  - "V(xml): M(virtops.compute.vm_xml). C(libvirt.xml) is written from the flavor, the image,
    the disk mapping of the V(image) step and the ports."
  - "V(domain): M(virtops.compute.vm_domain) with C(state=running). The domain is defined, created
    paused, resumed once every port is plugged (our C(network-vif-plugged)), and awaited until
    RUNNING (and O(wait_for_console)); then the record says vm_state C(active)."
  - A failure names its step in RV(step) and leaves what the build made in place for the
    caller's cleanup, which also releases the claim (the boot role's rescue does it, then the
    controller places the instance on another host, as Nova reschedules).
  - Building an instance that is already built and running changes nothing.
  - In check mode only the claim is checked (it fails when the host cannot take the
    instance); nothing after it can be decided before the image is there.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.rbd
  - virtops.compute.flavor
  - virtops.compute.libvirt
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.libvirt.STATE_DIR
  - virtops.compute.port_security
  - virtops.compute.console
  - virtops.compute.attributes
options:
  instance:
    description: The instance, as the boot plan names it.
    type: dict
    required: true
    suboptions:
      uuid:
        description: Instance UUID in canonical form; the domain's UUID and the name of its directory.
        type: str
        required: true
      name:
        description: Instance name; the domain's name.
        type: str
        required: true
      launch_index:
        description: Index of the instance within a multiple create.
        type: int
        default: 0
      availability_zone:
        description: Availability zone, recorded and written to the config drive.
        type: str
      host:
        description: The host's name in the fleet, recorded with the instance.
        type: str
      server_group:
        description: Name of the server group the instance belongs to, recorded.
        type: str
      key_name:
        description: Name of the key pair, recorded.
        type: str
      metadata:
        description: Server metadata (string keys and values), recorded and on the config drive.
        type: dict
        default: {}
  image:
    description:
      - The image, as in the C(images) catalog; see M(virtops.compute.vm_image) for how it is
        fetched, checked and inspected.
    type: dict
    required: true
    suboptions:
      url:
        description: Where to fetch the image from (C(http://), C(https://), C(file://) or a path under O(image_roots)).
        type: str
        required: true
      disk_format:
        description: The image's declared format (V(raw), V(qcow2), V(vmdk), V(iso)); the detected format must match.
        type: str
        required: true
      checksum:
        description: Expected checksum (C(sha256:<hex>), ...); required unless O(image.allow_unverified=true).
        type: str
      allow_unverified:
        description: Use the image without a checksum (length and inspection only).
        type: bool
        default: false
      id:
        description: Image id; defaults to a UUID derived from O(image.url) and O(image.checksum).
        type: str
      name:
        description: Image name, recorded in the domain metadata.
        type: str
      min_disk:
        description: Smallest root disk (GiB) the image needs.
        type: int
        default: 0
      min_ram:
        description: Smallest RAM (MiB) the image needs.
        type: int
        default: 0
      properties:
        description: Image properties (Glance's C(hw_*), C(img_config_drive), ...) the guest design reads.
        type: dict
        default: {}
      locations:
        description: Other locations of the image's data; see M(virtops.compute.vm_image).
        type: list
        elements: str
        default: []
  kernel:
    description: Kernel of a direct kernel boot (the image's C(kernel_id)), as M(virtops.compute.vm_image) takes it.
    type: dict
  ramdisk:
    description: Ramdisk of a direct kernel boot (the image's C(ramdisk_id)), as M(virtops.compute.vm_image) takes it.
    type: dict
  limits:
    description:
      - The scheduler's limits for this host (C(vcpu), C(memory_mb), C(disk_gb)), as
        M(virtops.compute.vm_instance) takes them. Without them the host's totals times the
        allocation ratios.
    type: dict
  network_info:
    description: The instance's ports, in Nova's network_info shape (the boot plan's ports).
    type: list
    elements: dict
    default: []
  backend:
    description:
      - Root disk kind (Nova's C(images_type)); see M(virtops.compute.vm_image). With V(rbd)
        the root disk and config drive are images in Ceph (O(rbd)) and the domain reaches them
        as network disks, through the monitors of C(ceph mon dump) and the libvirt secret
        O(rbd.secret_uuid).
    type: str
    choices: [qcow2, flat, rbd]
    default: qcow2
  force_raw:
    description: Convert the base to raw (Nova's C(force_raw_images)).
    type: bool
    default: true
  config_drive:
    description: Build a config drive (also built when the image says C(img_config_drive=mandatory)).
    type: bool
    default: false
  config_drive_format:
    description: Config drive format (Nova's C(config_drive_format)).
    type: str
    choices: [iso9660, vfat]
    default: iso9660
  user_data:
    description: User data for the config drive. Never logged.
    type: str
  admin_pass:
    description: Administrator password for the config drive's metadata. Never logged.
    type: str
  keypairs:
    description: Key pairs for the config drive's metadata, as M(virtops.compute.vm_image) takes them.
    type: list
    elements: dict
    default: []
  virt_type:
    description: Domain type; V(auto) probes C(/dev/kvm) and falls back to V(qemu) (TCG).
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  download_timeout:
    description: Seconds a download may stall before it is given up.
    type: int
    default: 60
  download_max_bytes:
    description: Size cap of an image download (64 GiB by default).
    type: int
    default: 68719476736
  image_roots:
    description: Directories local image paths and C(file://) URLs may come from.
    type: list
    elements: path
    default: []
  reserved_host_memory_mb:
    description: Memory kept for the host (Nova's C(reserved_host_memory_mb)).
    type: int
    default: 512
  cpu_allocation_ratio:
    description: Nova's C(cpu_allocation_ratio), used without O(limits).
    type: float
    default: 4.0
  ram_allocation_ratio:
    description: Nova's C(ram_allocation_ratio), used without O(limits).
    type: float
    default: 1.0
  disk_allocation_ratio:
    description: Nova's C(disk_allocation_ratio), used without O(limits).
    type: float
    default: 1.0
  vif_plugging_timeout:
    description: Seconds to wait for the ports to be plugged, then for RUNNING (Nova's C(vif_plugging_timeout)).
    type: float
    default: 300
  vif_plugging_is_fatal:
    description: Whether ports not plugged in time fail the build (Nova's C(vif_plugging_is_fatal)).
    type: bool
    default: true
  wait_for_console:
    description: A Python regular expression to wait for on the guest's serial console after the start.
    type: str
  console_timeout:
    description: Seconds to wait for O(wait_for_console).
    type: float
    default: 300
attributes:
  check_mode:
    support: partial
    details:
      - Checks the claim only; the image, disks, ports, definition and domain are not planned.
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - libvirt-python (python3-libvirt)
  - lxml
  - oslo.utils (the image format inspector)
  - pycdlib (an iso9660 config drive)
seealso:
  - module: virtops.compute.vm_instance
  - module: virtops.compute.vm_image
  - module: virtops.compute.vm_vif
  - module: virtops.compute.vm_xml
  - module: virtops.compute.vm_domain
"""

EXAMPLES = r"""
- name: Build web-1 on this host (what the boot role does per placed instance)
  virtops.compute.vm_build:
    instance:
      uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11
      name: web-1
      host: "{{ inventory_hostname }}"
    flavor: {name: m1.small, vcpus: 1, ram_mb: 512, root_gb: 1}
    image:
      name: cirros
      url: https://download.cirros-cloud.net/0.6.2/cirros-0.6.2-x86_64-disk.img
      disk_format: qcow2
      checksum: sha256:57e8c3e3e0a6b0e9e2b2b0f2a7e6c4b1d6b0b5a4e0c9f6e2b4d9a8c7e6f5d4c3
    config_drive: true
    network_info: "{{ ports }}"
  register: built

- name: Only check that the host can take it
  virtops.compute.vm_build:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web-1}
    flavor: {name: m1.small, vcpus: 1, ram_mb: 512, root_gb: 1}
    image: {url: /srv/images/cirros.img, disk_format: qcow2, allow_unverified: true}
  check_mode: true
"""

RETURN = r"""
msg:
  description:
    - V(built) or V(already built); in check mode the claim's answer, V(claimed) (the host can
      take it) or V(already claimed).
  returned: success
  type: str
  sample: built
uuid:
  description: The instance's UUID.
  returned: always
  type: str
name:
  description: The instance's name.
  returned: always
  type: str
checked_only:
  description: True in check mode, where only the claim was checked.
  returned: success
  type: bool
power_state:
  description: The domain's power state after the build (V(running)), V(absent) in check mode.
  returned: success
  type: str
  sample: running
spawn_seconds:
  description: Seconds from the domain's creation until it ran.
  returned: success
  type: float
console_match:
  description: What O(wait_for_console) matched on the console.
  returned: success
  type: str
image_base:
  description: Path of the cached base the root disk is built on.
  returned: success
  type: str
instance_dir:
  description: The instance directory.
  returned: success
  type: str
instance:
  description: The instance record after the build (C(instance.json)).
  returned: success
  type: dict
actions:
  description: What the build changed, step by step.
  returned: success
  type: list
  elements: str
steps:
  description: Per step (claim, image, vif, xml, domain) whether it changed something, and what it found.
  returned: success
  type: dict
timings:
  description: Seconds per step and in all (C(total)).
  returned: success
  type: dict
step:
  description: The step that failed (V(claim), V(image), V(vif), V(xml) or V(domain)).
  returned: failure
  type: str
  sample: image
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RBD_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._compute.build import (
    BuildParams, BuildStepFailed, build_instance)
from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    HAS_PYCDLIB, PYCDLIB_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LIBVIRT_ARGS, LIBVIRT_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import (
    HAS_LXML, LXML_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import flavor_spec
from ansible_collections.virtops.compute.plugins.module_utils._model.console import VNC_LISTEN_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.network import PORT_SECURITY_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS, STATE_DIR_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_inspect import (
    FORMAT_INSPECTOR_IMPORT_ERROR, HAS_FORMAT_INSPECTOR)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            instance=dict(type="dict", required=True, options=dict(
                uuid=dict(type="str", required=True),
                name=dict(type="str", required=True),
                launch_index=dict(type="int", default=0),
                availability_zone=dict(type="str"),
                host=dict(type="str"),
                server_group=dict(type="str"),
                key_name=dict(type="str", no_log=False),
                metadata=dict(type="dict", default={}))),
            flavor=flavor_spec(),
            image=dict(type="dict", required=True, options=dict(
                url=dict(type="str", required=True),
                disk_format=dict(type="str", required=True),
                checksum=dict(type="str"),
                allow_unverified=dict(type="bool", default=False),
                id=dict(type="str"),
                name=dict(type="str"),
                min_disk=dict(type="int", default=0),
                min_ram=dict(type="int", default=0),
                properties=dict(type="dict", default={}),
                locations=dict(type="list", elements="str", default=[]))),
            kernel=dict(type="dict"),
            ramdisk=dict(type="dict"),
            limits=dict(type="dict"),
            network_info=dict(type="list", elements="dict", default=[]),
            backend=dict(type="str", choices=["qcow2", "flat", "rbd"], default="qcow2"),
            **RBD_ARGS,
            force_raw=dict(type="bool", default=True),
            config_drive=dict(type="bool", default=False),
            config_drive_format=dict(type="str", choices=["iso9660", "vfat"], default="iso9660"),
            user_data=dict(type="str", no_log=True),
            admin_pass=dict(type="str", no_log=True),
            keypairs=dict(type="list", elements="dict", default=[], no_log=False),
            virt_type=dict(type="str", choices=["auto", "kvm", "qemu"], default="auto"),
            download_timeout=dict(type="int", default=60),
            download_max_bytes=dict(type="int", default=DEFAULT_MAX_DOWNLOAD_BYTES),
            image_roots=dict(type="list", elements="path", default=[]),
            reserved_host_memory_mb=dict(type="int", default=512),
            cpu_allocation_ratio=dict(type="float", default=4.0),
            ram_allocation_ratio=dict(type="float", default=1.0),
            disk_allocation_ratio=dict(type="float", default=1.0),
            **PORT_SECURITY_ARGS,
            **VNC_LISTEN_ARGS,
            vif_plugging_timeout=dict(type="float", default=300),
            vif_plugging_is_fatal=dict(type="bool", default=True),
            wait_for_console=dict(type="str"),
            console_timeout=dict(type="float", default=300),
            **INSTANCES_PATH_ARGS,
            **STATE_DIR_ARGS,
            **LIBVIRT_ARGS,
        ),
        supports_check_mode=True,
    )
    for present, name, error in ((HAS_LIBVIRT, "libvirt-python (python3-libvirt)", LIBVIRT_IMPORT_ERROR),
                                 (HAS_LXML, "lxml", LXML_IMPORT_ERROR),
                                 (HAS_FORMAT_INSPECTOR, "oslo.utils", FORMAT_INSPECTOR_IMPORT_ERROR)):
        if not present:
            module.fail_json(msg=missing_required_lib(name), exception=error)
    p = module.params
    drive_asked = p["config_drive"] or str(
        (p["image"].get("properties") or {}).get("img_config_drive") or "").lower() == "mandatory"
    if drive_asked and p["config_drive_format"] == "iso9660" and not HAS_PYCDLIB:
        module.fail_json(msg=missing_required_lib("pycdlib"), exception=PYCDLIB_IMPORT_ERROR)
    uuid = p["instance"]["uuid"]
    try:
        params = params_from_module(BuildParams, p, sparse=("instance", "image", "flavor"))
    except VirtopsError as exc:
        # A setting of the host (vnc_listen) refused before the claim: nothing was made.
        module.fail_json(msg=exc.msg, step="claim", uuid=uuid, **exc.details)
    try:
        result = build_instance(params, check_mode=module.check_mode)
    except BuildStepFailed as failed:
        if isinstance(failed.error, VirtopsError):
            details = dict(failed.error.details, step=failed.step, uuid=uuid)
            module.fail_json(msg=failed.error.msg, **details)
        module.fail_json(msg=host_os_error(failed.error), step=failed.step, uuid=uuid)
    for warning in result.warnings:
        module.warn(warning)
    module.exit_json(**result.as_module_result())


if __name__ == "__main__":
    main()
