# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cold migration and resize between the two hosts of the session lab, with the real guest.

The vm_migrate module runs inside each lab host exactly as Ansible's module runner runs it
(the module file and an argument file), phase by phase, so each test can check the hosts
between phases and break one on purpose:

* an active server migrates compute1 -> compute2 and is confirmed; it boots there and reads
  its own uuid from the config drive; the base image comes from the source host because the
  image source is gone; every phase re-run (and confirm, twice) reports no change;
* a stopped server stays stopped;
* a resize up (vCPUs, RAM, root disk, a new swap disk) is seen in the domain and by
  ``qemu-img info``; revert brings the old flavor back on the source, running;
* a resize on the server's own host (allowed) reverts and confirms in place;
* a resize down is refused before anything changes, by prep and by migrate;
* the destination's disk fills up mid-copy: the source runs again, nothing is left there;
* the playbooks (role server_migrate) migrate and confirm, resize and revert, and confirm
  automatically a resize older than virtops_resize_confirm_window.

At most one guest runs at a time (the source is off before the destination starts).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.guest import ensure_guest
from tests.integration.ansible_venv import venv_tool
from tests.integration.vif_lab import port_filters_of

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".cache" / "collections"
MODULE = REPO / "plugins" / "modules" / "vm_migrate.py"
SERVER_SCRIPT = Path(__file__).resolve().parent / "migrate_server.py"
PYTHON = venv_tool("python")
INSTANCES = "/var/lib/virtops/instances"
SRC, DST = "compute1", "compute2"
READY = "VIRTOPS-GUEST-READY"
BRIDGE = "br-vo-mig"          # made by vm_vif's plug inside each lab host's namespace
TINY = {"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1, "ephemeral_gb": 0,
        "swap_mb": 0, "extra_specs": {}}
SMALL = {"name": "m1.small", "vcpus": 2, "ram_mb": 192, "root_gb": 2, "ephemeral_gb": 0,
         "swap_mb": 32, "extra_specs": {}}
FLAT = {"name": "m1.flat", "vcpus": 1, "ram_mb": 128, "root_gb": 0, "ephemeral_gb": 0,
        "swap_mb": 0, "extra_specs": {}}
COMMON = {"instances_path": INSTANCES, "virt_type": "qemu", "shutdown_timeout": 30,
          "retry_interval": 5, "vif_plugging_timeout": 60, "console_timeout": 180}

os.environ["PYTHONPATH"] = str(COLLECTIONS)   # lab hosts inherit it through `lab exec`


# --------------------------------------------------------------------------- helpers

