# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host side of a VIF: bridges, VLAN and VXLAN members, taps, libvirt networks, port filters.

Nova's ``plug_vifs`` for the libvirt driver, without Neutron. ``plan_plug`` compares a
snapshot of the host (:class:`HostSnapshot`, read with ``ip -j`` and ``bridge -j``) with what
network_info asks for and returns the steps that close the gap; ``apply`` runs them. Check
mode is "plan, do not apply". ``check_plugged`` is our "network-vif-plugged" event: a tap
exists, is up, and hangs off the bridge it should, which is up, and a filtered port's
anti-spoofing rules are in force.

Port security (``details.port_filter``) has two drivers (``firewall_driver``). ``nftables``
(the default): plug writes each filtered port's rules into the table ``bridge virtops``
(``port_filter.py``), as Neutron's firewall drivers own the rules of the ports they bind, and
unplug removes them. ``nwfilter``: libvirt's ``clean-traffic``, referenced by the domain XML
and instantiated by libvirt at every start; plug only checks that libvirt has the filter.

Bridges and their VLAN/VXLAN members are shared by every instance on the network, so unplug
never removes them; it removes the taps plug created for ``ethernet`` VIFs and the ports'
anti-spoofing rules (whatever the driver: rules left by an earlier ``nftables`` plug go too).
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection as _libvirt
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.result import Outcome
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    BRIDGED_VIF_TYPES, DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER, IFNAMSIZ, VXLAN_DEFAULT_PORT,
    valid_firewall_driver, vlan_ifname, vxlan_ifname)
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import Vif
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._network import links
from ansible_collections.virtops.compute.plugins.module_utils._network.links import Link
from ansible_collections.virtops.compute.plugins.module_utils._network.port_filter import (
    FilterSnapshot, Nft, PortFilter, RemovedPort, plan_port_filters)

IFF_UP = 0x1
VXLAN_OVERHEAD = 50          # outer Ethernet + IPv4 + UDP + VXLAN headers
SYSFS_NET = "/sys/class/net"
LOCK_DIRS = ("/run/lock", "/var/lock", "/tmp")
LOCK_NAME = "virtops-vif.lock"


@dataclass
class HostSnapshot:
    """What the plan needs to know about the host. Built by :func:`read_host` or by tests."""
    links: Dict[str, Link]
    ipv4: Dict[str, List[str]] = field(default_factory=dict)
    flood: Dict[str, List[str]] = field(default_factory=dict)     # vxlan dev -> remote VTEPs
    nwfilters: Optional[List[str]] = None                         # None: not checked
    libvirt_networks: Dict[str, bool] = field(default_factory=dict)   # name -> active
    port_filters: Optional[FilterSnapshot] = None                 # None: no nft on the host


@dataclass
class Step:
    """One change on the host; ``argv`` is run (with ``stdin`` as its input), else ``call``
    is called. ``also``: more sentences for what the one command does (one nft transaction
    filters several ports)."""
    description: str
    argv: Tuple[str, ...] = ()
    call: Optional[Callable[[], None]] = None
    stdin: Optional[str] = None
    also: Tuple[str, ...] = ()

    @property
    def sentences(self) -> List[str]:
        return [self.description] + list(self.also)


@dataclass
class Plan:
    steps: List[Step] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    before: Dict[str, str] = field(default_factory=dict)
    after: Dict[str, str] = field(default_factory=dict)
    vifs: List[dict] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    @property
    def actions(self) -> List[str]:
        return [sentence for step in self.steps for sentence in step.sentences]


