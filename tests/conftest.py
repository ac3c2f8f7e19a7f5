"""Shared fixtures: PostgreSQL and Redis on 127.0.0.1 for the `services` tests.

A missing service skips its tests, unless HX_ACTIONS_REQUIRE_SERVICES=1 (set by
scripts/run-tests when CI=true), where it fails them. Override the locations with
HX_ACTIONS_TEST_POSTGRES_URL / HX_ACTIONS_TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "HX_ACTIONS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HX_ACTIONS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SERVICE_FIXTURES = {"postgres_url", "redis_url"}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("HX_ACTIONS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (required: HX_ACTIONS_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


BROWSER_DIR = Path(__file__).resolve().parent / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
    # Browser tests last: Playwright's sync API keeps an asyncio loop in the main thread for the
    # rest of the session, and asgiref (async actions) refuses to run beside a running loop.
    items.sort(key=lambda item: BROWSER_DIR in Path(str(item.path)).resolve().parents)


@pytest.fixture(scope="session")
def _postgres_check() -> str | None:
    """None when PostgreSQL answers (creating the test database if needed), else why not."""
    import sqlalchemy as sa

    url = make_url(POSTGRES_URL)
    if not _port_open(url.host or "127.0.0.1", url.port or 5432):
        return f"PostgreSQL is not answering on {url.host}:{url.port or 5432}"

    def select_one(u: sa.URL) -> None:
        engine = sa.create_engine(u, poolclass=sa.NullPool, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        finally:
            engine.dispose()

    try:
        select_one(url)
    except sa.exc.OperationalError as exc:
        if f'database "{url.database}" does not exist' not in str(exc):
            return f"cannot connect to {url.render_as_string()}: {exc.orig}"
        admin = sa.create_engine(url.set(database="postgres"), poolclass=sa.NullPool)
        try:
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
        except sa.exc.SQLAlchemyError as exc2:
            return f"database {url.database!r} is missing and cannot be created: {exc2}"
        finally:
            admin.dispose()
    return None


@pytest.fixture
def postgres_url(_postgres_check: str | None) -> Iterator[str]:
    """A SQLAlchemy URL whose connections live in a fresh schema, dropped afterwards.

    The schema is set through `options=-csearch_path=...`, so engines the code under test
    creates from this URL (Flask-SQLAlchemy included) see only this test's tables.
    """
    if _postgres_check is not None:
        _unavailable(_postgres_check)
    import sqlalchemy as sa

    schema = f"hxt_{uuid.uuid4().hex[:12]}"
    base = make_url(POSTGRES_URL)
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.begin() as conn:
            # A connection left idle in a transaction would block the drop forever.
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The Redis test database (db 15 by default), flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        problem = None
        try:
            client.ping()
        except redis.RedisError as exc:
            problem = f"Redis is not answering at {REDIS_URL}: {exc}"
        if problem:
            _unavailable(problem)
        client.flushdb()
        yield REDIS_URL
        client.flushdb()
    finally:
        client.close()
