# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A multi-host libvirt lab on one machine.

Each compute host is a network namespace with its own address on a lab bridge, plus a private
mount namespace in which its own virtlogd, libvirtd and sshd run with private /run/libvirt,
/var/lib/libvirt, /etc/libvirt, /var/log/libvirt, /var/cache/libvirt, /var/lib/virtops (the
instances path, at the same path as on a real host), /etc/virtops, /etc/ceph and /root/.ssh. Hosts reach each other and
the controller over ssh with host keys recorded and verified.

    lab up N        create hosts compute1..computeN (adds to an existing lab)
    lab down        stop exactly what `up` started (by pid), undefine domains, remove all
    lab status      what runs (add --json for machines)
    lab exec HOST -- ARGV...   run a command inside HOST's namespaces
    lab inventory   print the path of the Ansible inventory

Everything the lab makes is recorded in <state dir>/lab.json as it is made, so `down` removes
exactly that, even after a failed `up`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

DEFAULT_STATE_DIR = Path(os.environ.get("VIRTOPS_LAB_DIR", "/var/tmp/virtops-lab"))
DEFAULT_PREFIX = os.environ.get("VIRTOPS_LAB_PREFIX", "vo")
DEFAULT_SUBNET = os.environ.get("VIRTOPS_LAB_SUBNET", "10.77.0")  # /24, .1 is the controller
REPO_ROOT = Path(__file__).resolve().parents[2]
# Every lab registers here (prefix -> state dir), so `lab down-all` finds labs whose test died.
REGISTRY = Path("/run/virtops-labs")
HOST_PYTHON = os.environ.get("VIRTOPS_HOST_PYTHON", str(REPO_ROOT / ".venv" / "bin" / "python"))

# (private directory name, mount point inside the host)
PRIVATE_MOUNTS = (
    ("run-libvirt", "/run/libvirt"),
    ("var-lib-libvirt", "/var/lib/libvirt"),
    ("etc-libvirt", "/etc/libvirt"),
    ("var-log-libvirt", "/var/log/libvirt"),
    ("var-cache-libvirt", "/var/cache/libvirt"),
    ("var-lib-virtops", "/var/lib/virtops"),
    ("root-ssh", "/root/.ssh"),
    ("etc-virtops", "/etc/virtops"),  # host preparation's record (virt type)
    ("etc-ceph", "/etc/ceph"),  # a Ceph client's ceph.conf and keyring (images_type rbd)
)
DAEMONS = ("virtlogd", "libvirtd", "sshd")
DAEMON_BINARIES = {"virtlogd": "/usr/sbin/virtlogd", "libvirtd": "/usr/sbin/libvirtd",
                   "sshd": "/usr/sbin/sshd"}


class LabError(Exception):
    pass


def run(argv: List[str], check: bool = True, capture: bool = True,
        timeout: Optional[float] = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError("command failed (rc=%d): %s\n%s" % (
            proc.returncode, " ".join(argv), (proc.stderr or "").strip()))
    return proc


@dataclass
class Host:
    name: str
    index: int
    address: str
    netns: str
    veth: str
    dir: str
    pids: Dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def private(self, name: str) -> Path:
        return self.path / "root" / name


@dataclass
class Lab:
    state_dir: str
    prefix: str
    subnet: str
    bridge: str
    bridge_created: bool = False
    hosts: Dict[str, Host] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.state_dir)

    @property
    def gateway(self) -> str:
        return self.subnet + ".1"

    @property
    def state_file(self) -> Path:
        return self.path / "lab.json"

    @property
    def controller_key(self) -> Path:
        return self.path / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.path / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.path / "inventory.yml"

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / self.prefix).write_text(self.state_dir)
        data = asdict(self)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.state_file)

    @classmethod
    def load(cls, state_dir: Path, prefix: str, subnet: str) -> "Lab":
        state_file = state_dir / "lab.json"
        if state_file.exists():
            data = json.loads(state_file.read_text())
            hosts = {name: Host(**h) for name, h in data.pop("hosts").items()}
            return cls(hosts=hosts, **data)
        return cls(state_dir=str(state_dir), prefix=prefix, subnet=subnet,
                   bridge="%s-lab0" % prefix)


# --------------------------------------------------------------------------- processes

