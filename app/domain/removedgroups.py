"""Removed cgroups grouped by parent and name pattern, kept to those still likely pinned.

A host that runs jobs removes thousands of cgroups named alike (`job-1`, `job-2`, ...): one
row each says the same thing thousands of times. Here they are grouped by hierarchy, parent
pattern and name pattern (`job-123` -> `job-*`: digit runs, UUIDs and hex ids collapsed),
with counts per group, and kept only where the kernel's own numbers leave them possibly
dying.

**Known freed** (dropped): a removal at or before the last time the host counted no dying
memcg at all (every memcg removed before that instant was freed by then); and on cgroup2 a
removal whose nearest live ancestor counts no dying memcg below its live children
(`nr_dying_descendants`, exact per subtree, in the latest series frame).

**Still likely pinned** (kept), among the rest, when any of:
- its last memory.stat had charge that pins in the host's era (page cache, tmpfs/shmem; kernel
  stacks and slab only in the eras where they still pin: app/domain/pins.py REPARENTED);
- its nearest live ancestor's residual (charge left by removed descendants) is not ~0;
- on cgroup2, that ancestor counts dying memcgs below it.
A v1 removal with nothing charged in its last sample and no residual above it is not kept:
nothing the counters show holds it. The host's dying count bounds the rest: at most that
many of the kept removals are still dying (`GroupsView.dying_now`).

The label of a removal whose last sample showed nothing charged is never "freed shortly
after removal" when the residual or the dying count above it says otherwise: that sample
may be stale (read up to a walk interval before the cgroup's last charge).

A group's removals need not share a likely pin (half may have left tmpfs, half page cache
only): each group counts its removals per likely pin (`Group.mix`), and where its charged
removals differ its label says the mix, not one removal's label for all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.pins import REPARENTED, parent_path

_UUID = re.compile(r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_]"
                   r"[0-9a-fA-F]{12}")
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{6,}(?![0-9A-Za-z])")
_DIGITS = re.compile(r"\d+")
_STARS = re.compile(r"\*(?:\*)+")


def name_pattern(name: str) -> str:
    """A cgroup name with its varying parts as `*`: UUIDs, hex ids (6+ hex digits, at least
    one a digit, as container and scope ids are) and digit runs. `job-123` -> `job-*`,
    `docker-3f2a...e9.scope` -> `docker-*.scope`, `session-12.scope` -> `session-*.scope`."""
    out = _UUID.sub("*", name)
    out = _HEX_ID.sub("*", out)
    out = _DIGITS.sub("*", out)
    return _STARS.sub("*", out)


def path_pattern(path: str) -> str:
    """Every component of a path as its name pattern (`/pod-1/job-7` -> `/pod-*/job-*`)."""
    if path == "/":
        return "/"
    return "/".join(name_pattern(p) for p in path.split("/"))


@dataclass(frozen=True, slots=True)
class Removal:
    """One removal record, with what its last memory.stat had charged (None: not reported)."""

    hierarchy: str
    path: str
    removed_at: datetime
    file_bytes: int | None = None
    shmem_bytes: int | None = None
    slab_bytes: int | None = None
    kernel_stack_bytes: int | None = None
    stat_read_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Above:
    """What the latest series frame says of a live cgroup, as the nearest live ancestor of
    removed ones: the charge its removed descendants still hold (bytes per category, that pin
    in the era) and its dying count below its live children (None: v1 does not say)."""

    path: str
    pinning: dict[str, int] = field(default_factory=dict)
    dying: int | None = None

    @property
    def holds(self) -> int:
        """Bytes held by removed descendants that pin in the era."""
        return sum(self.pinning.values())


def pins_in(era: str, r: Removal) -> list[str]:
    """The kinds of charge in `r`'s last sample that still pin a dying memcg in `era`."""
    reparented = REPARENTED.get(era, frozenset())
    out = []
    for kind, v in (("shmem", r.shmem_bytes), ("file", r.file_bytes),
                    ("kernel_stack", r.kernel_stack_bytes), ("slab", r.slab_bytes)):
        if v and 0 < v < 1 << 63 and kind not in reparented:
            out.append(kind)
    return out


_CHARGE_LABEL = {
    "shmem": "tmpfs/shmem: stays until the files are deleted (drop_caches does not help)",
    "file": "page cache: freed by reclaim or drop_caches 1",
    "kernel_stack": "kernel stacks of threads that moved away (before 5.13)",
    "slab": "slab objects in its per-memcg caches (before 5.3)",
}


def label(era: str, r: Removal, above: Above | None) -> str:
    """What most likely keeps `r` dying: its own last charge, else the evidence above it.

    "Freed shortly after removal" only where nothing contradicts the (possibly stale) last
    sample: no residual above it and, on cgroup2, no dying memcg counted there.
    """
    kinds = pins_in(era, r)
    if kinds:
        return _CHARGE_LABEL[kinds[0]]
    if above is not None and above.holds > 0:
        what = ", ".join(sorted(above.pinning, key=lambda k: -above.pinning[k]))
        return (f"nothing charged in its last sample, but {above.path} still holds {what} "
                "left by removed cgroups: likely still dying")
    if above is not None and above.dying:
        return (f"nothing charged in its last sample, but the kernel counts {above.dying} "
                f"dying under {above.path}: held by references the counters do not show")
    if above is not None and above.dying == 0:
        return "freed: no dying memcg left under its parent"
    return "nothing charged when last seen: freed shortly after removal"


# kind of charge -> the short name a group's mix counts it under
_CHARGE_SHORT = {"shmem": "tmpfs/shmem", "file": "page cache", "kernel_stack": "kernel stacks",
                 "slab": "slab"}


