# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outcome: the one changed/actions/timings type of every driver step."""
from __future__ import annotations

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._common.result import (
    Outcome, elapsed, rounded)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_action_marks_the_outcome_changed_and_keeps_the_order():
    outcome = Outcome()
    assert not outcome.changed
    outcome.act("create disk")
    outcome.act("write disk.info")
    assert outcome.changed and outcome.actions == ["create disk", "write disk.info"]


def test_a_step_timed_twice_adds_up_and_survives_an_exception():
    clock, outcome = FakeClock(), Outcome()
    with outcome.timed("copy", clock):
        clock.now += 1.25
    with pytest.raises(RuntimeError):
        with outcome.timed("copy", clock):
            clock.now += 0.5
            raise RuntimeError("rsync died")
    assert outcome.timings == {"copy": 1.75}
    assert not outcome.changed   # timing is not a change


def test_timings_are_reported_to_the_millisecond():
    outcome = Outcome(timings={"fetch": 1.23456, "inspect": 0.0004})
    assert outcome.rounded_timings() == {"fetch": 1.235, "inspect": 0.0}
    assert rounded({"a": 2.0004}) == {"a": 2.0}
    clock = FakeClock()
    started = clock()
    clock.now += 0.12345
    assert elapsed(started, clock) == 0.123