class _Planner:
    """Walks the VIFs in order against a copy of the snapshot it updates as it plans, so a
    bridge shared by several VIFs is created once."""

    def __init__(self, snapshot: HostSnapshot, ip: str, bridge_cmd: str,
                 start_network: Optional[Callable[[str], None]], nwfilter: str,
                 firewall_driver: str = DEFAULT_FIREWALL_DRIVER, nft: str = "nft"):
        self.snap = snapshot
        self.links = dict(snapshot.links)
        self.flood = {k: list(v) for k, v in snapshot.flood.items()}
        self.ip = ip
        self.bridge_cmd = bridge_cmd
        self.start_network = start_network
        self.nwfilter = nwfilter
        self.firewall_driver = valid_firewall_driver(firewall_driver)
        self.nft = nft
        self.filtered: List[PortFilter] = []
        self.unfiltered: List[RemovedPort] = []
        self.plan = Plan()
        self._bridge_mtu: Dict[str, Tuple[int, str]] = {}

    # -- helpers -------------------------------------------------------------------------
    def _step(self, description: str, *argv, call=None) -> None:
        self.plan.steps.append(Step(description, tuple(str(a) for a in argv), call))

    def _touch(self, name: str) -> None:
        """Remember a device's state before its first change (for the diff)."""
        if name not in self.plan.before:
            link = self.snap.links.get(name)
            self.plan.before[name] = link.describe() if link else "absent"

    def _set(self, link: Link) -> None:
        self.links[link.name] = link

    def _ensure_up(self, link: Link) -> Link:
        if not link.up:
            self._touch(link.name)
            self._step("set %s up" % link.name, *links.set_up(self.ip, link.name))
            link = replace(link, up=True)
            self._set(link)
        return link

    def _ensure_mtu(self, link: Link, mtu: Optional[int]) -> Link:
        if mtu and link.mtu != mtu:
            self._touch(link.name)
            self._step("set mtu of %s from %d to %d" % (link.name, link.mtu, mtu),
                       *links.set_mtu(self.ip, link.name, mtu))
            link = replace(link, mtu=mtu)
            self._set(link)
        return link

    def _ensure_master(self, link: Link, bridge: str, vif: Vif) -> Link:
        if link.master == bridge:
            return link
        if link.master:
            raise VirtopsError("port %s: %s is a member of bridge %s, not %s; move it or fix "
                               "network %s" % (vif.id, link.name, link.master, bridge,
                                               vif.network_label))
        self._touch(link.name)
        self._step("attach %s to bridge %s" % (link.name, bridge),
                   *links.set_master(self.ip, link.name, bridge))
        link = replace(link, master=bridge)
        self._set(link)
        return link

    def _physical(self, vif: Vif) -> Link:
        name = vif.physical_interface
        if not name:
            raise VirtopsError("port %s: VIF type %s needs network.meta.physical_interface"
                               % (vif.id, vif.vif_type))
        link = self.links.get(name)
        if link is None:
            raise VirtopsError("port %s: physical interface %s of network %s does not exist on "
                               "this host" % (vif.id, name, vif.network_label))
        return link

    # -- devices -------------------------------------------------------------------------
    def bridge(self, vif: Vif) -> Link:
        name = vif.bridge
        if not name:
            raise VirtopsError("port %s: VIF type %s needs network.bridge" % (vif.id, vif.vif_type))
        if len(name) > IFNAMSIZ:
            raise VirtopsError("port %s: bridge name %s is longer than %d characters"
                               % (vif.id, name, IFNAMSIZ))
        wanted = self._bridge_mtu.get(name)
        if wanted and vif.mtu and wanted[0] != vif.mtu:
            raise VirtopsError("bridge %s carries networks with different MTUs (%s: %d, %s: %d)"
                               % (name, wanted[1], wanted[0], vif.network_label, vif.mtu))
        if vif.mtu:
            self._bridge_mtu[name] = (vif.mtu, vif.network_label)
        link = self.links.get(name)
        if link is None:
            if not vif.create_bridge:
                raise VirtopsError(
                    "bridge %s of network %s does not exist on this host and the network says "
                    "create_bridge: false (the bridge is the operator's); create it (see "
                    "playbooks/prepare_hosts.yml) or let vm_vif create it"
                    % (name, vif.network_label), bridge=name)
            self._touch(name)
            # links.BRIDGE_SETTINGS: no STP, no forward delay, as on Nova's bridges.
            self._step("create bridge %s%s" % (name, " (mtu %d)" % vif.mtu if vif.mtu else ""),
                       *links.add_bridge(self.ip, name, vif.mtu))
            link = Link(name=name, kind="bridge", mtu=vif.mtu or 1500, up=False)
            self._set(link)
        elif link.kind != "bridge":
            raise VirtopsError("network %s wants bridge %s, but %s is a %s, not a bridge"
                               % (vif.network_label, name, name, link.kind or "physical NIC"))
        if not vif.create_bridge:
            # The operator's bridge: looked at, never changed.
            if not link.up:
                self.plan.warnings.append(
                    "bridge %s of network %s is down; it is the operator's (create_bridge: "
                    "false), so it was left alone, and instances on it stay unplugged until it "
                    "is up" % (name, vif.network_label))
            if vif.mtu and link.mtu != vif.mtu:
                self.plan.warnings.append("bridge %s has mtu %d, network %s says %d"
                                          % (name, link.mtu, vif.network_label, vif.mtu))
            return link
        link = self._ensure_mtu(link, vif.mtu)
        return self._ensure_up(link)

    def vlan(self, vif: Vif, bridge: Link) -> None:
        physical = self._physical(vif)
        if vif.vlan is None:
            raise VirtopsError("port %s: VIF type vlan needs network.meta.vlan" % vif.id)
        # Any VLAN interface with this id on this NIC will do, whoever named it
        # (host preparation, the operator's eth0.100): there can be only one.
        existing = [l for l in self.links.values() if l.kind == "vlan"
                    and l.vlan_id == vif.vlan and l.parent == physical.name]
        name = existing[0].name if existing else vlan_ifname(vif.vlan)
        link = self.links.get(name)
        if link is None:
            self._touch(name)
            self._step("create VLAN %d interface %s on %s" % (vif.vlan, name, physical.name),
                       *links.add_vlan(self.ip, name, physical.name, vif.vlan, vif.mtu))
            link = Link(name=name, kind="vlan", mtu=vif.mtu or physical.mtu, parent=physical.name,
                        vlan_id=vif.vlan)
            self._set(link)
        elif link.kind != "vlan" or link.vlan_id != vif.vlan or (
                link.parent and link.parent != physical.name):
            raise VirtopsError("%s exists as %s, not as VLAN %d on %s; remove it or fix network "
                               "%s" % (name, link.describe(), vif.vlan, physical.name,
                                       vif.network_label))
        self._ensure_up(physical)
        link = self._ensure_mtu(link, vif.mtu)
        link = self._ensure_master(link, bridge.name, vif)
        self._ensure_up(link)

    def vxlan(self, vif: Vif, bridge: Link) -> None:
        physical = self._physical(vif)
        if vif.vxlan_id is None:
            raise VirtopsError("port %s: VIF type vxlan needs network.meta.vxlan_id" % vif.id)
        addresses = self.snap.ipv4.get(physical.name) or []
        if not addresses:
            raise VirtopsError("port %s: %s has no IPv4 address to use as the local VXLAN "
                               "endpoint of network %s" % (vif.id, physical.name,
                                                           vif.network_label))
        local = addresses[0]
        port = vif.vxlan_port or VXLAN_DEFAULT_PORT
        if vif.mtu and vif.mtu + VXLAN_OVERHEAD > physical.mtu:
            self.plan.warnings.append(
                "network %s has mtu %d, but VXLAN over %s (mtu %d) carries at most %d"
                % (vif.network_label, vif.mtu, physical.name, physical.mtu,
                   physical.mtu - VXLAN_OVERHEAD))
        name = vxlan_ifname(vif.vxlan_id)
        link = self.links.get(name)
        if link is None:
            self._touch(name)
            self._step("create VXLAN %d interface %s (local %s on %s, port %d)"
                       % (vif.vxlan_id, name, local, physical.name, port),
                       *links.add_vxlan(self.ip, name, vif.vxlan_id, vif.mtu, local=local,
                                        dev=physical.name, port=port, group=vif.vxlan_group))
            link = Link(name=name, kind="vxlan", mtu=vif.mtu or physical.mtu - VXLAN_OVERHEAD,
                        vxlan_id=vif.vxlan_id, vxlan_local=local, vxlan_dev=physical.name,
                        vxlan_port=port, vxlan_group=vif.vxlan_group)
            self._set(link)
            self.flood[name] = []
        else:
            # An interface made without "local" or "dev" (the kernel then picks by route)
            # serves as well; what is set must match.
            expected = (vif.vxlan_id, local if link.vxlan_local else None,
                        physical.name if link.vxlan_dev else None, port, vif.vxlan_group)
            actual = (link.vxlan_id, link.vxlan_local, link.vxlan_dev, link.vxlan_port,
                      link.vxlan_group)
            if link.kind != "vxlan" or expected != actual:
                raise VirtopsError(
                    "%s exists as %s, but network %s wants vni %s local %s dev %s port %s%s; "
                    "it may carry other instances' traffic, so it is not replaced: remove it "
                    "or fix the network" % (name, link.describe(), vif.network_label,
                                            vif.vxlan_id, local, physical.name, port,
                                            " group %s" % vif.vxlan_group
                                            if vif.vxlan_group else ""))
        link = self._ensure_mtu(link, vif.mtu)
        link = self._ensure_master(link, bridge.name, vif)
        self._ensure_up(link)
        if vif.vxlan_group:
            return
        # Head-end replication: one flood entry per remote VTEP, unknown ones removed.
        peers = sorted({p for p in vif.vxlan_peers if p != local})
        current = self.flood.get(name, [])
        for peer in peers:
            if peer not in current:
                self._touch(name)
                self._step("flood %s traffic to VTEP %s" % (name, peer),
                           *links.flood_to(self.bridge_cmd, name, peer))
        for stale in current:
            if stale not in peers:
                self._touch(name)
                self._step("stop flooding %s traffic to %s (not a peer any more)" % (name, stale),
                           *links.stop_flooding_to(self.bridge_cmd, name, stale))
        self.flood[name] = peers

    def tap(self, vif: Vif) -> None:
        name = vif.devname
        link = self.links.get(name)
        if link is None:
            self._touch(name)
            self._step("create tap %s" % name, self.ip, "tuntap", "add", "dev", name, "mode",
                       "tap")
            link = Link(name=name, kind="tun", tun_type="tap", mtu=1500)
            self._set(link)
        elif link.kind != "tun" or link.tun_type != "tap":
            raise VirtopsError("port %s: %s exists and is not a tap (%s)"
                               % (vif.id, name, link.describe()))
        link = self._ensure_mtu(link, vif.mtu)
        self._ensure_up(link)

    def network(self, vif: Vif) -> None:
        name = vif.network_label
        if name not in self.snap.libvirt_networks:
            raise VirtopsError("port %s: libvirt network %s is not defined on this host "
                               "(virsh net-list --all)" % (vif.id, name))
        if not self.snap.libvirt_networks[name]:
            self.plan.before.setdefault("network:%s" % name, "inactive")
            self._step("start libvirt network %s" % name,
                       call=(lambda n=name: self.start_network(n)) if self.start_network
                       else None)
            self.snap.libvirt_networks[name] = True

    def filter(self, vif: Vif) -> None:
        if not vif.port_filter:
            # port_security switched off: rules an earlier plug wrote go.
            self._unfilter(vif)
            return
        if vif.vif_type == "direct":
            raise VirtopsError("port %s asks for an anti-spoofing filter, which needs a tap; "
                               "VIF type direct (macvtap) has none: set port_security: false"
                               % vif.id)
        if self.firewall_driver == "nftables":
            self.filtered.append(PortFilter.from_vif(vif))
            if vif.vif_type == "ethernet":
                self.plan.warnings.append(
                    "port %s: the tap %s of an ethernet VIF is on no bridge, so the bridge "
                    "family's anti-spoofing rules written for it never see its traffic; route "
                    "or filter it on the host, or use a bridged network" % (vif.id, vif.devname))
            return
        self._unfilter(vif)
        if self.snap.nwfilters is None:
            return
        if self.nwfilter not in self.snap.nwfilters:
            raise VirtopsError("port %s needs the libvirt nwfilter %s, which is not defined on "
                               "this host (virsh nwfilter-list)" % (vif.id, self.nwfilter))

    def _unfilter(self, vif: Vif) -> None:
        if self.snap.port_filters is not None and vif.devname and \
                self.snap.port_filters.has_port(vif.devname):
            self.unfiltered.append(RemovedPort(vif.id, vif.devname))

    def filters(self) -> None:
        """One ``nft -f -`` step for every port's rules, after the plumbing."""
        if self.snap.port_filters is None:
            if self.filtered:
                raise VirtopsError("ports %s need anti-spoofing rules, but the host's nftables "
                                   "were not read" % ", ".join(f.port_id for f in self.filtered))
            return
        change = plan_port_filters(self.snap.port_filters, self.filtered, self.unfiltered)
        if change.changed:
            self.plan.steps.append(Step(change.actions[0], (self.nft, "-f", "-"),
                                        stdin=change.script, also=tuple(change.actions[1:])))
            self.plan.before.update(change.before)
            self.plan.after.update(change.after)

    # -- the walk ------------------------------------------------------------------------
    def plug(self, vif: Vif) -> None:
        if vif.vif_type in BRIDGED_VIF_TYPES:
            bridge = self.bridge(vif)
            if vif.vif_type == "vlan":
                self.vlan(vif, bridge)
            elif vif.vif_type == "vxlan":
                self.vxlan(vif, bridge)
        elif vif.vif_type == "ethernet":
            self.tap(vif)
        elif vif.vif_type == "network":
            self.network(vif)
        elif vif.vif_type == "direct":
            self._ensure_up(self._physical(vif))
        else:
            raise VirtopsError("port %s: VIF type %r is not supported" % (vif.id, vif.vif_type))
        self.filter(vif)
        self.plan.vifs.append(vif_summary(vif))

    def unplug(self, vif: Vif) -> None:
        if vif.vif_type == "ethernet":
            link = self.links.get(vif.devname)
            if link is not None and link.kind == "tun":
                self._touch(vif.devname)
                self._step("delete tap %s" % vif.devname, self.ip, "tuntap", "del", "dev",
                           vif.devname, "mode", "tap")
                del self.links[vif.devname]
        self._unfilter(vif)
        self.plan.vifs.append(vif_summary(vif))

    def finish(self) -> Plan:
        self.filters()
        for name in self.plan.before:
            link = self.links.get(name)
            if name.startswith("filter:"):
                continue
            if name.startswith("network:"):
                self.plan.after[name] = "active"
                continue
            desc = link.describe() if link else "absent"
            if link is not None and link.kind == "vxlan" and name in self.flood:
                desc += " flood %s" % (",".join(self.flood[name]) or "-")
            self.plan.after[name] = desc
            if name in self.snap.flood and link is not None:
                self.plan.before[name] += " flood %s" % (",".join(self.snap.flood[name]) or "-")
        return self.plan