def run_phase(lab, host: str, phase: str, check: bool = False, diff: bool = False,
              **args) -> dict:
    module_args = dict(COMMON, phase=phase, host=host, address=lab.hosts[host].address,
                       _ansible_check_mode=check, _ansible_diff=diff)
    module_args.update(args)
    fd, argfile = tempfile.mkstemp(prefix="vm-migrate-", suffix=".json", dir="/tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    try:
        proc = lab.run(host, [PYTHON, str(MODULE), argfile], check=False, timeout=600)
    finally:
        os.unlink(argfile)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("vm_migrate %s on %s printed no JSON (rc=%d):\n%s\n%s"
                             % (phase, host, proc.returncode, proc.stdout[-3000:],
                                proc.stderr[-3000:]))


def ok(result: dict) -> dict:
    assert not result.get("failed"), json.dumps(result, indent=1)[-4000:]
    return result


def exists(lab, host: str, path: str) -> bool:
    return lab.run(host, ["test", "-e", path], check=False).returncode == 0


def domain_state(lab, host: str, name: str) -> str:
    proc = lab.virsh(host, "domstate", name, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "undefined"


def read(lab, host: str, path: str) -> str:
    return lab.run(host, ["cat", path], check=False).stdout


def record(lab, host: str, server_uuid: str, resize: bool = False) -> dict:
    text = read(lab, host, "%s/%s%s/instance.json" % (INSTANCES, server_uuid,
                                                      "_resize" if resize else ""))
    return json.loads(text) if text else {}


def port_filters(lab, host: str) -> list:
    """Taps with anti-spoofing rules (nftables) on ``host``."""
    return port_filters_of(lambda h, *argv, check=True: lab.run(h, list(argv), check=check), host)


def image_info(lab, host: str, path: str) -> dict:
    return json.loads(lab.run(host, ["qemu-img", "info", "--force-share", "--output=json",
                                     path]).stdout)


class Servers:
    """Servers booted by the tests; all removed from both hosts at the end."""

    def __init__(self, lab, workdir: Path):
        self.lab = lab
        self.workdir = workdir
        self.made = []

    def boot(self, host: str, flavor: dict, state: str = "running", image_url: str = None,
             extra_data: dict = None, name: str = None, port_filter: bool = False) -> dict:
        """The server as migrate_server.py booted it, plus its port's ``devname``."""
        server_uuid = str(uuid.uuid4())
        name = name or "mig-%s" % server_uuid[:8]
        self.made.append((server_uuid, name))
        url = image_url or str(ensure_guest().disk_qcow2)
        port = str(uuid.uuid4())
        vif = {"id": port, "address": "fa:16:3e:%02x:%02x:%02x" % tuple(os.urandom(3)),
               "type": "bridge", "details": {"port_filter": port_filter},
               "network": {"id": "net-mig", "label": "mig", "bridge": BRIDGE,
                           "meta": {"mtu": 1400},
                           "subnets": [{"cidr": "10.98.0.0/24",
                                        "ips": [{"address": "10.98.0.%d" % (10 + len(self.made))}]}]}}
        spec = {"instances_path": INSTANCES, "uuid": server_uuid, "name": name, "host": host,
                "flavor": flavor, "state": state, "network_info": [vif],
                "image": {"id": "guest-%s" % server_uuid[:8], "name": "virtops-guest",
                          "url": url, "disk_format": "qcow2"}}
        if extra_data:
            spec["extra_data"] = extra_data
        proc = self.lab.run(host, [PYTHON, str(SERVER_SCRIPT), "boot", json.dumps(spec)],
                            check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]), devname=("tap" + port)[:14])

    def cleanup(self) -> None:
        for server_uuid, name in self.made:
            for host in (SRC, DST):
                self.lab.virsh(host, "destroy", name, check=False)
                self.lab.virsh(host, "undefine", name, check=False)
                self.lab.run(host, ["rm", "-rf", "%s/%s" % (INSTANCES, server_uuid),
                                    "%s/%s_resize" % (INSTANCES, server_uuid)], check=False)
        for host in (SRC, DST):
            self.lab.run(host, ["ip", "link", "del", BRIDGE], check=False)


@pytest.fixture(scope="module")
def servers(lab, tmp_path_factory):
    made = Servers(lab, tmp_path_factory.mktemp("migrate"))
    try:
        yield made
    finally:
        made.cleanup()


def prep(lab, server_uuid: str, source: str, dest: str, new_flavor: dict = None,
         check: bool = False, **extra) -> dict:
    info = ok(run_phase(lab, source, "info", uuid=server_uuid))
    args = dict(extra, instance=info["instance"], source_address=lab.hosts[source].address)
    if new_flavor:
        args["new_flavor"] = new_flavor
    return run_phase(lab, dest, "prep", check=check, **args)


def migrate_to(lab, server_uuid: str, source: str, dest: str, new_flavor: dict = None,
               wait: bool = True) -> dict:
    """prep, migrate and finish; returns {phase: result}."""
    results = {"prep": ok(prep(lab, server_uuid, source, dest, new_flavor))}
    results["migrate"] = ok(run_phase(lab, source, "migrate",
                                      migration=results["prep"]["migration"]))
    extra = {"wait_for_console": READY} if wait else {}
    results["finish"] = ok(run_phase(lab, dest, "finish",
                                     migration=results["migrate"]["migration"], **extra))
    return results


