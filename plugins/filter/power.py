# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the power actions (start, stop, reboot, console log; the server_power role).

Thin wrappers over ``plugins/plugin_utils/_power/actions.py``; each filter is documented in the
YAML file of its name beside this one.
"""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.plugin_utils._power import actions as _actions


def _wrap(function):
    def filter_function(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except VirtopsError as exc:
            raise AnsibleFilterError(exc.msg) from exc
    filter_function.__name__ = function.__name__
    filter_function.__doc__ = function.__doc__
    return filter_function


class FilterModule:
    def filters(self):
        return {name: _wrap(function) for name, function in {
            "power_plan": _actions.power_plan,
            "power_report": _actions.power_report,
        }.items()}
