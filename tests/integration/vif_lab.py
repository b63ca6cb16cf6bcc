# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the vm_vif and vm_domain integration tests share: a private lab, modules run on lab
hosts through `ansible`, and instances prepared the way the boot flow prepares them.

An instance is made as the boot role will make it: ports from the `ports` allocator, a qcow2
overlay on the test guest's disk plus its kernel and initrd (direct kernel boot: 5 s to READY
under TCG instead of 9 s through the boot loader), a config drive written by `_configdrive`
from network_info, then `vm_xml` run on the host for `libvirt.xml`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    build_config_drive)
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    InstanceMetadata)
from ansible_collections.virtops.compute.plugins.module_utils._network.port_filter import (
    CHAIN_PREFIX, FilterSnapshot)

from tests.integration.ansible_venv import VENV_BIN
from tests.lab.handle import LabHandle

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = VENV_BIN / "ansible"
INSTANCES = "/var/lib/virtops/instances"
READY = "VIRTOPS-GUEST-READY"
BOOT_TIMEOUT = 180        # TCG on two shared cores; ~6 s when the machine is idle
FLAVOR = {"name": "m1.test", "vcpus": 1, "ram_mb": 128, "root_gb": 1}


def ansible_env() -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        # One line per host: "<host> | CHANGED => {json}" (ansible-core has no json callback).
        "ANSIBLE_STDOUT_CALLBACK": "oneline",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "PYTHONPATH": str(REPO / ".cache" / "collections"),
    })
    return env


@dataclass
class ModuleRun:
    result: dict
    stdout: str
    status: str           # SUCCESS, CHANGED, FAILED!, UNREACHABLE!
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status in ("FAILED!", "UNREACHABLE!") or bool(self.result.get("failed"))

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))

    def __getitem__(self, key):
        return self.result[key]


