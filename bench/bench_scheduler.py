# Copyright: (c) 2026, virtops.compute contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scheduler benchmark: place 100 instances on 1,000 and on 10,000 synthetic hosts.

Run as ``python bench/bench_scheduler.py`` from the repository root (it finds the
collection itself). For each fleet size it reports, per placement:

- multi:   one request with num_instances=100 (Nova's multiple create), time / 100;
- single:  100 requests of one instance each (every request filters all hosts once);
- full:    like single, with an availability zone, capabilities extra specs, image
           properties and an anti-affinity server group (every default filter active);

and the baseline: one trivial pass over the hosts (read one attribute, compare). The
ratios say how the cost grows with the fleet (10k/1k, ideally about 10) and how far each
placement is from that floor. Takes well under a minute.
"""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".cache" / "collections"
if COLLECTIONS.is_dir():
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.host_state import parse_hosts  # noqa: E402
from ansible_collections.virtops.compute.plugins.plugin_utils._scheduler.scheduler import schedule  # noqa: E402

INSTANCES = 100
BUDGET_MS = 50.0


def synthetic_facts(count: int, seed: int = 1) -> list:
    """A fleet of mixed hosts: three zones, a few aggregates, some disabled, a few
    instances per host (some in server groups)."""
    rng = random.Random(seed)
    hosts = []
    for n in range(count):
        vcpus = rng.choice((16, 32, 48, 64))
        memory_mb = vcpus * 4096
        local_gb = rng.choice((500, 1000, 2000))
        instances = []
        used_vcpus = used_ram = used_disk = 0
        for i in range(rng.randint(0, 6)):
            flavor = rng.choice(((1, 2048, 20), (2, 4096, 40), (4, 8192, 80)))
            used_vcpus += flavor[0]
            used_ram += flavor[1]
            used_disk += flavor[2]
            instances.append({"uuid": "%08x-0000-4000-8000-%012x" % (n, i), "name": "vm-%d-%d" % (n, i),
                              "vm_state": "active", "server_group": rng.choice((None, None, "web", "db"))})
        aggregates = [{"name": "az%d" % (n % 3), "metadata": {"availability_zone": "az%d" % (n % 3)}}]
        if n % 5 == 0:
            aggregates.append({"name": "fast", "metadata": {"ssd": "true"}})
        hosts.append({
            "hostname": "c%05d" % n,
            "enabled": rng.random() > 0.02,
            "aggregates": aggregates,
            "hypervisor_type": "QEMU",
            "hypervisor_version": 7002000,
            "arch": "x86_64",
            "virt_type": "kvm",
            "vcpus": vcpus,
            "vcpus_used": used_vcpus,
            "memory_mb": memory_mb,
            "memory_mb_used": 512 + used_ram,
            "local_gb": local_gb,
            "local_gb_used": used_disk,
            "free_disk_gb": local_gb - used_disk - rng.randint(0, 50),
            "cpu_allocation_ratio": 4.0,
            "ram_allocation_ratio": 1.0,
            "disk_allocation_ratio": 1.0,
            "capabilities": {"cpu_info": {"arch": "x86_64", "vendor": "Intel", "model": "Skylake-Server",
                                          "features": ["sse4.2", "avx", "avx2", "aes"]},
                             "hypervisor_type": "QEMU"},
            "instances": instances,
        })
    return hosts


FLAVOR = {"name": "m1.medium", "vcpus": 2, "ram_mb": 4096, "root_gb": 40}
FULL_FLAVOR = dict(FLAVOR, extra_specs={"capabilities:cpu_info:features": "<all-in> avx2 aes",
                                        "capabilities:hypervisor_type": "s== QEMU",
                                        "hw:cpu_policy": "shared"})
IMAGE = {"properties": {"hw_architecture": "x86_64", "img_hv_type": "kvm", "hw_vm_mode": "hvm"}}


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def baseline(states: list) -> float:
    """Seconds for one trivial pass: iterate the hosts once, compare one value."""
    def one_pass():
        fit = 0
        for host in states:
            if host.memory_mb - host.memory_mb_used >= 4096:
                fit += 1
        return fit
    return min(timed(one_pass) for _attempt in range(25))


def run(count: int) -> dict:
    facts = synthetic_facts(count)
    parse_s = timed(lambda: parse_hosts(facts))
    states = parse_hosts(facts)
    multi_request = {"name": "web", "num_instances": INSTANCES, "flavor": FLAVOR}
    multi_s = timed(lambda: schedule(states, multi_request, {"random_seed": 1}))

    def singles(make_request):
        for k in range(INSTANCES):
            schedule(states, make_request(k), {"random_seed": k})

    single_s = timed(lambda: singles(lambda k: {"instance_names": ["vm%d" % k], "flavor": FLAVOR}))
    full_s = timed(lambda: singles(lambda k: {
        "instance_names": ["web-new-%d" % k], "flavor": FULL_FLAVOR, "image": IMAGE,
        "availability_zone": "az%d" % (k % 3),
        "server_group": {"name": "web", "policy": "anti-affinity"}, "scheduler_hints": {"group": "web"}}))
    return {"hosts": count, "parse_ms": parse_s * 1e3, "baseline_ms": baseline(states) * 1e3,
            "multi_ms": multi_s * 1e3 / INSTANCES, "single_ms": single_s * 1e3 / INSTANCES,
            "full_ms": full_s * 1e3 / INSTANCES}


def main() -> int:
    started = time.perf_counter()
    print("scheduler benchmark: %d placements per case, Python %s, %d CPUs"
          % (INSTANCES, sys.version.split()[0], os.cpu_count() or 0))
    results = [run(1000), run(10000)]
    header = "%7s %9s %11s %12s %12s %12s" % ("hosts", "parse ms", "baseline ms", "multi ms/pl", "single ms/pl",
                                              "full ms/pl")
    print(header)
    for r in results:
        print("%7d %9.1f %11.3f %12.3f %12.3f %12.3f"
              % (r["hosts"], r["parse_ms"], r["baseline_ms"], r["multi_ms"], r["single_ms"], r["full_ms"]))
    small, big = results
    print("10k/1k ratio:        multi %.1f, single %.1f, full %.1f, baseline %.1f"
          % (big["multi_ms"] / small["multi_ms"], big["single_ms"] / small["single_ms"],
             big["full_ms"] / small["full_ms"], big["baseline_ms"] / small["baseline_ms"]))
    for r in results:
        print("vs baseline (%5d): multi %.1fx, single %.1fx, full %.1fx"
              % (r["hosts"], r["multi_ms"] / r["baseline_ms"], r["single_ms"] / r["baseline_ms"],
                 r["full_ms"] / r["baseline_ms"]))
    worst = max(big["multi_ms"], big["single_ms"], big["full_ms"])
    verdict = "OK" if worst < BUDGET_MS else "OVER BUDGET"
    print("worst per placement at 10,000 hosts: %.2f ms (budget %.0f ms): %s" % (worst, BUDGET_MS, verdict))
    print("total run time: %.1f s" % (time.perf_counter() - started))
    return 0 if worst < BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
