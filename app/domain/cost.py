"""What one dying memcg costs in kernel memory, by kernel (DESIGN.md, kernel-notes.md 5.1).

Each figure is fixed bytes plus bytes per possible CPU (and per NUMA node), from a
published measurement of that kernel generation or from this lab's own:

- **up to 5.8** (Roman Gushchin, 2019, 32 CPUs, 1 node, `20190313183953.17854-1-guro@fb.com`):
  1000 dying cgroups added 57,216 kB of Percpu and 17,060 kB of Slab: 17,060 B fixed +
  1,788 B a CPU (57,216 kB / 1000 / 32). That is the 75 kB he reports at 32 CPUs.
- **5.9 to 6.9** (Vasily Averin, 2022, ~5.19 on 4 CPUs, `memcg: accounting for objects
  allocated by mkdir, cgroup` v5): the memcg costs ~17 KB + 4,692 B per CPU.
- **6.10 and later** (Shakeel Butt's stats series shrank `memcg_vmstats_percpu` 1280 -> 960 B
  a CPU, `lruvec_stats_percpu` 752 -> 432 B a CPU and node, `memcg_vmstats` 1832 -> 1352 B,
  `lruvec_stats` 1128 -> 648 B a node): the 5.9 figures less those savings. This lab's 6.18
  VM (2 CPUs, 1 node) measured 12.6 kB of SUnreclaim and 4.03 kB of Percpu per dying memcg
  (lab-findings.md 4): 16.6 kB, against 24.6 kB from the published figures; `LAB_6_18`
  keeps the lab's, the host views the published ones (whatever mkdir charged).

Before 5.9, each dying memcg may also keep per-memcg kmem_cache copies (one per cache it
allocated from): `CACHE_COPY` below (struct kmem_cache and its name, a kmem_cache_cpu per
CPU, a kmem_cache_node per node), and their partly filled slab pages, which the engine
counts from each cache's geometry (app/simulation/engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.eras import ERAS, parse_release

KIB = 1024


@dataclass(frozen=True, slots=True)
class CostModel:
    """Bytes of one dying memcg: fixed + per CPU + per node + per CPU and node."""

    name: str
    fixed: int
    per_cpu: int
    per_node: int = 0
    per_cpu_node: int = 0
    source: str = ""

    def bytes(self, cpus: int, nodes: int = 1) -> int:
        c, n = max(1, cpus), max(1, nodes)
        return self.fixed + self.per_cpu * c + self.per_node * n + self.per_cpu_node * c * n


UP_TO_5_8 = CostModel("<= 5.8 (Gushchin 2019: 75 kB at 32 CPUs)", 17_060, 1_788,
                      source="20190313183953.17854-1-guro@fb.com")
# Averin's 1-node figure, with the per-node stats (Butt's "without" sizes) made per node.
FROM_5_9 = CostModel("5.9 - 6.9 (Averin 2022: ~17 KB + 4,692 B per CPU, 1 node)",
                     17 * KIB - 1128, 4_692 - 752, per_node=1128, per_cpu_node=752,
                     source="memcg: accounting for objects allocated by mkdir, cgroup v5")
# Butt's savings: memcg_vmstats 1832 -> 1352, lruvec_stats 1128 -> 648 (a node),
# memcg_vmstats_percpu 1280 -> 960 (a CPU), lruvec_stats_percpu 752 -> 432 (a CPU, a node).
FROM_6_10 = CostModel("6.10+ (Averin 2022 less Butt 2024's stats savings)",
                      FROM_5_9.fixed - (1832 - 1352), FROM_5_9.per_cpu - (1280 - 960),
                      per_node=648, per_cpu_node=432,
                      source="20240501172617.678560-1-shakeel.butt@linux.dev")
LAB_6_18 = CostModel("6.18 measured here (lab-findings 4: 12.6 kB + 4.03 kB percpu, 2 CPUs)",
                     12_600, 2_015, source="lab-findings.md 4")

# Before 5.9 (per-memcg kmem_caches, SLUB, x86_64): one cache copy [derived]:
# * struct kmem_cache: 256 B, the object size of the `kmem_cache` cache in the real
#   /proc/slabinfo captures of tests/fixtures/third_party/pcp/meminfo (256 in 4 of 6
#   captures, 320 and 384 in the others; it holds memcg_params and one node pointer);
# * its name, kasprintf("%s(%llu:%s)") in memcg_create_kmem_cache (kernel-notes.md 2(a)),
#   e.g. "dentry(1234:job-1.scope)": kmalloc-32;
# * a struct kmem_cache_node per node: 64 B (the same captures: 64 in 4 of 6, 128 in 2);
# * a struct kmem_cache_cpu per CPU: 32 B (freelist, tid, page, partial: 4.x-5.8
#   include/linux/slub_def.h with CONFIG_SLUB_CPU_PARTIAL), allocated per CPU.
# With slub_memcg_sysfs=1 each copy also has a sysfs directory (not counted).
CACHE_COPY = CostModel("per-memcg kmem_cache copy (SLUB, <= 5.8)", 256 + 32, 32, per_node=64,
                       source="pcp slabinfo captures; include/linux/slub_def.h (4.x-5.8)")



@dataclass(frozen=True, slots=True)
class MemcgCost:
    """Bytes one dying memcg costs on a host, and which model gave the figure."""

    per_memcg_bytes: int
    model: str


def model_for_version(version: tuple[int, int]) -> CostModel:
    """The cost model of a kernel (major, minor): the generation it belongs to."""
    if version >= (6, 10):
        return FROM_6_10
    if version >= (5, 9):
        return FROM_5_9
    return UP_TO_5_8


def model_for_release(kernel_release: str) -> CostModel:
    """The cost model of a kernel release (6.10+ if it cannot be parsed)."""
    try:
        version = parse_release(kernel_release)
    except ValueError:
        return FROM_6_10
    return model_for_version((version[0], version[1]))


def model_for_era(era: str) -> CostModel:
    """The cost model of a simulation era (objcg-kmem spans 5.13 to today: 6.10+ sizes)."""
    e = ERAS.get(era)
    return model_for_release(e.cost_release) if e is not None else FROM_6_10


def cache_copy_bytes(cpus: int, nodes: int = 1) -> int:
    """One per-memcg kmem_cache copy before 5.9, without its slab pages [derived]."""
    return CACHE_COPY.bytes(cpus, nodes)


def memcg_cost(kernel_release: str, cpus: int, numa_nodes: int) -> MemcgCost:
    """What one dying memcg costs on a host of this kernel, CPUs and nodes."""
    m = model_for_release(kernel_release)
    return MemcgCost(m.bytes(cpus, numa_nodes), m.name)
