# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the boot, delete, list, converge and power flows (the roles' controller-side
bookkeeping).

Thin wrappers over ``plugins/plugin_utils/_boot/`` and ``_power/``; each filter is
documented in the YAML file of its name beside this one.
"""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import converge as _converge
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import fleet as _fleet
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import plan as _boot_plan
from ansible_collections.virtops.compute.plugins.plugin_utils._boot import request as _boot_request
from ansible_collections.virtops.compute.plugins.plugin_utils._power import actions as _power


def _wrap(function):
    def filter_function(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except VirtopsError as exc:
            raise AnsibleFilterError(exc.msg) from exc
    filter_function.__name__ = function.__name__
    filter_function.__doc__ = function.__doc__
    filter_function.__wrapped__ = function
    return filter_function


def preload(_value=None) -> str:
    """An empty string: a playbook's first play has it in its name, so that ansible-playbook's
    own process loads this plugin (and the collection's code it imports) once, when it templates
    the name; every task's worker process is forked from it and inherits that instead of
    compiling it again from source (Ansible's collection loader keeps no bytecode), 50-60 ms per
    task that uses a filter of the collection."""
    return ""


class FilterModule:
    def filters(self):
        return {name: _wrap(function) for name, function in {
            "boot_request": _boot_request.boot_request,
            "boot_requests": _boot_request.boot_requests,
            "boot_least_flavor": _boot_plan.least_flavor,
            "server_request": _boot_request.server_request,
            "server_secrets": _boot_request.server_secrets,
            "boot_plan": _boot_plan.boot_plan,
            "boot_first_attempt": _boot_plan.first_attempt,
            "boot_next_attempt": _boot_plan.next_attempt,
            "boot_start_attempt": _boot_plan.boot_start_attempt,
            "boot_scheduled": _boot_plan.boot_scheduled,
            "boot_unschedulable": _boot_plan.boot_unschedulable,
            "boot_ports_request": _boot_plan.ports_request,
            "boot_ported": _boot_plan.boot_ported,
            "boot_host_work": _boot_plan.host_work,
            "boot_attempt_hosts": _boot_plan.attempt_hosts,
            "boot_build_hosts": _boot_plan.build_hosts,
            "boot_claims": _boot_plan.boot_claims,
            "boot_needs_work": _boot_plan.needs_work,
            "boot_collect": _boot_plan.boot_collect,
            "boot_summary": _boot_plan.boot_summary,
            "boot_host_fixes": _boot_plan.host_fixes,
            "boot_fix_hosts": _boot_plan.fix_hosts,
            "boot_fixed": _boot_plan.boot_fixed,
            "boot_fleet_notes": _fleet.fleet_notes,
            "fleet_servers": _fleet.fleet_servers,
            "server_table": _fleet.server_table,
            "server_locations": _fleet.server_locations,
            "server_names": _fleet.server_names,
            "converge_plan": _converge.converge_plan,
            "server_history": _fleet.server_history,
            "power_plan": _power.power_plan,
            "power_report": _power.power_report,
            "preload": preload,
        }.items()}
