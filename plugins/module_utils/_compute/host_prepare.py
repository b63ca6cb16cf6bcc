# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host preparation: libvirt's daemons running, the virt type recorded, and the readiness check.

"Running" means libvirt answers on its URI (``virsh -c URI version``), not that a process exists:
a libvirtd that does not answer is no use to the modules. Without systemd the daemons are started
as plain daemons with pid files (``virtlogd -d -p``, ``libvirtd -d -p``); a pid file is trusted
only when its pid runs the expected binary, so a recycled pid is never taken for a daemon.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    DEFAULT_INSTANCES_PATH, DEFAULT_STATE_DIR, host_record_path)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.fileio import atomic_write_json
from ansible_collections.virtops.compute.plugins.module_utils._model.network import (
    BRIDGED_VIF_TYPES, DEFAULT_FIREWALL_DRIVER, DEFAULT_NWFILTER, valid_firewall_driver)
from ansible_collections.virtops.compute.plugins.module_utils._network.links import bridge_state
from ansible_collections.virtops.compute.plugins.module_utils._network.port_filter import (
    TABLE, Nft, skeleton_script)
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import DEFAULT_URI, connect
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.secrets import SecretOutcome, ensure_ceph_secret
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.virt_probe import (
    VirtProbe, probe_virt_type, recorded_virt_type)
from ansible_collections.virtops.compute.plugins.module_utils._common.units import GIB


# --------------------------------------------------------------------------- libvirt daemons


@dataclass(frozen=True)
class Daemon:
    name: str
    pidfile: str

    @property
    def binary(self) -> str:
        return find_binary(self.name)


@dataclass
class DaemonsResult:
    changed: bool = False
    started: List[str] = field(default_factory=list)
    pids: Dict[str, Optional[int]] = field(default_factory=dict)
    waited_s: float = 0.0


def libvirt_answers(uri: str, timeout: float = 20.0) -> str:
    """'' when libvirt answers on ``uri``, else why not."""
    try:
        result = run([find_binary("virsh"), "-c", uri, "version"], check=False, timeout=timeout)
    except VirtopsError as exc:
        return exc.msg
    if result.rc == 0:
        return ""
    text = result.stderr.strip() or result.stdout.strip() or "virsh exited %d" % result.rc
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())[-500:]


def pid_from_file(path: str) -> Optional[int]:
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def pid_runs(pid: Optional[int], binary: str) -> bool:
    """True when ``pid`` is a live process of ``binary`` (not a recycled pid)."""
    if not pid:
        return False
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    exe = exe[:-len(" (deleted)")] if exe.endswith(" (deleted)") else exe  # upgraded package
    return os.path.realpath(exe) == os.path.realpath(binary)


def running_pid(daemon: Daemon) -> Optional[int]:
    pid = pid_from_file(daemon.pidfile)
    return pid if pid_runs(pid, daemon.binary) else None


def _start_daemon(daemon: Daemon) -> None:
    # -d forks into the background and closes its standard streams; the parent returns once the
    # child is set up, so run() does not hang on the pipes.
    run([daemon.binary, "-d", "-p", daemon.pidfile], timeout=60)


def ensure_libvirt_running(uri: str, daemons: Sequence[Daemon], start: bool, check_mode: bool,
                           timeout: float = 60.0, poll: float = 0.5) -> DaemonsResult:
    """Make libvirt answer on ``uri``, starting ``daemons`` in order where they do not run.

    With ``start`` false (systemd manages the units) only wait for libvirt to answer.
    """
    result = DaemonsResult()
    reason = libvirt_answers(uri)
    if not reason:
        result.pids = {d.name: running_pid(d) for d in daemons}
        return result
    if start:
        for daemon in daemons:
            if running_pid(daemon):
                continue
            result.started.append(daemon.name)
            result.changed = True
            if not check_mode:
                _start_daemon(daemon)
    if check_mode and result.changed:
        return result
    began = time.monotonic()
    while reason:
        if time.monotonic() - began > timeout:
            live = [(d.name, running_pid(d)) for d in daemons]
            stuck = ["%s (pid %s)" % (name, pid) for name, pid in live if pid]
            raise VirtopsError(
                "libvirt does not answer on %s after %ds: %s. %s" % (
                    uri, timeout, reason,
                    ("%s runs but does not answer: see /var/log/libvirt/libvirtd.log, or stop it "
                     "and re-run" % ", ".join(stuck)) if stuck else
                    ("libvirtd did not come up: see /var/log/libvirt/libvirtd.log" if start else
                     "the service manager did not bring libvirtd up: see 'systemctl status "
                     "libvirtd' and /var/log/libvirt/libvirtd.log")),
                started=result.started)
        time.sleep(poll)
        reason = libvirt_answers(uri)
    result.waited_s = round(time.monotonic() - began, 2)
    result.pids = {d.name: running_pid(d) for d in daemons}
    return result


