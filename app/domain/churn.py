"""Cgroup churn counted from the kernel's own numbers, not from cgroups seen alive.

A cgroup that lives less than one tick is never listed, yet it leaves a dying memcg. Two
kernel numbers count it anyway:

- **kernfs ids.** Every node of a cgroup hierarchy (each directory and each of its control
  files) takes the next id of the hierarchy's kernfs root (idr_alloc_cyclic: increasing,
  never reused before the 2^31 wrap), and a directory's inode number is its id (on cgroup2
  it is the cgroup id). A new cgroup takes `stride` ids: its directory plus its files (33 on
  this 6.18 host's v1 memory hierarchy, measured). So between two listings,
  `(newest directory id now - newest before) / stride` cgroups were made, including those
  made and removed in between, once a later cgroup is seen (until then they are counted at
  the next creation that is). Ids taken by files alone (cgroup2 enabling a controller in a
  subtree) make the difference no multiple of the stride: such an interval is flagged.
- **`/proc/cgroups` num_cgroups** counts live and dying memcgs: its change is
  `created - freed`.

With the number of visible cgroups: removed = visible before + created - visible now, and
freed = created - (num_cgroups now - num_cgroups before).

**Ids lag; num_cgroups does not.** A burst of cgroups made and removed within a tick moves
num_cgroups at once, but the ids count it only when a later directory is listed (up to then
the newest directory id stands still). Over such an interval `created - rise of num_cgroups`
goes negative: the ids are lagging. Then freed is not known (None, and the interval is not
exact), and the num_cgroups baseline stays where the ids were last complete, with the
creations counted since (`NumBase`): the interval that counts the burst computes freed over
the same span its created covers, never "more freed than made". So cgroups that live less
than a tick are counted when the next cgroup appears in that hierarchy. An interval whose
num_cgroups is unread (it moved during the listing) carries the baseline on likewise.
"""

from __future__ import annotations

from dataclasses import dataclass

ID_WRAP = 1 << 31  # kernfs ino range (idr_alloc_cyclic(..., 1, 0, ...): up to INT_MAX)


@dataclass(frozen=True, slots=True)
class Listing:
    """What one tick's listing of a hierarchy says."""

    newest_id: int  # the largest directory inode number listed so far (kept across ticks)
    visible: int  # directories listed, the root included
    num_cgroups: int | None = None  # /proc/cgroups for the hierarchy's memory controller


@dataclass(frozen=True, slots=True)
class Churn:
    """Cgroups made, removed and freed between two listings of one hierarchy."""

    created: int
    removed: int
    freed: int | None
    exact: bool  # False: ids moved by other than whole cgroups, or lag (module docstring)
    # The ids lag behind num_cgroups (created - its rise < 0): freed is None, and the next
    # interval's freed spans this one too (`base`).
    lagging: bool = False
    # The num_cgroups baseline for the next interval: where the ids were last complete.
    base: NumBase | None = None


@dataclass(frozen=True, slots=True)
class NumBase:
    """The num_cgroups figure freed is counted from, and the creations the ids counted since
    it was read (over intervals whose ids lagged, so whose freed was not known)."""

    num_cgroups: int
    created: int = 0


def stride_of(file_count: int) -> int:
    """Ids one new cgroup takes: its directory and its `file_count` control files."""
    return 1 + file_count


def churn(before: Listing, now: Listing, stride: int, base: NumBase | None = None
          ) -> Churn | None:
    """Churn between two listings; None when the ids cannot say (a wrap or a reboot).

    `base` is the num_cgroups baseline carried from earlier lagging intervals (None: the
    figure of `before`). The result's `base` is what the next interval is to be given.
    """
    if stride < 1:
        raise ValueError("stride must be at least 1")
    moved = now.newest_id - before.newest_id
    if moved < 0 or moved >= ID_WRAP // 2:
        return None  # wrapped, or another boot: no count across it
    created, rest = divmod(moved, stride)
    removed = before.visible + created - now.visible
    freed: int | None = None
    lagging = False
    nxt: NumBase | None = None
    if base is None and before.num_cgroups is not None:
        base = NumBase(before.num_cgroups)
    if base is not None and now.num_cgroups is not None:
        counted = base.created + created  # creations the ids counted since base was read
        freed = counted - (now.num_cgroups - base.num_cgroups)
        if freed < 0:  # num_cgroups rose by more than the ids counted: they lag
            lagging, freed, nxt = True, None, NumBase(base.num_cgroups, counted)
        else:
            nxt = NumBase(now.num_cgroups)
    elif base is not None:  # num_cgroups unread now: freed over this span comes later
        nxt = NumBase(base.num_cgroups, base.created + created)
    exact = rest == 0 and removed >= 0 and not lagging
    return Churn(created, max(0, removed), freed, exact, lagging, nxt)
