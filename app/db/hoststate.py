"""Reads for a host's state at its latest scrape (the refcount model's input, assembled in
app/services/hosts.py): its per-memcg cache copies and its removed cgroups' slab charge."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import models as m


def memcg_caches(session: Session, scrape_id: int) -> list[m.MemcgCacheSample]:
    """The per-memcg cache copies of one scrape (pre-5.9 kernels show them)."""
    return list(session.scalars(select(m.MemcgCacheSample)
                                .where(m.MemcgCacheSample.scrape_id == scrape_id)))


def removed_slab_bytes(session: Session, host_id: int, limit: int) -> list[int]:
    """The last slab charge of a host's newest `limit` removed cgroups that have one."""
    return [v for v in session.scalars(
        select(m.RemovedCgroup.slab_bytes).where(m.RemovedCgroup.host_id == host_id,
                                                 m.RemovedCgroup.slab_bytes >= 0)  # < 2^63
        .order_by(m.RemovedCgroup.removed_at.desc()).limit(limit)) if v is not None]
