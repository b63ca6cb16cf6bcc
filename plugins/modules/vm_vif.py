#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_vif
short_description: Plug an instance's VIFs into the compute host's networks
version_added: 0.1.0
description:
  - Makes the host ready for the ports of an instance, the way Nova's libvirt driver does in
    C(plug_vifs) with Neutron's Linux bridge agent, and gives filtered ports their
    anti-spoofing rules. It changes only what differs, so a second run reports no change.
  - "Per VIF type (C(network_info[].type)): C(bridge): the bridge C(network.bridge) exists, is
    up and has the network's MTU. C(vlan): the same bridge plus a VLAN interface with the
    network's id on C(network.meta.physical_interface), enslaved to the bridge; an existing one
    is used whatever its name, a new one is called C(vlan<id>) as in Nova. C(vxlan): the same
    bridge plus a VXLAN interface C(vxlan-<vni>) whose local endpoint is the first IPv4 address
    of C(network.meta.physical_interface) (one made without a local address is accepted), with
    one flood entry per peer of C(network.meta.vxlan_peers) (head-end replication; flood
    entries for hosts no longer listed are removed) or the multicast
    C(network.meta.vxlan_group). C(ethernet): a tap named after the port's C(devname), up,
    with the network's MTU. C(network): the libvirt network named like the network's label is
    started if it is inactive. C(direct) (macvtap): the physical interface exists and is up."
  - New bridges get no STP and no forward delay, so a new tap forwards at once.
  - A network with C(network.meta.create_bridge=false) uses a bridge that belongs to the
    operator. It must exist, and it is never changed; when it is down or its MTU differs the
    module warns. M(virtops.compute.vm_domain) then waits for the bridge to come up before it
    resumes the guest.
  - "When a port asks for filtering (C(details.port_filter), from the network's
    C(port_security)) and O(firewall_driver=nftables), the port gets its own chain
    C(port-<devname>) in the nftables table C(bridge virtops), reached from a chain on the bridge
    C(prerouting) hook by the tap's name, so the rules exist before libvirt creates the tap.
    All ports of a run are written in one C(nft -f -) transaction, and only when they differ
    from what the table holds (a digest of each port's rules is kept in its chain). A port whose
    addresses changed gets its chain rewritten; a port no longer filtered loses it."
  - With O(firewall_driver=nwfilter) the libvirt nwfilter O(nwfilter) must exist. The domain
    XML references it with the port's IP (see M(virtops.compute.vm_xml)), and libvirt's
    C(clean-traffic) then drops frames whose source MAC, source IP or ARP sender is not the
    port's.
  - With O(state=absent), only what belongs to the ports alone is removed, that is the taps of
    C(ethernet) ports and the ports' nftables chains and map entries (whatever
    O(firewall_driver) says). Bridges, VLAN and VXLAN interfaces, and the table C(bridge virtops)
    with its dispatch chain, are shared by all instances and stay.
  - "C(ethernet) ports are taps on no bridge: the bridge family's rules never see their
    traffic, which the module says in a warning."
  - Fails with a clear message when a bridge is missing and may not be created, when an
    interface exists with another configuration (another VLAN id, another VNI or endpoint,
    another bridge), when a physical interface is missing, or when two ports share a MAC or a
    device name.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.URI
  - virtops.compute.port_security
