"""What one dying memcg costs in kernel memory (DESIGN.md, kernel-notes.md 5.1)."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.eras import parse_release


@dataclass(frozen=True, slots=True)
class MemcgCost:
    """Bytes one dying memcg costs on a host, and which model gave the figure."""

    per_memcg_bytes: int
    model: str


# Fixed part: struct mem_cgroup, per-node structs and the cgroup itself, measured on this lab
# VM as ~12.6 kB of SUnreclaim per dying memcg (lab-findings.md 4).
FIXED_BYTES = 12_600


def memcg_cost(kernel_release: str, cpus: int, numa_nodes: int) -> MemcgCost:
    """Per-CPU stats x CPUs + a fixed part; struct sizes from Shakeel Butt's 6.10 series."""
    try:
        version = parse_release(kernel_release)
    except ValueError:
        version = (6, 10)
    if version >= (6, 10):
        # memcg_vmstats_percpu 960 B + lruvec_stats_percpu 432 B per node, per CPU.
        per_cpu = 960 + 432 * max(1, numa_nodes)
        model = "6.10+: (960 + 432 x nodes) B per CPU + 12.6 kB fixed"
    else:
        per_cpu = 1280 + 752 * max(1, numa_nodes)
        model = "pre-6.10: (1280 + 752 x nodes) B per CPU + 12.6 kB fixed"
    return MemcgCost(per_memcg_bytes=per_cpu * max(1, cpus) + FIXED_BYTES, model=model)
