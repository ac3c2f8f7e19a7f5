"""Idempotency keys: the request side (key, scope, fingerprint) and the stores' API, on SQLite,
PostgreSQL and Redis, inside Flask app contexts with Flask-SQLAlchemy."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, Response
from flask_sqlalchemy import SQLAlchemy
from werkzeug.datastructures import FileStorage, MultiDict

from flask_hx_actions.cli import hx_actions_cli
from flask_hx_actions.idempotency import (
    REPLAYED_HEADER,
    Claim,
    IdempotencyKeyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotencyStore,
    StoredAnswer,
    fingerprint,
    prepare,
    request_key,
    scope_for,
    store_for,
    ttl_seconds,
)
from flask_hx_actions.idempotency_stores import TABLE_NAME, RedisStore, SQLAlchemyStore

TTL = 3600.0
FP = "a" * 64
OTHER_FP = "b" * 64
ITEMS = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
)


def make_app(database_url: str | None = None, **config: Any) -> tuple[Flask, SQLAlchemy | None]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, **config)
    db = None
    if database_url is not None:
        app.config["SQLALCHEMY_DATABASE_URI"] = database_url
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 25, "max_overflow": 5}
        if database_url.startswith("sqlite"):
            app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {}
        db = SQLAlchemy(app)
        with app.app_context():
            ITEMS.create(db.engine, checkfirst=True)
    app.cli.add_command(hx_actions_cli)
    return app, db


def dispose(app: Flask, db: SQLAlchemy | None) -> None:
    if db is not None:
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@dataclass
class Backend:
    """One store under test, with the transaction controls the pipeline would use."""

    name: str
    app: Flask
    store: Any
    db: SQLAlchemy | None
    elsewhere: list[str] = field(default_factory=list)

    @property
    def sql(self) -> bool:
        return self.db is not None

    def commit(self) -> None:
        if self.db is not None:
            self.db.session.commit()

    def rollback(self) -> None:
        if self.db is not None:
            self.db.session.rollback()

    def finish(self, claim: Claim, response: Response | None) -> None:
        """Store the answer and commit, in the pipeline's order for the store."""
        if claim.transactional:
            claim.complete(response)
            self.commit()
        else:
            self.commit()
            claim.complete(response)

    def write(self, name: str) -> None:
        if self.db is None:  # an action that writes elsewhere
            self.elsewhere.append(name)
        else:
            self.db.session.execute(ITEMS.insert().values(name=name))

    def items(self) -> int:
        if self.db is None:
            return len(self.elsewhere)
        with self.db.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ITEMS)).scalar_one())


@pytest.fixture
def sqlite_backend(tmp_path: Any) -> Iterator[Backend]:
    app, db = make_app(f"sqlite:///{tmp_path / 'app.db'}")
    yield Backend("sqlite", app, SQLAlchemyStore(), db)
    dispose(app, db)


@pytest.fixture
def postgres_backend(postgres_url: str) -> Iterator[Backend]:
    app, db = make_app(postgres_url)
    yield Backend("postgres", app, SQLAlchemyStore(), db)
    dispose(app, db)


@pytest.fixture
def redis_backend(redis_url: str) -> Iterator[Backend]:
    app, _ = make_app()
    store = RedisStore(redis_url)
    yield Backend("redis", app, store, None)
    store.client.close()


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    b: Backend = request.getfixturevalue(f"{request.param}_backend")
    with b.app.app_context():
        yield b


def answer() -> Response:
    response = Response("<div id='todo-list'>1</div>", status=200, mimetype="text/html")
    response.headers["HX-Reswap"] = "none"
    response.headers["HX-Actions-Key"] = "old-key-value"  # not a replayed header
    response.headers["Set-Cookie"] = "session=secret"
    response.headers["X-Request-ID"] = "abc"
    return response


# -- the stores ------------------------------------------------------------------------------------


def test_first_claim_of_a_key_is_new(backend: Backend) -> None:
    claim = backend.store.claim("todos.add|u:1", "key-0001", FP, TTL)
    assert claim.outcome == "new"
    assert (claim.scope, claim.key, claim.fingerprint) == ("todos.add|u:1", "key-0001", FP)


