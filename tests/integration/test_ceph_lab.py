# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tests' Ceph cluster is one storage cluster for every lab host, reached with the files a
compute host keeps in /etc/ceph (Nova's ``[libvirt] images_rbd_ceph_conf`` and ``rbd_user``)."""
from __future__ import annotations

import uuid
from pathlib import Path

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