def vif_summary(vif: Vif) -> dict:
    return {"id": vif.id, "devname": vif.devname, "address": vif.address,
            "vif_type": vif.vif_type, "bridge": vif.bridge, "network": vif.network_label,
            "fixed_ips": vif.fixed_ips, "port_filter": vif.port_filter}


def _check_unique(vifs: Sequence[Vif]) -> None:
    seen: Dict[str, str] = {}
    for vif in vifs:
        for key in (vif.devname, vif.address):
            if key in seen and seen[key] != vif.id:
                raise VirtopsError("ports %s and %s share %s" % (seen[key], vif.id, key))
            seen[key] = vif.id


def plan_plug(vifs: Sequence[Vif], snapshot: HostSnapshot, ip: str = "ip",
              bridge_cmd: str = "bridge", start_network: Optional[Callable[[str], None]] = None,
              nwfilter: str = DEFAULT_NWFILTER, firewall_driver: str = DEFAULT_FIREWALL_DRIVER,
              nft: str = "nft") -> Plan:
    """The steps that plug ``vifs`` on the host ``snapshot`` describes. Filtered ports get
    their anti-spoofing rules in one last step (``nftables``), or the nwfilter is checked."""
    _check_unique(vifs)
    planner = _Planner(snapshot, ip, bridge_cmd, start_network, nwfilter, firewall_driver, nft)
    for vif in vifs:
        planner.plug(vif)
    return planner.finish()


