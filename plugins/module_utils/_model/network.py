# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One network of the inventory's ``networks`` catalog, parsed and checked in one place.

The controller (the ``ports`` lookup, ``plugin_utils/_network/ipam.py``) reads the whole entry
with :meth:`NetworkSpec.from_catalog`: layer 2 (how instances attach: ``vif_type``, bridge,
VLAN, VXLAN, MTU) and layer 3 (cidr, gateway, dns, pools, routes), filling in Neutron-like
defaults (a stable id, the first host address as gateway, a ``brq<id>`` bridge). The host
(``vm_host_network``) gets the layer-2 keys as module options and builds the same object; both
call :meth:`NetworkSpec.validate`, so a network is judged by one set of rules wherever it is read.
``vm_vif`` sees the same values later, copied into each port's network_info
(``_model/network_info.py``).

Only the standard library is used here (``ipaddress``): the model is imported on the controller
and on the hosts. Address arithmetic for allocation (netaddr sets) stays with the IPAM.
"""
from __future__ import annotations

import ipaddress
import re
import uuid as uuid_mod
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import VIF_TYPES

IFNAMSIZ = 15
BRIDGED_VIF_TYPES = ("bridge", "vlan", "vxlan")
VXLAN_DEFAULT_PORT = 4789
DEFAULT_MTU = 1500
# Who enforces a filtered port's anti-spoofing: our own nftables rules, written when the port is
# plugged (as Neutron's firewall drivers own theirs), or libvirt's nwfilter, referenced by the
# domain XML and instantiated by libvirt at every start (seconds per start and per destroy).
FIREWALL_DRIVERS = ("nftables", "nwfilter")
DEFAULT_FIREWALL_DRIVER = "nftables"
DEFAULT_NWFILTER = "clean-traffic"
# The two options of every module that plugs or describes filtered ports (doc fragment
# virtops.compute.port_security).
PORT_SECURITY_ARGS = dict(
    firewall_driver=dict(type="str", choices=list(FIREWALL_DRIVERS), default=DEFAULT_FIREWALL_DRIVER),
    nwfilter=dict(type="str", default=DEFAULT_NWFILTER),
)
# Namespace of the derived network ids; fixed forever, or ids would change between releases.
NETWORK_NAMESPACE = uuid_mod.UUID("8a0d1c35-5d0e-4d2f-9a49-2a3c7cb0e1a1")
NETWORK_KEYS = {
    "id", "cidr", "gateway", "dns", "mtu", "vif_type", "bridge", "create_bridge", "vlan",
    "vxlan_id", "vxlan_peers", "vxlan_group", "vxlan_port", "physical_interface",
    "port_security", "allocation_pools", "routes", "description",
}
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def vlan_ifname(vlan: int) -> str:
    """Nova's linux_net name for a new VLAN interface: ``vlan<id>``."""
    return "vlan%d" % vlan


def vxlan_ifname(vni: int) -> str:
    """Neutron linuxbridge's name: ``vxlan-<vni>`` (at most 14 characters)."""
    return "vxlan-%d" % vni


def valid_ifname(name, what: str) -> str:
    """A Linux interface name: 1..15 of [A-Za-z0-9_.-], not '.' or '..'."""
    if not isinstance(name, str) or not _IFNAME_RE.match(name) or name in (".", ".."):
        raise VirtopsError("%s %r is not a valid interface name (1 to %d characters of "
                           "A-Z a-z 0-9 _ . -)" % (what, name, IFNAMSIZ))
    return name


def valid_firewall_driver(value) -> str:
    """One of :data:`FIREWALL_DRIVERS`, or an error naming them."""
    if value not in FIREWALL_DRIVERS:
        raise VirtopsError("firewall_driver must be one of %s, not %r"
                           % (", ".join(FIREWALL_DRIVERS), value))
    return value


def int_in(value, what: str, low: int, high: int) -> int:
    """A strict integer within [low, high] (the one validator, ``_common.validate``): an int
    or the text of one as YAML or a survey may give it, never a bool or ``1.5``."""
    return strict_int(value, what, minimum=low, maximum=high, text="loose")


def ip_address(value, what: str):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise VirtopsError("%s %r is not an IP address" % (what, value))


