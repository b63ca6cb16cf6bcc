# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks whose roles use the collection's filters load them once, in ansible-playbook's
own process, by templating the filter ``preload`` in their first play's name (issue 14: a task
that uses a filter otherwise loads the plugin again in its worker, 50-60 ms each)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.virtops.compute.plugins.filter.boot import FilterModule

ROOT = Path(__file__).resolve().parents[2]
PRELOAD = "{{ '' | virtops.compute.preload }}"
FILTERS = FilterModule().filters()
# The playbooks that start a run and use the collection's filters (converge.yml imports boot,
# delete and stop, whose first plays load them again at no cost).
PRELOADING = ("boot", "delete", "power", "converge", "servers")


def filters_used(path: Path) -> set:
    return set(re.findall(r"\|\s*virtops\.compute\.([a-z_]+)", path.read_text())) & set(FILTERS)


def test_preload_is_an_empty_string_whatever_it_is_given():
    assert FILTERS["preload"]("") == "" and FILTERS["preload"]({"a": 1}) == ""


@pytest.mark.parametrize("playbook", PRELOADING)
def test_the_first_play_of_each_playbook_using_the_filters_loads_them_in_its_name(playbook):
    (first, *_rest) = yaml.safe_load((ROOT / "playbooks" / ("%s.yml" % playbook)).read_text())
    assert first["name"].endswith(PRELOAD), first["name"]


def test_every_role_whose_tasks_use_the_filters_is_run_by_a_preloading_playbook():
    users = {path.parts[-3] for path in (ROOT / "roles").glob("*/tasks/*.yml") if filters_used(path)}
    assert users <= {"server_boot", "server_delete", "server_power", "virtops"}, users
