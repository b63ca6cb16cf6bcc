# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet store benchmark (issue 15): placement at 1,000 and 10,000 hosts, boot time with a big
store, and controllers booting at once.

Run as root from the repository root: ``python bench/bench_fleet_store.py [--rounds N]
[--boot-rounds N] [--placements N] [--json FILE] [--seed S] [--quick] [--no-lab]``.
The lab parts take /run/virtops-it.lock themselves (waiting their turn) unless a parent
process holds it already (``flock /run/virtops-it.lock python bench/...``). It measures:

(a1) **placement cost**, no lab: a fresh store per engine and fleet size (SQLite in a temporary
     directory; PostgreSQL from tests/fixtures/postgres.py when it can run here) holding N
     simulated compute hosts reported with ``FleetStore.report`` (varied RAM, some disabled,
     some full, a few servers each). One placement = ``store.fleet(every name, m1.nano)`` +
     ``schedule`` of one instance + ``store.claim`` of the pick (claims pile up as pending, as
     they do between reports). Median ms per placement at 1k and 10k hosts, and 10k/1k (goal
     <= 10: linear or better). Baseline, same run: the path without a store, the scheduler
     alone over all N hosts' facts (the gathering that came with it is not counted).
(a2) **boot time**, a 2-host lab (prefix ``vfs``, 10.77.12.0/24): three SQLite stores holding
     the 2 lab hosts (reported by playbooks/report.yml, not timed), + 1,000 and + 10,000
     simulated hosts with less free RAM than the lab hosts (so they sort after them; they are
     not in the inventory, so never picked). Each of ``--boot-rounds`` rounds (5) boots one
     m1.nano test guest through each store, in a new seeded order: seconds from the start of
     ansible-playbook to the domain RUNNING on its lab host (``virsh domstate`` polled on both
     hosts, ~0.1 s) and to the end of the playbook, and the seconds of the store's own tasks.
     Deleted after (not timed). Medians, ratios 1k / 2-host and 10k / 2-host (goal <= 1.2).
(b)  **concurrency**, same lab: 3 ansible-playbook processes at once (3 controllers), 4 servers
     each (``max_count: 4``), in each of ``--rounds`` rounds (3), with the SQLite store and the
     PostgreSQL one: duplicate IPs (boot summaries) and MACs (instance records) across the 12
     servers (expect 0), and the store's own cost: the summed ``duration_s`` of the boot's
     fleet store tasks per server. Deleted after each round (3 deletes at once), then no lab
     host may hold an instance directory and the store no server or port.

The reports are kept fresh for the whole run (``virtops_fleet_store_max_age`` 1 day), as a
report.yml scheduled every few minutes keeps them, so no timed boot gathers a host.
``--quick``: 1 round each, 10 placements, no PostgreSQL. ``--no-lab``: (a1) only. The default
run takes about 11 minutes on 2 CPUs: (a1) 30 s, (a2) about 12 s a boot and its delete, (b)
about 70 s a round per engine (the boots, then the deletes, about 35 s each). Everything it
makes (lab, PostgreSQL, temporary directories, playbooks and guests still running) is removed
at the end, also after a failure, Ctrl-C or SIGTERM. Exit status 1 when a boot failed or a
duplicate or leftover was found.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".cache" / "collections"
sys.path[:0] = [str(ROOT), str(COLLECTIONS)]      # as `make bench` has them

# pylint: disable=wrong-import-position
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import schedule  # noqa: E402
from ansible_collections.virtops.compute.plugins.plugin_utils._store import db as store_db  # noqa: E402
from ansible_collections.virtops.compute.plugins.plugin_utils._store.fleet_store import FleetStore  # noqa: E402
from tests.integration.boot_fleet import REPO, Fleet, Run  # noqa: E402
from tests.integration.ansible_venv import VENV_BIN  # noqa: E402
from tests.unit.plugins.plugin_utils._scheduler.helpers import facts as host_facts  # noqa: E402

