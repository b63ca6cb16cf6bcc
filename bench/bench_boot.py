# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot benchmark: playbooks/boot.yml against the simplest community.libvirt boot, same run.

Run as root from the repository root: ``python bench/bench_boot.py [--rounds N] [--json FILE]``.
This machine is the compute host ``localhost`` of inventory.example (as in ``make demo``); the
run prepares it first (playbooks/prepare_hosts.yml, not timed). Each round, in a new seeded
order of the two sides, boots one test guest with each:

- **ours**: ``boot.yml -e @tests/fixtures/demo_server.yml`` with a server of its own (flavor
  m1.nano, the test guest, one NIC on the demo network with anti-spoofing, a config drive):
  scheduling, claims, image checks, config drive, VIF verification, records; the image
  catalog's checksum is given as text (``image_catalog``), not computed by the fixture's
  ``sha256sum`` lookup at each templating;
- **baseline**: ``bench/baseline/boot.yml``: a qcow2 overlay, a config-drive ISO made with
  genisoimage, ``community.libvirt.virt`` define + start; no facts, no NIC, no checks.

and measures, from the start of ansible-playbook: the moment libvirt reports the domain
running (watched through a libvirt connection of the bench's own, every 20 ms), the end of the
playbook (ours reports and records after the start; the baseline ends with it), the guest's
``VIRTOPS-META`` console line (it read its config drive), a second run of the same playbook
(nothing to do), and the delete (``playbooks/delete.yml`` / ``bench/baseline/delete.yml``).
Ours runs twice per round: as it comes (every compute host gathered first), and with a fleet
store (``virtops_fleet_store``, docs/scheduler.md) to which this host reported before the rounds
(playbooks/report.yml, not timed; AWX would run it on a schedule), so nothing is gathered before
placement. Medians are compared as ratios ours / baseline (goal of issue 14: <= 1.0 to RUNNING). The per-task breakdown of ours (the
slowest tasks of the median round, from the json_results callback) says where the time goes.

Then (unless ``--no-fleet``) a multiple create: one boot.yml of 8 servers (``max_count: 8``)
on a 4-host lab (prefix ``vbb``, 10.77.9.0/24, taken down at the end), to the end of the
playbook, against 8 baseline boots on this machine one after another (goal: faster).

community.libvirt is not a dependency of the collection: scripts/bench_deps.sh takes it out of
PyPI's ``ansible`` package into .cache/bench/collections, for the baseline only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".cache" / "collections"
sys.path[:0] = [str(ROOT), str(COLLECTIONS)]      # as `make bench` has them
BENCH_COLLECTIONS = ROOT / ".cache" / "bench" / "collections"
VENV_BIN = ROOT / ".venv" / "bin"
INVENTORY = ROOT / "inventory.example"
DEMO_VARS = "@%s" % (ROOT / "tests" / "fixtures" / "demo_server.yml")
BASELINE = ROOT / "bench" / "baseline"
BASELINE_DIR = Path("/var/lib/virtops-bench")
INSTANCES = Path("/var/lib/virtops/instances")
MARKER = b"VIRTOPS-META uuid="
MARKER_TIMEOUT = 180.0

from tests.fixtures.guest import ensure_guest  # noqa: E402


class RunningWatch:
    """Seconds from ``started`` until libvirt reports domain ``name`` running (None if never
    while watched). Its own connection, so neither side's playbook is touched."""

    def __init__(self, name: str, interval: float = 0.02):
        import libvirt   # the system binding (python3-libvirt), seen by .venv
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self.conn = libvirt.openReadOnly("qemu:///system")
        self.name, self.interval = name, interval
        self.started = time.monotonic()
        self.running_at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                if self.conn.lookupByName(self.name).isActive():
                    self.running_at = time.monotonic()
                    return
            except Exception:  # pylint: disable=broad-except
                pass           # not defined yet
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        if self.running_at is None:          # started after the last look
            try:
                if self.conn.lookupByName(self.name).isActive():
                    self.running_at = time.monotonic()
            except Exception:  # pylint: disable=broad-except
                pass
        self.conn.close()
        return None if self.running_at is None else self.running_at - self.started


def ansible_playbook(playbook: Path, *extra: str, json_out: bool = False,
                     watch: str = "") -> dict:
    """Run a playbook; its wall time, with ``watch`` the seconds until that domain ran, and
    with ``json_out`` the json_results document."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH="%s:%s" % (COLLECTIONS, BENCH_COLLECTIONS),
               ANSIBLE_NOCOLOR="1")
    if json_out:
        env.update(ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "tests" / "integration" / "callback_plugins"),
                   ANSIBLE_STDOUT_CALLBACK="json_results")
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), str(playbook)] + list(extra)
    watcher = RunningWatch(watch) if watch else None
    started = watcher.started if watcher else time.monotonic()
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.monotonic() - started
    running = watcher.stop() if watcher else None
    if proc.returncode != 0:
        raise SystemExit("bench: %s failed (rc=%d):\n%s\n%s" % (
            " ".join(argv[3:]), proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    document = json.loads(proc.stdout) if json_out else None
    return {"seconds": seconds, "started": started, "document": document, "running": running}


def wait_for_marker(log: Path, started: float) -> float:
    """Seconds from ``started`` until the console log holds the marker."""
    deadline = started + MARKER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if MARKER in log.read_bytes():
                return time.monotonic() - started
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise SystemExit("bench: no %r in %s within %.0f s" % (MARKER, log, MARKER_TIMEOUT))


def domain_uuid(name: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", "domuuid", name], check=True,
                          capture_output=True, text=True).stdout.strip()


def task_breakdown(document: dict) -> list:
    """(seconds, play: task) of every task of a json_results document, slowest first."""
    rows = []
    for play in document["plays"]:
        for task in play["tasks"]:
            if task.get("duration_s") is not None:
                name = "%s: %s" % (play["play"]["name"], task["task"]["name"])
                rows.append((task["duration_s"], name))
    return sorted(rows, reverse=True)


def image_catalog(image: Path) -> dict:
    """The demo fixture's image catalog with the checksum as text, as a real catalog holds it
    (Glance stores an image's checksum; nothing computes it again per request). The fixture
    computes it with a ``pipe`` lookup of ``sha256sum``, which Ansible runs again every time the
    catalog is templated (twice per boot: the argument check and the request check, 0.1-0.3 s
    before the domain runs) and the baseline, which verifies nothing, never pays."""
    images = yaml.safe_load((ROOT / "tests" / "fixtures" / "demo_server.yml").read_text())["images"]
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    images["guest"]["checksum"] = "sha256:%s" % digest
    images["guest"]["url"] = "file://%s" % image
    return images


class Ours:
    label = "ours (boot.yml)"
    images: dict = {}            # image_catalog(), set once per bench run by main()

    def __init__(self, name: str):
        self.name = name
        server = {"name": name, "flavor": "m1.nano", "image": "guest",
                  "networks": [{"network": "demo"}], "key_name": "ops", "config_drive": True}
        wanted = {"server": server, "server_boot_wait_for_console": "", "images": self.images}
        self.extra = ["-e", DEMO_VARS, "-e", json.dumps(wanted)]

    def boot(self) -> dict:
        run = ansible_playbook(ROOT / "playbooks" / "boot.yml", *self.extra, json_out=True,
                               watch=self.name)
        log = INSTANCES / domain_uuid(self.name) / "console.log"
        run["marker"] = wait_for_marker(log, run["started"])
        return run

    def again(self) -> float:
        return ansible_playbook(ROOT / "playbooks" / "boot.yml", *self.extra)["seconds"]

    def delete(self) -> float:
        return ansible_playbook(ROOT / "playbooks" / "delete.yml", *self.extra)["seconds"]


class OursWithStore(Ours):
    """boot.yml with a fleet store (docs/scheduler.md) whose report of this host is fresh, as
    when AWX runs playbooks/report.yml on a schedule: nothing is gathered before placement."""
    label = "ours (boot.yml, fleet store)"

    def __init__(self, name: str, store: str):
        super().__init__(name)
        self.extra += ["-e", json.dumps({"virtops_fleet_store": store, "virtops_fleet_store_max_age": 3600})]


class Baseline:
    label = "baseline (community.libvirt)"

    def __init__(self, name: str, image: Path):
        self.name = name
        self.dir = BASELINE_DIR / name
        self.extra = ["-e", json.dumps({"bench_name": name, "bench_uuid": str(uuid.uuid4()),
                                        "bench_dir": str(self.dir), "bench_image": str(image)})]

    def boot(self) -> dict:
        run = ansible_playbook(BASELINE / "boot.yml", *self.extra, watch=self.name)
        run["marker"] = wait_for_marker(self.dir / "console.log", run["started"])
        return run

    def again(self) -> float:
        return ansible_playbook(BASELINE / "boot.yml", *self.extra)["seconds"]

    def delete(self) -> float:
        return ansible_playbook(BASELINE / "delete.yml", *self.extra)["seconds"]


def measure(side) -> dict:
    boot = side.boot()
    figures = {"running": boot["running"], "playbook": boot["seconds"], "marker": boot["marker"],
               "again": side.again(), "delete": side.delete()}
    if boot["document"] is not None:
        figures["breakdown"] = task_breakdown(boot["document"])
    return figures


def fleet_multiple_create(image: Path, tag: str) -> dict:
    """8 servers in one boot.yml on a 4-host lab, against 8 sequential baseline boots."""
    from tests.integration.boot_fleet import Fleet
    from tests.lab.handle import LabHandle
    workdir = Path(tempfile.mkdtemp(prefix="bench-boot-", dir="/var/tmp"))
    lab = LabHandle(workdir / "lab", prefix="vbb", subnet="10.77.9")
    lab.down()
    try:
        lab.up(4)
        fleet = Fleet(lab, workdir)
        server = {"name": "bm-%s" % tag, "flavor": "m1.nano", "image": "guest",
                  "networks": [{"network": "private"}], "max_count": 8, "min_count": 8}
        started = time.monotonic()
        run = fleet.boot(server)
        ours = time.monotonic() - started
        if run.rc != 0:
            raise SystemExit("bench: the multiple create failed:\n%s" % run.failures())
        hosts = sorted({s["host"] for s in run.boot["servers"]})
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    baseline = 0.0
    for number in range(1, 9):
        side = Baseline("bench-seq-%s-%d" % (tag, number), image)
        baseline += side.boot()["seconds"]
        side.delete()
    return {"ours": round(ours, 2), "baseline_sequential": round(baseline, 2),
            "ratio": round(ours / baseline, 2), "hosts_used": hosts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-fleet", action="store_true",
                        help="leave out the 8-server multiple create on a 4-host lab")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it prepares this machine and starts domains)")
    if not (BENCH_COLLECTIONS / "ansible_collections" / "community" / "libvirt").is_dir():
        subprocess.run(["bash", str(ROOT / "scripts" / "bench_deps.sh")], check=True)
    guest = ensure_guest()
    image = Path(guest.disk_qcow2)
    Ours.images = image_catalog(image)
    print("bench: preparing this machine (playbooks/prepare_hosts.yml, not timed)")
    ansible_playbook(ROOT / "playbooks" / "prepare_hosts.yml", "-e", DEMO_VARS)
    BASELINE_DIR.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:6]
    store_dir = Path(tempfile.mkdtemp(prefix="bench-store-", dir="/var/tmp"))
    store = "sqlite:///%s" % (store_dir / "fleet.db")
    print("bench: this host reports to a fresh fleet store (playbooks/report.yml, not timed)")
    ansible_playbook(ROOT / "playbooks" / "report.yml", "-e", DEMO_VARS, "-e",
                     json.dumps({"virtops_fleet_store": store, "virtops_fleet_store_max_age": 3600}))
    results = {"ours": [], "ours_store": [], "baseline": []}
    try:
        run_rounds(args, rng, tag, image, store, results)
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)
    summarise(args, results, image, tag)
    return 0


def run_rounds(args, rng, tag: str, image: Path, store: str, results: dict) -> None:
    for number in range(1, args.rounds + 1):
        sides = [("ours", Ours("bench-ours-%s-%d" % (tag, number))),
                 ("ours_store", OursWithStore("bench-store-%s-%d" % (tag, number), store)),
                 ("baseline", Baseline("bench-base-%s-%d" % (tag, number), image))]
        rng.shuffle(sides)
        for key, side in sides:
            figures = measure(side)
            results[key].append(figures)
            print("bench: round %d %-30s RUNNING %5.2f s  playbook %5.2f s  marker %5.2f s  "
                  "again %5.2f s  delete %5.2f s"
                  % (number, side.label, figures["running"], figures["playbook"],
                     figures["marker"], figures["again"], figures["delete"]))


def summarise(args, results: dict, image: Path, tag: str) -> None:
    summary = {}
    print("\nbench: medians of %d rounds (seed %d)" % (args.rounds, args.seed))
    print("  %-10s %8s %10s %8s %12s %8s" % ("", "ours", "baseline", "ratio", "with store", "ratio"))
    for what in ("running", "playbook", "marker", "again", "delete"):
        ours = statistics.median(r[what] for r in results["ours"])
        stored = statistics.median(r[what] for r in results["ours_store"])
        base = statistics.median(r[what] for r in results["baseline"])
        summary[what] = {"ours": round(ours, 2), "baseline": round(base, 2),
                         "ratio": round(ours / base, 2), "ours_store": round(stored, 2),
                         "ratio_store": round(stored / base, 2)}
        print("  %-10s %7.2fs %9.2fs %7.2fx %11.2fs %7.2fx"
              % (what, ours, base, ours / base, stored, stored / base))
    median_round = sorted(results["ours"], key=lambda r: r["running"])[len(results["ours"]) // 2]
    print("\nbench: ours, slowest tasks of the median round (seconds)")
    for seconds, name in median_round["breakdown"][:12]:
        print("  %6.2f  %s" % (seconds, name))
    if not args.no_fleet:
        print("\nbench: multiple create of 8 servers on a 4-host lab (bringing it up)")
        summary["multiple_create"] = fleet_multiple_create(image, tag)
        figures = summary["multiple_create"]
        print("  one boot.yml, 8 servers on %d hosts: %.2f s; 8 baseline boots one after "
              "another: %.2f s; ratio %.2fx" % (len(figures["hosts_used"]), figures["ours"],
                                                figures["baseline_sequential"], figures["ratio"]))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rounds": results,
                                         "seed": args.seed}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
