# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_image on lab hosts, run by ansible-playbook over ssh, images served over HTTP.

An HTTP server (Python's http.server) started here on the lab bridge address serves the test
guest's disk and the hostile-image corpus. On the lab hosts (each with its own libvirtd and
private /var/lib/virtops):

- cold fetch in check mode writes nothing; the real run fetches, converts and grows the root
  disk to root_gb (``qemu-img info`` inside the host); a second run and check mode again
  report no change; another instance reuses the base;
- 4 boots of one image as Ansible async jobs, over a throttled download: one fetch, the
  others waited for the lock and reused it;
- every hostile or broken image of the corpus is refused with its reason and leaves nothing
  in ``_base``;
- the config drive is read by cloud-init's ConfigDrive reader on the host, and the test guest
  booted from the overlay prints the instance uuid it read from it; ``state=absent`` refuses
  while the domain runs and removes the disks (never the base) afterwards;
- playbooks/image_cache.yml removes only the old unused base.

Everything lives under a private instances path on each host, removed at the end, as are the
domain and the HTTP server (stopped by pid).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import qemu_access
from tests.fixtures.guest import ensure_guest
from tests.fixtures.hostile_images import build_corpus

etree = pytest.importorskip("lxml.etree")

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
INSTANCES = "/var/lib/virtops/it-vm-image"
HOST = "compute1"
OTHER = "compute2"
GIB = 1024 ** 3
BOOT_TIMEOUT = 120.0
THROTTLE_BYTES_PER_S = 3 * 1024 * 1024

# http.server, plus a /slow/ prefix that serves the same files at THROTTLE_BYTES_PER_S so
# that concurrent fetches really overlap.
SERVER = r"""
import functools, http.server, sys, time
RATE = int(sys.argv[4])
class Handler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path):
        self.slow = path.startswith("/slow/")
        return super().translate_path(path[len("/slow"):] if self.slow else path)
    def copyfile(self, source, outputfile):
        if not self.slow:
            return super().copyfile(source, outputfile)
        while True:
            chunk = source.read(RATE // 10)
            if not chunk:
                return
            outputfile.write(chunk)
            time.sleep(0.1)
handler = functools.partial(Handler, directory=sys.argv[3])
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
"""


# --------------------------------------------------------------------------- fixtures

