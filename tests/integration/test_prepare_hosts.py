# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/prepare_hosts.yml on a lab of two hosts that do not trust each other yet.

The lab is this module's own (prefix vp, 10.77.3.0/24), brought up with --no-peer-trust so the
migration trust is the playbook's work, and always taken down. The tests run in file order on the
same lab: prepared once, then re-run, checked, used, broken and repaired.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import qemu_access_for
from tests.integration.ansible_venv import venv_tool
from tests.lab.handle import LabHandle

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "prepare_hosts.yml"
HOSTS = ("compute1", "compute2")
BASE_DIR = "/var/lib/virtops/instances/_base"
STATE_DIR = "/var/lib/virtops/etc"  # private per lab host; /etc is shared with the machine
NETWORKS = {
    "private": {"cidr": "10.10.0.0/24", "bridge": "br-vp-priv", "vif_type": "bridge", "mtu": 1500},
    "overlay": {"cidr": "10.30.0.0/24", "bridge": "br-vp-ovl", "vif_type": "vxlan",
                "vxlan_id": 1001, "physical_interface": "eth0", "mtu": 1450},
}
READINESS_TASK = "Check what the host offers and what is missing"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


class Prepared:
    """The lab, its extra inventory and the result of the first run."""

    def __init__(self, lab: LabHandle, extra_inventory: Path):
        self.lab = lab
        self.extra_inventory = extra_inventory
        self.first = None

    def playbook(self, *args: str) -> dict:
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent / "callback_plugins"),
                   ANSIBLE_STDOUT_CALLBACK="json_results")
        proc = subprocess.run(
            [venv_tool("ansible-playbook"), "-i", str(self.lab.inventory),
             "-i", str(self.extra_inventory), str(PLAYBOOK)] + list(args),
            capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook printed no JSON (rc=%d):\n%s\n%s"
                                 % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        result["rc"] = proc.returncode
        result["stderr"] = proc.stderr
        return result

    def address(self, host: str) -> str:
        return self.lab.hosts[host].address


def task_results(result: dict, name: str) -> dict:
    """Per-host results of the task whose name ends with ``name``."""
    for play in result["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(name):
                return task["hosts"]
    raise AssertionError("no task %r in the run" % name)


def changed_tasks(result: dict, host: str) -> list:
    return [task["task"]["name"] for play in result["plays"] for task in play["tasks"]
            if task["hosts"].get(host, {}).get("changed")]


def failures(result: dict) -> str:
    return json.dumps({host: [t["task"]["name"] + ": " + str(t["hosts"][host].get("msg"))
                              for play in result["plays"] for t in play["tasks"]
                              if t["hosts"].get(host, {}).get("failed")]
                       for host in HOSTS}, indent=1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prepare-hosts")
    lab = LabHandle(tmp / "lab", prefix="vp", subnet="10.77.3")
    lab.down()
    try:
        lab.up(2, "--no-peer-trust")
        extra = tmp / "extra-inventory.yml"
        # JSON is YAML. The lab's sshd serves the host key kept in the host's lab directory.
        extra.write_text(json.dumps({"all": {"children": {"compute": {
            "hosts": {host: {"virtops_ssh_host_key_files": [
                str(lab.state_dir / host / "ssh_host_ed25519_key.pub")]} for host in HOSTS},
            "vars": {"virtops_state_dir": STATE_DIR, "networks": NETWORKS}}}}}))
        prep = Prepared(lab, extra)
        prep.first = prep.playbook()
        yield prep
    finally:
        proc = lab.down()
        assert proc.returncode == 0, proc.stderr


def test_first_run_prepares_both_hosts(prepared):
    result = prepared.first
    assert result["rc"] == 0, failures(result)
    for host in HOSTS:
        stats = result["stats"][host]
        assert stats["failures"] == 0 and stats["unreachable"] == 0
        assert stats["changed"] > 0
        assert "Generate the migration key pair" in " ".join(changed_tasks(result, host))
        listing = prepared.lab.run(host, ["stat", "-c", "%n %U:%G %a",
                                          "/var/lib/virtops/instances",
                                          "/var/lib/virtops/instances/locks"]).stdout.splitlines()
        assert listing == ["/var/lib/virtops/instances root:root 755",
                           "/var/lib/virtops/instances/locks root:root 700"]


def test_second_run_and_check_mode_change_nothing(prepared):
    # The image cache has made _base its way (root and the QEMU group, 0750) since: a fetch.
    access = qemu_access_for()
    for host in HOSTS:
        prepared.lab.run(host, ["install", "-d", "-o", "root", "-g", access.group,
                                "-m", "%o" % access.dir_mode, BASE_DIR])
    second = prepared.playbook()
    assert second["rc"] == 0, failures(second)
    check = prepared.playbook("--check", "--diff")
    assert check["rc"] == 0, failures(check)
    for host in HOSTS:
        assert second["stats"][host]["changed"] == 0, changed_tasks(second, host)
        assert check["stats"][host]["changed"] == 0, changed_tasks(check, host)
        assert prepared.lab.run(host, ["stat", "-c", "%U:%G %a", BASE_DIR]).stdout.split() == [
            "root:%s" % access.group, "%o" % access.dir_mode]


def test_readiness_summary_tells_the_truth(prepared):
    readiness = task_results(prepared.first, READINESS_TASK)
    for host, peer in (HOSTS, HOSTS[::-1]):
        summary = readiness[host]["summary"]
        assert readiness[host]["ready"] is True, readiness[host]["problems"]
        assert summary["libvirt"]["reachable"] is True
        recorded = json.loads(prepared.lab.run(host, ["cat", STATE_DIR + "/host.json"]).stdout)
        assert summary["virt_type"] == recorded
        assert recorded["virt_type"] in ("kvm", "qemu") and recorded["reason"]
        assert recorded["forced"] is False
        assert summary["bridges"]["br-vp-priv"] == {"exists": True, "up": True, "mtu": 1500,
                                                    "kind": "bridge"}
        assert summary["bridges"]["br-vp-ovl"]["up"] is True
        assert summary["migration_ssh"] == {peer: {"address": prepared.address(peer), "ok": True,
                                                   "error": ""}}
        assert summary["free_ram_mb"] > 0 and summary["free_disk_gb"] > 0
        # nft is there and the kernel takes the anti-spoofing table (virtops_firewall_driver).
        assert summary["port_security"] == {"firewall_driver": "nftables", "ok": True, "error": ""}
        assert readiness[host]["lines"][-1] == "ready"
    # The VXLAN member tunnels to the other host, not to itself.
    fdb = prepared.lab.run("compute1", ["bridge", "fdb", "show", "dev", "vxlan-1001"]).stdout
    assert "00:00:00:00:00:00 dst %s" % prepared.address("compute2") in fdb
    assert "dst %s " % prepared.address("compute1") not in fdb


def test_hosts_rsync_to_each_other_with_verified_host_keys(prepared):
    lab = prepared.lab
    for source, dest in (HOSTS, HOSTS[::-1]):
        payload = "migrated-%s" % uuid.uuid4().hex
        path = "/var/lib/virtops/instances/xfer-%s" % payload[-8:]
        try:
            lab.run(source, ["python3", "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                             path, payload])
            # Plain ssh, as migration runs it: key, user and host-key checking come from the
            # configuration the role wrote.
            lab.run(source, ["rsync", "-a", "-e", "ssh -o BatchMode=yes", path,
                             "%s:%s" % (prepared.address(dest), path)])
            assert lab.run(dest, ["cat", path]).stdout == payload
        finally:
            lab.run(source, ["rm", "-f", path], check=False)
            lab.run(dest, ["rm", "-f", path], check=False)
    # Host keys are checked: with no recorded key the same connection is refused.
    refused = lab.run("compute1", ["ssh", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/dev/null",
                                   prepared.address("compute2"), "true"], check=False)
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr
    # The migration key only works from the peer's address: from the machine (10.77.3.1) it is refused.
    key = lab.state_dir / "compute1" / "root" / "root-ssh" / "id_virtops_migration"
    outsider = subprocess.run(
        ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "UserKnownHostsFile=%s" % (lab.state_dir / "known_hosts"),
         "-o", "StrictHostKeyChecking=yes", "root@%s" % prepared.address("compute2"), "true"],
        capture_output=True, text=True, timeout=60, check=False)
    assert outsider.returncode == 255 and "Permission denied" in outsider.stderr


def _libvirtd_pid(prepared, host):
    pid = int((prepared.lab.state_dir / host / "libvirtd.pid").read_text().strip())
    assert os.readlink("/proc/%d/exe" % pid) == "/usr/sbin/libvirtd"
    return pid


def test_broken_hosts_are_repaired_by_the_next_run(prepared):
    lab = prepared.lab
    # 1. libvirtd stopped on compute1 (by its pid file's pid).
    old_pid = _libvirtd_pid(prepared, "compute1")
    os.kill(old_pid, 15)
    # 2. a bridge removed on compute2.
    lab.run("compute2", ["ip", "link", "del", "br-vp-priv"])
    # 3. compute2's key dropped from compute1's authorized_keys.
    lab.run("compute1", ["sed", "-i", "/^restrict/d", "/root/.ssh/authorized_keys"])
    assert lab.run("compute2", ["ssh", "-o", "BatchMode=yes", prepared.address("compute1"), "true"],
                   check=False).returncode == 255

    # Check mode names each repair without making it, and fails no host.
    check = prepared.playbook("--check")
    assert check["rc"] == 0, failures(check)
    readiness = task_results(check, READINESS_TASK)
    assert any("libvirt does not answer" in p for p in readiness["compute1"]["problems"])
    assert any("bridge br-vp-priv is missing" in p for p in readiness["compute2"]["problems"])
    assert any("migration ssh to compute1" in p for p in readiness["compute2"]["problems"])
    assert lab.virsh("compute1", "version", check=False).returncode != 0

    repair = prepared.playbook()
    assert repair["rc"] == 0, failures(repair)
    changed1 = changed_tasks(repair, "compute1")
    changed2 = changed_tasks(repair, "compute2")
    assert any(name.endswith("Make libvirt answer (starting virtlogd and libvirtd as daemons "
                             "without systemd)") for name in changed1), changed1
    assert any(name.endswith("Authorise the peers' migration keys for root") for name in changed1)
    assert any("Create the bridges" in name for name in changed2), changed2
    assert lab.virsh("compute1", "version").returncode == 0
    assert _libvirtd_pid(prepared, "compute1") != old_pid
    assert "br-vp-priv" in lab.run("compute2", ["ip", "-br", "link", "show", "br-vp-priv"]).stdout
    assert lab.run("compute2", ["ssh", "-o", "BatchMode=yes", prepared.address("compute1"),
                                "true"]).returncode == 0
    for host in HOSTS:
        assert task_results(repair, READINESS_TASK)[host]["ready"] is True


def test_a_problem_the_role_cannot_fix_fails_the_host_with_what_to_do(prepared):
    result = prepared.playbook("-e", "virtops_min_free_disk_gb=1000000")
    assert result["rc"] != 0
    for host in HOSTS:
        assert result["stats"][host]["failures"] == 1
        message = task_results(result, "Stop on a host that is not ready")[host]["msg"]
        assert message.startswith("%s is not ready: " % host)
        assert "below virtops_min_free_disk_gb=1000000" in message


def test_fleet_scope_shares_one_key_pair_that_still_works_both_ways(prepared):
    result = prepared.playbook("-e", "virtops_migration_key_scope=fleet")
    assert result["rc"] == 0, failures(result)
    lab = prepared.lab
    # compute1 (the first compute host) keeps its pair and now authorises compute2 with it;
    # compute2 holds the same pair.
    assert [name.split(" : ")[-1] for name in changed_tasks(result, "compute1")] == [
        "Authorise the peers' migration keys for root"]
    assert any(name.endswith("Copy the fleet key pair to the other hosts")
               for name in changed_tasks(result, "compute2"))
    keys = {host: lab.run(host, ["cat", "/root/.ssh/id_virtops_migration.pub"]).stdout.split()[:2]
            for host in HOSTS}
    assert keys["compute1"] == keys["compute2"]
    assert lab.run("compute2", ["stat", "-c", "%a", "/root/.ssh/id_virtops_migration"]).stdout.strip() == "600"
    for source, dest in (HOSTS, HOSTS[::-1]):
        assert lab.run(source, ["ssh", "-o", "BatchMode=yes", prepared.address(dest), "true"]).returncode == 0
