# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role virtops.compute.virtops holds the fleet's settings (every ``virtops_`` variable) once;
the other roles see them through their meta dependency on it.

The behavioural tests run the real ``ansible-playbook`` on localhost: each play imports one entry
point of one role (``when: false`` and only the probe's tag selected: nothing of the role runs,
its defaults and its dependencies' are loaded as for a real run) and writes down what the play
sees of every setting. A
role that lost its dependency sees none of them; an inventory or extra variable still wins over a
default (role defaults are the lowest precedence).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.virtops.compute.plugins.lookup import scheduler as scheduler_lookup

# The directory holding ansible_collections/ (.cache/collections in the repository), and the
# collection as ansible-playbook finds it there.
COLLECTIONS = Path(os.path.abspath(scheduler_lookup.__file__)).parents[5]
ROOT = COLLECTIONS / "ansible_collections" / "virtops" / "compute"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
ROLES = ("compute_host", "server_boot", "server_delete", "server_migrate")
UNDEFINED = "<undefined>"
PROBE = "fleet_settings_probe"
# Defaults that name other variables, as a play on localhost without them renders them.
RENDERED = {"virtops_networks": {}, "virtops_migration_address": "localhost"}

needs_playbook = pytest.mark.skipif(not PLAYBOOK.exists() or not ROOT.is_dir(),
                                    reason="needs ansible-playbook beside the test Python and .cache/collections")


def load(path: Path):
    return yaml.safe_load(path.read_text())


def fleet_defaults() -> dict:
    return load(ROOT / "roles" / "virtops" / "defaults" / "main.yml")


def expected_settings() -> dict:
    return {name: RENDERED.get(name, value) for name, value in fleet_defaults().items()}


def entry_points(role: str) -> list:
    return sorted(load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"])


def play_seeing(name: str, imports: list) -> dict:
    """A play on localhost that imports ``imports`` (role, entry point) without running them and
    notes what it sees of every fleet setting under ``name`` (a fact, written out by run_plays)."""
    tasks = [{"name": "Load %s %s" % (role, entry),
              "ansible.builtin.import_role": {"name": "virtops.compute." + role, "tasks_from": entry},
              "when": False} for role, entry in imports]
    tasks.append({"name": "Note the fleet settings this play sees", "tags": [PROBE],
                  "ansible.builtin.set_fact": {
                      "fleet_seen": "{{ fleet_seen | default({}) | combine({'%s': dict(fleet_names | zip("
                                    "query('ansible.builtin.vars', *fleet_names, default='%s')))}) }}"
                                    % (name, UNDEFINED)}})
    return {"name": name, "hosts": "localhost", "gather_facts": False, "tasks": tasks}


def run_plays(tmp_path: Path, plays: list, *args: str) -> dict:
    """Run the plays; return {play name: {setting: value seen}}."""
    out = tmp_path / "seen.json"
    write = {"name": "Write down what the plays saw", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "Write", "tags": [PROBE],
                        "ansible.builtin.copy": {"content": "{{ fleet_seen | to_json }}", "dest": str(out),
                                                 "mode": "0644"}}]}
    (tmp_path / "vars.json").write_text(json.dumps({"fleet_names": sorted(fleet_defaults())}))
    for play in plays:
        play["vars_files"] = [str(tmp_path / "vars.json")]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays + [write], sort_keys=False))
    inventory = tmp_path / "inventory" / "hosts.ini"
    if not inventory.exists():
        inventory.parent.mkdir()
        inventory.write_text("[compute]\nlocalhost ansible_connection=local\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    # Only the probe runs: a skipped task still has its name and loop templated.
    proc = subprocess.run([str(PLAYBOOK), "-i", str(inventory), str(tmp_path / "play.yml"), "--tags", PROBE,
                           "-e", "ansible_python_interpreter=" + sys.executable, *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


@needs_playbook
def test_every_entry_point_of_every_role_sees_every_fleet_setting_with_its_default(tmp_path):
    imports = [(role, entry) for role in ROLES for entry in entry_points(role)]
    plays = [play_seeing("nothing", [])] + [play_seeing("%s-%s" % imp, [imp]) for imp in imports]
    seen = run_plays(tmp_path, plays)
    # The control: a play that imports no role of the collection sees none of the settings,
    # so what the others see comes from the roles.
    assert set(seen.pop("nothing").values()) == {UNDEFINED}
    assert sorted(seen) == sorted("%s-%s" % imp for imp in imports)
    expected = expected_settings()
    for play, values in seen.items():
        assert values == expected, play


@needs_playbook
def test_inventory_and_extra_vars_override_the_fleet_defaults(tmp_path):
    group_vars = tmp_path / "inventory" / "group_vars"
    group_vars.mkdir(parents=True)
    (tmp_path / "inventory" / "hosts.ini").write_text("[compute]\nlocalhost ansible_connection=local\n")
    (group_vars / "compute.yml").write_text("virtops_libvirt_uri: test:///default\nvirtops_max_attempts: 5\n")
    (group_vars / "all.yml").write_text("virtops_nwfilter: no-spoofing\n")
    imports = [("server_boot", "build"), ("server_delete", "delete"), ("server_migrate", "main"),
               ("compute_host", "main")]
    seen = run_plays(tmp_path, [play_seeing("%s-%s" % imp, [imp]) for imp in imports],
                     "-e", "virtops_instances_path=/srv/instances", "-e", "virtops_max_attempts=7")
    expected = dict(expected_settings(), virtops_libvirt_uri="test:///default", virtops_nwfilter="no-spoofing",
                    virtops_instances_path="/srv/instances", virtops_max_attempts="7")
    assert len(seen) == len(imports)
    for play, values in seen.items():
        assert values == expected, play


@needs_playbook
def test_the_image_cache_playbook_ages_bases_by_the_fleet_default_minimum_age(tmp_path):
    """playbooks/image_cache.yml has no defaults of its own: the instances path comes from the
    extra vars, the minimum age (a day) from the fleet role."""
    base = tmp_path / "instances" / "_base"
    base.mkdir(parents=True)
    old, young = base / ("a" * 40), base / ("b" * 40)
    for path, age in ((old, 2 * 86400), (young, 3600)):
        path.write_bytes(b"base")
        os.utime(path, (time.time() - age, time.time() - age))
    (tmp_path / "hosts.ini").write_text("[compute]\nlocalhost ansible_connection=local\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0")
    proc = subprocess.run([str(PLAYBOOK), "-i", str(tmp_path / "hosts.ini"), "--check",
                           str(ROOT / "playbooks" / "image_cache.yml"),
                           "-e", "ansible_python_interpreter=" + sys.executable,
                           "-e", "virtops_instances_path=%s" % base.parent],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # --check: the old base would go, the young one stays; both are still there.
    assert old.name in proc.stdout and young.name not in proc.stdout, proc.stdout
    assert old.exists() and young.exists()


def test_the_fleet_settings_are_defined_only_in_the_virtops_role():
    for role in ROLES:
        defaults = ROOT / "roles" / role / "defaults" / "main.yml"
        names = sorted(load(defaults) or {}) if defaults.exists() else []
        assert [name for name in names if name.startswith("virtops_")] == [], role
        options = set()
        for spec in load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"].values():
            options.update(spec.get("options") or {})
        # virtops_boot_attempt is the boot's play variable (which attempt), not a setting.
        assert sorted(name for name in options if name.startswith("virtops_") and name in fleet_defaults()) == [], role
        dependencies = load(ROOT / "roles" / role / "meta" / "main.yml")["dependencies"]
        assert {"role": "virtops.compute.virtops"} in dependencies, role


def test_the_virtops_role_documents_each_setting_with_its_default():
    spec = load(ROOT / "roles" / "virtops" / "meta" / "argument_specs.yml")["argument_specs"]["settings"]["options"]
    defaults = fleet_defaults()
    assert sorted(spec) == sorted(defaults)
    for name, value in defaults.items():
        if isinstance(value, str) and "{{" in value and name != "virtops_migration_address":
            assert "default" not in spec[name], name
        else:
            assert spec[name]["default"] == value, name


# A variable read in a role's tasks or templates or in a playbook: not quoted (selectattr('x')
# names an attribute), not a key being set.
READ = re.compile(r"(?<![\w'\"])(virtops_[a-z0-9_]+)\b(?!['\"])")


def test_every_virtops_variable_a_role_reads_without_a_default_is_a_fleet_setting():
    files = sorted((ROOT / "roles").glob("*/tasks/*.yml")) + sorted((ROOT / "roles").glob("*/templates/*"))
    files += sorted((ROOT / "playbooks").glob("*.yml"))
    text = "\n".join(path.read_text() for path in files)
    # Set by the roles and playbooks themselves: facts, registered results, play vars, tags.
    set_here = set(re.findall(r"^\s*-?\s*(virtops_[a-z0-9_]+):", text, re.M))
    set_here |= set(re.findall(r"register:\s*(virtops_[a-z0-9_]+)", text))
    set_here |= set(re.findall(r"tags:\s*\[(virtops_[a-z0-9_]+)\]", text))
    unguarded = set()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in READ.finditer(line):
            if not line[match.end():].lstrip().startswith("| default("):
                unguarded.add(match.group(1))
    missing = sorted(unguarded - set(fleet_defaults()) - set_here - {"virtops_host"})
    assert missing == [], "read without a default and not a setting of roles/virtops/defaults/main.yml"
