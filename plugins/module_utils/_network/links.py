# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's links as iproute2 shows them, and the one way this collection creates them.

Both modules that make host networking use this: ``vm_host_network`` (``host_network.py``,
run by host preparation) and ``vm_vif`` (``vif.py``, run when an instance's ports are plugged).
Whichever of them comes first creates the bridge of a network, and the other must find the
same bridge; so the commands that create a bridge, a VLAN and a VXLAN interface, and the
reading of ``ip -j -d link`` output, live here once.

Bridge settings (:data:`BRIDGE_SETTINGS`): STP off and forward delay 0, as Nova's
``linux_net.LinuxBridgeInterfaceDriver.ensure_bridge`` (``brctl setfd 0``, ``stp off``) and
os-vif's linux bridge plugin do. An instance bridge joins taps to one wire (VLAN/VXLAN member);
it is no loop-prone switch fabric, and with the kernel's default forward delay (15 s in
listening plus 15 s in learning) a freshly plugged tap would drop the guest's first DHCP and
ARP frames.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    VXLAN_DEFAULT_PORT)

FLOOD_MAC = "00:00:00:00:00:00"
BRIDGE_SETTINGS = ("stp_state", "0", "forward_delay", "0")
_KERNEL_MODULES = {"vlan": "8021q", "vxlan": "vxlan", "bridge": "bridge"}


@dataclass(frozen=True)
class Link:
    """One network interface as ``ip -j -d link`` shows it."""
    name: str
    kind: Optional[str] = None         # bridge, vlan, vxlan, tun, veth, macvtap; None: a NIC
    mtu: int = 1500
    up: bool = False                   # administratively up (flag UP), not carrier
    master: Optional[str] = None
    parent: Optional[str] = None       # vlan: the link it rides on
    vlan_id: Optional[int] = None
    vxlan_id: Optional[int] = None
    vxlan_local: Optional[str] = None
    vxlan_dev: Optional[str] = None
    vxlan_port: Optional[int] = None
    vxlan_group: Optional[str] = None
    tun_type: Optional[str] = None

    def describe(self) -> str:
        parts = [self.kind or "interface", "up" if self.up else "down", "mtu %d" % self.mtu]
        if self.master:
            parts.append("master %s" % self.master)
        if self.kind == "vlan":
            parts.append("id %s on %s" % (self.vlan_id, self.parent))
        if self.kind == "vxlan":
            parts.append("vni %s local %s dev %s port %s" % (self.vxlan_id, self.vxlan_local,
                                                             self.vxlan_dev, self.vxlan_port))
            if self.vxlan_group:
                parts.append("group %s" % self.vxlan_group)
        return " ".join(parts)


def _json(text: str, what: str) -> list:
    try:
        return json.loads(text or "[]")
    except ValueError as exc:
        raise VirtopsError("cannot read '%s' output: %s" % (what, exc))


def parse_links(text: str) -> Dict[str, Link]:
    """``ip -j -d link show`` output to Link objects by name."""
    links = {}
    for entry in _json(text, "ip -j link"):
        info = entry.get("linkinfo") or {}
        kind = info.get("info_kind")
        data = info.get("info_data") or {}
        link = Link(
            name=entry["ifname"], kind=kind, mtu=int(entry.get("mtu", 1500)),
            up="UP" in (entry.get("flags") or []), master=entry.get("master"),
            parent=entry.get("link") if kind == "vlan" else None,
            vlan_id=data.get("id") if kind == "vlan" else None,
            vxlan_id=data.get("id") if kind == "vxlan" else None,
            vxlan_local=data.get("local") if kind == "vxlan" else None,
            vxlan_dev=data.get("link") if kind == "vxlan" else None,
            vxlan_port=data.get("port") if kind == "vxlan" else None,
            vxlan_group=data.get("group") if kind == "vxlan" else None,
            tun_type=data.get("type") if kind == "tun" else None)
        links[link.name] = link
    return links


def parse_addresses(text: str, family: Optional[str] = "inet") -> Dict[str, List[str]]:
    """``ip -j addr show`` output to {interface: [addresses]}; family None: IPv4 and IPv6."""
    return {e["ifname"]: [a["local"] for a in e.get("addr_info") or []
                          if a.get("local") and (family is None or a.get("family") == family)]
            for e in _json(text, "ip -j addr")}


