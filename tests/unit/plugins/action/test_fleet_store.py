# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who holds a lease, as the fleet_store action names it, and when that holder is gone."""
from __future__ import annotations

import os
import socket
import subprocess

from ansible_collections.virtops.compute.plugins.action.fleet_store import default_holder, holder_alive


def test_the_holder_is_the_awx_job_when_there_is_one():
    assert default_holder({"awx_job_id": 4242}) == "AWX job 4242"
    assert default_holder({"tower_job_id": 7}) == "AWX job 7"


def test_outside_awx_the_holder_is_ansible_playbook_on_this_controller():
    assert default_holder({}) == "ansible-playbook pid %d on %s" % (os.getppid(), socket.gethostname())


def test_a_holder_is_gone_only_when_it_is_a_process_of_this_controller_that_ended():
    here = socket.gethostname()
    finished = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    finished.wait()
    assert holder_alive("ansible-playbook pid %d on %s" % (os.getpid(), here))
    assert not holder_alive("ansible-playbook pid %d on %s" % (finished.pid, here))
    assert holder_alive("ansible-playbook pid %d on another-controller" % finished.pid)
    assert holder_alive("AWX job 12")
