# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vm_migrate's rules without libvirt: shrink refusal, what is copied and how, ssh/rsync
argv safety, the migration record, and the prep/migrate/revert/confirm record logic on a
temporary instances path (real qemu-img and rsync on tmp files; no domain is involved)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import tempfile
import uuid

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.errors import VirtopsError
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)
from ansible_collections.virtops.compute.plugins.module_utils._migration.migrate import (
    FinishPhase, Migration, MigrateParams, check_no_shrink, dest_record, disk_formats, recorded_identity,
    run_phase, transfer_groups)
from ansible_collections.virtops.compute.plugins.module_utils._migration.transport import (
    SshConfig, Transport, check_ssh_option, parse_rsync_stats, remote_spec, rsync_argv,
    validate_address)

GIB = 1024 ** 3
TINY = Flavor.from_dict({"name": "m1.tiny", "vcpus": 1, "ram_mb": 128, "root_gb": 1})
SMALL = Flavor.from_dict({"name": "m1.small", "vcpus": 2, "ram_mb": 256, "root_gb": 2,
                          "swap_mb": 64})
EPH = Flavor.from_dict({"name": "m1.eph", "vcpus": 1, "ram_mb": 128, "root_gb": 2,
                        "ephemeral_gb": 2})


def qemu_img(*args):
    subprocess.run(["qemu-img"] + [str(a) for a in args], check=True, capture_output=True)


def source_record(flavor=TINY, vm_state="active", host="c1"):
    rec = InstanceRecord(uuid=str(uuid.uuid4()), name="web1", flavor=flavor, host=host,
                         image={"id": "img", "url": "file:///nonexistent", "disk_format": "qcow2"})
    rec.set_state(vm_state, None)
    return rec


def params(tmp_path, phase, **over) -> MigrateParams:
    values = {"phase": phase, "host": "c2", "address": "10.0.0.2",
              "instances_path": str(tmp_path), "source_address": "10.0.0.1"}
    values.update(over)
    return MigrateParams(**values)


# ------------------------------------------------------------------ the rules

def test_shrinking_root_or_ephemeral_is_refused_with_novas_message():
    with pytest.raises(VirtopsError) as err:
        check_no_shrink(SMALL, TINY)
    assert err.value.msg.startswith("Unable to resize disk down.")
    assert err.value.details["problems"] == ["root disk 2 GiB -> 1 GiB"]
    with pytest.raises(VirtopsError, match="ephemeral disk 2 GiB -> 0 GiB"):
        check_no_shrink(EPH, SMALL)
    check_no_shrink(TINY, SMALL)        # growing is fine
    check_no_shrink(TINY, TINY)         # a plain migration too


def test_a_root_disk_bigger_than_the_new_flavor_is_refused_too():
    image_sized = Flavor.from_dict({"name": "f0", "vcpus": 1, "ram_mb": 64, "root_gb": 0})
    with pytest.raises(VirtopsError, match="Unable to resize disk down.*holds"):
        check_no_shrink(image_sized, TINY, root_virtual_size=3 * GIB)
    check_no_shrink(image_sized, TINY, root_virtual_size=GIB)


def test_swap_is_never_copied_and_only_qcow2_goes_uncompressed(tmp_path):
    big = 5 * 1024 * 1024
    for name in ("disk", "disk.local", "disk.swap", "disk.config"):
        with open(tmp_path / name, "wb") as handle:
            handle.truncate(big)
    for name in ("disk.info", "libvirt.xml", "console.log"):
        (tmp_path / name).write_bytes(b"x")
    formats = {"disk": "qcow2", "disk.local": "raw", "disk.swap": "qcow2"}
    groups = transfer_groups(str(tmp_path), formats)
    assert groups == [([str(tmp_path / n) for n in ("disk", "disk.info", "libvirt.xml")], False),
                      ([str(tmp_path / n) for n in ("disk.config", "disk.local")], True)]


