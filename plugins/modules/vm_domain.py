#!/usr/bin/python
# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_domain
short_description: Define, start, stop, reboot and delete an instance's libvirt domain
version_added: 0.1.0
description:
  - Brings the libvirt domain of an instance to the wanted O(state), the way Nova's libvirt
    driver does in C(_create_domain_and_network), C(power_on), C(power_off), C(reboot) and
    C(destroy).
  - The definition comes from C(<instances_path>/<uuid>/libvirt.xml), which
    M(virtops.compute.vm_xml) writes. The domain is defined when it does not exist and
    redefined when the file changed. A SHA-256 of the file is kept in the domain's metadata
    (namespace C(https://virtops.dev/xmlns/domain/1.0)), so an unchanged file never causes a
    redefinition. A running domain keeps its old definition until its next start; the result
    then says RV(restart_required).
  - "Before a start, the ports in O(network_info) are plugged as M(virtops.compute.vm_vif)
    does. The domain is then created paused, and resumed once every interface's host device
    exists and is up and, for bridged ports, is attached to the port's bridge, which is up.
    This is our counterpart of Nova's C(network-vif-plugged) event. The module polls every
    0.5 s for at most O(vif_plugging_timeout) seconds. When the ports are still not plugged,
    the domain is destroyed, undefined if this run defined it, and the taps this run created
    are removed; then the module fails. With O(vif_plugging_is_fatal=false) it warns and
    resumes the domain anyway."
  - After the resume it polls every 0.5 s until the domain is RUNNING. If O(wait_for_console)
    is given, it then waits until that pattern appears on the guest's serial console log.
  - "Clean power off, as Nova's C(_clean_shutdown): the ACPI power button, sent again every
    O(retry_interval) seconds, then C(destroy) after O(shutdown_timeout) seconds. RV(power_off)
    reports which of the two powered the guest off. A paused domain cannot take an ACPI
    request and is destroyed."
  - "O(state=absent) destroys the domain (no clean shutdown, as Nova's delete) and undefines
    it with its NVRAM, managed save, snapshot and checkpoint metadata. It then removes the taps
    of C(ethernet) ports and the directories C(<uuid>), C(<uuid>_resize) and C(<uuid>_del)
    under O(instances_path). The instance record C(instance.json) goes with its directory,
    which releases the instance's claim on the host's resources."
author:
  - virtops.compute contributors (@virtops)
extends_documentation_fragment:
  - virtops.compute.libvirt.INSTANCES_PATH
  - virtops.compute.libvirt.URI
  - virtops.compute.port_security
options:
  uuid:
    description: Instance UUID, which is also the domain UUID and the name of its directory.
    type: str
    required: true
  state:
    description:
      - V(running), V(paused) and V(stopped) define the domain if needed and bring it to that
        power state. V(absent) deletes it (see the description).
    type: str
    choices: [running, paused, stopped, absent]
    default: running
  reboot:
    description:
      - Reboot the domain; needs O(state=running). A reboot always reports a change.
      - A domain that is shut off is simply started.
    type: bool
    default: false
  reboot_type:
    description:
      - V(soft) powers the guest off cleanly (ACPI, then destroy after O(shutdown_timeout)) and
        starts it again. V(hard) destroys it and starts it again.
      - Both kinds start the domain from its current definition, so they apply a changed
        C(libvirt.xml).
    type: str
    choices: [soft, hard]
    default: soft
  network_info:
    description:
      - The instance's ports, in Nova's network_info shape. They are plugged before every start
        and unplugged at O(state=absent), and they name the bridge each port must be on.
      - When omitted, C(network_info) is read from C(<instances_path>/<uuid>/instance.json) if
        that exists. Without either, interfaces are checked against the bridges the definition
        names.
    type: list
    elements: dict
  plug_vifs:
    description:
      - Plug (and at O(state=absent) unplug) the ports of O(network_info). Set V(false) when
        M(virtops.compute.vm_vif) does it; the ports are still checked before the resume.
    type: bool
    default: true
  vif_plugging_timeout:
    description:
      - Seconds to wait for the ports to be plugged (Nova's C(vif_plugging_timeout)), and then
        for the domain to run. V(0) starts without the paused check; the wait for
        RUNNING is then at most 300 s.
    type: float
    default: 300
  vif_plugging_is_fatal:
    description:
      - Whether ports that are not plugged within O(vif_plugging_timeout) fail the start (Nova's
        C(vif_plugging_is_fatal)).
    type: bool
    default: true
  shutdown_timeout:
    description:
      - Seconds a clean power off waits for the guest before destroying it (Nova's
        C(shutdown_timeout)). V(0) destroys at once.
    type: float
    default: 60
  retry_interval:
    description:
      - Seconds between two ACPI power button requests during a clean power off (Nova's
        C(_clean_shutdown) retry interval).
    type: float
    default: 10
  wait_for_console:
    description:
      - A Python regular expression. After a start (or a reboot) done by this run, wait until
        the guest's serial console log shows it, for example V(login:) or
        V(VIRTOPS-GUEST-READY).
      - The log is the C(<log file>) of the first serial port in the definition, else
        C(<instances_path>/<uuid>/console.log). Only what the guest wrote after this start
        counts.
      - On timeout the module fails and leaves the guest running; the last lines of the console
        are in the result.
    type: str
  console_timeout:
    description: Seconds to wait for O(wait_for_console).
    type: float
    default: 300
attributes:
  check_mode:
    support: full
    description: Reports what would be defined, plugged, started, stopped or removed, and does nothing.
  diff_mode:
    support: full
    description: When the definition changes, shows the domain XML before and after.
  idempotent:
    support: full
    description:
      - A second run with the same parameters reports no change. O(reboot=true) always
        reboots and reports a change.
requirements:
  - python3-libvirt
  - python3-lxml
  - iproute2 (C(ip), C(bridge)), when it plugs ports
notes:
  - "Power states are Nova's: C(running), C(paused), C(shutdown), C(crashed), C(suspended),
    C(pending), plus C(absent) when there is no domain."
  - O(wait_for_console) is only honoured when this run starts the domain. A domain that already
    runs is not waited for.
seealso:
  - module: virtops.compute.vm_xml
  - module: virtops.compute.vm_vif
"""

EXAMPLES = r"""
- name: Start web1 once its ports are plugged, and wait for its login prompt
  virtops.compute.vm_domain:
    uuid: "{{ web1_uuid }}"
    network_info: "{{ web1_ports.network_info }}"
    wait_for_console: "login:"
    console_timeout: 120
  register: web1_domain

- name: Say how long the spawn took
  ansible.builtin.debug:
    msg: "Took {{ web1_domain.spawn_seconds }} seconds to spawn web1"

- name: Power web1 off cleanly, giving it two minutes
  virtops.compute.vm_domain:
    uuid: "{{ web1_uuid }}"
    state: stopped
    shutdown_timeout: 120

- name: Soft reboot
  virtops.compute.vm_domain:
    uuid: "{{ web1_uuid }}"
    reboot: true

- name: Delete web1 from its host
  virtops.compute.vm_domain:
    uuid: "{{ web1_uuid }}"
    state: absent
"""

RETURN = r"""
uuid:
  description: The instance (domain) UUID.
  returned: always
  type: str
name:
  description: The domain name, or null when no definition was found.
  returned: always
  type: str
  sample: web1
power_state:
  description: Nova's power state of the domain after the run, or V(absent).
  returned: always
  type: str
  sample: running
defined:
  description: Whether the domain is defined after the run.
  returned: always
  type: bool
definition_changed:
  description: Whether the domain was (or in check mode would be) defined or redefined.
  returned: always
  type: bool
restart_required:
  description: The domain runs with an older definition than C(libvirt.xml).
  returned: always
  type: bool
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [define domain web1 from /var/lib/virtops/instances/0f7e.../libvirt.xml, start domain web1]
transitions:
  description:
    - The instance's vm_state/task_state steps with UTC timestamps, as Nova records them
      (C(building)/C(powering-on)/C(rebooting)/C(reboot_started)/C(powering-off)/C(pausing)/
      C(unpausing)/C(deleting) then the final vm_state with no task).
  returned: always
  type: list
  elements: dict
  sample:
    - {at: "2026-01-02T03:04:05.123Z", vm_state: building, task_state: powering-on, power_state: absent}
    - {at: "2026-01-02T03:04:11.456Z", vm_state: active, task_state: null, power_state: running}
power_off:
  description: How the guest was powered off; null when this run did not power it off.
  returned: always
  type: dict
  contains:
    method:
      description: V(acpi) (the guest shut down itself), V(destroy), or V(none).
      type: str
    acpi_requests:
      description: ACPI power button requests sent.
      type: int
    seconds:
      description: Seconds from the first request until the domain was off.
      type: float
    reason:
      description: Why this method was used.
      type: str
vifs:
  description: The interface checks of this run's start, one per interface; empty without a start.
  returned: always
  type: list
  elements: dict
  contains:
    devname:
      description: Host device of the interface.
      type: str
    bridge:
      description: Bridge it must be on, or null.
      type: str
    mac:
      description: Guest MAC.
      type: str
    problem:
      description: Why it is not plugged, or null.
      type: str
spawn_seconds:
  description:
    - Seconds from creating the domain until it ran (Nova's "Took N seconds to spawn"); null
      without a start.
  returned: always
  type: float
console_match:
  description: The console text that matched O(wait_for_console); null when nothing was waited for.
  returned: always
  type: str
timings:
  description:
    - Seconds per phase (C(define), C(plug), C(create), C(vif_wait), C(boot), C(console),
      C(power_off), C(undefine), C(unplug), C(remove), C(total)); a phase that did not run is absent.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.virtops.compute.plugins.module_utils._common.params import params_from_module
from ansible_collections.virtops.compute.plugins.module_utils._model.network import PORT_SECURITY_ARGS
from ansible_collections.virtops.compute.plugins.module_utils._model.instance_layout import (
    INSTANCES_PATH_ARGS)
from ansible_collections.virtops.compute.plugins.module_utils._compute.domain import (
    DomainManager, DomainParams)
from ansible_collections.virtops.compute.plugins.module_utils._common.errors import (
    VirtopsError, host_os_error)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LIBVIRT_ARGS, LIBVIRT_IMPORT_ERROR, connect)
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.xml import (
    HAS_LXML, LXML_IMPORT_ERROR)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            uuid=dict(type="str", required=True),
            state=dict(type="str", choices=["running", "paused", "stopped", "absent"],
                       default="running"),
            reboot=dict(type="bool", default=False),
            reboot_type=dict(type="str", choices=["soft", "hard"], default="soft"),
            network_info=dict(type="list", elements="dict"),
            plug_vifs=dict(type="bool", default=True),
            **PORT_SECURITY_ARGS,
            vif_plugging_timeout=dict(type="float", default=300),
            vif_plugging_is_fatal=dict(type="bool", default=True),
            shutdown_timeout=dict(type="float", default=60),
            retry_interval=dict(type="float", default=10),
            wait_for_console=dict(type="str"),
            console_timeout=dict(type="float", default=300),
            **INSTANCES_PATH_ARGS,
            **LIBVIRT_ARGS,
        ),
        supports_check_mode=True,
    )
    if not HAS_LXML:
        module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python (python3-libvirt)"),
                         exception=LIBVIRT_IMPORT_ERROR)
    p = module.params
    try:
        params = params_from_module(DomainParams, p)
        with connect(params.libvirt_uri) as conn:
            manager = DomainManager(conn, params, check_mode=module.check_mode,
                                    plug=p["plug_vifs"])
            result = manager.ensure()
    except VirtopsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    except OSError as exc:
        module.fail_json(msg=host_os_error(exc))
    for warning in result.warnings:
        module.warn(warning)
    output = result.as_module_result()
    if module._diff and result.definition_changed:
        output["diff"] = {"before": result.xml_before or "", "after": result.xml_after or "",
                          "before_header": "domain %s (defined)" % (result.name or result.uuid),
                          "after_header": "domain %s (from libvirt.xml)"
                                          % (result.name or result.uuid)}
    module.exit_json(**output)


if __name__ == "__main__":
    main()