def pin_key(era: str, r: Removal, above: Above | None) -> str:
    """The short name of `label`'s answer for `r`: what a group's mix counts it under."""
    kinds = pins_in(era, r)
    if kinds:
        return _CHARGE_SHORT[kinds[0]]
    if above is not None and above.holds > 0:
        return "nothing charged, charge left above"
    if above is not None and above.dying:
        return "nothing charged, dying counted above"
    if above is not None and above.dying == 0:
        return "freed"
    return "nothing charged"


def mix_label(mix: dict[str, int]) -> str:
    """A group's removals per likely pin, most first: `15 tmpfs/shmem, 15 page cache`."""
    return ", ".join(f"{n} {k}" for k, n in sorted(mix.items(), key=lambda kv: (-kv[1],
                                                                               kv[0])))


def nearest_above(hierarchy: str, path: str, above: dict[tuple[str, str], Above]
                  ) -> Above | None:
    """The nearest ancestor of `path` that the latest frame lists (parents may be gone too)."""
    p = parent_path(path)
    while p is not None:
        got = above.get((hierarchy, p))
        if got is not None:
            return got
        p = parent_path(p)
    return None


@dataclass(slots=True)
class Group:
    """Removed cgroups of one hierarchy, parent pattern and name pattern."""

    hierarchy: str
    parent: str  # the parent's path pattern
    pattern: str  # the name pattern
    count: int = 0
    charged: int = 0  # with charge that pins in the era in their last sample
    newest_at: datetime | None = None
    oldest_at: datetime | None = None
    example: str = ""  # the newest removal's path
    file_bytes: int = 0
    shmem_bytes: int = 0
    parents: set[str] = field(default_factory=set)
    held_above: int = 0  # residual bytes under the distinct live ancestors
    dying_above: int | None = None  # cgroup2: dying memcgs under them (None: v1)
    likely_pin: str = ""
    mix: dict[str, int] = field(default_factory=dict)  # removals per likely pin (`pin_key`)

    @property
    def path(self) -> str:
        """The group's path pattern."""
        return (self.parent.rstrip("/") + "/" + self.pattern) if self.parent else self.pattern


@dataclass(slots=True)
class GroupsView:
    """The still-likely-pinned removals of a host, grouped, and what was left out."""

    groups: list[Group]
    considered: int  # removal records looked at
    known_freed: int  # left out: freed for sure
    not_pinned: int  # left out: nothing the counters show holds them
    dying_now: int | None  # the host's dying count: at most this many are still dying
    freed_before: datetime | None  # the last time the host counted no dying memcg
    truncated: bool = False  # only the newest `considered` records were looked at
    # Kept removals per nearest live ancestor (hierarchy, path): the removal records seen
    # below it that may still be dying. Not a bound on its dying memcgs (the kernel counts
    # those per subtree on cgroup2 only): cgroups that lived less than a tick leave none.
    under: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        """Removals shown, in all groups."""
        return sum(g.count for g in self.groups)


def group_removed(rows: Iterable[Removal], era: str, above: dict[tuple[str, str], Above],
                  *, freed_before: datetime | None, dying_now: int | None,
                  truncated: bool = False) -> GroupsView:
    """Group the removals that may still be dying (see the module docstring), newest first
    within a group, groups by count."""
    groups: dict[tuple[str, str, str], Group] = {}
    considered = known = unpinned = 0
    under: dict[tuple[str, str], int] = {}
    for r in rows:
        considered += 1
        if freed_before is not None and r.removed_at <= freed_before:
            known += 1
            continue
        up = nearest_above(r.hierarchy, r.path, above)
        if up is not None and up.dying == 0:
            known += 1
            continue
        charged = bool(pins_in(era, r))
        if not (charged or (up is not None and (up.holds > 0 or up.dying))):
            unpinned += 1
            continue
        parent = parent_path(r.path) or "/"
        where = (r.hierarchy, up.path if up is not None else parent)
        under[where] = under.get(where, 0) + 1
        name = r.path.rstrip("/").rpartition("/")[2]
        key = (r.hierarchy, path_pattern(parent), name_pattern(name))
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(*key, example=r.path)
        # The group's label: its newest removal's, from one with charge where any has some
        # (what it left says more than a sample that saw nothing).
        if (charged and not g.charged) or (g.newest_at is None) or (
                r.removed_at > g.newest_at and (charged or not g.charged)):
            g.likely_pin = label(era, r, up)
        g.count += 1
        g.charged += charged
        key_ = pin_key(era, r, up)
        g.mix[key_] = g.mix.get(key_, 0) + 1
        if g.newest_at is None or r.removed_at > g.newest_at:
            g.newest_at, g.example = r.removed_at, r.path
        if g.oldest_at is None or r.removed_at < g.oldest_at:
            g.oldest_at = r.removed_at
        g.file_bytes += r.file_bytes if r.file_bytes and r.file_bytes < 1 << 63 else 0
        g.shmem_bytes += r.shmem_bytes if r.shmem_bytes and r.shmem_bytes < 1 << 63 else 0
        if up is not None and up.path not in g.parents:
            g.parents.add(up.path)
            g.held_above += up.holds
            if up.dying is not None:
                g.dying_above = (g.dying_above or 0) + up.dying
        elif up is None:
            g.parents.add(parent)
    for g in groups.values():
        charged_kinds = [k for k in g.mix if k in _CHARGE_SHORT.values()]
        if len(charged_kinds) > 1:  # the charged removals differ: one label is not all's
            g.likely_pin = f"mixed, by each one's last sample: {mix_label(g.mix)}"
    ordered = sorted(groups.values(), key=lambda g: (-g.count, g.hierarchy, g.path))
    return GroupsView(ordered, considered, known, unpinned, dying_now, freed_before, truncated,
                      under)