def test_small_files_ride_along_to_save_an_rsync_run(tmp_path):
    with open(tmp_path / "disk", "wb") as handle:
        handle.truncate(5 * 1024 * 1024)
    for name in ("disk.config", "disk.info", "libvirt.xml"):
        (tmp_path / name).write_bytes(b"x" * 1000)
    assert transfer_groups(str(tmp_path), {"disk": "qcow2", "disk.config": "raw"}) == [
        ([str(tmp_path / n) for n in ("disk", "disk.config", "disk.info", "libvirt.xml")], False)]
    # A raw root disk (flat backend): everything goes compressed, in one run.
    assert transfer_groups(str(tmp_path), {"disk": "raw", "disk.config": "raw"}) == [
        ([str(tmp_path / n) for n in ("disk", "disk.config", "disk.info", "libvirt.xml")], True)]


def test_disk_info_is_read_by_file_name_whatever_host_wrote_it(tmp_path):
    (tmp_path / "disk.info").write_text(json.dumps({
        "/elsewhere/instances/u/disk": "qcow2", "/elsewhere/instances/u/disk.config": "raw"}))
    assert disk_formats(str(tmp_path)) == {"disk": "qcow2", "disk.config": "raw"}


def test_migration_record_round_trips_and_refuses_unknown_status():
    mig = Migration(id="m1", instance_uuid=str(uuid.uuid4()), migration_type="resize",
                    source_host="c1", dest_host="c2", source_address="a", dest_address="b",
                    source_instances_path="/i", dest_instances_path="/i",
                    old_flavor=TINY.to_dict(), new_flavor=SMALL.to_dict(), old_vm_state="active")
    assert Migration.from_dict(json.loads(json.dumps(mig.to_dict()))) == mig
    with pytest.raises(VirtopsError, match="unknown migration status"):
        Migration.from_dict(dict(mig.to_dict(), status="migrated"))
    with pytest.raises(VirtopsError, match="no id"):
        Migration.from_dict({"status": "finished"})


def test_the_destination_record_holds_the_new_flavor_and_keeps_the_old():
    src = source_record()
    mig = Migration(id="m1", instance_uuid=src.uuid, migration_type="resize", source_host="c1",
                    dest_host="c2", source_address="a", dest_address="b",
                    source_instances_path="/i", dest_instances_path="/i",
                    old_flavor=TINY.to_dict(), new_flavor=SMALL.to_dict(), old_vm_state="active")
    rec = dest_record(src, mig, "c2")
    assert (rec.flavor, rec.new_flavor, rec.old_flavor) == (SMALL, SMALL, TINY)
    assert (rec.host, rec.task_state, rec.vm_state, rec.old_vm_state) == (
        "c2", "resize_prep", "active", "active")
    assert rec.migration["id"] == "m1" and src.flavor == TINY and src.host == "c1"


# ------------------------------------------------------------------ ssh and rsync

def test_ssh_always_verifies_host_keys_and_never_prompts():
    argv = SshConfig(key="/root/.ssh/id_virtops_migration", options=("Port=2222",)).command(
        "10.0.0.2", ["touch", "/var/lib/virtops/instances/a b"])
    assert argv[:9] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                        "-o", "ConnectTimeout=10", "-l", "root"]
    assert argv[9:15] == ["-i", "/root/.ssh/id_virtops_migration", "-o", "IdentitiesOnly=yes",
                          "-o", "Port=2222"]
    assert argv[15:17] == ["--", "10.0.0.2"]
    # The remote shell gets one string; each argument is quoted.
    assert shlex.split(argv[17]) == ["touch", "/var/lib/virtops/instances/a b"]


@pytest.mark.parametrize("option", [
    "StrictHostKeyChecking=no", "stricthostkeychecking=accept-new", "BatchMode=no",
    "UserKnownHostsFile=/dev/null", "UserKnownHostsFile=/dev/./null", "LocalCommand=id",
    "ProxyCommand=nc%h%p", "KnownHostsCommand=/bin/true", "ProxyJump=evil", "ControlPath=/tmp/x",
    "GlobalKnownHostsFile=/dev/null", "PermitLocalCommand=yes", "SendEnv=LANG",
    "LogLevel=DEBUG3"])
