"""Exactly once under real concurrency: gunicorn with 2 sync workers on 127.0.0.1, PostgreSQL,
and the SQL or the Redis idempotency store (``tests/concurrency_app.py``).

50 threads submit at the same moment with one session cookie, one CSRF token and one
``_hx_key``: exactly one body runs and one row is written; every other answer is a replay of
the first (``Idempotent-Replayed: true``) or a 409 with ``Retry-After``. With 50 different keys,
50 rows.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from loopback import Answer, free_port, request

pytestmark = [pytest.mark.slow, pytest.mark.services]

TESTS = Path(__file__).resolve().parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
N = 50
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        return request(self.port, method, path, body, headers or {}, REQUEST_TIMEOUT)

    def session(self, user: str) -> tuple[str, str]:
        """Sign ``user`` in: (the session cookie, its CSRF token)."""
        answer = self.request("GET", f"/login?user={user}")
        assert answer.status == 200, answer.body
        cookie = answer.headers["set-cookie"].split(";", 1)[0]
        return cookie, json.loads(answer.body)["csrf_token"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start the app under gunicorn (2 sync workers) on a free port of 127.0.0.1; stopped at
    teardown."""
    started: list[Server] = []

    def start(database_url: str, store: str = "sql") -> Server:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        env = {
            **os.environ,
            "HX_TEST_DATABASE_URL": database_url,
            "HX_TEST_STORE": store,
            "HX_TEST_SECRET": secrets.token_hex(16),
            "PYTHONPATH": str(TESTS.parent),
        }
        command = [
            str(GUNICORN),
            "--workers=2",
            "--worker-class=sync",
            "--preload",
            f"--bind=127.0.0.1:{port}",
            f"--chdir={TESTS}",
            "--timeout=60",
            "--graceful-timeout=5",
            "concurrency_app:create_app()",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(port, process, log)
        started.append(server)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited:\n{log.read_text()}")
            try:
                if server.request("GET", "/health").status == 200:
                    return server
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer in {START_TIMEOUT} s:\n{log.read_text()}")
            time.sleep(0.1)

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


def _submit_all(
    server: Server, bodies: list[str], cookie: str, accept: str | None, path: str = "/shop/place"
) -> list[Any]:
    """POST every body at the same moment (one thread each, released by a barrier)."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": cookie,
        "Origin": server.origin,
        "Sec-Fetch-Site": "same-origin",
    }
    if accept:
        headers["Accept"] = accept
    barrier = threading.Barrier(len(bodies))

    def one(body: str) -> Any:
        barrier.wait(timeout=REQUEST_TIMEOUT)
        try:
            return server.request("POST", path, body, headers)
        except OSError as exc:  # reported, not raised: the assertions below show it
            return exc

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def _events(database_url: str) -> list[tuple[str, int]]:
    """(op, order id) of every body run that committed."""
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT op, order_id FROM event ORDER BY id")).all()
            orders = conn.scalar(sa.text('SELECT count(*) FROM "order"'))
    finally:
        engine.dispose()
    assert orders == len(rows), "an order without its event, or the other way round"
    return [(op, order_id) for op, order_id in rows]


def _check_one_write(
    server: Server, answers: list[Any], database_url: str, store: str
) -> dict[str, Any]:
    errors = [a for a in answers if not isinstance(a, Answer)]
    assert not errors, f"connection errors: {errors[:3]}\n{server.log.read_text()[-3000:]}"
    first = [a for a in answers if a.status in (200, 303) and not a.replayed]
    replays = [a for a in answers if a.status in (200, 303) and a.replayed]
    conflicts = [a for a in answers if a.status == 409]
    others = [a for a in answers if a not in first + replays + conflicts]
    summary = {
        "first": len(first),
        "replays": len(replays),
        "409": len(conflicts),
        "others": [(a.status, a.body[:200]) for a in others],
    }
    assert len(first) == 1, summary
    assert not others, f"{summary}\n{server.log.read_text()[-3000:]}"
    assert len(replays) + len(conflicts) == N - 1
    assert all(a.headers.get("retry-after") == "1" for a in conflicts)
    if store == "sql":
        assert not conflicts, f"the SQL store waits for the first and replays: {summary}"
    for replay in replays:  # the first answer, sent again
        assert replay.status == first[0].status
        if first[0].status == 200:
            assert json.loads(replay.body) == json.loads(first[0].body)
        else:
            assert replay.headers["location"] == first[0].headers["location"]
    events = _events(database_url)
    assert len(events) == 1, events
    assert events[0][0] == "same-op"
    return summary


@pytest.fixture(params=["sql", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    """``sql``, or the URL of a Redis database of this test's own: the ``redis_url`` fixture
    (which checks that Redis answers) flushes its database around every test that uses it, so a
    suite running beside this one would wipe the keys in the middle of a run."""
    if request.param == "sql":
        yield "sql"
        return
    import redis

    url = make_url_with_db(str(request.getfixturevalue("redis_url")), OWN_REDIS_DB)
    client = redis.Redis.from_url(url)
    prefix = "hx-actions:"  # keys, tag versions, fragments
    try:
        yield url
    finally:
        for name in client.scan_iter(f"{prefix}*"):
            client.delete(name)
        client.close()


OWN_REDIS_DB = 14


def make_url_with_db(url: str, db: int) -> str:
    """``url`` with its database number replaced by ``db``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def _store_name(store: str) -> str:
    return "sql" if store == "sql" else "redis"


@pytest.mark.parametrize("accept", ["application/json", None], ids=["json", "plain"])
def test_fifty_concurrent_submits_with_one_key_write_once(
    serve: Callable[..., Server], postgres_url: str, store: str, accept: str | None
) -> None:
    server = serve(postgres_url, store)
    cookie, csrf = server.session("alice")
    key = secrets.token_urlsafe(16)
    body = urlencode({"csrf_token": csrf, "_hx_key": key, "op": "same-op", "title": "Milk"})
    answers = _submit_all(server, [body] * N, cookie, accept)
    _check_one_write(server, answers, postgres_url, _store_name(store))


def test_fifty_concurrent_submits_with_different_keys_write_fifty_times(
    serve: Callable[..., Server], postgres_url: str, store: str
) -> None:
    server = serve(postgres_url, store)
    cookie, csrf = server.session("alice")
    bodies = [
        urlencode(
            {
                "csrf_token": csrf,
                "_hx_key": secrets.token_urlsafe(16),
                "op": f"op-{i}",
                "title": "Milk",
            }
        )
        for i in range(N)
    ]
    answers = _submit_all(server, bodies, cookie, "application/json")
    assert all(isinstance(a, Answer) for a in answers), answers
    statuses = sorted({a.status for a in answers})
    assert statuses == [200], [a.body[:200] for a in answers if a.status != 200]
    assert not any(a.replayed for a in answers)
    events = _events(postgres_url)
    assert sorted(op for op, _ in events) == sorted(f"op-{i}" for i in range(N))
    assert len({order for _, order in events}) == N


def test_a_duplicate_of_a_submit_in_flight_waits_and_replays_or_gets_409(
    serve: Callable[..., Server], postgres_url: str, store: str
) -> None:
    """The body sleeps 300 ms inside its transaction, so the other worker's first request finds
    the key in flight: the SQL store waits for the commit and replays, Redis answers 409."""
    server = serve(postgres_url, store)
    cookie, csrf = server.session("alice")
    key = secrets.token_urlsafe(16)
    body = urlencode({"csrf_token": csrf, "_hx_key": key, "op": "same-op", "ms": "300"})
    answers = _submit_all(server, [body] * N, cookie, "application/json", "/shop/slow")
    summary = _check_one_write(server, answers, postgres_url, _store_name(store))
    if store != "sql":
        assert summary["409"] >= 1, summary
