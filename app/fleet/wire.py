"""The push wire format, defined once: strict pydantic models of the body a collector sends.

`PushBody` is `{"snapshot_id", "snapshot", "spool_dropped_total"?}`; the snapshot is schema
"slabscope.snapshot/2" (what collectors send) or "slabscope.snapshot/1" (older collectors,
still read), told apart by its "schema" member. The collector writes this JSON
(app/domain/snapshot_json.py, tests prove its output validates here), ingest validates every
push with `PushBody.model_validate_json` and `to_snapshot` turns the result into the domain's
Snapshot: there is no other path. /docs shows the schema and `slabscope schema` prints it.

Strict: no coercion ("12" is not 12, true is not 1, 1.0 is not 1), and bounded:
- kernel counters (slabinfo, SLUB counts, cgroup table cells) are u64, 0..2^64-1;
- `key value` figures (memory.stat, cgroup.stat, vmstat) are what a kernel prints: s64 or
  u64 (per-CPU drift makes some negative on some kernels), -2^63..2^64-1; /proc/meminfo
  figures are kB (u64) turned into bytes, 0..(2^64-1)*1024;
- small integers (sizes, orders, counts of cgroups, CPUs) fit the 32-bit columns that keep
  them; strings and lists have a length bound; timestamps carry a UTC offset, and with a
  `now` in the validation context `taken_at` is at most MAX_CLOCK_SKEW ahead of it.
Fields the collector may leave null are Optional; a field the database needs (page size,
cache name, cgroup path, ...) is required and non-null, so a null is a 422, never a database
error. Unknown members are ignored (an additive field needs no new schema version).
"""

from __future__ import annotations

import json
from array import array
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.domain.cgtable import (
    CGSTAT,
    KMEM_USAGE,
    SERIES_CGSTAT_KEYS,
    SERIES_STAT_KEYS,
    STAT,
    USAGE,
    CgroupTable,
    stat_columns,
    table_from_rows,
)
from app.domain.samples import (
    Cache,
    CgroupKmemSlabinfo,
    CgroupSample,
    HierarchyChurn,
    HostIdentity,
    MemcgChildCache,
    MemcgCount,
    MemcgSlabinfoRow,
    ProcCgroupsRow,
    RemovedCgroup,
    SlabinfoRow,
    Snapshot,
    SourceError,
)
from app.domain.snapshot_json import SCHEMA, SCHEMA_V1
from app.domain.timerange import TIME_MAX, TIME_MIN

U64_MAX = (1 << 64) - 1
S64_MIN = -(1 << 63)
I32_MAX = (1 << 31) - 1
MAX_CLOCK_SKEW = timedelta(minutes=10)
SNAPSHOT_ID_MIN = 8
SNAPSHOT_ID_MAX = 64
PATH_MAX = 4096
# A cgroup path is at most PATH_MAX bytes; a byte that is not UTF-8 travels as a 4-character
# `\xNN` escape (app/collector/sources/_files.py fs_name).
PATH_CHARS_MAX = 4 * PATH_MAX
NAME_MAX = 255  # host, cache and kernel names: the String(255) columns
KEY_MAX = 256  # a `key value` file's key, a table column name
MAX_CGROUPS = 200_000
MAX_CACHES = 100_000
MAX_KEYS = 4096  # keys of one memory.stat, vmstat or meminfo
MAX_ROWS = 1_000_000  # memcg child caches and memcg_slabinfo rows (~ caches x memcgs)
MAX_ERRORS = 1_000_000
MESSAGE_MAX = 65_536

U64 = Annotated[StrictInt, Field(ge=0, le=U64_MAX)]
Figure = Annotated[StrictInt, Field(ge=S64_MIN, le=U64_MAX)]  # as printed: s64 or u64
MeminfoFigure = Annotated[StrictInt, Field(ge=0, le=U64_MAX * 1024)]  # kB (u64) in bytes
Int32 = Annotated[StrictInt, Field(ge=0, le=I32_MAX)]
NO_NUL = r"^[^\x00]*$"  # no database text column holds a NUL (PostgreSQL refuses it)



def _text(max_length: int, min_length: int = 0, pattern: str = NO_NUL) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=pattern)


