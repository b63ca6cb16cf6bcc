# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Nova's FilterScheduler on the controller: filter, weigh, pick, consume, repeat.

``schedule(hosts, spec, config)`` places every instance of the request or raises
:class:`NoValidHost` (all or nothing, as Nova). For each instance: drop the hosts a
filter refuses, weigh the rest, pick at random among the best ``host_subset_size``, and
consume the picked host's vCPUs, RAM and disk (and record the new instance there, so
server-group filters see it) before the next instance.

Cost per pick is one pass over the passing hosts for the weights: filter answers are kept
between picks and only the chosen host (the only one that changed) is filtered again,
unless a filter says every answer may have changed (affinity after its first member).
"""
from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import (
    HostState,
    InstanceInfo,
    parse_hosts,
)
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.filters import make_filters
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.request import (
    DEFAULT_FILTERS,
    RequestSpec,
    SchedulerConfig,
)
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.weighers import WEIGHER_CLASSES

__all__ = ("DEFAULT_FILTERS", "Alternate", "NoValidHost", "RequestSpec", "SchedulerConfig", "Selection",
           "schedule")


class NoValidHost(VirtopsError):
    """No host passed every filter for one instance of the request."""


@dataclass(frozen=True)
class Alternate:
    host: str
    limits: dict
    weight: float

    def to_dict(self) -> dict:
        return {"host": self.host, "limits": dict(self.limits), "weight": self.weight}


@dataclass(frozen=True)
class Selection:
    """Where one instance goes: the host, the limits its claim must respect, and the
    alternates to retry on (best first) if the build there fails."""

    instance_name: str
    host: str
    limits: dict
    weight: float
    availability_zone: str
    instance_uuid: Optional[str] = None
    alternates: tuple = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "instance_name": self.instance_name,
            "instance_uuid": self.instance_uuid,
            "host": self.host,
            "availability_zone": self.availability_zone,
            "limits": dict(self.limits),
            "weight": self.weight,
            "alternates": [alt.to_dict() for alt in self.alternates],
        }


def _plural(count: int, word: str) -> str:
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


class _WeigherState:
    """One weigher's raw values and multipliers for the passing hosts, in their order."""

    __slots__ = ("weigher", "default", "per_host", "raw", "mult")

    def __init__(self, weigher, default: float, per_host: bool):
        self.weigher = weigher
        self.default = default
        self.per_host = per_host
        self.raw: list = []
        self.mult: list = []

    def load(self, hosts: list) -> None:
        self.raw = self.weigher.raw_many(hosts)
        if self.per_host:
            multiplier, default = self.weigher.multiplier, self.default
            self.mult = [multiplier(h, default) for h in hosts]

    def update(self, pos: int, host: HostState) -> None:
        self.raw[pos] = self.weigher.raw(host)
        if self.per_host:
            self.mult[pos] = self.weigher.multiplier(host, self.default)

    def remove(self, pos: int) -> None:
        del self.raw[pos]
        if self.per_host:
            del self.mult[pos]


