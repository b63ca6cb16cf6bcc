# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot a test server on the host this runs on, the way the boot flow does, minus Ansible.

Run inside a lab host (``lab exec HOST -- python migrate_server.py boot '<json>'``) until the
server_boot role exists: claim (vm_instance's driver) -> image cache + disks -> config drive
-> disk.info -> libvirt.xml (vm_xml's driver) -> domain (vm_domain's driver), then the record
goes active (or stopped). Prints the record as JSON.

``extra_data`` optionally writes random data into the root overlay (``{"offset_mb": N,
"size_mb": M}``), for the benchmark's "allocated" disk, before the guest first starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from ansible_collections.virtops.compute.plugins.module_utils._compute.claims import ClaimManager
from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    build_config_drive)
from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import (
    DomainManager, DomainParams)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_cache import (
    ImageCache)
from ansible_collections.virtops.compute.plugins.module_utils._model.image import ImageSource
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import FetchPolicy
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import Flavor
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_disks import (
    DiskBuilder, DiskPlan, plan_root, write_disk_info)
from ansible_collections.virtops.compute.plugins.module_utils._guest.metadata import (
    InstanceMetadata)
from ansible_collections.virtops.compute.plugins.module_utils._storage.instance_record import (
    InstanceRecord, RecordStore)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import connect
from ansible_collections.virtops.compute.plugins.module_utils._compute.capacity import host_capacity
from ansible_collections.virtops.compute.plugins.module_utils._guest.domain_xml import (
    VmXmlParams, ensure_libvirt_xml)

GIB = 1024 ** 3
MIB = 1024 ** 2


def write_random(path: str, offset_mb: int, size_mb: int) -> None:
    """``size_mb`` of random data into a qcow2 at guest offset ``offset_mb`` (qemu-io)."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        pattern = os.path.join(tmp, "pattern")
        with open(pattern, "wb") as out:
            for _chunk in range(size_mb):
                out.write(os.urandom(MIB))
        # ``write -s`` fills the write buffer from the file: only that range gets allocated.
        subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                        "write -s %s %d %d" % (pattern, offset_mb * MIB, size_mb * MIB), path],
                       check=True, capture_output=True)


def boot(spec: dict) -> dict:
    instances_path = spec["instances_path"]
    store = RecordStore(instances_path)
    flavor = Flavor.from_dict(spec["flavor"])
    record = InstanceRecord(uuid=spec["uuid"], name=spec["name"], flavor=flavor,
                            image=spec["image"], host=spec["host"],
                            network_info=spec.get("network_info") or [])
    record.set_state("building", "scheduling")
    capacity = host_capacity(instances_path, 512, 4.0, 1.0, 1.0)
    ClaimManager(store, capacity).instance_claim(record)
    inst_dir = store.instance_dir(record.uuid)
    # The test guest's copy is local and made on the spot: its directory is the image root.
    cache = ImageCache(instances_path,
                       policy=FetchPolicy.build([os.path.dirname(spec["image"]["url"])]))
    base = cache.ensure(ImageSource.from_dict(dict(spec["image"], allow_unverified=True)))
    builder = DiskBuilder(cache)
    builder.ensure(inst_dir, plan_root(base, flavor, "qcow2"), False)
    formats = {"disk": "qcow2"}
    if flavor.ephemeral_gb:
        eph = builder.ephemeral_base(flavor.ephemeral_gb, False)
        builder.ensure(inst_dir, DiskPlan("disk.local", "qcow2", flavor.ephemeral_gb * GIB,
                                          backing=eph, backing_format="raw"), False)
        formats["disk.local"] = "qcow2"
    if flavor.swap_mb:
        swap = builder.swap_base(flavor.swap_mb, False)
        builder.ensure(inst_dir, DiskPlan("disk.swap", "qcow2", flavor.swap_mb * MIB,
                                          backing=swap, backing_format="raw"), False)
        formats["disk.swap"] = "qcow2"
    if spec.get("extra_data"):
        write_random(os.path.join(inst_dir, "disk"), **spec["extra_data"])
    metadata = InstanceMetadata.from_params(
        instance={"uuid": record.uuid, "name": record.name, "hostname": record.name},
        network_info=record.network_info)
    build_config_drive(os.path.join(inst_dir, "disk.config"), metadata, "iso9660")
    formats["disk.config"] = "raw"
    write_disk_info(inst_dir, formats, False)
    ensure_libvirt_xml(VmXmlParams(
        instance={"uuid": record.uuid, "name": record.name, "hostname": record.name},
        flavor=flavor.to_dict(), image=spec["image"], network_info=record.network_info,
        instances_path=instances_path, virt_type="qemu", libvirt_uri="qemu:///system",
        config_drive=True, config_drive_format="iso9660"))
    running = spec.get("state", "running") == "running"
    with connect("qemu:///system") as conn:
        params = DomainParams(uuid=record.uuid, state="running" if running else "stopped",
                              instances_path=instances_path, network_info=record.network_info,
                              vif_plugging_timeout=60,
                              wait_for_console="VIRTOPS-GUEST-READY" if running else None,
                              console_timeout=180)
        DomainManager(conn, params).ensure()
    record = store.load(record.uuid)
    record.image_base = base.path
    record.set_state("active" if running else "stopped", None)
    store.save(record)
    return record.to_dict()


def main(argv) -> int:
    if argv[1] == "boot":
        print(json.dumps(boot(json.loads(argv[2]))))
        return 0
    print("usage: migrate_server.py boot '<json spec>'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