def test_ssh_options_off_the_allow_list_are_refused_naming_the_option_and_the_list(option):
    with pytest.raises(VirtopsError) as exc:
        check_ssh_option(option)
    assert exc.value.msg.startswith("ssh option %s is not allowed: ssh_options takes only "
                                    "AddressFamily, BindAddress, Ciphers, Compression, "
                                    % option.split("=")[0])
    assert "ServerAliveInterval, TCPKeepAlive (host-key checking" in exc.value.msg


@pytest.mark.parametrize("option, says", [
    ("Port=22 -oProxyCommand=x", "must be Name=value without spaces or quotes"),
    ("Port='22'", "must be Name=value"), ("-oPort=22", "must be Name=value"),
    ("Port", "must be Name=value"), ("Port=", "must be Name=value"),
    ("Port=0", "Port=0: the value must be a whole number from 1 to 65535"),
    ("Port=65536", "from 1 to 65535"), ("Port=ssh", "from 1 to 65535"),
    ("ServerAliveInterval=-1", "a whole number from 0 or more"),
    ("ServerAliveCountMax=3x", "a whole number from 0 or more"),
    ("ConnectionAttempts=0", "from 1 to 10"),
    ("Compression=maybe", "Compression=maybe: the value must be one of yes, no"),
    ("TCPKeepAlive=1", "one of yes, no"), ("AddressFamily=unix", "one of any, inet, inet6"),
    ("Ciphers=aes128-ctr,,aes256-ctr", "a comma-separated list of algorithm names"),
    ("MACs=hmac-sha2-256;id", "a comma-separated list"), ("KexAlgorithms=+", "comma-separated"),
    ("IPQoS=af99", "one DSCP class"), ("IPQoS=300", "a number from 0 to 255"),
    ("BindAddress=eth0", "an IP address of this host"),
    ("ConnectTimeout=5", "is not taken in ssh_options: set it with ssh_connect_timeout "
                         "(virtops_migration_ssh_connect_timeout)"),
    ("IdentityFile=/root/.ssh/other", "set it with ssh_key (virtops_migration_ssh_key)"),
    ("User=admin", "set it with ssh_user"),
])
def test_ssh_option_values_are_checked_and_the_message_says_what_fits(option, says):
    with pytest.raises(VirtopsError) as exc:
        check_ssh_option(option)
    assert says in exc.value.msg


@pytest.mark.parametrize("option, canonical", [
    ("Port=2222", "Port=2222"), ("port=2222", "Port=2222"),
    ("ServerAliveInterval=15", "ServerAliveInterval=15"),
    ("serveralivecountmax=0", "ServerAliveCountMax=0"),
    ("Ciphers=aes128-gcm@openssh.com,aes256-ctr", "Ciphers=aes128-gcm@openssh.com,aes256-ctr"),
    ("MACs=-hmac-sha1", "MACs=-hmac-sha1"),
    ("KexAlgorithms=^curve25519-sha256", "KexAlgorithms=^curve25519-sha256"),
    ("Compression=no", "Compression=no"), ("IPQoS=throughput", "IPQoS=throughput"),
    ("IPQoS=af21", "IPQoS=af21"), ("AddressFamily=inet6", "AddressFamily=inet6"),
    ("BindAddress=fd00::1", "BindAddress=fd00::1"), ("ConnectionAttempts=3", "ConnectionAttempts=3"),
    ("TCPKeepAlive=yes", "TCPKeepAlive=yes"),
])
def test_allowed_ssh_options_pass_in_ssh_spelling(option, canonical):
    assert check_ssh_option(option) == canonical
    assert SshConfig(options=(option,)).base_argv()[-2:] == ["-o", canonical]