class _Placement:
    """The working state of one request: host states (the chosen ones replaced after
    consuming), the passing hosts in host order, and per weigher the raw weights and
    multipliers of the passing hosts (lists aligned with ``passing``)."""

    def __init__(self, hosts: list, spec: RequestSpec, config: SchedulerConfig, rng: random.Random):
        self.hosts = list(hosts)
        self.spec = spec
        self.config = config
        self.rng = rng
        self.all_filters = make_filters(config.enabled_filters, config.default_availability_zone)
        self.filters = [f for f in self.all_filters if f.prepare(self.hosts, spec)]
        self.candidates = self._candidates()
        # fail_at[i]: position in self.filters of the filter that removed host i, -1 if none.
        self.fail_at: list = []
        self.passing: list = []
        self.weighers = []
        overridden = [i for i in self.candidates if self.hosts[i].weight_multiplier_keys]
        for cls in WEIGHER_CLASSES:
            weigher = cls()
            default = getattr(config, weigher.option)
            per_host = any(weigher.option in self.hosts[i].weight_multiplier_keys for i in overridden)
            if default == 0.0 and not per_host:
                continue  # adds 0 x (0..1) to every host: changes no total
            self.weighers.append(_WeigherState(weigher, default, per_host))
        self._filter_all()

    # ---------------------------------------------------------------- filtering
    def _candidates(self) -> list:
        forced = self.spec.force_host or self.spec.force_node
        if not forced:
            return list(range(len(self.hosts)))
        for i, host in enumerate(self.hosts):
            if host.hostname == forced:
                return [i]
        return []

    def _first_failure(self, host: HostState) -> int:
        spec = self.spec
        for pos, flt in enumerate(self.filters):
            if not flt.host_passes(host, spec):
                return pos
        return -1

    def _filter_all(self) -> None:
        """Every filter in turn over the hosts the earlier ones kept (Nova's order)."""
        hosts, spec = self.hosts, self.spec
        fail_at = [-1] * len(hosts)
        remaining = self.candidates
        for pos, flt in enumerate(self.filters):
            kept = flt.filter_indices(hosts, remaining, spec)
            if len(kept) != len(remaining):
                for i in set(remaining).difference(kept):
                    fail_at[i] = pos
            remaining = kept
        self.fail_at = fail_at
        self.passing = list(remaining)
        passing_hosts = [hosts[i] for i in self.passing]
        for state in self.weighers:
            state.load(passing_hosts)

    # ----------------------------------------------------------------- weighing
    def _weights(self) -> list:
        """Total weight of each passing host, aligned with self.passing: per weigher
        ``total += multiplier * (raw - min) / (max - min)``, in Nova's order of operations
        (so equal inputs give equal floats); a weigher whose raw values are all equal adds 0."""
        terms = []
        for state in self.weighers:
            values = state.raw
            low, high = min(values), max(values)
            if low != high:
                low = float(low)
                terms.append((values, state.mult if state.per_host else state.default, low, float(high) - low))
        if not terms:
            return [0.0] * len(self.passing)
        if all(not isinstance(term[1], list) for term in terms):
            # one pass for the usual case of config-wide multipliers
            if len(terms) == 1:
                (a, m0, l0, s0), = terms
                return [0.0 + m0 * ((x - l0) / s0) for x in a]
            if len(terms) == 2:
                (a, m0, l0, s0), (b, m1, l1, s1) = terms
                return [0.0 + m0 * ((x - l0) / s0) + m1 * ((y - l1) / s1) for x, y in zip(a, b)]
            if len(terms) == 3:
                (a, m0, l0, s0), (b, m1, l1, s1), (c, m2, l2, s2) = terms
                return [0.0 + m0 * ((x - l0) / s0) + m1 * ((y - l1) / s1) + m2 * ((z - l2) / s2)
                        for x, y, z in zip(a, b, c)]
        total = [0.0] * len(self.passing)
        for values, mult, low, span in terms:
            if isinstance(mult, list):
                total = [t + m * ((v - low) / span) for t, m, v in zip(total, mult, values)]
            else:
                total = [t + mult * ((v - low) / span) for t, v in zip(total, values)]
        return total

    def _ranked(self, count: int) -> list:
        """The best ``count`` passing hosts as (position in passing, weight), best first,
        with one of the best ``host_subset_size`` drawn at random moved to the front."""
        weights = self._weights()
        subset_size = self.config.host_subset_size
        top = heapq.nlargest(max(count, subset_size), range(len(weights)), key=weights.__getitem__)
        if subset_size > 1 and len(top) > 1:
            chosen = self.rng.choice(top[:subset_size])
            top.remove(chosen)
            top.insert(0, chosen)
        return [(pos, weights[pos]) for pos in top]

    def _limits(self, host: HostState) -> dict:
        limits: dict = {}
        for flt in self.all_filters:
            flt.update_limits(host, limits)
        return limits

    # ---------------------------------------------------------------- consuming
    def _consume(self, pos: int, name: str, uuid: Optional[str]) -> None:
        """Count the instance on the host at ``passing[pos]``; filter that host again."""
        index = self.passing[pos]
        flavor, group = self.spec.flavor, self.spec.server_group
        instance = InstanceInfo(uuid=uuid, name=name, server_group=group.name if group else None,
                                vm_state="building", task_state="scheduling")
        host = self.hosts[index].consume(flavor.vcpus, flavor.ram_mb, flavor.root_gb + flavor.ephemeral_gb,
                                         instance)
        self.hosts[index] = host
        everyone = False
        for flt in self.filters:
            if flt.on_selected(host, self.spec):
                everyone = True
        if everyone:
            self._filter_all()
            return
        failed_at = self._first_failure(host)
        self.fail_at[index] = failed_at
        if failed_at >= 0:
            del self.passing[pos]
            for state in self.weighers:
                state.remove(pos)
        else:
            for state in self.weighers:
                state.update(pos, host)

    # ------------------------------------------------------------------ errors
    def _no_valid_host(self, number: int, placed: list) -> NoValidHost:
        name = self.spec.instance_names[number]
        forced = self.spec.force_host or self.spec.force_node
        prefix = "No valid host was found for %s" % name
        if not self.hosts:
            return NoValidHost("%s: 0 hosts given" % prefix, instance=name, hosts=0, removed={})
        if forced and not self.candidates:
            return NoValidHost("%s: forced host %s is not among the %s given"
                               % (prefix, forced, _plural(len(self.hosts), "host")),
                               instance=name, hosts=len(self.hosts), removed={})
        removed: dict = {}
        for i in self.candidates:
            pos = self.fail_at[i]
            if pos >= 0:
                fname = self.filters[pos].name
                removed[fname] = removed.get(fname, 0) + 1
        ordered = {f.name: removed[f.name] for f in self.filters if f.name in removed}
        counted = _plural(len(self.candidates), "host")
        if forced:
            counted += " (forced host %s)" % forced
        msg = "%s: %s; %s" % (prefix, counted, ", ".join("%s removed %d" % kv for kv in ordered.items()))
        if placed:
            msg += " (after placing %s in this request)" % ", ".join(
                "%s on %s" % (sel.instance_name, sel.host) for sel in placed)
        return NoValidHost(msg, instance=name, hosts=len(self.candidates), removed=ordered)

    # -------------------------------------------------------------------- run
    def run(self) -> list:
        spec, config = self.spec, self.config
        alternates_wanted = config.max_attempts - 1
        single = spec.num_instances == 1
        placed: list = []
        for number, name in enumerate(spec.instance_names):
            if not self.passing:
                raise self._no_valid_host(number, placed)
            ranked = self._ranked(1 + alternates_wanted if single else 1)
            pos, weight = ranked[0]
            host = self.hosts[self.passing[pos]]
            alternates: tuple = ()
            if single:
                alternates = tuple(self._alternate(p, w) for p, w in ranked[1:1 + alternates_wanted])
            uuid = spec.instance_uuids[number] if spec.instance_uuids else None
            placed.append(Selection(
                instance_name=name, instance_uuid=uuid, host=host.hostname, limits=self._limits(host),
                weight=weight, availability_zone=self._zone(host), alternates=alternates))
            self._consume(pos, name, uuid)
        if not single and alternates_wanted and self.passing:
            placed = self._with_shared_alternates(placed, alternates_wanted)
        return placed

    def _with_shared_alternates(self, placed: list, wanted: int) -> list:
        """Nova, multiple create: after all picks, filter and weigh once more and give every
        instance the same best hosts that were not picked for any instance."""
        chosen = {sel.host for sel in placed}
        ranked = self._ranked(wanted + len(chosen))
        alternates = tuple(self._alternate(p, w) for p, w in ranked
                           if self.hosts[self.passing[p]].hostname not in chosen)[:wanted]
        return [Selection(instance_name=sel.instance_name, instance_uuid=sel.instance_uuid, host=sel.host,
                          limits=sel.limits, weight=sel.weight, availability_zone=sel.availability_zone,
                          alternates=alternates) for sel in placed]

    def _alternate(self, pos: int, weight: float) -> Alternate:
        host = self.hosts[self.passing[pos]]
        return Alternate(host.hostname, self._limits(host), weight)

    def _zone(self, host: HostState) -> str:
        if self.spec.availability_zone:
            return self.spec.availability_zone
        zones = host.availability_zones
        return min(zones) if zones else self.config.default_availability_zone


def schedule(hosts: Any, spec: Any, config: Any = None, rng: Optional[random.Random] = None) -> list:
    """Place every instance of ``spec`` on ``hosts``; returns one :class:`Selection` per
    instance, in request order, or raises :class:`NoValidHost` (a VirtopsError).

    ``hosts``: HostStates or host facts (list, or mapping hostname -> facts); ``spec``: a
    RequestSpec or its dict form; ``config``: a SchedulerConfig, its dict form or None for
    Nova's defaults; ``rng``: the random source for ``host_subset_size`` > 1 (default: a
    ``random.Random`` seeded with ``config.random_seed``). The inputs are not changed.
    """
    if not isinstance(config, SchedulerConfig):
        config = SchedulerConfig.from_dict(config or {})
    if not isinstance(spec, RequestSpec):
        spec = RequestSpec.from_dict(spec)
    host_states = parse_hosts(hosts)
    if rng is None:
        rng = random.Random(config.random_seed)
    return _Placement(host_states, spec, config, rng).run()
