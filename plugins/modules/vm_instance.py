#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_instance
short_description: Claim, update and release an instance's record and resources on a compute host
version_added: 0.1.0
description:
  - Keeps C(<instances_path>/<uuid>/instance.json), the host's record of one instance (what Nova
    keeps in its database), written atomically.
  - O(state=present) is Nova's C(instance_claim) - under one per-host lock it adds up what every
    record on the host uses (instances being built and both sides of an open resize), checks the
    request against the scheduler's O(limits) (or the host's totals times the allocation ratios),
    and writes the record in vm_state C(building). Concurrent claims never oversubscribe a host.
    Claiming an instance already recorded here changes nothing.
  - O(state=updated) moves an existing record to a new vm_state/task_state, records its
    network_info or image base, with a short history of transitions.
  - O(state=absent) releases the claim (removes the record, or the whole instance directory with
    O(remove_directory)).
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.flavor
  - virtops.compute.libvirt
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  uuid:
    description: Instance UUID; also the name of its directory.
    type: str
    required: true
  name:
    description: Instance name (the libvirt domain name). Required with O(state=present).
    type: str
  state:
    description: What to do with the record.
    type: str
    choices: [present, updated, absent]
    default: present
  limits:
    description:
      - Limits the scheduler computed for this host (C(memory_mb), C(vcpu), C(disk_gb)); the
        claim checks them again. Without them the host's totals times the allocation ratios apply.
    type: dict
  image:
    description: The image of the instance, as recorded (id, name, url, disk_format, properties).
    type: dict
  host:
    description: The host name the instance is placed on, as the fleet knows it.
    type: str
  availability_zone:
    description: Availability zone of the instance.
    type: str
  server_group:
    description: Server group the instance belongs to.
    type: str
  metadata:
    description: User metadata of the instance.
    type: dict
  key_name:
    description: Name of the keypair injected into the instance.
    type: str
  launch_index:
    description: Index of this instance in a multiple create.
    type: int
    default: 0
  network_info:
    description: Nova-shaped network_info of the instance's ports.
    type: list
    elements: dict
  image_base:
    description: Path of the cached base image the instance's disks use.
    type: path
  vm_state:
    description: New vm_state.
    type: str
    choices: [building, active, stopped, paused, resized, error]
  task_state:
    description: New task_state.
    type: str
  clear_task_state:
    description: Set task_state to none.
    type: bool
    default: false
  reason:
    description: Why the state changes; kept in the history, and as the fault with C(vm_state=error).
    type: str
  remove_directory:
    description: With O(state=absent), remove the whole instance directory, not only the record.
    type: bool
    default: false
  reserved_host_memory_mb:
    description: RAM kept for the host itself, counted as used.
    type: int
    default: 512
  cpu_allocation_ratio:
    description: vCPU allocation ratio used when no O(limits) are given.
    type: float
    default: 4.0
  ram_allocation_ratio:
    description: RAM allocation ratio used when no O(limits) are given.
    type: float
    default: 1.0
  disk_allocation_ratio:
    description: Disk allocation ratio used when no O(limits) are given.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Claim resources for web1 with the scheduler's limits
  virtops.compute.vm_instance:
    uuid: "{{ server_uuid }}"
    name: web1
    flavor: "{{ flavors['m1.tiny'] | combine({'name': 'm1.tiny'}) }}"
    limits: "{{ selection.limits }}"

- name: Mark it active
  virtops.compute.vm_instance:
    uuid: "{{ server_uuid }}"
    state: updated
    vm_state: active
    clear_task_state: true

- name: Release the claim and remove the instance directory
  virtops.compute.vm_instance:
    uuid: "{{ server_uuid }}"
    state: absent
    remove_directory: true
"""

RETURN = r"""
instance:
  description: The record after the change (none after O(state=absent)).
  returned: always
  type: dict
  contains:
    uuid:
      description: Instance UUID.
      type: str
    name:
      description: Instance name.
      type: str
    vm_state:
      description: Nova vm_state.
      type: str
      sample: building
    task_state:
      description: Nova task_state.
      type: str
      sample: scheduling
    flavor:
      description: The claimed flavor.
      type: dict
    limits:
      description: The limits the claim was checked against.
      type: dict
    history:
      description: State transitions with timestamps.
      type: list
      elements: dict
msg:
  description: What happened.
  returned: always
  type: str
  sample: claimed
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import LIBVIRT_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._compute.instance import run
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import flavor_spec


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uuid=dict(type="str", required=True),
            name=dict(type="str"),
            state=dict(type="str", choices=["present", "updated", "absent"], default="present"),
            flavor=flavor_spec(),
            limits=dict(type="dict"),
            image=dict(type="dict"),
            host=dict(type="str"),
            availability_zone=dict(type="str"),
            server_group=dict(type="str"),
            metadata=dict(type="dict"),
            key_name=dict(type="str", no_log=False),
            launch_index=dict(type="int", default=0),
            network_info=dict(type="list", elements="dict"),
            image_base=dict(type="path"),
            vm_state=dict(type="str", choices=["building", "active", "stopped", "paused",
                                               "resized", "error"]),
            task_state=dict(type="str"),
            clear_task_state=dict(type="bool", default=False),
            reason=dict(type="str"),
            remove_directory=dict(type="bool", default=False),
            **LIBVIRT_ARGS,
            **INSTANCES_PATH_ARGS,
            reserved_host_memory_mb=dict(type="int", default=512),
            cpu_allocation_ratio=dict(type="float", default=4.0),
            ram_allocation_ratio=dict(type="float", default=1.0),
            disk_allocation_ratio=dict(type="float", default=1.0),
        ),
        supports_check_mode=True,
    )
    try:
        outcome = run(module.params, module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    after = outcome.record.to_dict() if outcome.record else None
    result = dict(changed=outcome.changed, instance=after, msg=outcome.msg)
    if module._diff:
        result["diff"] = dict(before=outcome.before or {}, after=after or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