# Strict strings of bounded length, without NUL characters.
Name = Annotated[StrictStr, _text(NAME_MAX, 1)]
Key = Annotated[StrictStr, _text(KEY_MAX, 1)]
ShortText = Annotated[StrictStr, _text(64)]
Text16 = Annotated[StrictStr, _text(16)]
Text32 = Annotated[StrictStr, _text(32, 1)]
Text256 = Annotated[StrictStr, _text(256)]
Source = Annotated[StrictStr, _text(64, 1)]
LongText = Annotated[StrictStr, _text(PATH_CHARS_MAX)]
Message = Annotated[StrictStr, _text(MESSAGE_MAX)]
Hierarchy = Literal["memory", "unified"]
CgroupPath = Annotated[StrictStr, _text(PATH_CHARS_MAX, 1, r"^/[^\x00]*$")]
Figures = Annotated[dict[Key, Figure], Field(max_length=MAX_KEYS)]
def _in_range(v: datetime) -> datetime:
    try:
        utc = v.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not TIME_MIN <= utc < TIME_MAX:
        raise ValueError(f"{v.isoformat()} is outside {TIME_MIN.date()} .. {TIME_MAX.date()} "
                         "in UTC: check the collector's clock")
    return v


# Times within TIME_MIN .. TIME_MAX once in UTC (app.domain.timerange: what both databases
# store, with room for hour and day arithmetic).
Timestamp = Annotated[AwareDatetime, AfterValidator(_in_range)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True,
                              allow_inf_nan=False)


class WireSlabinfoRow(_Strict):
    """One /proc/slabinfo (or v1 memory.kmem.slabinfo) row."""

    name: Name
    active_objs: U64
    num_objs: U64
    objsize: U64
    objperslab: U64
    pagesperslab: U64
    limit: U64
    batchcount: U64
    sharedfactor: U64
    active_slabs: U64
    num_slabs: U64
    sharedavail: U64
    statistics: Annotated[dict[Key, Annotated[list[Figure], Field(max_length=64)]],
                          Field(max_length=64)] | None = None


class WireHost(_Strict):
    """Who the host is."""

    name: Name
    machine_id: ShortText | None
    boot_id: ShortText | None
    kernel_release: Annotated[StrictStr, _text(NAME_MAX)]
    era: Text32
    era_source: ShortText
    cpus: Int32
    numa_nodes: Int32
    page_size_bytes: Annotated[StrictInt, Field(ge=1, le=I32_MAX)]
    cgroup_layout: Text16


class WireMemcg(_Strict):
    """Memory cgroups in total, visible and dying, and how dying was counted."""

    num_cgroups: U64 | None = None  # repeats /proc/cgroups (not read back)
    total: U64 | None
    visible: U64 | None
    dying: U64 | None
    method: Text256


class WireProcCgroups(_Strict):
    """One /proc/cgroups row."""

    subsys_name: Name
    hierarchy: U64
    num_cgroups: U64
    enabled: StrictBool


class WireCache(_Strict):
    """One slab cache: slabinfo numbers joined with SLUB geometry."""

    name: Name
    aliases: Annotated[list[Name], Field(max_length=4096)]
    object_size: U64
    objs_per_slab: U64
    pages_per_slab: U64
    order: U64 | None
    active_objs: U64
    num_objs: U64
    num_slabs: U64
    bytes: U64
    slab_size: U64 | None = None
    reclaim_account: StrictBool | None = None
    partial_slabs: U64 | None = None
    cpu_slabs: U64 | None = None


class WireCgroup(_Strict):
    """One cgroup's whole figures (first seen this tick; schema 1: every cgroup)."""

    hierarchy: Hierarchy
    path: CgroupPath
    memory_stat: Figures
    memory_usage_bytes: Figure | None
    kmem_usage_bytes: Figure | None
    nr_descendants: Figure | None = None  # repeats cgroup_stat (not read back)
    nr_dying_descendants: Figure | None = None  # same
    cgroup_stat: Figures | None = None
    kmem_slabinfo: Annotated[list[WireSlabinfoRow], Field(max_length=MAX_CACHES)] | None = None


