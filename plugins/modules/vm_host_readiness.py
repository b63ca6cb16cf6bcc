#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_host_readiness
short_description: Say whether a compute host is ready, and what to fix when it is not
version_added: 0.1.0
description:
  - Checks, on the host, what the compute workflows need and returns a summary and a list of
    problems, each naming what to fix. It never fails because of a problem found; the caller
    decides (the C(compute_host) role fails the host).
  - "Checks: libvirt answers on O(libvirt_uri); a virt type is recorded in C(<state_dir>/host.json)
    (see M(virtops.compute.vm_virt_type)); available RAM and free disk under O(instances_path)
    against the thresholds; the bridge of each network in O(networks) exists and is up; C(ssh -o BatchMode=yes
    -o StrictHostKeyChecking=yes USER@PEER true) succeeds to each of O(peers), as cold migration's
    rsync needs; filtered ports can be filtered the O(firewall_driver) way (V(nftables): C(nft) is
    installed and the kernel takes the table C(bridge virtops), tried with C(nft --check);
    V(nwfilter): libvirt has the filter O(nwfilter)); the Python libraries the modules import
    load in O(python)."
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.STATE_DIR
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.attributes
  - virtops.compute.libvirt.URI
  - virtops.compute.attributes.INFO_MODULE
  - virtops.compute.port_security
options:
  networks:
    description:
      - The fleet's networks as in the inventory's C(networks); the C(bridge) of each V(bridge),
        V(vlan) or V(vxlan) network (C(vif_type), default V(bridge)) must exist and be up.
    type: dict
    default: {}
  peers:
    description: The other compute hosts this one must reach over ssh for migrations.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Inventory name of the peer.
        type: str
        required: true
      address:
        description: Address migrations use to reach the peer.
        type: str
        required: true
  ssh_user:
    description: User migrations log in as on the peers.
    type: str
    default: root
  connect_timeout:
    description: ssh C(ConnectTimeout) per peer, in seconds.
    type: int
    default: 5
  min_free_ram_mb:
    description: Less available RAM (MemAvailable) than this is a problem.
    type: int
    default: 1024
  min_free_disk_gb:
    description: Less free disk under O(instances_path) than this is a problem.
    type: int
    default: 10
  python:
    description:
      - Interpreter whose libraries are checked; defaults to the one running this module. Empty
        string skips the check.
    type: str
"""

EXAMPLES = r"""
- name: Check the host
  virtops.compute.vm_host_readiness:
    networks:
      private: {bridge: br-private, vif_type: bridge, cidr: 10.10.0.0/24}
    peers:
      - {name: compute2, address: 192.0.2.12}
  register: readiness

- name: Fail when it is not ready
  ansible.builtin.fail:
    msg: "{{ readiness.problems | join('; ') }}"
  when: readiness.problems | length > 0
"""

RETURN = r"""
ready:
  description: Whether no problem was found.
  returned: success
  type: bool
problems:
  description: What is wrong, each with what to do about it.
  returned: success
  type: list
  elements: str
  sample: ["bridge br-private is missing: re-run prepare_hosts.yml"]
summary:
  description: The findings.
  returned: success
  type: dict
  contains:
    libvirt:
      description: C(uri), C(reachable), C(error).
      type: dict
    virt_type:
      description: The recorded C(virt_type), C(kvm_usable), C(reason), C(forced), or V(null).
      type: dict
    free_ram_mb:
      description: MemAvailable in MiB.
      type: int
    free_disk_gb:
      description: Free GiB on the instances path's filesystem.
      type: float
    bridges:
      description: Per bridge C(exists), C(up), C(mtu), C(kind).
      type: dict
    migration_ssh:
      description: Per peer C(address), C(ok), C(error).
      type: dict
    port_security:
      description: C(firewall_driver), C(ok), C(error).
      type: dict
    python:
      description: C(interpreter) and the C(missing) libraries with their import errors.
      type: dict
lines:
  description: The summary as short lines for the play output.
  returned: success
  type: list
  elements: str
  sample: ["libvirt qemu:///system: reachable", "virt type: qemu (/dev/kvm does not exist)", "ready"]
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS, STATE_DIR_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import LIBVIRT_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.network import PORT_SECURITY_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import (
    Peer, ReadinessConfig, bridges_of, check_readiness)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **LIBVIRT_ARGS,
            **INSTANCES_PATH_ARGS,
            **STATE_DIR_ARGS,
            networks=dict(type="dict", default={}),
            peers=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                address=dict(type="str", required=True),
            )),
            ssh_user=dict(type="str", default="root"),
            connect_timeout=dict(type="int", default=5),
            min_free_ram_mb=dict(type="int", default=1024),
            min_free_disk_gb=dict(type="int", default=10),
            python=dict(type="str"),
            **PORT_SECURITY_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        config = params_from_module(
            ReadinessConfig, p, bridges=bridges_of(p["networks"]),
            peers=[Peer(peer["name"], peer["address"]) for peer in p["peers"]],
            python=p["python"] or sys.executable)
        result = check_readiness(config)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    module.exit_json(changed=False, ready=not result["problems"], **result)


if __name__ == "__main__":
    main()