def test_an_ssh_config_with_one_bad_option_is_refused_whole():
    with pytest.raises(VirtopsError, match="ssh option ProxyJump is not allowed"):
        SshConfig(options=("Port=2222", "ProxyJump=jump.example"))


@pytest.mark.parametrize("address", ["-oProxyCommand=id", "a b", "host;id", "", "h`id`"])
def test_addresses_that_could_be_options_or_shell_are_refused(address):
    with pytest.raises(VirtopsError):
        validate_address(address)


def test_rsync_is_sparse_aware_and_compresses_only_when_asked():
    ssh = SshConfig(options=("ServerAliveInterval=5",))
    plain = rsync_argv(["/i/u_resize/disk"], remote_spec("10.0.0.2", "/i/u/"), False, ssh)
    assert plain[:5] == ["rsync", "--sparse", "--whole-file", "--stats", "--no-human-readable"]
    assert "--compress" not in plain and plain[-3:] == ["--", "/i/u_resize/disk", "10.0.0.2:/i/u/"]
    shell = plain[plain.index("-e") + 1]
    assert "StrictHostKeyChecking=yes" in shell and "BatchMode=yes" in shell
    packed = rsync_argv(["/i/u_resize/disk.config"], "/i/u/", True)
    assert "--compress" in packed and "-e" not in packed
    assert remote_spec("fd00::2", "/i/u/") == "[fd00::2]:/i/u/"
    with pytest.raises(VirtopsError, match="absolute"):
        rsync_argv(["disk"], "/i/u/", False)