LAB_LOCK = Path("/run/virtops-it.lock")
LAB_PREFIX, LAB_SUBNET = "vfs", "10.77.12"
LAB_STATE = Path("/var/tmp/virtops-bench-fleet-store-lab")
SIZES = (1000, 10000)
SIZE_LABELS = {0: "2 hosts", 1000: "+1k", 10000: "+10k"}
FLAVOR = {"name": "m1.nano", "vcpus": 1, "ram_mb": 128, "root_gb": 1, "ephemeral_gb": 0, "swap_mb": 0}
NANO = {"flavor": "m1.nano", "image": "guest", "networks": [{"network": "private"}]}
FRESH = 86400                     # virtops_fleet_store_max_age: no report goes stale in a run
CONTROLLERS, PER_CONTROLLER = 3, 4
PLAYBOOK_TIMEOUT = 900
STORE_ACTIONS = ("virtops.compute.fleet_store", "fleet_store")


class BenchFailure(Exception):
    """Something the bench checks went wrong (a boot, a duplicate, a leftover)."""


# -- what the run makes, and taking it all down again -----------------------------------------
class Cleanup:
    """Undo steps, run last-in first-out, each whatever the others do."""

    def __init__(self):
        self._steps = []

    def push(self, label: str, func) -> None:
        self._steps.append((label, func))

    def run(self) -> None:
        while self._steps:
            label, func = self._steps.pop()
            try:
                func()
            except BaseException as exc:  # pylint: disable=broad-except
                print("bench: cleaning up %s failed: %s" % (label, exc), file=sys.stderr)


RUNNING_LOCK = threading.RLock()    # the signal handler takes it too, maybe in its holder
RUNNING = set()        # the ansible-playbook processes of this run that have not ended
STOPPING = threading.Event()     # interrupted: no playbook starts any more


def stop_playbooks(signum: int = signal.SIGTERM, wait: bool = True) -> None:
    """End the ansible-playbook processes this run started that still run (each with its
    workers: a session and process group of its own, whose id is the playbook's PID)."""
    with RUNNING_LOCK:
        procs = list(RUNNING)
    for proc in procs:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            continue
    for proc in procs if wait else ():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _interrupted(signum, _frame):
    """Ctrl-C, SIGTERM, SIGHUP: the playbooks end now (the threads waiting for them return),
    none starts any more, and the cleanup runs."""
    STOPPING.set()
    stop_playbooks(signal.SIGKILL, wait=False)
    raise KeyboardInterrupt("signal %d" % signum)


