# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RBD image backend: Nova's ``imagebackend.Rbd`` over ``storage/rbd_utils.RBDDriver``,
with the ``rbd`` command instead of librbd's Python binding.

How Nova makes an instance's root disk with ``images_type = rbd`` (``Rbd.cache`` →
``Rbd.create_image``, Liberty through current):

1. If ``<pool>/<uuid>_disk`` exists, it is used as it is (``check_image_exists``).
2. Otherwise ``Rbd.clone`` tries a copy-on-write clone: the image must be ``raw`` (or ``iso``),
   else ``ImageUnacceptable("Image is not raw format")``; then for each Glance location,
   ``RBDDriver.is_cloneable`` requires an ``rbd://<fsid>/<pool>/<image>/<snapshot>`` URL
   (``parse_url``: four non-empty, URL-quoted parts), the same fsid as this cluster's, and the
   snapshot readable by this host's user; the first such location is cloned
   (``RBDDriver.clone``: ``pool/image@snap`` → ``<pool>/<uuid>_disk``).
3. If no clone was possible, ``clone_fallback_to_fetch`` fetches the image to ``_base``
   (``fetch_to_raw``: inspect, convert to raw) and ``RBDDriver.import_image`` runs
   ``rbd import --image-format=2`` of that file as ``<uuid>_disk``.
4. The image is grown to the flavor's root disk when it is smaller (``RBDDriver.resize``);
   never shrunk, and no ``fallocate`` (Rbd has no preallocation).

The config drive is built locally and imported as ``<uuid>_disk.config``, then the local file
removed (``LibvirtDriver._create_configdrive`` with rbd). Deleting an instance removes the
pool's images whose names start with its uuid (``LibvirtDriver._cleanup_rbd``), and only those;
a root disk that still has the resize snapshot loses that snapshot first
(``RBDDriver._destroy_volume`` on ``ImageHasSnapshots``).

Cold migration and resize move no disk: every host of the cluster sees the same images. Nova
keeps the way back with a snapshot of the root disk, ``nova-resize``
(``libvirt_utils.RESIZE_SNAPSHOT_NAME``): the destination's ``finish_migration`` takes it
(``_create_image`` while the task is ``resize_finish``) before growing the image; a revert rolls
the image back to it and removes it (``finish_revert_migration``: ``rollback_to_snap``,
``remove_snap``); a confirm removes it (``_cleanup_resize``). :func:`take_resize_snapshot`,
:func:`roll_back_to_resize_snapshot` and :func:`drop_resize_snapshot` are those three steps.