class WireTable(_Strict):
    """Per-cgroup figures column by column: one value list per column, one cell per path."""

    columns: Annotated[list[Key], Field(max_length=MAX_KEYS)]
    hierarchies: Annotated[list[Hierarchy], Field(max_length=MAX_CGROUPS)]
    paths: Annotated[list[CgroupPath], Field(max_length=MAX_CGROUPS)]
    values: Annotated[list[Annotated[list[U64 | None], Field(max_length=MAX_CGROUPS)]],
                      Field(max_length=MAX_KEYS)]

    @model_validator(mode="after")
    def _shape(self) -> WireTable:
        n = len(self.paths)
        if len(self.hierarchies) != n:
            raise ValueError(f"{len(self.hierarchies)} hierarchies for {n} paths: want one "
                             "per path")
        if len(self.values) != len(self.columns):
            raise ValueError(f"{len(self.values)} value lists for {len(self.columns)} "
                             "columns: want one per column")
        for name, col in zip(self.columns, self.values, strict=True):
            if len(col) != n:
                raise ValueError(f"column {name!r} has {len(col)} values for {n} paths")
        return self


class WireKmemSlabinfo(_Strict):
    """A v1 cgroup's memory.kmem.slabinfo rows."""

    hierarchy: Hierarchy
    path: CgroupPath
    rows: Annotated[list[WireSlabinfoRow], Field(max_length=MAX_CACHES)]


class WireMemcgCache(_Strict):
    """A per-memcg child cache (SLUB sysfs `cgroup/`, kernels <= 5.8)."""

    root_cache: Name
    memcg_serial: U64
    cgroup_name: LongText
    slabs: U64 | None
    total_objects: U64 | None
    objects: U64 | None
    order: U64 | None
    object_size: U64 | None
    objs_per_slab: U64 | None


class WireMemcgSlabinfo(_Strict):
    """A debugfs memcg_slabinfo row (5.4-5.8)."""

    name: Name
    css_id: U64 | None
    dead: StrictBool
    deact: StrictBool
    active_objs: U64
    num_objs: U64
    active_slabs: U64
    num_slabs: U64


class WireRemoved(_Strict):
    """A cgroup gone since the last scrape, with what it last had charged."""

    hierarchy: Hierarchy
    path: CgroupPath
    last_seen_at: Timestamp
    removed_by: Timestamp
    last_memory_stat: Figures
    last_memory_usage_bytes: Figure | None
    stat_read_at: Timestamp | None = None


# Assumption: no kernel makes, removes or frees more than 100,000 cgroups a second (a
# memcg's mkdir allocates per-CPU stats and kernfs nodes; measured here: 50 made and removed
# in well under 100 ms, tests/collector/test_live_churn.py). A count past it is a broken
# collector, not churn, and would make the model fit absurd rates.
MAX_CHURN_PER_SECOND = 100_000


class WireChurn(_Strict):
    """Cgroups made, removed and freed in one hierarchy since `since` (the previous counted
    listing), counted from kernfs ids and /proc/cgroups (app/domain/churn.py).

    A kernfs id is below 2^31 and a new cgroup takes at least two (its directory and a
    file), so no interval makes or removes 2^31 cgroups: Int32 bounds every count.
    """

    hierarchy: Hierarchy
    since: Timestamp
    created: Int32
    removed: Int32
    freed: Int32 | None
    exact: StrictBool


class WireError(_Strict):
    """A source that could not be read or parsed."""

    source: Source
    path: LongText
    message: Message


