# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-side network plumbing for the fleet's ``networks``: a Linux bridge per network, with a
VLAN or VXLAN member when the network asks for one.

Links are created when missing and otherwise left alone: an existing bridge keeps its MTU and
ports (it may be the operator's). Only what is plainly broken is repaired: a bridge or member
that is administratively down is set up, a member without a master is put into its bridge. A
member that exists with a different kind or id, or in another bridge, is a conflict the operator
must resolve; it is reported, never rewritten.

Member names follow Nova's linux_net: ``vlan<id>`` on the physical interface, ``vxlan-<id>``.
Unicast VXLAN peers become all-zero forwarding entries (``bridge fdb append``), as the Linux
bridge agent does; the host's own addresses are skipped, so one list serves the whole fleet.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary
from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec
from ansible_collections.virtops.compute.plugins.module_utils._network import links


@dataclass
class NetworkPlan:
    """What ensure_network did (or, in check mode, would do)."""
    network: str
    bridge: Optional[str]
    member: Optional[str]
    actions: List[List[str]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def describe(self) -> List[str]:
        """The commands as an operator would type them (``ip link add ...``)."""
        return [" ".join([argv[0].rsplit("/", 1)[-1]] + list(argv[1:])) for argv in self.actions]


def plan_network(spec: NetworkSpec) -> NetworkPlan:
    """Compare the host with ``spec``; return the commands that make it so."""
    spec.validate()
    plan = NetworkPlan(spec.name, spec.bridge, spec.member)
    if not spec.bridged:
        return plan
    ip = find_binary("ip")
    bridge = links.read_link(ip, spec.bridge)
    if bridge is None:
        if not spec.create_bridge:
            raise VirtopsError("network %s: bridge %s does not exist and create_bridge is false: "
                               "create it (it is the operator's) or set create_bridge: true"
                               % (spec.name, spec.bridge))
        plan.actions.append(links.add_bridge(ip, spec.bridge, spec.mtu))
        plan.actions.append(links.set_up(ip, spec.bridge))
    else:
        if bridge.kind != "bridge":
            raise VirtopsError("network %s: %s exists but is a %s, not a bridge: rename the "
                               "network's bridge or remove that link"
                               % (spec.name, spec.bridge, bridge.kind or "physical interface"))
        if not bridge.up:
            plan.actions.append(links.set_up(ip, spec.bridge))
        if spec.mtu and bridge.mtu != spec.mtu:
            plan.warnings.append("bridge %s has mtu %d, network %s declares %d; left as it is"
                                 % (spec.bridge, bridge.mtu, spec.name, spec.mtu))
    if spec.member:
        _plan_member(spec, plan, ip)
    return plan


def _add_member(ip: str, spec: NetworkSpec) -> List[str]:
    if spec.vif_type == "vlan":
        return links.add_vlan(ip, spec.member, spec.physical_interface, spec.vlan, spec.mtu)
    # No local address: the kernel picks the source by route (vm_vif accepts such a member).
    return links.add_vxlan(ip, spec.member, spec.vxlan_id, spec.mtu,
                           dev=spec.physical_interface, port=spec.vxlan_port,
                           group=spec.vxlan_group)


def _plan_member(spec: NetworkSpec, plan: NetworkPlan, ip: str) -> None:
    member_name = spec.member
    if spec.physical_interface and links.read_link(ip, spec.physical_interface) is None:
        raise VirtopsError("network %s: physical interface %s does not exist on this host: set "
                           "physical_interface to one that does" % (spec.name, spec.physical_interface))
    member = links.read_link(ip, member_name)
    bridge_cmd = find_binary("bridge") if spec.vif_type == "vxlan" else "bridge"
    if member is None:
        plan.actions.append(_add_member(ip, spec))
        plan.actions.append(links.set_master(ip, member_name, spec.bridge))
        plan.actions.append(links.set_up(ip, member_name))
        existing_dsts: List[str] = []
    else:
        expected_id = spec.vlan if spec.vif_type == "vlan" else spec.vxlan_id
        actual_id = member.vlan_id if spec.vif_type == "vlan" else member.vxlan_id
        if member.kind != spec.vif_type or actual_id != expected_id:
            raise VirtopsError("network %s: %s exists as %s id %s, not %s id %s: remove it or "
                               "fix the network" % (spec.name, member_name, member.kind, actual_id,
                                                    spec.vif_type, expected_id))
        if spec.vif_type == "vlan" and member.parent and member.parent != spec.physical_interface:
            raise VirtopsError("network %s: %s sits on %s, not on %s: remove it or fix "
                               "physical_interface" % (spec.name, member_name, member.parent,
                                                       spec.physical_interface))
        if member.master is None:
            plan.actions.append(links.set_master(ip, member_name, spec.bridge))
        elif member.master != spec.bridge:
            raise VirtopsError("network %s: %s is a port of bridge %s, not of %s: move it or fix "
                               "the network" % (spec.name, member_name, member.master, spec.bridge))
        if not member.up:
            plan.actions.append(links.set_up(ip, member_name))
        existing_dsts = (links.read_flood_entries(bridge_cmd, member_name)
                         if spec.vif_type == "vxlan" else [])
    if spec.vif_type == "vxlan" and spec.vxlan_peers:
        own = {a for addresses in links.read_addresses(ip, family=None).values()
               for a in addresses}
        for peer in spec.vxlan_peers:
            if peer in own or peer in existing_dsts:
                continue
            plan.actions.append(links.flood_to(bridge_cmd, member_name, peer))


def ensure_network(spec: NetworkSpec, check_mode: bool = False) -> NetworkPlan:
    plan = plan_network(spec)
    if not check_mode:
        for argv in plan.actions:
            links.run_link_command(argv, "network %s" % spec.name)
    return plan