def plan_unplug(vifs: Sequence[Vif], snapshot: HostSnapshot, ip: str = "ip",
                nft: str = "nft") -> Plan:
    """The steps that remove what belongs to ``vifs`` alone: ethernet taps, port rules."""
    planner = _Planner(snapshot, ip, "bridge", None, "", nft=nft)
    for vif in vifs:
        planner.unplug(vif)
    return planner.finish()


# --------------------------------------------------------------------------- the real host

class HostNetwork:
    """Reads the host with ``ip``/``bridge`` and runs plan steps."""

    def __init__(self):
        self.ip = find_binary("ip")
        self.bridge = find_binary("bridge")
        self._nft: Optional[Nft] = None

    def nft(self, required: bool) -> Optional[Nft]:
        """The nft runner; without the binary an error when ``required``, else None (then no
        rules of ours can be on the host either)."""
        if self._nft is None:
            try:
                self._nft = Nft()
            except VirtopsError:
                if required:
                    raise
                return None
        return self._nft

    def port_filters(self, required: bool = True) -> Optional[FilterSnapshot]:
        """The anti-spoofing table as it is (None: no nft, and not ``required``)."""
        nft = self.nft(required)
        return nft.read() if nft is not None else None

    def snapshot(self, vifs: Sequence[Vif], conn=None, check_filters: bool = True,
                 firewall_driver: str = DEFAULT_FIREWALL_DRIVER) -> HostSnapshot:
        host_links = links.read_links(self.ip)
        ipv4 = links.read_addresses(self.ip)
        flood = {}
        for vif in vifs:
            if vif.vif_type == "vxlan" and vif.vxlan_id is not None:
                name = vxlan_ifname(vif.vxlan_id)
                if name in host_links and name not in flood:
                    flood[name] = links.read_flood_entries(self.bridge, name)
        nwfilters = None
        networks: Dict[str, bool] = {}
        if conn is not None:
            if check_filters and firewall_driver == "nwfilter" and any(v.port_filter for v in vifs):
                nwfilters = list(conn.listNWFilters())
            if any(v.vif_type == "network" for v in vifs):
                for net in conn.listAllNetworks():
                    networks[net.name()] = bool(net.isActive())
        needed = firewall_driver == "nftables" and any(v.port_filter for v in vifs)
        return HostSnapshot(links=host_links, ipv4=ipv4, flood=flood, nwfilters=nwfilters,
                            libvirt_networks=networks, port_filters=self.port_filters(needed))

    @staticmethod
    def apply(plan: Plan) -> List[str]:
        done = []
        for step in plan.steps:
            if step.argv:
                run(step.argv, input_text=step.stdin)
            elif step.call is not None:
                step.call()
            done.extend(step.sentences)
        return done