def console_of(lab, host: str, server_uuid: str) -> str:
    return read(lab, host, "%s/%s/console.log" % (INSTANCES, server_uuid))


# --------------------------------------------------------------------------- tests

def test_active_server_migrates_and_confirms(lab, servers, tmp_path):
    # An image source that disappears after the boot: finish must copy the base from the source.
    gone = Path(tempfile.mkdtemp(prefix="mig-image-", dir="/var/tmp"))
    try:
        shutil.copy(ensure_guest().disk_qcow2, gone / "guest.qcow2")
        gone.chmod(0o755)
        server = servers.boot(SRC, TINY, image_url=str(gone / "guest.qcow2"), port_filter=True)
    finally:
        shutil.rmtree(gone)
    sid, name, tap = server["uuid"], server["name"], server["devname"]
    assert domain_state(lab, SRC, name) == "running"
    assert tap in port_filters(lab, SRC) and tap not in port_filters(lab, DST)

    info = ok(run_phase(lab, SRC, "info", name=name))
    assert info["holds"] == ["instance"] and info["domain"]["power_state"] == "running"

    checked = ok(prep(lab, sid, SRC, DST, check=True))
    assert checked["changed"] and not exists(lab, DST, "%s/%s" % (INSTANCES, sid))
    prepared = ok(prep(lab, sid, SRC, DST))
    assert prepared["changed"] and prepared["migration"]["status"] == "pre-migrating"
    dest_record = record(lab, DST, sid)
    assert dest_record["task_state"] == "resize_prep" and dest_record["old_vm_state"] == "active"
    assert dest_record["flavor"]["name"] == "m1.tiny" and dest_record["host"] == DST
    again = ok(prep(lab, sid, SRC, DST))
    assert not again["changed"] and again["migration"]["id"] == prepared["migration"]["id"]

    would = ok(run_phase(lab, SRC, "migrate", check=True, migration=prepared["migration"]))
    assert would["changed"] and domain_state(lab, SRC, name) == "running"
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))

    moved = ok(run_phase(lab, SRC, "migrate", migration=prepared["migration"]))
    mig = moved["migration"]
    assert mig["status"] == "post-migrating" and mig["shared_storage"] is False
    assert mig["power_off"]["method"] == "acpi", mig["power_off"]
    assert mig["bytes_sent"] > 0 and mig["allocated_bytes"] > 0
    assert domain_state(lab, SRC, name) == "shut off"
    assert tap not in port_filters(lab, SRC)      # the source unplugged the port
    assert exists(lab, SRC, "%s/%s_resize/disk" % (INSTANCES, sid))
    assert not exists(lab, SRC, "%s/%s" % (INSTANCES, sid))
    source_copy = record(lab, SRC, sid, resize=True)
    assert source_copy["task_state"] == "resize_migrated"
    assert source_copy["migration"]["status"] == "post-migrating"
    assert ok(run_phase(lab, SRC, "migrate", migration=prepared["migration"]))["changed"] is False

    finished = ok(run_phase(lab, DST, "finish", migration=mig, wait_for_console=READY))
    assert finished["migration"]["status"] == "finished"
    assert finished["instance"]["vm_state"] == "resized"
    assert finished["base_source"] == "copied from %s" % SRC
    assert finished["migration"]["downtime_seconds"] > 0
    assert domain_state(lab, DST, name) == "running"
    assert tap in port_filters(lab, DST)
    console = console_of(lab, DST, sid)
    assert "VIRTOPS-META uuid=%s" % sid in console and READY in console
    disk = image_info(lab, DST, "%s/%s/disk" % (INSTANCES, sid))
    assert disk["backing-filename"].startswith(INSTANCES + "/_base/")
    assert ok(run_phase(lab, DST, "finish", migration=mig))["changed"] is False

    refused = run_phase(lab, SRC, "confirm", uuid=sid)
    assert refused.get("failed") and "not finished" in refused["msg"]
    confirmed = ok(run_phase(lab, SRC, "confirm", migration=finished["migration"]))
    assert confirmed["changed"]
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    assert domain_state(lab, SRC, name) == "undefined"
    dest_done = ok(run_phase(lab, DST, "confirm", migration=finished["migration"]))
    assert dest_done["changed"] and dest_done["instance"]["vm_state"] == "active"
    assert dest_done["migration"]["status"] == "confirmed"
    assert dest_done["instance"]["old_flavor"] is None
    for host in (SRC, DST):
        assert ok(run_phase(lab, host, "confirm", migration=finished["migration"]))["changed"] is False
    assert domain_state(lab, DST, name) == "running"
    # Nothing of the port is left on the host the server left; its rules run where it runs.
    assert tap not in port_filters(lab, SRC) and tap in port_filters(lab, DST)


