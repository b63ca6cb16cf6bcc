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

import ipaddress
import json
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run

IFNAMSIZ = 15
BRIDGED_VIF_TYPES = ("bridge", "vlan", "vxlan")
OTHER_VIF_TYPES = ("network", "direct", "ethernet")
VXLAN_DEFAULT_PORT = 4789
ZERO_MAC = "00:00:00:00:00:00"


@dataclass(frozen=True)
class Link:
    """What ``ip -d link show`` says about one interface."""
    name: str
    kind: Optional[str]          # bridge, vlan, vxlan, veth ... (None for a physical NIC)
    up: bool                     # administratively up (flag UP), not carrier
    mtu: int
    master: Optional[str] = None
    vlan_id: Optional[int] = None
    vxlan_id: Optional[int] = None
    parent: Optional[str] = None

    @classmethod
    def from_ip_json(cls, data: dict) -> "Link":
        info = data.get("linkinfo") or {}
        kind = info.get("info_kind")
        info_data = info.get("info_data") or {}
        return cls(
            name=data["ifname"],
            kind=kind,
            up="UP" in (data.get("flags") or []),
            mtu=int(data.get("mtu") or 0),
            master=data.get("master"),
            vlan_id=info_data.get("id") if kind == "vlan" else None,
            vxlan_id=info_data.get("id") if kind == "vxlan" else None,
            parent=data.get("link"),
        )


def _ip() -> str:
    return find_binary("ip")


def get_link(name: str) -> Optional[Link]:
    result = run([_ip(), "-j", "-d", "link", "show", "dev", name], check=False)
    if result.rc != 0:
        if "does not exist" in result.stderr or "Cannot find device" in result.stderr:
            return None
        raise VirtopsError("cannot read link %s: %s" % (name, result.stderr.strip()))
    links = json.loads(result.stdout or "[]")
    return Link.from_ip_json(links[0]) if links else None


def local_addresses() -> List[str]:
    result = run([_ip(), "-j", "addr", "show"])
    addresses = []
    for link in json.loads(result.stdout or "[]"):
        for addr in link.get("addr_info") or []:
            if addr.get("local"):
                addresses.append(addr["local"])
    return addresses


def vxlan_fdb_destinations(member: str) -> List[str]:
    result = run([find_binary("bridge"), "-j", "fdb", "show", "dev", member])
    return [entry["dst"] for entry in json.loads(result.stdout or "[]")
            if entry.get("mac") == ZERO_MAC and entry.get("dst")]


@dataclass(frozen=True)
class NetworkSpec:
    """One entry of the inventory's ``networks`` as far as the host is concerned."""
    name: str
    bridge: Optional[str] = None
    vif_type: str = "bridge"
    mtu: Optional[int] = None
    vlan: Optional[int] = None
    vxlan_id: Optional[int] = None
    physical_interface: Optional[str] = None
    vxlan_peers: Sequence[str] = field(default_factory=tuple)
    vxlan_group: Optional[str] = None
    vxlan_port: Optional[int] = None
    create_bridge: bool = True

    @property
    def bridged(self) -> bool:
        return self.vif_type in BRIDGED_VIF_TYPES

    @property
    def member(self) -> Optional[str]:
        if self.vif_type == "vlan":
            return "vlan%d" % self.vlan
        if self.vif_type == "vxlan":
            return "vxlan-%d" % self.vxlan_id
        return None

    def validate(self) -> None:
        where = "network %s" % self.name
        if self.vif_type not in BRIDGED_VIF_TYPES + OTHER_VIF_TYPES:
            raise VirtopsError("%s: vif_type must be one of %s, not %r"
                               % (where, ", ".join(BRIDGED_VIF_TYPES + OTHER_VIF_TYPES),
                                  self.vif_type))
        if not self.bridged:
            return
        if not self.bridge:
            raise VirtopsError("%s: vif_type %s needs a bridge name" % (where, self.vif_type))
        for ifname in (self.bridge, self.member, self.physical_interface):
            if ifname and (len(ifname) > IFNAMSIZ or "/" in ifname or " " in ifname):
                raise VirtopsError("%s: %r is not a valid interface name (at most %d characters, "
                                   "no '/' or spaces)" % (where, ifname, IFNAMSIZ))
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            raise VirtopsError("%s: mtu %s is out of range 68-65535" % (where, self.mtu))
        if self.vif_type == "vlan":
            if self.vlan is None or not 1 <= self.vlan <= 4094:
                raise VirtopsError("%s: a vlan network needs vlan (1-4094), not %r"
                                   % (where, self.vlan))
            if not self.physical_interface:
                raise VirtopsError("%s: a vlan network needs physical_interface" % where)
        if self.vif_type == "vxlan":
            if self.vxlan_id is None or not 1 <= self.vxlan_id <= 16777215:
                raise VirtopsError("%s: a vxlan network needs vxlan_id (1-16777215), not %r"
                                   % (where, self.vxlan_id))
            if not self.vxlan_group and not self.vxlan_peers:
                raise VirtopsError("%s: a vxlan network needs vxlan_group (multicast) or "
                                   "vxlan_peers (unicast VTEP addresses)" % where)
            if self.vxlan_group and not self.physical_interface:
                raise VirtopsError("%s: multicast vxlan (vxlan_group) needs physical_interface"
                                   % where)
            for address in list(self.vxlan_peers) + ([self.vxlan_group] if self.vxlan_group else []):
                try:
                    ipaddress.ip_address(address)
                except ValueError:
                    raise VirtopsError("%s: %r is not an IP address" % (where, address))


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


