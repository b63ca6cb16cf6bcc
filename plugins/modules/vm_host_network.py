#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_host_network
short_description: Create the bridge (and VLAN or VXLAN member) a fleet network declares
version_added: 0.1.0
description:
  - Makes the host side of one entry of the inventory's C(networks) exist, the way Nova's
    linux_net did for bridged networks. Takes the entry's keys as options; keys it does not use
    (C(cidr), C(gateway), C(dns)) are not options.
  - V(bridge) networks get a Linux bridge; V(vlan) networks also a member C(vlan<id>) on
    O(physical_interface); V(vxlan) networks a member C(vxlan-<id>), with an all-zero forwarding
    entry per O(vxlan_peers) address (the host's own addresses are skipped) or a multicast
    O(vxlan_group).
  - Links that exist are left alone (MTU, other ports); only a link that is down is set up and a
    member without a bridge is put into its bridge. A member of another kind or id, or in
    another bridge, fails with a message naming the conflict.
  - New bridges get no STP and no forward delay, as Nova's bridges do, the same as the bridges
    M(virtops.compute.vm_vif) creates.
  - The options are checked by the same rules as the network's entry in the
    P(virtops.compute.ports#lookup) lookup.
  - V(network), V(direct) and V(ethernet) networks need nothing on the host here; the module
    reports no change for them.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.attributes
options:
  name:
    description: Name of the network (the key in C(networks)), for messages.
    type: str
    required: true
  bridge:
    description: Bridge name (at most 15 characters). Required for V(bridge), V(vlan) and V(vxlan).
    type: str
  vif_type:
    description: How instances attach to the network.
    type: str
    choices: [bridge, vlan, vxlan, network, direct, ethernet]
    default: bridge
  mtu:
    description: MTU given to links this module creates. Existing links keep theirs (a warning names a mismatch).
    type: int
  vlan:
    description: VLAN id (1-4094) of a V(vlan) network.
    type: int
  vxlan_id:
    description: VXLAN network identifier (1-16777215) of a V(vxlan) network.
    type: int
  physical_interface:
    description:
      - Interface carrying the VLAN, or the VXLAN tunnel. Required for V(vlan) and V(vxlan).
    type: str
  vxlan_peers:
    description: Unicast VTEP addresses of the other hosts of a V(vxlan) network.
    type: list
    elements: str
    default: []
  vxlan_group:
    description: Multicast group of a V(vxlan) network (instead of O(vxlan_peers), not with it).
    type: str
  vxlan_port:
    description: UDP port of a V(vxlan) network.
    type: int
    default: 4789
  create_bridge:
    description:
      - V(false) when the bridge is the operator's; a missing bridge is then an error, not created.
    type: bool
    default: true
notes:
  - Links are created with C(ip link) and are not persistent across reboots; run the role from
    boot, or declare the same links in the host's network configuration.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Bridges of every network in the inventory
  virtops.compute.vm_host_network:
    name: "{{ item.key }}"
    bridge: "{{ item.value.bridge | default(omit) }}"
    vif_type: "{{ item.value.vif_type | default('bridge') }}"
    mtu: "{{ item.value.mtu | default(omit) }}"
    vlan: "{{ item.value.vlan | default(omit) }}"
    physical_interface: "{{ item.value.physical_interface | default(omit) }}"
  loop: "{{ networks | dict2items }}"

- name: A VXLAN overlay between three hosts
  virtops.compute.vm_host_network:
    name: overlay
    bridge: br-overlay
    vif_type: vxlan
    vxlan_id: 1001
    physical_interface: eth0
    vxlan_peers: [192.0.2.11, 192.0.2.12, 192.0.2.13]
"""

RETURN = r"""
bridge:
  description: The bridge of the network (V(null) for networks without one).
  returned: always
  type: str
  sample: br-private
member:
  description: The VLAN or VXLAN member interface, if any.
  returned: always
  type: str
  sample: vlan20
commands:
  description: The commands run (in check mode, that would run), as an operator would type them.
  returned: always
  type: list
  elements: str
  sample: ["ip link add name br-private mtu 1500 type bridge stp_state 0 forward_delay 0",
           "ip link set dev br-private up"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec
from ansible_collections.virtops.compute.plugins.module_utils._network.host_network import (
    ensure_network)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            bridge=dict(type="str"),
            vif_type=dict(type="str", default="bridge",
                          choices=["bridge", "vlan", "vxlan", "network", "direct", "ethernet"]),
            mtu=dict(type="int"),
            vlan=dict(type="int"),
            vxlan_id=dict(type="int"),
            physical_interface=dict(type="str"),
            vxlan_peers=dict(type="list", elements="str", default=[]),
            vxlan_group=dict(type="str"),
            vxlan_port=dict(type="int", default=4789),
            create_bridge=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        spec = params_from_module(NetworkSpec, p, vxlan_peers=tuple(p["vxlan_peers"]))
        plan = ensure_network(spec, check_mode=module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    for warning in plan.warnings:
        module.warn(warning)
    module.exit_json(changed=plan.changed, bridge=plan.bridge, member=plan.member,
                     commands=plan.describe())


if __name__ == "__main__":
    main()
