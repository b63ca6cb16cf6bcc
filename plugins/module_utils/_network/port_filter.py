# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Port anti-spoofing with nftables: the rules a filtered port gets while it is plugged.

Nova leaves port security to Neutron, whose firewall drivers (iptables hybrid, openvswitch)
own the rules of each port and write them when the port is bound, not when the guest starts.
We do the same instead of libvirt's nwfilter ``clean-traffic``, which libvirt instantiates
rule by rule with ebtables/iptables binaries at every domain start and tears down at every
destroy (1.1 s per start and 0.25 s per destroy measured on a development machine, about
2.5 s each reported on lab hosts; docs/networking.md).

Everything lives in one table, :data:`TABLE` (``bridge virtops``)::

    table bridge virtops {
        map ports { type ifname : verdict; elements = { "tapX" : jump port-tapX } }
        chain prerouting {                  # every frame entering a bridge, from any port
            type filter hook prerouting priority filter; policy accept;
            iifname vmap @ports             # frames from a filtered tap go to its chain
        }
        chain port-tapX { ... }             # what the guest behind tapX may send
    }

The port chain reproduces ``clean-traffic`` on what the guest sends (egress): the source MAC
must be the port's (``no-mac-spoofing``); IPv4 only from the port's fixed IPv4 addresses
(``no-ip-spoofing``), except a DHCP request from 0.0.0.0 (udp 68 to 67); no DHCP server
replies (udp 67 to 68: Neutron drops them too); ARP only with the port's MAC as sender and one
of its IPv4 addresses, or 0.0.0.0 for probes, as sender address (``no-arp-spoofing``); RARP
(QEMU's announce-self after a migration, ``qemu-announce-self``); every other ethertype,
IPv6 and VLAN-tagged frames included, is dropped (``no-other-l2-traffic``). Traffic to the
guest is not filtered (``clean-traffic`` drops other ethertypes both ways).

Rules match the input interface by name (``iifname``), so they exist before libvirt creates
the tap at domain start. The first rule of a port chain carries a comment with a digest of
the chain's rules: reading the table (``nft -j list table bridge virtops``) then tells whether
a port's rules are in place, out of date or missing, and :func:`plan_port_filters` writes only
the difference, in one ``nft -f -`` transaction. Unplugging removes the port's map element and
chain; the table, the map and the dispatch chain stay (shared, like bridges).

Only the bridge family's hooks see these frames: a tap on a bridge (VIF types bridge, vlan,
vxlan, network). An ``ethernet`` tap is on no bridge, and its rules are written but never
consulted (libvirt's ebtables rules are in the same position); the planner warns.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._model.network import valid_ifname
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import MAC_RE, Vif

TABLE_FAMILY = "bridge"
TABLE_NAME = "virtops"
TABLE = "%s %s" % (TABLE_FAMILY, TABLE_NAME)
PORTS_MAP = "ports"
DISPATCH_CHAIN = "prerouting"
DISPATCH_HOOK = "prerouting"
CHAIN_PREFIX = "port-"
COMMENT_PREFIX = "virtops port"
DIGEST_LENGTH = 12
DHCP_SERVER, DHCP_CLIENT = 67, 68
ETHERTYPE_RARP = "0x8035"
_PORT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ABSENT = "No such file or directory"


def chain_name(devname: str) -> str:
    """The port chain of the tap ``devname``."""
    return CHAIN_PREFIX + devname


@dataclass(frozen=True)
class PortFilter:
    """The anti-spoofing rules one port needs: its tap name, MAC and fixed IPv4 addresses."""
    port_id: str
    devname: str
    mac: str
    ipv4: Tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.port_id, str) or not _PORT_ID_RE.match(self.port_id):
            raise VirtopsError("port id %r cannot name an nftables rule (1 to 64 of A-Z a-z 0-9 "
                               "_ . : -); fix the port's id in network_info" % (self.port_id,))
        valid_ifname(self.devname, "port %s: devname" % self.port_id)
        if not isinstance(self.mac, str) or not MAC_RE.match(self.mac):
            raise VirtopsError("port %s: MAC %r is not six lower-case hex pairs"
                               % (self.port_id, self.mac))
        for address in self.ipv4:
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise VirtopsError("port %s: %r is not an IPv4 address" % (self.port_id, address))

    @classmethod
    def from_vif(cls, vif: Vif) -> "PortFilter":
        ipv4 = [ip for ip in vif.fixed_ips if ipaddress.ip_address(ip).version == 4]
        return cls(port_id=vif.id, devname=vif.devname or "", mac=vif.address,
                   ipv4=tuple(sorted(set(ipv4), key=ipaddress.IPv4Address)))

    @property
    def chain(self) -> str:
        return chain_name(self.devname)

    def rules(self) -> List[str]:
        """The chain's rules, in order, without the digest comment."""
        own = ", ".join(self.ipv4)
        rules = [
            "ether saddr != %s drop" % self.mac,
            "ip protocol udp udp sport %d udp dport %d drop" % (DHCP_SERVER, DHCP_CLIENT),
            "ip saddr 0.0.0.0 ip protocol udp udp sport %d udp dport %d accept"
            % (DHCP_CLIENT, DHCP_SERVER),
        ]
        if own:
            rules.append("ip saddr { %s } accept" % own)
        rules += [
            "ether type ip drop",
            "arp saddr ether != %s drop" % self.mac,
            "arp saddr ip { %s } accept" % ", ".join(("0.0.0.0",) + self.ipv4),
            "ether type arp drop",
            "ether type %s accept" % ETHERTYPE_RARP,
            "drop",
        ]
        return rules

    @property
    def digest(self) -> str:
        text = "\n".join([self.port_id, self.devname] + self.rules())
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]

    @property
    def comment(self) -> str:
        return "%s %s %s" % (COMMENT_PREFIX, self.port_id, self.digest)

    def describe(self, what: str = "filter port") -> str:
        return "%s %s on %s: mac %s, ipv4 %s" % (
            what, self.port_id, self.devname, self.mac, ", ".join(self.ipv4) or "none (DHCP only)")