class Served:
    def __init__(self, root: Path, base_url: str, guest_checksum: str, corpus: dict):
        self.root = root
        self.base_url = base_url
        self.guest_checksum = guest_checksum
        self.corpus = corpus

    def url(self, name: str, slow: bool = False) -> str:
        return "%s/%s%s" % (self.base_url, "slow/" if slow else "", name)

    def guest_image(self, image_id: str, slow: bool = False, **extra) -> dict:
        image = {"url": self.url("guest.qcow2", slow), "disk_format": "qcow2",
                 "checksum": self.guest_checksum, "id": image_id}
        image.update(extra)
        return image


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _wait_listening(address: str, port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError("the HTTP server exited with %s" % server.returncode)
        try:
            with socket.create_connection((address, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the HTTP server is not listening on %s:%d" % (address, port))


@pytest.fixture(scope="module")
def served(lab):
    root = Path(tempfile.mkdtemp(prefix="vm-image-it-", dir="/var/tmp"))
    root.chmod(0o755)
    server = None
    try:
        guest = ensure_guest()
        shutil.copyfile(guest.disk_qcow2, root / "guest.qcow2")
        checksum = "sha256:" + subprocess.run(
            ["sha256sum", str(root / "guest.qcow2")], capture_output=True, text=True,
            check=True).stdout.split()[0]
        corpus = build_corpus(root / "corpus")
        port = _free_port(lab.gateway)
        server = subprocess.Popen([sys.executable, "-c", SERVER, lab.gateway, str(port),
                                   str(root), str(THROTTLE_BYTES_PER_S)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_listening(lab.gateway, port, server)
        yield Served(root, "http://%s:%d" % (lab.gateway, port), checksum, corpus)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
        for host in (HOST, OTHER):
            lab.run(host, ["rm", "-rf", INSTANCES], check=False)


def cache_result(results: list) -> dict:
    """The result of the image_cache playbook's vm_image task (the playbook's role checks the
    fleet settings first, in a task of its own)."""
    (cache,) = [result for result in results if "cache" in result]
    return cache


def play(lab, tasks: list, host: str = HOST, extra_vars: dict = None,
         playbook: Path = None, check: bool = False) -> list:
    """Run tasks (or a playbook) on one lab host; return each task's result for that host."""
    workdir = Path(tempfile.mkdtemp(prefix="vm-image-play-"))
    try:
        if playbook is None:
            playbook = workdir / "play.json"
            playbook.write_text(json.dumps([{"name": "vm_image integration", "hosts": host,
                                             "gather_facts": False, "tasks": tasks}]))
        argv = [str(ANSIBLE_PLAYBOOK), "-i", str(lab.inventory), "--limit", host, str(playbook)]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        if check:
            argv += ["--check", "--diff"]
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).resolve().parent
                                                / "callback_plugins"),
                   ANSIBLE_STDOUT_CALLBACK="json_results", ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=str(ROOT),
                              timeout=300, check=False)
        try:
            out = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook gave no JSON (rc=%d):\n%s\n%s"
                                 % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        results = [task["hosts"][host] for task in out["plays"][0]["tasks"]
                   if host in task["hosts"]]
        assert proc.returncode == 0, json.dumps(results, indent=1)[-4000:]
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def vm_image(**args) -> dict:
    args.setdefault("instances_path", INSTANCES)
    args.setdefault("virt_type", "qemu")
    return {"virtops.compute.vm_image": args}


def flavor(root_gb: int = 1, **extra) -> dict:
    return dict({"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": root_gb}, **extra)


def instance(name: str) -> dict:
    return {"uuid": str(uuid.uuid4()), "name": name, "availability_zone": "nova"}


def listing(lab, host: str, path: str) -> list:
    out = lab.run(host, ["find", path, "-mindepth", "1"], check=False).stdout
    return sorted(line for line in out.splitlines() if line)


# --------------------------------------------------------------------------- tests

def test_cold_fetch_warm_reuse_check_mode_and_idempotency(lab, served):
    first, second = instance("img-a"), instance("img-b")
    args = dict(instance=first, image=served.guest_image("guest"), flavor=flavor(1))
    find = {"ansible.builtin.command": {"argv": ["find", INSTANCES]}, "failed_when": False,
            "changed_when": False}
    results = play(lab, [
        find,
        dict(vm_image(**args), check_mode=True, diff=True),
        find,
        vm_image(**args),
        vm_image(**args),
        dict(vm_image(**args), check_mode=True),
        vm_image(**{**args, "instance": second}),
    ])
    before_check, preview, after_check, cold, again, check_again, warm = results
    assert preview["changed"] is True and preview["base"]["action"] == "would fetch"
    assert preview["diff"]["before"]["disk"] is None
    assert preview["diff"]["after"]["disk"]["virtual_size"] == GIB
    assert after_check["stdout"] == before_check["stdout"], "check mode wrote something"

    assert cold["changed"] is True and cold["base"]["fetched"] is True
    assert cold["base"]["format"] == "raw" and cold["base"]["virtual_size"] == 25 * 1024 ** 2
    assert cold["timings"]["fetch"] > 0 and cold["timings"]["convert"] > 0
    root = cold["disks"][0]
    assert (root["name"], root["action"], root["virtual_size"]) == ("disk", "created", GIB)
    info = json.loads(lab.run(HOST, ["qemu-img", "info", "--force-share", "--output=json",
                                     root["path"]]).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == GIB
    assert info["backing-filename"] == cold["base"]["path"]
    assert info["backing-filename-format"] == "raw"

    assert again["changed"] is False and again["base"]["action"] == "reused"
    assert check_again["changed"] is False
    assert warm["changed"] is True and warm["base"]["fetched"] is False
    assert warm["base"]["path"] == cold["base"]["path"]
    assert cold["base"]["path"] not in listing(lab, OTHER, INSTANCES)   # per-host cache


def test_four_concurrent_boots_fetch_the_image_once(lab, served):
    uuids = [str(uuid.uuid4()) for _index in range(4)]
    image = served.guest_image("guest-concurrent", slow=True)   # ~5 s to download
    results = play(lab, [
        dict(vm_image(instance={"uuid": "{{ item }}", "name": "conc"}, image=image,
                      flavor=flavor(1)),
             loop=uuids, register="jobs", **{"async": 120, "poll": 0}),
        {"ansible.builtin.async_status": {"jid": "{{ item.ansible_job_id }}"},
         "loop": "{{ jobs.results }}", "register": "done", "until": "done.finished",
         "retries": 120, "delay": 1},
    ])
    runs = results[1]["results"]
    assert len(runs) == 4 and not any(r.get("failed") for r in runs), runs
    assert sorted(r["base"]["fetched"] for r in runs) == [False, False, False, True]
    assert len({r["base"]["path"] for r in runs}) == 1
    waited = [r["timings"]["lock_wait"] for r in runs if not r["base"]["fetched"]]
    assert max(waited) > 0.5, "no run waited for the fetch: %r" % waited
    base = runs[0]["base"]["path"]
    assert [p for p in listing(lab, HOST, INSTANCES + "/_base") if p.startswith(base)] == \
        [base, base + ".info"]


def test_every_hostile_image_is_refused_and_leaves_nothing(lab, served):
    instances = INSTANCES + "-hostile"
    hostile = {name: item for name, item in served.corpus.items() if not item.good}
    items = [{"name": name, "uuid": str(uuid.uuid4()),
              "image": {"url": served.url("corpus/" + item.path.name),
                        "disk_format": item.declared_format,
                        "checksum": item.declared_checksum}}
             for name, item in sorted(hostile.items())]
    try:
        results = play(lab, [dict(
            vm_image(instance={"uuid": "{{ item.uuid }}", "name": "hostile"},
                     image="{{ item.image }}", flavor=flavor(1), instances_path=instances),
            loop=items, ignore_errors=True, loop_control={"label": "{{ item.name }}"})])
        runs = results[0]["results"]
        assert len(runs) == len(hostile) >= 8
        for run in runs:
            name = run["item"]["name"]
            assert run["failed"] is True, name
            assert hostile[name].reason.lower() in run["msg"].lower(), (name, run["msg"])
        left = listing(lab, HOST, instances)
        assert [p for p in left if not p.startswith(instances + "/locks")] == \
            [instances + "/_base"], left
    finally:
        lab.run(HOST, ["rm", "-rf", instances], check=False)


CLOUD_INIT_READER = r"""
import json, sys
from cloudinit.sources.DataSourceConfigDrive import read_config_drive
res = read_config_drive(sys.argv[1])
print(json.dumps({"uuid": res["metadata"]["uuid"], "hostname": res["metadata"]["local-hostname"],
                  "userdata": res["userdata"].decode()}))
"""


def domain_xml(name: str, inst_uuid: str, instance_dir: str, disk_info: dict) -> str:
    """A minimal TCG domain: the root overlay, the config drive where disk_info puts it."""
    domain = etree.Element("domain", type="qemu")
    etree.SubElement(domain, "name").text = name
    etree.SubElement(domain, "uuid").text = inst_uuid
    etree.SubElement(domain, "memory", unit="MiB").text = "128"
    etree.SubElement(domain, "vcpu").text = "1"
    os_el = etree.SubElement(domain, "os")
    etree.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    features = etree.SubElement(domain, "features")
    etree.SubElement(features, "acpi")
    devices = etree.SubElement(domain, "devices")
    for file_name, fmt in (("disk", "qcow2"), ("disk.config", "raw")):
        mapping = disk_info["mapping"][file_name]
        disk = etree.SubElement(devices, "disk", type="file", device=mapping["type"])
        etree.SubElement(disk, "driver", name="qemu", type=fmt)
        etree.SubElement(disk, "source", file=os.path.join(instance_dir, file_name))
        etree.SubElement(disk, "target", dev=mapping["dev"], bus=mapping["bus"])
        if mapping.get("boot_index"):
            etree.SubElement(disk, "boot", order=mapping["boot_index"])
        if mapping["type"] == "cdrom":
            etree.SubElement(disk, "readonly")
    serial = etree.SubElement(devices, "serial", type="file")
    etree.SubElement(serial, "source", path=os.path.join(instance_dir, "console.log"))
    etree.SubElement(serial, "target", port="0")
    etree.SubElement(devices, "memballoon", model="none")
    return etree.tostring(domain, encoding="unicode")


def test_config_drive_is_read_by_cloud_init_and_by_the_booted_guest(lab, served):
    inst = dict(instance("cd-guest"), hostname="cd-guest")
    user_data = "#cloud-config\nhostname: cd-guest\n"
    password = "not-logged-" + secrets.token_hex(4)
    made = play(lab, [vm_image(instance=inst, image=served.guest_image("guest"),
                               flavor=flavor(1), config_drive=True, user_data=user_data,
                               admin_pass=password)])[0]
    assert password not in json.dumps(made)
    drive = made["config_drive_path"]
    assert made["config_drive"]["format"] == "iso9660"
    assert made["disk_info"]["mapping"]["disk.config"] == {"bus": "ide", "dev": "hda",
                                                           "type": "cdrom"}

    # cloud-init's own reader, on the lab host, over the extracted drive
    extracted = "/tmp/vm-image-cd-%s" % secrets.token_hex(4)
    try:
        lab.run(HOST, ["xorriso", "-osirrox", "on", "-indev", drive, "-extract", "/",
                       extracted])
        seen = json.loads(lab.run(HOST, ["/usr/bin/python3", "-c", CLOUD_INIT_READER,
                                         extracted]).stdout.strip().splitlines()[-1])
    finally:
        lab.run(HOST, ["rm", "-rf", extracted], check=False)
    assert seen == {"uuid": inst["uuid"], "hostname": "cd-guest", "userdata": user_data}

    # Nobody but root and libvirt's QEMU group can read the base, the disks or list the
    # directories (0640/0750; the config drive 0600); the boot below proves QEMU still can.
    access = qemu_access()
    wanted = {made["base"]["path"]: access.file_mode, made["disks"][0]["path"]: access.file_mode,
              made["disk_info_file"]: access.file_mode, drive: 0o600,
              os.path.dirname(made["base"]["path"]): access.dir_mode,
              made["instance_dir"]: access.dir_mode}
    modes = lab.run(HOST, ["stat", "-c", "%n %a %g"] + sorted(wanted)).stdout.split("\n")
    for line in filter(None, modes):
        path, mode, gid = line.rsplit(" ", 2)
        assert int(mode, 8) == wanted[path], line
        if access.gid != -1 and path != drive:
            assert int(gid) == access.gid, line

    # the guest boots from the overlay and prints what it read from the drive
    name = "vo-vmimage-%s" % secrets.token_hex(3)
    xml = Path("/tmp") / ("%s.xml" % name)   # /tmp is shared with the lab host
    xml.write_text(domain_xml(name, inst["uuid"], made["instance_dir"], made["disk_info"]))
    console = os.path.join(made["instance_dir"], "console.log")
    try:
        lab.virsh(HOST, "define", str(xml))
        lab.virsh(HOST, "start", name)
        marker = "VIRTOPS-META uuid=%s hostname=cd-guest" % inst["uuid"]
        started, text = time.monotonic(), ""
        while time.monotonic() - started < BOOT_TIMEOUT and marker not in text:
            time.sleep(1)
            text = lab.run(HOST, ["cat", console], check=False).stdout
        assert marker in text, text[-3000:]
        print("config drive read by the guest after %.1fs" % (time.monotonic() - started))

        refused = play(lab, [dict(vm_image(instance={"uuid": inst["uuid"]}, state="absent"),
                                  ignore_errors=True)])[0]
        assert refused["failed"] is True and "is running" in refused["msg"]
        assert lab.run(HOST, ["test", "-f", made["disks"][0]["path"]], check=False).returncode == 0
    finally:
        xml.unlink()
        lab.virsh(HOST, "destroy", name, check=False)
        lab.virsh(HOST, "undefine", name, check=False)

    gone = play(lab, [vm_image(instance={"uuid": inst["uuid"]}, state="absent")])[0]
    assert gone["changed"] is True
    assert sorted(os.path.basename(p) for p in gone["removed"]) == \
        ["disk", "disk.config", "disk.info"]
    assert lab.run(HOST, ["test", "-f", made["base"]["path"]], check=False).returncode == 0


def test_image_cache_playbook_removes_only_old_unused_bases(lab, served):
    used, old, young = instance("age-used"), instance("age-old"), instance("age-young")
    made = play(lab, [
        vm_image(instance=used, image=served.guest_image("age-used"), flavor=flavor(1)),
        vm_image(instance=old, image=served.guest_image("age-old"), flavor=flavor(1)),
        vm_image(instance=young, image=served.guest_image("age-young"), flavor=flavor(1)),
        vm_image(instance={"uuid": old["uuid"]}, state="absent"),
        vm_image(instance={"uuid": young["uuid"]}, state="absent"),
    ], host=OTHER)
    bases = {key: made[index]["base"]["path"]
             for index, key in enumerate(("used", "old", "young"))}
    for key in ("used", "old"):
        lab.run(OTHER, ["touch", "-d", "3 days ago", bases[key]])
    playbook = ROOT / "playbooks" / "image_cache.yml"
    extra = {"virtops_instances_path": INSTANCES}

    preview = cache_result(play(lab, [], host=OTHER, playbook=playbook, extra_vars=extra, check=True))
    assert preview["changed"] is True and preview["cache"]["removed"] == [bases["old"]]
    assert lab.run(OTHER, ["test", "-f", bases["old"]], check=False).returncode == 0

    result = cache_result(play(lab, [], host=OTHER, playbook=playbook, extra_vars=extra))
    assert result["cache"]["removed"] == [bases["old"]]
    assert result["cache"]["kept_in_use"] == [bases["used"]]
    assert result["cache"]["kept_young"] == [bases["young"]]
    left = listing(lab, OTHER, INSTANCES + "/_base")
    assert bases["old"] not in left and bases["old"] + ".info" not in left
    assert bases["used"] in left and bases["young"] in left
    again = cache_result(play(lab, [], host=OTHER, playbook=playbook, extra_vars=extra))
    assert again["changed"] is False