class _SnapshotBase(_Strict):
    taken_at: Timestamp
    duration_seconds: Annotated[float, Field(ge=0, le=86_400)]
    host: WireHost
    memcg: WireMemcg
    meminfo: Annotated[dict[Key, MeminfoFigure | None], Field(max_length=MAX_KEYS)] = Field(
        default_factory=dict, description="a few meminfo_raw figures by name (not read back)")
    meminfo_raw: Annotated[dict[Key, MeminfoFigure], Field(max_length=MAX_KEYS)]
    vmstat: Figures
    proc_cgroups: Annotated[list[WireProcCgroups], Field(max_length=64)]
    caches: Annotated[list[WireCache], Field(max_length=MAX_CACHES)]
    memcg_caches: Annotated[list[WireMemcgCache], Field(max_length=MAX_ROWS)]
    memcg_slabinfo: Annotated[list[WireMemcgSlabinfo], Field(max_length=MAX_ROWS)]
    removed: Annotated[list[WireRemoved], Field(max_length=MAX_CGROUPS)]
    errors: Annotated[list[WireError], Field(max_length=MAX_ERRORS)]

    @field_validator("taken_at")
    @classmethod
    def _not_ahead(cls, v: datetime, info: ValidationInfo) -> datetime:
        now = info.context.get("now") if isinstance(info.context, dict) else None
        if now is not None and v > now + MAX_CLOCK_SKEW:
            raise ValueError(f"{v.isoformat()} is more than {MAX_CLOCK_SKEW} ahead of the "
                             f"server's clock ({(now + MAX_CLOCK_SKEW).isoformat()} at the "
                             "latest): check the collector's clock")
        return v

    @model_validator(mode="after")
    def _removals_in_order(self) -> _SnapshotBase:
        # A collector records a removal at the scrape that first missed the cgroup
        # (removed_by = taken_at), after the last listing and read that saw it. A removal
        # dated after its own snapshot sorted first for ever and outlived retention.
        for i, r in enumerate(self.removed):
            if r.removed_by > self.taken_at:
                raise ValueError(f"removed.{i}.removed_by {r.removed_by.isoformat()} is after "
                                 f"taken_at {self.taken_at.isoformat()}")
            for name, at in (("last_seen_at", r.last_seen_at),
                             ("stat_read_at", r.stat_read_at)):
                if at is not None and at > r.removed_by:
                    raise ValueError(f"removed.{i}.{name} {at.isoformat()} is after its "
                                     f"removed_by {r.removed_by.isoformat()}")
        return self


class SnapshotV2(_SnapshotBase):
    """One scrape, as collectors send it: per-cgroup figures at their own cadences."""

    schema_: Literal["slabscope.snapshot/2"] = Field(alias="schema")
    host_full: StrictBool
    new_cgroups: Annotated[list[WireCgroup], Field(max_length=MAX_CGROUPS)]
    kmem_slabinfo: Annotated[list[WireKmemSlabinfo], Field(max_length=MAX_CGROUPS)]
    series: WireTable | None
    full: WireTable | None
    # Optional: collectors before counted churn do not send it.
    churn: Annotated[list[WireChurn], Field(max_length=2)] = Field(
        default_factory=list, description="counted churn per hierarchy since the last tick")

    @model_validator(mode="after")
    def _churn_ok(self) -> SnapshotV2:
        kinds = [c.hierarchy for c in self.churn]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"churn: one entry per hierarchy, got {kinds}")
        for c in self.churn:
            if c.since > self.taken_at:
                raise ValueError(f"churn of {c.hierarchy}: since {c.since.isoformat()} is "
                                 f"after taken_at {self.taken_at.isoformat()}")
            span = max(1.0, (self.taken_at - c.since).total_seconds())
            most = MAX_CHURN_PER_SECOND * span
            for what, n in (("created", c.created), ("removed", c.removed),
                            ("freed", c.freed or 0)):
                if n > most:
                    raise ValueError(
                        f"churn of {c.hierarchy}: {what} {n:,} in {span:,.0f} s is over "
                        f"{MAX_CHURN_PER_SECOND:,} a second (no kernel makes cgroups that "
                        "fast): check the collector")
        return self


class SnapshotV1(_SnapshotBase):
    """One scrape as older collectors sent it: every cgroup's whole figures, every tick."""

    schema_: Literal["slabscope.snapshot/1"] = Field(alias="schema")
    cgroups: Annotated[list[WireCgroup], Field(max_length=MAX_CGROUPS)]


# The tags are the writer's constants (app/domain/snapshot_json.py).
assert SCHEMA == "slabscope.snapshot/2" and SCHEMA_V1 == "slabscope.snapshot/1"


def _schema_of(v: Any) -> str | None:
    if isinstance(v, dict):
        tag = v.get("schema")
        return tag if isinstance(tag, str) else None
    return getattr(v, "schema_", None)


AnySnapshot = Annotated[
    Annotated[SnapshotV2, Tag(SCHEMA)] | Annotated[SnapshotV1, Tag(SCHEMA_V1)],
    Discriminator(_schema_of, custom_error_type="snapshot_schema",
                  custom_error_message=f"snapshot schema must be {SCHEMA!r} (or {SCHEMA_V1!r})")]
