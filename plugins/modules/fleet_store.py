#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This file is documentation only: the work is done on the controller by the action plugin of
# the same name (plugins/action/fleet_store.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_store
short_description: Read and change the fleet store (placement, names, ports, leases) on the controller
version_added: 0.2.0
description:
  - The playbooks' one way to the fleet store, the controller-side database that plays the part
    of Nova's placement, Neutron's IP allocation table and Nova's task_state checks for a whole
    fleet. It runs on the controller (an action plugin), and no compute host is contacted.
  - "Engines: an embedded SQLite database (O(store) is an absolute path or
    C(sqlite:////path/fleet.db); Python's own sqlite3) for one controller, or PostgreSQL
    (C(postgresql://user:password@host:port/dbname); psycopg 3 on the controller) for several
    controllers or an AWX cluster. The schema is created on first use."
  - "V(report): store O(facts) (host facts of M(virtops.compute.vm_host_facts)) as each host's
    report, and the servers and ports each holds."
  - "V(stale): which hosts of O(inventory) have no report or one older than O(max_age)."
  - "V(locate): the hosts of O(inventory) that may hold O(servers) - where the store has them, and
    every host whose report is stale."
  - "V(fleet): report O(facts), then return the host facts the scheduler needs: the candidates
    of O(inventory) whose reported free vCPUs, RAM and disk cover O(flavor), most free RAM first
    (fewest with O(spread=false)), at most O(limit) (Nova's C(max_placement_results)); plus the
    hosts of O(servers). Each host's facts include the servers claimed there since it reported."
  - "V(lease): lease O(servers) to O(holder) for O(ttl) seconds, all or none, by compare-and-swap.
    A server leased to another holder whose lease has not expired fails the task with a message
    naming that holder and operation."
  - "V(release): end O(holder)'s leases on O(servers)."
  - "V(claim): record O(instances) (C(uuid), C(name), C(host), C(flavor), and what their host
    facts will show) as allocations; a name another server holds fails the task."
  - "V(ports): allocate ports for O(instances) from the O(networks) catalog, unique against the
    store (and O(facts)), and hold them there. Another controller taking an address first makes
    this read and allocate again."
  - "V(forget): release the allocations, names and ports of the servers O(uuids)."
  - "V(mark_stale): make the next operation gather the hosts O(inventory) again."
  - "V(reconcile): report O(facts) (every reachable host), release what no reporting host holds
    and no live lease protects, remove expired leases; RV(lines) says what was fixed."
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.attributes
options:
  store:
    description:
      - The store, as the fleet variable C(virtops_fleet_store) names it. A password in it is never
        logged or shown in a message.
    type: str
    required: true
  operation:
    description: What to do; see the description.
    type: str
    required: true
    choices: [report, stale, locate, fleet, lease, release, claim, ports, forget, mark_stale, reconcile]
  inventory:
    description: Inventory host names (V(stale), V(locate), V(fleet), V(mark_stale)).
    type: list
    elements: str
    default: []
  facts:
    description: Host facts gathered in this run, one mapping per host (V(report), V(fleet), V(ports), V(reconcile)).
    type: list
    elements: dict
    default: []
  servers:
    description: Server names (V(lease), V(release), V(locate), V(fleet)).
    type: list
    elements: str
    default: []
  uuids:
    description: Server UUIDs (V(forget)).
    type: list
    elements: str
    default: []
  instances:
    description: Instances to claim (V(claim)) or to allocate ports for (V(ports), with C(name), C(uuid), C(networks)).
    type: list
    elements: dict
    default: []
  networks:
    description: The C(networks) catalog (V(ports)).
    type: dict
    default: {}
  flavor:
    description: The flavor the candidates must fit (V(fleet)); without it every reported host of O(inventory) is returned.
    type: dict
  max_age:
    description: Seconds after which a host's report is stale (V(stale), V(locate)).
    type: float
    default: 300
  ttl:
    description: Seconds a lease lasts unless given back (V(lease)).
    type: float
    default: 3600
  limit:
    description: The most candidates V(fleet) returns (Nova's C([scheduler] max_placement_results)).
    type: int
    default: 1000
  spread:
    description: Candidates with the most free RAM first (V(true), for a spreading RAM weigher) or the least.
    type: bool
    default: true
  holder:
    description:
      - Who holds the leases (V(lease), V(release)). Default C(AWX job <id>) in AWX, else
        C(ansible-playbook pid <pid> on <controller>).
    type: str
  lease_operation:
    description: What the lease is for, shown to whoever is refused (V(lease)).
    type: str
    default: an operation
attributes:
  check_mode:
    support: full
    details:
      - Reads and refuses the same way, and writes nothing (V(fleet) uses O(facts) over the store's copies).
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Leases are the run's own bookkeeping and never make a task changed. A report whose facts
        are those already stored, and allocating ports a server already holds, change nothing.
seealso:
  - module: virtops.compute.vm_host_facts
notes:
  - docs/scheduler.md (The fleet store) explains when the playbooks use it.
"""

EXAMPLES = r"""
- name: Lease the server to this job while it is deleted
  virtops.compute.fleet_store:
    store: "{{ virtops_fleet_store }}"
    operation: lease
    servers: [web1]
    lease_operation: delete

- name: Which compute hosts must report again
  virtops.compute.fleet_store:
    store: sqlite:////var/lib/virtops/fleet.db
    operation: stale
    inventory: "{{ groups['compute'] }}"
    max_age: 300
  register: stale

- name: Give the lease back
  virtops.compute.fleet_store:
    store: "{{ virtops_fleet_store }}"
    operation: release
    servers: [web1]
"""

RETURN = r"""
reported:
  description: The hosts whose facts were given (V(report)).
  returned: operation is report
  type: list
  elements: str
changed_hosts:
  description: The hosts whose facts differ from their last report (V(report)); the task is changed only when there are some.
  returned: operation is report
  type: list
  elements: str
hosts:
  description: The hosts to gather (V(stale), V(locate)).
  returned: operation is stale or locate
  type: list
  elements: str
fleet:
  description: Host facts for the scheduler (V(fleet)).
  returned: operation is fleet
  type: list
  elements: dict
store_hosts:
  description: How many hosts the store has reports of (V(fleet)).
  returned: operation is fleet
  type: int
holder:
  description: Who holds the leases (V(lease)).
  returned: operation is lease
  type: str
leases:
  description: The servers leased (V(lease)).
  returned: operation is lease
  type: list
  elements: str
released:
  description: The servers whose lease was ended (V(release)).
  returned: operation is release
  type: list
  elements: str
allocations:
  description: One entry per instance with C(name), C(uuid), C(ips), C(macs), C(network_info) (V(ports)).
  returned: operation is ports
  type: list
  elements: dict
forgotten:
  description: How many servers were released (V(forget)).
  returned: operation is forget
  type: int
fixed:
  description: What reconcile found (C(reported), C(released), C(expired), C(ports), C(kept_leased)).
  returned: operation is reconcile
  type: dict
lines:
  description: What reconcile fixed, a line each.
  returned: operation is reconcile
  type: list
  elements: str
"""