def test_completed_key_replays_the_stored_answer(backend: Backend) -> None:
    backend.finish(backend.store.claim("s", "key-0001", FP, TTL), answer())
    again = backend.store.claim("s", "key-0001", FP, TTL)
    assert again.outcome == "replay"
    replayed = again.respond()
    assert replayed.status_code == 200
    assert replayed.get_data(as_text=True) == "<div id='todo-list'>1</div>"
    assert replayed.headers["HX-Reswap"] == "none"
    assert replayed.headers["Content-Type"] == "text/html; charset=utf-8"
    assert replayed.headers[REPLAYED_HEADER] == "true"


def test_replay_carries_no_stored_key_and_no_cookie(backend: Backend) -> None:
    """The form's next key of a replay is a fresh one (``pipeline.finish_response``), never the
    one a stored answer held."""
    backend.finish(backend.store.claim("s", "key-0001", FP, TTL), answer())
    replayed = backend.store.claim("s", "key-0001", FP, TTL).respond()
    assert "HX-Actions-Key" not in replayed.headers
    assert "Set-Cookie" not in replayed.headers
    assert "X-Request-ID" not in replayed.headers


def test_redirect_answer_replays_its_location(backend: Backend) -> None:
    response = Response(status=303, headers={"Location": "/todos/"})
    backend.finish(backend.store.claim("s", "key-0001", FP, TTL), response)
    replayed = backend.store.claim("s", "key-0001", FP, TTL).respond()
    assert (replayed.status_code, replayed.headers["Location"]) == (303, "/todos/")


def test_done_key_with_other_input_is_a_mismatch(backend: Backend) -> None:
    backend.finish(backend.store.claim("s", "key-0001", FP, TTL), answer())
    claim = backend.store.claim("s", "key-0001", OTHER_FP, TTL)
    assert claim.outcome == "mismatch"
    with pytest.raises(IdempotencyKeyReused) as refused:
        claim.respond()
    assert refused.value.code == 422


def test_unfinished_key_with_other_input_is_a_mismatch(backend: Backend) -> None:
    backend.store.claim("s", "key-0001", FP, TTL)
    backend.commit()
    assert backend.store.claim("s", "key-0001", OTHER_FP, TTL).outcome == "mismatch"


def test_unfinished_key_is_a_conflict_with_retry_after(backend: Backend) -> None:
    backend.store.claim("s", "key-0001", FP, TTL)
    backend.commit()  # SQL: as if the action body committed the session itself
    claim = backend.store.claim("s", "key-0001", FP, TTL)
    assert claim.outcome == "conflict"
    with pytest.raises(IdempotencyKeyInFlight) as refused:
        claim.respond()
    response = refused.value.get_response()
    assert (response.status_code, response.headers["Retry-After"]) == (409, "1")


def test_key_completed_without_answer_is_rerendered(backend: Backend) -> None:
    backend.finish(backend.store.claim("s", "key-0001", FP, TTL), None)
    claim = backend.store.claim("s", "key-0001", FP, TTL)
    assert claim.outcome == "rerender"
    with pytest.raises(ValueError, match="no stored answer"):
        claim.respond()


def test_released_key_can_be_claimed_again(backend: Backend) -> None:
    claim = backend.store.claim("s", "key-0001", FP, TTL)
    backend.rollback()  # fail / not_found / exception: the pipeline rolls back ...
    claim.release()  # ... and releases (Redis deletes; SQL has nothing left to do)
    assert backend.store.claim("s", "key-0001", OTHER_FP, TTL).outcome == "new"


def test_same_key_in_another_scope_is_new(backend: Backend) -> None:
    backend.finish(backend.store.claim("todos.add|u:1", "key-0001", FP, TTL), answer())
    assert backend.store.claim("todos.add|u:2", "key-0001", FP, TTL).outcome == "new"
    assert backend.store.claim("todos.delete|u:1", "key-0001", FP, TTL).outcome == "new"


def test_expired_key_is_claimed_again(backend: Backend) -> None:
    backend.finish(backend.store.claim("s", "key-0001", FP, 0.2), answer())
    time.sleep(0.3)
    claim = backend.store.claim("s", "key-0001", OTHER_FP, TTL)
    assert claim.outcome == "new"
    backend.finish(claim, Response("second", status=201))
    again = backend.store.claim("s", "key-0001", OTHER_FP, TTL)
    assert again.outcome == "replay"
    assert again.respond().get_data() == b"second"