# --------------------------------------------------------------------------- virt type record


@dataclass
class VirtRecordResult:
    probe: VirtProbe
    path: str
    changed: bool
    before: Optional[dict]
    after: dict


def ensure_virt_record(state_dir: str, forced: Optional[str], kvm_device: str,
                       check_mode: bool) -> VirtRecordResult:
    """Probe (or take ``forced``) and write ``<state_dir>/host.json`` when it differs."""
    probe = probe_virt_type(forced or None, kvm_device)
    path = host_record_path(state_dir)
    before = None
    if os.path.exists(path):
        try:
            with open(path, "rb") as handle:
                before = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            before = {"unreadable": True}  # rewritten below
    after = asdict(probe)
    changed = before != after
    if changed and not check_mode:
        os.makedirs(state_dir, mode=0o755, exist_ok=True)
        atomic_write_json(path, after, mode=0o644)
    return VirtRecordResult(probe, path, changed, before, after)


# --------------------------------------------------------------------------- readiness

# import name -> (what it is for, what to install)
PYTHON_LIBRARIES = {
    "libvirt": ("libvirt binding (all modules)", "python3-libvirt"),
    "lxml.etree": ("domain XML (vm_xml)", "python3-lxml"),
    "oslo_utils.imageutils.format_inspector": (
        "image safety checks (vm_image); needs oslo.utils >= 7.3",
        "pip oslo.utils>=7.3 (Debian 12's python3-oslo.utils 6.0 is too old): set "
        "virtops_host_venv"),
    "pycdlib": ("config drive ISO (vm_image)", "python3-pycdlib"),
}

_IMPORT_CHECK = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out[name] = ""
    except Exception as exc:
        out[name] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Peer:
    name: str
    address: str


@dataclass
class ReadinessConfig:
    libvirt_uri: str = DEFAULT_URI
    instances_path: str = DEFAULT_INSTANCES_PATH
    state_dir: str = DEFAULT_STATE_DIR
    bridges: Sequence[str] = ()
    peers: Sequence[Peer] = ()
    ssh_user: str = "root"
    connect_timeout: int = 5
    min_free_ram_mb: int = 1024
    min_free_disk_gb: int = 10
    python: str = ""
    python_libraries: Sequence[str] = tuple(PYTHON_LIBRARIES)
    firewall_driver: str = DEFAULT_FIREWALL_DRIVER
    nwfilter: str = DEFAULT_NWFILTER

    def __post_init__(self):
        valid_firewall_driver(self.firewall_driver)


def bridges_of(networks: Dict[str, dict]) -> List[str]:
    """Bridges the host must have for the fleet's ``networks`` (inventory form)."""
    bridges = []
    for _name, network in sorted((networks or {}).items()):
        network = network or {}
        if network.get("vif_type", "bridge") in BRIDGED_VIF_TYPES and network.get("bridge"):
            if network["bridge"] not in bridges:
                bridges.append(network["bridge"])
    return bridges


