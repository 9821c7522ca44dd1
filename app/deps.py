"""Dependencies of the routes: one transaction per request, the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.domain.alerts import AlertRules


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
