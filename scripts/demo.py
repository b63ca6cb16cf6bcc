# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo`: show this machine as a compute host, and boot a demo server once boot.yml exists."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def ansible(argv):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="json" if argv[0] == "ansible-playbook" else "default",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    return subprocess.run([str(VENV_BIN / argv[0])] + argv[1:], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)


def main() -> int:
    proc = ansible(["ansible", "compute", "-i", str(REPO / "inventory.example"), "-o",
                    "-m", "virtops.compute.vm_host_facts"])
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
    boot = REPO / "playbooks" / "boot.yml"
    if not boot.exists():
        print("demo: playbooks/boot.yml does not exist yet (boot end to end is still being "
              "built), so no demo server was booted. The test guest image is ready for it.")
        return 0
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "inventory.example",
                           str(boot), "-e", "@tests/fixtures/demo_server.yml"], cwd=REPO,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")), check=False)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
