"""Who references whom on a real host, at its latest scrape, as each era would count it.

Before 5.3: page -> mem_cgroup -> kmem_cache. Every charged slab page of a per-memcg cache
holds css references on its memcg (one per 4 KiB page), and the memcg owns its caches.
From the 2019 series (v4 5/7, 5.3): page -> kmem_cache -> mem_cgroup. A page holds 1 << order
references on its cache's percpu_ref, and each cache holds one css reference on its memcg;
in 5.3 the caches of a dying memcg are reparented and reference the parent instead.
From 5.9: objects -> obj_cgroup -> mem_cgroup, in caches shared by every cgroup.

Exact where the host exposes per-memcg caches (<= 5.8 with slub_memcg_sysfs=1). Elsewhere
estimated: each cgroup's slab charge (memory.stat `slab`, or v1 `memory.kmem.usage_in_bytes`
as an upper bound) is spread over the caches in proportion to the host-wide slab mix, and
dying memcgs are given the median slab of removed cgroups at their removal (none where the
kernel did not report it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.history import HostState
from app.simulation.eras import ERAS, SlabPin

TOP_CACHES = 8
TOP_CGROUPS = 8
# Cgroups counted one by one; past these (by slab charge) they are one "other cgroups" row
# that stands for all of them, so the view's cost is bounded by what it shows.
KEEP_CGROUPS = 200
OTHER_CGROUPS = "other cgroups"


@dataclass(frozen=True, slots=True)
class CacheRefs:
    """One cache's pages and the references they hold in the era."""

    cache: str
    pages: float
    order: int
    percpu_refs: float  # on per-memcg caches' percpu_refs (v4 5/7, 5.3)
    css_refs: float  # on memcgs, held by its pages (<= 5.2) or by its per-memcg caches
    objcg_refs: float  # obj_cgroup references, one per object (5.9+)
    per_memcg_caches: int


@dataclass(slots=True)
class RefcountView:
    """A Sankey of references and the tables beside it."""

    host: str
    era: str
    exact: bool
    method: str
    chain: str
    nodes: list[str] = field(default_factory=list)
    links: list[tuple[int, int, float]] = field(default_factory=list)  # source, target, refs
    caches: list[CacheRefs] = field(default_factory=list)
    memcgs: list[tuple[str, float]] = field(default_factory=list)  # memcg -> css refs held


