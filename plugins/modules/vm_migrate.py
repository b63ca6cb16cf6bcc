#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_migrate
short_description: Cold-migrate or resize an instance between compute hosts, phase by phase
version_added: 0.1.0
description:
  - Runs one phase of a cold migration or resize on the host it belongs to, the way Nova's
    compute manager and libvirt driver do it (C(prep_resize), C(resize_instance) and
    C(migrate_disk_and_power_off), C(finish_resize), C(confirm_resize), C(revert_resize)).
    The role C(virtops.compute.server_migrate) runs the phases in order on the right hosts.
  - "O(phase=info) (any host): what this host holds for the instance (its record, the
    C(<uuid>_resize) copy, the domain's power state). Changes nothing."
  - "O(phase=prep) (destination): refuses a smaller root or ephemeral disk, claims the new
    flavor under the host's claim lock against the scheduler's O(limits), and writes the
    destination's record (new and old flavor, C(old_vm_state), task C(resize_prep), migration
    C(pre-migrating)). When the instance's own directory is visible here (same host, or
    instance storage shared with the source) the claim is taken on that record instead. A
    failed claim fails the task, so the caller can try an alternate host."
  - "O(phase=migrate) (source): refuses a shrink before anything changes; tests for shared
    instance storage (a temp file created over ssh); checks the destination's claim and
    creates the remote directory; powers the guest off cleanly (ACPI, re-sent every
    O(retry_interval), destroyed after O(shutdown_timeout)); unplugs the VIFs; renames
    C(<uuid>) to C(<uuid>_resize); copies the disks, C(disk.info), the config drive and
    C(libvirt.xml) to the destination with rsync over ssh (C(--sparse), C(--compress) except for
    qcow2, host keys verified); never copies the swap disk. Migration C(migrating), then
    C(post-migrating). On any failure it rolls back: the destination's copy and claim are
    removed, C(<uuid>_resize) is renamed back, the VIFs are plugged and the guest is started
    again if it was running; the migration ends in C(error) and the task fails with what was
    undone."
  - "O(phase=finish) (destination): makes the base image of each overlay present in this host's
    cache (fetched from the image source, or copied from the source host when the image source
    is gone), rebases overlays whose base path differs, grows the disks to the new flavor,
    re-creates the swap disk, regenerates C(libvirt.xml) with the new flavor (same UUID, same
    MACs, machine type kept), plugs the VIFs, defines the domain and starts it unless the
    instance was stopped. vm_state C(resized), migration C(finished). A failure sets vm_state
    C(error) with the reason; revert stays possible."
  - "O(phase=confirm) (source, then destination): on the source it undefines the old domain,
    unplugs its VIFs and removes C(<uuid>_resize), which releases the source's claim; it needs
    the destination's view of the migration (O(migration) with status C(finished)) so a failed
    finish is never confirmed. On the destination it sets vm_state C(active) (or C(stopped))
    and migration C(confirmed)."
  - "O(phase=revert_dest) then O(phase=revert_source): the destination destroys its domain,
    unplugs its VIFs and removes its copy (its claim); the source renames C(<uuid>_resize) back,
    restores the old flavor and starts the guest if it was running. Migration C(reverted)."
  - "Disks in Ceph (O(backend=rbd) on both hosts, Nova's C(images_type = rbd)): the disks are
    shared block storage, so no disk is copied; the instance directory's own small files
    (C(disk.info), C(libvirt.xml)) still go over rsync unless the instance directory itself is
    shared. O(phase=prep) checks that this host's pool holds the instance's root disk (the same
    cluster and pool as the source's); O(phase=migrate) refuses a move between rbd and local
    disks, between clusters or pools, and a C(nova-resize) snapshot left from an earlier move.
    O(phase=finish) takes the snapshot C(nova-resize) of C(<uuid>_disk) (Nova's way back),
    grows the image to the new flavor's root disk (never shrinks) and writes the domain XML
    with this host's monitors and secret. O(phase=confirm) removes the snapshot;
    O(phase=revert_source) rolls the image back to it (data and size as before the move) and
    removes it, once no client has the image open. O(phase=revert_dest) never removes an rbd
    image."
  - Every phase can be re-run, also after a crash; a phase with nothing left to do reports no
    change. Each phase returns its timings, and the migration record keeps them per phase with
    the bytes copied and the downtime (power off on the source to RUNNING on the destination).
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.STATE_DIR
  - virtops.compute.libvirt
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.port_security
  - virtops.compute.console
  - virtops.compute.rbd
options:
  phase:
    description: The phase to run on this host.
    type: str
    required: true
    choices: [info, prep, migrate, finish, confirm, revert_dest, revert_source]
  host:
    description:
      - This host's name in the fleet (the inventory hostname). Recorded as source or destination
        and compared with the migration's hosts.
    type: str
    required: true
  address:
    description:
      - With O(phase=prep), the address the source reaches this host at over ssh (its
        C(virtops_migration_address)). Defaults to O(host).
    type: str
  uuid:
    description:
      - Instance UUID. With O(phase=info) O(name) may be given instead; the other phases take it
        from O(migration) when it is omitted.
    type: str
  name:
    description: With O(phase=info), the instance name to look for.
    type: str
  instance:
    description:
      - With O(phase=prep), the source's record of the instance, as O(phase=info) on the source
        returns it in RV(instance).
    type: dict
  source_host:
    description: With O(phase=prep), the source host's name. Defaults to the record's C(host).
    type: str
  source_address:
    description:
      - With O(phase=prep), the address this host reaches the source at over ssh (to copy a base
        image whose source is gone). Defaults to O(source_host).
    type: str
  source_instances_path:
    description:
      - With O(phase=prep), the source's O(instances_path), when it differs from this host's.
    type: path
  new_flavor:
    description:
      - With O(phase=prep), the flavor to resize to (C(name), C(vcpus), C(ram_mb), C(root_gb),
        C(ephemeral_gb), C(swap_mb), C(extra_specs)). Omitted, the instance keeps its flavor
        (a cold migration).
    type: dict
  limits:
    description:
      - With O(phase=prep), the limits the scheduler computed for this host (C(memory_mb),
        C(vcpu), C(disk_gb)); the claim checks them again. Without them the host's totals times
        the allocation ratios apply.
    type: dict
  migration:
    description:
      - The migration record the previous phase returned in RV(migration). Required by
        O(phase=migrate) and O(phase=finish); identifies the migration for O(phase=confirm) and
        the revert phases. For O(phase=confirm) on the source it must be the destination's view
        (status C(finished)).
    type: dict
  migration_id:
    description:
      - Identifies the migration without the whole record. With O(phase=prep), the id to give a
        new migration (a re-run with the same id changes nothing).
    type: str
  allow_same_host:
    description:
      - With O(phase=prep), allow a resize on the source host itself (Nova's
        C(allow_resize_to_same_host)). A migration to the same host with the same flavor is
        always refused.
    type: bool
    default: false
  ssh_user:
    description: User for host-to-host ssh and rsync.
    type: str
    default: root
  ssh_key:
    description:
      - Private key for host-to-host ssh. Omitted, ssh's configuration decides (the
        C(virtops.compute.compute_host) role writes one per peer).
    type: path
  ssh_options:
    description:
      - Extra ssh options as C(Name=value), for example C(Port=2222), only from an allow-list -
        C(AddressFamily) (C(any), C(inet), C(inet6)), C(BindAddress) (an IP address),
        C(Ciphers), C(KexAlgorithms), C(MACs) (comma-separated names, optionally led by C(+),
        C(-) or C(^)), C(Compression) and C(TCPKeepAlive) (C(yes) or C(no)),
        C(ConnectionAttempts) (1 to 10), C(IPQoS) (one DSCP class or 0 to 255), C(Port)
        (1 to 65535), C(ServerAliveCountMax) and C(ServerAliveInterval) (0 or more).
      - Everything else is refused with the option's name, in particular what would turn
        host-key checking off, make ssh prompt or run commands (C(ProxyCommand),
        C(KnownHostsCommand), C(ProxyJump), C(UserKnownHostsFile), C(LocalCommand) ...).
        C(ConnectTimeout), C(IdentityFile) and C(User) have their own options
        (O(ssh_connect_timeout), O(ssh_key), O(ssh_user)).
    type: list
    elements: str
    default: []
  ssh_connect_timeout:
    description: Seconds ssh waits to connect to a peer.
    type: int
    default: 10
  rsync_timeout:
    description: Seconds without I/O after which a copy is given up (rsync C(--timeout)).
    type: int
    default: 300
  shutdown_timeout:
    description:
      - With O(phase=migrate), seconds to wait for a clean power off before the domain is
        destroyed (Nova's C(shutdown_timeout)). V(0) destroys at once.
    type: float
    default: 60
  retry_interval:
    description: Seconds between ACPI power-off requests (Nova's C(SHUTDOWN_RETRY_INTERVAL)).
    type: float
    default: 10
  vif_plugging_timeout:
    description:
      - Seconds to wait for the VIFs to be plugged when a domain starts (V(0) does not wait).
    type: float
    default: 300
  wait_for_console:
    description:
      - A regular expression the guest prints on its serial console once it is up. When set, a
        start waits for it.
    type: str
  console_timeout:
    description: Seconds to wait for O(wait_for_console).
    type: float
    default: 300
  virt_type:
    description:
      - Domain type of the regenerated XML (V(kvm) or V(qemu)); V(auto) reads what host
        preparation recorded in O(state_dir), else probes.
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  force_raw_images:
    description: Convert a fetched base image to raw (Nova's C(force_raw_images)).
    type: bool
    default: true
  image_roots:
    version_added: 0.2.0
    description:
      - With O(phase=finish), directories of this host under which an image's C(file://) URL
        or absolute path may be read when its base is fetched here, as for
        M(virtops.compute.vm_image)'s O(virtops.compute.vm_image#module:image_roots). Empty (the
        default) - only http(s) sources are fetched; a base that cannot be fetched is copied from
        the source host instead (and inspected), with a warning.
    type: list
    elements: path
    default: []
  download_max_bytes:
    version_added: 0.2.0
    description:
      - With O(phase=finish), the most bytes an image download may have, as for
        M(virtops.compute.vm_image)'s O(virtops.compute.vm_image#module:download_max_bytes).
    type: int
    default: 68719476736
  reserved_host_memory_mb:
    description: With O(phase=prep), RAM kept for the host itself, counted as used.
    type: int
    default: 512
  cpu_allocation_ratio:
    description: With O(phase=prep), vCPU allocation ratio used when no O(limits) are given.
    type: float
    default: 4.0
  ram_allocation_ratio:
    description: With O(phase=prep), RAM allocation ratio used when no O(limits) are given.
    type: float
    default: 1.0
  disk_allocation_ratio:
    description: With O(phase=prep), disk allocation ratio used when no O(limits) are given.
    type: float
    default: 1.0
  backend:
    description:
      - This host's image backend (Nova's C(images_type), the roles' C(virtops_image_backend)).
        V(rbd) (with O(rbd)) on both hosts moves no disk (see above); V(qcow2) and V(flat) are the
        local backends, whose disks are copied, each in its own format.
      - Needed with V(rbd) by O(phase=prep), O(phase=migrate), O(phase=finish), O(phase=confirm)
        and O(phase=revert_source).
    type: str
    choices: [qcow2, flat, rbd]
    default: qcow2
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - In check mode no file, record, domain or remote directory is touched; O(phase=migrate)
        does not run the shared-storage test.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details:
      - The diff shows this host's instance record before and after.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation
        indicates no change.
    support: full
requirements:
  - libvirt-python, lxml, oslo.utils and pycdlib on the compute host (as for the boot modules)
  - rsync and an ssh client on both hosts, root ssh trust between them with host keys recorded
notes:
  - Run O(phase=migrate) with C(async) and C(poll) for big disks; after each copy the source's
    C(<uuid>_resize/instance.json) records what was copied, which O(phase=info) shows.
  - Instance storage shared between the hosts is detected and then not copied; the instance
    records in it are then seen by both hosts.
seealso:
  - module: virtops.compute.vm_instance
  - module: virtops.compute.vm_domain
  - module: virtops.compute.vm_xml
"""

EXAMPLES = r"""
- name: Find the server on every compute host
  virtops.compute.vm_migrate:
    phase: info
    host: "{{ inventory_hostname }}"
    name: web1
  register: where

- name: Claim m1.small on the destination
  virtops.compute.vm_migrate:
    phase: prep
    host: c2
    address: 10.0.0.12
    instance: "{{ hostvars['c1'].where.instance }}"
    source_address: 10.0.0.11
    new_flavor: "{{ flavors['m1.small'] | combine({'name': 'm1.small'}) }}"
    limits: "{{ selection.limits }}"
  delegate_to: c2
  register: prep

- name: Power off and copy the disks (source)
  virtops.compute.vm_migrate:
    phase: migrate
    host: c1
    migration: "{{ prep.migration }}"
  delegate_to: c1
  async: 3600
  poll: 5
  register: moved

- name: Start it on the destination with the new flavor
  virtops.compute.vm_migrate:
    phase: finish
    host: c2
    migration: "{{ moved.migration }}"
  delegate_to: c2
  register: finished

- name: Confirm on the source, then on the destination
  virtops.compute.vm_migrate:
    phase: confirm
    host: "{{ item }}"
    migration: "{{ finished.migration }}"
  delegate_to: "{{ item }}"
  loop: [c1, c2]
"""

RETURN = r"""
phase:
  description: The phase that ran.
  returned: always
  type: str
  sample: migrate
msg:
  description: What happened.
  returned: always
  type: str
  sample: migrated web1 to c2
migration:
  description:
    - The migration record after the phase (none when this host holds none). Pass it to the next
      phase.
  returned: always
  type: dict
  contains:
    id:
      description: Migration id.
      type: str
    instance_uuid:
      description: The instance.
      type: str
    migration_type:
      description: C(migration) (same flavor) or C(resize).
      type: str
    status:
      description: C(pre-migrating), C(migrating), C(post-migrating), C(finished), C(confirmed),
        C(reverted) or C(error).
      type: str
    source_host:
      description: Source host name.
      type: str
    dest_host:
      description: Destination host name.
      type: str
    old_flavor:
      description: The flavor before.
      type: dict
    new_flavor:
      description: The flavor after.
      type: dict
    old_vm_state:
      description: vm_state before the move (C(active) or C(stopped)).
      type: str
    shared_storage:
      description: Whether the source found the instance storage shared with the destination.
      type: bool
    shared_block_storage:
      description:
        - Whether the disks are on storage both hosts open (rbd images of one Ceph pool). Then no
          disk is copied, only the instance directory's small files.
      type: bool
    rbd:
      description: With shared block storage, the destination's cluster and pool (C(fsid), C(pool)).
      type: dict
    bytes_sent:
      description: Bytes rsync sent over the wire (after compression).
      type: int
    allocated_bytes:
      description: Bytes the copied files occupy on the source's disk (holes excluded).
      type: int
    transfer:
      description: Per copy (files, sizes, bytes sent, seconds).
      type: dict
    power_off:
      description: How the guest was powered off (C(acpi) or C(destroy)), requests sent, seconds.
      type: dict
    downtime_seconds:
      description: From the start of the power off on the source to RUNNING on the destination.
      type: float
    timings:
      description: Seconds per phase.
      type: dict
    error:
      description: Why the migration failed, when it did.
      type: str
instance:
  description: This host's record of the instance after the phase (the live copy, not C(_resize)).
  returned: always
  type: dict
actions:
  description: What was done, or in check mode what would be done.
  returned: always
  type: list
  elements: str
timings:
  description: Seconds per step of this phase, and C(total).
  returned: always
  type: dict
resize_instance:
  description: With O(phase=info), the record in C(<uuid>_resize), if any.
  returned: when O(phase=info)
  type: dict
holds:
  description:
    - With O(phase=info), what this host holds; C(instance), C(migration_source),
      C(migration_destination). Empty when nothing.
  returned: when O(phase=info)
  type: list
  elements: str
domain:
  description: The domain's state (O(phase=info)) or what the domain start did (finish, revert_source).
  returned: when O(phase) is info, finish or revert_source
  type: dict
transfer:
  description: With O(phase=migrate), the copies made.
  returned: when O(phase=migrate) copied
  type: dict
downtime_seconds:
  description: With O(phase=finish), seconds from power off to RUNNING.
  returned: when O(phase=finish)
  type: float
resize_snapshot:
  description:
    - With disks in Ceph, what O(phase=finish), O(phase=confirm) or O(phase=revert_source) did to
      the root disk's snapshot C(nova-resize) (C(snapshot) its name, C(action) what was done or
      C(none)).
  returned: when the disks are in Ceph, by those phases
  type: dict
  sample: {"snapshot": "vms/0b0e6b2c-1f6f-4a8e-9c1d-2e3f4a5b6c7d_disk@nova-resize", "action": "took snapshot"}
rollback:
  description: On a failed O(phase=migrate), each rollback step done (or failed).
  returned: on failure of O(phase=migrate)
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.console import VNC_LISTEN_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.network import PORT_SECURITY_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RBD_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS, STATE_DIR_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import (
    HAS_LXML, LXML_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LIBVIRT_ARGS, LIBVIRT_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._migration.migrate import (
    PHASES, MigrateParams, run_phase)

ARGUMENT_SPEC = dict(
    phase=dict(type="str", required=True, choices=list(PHASES)),
    host=dict(type="str", required=True),
    address=dict(type="str"),
    uuid=dict(type="str"),
    name=dict(type="str"),
    instance=dict(type="dict"),
    source_host=dict(type="str"),
    source_address=dict(type="str"),
    source_instances_path=dict(type="path"),
    new_flavor=dict(type="dict"),
    limits=dict(type="dict"),
    migration=dict(type="dict"),
    migration_id=dict(type="str"),
    allow_same_host=dict(type="bool", default=False),
    ssh_user=dict(type="str", default="root"),
    ssh_key=dict(type="path", no_log=False),
    ssh_options=dict(type="list", elements="str", default=[]),
    ssh_connect_timeout=dict(type="int", default=10),
    rsync_timeout=dict(type="int", default=300),
    shutdown_timeout=dict(type="float", default=60),
    retry_interval=dict(type="float", default=10),
    vif_plugging_timeout=dict(type="float", default=300),
    wait_for_console=dict(type="str"),
    console_timeout=dict(type="float", default=300),
    virt_type=dict(type="str", choices=["auto", "kvm", "qemu"], default="auto"),
    **STATE_DIR_ARGS,
    **PORT_SECURITY_ARGS,
    **VNC_LISTEN_ARGS,
    force_raw_images=dict(type="bool", default=True),
    image_roots=dict(type="list", elements="path", default=[]),
    download_max_bytes=dict(type="int", default=DEFAULT_MAX_DOWNLOAD_BYTES),
    reserved_host_memory_mb=dict(type="int", default=512),
    cpu_allocation_ratio=dict(type="float", default=4.0),
    ram_allocation_ratio=dict(type="float", default=1.0),
    disk_allocation_ratio=dict(type="float", default=1.0),
    backend=dict(type="str", choices=["qcow2", "flat", "rbd"], default="qcow2"),
    **RBD_ARGS,
    **LIBVIRT_ARGS,
    **INSTANCES_PATH_ARGS,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("phase", "prep", ("instance",)),
                                        ("phase", "migrate", ("migration",)),
                                        ("phase", "finish", ("migration",))])
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python (python3-libvirt)"),
                         exception=LIBVIRT_IMPORT_ERROR)
    p = module.params
    try:
        params = params_from_module(MigrateParams, p, ssh_options=tuple(p["ssh_options"] or ()),
                                    image_roots=tuple(p["image_roots"] or ()))
        result = run_phase(params, check_mode=module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    for warning in result.warnings:
        module.warn(warning)
    output = result.as_module_result()
    if module._diff and result.changed:
        output["diff"] = {"before": result.before or {}, "after": result.after or {}}
    module.exit_json(**output)


if __name__ == "__main__":
    main()
