#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_image
short_description: Cache an instance's image on its host and build the instance's disks and config drive
version_added: 0.1.0
description:
  - The storage half of the Nova libvirt driver's C(spawn) (C(_create_image), C(fetch_to_raw),
    the image backends and C(configdrive)), run on the compute host that will run the instance.
  - With O(state=present) it makes sure the image is in the host's image cache
    C(<instances_path>/_base/<sha1 of the image id>), then builds the instance's disks in
    C(<instances_path>/<uuid>/), writes C(disk.info) and, when asked, the config drive
    C(disk.config), and returns Nova's C(disk_info) mapping for M(virtops.compute.vm_xml).
  - B(Sources). C(http://) and C(https://) (redirects are followed to http(s) only), or
    C(file://) and absolute paths on the host B(only under an image root) listed in
    O(image_roots) (none by default, so no local source at all). A local source is resolved
    (symbolic links, C(..)) and must lie in a root; it is opened without following a link,
    so a link swapped in meanwhile is refused, and it must be a regular file (no device,
    FIFO, socket or directory). C(/proc), C(/sys) and C(/dev) are never sources. Other
    schemes (C(ftp://), C(data:), ...) are refused.
  - B(Whole downloads only). Every download has a size cap (O(download_max_bytes); 1 GiB for
    a kernel or ramdisk). A download that ends before its C(Content-Length) (or the local
    file's size), or sends more, is refused. A server that sends no length cannot show that
    the body arrived whole, so such a download needs a checksum.
  - B(Checksums). An image (and a kernel or ramdisk) without a checksum is refused unless its
    entry says O(image.allow_unverified=true).
  - B(Fetch). The image is downloaded to C(<base>.part) while its checksum is computed, the declared
    O(image.checksum) is verified, the headers are inspected, the image is converted to raw
    (O(force_raw), as Nova's C(force_raw_images)), and renamed into place. All of this runs
    under a lock named after the base, so concurrent boots of one image on one host fetch it
    once and the others reuse the result. A base already cached is not fetched again, but is
    inspected again on every use.
  - B(Hostile images are refused before qemu-img parses them), with a message naming the
    reason. The headers are read in Python first (oslo.utils' C(format_inspector), the
    inspector Nova and Glance share, plus stricter checks). Refused are a backing file, a
    qcow2 data-file (CVE-2024-32498), VMDK extents other than the image's own
    monolithicSparse/streamOptimized one (CVE-2022-47951), and encryption. Also refused are
    a detected format other than O(image.disk_format), an unparseable header and a truncated
    file. Only then does C(qemu-img info --force-share --output=json) run, under CPU (30 s)
    and address-space (2 GiB) limits, as a second opinion.
  - B(Flavor checks), as Nova. Flavor RAM below O(image.min_ram), and O(image.min_disk)
    above the root disk, are refused before anything is downloaded. When
    O(flavor.root_gb) is not 0, an image whose virtual size exceeds it is refused while
    its header is inspected, before any conversion (FlavorDiskSmallerThanImage). With
    O(flavor.root_gb=0) the virtual size is not checked against the flavor (Nova's legacy
    behaviour); a 16 TiB ceiling still applies.
  - B(Disks). C(disk) is a qcow2 overlay on the base (O(backend=qcow2), backing format
    pinned) or a sparse raw copy of it (O(backend=flat)), grown to O(flavor.root_gb) and never
    shrunk. C(disk.local) (O(flavor.ephemeral_gb) > 0) and C(disk.swap) (O(flavor.swap_mb) >
    0) come from shared formatted bases C(ephemeral_<GB>_ext4) and C(swap_<MB>) in C(_base).
    C(disk.info) records each disk's format so that it is never guessed again.
  - B(Disks in Ceph) (O(backend=rbd), Nova's C(images_type = rbd)). The root disk is the rbd
    image C(<pool>/<uuid>_disk) - a copy-on-write clone of a raw image's C(rbd://) snapshot
    in the same cluster (O(image.locations)), nothing downloaded; otherwise the image is
    fetched and inspected as above, converted to raw and C(rbd import)ed - then grown to
    O(flavor.root_gb), never shrunk. The config drive is imported as C(<uuid>_disk.config)
    (once; an existing one is kept) and the local file removed. A failed run removes the rbd
    images it made and no other. The cache ageing below never touches Ceph.
  - B(Config drive). It is built when O(config_drive) is true or the image property
    C(img_config_drive) is C(mandatory). It is an iso9660 image labelled C(config-2) (or
    64 MiB vfat, O(config_drive_format)) in Nova's layout, read by cloud-init's ConfigDrive
    datasource; see C(docs/config_drive.md). It is rebuilt only when its content would
    change (a changed O(admin_pass) alone does not rebuild it), and never under a running
    domain (refused, as the guest has the drive open).
  - B(Permissions). Everything in C(_base) and in the instance directory is readable by root
    and the group of the user libvirt runs QEMU as (C(libvirt-qemu), else C(qemu), looked up
    on the host) only; files C(0640), directories C(0750). Without such a user, C(0600) and
    C(0700), root only. The config drive stays C(0600) (it holds O(admin_pass)); libvirt
    hands it to QEMU when the domain starts.
  - B(Failures leave nothing half made). A failed download, checksum or inspection leaves no
    C(.part) or converted file. When a later step fails, the files and the instance
    directory this run created are removed again. Bases are never removed then; they are a
    shared cache, checked on every use.
  - With O(state=absent) the instance's disk files (C(disk), C(disk.local), C(disk.swap),
    C(disk.config), C(disk.info)) are removed, and the instance directory too when nothing
    else is left in it. It refuses while libvirt runs a domain with the instance's uuid.
    Bases are never removed this way. With O(backend=rbd) the pool's images of the instance
    (C(<uuid>_*), Nova's C(_cleanup_rbd)) are removed too, and no other.
  - With O(state=cache_cleaned) it ages the image cache as Nova's image cache manager does.
    A base is in use when an instance disk on this host has it as backing file, or when an
    instance record (C(instance.json)) names it or its image id. Bases in use are kept and
    their modification time is refreshed. Unused bases whose modification time is older
    than O(remove_unused_original_minimum_age_seconds) are removed, after their age has been
    checked again under their lock. Originals, C(swap_*) and C(ephemeral_*) bases are all
    aged this way. What interrupted fetches left (C(.part), C(.converted)) older than the
    same age is removed under its base's lock (never while a fetch holds it), and so are the
    lock files C(locks/virtops-<base>.lock) of bases that no longer exist.
  - Long downloads can run with Ansible's C(async)/C(poll).
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.rbd
  - virtops.compute.libvirt.STATE_DIR
  - virtops.compute.flavor
  - virtops.compute.libvirt
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.attributes
options:
  state:
    description:
      - V(present) caches the image and builds the disks; V(absent) removes the instance's
        disks; V(cache_cleaned) removes old unused bases from the host's image cache.
    type: str
    choices: [present, absent, cache_cleaned]
    default: present
  instance:
    description: The instance. Required with O(state=present) and O(state=absent).
    type: dict
    suboptions:
      uuid:
        description:
          - Instance UUID in canonical form; the name of the instance directory.
        type: str
        required: true
      name:
        description:
          - Display name, written to the config drive. Required with O(state=present).
        type: str
      hostname:
        description:
          - Guest host name for the config drive; derived from O(instance.name) as Nova does
            when omitted.
        type: str
      launch_index:
        description: Index of the instance within a multiple create.
        type: int
        default: 0
      availability_zone:
        description: Availability zone written to the config drive.
        type: str
      metadata:
        description: Server metadata (string keys and values), C(meta) on the config drive.
        type: dict
        default: {}
  image:
    description: The image, as in the C(images) catalog. Required with O(state=present).
    type: dict
    suboptions:
      url:
        description:
          - Where to fetch the image from; C(http://), C(https://), or C(file://) or an
            absolute path on the host under one of O(image_roots).
        type: str
        required: true
      disk_format:
        description:
          - The image's format as declared by the operator, one of V(raw), V(qcow2), V(vmdk)
            or V(iso); the detected format must be the same. Other formats (V(vhd), ...) are
            refused, as a run on an untrusted image would be.
        type: str
        required: true
      checksum:
        description:
          - Expected checksum, C(sha256:<hex>), C(sha512:<hex>) or C(md5:<hex>) (a bare hex
            digest is read by its length). A mismatch is refused and leaves no file behind.
          - Required unless O(image.allow_unverified=true).
        type: str
      allow_unverified:
        version_added: 0.2.0
        description:
          - Use the image without a checksum. Its download is then only checked for length
            (and refused when the server sends no C(Content-Length)) and inspected; a
            truncated or altered image could still pass. Prefer a checksum.
        type: bool
        default: false
      id:
        description:
          - Image id; the base file is named after its SHA-1. Defaults to a UUID derived from
            O(image.url) and O(image.checksum) (the same the boot request gives an image without
            an id), so new data gets a new base.
        type: str
      min_disk:
        description: Smallest root disk (GiB) the image needs.
        type: int
        default: 0
      min_ram:
        description: Smallest RAM (MiB) the image needs.
        type: int
        default: 0
      properties:
        description:
          - Image properties. Used here are C(hw_disk_bus) (default C(virtio)),
            C(hw_cdrom_bus) (default C(ide), C(sata) on q35), C(hw_machine_type) (whether the
            machine is a q35) and C(img_config_drive) (C(mandatory) forces a config drive).
        type: dict
        default: {}
      locations:
        description:
          - Glance's other locations of the same data. With O(backend=rbd), an
            C(rbd://<fsid>/<pool>/<image>/<snapshot>) location of this host's cluster is cloned
            instead of fetching O(image.url) (Nova's C(Rbd.clone)); ignored by the other
            backends and when the image is not raw.
        type: list
        elements: str
        default: []
  kernel:
    description:
      - The kernel of an image whose properties name one in C(kernel_id) (Glance's C(aki)), for
        a direct kernel boot. Fetched once per host into the image cache (checksum verified,
        at most 1 GiB), then copied to C(<instances_path>/<uuid>/kernel), where
        M(virtops.compute.vm_xml)'s domain reads it, as Nova does.
      - Required when O(image.properties) has C(kernel_id). QEMU reads the file itself, so it
        has no header for qemu-img to inspect; the checksum is its check.
    type: dict
    suboptions:
      url:
        description: Where to fetch it from, as O(image.url).
        type: str
        required: true
      checksum:
        description: Expected checksum, as for O(image.checksum); required unless allowed unverified.
        type: str
      allow_unverified:
        version_added: 0.2.0
        description: Use it without a checksum, as O(image.allow_unverified).
        type: bool
        default: false
      id:
        description:
          - Its id; the cache file is named after its SHA-1. Defaults to a UUID derived from its
            URL and checksum.
        type: str
      disk_format:
        description: Glance's format; V(aki) when not given.
        type: str
  ramdisk:
    description:
      - The initial ramdisk of an image whose properties name one in C(ramdisk_id) (Glance's
        C(ari)), copied to C(<instances_path>/<uuid>/ramdisk) like O(kernel). Needs O(kernel).
    type: dict
    suboptions:
      url:
        description: Where to fetch it from, as O(image.url).
        type: str
        required: true
      checksum:
        description: Expected checksum, as for O(image.checksum); required unless allowed unverified.
        type: str
      allow_unverified:
        version_added: 0.2.0
        description: Use it without a checksum, as O(image.allow_unverified).
        type: bool
        default: false
      id:
        description:
          - Its id; the cache file is named after its SHA-1. Defaults to a UUID derived from its
            URL and checksum.
        type: str
      disk_format:
        description: Glance's format; V(ari) when not given.
        type: str
  backend:
    description:
      - V(qcow2) (default, as Nova) makes each disk a qcow2 overlay on a base in C(_base),
        fast to create, small. V(flat) makes a sparse raw copy.
      - V(rbd) (Nova's C(images_type = rbd)) keeps the root disk in Ceph as
        C(<pool>/<uuid>_disk) (O(rbd)) - a copy-on-write clone of the image's snapshot when
        the image is raw and one of O(image.locations) is an C(rbd://) snapshot of this
        cluster readable by O(rbd.user), else the image is fetched to C(_base), inspected,
        converted to raw and C(rbd import)ed; then grown to O(flavor.root_gb), never shrunk.
        The config drive is built in the instance directory, imported as
        C(<uuid>_disk.config) and the local file removed. O(state=absent) removes the pool's
        images of the instance (C(<uuid>_*)) and no other. Flavors with ephemeral or swap
        disks and direct kernel boots are refused with V(rbd) so far.
    type: str
    choices: [qcow2, flat, rbd]
    default: qcow2
  force_raw:
    description:
      - Convert the base to raw when it is fetched (Nova's C(force_raw_images)). With
        V(false) a qcow2 or VMDK base is kept as it is, and overlays use it as backing file.
    type: bool
    default: true
  config_drive:
    description:
      - Build the config drive C(disk.config). It is also built when the image property
        C(img_config_drive) is C(mandatory).
    type: bool
    default: false
  config_drive_format:
    description:
      - V(iso9660) (attached as a cdrom) or V(vfat) (64 MiB, attached as a disk); both
        labelled C(config-2).
    type: str
    choices: [iso9660, vfat]
    default: iso9660
  user_data:
    description:
      - User data for the guest (for example a cloud-config document). Never logged, not
        even with C(-vvv) (C(no_log)).
    type: str
  admin_pass:
    description: Administrator password written to the config drive's C(meta_data.json).
    type: str
  keypairs:
    description: Public keys written to the config drive.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Key pair name.
        type: str
        required: true
      public_key:
        description: The public key (one line for ssh keys).
        type: str
        required: true
      type:
        description: Key type.
        type: str
        choices: [ssh, x509]
        default: ssh
  injected_files:
    description:
      - Files for the guest, written to C(openstack/content/NNNN) and listed in
        C(meta_data.json) (Nova's injected files, personality).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path of the file in the guest.
        type: str
        required: true
      content:
        description: The file's content. Never logged (C(no_log)).
        type: str
        default: ""
  vendor_data:
    description: Vendor data, written as C(vendor_data.json) (and C(vendor_data2.json) as C(static)).
    type: dict
    default: {}
  network_info:
    description:
      - The instance's VIFs in Nova's network_info shape; they become the config drive's
        C(network_data.json).
    type: list
    elements: dict
    default: []
  virt_type:
    description:
      - Domain type, for the disk mapping. V(auto) reads the host record
        C(<state_dir>/host.json) written by host preparation, else runs the same probe
        (a tiny guest under KVM); V(qemu) is TCG emulation.
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  download_timeout:
    description:
      - Seconds a download may wait for the server at a time (connect or each read), not
        the whole download. Use C(async) for long downloads.
    type: int
    default: 60
  download_max_bytes:
    version_added: 0.2.0
    description:
      - The most bytes one image download may have (64 GiB by default). A larger local file,
        a larger C(Content-Length) or a body that grows past it is refused, and nothing is
        left in C(_base). A kernel or ramdisk may have at most 1 GiB whatever this says.
    type: int
    default: 68719476736
  image_roots:
    version_added: 0.2.0
    description:
      - Directories on the host under which C(file://) and absolute-path sources may be read
        (after resolving links and C(..)). Empty (the default) means no local source is read.
      - The C(server_boot) role sets it from the variable C(virtops_image_roots).
    type: list
    elements: path
    default: []
  remove_unused_original_minimum_age_seconds:
    description:
      - With O(state=cache_cleaned), unused bases whose modification time is older than this
        are removed (Nova's option of the same name), and so are leftovers of interrupted
        fetches older than it.
    type: int
    default: 86400
attributes:
  check_mode:
    support: full
    details:
      - Decides everything, including a re-inspection of an already cached base, and writes
        nothing. When the image is not cached yet, its format and sizes are reported as
        unknown (V(null)).
  diff_mode:
    support: full
    details:
      - Returns, per file (base, each disk, the config drive), its format, virtual size and
        backing file (the config drive's content digest) before and after.
  idempotent:
    support: full
    details:
      - A second run with the same inputs returns C(changed=false). The config drive is
        compared by a digest of its content that ignores C(random_seed) and the value of
        O(admin_pass).
requirements:
  - qemu-img (Debian C(qemu-utils))
  - oslo.utils >= 7.3 (its C(format_inspector)) on the compute host
  - pycdlib on the compute host for an iso9660 config drive; C(mkfs.vfat) and C(mcopy) (Debian
    C(dosfstools), C(mtools)) for a vfat one
  - C(mkfs.ext4) and C(mkswap) for ephemeral and swap disks
  - libvirt-python (Debian C(python3-libvirt)) for O(state=absent) and to rebuild a config drive
notes:
  - O(libvirt_uri) is used only to check that no domain with the instance's uuid is running,
    before O(state=absent) removes disks and before an existing config drive is rebuilt.
  - A C(file://) source outside O(image_roots), an image without a checksum (unless
    O(image.allow_unverified)), or a truncated download is refused before anything is
    written, with a message naming the fix.
seealso:
  - module: virtops.compute.vm_xml
"""

EXAMPLES = r"""
- name: Fetch the image and build web1's disks and config drive
  virtops.compute.vm_image:
    instance:
      uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11
      name: web1
      availability_zone: az1
      metadata: {role: web}
    image:
      url: http://images.example.com/tiny.qcow2
      disk_format: qcow2
      checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      id: tiny
      properties: {hw_disk_bus: virtio}
    flavor: {name: m1.tiny, vcpus: 1, ram_mb: 128, root_gb: 1, ephemeral_gb: 0, swap_mb: 0}
    config_drive: true
    user_data: "#cloud-config\npackages: [nginx]\n"
    admin_pass: "{{ vault_admin_pass }}"
    keypairs:
      - {name: ops, public_key: "{{ lookup('file', 'ops.pub') }}"}
    network_info: "{{ instance_record.network_info }}"
  register: image_result

- name: Hand the disk mapping to the domain XML
  virtops.compute.vm_xml:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web1}
    flavor: {name: m1.tiny, vcpus: 1, ram_mb: 128, root_gb: 1}
    image: {id: tiny}
    disk_info: "{{ image_result.disk_info }}"
    disk_formats: "{{ image_result.disk_formats }}"

- name: An image booted by direct kernel boot (kernel_id and ramdisk_id as in Glance)
  virtops.compute.vm_image:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web1}
    image:
      url: http://images.example.com/root.qcow2
      disk_format: qcow2
      checksum: "sha256:{{ root_sha256 }}"
      properties: {kernel_id: vmlinuz-6.1, ramdisk_id: initrd-6.1, os_command_line: "root=/dev/vda console=ttyS0"}
    kernel: {url: http://images.example.com/vmlinuz-6.1, id: vmlinuz-6.1, checksum: "sha256:{{ kernel_sha256 }}"}
    ramdisk: {url: http://images.example.com/initrd-6.1, id: initrd-6.1, checksum: "sha256:{{ initrd_sha256 }}"}
    flavor: {name: m1.tiny, vcpus: 1, ram_mb: 256, root_gb: 1}

- name: An image from a directory of the host, which must be an image root
  virtops.compute.vm_image:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web1}
    image: {url: "file:///srv/images/tiny.qcow2", disk_format: qcow2, allow_unverified: true}
    image_roots: [/srv/images]
    flavor: {vcpus: 1, ram_mb: 128, root_gb: 1}

- name: A large image over a slow link, polled
  virtops.compute.vm_image:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web1}
    image: {url: "https://images.example.com/big.qcow2", disk_format: qcow2, id: big,
            checksum: "sha256:{{ big_sha256 }}"}
    flavor: {vcpus: 2, ram_mb: 2048, root_gb: 40}
  async: 3600
  poll: 15

- name: Remove the instance's disks (the cached base stays)
  virtops.compute.vm_image:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11}
    state: absent

- name: Root disk and config drive in Ceph, cloned from the raw image's snapshot in the images pool
  virtops.compute.vm_image:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11, name: web1}
    image:
      url: "https://images.example.com/cirros.raw"
      disk_format: raw
      id: 226bc6e5-60d7-4a2c-bf0d-a568a1e26e00
      checksum: "sha256:{{ cirros_sha256 }}"
      locations: ["rbd://{{ ceph_fsid }}/images/226bc6e5-60d7-4a2c-bf0d-a568a1e26e00/snap"]
    flavor: {vcpus: 1, ram_mb: 512, root_gb: 1}
    config_drive: true
    backend: rbd
    rbd: {pool: vms, user: nova, secret_uuid: 5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10}

- name: Remove the instance's rbd images (and its directory's files)
  virtops.compute.vm_image:
    instance: {uuid: 0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11}
    state: absent
    backend: rbd
    rbd: {pool: vms, user: nova, secret_uuid: 5b3e6f7e-1c1a-4f57-9e61-0c3b1f3e9a10}

- name: Age the image cache (see playbooks/image_cache.yml)
  virtops.compute.vm_image:
    state: cache_cleaned
    remove_unused_original_minimum_age_seconds: 86400
"""

RETURN = r"""
state:
  description: The state that was asked for.
  returned: always
  type: str
  sample: present
instance_dir:
  description: The instance directory.
  returned: when O(state) is V(present) or V(absent)
  type: str
  sample: /var/lib/virtops/instances/0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11
base:
  description: The cached base the root disk is made from.
  returned: when O(state=present)
  type: dict
  contains:
    path:
      description: Path of the base in C(_base).
      type: str
      sample: /var/lib/virtops/instances/_base/2ad8a2b1d4f3c2f6ac3e4d8a8b0e1c9f7d6a5b4c
    format:
      description: Format of the base (C(raw) unless O(force_raw=false)).
      type: str
      sample: raw
    virtual_size:
      description: Virtual size in bytes (V(null) in check mode before the first fetch).
      type: int
      sample: 26214400
    file_size:
      description: Size of the file in bytes (V(null) in check mode before the first fetch).
      type: int
    fetched:
      description: Whether this run downloaded the image (V(false) when it was reused).
      type: bool
    image_id:
      description: The image id the base is named after.
      type: str
    action:
      description: V(fetched), V(reused) or, in check mode, V(would fetch).
      type: str
disks:
  description: The instance's disks, root first, then C(disk.local), C(disk.swap).
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    name:
      description: File name in the instance directory.
      type: str
      sample: disk
    path:
      description: Absolute path.
      type: str
    format:
      description: C(qcow2) or C(raw).
      type: str
    virtual_size:
      description: Virtual size in bytes.
      type: int
      sample: 1073741824
    backing_file:
      description: The base an overlay reads from, V(null) for a flat disk.
      type: str
    action:
      description:
        - V(created), V(grown), V(unchanged), or V(would create), V(would grow) in check mode.
        - With O(backend=rbd) V(would clone) or V(would import) in check mode instead of V(would create).
      type: str
    rbd:
      description: With O(backend=rbd), the image in Ceph, C(<pool>/<uuid>_disk) (C(path) is then C(rbd:<pool>/<uuid>_disk)).
      type: str
      returned: with O(backend=rbd)
    made:
      description: With O(backend=rbd), how the root disk came to be - V(clone), V(import) or V(existing).
      type: str
      returned: with O(backend=rbd)
    parent:
      description: With O(backend=rbd) and a clone, the snapshot cloned (C(<pool>/<image>@<snapshot>)).
      type: str
      returned: with O(backend=rbd)
    reason:
      description: With O(backend=rbd) and an import, why the image was not cloned.
      type: str
      returned: with O(backend=rbd)
disk_formats:
  description: Format of each instance file, as written to C(disk.info) (the config drive is C(raw)).
  returned: when O(state=present)
  type: dict
  sample: {disk: qcow2, disk.config: raw}
disk_info:
  description:
    - Nova's disk mapping (bus, device, type, boot index per file) for
      M(virtops.compute.vm_xml)'s O(virtops.compute.vm_xml#module:disk_info).
  returned: when O(state=present)
  type: dict
  sample:
    disk_bus: virtio
    cdrom_bus: ide
    mapping:
      root: {bus: virtio, dev: vda, type: disk, boot_index: "1"}
      disk: {bus: virtio, dev: vda, type: disk, boot_index: "1"}
      disk.config: {bus: ide, dev: hda, type: cdrom}
disk_info_file:
  description: Path of C(disk.info).
  returned: when O(state=present)
  type: str
config_drive:
  description: The config drive, V(null) when the instance has none.
  returned: when O(state=present)
  type: dict
  contains:
    path:
      description: Path of C(disk.config); with O(backend=rbd) C(rbd:<pool>/<uuid>_disk.config), the local file being removed.
      type: str
    format:
      description: C(iso9660) or C(vfat).
      type: str
    size_bytes:
      description: Size of the image in bytes (V(null) when it is still to be built in check mode).
      type: int
    content_digest:
      description: Digest of the content (ignores C(random_seed) and the value of O(admin_pass)).
      type: str
    action:
      description: V(created), V(rebuilt), V(unchanged), or V(would create), V(would rebuild) in check mode.
      type: str
config_drive_path:
  description: Path of the config drive, V(null) when the instance has none.
  returned: when O(state=present)
  type: str
boot_files:
  description:
    - The kernel and ramdisk copied into the instance directory for a direct kernel boot, by
      file name (C(kernel), C(ramdisk)); empty when the image boots from its disk.
  returned: when O(state=present)
  type: dict
  sample:
    kernel: {path: /var/lib/virtops/instances/0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11/kernel,
             source: "https://images.example.com/vmlinuz", image_id: 5d1c0b9e,
             base: /var/lib/virtops/instances/_base/2f0c6a5d0b3f8f1e7a0e6f1c7d1b9a2e4c3d5f60,
             action: copied, fetched: true}
  contains:
    path:
      description: The file in the instance directory.
      type: str
    source:
      description: Where it was fetched from.
      type: str
    image_id:
      description: Its image id.
      type: str
    base:
      description: Its file in the image cache.
      type: str
    action:
      description: V(copied), V(unchanged), or V(would copy), V(would fetch and copy) in check mode.
      type: str
    fetched:
      description: Whether this run downloaded it into the cache.
      type: bool
virt_type:
  description: Domain type the disk mapping was computed for.
  returned: when O(state=present)
  type: str
  sample: qemu
removed:
  description:
    - Files (and the instance directory, when it became empty) removed, or that would be in check mode.
    - With O(backend=rbd) also the instance's rbd images, as C(rbd:<pool>/<name>).
  returned: when O(state=absent)
  type: list
  elements: str
cache:
  description: What cache ageing did.
  returned: when O(state=cache_cleaned)
  type: dict
  contains:
    removed:
      description: Bases removed (or that would be in check mode).
      type: list
      elements: str
    kept_in_use:
      description: Bases an instance on this host uses; their modification time was refreshed.
      type: list
      elements: str
    kept_young:
      description: Unused bases younger than O(remove_unused_original_minimum_age_seconds).
      type: list
      elements: str
    removed_leftovers:
      description:
        - C(.part) and C(.converted) files of interrupted fetches removed (or that would be in
          check mode).
      type: list
      elements: str
    removed_locks:
      description: Lock files of bases that no longer exist, removed (or that would be).
      type: list
      elements: str
timings:
  description:
    - Seconds per phase. With O(state=present) C(lock_wait) (waiting for another run's
      fetch), C(fetch), C(inspect), C(convert), C(checksum_wait) (the checksum runs while the
      image is inspected and converted; this is what was left to wait for after them),
      C(create) (the disks), C(config_drive) and C(total); a phase that did not run is
      V(0.0). Other states give C(total).
  returned: always
  type: dict
  sample: {lock_wait: 0.0, fetch: 0.41, inspect: 0.02, convert: 0.08, checksum_wait: 0.0, create: 0.05, config_drive: 0.01, total: 0.6}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.storage import RBD_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS, STATE_DIR_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import LIBVIRT_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._guest.configdrive import (
    HAS_PYCDLIB, PYCDLIB_IMPORT_ERROR)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_inspect import (
    FORMAT_INSPECTOR_IMPORT_ERROR, HAS_FORMAT_INSPECTOR)
from ansible_collections.virtops.compute.plugins.module_utils._storage.image_source import (
    DEFAULT_MAX_DOWNLOAD_BYTES)
from ansible_collections.virtops.compute.plugins.module_utils._compute.create_image import (
    VmImageParams, run)
from ansible_collections.virtops.compute.plugins.module_utils._model.flavor import flavor_spec


BOOT_FILE_OPTIONS = dict(url=dict(type="str", required=True), checksum=dict(type="str"),
                         allow_unverified=dict(type="bool", default=False),
                         id=dict(type="str"), disk_format=dict(type="str"))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent", "cache_cleaned"],
                       default="present"),
            instance=dict(type="dict", options=dict(
                uuid=dict(type="str", required=True),
                name=dict(type="str"),
                hostname=dict(type="str"),
                launch_index=dict(type="int", default=0),
                availability_zone=dict(type="str"),
                metadata=dict(type="dict", default={}))),
            image=dict(type="dict", options=dict(
                url=dict(type="str", required=True),
                disk_format=dict(type="str", required=True),
                checksum=dict(type="str"),
                allow_unverified=dict(type="bool", default=False),
                id=dict(type="str"),
                min_disk=dict(type="int", default=0),
                min_ram=dict(type="int", default=0),
                properties=dict(type="dict", default={}),
                locations=dict(type="list", elements="str", default=[]))),
            kernel=dict(type="dict", options=BOOT_FILE_OPTIONS),
            ramdisk=dict(type="dict", options=BOOT_FILE_OPTIONS),
            flavor=flavor_spec(),
            backend=dict(type="str", choices=["qcow2", "flat", "rbd"], default="qcow2"),
            **RBD_ARGS,
            force_raw=dict(type="bool", default=True),
            config_drive=dict(type="bool", default=False),
            config_drive_format=dict(type="str", choices=["iso9660", "vfat"],
                                     default="iso9660"),
            user_data=dict(type="str", no_log=True),
            admin_pass=dict(type="str", no_log=True),
            keypairs=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
                name=dict(type="str", required=True),
                public_key=dict(type="str", required=True, no_log=False),
                type=dict(type="str", choices=["ssh", "x509"], default="ssh"))),
            injected_files=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                content=dict(type="str", default="", no_log=True))),
            vendor_data=dict(type="dict", default={}),
            network_info=dict(type="list", elements="dict", default=[]),
            virt_type=dict(type="str", choices=["auto", "kvm", "qemu"], default="auto"),
            **STATE_DIR_ARGS,
            download_timeout=dict(type="int", default=60),
            download_max_bytes=dict(type="int", default=DEFAULT_MAX_DOWNLOAD_BYTES),
            image_roots=dict(type="list", elements="path", default=[]),
            remove_unused_original_minimum_age_seconds=dict(type="int", default=86400),
            **INSTANCES_PATH_ARGS,
            **LIBVIRT_ARGS,
        ),
        required_if=[
            ("state", "present", ("instance", "image", "flavor")),
            ("state", "absent", ("instance",)),
        ],
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "present":
        if not HAS_FORMAT_INSPECTOR:
            module.fail_json(msg=missing_required_lib("oslo.utils"),
                             exception=FORMAT_INSPECTOR_IMPORT_ERROR)
        drive_asked = p["config_drive"] or str(
            (p["image"].get("properties") or {}).get("img_config_drive") or "").lower() == "mandatory"
        if drive_asked and p["config_drive_format"] == "iso9660" and not HAS_PYCDLIB:
            module.fail_json(msg=missing_required_lib("pycdlib"), exception=PYCDLIB_IMPORT_ERROR)
    params = params_from_module(VmImageParams, p, sparse=(
        "instance", "image", "kernel", "ramdisk", "flavor", "keypairs"))
    try:
        result = run(params, check_mode=module.check_mode)
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    output = result.as_module_result()
    if module._diff:
        header = result.instance_dir or params.instances_path
        output["diff"] = result.diff(header)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
