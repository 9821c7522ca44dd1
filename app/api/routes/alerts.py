"""GET /api/v1/alerts and GET /metrics (Prometheus text format).

Both read only the database, so every server process gives the same answer.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from app.db import fleetstate
from app.deps import SessionDep, SettingsDep, rules_of
from app.domain.alerts import Alert, evaluate
from app.schemas.api import AlertsOut, errors
from app.services import hosts as views

router = APIRouter(tags=["alerts"], responses=errors(503))
log = logging.getLogger("slabscope.alerts")
WEBHOOK_THREAD = "slabscope-alert-webhook"  # each post's thread (tests join them by name)


@router.get("/api/v1/alerts", response_model=AlertsOut)
def alerts(session: SessionDep, settings: SettingsDep) -> dict[str, object]:
    """Every alert that fires now, and the rules."""
    hosts, _ = views.fleet(session, limit=100_000, offset=0, now=views.utcnow(),
                           stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))
    return {"alerts": [dataclasses.asdict(a) for a in evaluate(hosts, rules_of(settings))],
            "rules": dataclasses.asdict(rules_of(settings)),
            "webhook": bool(settings.alert_webhook_url)}


def post_webhook(url: str, fired: list[Alert],
                 on_sent: Callable[[], None] | None = None) -> None:
    """POST new alerts as JSON, in the background (a slow receiver never blocks ingest)."""
    body = json.dumps({"alerts": [dataclasses.asdict(a) for a in fired]}).encode()

    def send() -> None:
        try:
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5):
                pass
        except OSError as err:
            log.error("alert webhook %s failed: %s", url, err)
            return
        if on_sent is not None:
            on_sent()

    threading.Thread(target=send, name=WEBHOOK_THREAD, daemon=True).start()


def _esc(v: str) -> str:
    # Label values escape backslash, newline and double quote (text format 0.0.4).
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@router.get("/metrics", include_in_schema=False, response_class=PlainTextResponse)
def metrics(session: SessionDep, settings: SettingsDep) -> PlainTextResponse:
    """Per host gauges and the server's own ingest counters, Prometheus text format 0.0.4."""
    now = views.utcnow()
    hosts, _ = views.fleet(session, limit=100_000, offset=0, now=now,
                           stale_after=timedelta(seconds=settings.stale_after_seconds),
        min_history=timedelta(seconds=settings.growth_min_history_seconds))
    lines: list[str] = []

    def family(name: str, kind: str, help_: str, rows: list[tuple[dict[str, str], float]]
               ) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {value:.17g}" if lab else f"{name} {value:.17g}")

    def per_host(attr: str) -> list[tuple[dict[str, str], float]]:
        return [({"host": h.name}, float(getattr(h, attr))) for h in hosts
                if getattr(h, attr) is not None]

    family("slabscope_memcg_dying", "gauge", "Dying memory cgroups of the host.",
           per_host("memcg_dying"))
    family("slabscope_memcg_live", "gauge", "Live (visible) memory cgroups.",
           per_host("memcg_live"))
    family("slabscope_dying_wasted_bytes", "gauge",
           "Kernel memory the dying memcgs cost (cost model in the API).",
           per_host("wasted_bytes"))
    family("slabscope_slab_bytes", "gauge", "Slab memory (/proc/meminfo Slab).",
           per_host("slab_bytes"))
    family("slabscope_percpu_bytes", "gauge", "Percpu memory.", per_host("percpu_bytes"))
    family("slabscope_last_scrape_age_seconds", "gauge", "Seconds since the last scrape.",
           [({"host": h.name}, (now - h.last_scrape_at).total_seconds())
            for h in hosts if h.last_scrape_at])
    # Counted in the database by whichever server process answered (app/db/store.py).
    family("slabscope_ingest_requests_total", "counter",
           "Ingest requests by outcome (stored, duplicate, forbidden, invalid, ...).",
           [({"outcome": k}, float(v)) for k, v in fleetstate.ingest_counts(session).items()])
    family("slabscope_collector_spool_dropped_total", "counter",
           "Snapshots a host's collector dropped from its full spool.",
           [({"host": k}, float(v)) for k, v in fleetstate.spool_dropped(session).items()])
    fired = evaluate(hosts, rules_of(settings))
    family("slabscope_alerts_firing", "gauge", "Alerts firing, by rule.",
           [({"rule": r}, float(sum(1 for a in fired if a.rule == r)))
            for r in sorted({a.rule for a in fired})])
    return PlainTextResponse("\n".join(lines) + "\n",
                             media_type="text/plain; version=0.0.4; charset=utf-8")
