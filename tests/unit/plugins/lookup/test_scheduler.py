# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The virtops.compute.scheduler lookup as a playbook uses it (real ansible-playbook)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.lookup import scheduler as scheduler_lookup
from ansible_collections.virtops.compute.tests.unit.plugins.plugin_utils._scheduler.helpers import facts

# The directory holding ansible_collections/, wherever this collection is imported from
# (.cache/collections in the repository, ansible-test's tree under ansible-test).
COLLECTIONS = Path(os.path.abspath(scheduler_lookup.__file__)).parents[5]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

pytestmark = pytest.mark.skipif(not PLAYBOOK.exists() or not COLLECTIONS.is_dir(),
                                reason="needs ansible-playbook beside the test Python and .cache/collections")


def run_playbook(tmp_path, hosts, request, config=None):
    """Write the inputs as vars, run a local play that stores query(...) as JSON."""
    out = tmp_path / "placement.json"
    (tmp_path / "vars.json").write_text(json.dumps({"facts_in": hosts, "request_in": request,
                                                    "config_in": config or {}, "out_path": str(out)}))
    (tmp_path / "play.yml").write_text("""
- hosts: localhost
  gather_facts: false
  vars_files: [vars.json]
  tasks:
    - name: Schedule
      ansible.builtin.set_fact:
        placement: "{{ query('virtops.compute.scheduler', hosts=facts_in, request=request_in, config=config_in) }}"
    - name: Store
      ansible.builtin.copy:
        content: "{{ placement | to_json }}"
        dest: "{{ out_path }}"
        mode: "0644"
""")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               # JSON results: the YAML format folds long messages across lines.
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = subprocess.run([str(PLAYBOOK), "-c", "local", "-i", "localhost,", "play.yml",
                           "-e", "ansible_python_interpreter=" + sys.executable], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    result = json.loads(out.read_text()) if proc.returncode == 0 else None
    return proc, result


def test_lookup_places_a_multiple_create(tmp_path):
    hosts = {"c1": facts("c1", memory_mb_used=8000), "c2": facts("c2")}
    request = {"name": "web", "num_instances": 2, "flavor": {"vcpus": 1, "ram_mb": 1024, "root_gb": 1},
               "server_group": {"name": "web", "policy": "anti-affinity"}, "scheduler_hints": {"group": "web"}}
    proc, result = run_playbook(tmp_path, hosts, request)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(s["instance_name"], s["host"]) for s in result] == [("web-1", "c2"), ("web-2", "c1")]
    assert result[0]["limits"] == {"memory_mb": 16384.0, "disk_gb": 100.0, "vcpu": 8.0}
    assert result[0]["alternates"] == []


def test_lookup_single_instance_is_still_a_list(tmp_path):
    proc, result = run_playbook(tmp_path, [facts("c1")], {"instance_names": ["db1"],
                                                          "flavor": {"vcpus": 1, "ram_mb": 512, "root_gb": 1}})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert isinstance(result, list) and result[0]["host"] == "c1"


def test_lookup_failure_shows_the_no_valid_host_message(tmp_path):
    hosts = [facts("c1", memory_mb_used=16000), facts("c2", memory_mb_used=16000), facts("c3", enabled=False)]
    request = {"instance_names": ["web1"], "flavor": {"vcpus": 1, "ram_mb": 1024, "root_gb": 1}}
    proc, _result = run_playbook(tmp_path, hosts, request)
    assert proc.returncode != 0
    assert "No valid host was found for web1: 3 hosts; ComputeFilter removed 1, RamFilter removed 2" in proc.stdout


def test_lookup_bad_facts_name_the_host(tmp_path):
    bad = facts("c2")
    del bad["memory_mb"]
    request = {"instance_names": ["web1"], "flavor": {"vcpus": 1, "ram_mb": 1, "root_gb": 1}}
    proc, _result = run_playbook(tmp_path, [facts("c1"), bad], request)
    assert proc.returncode != 0
    assert "host facts for c2: missing key 'memory_mb'" in proc.stdout