def _lock_held_by_ancestor(fd: int) -> bool:
    """True when a process above this one holds the flock on ``fd``'s file (``flock FILE
    python bench/...``)."""
    stat = os.fstat(fd)
    device = "%02x:%02x:%d" % (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    holders = set()
    with open("/proc/locks", encoding="ascii", errors="replace") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields and fields[5] == device:
                holders.add(int(fields[4]))
    pid = os.getppid()
    while pid > 1:
        if pid in holders:
            return True
        try:
            with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as stat_file:
                pid = int(stat_file.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def stray_guests(tag: str) -> list:
    """PIDs of the qemu processes of this run's servers (named ``fsa-<tag>-...`` and
    ``fsb-<tag>-...``) still running: a build interrupted on its way can start its domain
    while the lab goes down, and a qemu outlives the libvirtd that started it."""
    marks = [("guest=%s-%s-" % (kind, tag)).encode() for kind in ("fsa", "fsb")]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"qemu-system") and \
                any(arg.startswith(mark) for arg in argv for mark in marks):
            found.append(int(entry))
    return found


def stop_stray_guests(tag: str) -> None:
    pids = stray_guests(tag)
    for pid in pids:
        print("bench: stopping a guest of this run left running (qemu pid %d)" % pid, file=sys.stderr)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = [pid for pid in pids if os.path.exists("/proc/%d" % pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def take_lab_lock(cleanup: Cleanup) -> None:
    """Hold /run/virtops-it.lock for the lab parts, unless a parent holds it already."""
    fd = os.open(str(LAB_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if _lock_held_by_ancestor(fd):
            os.close(fd)
            return
        print("bench: waiting for %s (another session uses the lab)" % LAB_LOCK, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    cleanup.push("the lab lock", lambda: os.close(fd))


# -- simulated compute hosts ------------------------------------------------------------------
def simulated_hosts(count: int, seed: int, max_free_mb: float = 0.0) -> list:
    """``count`` host facts (as tests/unit/.../_scheduler/helpers.py makes them) with varied
    RAM and a few servers each; every 33rd host disabled, every 20th full. With
    ``max_free_mb`` every host has less free RAM than that."""
    rng = random.Random(seed)
    hosts = []
    for index in range(count):
        memory_mb = rng.choice((16384, 32768, 65536, 131072))
        top = min(memory_mb, max_free_mb - 1) if max_free_mb else memory_mb
        free_mb = 0 if index % 20 == 7 else rng.randint(256, int(top))
        name = "sim%05d" % index
        instances = [{"uuid": str(uuid.UUID(int=(seed << 64) + index * 16 + number + 1)),
                      "name": "%s-vm%d" % (name, number), "vm_state": "active",
                      "flavor": {"name": "m1.small", "vcpus": 1, "ram_mb": 2048, "root_gb": 20}}
                     for number in range(rng.randint(0, 4))]
        hosts.append(host_facts(name, enabled=index % 33 != 5, vcpus=memory_mb // 2048,
                                vcpus_used=len(instances), memory_mb=memory_mb,
                                memory_mb_used=memory_mb - free_mb, local_gb=1000,
                                local_gb_used=20 * len(instances),
                                free_disk_gb=1000 - 20 * len(instances), instances=instances))
    return hosts


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


# -- (a1) placement cost ----------------------------------------------------------------------
def placement_cost(url: str, count: int, placements: int, seed: int) -> dict:
    """Median seconds per placement through the store at ``count`` hosts, and of the scheduler
    alone over all the hosts' facts."""
    hosts = simulated_hosts(count, seed)
    names = [h["hostname"] for h in hosts]
    database = store_db.connect(url)
    try:
        store = FleetStore(database)
        started = time.perf_counter()
        store.report(hosts)
        report_s = time.perf_counter() - started
        parts = {"total": [], "fleet": [], "schedule": [], "claim": []}
        candidates = 0
        for number in range(placements):
            name = "bench-%05d" % number
            started = time.perf_counter()
            fleet = store.fleet(names, flavor=FLAVOR)
            read = time.perf_counter()
            (selection,) = schedule(fleet, {"flavor": FLAVOR, "instance_names": [name]})
            placed = time.perf_counter()
            store.claim([{"uuid": str(uuid.uuid4()), "name": name, "host": selection.host,
                          "flavor": FLAVOR, "vm_state": "building", "task_state": None,
                          "ips": [], "network_info": []}])
            done = time.perf_counter()
            for key, seconds in (("total", done - started), ("fleet", read - started),
                                 ("schedule", placed - read), ("claim", done - placed)):
                parts[key].append(seconds)
            candidates = len(fleet)
    finally:
        database.close()
    old = []
    for number in range(min(placements, 20)):
        started = time.perf_counter()
        schedule(hosts, {"flavor": FLAVOR, "instance_names": ["old-%d" % number]})
        old.append(time.perf_counter() - started)
    figures = {key + "_ms": round(median(values) * 1e3, 2) for key, values in parts.items()}
    figures.update(hosts=count, candidates=candidates, placements=placements,
                   report_s=round(report_s, 2), old_ms=round(median(old) * 1e3, 2))
    return figures


def start_postgres(cleanup: Cleanup):
    """A PostgreSQL server of this run's own, or None (with the reason said) where there is none."""
    from tests.fixtures.postgres import PostgresServer, PostgresStartError, PostgresUnavailable
    try:
        server = PostgresServer()
        cleanup.push("PostgreSQL", server.stop)
        server.start()
    except (PostgresUnavailable, PostgresStartError) as exc:
        print("bench: no PostgreSQL here, SQLite only: %s" % exc)
        return None
    return server


def run_placement(engines: dict, placements: int, seed: int) -> dict:
    """(a1) for each engine: {engine: {size: figures}}, with the ratios."""
    results = {}
    for engine, make_url in engines.items():
        sizes = {}
        for count in SIZES:
            sizes[count] = placement_cost(make_url(count), count, placements, seed)
            figures = sizes[count]
            print("bench: a1 %-10s %6d hosts: %7.2f ms/placement (fleet %.2f, schedule %.2f, "
                  "claim %.2f; %d candidates), without the store %7.2f ms; report %.1f s"
                  % (engine, count, figures["total_ms"], figures["fleet_ms"], figures["schedule_ms"],
                     figures["claim_ms"], figures["candidates"], figures["old_ms"], figures["report_s"]),
                  flush=True)
        small, big = sizes[SIZES[0]], sizes[SIZES[1]]
        results[engine] = {
            "sizes": {str(k): v for k, v in sizes.items()},
            "ratio_10k_1k": round(big["total_ms"] / small["total_ms"], 2),
            "old_ratio_10k_1k": round(big["old_ms"] / small["old_ms"], 2),
            "vs_old_1k": round(small["total_ms"] / small["old_ms"], 2),
            "vs_old_10k": round(big["total_ms"] / big["old_ms"], 2),
        }
    return results


def print_placement(results: dict) -> None:
    print("\nbench: (a1) placement, median ms per placement (store: fleet + schedule + claim; "
          "old: schedule over all hosts' facts)")
    print("  %-10s %9s %9s %8s   %9s %9s %8s   %9s %9s" % (
        "engine", "store 1k", "store 10k", "10k/1k", "old 1k", "old 10k", "10k/1k",
        "store/old", "store/old"))
    print("  %-10s %9s %9s %8s   %9s %9s %8s   %9s %9s" % ("", "", "", "goal<=10", "", "", "", "1k", "10k"))
    for engine, figures in results.items():
        small, big = figures["sizes"][str(SIZES[0])], figures["sizes"][str(SIZES[1])]
        print("  %-10s %9.2f %9.2f %7.2fx   %9.2f %9.2f %7.2fx   %8.2fx %8.2fx" % (
            engine, small["total_ms"], big["total_ms"], figures["ratio_10k_1k"], small["old_ms"],
            big["old_ms"], figures["old_ratio_10k_1k"], figures["vs_old_1k"], figures["vs_old_10k"]))


# -- the lab ----------------------------------------------------------------------------------
class BenchFleet(Fleet):
    """boot_fleet.Fleet whose playbooks this run can stop (a session of their own each, known
    by their PIDs), and which says when each started."""

    def playbook(self, name, extra=None, *args, timeout=PLAYBOOK_TIMEOUT):  # pylint: disable=keyword-arg-before-vararg
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory),
                "-i", str(self.inventory_dir), str(REPO / "playbooks" / name)]
        if extra is not None:
            argv += ["-e", json.dumps(extra)]
        with RUNNING_LOCK:
            if STOPPING.is_set():
                raise BenchFailure("interrupted")
            proc = subprocess.Popen(argv + list(args), stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                    stderr=subprocess.PIPE, text=True, env=self._env(), cwd=REPO,
                                    start_new_session=True)
            RUNNING.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(proc)
        try:
            doc = json.loads(stdout[stdout.index("{"):])
        except ValueError as exc:
            raise BenchFailure("%s printed no JSON (rc=%s):\n%s\n%s" % (
                name, proc.returncode, stdout[-3000:], stderr[-3000:])) from exc
        return Run(proc.returncode, doc["plays"], doc["stats"], stdout, stderr)


class RunningWatch:
    """Seconds from ``started`` until ``virsh domstate`` says ``name`` runs on one of the lab
    hosts, polled on each every ``interval`` seconds in a thread."""

    def __init__(self, lab, hosts, name: str, interval: float = 0.1):
        self.lab, self.hosts, self.name, self.interval = lab, list(hosts), name, interval
        self.running_at = None
        self.host = None
        self._stop = threading.Event()
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _look(self) -> bool:
        for host in self.hosts:
            proc = self.lab.virsh(host, "domstate", self.name, check=False)
            if proc.returncode == 0 and proc.stdout.strip() == "running":
                self.running_at, self.host = time.monotonic(), host
                return True
        return False

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self._look():
                return
            self._stop.wait(self.interval)

    def stop(self):
        """The seconds to RUNNING; None if the domain never ran while watched."""
        self._stop.set()
        self._thread.join()
        if self.running_at is None:
            self._look()           # it ran after the last look: the end of the playbook bounds it
        return None if self.running_at is None else self.running_at - self.started


def store_task_names() -> set:
    """The names of the server_boot tasks that use the fleet_store action."""
    import yaml   # ansible-core's dependency
    names = set()

    def walk(tasks):
        for task in tasks or []:
            if not isinstance(task, dict):
                continue
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
            if any(action in task for action in STORE_ACTIONS) and task.get("name"):
                names.add(task["name"])

    for path in sorted((ROOT / "roles" / "server_boot" / "tasks").glob("*.yml")):
        walk(yaml.safe_load(path.read_text()))
    return names


STORE_TASKS = store_task_names()


def store_seconds(run: Run) -> tuple:
    """(seconds, tasks, {task: seconds}) of the fleet store's tasks of a run that did not skip:
    those that use the fleet_store action, or whose name says "fleet store" (names are
    "role : task")."""
    seconds, count, tasks = 0.0, 0, {}
    for play in run.plays:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            if name not in STORE_TASKS and "fleet store" not in name.lower():
                continue
            if task["hosts"] and all(r.get("skipped") for r in task["hosts"].values()):
                continue
            seconds += task.get("duration_s") or 0.0
            count += 1
            tasks[name] = tasks.get(name, 0.0) + (task.get("duration_s") or 0.0)
    return seconds, count, tasks


def check_run(run: Run, what: str) -> None:
    if run.rc != 0:
        raise BenchFailure("%s failed:\n%s" % (what, run.failures()))


def leftovers(fleet: Fleet) -> dict:
    """host -> instance directories of every lab host that holds any."""
    found = {host: fleet.instance_dirs(host) for host in fleet.hosts}
    return {host: dirs for host, dirs in found.items() if dirs}


def store_extra(url: str) -> dict:
    return {"virtops_fleet_store": url, "virtops_fleet_store_max_age": FRESH}


def sqlite_url(path: Path) -> str:
    return "sqlite:///%s" % path


def report_lab(fleet: Fleet, url: str) -> None:
    check_run(fleet.playbook("report.yml", store_extra(url)), "report.yml")


def run_boot_scale(fleet: BenchFleet, workdir: Path, rounds: int, rng: random.Random, tag: str,
                   seed: int) -> dict:
    """(a2): one boot per store size per round, in a new order each round."""
    urls = {size: sqlite_url(workdir / ("boot-%d.db" % size)) for size in SIZE_LABELS}
    for url in urls.values():
        report_lab(fleet, url)
    database = store_db.connect(urls[0])
    try:
        lab_free = min(row[0] for row in database.execute(
            "SELECT free_ram_mb FROM hosts WHERE enabled = 1"))
    finally:
        database.close()
    if lab_free < 2048:
        raise BenchFailure("the lab hosts report only %.0f MB free RAM: too little to sort the "
                           "simulated hosts after them" % lab_free)
    for size, url in urls.items():
        if size:
            database = store_db.connect(url)
            try:
                FleetStore(database).report(simulated_hosts(size, seed, max_free_mb=lab_free))
            finally:
                database.close()
    print("bench: a2 stores ready (lab hosts' free RAM >= %.0f MB, simulated hosts below)" % lab_free,
          flush=True)
    results = {size: [] for size in SIZE_LABELS}
    for number in range(1, rounds + 1):
        order = list(SIZE_LABELS)
        rng.shuffle(order)
        for size in order:
            name = "fsa-%s-%d-%d" % (tag, number, size)
            watch = RunningWatch(fleet.lab, fleet.hosts, name)
            run = fleet.boot(dict(NANO, name=name), **store_extra(urls[size]))
            playbook_s = time.monotonic() - watch.started
            running_s = watch.stop()
            check_run(run, "boot.yml of %s (%s)" % (name, SIZE_LABELS[size]))
            (server,) = run.boot["servers"]
            if server["result"] != "booted" or running_s is None:
                raise BenchFailure("%s: result %s, running seen: %s" % (name, server["result"], running_s))
            spent, tasks, _breakdown = store_seconds(run)
            results[size].append({"running": round(running_s, 2), "playbook": round(playbook_s, 2),
                                  "store": round(spent, 2), "store_tasks": tasks,
                                  "host": server["host"]})
            started = time.monotonic()
            check_run(fleet.playbook("delete.yml", dict(store_extra(urls[size]), server={"name": name})),
                      "delete.yml of %s" % name)
            results[size][-1]["delete"] = round(time.monotonic() - started, 2)
            print("bench: a2 round %d %-8s RUNNING %6.2f s  playbook %6.2f s  store tasks %5.2f s "
                  "(%d) on %s; delete %.2f s" % (number, SIZE_LABELS[size], running_s, playbook_s, spent,
                                                 tasks, server["host"], results[size][-1]["delete"]),
                  flush=True)
    left = leftovers(fleet)
    if left:
        raise BenchFailure("the a2 deletes left instance directories: %s" % left)
    summary = {}
    for size, rows in results.items():
        summary[SIZE_LABELS[size]] = {what: round(median([r[what] for r in rows]), 2)
                                      for what in ("running", "playbook", "store")}
    base = summary[SIZE_LABELS[0]]
    for size in SIZES:
        label = SIZE_LABELS[size]
        for what in ("running", "playbook"):
            summary[label]["%s_ratio" % what] = round(summary[label][what] / base[what], 2)
    return {"summary": summary, "rounds": {SIZE_LABELS[k]: v for k, v in results.items()}}


def print_boot_scale(results: dict, rounds: int) -> None:
    print("\nbench: (a2) boot of one m1.nano through the store, medians of %d rounds" % rounds)
    print("  %-8s %10s %8s %10s %8s %12s" % ("store", "RUNNING s", "ratio", "playbook s", "ratio", "store tasks s"))
    for label, figures in results["summary"].items():
        print("  %-8s %10.2f %7.2fx %10.2f %7.2fx %12.2f" % (
            label, figures["running"], figures.get("running_ratio", 1.0), figures["playbook"],
            figures.get("playbook_ratio", 1.0), figures["store"]))
    print("  goal: ratios <= 1.2 (vs the store holding the 2 lab hosts only)")


def concurrency_round(fleet: BenchFleet, url: str, names: list) -> dict:
    """3 boots at once of 4 servers each, then 3 deletes at once; what they gave."""
    def boot(name):
        return fleet.boot(dict(NANO, name=name, max_count=PER_CONTROLLER), **store_extra(url))

    def delete(name):
        return fleet.playbook("delete.yml", dict(store_extra(url),
                                                 server={"name": name, "max_count": PER_CONTROLLER}))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        runs = list(pool.map(boot, names))
    wall = time.monotonic() - started
    deleted = []
    try:
        failed = [run.failures() for run in runs if run.rc != 0]
        servers = [s for run in runs if run.rc == 0 for s in run.boot["servers"]]
        booted = [s for s in servers if s["result"] == "booted"]
        ips = [ip for s in booted for ip in s["ips"]]
        macs = [fleet.record(s["host"], s["uuid"])["network_info"][0]["address"] for s in booted]
        spent = [store_seconds(run) for run in runs]
    finally:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            deleted = list(pool.map(delete, names))
        delete_wall = time.monotonic() - started
    breakdown = {}
    for _seconds, _count, tasks in spent:
        for name, seconds in tasks.items():
            breakdown[name] = round(breakdown.get(name, 0.0) + seconds / max(len(booted), 1), 3)
    figures = {
        "wall": round(wall, 2), "booted": len(booted), "failed": failed,
        "duplicate_ips": len(ips) - len(set(ips)), "duplicate_macs": len(macs) - len(set(macs)),
        "hosts": sorted({s["host"] for s in booted}),
        "store_per_playbook": [round(seconds, 2) for seconds, _count, _tasks in spent],
        "store_per_server": round(sum(seconds for seconds, _count, _tasks in spent) / max(len(booted), 1), 3),
        "store_tasks_per_server": breakdown, "delete_wall": round(delete_wall, 2),
        "delete_failed": [run.failures() for run in deleted if run.rc != 0],
    }
    figures["leftovers"] = leftovers(fleet)
    database = store_db.connect(url)
    try:
        store = FleetStore(database)
        figures["store_leftovers"] = {"servers": len(store.all_servers()),
                                      "ports": len(store.reserved(["private"])),
                                      "leases": len(store.live_leases())}
    finally:
        database.close()
    return figures


def run_concurrency(fleet: BenchFleet, urls: dict, rounds: int, tag: str) -> dict:
    """(b) per engine: rounds of 3 controllers x 4 servers."""
    results = {}
    for engine, url in urls.items():
        report_lab(fleet, url)
        rows = []
        for number in range(1, rounds + 1):
            names = ["fsb-%s-%s-%d-c%d" % (tag, engine[:2], number, k) for k in range(CONTROLLERS)]
            figures = concurrency_round(fleet, url, names)
            rows.append(figures)
            print("bench: b %-10s round %d: %d/%d booted in %6.2f s on %s, duplicate IPs %d, MACs %d, "
                  "store %.3f s per server (per playbook %s), leftovers %s %s" % (
                      engine, number, figures["booted"], CONTROLLERS * PER_CONTROLLER, figures["wall"],
                      ",".join(figures["hosts"]), figures["duplicate_ips"], figures["duplicate_macs"],
                      figures["store_per_server"], figures["store_per_playbook"],
                      figures["leftovers"] or "none", figures["store_leftovers"]), flush=True)
            for text in figures["failed"] + figures["delete_failed"]:
                print("bench:   a playbook failed: %s" % text[-3000:])
        results[engine] = {
            "rounds": rows,
            "duplicate_ips": sum(r["duplicate_ips"] for r in rows),
            "duplicate_macs": sum(r["duplicate_macs"] for r in rows),
            "booted": sum(r["booted"] for r in rows),
            "wanted": rounds * CONTROLLERS * PER_CONTROLLER,
            "store_per_server_s": round(median([r["store_per_server"] for r in rows]), 3),
            "store_per_playbook_s": round(median([s for r in rows for s in r["store_per_playbook"]]), 2),
            "wall_s": round(median([r["wall"] for r in rows]), 2),
            "store_tasks_per_server_s": {
                name: round(median([r["store_tasks_per_server"].get(name, 0.0) for r in rows]), 3)
                for name in sorted({n for r in rows for n in r["store_tasks_per_server"]})},
            "clean": all(not r["leftovers"] and not any(r["store_leftovers"].values())
                         and not r["failed"] and not r["delete_failed"] for r in rows),
        }
    return results


def print_concurrency(results: dict, rounds: int) -> None:
    print("\nbench: (b) %d controllers x %d servers at once, %d rounds" % (CONTROLLERS, PER_CONTROLLER, rounds))
    print("  %-10s %9s %8s %9s %14s %16s %9s %6s" % ("engine", "booted", "dup IPs", "dup MACs",
                                                     "store s/server", "store s/playbook", "wall s", "clean"))
    for engine, figures in results.items():
        print("  %-10s %4d/%-4d %8d %9d %14.3f %16.2f %9.2f %6s" % (
            engine, figures["booted"], figures["wanted"], figures["duplicate_ips"],
            figures["duplicate_macs"], figures["store_per_server_s"], figures["store_per_playbook_s"],
            figures["wall_s"], "yes" if figures["clean"] else "NO"))
    print("  goal: no duplicate; medians of the store's own task seconds")
    for engine, figures in results.items():
        print("  %s, the store's tasks, median seconds per server:" % engine)
        for name, seconds in sorted(figures["store_tasks_per_server_s"].items(), key=lambda item: -item[1]):
            print("    %6.3f  %s" % (seconds, name))


def run_lab(args, cleanup: Cleanup, postgres, rng: random.Random, tag: str) -> dict:
    """(a2) and (b) on a 2-host lab, brought up here and always taken down."""
    from tests.fixtures.guest import ensure_guest
    from tests.lab.handle import LabHandle
    ensure_guest()
    take_lab_lock(cleanup)
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-store-", dir="/var/tmp"))
    cleanup.push("the work directory", lambda: shutil.rmtree(workdir, ignore_errors=True))
    lab = LabHandle(LAB_STATE, prefix=LAB_PREFIX, subnet=LAB_SUBNET)

    def lab_down():
        proc = lab.down()
        if proc.returncode != 0:
            print("bench: lab down failed: %s" % proc.stderr.strip(), file=sys.stderr)
        shutil.rmtree(LAB_STATE, ignore_errors=True)

    lab.down()                      # what an interrupted run of this bench left
    cleanup.push("this run's guests", lambda: stop_stray_guests(tag))     # after the lab is down
    cleanup.push("the lab", lab_down)
    print("bench: bringing up a 2-host lab (prefix %s, %s.0/24)" % (LAB_PREFIX, LAB_SUBNET), flush=True)
    started = time.monotonic()
    lab.up(2)
    print("bench: lab up in %.0f s" % (time.monotonic() - started), flush=True)
    fleet = BenchFleet(lab, workdir)
    results = {"boot": run_boot_scale(fleet, workdir, args.boot_rounds, rng, tag, args.seed)}
    print_boot_scale(results["boot"], args.boot_rounds)
    urls = {"sqlite": sqlite_url(workdir / "concurrency.db")}
    if postgres is not None:
        urls["postgresql"] = postgres.dsn_for(postgres.create_database("bench"))
    results["concurrency"] = run_concurrency(fleet, urls, args.rounds, tag)
    print_concurrency(results["concurrency"], args.rounds)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b) (default 3)")
    parser.add_argument("--boot-rounds", type=int, default=5,
                        help="rounds of (a2), one boot per store size each (default 5)")
    parser.add_argument("--placements", type=int, default=50, help="placements per size in (a1)")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check: 1 round, 10 placements, no PostgreSQL")
    parser.add_argument("--no-lab", action="store_true", help="only (a1), the placement cost")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.boot_rounds, args.placements = 1, 1, 10
    if not args.no_lab and os.geteuid() != 0:
        raise SystemExit("bench: the lab needs root (or run with --no-lab)")
    started = time.monotonic()
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:5]
    cleanup = Cleanup()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)
    results = {"seed": args.seed, "rounds": args.rounds, "boot_rounds": args.boot_rounds,
               "placements": args.placements}
    failure = None
    try:
        temp = Path(tempfile.mkdtemp(prefix="bench-fleet-store-a1-"))
        cleanup.push("the placement stores", lambda: shutil.rmtree(temp, ignore_errors=True))
        postgres = None if args.quick else start_postgres(cleanup)
        engines = {"sqlite": lambda count: sqlite_url(temp / ("placement-%d.db" % count))}
        if postgres is not None:
            engines["postgresql"] = lambda count: postgres.dsn_for(postgres.create_database("p%d" % count))
        print("bench: (a1) %d placements per size, %s; Python %s, %d CPUs" % (
            args.placements, " and ".join(engines), sys.version.split()[0], os.cpu_count() or 0), flush=True)
        results["placement"] = run_placement(engines, args.placements, args.seed)
        print_placement(results["placement"])
        if not args.no_lab:
            results.update(run_lab(args, cleanup, postgres, rng, tag))
    except BenchFailure as exc:
        failure = "interrupted" if STOPPING.is_set() else str(exc)
    except KeyboardInterrupt:
        print("\nbench: interrupted, cleaning up", file=sys.stderr)
        failure = "interrupted"
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)        # let the cleanup finish
        STOPPING.set()
        stop_playbooks()                                 # before the lab goes down
        cleanup.run()
    results["wall_s"] = round(time.monotonic() - started, 1)
    concurrency = results.get("concurrency", {})
    if failure is None and any(f["duplicate_ips"] or f["duplicate_macs"] or not f["clean"]
                               or f["booted"] != f["wanted"] for f in concurrency.values()):
        failure = "duplicates, failed boots or leftovers in (b)"
    results["failure"] = failure
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print("\nbench: total run time %.1f s" % results["wall_s"])
    if failure:
        print("bench: FAILED: %s" % failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