def test_stopped_server_stays_stopped(lab, servers):
    server = servers.boot(SRC, TINY, state="stopped")
    sid, name = server["uuid"], server["name"]
    results = migrate_to(lab, sid, SRC, DST)
    assert results["migrate"]["migration"]["power_off"] is None
    assert results["finish"]["instance"]["vm_state"] == "resized"
    assert results["finish"]["migration"]["downtime_seconds"] is None
    assert domain_state(lab, DST, name) == "shut off"
    mig = results["finish"]["migration"]
    ok(run_phase(lab, SRC, "confirm", migration=mig))
    done = ok(run_phase(lab, DST, "confirm", migration=mig))
    assert done["instance"]["vm_state"] == "stopped"
    assert domain_state(lab, DST, name) == "shut off"


def test_resize_up_then_revert_restores_the_source(lab, servers):
    server = servers.boot(SRC, TINY, port_filter=True)
    sid, name, tap = server["uuid"], server["name"], server["devname"]
    results = migrate_to(lab, sid, SRC, DST, new_flavor=SMALL, wait=False)
    mig = results["finish"]["migration"]
    assert mig["migration_type"] == "resize"
    xml = lab.virsh(DST, "dumpxml", name).stdout
    assert "<memory unit='KiB'>%d</memory>" % (192 * 1024) in xml
    assert ">2</vcpu>" in xml
    root = image_info(lab, DST, "%s/%s/disk" % (INSTANCES, sid))
    assert root["virtual-size"] == 2 * 1024 ** 3
    swap = image_info(lab, DST, "%s/%s/disk.swap" % (INSTANCES, sid))
    assert swap["virtual-size"] == 32 * 1024 ** 2
    assert domain_state(lab, DST, name) == "running"
    assert tap in port_filters(lab, DST) and tap not in port_filters(lab, SRC)

    assert ok(run_phase(lab, DST, "revert_dest", check=True, migration=mig))["changed"]
    assert domain_state(lab, DST, name) == "running"
    reverted = ok(run_phase(lab, DST, "revert_dest", migration=mig))
    assert reverted["migration"]["status"] == "reverted"
    assert not exists(lab, DST, "%s/%s" % (INSTANCES, sid))
    assert domain_state(lab, DST, name) == "undefined"
    assert tap not in port_filters(lab, DST)      # nothing of the port left on the destination
    back = ok(run_phase(lab, SRC, "revert_source", migration=mig))
    assert back["instance"]["flavor"]["name"] == "m1.tiny"
    assert back["instance"]["vm_state"] == "active" and back["instance"]["task_state"] is None
    assert back["migration"]["status"] == "reverted"
    assert domain_state(lab, SRC, name) == "running"
    assert tap in port_filters(lab, SRC)
    assert "<memory unit='KiB'>%d</memory>" % (128 * 1024) in lab.virsh(SRC, "dumpxml", name).stdout
    assert image_info(lab, SRC, "%s/%s/disk" % (INSTANCES, sid))["virtual-size"] == 1024 ** 3
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    assert ok(run_phase(lab, DST, "revert_dest", migration=mig))["changed"] is False
    assert ok(run_phase(lab, SRC, "revert_source", migration=mig))["changed"] is False