@dataclass(frozen=True)
class PortChain:
    """A port chain as read: the comment of its first rule and how many rules it has."""
    comment: Optional[str] = None
    rules: int = 0


@dataclass
class FilterSnapshot:
    """Table ``bridge virtops`` as read with ``nft -j list table``; the default: no table."""
    table: bool = False
    ports_map: bool = False
    dispatch_hook: Optional[str] = None          # hook of the dispatch chain; None: no chain
    dispatch_ok: bool = False                    # it holds exactly ``iifname vmap @ports``
    elements: Dict[str, str] = field(default_factory=dict)     # ifname -> chain jumped to
    chains: Dict[str, PortChain] = field(default_factory=dict)  # port chains only

    @classmethod
    def from_json(cls, text: str) -> "FilterSnapshot":
        try:
            items = json.loads(text).get("nftables", [])
        except (ValueError, AttributeError) as exc:
            raise VirtopsError("cannot read the output of nft -j list table %s: %s" % (TABLE, exc))
        snap = cls()
        dispatch_rules: List[list] = []
        for item in items:
            kind, obj = next(iter(item.items())) if isinstance(item, dict) and item else ("", {})
            if not isinstance(obj, dict) or kind == "metainfo":
                continue
            if obj.get("family") != TABLE_FAMILY or TABLE_NAME not in (obj.get("table"), obj.get("name")):
                continue
            if kind == "table":
                snap.table = True
            elif kind == "map" and obj.get("name") == PORTS_MAP:
                snap.ports_map = True
                for element in obj.get("elem") or []:
                    key, verdict = _map_element(element)
                    if key is not None:
                        snap.elements[key] = verdict
            elif kind == "chain" and obj.get("name") == DISPATCH_CHAIN:
                snap.dispatch_hook = obj.get("hook") or ""
            elif kind == "chain" and str(obj.get("name", "")).startswith(CHAIN_PREFIX):
                snap.chains.setdefault(obj["name"], PortChain())
            elif kind == "rule" and obj.get("chain") == DISPATCH_CHAIN:
                dispatch_rules.append(obj.get("expr") or [])
            elif kind == "rule" and str(obj.get("chain", "")).startswith(CHAIN_PREFIX):
                seen = snap.chains.get(obj["chain"], PortChain())
                comment = seen.comment if seen.rules else obj.get("comment")
                snap.chains[obj["chain"]] = PortChain(comment=comment, rules=seen.rules + 1)
        snap.dispatch_ok = dispatch_rules == [_DISPATCH_EXPR]
        return snap

    def problem(self, wanted: PortFilter) -> Optional[str]:
        """Why ``wanted`` is not in force, or None when it is."""
        if self.dispatch_hook != DISPATCH_HOOK or not self.dispatch_ok:
            return ("the anti-spoofing dispatch chain (nft list table %s) is missing, so port %s "
                    "on %s is not filtered" % (TABLE, wanted.port_id, wanted.devname))
        chain = self.chains.get(wanted.chain)
        if self.elements.get(wanted.devname) != wanted.chain or chain is None:
            return "the anti-spoofing rules of port %s on %s are missing" % (
                wanted.port_id, wanted.devname)
        if chain.comment != wanted.comment or chain.rules != len(wanted.rules()):
            return "the anti-spoofing rules of port %s on %s are out of date" % (
                wanted.port_id, wanted.devname)
        return None

    def has_port(self, devname: str) -> bool:
        return devname in self.elements or chain_name(devname) in self.chains

    def describe(self, devname: str) -> str:
        """One port's state, for the diff."""
        chain = self.chains.get(chain_name(devname))
        if chain is None and devname not in self.elements:
            return "absent"
        return "%s (%d rules)%s" % (chain.comment if chain else "no chain", chain.rules if chain else 0,
                                    "" if self.elements.get(devname) == chain_name(devname)
                                    else ", not dispatched")