def _member_add_argv(ip: str, spec: NetworkSpec) -> List[str]:
    member = spec.member
    if spec.vif_type == "vlan":
        argv = [ip, "link", "add", "link", spec.physical_interface, "name", member]
        if spec.mtu:
            argv += ["mtu", str(spec.mtu)]
        return argv + ["type", "vlan", "id", str(spec.vlan)]
    argv = [ip, "link", "add", "name", member]
    if spec.mtu:
        argv += ["mtu", str(spec.mtu)]
    argv += ["type", "vxlan", "id", str(spec.vxlan_id),
             "dstport", str(spec.vxlan_port or VXLAN_DEFAULT_PORT)]
    if spec.physical_interface:
        argv += ["dev", spec.physical_interface]
    if spec.vxlan_group:
        argv += ["group", spec.vxlan_group]
    return argv


def plan_network(spec: NetworkSpec) -> NetworkPlan:
    """Compare the host with ``spec``; return the commands that make it so."""
    spec.validate()
    plan = NetworkPlan(spec.name, spec.bridge, spec.member)
    if not spec.bridged:
        return plan
    ip = _ip()
    bridge = get_link(spec.bridge)
    if bridge is None:
        if not spec.create_bridge:
            raise VirtopsError("network %s: bridge %s does not exist and create_bridge is false: "
                               "create it (it is the operator's) or set create_bridge: true"
                               % (spec.name, spec.bridge))
        argv = [ip, "link", "add", "name", spec.bridge]
        if spec.mtu:
            argv += ["mtu", str(spec.mtu)]
        plan.actions.append(argv + ["type", "bridge"])
        plan.actions.append([ip, "link", "set", "dev", spec.bridge, "up"])
    else:
        if bridge.kind != "bridge":
            raise VirtopsError("network %s: %s exists but is a %s, not a bridge: rename the "
                               "network's bridge or remove that link"
                               % (spec.name, spec.bridge, bridge.kind or "physical interface"))
        if not bridge.up:
            plan.actions.append([ip, "link", "set", "dev", spec.bridge, "up"])
        if spec.mtu and bridge.mtu != spec.mtu:
            plan.warnings.append("bridge %s has mtu %d, network %s declares %d; left as it is"
                                 % (spec.bridge, bridge.mtu, spec.name, spec.mtu))
    if spec.member:
        _plan_member(spec, plan, ip)
    return plan


def _plan_member(spec: NetworkSpec, plan: NetworkPlan, ip: str) -> None:
    member_name = spec.member
    if spec.physical_interface and get_link(spec.physical_interface) is None:
        raise VirtopsError("network %s: physical interface %s does not exist on this host: set "
                           "physical_interface to one that does" % (spec.name, spec.physical_interface))
    member = get_link(member_name)
    if member is None:
        plan.actions.append(_member_add_argv(ip, spec))
        plan.actions.append([ip, "link", "set", "dev", member_name, "master", spec.bridge])
        plan.actions.append([ip, "link", "set", "dev", member_name, "up"])
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
            plan.actions.append([ip, "link", "set", "dev", member_name, "master", spec.bridge])
        elif member.master != spec.bridge:
            raise VirtopsError("network %s: %s is a port of bridge %s, not of %s: move it or fix "
                               "the network" % (spec.name, member_name, member.master, spec.bridge))
        if not member.up:
            plan.actions.append([ip, "link", "set", "dev", member_name, "up"])
        existing_dsts = vxlan_fdb_destinations(member_name) if spec.vif_type == "vxlan" else []
    if spec.vif_type == "vxlan" and spec.vxlan_peers:
        own = set(local_addresses())
        for peer in spec.vxlan_peers:
            if peer in own or peer in existing_dsts:
                continue
            plan.actions.append([find_binary("bridge"), "fdb", "append", ZERO_MAC, "dev",
                                 member_name, "dst", peer])


def ensure_network(spec: NetworkSpec, check_mode: bool = False) -> NetworkPlan:
    plan = plan_network(spec)
    if not check_mode:
        for argv in plan.actions:
            try:
                run(argv)
            except VirtopsError as exc:
                if "Unknown device type" in exc.msg and "type" in argv:
                    kind = argv[argv.index("type") + 1]
                    module = {"vlan": "8021q", "vxlan": "vxlan", "bridge": "bridge"}.get(kind, kind)
                    raise VirtopsError("network %s: this kernel cannot create %s links (%s): load "
                                       "the kernel module %s (modprobe %s)"
                                       % (spec.name, kind, exc.msg, module, module))
                raise
    return plan


def bridge_state(name: str) -> dict:
    """For the readiness summary: exists, up, kind, mtu, ports not listed."""
    link = get_link(name)
    if link is None:
        return {"exists": False, "up": False, "mtu": None, "kind": None}
    return {"exists": True, "up": link.up, "mtu": link.mtu, "kind": link.kind}
