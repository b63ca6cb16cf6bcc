# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifecycle events end a wait's sleep, on libvirt's test driver (which sends them)."""
from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.virtops.compute.plugins.module_utils._libvirt import connection
from ansible_collections.virtops.compute.plugins.module_utils._libvirt.events import EventSleep

libvirt = pytest.importorskip("libvirt")

TEST_DOMAIN = "test"          # the running domain of test:///default
LONG = 30.0                   # a sleep no event-less wait would end early


def test_a_lifecycle_event_of_the_domain_ends_the_sleep_and_close_stops_listening():
    with connection.connect("test:///default") as conn:
        dom = conn.lookupByName(TEST_DOMAIN)
        sleep = EventSleep(conn, dom.UUIDString())
        timer = threading.Timer(0.2, dom.suspend)
        timer.start()
        began = time.monotonic()
        sleep(LONG)
        timer.join()
        assert sleep.listening and time.monotonic() - began < LONG / 2
        dom.resume()
        sleep.close()
        assert not sleep.listening


def test_an_event_of_another_domain_does_not_end_the_sleep():
    with connection.connect("test:///default") as conn:
        dom = conn.lookupByName(TEST_DOMAIN)
        sleep = EventSleep(conn, "00000000-0000-0000-0000-000000000000")
        timer = threading.Timer(0.1, dom.suspend)
        timer.start()
        began = time.monotonic()
        sleep(0.6)
        timer.join()
        assert sleep.listening and time.monotonic() - began >= 0.55
        dom.resume()
        sleep.close()


def test_without_a_callback_it_is_a_plain_sleep():
    class Refusing:
        def domainEventRegisterAny(self, *args):
            raise libvirt.libvirtError("no events here")

    sleep = EventSleep(Refusing(), "0f7e5a2c-5b7a-4f55-9d0f-7f3c9c7f1a11")
    sleep(0.01)
    assert not sleep.listening
    sleep.close()
