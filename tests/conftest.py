"""Shared test fixtures: fixture paths, real-dependency gates, databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.live"]  # the `lab` fixture of the live kernel tests

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
THIRD_PARTY = FIXTURES / "third_party"
HOST = FIXTURES / "host-6.18"
ERAS = FIXTURES / "eras"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "SLABSCOPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def require(ok: bool, reason: str) -> None:
    """Skip when a real dependency is missing; under CI=true, fail instead."""
    if not ok:
        if CI:
            pytest.fail(f"CI=true and a real dependency is missing: {reason}")
        pytest.skip(reason)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'slabscope.db'}"


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server (fails under CI when there is none)."""
    import psycopg
    from sqlalchemy.engine import make_url
    u = make_url(POSTGRES_ADMIN_URL)
    try:
        psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database,
                        connect_timeout=3).close()
    except psycopg.OperationalError as err:
        require(False, f"PostgreSQL at {u.host}:{u.port}: {str(err).splitlines()[0]}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url
    u = make_url(postgres_server)
    name = f"slabscope_test_{uuid.uuid4().hex[:12]}"
    kw = {"host": u.host, "port": u.port or 5432, "user": u.username, "dbname": u.database,
          "autocommit": True}
    with psycopg.connect(**kw) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield str(u.set(database=name).render_as_string(hide_password=False))
    with psycopg.connect(**kw) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each database-backed test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


def _seeded(kind: str, request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from tests.seed import seed
    cleanup = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'seeded.db'}"
    else:
        admin = request.getfixturevalue("postgres_server")
        import psycopg
        from sqlalchemy.engine import make_url
        u = make_url(admin)
        name = f"slabscope_seeded_{uuid.uuid4().hex[:10]}"
        kw = {"host": u.host, "port": u.port or 5432, "user": u.username,
              "dbname": u.database, "autocommit": True}
        with psycopg.connect(**kw) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = str(u.set(database=name).render_as_string(hide_password=False))

        def cleanup() -> None:
            with psycopg.connect(**kw) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    upgrade(url)
    engine = make_engine(url)
    seed(make_session_factory(engine))
    engine.dispose()
    yield url
    if cleanup is not None:
        cleanup()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[str]:
    """A migrated database with tests/seed.py's history, once per module and per database."""
    yield from _seeded(request.param, request, tmp_path_factory)


@pytest.fixture(scope="module")
def seeded_sqlite_url(request: pytest.FixtureRequest,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same history on SQLite only (the browser tests)."""
    yield from _seeded("sqlite", request, tmp_path_factory)
