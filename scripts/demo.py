# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo`: prepare this machine as a compute host, show it, and boot a demo server on it.

The same playbooks an operator runs: prepare_hosts.yml (roles/compute_host) and boot.yml, on the
compute host `localhost` of inventory.example, with tests/fixtures/demo_server.yml as extra vars.
Re-running changes nothing; `playbooks/delete.yml -e @tests/fixtures/demo_server.yml` removes it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
INVENTORY = str(REPO / "inventory.example")
DEMO_VARS = "@" + str(REPO / "tests" / "fixtures" / "demo_server.yml")


def playbook(name: str) -> int:
    print("demo: ansible-playbook -i inventory.example playbooks/%s -e %s" % (name, DEMO_VARS))
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", INVENTORY,
                           str(REPO / "playbooks" / name), "-e", DEMO_VARS],
                          cwd=REPO, env=ENV, check=False).returncode


def show_host() -> int:
    proc = subprocess.run([str(VENV_BIN / "ansible"), "compute", "-i", INVENTORY, "-o",
                           "-m", "virtops.compute.vm_host_facts"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print("demo: libvirt is not reachable through the collection:\n%s%s"
              % (proc.stdout, proc.stderr), file=sys.stderr)
        return 1
    facts = json.loads(proc.stdout.split("=>", 1)[1])["host"]
    print("demo: libvirt %s reachable on %s: %s %s, %d vCPUs, %d MiB RAM, %d GiB free in %s"
          % (facts["libvirt_uri"], facts["hostname"], facts["hypervisor_type"], facts["arch"],
             facts["vcpus"], facts["memory_mb"], facts["free_disk_gb"], facts["instances_path"]))
    print("demo: guests will run as virt type '%s' (%s)"
          % (facts["virt_type"], facts["virt_probe"]["reason"]))
    return 0


def main() -> int:
    for step in (lambda: playbook("prepare_hosts.yml"), show_host, lambda: playbook("boot.yml")):
        rc = step()
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
