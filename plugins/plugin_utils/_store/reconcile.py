# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reconcile the fleet store with what the hosts hold (``playbooks/reconcile.yml``).

The hosts are the truth, as the compute hosts are for Nova's ``heal_allocations``: every
reporting host's servers are recorded; a server of the store that no reporting host holds is
released (allocation, name and ports) unless a live lease says an operation is under way, or
its host did not report (unreachable, or left out of the run: nothing is known of it);
expired leases, a killed job's, are removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Mapping, Sequence

from ansible_collections.virtops.compute.plugins.plugin_utils._store.fleet_store import (
    FleetStore, Lease)


@dataclass
class Reconciled:
    """What reconcile found and fixed."""
    reported: List[str] = field(default_factory=list)
    released: List[dict] = field(default_factory=list)
    expired: List[Lease] = field(default_factory=list)
    ports: int = 0
    kept_leased: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.released or self.expired or self.ports)

    def to_dict(self) -> dict:
        return {"reported": self.reported, "released": self.released,
                "expired": [{"server": lease.server, "holder": lease.holder,
                             "operation": lease.operation} for lease in self.expired],
                "ports": self.ports, "kept_leased": self.kept_leased}

    def lines(self) -> List[str]:
        lines = ["%d hosts reported" % len(self.reported)]
        lines += ["released %s (%s), held on %s by no host" % (r["name"], r["uuid"], r["host"] or "no host")
                  for r in self.released]
        lines += ["removed the expired lease on %s (%s by %s)" % (lease.server, lease.operation, lease.holder)
                  for lease in self.expired]
        if self.ports:
            lines.append("released %d ports whose server is gone" % self.ports)
        lines += ["kept %s: no host holds it, but it is leased (an operation is under way)" % name
                  for name in self.kept_leased]
        if not self.changed:
            lines.append("nothing to fix")
        return lines


def reconcile(store: FleetStore, facts: Sequence[Mapping], write: bool = True) -> Reconciled:
    """Report ``facts`` (every host reachable in this run) and fix the store from them."""
    result = Reconciled(reported=sorted(str(f.get("hostname")) for f in facts))
    now = store.clock()
    if write:
        store.report(facts)
        result.expired = store.expire()
    else:
        result.expired = [lease for lease in store.leases() if lease.expires < now]
    held = {str(i.get("uuid")) for f in facts for i in f.get("instances") or []
            if isinstance(i, Mapping) and i.get("uuid")}
    reporting = set(result.reported)
    known_hosts = set(store.reported_hosts())
    leased = store.live_leases()
    release = []
    for uuid, name, host in store.all_servers():
        if uuid in held or (host in known_hosts and host not in reporting):
            continue
        if name in leased:
            result.kept_leased.append(name)
            continue
        release.append({"uuid": uuid, "name": name, "host": host})
    result.released = release
    if write:
        store.forget([r["uuid"] for r in release])
        result.ports = store.forget_orphan_ports()
    return result