def test_resize_down_is_refused_with_nothing_changed(lab, servers):
    server = servers.boot(SRC, TINY, state="stopped")
    sid, name = server["uuid"], server["name"]
    before = record(lab, SRC, sid)
    refused = prep(lab, sid, SRC, DST, new_flavor=FLAT)
    assert refused.get("failed") and refused["msg"].startswith("Unable to resize disk down.")
    assert not exists(lab, DST, "%s/%s" % (INSTANCES, sid))
    # The source refuses too, even when handed a migration that asks for a shrink.
    prepared = ok(prep(lab, sid, SRC, DST))
    shrink = dict(prepared["migration"], new_flavor=FLAT, migration_type="resize")
    refused = run_phase(lab, SRC, "migrate", migration=shrink)
    assert refused.get("failed") and refused["msg"].startswith("Unable to resize disk down.")
    assert record(lab, SRC, sid) == before
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    assert domain_state(lab, SRC, name) == "shut off"
    released = ok(run_phase(lab, DST, "revert_dest", migration=prepared["migration"]))
    assert released["changed"] and not exists(lab, DST, "%s/%s" % (INSTANCES, sid))


def test_destination_disk_full_mid_copy_rolls_back(lab, servers):
    server = servers.boot(SRC, TINY, extra_data={"offset_mb": 100, "size_mb": 8})
    sid, name = server["uuid"], server["name"]
    before = record(lab, SRC, sid)
    dest_dir = "%s/%s" % (INSTANCES, sid)
    # A 1 MiB tmpfs as the destination's instance directory: the record fits, the disk does not.
    lab.run(DST, ["mkdir", "-p", dest_dir])
    lab.run(DST, ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "virtops-test", dest_dir])
    try:
        prepared = ok(prep(lab, sid, SRC, DST))
        failed = run_phase(lab, SRC, "migrate", migration=prepared["migration"],
                           wait_for_console=READY)
        assert failed.get("failed"), failed
        assert "rolled back" in failed["msg"] and "No space left" in failed["msg"]
        steps = failed["rollback"]
        assert any(step.startswith("rename") for step in steps), steps
        assert any(step.startswith("plug the VIFs and start") for step in steps), steps
        # The destination's copy and claim are gone (the mount point itself stays empty).
        assert lab.run(DST, ["ls", "-A", dest_dir]).stdout.strip() == ""
    finally:
        lab.run(DST, ["umount", dest_dir], check=False)
        lab.run(DST, ["rmdir", dest_dir], check=False)
    assert not exists(lab, DST, dest_dir)
    assert domain_state(lab, SRC, name) == "running"
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    after = record(lab, SRC, sid)
    assert after["vm_state"] == "active" and after["task_state"] is None
    assert after["flavor"] == before["flavor"] and after["new_flavor"] is None
    assert after["migration"]["status"] == "error" and "No space left" in after["migration"]["error"]
    console = console_of(lab, SRC, sid)
    assert console.count(READY) >= 2, console[-2000:]