_DISPATCH_EXPR = [{"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@" + PORTS_MAP}}]


def _map_element(element) -> Tuple[Optional[str], str]:
    """``["tapX", {"jump": {"target": "port-tapX"}}]`` -> ("tapX", "port-tapX")."""
    if not isinstance(element, list) or len(element) != 2 or not isinstance(element[0], str):
        return None, ""
    verdict = element[1] if isinstance(element[1], dict) else {}
    target = (verdict.get("jump") or verdict.get("goto") or {}).get("target")
    return element[0], target or json.dumps(verdict, sort_keys=True)


@dataclass
class FilterChange:
    """The script that brings the table in line, and what it does in sentences."""
    script: str = ""
    actions: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    before: Dict[str, str] = field(default_factory=dict)
    after: Dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.script)


@dataclass(frozen=True)
class RemovedPort:
    """A port whose rules go: its id (for messages; empty when unknown) and its tap name."""
    port_id: str
    devname: str

    def describe(self) -> str:
        if not self.port_id:
            return "remove the anti-spoofing rules of %s" % self.devname
        return "remove the anti-spoofing rules of port %s from %s" % (self.port_id, self.devname)


def plan_port_filters(snapshot: FilterSnapshot, wanted: Sequence[PortFilter] = (),
                      removed: Sequence[RemovedPort] = ()) -> FilterChange:
    """The ``nft -f`` script that gives each port of ``wanted`` its rules and takes those of
    ``removed`` away, given the table as it is. Ports already in force are left alone, so an
    unchanged re-plug writes nothing; an empty script means nothing to do."""
    change = FilterChange()
    lines: List[str] = []
    devnames = [w.devname for w in wanted] + [r.devname for r in removed]
    duplicates = sorted({d for d in devnames if devnames.count(d) > 1})
    if duplicates:
        raise VirtopsError("the anti-spoofing rules of %s are both wanted and removed (or wanted "
                           "twice) in one plug" % ", ".join(duplicates))
    pending = [w for w in wanted if snapshot.problem(w) is not None]
    if pending:
        lines += _skeleton(snapshot)
    for port in pending:
        change.before["filter:%s" % port.devname] = snapshot.describe(port.devname)
        change.after["filter:%s" % port.devname] = "%s (%d rules)" % (port.comment, len(port.rules()))
        chain = snapshot.chains.get(port.chain)
        if chain is None:
            lines.append("add chain %s %s" % (TABLE, port.chain))
        if chain is None or chain.comment != port.comment or chain.rules != len(port.rules()):
            if chain is not None:
                lines.append("flush chain %s %s" % (TABLE, port.chain))
            rules = port.rules()
            rules[0] += ' comment "%s"' % port.comment
            lines += ["add rule %s %s %s" % (TABLE, port.chain, rule) for rule in rules]
        current = snapshot.elements.get(port.devname)
        if current != port.chain:
            if current is not None:
                lines.append('delete element %s %s { "%s" }' % (TABLE, PORTS_MAP, port.devname))
            lines.append('add element %s %s { "%s" : jump %s }'
                         % (TABLE, PORTS_MAP, port.devname, port.chain))
        if chain is None:
            change.actions.append(port.describe())
        elif chain.comment != port.comment:
            change.actions.append(port.describe("rewrite the filter of port"))
        else:
            change.actions.append(port.describe("restore the filter of port"))
    for port in removed:
        if not snapshot.has_port(port.devname):
            continue
        change.before["filter:%s" % port.devname] = snapshot.describe(port.devname)
        change.after["filter:%s" % port.devname] = "absent"
        if port.devname in snapshot.elements:
            lines.append('delete element %s %s { "%s" }' % (TABLE, PORTS_MAP, port.devname))
        if chain_name(port.devname) in snapshot.chains:
            lines.append("delete chain %s %s" % (TABLE, chain_name(port.devname)))
        change.actions.append(port.describe())
    change.script = "".join(line + "\n" for line in lines)
    return change


