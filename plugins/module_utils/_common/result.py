# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a step did and how long its parts took: one type for every driver step.

The image cache, the disk builder, vm_image, vm_xml, vm_domain, VIF plugging, the instance
record and the migration phases all report ``changed``, the ``actions`` taken (sentences, in
order) and ``timings`` (seconds per named part, summed when a part runs more than once). ``Outcome`` holds the three; drivers put their
own fields beside it (subclass or attribute) and keep their modules' return values. The clock
is injectable (``clock``), as everywhere a driver waits.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Mapping, Optional


def elapsed(started: float, clock: Callable[[], float] = time.monotonic) -> float:
    """Seconds since ``started`` (a ``clock()`` reading), to the millisecond."""
    return round(clock() - started, 3)


def rounded(timings: Mapping[str, float], digits: int = 3) -> Dict[str, float]:
    return {key: round(value, digits) for key, value in timings.items()}


@dataclass
class Outcome:
    """``changed``, ``actions`` and ``timings`` of one step."""
    changed: bool = False
    actions: List[str] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)

    def act(self, description: str) -> None:
        """Something changed: say what."""
        self.actions.append(description)
        self.changed = True

    def add_time(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    @contextmanager
    def timed(self, name: str, clock: Optional[Callable[[], float]] = None) -> Iterator[None]:
        """Time the block as ``name`` (added to what ``name`` already took)."""
        clock = clock or time.monotonic
        began = clock()
        try:
            yield
        finally:
            self.add_time(name, clock() - began)

    def rounded_timings(self, digits: int = 3) -> Dict[str, float]:
        return rounded(self.timings, digits)
