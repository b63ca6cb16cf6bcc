#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_virt_type
short_description: Decide and record whether guests on this host use KVM or QEMU emulation
version_added: 0.1.0
description:
  - Runs the real KVM probe (a 64 KiB firmware booted under C(-accel kvm) must run to its end)
    unless O(virt_type) forces the answer, and records the result in C(<state_dir>/host.json) as
    C({"virt_type", "kvm_usable", "reason", "forced"}).
  - The other modules (M(virtops.compute.vm_host_facts), M(virtops.compute.vm_xml)) read that
    record when no virt type is given to them, so every guest of the host gets the same domain type
    without probing again.
  - The file is rewritten only when the result differs, atomically.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.STATE_DIR
  - virtops.compute.attributes
options:
  virt_type:
    description:
      - Force the virt type instead of probing.
    type: str
    choices: [kvm, qemu]
  kvm_device:
    description: The KVM device node the probe checks first.
    type: path
    default: /dev/kvm
attributes:
  check_mode:
    support: full
    details:
      - The probe runs (it changes nothing); the record is not written.
  diff_mode:
    support: full
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Probe KVM and record the result
  virtops.compute.vm_virt_type:
  register: virt

- name: Force TCG emulation on a host whose KVM is broken
  virtops.compute.vm_virt_type:
    virt_type: qemu
"""

RETURN = r"""
virt_type:
  description: Domain type guests use on this host.
  returned: success
  type: str
  sample: qemu
kvm_usable:
  description: Whether a guest ran under KVM (V(true) as well when O(virt_type=kvm) forces it).
  returned: success
  type: bool
reason:
  description: Why KVM is or is not used, for the operator.
  returned: success
  type: str
  sample: /dev/kvm does not exist (no hardware virtualisation)
forced:
  description: Whether O(virt_type) decided instead of the probe.
  returned: success
  type: bool
path:
  description: The record file.
  returned: success
  type: str
  sample: /etc/virtops/host.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    STATE_DIR_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import ensure_virt_record


def main():
    module = AnsibleModule(
        argument_spec=dict(
            virt_type=dict(type="str", choices=["kvm", "qemu"]),
            **STATE_DIR_ARGS,
            kvm_device=dict(type="path", default="/dev/kvm"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = ensure_virt_record(params["state_dir"], params["virt_type"], params["kvm_device"],
                                    module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    output = dict(changed=result.changed, path=result.path, **result.after)
    if module._diff:
        output["diff"] = {"before": result.before or {}, "after": result.after,
                          "before_header": result.path, "after_header": result.path}
    module.exit_json(**output)


if __name__ == "__main__":
    main()
