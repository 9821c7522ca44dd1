"""Bring a database to the latest Alembic revision (or any other) from code."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path


def _quiet() -> None:
    # Alembic logs every plugin at INFO, and does so as `alembic` is imported; a user wants
    # to hear only of a failure (DEBUG logging keeps them).
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)


_quiet()

from alembic import command  # noqa: E402  (after _quiet: its import logs)
from alembic.config import Config  # noqa: E402

from app.db.session import make_engine  # noqa: E402

MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config that finds `migrations/` wherever the project is."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


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
