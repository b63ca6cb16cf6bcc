# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: scheduler
author:
  - virtops.compute contributors (@virtops)
short_description: Pick compute hosts for new instances the way Nova's FilterScheduler does
description:
  - Places every instance of a request on the compute hosts described by their host facts, the way
    OpenStack Nova's FilterScheduler does; it runs on the controller and changes nothing.
  - "For each instance: the filters drop the hosts that cannot take it (in the order of
    C(enabled_filters) in O(config)), the weighers rank the rest (free RAM, free disk and free vCPUs,
    each normalised to 0..1 over the candidates, times its multiplier, summed), one of the best
    C(host_subset_size) hosts is drawn at random, and its vCPUs, RAM and disk are counted
    as used before the next instance is placed."
  - "All or nothing, as Nova; when an instance finds no host the lookup fails with a message that
    says, per filter, how many hosts it removed, for example
    C(No valid host was found for web1: 3 hosts; RamFilter removed 2, DiskFilter removed 1)."
  - "Use C(query) or C(lookup(..., wantlist=true)): plain C(lookup) returns a single dict rather
    than a list of one when one instance is placed."
  - The filters and weighers are described in C(docs/scheduler.md), the host facts in
    C(docs/host_facts.md).
options:
  hosts:
    description:
      - Host facts of the candidate compute hosts, as a list of facts mappings or as a mapping
        inventory hostname to facts mapping (a missing C(hostname) key is taken from the mapping key).
      - "Required keys per host: C(hostname), C(vcpus), C(vcpus_used), C(memory_mb), C(memory_mb_used),
        C(local_gb), C(local_gb_used); the others have defaults (see C(docs/host_facts.md))."
      - The order of the hosts breaks ties between equal weights.
    type: raw
    required: true
  request:
    description:
      - The request to place, Nova's RequestSpec.
      - "C(flavor): C(vcpus), C(ram_mb), C(root_gb), optional C(name), C(ephemeral_gb), C(swap_mb),
        C(extra_specs) (Nova's operators: C(= 4), C(s== x), C(<in> avx2), C(<or> a <or> b) ...)."
      - "C(instance_names): the names to place, or C(name) with C(num_instances) (names become
        C(name-1), C(name-2) ... when more than one); C(instance_uuids) optionally, in the same order."
      - "C(image): C({properties: {...}}); C(hw_architecture), C(img_hv_type), C(hw_vm_mode) and
        C(img_hv_requested_version) (or their legacy names) are matched against the hosts."
      - "C(availability_zone): C(az), or C(az:host) / C(:host) to force a host (the forced host
        must still pass the filters)."
      - "C(scheduler_hints): C(group), C(same_host), C(different_host) (instance names or uuids)."
      - "C(server_group): C(name), C(policy) (C(affinity) or C(anti-affinity)), C(members) (instance
        names or uuids), optional C(rules.max_server_per_host) for anti-affinity. Instances whose
        host facts name the group are members too."
      - "C(ignore_hosts): hosts to leave out (already tried, or the source of a move)."
    type: dict
    required: true
  config:
    description:
      - Scheduler options, Nova's names and defaults.
      - "C(enabled_filters) (default C(RetryFilter), C(AvailabilityZoneFilter), C(ComputeFilter),
        C(RamFilter), C(DiskFilter), C(CoreFilter), C(ComputeCapabilitiesFilter),
        C(ImagePropertiesFilter), C(ServerGroupAntiAffinityFilter), C(ServerGroupAffinityFilter),
        C(SameHostFilter), C(DifferentHostFilter); C(AggregateInstanceExtraSpecsFilter) is available)."
      - "C(ram_weight_multiplier), C(disk_weight_multiplier), C(cpu_weight_multiplier) (default
        V(1.0): positive spreads, negative stacks, V(0) turns the weigher off)."
      - "C(host_subset_size) (default V(1)), C(max_attempts) (default V(3): up to 2 alternates),
        C(default_availability_zone) (default V(nova)), C(random_seed) (for repeatable draws)."
    type: dict
    default: {}
notes:
  - Runs on the controller only; nothing is claimed. The host's claim re-checks the returned
    RV(_list[].limits) under its lock, so two concurrent runs cannot oversubscribe a host.
"""

EXAMPLES = r"""
- name: Pick a host for web1
  ansible.builtin.set_fact:
    placement: >-
      {{ query('virtops.compute.scheduler',
               hosts=groups['compute'] | map('extract', hostvars, 'virtops_host') | list,
               request={'instance_names': ['web1'],
                        'flavor': flavors['m1.small'],
                        'image': images['cirros'],
                        'availability_zone': 'az1'}) }}

- name: Three instances of a group, never two on one host, stacked rather than spread
  ansible.builtin.set_fact:
    placement: >-
      {{ query('virtops.compute.scheduler',
               hosts=host_facts_by_name,
               request={'name': 'web', 'num_instances': 3,
                        'flavor': flavors['m1.tiny'],
                        'scheduler_hints': {'group': 'web'},
                        'server_group': {'name': 'web', 'policy': 'anti-affinity'}},
               config={'ram_weight_multiplier': -1.0}) }}

- name: Retry on the next host after a failed build
  ansible.builtin.set_fact:
    placement: >-
      {{ query('virtops.compute.scheduler', hosts=host_facts_by_name,
               request={'instance_names': ['web1'], 'flavor': flavors['m1.tiny'],
                        'ignore_hosts': ['c1']}) }}
"""

RETURN = r"""
_list:
  description: One selection per instance, in request order.
  type: list
  elements: dict
  contains:
    instance_name:
      description: The instance placed.
      type: str
      sample: web-1
    instance_uuid:
      description: The uuid given in C(instance_uuids) of O(request), else null.
      type: str
    host:
      description: The chosen host (its C(hostname) fact).
      type: str
      sample: c1
    availability_zone:
      description: The requested zone, else the chosen host's zone.
      type: str
      sample: az1
    limits:
      description:
        - Ceilings the host's claim checks again, from the host totals and allocation ratios;
          a key is absent when its filter is not enabled.
      type: dict
      sample: {memory_mb: 24000.0, disk_gb: 250.0, vcpu: 8.0}
    weight:
      description: The host's total weight when it was chosen.
      type: float
      sample: 1.5
    alternates:
      description:
        - Up to C(max_attempts) - 1 (see O(config)) other hosts that passed the filters, best first, each
          with C(host), C(limits) and C(weight). For a multiple create every instance gets the same
          alternates, none of them a host chosen for an instance of the request (Nova's rule).
      type: list
      elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import schedule


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        if terms:
            raise AnsibleLookupError("virtops.compute.scheduler takes no positional terms; "
                                     "pass hosts=, request= and config=")
        self.set_options(var_options=variables, direct=kwargs)
        try:
            selections = schedule(self.get_option("hosts"), self.get_option("request"),
                                  self.get_option("config") or {})
        except VirtopsError as exc:
            raise AnsibleLookupError(exc.msg) from exc
        return [selection.to_dict() for selection in selections]