def check_python_libraries(python: str, names: Sequence[str]) -> Dict[str, str]:
    try:
        result = run([python, "-c", _IMPORT_CHECK] + list(names), check=False, timeout=60)
    except VirtopsError as exc:
        return {name: exc.msg for name in names}
    if result.rc != 0:
        return {name: "%s failed: %s" % (python, result.stderr.strip()[-300:]) for name in names}
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_peer(peer: Peer, user: str, timeout: int) -> str:
    """'' when ``ssh peer true`` works non-interactively with the host key verified."""
    argv = [find_binary("ssh"), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=%d" % timeout, "%s@%s" % (user, peer.address), "true"]
    try:
        # stdin closed: ssh must not wait on the module's stdin.
        proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=timeout * 3 + 5, check=False)
    except subprocess.TimeoutExpired:
        return "ssh to %s timed out" % peer.address
    if proc.returncode == 0:
        return ""
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "rc=%d" % proc.returncode


def free_ram_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    raise VirtopsError("/proc/meminfo has no MemAvailable")


def port_security_problem(firewall_driver: str, nwfilter: str, uri: str) -> str:
    """'' when filtered ports can be filtered the ``firewall_driver`` way, else what to fix:
    nftables needs ``nft`` and a kernel that takes the table (tried with ``nft --check``, which
    the kernel validates and discards); nwfilter needs the filter defined in libvirt."""
    if firewall_driver == "nftables":
        try:
            nft = Nft()
        except VirtopsError:
            return ("nft is missing, and filtered ports need it (virtops_firewall_driver=nftables): "
                    "install the nftables package (bindep.txt) or re-run prepare_hosts.yml")
        result = run([nft.binary, "--check", "-f", "-"], check=False, timeout=30,
                     input_text=skeleton_script())
        if result.rc != 0:
            return ("the kernel refuses the anti-spoofing table %s (%s): it needs nf_tables with "
                    "the bridge family (modules nf_tables, nft_chain_bridge or a kernel built "
                    "with them), or set virtops_firewall_driver=nwfilter"
                    % (TABLE, result.stderr.strip()[-500:]))
        return ""
    try:
        result = run([find_binary("virsh"), "-c", uri, "nwfilter-dumpxml", nwfilter],
                     check=False, timeout=30)
    except VirtopsError as exc:
        return exc.msg
    if result.rc != 0:
        return ("libvirt has no nwfilter %s, which filtered ports need "
                "(virtops_firewall_driver=nwfilter): define it (virsh nwfilter-list; libvirt "
                "ships clean-traffic) or set virtops_firewall_driver=nftables (%s)"
                % (nwfilter, result.stderr.strip()[-300:]))
    return ""


def check_readiness(config: ReadinessConfig) -> dict:
    """The per-host summary and the problems, each saying what to fix."""
    problems: List[str] = []
    summary: dict = {}

    reason = libvirt_answers(config.libvirt_uri)
    summary["libvirt"] = {"uri": config.libvirt_uri, "reachable": not reason, "error": reason}
    if reason:
        problems.append("libvirt does not answer on %s (%s): start libvirtd (re-run "
                        "prepare_hosts.yml) and see /var/log/libvirt/libvirtd.log"
                        % (config.libvirt_uri, reason))

    path = host_record_path(config.state_dir)
    try:
        recorded = recorded_virt_type(path)
    except VirtopsError as exc:
        recorded = None
        problems.append(exc.msg)
    if recorded is None:
        summary["virt_type"] = None
        problems.append("no virt type recorded in %s: re-run prepare_hosts.yml" % path)
    else:
        summary["virt_type"] = asdict(recorded)

    summary["free_ram_mb"] = free_ram_mb()
    if summary["free_ram_mb"] < config.min_free_ram_mb:
        problems.append("only %d MiB RAM available, below virtops_min_free_ram_mb=%d: free memory "
                        "or lower the threshold" % (summary["free_ram_mb"], config.min_free_ram_mb))
    if os.path.isdir(config.instances_path):
        stat = os.statvfs(config.instances_path)
        summary["free_disk_gb"] = round(stat.f_bavail * stat.f_frsize / GIB, 1)
        if summary["free_disk_gb"] < config.min_free_disk_gb:
            problems.append("only %.1f GiB free under %s, below virtops_min_free_disk_gb=%d"
                            % (summary["free_disk_gb"], config.instances_path,
                               config.min_free_disk_gb))
    else:
        summary["free_disk_gb"] = None
        problems.append("instances path %s does not exist: re-run prepare_hosts.yml"
                        % config.instances_path)

    summary["bridges"] = {}
    for name in config.bridges:
        state = bridge_state(name)
        summary["bridges"][name] = state
        if not state["exists"]:
            problems.append("bridge %s is missing: re-run prepare_hosts.yml (or create it, when "
                            "its network says create_bridge: false)" % name)
        elif not state["up"]:
            problems.append("bridge %s is down: ip link set dev %s up" % (name, name))

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(config.peers)))) as pool:
        answers = list(pool.map(lambda p: check_peer(p, config.ssh_user, config.connect_timeout),
                                config.peers))
    summary["migration_ssh"] = {}
    for peer, error in zip(config.peers, answers):
        summary["migration_ssh"][peer.name] = {"address": peer.address, "ok": not error,
                                               "error": error}
        if error:
            problems.append("migration ssh to %s (%s@%s) fails: %s; re-run prepare_hosts.yml "
                            "on both hosts, check sshd and the firewall between them"
                            % (peer.name, config.ssh_user, peer.address, error))

    error = port_security_problem(config.firewall_driver, config.nwfilter, config.libvirt_uri)
    summary["port_security"] = {"firewall_driver": config.firewall_driver, "ok": not error,
                                "error": error}
    if error:
        problems.append(error)

    if config.python:
        libs = check_python_libraries(config.python, config.python_libraries)
        summary["python"] = {"interpreter": config.python,
                             "missing": {k: v for k, v in libs.items() if v}}
        for name, error in sorted(libs.items()):
            if error:
                purpose, package = PYTHON_LIBRARIES.get(name, ("", name))
                problems.append("%s cannot import %s (%s): install %s" % (
                    config.python, name, purpose or error, package))
    summary["ready"] = not problems
    return {"summary": summary, "problems": problems, "lines": summary_lines(summary, problems)}


