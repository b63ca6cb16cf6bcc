#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_host_facts
short_description: Report what a compute host offers to the scheduler
version_added: 0.1.0
description:
  - Reads libvirt and the instance records under O(instances_path) and reports the host's
    hypervisor, architecture, the virt type guests must use, totals and usage of vCPUs, RAM and
    disk, allocation ratios, availability zone, aggregates and the instances it holds.
  - The virt type comes from a real probe (a tiny guest run under KVM), not from libvirt's
    capabilities, which advertise C(kvm) whenever C(/dev/kvm) is accessible.
  - Usage counts instance records as Nova's resource tracker does and exactly as the claims of
    M(virtops.compute.vm_instance) count them (instances being built, the larger flavor of an
    open resize, not deleted ones), plus O(reserved_host_memory_mb) and O(reserved_host_disk_mb).
  - Entries of O(instances_path) that are not instance directories (a stray file, a directory
    whose name is not an instance uuid, a directory without a readable, valid C(instance.json),
    a symbolic link) are left out of the instances and the usage, reported in
    RV(host.ignored_entries) and warned about; they do not fail the host. C(_base), C(locks),
    C(lost+found) and other names starting with C(_) or C(.) are the collection's own and
    skipped silently.
  - Each instance's entry has the live state of its domain (RV(host.instances[].power_state))
    and the graphical consoles of its running domain (RV(host.instances[].graphics) - type,
    listen address and the port libvirt gave it), read from the domain's live XML as Nova's
    C(get_vnc_console) reads them.
  - The history of state transitions an instance record keeps (up to 50 entries) is returned
    only for the instances named in O(history), so that the facts of a host with many servers
    stay small (C(playbooks/servers.yml -e history=NAME) asks for one).
  - The result is also set as the fact C(virtops_host) for the scheduler lookup.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.rbd
  - virtops.compute.libvirt
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.attributes
  - virtops.compute.attributes.INFO_MODULE
