# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cold-migration benchmark on a two-host lab with the real test guest.

Run as root from the repository root: ``python bench/bench_migrate.py [--json FILE]``. It
brings up its own lab (prefix ``vb``, 10.77.7.0/24; ``--lab-dir`` to reuse one), boots the
test guest on compute1 with a 2 GiB root disk in which ~400 MiB of random data are
allocated (qcow2 overlay, the default backend), migrates it to compute2 and back with
vm_migrate's phases (prep, migrate, finish, confirm), two samples on a shared machine, and
reports:

- bytes on the wire (rsync's "Total bytes sent") against the bytes the copied files
  allocate on the source; goal <= 1.1x;
- the copy time (the ssh connection plus the rsync runs of the migrate phase) against a
  hand-run ``rsync --sparse`` of the same files to the same host, run before and after each
  migration in the same run (medians compared); goal <= 1.2x;
- the downtime: from the start of the power off on the source to RUNNING on the destination,
  and to the guest's READY line on its console.

The lab and everything in it is removed at the end (unless --lab-dir names a lab to keep).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COLLECTIONS = ROOT / ".cache" / "collections"
os.environ["PYTHONPATH"] = str(COLLECTIONS)   # the lab hosts inherit it

from tests.fixtures.guest import ensure_guest  # noqa: E402
from tests.lab.handle import LabHandle  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
MODULE = ROOT / "plugins" / "modules" / "vm_migrate.py"
SERVER_SCRIPT = ROOT / "tests" / "integration" / "migrate_server.py"
INSTANCES = "/var/lib/virtops/instances"
SRC, DST = "compute1", "compute2"
READY = "VIRTOPS-GUEST-READY"
ALLOCATED_MB = 400
FLAVOR = {"name": "b1.bench", "vcpus": 1, "ram_mb": 128, "root_gb": 2, "ephemeral_gb": 0,
          "swap_mb": 0, "extra_specs": {}}
GOAL_WIRE = 1.1
GOAL_TIME = 1.2
TIMED = ("import subprocess, sys, time; t = time.monotonic(); "
         "subprocess.run(sys.argv[1:], check=True); print(time.monotonic() - t)")


def phase(lab, host: str, name: str, **args) -> dict:
    module_args = {"phase": name, "host": host, "address": lab.hosts[host].address,
                   "instances_path": INSTANCES, "virt_type": "qemu", "shutdown_timeout": 30,
                   "retry_interval": 5, "console_timeout": 180}
    module_args.update(args)
    fd, argfile = tempfile.mkstemp(prefix="bench-migrate-", suffix=".json", dir="/tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
    try:
        proc = lab.run(host, [PYTHON, str(MODULE), argfile], check=False, timeout=900)
    finally:
        os.unlink(argfile)
    result = json.loads(proc.stdout)
    if result.get("failed"):
        raise SystemExit("%s on %s failed: %s" % (name, host, result.get("msg")))
    return result


def hand_rsync(lab, source: str, dest: str, files: list, dest_dir: str) -> float:
    """The baseline: plain ``rsync --sparse`` of the same files, as an operator would."""
    lab.run(dest, ["rm", "-rf", dest_dir])
    lab.run(dest, ["mkdir", "-p", dest_dir])
    # Timed inside the source host, like the module times its own copies (no `lab exec` cost).
    proc = lab.run(source, [PYTHON, "-c", TIMED, "rsync", "--sparse"] + files
                   + ["%s:%s/" % (lab.hosts[dest].address, dest_dir)], timeout=900)
    lab.run(dest, ["rm", "-rf", dest_dir])
    return float(proc.stdout.strip().splitlines()[-1])


def move(lab, server_uuid: str, source: str, dest: str) -> dict:
    """One measured migration with hand-run rsyncs of the same files before and after it."""
    inst = "%s/%s" % (INSTANCES, server_uuid)
    names = ("disk", "disk.config", "disk.info", "libvirt.xml")
    scratch = "/var/tmp/virtops-bench-%s" % server_uuid[:8]
    before = hand_rsync(lab, source, dest, ["%s/%s" % (inst, n) for n in names], scratch)
    info = phase(lab, source, "info", uuid=server_uuid)
    prep = phase(lab, dest, "prep", instance=info["instance"],
                 source_address=lab.hosts[source].address)
    moved = phase(lab, source, "migrate", migration=prep["migration"])
    finished = phase(lab, dest, "finish", migration=moved["migration"], wait_for_console=READY)
    after = hand_rsync(lab, source, dest, ["%s_resize/%s" % (inst, n) for n in names], scratch)
    disk = json.loads(lab.run(source, ["qemu-img", "info", "--force-share", "--output=json",
                                       "%s_resize/disk" % inst]).stdout)
    mig = finished["migration"]
    phase(lab, source, "confirm", migration=mig)
    phase(lab, dest, "confirm", migration=mig)
    console = finished["domain"]["timings"].get("console", 0.0)
    return {
        "route": "%s -> %s" % (source, dest),
        "root_disk_virtual_bytes": disk["virtual-size"],
        "root_disk_file_bytes": disk["actual-size"],
        "allocated_bytes": mig["allocated_bytes"],
        "bytes_sent": mig["bytes_sent"],
        "copy_seconds": round(mig["transfer"]["seconds"] + moved["timings"].get("ssh_connect", 0.0), 3),
        "hand_rsync_seconds": [round(before, 3), round(after, 3)],
        "copies": mig["transfer"]["copies"],
        "downtime_to_ready_seconds": mig["downtime_seconds"],
        "downtime_to_running_seconds": round(mig["downtime_seconds"] - console, 3),
        "power_off": mig["power_off"],
        "phase_seconds": mig["timings"],
        "migrate_steps": moved["timings"],
        "finish_steps": finished["timings"],
    }


def measure(lab) -> dict:
    server_uuid = str(uuid.uuid4())
    name = "bench-%s" % server_uuid[:8]
    guest = ensure_guest()
    spec = {"instances_path": INSTANCES, "uuid": server_uuid, "name": name, "host": SRC,
            "flavor": FLAVOR, "state": "running", "network_info": [],
            "image": {"id": "bench-guest", "name": "virtops-guest", "url": str(guest.disk_qcow2),
                      "disk_format": "qcow2"},
            "extra_data": {"offset_mb": 100, "size_mb": ALLOCATED_MB}}
    try:
        proc = lab.run(SRC, [PYTHON, str(SERVER_SCRIPT), "boot", json.dumps(spec)], timeout=600)
        json.loads(proc.stdout.strip().splitlines()[-1])
        runs = [move(lab, server_uuid, SRC, DST), move(lab, server_uuid, DST, SRC)]
    finally:
        for host in (SRC, DST):
            lab.virsh(host, "destroy", name, check=False)
            lab.virsh(host, "undefine", name, check=False)
            lab.run(host, ["rm", "-rf", "%s/%s" % (INSTANCES, server_uuid),
                           "%s/%s_resize" % (INSTANCES, server_uuid)], check=False)
    copy = statistics.median(r["copy_seconds"] for r in runs)
    baseline = statistics.median(s for r in runs for s in r["hand_rsync_seconds"])
    return {
        "runs": runs,
        "wire_ratio": round(max(r["bytes_sent"] / r["allocated_bytes"] for r in runs), 4),
        "copy_seconds_median": round(copy, 3),
        "hand_rsync_seconds_median": round(baseline, 3),
        "time_ratio": round(copy / baseline, 3),
        "downtime_to_running_seconds": [r["downtime_to_running_seconds"] for r in runs],
        "downtime_to_ready_seconds": [r["downtime_to_ready_seconds"] for r in runs],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--lab-dir", help="use (and keep) the lab in this state directory")
    parser.add_argument("--prefix", default="vb")
    parser.add_argument("--subnet", default="10.77.7")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_migrate needs root (it runs a lab)", file=sys.stderr)
        return 2
    own = args.lab_dir is None
    state_dir = Path(args.lab_dir or tempfile.mkdtemp(prefix="bench-migrate-lab-", dir="/var/tmp"))
    lab = LabHandle(state_dir, prefix=args.prefix, subnet=args.subnet)
    try:
        if own or not (state_dir / "lab.json").exists():
            lab.down()
            lab.up(2)
        figures = measure(lab)
    finally:
        if own:
            lab.down()
    first = figures["runs"][0]
    print("root disk: %d MiB virtual, %d MiB allocated in its file"
          % (first["root_disk_virtual_bytes"] >> 20, first["root_disk_file_bytes"] >> 20))
    for run in figures["runs"]:
        print("%s: %d bytes sent for %d allocated; copy %.2f s, hand-run rsync --sparse %s s; "
              "downtime %.2f s to RUNNING, %.2f s to READY (power off: %s, %.1f s)"
              % (run["route"], run["bytes_sent"], run["allocated_bytes"], run["copy_seconds"],
                 run["hand_rsync_seconds"], run["downtime_to_running_seconds"],
                 run["downtime_to_ready_seconds"], run["power_off"]["method"],
                 run["power_off"]["seconds"]))
    print("bytes on the wire / allocated: %.3fx (goal <= %.1fx) %s"
          % (figures["wire_ratio"], GOAL_WIRE, "OK" if figures["wire_ratio"] <= GOAL_WIRE else "MISSED"))
    print("copy time / hand-run rsync --sparse (medians %.2f s / %.2f s): %.2fx (goal <= %.1fx) %s"
          % (figures["copy_seconds_median"], figures["hand_rsync_seconds_median"],
             figures["time_ratio"], GOAL_TIME, "OK" if figures["time_ratio"] <= GOAL_TIME else "MISSED"))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