def parse_flood_entries(text: str) -> List[str]:
    """Remote VTEPs of the all-zero (flood) entries in ``bridge -j fdb show dev <vxlan>``."""
    return sorted({e["dst"] for e in _json(text, "bridge -j fdb")
                   if e.get("mac") == FLOOD_MAC and e.get("dst")})


# --------------------------------------------------------------------------- reading the host

def read_links(ip: str) -> Dict[str, Link]:
    return parse_links(run([ip, "-j", "-d", "link", "show"]).stdout)


def read_link(ip: str, name: str) -> Optional[Link]:
    """One link, or None when there is no such device."""
    result = run([ip, "-j", "-d", "link", "show", "dev", name], check=False)
    if result.rc != 0:
        if "does not exist" in result.stderr or "Cannot find device" in result.stderr:
            return None
        raise VirtopsError("cannot read link %s: %s" % (name, result.stderr.strip()))
    return parse_links(result.stdout).get(name)


def read_addresses(ip: str, family: Optional[str] = "inet") -> Dict[str, List[str]]:
    return parse_addresses(run([ip, "-j", "addr", "show"]).stdout, family)


def read_flood_entries(bridge_cmd: str, member: str) -> List[str]:
    return parse_flood_entries(run([bridge_cmd, "-j", "fdb", "show", "dev", member]).stdout)


def bridge_state(name: str) -> dict:
    """For the readiness summary: exists, up, kind, mtu, ports not listed."""
    link = read_link(find_binary("ip"), name)
    if link is None:
        return {"exists": False, "up": False, "mtu": None, "kind": None}
    return {"exists": True, "up": link.up, "mtu": link.mtu, "kind": link.kind}


# --------------------------------------------------------------------------- making links

def _mtu(mtu: Optional[int]) -> List[str]:
    return ["mtu", str(mtu)] if mtu else []


def add_bridge(ip: str, name: str, mtu: Optional[int] = None) -> List[str]:
    """``ip link add`` of an instance bridge, with :data:`BRIDGE_SETTINGS`."""
    return [ip, "link", "add", "name", name] + _mtu(mtu) + ["type", "bridge"] + list(BRIDGE_SETTINGS)


def add_vlan(ip: str, name: str, parent: str, vlan: int, mtu: Optional[int] = None) -> List[str]:
    return [ip, "link", "add", "link", parent, "name", name] + _mtu(mtu) + [
        "type", "vlan", "id", str(vlan)]


def add_vxlan(ip: str, name: str, vni: int, mtu: Optional[int] = None,
              local: Optional[str] = None, dev: Optional[str] = None,
              port: Optional[int] = None, group: Optional[str] = None) -> List[str]:
    """A VXLAN interface; without ``local`` the kernel picks the source address by route."""
    argv = [ip, "link", "add", "name", name] + _mtu(mtu) + ["type", "vxlan", "id", str(vni)]
    if local:
        argv += ["local", local]
    if dev:
        argv += ["dev", dev]
    argv += ["dstport", str(port or VXLAN_DEFAULT_PORT)]
    if group:
        argv += ["group", group]
    return argv


def set_up(ip: str, name: str) -> List[str]:
    return [ip, "link", "set", "dev", name, "up"]


def set_master(ip: str, name: str, bridge: str) -> List[str]:
    return [ip, "link", "set", "dev", name, "master", bridge]


def set_mtu(ip: str, name: str, mtu: int) -> List[str]:
    return [ip, "link", "set", "dev", name, "mtu", str(mtu)]


def flood_to(bridge_cmd: str, member: str, peer: str) -> List[str]:
    """A VXLAN head-end replication entry, as the Linux bridge agent writes it."""
    return [bridge_cmd, "fdb", "append", FLOOD_MAC, "dev", member, "dst", peer]


def stop_flooding_to(bridge_cmd: str, member: str, peer: str) -> List[str]:
    return [bridge_cmd, "fdb", "del", FLOOD_MAC, "dev", member, "dst", peer]


def run_link_command(argv: Sequence[str], what: str) -> None:
    """Run one command; a kernel without the link type gets the modprobe that fixes it."""
    try:
        run(list(argv))
    except VirtopsError as exc:
        if "Unknown device type" in exc.msg and "type" in argv:
            kind = argv[list(argv).index("type") + 1]
            module = _KERNEL_MODULES.get(kind, kind)
            raise VirtopsError("%s: this kernel cannot create %s links (%s): load the kernel "
                               "module %s (modprobe %s)" % (what, kind, exc.msg, module, module))
        raise