def test_same_host_resize_reverts_and_confirms_in_place(lab, servers):
    server = servers.boot(SRC, TINY, state="stopped")
    sid, name = server["uuid"], server["name"]

    def resize() -> dict:
        prepared = ok(prep(lab, sid, SRC, SRC, new_flavor=SMALL, allow_same_host=True))
        assert prepared["migration"]["claim_in_place"]
        moved = ok(run_phase(lab, SRC, "migrate", migration=prepared["migration"]))
        assert moved["migration"]["shared_storage"] is True
        finished = ok(run_phase(lab, SRC, "finish", migration=moved["migration"]))
        assert finished["instance"]["flavor"]["name"] == "m1.small"
        return finished["migration"]

    mig = resize()
    assert image_info(lab, SRC, "%s/%s/disk" % (INSTANCES, sid))["virtual-size"] == 2 * 1024 ** 3
    assert image_info(lab, SRC, "%s/%s_resize/disk" % (INSTANCES, sid))["virtual-size"] == 1024 ** 3
    assert "<memory unit='KiB'>%d</memory>" % (192 * 1024) in lab.virsh(SRC, "dumpxml", name).stdout
    refused = run_phase(lab, SRC, "revert_source", migration=mig)
    assert refused.get("failed") and "revert_dest" in refused["msg"]
    ok(run_phase(lab, SRC, "revert_dest", migration=mig))
    back = ok(run_phase(lab, SRC, "revert_source", migration=mig))
    assert back["instance"]["flavor"]["name"] == "m1.tiny"
    assert back["instance"]["vm_state"] == "stopped" and back["instance"]["new_flavor"] is None
    assert domain_state(lab, SRC, name) == "shut off"
    assert "<memory unit='KiB'>%d</memory>" % (128 * 1024) in lab.virsh(SRC, "dumpxml", name).stdout

    mig = resize()
    ok(run_phase(lab, SRC, "confirm", migration=mig))
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    assert domain_state(lab, SRC, name) == "shut off"      # the same domain, kept, resized
    assert "<memory unit='KiB'>%d</memory>" % (192 * 1024) in lab.virsh(SRC, "dumpxml", name).stdout
    assert record(lab, SRC, sid)["vm_state"] == "stopped"
    assert ok(run_phase(lab, SRC, "confirm", migration=mig))["changed"] is False


# --------------------------------------------------------------------------- playbooks