def skeleton_script() -> str:
    """The script that creates the table, the map and the dispatch chain on an empty host (what
    host readiness has ``nft --check`` try: it needs nf_tables with the bridge family)."""
    return "".join(line + "\n" for line in _skeleton(FilterSnapshot()))


def _skeleton(snapshot: FilterSnapshot) -> List[str]:
    """Table, map and dispatch chain, for what is missing of them."""
    if snapshot.dispatch_hook not in (None, DISPATCH_HOOK):
        raise VirtopsError("chain %s of table %s is hooked at %s, not %s; delete the table "
                           "(nft delete table %s) and plug the ports again"
                           % (DISPATCH_CHAIN, TABLE, snapshot.dispatch_hook, DISPATCH_HOOK, TABLE))
    lines = []
    if not snapshot.table:
        lines.append("add table %s" % TABLE)
    if not snapshot.ports_map:
        lines.append("add map %s %s { type ifname : verdict ; }" % (TABLE, PORTS_MAP))
    if snapshot.dispatch_hook is None:
        lines.append("add chain %s %s { type filter hook %s priority filter ; policy accept ; }"
                     % (TABLE, DISPATCH_CHAIN, DISPATCH_HOOK))
    if not snapshot.dispatch_ok:
        if snapshot.dispatch_hook is not None:
            lines.append("flush chain %s %s" % (TABLE, DISPATCH_CHAIN))
        lines.append("add rule %s %s iifname vmap @%s" % (TABLE, DISPATCH_CHAIN, PORTS_MAP))
    return lines


class Nft:
    """The ``nft`` binary: read the table, apply a script in one transaction."""

    def __init__(self, binary: Optional[str] = None):
        self.binary = binary or find_binary("nft")

    def read(self) -> FilterSnapshot:
        """The table as it is; no table is an empty snapshot."""
        result = run((self.binary, "-j", "list", "table", TABLE_FAMILY, TABLE_NAME), check=False)
        if result.rc != 0:
            if _ABSENT in result.stderr:
                return FilterSnapshot()
            raise VirtopsError("cannot read the anti-spoofing table (nft list table %s): %s"
                               % (TABLE, result.stderr.strip()[-2000:]))
        return FilterSnapshot.from_json(result.stdout)

    def apply_argv(self) -> Tuple[str, ...]:
        """The command a plan step runs with the script on stdin: one atomic transaction."""
        return (self.binary, "-f", "-")

    def apply(self, script: str) -> None:
        if script:
            run(self.apply_argv(), input_text=script)
