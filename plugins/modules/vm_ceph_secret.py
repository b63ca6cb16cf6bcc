#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_ceph_secret
short_description: Keep a Ceph user's cephx key in a libvirt secret for rbd disks
version_added: 0.2.0
description:
  - A compute host with C(images_type = rbd) (M(virtops.compute.vm_image)'s
    O(virtops.compute.vm_image#module:backend=rbd)) gives QEMU the Ceph user's key through a
    libvirt secret, named by each rbd disk's C(<auth><secret type='ceph' uuid=.../></auth>)
    (Nova's C(rbd_secret_uuid)).
  - As Ceph's "Block Devices and OpenStack" guide has it done for Nova - a secret that is
    neither ephemeral nor private, of usage type C(ceph) named C(client.<user> secret) - defined
    when missing, its value set when it differs. A secret of the same usage under another UUID,
    or this UUID used for another usage, is refused, naming both.
  - The key is compared by value and never logged or returned.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt
  - virtops.compute.attributes
options:
  secret_uuid:
    description: The secret's UUID (the rbd settings' C(secret_uuid)).
    type: str
    required: true
  user:
    description: The Ceph user, without C(client.) (the rbd settings' C(user)).
    type: str
    required: true
  key:
    description: The user's cephx key, base64 as C(ceph auth get-key client.<user>) prints it.
    type: str
    required: true
attributes:
  check_mode:
    support: full
    details:
      - Says whether the secret would be defined or its value set; changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Give libvirt the key of client.nova
  virtops.compute.vm_ceph_secret:
    secret_uuid: 5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10
    user: nova
    key: "{{ vault_ceph_nova_key }}"
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: ["define libvirt secret 5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10 (client.nova secret)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import ensure_rbd_secret
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import LIBVIRT_ARGS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            secret_uuid=dict(type="str", required=True, no_log=False),
            user=dict(type="str", required=True),
            key=dict(type="str", required=True, no_log=True),
            **LIBVIRT_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        outcome = ensure_rbd_secret(p["libvirt_uri"], p["secret_uuid"], p["user"], p["key"], module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(changed=outcome.changed, actions=outcome.actions)


if __name__ == "__main__":
    main()
