# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: ports
author: virtops.compute contributors (@virtops)
short_description: Allocate ports (MAC, device name, fixed IPs) for new instances
description:
  - Gives every NIC an instance asks for a port, the way Neutron does for Nova, and returns the
    instance's Nova-shaped C(network_info) for M(virtops.compute.vm_vif),
    M(virtops.compute.vm_xml) and the config drive. Runs on the controller and changes nothing.
  - "A port has an id (a UUID derived from the instance UUID and the NIC's index, so the same
    boot run again gets the same port; random when no uuid is given), a MAC with Nova's
    C(fa:16:3e) prefix derived from the port id, a device name C(tap) + port id cut to 14
    characters, and one fixed IP from the network's C(cidr)."
  - Addresses are unique across the fleet. Taken are the addresses the host facts list for
    every instance (C(instances[].ips), and C(instances[].network_info) where present), those
    in O(allocated), and those given to earlier instances of the same call. Allocate every
    instance of a run in one call, or pass earlier results as O(allocated).
  - An automatic address is the lowest free one of the network's C(allocation_pools) (default
    the whole subnet), never the network, broadcast or gateway address. A requested
    C(fixed_ip) is honoured when it is a free host address of the subnet (it may lie outside
    the pools), else the lookup fails naming who holds it.
  - A NIC whose port is recorded in the instance's C(network_info) keeps it (id, MAC and
    addresses); the addresses the host facts list for the same instance (matched by uuid or
    name) are given back to it before any new one.
  - Networks are described in C(docs/networking.md).
options:
  networks:
    description:
      - The C(networks) catalog, network name to definition (C(cidr), C(gateway), C(dns),
        C(mtu), C(vif_type), C(bridge), C(create_bridge), C(vlan), C(vxlan_id),
        C(vxlan_peers), C(vxlan_group), C(vxlan_port), C(physical_interface),
        C(port_security), C(allocation_pools), C(routes), C(id)).
    type: dict
    required: true
  instances:
    description:
      - The instances to allocate for, in order. Each has C(name) and/or C(uuid),
        C(networks) (a list of C({network, fixed_ip, mac}) or network names, as in the
        server's C(networks)) and optionally C(network_info), the ports already recorded.
    type: list
    elements: dict
    required: true
  hosts:
    description:
      - Host facts of the fleet (as M(virtops.compute.vm_host_facts) returns them), a list or
        a mapping host name to facts. Only C(instances) is read.
    type: raw
  allocated:
    description:
      - Allocations made earlier in the same run that the host facts do not show yet, that is
        results of an earlier call of this lookup, or plain IP addresses.
    type: list
    elements: raw
    default: []
notes:
  - Two controllers allocating at the same moment from the same facts could pick the same
    address; run one boot play at a time per network, as with the scheduler.
"""

EXAMPLES = r"""
- name: Ports for web1 and web2, unique across the fleet
  ansible.builtin.set_fact:
    ports: >-
      {{ query('virtops.compute.ports', networks=networks,
               hosts=groups['compute'] | map('extract', hostvars, 'virtops_host') | list,
               instances=[{'name': 'web1', 'uuid': uuid1,
                           'networks': [{'network': 'private'}]},
                          {'name': 'web2', 'uuid': uuid2,
                           'networks': [{'network': 'private', 'fixed_ip': '10.10.0.50'}]}]) }}

- name: Plug web1's ports on its host
  virtops.compute.vm_vif:
    network_info: "{{ ports[0].network_info }}"
"""

RETURN = r"""
_list:
  description: One allocation per instance, in request order.
  type: list
  elements: dict
  contains:
    name:
      description: The instance name (its uuid when no name was given).
      type: str
    uuid:
      description: The instance uuid, or null.
      type: str
    ips:
      description: The fixed IPs of all its ports, in NIC order.
      type: list
      elements: str
      sample: [10.10.0.2]
    macs:
      description: The MACs of its ports, in NIC order.
      type: list
      elements: str
      sample: ["fa:16:3e:4c:2a:01"]
    network_info:
      description: Nova-shaped network_info, one entry per NIC.
      type: list
      elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._network.ipam import allocate_ports


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("virtops.compute.ports takes no positional terms; pass "
                                     "networks=, instances=, hosts= and allocated=")
        self.set_options(var_options=variables, direct=kwargs)
        try:
            allocations = allocate_ports(self.get_option("networks"),
                                         self.get_option("instances"),
                                         hosts=self.get_option("hosts"),
                                         allocated=self.get_option("allocated") or [])
        except VirtopsError as exc:
            raise AnsibleLookupError(exc.msg) from exc
        return [allocation.to_dict() for allocation in allocations]
