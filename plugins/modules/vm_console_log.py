#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_console_log
short_description: Read the last lines of an instance's serial console log
version_added: 0.1.0
description:
  - Returns the tail of the guest's serial console log, as Nova's C(get_console_output) does
    (C(openstack console log show --lines N)).
  - The log is the C(<log file>) of the first serial port of C(<instances_path>/<uuid>/libvirt.xml)
    (or the path of a C(file) type serial port), else C(<instances_path>/<uuid>/console.log), which
    is where M(virtops.compute.vm_domain) looks when it waits for a console line.
  - Reads at most the last 100 KiB of the file (Nova's C(MAX_CONSOLE_BYTES)). Changes nothing.
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.attributes
  - virtops.compute.attributes.INFO_MODULE
options:
  uuid:
    description: Instance UUID.
    type: str
    required: true
  lines:
    description: How many of the last lines to return.
    type: int
    default: 50
requirements:
  - python3-lxml (to read the domain's definition)
seealso:
  - module: virtops.compute.vm_domain
"""

EXAMPLES = r"""
- name: Read the last 20 lines of web1's console
  virtops.compute.vm_console_log:
    uuid: "{{ web1_uuid }}"
    lines: 20
  register: web1_console

- name: Show them
  ansible.builtin.debug:
    msg: "{{ web1_console.lines }}"
"""

RETURN = r"""
path:
  description: The console log file.
  returned: success
  type: str
  sample: /var/lib/virtops/instances/0f7e.../console.log
exists:
  description: Whether there is a log yet (a domain that never ran has none).
  returned: success
  type: bool
lines:
  description: The last O(lines) lines, oldest first, without line ends; empty without a log.
  returned: success
  type: list
  elements: str
  sample: [VIRTOPS-GUEST-BOOTED, VIRTOPS-GUEST-READY]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._compute.console import console_tail
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import (
    HAS_LXML, LXML_IMPORT_ERROR)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uuid=dict(type="str", required=True),
            lines=dict(type="int", default=50),
            **INSTANCES_PATH_ARGS,
        ),
        supports_check_mode=True,
    )
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    params = module.params
    try:
        result = console_tail(params["instances_path"], params["uuid"], params["lines"])
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    module.exit_json(changed=False, path=result.path, exists=result.exists, lines=result.lines)


if __name__ == "__main__":
    main()