def test_purge_expired_deletes_only_expired_keys(backend: Backend) -> None:
    backend.finish(backend.store.claim("s", "old-key-1", FP, 0.2), answer())
    backend.finish(backend.store.claim("s", "new-key-1", FP, TTL), answer())
    time.sleep(0.3)
    purged = backend.store.purge_expired()
    if backend.sql:
        assert purged == 1
        with backend.db.engine.connect() as conn:  # type: ignore[union-attr]
            keys = conn.execute(sa.text(f"SELECT key FROM {TABLE_NAME}")).scalars().all()  # noqa: S608
        assert keys == ["new-key-1"]
    else:
        assert purged == 0  # Redis expired it itself
    assert backend.store.claim("s", "new-key-1", FP, TTL).outcome == "replay"


class Broken:
    def __init__(self, transactional: bool) -> None:
        self.transactional = transactional

    def complete(self, claim: Claim, answer: StoredAnswer | None) -> None:
        raise ConnectionError("store down")

    def release(self, claim: Claim) -> None:
        raise ConnectionError("store down")


def test_errors_of_a_store_outside_the_transaction_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = Claim("new", "s", "key-0001", FP, TTL, Broken(False))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "flask_hx_actions"):
        broken.complete(answer())  # the action happened: its caller still gets the answer
        broken.release()
    assert len(caplog.records) == 2


def test_errors_of_a_transactional_store_roll_the_action_back() -> None:
    broken = Claim("new", "s", "key-0001", FP, TTL, Broken(True))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        broken.complete(answer())


# -- SQLAlchemy: the claim shares the action's transaction -----------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def sql(request: pytest.FixtureRequest) -> Iterator[Backend]:
    b: Backend = request.getfixturevalue(f"{request.param}_backend")
    with b.app.app_context():
        yield b


def test_table_is_created_on_first_use(sql: Backend) -> None:
    assert not sa.inspect(sql.db.engine).has_table(TABLE_NAME)  # type: ignore[union-attr]
    sql.store.claim("s", "key-0001", FP, TTL)
    assert sa.inspect(sql.db.engine).has_table(TABLE_NAME)  # type: ignore[union-attr]


