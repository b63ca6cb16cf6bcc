# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tests' Ceph cluster is one storage cluster for every lab host, reached with the files a
compute host keeps in /etc/ceph (Nova's ``[libvirt] images_rbd_ceph_conf`` and ``rbd_user``)."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from lxml import etree

from tests.integration.test_guest_boot import GuestDomain, domain_xml

HOSTS = ("compute1", "compute2")


def place_client_files(lab, host, client):
    """Write /etc/ceph/ceph.conf and /etc/ceph/ceph.client.<user>.keyring inside the host, as
    host preparation does over ssh (the files land in the host's private /etc/ceph)."""
    files = (("/etc/ceph/ceph.conf", client.conf_text(), "0644"),
             ("/etc/ceph/ceph.client.%s.keyring" % client.user, client.keyring_text(), "0600"))
    for path, text, mode in files:
        lab.run(host, ["sh", "-c", 'umask 077; printf "%s" "$1" > "$2" && chmod "$3" "$2"', "sh", text, path, mode])


def test_every_lab_host_lists_the_clusters_rbd_images_with_its_etc_ceph_files(lab, ceph_cluster):
    client = ceph_cluster.client
    machine_etc_ceph = sorted(path.name for path in Path("/etc/ceph").iterdir())
    name = "lab-%s_disk" % uuid.uuid4().hex[:12]
    for host in HOSTS:
        place_client_files(lab, host, client)
    try:
        # Made on compute1, seen by compute2: shared storage, as rbd is for Nova's migrations.
        lab.run("compute1", ["rbd", "--id", client.user, "create", "--size", "8", "vms/%s" % name])
        for host in HOSTS:
            assert name in lab.run(host, ["rbd", "--id", client.user, "ls", "vms"]).stdout.split()
            assert lab.run(host, ["stat", "-c", "%a", "/etc/ceph/ceph.client.%s.keyring" % client.user]).stdout.strip() == "600"
    finally:
        ceph_cluster.rbd(["rm", "--no-progress", "vms/%s" % name])
    assert name not in lab.run("compute2", ["rbd", "--id", client.user, "ls", "vms"]).stdout.split()
    # /etc/ceph is each host's own: nothing reached the machine's.
    assert sorted(path.name for path in Path("/etc/ceph").iterdir()) == machine_etc_ceph


SECRET_XML = """<secret ephemeral='no' private='yes'><uuid>{uuid}</uuid>
<usage type='ceph'><name>client.{user} secret</name></usage></secret>"""
BOOT_TIMEOUT = 120.0


def rbd_disk(spec_xml: str, rbd_name: str, monitor: str, user: str, secret_uuid: str) -> str:
    """The guest's domain XML with its root disk on RBD, as Nova's ``LibvirtConfigGuestDisk``
    writes it for ``images_type = rbd``: a network disk of protocol rbd, the monitor's address,
    and cephx auth whose key libvirt holds as a secret of usage type ceph."""
    domain = etree.fromstring(spec_xml)
    devices = domain.find("devices")
    disk = etree.Element("disk", type="network", device="disk")
    etree.SubElement(disk, "driver", name="qemu", type="raw", cache="none", discard="unmap")
    source = etree.SubElement(disk, "source", protocol="rbd", name=rbd_name)
    host, port = monitor.rsplit(":", 1)
    etree.SubElement(source, "host", name=host, port=port)
    auth = etree.SubElement(disk, "auth", username=user)
    etree.SubElement(auth, "secret", type="ceph", uuid=secret_uuid)
    etree.SubElement(disk, "target", dev="vda", bus="virtio")
    etree.SubElement(disk, "boot", order="1")
    devices.insert(0, disk)
    return etree.tostring(domain, encoding="unicode", pretty_print=True)


@pytest.mark.slow
def test_a_guest_boots_on_a_lab_host_from_an_rbd_clone_of_a_glance_style_snapshot(lab, ceph_cluster, guest, tmp_path):
    """Glance keeps the raw image as ``images/<id>@snap`` (protected); Nova clones it to
    ``vms/<uuid>_disk`` and QEMU opens it through librbd with the key of a libvirt secret."""
    client = ceph_cluster.client
    host = "compute1"
    image_id, instance, secret_uuid = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    parent, child = "images/%s@snap" % image_id, "vms/%s_disk" % instance
    raw = tmp_path / "guest.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(guest.disk_qcow2), str(raw)], check=True)
    ceph_cluster.rbd(["import", "--no-progress", str(raw), "images/%s" % image_id])
    ceph_cluster.rbd(["snap", "create", parent])
    ceph_cluster.rbd(["snap", "protect", parent])
    workdir = "/var/lib/virtops/instances/%s" % instance
    name = "vo-rbd-%s" % instance[:8]
    shared = Path("/tmp") / ("vo-rbd-%s" % instance)  # /tmp is shared with the lab host
    shared.mkdir()
    try:
        ceph_cluster.rbd(["clone", parent, child])
        place_client_files(lab, host, client)
        (shared / "secret.xml").write_text(SECRET_XML.format(uuid=secret_uuid, user=client.user))
        (shared / "secret.b64").write_text(client.key)
        lab.virsh(host, "secret-define", str(shared / "secret.xml"))
        lab.virsh(host, "secret-set-value", "--secret", secret_uuid, "--file", str(shared / "secret.b64"))
        lab.run(host, ["mkdir", "-p", workdir])
        console = Path(workdir) / "console.log"
        xml = rbd_disk(domain_xml(GuestDomain(name=name, console_log=console)), child, client.monitors[0], client.user, secret_uuid)
        (shared / "domain.xml").write_text(xml)
        lab.virsh(host, "define", "--validate", str(shared / "domain.xml"))
        started = time.monotonic()
        lab.virsh(host, "start", name)
        text = ""
        while time.monotonic() - started < BOOT_TIMEOUT:
            text = lab.run(host, ["cat", str(console)], check=False).stdout
            if "VIRTOPS-GUEST-READY" in text:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("no READY marker within %ss:\n%s" % (BOOT_TIMEOUT, text))
        print("boot from rbd to READY on %s: %.1fs" % (host, time.monotonic() - started))
        assert "VIRTOPS-GUEST-BOOTED" in text
        info = json.loads(ceph_cluster.rbd(["info", "--format", "json", child]))
        assert (info["parent"]["pool"], info["parent"]["image"], info["parent"]["snapshot"]) == ("images", image_id, "snap")
        watchers = json.loads(ceph_cluster.rbd(["status", "--format", "json", child]))["watchers"]
        assert len(watchers) == 1, "QEMU holds the clone open"
        source = etree.fromstring(lab.virsh(host, "dumpxml", name).stdout.encode()).find("devices/disk/source")
        assert (source.get("protocol"), source.get("name")) == ("rbd", child)
    finally:
        lab.virsh(host, "destroy", name, check=False)
        lab.virsh(host, "undefine", name, check=False)
        lab.virsh(host, "secret-undefine", secret_uuid, check=False)
        lab.run(host, ["rm", "-rf", workdir], check=False)
        shutil.rmtree(shared, ignore_errors=True)
        ceph_cluster.rbd(["rm", "--no-progress", child])
        ceph_cluster.rbd(["snap", "unprotect", parent])
        ceph_cluster.rbd(["snap", "purge", "--no-progress", "images/%s" % image_id])
        ceph_cluster.rbd(["rm", "--no-progress", "images/%s" % image_id])
    assert instance not in ceph_cluster.rbd(["ls", "vms"])
