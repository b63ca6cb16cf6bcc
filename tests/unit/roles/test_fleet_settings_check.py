# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's settings are checked once per playbook run, and a bad one is still refused.

Nova checks its configuration once, when a service starts (oslo.config's types and choices), not
at every request. Here the role virtops.compute.virtops's entry point ``settings`` is that check;
the other roles depend on the role for its defaults only (a dependency's ``main`` entry point
would be checked again in every play of a boot or a delete). Each playbook imports ``settings``
in its first play, on every host it may touch; the roles whose workflow is one play
(compute_host, server_migrate) import it as their first task.

The behavioural tests run the real ``ansible-playbook`` with a bad setting and an inventory of
localhost only: the run stops in its first play, at the check, before anything touches libvirt.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.virtops.compute.plugins.lookup import scheduler as scheduler_lookup

COLLECTIONS = Path(os.path.abspath(scheduler_lookup.__file__)).parents[5]
ROOT = COLLECTIONS / "ansible_collections" / "virtops" / "compute"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
SETTINGS_IMPORT = {"name": "virtops.compute.virtops", "tasks_from": "settings"}
# The playbooks that use a role depending on virtops.compute.virtops, and how they check.
# converge.yml's own plays load no role that depends on it; the boot.yml, delete.yml and stop.yml
# it imports check the settings in their first plays. start, stop, reboot and console_log are
# power.yml with their action (POWER_ACTIONS), so they check in its first play.
CHECKED_IN_FIRST_PLAY = ("boot", "delete", "power", "image_cache")
POWER_ACTIONS = ("start", "stop", "reboot", "console_log")
CHECKED_BY_THEIR_ROLE = {"cold_migrate": "server_migrate", "resize": "server_migrate",
                         "confirm_resize": "server_migrate", "revert_resize": "server_migrate",
                         "prepare_hosts": "compute_host"}

needs_playbook = pytest.mark.skipif(not PLAYBOOK.exists() or not ROOT.is_dir(),
                                    reason="needs ansible-playbook beside the test Python and .cache/collections")


def load(path: Path):
    return yaml.safe_load(path.read_text())


def imports_settings(tasks) -> bool:
    return any((task.get("ansible.builtin.import_role") or {}) == SETTINGS_IMPORT for task in tasks or [])


def test_the_virtops_role_has_no_main_entry_point_so_depending_on_it_checks_nothing_again():
    specs = load(ROOT / "roles" / "virtops" / "meta" / "argument_specs.yml")["argument_specs"]
    assert "main" not in specs
    assert "virtops_libvirt_uri" in specs["settings"]["options"]
    assert load(ROOT / "roles" / "virtops" / "tasks" / "settings.yml") == []


@pytest.mark.parametrize("name", CHECKED_IN_FIRST_PLAY)
def test_each_playbook_checks_the_settings_in_its_first_play_on_every_host(name):
    first = load(ROOT / "playbooks" / ("%s.yml" % name))[0]
    assert imports_settings(first["tasks"]), name
    if name != "image_cache":    # one play, on the compute hosts it ages
        assert first["hosts"] == "localhost:all", name


def test_each_power_action_is_the_power_flow_with_its_action():
    for action in POWER_ACTIONS:
        (entry,) = load(ROOT / "playbooks" / ("%s.yml" % action))
        assert sorted(entry) == ["ansible.builtin.import_playbook", "name", "vars"], action
        assert entry["ansible.builtin.import_playbook"] == "power.yml", action
        assert entry["vars"] == {"server_power_action": action}, action


def test_the_power_flow_refuses_no_action_but_the_four_as_its_first_task():
    first = load(ROOT / "playbooks" / "power.yml")[0]
    refusal = first["tasks"][0]
    assert refusal["run_once"] is True
    assert "['start', 'stop', 'reboot', 'console_log']" in refusal["ansible.builtin.assert"]["that"]
    specs = load(ROOT / "roles" / "server_power" / "meta" / "argument_specs.yml")["argument_specs"]
    assert tuple(specs["main"]["options"]["server_power_action"]["choices"]) == POWER_ACTIONS


@pytest.mark.parametrize("name,role", sorted(CHECKED_BY_THEIR_ROLE.items()))
def test_a_one_play_workflow_checks_the_settings_as_its_role_s_first_task(name, role):
    play = load(ROOT / "playbooks" / ("%s.yml" % name))[0]
    assert [r["role"] for r in play["roles"]] == ["virtops.compute." + role], name
    assert imports_settings(load(ROOT / "roles" / role / "tasks" / "main.yml")[:1]), role


def run(tmp_path: Path, playbook: str, *args: str) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[compute]\nlocalhost ansible_connection=local\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return subprocess.run([str(PLAYBOOK), "-i", str(inventory), str(ROOT / "playbooks" / playbook),
                           "-e", "ansible_python_interpreter=" + sys.executable, *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)


@needs_playbook
@pytest.mark.parametrize("playbook", ["boot.yml", "delete.yml", "stop.yml", "cold_migrate.yml"])
def test_a_bad_setting_is_refused_with_its_name_before_anything_runs(tmp_path, playbook):
    proc = run(tmp_path, playbook, "-e", "server=web1", "-e", "virtops_firewall_driver=iptables")
    assert proc.returncode != 0, proc.stdout
    assert "Validating arguments against arg spec 'settings'" in proc.stdout, proc.stdout
    assert "value of virtops_firewall_driver must be one of: nftables, nwfilter, got: iptables" in proc.stdout, proc.stdout
    # Nothing after the check ran: no request was read, no host was asked for facts.
    assert "Read the server asked for" not in proc.stdout and "Gather" not in proc.stdout, proc.stdout


@needs_playbook
@pytest.mark.parametrize("given", [(), ("-e", "server_power_action=suspend")])
def test_the_power_flow_without_a_known_action_is_refused_before_anything_runs(tmp_path, given):
    proc = run(tmp_path, "power.yml", "-e", "server=web1", *given)
    assert proc.returncode != 0, proc.stdout
    assert "server_power_action must be start, stop, reboot or console_log" in proc.stdout, proc.stdout
    # Not even the settings were checked: the action is the first thing asked.
    assert "Validating arguments against arg spec" not in proc.stdout, proc.stdout
    assert "Read which server" not in proc.stdout and "Gather" not in proc.stdout, proc.stdout


@needs_playbook
def test_a_bad_setting_of_one_compute_host_is_refused_on_that_host(tmp_path):
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    (host_vars / "localhost.yml").write_text("virtops_max_attempts: many\n")
    proc = run(tmp_path, "boot.yml", "-e", "server=web1")
    assert proc.returncode != 0, proc.stdout
    assert "virtops_max_attempts" in proc.stdout and "int" in proc.stdout, proc.stdout
    assert "Check the request" not in proc.stdout, proc.stdout