def start_libvirt_network(conn) -> Callable[[str], None]:
    def start(name: str) -> None:
        try:
            conn.networkLookupByName(name).create()
        except _libvirt.libvirt.libvirtError as exc:
            raise VirtopsError("cannot start libvirt network %s: %s" % (name, exc))
    return start


@dataclass
class PlugResult(Outcome):
    """What plugging or unplugging did (``Outcome``: changed and actions)."""
    warnings: List[str] = field(default_factory=list)
    vifs: List[dict] = field(default_factory=list)
    before: Dict[str, str] = field(default_factory=dict)
    after: Dict[str, str] = field(default_factory=dict)

    def as_module_result(self) -> dict:
        return {"changed": self.changed, "actions": self.actions, "vifs": self.vifs}


@contextmanager
def host_lock() -> Iterator[None]:
    """One plug or unplug at a time on a host: two instances of a network started at once
    would otherwise both see no bridge and both try to create it (Nova takes a lock too)."""
    directory = next((d for d in LOCK_DIRS if os.path.isdir(d) and os.access(d, os.W_OK)), None)
    if directory is None:
        yield
        return
    fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def plug_vifs(vifs: Sequence[Vif], conn=None, check_mode: bool = False,
              nwfilter: str = DEFAULT_NWFILTER, host: Optional[HostNetwork] = None,
              firewall_driver: str = DEFAULT_FIREWALL_DRIVER) -> PlugResult:
    """Plug ``vifs`` (check mode: plan only). ``conn`` is needed for libvirt networks and for
    the nwfilter check (``firewall_driver=nwfilter``)."""
    valid_firewall_driver(firewall_driver)
    host = host or HostNetwork()
    with host_lock():
        snapshot = host.snapshot(vifs, conn, firewall_driver=firewall_driver)
        nft = host.nft(False)
        plan = plan_plug(vifs, snapshot, ip=host.ip, bridge_cmd=host.bridge,
                         start_network=start_libvirt_network(conn) if conn is not None else None,
                         nwfilter=nwfilter, firewall_driver=firewall_driver,
                         nft=nft.binary if nft is not None else "nft")
        actions = plan.actions if check_mode else host.apply(plan)
    return PlugResult(changed=plan.changed, actions=actions, warnings=plan.warnings,
                      vifs=plan.vifs, before=plan.before, after=plan.after)