def pid_alive(pid: int, binary: Optional[str] = None) -> bool:
    """True when pid runs and (if given) is that binary, a lab host's daemon: guards against
    pid reuse. The binary alone is not enough (pid_max may be 32768 and the machine runs its
    own libvirtd, sshd and virtlogd): a recorded pid that now belongs to a daemon of this
    machine's network namespace is never a lab host's, or `down` would destroy the machine's
    domains and stop its daemons. Lab daemons always run in their host's netns."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    if binary is None:
        return True
    if os.path.realpath(exe) != os.path.realpath(binary):
        return False
    try:
        return os.stat("/proc/%d/ns/net" % pid).st_ino != os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False


def stop_pid(pid: int, binary: str, timeout: float = 15.0) -> None:
    if not pid_alive(pid, binary):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid, binary):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    for _attempt in range(50):
        if not pid_alive(pid, binary):
            return
        time.sleep(0.1)


def read_pidfile(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def host_exec_argv(host: Host, argv: List[str]) -> List[str]:
    """argv that runs inside the host's mount and network namespaces."""
    anchor = None
    for daemon in ("sshd", "libvirtd", "virtlogd"):
        for pid in (host.pids.get(daemon), read_pidfile(host.path / ("%s.pid" % daemon))):
            if pid and pid_alive(pid, DAEMON_BINARIES[daemon]):
                anchor = pid
                break
        if anchor:
            break
    if not anchor:
        raise LabError("host %s is not running (no live daemon to enter)" % host.name)
    return ["nsenter", "--target", str(anchor), "--mount", "--net", "--"] + list(argv)


# --------------------------------------------------------------------------- up

def ensure_bridge(lab: Lab) -> None:
    if run(["ip", "link", "show", lab.bridge], check=False).returncode != 0:
        run(["ip", "link", "add", lab.bridge, "type", "bridge"])
        lab.bridge_created = True
        lab.save()
        run(["ip", "addr", "add", lab.gateway + "/24", "dev", lab.bridge])
    run(["ip", "link", "set", lab.bridge, "up"])


def ensure_controller_key(lab: Lab) -> None:
    if not lab.controller_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtops-lab-controller",
             "-f", str(lab.controller_key)])


# What /etc/libvirt holds besides configuration: the machine's persistent domains, networks,
# storage pools and secrets. A lab host is a fresh compute host: it takes the daemons'
# configuration and libvirt's stock nwfilters, never the machine's objects (a demo server
# defined on the machine must not appear on every lab host, nor start a dnsmasq there).
MACHINE_STATE = {
    "qemu": lambda name: name.endswith(".xml") or name in ("autostart", "checkpoint", "snapshot"),
    "networks": lambda name: True,
    "storage": lambda name: True,
    "secrets": lambda name: True,
    "nodedev": lambda name: True,
}


def _machine_state(directory: str, names: list) -> set:
    """shutil.copytree's ignore: the entries of ``directory`` that are machine state."""
    skip = MACHINE_STATE.get(os.path.basename(directory))
    return {name for name in names if skip and skip(name)}


def prepare_host_files(lab: Lab, host: Host) -> None:
    for name, _mountpoint in PRIVATE_MOUNTS:
        host.private(name).mkdir(parents=True, exist_ok=True)
    os.chmod(host.private("root-ssh"), 0o700)
    etc = host.private("etc-libvirt")
    if not (etc / "libvirtd.conf").exists():
        shutil.rmtree(etc)
        shutil.copytree("/etc/libvirt", etc, symlinks=True, ignore=_machine_state)
    # Seed the QEMU capabilities cache from the root namespace: same binaries, same kernel,
    # so libvirt accepts it and each host skips a multi-second probe.
    caps = Path("/var/cache/libvirt/qemu/capabilities")
    seeded = host.private("var-cache-libvirt") / "qemu" / "capabilities"
    if caps.is_dir() and not seeded.exists():
        shutil.copytree(caps, seeded)
    (host.private("var-lib-virtops") / "instances").mkdir(exist_ok=True)
    key = host.path / "ssh_host_ed25519_key"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtops-lab-%s" % host.name,
             "-f", str(key)])
    root_key = host.private("root-ssh") / "id_ed25519"
    if not root_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@%s" % host.name,
             "-f", str(root_key)])
    (host.path / "sshd_config").write_text("\n".join([
        "ListenAddress %s" % host.address,
        "Port 22",
        "HostKey %s" % key,
        "PidFile %s" % (host.path / "sshd.pid"),
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The state dir may sit under a world-writable /tmp or /var/tmp.
        "StrictModes no",
        "AuthorizedKeysFile /root/.ssh/authorized_keys",
        "Subsystem sftp internal-sftp",
        "AcceptEnv LANG LC_*",
        "",
    ]))


