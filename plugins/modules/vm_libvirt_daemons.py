#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_libvirt_daemons
short_description: Make libvirt answer on a compute host, with or without systemd
version_added: 0.1.0
description:
  - Checks that libvirt answers on O(libvirt_uri) (C(virsh -c URI version)). When it does, nothing
    is done and the result is not changed.
  - When it does not and O(start=true), starts C(virtlogd) and then C(libvirtd) as plain daemons
    (C(-d -p PIDFILE)), each only when its pid file does not name a live process of that binary,
    then waits up to O(timeout) seconds for libvirt to answer.
  - With O(start=false) (hosts where systemd manages the units; the role starts them with
    M(ansible.builtin.systemd_service) first) it only waits for libvirt to answer.
  - Fails with a message naming the daemon that runs but does not answer, or the log to read.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.attributes
  - virtops.compute.libvirt.URI
options:
  start:
    description:
      - Start the daemons that do not run. Set V(false) where a service manager owns them.
    type: bool
    default: true
  virtlogd_pidfile:
    description: Pid file of C(virtlogd), passed as C(-p) when it is started.
    type: path
    default: /run/virtlogd.pid
  libvirtd_pidfile:
    description: Pid file of C(libvirtd), passed as C(-p) when it is started.
    type: path
    default: /run/libvirtd.pid
  timeout:
    description: Seconds to wait for libvirt to answer after starting.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details:
      - Reports which daemons would be started without starting them.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Start libvirt without systemd
  virtops.compute.vm_libvirt_daemons:
    libvirt_uri: qemu:///system

- name: Wait for the systemd-managed libvirtd to answer
  virtops.compute.vm_libvirt_daemons:
    start: false
    timeout: 30
"""

RETURN = r"""
started:
  description: Daemons that were (in check mode, would be) started.
  returned: always
  type: list
  elements: str
  sample: [libvirtd]
pids:
  description: Pid of each daemon from its pid file, V(null) when it does not run or was not checked.
  returned: always
  type: dict
  sample: {virtlogd: 812, libvirtd: 815}
waited_s:
  description: Seconds spent waiting for libvirt to answer.
  returned: always
  type: float
"""

from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import LIBVIRT_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._compute.host_prepare import (
    Daemon, ensure_libvirt_running)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **LIBVIRT_ARGS,
            start=dict(type="bool", default=True),
            virtlogd_pidfile=dict(type="path", default="/run/virtlogd.pid"),
            libvirtd_pidfile=dict(type="path", default="/run/libvirtd.pid"),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    daemons = [Daemon("virtlogd", params["virtlogd_pidfile"]),
               Daemon("libvirtd", params["libvirtd_pidfile"])]
    try:
        result = ensure_libvirt_running(params["libvirt_uri"], daemons, params["start"],
                                        module.check_mode, timeout=params["timeout"])
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    module.exit_json(**asdict(result))


if __name__ == "__main__":
    main()
