# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nova-shaped network_info: one VIF per port, parsed into typed objects.

The dict form (what is recorded in instance.json and passed between modules) is Nova's::

    {"id": "<port uuid>", "address": "fa:16:3e:xx:xx:xx", "devname": "tapXXXXXXXX-XX",
     "type": "bridge", "vnic_type": "normal", "details": {"port_filter": true},
     "network": {"id": "<network id>", "label": "private", "bridge": "br-private",
                 "meta": {"mtu": 1500, "vlan": null, "vxlan_id": null,
                          "physical_interface": null},
                 "subnets": [{"cidr": "10.10.0.0/24", "version": 4,
                              "gateway": {"address": "10.10.0.1"},
                              "dns": [{"address": "10.10.0.1"}],
                              "ips": [{"address": "10.10.0.5", "type": "fixed"}],
                              "routes": [{"cidr": "0.0.0.0/0", "gateway": {"address": "..."}}]}]}}

``network.meta`` may also hold, only when they differ from the defaults: ``vxlan_peers``
(unicast VTEP addresses), ``vxlan_group`` (multicast group), ``vxlan_port`` (UDP port, default
4789) and ``create_bridge`` (false: the bridge is the operator's, vm_vif never creates or
changes it). ``docs/networking.md`` describes them.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError

MAC_PREFIX = "fa:16:3e"
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")     # six lower-case hex pairs
NIC_NAME_LEN = 14
VIF_TYPES = ("bridge", "vlan", "vxlan", "network", "direct", "ethernet")


def devname_for(port_id: str) -> str:
    """Nova's tap name: 'tap' + port id, cut to 14 characters."""
    return ("tap" + port_id)[:NIC_NAME_LEN]


@dataclass(frozen=True)
class Route:
    cidr: str
    gateway: str


@dataclass(frozen=True)
class Subnet:
    cidr: str
    gateway: Optional[str]
    ips: List[str]
    dns: List[str] = field(default_factory=list)
    routes: List[Route] = field(default_factory=list)

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.cidr, strict=False).version

    @property
    def netmask(self) -> str:
        return str(ipaddress.ip_network(self.cidr, strict=False).netmask)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr, strict=False).prefixlen

    @classmethod
    def from_dict(cls, data: dict) -> "Subnet":
        gateway = (data.get("gateway") or {}).get("address")
        return cls(
            cidr=data["cidr"],
            gateway=gateway,
            ips=[ip["address"] for ip in data.get("ips", [])],
            dns=[d["address"] for d in data.get("dns", [])],
            routes=[Route(r["cidr"], (r.get("gateway") or {}).get("address"))
                    for r in data.get("routes", [])],
        )

    def to_dict(self) -> dict:
        return {
            "cidr": self.cidr,
            "version": self.version,
            "gateway": {"address": self.gateway} if self.gateway else None,
            "dns": [{"address": d} for d in self.dns],
            "ips": [{"address": ip, "type": "fixed"} for ip in self.ips],
            "routes": [{"cidr": r.cidr, "gateway": {"address": r.gateway}} for r in self.routes],
        }


@dataclass(frozen=True)
class Vif:
    """One port of an instance."""
    id: str
    address: str
    network_id: str
    network_label: str
    vif_type: str = "bridge"
    bridge: Optional[str] = None
    devname: Optional[str] = None
    mtu: Optional[int] = None
    vlan: Optional[int] = None
    vxlan_id: Optional[int] = None
    physical_interface: Optional[str] = None
    port_filter: bool = False
    subnets: List[Subnet] = field(default_factory=list)
    vxlan_peers: List[str] = field(default_factory=list)
    vxlan_group: Optional[str] = None
    vxlan_port: Optional[int] = None
    create_bridge: bool = True

    @property
    def fixed_ips(self) -> List[str]:
        return [ip for subnet in self.subnets for ip in subnet.ips]

    @classmethod
    def from_dict(cls, data: dict) -> "Vif":
        try:
            network = data["network"]
            meta = network.get("meta") or {}
            vif_type = data.get("type", "bridge")
            if vif_type not in VIF_TYPES:
                raise VirtopsError("port %s: unknown VIF type %r (expected one of %s)"
                                   % (data.get("id"), vif_type, ", ".join(VIF_TYPES)))
            return cls(
                id=data["id"],
                address=data["address"].lower(),
                network_id=network["id"],
                network_label=network.get("label", network["id"]),
                vif_type=vif_type,
                bridge=network.get("bridge"),
                devname=data.get("devname") or devname_for(data["id"]),
                mtu=meta.get("mtu"),
                vlan=meta.get("vlan"),
                vxlan_id=meta.get("vxlan_id"),
                physical_interface=meta.get("physical_interface"),
                port_filter=bool((data.get("details") or {}).get("port_filter", False)),
                subnets=[Subnet.from_dict(s) for s in network.get("subnets", [])],
                vxlan_peers=list(meta.get("vxlan_peers") or []),
                vxlan_group=meta.get("vxlan_group"),
                vxlan_port=meta.get("vxlan_port"),
                create_bridge=bool(meta.get("create_bridge", True)),
            )
        except KeyError as exc:
            raise VirtopsError("network_info entry is missing key %s: %r" % (exc, data))

    def to_dict(self) -> dict:
        meta = {"mtu": self.mtu, "vlan": self.vlan, "vxlan_id": self.vxlan_id,
                "physical_interface": self.physical_interface}
        # Written only when set, so records made before these keys existed compare equal.
        if self.vxlan_peers:
            meta["vxlan_peers"] = list(self.vxlan_peers)
        if self.vxlan_group:
            meta["vxlan_group"] = self.vxlan_group
        if self.vxlan_port is not None:
            meta["vxlan_port"] = self.vxlan_port
        if not self.create_bridge:
            meta["create_bridge"] = False
        return {
            "id": self.id,
            "address": self.address,
            "devname": self.devname,
            "type": self.vif_type,
            "vnic_type": "normal",
            "details": {"port_filter": self.port_filter},
            "network": {
                "id": self.network_id,
                "label": self.network_label,
                "bridge": self.bridge,
                "meta": meta,
                "subnets": [s.to_dict() for s in self.subnets],
            },
        }


def parse_network_info(items: Optional[list]) -> List[Vif]:
    return [Vif.from_dict(item) for item in (items or [])]


def is_unicast_mac(address: object) -> bool:
    """Six lower-case hex pairs whose first octet has the multicast bit clear (the one MAC
    check of the controller's IPAM, the guest designer and the port filter)."""
    return isinstance(address, str) and bool(MAC_RE.match(address)) and not int(address[:2], 16) & 1
