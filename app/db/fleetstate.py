"""The fleet's state in the database: push tokens, ingest counters, spool drops, alert claims.

Rows, not server memory, so N workers (or replicas) answer as one. Callers own the
transaction; nothing here commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import models as m
from app.db.base import Base, insert_on_conflict


def count_scrapes(session: Session, host_name: str | None = None) -> int:
    """How many scrapes are stored (for one host, or all)."""
    q = select(func.count(m.Scrape.id))
    if host_name is not None:
        q = q.join(m.Host, m.Host.id == m.Scrape.host_id).where(m.Host.name == host_name)
    return int(session.scalar(q) or 0)


def add_token(session: Session, host_name: str, token_sha256: str, now: datetime) -> None:
    """Record a new push token (its hash) for a host."""
    session.add(m.HostToken(host_name=host_name, token_sha256=token_sha256, created_at=now))


def revoke_tokens(session: Session, host_name: str, now: datetime) -> int:
    """Revoke every live token of a host; return how many."""
    result = session.execute(update(m.HostToken).where(m.HostToken.host_name == host_name,
                                                       m.HostToken.revoked_at.is_(None))
                             .values(revoked_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def host_for_token(session: Session, token_sha256: str) -> str | None:
    """The host a live token belongs to (None: unknown or revoked)."""
    return session.scalar(select(m.HostToken.host_name).where(
        m.HostToken.token_sha256 == token_sha256, m.HostToken.revoked_at.is_(None)))


def tokens(session: Session) -> list[m.HostToken]:
    """Every token row, newest first."""
    return list(session.scalars(select(m.HostToken).order_by(m.HostToken.created_at.desc())))


# The web tier's shared state: ingest counters, spool drops and alert state live in these
# rows, not in a server process, so N workers (or replicas) answer as one. Each write is one
# statement, atomic in the database; callers keep these transactions short (a counter row is
# a hot row on PostgreSQL, locked until commit).


def count_ingest(session: Session, outcome: str, n: int = 1) -> None:
    """Add n to the ingest counter of an outcome (stored, duplicate, forbidden, ...)."""
    ins = insert_on_conflict(session, m.IngestCounter).values(outcome=outcome,
                                                              requests_total=n)
    session.execute(ins.on_conflict_do_update(
        index_elements=["outcome"],
        set_={"requests_total": m.IngestCounter.requests_total + ins.excluded.requests_total}))


def ingest_counts(session: Session) -> dict[str, int]:
    """Ingest requests by outcome, over every server process."""
    rows = session.execute(select(m.IngestCounter.outcome, m.IngestCounter.requests_total)
                           .order_by(m.IngestCounter.outcome))
    return {outcome: int(n) for outcome, n in rows}


def record_spool_dropped(session: Session, host_name: str, total: int) -> None:
    """Keep the largest total of dropped snapshots a host's collector has reported."""
    ins = insert_on_conflict(session, m.HostSpoolDropped).values(host_name=host_name,
                                                                 dropped_total=total)
    session.execute(ins.on_conflict_do_update(
        index_elements=["host_name"], set_={"dropped_total": ins.excluded.dropped_total},
        where=ins.excluded.dropped_total > m.HostSpoolDropped.dropped_total))


def spool_dropped(session: Session) -> dict[str, int]:
    """Per host, the snapshots its collector dropped from a full spool, in all."""
    rows = session.execute(select(m.HostSpoolDropped.host_name, m.HostSpoolDropped.dropped_total)
                           .order_by(m.HostSpoolDropped.host_name))
    return {host: int(n) for host, n in rows}


def claim_alerts(session: Session, host_name: str, rules: set[str], now: datetime,
                 retry_after: timedelta) -> set[str]:
    """Record the rules that fire for a host now; return those this caller is to post.

    That is, rules that began firing with this call, and rules the webhook has not taken
    (notified_at unset) for retry_after since their last claim. A rule that no longer fires
    loses its row, so a later re-fire is new again. Of concurrent callers only the one whose
    INSERT adds the row (unique host, rule), or whose UPDATE of the claim matches, gets the
    rule back: the database, not a process, decides who posts the alert.
    """
    table = Base.metadata.tables[m.AlertState.__tablename__]
    cutoff = now - retry_after
    have = session.execute(select(table.c.rule, table.c.claimed_at, table.c.notified_at)
                           .where(table.c.host_name == host_name)).all()
    if {r.rule for r in have} == rules and all(r.notified_at is not None
                                               or r.claimed_at >= cutoff for r in have):
        return set()  # nothing to change: most ingests of a host read and write nothing
    session.execute(table.delete().where(table.c.host_name == host_name,
                                         table.c.rule.not_in(sorted(rules))))
    if not rules:
        return set()
    # Rows in one order in every caller, so two concurrent claims cannot deadlock.
    ins = insert_on_conflict(session, m.AlertState).values(
        [{"host_name": host_name, "rule": r, "fired_at": now, "claimed_at": now}
         for r in sorted(rules)])
    won = set(session.scalars(ins.on_conflict_do_nothing(index_elements=["host_name", "rule"])
                              .returning(m.AlertState.rule)))
    # PostgreSQL re-checks the WHERE of a row another transaction just updated (read
    # committed): a second claimer sees the fresh claimed_at and matches nothing.
    again = session.scalars(table.update().where(
        table.c.host_name == host_name, table.c.rule.in_(sorted(rules - won)),
        table.c.notified_at.is_(None), table.c.claimed_at < cutoff)
        .values(claimed_at=now).returning(table.c.rule))
    return won | set(again)


def mark_notified(session: Session, host_name: str, rules: set[str], claimed_at: datetime,
                  now: datetime) -> int:
    """Note that the webhook took these alerts (of this claim); return the rows updated."""
    result = session.execute(update(m.AlertState).where(
        m.AlertState.host_name == host_name, m.AlertState.rule.in_(sorted(rules)),
        m.AlertState.claimed_at == claimed_at).values(notified_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def has_snapshot(session: Session, host_name: str, snapshot_id: str) -> bool:
    """Whether a host's snapshot of this id is stored."""
    return session.scalar(
        select(m.Scrape.id).join(m.Host, m.Host.id == m.Scrape.host_id)
        .where(m.Host.name == host_name, m.Scrape.snapshot_id == snapshot_id)) is not None