_SNAPSHOT: TypeAdapter[SnapshotV2 | SnapshotV1] = TypeAdapter(AnySnapshot)


class PushBody(_Strict):
    """What a collector POSTs to /api/v1/ingest (gzip-compressed JSON)."""

    model_config = ConfigDict(title="PushBody")

    snapshot_id: Annotated[StrictStr, Field(
        min_length=SNAPSHOT_ID_MIN, max_length=SNAPSHOT_ID_MAX, pattern=NO_NUL,
        description="unique per snapshot: a retry of a stored one is a 'duplicate'")]
    snapshot: AnySnapshot
    # Older collectors' spool drops (current ones send X-Slabscope-Spool-Dropped); a value
    # past what a counter holds is ignored, never refused (it must not block a snapshot).
    spool_dropped_total: StrictInt | None = None


def validation_detail(err: ValidationError, limit: int = 3) -> str:
    """A pydantic ValidationError as one sentence naming the first few failing places."""
    errs = err.errors(include_url=False)
    parts = []
    for e in errs[:limit]:
        loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith("slabscope.snapshot/"))
        where = f"{loc}: " if loc else ""
        got = ""
        if e["type"] not in ("missing", "json_invalid") and "input" in e:
            shown = repr(e["input"])
            got = f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        parts.append(f"{where}{e['msg']}{got}")
    more = f"; and {len(errs) - limit} more" if len(errs) > limit else ""
    return "; ".join(parts) + more


def _row(r: WireSlabinfoRow) -> SlabinfoRow:
    return SlabinfoRow(
        r.name, r.active_objs, r.num_objs, r.objsize, r.objperslab, r.pagesperslab, r.limit,
        r.batchcount, r.sharedfactor, r.active_slabs, r.num_slabs, r.sharedavail,
        {k: tuple(v) for k, v in r.statistics.items()} if r.statistics else None)


def _cgroup(c: WireCgroup) -> CgroupSample:
    return CgroupSample(
        c.hierarchy, c.path, dict(c.memory_stat), c.memory_usage_bytes, c.kmem_usage_bytes,
        tuple(_row(r) for r in c.kmem_slabinfo) if c.kmem_slabinfo is not None else None,
        dict(c.cgroup_stat) if c.cgroup_stat is not None else None)


def _table(t: WireTable | None) -> CgroupTable | None:
    if t is None:
        return None
    values = []
    present = []
    every = b"\x01" * len(t.paths)
    for col in t.values:
        if None in col:  # a C-level scan: most columns have every cell
            values.append(array("Q", [0 if x is None else x for x in col]))
            present.append(bytes(0 if x is None else 1 for x in col))
        else:
            values.append(array("Q", col))  # type: ignore[arg-type]  # no None, checked
            present.append(every)
    return CgroupTable(tuple(t.columns), tuple(t.hierarchies), tuple(t.paths), tuple(values),
                       tuple(present))


def _v1_tables(cgroups: list[CgroupSample]) -> tuple[CgroupTable | None, CgroupTable | None]:
    """A schema-1 `cgroups` list (every cgroup, every tick) as series and full tables."""
    if not cgroups:
        return None, None
    stat_keys = dict.fromkeys(k for c in cgroups for k in c.memory_stat)
    cg_keys = {k for c in cgroups for k in (c.cgroup_stat or {})}
    kmem = any(c.kmem_usage_bytes is not None for c in cgroups)
    keys = [(c.hierarchy, c.path) for c in cgroups]
    rows = []
    for c in cgroups:
        r = {STAT + k: v for k, v in c.memory_stat.items()}
        r.update({CGSTAT + k: v for k, v in (c.cgroup_stat or {}).items()})
        if c.memory_usage_bytes is not None:
            r[USAGE] = c.memory_usage_bytes
        if c.kmem_usage_bytes is not None:
            r[KMEM_USAGE] = c.kmem_usage_bytes
        rows.append(r)
    series = table_from_rows(stat_columns([k for k in SERIES_STAT_KEYS if k in stat_keys],
                                          [k for k in SERIES_CGSTAT_KEYS if k in cg_keys],
                                          usage=True, kmem=kmem), keys, rows)
    with_stat = [i for i, c in enumerate(cgroups) if c.memory_stat]
    full = table_from_rows(stat_columns(stat_keys, usage=False), [keys[i] for i in with_stat],
                           [rows[i] for i in with_stat]) if with_stat else None
    return series, full