class Fleet:
    """A lab plus helpers to run our modules on its hosts."""

    def __init__(self, lab: LabHandle):
        self.lab = lab

    def module(self, host: str, name: str, args: dict, check: bool = False,
               diff: bool = False, timeout: float = 600) -> ModuleRun:
        argv = [str(ANSIBLE), "-i", str(self.lab.inventory), host,
                "-m", "virtops.compute.%s" % name, "-a", json.dumps(args)]
        if check:
            argv.append("--check")
        if diff:
            # Callbacks drop "diff" from the printed result below verbosity 3.
            argv += ["--diff", "-vvv"]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(),
                              cwd=REPO, timeout=timeout, check=False)
        seconds = time.monotonic() - started
        result = status = None
        for line in proc.stdout.splitlines():
            if line.startswith(host + " | ") and "=> " in line:
                head, _sep, body = line.partition(" => ")
                status = head.split(" | ", 1)[1].strip()
                try:
                    result = json.loads(body)
                except ValueError:
                    result = None
        if result is None:
            raise AssertionError("ansible %s on %s gave no result (rc=%d):\n%s\n%s"
                                 % (name, host, proc.returncode, proc.stdout[-3000:],
                                    proc.stderr[-3000:]))
        return ModuleRun(result, proc.stdout, status, seconds)

    def ok(self, host: str, name: str, args: dict, **kwargs) -> ModuleRun:
        run = self.module(host, name, args, **kwargs)
        assert not run.failed, "%s on %s failed: %s" % (
            name, host, run.result.get("msg") or json.dumps(run.result)[:3000])
        return run

    # -- what a lab host has --------------------------------------------------------------
    def host_root(self, host: str) -> Path:
        """The lab host's /var/lib/virtops, seen from the machine."""
        return Path(self.lab.state()["hosts"][host]["dir"]) / "root" / "var-lib-virtops"

    def instance_dir(self, host: str, instance_uuid: str) -> Path:
        return self.host_root(host) / "instances" / instance_uuid

    def sh(self, host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.lab.run(host, list(argv), check=check)

    def links(self, host: str) -> Dict[str, dict]:
        out = self.sh(host, "ip", "-j", "-d", "link", "show").stdout
        return {entry["ifname"]: entry for entry in json.loads(out)}

    def taps(self, host: str) -> List[str]:
        return sorted(name for name, entry in self.links(host).items()
                      if (entry.get("linkinfo") or {}).get("info_kind") == "tun")

    def nwfilter_bindings(self, host: str) -> List[str]:
        out = self.lab.virsh(host, "nwfilter-binding-list").stdout
        return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]

    def port_filters(self, host: str) -> List[str]:
        """Taps with anti-spoofing rules in table bridge virtops: a map element, a chain or both
        (``firewall_driver=nftables``)."""
        return port_filters_of(self.sh, host)

    def ebtables_chains(self, host: str) -> List[str]:
        out = self.sh(host, "ebtables", "-t", "nat", "-L").stdout
        return re.findall(r"^Bridge chain: (\S+),", out, re.M)

    def domstate(self, host: str, name: str) -> str:
        proc = self.lab.virsh(host, "domstate", name, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else "absent"

    def leftovers(self, host: str) -> dict:
        """Everything an instance could leave behind on a host."""
        instances = self.host_root(host) / "instances"
        return {
            "domains": self.lab.domains(host),
            "taps": self.taps(host),
            "nwfilter_bindings": self.nwfilter_bindings(host),
            "port_filters": self.port_filters(host),
            "ebtables_chains": [c for c in self.ebtables_chains(host)
                                if c not in ("PREROUTING", "OUTPUT", "POSTROUTING")],
            "instance_dirs": sorted(p.name for p in instances.iterdir()
                                    if not p.name.startswith("_")) if instances.is_dir() else [],
        }

    # -- instances ------------------------------------------------------------------------
    def prepare_instance(self, host: str, instance_uuid: str, name: str, network_info: list,
                         guest, guest_network_info: Optional[list] = None,
                         firewall_driver: Optional[str] = None) -> Path:
        """Disks and config drive in the instance directory, then vm_xml for libvirt.xml.

        ``guest_network_info`` goes onto the config drive instead of ``network_info``: a guest
        told something else than its ports say (a spoofer, or a peer as its "gateway").
        ``firewall_driver`` goes to vm_xml when given (else its default, nftables).
        """
        directory = self.instance_dir(host, instance_uuid)
        directory.mkdir(parents=True)
        directory.chmod(0o755)
        inside = "%s/%s" % (INSTANCES, instance_uuid)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(guest.disk_qcow2), str(directory / "disk")], check=True)
        shutil.copyfile(guest.kernel, directory / "kernel")
        shutil.copyfile(guest.initrd, directory / "ramdisk")
        (directory / "disk.info").write_text(json.dumps({inside + "/disk": "qcow2"}))
        metadata = InstanceMetadata.from_params(
            instance={"uuid": instance_uuid, "name": name},
            network_info=guest_network_info if guest_network_info is not None else network_info)
        build_config_drive(directory / "disk.config", metadata)
        xml_args = {
            "instance": {"uuid": instance_uuid, "name": name},
            "flavor": FLAVOR,
            "image": {"id": "virtops-test-guest", "properties": {
                "kernel_id": "virtops-test-kernel", "ramdisk_id": "virtops-test-initrd",
                "os_command_line": guest.cmdline}},
            "network_info": network_info, "config_drive": True, "virt_type": "qemu"}
        if firewall_driver is not None:
            xml_args["firewall_driver"] = firewall_driver
        self.ok(host, "vm_xml", xml_args)
        return directory

    def console(self, host: str, instance_uuid: str) -> str:
        try:
            return (self.instance_dir(host, instance_uuid) / "console.log").read_text(
                errors="replace")
        except FileNotFoundError:
            return ""

    def wait_console(self, host: str, instance_uuid: str, marker: str,
                     timeout: float = BOOT_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.console(host, instance_uuid)
            if marker in text:
                return text
            time.sleep(0.5)
        raise AssertionError("no %r on the console of %s within %ss:\n%s"
                             % (marker, instance_uuid, timeout,
                                self.console(host, instance_uuid)[-3000:]))

    def delete(self, host: str, instance_uuid: str, network_info: Optional[list] = None) -> None:
        args = {"uuid": instance_uuid, "state": "absent"}
        if network_info is not None:
            args["network_info"] = network_info
        self.ok(host, "vm_domain", args)


def port_filters_of(sh, host: str) -> List[str]:
    """The taps of ``host`` whose map element or port chain is in table bridge virtops; ``sh``
    runs a command on a lab host (``sh(host, *argv, check=False)``)."""
    proc = sh(host, "nft", "-j", "list", "table", "bridge", "virtops", check=False)
    if proc.returncode != 0:
        assert "No such file or directory" in proc.stderr, proc.stderr
        return []
    snapshot = FilterSnapshot.from_json(proc.stdout)
    return sorted(set(snapshot.elements) | {c[len(CHAIN_PREFIX):] for c in snapshot.chains})


def guest_lines(console: str, prefix: str) -> List[str]:
    return [line.strip() for line in console.splitlines() if line.strip().startswith(prefix)]


LAB_DIR = Path(os.environ.get("VIRTOPS_VIF_LAB_DIR", "/var/tmp/virtops-vif-lab"))


def lab_fleet(prefix: str = "vn", subnet: str = "10.77.4"):
    """A private two-host lab (generator for a module-scoped fixture); always torn down.

    Private because these tests add bridges, VXLAN tunnels and addresses to the hosts, and a
    netns that goes away takes all of that with it, whatever a failing test left. A fixed
    state directory lets the next run remove what an interrupted one left.
    """
    lab = LabHandle(LAB_DIR, prefix=prefix, subnet=subnet)
    lab.down()
    try:
        lab.up(2)
        yield Fleet(lab)
    finally:
        proc = lab.down()
        assert proc.returncode == 0, proc.stderr


class Instances:
    """Instances a test made, deleted at its end even when it fails (at most two guests run
    at once: TCG costs CPU)."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        self.made: List[tuple] = []

    def add(self, host: str, instance_uuid: str) -> str:
        self.made.append((host, instance_uuid))
        return instance_uuid

    def cleanup(self) -> None:
        for host, instance_uuid in reversed(self.made):
            run = self.fleet.module(host, "vm_domain", {"uuid": instance_uuid, "state": "absent"})
            if run.failed:
                # Whatever the module could not do, the lab's virsh can.
                self.fleet.lab.virsh(host, "destroy", instance_uuid, check=False)
                self.fleet.lab.virsh(host, "undefine", "--nvram", instance_uuid, check=False)
                shutil.rmtree(self.fleet.instance_dir(host, instance_uuid), ignore_errors=True)
        self.made.clear()
