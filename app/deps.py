"""Dependencies of the routes: one transaction per request, the settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import AfterValidator
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.domain.alerts import AlertRules
from app.domain.timerange import TIME_MAX, TIME_MIN, as_utc


def get_session(request: Request) -> Iterator[Session]:
    """A session in one transaction for the whole request (read-only routes roll back)."""
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory.begin() as session:
        yield session


def get_settings_dep(request: Request) -> Settings:
    """The app's settings (given to create_app)."""
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def rules_of(s: Settings) -> AlertRules:
    """The alert rules of the settings."""
    return AlertRules(s.alert_dying_max, s.alert_growth_per_day_max, s.alert_days_to_limit_min,
                      s.alert_wasted_bytes_max)


def _utc_or_none(t: datetime | None) -> datetime | None:
    try:
        utc = None if t is None else as_utc(t)
    except OverflowError:  # an offset that moves it past year 1 or 9999: a clear 422
        utc = TIME_MAX
    if utc is not None and not TIME_MIN <= utc < TIME_MAX:
        raise ValueError(f"time out of range once in UTC ({TIME_MIN.date()} to "
                         f"{TIME_MAX.date()})")
    return utc


# A time in a query string: ISO 8601, naive means UTC (as the README says).
When = Annotated[datetime | None, AfterValidator(_utc_or_none),
                 Query(description="ISO 8601; naive means UTC")]
