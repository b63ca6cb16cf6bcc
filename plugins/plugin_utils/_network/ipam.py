# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ports and fixed IPs for new instances, allocated on the controller (Neutron's IPAM, small).

There is no database: what is in use comes from the host facts of the whole fleet
(``instances[].ips``, and ``instances[].network_info`` where a record carries it) plus the
allocations this run has already made. One :class:`Allocator` serves a whole run, so two
instances booted in the same run on two hosts never get the same address.

A port gets

- an id: ``uuid5(instance uuid, NIC index)`` when the instance uuid is known, so a re-run of the
  same boot gets the same port (and MAC) even before anything was recorded; else ``uuid4``;
- a MAC with Nova's ``fa:16:3e`` prefix, derived from the port id (re-derived on a collision);
- ``devname`` ``tap`` + port id, 14 characters;
- fixed IPs: the requested one if it is free, else the lowest free address of the network's
  allocation pools (the subnet minus its network, broadcast and gateway addresses).

A port already recorded for the instance (its ``network_info``) is kept as it is.
"""
from __future__ import annotations

import hashlib
import ipaddress
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network import NetworkSpec
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import (
    MAC_PREFIX, Route, Subnet, Vif, devname_for, is_unicast_mac, parse_network_info)

# Namespace of the derived port ids; fixed forever, or ids would change between releases.
PORT_NAMESPACE = uuid_mod.UUID("3f0b8f3e-9c7d-4b1e-8d2a-6f1e0c4a9b52")
MAX_MAC_ATTEMPTS = 64

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def _ip(value, what: str) -> Address:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise VirtopsError("%s %r is not an IP address" % (what, value))


def subnet_of(spec: NetworkSpec) -> Network:
    return ipaddress.ip_network(spec.cidr, strict=False)


def reserved(spec: NetworkSpec) -> Set[Address]:
    """Addresses no port may have: network, broadcast (IPv4) and gateway."""
    net = subnet_of(spec)
    addresses = {net.network_address}
    if net.version == 4 and net.num_addresses > 2:
        addresses.add(net.broadcast_address)
    if spec.gateway:
        addresses.add(ipaddress.ip_address(spec.gateway))
    return addresses


def pools(spec: NetworkSpec) -> Iterator[Address]:
    """Addresses handed out automatically, lowest first: the allocation pools (else the whole
    subnet) without the reserved addresses; overlapping pools give an address once."""
    net = subnet_of(spec)
    if spec.allocation_pools:
        ranges = sorted((int(ipaddress.ip_address(start)), int(ipaddress.ip_address(end)))
                        for start, end in spec.allocation_pools)
    else:
        ranges = [(int(net.network_address), int(net.broadcast_address))]
    taken = reserved(spec)
    after = None            # the highest address given so far
    for first, last in ranges:
        for number in range(first if after is None else max(first, after + 1), last + 1):
            after = number
            address = ipaddress.ip_address(number) if net.version == 4 else \
                ipaddress.IPv6Address(number)
            if address not in taken:
                yield address


def parse_networks(catalog: Mapping) -> Dict[str, NetworkSpec]:
    if not isinstance(catalog, Mapping):
        raise VirtopsError("networks must be a mapping of network name to its definition")
    specs = {str(name): NetworkSpec.from_catalog(str(name), data)
             for name, data in catalog.items()}
    seen: Dict[str, str] = {}
    for spec in specs.values():
        if spec.id in seen:
            raise VirtopsError("networks %s and %s have the same id %s"
                               % (seen[spec.id], spec.name, spec.id))
        seen[spec.id] = spec.name
    return specs


@dataclass(frozen=True)
class PortRequest:
    """One entry of ``server.networks``: ``{network: private, fixed_ip: ..., mac: ...}``."""
    network: str
    fixed_ip: Optional[str] = None
    mac: Optional[str] = None

    @classmethod
    def from_dict(cls, data, what: str) -> "PortRequest":
        if isinstance(data, str):
            return cls(network=data)
        if not isinstance(data, Mapping) or not data.get("network"):
            raise VirtopsError("%s: each networks entry needs network: <name>" % what)
        unknown = sorted(set(data) - {"network", "fixed_ip", "mac"})
        if unknown:
            raise VirtopsError("%s: unknown keys %s in a networks entry (known: network, "
                               "fixed_ip, mac)" % (what, ", ".join(unknown)))
        mac = data.get("mac")
        if mac is not None:
            mac = str(mac).lower()
            if not is_unicast_mac(mac):
                raise VirtopsError("%s: mac %r is not a unicast MAC address" % (what, mac))
        return cls(network=str(data["network"]), fixed_ip=data.get("fixed_ip") or None, mac=mac)


@dataclass(frozen=True)
class InstanceRequest:
    name: str
    uuid: Optional[str] = None
    networks: Tuple[PortRequest, ...] = ()
    network_info: Tuple[Vif, ...] = ()     # ports already recorded for this instance

    @classmethod
    def from_dict(cls, data: Mapping) -> "InstanceRequest":
        if not isinstance(data, Mapping) or not (data.get("name") or data.get("uuid")):
            raise VirtopsError("each instance to allocate ports for needs a name or a uuid")
        name = str(data.get("name") or data.get("uuid"))
        unknown = sorted(set(data) - {"name", "uuid", "networks", "network_info"})
        if unknown:
            raise VirtopsError("instance %s: unknown keys %s (known: name, uuid, networks, "
                               "network_info)" % (name, ", ".join(unknown)))
        instance_uuid = None
        if data.get("uuid"):
            try:
                instance_uuid = str(uuid_mod.UUID(str(data["uuid"])))
            except ValueError:
                raise VirtopsError("instance %s: uuid %r is not a UUID" % (name, data["uuid"]))
        networks = data.get("networks") or []
        if not isinstance(networks, (list, tuple)):
            raise VirtopsError("instance %s: networks must be a list" % name)
        return cls(name=name, uuid=instance_uuid,
                   networks=tuple(PortRequest.from_dict(n, "instance %s" % name)
                                  for n in networks),
                   network_info=tuple(parse_network_info(data.get("network_info"))))


@dataclass
class Allocation:
    """What one instance got."""
    name: str
    uuid: Optional[str]
    vifs: List[Vif] = field(default_factory=list)

    @property
    def ips(self) -> List[str]:
        return [ip for vif in self.vifs for ip in vif.fixed_ips]

    def to_dict(self) -> dict:
        return {"name": self.name, "uuid": self.uuid, "ips": self.ips,
                "macs": [vif.address for vif in self.vifs],
                "network_info": [vif.to_dict() for vif in self.vifs]}


def _owner_keys(entry: Mapping) -> Set[str]:
    return {str(entry[k]) for k in ("uuid", "name") if entry.get(k)}


def _iter_host_instances(hosts) -> Iterable[Tuple[str, Mapping]]:
    """(host name, instance summary) over host facts given as a list or a mapping."""
    if hosts is None:
        return
    if isinstance(hosts, Mapping):
        items = list(hosts.items())
    elif isinstance(hosts, (list, tuple)):
        items = [(str((h or {}).get("hostname", "?")) if isinstance(h, Mapping) else "?", h)
                 for h in hosts]
    else:
        raise VirtopsError("hosts must be a list of host facts or a mapping of host name to "
                           "host facts")
    for host_name, facts in items:
        if not isinstance(facts, Mapping):
            raise VirtopsError("host facts of %s must be a mapping" % host_name)
        for instance in facts.get("instances") or []:
            if isinstance(instance, Mapping):
                yield str(facts.get("hostname") or host_name), instance


class Allocator:
    """Hands out ports; remembers every address and MAC in use across the fleet and the run."""

    def __init__(self, networks: Mapping[str, NetworkSpec], hosts=None,
                 allocated: Optional[Sequence] = None):
        self.networks = dict(networks)
        # address -> (owner keys, where): who holds it. An IP string without a network is in
        # use in every network whose cidr holds it; that is the safe reading.
        self._ips: Dict[str, Tuple[Set[str], str]] = {}
        self._macs: Dict[str, Tuple[Set[str], str]] = {}
        # Addresses each known instance holds, so a re-run for that instance gets them back.
        self._own_ips: Dict[str, List[str]] = {}
        # Addresses given to the instance being allocated, so two of its NICs on one
        # network do not both take back the same recorded address.
        self._given_now: Set[str] = set()
        for host_name, instance in _iter_host_instances(hosts):
            owners = _owner_keys(instance)
            where = "instance %s on %s" % (instance.get("name") or instance.get("uuid"), host_name)
            for ip in instance.get("ips") or []:
                address = ip.get("address") if isinstance(ip, Mapping) else ip
                self._hold_ip(address, owners, where)
            for vif in instance.get("network_info") or []:
                if isinstance(vif, Mapping):
                    for parsed in parse_network_info([vif]):
                        self._hold_vif(parsed, owners, where)
        for entry in allocated or []:
            # Earlier allocations of this run: Allocation dicts or plain IP strings.
            if isinstance(entry, Mapping):
                owners = _owner_keys(entry)
                label = entry.get("name") or entry.get("uuid")
                where = entry.get("where") or "instance %s (allocated in this run)" % label
                for vif in parse_network_info(entry.get("network_info")):
                    self._hold_vif(vif, owners, where)
                for ip in entry.get("ips") or []:
                    self._hold_ip(ip, owners, where)
                for mac in entry.get("macs") or []:
                    self._macs.setdefault(str(mac), (set(owners), where))
            else:
                self._hold_ip(entry, set(), "an earlier allocation of this run")

    # -- bookkeeping -----------------------------------------------------------------------
    def _hold_ip(self, address, owners: Set[str], where: str) -> None:
        if not address:
            return
        try:
            key = str(ipaddress.ip_address(str(address)))
        except ValueError:
            return      # a broken record must not stop allocation for everyone else
        self._ips.setdefault(key, (set(owners), where))
        for owner in owners:
            self._own_ips.setdefault(owner, [])
            if key not in self._own_ips[owner]:
                self._own_ips[owner].append(key)

    def _hold_vif(self, vif: Vif, owners: Set[str], where: str) -> None:
        self._macs.setdefault(vif.address, (set(owners), where))
        for ip in vif.fixed_ips:
            self._hold_ip(ip, owners, where)

    def _ip_holder(self, address: str, owners: Set[str]) -> Optional[str]:
        held = self._ips.get(address)
        if held is None or (owners and held[0] & owners):
            return None
        return held[1]

    def _mac_holder(self, mac: str, owners: Set[str]) -> Optional[str]:
        held = self._macs.get(mac)
        if held is None or (owners and held[0] & owners):
            return None
        return held[1]

    # -- allocation ------------------------------------------------------------------------
    def _spec(self, name: str, instance: str) -> NetworkSpec:
        try:
            return self.networks[name]
        except KeyError:
            raise VirtopsError("instance %s asks for network %r, which is not in networks "
                               "(known: %s)" % (instance, name, ", ".join(sorted(self.networks))
                                                or "none"))

    def _pick_ip(self, spec: NetworkSpec, request: PortRequest, owners: Set[str],
                 instance: InstanceRequest) -> str:
        net = subnet_of(spec)
        if request.fixed_ip:
            address = _ip(request.fixed_ip, "instance %s: fixed_ip" % instance.name)
            if address not in net:
                raise VirtopsError("instance %s: fixed_ip %s is not in network %s (%s)"
                                   % (instance.name, address, spec.name, net))
            if address in reserved(spec):
                raise VirtopsError("instance %s: fixed_ip %s is the network, broadcast or "
                                   "gateway address of %s" % (instance.name, address, spec.name))
            holder = self._ip_holder(str(address), owners)
            if holder:
                raise VirtopsError("instance %s: fixed_ip %s on network %s is already in use "
                                   "by %s" % (instance.name, address, spec.name, holder),
                                   ip=str(address), network=spec.name)
            return str(address)
        taken = reserved(spec)
        for owner in sorted(owners):
            for own in self._own_ips.get(owner, []):
                own_ip = ipaddress.ip_address(own)
                if own_ip in net and own_ip not in taken and own not in self._given_now:
                    return own
        for address in pools(spec):
            if str(address) not in self._ips:
                return str(address)
        in_use = sum(1 for a in self._ips if ipaddress.ip_address(a) in net)
        raise VirtopsError("network %s (%s) has no free address left for instance %s: %d "
                           "addresses in use, pools %s"
                           % (spec.name, net, instance.name, in_use,
                              ", ".join("%s-%s" % p for p in spec.allocation_pools) or "the "
                              "whole subnet"), network=spec.name)

    def _mac(self, port_id: str, request: PortRequest, owners: Set[str], name: str) -> str:
        if request.mac:
            holder = self._mac_holder(request.mac, owners)
            if holder:
                raise VirtopsError("instance %s: MAC %s is already used by %s"
                                   % (name, request.mac, holder), mac=request.mac)
            return request.mac
        for attempt in range(MAX_MAC_ATTEMPTS):
            seed = port_id if attempt == 0 else "%s/%d" % (port_id, attempt)
            tail = hashlib.sha256(seed.encode()).digest()[:3]
            mac = "%s:%02x:%02x:%02x" % ((MAC_PREFIX,) + tuple(tail))
            if not self._mac_holder(mac, owners):
                return mac
        raise VirtopsError("instance %s: no free MAC found for port %s after %d attempts"
                           % (name, port_id, MAX_MAC_ATTEMPTS))

    def _port_id(self, instance: InstanceRequest, index: int) -> str:
        if instance.uuid:
            return str(uuid_mod.uuid5(PORT_NAMESPACE, "%s/%d" % (instance.uuid, index)))
        return str(uuid_mod.uuid4())

    def _vif(self, spec: NetworkSpec, port_id: str, mac: str, ip: str) -> Vif:
        return Vif(
            id=port_id, address=mac, network_id=spec.id, network_label=spec.name,
            vif_type=spec.vif_type, bridge=spec.bridge, devname=devname_for(port_id),
            mtu=spec.mtu, vlan=spec.vlan, vxlan_id=spec.vxlan_id,
            physical_interface=spec.physical_interface, port_filter=spec.port_security,
            subnets=[Subnet(cidr=spec.cidr, gateway=spec.gateway, ips=[ip], dns=list(spec.dns),
                            routes=[Route(c, g) for c, g in spec.routes])],
            vxlan_peers=list(spec.vxlan_peers), vxlan_group=spec.vxlan_group,
            vxlan_port=spec.vxlan_port, create_bridge=spec.create_bridge)

    def allocate(self, instance: InstanceRequest) -> Allocation:
        owners = {k for k in (instance.uuid, instance.name) if k}
        self._given_now = set()
        where = "instance %s (allocated in this run)" % instance.name
        result = Allocation(instance.name, instance.uuid)
        for index, request in enumerate(instance.networks):
            spec = self._spec(request.network, instance.name)
            recorded = instance.network_info[index] if index < len(instance.network_info) \
                else None
            if recorded is not None and recorded.network_id == spec.id and (
                    not request.fixed_ip or request.fixed_ip in recorded.fixed_ips):
                # The port this NIC already has: same id, MAC and addresses.
                for ip in recorded.fixed_ips:
                    holder = self._ip_holder(ip, owners)
                    if holder:
                        raise VirtopsError("instance %s: its recorded address %s is also held "
                                           "by %s" % (instance.name, ip, holder), ip=ip)
                holder = self._mac_holder(recorded.address, owners)
                if holder:
                    raise VirtopsError("instance %s: its recorded MAC %s is also used by %s"
                                       % (instance.name, recorded.address, holder),
                                       mac=recorded.address)
                vif = self._vif(spec, recorded.id, recorded.address, recorded.fixed_ips[0]
                                if recorded.fixed_ips else self._pick_ip(spec, request, owners,
                                                                         instance))
            else:
                port_id = self._port_id(instance, index)
                vif = self._vif(spec, port_id, self._mac(port_id, request, owners, instance.name),
                                self._pick_ip(spec, request, owners, instance))
            if any(v.address == vif.address for v in result.vifs):
                raise VirtopsError("instance %s: two of its ports would share MAC %s"
                                   % (instance.name, vif.address), mac=vif.address)
            for ip in vif.fixed_ips:
                if ip in result.ips:
                    raise VirtopsError("instance %s asks for %s twice" % (instance.name, ip))
                self._given_now.add(ip)
            self._hold_vif(vif, owners, where)
            result.vifs.append(vif)
        return result


def allocate_ports(networks: Mapping, instances: Sequence[Mapping], hosts=None,
                   allocated: Optional[Sequence] = None) -> List[Allocation]:
    """Allocate ports for ``instances`` in order; all or nothing."""
    specs = parse_networks(networks or {})
    allocator = Allocator(specs, hosts=hosts, allocated=allocated)
    if not isinstance(instances, (list, tuple)):
        raise VirtopsError("instances must be a list")
    requests = [InstanceRequest.from_dict(i) for i in instances]
    names = [r.name for r in requests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise VirtopsError("instances listed twice: %s" % ", ".join(duplicates))
    return [allocator.allocate(request) for request in requests]