:func:`plan_root` is step 2's decision, pure and unit-tested; :class:`RbdCli` is the command
wrapper (one method per verb, argv lists, the host's ``ceph.conf`` and user on every call);
:func:`ensure_root` runs steps 1–4 with the fetch of step 3 injected.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple
from urllib.parse import unquote

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._common.process import Result, find_binary, run
from ansible_collections.virtops.compute.plugins.module_utils._common.validate import strict_int
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import CONFIG_DRIVE, ROOT_DISK
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RbdSettings, rbd_image_name

URL_PREFIX = "rbd://"
# Formats Nova's Rbd.clone accepts: a clone shares the parent's bytes, so only a format the
# guest reads as-is can be cloned.
CLONEABLE_FORMATS = ("raw", "iso")
ENOENT = 2  # rbd exits with the errno: 2 when the pool, image or snapshot does not exist
# Nova's libvirt_utils.RESIZE_SNAPSHOT_NAME: the root disk as it was before a move.
RESIZE_SNAPSHOT = "nova-resize"
TIMEOUT = 600.0
WATCH_TIMEOUT = 40.0   # a gone client's watch lasts osd_client_watch_timeout (30 s)

Runner = Callable[..., Result]


@dataclass(frozen=True)
class RbdLocation:
    """Where Glance's rbd store keeps an image: ``rbd://<fsid>/<pool>/<image>/<snapshot>``."""

    fsid: str
    pool: str
    image: str
    snapshot: str

    @classmethod
    def parse(cls, url: str) -> "RbdLocation":
        """Nova's ``RBDDriver.parse_url``: the ``rbd://`` prefix, then exactly four non-empty
        parts separated by ``/``, each URL-unquoted; anything else is not an rbd location."""
        if not isinstance(url, str) or not url.startswith(URL_PREFIX):
            raise VirtopsError("not stored in rbd: %r" % (url,))
        pieces = [unquote(piece) for piece in url[len(URL_PREFIX):].split("/")]
        if len(pieces) != 4 or "" in pieces:
            raise VirtopsError("not an rbd location of the form rbd://<fsid>/<pool>/<image>/<snapshot>: %r" % url)
        return cls(*pieces)

    @property
    def snap_spec(self) -> str:
        """``pool/image@snapshot``, as ``rbd`` names a snapshot."""
        return "%s/%s@%s" % (self.pool, self.image, self.snapshot)


@dataclass(frozen=True)
class RootPlan:
    """How the root disk is made when it does not exist yet: a clone of ``source``, or an
    import of the fetched, raw base (``source`` None); ``reason`` says why not a clone."""

    source: Optional[RbdLocation]
    reason: str = ""

    @property
    def clone(self) -> bool:
        return self.source is not None


def plan_root(disk_format: str, locations: Sequence[str], cluster_fsid: str) -> RootPlan:
    """Nova's ``Rbd.clone`` + ``RBDDriver.is_cloneable`` without the access check (that is
    :meth:`RbdCli.readable`, done when the plan runs): the first location in this cluster, for
    a raw or iso image; otherwise an import, with the reason."""
    if disk_format not in CLONEABLE_FORMATS:
        return RootPlan(None, "the image is %s, not raw: it is fetched, converted to raw and imported" % disk_format)
    reasons: List[str] = []
    for url in locations:
        try:
            location = RbdLocation.parse(url)
        except VirtopsError as exc:
            reasons.append(exc.msg)
            continue
        if location.fsid != cluster_fsid:
            reasons.append("%s is in cluster %s, not this host's %s" % (url, location.fsid, cluster_fsid))
            continue
        return RootPlan(location)
    return RootPlan(None, "; ".join(reasons) or "the image has no rbd location")


@dataclass(frozen=True)
class RbdImageInfo:
    """What ``rbd info --format json`` says: size in bytes and, for a clone, its parent."""

    name: str
    size: int
    parent: Optional[Tuple[str, str, str]] = None  # (pool, image, snapshot)

    @classmethod
    def from_json(cls, doc: dict) -> "RbdImageInfo":
        parent = doc.get("parent")
        return cls(name=str(doc["name"]), size=int(doc["size"]),
                   parent=(parent["pool"], parent["image"], parent["snapshot"]) if parent else None)


@dataclass(frozen=True)
class PoolCapacity:
    """The instance pool's room in bytes and where the figures come from."""

    total_bytes: int
    free_bytes: int
    used_bytes: int
    source: str

    def to_dict(self) -> dict:
        return {"total_bytes": self.total_bytes, "free_bytes": self.free_bytes, "used_bytes": self.used_bytes,
                "source": self.source}


class RbdCli:
    """``rbd`` found once, always with the host's ``--conf`` and ``--id``; one method per verb.
    Image names are relative to the settings' pool."""

    def __init__(self, settings: RbdSettings, binary: Optional[str] = None, ceph_binary: Optional[str] = None,
                 runner: Runner = run, keyring: Optional[str] = None) -> None:
        self.settings = settings
        self.binary = binary or find_binary("rbd")
        self._ceph_binary = ceph_binary
        self._run = runner
        self._keyring = keyring

    def _client_args(self) -> List[str]:
        args = ["--conf", self.settings.ceph_conf, "--id", self.settings.user]
        if self._keyring:
            args += ["--keyring", self._keyring]
        return args

    def argv(self, *args: str) -> List[str]:
        return [self.binary] + self._client_args() + list(args)

    def spec(self, name: str) -> str:
        return "%s/%s" % (self.settings.pool, name)

    def _call(self, verb: str, args: Sequence[str], missing_ok: bool = False) -> Optional[str]:
        result = self._run(self.argv(*args), check=False, timeout=TIMEOUT, env={"LC_ALL": "C"})
        if result.rc == 0:
            return result.stdout
        if missing_ok and result.rc == ENOENT:
            return None
        raise VirtopsError("rbd %s failed (rc=%d): %s" % (verb, result.rc, result.stderr.strip()[-2000:] or "no message"),
                           argv=list(result.argv), rc=result.rc)

    # -- verbs -----------------------------------------------------------------------------
    def _ceph_json(self, args: Sequence[str]):
        """``ceph <args> --format json`` as this host's user, parsed."""
        binary = self._ceph_binary or find_binary("ceph")
        result = self._run([binary] + self._client_args() + list(args) + ["--format", "json"], check=False, timeout=60,
                           env={"LC_ALL": "C"})
        if result.rc != 0:
            raise VirtopsError("ceph %s failed with %s (rc=%d): %s"
                               % (" ".join(args), self.settings.ceph_conf, result.rc, result.stderr.strip()[-2000:]),
                               argv=list(result.argv), rc=result.rc)
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise VirtopsError("ceph %s gave unparseable output: %r" % (" ".join(args), result.stdout[:200]))

    def fsid(self) -> str:
        """The cluster's fsid (librados ``get_fsid``, which Nova compares with a location's):
        ``ceph fsid``, allowed by the ``profile rbd`` monitor caps."""
        try:
            return str(self._ceph_json(["fsid"])["fsid"])
        except (KeyError, TypeError):
            raise VirtopsError("ceph fsid gave no fsid (with %s)" % self.settings.ceph_conf)

    def monitors(self) -> List[str]:
        """The monitors as ``address:port``, legacy (v1) addresses: Nova's
        ``RBDDriver.get_mon_addrs`` (``mon dump``), what the disks' ``<host>`` elements name."""
        doc = self._ceph_json(["mon", "dump"])
        found = []
        try:
            for mon in doc["mons"]:
                vector = (mon.get("public_addrs") or {}).get("addrvec") or []
                legacy = [entry["addr"] for entry in vector if entry.get("type") == "v1"]
                found.append(legacy[0] if legacy else str(mon["addr"]).split("/", 1)[0])
        except (KeyError, TypeError, IndexError):
            raise VirtopsError("ceph mon dump gave no monitors: %r" % (doc,))
        if not found:
            raise VirtopsError("ceph mon dump lists no monitor")
        return found

    def pool_capacity(self) -> "PoolCapacity":
        """The pool's room, as Nova's ``RBDDriver.get_pool_info`` reads it for the resource
        tracker (``ceph df``: the cluster's ``total_bytes``, the pool's ``max_avail`` and
        ``bytes_used``).

        ``ceph df`` comes from the manager's statistics; a cluster without ``ceph-mgr`` (the
        tests' cluster) answers with no pools. Then the room is estimated from what the
        monitor knows: the OSDs' BlueStore sizes (``osd metadata``) over the pool's replica
        count, up to the full ratio (``osd dump``), less the provisioned size of every image
        in the pool (``rbd ls -l``; thin images count whole, so the estimate errs low)."""
        df = self._ceph_json(["df"])
        for pool in (df.get("pools") or []) if isinstance(df, dict) else []:
            if pool.get("name") == self.settings.pool:
                stats = pool.get("stats") or {}
                return PoolCapacity(total_bytes=int(df["stats"]["total_bytes"]), free_bytes=int(stats["max_avail"]),
                                    used_bytes=int(stats["bytes_used"]), source="ceph df")
        dump = self._ceph_json(["osd", "dump"])
        pools = [pool for pool in dump.get("pools") or [] if pool.get("pool_name") == self.settings.pool]
        if not pools:
            raise VirtopsError("Ceph has no pool %s (the rbd settings' pool)" % self.settings.pool)
        serving = {osd["osd"] for osd in dump.get("osds") or [] if osd.get("up") and osd.get("in")}
        raw = sum(int(meta.get("bluestore_bdev_size") or 0) for meta in self._ceph_json(["osd", "metadata"])
                  if meta.get("id") in serving)
        usable = int(raw * float(dump.get("full_ratio") or 0.95) / max(1, int(pools[0].get("size") or 1)))
        used = sum(int(entry.get("size") or 0) for entry in json.loads(
            self._call("ls", ["ls", "-l", "--format", "json", self.settings.pool]) or "[]") if "snapshot" not in entry)
        return PoolCapacity(total_bytes=usable, free_bytes=max(0, usable - used), used_bytes=used,
                            source="osd metadata (no pool statistics: the cluster has no ceph-mgr)")

    def snapshot_size(self, location: RbdLocation) -> Optional[int]:
        """The size of the snapshot ``location`` names (what a clone starts with), or None when
        this user cannot open it."""
        result = self._run(self.argv("info", "--format", "json", location.snap_spec), check=False, timeout=TIMEOUT,
                           env={"LC_ALL": "C"})
        if result.rc != 0:
            return None
        try:
            return int(json.loads(result.stdout)["size"])
        except (ValueError, KeyError, TypeError):
            raise VirtopsError("rbd info gave unparseable output for %s: %r" % (location.snap_spec, result.stdout[:200]))

    def info(self, name: str) -> Optional[RbdImageInfo]:
        """The image ``<pool>/<name>``, or None when it does not exist."""
        out = self._call("info", ["info", "--format", "json", self.spec(name)], missing_ok=True)
        if out is None:
            return None
        try:
            return RbdImageInfo.from_json(json.loads(out))
        except (ValueError, KeyError, TypeError):
            raise VirtopsError("rbd info gave unparseable output for %s: %r" % (self.spec(name), out[:200]))

    def readable(self, location: RbdLocation) -> bool:
        """Whether this user can open the snapshot (Nova's ``_is_cloneable`` opens it
        read-only); False when it is missing or the caps refuse it."""
        result = self._run(self.argv("info", "--format", "json", location.snap_spec), check=False, timeout=TIMEOUT,
                           env={"LC_ALL": "C"})
        return result.rc == 0

    def clone(self, location: RbdLocation, name: str) -> None:
        """``rbd clone pool/image@snap <pool>/<name>``: a copy-on-write child of the snapshot."""
        self._call("clone", ["clone", location.snap_spec, self.spec(name)])

    def import_image(self, path: str, name: str) -> None:
        """``rbd import --image-format 2 path <pool>/<name>`` (Nova's ``import_image``)."""
        self._call("import", ["import", "--no-progress", "--image-format", "2", path, self.spec(name)])

    def resize(self, name: str, size_bytes: int) -> bool:
        """Grow ``<pool>/<name>`` to ``size_bytes``; never shrink. True when it changed."""
        wanted = strict_int(size_bytes, "disk size", minimum=1, text=None, hint="a positive number of bytes")
        current = self.info(name)
        if current is None:
            raise VirtopsError("cannot resize %s: no such rbd image" % self.spec(name))
        if wanted < current.size:
            raise VirtopsError("refusing to shrink %s from %d to %d bytes: disks only grow" % (self.spec(name), current.size, wanted),
                               current_size=current.size, requested_size=wanted)
        if wanted == current.size:
            return False
        self._call("resize", ["resize", "--no-progress", "--size", "%dB" % wanted, self.spec(name)])
        return True

    def remove(self, name: str) -> bool:
        """Remove ``<pool>/<name>``; False when there was none."""
        return self._call("rm", ["rm", "--no-progress", self.spec(name)], missing_ok=True) is not None

    def snapshots(self, name: str) -> List[str]:
        """The names of the snapshots of ``<pool>/<name>`` (``rbd snap ls``)."""
        out = self._call("snap ls", ["snap", "ls", "--format", "json", self.spec(name)])
        try:
            return [str(snap["name"]) for snap in json.loads(out or "[]")]
        except (ValueError, KeyError, TypeError):
            raise VirtopsError("rbd snap ls gave unparseable output for %s: %r" % (self.spec(name), (out or "")[:200]))

    def create_snap(self, name: str, snapshot: str) -> None:
        """``rbd snap create <pool>/<name>@<snapshot>`` (Nova's ``RBDDriver.create_snap``)."""
        self._call("snap create", ["snap", "create", "%s@%s" % (self.spec(name), snapshot)])

    def remove_snap(self, name: str, snapshot: str) -> bool:
        """``rbd snap rm``; False when there was no such snapshot (Nova's ``remove_snap``)."""
        if snapshot not in self.snapshots(name):
            return False
        self._call("snap rm", ["snap", "rm", "--no-progress", "%s@%s" % (self.spec(name), snapshot)])
        return True

    def rollback_to_snap(self, name: str, snapshot: str) -> None:
        """``rbd snap rollback``: the image's data and size as they were at the snapshot (Nova's
        ``RBDDriver.rollback_to_snap``)."""
        self._call("snap rollback", ["snap", "rollback", "--no-progress", "%s@%s" % (self.spec(name), snapshot)])

    def watchers(self, name: str) -> List[str]:
        """The clients that have ``<pool>/<name>`` open (``rbd status``: a running guest's QEMU)."""
        out = self._call("status", ["status", "--format", "json", self.spec(name)])
        try:
            return [str(watcher.get("address")) for watcher in json.loads(out or "{}").get("watchers") or []]
        except (ValueError, AttributeError, TypeError):
            raise VirtopsError("rbd status gave unparseable output for %s: %r" % (self.spec(name), (out or "")[:200]))

    def list(self) -> List[str]:
        """The names of the pool's images."""
        out = self._call("ls", ["ls", "--format", "json", self.settings.pool])
        try:
            return [str(name) for name in json.loads(out or "[]")]
        except ValueError:
            raise VirtopsError("rbd ls gave unparseable output: %r" % (out or "")[:200])

    def instance_images(self, instance_uuid: str) -> List[str]:
        """The pool's images of one instance (``<uuid>_disk``, ``<uuid>_disk.config``, ...):
        Nova's ``_cleanup_rbd`` filter, names starting with the uuid and ``_``."""
        prefix = "%s_" % instance_uuid
        return sorted(name for name in self.list() if name.startswith(prefix))


def root_name(instance_uuid: str) -> str:
    """``<uuid>_disk``, Nova's rbd name of the root disk."""
    return rbd_image_name(instance_uuid, ROOT_DISK)


def config_name(instance_uuid: str) -> str:
    """``<uuid>_disk.config``, Nova's rbd name of the config drive."""
    return rbd_image_name(instance_uuid, CONFIG_DRIVE)


@dataclass(frozen=True)
class RootOutcome:
    """What :func:`ensure_root` did: ``made`` is ``existing``, ``clone`` or ``import``;
    ``reason`` why not a clone; ``resized`` whether it grew."""

    made: str
    resized: bool
    reason: str = ""
    parent: Optional[RbdLocation] = None


def ensure_root(cli: RbdCli, instance_uuid: str, plan: RootPlan, fetch_raw_base: Callable[[], str],
                size_bytes: Optional[int]) -> RootOutcome:
    """Nova's ``Rbd.create_image`` for the root disk: keep an existing ``<uuid>_disk``; else
    clone per ``plan`` when the snapshot is readable, else import the raw base that
    ``fetch_raw_base`` returns (fetched, inspected and converted by the image cache); then grow
    it to ``size_bytes`` (None or 0: the image's own size)."""
    name = root_name(instance_uuid)
    made, reason, parent = "existing", plan.reason, None
    if cli.info(name) is None:
        if plan.source is not None and cli.readable(plan.source):
            cli.clone(plan.source, name)
            made, parent = "clone", plan.source
        else:
            if plan.source is not None:
                reason = "%s cannot be read as %s" % (plan.source.snap_spec, cli.settings.user)
            cli.import_image(fetch_raw_base(), name)
            made = "import"
    resized = bool(size_bytes) and cli.resize(name, int(size_bytes or 0))
    return RootOutcome(made=made, resized=resized, reason=reason, parent=parent)


def import_config_drive(cli: RbdCli, instance_uuid: str, local_path: str, remove_local: Callable[[str], None]) -> None:
    """Nova's rbd config drive: the locally built image becomes ``<uuid>_disk.config``
    (replacing an older one: it is rebuilt from the same inputs), then the local copy goes."""
    name = config_name(instance_uuid)
    cli.remove(name)
    cli.import_image(local_path, name)
    remove_local(local_path)


def remove_instance_images(cli: RbdCli, instance_uuid: str) -> List[str]:
    """Remove every image of the instance from the pool, and nothing else; returns their names.
    An image held back by the resize snapshot (a server deleted before its resize was
    confirmed or reverted) loses that snapshot and is removed, as Nova's ``_destroy_volume``
    does; any other snapshot keeps the image, and the error says so."""
    removed = []
    for name in cli.instance_images(instance_uuid):
        try:
            gone = cli.remove(name)
        except VirtopsError:
            if not cli.remove_snap(name, RESIZE_SNAPSHOT):
                raise
            gone = cli.remove(name)
        if gone:
            removed.append(name)
    return removed


# --------------------------------------------------------------------------- moves

@dataclass(frozen=True)
class SnapshotStep:
    """What one of the resize snapshot's steps did to ``<pool>/<uuid>_disk``: ``done`` is
    False when there was nothing to do; ``spec`` names the snapshot."""

    done: bool
    spec: str
    size: Optional[int] = None   # the root disk's size afterwards, when known


def resize_snapshot_spec(cli: RbdCli, instance_uuid: str) -> str:
    return "%s@%s" % (cli.spec(root_name(instance_uuid)), RESIZE_SNAPSHOT)


def take_resize_snapshot(cli: RbdCli, instance_uuid: str, check_mode: bool = False) -> SnapshotStep:
    """The destination's ``finish_migration``: snapshot the root disk as ``nova-resize`` before
    it grows. One already there is kept: it is this move's (the source refuses to start a
    move while a ``nova-resize`` snapshot exists), taken by a finish that is being re-run."""
    name = root_name(instance_uuid)
    if RESIZE_SNAPSHOT in cli.snapshots(name):
        return SnapshotStep(False, resize_snapshot_spec(cli, instance_uuid))
    if not check_mode:
        cli.create_snap(name, RESIZE_SNAPSHOT)
    return SnapshotStep(True, resize_snapshot_spec(cli, instance_uuid))


def roll_back_to_resize_snapshot(cli: RbdCli, instance_uuid: str, check_mode: bool = False,
                                 watch_timeout: float = WATCH_TIMEOUT,
                                 sleep: Callable[[float], None] = time.sleep,
                                 clock: Callable[[], float] = time.monotonic) -> SnapshotStep:
    """``finish_revert_migration`` with rbd: the root disk back to ``nova-resize`` (its data and
    its size), then the snapshot removed. Refused while any client still has the image open
    (the destination's QEMU: revert there first), since rolling back under a running guest
    would corrupt it; a watch of a client that just went away is waited out, up to
    ``watch_timeout`` seconds (the OSDs drop a dead client's watch after
    ``osd_client_watch_timeout``, 30 s). No snapshot: the move never reached the destination's
    finish, so the disk was never grown or written there, and there is nothing to roll back."""
    name = root_name(instance_uuid)
    if RESIZE_SNAPSHOT not in cli.snapshots(name):
        return SnapshotStep(False, resize_snapshot_spec(cli, instance_uuid))
    users = cli.watchers(name)
    deadline = clock() + watch_timeout
    while users and not check_mode and clock() < deadline:
        sleep(1.0)
        users = cli.watchers(name)
    if users:
        raise VirtopsError("%s is still open by %s: the destination's guest? Revert there first (revert_dest), then "
                           "roll back" % (cli.spec(name), ", ".join(users)), watchers=users)
    if not check_mode:
        cli.rollback_to_snap(name, RESIZE_SNAPSHOT)
        cli.remove_snap(name, RESIZE_SNAPSHOT)
    info = cli.info(name)
    return SnapshotStep(True, resize_snapshot_spec(cli, instance_uuid), info.size if info is not None else None)


def drop_resize_snapshot(cli: RbdCli, instance_uuid: str, check_mode: bool = False) -> SnapshotStep:
    """``_cleanup_resize`` with rbd (confirm): remove ``nova-resize``; the way back is gone."""
    name = root_name(instance_uuid)
    if cli.info(name) is None or RESIZE_SNAPSHOT not in cli.snapshots(name):
        return SnapshotStep(False, resize_snapshot_spec(cli, instance_uuid))
    if not check_mode:
        cli.remove_snap(name, RESIZE_SNAPSHOT)
    return SnapshotStep(True, resize_snapshot_spec(cli, instance_uuid))