def unplug_vifs(vifs: Sequence[Vif], check_mode: bool = False,
                host: Optional[HostNetwork] = None) -> PlugResult:
    host = host or HostNetwork()
    with host_lock():
        snapshot = host.snapshot(vifs, None, check_filters=False)
        nft = host.nft(False)
        plan = plan_unplug(vifs, snapshot, ip=host.ip, nft=nft.binary if nft is not None else "nft")
        actions = plan.actions if check_mode else host.apply(plan)
    return PlugResult(changed=plan.changed, actions=actions, warnings=plan.warnings,
                      vifs=plan.vifs, before=plan.before, after=plan.after)


def unfilter_devices(devnames: Sequence[str], check_mode: bool = False,
                     host: Optional[HostNetwork] = None) -> PlugResult:
    """Remove the anti-spoofing rules of the taps ``devnames`` when their ports are not known
    (a domain deleted without network_info or record): the names in its definition are all
    there is to go by. Nothing happens on a host without ``nft``."""
    host = host or HostNetwork()
    with host_lock():
        filters = host.port_filters(required=False)
        if filters is None:
            return PlugResult()
        change = plan_port_filters(filters, removed=[RemovedPort("", d) for d in sorted(set(devnames))])
        if change.changed and not check_mode:
            host.nft(True).apply(change.script)
    return PlugResult(changed=change.changed, actions=change.actions, before=change.before,
                      after=change.after)