def create_netns(lab: Lab, host: Host) -> None:
    if run(["ip", "netns", "pids", host.netns], check=False).returncode != 0:
        run(["ip", "netns", "add", host.netns])
    if run(["ip", "link", "show", host.veth], check=False).returncode != 0:
        run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0",
             "netns", host.netns])
    run(["ip", "link", "set", host.veth, "master", lab.bridge, "up"])
    ns = ["ip", "netns", "exec", host.netns]
    run(ns + ["ip", "link", "set", "lo", "up"])
    if host.address not in run(ns + ["ip", "-4", "addr", "show", "eth0"]).stdout:
        run(ns + ["ip", "addr", "add", host.address + "/24", "dev", "eth0"])
    run(ns + ["ip", "link", "set", "eth0", "up"])
    if "default" not in run(ns + ["ip", "route"]).stdout:
        run(ns + ["ip", "route", "add", "default", "via", lab.gateway])


def start_host(lab: Lab, host: Host) -> None:
    """Start the host's daemons inside a new private mount namespace of its netns."""
    if all(pid_alive(host.pids.get(d, 0), DAEMON_BINARIES[d]) for d in DAEMONS):
        return
    for mountpoint in [mountpoint for _name, mountpoint in PRIVATE_MOUNTS] + ["/run/sshd"]:
        Path(mountpoint).mkdir(parents=True, exist_ok=True)
    run(["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private",
         "--", sys.executable, str(Path(__file__).resolve()), "_hostinit", host.dir],
        timeout=120)
    for daemon in DAEMONS:
        pid = read_pidfile(host.path / ("%s.pid" % daemon))
        if not pid or not pid_alive(pid, DAEMON_BINARIES[daemon]):
            raise LabError("%s on %s did not start; see %s" % (daemon, host.name, host.dir))
        host.pids[daemon] = pid
    lab.save()
    wait_for_libvirt(host)


def hostinit(host_dir: str) -> None:
    """Runs inside the new mount namespace: private mounts, then the daemons."""
    hdir = Path(host_dir)
    for name, mountpoint in PRIVATE_MOUNTS:
        run(["mount", "--bind", str(hdir / "root" / name), mountpoint])
    run(["/usr/sbin/virtlogd", "-d", "-p", str(hdir / "virtlogd.pid")])
    run(["/usr/sbin/libvirtd", "-d", "-p", str(hdir / "libvirtd.pid")])
    run(["/usr/sbin/sshd", "-f", str(hdir / "sshd_config"), "-E", str(hdir / "sshd.log")])


