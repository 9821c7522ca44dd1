"""Bring a database to the latest Alembic revision (or any other) from code."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.db.session import make_engine

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config that finds `migrations/` wherever the project is."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _quiet() -> None:
    # Alembic logs every plugin at INFO; a user wants to hear only of a failure.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _run(url: str, step: Callable[[Config, str], None], revision: str) -> None:
    _quiet()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            step(cfg, revision)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations up to `revision` on the database at `url`."""
    _run(url, command.upgrade, revision)


def downgrade(url: str, revision: str) -> None:
    """Run the migrations down to `revision` (`base` empties the schema)."""
    _run(url, command.downgrade, revision)