def _ip_network(value, what: str):
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise VirtopsError("%s %r is not a network" % (what, value))


@dataclass(frozen=True)
class NetworkSpec:
    """One network: how instances attach (layer 2) and, on the controller, its subnet."""
    name: str
    vif_type: str = "bridge"
    bridge: Optional[str] = None
    mtu: Optional[int] = None
    vlan: Optional[int] = None
    vxlan_id: Optional[int] = None
    vxlan_peers: Tuple[str, ...] = ()
    vxlan_group: Optional[str] = None
    vxlan_port: Optional[int] = None
    physical_interface: Optional[str] = None
    create_bridge: bool = True
    port_security: bool = True
    # Layer 3, known on the controller (from_catalog); None/empty on the host.
    id: Optional[str] = None
    cidr: Optional[str] = None
    gateway: Optional[str] = None
    dns: Tuple[str, ...] = ()
    allocation_pools: Tuple[Tuple[str, str], ...] = ()
    routes: Tuple[Tuple[str, str], ...] = ()

    @property
    def bridged(self) -> bool:
        return self.vif_type in BRIDGED_VIF_TYPES

    @property
    def member(self) -> Optional[str]:
        """The VLAN or VXLAN interface that joins the bridge to the wire, by Nova's names."""
        if self.vif_type == "vlan":
            return vlan_ifname(self.vlan)
        if self.vif_type == "vxlan":
            return vxlan_ifname(self.vxlan_id)
        return None

    def validate(self) -> "NetworkSpec":
        """The layer-2 rules, the same on the controller and on the host; returns self."""
        where = "network %s" % self.name
        if self.vif_type not in VIF_TYPES:
            raise VirtopsError("%s: vif_type %r is not one of %s"
                               % (where, self.vif_type, ", ".join(VIF_TYPES)))
        if self.mtu is not None:
            int_in(self.mtu, "%s: mtu" % where, 68, 65535)
        if self.physical_interface is not None:
            valid_ifname(self.physical_interface, "%s: physical_interface" % where)
        if self.vif_type == "direct" and not self.physical_interface:
            raise VirtopsError("%s: vif_type direct (macvtap) needs physical_interface" % where)
        if not self.bridged:
            return self
        if not self.bridge:
            raise VirtopsError("%s: vif_type %s needs a bridge name" % (where, self.vif_type))
        valid_ifname(self.bridge, "%s: bridge" % where)
        if self.vif_type == "vlan":
            if self.vlan is None or not self.physical_interface:
                raise VirtopsError("%s: vif_type vlan needs vlan (1-4094) and physical_interface"
                                   % where)
            int_in(self.vlan, "%s: vlan" % where, 1, 4094)
        if self.vif_type == "vxlan":
            if self.vxlan_id is None or not self.physical_interface:
                raise VirtopsError("%s: vif_type vxlan needs vxlan_id (1-16777215) and "
                                   "physical_interface (the underlay whose address is the "
                                   "local VTEP)" % where)
            int_in(self.vxlan_id, "%s: vxlan_id" % where, 1, 16777215)
            for peer in self.vxlan_peers:
                ip_address(peer, "%s: vxlan_peers entry" % where)
            if self.vxlan_group and not ip_address(
                    self.vxlan_group, "%s: vxlan_group" % where).is_multicast:
                raise VirtopsError("%s: vxlan_group %s is not a multicast address"
                                   % (where, self.vxlan_group))
            if not self.vxlan_peers and not self.vxlan_group:
                raise VirtopsError("%s: a vxlan network needs vxlan_peers (the VTEP addresses "
                                   "of the hosts) or a multicast vxlan_group" % where)
            if self.vxlan_peers and self.vxlan_group:
                raise VirtopsError("%s: give vxlan_peers or vxlan_group, not both" % where)
            if self.vxlan_port is not None:
                int_in(self.vxlan_port, "%s: vxlan_port" % where, 1, 65535)
        return self

    @classmethod
    def from_catalog(cls, name: str, data: Mapping) -> "NetworkSpec":
        """A whole catalog entry, with Neutron-like defaults for what it leaves out."""
        if not isinstance(data, Mapping):
            raise VirtopsError("network %s must be a mapping, not %s" % (name, type(data).__name__))
        unknown = sorted(set(data) - NETWORK_KEYS)
        if unknown:
            raise VirtopsError("network %s: unknown keys %s (known: %s)"
                               % (name, ", ".join(unknown), ", ".join(sorted(NETWORK_KEYS))))
        what = "network %s" % name
        if "cidr" not in data:
            raise VirtopsError("%s needs a cidr, such as 10.10.0.0/24" % what)
        net = _ip_network(data["cidr"], "%s: cidr" % what)
        if ip_address(str(data["cidr"]).split("/", maxsplit=1)[0], "%s: cidr" % what) != net.network_address:
            raise VirtopsError("%s: cidr %s has host bits set; did you mean %s?"
                               % (what, data["cidr"], net))
        if "gateway" in data:
            gateway = data["gateway"] or None     # null, "" or false: no gateway
        else:
            gateway = str(net.network_address + 1) if net.num_addresses > 2 else None
        if gateway is not None:
            gw = ip_address(gateway, "%s: gateway" % what)
            broadcast = net.broadcast_address if net.version == 4 else None
            if gw not in net or gw in (net.network_address, broadcast):
                raise VirtopsError("%s: gateway %s is not a host address of %s"
                                   % (what, gateway, net))
            gateway = str(gw)
        vif_type = data.get("vif_type", "bridge")
        network_id = str(data.get("id") or uuid_mod.uuid5(NETWORK_NAMESPACE, name))
        bridge = data.get("bridge")
        if vif_type in BRIDGED_VIF_TYPES and not bridge:
            # Neutron's linuxbridge agent names its bridges the same way.
            bridge = ("brq" + network_id)[:IFNAMSIZ - 1]
        elif vif_type == "network":
            bridge = None

        def number(key, low, high):
            return int_in(data[key], "%s: %s" % (what, key), low, high) if key in data else None

        pools = []
        for pool in data.get("allocation_pools") or []:
            if not isinstance(pool, Mapping) or "start" not in pool or "end" not in pool:
                raise VirtopsError("%s: allocation_pools entries need start and end" % what)
            start = ip_address(pool["start"], "%s: allocation pool start" % what)
            end = ip_address(pool["end"], "%s: allocation pool end" % what)
            if start not in net or end not in net or start > end:
                raise VirtopsError("%s: allocation pool %s-%s is not a range inside %s"
                                   % (what, start, end, net))
            pools.append((str(start), str(end)))
        routes = []
        for route in data.get("routes") or []:
            if not isinstance(route, Mapping) or "cidr" not in route or "gateway" not in route:
                raise VirtopsError("%s: routes entries need cidr and gateway" % what)
            dest = _ip_network(route["cidr"], "%s: route cidr" % what)
            via = ip_address(route["gateway"], "%s: route gateway" % what)
            if via not in net:
                raise VirtopsError("%s: route gateway %s is not on %s" % (what, via, net))
            routes.append((str(dest), str(via)))
        dns = tuple(str(ip_address(d, "%s: dns server" % what)) for d in data.get("dns") or [])
        spec = cls(
            name=name, vif_type=vif_type, bridge=bridge,
            mtu=int_in(data.get("mtu", DEFAULT_MTU), "%s: mtu" % what, 68, 65535),
            vlan=number("vlan", 1, 4094) if vif_type == "vlan" else None,
            vxlan_id=number("vxlan_id", 1, 16777215) if vif_type == "vxlan" else None,
            vxlan_peers=tuple(str(ip_address(p, "%s: vxlan_peers entry" % what))
                              for p in data.get("vxlan_peers") or []
                              ) if vif_type == "vxlan" else (),
            vxlan_group=(str(ip_address(data["vxlan_group"], "%s: vxlan_group" % what))
                         if vif_type == "vxlan" and data.get("vxlan_group") else None),
            vxlan_port=number("vxlan_port", 1, 65535) if vif_type == "vxlan" else None,
            physical_interface=data.get("physical_interface"),
            create_bridge=bool(data.get("create_bridge", True)),
            port_security=bool(data.get("port_security", True)) and vif_type != "direct",
            id=network_id, cidr=str(net), gateway=gateway, dns=dns,
            allocation_pools=tuple(pools), routes=tuple(routes))
        return spec.validate()
