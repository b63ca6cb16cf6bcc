# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin virtops.compute.servers on the session's two-host lab: servers booted
by playbooks/boot.yml are listed by ``ansible-inventory`` reading each lab host's own libvirtd
over libvirt's remote transport, read-only, with the host's key checked.

The lab hosts are reached both ways a user would:

- ``qemu+libssh://root@<address>/system?keyfile=<lab key>&known_hosts=<lab known_hosts>&sshauth=privkey``:
  libvirt's built-in libssh client, the known_hosts file named in the URI;
- ``qemu+ssh://root@<address>/system?keyfile=<lab key>&no_tty=1&command=<ssh -F config>``: the
  ``ssh`` client, whose known_hosts comes from its configuration. libvirt 9's ssh transport
  ignores ``known_hosts=`` in the URI, and this shared machine's ``/root/.ssh`` is not the
  test's to change, so ``command`` names a two-line ``ssh -F <config>`` wrapper whose config
  says ``UserKnownHostsFile <lab known_hosts>`` and ``StrictHostKeyChecking yes``.

ssh lands in the lab host's network and mount namespaces (its sshd runs there), where
libvirt's ``virt-ssh-helper`` reaches that host's libvirtd socket.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest
import yaml

from tests.integration.ansible_venv import VENV_BIN
from tests.integration.boot_fleet import REPO, Fleet, guest_fleet
from tests.unit.plugins.inventory.test_servers import plain

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

SERVER = {"name": "inv", "flavor": "m1.nano", "image": "guest",
          "networks": [{"network": "private"}], "max_count": 2,
          "scheduler_hints": {"group": "spread"}}


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    return guest_fleet(lab, tmp_path_factory.mktemp("inventory"))


def lab_ssh(fleet: Fleet) -> Tuple[str, str]:
    """The controller's key and the lab's known_hosts, as the lab's inventory names them."""
    inventory = yaml.safe_load(fleet.lab.inventory.read_text())["all"]["vars"]
    key = inventory["ansible_ssh_private_key_file"]
    known_hosts = str(fleet.lab.state_dir / "known_hosts")
    assert "UserKnownHostsFile=%s" % known_hosts in inventory["ansible_ssh_common_args"]
    return key, known_hosts


def ssh_command(workdir: Path, known_hosts: str) -> str:
    """An ssh client for libvirt's ``command=``: ssh with a config of its own."""
    config = workdir / "ssh_config"
    config.write_text("Host *\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n"
                      "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  BatchMode yes\n"
                      "  ConnectTimeout 10\n" % known_hosts)
    wrapper = workdir / "ssh-with-config"
    wrapper.write_text("#!/bin/sh\nexec ssh -F %s \"$@\"\n" % config)
    wrapper.chmod(0o755)
    return str(wrapper)


def compute_hosts(fleet: Fleet, workdir: Path, known_hosts: str) -> List[dict]:
    """The lab's hosts, alternately over libssh and over the ssh client."""
    key, _lab_known_hosts = lab_ssh(fleet)
    command = ssh_command(workdir, known_hosts)
    hosts = []
    for index, (name, host) in enumerate(sorted(fleet.lab.hosts.items())):
        if index % 2 == 0:
            uri = ("qemu+libssh://root@%s/system?keyfile=%s&known_hosts=%s&sshauth=privkey"
                   % (host.address, key, known_hosts))
        else:
            uri = ("qemu+ssh://root@%s/system?keyfile=%s&no_tty=1&command=%s"
                   % (host.address, key, command))
        hosts.append({"name": name, "uri": uri})
    return hosts


def ansible_inventory(workdir: Path, hosts: List[dict], name: str,
                      fail_on_errors: bool = True) -> subprocess.CompletedProcess:
    path = workdir / ("%s.virtops_servers.yml" % name)
    path.write_text(yaml.safe_dump({
        "plugin": "virtops.compute.servers", "compute_hosts": hosts,
        "fail_on_errors": fail_on_errors,
        "keyed_groups": [{"key": "virtops_image.name", "prefix": "image"}]}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    proc = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(path), "--list"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    proc.stderr = " ".join(proc.stderr.split())
    return proc


def test_ansible_inventory_lists_the_booted_servers_from_each_lab_hosts_libvirt(fleet):
    booted = fleet.boot(SERVER)
    try:
        assert booted.rc == 0, booted.failures()
        made = {s["name"]: s for s in booted.boot["servers"]}
        assert sorted(made) == ["inv-1", "inv-2"]
        assert sorted(s["host"] for s in made.values()) == sorted(fleet.lab.hosts)

        workdir = fleet.workdir
        _key, known_hosts = lab_ssh(fleet)
        proc = ansible_inventory(workdir, compute_hosts(fleet, workdir, known_hosts), "lab")
        assert proc.returncode == 0, proc.stderr
        listing = plain(json.loads(proc.stdout))
        hostvars = listing["_meta"]["hostvars"]
        for name, server in made.items():
            seen = hostvars[name]
            assert (seen["virtops_uuid"], seen["virtops_compute_host"]) == (server["uuid"],
                                                                            server["host"])
            assert seen["virtops_ips"] == server["ips"] and server["ips"]
            assert seen["ansible_host"] == server["ips"][0]
            assert len(seen["virtops_macs"]) == 1
            assert seen["virtops_power_state"] == "running"
            assert seen["virtops_flavor"] == {"name": "m1.nano", "vcpus": 1, "ram_mb": 128,
                                              "root_gb": 1, "ephemeral_gb": 0, "swap_mb": 0}
            assert seen["virtops_image"]["name"] == "guest"
            assert seen["virtops_created_at"]
            # The console as libvirt runs it: the default listen address, the port it gave.
            assert seen["virtops_console"] == "vnc://%s:%d" % fleet.vnc(server["host"], name)
            for group in ("virtops_servers", "compute_host_%s" % server["host"],
                          "power_running", "flavor_m1_nano", "image_guest"):
                assert name in listing[group]["hosts"], group
        # Every server listed on a lab host is a domain of that host's own libvirtd.
        for host in fleet.lab.hosts:
            listed = set(listing.get("compute_host_%s" % host, {}).get("hosts", []))
            assert listed <= set(fleet.lab.domains(host)), host

        # The host keys are checked: with a known_hosts that does not hold them, both
        # transports refuse to connect; each host is reported and no server is listed.
        empty = workdir / "empty_known_hosts"
        empty.write_text("")
        refused = ansible_inventory(workdir, compute_hosts(fleet, workdir, str(empty)), "unknown",
                                    fail_on_errors=False)
        assert refused.returncode == 0, refused.stderr
        assert plain(json.loads(refused.stdout))["_meta"]["hostvars"] == {}
        hosts = sorted(fleet.lab.hosts)
        assert "compute host %s not read" % hosts[0] in refused.stderr, refused.stderr
        assert "Can't verify the session host key" in refused.stderr             # libssh
        assert "compute host %s not read" % hosts[1] in refused.stderr, refused.stderr
        assert "Host key verification failed" in refused.stderr                  # ssh client
        failed = ansible_inventory(workdir, compute_hosts(fleet, workdir, str(empty)), "failing")
        assert failed.returncode != 0
    finally:
        deleted = fleet.delete(SERVER)
        assert deleted.rc == 0, deleted.failures()