def refcounts(state: HostState, era_name: str) -> RefcountView:
    """The references of `state` counted as `era_name` would."""
    era = ERAS[era_name]
    chain = ("page -> mem_cgroup -> kmem_cache" if era.slab_pin is SlabPin.PAGE else
             "page -> kmem_cache -> mem_cgroup" if era.per_memcg_caches else
             "object -> obj_cgroup -> mem_cgroup (shared kmem_caches)")
    page = state.page_size_bytes
    total_bytes = sum(c.pages * page for c in state.caches) or 1
    mix = {c.name: c.pages * page / total_bytes for c in state.caches}
    geo = {c.name: c for c in state.caches}
    # (memcg label, cache) -> (slab pages of that memcg's copy of the cache, how many memcgs
    # the label stands for: 1, or the cgroups past KEEP_CGROUPS folded into "other cgroups",
    # so a host of 10,000 cgroups costs KEEP_CGROUPS x caches pairs, not 10,000 x caches).
    pages: dict[tuple[str, str], tuple[float, int]] = {}
    exact = bool(state.memcg_caches)
    if exact:
        method = "exact: the host exposes its per-memcg caches (SLUB sysfs cgroup/)"
        for mc in state.memcg_caches:
            key = (mc.cgroup_name, mc.root_cache)
            pages[key] = (pages.get(key, (0.0, 1))[0] + mc.slabs * (1 << mc.order), 1)
    else:
        method = ("estimated: each cgroup's slab charge (memory.stat slab; on v1 "
                  "memory.kmem.usage_in_bytes, an upper bound) spread over caches by the "
                  "host-wide slab mix; dying memcgs given the median slab of removed cgroups")
        charged = sorted(((c.path, c.slab_bytes if c.slab_bytes is not None else
                           c.kmem_bytes or 0) for c in state.cgroups if c.path != "/"),
                         key=lambda x: -x[1])
        charged = [(path, b) for path, b in charged if b > 0]
        groups = [(path, float(b), 1) for path, b in charged[:KEEP_CGROUPS]]
        rest = charged[KEEP_CGROUPS:]
        if rest:
            groups.append((OTHER_CGROUPS, float(sum(b for _, b in rest)), len(rest)))
        for path, b, n in groups:
            for name, share in mix.items():
                if share > 0:
                    pages[(path, name)] = (b * share / page, n)
        if state.dying and state.removed_median_slab_bytes:
            for name, share in mix.items():
                pages[(f"{state.dying} dying memcgs", name)] = (
                    state.dying * state.removed_median_slab_bytes * share / page, 1)
    view = RefcountView(state.host, era_name, exact, method, chain)
    by_cache: dict[str, float] = {}
    by_memcg: dict[str, float] = {}
    for (mcg, cache), (p, _) in pages.items():
        by_cache[cache] = by_cache.get(cache, 0.0) + p
        by_memcg[mcg] = by_memcg.get(mcg, 0.0) + p
    top_c = sorted(by_cache, key=lambda c: -by_cache[c])[:TOP_CACHES]
    top_m = sorted(by_memcg, key=lambda m: -by_memcg[m])[:TOP_CGROUPS]
    dying_label = next((m for m in by_memcg if m.endswith("dying memcgs")), None)
    if dying_label and dying_label not in top_m:
        top_m.append(dying_label)

    def cname(c: str) -> str:
        return c if c in top_c else "other caches"

    def mname(m: str) -> str:
        return m if m in top_m else OTHER_CGROUPS

    index: dict[str, int] = {}

    def node(label: str) -> int:
        if label not in index:
            index[label] = len(view.nodes)
            view.nodes.append(label)
        return index[label]

    acc: dict[tuple[str, str], float] = {}

    def link(a: str, b: str, v: float) -> None:
        if v > 0:
            acc[(a, b)] = acc.get((a, b), 0.0) + v

    css_held: dict[str, float] = {}
    cache_rows: dict[str, list[float]] = {}
    for (mcg, cache), (p, n) in pages.items():
        g = geo.get(cache)
        order = g.order if g else 0
        weight = 1 << order
        slab_pages = p / weight  # pages were counted in 4 KiB pages
        dying = mcg.endswith("dying memcgs")
        c_lbl, m_lbl = cname(cache), mname(mcg)
        row = cache_rows.setdefault(cache, [0.0, float(order), 0.0, 0.0, 0.0, 0.0])
        row[0] += p
        if era.slab_pin is SlabPin.PAGE:
            link(f"pages: {c_lbl}", f"memcg: {m_lbl}", p)  # css ref per charged 4 KiB page
            link(f"memcg: {m_lbl}", f"cache: {c_lbl} (per memcg)", float(n))
            css_held[mcg] = css_held.get(mcg, 0.0) + p
            row[3] += p
            row[5] += n
        elif era.per_memcg_caches:
            link(f"pages: {c_lbl}", f"cache: {c_lbl} (per memcg)", slab_pages * weight)
            owner = "parent" if (dying and era.caches_reparented) else mcg
            o_lbl = "memcg: parent (reparented)" if owner == "parent" else f"memcg: {m_lbl}"
            link(f"cache: {c_lbl} (per memcg)", o_lbl, float(n))
            css_held[owner] = css_held.get(owner, 0.0) + n
            row[2] += slab_pages * weight
            row[3] += n
            row[5] += n
        else:
            objects = p * page / (g.object_size_bytes if g and g.object_size_bytes else 64)
            owner = "parent (objcg reparented)" if dying else mcg
            link(f"objects: {c_lbl}", f"obj_cgroup: {mname(owner) if owner == mcg else owner}",
                 objects)
            link(f"obj_cgroup: {mname(owner) if owner == mcg else owner}",
                 f"memcg: {mname(owner) if owner == mcg else owner}", float(n))
            row[4] += objects
    for (src, dst), v in sorted(acc.items(), key=lambda x: -x[1]):
        view.links.append((node(src), node(dst), round(v, 1)))
    view.caches = sorted(
        (CacheRefs(c, round(r[0], 1), int(r[1]), round(r[2], 1), round(r[3], 1),
                   round(r[4], 1), int(r[5])) for c, r in cache_rows.items()),
        key=lambda x: -x.pages)
    view.memcgs = sorted(((m, round(v, 1)) for m, v in css_held.items()),
                         key=lambda x: -x[1])
    return view
