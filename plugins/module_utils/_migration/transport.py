# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-to-host transport of a cold migration: ssh commands and rsync copies.

Nova's ``RemoteFilesystem`` (ssh: create a file or a directory, remove a tree) and
``libvirt_utils.copy_image`` (rsync over ssh, ``--sparse``, ``--compress`` unless the file
is qcow2). Host keys are always verified (``StrictHostKeyChecking=yes``, ``BatchMode=yes``):
the peers' keys must already be in root's known_hosts, which ``roles/compute_host`` writes.

Every remote command is an argv list; ssh hands the remote side one string, so each argument
is quoted with :func:`shlex.quote`. rsync splits its ``-e`` string itself, so the ssh options
that go there may not hold whitespace or quotes.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.names import validate_uuid
from ansible_collections.virtops.compute.plugins.module_utils._common.process import find_binary, run

SSH_FAILURE_RC = 255
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_IO_TIMEOUT = 300
SHARED_TEST_PREFIX = ".virtops-shared-storage-"
_OPTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*=[^\s'\"\\]+$")
# Algorithm lists (Ciphers, MACs, KexAlgorithms): comma-separated names, optionally led by
# ssh's +, - or ^ (append, remove, put first).
_ALGORITHM = r"[A-Za-z0-9][A-Za-z0-9@._-]*"
_ALGORITHMS_RE = re.compile(r"^[+^-]?%s(,%s)*$" % (_ALGORITHM, _ALGORITHM))
_IPQOS_NAMES = ("af11", "af12", "af13", "af21", "af22", "af23", "af31", "af32", "af33", "af41",
                "af42", "af43", "cs0", "cs1", "cs2", "cs3", "cs4", "cs5", "cs6", "cs7", "ef", "le",
                "lowdelay", "throughput", "reliability", "none")
# Options that are set elsewhere, with where: ssh keeps the first value it is given, and the
# fixed options come first, so a second value here would be silently ignored.
_SET_ELSEWHERE = {
    "connecttimeout": "set it with ssh_connect_timeout (virtops_migration_ssh_connect_timeout)",
    "identityfile": "set it with ssh_key (virtops_migration_ssh_key)",
    "user": "set it with ssh_user (virtops_migration_ssh_user)",
}


def _whole_number(minimum: int, maximum: Optional[int] = None):
    def check(value: str) -> Optional[str]:
        if value.isdigit() and int(value) >= minimum and (maximum is None or int(value) <= maximum):
            return None
        upper = " to %d" % maximum if maximum is not None else " or more"
        return "a whole number from %d%s" % (minimum, upper)
    return check


def _one_of(*choices: str):
    def check(value: str) -> Optional[str]:
        return None if value.lower() in choices else "one of %s" % ", ".join(choices)
    return check


def _algorithms(value: str) -> Optional[str]:
    return None if _ALGORITHMS_RE.match(value) else (
        "a comma-separated list of algorithm names, optionally led by +, - or ^")


def _ip_address(value: str) -> Optional[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "an IP address of this host"
    return None


def _ipqos(value: str) -> Optional[str]:
    if value.lower() in _IPQOS_NAMES or (value.isdigit() and int(value) <= 255):
        return None
    return "one DSCP class (%s) or a number from 0 to 255" % ", ".join(_IPQOS_NAMES)


# The only ssh options users may add (canonical name: value check). Everything else is refused:
# a deny-list cannot keep up with ssh's options (ProxyCommand, KnownHostsCommand, ProxyJump and
# UserKnownHostsFile=/dev/./null all run commands or skip host-key checking).
ALLOWED_SSH_OPTIONS = {
    "AddressFamily": _one_of("any", "inet", "inet6"),
    "BindAddress": _ip_address,
    "Ciphers": _algorithms,
    "Compression": _one_of("yes", "no"),
    "ConnectionAttempts": _whole_number(1, 10),
    "IPQoS": _ipqos,
    "KexAlgorithms": _algorithms,
    "MACs": _algorithms,
    "Port": _whole_number(1, 65535),
    "ServerAliveCountMax": _whole_number(0),
    "ServerAliveInterval": _whole_number(0),
    "TCPKeepAlive": _one_of("yes", "no"),
}
_ALLOWED_BY_LOWER = {name.lower(): name for name in ALLOWED_SSH_OPTIONS}
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.:%\[\]-]+$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def validate_address(address: str) -> str:
    """A host name or IP address usable in argv and in rsync's ``host:path`` form."""
    if not isinstance(address, str) or not address or address.startswith("-") \
            or not _ADDRESS_RE.match(address):
        raise VirtopsError("invalid migration address %r: give a host name or an IP address"
                           % (address,))
    return address.strip("[]")


@dataclass(frozen=True)
class SshConfig:
    """How this host reaches a peer: user, optional key and extra ``-o`` options."""
    user: str = "root"
    key: Optional[str] = None
    options: Tuple[str, ...] = ()
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    control_path: Optional[str] = None     # set while a multiplexed session is open

    def __post_init__(self):
        if not _USER_RE.match(self.user or ""):
            raise VirtopsError("invalid ssh user %r" % (self.user,))
        if self.key is not None and (not os.path.isabs(self.key) or re.search(r"[\s'\"\\]", self.key)):
            raise VirtopsError("ssh key %r must be an absolute path without spaces or quotes"
                               % (self.key,))
        object.__setattr__(self, "options", tuple(check_ssh_option(o) for o in self.options))
        if int(self.connect_timeout) < 1:
            raise VirtopsError("ssh connect timeout must be at least 1 second")

    def base_argv(self, ssh_binary: str = "ssh") -> List[str]:
        argv = [ssh_binary, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=%d" % int(self.connect_timeout), "-l", self.user]
        if self.key:
            argv += ["-i", self.key, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            argv += ["-o", option]
        if self.control_path:
            argv += ["-o", "ControlMaster=no", "-o", "ControlPath=%s" % self.control_path]
        return argv

    def command(self, address: str, remote_argv: Sequence[str], ssh_binary: str = "ssh") -> List[str]:
        """ssh argv running ``remote_argv`` on ``address`` (each argument shell-quoted)."""
        remote = " ".join(shlex.quote(str(arg)) for arg in remote_argv)
        return self.base_argv(ssh_binary) + ["--", validate_address(address), remote]

    def rsync_shell(self, ssh_binary: str = "ssh") -> str:
        """The ``-e`` value for rsync (rsync splits it on whitespace itself)."""
        return " ".join(self.base_argv(ssh_binary))


def check_ssh_option(option: str) -> str:
    """``option`` (``Name=value``) if it is on the allow-list with a valid value, else raise.

    Host-key checking (``StrictHostKeyChecking=yes``), ``BatchMode=yes`` and the multiplexed
    connection are fixed by vm_migrate; only options that tune the connection may be added.
    """
    if not isinstance(option, str) or not _OPTION_RE.match(option):
        raise VirtopsError("ssh option %r must be Name=value without spaces or quotes "
                           "(for example Port=2222)" % (option,))
    name, value = option.split("=", 1)
    elsewhere = _SET_ELSEWHERE.get(name.lower())
    if elsewhere:
        raise VirtopsError("ssh option %s is not taken in ssh_options: %s" % (name, elsewhere))
    canonical = _ALLOWED_BY_LOWER.get(name.lower())
    if canonical is None:
        raise VirtopsError("ssh option %s is not allowed: ssh_options takes only %s (host-key "
                           "checking, prompting and the connection's commands stay as vm_migrate "
                           "sets them)" % (name, ", ".join(sorted(ALLOWED_SSH_OPTIONS))))
    problem = ALLOWED_SSH_OPTIONS[canonical](value)
    if problem:
        raise VirtopsError("ssh option %s=%s: the value must be %s" % (canonical, value, problem))
    return "%s=%s" % (canonical, value)


def remote_spec(address: str, path: str) -> str:
    """rsync's ``host:path`` (IPv6 literals in brackets)."""
    address = validate_address(address)
    if ":" in address:
        address = "[%s]" % address
    return "%s:%s" % (address, path)


# --------------------------------------------------------------------------- rsync

@dataclass
class CopyStats:
    """What one rsync run moved. ``bytes_sent`` is what crossed the wire from the sender."""
    files: List[str]
    total_size: int = 0          # apparent size of the files
    literal_bytes: int = 0       # file data sent (after compression when compressing)
    bytes_sent: int = 0
    bytes_received: int = 0
    compressed: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"files": list(self.files), "total_size": self.total_size,
                "literal_bytes": self.literal_bytes, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "compressed": self.compressed,
                "seconds": round(self.seconds, 3)}


_STATS_RE = {
    "total_size": re.compile(r"^Total file size:\s+([\d,.]+)", re.M),
    "literal_bytes": re.compile(r"^Literal data:\s+([\d,.]+)", re.M),
    "bytes_sent": re.compile(r"^Total bytes sent:\s+([\d,.]+)", re.M),
    "bytes_received": re.compile(r"^Total bytes received:\s+([\d,.]+)", re.M),
}


def parse_rsync_stats(text: str) -> Dict[str, int]:
    """The byte counts of ``rsync --stats`` (plain numbers: ``--no-human-readable``)."""
    numbers = {}
    for key, pattern in _STATS_RE.items():
        match = pattern.search(text or "")
        if match:
            numbers[key] = int(re.sub(r"[,.]", "", match.group(1)))
    return numbers


def rsync_argv(sources: Sequence[str], destination: str, compress: bool,
               ssh: Optional[SshConfig] = None, rsync_binary: str = "rsync",
               ssh_binary: str = "ssh", io_timeout: int = DEFAULT_IO_TIMEOUT,
               remote_sources: bool = False) -> List[str]:
    """rsync argv copying ``sources`` into ``destination`` (``dir/`` or ``host:dir/``).

    With ``remote_sources`` the sources are ``host:path`` specs (a pull from a peer).

    ``--sparse`` writes holes where the source has zeros, ``--whole-file`` skips the delta
    algorithm (the destination has no copy to diff against), ``--compress`` only for files
    that are not qcow2 (Nova's NO_COMPRESSION_TYPES), ``--timeout`` turns a dead peer into
    a failure instead of a hang.
    """
    if not sources:
        raise VirtopsError("nothing to copy")
    argv = [rsync_binary, "--sparse", "--whole-file", "--stats", "--no-human-readable",
            "--timeout=%d" % int(io_timeout)]
    if compress:
        argv.append("--compress")
    if ssh is not None:
        argv += ["-e", ssh.rsync_shell(ssh_binary)]
    for source in sources:
        path = source
        if remote_sources:
            path = source.split("]:", 1)[1] if source.startswith("[") else source.split(":", 1)[-1]
        if not os.path.isabs(path):
            raise VirtopsError("rsync source %r must be an absolute path" % (source,))
    return argv + ["--"] + list(sources) + [destination]


class Transport:
    """ssh and rsync from this host, found once."""

    def __init__(self, ssh: SshConfig, io_timeout: int = DEFAULT_IO_TIMEOUT):
        self.ssh = ssh
        self.io_timeout = io_timeout
        self._ssh_binary: Optional[str] = None
        self._rsync_binary: Optional[str] = None

    @contextmanager
    def session(self, address: str, idle_seconds: int = 120) -> Iterator[None]:
        """One ssh connection to ``address`` for every command and copy inside the block.

        A phase talks to its peer 4 or 5 times; each new connection costs a key exchange
        (0.3-0.5 s on a loaded host). The master runs in the background (ControlPersist) and is
        told to exit at the end; if this process dies first it exits after ``idle_seconds``.
        """
        if self.ssh.control_path:
            yield
            return
        directory = tempfile.mkdtemp(prefix="virtops-ssh-")       # 0700, ours alone
        control = os.path.join(directory, "control")
        log = os.path.join(directory, "master.log")
        master = self.ssh.base_argv(self.ssh_binary) + [
            "-o", "ControlMaster=yes", "-o", "ControlPath=%s" % control,
            "-o", "ControlPersist=%d" % idle_seconds, "-E", log, "-N", "--",
            validate_address(address)]
        try:
            # Not _process.run: the backgrounded master keeps inherited pipes open, so its
            # output goes to a log file and nothing is captured.
            proc = subprocess.run(master, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=self.ssh.connect_timeout + 30,
                                  check=False)
        except subprocess.TimeoutExpired:
            shutil.rmtree(directory, ignore_errors=True)
            raise VirtopsError("ssh to %s did not connect within %ss"
                               % (address, self.ssh.connect_timeout + 30))
        if proc.returncode != 0 or not os.path.exists(control):
            try:
                with open(log, encoding="utf-8", errors="replace") as handle:
                    message = handle.read().strip()[-500:]
            except OSError:
                message = ""
            shutil.rmtree(directory, ignore_errors=True)
            raise VirtopsError("ssh to %s failed: %s (is the peer trusted and its host key in "
                               "known_hosts? see roles/compute_host)"
                               % (address, message or "rc=%d" % proc.returncode))
        plain = self.ssh
        self.ssh = SshConfig(user=plain.user, key=plain.key, options=plain.options,
                             connect_timeout=plain.connect_timeout, control_path=control)
        try:
            yield
        finally:
            self.ssh = plain
            run([self.ssh_binary, "-o", "ControlPath=%s" % control, "-O", "exit", "--",
                 validate_address(address)], check=False, timeout=30)
            shutil.rmtree(directory, ignore_errors=True)

    @property
    def ssh_binary(self) -> str:
        if self._ssh_binary is None:
            self._ssh_binary = find_binary("ssh")
        return self._ssh_binary

    @property
    def rsync_binary(self) -> str:
        if self._rsync_binary is None:
            self._rsync_binary = find_binary("rsync")
        return self._rsync_binary

    def remote(self, address: str, argv: Sequence[str], what: str, check: bool = True,
               timeout: Optional[float] = None):
        """Run ``argv`` on ``address``. ssh's own failures (rc 255) always raise."""
        full = self.ssh.command(address, argv, self.ssh_binary)
        result = run(full, check=False, timeout=timeout or self.ssh.connect_timeout + 60)
        if result.rc == SSH_FAILURE_RC:
            raise VirtopsError("%s: ssh to %s failed: %s (is the peer trusted and its host key "
                               "in known_hosts? see roles/compute_host)"
                               % (what, address, result.stderr.strip()[-500:]),
                               rc=result.rc, stderr=result.stderr[-2000:])
        if check and result.rc != 0:
            raise VirtopsError("%s on %s failed (rc=%d): %s"
                               % (what, address, result.rc, result.stderr.strip()[-500:]),
                               rc=result.rc, stderr=result.stderr[-2000:])
        return result

    def make_dir(self, address: str, path: str) -> None:
        self.remote(address, ["mkdir", "-p", "-m", "0755", path],
                    "creating the instance directory %s" % path)

    def remove_instance_dir(self, address: str, path: str) -> None:
        """``rm -rf`` of an instance directory on a peer (only ``<instances_path>/<uuid>``)."""
        validate_uuid(os.path.basename(path.rstrip("/")))
        if not os.path.isabs(path):
            raise VirtopsError("refusing to remove the relative path %r" % path)
        self.remote(address, ["rm", "-rf", "--", path], "removing %s" % path)

    def is_storage_shared(self, address: str, remote_dir: str, local_dir: str) -> bool:
        """Nova's test: create a temp file on the peer; shared when it shows up here."""
        name = SHARED_TEST_PREFIX + secrets.token_hex(8) + ".tmp"
        remote_path = os.path.join(remote_dir, name)
        local_path = os.path.join(local_dir, name)
        self.remote(address, ["touch", remote_path],
                    "testing for shared instance storage (touch %s)" % remote_path)
        if os.path.exists(local_path):
            os.unlink(local_path)
            return True
        self.remote(address, ["rm", "-f", "--", remote_path], "removing the storage test file",
                    check=False)
        return False

    def copy(self, sources: Sequence[str], destination: str, compress: bool,
             remote: bool = True) -> CopyStats:
        """rsync ``sources`` into ``destination``; local copy when ``remote`` is false."""
        argv = rsync_argv(sources, destination, compress, self.ssh if remote else None,
                          self.rsync_binary, self.ssh_binary if remote else "ssh",
                          self.io_timeout)
        started = time.monotonic()
        result = run(argv, check=False)
        seconds = time.monotonic() - started
        if result.rc != 0:
            raise VirtopsError("copying %s to %s failed (rsync rc=%d): %s"
                               % (", ".join(os.path.basename(s) for s in sources), destination,
                                  result.rc, result.stderr.strip()[-1000:]),
                               rc=result.rc, stderr=result.stderr[-4000:])
        numbers = parse_rsync_stats(result.stdout)
        return CopyStats(files=[os.path.basename(s) for s in sources], compressed=compress,
                         seconds=seconds, **numbers)

    def pull(self, address: str, remote_path: str, local_path: str,
             compress: bool = False) -> CopyStats:
        """rsync one file from a peer (``address:remote_path``) to ``local_path``."""
        if not os.path.isabs(remote_path) or not os.path.isabs(local_path):
            raise VirtopsError("pull needs absolute paths, got %r and %r"
                               % (remote_path, local_path))
        argv = rsync_argv([remote_spec(address, remote_path)], local_path, compress, self.ssh,
                          self.rsync_binary, self.ssh_binary, self.io_timeout,
                          remote_sources=True)
        started = time.monotonic()
        result = run(argv, check=False)
        if result.rc != 0:
            raise VirtopsError("copying %s from %s failed (rsync rc=%d): %s"
                               % (remote_path, address, result.rc, result.stderr.strip()[-1000:]),
                               rc=result.rc)
        return CopyStats(files=[os.path.basename(remote_path)], compressed=compress,
                         seconds=time.monotonic() - started, **parse_rsync_stats(result.stdout))


@dataclass
class TransferReport:
    """All copies of one migration."""
    copies: List[CopyStats] = field(default_factory=list)
    allocated_bytes: int = 0

    @property
    def bytes_sent(self) -> int:
        return sum(c.bytes_sent for c in self.copies)

    @property
    def total_size(self) -> int:
        return sum(c.total_size for c in self.copies)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.copies)

    def to_dict(self) -> dict:
        return {"copies": [c.to_dict() for c in self.copies], "bytes_sent": self.bytes_sent,
                "total_size": self.total_size, "allocated_bytes": self.allocated_bytes,
                "seconds": round(self.seconds, 3)}


def allocated_bytes(path: str) -> int:
    """Bytes the file really occupies (holes excluded)."""
    return os.stat(path).st_blocks * 512