def test_a_local_copy_keeps_holes_and_reports_what_it_sent(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    raw = src / "disk.local"
    with open(raw, "wb") as handle:
        handle.truncate(256 * 1024 * 1024)
        handle.seek(100 * 1024 * 1024)
        handle.write(os.urandom(1024 * 1024))
    qemu_img("create", "-q", "-f", "qcow2", src / "disk", "1G")
    stats = Transport(SshConfig()).copy([str(src / "disk"), str(raw)], str(dst) + "/",
                                        compress=True, remote=False)
    assert stats.files == ["disk", "disk.local"] and stats.compressed
    assert stats.total_size == os.path.getsize(raw) + os.path.getsize(src / "disk")
    assert os.path.getsize(dst / "disk.local") == 256 * 1024 * 1024
    assert os.stat(dst / "disk.local").st_blocks * 512 < 8 * 1024 * 1024      # holes kept
    assert (dst / "disk.local").read_bytes() == raw.read_bytes()
    assert 0 < stats.bytes_sent < 16 * 1024 * 1024          # zeros compressed away


def test_rsync_stats_are_parsed_as_plain_numbers():
    text = ("Total file size: 1,073,741,824 bytes\nLiteral data: 419430400 bytes\n"
            "Total bytes sent: 419,564,033\nTotal bytes received: 54\n")
    assert parse_rsync_stats(text) == {"total_size": 1073741824, "literal_bytes": 419430400,
                                       "bytes_sent": 419564033, "bytes_received": 54}


# ------------------------------------------------------------------ phases, records only

def test_prep_claims_on_the_destination_once_and_check_mode_writes_nothing(tmp_path):
    src = source_record()
    p = params(tmp_path, "prep", instance=src.to_dict(), new_flavor=SMALL.to_dict())
    would = run_phase(p, check_mode=True)
    assert would.changed and not (tmp_path / src.uuid).exists()
    done = run_phase(p)
    assert done.changed and done.migration["status"] == "pre-migrating"
    assert done.migration["migration_type"] == "resize" and not done.migration["claim_in_place"]
    rec = RecordStore(str(tmp_path)).load(src.uuid)
    assert rec.flavor == SMALL and rec.old_flavor == TINY and rec.task_state == "resize_prep"
    again = run_phase(p)
    assert not again.changed and again.migration["id"] == done.migration["id"]


def test_prep_fails_the_claim_when_the_destination_is_full(tmp_path):
    src = source_record()
    p = params(tmp_path, "prep", instance=src.to_dict(), new_flavor=SMALL.to_dict(),
               limits={"memory_mb": 600})     # 512 reserved + 256 asked > 600
    with pytest.raises(VirtopsError, match="Insufficient compute resources: Free memory"):
        run_phase(p)
    assert not (tmp_path / src.uuid).exists()


def test_prep_refuses_shrink_busy_and_same_host_moves(tmp_path):
    src = source_record(flavor=SMALL)
    with pytest.raises(VirtopsError, match="^Unable to resize disk down."):
        run_phase(params(tmp_path, "prep", instance=src.to_dict(), new_flavor=TINY.to_dict()))
    building = source_record(vm_state="building")
    with pytest.raises(VirtopsError, match="only active or stopped"):
        run_phase(params(tmp_path, "prep", instance=building.to_dict()))
    same = source_record(host="c2")
    with pytest.raises(VirtopsError, match=r"Unable to migrate instance \(.*\) to current host"):
        run_phase(params(tmp_path, "prep", instance=same.to_dict()))
    with pytest.raises(VirtopsError, match="allow_same_host is false"):
        run_phase(params(tmp_path, "prep", instance=same.to_dict(), new_flavor=SMALL.to_dict()))
    assert os.listdir(tmp_path) in ([], ["locks"])


def test_same_host_resize_claims_in_place_and_revert_releases_it(tmp_path):
    store = RecordStore(str(tmp_path))
    src = source_record(host="c2")
    store.save(src)
    p = params(tmp_path, "prep", instance=src.to_dict(), new_flavor=SMALL.to_dict(),
               allow_same_host=True)
    done = run_phase(p)
    assert done.migration["claim_in_place"] and done.migration["dest_host"] == "c2"
    rec = store.load(src.uuid)
    assert rec.flavor == TINY and rec.new_flavor == SMALL and rec.task_state == "resize_prep"
    released = run_phase(params(tmp_path, "revert_dest", migration=done.migration))
    assert released.changed and released.migration["status"] == "reverted"
    rec = store.load(src.uuid)
    assert rec.new_flavor is None and rec.task_state is None and rec.flavor == TINY
    assert not run_phase(params(tmp_path, "revert_dest", migration=done.migration)).changed


def test_migrate_refuses_a_shrink_before_anything_changes(tmp_path):
    store = RecordStore(str(tmp_path))
    image_sized = Flavor.from_dict({"name": "f0", "vcpus": 1, "ram_mb": 64, "root_gb": 0})
    src = source_record(flavor=image_sized, host="c1")
    store.save(src)
    inst = tmp_path / src.uuid
    qemu_img("create", "-q", "-f", "qcow2", inst / "disk", "3G")
    (inst / "disk.info").write_text(json.dumps({str(inst / "disk"): "qcow2"}))
    before = (inst / "instance.json").read_text()
    mig = Migration(id="m1", instance_uuid=src.uuid, migration_type="resize", source_host="c1",
                    dest_host="c2", source_address="10.0.0.1", dest_address="10.0.0.2",
                    source_instances_path=str(tmp_path), dest_instances_path=str(tmp_path),
                    old_flavor=image_sized.to_dict(), new_flavor=TINY.to_dict(),
                    old_vm_state="active")
    with pytest.raises(VirtopsError, match="^Unable to resize disk down.*holds 3221225472"):
        run_phase(params(tmp_path, "migrate", host="c1", migration=mig.to_dict()))
    assert (inst / "instance.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == sorted([src.uuid, "locks"])


def test_migrate_refuses_a_busy_instance_or_a_changed_flavor(tmp_path):
    store = RecordStore(str(tmp_path))
    src = source_record(host="c1")
    src.set_state(task_state="rebooting")
    store.save(src)
    mig = Migration(id="m1", instance_uuid=src.uuid, migration_type="migration",
                    source_host="c1", dest_host="c2", source_address="a",
                    dest_address="b", source_instances_path=str(tmp_path),
                    dest_instances_path=str(tmp_path), old_flavor=TINY.to_dict(),
                    new_flavor=TINY.to_dict(), old_vm_state="active")
    with pytest.raises(VirtopsError, match="busy"):
        run_phase(params(tmp_path, "migrate", host="c1", migration=mig.to_dict()))
    src.set_state(task_state=None)
    src.flavor = SMALL
    store.save(src)
    with pytest.raises(VirtopsError, match="prepare again"):
        run_phase(params(tmp_path, "migrate", host="c1", migration=mig.to_dict()))
    with pytest.raises(VirtopsError, match="runs on the source c1"):
        run_phase(params(tmp_path, "migrate", host="c2", migration=mig.to_dict()))


def test_phases_with_nothing_to_do_change_nothing(tmp_path):
    some = str(uuid.uuid4())
    for phase in ("confirm", "revert_dest", "revert_source"):
        result = run_phase(params(tmp_path, phase, uuid=some))
        assert not result.changed and result.msg.startswith("nothing")
    info = run_phase(params(tmp_path, "info", name="web1"))
    assert info.extra["holds"] == [] and info.instance is None


def test_the_regenerated_xml_keeps_the_recorded_hostname_and_owner(tmp_path):
    rec = source_record()
    (tmp_path / "libvirt.xml").write_text(
        "<domain type='qemu'><name>web1</name><uuid>%s</uuid><metadata>"
        "<virtops:instance xmlns:virtops='https://virtops.dev/xmlns/compute/1.0'>"
        "<virtops:name>web1</virtops:name><virtops:hostname>web1.example</virtops:hostname>"
        "<virtops:owner><virtops:user>ops</virtops:user></virtops:owner>"
        "</virtops:instance></metadata></domain>" % rec.uuid)
    assert recorded_identity(str(tmp_path), rec) == {
        "uuid": rec.uuid, "name": "web1", "hostname": "web1.example",
        "owner": {"user": "ops", "project": None}}
    (tmp_path / "libvirt.xml").write_text("not xml")
    assert recorded_identity(str(tmp_path), rec) == {"uuid": rec.uuid, "name": "web1"}


def test_a_multiplexed_session_adds_its_control_socket_after_the_user_options():
    ssh = SshConfig(options=("Port=2222",), control_path="/tmp/virtops-ssh-x/control")
    argv = ssh.base_argv()
    assert argv[-6:] == ["-o", "Port=2222", "-o", "ControlMaster=no",
                         "-o", "ControlPath=/tmp/virtops-ssh-x/control"]


def test_a_session_to_a_dead_peer_fails_clearly_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # where the control socket goes
    transport = Transport(SshConfig(options=("Port=1",), connect_timeout=2))
    with pytest.raises(VirtopsError, match="ssh to 127.0.0.1 failed: .*refused"):
        with transport.session("127.0.0.1"):
            pass
    assert os.listdir(tmp_path) == [] and transport.ssh.control_path is None


def test_the_kernel_and_ramdisk_of_a_direct_kernel_boot_go_with_the_disks(tmp_path):
    with open(tmp_path / "disk", "wb") as handle:
        handle.truncate(5 * 1024 * 1024)
    (tmp_path / "kernel").write_bytes(b"k" * (6 * 1024 * 1024))   # a real kernel: ~7 MiB
    (tmp_path / "ramdisk").write_bytes(b"r" * 1000)
    (tmp_path / "disk.info").write_bytes(b"x")
    assert transfer_groups(str(tmp_path), {"disk": "qcow2"}) == [
        ([str(tmp_path / n) for n in ("disk", "ramdisk", "disk.info")], False),
        ([str(tmp_path / "kernel")], True)]


# ------------------------------------------------------------------ finish: the storage layer

class _PullFromDirectory:
    """Transport stand-in for the source host: ``pull`` copies from a local directory."""

    def __init__(self):
        self.pulled = []

    def session(self, address):
        return contextlib.nullcontext()

    def pull(self, address, remote, local):
        if not os.path.isfile(remote):
            raise VirtopsError("rsync: %s: no such file" % remote)
        self.pulled.append(os.path.basename(remote))
        with open(remote, "rb") as src, open(local, "wb") as dst:
            dst.write(src.read())


def _copied_instance(tmp_path, base_image, description):
    """A destination holding a copied overlay whose base is only in the source's cache."""
    src_path, dst_path = tmp_path / "src", tmp_path / "dst"
    name = hashlib.sha1(b"img").hexdigest()
    (src_path / "_base").mkdir(parents=True)
    src_base = src_path / "_base" / name
    os.replace(base_image, src_base)
    (src_path / "_base" / (name + ".info")).write_text(json.dumps(description))
    prep = run_phase(params(dst_path, "prep", instance=source_record(host="c1").to_dict(),
                            new_flavor=SMALL.to_dict()))
    record = RecordStore(str(dst_path)).load(prep.migration["instance_uuid"])
    inst_dir = dst_path / record.uuid
    qemu_img("create", "-q", "-f", "qcow2", "-b", src_base, "-F", description["format"],
             inst_dir / "disk", "64M")
    (inst_dir / "disk.info").write_text(json.dumps({str(src_path / record.uuid / "disk"): "qcow2"}))
    mig = Migration.from_dict(dict(prep.migration, source_instances_path=str(src_path),
                                   status="post-migrating"))
    phase = FinishPhase(params(dst_path, "finish", migration=mig.to_dict()), check_mode=False)
    phase._transport = _PullFromDirectory()
    return phase, record, mig, inst_dir, dst_path / "_base", name


def test_finish_adopts_a_copied_base_through_the_image_cache_and_builds_swap_with_the_builder(
        tmp_path):
    raw = tmp_path / "base.raw"
    raw.write_bytes(b"\1" * 1024 * 1024)
    phase, record, mig, inst_dir, dst_base, name = _copied_instance(
        tmp_path, raw, {"format": "raw", "image_id": "img"})
    formats, image_base = phase._disks(record, mig, SMALL, str(inst_dir))
    assert image_base == str(dst_base / name)
    assert phase._transport.pulled == [name, name + ".info"]
    assert phase.result.extra["base_source"] == "copied from c1"
    assert oct((dst_base / name).stat().st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(dst_base)) == sorted([name, name + ".info", "swap_64"])
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2",
                                      str(inst_dir / "disk")], check=True,
                                     capture_output=True).stdout)
    assert info["backing-filename"] == str(dst_base / name) and info["virtual-size"] == 2 * GIB
    swap = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2",
                                      str(inst_dir / "disk.swap")], check=True,
                                     capture_output=True).stdout)
    assert swap["backing-filename"] == str(dst_base / "swap_64")
    assert formats == {"disk": "qcow2", "disk.swap": "qcow2"}
    assert any(a.startswith("grow disk from") for a in phase.result.actions)
    assert any(a.startswith("created disk.swap") for a in phase.result.actions)


def test_finish_refuses_a_hostile_base_from_the_source_and_leaves_nothing_in_the_cache(tmp_path):
    hostile = tmp_path / "hostile.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", hostile)
    phase, record, mig, inst_dir, dst_base, _name = _copied_instance(
        tmp_path, hostile, {"format": "qcow2"})
    with pytest.raises(VirtopsError, match="backing"):
        phase._disks(record, mig, SMALL, str(inst_dir))
    assert [n for n in os.listdir(dst_base) if not n.startswith("swap_")] == []


def test_the_finish_on_the_destination_takes_that_hosts_vnc_listen_and_refuses_a_bad_one(tmp_path):
    assert params(tmp_path, "finish").vnc_listen == "127.0.0.1"
    assert params(tmp_path, "finish", vnc_listen="10.0.0.2").vnc_listen == "10.0.0.2"
    with pytest.raises(VirtopsError, match="vnc_listen must be an IP address"):
        params(tmp_path, "finish", vnc_listen="dest.example")