def wait_for_libvirt(host: Host, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        proc = run(host_exec_argv(host, ["virsh", "-c", "qemu:///system", "version"]),
                   check=False)
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise LabError("libvirtd on %s not answering after %ss: %s"
                           % (host.name, timeout, proc.stderr.strip()))
        time.sleep(0.3)


def host_pubkey(host: Host) -> List[str]:
    return (host.path / "ssh_host_ed25519_key.pub").read_text().split()[:2]


def write_trust(lab: Lab, peer_trust: bool) -> None:
    """Controller key on every host; with peer_trust, every host trusts every other."""
    controller_pub = (lab.path / "id_ed25519.pub").read_text().strip()
    hosts = list(lab.hosts.values())
    known = []
    for host in hosts:
        keytype, key = host_pubkey(host)
        known.append("%s,%s %s %s" % (host.name, host.address, keytype, key))
    lab.known_hosts.write_text("\n".join(known) + "\n")
    for host in hosts:
        authorized = [controller_pub]
        host_known = []
        if peer_trust:
            for peer in hosts:
                if peer.name == host.name:
                    continue
                authorized.append((peer.private("root-ssh") / "id_ed25519.pub").read_text().strip())
                keytype, key = host_pubkey(peer)
                host_known.append("%s,%s %s %s" % (peer.name, peer.address, keytype, key))
        ssh_dir = host.private("root-ssh")
        (ssh_dir / "authorized_keys").write_text("\n".join(authorized) + "\n")
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        (ssh_dir / "known_hosts").write_text("\n".join(host_known) + ("\n" if host_known else ""))


def write_inventory(lab: Lab) -> None:
    """YAML written as JSON (a subset of YAML): no yaml library needed here."""
    hosts = {}
    for host in sorted(lab.hosts.values(), key=lambda h: h.index):
        hosts[host.name] = {
            "ansible_host": host.address,
            "virtops_migration_address": host.address,
            "virtops_lab_netns": host.netns,
            # Daemons of a lab host keep their pid files in its state dir, not the shared /run.
            "virtops_libvirtd_pidfile": str(host.path / "libvirtd.pid"),
            "virtops_virtlogd_pidfile": str(host.path / "virtlogd.pid"),
            "virtops_ssh_host_key_files": [str(host.path / "ssh_host_ed25519_key.pub")],
            "availability_zone": "az1",
        }
    inventory = {
        "all": {
            "children": {"compute": {"hosts": hosts}},
            "vars": {
                "ansible_user": "root",
                "ansible_connection": "ssh",
                "ansible_ssh_private_key_file": str(lab.controller_key),
                "ansible_ssh_common_args": (
                    "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes "
                    "-o IdentitiesOnly=yes -o ControlMaster=no" % lab.known_hosts),
                "ansible_python_interpreter": HOST_PYTHON,
                "virtops_libvirt_uri": "qemu:///system",
                "virtops_instances_path": "/var/lib/virtops/instances",
            },
        }
    }
    lab.inventory.write_text("# Written by tests/lab/lab.py; JSON is valid YAML.\n"
                             + json.dumps(inventory, indent=2, sort_keys=True) + "\n")


def wait_for_ssh(lab: Lab, host: Host, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    argv = ssh_argv(lab, host, ["true"])
    while True:
        try:
            proc = run(argv, check=False, timeout=30)
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess(argv, 255, "", "ssh timed out")
        if proc.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise LabError("ssh to %s (%s) fails: %s" % (host.name, host.address,
                                                         proc.stderr.strip()))
        time.sleep(0.3)


def ssh_argv(lab: Lab, host: Host, argv: List[str]) -> List[str]:
    return ["ssh", "-i", str(lab.controller_key), "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=%s" % lab.known_hosts, "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "root@%s" % host.address, "--"] + argv


def up(lab: Lab, count: int, peer_trust: bool = True) -> None:
    if count < 1 or count > 9:
        raise LabError("lab up takes 1 to 9 hosts, not %d" % count)
    lab.path.mkdir(parents=True, exist_ok=True)
    os.chmod(lab.path, 0o700)
    lab.save()
    ensure_bridge(lab)
    ensure_controller_key(lab)
    for index in range(1, count + 1):
        name = "compute%d" % index
        if name not in lab.hosts:
            lab.hosts[name] = Host(name=name, index=index,
                                   address="%s.%d" % (lab.subnet, 10 + index),
                                   netns="%s-%s" % (lab.prefix, name),
                                   veth="%s-c%d" % (lab.prefix, index),
                                   dir=str(lab.path / name))
            lab.save()
        host = lab.hosts[name]
        prepare_host_files(lab, host)
        create_netns(lab, host)
    write_trust(lab, peer_trust)
    for host in lab.hosts.values():
        start_host(lab, host)
    write_inventory(lab)
    for host in lab.hosts.values():
        wait_for_ssh(lab, host)


# --------------------------------------------------------------------------- down

def undefine_domains(host: Host) -> None:
    virsh = ["virsh", "-c", "qemu:///system"]
    proc = run(host_exec_argv(host, virsh + ["list", "--all", "--name"]), check=False)
    for name in [n for n in proc.stdout.split() if n]:
        run(host_exec_argv(host, virsh + ["destroy", name]), check=False)
        run(host_exec_argv(host, virsh + ["undefine", "--nvram", name]), check=False)
        run(host_exec_argv(host, virsh + ["undefine", name]), check=False)


def down(lab: Lab) -> List[str]:
    problems = []
    for host in list(lab.hosts.values()):
        try:
            undefine_domains(host)
        except LabError as exc:
            problems.append(str(exc))
        for daemon in ("sshd", "libvirtd", "virtlogd"):
            # The recorded pid, and the pidfile's in case host preparation restarted the daemon.
            pids = {host.pids.get(daemon), read_pidfile(host.path / ("%s.pid" % daemon))}
            for pid in sorted(p for p in pids if p):
                stop_pid(pid, DAEMON_BINARIES[daemon])
                if pid_alive(pid, DAEMON_BINARIES[daemon]):
                    problems.append("%s (pid %d) on %s did not stop" % (daemon, pid, host.name))
        run(["ip", "netns", "del", host.netns], check=False)
        run(["ip", "link", "del", host.veth], check=False)
    if lab.bridge_created:
        run(["ip", "link", "del", lab.bridge], check=False)
    if lab.path.exists():
        shutil.rmtree(lab.path)
    registered = REGISTRY / lab.prefix
    if registered.exists() and registered.read_text() == lab.state_dir:
        registered.unlink()
    return problems


def down_all() -> List[str]:
    """Take down every registered lab (CI's safety net after an interrupted test run)."""
    problems = []
    if not REGISTRY.is_dir():
        return problems
    for entry in sorted(REGISTRY.iterdir()):
        state_dir = Path(entry.read_text())
        if (state_dir / "lab.json").exists():
            lab = Lab.load(state_dir, entry.name, DEFAULT_SUBNET)
            problems += down(lab)
            print("lab down-all: took down %s (%s)" % (entry.name, state_dir))
        if entry.exists():
            entry.unlink()
    return problems


# --------------------------------------------------------------------------- status

def status(lab: Lab) -> dict:
    result = {"state_dir": lab.state_dir, "bridge": lab.bridge,
              "bridge_up": run(["ip", "link", "show", lab.bridge], check=False).returncode == 0,
              "inventory": str(lab.inventory) if lab.inventory.exists() else None, "hosts": {}}
    for host in sorted(lab.hosts.values(), key=lambda h: h.index):
        daemons = {}
        for daemon in DAEMONS:
            pid = host.pids.get(daemon)
            daemons[daemon] = {"pid": pid, "running": pid_alive(pid or 0, DAEMON_BINARIES[daemon])}
        domains: List[str] = []
        if daemons["libvirtd"]["running"]:
            proc = run(host_exec_argv(host, ["virsh", "-c", "qemu:///system", "list", "--all",
                                             "--name"]), check=False)
            domains = [n for n in proc.stdout.split() if n]
        result["hosts"][host.name] = {"address": host.address, "netns": host.netns,
                                      "daemons": daemons, "domains": domains}
    return result


def print_status(data: dict) -> None:
    if not data["hosts"]:
        print("no lab (state dir %s)" % data["state_dir"])
        return
    print("bridge %s: %s; inventory: %s" % (data["bridge"], "up" if data["bridge_up"] else "MISSING",
                                            data["inventory"]))
    for name, host in data["hosts"].items():
        daemons = " ".join("%s=%s" % (d, ("pid %s" % s["pid"]) if s["running"] else "DOWN")
                           for d, s in host["daemons"].items())
        print("%-10s %-12s %s domains=[%s]"
              % (name, host["address"], daemons, ",".join(host["domains"])))


# --------------------------------------------------------------------------- main

def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX,
                        help="name prefix of netns/links (default %(default)s)")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET,
                        help="first three octets of the lab /24 (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="create N compute hosts")
    p_up.add_argument("count", type=int)
    p_up.add_argument("--no-peer-trust", action="store_true",
                      help="do not authorise hosts on each other (host preparation does it)")
    sub.add_parser("down", help="stop and remove everything the lab made")
    sub.add_parser("down-all", help="take down every lab registered on this machine")
    p_status = sub.add_parser("status", help="what runs")
    p_status.add_argument("--json", action="store_true")
    p_exec = sub.add_parser("exec", help="run a command inside a host")
    p_exec.add_argument("host")
    p_exec.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("inventory", help="print the inventory path")
    p_init = sub.add_parser("_hostinit", help=argparse.SUPPRESS)
    p_init.add_argument("host_dir")
    args = parser.parse_args(argv)

    if args.command == "_hostinit":
        hostinit(args.host_dir)
        return 0
    if os.geteuid() != 0:
        print("lab: must run as root (it creates namespaces and starts libvirtd)", file=sys.stderr)
        return 2
    lab = Lab.load(args.state_dir, args.prefix, args.subnet)
    try:
        if args.command == "up":
            up(lab, args.count, peer_trust=not args.no_peer_trust)
            print_status(status(lab))
        elif args.command in ("down", "down-all"):
            problems = down(lab) if args.command == "down" else down_all()
            for problem in problems:
                print("lab down: %s" % problem, file=sys.stderr)
            return 1 if problems else 0
        elif args.command == "status":
            data = status(lab)
            print(json.dumps(data, indent=2)) if args.json else print_status(data)
        elif args.command == "inventory":
            if not lab.inventory.exists():
                raise LabError("no lab inventory; run 'lab up N' first")
            print(lab.inventory)
        elif args.command == "exec":
            cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if args.host not in lab.hosts:
                raise LabError("no host %r in the lab (have: %s)"
                               % (args.host, ", ".join(sorted(lab.hosts)) or "none"))
            argv_full = host_exec_argv(lab.hosts[args.host], cmd)
            os.execvp(argv_full[0], argv_full)
    except LabError as exc:
        print("lab: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