def summary_lines(summary: dict, problems: Sequence[str]) -> List[str]:
    """The summary as short lines for the play output."""
    lines = []
    libvirt = summary["libvirt"]
    lines.append("libvirt %s: %s" % (libvirt["uri"], "reachable" if libvirt["reachable"]
                                     else "NOT REACHABLE (%s)" % libvirt["error"]))
    virt = summary.get("virt_type")
    lines.append("virt type: %s" % ("%s (%s%s)" % (virt["virt_type"], virt["reason"],
                                                   ", forced" if virt["forced"] else "")
                                    if virt else "NOT RECORDED"))
    lines.append("free: %s MiB RAM, %s GiB disk" % (
        summary["free_ram_mb"], "?" if summary["free_disk_gb"] is None else summary["free_disk_gb"]))
    if summary["bridges"]:
        lines.append("bridges: " + ", ".join(
            "%s %s" % (name, ("up" if s["up"] else "DOWN") if s["exists"] else "MISSING")
            for name, s in sorted(summary["bridges"].items())))
    if summary["migration_ssh"]:
        lines.append("migration ssh: " + ", ".join(
            "%s %s" % (name, "ok" if s["ok"] else "FAILS")
            for name, s in sorted(summary["migration_ssh"].items())))
    security = summary.get("port_security")
    if security:
        state = "ok" if security["ok"] else "NOT USABLE"
        lines.append("port security: %s %s" % (security["firewall_driver"], state))
    if "python" in summary:
        missing = summary["python"]["missing"]
        lines.append("python libraries: %s" % ("all importable" if not missing
                                               else "MISSING " + ", ".join(sorted(missing))))
    lines.append("ready" if not problems else "NOT READY: %d problem(s)" % len(problems))
    return lines


def ensure_rbd_secret(libvirt_uri: str, secret_uuid: str, user: str, key: str,
                      check_mode: bool = False) -> SecretOutcome:
    """The libvirt secret of a host with ``images_type = rbd``: what Ceph's "Block Devices and
    OpenStack" guide has the operator do for Nova (``virsh secret-define`` of usage type ceph,
    ``secret-set-value`` with the user's key), idempotently (``_libvirt/secrets.py``)."""
    # Read-write even in check mode: libvirtd refuses a secret's value to a read-only connection.
    with connect(libvirt_uri) as conn:
        return ensure_ceph_secret(conn, secret_uuid, user, key, check_mode)