def to_snapshot(m: SnapshotV2 | SnapshotV1) -> Snapshot:
    """The domain's Snapshot of a validated wire snapshot.

    Schema 1's `cgroups` become new_cgroups (the store keeps the first sighting) plus series
    and full tables.
    """
    if isinstance(m, SnapshotV1):
        new = tuple(_cgroup(c) for c in m.cgroups)
        series, full = _v1_tables(list(new))
        kmem_rows = tuple(CgroupKmemSlabinfo(c.hierarchy, c.path, c.kmem_slabinfo)
                          for c in new if c.kmem_slabinfo)
        host_full = True
        churn: tuple[HierarchyChurn, ...] = ()
    else:
        new = tuple(_cgroup(c) for c in m.new_cgroups)
        series, full = _table(m.series), _table(m.full)
        kmem_rows = tuple(CgroupKmemSlabinfo(k.hierarchy, k.path, tuple(_row(r) for r in k.rows))
                          for k in m.kmem_slabinfo)
        host_full = m.host_full
        churn = tuple(HierarchyChurn(c.hierarchy, c.since, c.created, c.removed, c.freed,
                                     c.exact) for c in m.churn)
    h, mc = m.host, m.memcg
    return Snapshot(
        taken_at=m.taken_at,
        duration_seconds=float(m.duration_seconds),
        host=HostIdentity(h.name, h.machine_id, h.boot_id, h.kernel_release, h.era,
                          h.era_source, h.cpus, h.numa_nodes, h.page_size_bytes,
                          h.cgroup_layout),
        memcg=MemcgCount(mc.total, mc.visible, mc.dying, mc.method),
        proc_cgroups=tuple(ProcCgroupsRow(r.subsys_name, r.hierarchy, r.num_cgroups, r.enabled)
                           for r in m.proc_cgroups),
        meminfo=dict(m.meminfo_raw),
        vmstat=dict(m.vmstat),
        caches=tuple(Cache(
            c.name, tuple(c.aliases), c.object_size, c.objs_per_slab, c.pages_per_slab,
            c.order, c.active_objs, c.num_objs, c.num_slabs, c.bytes, c.slab_size,
            c.reclaim_account, c.partial_slabs, c.cpu_slabs) for c in m.caches),
        new_cgroups=new,
        series=series,
        full=full,
        kmem_slabinfo=kmem_rows,
        memcg_caches=tuple(MemcgChildCache(
            x.root_cache, x.memcg_serial, x.cgroup_name, x.slabs, x.total_objects, x.objects,
            x.order, x.object_size, x.objs_per_slab) for x in m.memcg_caches),
        memcg_slabinfo=tuple(MemcgSlabinfoRow(
            x.name, x.css_id, x.dead, x.deact, x.active_objs, x.num_objs, x.active_slabs,
            x.num_slabs) for x in m.memcg_slabinfo),
        removed=tuple(RemovedCgroup(
            r.hierarchy, r.path, r.last_seen_at, r.removed_by, dict(r.last_memory_stat),
            r.last_memory_usage_bytes, r.stat_read_at) for r in m.removed),
        errors=tuple(SourceError(e.source, e.path, e.message) for e in m.errors),
        host_full=host_full,
        churn=churn,
    )


def parse_push(data: bytes | str, now: datetime | None = None) -> PushBody:
    """Validate a push body (JSON text); ValidationError names what is wrong."""
    return PushBody.model_validate_json(data, context={"now": now} if now else None)


def parse_snapshot(data: bytes | str, now: datetime | None = None) -> Snapshot:
    """A snapshot (JSON text of one, no envelope) validated and converted."""
    m = _SNAPSHOT.validate_json(data, context={"now": now} if now else None)
    return to_snapshot(m)


def push_json_schema() -> dict[str, Any]:
    """The JSON Schema of the push body (what /docs and `slabscope schema` show)."""
    return PushBody.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")


def snapshot_from_dict(d: dict[str, Any]) -> Snapshot:
    """Rebuild a Snapshot from `snapshot_to_dict` output, validated by this schema (2 or 1);
    a dict that does not match raises ValidationError (a ValueError) naming the places."""
    return parse_snapshot(json.dumps(d))