options:
  backend:
    description:
      - Where this host keeps instance disks (Nova's C(images_type), the roles'
        C(virtops_image_backend)). With V(rbd) the disk figures are the Ceph pool's (O(rbd)),
        as Nova's resource tracker reports them for rbd.
    type: str
    choices: [qcow2, flat, rbd]
    default: qcow2
  hostname:
    description:
      - Name of this host in the fleet; defaults to the inventory hostname when run from the
        roles, else the host's name.
    type: str
  enabled:
    description: Whether the scheduler may place new instances here.
    type: bool
    default: true
  availability_zone:
    description: Availability zone of the host.
    type: str
    default: nova
  aggregates:
    description: Host aggregates this host belongs to, each with metadata.
    type: list
    elements: dict
    default: []
  cpu_allocation_ratio:
    description: Virtual CPUs per physical CPU the scheduler may place.
    type: float
    default: 4.0
  ram_allocation_ratio:
    description: Virtual RAM per physical RAM the scheduler may place.
    type: float
    default: 1.0
  disk_allocation_ratio:
    description: Virtual disk per physical disk the scheduler may place.
    type: float
    default: 1.0
  reserved_host_memory_mb:
    description: RAM kept for the host itself, counted as used.
    type: int
    default: 512
  reserved_host_disk_mb:
    description: Disk kept for the host itself, counted as used (Nova's option of the same name).
    type: int
    default: 0
  capabilities:
    description:
      - "Capabilities the operator declares for this host, for example C({storage: ssd}). They
        are reported in RV(host.capabilities) beside the measured ones (C(cpu_info), C(arch),
        C(hypervisor_type), C(virt_type)), which they cannot override, so that a flavor extra
        spec such as C(capabilities:storage=ssd) steers instances to these hosts
        (ComputeCapabilitiesFilter)."
    type: dict
    default: {}
  virt_type:
    description:
      - Force the virt type instead of probing (C(kvm) or C(qemu) for TCG emulation).
    type: str
    choices: [kvm, qemu]
  history:
    description:
      - Names or uuids of instances whose history RV(host.instances[].history) is returned
        (every record of them on this host, C(<uuid>_resize) included). Empty, the default,
        returns no history.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Gather what this compute host offers
  virtops.compute.vm_host_facts:
    availability_zone: az1
  register: host

- name: Show the virt type and why
  ansible.builtin.debug:
    msg: "{{ host.host.virt_type }}: {{ host.host.virt_probe.reason }}"
"""

RETURN = r"""
host:
  description: The host's facts, in the schema of C(docs/host_facts.md).
  returned: success
  type: dict
  contains:
    hostname:
      description: Name of the host in the fleet.
      type: str
      sample: compute1
    hypervisor_type:
      description: libvirt driver type.
      type: str
      sample: QEMU
    hypervisor_version:
      description: Hypervisor version as libvirt reports it (major * 1000000 + minor * 1000 + micro).
      type: int
      sample: 7002000
    arch:
      description: Host CPU architecture.
      type: str
      sample: x86_64
    virt_type:
      description: Domain type guests must use on this host.
      type: str
      sample: qemu
    virt_probe:
      description: The probe result, with the reason KVM is or is not usable.
      type: dict
    vcpus:
      description: Physical CPUs.
      type: int
    vcpus_used:
      description: vCPUs of the instances recorded on this host.
      type: int
    memory_mb:
      description: Physical RAM in MiB.
      type: int
    memory_mb_used:
      description: RAM of recorded instances plus the reserved host memory, in MiB.
      type: int
    local_gb:
      description:
        - Size of the filesystem holding the instances path, in GiB.
        - With O(backend=rbd), the room of the rbd pool instead (Nova's C(get_pool_info)), in GiB;
          see C(storage).
      type: int
    local_gb_used:
      description: Root and ephemeral disk of recorded instances, in GiB.
      type: int
    free_disk_gb:
      description:
        - Free space on the filesystem holding the instances path, in GiB.
        - With O(backend=rbd), the rbd pool's free space (C(ceph df)'s C(max_avail)), in GiB.
      type: int
    storage:
      description:
        - Where instance disks live - C(images_type) (O(backend)) and C(shared) (V(true) for
          rbd, whose disks every host sees).
        - With rbd also C(pool), C(total_bytes), C(free_bytes), C(used_bytes) and C(source) -
          V(ceph df) (the pool's statistics, as Nova reads them), or, on a cluster without
          C(ceph-mgr) whose C(ceph df) lists no pools, an estimate from the OSDs' BlueStore
          sizes over the pool's replica count less the provisioned size of the pool's images.
      type: dict
    capabilities:
      description:
        - What flavor extra specs are matched against - O(capabilities), then C(hypervisor_type),
          C(arch), C(virt_type) and C(cpu_info) (C(arch), C(model), C(vendor), C(topology),
          C(features)).
      type: dict
    instances:
      description:
        - The instances recorded on this host (directories C(<uuid>) and C(<uuid>_resize)).
      type: list
      elements: dict
      contains:
        uuid:
          description: Instance uuid.
          type: str
        name:
          description: Instance name.
          type: str
        host:
          description: This host's name (O(hostname)).
          type: str
        vm_state:
          description: Nova vm_state from the record.
          type: str
          sample: active
        task_state:
          description: Nova task_state from the record, or null.
          type: str
        power_state:
          description:
            - Live state of the instance's libvirt domain (C(running), C(paused), C(shutdown),
              C(crashed), C(suspended), C(pending)), or C(absent) when libvirt has no domain
              with the instance's uuid.
          type: str
          sample: running
        flavor:
          description: The flavor the instance holds.
          type: dict
        image:
          description: The image the instance was booted from.
          type: dict
        ips:
          description: Fixed IPs of its ports.
          type: list
          elements: str
        network_info:
          description: Its ports, Nova-shaped.
          type: list
          elements: dict
        server_group:
          description: Server group it belongs to, or null.
          type: str
        availability_zone:
          description: Zone it was booted in, or null.
          type: str
        migration:
          description: The migration in flight, or null.
          type: dict
        fault:
          description: Why it is in error, or null.
          type: dict
        created_at:
          description: When the record was created (UTC).
          type: str
        launched_at:
          description: When it first became active (UTC), or null.
          type: str
        graphics:
          version_added: 0.2.0
          description:
            - The graphical consoles of the instance's domain while it runs, from its live XML
              (empty when the domain is shut off or absent, or has none). The listen address is
              the host's C(virtops_vnc_listen) when the domain was defined.
          type: list
          elements: dict
          sample: [{type: vnc, listen: 127.0.0.1, port: 5900}]
          contains:
            type:
              description: The console type (C(vnc), C(spice)).
              type: str
            listen:
              description: The address of the host the console listens on, or null.
              type: str
            port:
              description: The port libvirt gave the console, or null before it has one.
              type: int
        history:
          version_added: 0.2.0
          description:
            - The record's state transitions, oldest first (at most 50), each with C(at) (UTC),
              C(vm_state), C(task_state) and, when one was given, C(reason).
            - Only for the instances named in O(history).
          returned: when the instance is named in O(history)
          type: list
          elements: dict
          sample: [{at: "2026-01-02T03:04:05.123+00:00", vm_state: building, task_state: spawning}]
    ignored_entries:
      version_added: 0.2.0
      description:
        - Entries of O(instances_path) that are not instance directories and were skipped, each
          with the reason. Empty when the instances path holds only instances and the
          collection's own entries.
      type: list
      elements: dict
      sample: [{path: /var/lib/virtops/instances/filler, reason: "the name is not an instance uuid (or <uuid>_resize)"}]
      contains:
        path:
          description: The entry's path.
          type: str
        reason:
          description: Why it is not an instance directory.
          type: str
ansible_facts:
  description: The same dictionary, as the fact C(virtops_host).
  returned: success
  type: dict
"""

import socket

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RBD_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_facts import HostConfig, gather
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LIBVIRT_ARGS, LIBVIRT_IMPORT_ERROR)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hostname=dict(type="str"),
            **LIBVIRT_ARGS,
            **INSTANCES_PATH_ARGS,
            enabled=dict(type="bool", default=True),
            availability_zone=dict(type="str", default="nova"),
            aggregates=dict(type="list", elements="dict", default=[]),
            cpu_allocation_ratio=dict(type="float", default=4.0),
            ram_allocation_ratio=dict(type="float", default=1.0),
            disk_allocation_ratio=dict(type="float", default=1.0),
            reserved_host_memory_mb=dict(type="int", default=512),
            reserved_host_disk_mb=dict(type="int", default=0),
            capabilities=dict(type="dict", default={}),
            virt_type=dict(type="str", choices=["kvm", "qemu"]),
            history=dict(type="list", elements="str", default=[]),
            backend=dict(type="str", choices=["qcow2", "flat", "rbd"], default="qcow2"),
            **RBD_ARGS,
        ),
        supports_check_mode=True,
    )
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python (python3-libvirt)"),
                         exception=LIBVIRT_IMPORT_ERROR)
    params = module.params
    try:
        facts = gather(params_from_module(HostConfig, params,
                                          hostname=params["hostname"] or socket.gethostname()))
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    for entry in facts["ignored_entries"]:
        module.warn("skipped %s in the instances path: %s. Move it out of %s; it is not counted "
                    "as an instance on this host"
                    % (entry["path"], entry["reason"], params["instances_path"]))
    module.exit_json(changed=False, host=facts, ansible_facts={"virtops_host": facts})


if __name__ == "__main__":
    main()