def test_store_writes_each_column_as_core_would(
    sql: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store runs its statements as driver SQL; the values it writes must read back as
    Core's own INSERT of the same values writes them (on SQLite, a DateTime without
    microseconds is text only through SQLAlchemy's bind processor)."""
    import flask_hx_actions.idempotency_stores as stores

    monkeypatch.setattr(stores, "_utcnow", lambda: datetime(2026, 1, 2, 3, 4, 5))
    presumed = StoredAnswer.of(answer())
    sql.store.claim("s", "key-0001", FP, TTL, presumed=presumed).complete(answer())
    sql.commit()
    assert sql.db is not None
    with sql.db.engine.begin() as conn:
        core = dict(
            scope="s",
            key="key-0002",
            fingerprint=FP,
            state="done",
            status=presumed.status,
            headers=presumed.headers_json(),
            body=presumed.body,
            created_at=datetime(2026, 1, 2, 3, 4, 5),
            expires_at=datetime(2026, 1, 2, 3, 4, 5) + timedelta(seconds=TTL),
        )
        conn.execute(sa.insert(sql.store.table).values(core))
        rows = conn.exec_driver_sql(
            f"SELECT key, fingerprint, state, status, headers, body, created_at, expires_at"  # noqa: S608
            f" FROM {TABLE_NAME} ORDER BY key"
        ).all()
    by_store, by_core = (tuple(r) for r in rows)
    assert by_store[0] == "key-0001"
    assert by_store[1:] == by_core[1:]


def test_claim_rolls_back_with_the_actions_writes(sql: Backend) -> None:
    assert sql.store.claim("s", "key-0001", FP, TTL).outcome == "new"
    sql.write("milk")
    sql.rollback()
    assert sql.items() == 0
    assert sql.store.claim("s", "key-0001", FP, TTL).outcome == "new"


def test_claim_and_answer_commit_with_the_actions_writes(sql: Backend) -> None:
    claim = sql.store.claim("s", "key-0001", FP, TTL)
    sql.write("milk")
    claim.complete(answer())
    sql.commit()
    assert sql.items() == 1
    assert sql.store.claim("s", "key-0001", FP, TTL).outcome == "replay"


def test_answer_rolls_back_with_the_actions_writes(sql: Backend) -> None:
    claim = sql.store.claim("s", "key-0001", FP, TTL)
    sql.write("milk")
    claim.complete(answer())
    sql.rollback()  # the commit failed
    assert sql.items() == 0
    assert sql.store.claim("s", "key-0001", FP, TTL).outcome == "new"


def test_key_committed_without_answer_is_rerendered_after_the_grace(sql: Backend) -> None:
    sql.store.claim("s", "key-0001", FP, TTL)
    sql.commit()  # an action body committed the session, then its worker died
    late = SQLAlchemyStore(pending_grace=0)
    assert late.claim("s", "key-0001", FP, TTL).outcome == "rerender"


def rows(sql: Backend) -> list[tuple[str, str, int | None]]:
    with sql.db.engine.connect() as conn:  # type: ignore[union-attr]
        found = conn.execute(sa.select(sql.store.table).order_by("key")).all()
    return [(r.key, r.state, r.status) for r in found]


def test_claim_is_done_without_answer_unless_the_session_commits_before_its_answer(
    sql: Backend,
) -> None:
    """The row is inserted as it reads after a plain commit; a commit between claim and answer
    (the body committed) marks it in flight in that commit, and the answer then writes it."""
    quiet = sql.store.claim("s", "key-0001", FP, TTL)
    quiet.complete(None)  # no answer, no tags: nothing to write
    sql.commit()
    committing = sql.store.claim("s", "key-0002", FP, TTL)
    sql.commit()  # the body committed the session itself
    assert rows(sql) == [("key-0001", "done", None), ("key-0002", "in_flight", None)]
    committing.complete(answer())
    sql.commit()
    assert rows(sql)[1] == ("key-0002", "done", 200)
    sql.commit()  # a later commit of the session leaves the completed claim alone
    assert rows(sql)[1] == ("key-0002", "done", 200)


def test_claim_with_a_presumed_answer_keeps_it_without_a_second_write(sql: Backend) -> None:
    """A plain form's 303 is known before the body runs: the row is inserted with it, completing
    with that answer writes nothing, another answer (a redirect_to) replaces it, and a commit in
    the body still marks the row in flight until the answer."""
    to_page, to_done = (Response(status=303, headers={"Location": p}) for p in ("/a", "/done"))
    see_other, elsewhere = StoredAnswer.of(to_page), StoredAnswer.of(to_done)
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        verb = statement.split(None, 1)[0].upper()
        if TABLE_NAME in statement and verb in ("INSERT", "UPDATE", "SELECT", "DELETE"):
            statements.append(verb)

    engine = sql.db.engine  # type: ignore[union-attr]
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        sql.store.claim("s", "key-0001", FP, TTL, see_other).complete(to_page)
        sql.commit()
        assert statements == ["INSERT"]
        sql.store.claim("s", "key-0002", FP, TTL, see_other).complete(to_done)
        sql.commit()
        assert statements == ["INSERT", "INSERT", "UPDATE"]
        committing = sql.store.claim("s", "key-0003", FP, TTL, see_other)
        sql.commit()  # the body committed the session itself
        assert rows(sql)[2] == ("key-0003", "in_flight", 303)
        committing.complete(to_page)
        sql.commit()
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert rows(sql) == [
        ("key-0001", "done", 303),
        ("key-0002", "done", 303),
        ("key-0003", "done", 303),
    ]
    replays = [sql.store.claim("s", f"key-000{n}", FP, TTL) for n in (1, 2, 3)]
    sql.rollback()
    assert [(c.outcome, c.answer) for c in replays] == [
        ("replay", see_other),
        ("replay", elsewhere),
        ("replay", see_other),
    ]


def test_savepoint_in_the_body_does_not_mark_the_claim_in_flight(sql: Backend) -> None:
    claim = sql.store.claim("s", "key-0001", FP, TTL)
    with sql.db.session.begin_nested():  # type: ignore[union-attr]
        sql.write("milk")
    claim.complete(None)
    sql.commit()
    assert rows(sql) == [("key-0001", "done", None)]
    assert sql.store.claim("s", "key-0001", FP, TTL).outcome == "rerender"


def test_released_claim_is_forgotten_by_the_session(sql: Backend) -> None:
    claim = sql.store.claim("s", "key-0001", FP, TTL)
    sql.rollback()
    claim.release()
    sql.write("milk")
    sql.commit()  # no claim left open: the commit writes no key row
    assert rows(sql) == []


class _Item:
    """``items`` rows as ORM objects, for writes the session holds until it flushes."""

    id: int
    name: str


sa.orm.registry().map_imperatively(_Item, ITEMS)


def _pending_item(name: str, id: int | None = None) -> _Item:
    item = _Item()
    item.name = name
    if id is not None:
        item.id = id
    return item


def test_pending_orm_writes_commit_with_the_stored_answer(sql: Backend) -> None:
    """The answer's UPDATE runs on the session's connection without flushing the ORM's pending
    writes: they are flushed by the commit, in the same transaction as the key."""
    session = sql.db.session  # type: ignore[union-attr]
    claim = sql.store.claim("s", "key-0001", FP, TTL)
    session.add(_pending_item("written by the body"))
    claim.complete(Response("created", status=201))
    assert session.new  # still pending: storing the answer did not flush it
    sql.commit()
    assert sql.items() == 1
    replay = sql.store.claim("s", "key-0001", FP, TTL)
    assert replay.outcome == "replay"
    assert replay.answer is not None and replay.answer.body == b"created"


def test_a_flush_failing_at_the_commit_frees_the_key(sql: Backend) -> None:
    session = sql.db.session  # type: ignore[union-attr]
    session.add(_pending_item("first", id=1))
    sql.commit()
    claim = sql.store.claim("s", "key-0001", FP, TTL)
    session.add(_pending_item("same primary key", id=1))
    claim.complete(Response("created", status=201))
    with pytest.raises(sa.exc.IntegrityError):
        sql.commit()
    sql.rollback()
    assert sql.items() == 1
    assert sql.store.claim("s", "key-0001", FP, TTL).outcome == "new"


def test_store_on_another_bind(tmp_path: Any) -> None:
    app, db = make_app(
        f"sqlite:///{tmp_path / 'app.db'}",
        SQLALCHEMY_BINDS={"keys": f"sqlite:///{tmp_path / 'keys.db'}"},
    )
    try:
        with app.app_context():
            store = SQLAlchemyStore(bind_key="keys")
            store.claim("s", "key-0001", FP, TTL)
            db.session.commit()  # type: ignore[union-attr]
            assert sa.inspect(db.engines["keys"]).has_table(TABLE_NAME)  # type: ignore[union-attr]
            assert not sa.inspect(db.engine).has_table(TABLE_NAME)  # type: ignore[union-attr]
            assert store.claim("s", "key-0001", FP, TTL).outcome == "conflict"
    finally:
        dispose(app, db)


# -- concurrency -------------------------------------------------------------------------------


def run_threads(count: int, work: Callable[[int], str]) -> list[str]:
    barrier = threading.Barrier(count)
    results: list[str] = [""] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def submit(backend: Backend, key: str, hold: float = 0.2) -> str:
    """What the pipeline does for one request: claim, write, commit, store the answer."""
    with backend.app.app_context():
        claim = backend.store.claim("todos.add|u:1", key, FP, TTL)
        if claim.outcome != "new":
            backend.rollback()
            return claim.outcome
        backend.write(key)
        time.sleep(hold)  # the others pile up on the claim meanwhile
        backend.finish(claim, Response("created", status=201))
        return "new"


def test_concurrent_claims_of_one_key_run_once_on_postgres(postgres_backend: Backend) -> None:
    with postgres_backend.app.app_context():
        postgres_backend.store.ensure_table()
    outcomes = run_threads(20, lambda i: submit(postgres_backend, "same-key-1"))
    # The others wait on the first transaction, then replay the answer it committed.
    assert sorted(outcomes) == ["new"] + ["replay"] * 19
    with postgres_backend.app.app_context():
        assert postgres_backend.items() == 1


def test_concurrent_claims_of_distinct_keys_all_run_on_postgres(
    postgres_backend: Backend,
) -> None:
    with postgres_backend.app.app_context():
        postgres_backend.store.ensure_table()
    outcomes = run_threads(20, lambda i: submit(postgres_backend, f"key-{i:04d}", hold=0.0))
    assert outcomes == ["new"] * 20
    with postgres_backend.app.app_context():
        assert postgres_backend.items() == 20


@pytest.mark.parametrize(
    ("first_ends", "second_gets"),
    [("rollback", "new"), ("finish", "replay"), ("commit-without-answer", "conflict")],
)
def test_duplicate_waits_for_the_first_transaction_on_postgres(
    postgres_backend: Backend, first_ends: str, second_gets: str
) -> None:
    b = postgres_backend
    with b.app.app_context():
        b.store.ensure_table()
    claimed = threading.Event()

    def first() -> None:
        with b.app.app_context():
            claim = b.store.claim("s", "key-0001", FP, TTL)
            claimed.set()
            time.sleep(0.5)
            if first_ends == "rollback":
                b.rollback()
            elif first_ends == "finish":
                b.finish(claim, answer())
            else:
                b.commit()

    thread = threading.Thread(target=first)
    thread.start()
    assert claimed.wait(10)
    with b.app.app_context():
        started = time.monotonic()
        outcome = b.store.claim("s", "key-0001", FP, TTL).outcome
        waited = time.monotonic() - started
        b.rollback()
    thread.join(10)
    assert outcome == second_gets
    assert waited > 0.2  # the INSERT waited for the first transaction to end


def test_concurrent_claims_of_one_key_run_once_on_redis(redis_backend: Backend) -> None:
    outcomes = run_threads(20, lambda i: submit(redis_backend, "same-key-1"))
    assert outcomes.count("new") == 1
    assert set(outcomes) - {"new"} <= {"replay", "conflict"}
    assert redis_backend.items() == 1


def test_redis_lease_frees_an_unfinished_key(redis_url: str) -> None:
    store = RedisStore(redis_url, lease=0.1)
    try:
        store.claim("s", "key-0001", FP, TTL)
        assert store.claim("s", "key-0001", FP, TTL).outcome == "conflict"
        time.sleep(0.2)
        assert store.claim("s", "key-0001", FP, TTL).outcome == "new"
    finally:
        store.client.close()


def test_redis_late_owner_cannot_free_or_complete_a_reclaimed_key(redis_url: str) -> None:
    store = RedisStore(redis_url, lease=0.1)
    try:
        late = store.claim("s", "key-0001", FP, TTL)
        time.sleep(0.2)
        current = store.claim("s", "key-0001", FP, TTL)
        assert current.outcome == "new"
        late.release()
        late.complete(answer())
        assert store.claim("s", "key-0001", FP, TTL).outcome == "conflict"
    finally:
        store.client.close()


# -- the request side --------------------------------------------------------------------------


@pytest.fixture
def app() -> Flask:
    return make_app()[0]


def test_key_comes_from_the_form_field(app: Flask) -> None:
    with app.test_request_context(method="POST", data={"_hx_key": "abcdEFGH_-12"}):
        from flask import request

        assert request_key(request) == "abcdEFGH_-12"


@pytest.mark.parametrize("header", ["abcdEFGH_-12", '"abcdEFGH_-12"', " abcdEFGH_-12 "])
def test_key_comes_from_the_header_bare_or_quoted(app: Flask, header: str) -> None:
    with app.test_request_context(method="POST", headers={"Idempotency-Key": header}):
        from flask import request

        assert request_key(request) == "abcdEFGH_-12"


def test_no_key_or_empty_key_field_is_none(app: Flask) -> None:
    with app.test_request_context(method="POST", data={"_hx_key": ""}):
        from flask import request

        assert request_key(request) is None


@pytest.mark.parametrize("header", ["", "  ", '""'])
def test_empty_key_header_is_refused_with_400(app: Flask, header: str) -> None:
    with app.test_request_context(
        method="POST", data={"_hx_key": ""}, headers={"Idempotency-Key": header}
    ):
        from flask import request

        with pytest.raises(IdempotencyKeyInvalid, match="empty") as refused:
            request_key(request)
    assert refused.value.code == 400


@pytest.mark.parametrize("key", ["short7_", "x" * 129, "has space1", "semi;colon", "ünïcödé12"])
def test_malformed_key_is_refused_with_400(app: Flask, key: str) -> None:
    with app.test_request_context(method="POST", data={"_hx_key": key}):
        from flask import request

        with pytest.raises(IdempotencyKeyInvalid) as refused:
            request_key(request)
    assert refused.value.code == 400


def test_field_and_header_must_agree(app: Flask) -> None:
    same = {"_hx_key": "key-00001"}
    with app.test_request_context(
        method="POST", data=same, headers={"Idempotency-Key": "key-00001"}
    ):
        from flask import request

        assert request_key(request) == "key-00001"
    with (
        app.test_request_context(
            method="POST", data=same, headers={"Idempotency-Key": "key-00002"}
        ),
        pytest.raises(IdempotencyKeyInvalid),
    ):
        request_key(request)


def form(**fields: Any) -> MultiDict[str, str]:
    return MultiDict(list(fields.items()))


def test_fingerprint_ignores_the_key_csrf_token_and_field_order() -> None:
    files: MultiDict[str, FileStorage] = MultiDict()
    a = MultiDict([("title", "Milk"), ("qty", "2"), ("_hx_key", "k1"), ("csrf_token", "t1")])
    b = MultiDict([("qty", "2"), ("title", "Milk"), ("_hx_key", "k2"), ("csrf_token", "t2")])
    assert fingerprint(a, files, exclude=("csrf_token",)) == fingerprint(
        b, files, exclude=("csrf_token",)
    )


def test_fingerprint_sees_values_bound_args_and_extra() -> None:
    files: MultiDict[str, FileStorage] = MultiDict()
    base = fingerprint(form(title="Milk", _hx_bound="tok1"), files)
    assert fingerprint(form(title="Bread", _hx_bound="tok1"), files) != base
    assert fingerprint(form(title="Milk", _hx_bound="tok2"), files) != base
    assert fingerprint(form(title="Milk", _hx_bound="tok1"), files, extra=("json",)) != base
    ab = MultiDict([("tag", "a"), ("tag", "b")])
    ba = MultiDict([("tag", "b"), ("tag", "a")])
    assert fingerprint(ab, files) != fingerprint(ba, files)


def upload(content: bytes, filename: str = "a.txt") -> FileStorage:
    return FileStorage(io.BytesIO(content), filename=filename, name="file")


def test_fingerprint_sees_file_content_and_leaves_the_stream_where_it_was() -> None:
    fields = form(title="x")
    one = upload(b"hello")
    base = fingerprint(fields, MultiDict([("file", one)]))
    assert one.stream.tell() == 0
    assert one.read() == b"hello"
    assert fingerprint(fields, MultiDict([("file", upload(b"hello"))])) == base
    assert fingerprint(fields, MultiDict([("file", upload(b"hellO"))])) != base
    assert fingerprint(fields, MultiDict([("file", upload(b"hello", "b.txt"))])) != base


def test_scope_is_per_user_or_session_and_per_endpoint(app: Flask) -> None:
    with app.test_request_context():
        from flask import session

        user1 = scope_for("todos.add", "1")
        assert user1 == scope_for("todos.add", "1")
        assert user1 != scope_for("todos.add", "2")
        assert user1 != scope_for("todos.delete", "1")
        anonymous = scope_for("todos.add", None)
        assert anonymous.startswith("todos.add|s:")
        sid = session["_hx_sid"]
        assert sid not in anonymous  # hashed: the table holds no session ids
        assert anonymous == scope_for("todos.add", None)
    with app.test_request_context():
        assert scope_for("todos.add", None) != anonymous  # another session
        assert len(scope_for("x" * 300, "1")) <= 255


def test_stored_answer_keeps_only_replayable_headers() -> None:
    stored = StoredAnswer.of(answer())
    names = {name for name, _ in stored.headers}
    assert names == {"Content-Type", "HX-Reswap"}
    assert StoredAnswer.from_parts(200, stored.headers_json(), stored.body) == stored


def test_ttl_setting_takes_seconds_or_a_timedelta(app: Flask) -> None:
    assert ttl_seconds(app) == 24 * 3600
    app.config["HX_ACTIONS_IDEMPOTENCY_TTL"] = timedelta(minutes=5)
    assert ttl_seconds(app) == 300
    app.config["HX_ACTIONS_IDEMPOTENCY_TTL"] = 0
    with pytest.raises(ValueError, match="positive"):
        ttl_seconds(app)


def test_prepare_reads_key_scope_fingerprint_and_ttl(sqlite_backend: Backend) -> None:
    app = sqlite_backend.app
    app.config["HX_ACTIONS_IDEMPOTENCY_TTL"] = 60
    data = {"title": "Milk", "_hx_key": "key-00001", "csrf_token": "x"}
    with app.test_request_context(method="POST", data=data):
        pending = prepare(app, "todos.add", "7", "htmx")
        assert pending is not None
        assert (pending.key, pending.scope, pending.ttl) == (
            "key-00001",
            scope_for("todos.add", "7"),
            60,
        )
        assert isinstance(pending.store, SQLAlchemyStore)
        assert pending.claim().outcome == "new"
        assert prepare(app, "todos.add", "7", "json").fingerprint != pending.fingerprint  # type: ignore[union-attr]
    with app.test_request_context(method="POST", data={"title": "Milk"}):
        assert prepare(app, "todos.add", "7", "htmx") is None  # no key: no idempotency


def test_store_is_chosen_by_setting(app: Flask, sqlite_backend: Backend) -> None:
    assert store_for(app) is None  # no Flask-SQLAlchemy, no Redis URL
    app.config["HX_ACTIONS_REDIS_URL"] = "redis://127.0.0.1:6379/15"
    app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = "auto2"
    with pytest.raises(ValueError, match="Unknown"):
        store_for(app)
    app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = "redis://127.0.0.1:6379/15"
    redis_store = store_for(app)
    assert isinstance(redis_store, RedisStore)
    redis_store.client.close()
    app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = "sqlalchemy"
    with pytest.raises(RuntimeError, match="Flask-SQLAlchemy"):
        store_for(app)
    custom: IdempotencyStore = SQLAlchemyStore()
    app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = custom
    assert store_for(app) is custom

    sql_app = sqlite_backend.app
    first = store_for(sql_app)
    assert isinstance(first, SQLAlchemyStore)
    assert store_for(sql_app) is first  # cached per app
    sql_app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = "off"
    assert store_for(sql_app) is None
    sql_app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = "auto"
    sql_app.config["HX_ACTIONS_SQLALCHEMY_TRANSACTIONS"] = False
    assert store_for(sql_app) is None  # the claim could not share the action's transaction


# -- the CLI -----------------------------------------------------------------------------------


def test_purge_keys_command_deletes_expired_keys(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    with b.app.app_context():
        b.app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = b.store
        b.finish(b.store.claim("s", "old-key-1", FP, 0.1), answer())
        b.finish(b.store.claim("s", "old-key-2", FP, 0.1), answer())
    time.sleep(0.2)
    result = b.app.test_cli_runner().invoke(args=["hx-actions", "purge-keys"])
    assert result.exit_code == 0, result.output
    assert result.output == "Deleted 2 expired idempotency keys.\n"


def test_purge_keys_command_fails_without_a_store(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["hx-actions", "purge-keys"])
    assert result.exit_code == 1
    assert "No idempotency store is configured" in result.output


def test_sql_store_builds_in_a_fresh_interpreter_without_flask_sqlalchemy() -> None:
    """The store's module imports what it uses (``sqlalchemy.orm``) itself: a store made before
    anything else imported the ORM (a script, a CLI) works."""
    code = (
        "from flask_hx_actions.idempotency_stores import SQLAlchemyStore\n"
        "import sys\n"
        "assert 'flask_sqlalchemy' not in sys.modules\n"
        "SQLAlchemyStore()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