def playbook(lab, extra_inventory: Path, name: str, *extra: str) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent / "callback_plugins"),
               ANSIBLE_STDOUT_CALLBACK="json_results")
    proc = subprocess.run(
        [venv_tool("ansible-playbook"), "-i", str(lab.inventory),
         "-i", str(extra_inventory), str(REPO / "playbooks" / name)] + list(extra),
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook %s printed no JSON (rc=%d):\n%s\n%s"
                             % (name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    result["rc"] = proc.returncode
    return result


def failures(result: dict) -> str:
    return json.dumps([(t["task"]["name"], host, r.get("msg")) for play in result["plays"]
                       for t in play["tasks"] for host, r in t["hosts"].items()
                       if r.get("failed") and not r.get("ignore_errors")], indent=1)


def changed(result: dict) -> list:
    return [(t["task"]["name"], host) for play in result["plays"] for t in play["tasks"]
            for host, r in t["hosts"].items() if r.get("changed")]


@pytest.fixture
def extra_inventory(tmp_path):
    path = tmp_path / "migrate-vars.yml"
    path.write_text(json.dumps({"all": {"vars": {
        "flavors": {"m1.tiny": {k: v for k, v in TINY.items() if k != "name"},
                    "m1.small": {k: v for k, v in SMALL.items() if k != "name"}},
        "virtops_virt_type": "qemu", "virtops_shutdown_timeout": 30,
        "virtops_shutdown_retry_interval": 5, "server_migrate_poll": 1}}}))
    return path


def test_playbooks_migrate_confirm_resize_revert(lab, servers, extra_inventory):
    running = servers.boot(SRC, TINY)
    name = running["name"]
    # A forced target still goes through the filters, which never offer the source.
    forced = playbook(lab, extra_inventory, "cold_migrate.yml", "-e", "server=" + name,
                      "-e", "target_host=" + SRC)
    assert forced["rc"] != 0 and "No valid host was found" in failures(forced)
    assert domain_state(lab, SRC, name) == "running"
    moved = playbook(lab, extra_inventory, "cold_migrate.yml", "-e", "server=" + name,
                     "-e", "server_migrate_wait_for_console=" + READY)
    assert moved["rc"] == 0, failures(moved)
    assert domain_state(lab, DST, name) == "running"
    assert record(lab, DST, running["uuid"])["vm_state"] == "resized"
    assert READY in console_of(lab, DST, running["uuid"])
    refused = playbook(lab, extra_inventory, "cold_migrate.yml", "-e", "server=" + name)
    assert refused["rc"] != 0 and "not confirmed or reverted" in failures(refused)
    confirmed = playbook(lab, extra_inventory, "confirm_resize.yml", "-e", "server=" + name)
    assert confirmed["rc"] == 0, failures(confirmed)
    assert record(lab, DST, running["uuid"])["vm_state"] == "active"
    assert domain_state(lab, SRC, name) == "undefined"
    again = playbook(lab, extra_inventory, "confirm_resize.yml", "-e", "server=" + name)
    assert again["rc"] == 0 and changed(again) == [], failures(again) + str(changed(again))

    stopped = servers.boot(SRC, TINY, state="stopped")
    name, sid = stopped["name"], stopped["uuid"]
    resized = playbook(lab, extra_inventory, "resize.yml", "-e", "server=" + name,
                       "-e", "flavor=m1.small")
    assert resized["rc"] == 0, failures(resized)
    assert record(lab, DST, sid)["flavor"]["name"] == "m1.small"
    assert domain_state(lab, DST, name) == "shut off"
    reverted = playbook(lab, extra_inventory, "revert_resize.yml", "-e", "server=" + name)
    assert reverted["rc"] == 0, failures(reverted)
    back = record(lab, SRC, sid)
    assert back["flavor"]["name"] == "m1.tiny" and back["vm_state"] == "stopped"
    assert not exists(lab, DST, "%s/%s" % (INSTANCES, sid))
    again = playbook(lab, extra_inventory, "revert_resize.yml", "-e", "server=" + name)
    assert again["rc"] == 0 and changed(again) == [], failures(again) + str(changed(again))

    # Nova's automatic confirmation, as an AWX schedule runs it: no server, a window. A resize
    # finished within the window is left alone; once older, it is confirmed.
    refused = playbook(lab, extra_inventory, "confirm_resize.yml")
    assert refused["rc"] != 0 and "must then be more than 0" in failures(refused)
    resized = playbook(lab, extra_inventory, "resize.yml", "-e", "server=" + name,
                       "-e", "flavor=m1.small")
    assert resized["rc"] == 0, failures(resized)
    fresh = playbook(lab, extra_inventory, "confirm_resize.yml",
                     "-e", "virtops_resize_confirm_window=3600")
    assert fresh["rc"] == 0 and changed(fresh) == [], failures(fresh) + str(changed(fresh))
    assert record(lab, DST, sid)["vm_state"] == "resized"
    assert exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    time.sleep(2)
    due = playbook(lab, extra_inventory, "confirm_resize.yml", "-e", "virtops_resize_confirm_window=1")
    assert due["rc"] == 0, failures(due)
    confirmed = record(lab, DST, sid)
    assert confirmed["vm_state"] == "stopped" and confirmed["flavor"]["name"] == "m1.small"
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
    assert domain_state(lab, SRC, name) == "undefined"
    again = playbook(lab, extra_inventory, "confirm_resize.yml", "-e", "virtops_resize_confirm_window=1")
    assert again["rc"] == 0 and changed(again) == [], failures(again) + str(changed(again))


def test_revert_after_confirm_is_refused_clearly_and_changes_nothing(lab, servers, extra_inventory):
    server = servers.boot(SRC, TINY)
    sid, name = server["uuid"], server["name"]
    mig = migrate_to(lab, sid, SRC, DST, wait=False)["finish"]["migration"]
    confirmed = playbook(lab, extra_inventory, "confirm_resize.yml", "-e", "server=" + name)
    assert confirmed["rc"] == 0, failures(confirmed)
    before = record(lab, DST, sid)

    refused = playbook(lab, extra_inventory, "revert_resize.yml", "-e", "server=" + name)
    assert refused["rc"] != 0 and changed(refused) == [], changed(refused)
    assert ("%s: its move to %s (migration %s) was confirmed; nothing to revert"
            % (name, DST, mig["id"])) in failures(refused), failures(refused)
    assert "internal error" not in json.dumps(refused).lower()
    assert record(lab, DST, sid) == before and before["vm_state"] == "active"
    assert domain_state(lab, DST, name) == "running"
    assert domain_state(lab, SRC, name) == "undefined"
    assert not exists(lab, SRC, "%s/%s_resize" % (INSTANCES, sid))
