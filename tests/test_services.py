"""The PostgreSQL and Redis fixtures really connect (and isolate each test)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.services


def test_postgres_select_one_in_own_schema(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("hxt_")
            conn.execute(sa.text("CREATE TABLE probe (id integer primary key)"))
            conn.execute(sa.text("INSERT INTO probe (id) VALUES (1)"))
            assert conn.execute(sa.text("SELECT count(*) FROM probe")).scalar_one() == 1
    finally:
        engine.dispose()


def test_redis_ping_set_get(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=1)
    try:
        assert client.ping() is True
        assert client.dbsize() == 0  # flushed by the fixture
        client.set("hx-actions:probe", "value", ex=60)
        assert client.get("hx-actions:probe") == b"value"
    finally:
        client.close()
