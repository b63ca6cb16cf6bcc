# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""virtops_host_venv: prepare_hosts.yml on this machine (the compute host ``localhost`` of
inventory.example, as `make demo` uses it) makes a virtualenv with system site packages and the
Python libraries Debian 12 lacks or ships too old (oslo.utils >= 7.3 for the image checks);
the readiness check imports the modules' libraries in that interpreter, and a second run
changes nothing. Needs PyPI, as `make test` does. Everything the role writes (virtualenv,
state, instances path, migration key) goes to a temporary directory, removed afterwards."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.ansible_venv import venv_tool

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="host preparation needs root")]


def prepare(workdir: Path) -> dict:
    """prepare_hosts.yml on localhost, with every path it writes under ``workdir``."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_STDOUT_CALLBACK="json_results")
    private = {"virtops_host_venv": str(workdir / "venv"),
               "virtops_state_dir": str(workdir / "etc"),
               "virtops_instances_path": str(workdir / "instances"),
               "virtops_migration_ssh_dir": str(workdir / "ssh"),
               "virtops_migration_key": str(workdir / "ssh" / "id_virtops_migration")}
    proc = subprocess.run(
        [venv_tool("ansible-playbook"), "-i", str(REPO / "inventory.example"),
         str(REPO / "playbooks" / "prepare_hosts.yml"), "-e", json.dumps(private)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError("no JSON (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-3000:],
                                                           proc.stderr[-3000:]))
    result["rc"] = proc.returncode
    return result


def task(result: dict, name: str) -> dict:
    for play in result["plays"]:
        for item in play["tasks"]:
            if item["task"]["name"].endswith(name):
                return item["hosts"]["localhost"]
    raise AssertionError("no task %r ran" % name)


def changed(result: dict) -> list:
    return [t["task"]["name"] for play in result["plays"] for t in play["tasks"]
            if t["hosts"].get("localhost", {}).get("changed")]


def test_the_host_virtualenv_carries_the_libraries_and_is_made_once(var_tmp):
    workdir = var_tmp
    first = prepare(workdir)
    assert first["rc"] == 0, json.dumps(first["plays"])[-3000:]
    made = task(first, "Install the Python libraries the distribution lacks into a virtualenv")
    assert made["changed"] is True
    readiness = task(first, "Check what the host offers and what is missing")
    assert readiness["ready"] is True
    assert "python libraries: all importable" in readiness["lines"]
    python = workdir / "venv" / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, libvirt, lxml, pycdlib; "
         "from oslo_utils.imageutils import format_inspector; print(m.version('oslo.utils'))"],
        capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr
    major, minor = (int(part) for part in probe.stdout.strip().split(".")[:2])
    assert (major, minor) >= (7, 3)

    again = prepare(workdir)
    assert again["rc"] == 0, json.dumps(again["plays"])[-3000:]
    assert changed(again) == []