# --------------------------------------------------------------------------- plugged?

@dataclass(frozen=True)
class ExpectedPort:
    """A device the running domain should have: ``bridge`` None for taps and macvtaps;
    ``port_filter`` the anti-spoofing rules it should have (``nftables`` driver), or None."""
    devname: str
    bridge: Optional[str] = None
    mac: Optional[str] = None
    port_filter: Optional[PortFilter] = None


def expected_filter(vif: Vif, firewall_driver: str = DEFAULT_FIREWALL_DRIVER) -> Optional[PortFilter]:
    """The rules a plugged ``vif`` has in force, or None when it has none of ours."""
    if not vif.port_filter or valid_firewall_driver(firewall_driver) != "nftables" or \
            vif.vif_type == "direct":
        return None
    return PortFilter.from_vif(vif)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _is_up(sysfs: str, dev: str) -> bool:
    flags = _read(os.path.join(sysfs, dev, "flags"))
    try:
        return flags is not None and bool(int(flags, 16) & IFF_UP)
    except ValueError:
        return False


def port_problem(port: ExpectedPort, sysfs: str = SYSFS_NET,
                 filters: Optional[FilterSnapshot] = None) -> Optional[str]:
    """Why ``port`` is not plugged yet, or None when it is. ``filters`` is the anti-spoofing
    table as read; a port that should be filtered is not plugged without its rules (Neutron
    reports a port up only once its firewall rules are in place)."""
    base = os.path.join(sysfs, port.devname)
    if not os.path.isdir(base):
        return "%s does not exist" % port.devname
    if not _is_up(sysfs, port.devname):
        return "%s is down" % port.devname
    if port.bridge:
        master = os.path.join(base, "master")
        actual = os.path.basename(os.path.realpath(master)) if os.path.islink(master) else None
        if actual != port.bridge:
            return "%s is attached to %s, not to bridge %s" % (
                port.devname, actual or "no bridge", port.bridge)
        if not _is_up(sysfs, port.bridge):
            return "bridge %s of %s is down" % (port.bridge, port.devname)
    if port.port_filter is not None:
        return (filters or FilterSnapshot()).problem(port.port_filter)
    return None


def check_plugged(ports: Sequence[ExpectedPort], sysfs: str = SYSFS_NET,
                  filters: Optional[FilterSnapshot] = None) -> List[str]:
    """What keeps ``ports`` from being plugged (empty: all are). ``filters`` must be given
    when a port has a ``port_filter`` (no table read counts as no rules)."""
    return [p for p in (port_problem(port, sysfs, filters) for port in ports) if p]
