# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tests' daemon helpers (tests/fixtures/daemons.py) on real child processes: a child made
to die with its parent gets its signal when the thread that started it ends, and ``end`` stops
a process with its signal, or with SIGKILL when the signal is ignored past the timeout."""
from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from tests.fixtures.daemons import die_with_parent, end


def start_in_a_thread_that_ends(**popen) -> subprocess.Popen:
    """``sleep 60`` started by a thread that ends at once: the child's parent, for the kernel."""
    started = []
    thread = threading.Thread(target=lambda: started.append(subprocess.Popen(["sleep", "60"], **popen)))  # pylint: disable=consider-using-with
    thread.start()
    thread.join()
    return started[0]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_child_made_to_die_with_its_parent_gets_that_signal_when_its_parent_ends(sig):
    child = start_in_a_thread_that_ends(preexec_fn=die_with_parent(sig))  # pylint: disable=subprocess-popen-preexec-fn
    try:
        assert child.wait(timeout=10) == -sig
    finally:
        end(child, signal.SIGKILL, 1)


def test_a_child_not_made_to_die_with_its_parent_outlives_it():
    child = start_in_a_thread_that_ends()
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.5)
    finally:
        end(child, signal.SIGTERM, 5)
    assert child.returncode == -signal.SIGTERM


def test_end_stops_a_process_with_its_signal_and_reaps_it():
    child = subprocess.Popen(["sleep", "60"])  # pylint: disable=consider-using-with
    end(child, signal.SIGINT, 10)
    assert child.returncode == -signal.SIGINT


def test_end_kills_a_process_that_ignores_its_signal_after_the_timeout():
    # The shell ignores SIGINT, says so, and the ignoring survives into sleep (exec keeps it).
    child = subprocess.Popen(["sh", "-c", 'trap "" INT; echo ready; exec sleep 60'],  # pylint: disable=consider-using-with
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "ready\n"
    began = time.monotonic()
    end(child, signal.SIGINT, 0.5)
    assert time.monotonic() - began >= 0.5
    assert child.returncode == -signal.SIGKILL
    child.stdout.close()


def test_end_of_a_process_that_has_exited_does_nothing():
    child = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    child.wait(timeout=10)
    end(child, signal.SIGTERM, 1)
    assert child.returncode == 0
