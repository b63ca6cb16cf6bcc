# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet store: what placement, Neutron's IPAM tables and Nova's task_state checks keep
for a fleet, in one schema (``db.py``), used by the playbooks through the ``fleet_store``
action on the controller.

- **Hosts** report their host facts (``vm_host_facts``) whenever an operation gathers them and
  through ``playbooks/report.yml`` (Nova's ``update_available_resource``). Scheduling reads
  only candidates (:meth:`FleetStore.fleet`): the hosts whose reported free vCPU, RAM and disk
  cover the flavor, best first for the RAM weigher, at most ``limit`` of them (Nova's
  ``[scheduler] max_placement_results``, 1000) — so the scheduler's cost stops growing with
  the fleet, and only the chosen hosts are contacted.
- **Servers** are allocations and names at once: a row per server with its host and the
  resources its flavor holds there (placement's allocations), and its name unique in the
  fleet. A server claimed since its host last reported is *pending*: :meth:`FleetStore.fleet`
  adds it to that host's facts the way the scheduler consumes a pick, so two controllers do
  not both see the same free RAM.
- **Ports** hold every address (unique per network) and MAC (unique in the fleet) a server
  has; the database's unique constraints, not the order of events, decide who gets an
  address (Neutron's IP allocation table).
- **Leases** say who operates on a server: taken by compare-and-swap (one ``INSERT ... ON
  CONFLICT DO UPDATE ... WHERE`` statement, Nova's ``expected_task_state`` done in SQL), given
  back at the end, and expiring, so a killed job blocks a server only until its lease ends.

The clock is injected; times are epoch seconds.
"""
from __future__ import annotations

import json
import time
import uuid as uuid_mod
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.network_info import parse_network_info
from ansible_collections.virtops.compute.plugins.plugin_utils._network import ipam
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import HostState
from ansible_collections.virtops.compute.plugins.plugin_utils._store.db import Conflict, Database

# Nova's [scheduler] max_placement_results: the most candidates placement hands the scheduler.
MAX_PLACEMENT_RESULTS = 1000
# Addresses of ports made from records that carry only ``ips`` (no network_info).
LEGACY_PORT_NAMESPACE = uuid_mod.UUID("8a0c5e36-5b1f-4c8e-9a77-2d6f1b3e4c90")
# Rows per ``IN (...)`` list: below every engine's limit on bound parameters.
CHUNK = 500
# The instance keys a pending server shows in its host's facts.
SUMMARY_KEYS = ("uuid", "name", "host", "vm_state", "task_state", "flavor", "ips",
                "network_info", "server_group", "availability_zone", "created_at")


class LeaseBusy(VirtopsError):
    """Another operation holds the server."""


@dataclass(frozen=True)
class Lease:
    """Who operates on a server, since when, until when."""
    server: str
    holder: str
    operation: str
    since: float
    expires: float

    def describe(self, now: float) -> str:
        return ("%s by %s since %s (lease ends in %d s)"
                % (self.operation, self.holder, _when(self.since), max(0, self.expires - now)))


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _chunks(values: Sequence, size: int = CHUNK) -> Iterable[list]:
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _marks(values: Sequence) -> str:
    return ", ".join(["?"] * len(values))


def _flavor_resources(flavor: Optional[Mapping]) -> tuple:
    """(vCPUs, RAM MB, local disk GB) a flavor holds: Nova counts root + ephemeral, not swap."""
    flavor = flavor or {}
    return (float(flavor.get("vcpus") or 0), float(flavor.get("ram_mb") or 0),
            float(flavor.get("root_gb") or 0) + float(flavor.get("ephemeral_gb") or 0))


def _summary(instance: Mapping, host: Optional[str]) -> dict:
    summary = {key: instance.get(key) for key in SUMMARY_KEYS if instance.get(key) is not None}
    summary["host"] = host
    return summary


def _ports_of(instance: Mapping) -> List[tuple]:
    """(port id, network name, address, MAC) for each port an instance record holds; a
    record with only ``ips`` (made before ports were recorded) gives a port per address."""
    try:
        vifs = parse_network_info(instance.get("network_info"))
    except VirtopsError:
        vifs = []       # a broken record must not stop the report of everything else
    ports = [(vif.id, vif.network_label, vif.fixed_ips[0] if vif.fixed_ips else None, vif.address)
             for vif in vifs]
    if not ports:
        for ip in instance.get("ips") or []:
            address = ip.get("address") if isinstance(ip, Mapping) else ip
            if address:
                port_id = str(uuid_mod.uuid5(LEGACY_PORT_NAMESPACE,
                                             "%s/%s" % (instance.get("uuid"), address)))
                ports.append((port_id, "?", str(address), None))
    return ports


def _busy(server: str, current: Optional[Lease], now: float) -> LeaseBusy:
    """The one refusal of a leased server, naming who holds it."""
    return LeaseBusy("server %s is busy: %s. Wait for that job to end, or for its lease to "
                     "expire if it was killed" % (server, current.describe(now) if current else "leased"),
                     server=server, holder=current.holder if current else None)


class FleetStore:
    """The store's operations; one instance per connection."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time):
        self.db = database
        self.clock = clock

    # -- hosts: inventories and their reports -----------------------------------------------
    def report(self, hosts: Sequence[Mapping]) -> List[str]:
        """Store each host's facts as its report now, and the servers and ports it holds; the
        hosts whose facts differ from their last report.

        A server the host holds is recorded (or moved) there; one whose name another server
        of the store holds is left for reconcile to report."""
        now = self.clock()
        names = []
        with self.db.transaction():
            for facts in hosts:
                state = HostState.from_facts(facts)
                text = json.dumps(dict(facts), sort_keys=True, default=str)
                if self.db.execute("SELECT facts FROM hosts WHERE name = ?", (state.hostname,)) \
                        != [(text,)]:
                    names.append(state.hostname)
                total_disk_mb = state.local_gb * 1024
                free_vcpus = state.vcpus * state.cpu_allocation_ratio - state.vcpus_used
                free_ram = state.memory_mb * state.ram_allocation_ratio - state.memory_mb_used
                free_disk = total_disk_mb * state.disk_allocation_ratio - (total_disk_mb - state.free_disk_mb)
                self.db.execute(
                    "INSERT INTO hosts (name, facts, enabled, vcpus, free_vcpus, free_ram_mb, "
                    "free_disk_mb, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET facts = excluded.facts, "
                    "enabled = excluded.enabled, vcpus = excluded.vcpus, "
                    "free_vcpus = excluded.free_vcpus, free_ram_mb = excluded.free_ram_mb, "
                    "free_disk_mb = excluded.free_disk_mb, reported_at = excluded.reported_at",
                    (state.hostname, text, 1 if state.enabled else 0, state.vcpus, free_vcpus, free_ram, free_disk, now))
                for instance in facts.get("instances") or []:
                    if isinstance(instance, Mapping) and instance.get("uuid") and instance.get("name"):
                        self._record_server(instance, state.hostname, now, strict=False)
        return names

    def stale(self, names: Sequence[str], max_age: float) -> List[str]:
        """The hosts among ``names`` with no report, or one older than ``max_age`` seconds."""
        fresh = set()
        limit = self.clock() - max_age
        for chunk in _chunks(names):
            fresh.update(row[0] for row in self.db.execute(
                "SELECT name FROM hosts WHERE reported_at >= ? AND name IN (%s)" % _marks(chunk),
                [limit] + chunk))
        return [name for name in names if name not in fresh]

    def mark_stale(self, names: Sequence[str]) -> None:
        """Make the next operation gather these hosts again (a claim they refused says the
        store's picture of them is wrong)."""
        with self.db.transaction():
            for chunk in _chunks(names):
                self.db.execute("UPDATE hosts SET reported_at = 0 WHERE name IN (%s)"
                                % _marks(chunk), chunk)

    def fleet(self, inventory: Sequence[str], flavor: Optional[Mapping] = None,
              servers: Sequence[str] = (), limit: int = MAX_PLACEMENT_RESULTS,
              spread: bool = True) -> List[dict]:
        """Host facts for the scheduler: placement's candidates plus the hosts of ``servers``.

        Candidates are the reported hosts of ``inventory`` that are enabled and whose free
        vCPU, RAM and disk (the filters' arithmetic at report time) cover ``flavor``, most
        free RAM first (fewest with ``spread`` false, for a packing RAM weigher), at most
        ``limit``. Without a flavor every reported host of ``inventory`` is a candidate.
        Each host's facts carry the servers claimed there since its report."""
        members = set(inventory)
        chosen: List[str] = []
        if flavor is not None:
            vcpus, ram_mb, disk_gb = _flavor_resources(flavor)
            disk_mb = disk_gb * 1024 + float((flavor or {}).get("swap_mb") or 0)
            rows = self.db.execute(
                "SELECT name FROM hosts WHERE enabled = 1 AND free_ram_mb >= ? "
                "AND free_disk_mb >= ? AND (vcpus = 0 OR (free_vcpus >= ? AND vcpus >= ?)) "
                "ORDER BY free_ram_mb %s, name" % ("DESC" if spread else "ASC"),
                (ram_mb, disk_mb, vcpus, vcpus))
            for (name,) in rows:
                if name in members:
                    chosen.append(name)
                    if len(chosen) >= limit:
                        break
        else:
            chosen = list(inventory)
        for name in self.hosts_of(servers).values():
            if name in members and name not in chosen:
                chosen.append(name)
        return self.host_facts(chosen)

    def host_facts(self, names: Sequence[str]) -> List[dict]:
        """The reported facts of ``names`` (those that reported), with pending servers."""
        reports: Dict[str, tuple] = {}
        for chunk in _chunks(names):
            for name, facts, reported_at in self.db.execute(
                    "SELECT name, facts, reported_at FROM hosts WHERE name IN (%s)"
                    % _marks(chunk), chunk):
                reports[name] = (json.loads(facts), reported_at)
        pending: Dict[str, list] = {}
        for chunk in _chunks(list(reports)):
            for row in self.db.execute(
                    "SELECT s.host, s.vcpus, s.ram_mb, s.disk_gb, s.summary FROM servers s "
                    "JOIN hosts h ON s.host = h.name WHERE s.updated_at >= h.reported_at "
                    "AND h.name IN (%s) ORDER BY s.updated_at" % _marks(chunk), chunk):
                pending.setdefault(row[0], []).append(row[1:])
        result = []
        for name in names:
            if name not in reports:
                continue
            facts = reports[name][0]
            known = {i.get("uuid") for i in facts.get("instances") or [] if isinstance(i, Mapping)}
            for vcpus, ram_mb, disk_gb, summary in pending.get(name, []):
                instance = json.loads(summary)
                if instance.get("uuid") in known:
                    continue
                facts["vcpus_used"] = facts.get("vcpus_used", 0) + vcpus
                facts["memory_mb_used"] = facts.get("memory_mb_used", 0) + ram_mb
                facts["local_gb_used"] = facts.get("local_gb_used", 0) + disk_gb
                if facts.get("free_disk_gb") is not None:
                    facts["free_disk_gb"] = facts["free_disk_gb"] - disk_gb
                facts.setdefault("instances", []).append(instance)
            result.append(facts)
        return result

    def host_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM hosts")[0][0])

    # -- servers: allocations and names --------------------------------------------------------
    def _record_server(self, instance: Mapping, host: Optional[str], now: float,
                       strict: bool) -> None:
        vcpus, ram_mb, disk_gb = _flavor_resources(instance.get("flavor"))
        summary = json.dumps(_summary(instance, host), sort_keys=True, default=str)
        values = (str(instance["name"]), host, vcpus, ram_mb, disk_gb, summary, now,
                  str(instance["uuid"]))
        updated = self.db.execute(
            "UPDATE servers SET name = ?, host = ?, vcpus = ?, ram_mb = ?, disk_gb = ?, "
            "summary = ?, updated_at = ? WHERE uuid = ? RETURNING uuid", values) \
            if strict else self.db.execute(
                "UPDATE servers SET host = ?, vcpus = ?, ram_mb = ?, disk_gb = ?, summary = ? "
                "WHERE uuid = ? AND name = ? RETURNING uuid",
                (host, vcpus, ram_mb, disk_gb, summary, str(instance["uuid"]),
                 str(instance["name"])))
        if not updated:
            holder = self.db.execute("SELECT uuid, host FROM servers WHERE name = ?",
                                     (str(instance["name"]),))
            if holder and holder[0][0] != str(instance["uuid"]):
                if strict:
                    raise Conflict("the name %s is taken in the fleet by server %s on %s"
                                   % (instance["name"], holder[0][0], holder[0][1] or "no host"),
                                   name=str(instance["name"]))
                return
            if holder:
                return
            self.db.execute(
                "INSERT INTO servers (name, host, vcpus, ram_mb, disk_gb, summary, updated_at, "
                "uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
        if not strict:
            for port in _ports_of(instance):
                self.db.execute(
                    "INSERT INTO ports (port_id, network, address, mac, server_uuid, server_name) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    port + (str(instance["uuid"]), str(instance["name"])))

    def claim(self, instances: Sequence[Mapping]) -> None:
        """Record where each server's allocation is (``uuid``, ``name``, ``host``, ``flavor``
        and what else its host facts will show), all or nothing. A name another server holds
        is refused."""
        now = self.clock()
        with self.db.transaction():
            for instance in instances:
                self._record_server(instance, instance.get("host"), now, strict=True)

    def servers(self, names: Sequence[str]) -> Dict[str, dict]:
        """name -> {uuid, host, summary} for the servers of ``names`` the store has."""
        found = {}
        for chunk in _chunks(names):
            for uuid, name, host, summary in self.db.execute(
                    "SELECT uuid, name, host, summary FROM servers WHERE name IN (%s)"
                    % _marks(chunk), chunk):
                found[name] = {"uuid": uuid, "host": host, "summary": json.loads(summary)}
        return found

    def all_servers(self) -> List[tuple]:
        """(uuid, name, host) of every server the store has."""
        return self.db.execute("SELECT uuid, name, host FROM servers ORDER BY name")

    def reported_hosts(self) -> List[str]:
        return [row[0] for row in self.db.execute("SELECT name FROM hosts ORDER BY name")]

    def forget_orphan_ports(self) -> int:
        """Release the ports whose server the store no longer has."""
        with self.db.transaction():
            return len(self.db.execute(
                "DELETE FROM ports WHERE server_uuid NOT IN (SELECT uuid FROM servers) "
                "RETURNING port_id"))

    def hosts_of(self, names: Sequence[str]) -> Dict[str, str]:
        return {name: row["host"] for name, row in self.servers(names).items() if row["host"]}

    def forget(self, uuids: Sequence[str]) -> int:
        """Release the allocations, names and ports of these servers; how many there were."""
        count = 0
        with self.db.transaction():
            for chunk in _chunks(uuids):
                self.db.execute("DELETE FROM ports WHERE server_uuid IN (%s)" % _marks(chunk), chunk)
                count += len(self.db.execute("DELETE FROM servers WHERE uuid IN (%s) RETURNING uuid"
                                             % _marks(chunk), chunk))
        return count

    # -- leases ---------------------------------------------------------------------------
    def lease(self, server: str) -> Optional[Lease]:
        rows = self.db.execute("SELECT server, holder, operation, since, expires FROM leases "
                               "WHERE server = ?", (server,))
        return Lease(*rows[0]) if rows else None

    def take(self, servers: Sequence[str], holder: str, operation: str, ttl: float,
             alive: Callable[[str], bool] = lambda holder: True) -> List[Lease]:
        """Lease every server of ``servers`` to ``holder``, all or none: a server leased to
        somebody else whose lease has not expired refuses the whole call, naming them, unless
        ``alive`` says that holder is gone (a job on this controller whose process has ended):
        then its lease is taken over, still by compare-and-swap on the holder."""
        now = self.clock()
        taken = []
        with self.db.transaction():
            for server in servers:
                rows = self.db.execute(
                    "INSERT INTO leases (server, holder, operation, since, expires) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (server) DO UPDATE SET "
                    "holder = excluded.holder, operation = excluded.operation, "
                    "since = excluded.since, expires = excluded.expires "
                    "WHERE leases.expires < ? OR leases.holder = excluded.holder "
                    "RETURNING server", (server, holder, operation, now, now + ttl, now))
                current = None if rows else self.lease(server)
                if current is not None and not alive(current.holder):
                    rows = self.db.execute(
                        "UPDATE leases SET holder = ?, operation = ?, since = ?, expires = ? "
                        "WHERE server = ? AND holder = ? RETURNING server",
                        (holder, operation, now, now + ttl, server, current.holder))
                if not rows:
                    raise _busy(server, current, now)
                taken.append(Lease(server, holder, operation, now, now + ttl))
        return taken

    def check_free(self, servers: Sequence[str], holder: str,
                   alive: Callable[[str], bool] = lambda holder: True) -> List[Lease]:
        """What :meth:`take` would take, taking nothing (check mode): refused the same way."""
        now = self.clock()
        for server in servers:
            current = self.lease(server)
            if current and current.expires >= now and current.holder != holder and alive(current.holder):
                raise _busy(server, current, now)
        return [Lease(server, holder, "check", now, now) for server in servers]

    def give_back(self, servers: Sequence[str], holder: str) -> List[str]:
        """End ``holder``'s leases on ``servers``; the servers whose lease was ended."""
        ended = []
        with self.db.transaction():
            for chunk in _chunks(servers):
                ended += [row[0] for row in self.db.execute(
                    "DELETE FROM leases WHERE holder = ? AND server IN (%s) RETURNING server"
                    % _marks(chunk), [holder] + chunk)]
        return ended

    def expire(self) -> List[Lease]:
        """Remove the leases whose time is up (their jobs ended without giving them back)."""
        with self.db.transaction():
            rows = self.db.execute("DELETE FROM leases WHERE expires < ? RETURNING server, holder, "
                                   "operation, since, expires", (self.clock(),))
        return [Lease(*row) for row in rows]

    def leases(self) -> List[Lease]:
        """Every lease, expired or not."""
        return [Lease(*row) for row in self.db.execute(
            "SELECT server, holder, operation, since, expires FROM leases ORDER BY server")]

    def live_leases(self) -> Dict[str, Lease]:
        now = self.clock()
        return {lease.server: lease for lease in self.leases() if lease.expires >= now}

    # -- ports ------------------------------------------------------------------------------
    def reserved(self, networks: Sequence[str]) -> List[dict]:
        """The ports of ``networks`` (and every MAC of the fleet), as the IPAM's ``allocated``
        entries: one per server with its ``ips`` and ``macs``."""
        by_server: Dict[str, dict] = {}
        rows = []
        for chunk in _chunks(list(networks) + ["?"]):
            rows += self.db.execute("SELECT server_uuid, server_name, address, mac FROM ports "
                                    "WHERE network IN (%s)" % _marks(chunk), chunk)
        rows += [(uuid, name, None, mac) for uuid, name, mac in self.db.execute(
            "SELECT server_uuid, server_name, mac FROM ports WHERE mac IS NOT NULL")]
        for uuid, name, address, mac in rows:
            entry = by_server.setdefault(uuid, {"uuid": uuid, "name": name, "ips": [], "macs": [],
                                                "where": "server %s in the fleet store" % name})
            if address and address not in entry["ips"]:
                entry["ips"].append(address)
            if mac and mac not in entry["macs"]:
                entry["macs"].append(mac)
        return list(by_server.values())

    def reserve(self, allocations: Sequence[Mapping]) -> None:
        """Hold the ports of ``allocations`` (``uuid``, ``name``, ``network_info``), all or
        nothing; raises :class:`Conflict` when an address or MAC is somebody else's. A
        server's earlier ports on the same networks that it no longer has are released."""
        with self.db.transaction():
            for allocation in allocations:
                ports = _ports_of(allocation)
                keep = [port[0] for port in ports]
                self.db.execute("DELETE FROM ports WHERE server_uuid = ? AND port_id NOT IN (%s)"
                                % _marks(keep or ["-"]), [str(allocation["uuid"])] + (keep or ["-"]))
                for port in ports:
                    self.db.execute(
                        "INSERT INTO ports (port_id, network, address, mac, server_uuid, server_name) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (port_id) DO UPDATE SET "
                        "network = excluded.network, address = excluded.address, "
                        "mac = excluded.mac WHERE ports.server_uuid = excluded.server_uuid",
                        port + (str(allocation["uuid"]), str(allocation["name"])))


# Times a port allocation is read and tried again after another controller took an address
# or MAC first.
PORT_RETRIES = 10


def allocate_ports(store: FleetStore, networks: Mapping, instances: Sequence[Mapping], hosts=None,
                   write: bool = True) -> List[dict]:
    """Ports for ``instances`` (see ``_network/ipam.py``), unique against everything the store
    holds, and held there before they are returned (unless ``write`` is false, check mode).

    The IPAM picks from what the store and ``hosts`` say is taken; the store's unique
    constraints decide between controllers allocating at once: the loser reads again and
    picks again (Neutron retries its IP allocation on a duplicate entry the same way)."""
    wanted = sorted({str(n.get("network")) for i in instances for n in i.get("networks") or []
                     if isinstance(n, Mapping)})
    last = None
    for _attempt in range(PORT_RETRIES):
        taken = store.reserved(wanted)
        allocations = [a.to_dict() for a in
                       ipam.allocate_ports(networks, instances, hosts=hosts, allocated=taken)]
        if not write:
            return allocations
        try:
            store.reserve(allocations)
            return allocations
        except Conflict as exc:
            last = exc
    raise VirtopsError("could not hold ports for %s after %d tries, other controllers kept "
                       "taking the same addresses: %s"
                       % (", ".join(str(i.get("name")) for i in instances), PORT_RETRIES, last.msg))