options:
  network_info:
    description:
      - The instance's ports in Nova's network_info shape, as the
        P(virtops.compute.ports#lookup) lookup returns them (see C(docs/networking.md)).
    type: list
    elements: dict
    required: true
  state:
    description:
      - V(present) plugs the ports. V(absent) unplugs them.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads the host and reports the steps it would run, without running them.
  diff_mode:
    support: full
    description: Shows each device the module changes (or would change), before and after.
  idempotent:
    support: full
    description: A second run with the same O(network_info) reports no change.
requirements:
  - iproute2 (C(ip) and C(bridge)) on the compute host
  - nftables (C(nft)) on the compute host, when a port asks for filtering with
    O(firewall_driver=nftables)
  - python3-libvirt, when a port uses a libvirt network or asks for filtering with
    O(firewall_driver=nwfilter)
notes:
  - O(libvirt_uri) is opened only to check the nwfilter (O(firewall_driver=nwfilter)) and to
    start libvirt networks.
  - "See a host's rules with C(nft list table bridge virtops)."
  - Run it as root on the compute host. Bridges and interfaces live in the host's network
    namespace.
  - VLAN interfaces need the kernel's 8021q support. VXLAN needs the vxlan module and UDP
    C(network.meta.vxlan_port) (default 4789) open between the hosts.
  - "For C(ethernet) ports the tap exists before the domain starts, as in Nova. The domain XML
    must then say C(<target dev='...' managed='no'/>); libvirt refuses to start a domain
    whose managed tap already exists."
seealso:
  - module: virtops.compute.vm_xml
  - module: virtops.compute.vm_domain
  - plugin: virtops.compute.ports
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Allocate ports for web1 on the controller
  ansible.builtin.set_fact:
    web1_ports: >-
      {{ query('virtops.compute.ports', networks=networks, hosts=fleet_facts,
               instances=[{'name': 'web1', 'uuid': web1_uuid,
                           'networks': [{'network': 'private'}]}]) | first }}

- name: Plug them on the chosen host
  virtops.compute.vm_vif:
    network_info: "{{ web1_ports.network_info }}"
  delegate_to: "{{ chosen_host }}"

- name: Remove the taps of ethernet ports after the domain is gone
  virtops.compute.vm_vif:
    network_info: "{{ instance_record.network_info }}"
    state: absent
"""

RETURN = r"""
actions:
  description: The steps run, or in check mode the steps that would run, in order.
  returned: always
  type: list
  elements: str
  sample:
    - create bridge brq4f0c1a2b-3c (mtu 1450)
    - create VXLAN 42 interface vxlan-42 (local 10.0.0.11 on eth0, port 4789)
    - attach vxlan-42 to bridge brq4f0c1a2b-3c
    - flood vxlan-42 traffic to VTEP 10.0.0.12
    - "filter port 6f1c2d0e-9a1b-4c3d-8e7f-0a1b2c3d4e5f on tap6f1c2d0e-9a: mac fa:16:3e:12:34:56,
      ipv4 10.10.0.5"
vifs:
  description: The ports handled.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Port id.
      type: str
    devname:
      description: Tap device name the domain uses.
      type: str
      sample: tap6f1c2d0e-9a
    address:
      description: The port's MAC.
      type: str
      sample: fa:16:3e:12:34:56
    vif_type:
      description: VIF type.
      type: str
      sample: vxlan
    bridge:
      description: Bridge the tap joins, or null.
      type: str
    network:
      description: Network label.
      type: str
    fixed_ips:
      description: The port's addresses.
      type: list
      elements: str
    port_filter:
      description: Whether the port gets the anti-spoofing filter.
      type: bool
timings:
  description: Seconds the module spent reading and changing the host (C(total)).
  returned: always
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LIBVIRT_ARGS, LIBVIRT_IMPORT_ERROR, connect)
from ansible_collections.virtops.compute.plugins.module_utils._model.network import PORT_SECURITY_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    parse_network_info)
from ansible_collections.virtops.compute.plugins.module_utils._network.vif import plug_vifs, unplug_vifs


def run_module(module: AnsibleModule) -> dict:
    params = module.params
    vifs = parse_network_info(params["network_info"])
    driver = params["firewall_driver"]
    started = time.monotonic()
    if params["state"] == "absent":
        result = unplug_vifs(vifs, check_mode=module.check_mode)
    elif any(v.vif_type == "network" or (v.port_filter and driver == "nwfilter") for v in vifs):
        if not HAS_LIBVIRT:
            module.fail_json(msg=missing_required_lib("libvirt-python (python3-libvirt)"),
                             exception=LIBVIRT_IMPORT_ERROR)
        with connect(params["libvirt_uri"]) as conn:
            result = plug_vifs(vifs, conn=conn, check_mode=module.check_mode,
                               nwfilter=params["nwfilter"], firewall_driver=driver)
    else:
        result = plug_vifs(vifs, check_mode=module.check_mode, nwfilter=params["nwfilter"],
                           firewall_driver=driver)
    for warning in result.warnings:
        module.warn(warning)
    output = result.as_module_result()
    output["timings"] = {"total": round(time.monotonic() - started, 3)}
    if module._diff:
        output["diff"] = {"before": result.before, "after": result.after}
    return output


def main():
    module = AnsibleModule(
        argument_spec=dict(
            network_info=dict(type="list", elements="dict", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **PORT_SECURITY_ARGS,
            **LIBVIRT_ARGS,
        ),
        supports_check_mode=True,
    )
    try:
        output = run_module(module)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    module.exit_json(**output)


if __name__ == "__main__":
    main()
