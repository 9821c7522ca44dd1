"""The words of the dashboard, explained once (/glossary) and on hover wherever they appear.

Era entries come from the era registry (app.domain.eras): its kernels and summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.eras import ERAS


@dataclass(frozen=True, slots=True)
class Term:
    """One entry: its anchor on /glossary, its name, and what it means."""

    key: str
    name: str
    text: str


TERMS: tuple[Term, ...] = (
    Term("dying", "dying memcg",
         "A memory cgroup that was removed (rmdir) but not yet freed: something is still "
         "charged to it. cgroup2 counts them in cgroup.stat nr_dying_descendants; /proc/cgroups "
         "num_cgroups counts live and dying together."),
    Term("memcg", "memcg", "The kernel's memory cgroup (struct mem_cgroup): one per cgroup of "
         "the memory controller, with per-CPU statistics that make each one cost kilobytes."),
    Term("css", "css refs", "References on a cgroup_subsys_state: while any is held, the memcg "
         "cannot be freed. Charged pages, slab pages (before 5.3) and kmem_caches (the 2019 "
         "patch) held them."),
    Term("percpu-ref", "percpu_ref", "A reference count kept per CPU while live (cheap) and "
         "switched to one atomic count when killed; the 2019 series gave each per-memcg "
         "kmem_cache one."),
    Term("zombie", "zombie kmem_cache", "A per-memcg slab cache (kernels up to 5.8) whose memcg "
         "is gone or dying but which still holds objects, so it cannot be destroyed."),
    Term("obj-cgroup", "obj_cgroup", "Since 5.9, slab objects are charged to an obj_cgroup, "
         "which is reparented when the memcg goes offline: slab no longer pins a dying "
         "memcg."),
    Term("reparent", "reparenting", "Moving what a removed cgroup left (caches, objects, pages) "
         "to its parent at offline, so the leftovers no longer keep the removed memcg alive."),
    Term("residual", "residual (what removed cgroups left)", "A live cgroup's hierarchical "
         "figure less its own and less its live children's: the charge its removed "
         "descendants still hold (exact on v1's total_* and on cgroup2 for cgroups without "
         "tasks of their own)."),
    Term("churn", "counted churn", "Cgroups made and removed per interval, counted from the "
         "kernel's own numbers (kernfs directory ids, /proc/cgroups) so that cgroups living "
         "less than one scrape are counted too."),
    Term("id-limit", "memcg-ID limit (65535)", "Each memcg has a 16-bit ID; mkdir fails with "
         "ENOSPC when they run out. Before 4.8 dying memcgs kept theirs; since 73f576c04b94 "
         "only live memcgs (and swap-out records) hold one."),
    Term("series-2019", "the 2019 series (v4, v5)", "Roman Gushchin's \"mm: reparent slab "
         "memory on cgroup removal\". Patch 5/7 as posted (v4, an era of its own): per-memcg "
         "caches with a percpu_ref; its memcg_kmem_get_cache() left an RCU read-side section "
         "open, so grace periods stalled and the memcg was never released. Fixed in v5."),
    Term("rcu", "RCU grace period", "The wait until every CPU has left any read-side section "
         "that began before it; deferred frees (call_rcu) run after one."),
    Term("drop-caches", "drop_caches", "echo 1 frees clean page cache, 2 reclaimable slab "
         "(dentries, inodes), 3 both. Dirty pages wait for writeback; tmpfs is never "
         "dropped."),
)


def era_terms() -> tuple[Term, ...]:
    """One entry per kernel era, from the registry."""
    return tuple(Term(f"era-{name.replace('/', '-')}", name, f"{e.kernels}: {e.summary}")
                 for name, e in ERAS.items())


def all_terms() -> tuple[Term, ...]:
    """Every entry: the words first, then the eras."""
    return TERMS + era_terms()


def tooltip(name: str) -> tuple[str, str] | None:
    """(anchor, text) of a term or era by its name, for a hover and a link."""
    for t in all_terms():
        if t.name == name:
            return t.key, t.text
    return None
