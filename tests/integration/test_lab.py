# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab gives real, separate compute hosts, and leaves nothing behind."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.ansible_venv import venv_tool
from tests.lab.handle import LabHandle

BARE_DOMAIN = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>
<devices><serial type='pty'/><console type='pty'/></devices></domain>"""


def define_and_start(lab, host, name, tmp_path):
    xml = tmp_path / ("%s-%s.xml" % (host, name))
    xml.write_text(BARE_DOMAIN.format(name=name))
    lab.virsh(host, "define", str(xml))
    lab.virsh(host, "start", name)


def test_same_domain_name_runs_on_two_hosts_each_invisible_to_the_other(lab, tmp_path):
    name = "vo-same-%s" % uuid.uuid4().hex[:6]
    try:
        define_and_start(lab, "compute1", name, tmp_path)
        define_and_start(lab, "compute2", name, tmp_path)
        uuids = set()
        for host in ("compute1", "compute2"):
            assert lab.virsh(host, "domstate", name).stdout.strip() == "running"
            assert lab.domains(host) == [name]  # only its own domain
            uuids.add(lab.virsh(host, "domuuid", name).stdout.strip())
        assert len(uuids) == 2, "two separate domains, not one seen twice"
        root = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                              capture_output=True, text=True, check=False)
        assert name not in root.stdout, "lab domains must not show in the root namespace"
    finally:
        for host in ("compute1", "compute2"):
            lab.virsh(host, "destroy", name, check=False)
            lab.virsh(host, "undefine", name, check=False)
    assert lab.domains("compute1") == [] and lab.domains("compute2") == []


def test_no_lab_host_sees_a_domain_the_machine_runs(lab, machine_domain, conn):
    assert machine_domain in [d.name() for d in conn.listAllDomains()], "the machine runs it"
    for host in lab.hosts:
        assert machine_domain not in lab.domains(host)


def test_rsync_host_to_host_over_ssh_with_verified_host_keys(lab):
    payload = "migrated-%s" % uuid.uuid4().hex
    path = "/var/lib/virtops/instances/xfer-%s.txt" % payload[-6:]
    dest = lab.hosts["compute2"].address
    lab.run("compute1", ["python3", "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                         path, payload])
    lab.run("compute1", ["rsync", "-a", "-e", "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes",
                         path, "root@%s:%s" % (dest, path)])
    assert lab.run("compute2", ["cat", path]).stdout == payload
    # Instances paths are private per host: the root namespace never sees the file.
    assert not Path(path).exists()
    # A host whose key is not recorded is refused: host-key checking is really on.
    refused = lab.run("compute1", ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                                   "-o", "UserKnownHostsFile=/dev/null", "root@%s" % dest, "true"],
                      check=False)
    assert refused.returncode != 0
    assert "Host key verification failed" in refused.stderr
    lab.run("compute1", ["rm", "-f", path])
    lab.run("compute2", ["rm", "-f", path])


def test_controller_reaches_hosts_through_generated_inventory(lab):
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="True")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([venv_tool("ansible"), "compute", "-i", str(lab.inventory),
                           "-m", "virtops.compute.vm_host_facts"], capture_output=True, text=True,
                          env=env, cwd=repo, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("compute1", "compute2"):
        assert "%s | SUCCESS" % host in proc.stdout
    assert "virt_type: qemu" in proc.stdout or "virt_type: kvm" in proc.stdout


def _lab_leftovers(prefix: str, pids):
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    left = [line for line in netns.splitlines() if line.startswith(prefix + "-")]
    left += [line.split(":")[1].strip() for line in links.splitlines()
             if line.split(":")[1].strip().startswith(prefix + "-")]
    left += ["pid %d" % pid for pid in pids if os.path.exists("/proc/%d/exe" % pid)
             and os.readlink("/proc/%d/exe" % pid).endswith(("libvirtd", "virtlogd", "sshd"))]
    return left


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
def test_lab_up_down_leaves_nothing_behind(tmp_path, tmp_path_factory):
    lab = LabHandle(tmp_path / "lab", prefix="vx", subnet="10.77.9")
    lab.down()
    try:
        lab.up(2)
        state = lab.state()
        pids = [pid for h in state["hosts"].values() for pid in h["pids"].values()]
        assert len(pids) == 6  # virtlogd, libvirtd and sshd on each host
        define_and_start(lab, "compute1", "vo-leftover", tmp_path)
        qemu_pid = int(lab.run("compute1", ["cat", "/run/libvirt/qemu/vo-leftover.pid"]).stdout)
        status = lab.cli("status").stdout
        assert "compute1" in status and "vo-leftover" in status
    finally:
        proc = lab.down()
    assert proc.returncode == 0, proc.stderr
    assert _lab_leftovers("vx", pids + [qemu_pid]) == []
    assert not os.path.exists("/proc/%d" % qemu_pid) or not os.readlink(
        "/proc/%d/exe" % qemu_pid).endswith("qemu-system-x86_64")
    assert not (tmp_path / "lab").exists()
