"""Exactly once and transactions through the whole request, on every idempotency store: the SQL
store on SQLite and on PostgreSQL, and the Redis store (with the app's writes on SQLite).

The app below writes a ``Note`` in every body, so a test can check in the database what a
request committed, and counts every call of user code (bodies, ``authorize=``), so a refusal can
be shown to run none. Its ``note-list`` fragment counts the notes through a connection of its
own: it sees only what is committed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, session
from flask_sqlalchemy import SQLAlchemy
from jinja2 import DictLoader
from marshmallow import Schema, fields

from flask_hx_actions import (
    ActionsBlueprint,
    HxActions,
    fail,
    not_found,
    ok,
    redirect_to,
    revalidate,
)
from flask_hx_actions.cli import hx_actions_cli
from flask_hx_actions.idempotency import REPLAYED_HEADER
from flask_hx_actions.idempotency_stores import TABLE_NAME
from flask_hx_actions.responses import answer_key
from flask_hx_actions.testing import ActionClient

KEY = "review-key-0001"
NOTES = sa.Table(
    "review_notes",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("title", sa.String(100), nullable=False, unique=True),
)
TEMPLATES = {
    "list.html": "committed={{ committed }}",
    "note.html": "{{ title }}",
}


class TitleSchema(Schema):
    title = fields.String(required=True)


@dataclass
class App:
    app: Flask
    db: SQLAlchemy
    store: str
    redis_url: str | None
    calls: Counter[str] = field(default_factory=Counter)

    def client(self, user: str | None = None) -> ActionClient:
        client = self.app.test_client()
        assert isinstance(client, ActionClient)
        if user is not None:
            with client.session_transaction() as sess:
                sess["user"] = user
        return client

    def notes(self) -> list[str]:
        with self.app.app_context(), self.db.engine.connect() as conn:
            return list(conn.execute(sa.select(NOTES.c.title).order_by(NOTES.c.id)).scalars())

    def add_notes(self, *titles: str) -> None:
        with self.app.app_context(), self.db.engine.begin() as conn:
            for title in titles:
                conn.execute(NOTES.insert().values(title=title))

    def keys_held(self) -> int:
        """How many idempotency keys the store holds (claimed or done)."""
        if self.redis_url is not None:
            import redis

            client = redis.Redis.from_url(self.redis_url)
            try:
                return len(list(client.scan_iter("hx-actions:idempotency:*")))
            finally:
                client.close()
        with self.app.app_context(), self.db.engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE_NAME):
                return 0
            table = sa.table(TABLE_NAME)
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def build(database_url: str, store: str, redis_url: str | None, **config: Any) -> App:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="review-secret",
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=database_url,
        HX_ACTIONS_IDEMPOTENCY_STORE=redis_url or "sqlalchemy",
        **config,
    )
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader(TEMPLATES)
    db = SQLAlchemy(app)
    HxActions(app, identity=lambda: session.get("user"))
    app.cli.add_command(hx_actions_cli)
    built = App(app, db, store, redis_url)
    calls = built.calls
    bp = ActionsBlueprint("notes", __name__, url_prefix="/notes")

    def insert(title: str) -> None:
        db.session.execute(NOTES.insert().values(title=title))

    @bp.action("add", schema=TitleSchema, tags=["notes"], fragment="note-list")
    def add(title: str) -> Any:
        calls["add"] += 1
        insert(title)
        return ok(title=title)

    @bp.action("add_quietly", schema=TitleSchema, tags=["notes"])
    def add_quietly(title: str) -> Any:  # no fragment: the form is not re-rendered
        calls["add_quietly"] += 1
        insert(title)
        return ok()

    @bp.action("touch_all", tags=["notes"])
    def touch_all() -> Any:
        calls["touch_all"] += 1
        rows = db.session.execute(sa.select(NOTES.c.id, NOTES.c.title)).all()
        for row in rows:
            db.session.execute(
                NOTES.update().where(NOTES.c.id == row.id).values(title=f"{row.title}!")
            )
        revalidate(*[f"note:{row.id}" for row in rows])  # tags known only to the body
        return ok()

    @bp.action("reject", schema=TitleSchema, tags=["notes"], fragment="note-list")
    def reject(title: str) -> Any:
        calls["reject"] += 1
        insert(title)
        return fail("NOPE", "Not today")

    @bp.action("missing", schema=TitleSchema, tags=["notes"], fragment="note-list")
    def missing(title: str) -> Any:
        calls["missing"] += 1
        insert(title)
        return not_found()

    @bp.action("explode", schema=TitleSchema, tags=["notes"])
    def explode(title: str) -> Any:
        calls["explode"] += 1
        insert(title)
        raise RuntimeError("boom")

    @bp.action("clash", schema=TitleSchema, tags=["notes"])
    def clash(title: str) -> Any:  # a database error inside the transaction
        calls["clash"] += 1
        insert(title)
        insert(title)
        return ok()

    @bp.action("finish", schema=TitleSchema)
    def finish(title: str) -> Any:
        calls["finish"] += 1
        insert(title)
        return redirect_to("/done")

    def allowed() -> bool:
        calls["authorize"] += 1
        return True

    @bp.action("guarded", schema=TitleSchema, authorize=allowed)
    def guarded(title: str) -> Any:
        calls["guarded"] += 1
        insert(title)
        return ok()

    @bp.action("limited", schema=TitleSchema, limit="1/minute")
    def limited(title: str) -> Any:
        calls["limited"] += 1
        insert(title)
        return ok()

    @bp.fragment("note-list", template="list.html", tags=["notes"])
    def note_list() -> dict[str, Any]:
        calls["note-list"] += 1
        with db.engine.connect() as conn:  # not the action's session: committed rows only
            count = conn.execute(sa.select(sa.func.count()).select_from(NOTES)).scalar_one()
        return {"committed": count}

    @bp.fragment("note", template="note.html", tags=lambda id: [f"note:{id}"])
    def note(id: int) -> dict[str, Any]:
        title = db.session.execute(sa.select(NOTES.c.title).where(NOTES.c.id == id)).scalar_one()
        return {"title": title}

    app.register_blueprint(bp)
    with app.app_context():
        NOTES.create(db.engine, checkfirst=True)
    return built


STORES = ["sqlite", "postgres", "redis"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(request: pytest.FixtureRequest, tmp_path: Path, store: str) -> Iterator[Any]:
    """``make(**config)``: the app on ``store`` (services fixtures only where needed)."""
    made: list[App] = []
    database_url = f"sqlite:///{tmp_path / 'notes.db'}"
    redis_url = None
    if store == "postgres":
        database_url = request.getfixturevalue("postgres_url")
    elif store == "redis":
        redis_url = request.getfixturevalue("redis_url")

    def factory(**config: Any) -> App:
        built = build(database_url, store, redis_url, **config)
        made.append(built)
        return built

    yield factory
    for built in made:
        with built.app.app_context():
            built.db.session.remove()
            for engine in built.db.engines.values():
                engine.dispose()
        cached = built.app.extensions.get("hx_actions.idempotency")
        client = getattr(cached[1], "client", None) if cached else None
        if client is not None:
            client.close()


@pytest.fixture
def h(make: Any) -> App:
    built: App = make()
    return built


# -- replays -----------------------------------------------------------------------------------


def test_replayed_htmx_answer_refreshes_the_regions_the_body_revalidated(h: App) -> None:
    """A replay without the first answer re-renders it: the regions whose tags the body passed to
    revalidate() must be in it too, or the page keeps showing the old rows."""
    h.add_notes("a", "b")
    client = h.client("alice")
    data = {"_hx_key": KEY}
    regions = "note?id=1 note?id=2 note-list"
    first = client.submit("notes.touch_all", data, htmx=True, regions=regions)
    again = client.submit("notes.touch_all", data, htmx=True, regions=regions)
    assert first.status_code == again.status_code == 200
    assert again.headers[REPLAYED_HEADER] == "true"
    assert h.calls["touch_all"] == 1
    for dom_id, title in (("note-1", "a!"), ("note-2", "b!")):
        assert f'id="{dom_id}"' in first.text
        assert f'id="{dom_id}"' in again.text, again.text
        assert f">{title}</div>" in again.text


def test_a_key_done_without_answer_keeps_the_revalidated_tags_for_its_rerender(h: App) -> None:
    from flask_hx_actions.idempotency import store_for

    with h.app.app_context():
        store = store_for(h.app)
        assert store is not None
        claim = store.claim("notes.touch_all|u:1", KEY, "f" * 64, 60.0)
        if store.transactional:
            claim.complete(None, {"note:1", "note:2"})
            h.db.session.commit()
        else:
            h.db.session.commit()
            claim.complete(None, {"note:1", "note:2"})
        again = store.claim("notes.touch_all|u:1", KEY, "f" * 64, 60.0)
        h.db.session.rollback()
    assert again.outcome == "rerender"
    assert again.tags == {"note:1", "note:2"}


def test_plain_replay_keeps_the_first_location(h: App) -> None:
    client = h.client("alice")
    data = {"title": "milk", "_hx_key": KEY}
    first = client.submit("notes.add", data, referrer="http://localhost/page-a")
    again = client.submit("notes.add", data, referrer="http://localhost/page-b")
    assert (first.status_code, first.headers["Location"]) == (303, "/page-a")
    assert (again.status_code, again.headers["Location"]) == (303, "/page-a")
    assert again.headers[REPLAYED_HEADER] == "true"
    redirect = [client.submit("notes.finish", {"title": "x", "_hx_key": "finish-key-1"})] * 2
    assert redirect[1].headers["Location"] == "/done"
    assert h.notes() == ["milk", "x"]
    assert h.calls["add"] == h.calls["finish"] == 1


def test_json_replay_is_the_first_answer_and_other_input_is_422(h: App) -> None:
    client = h.client("alice")
    first = client.submit("notes.add", {"title": "milk", "_hx_key": KEY}, json=True)
    again = client.submit("notes.add", {"title": "milk", "_hx_key": KEY}, json=True)
    other = client.submit("notes.add", {"title": "bread", "_hx_key": KEY}, json=True)
    expected = {"ok": True, "code": None, "data": {"title": "milk"}}
    assert first.get_json() == again.get_json() == expected
    assert other.status_code == 422
    assert other.get_json()["code"] == "idempotency_key_reused"
    assert h.notes() == ["milk"]


def test_the_key_belongs_to_one_session_user_and_action(h: App) -> None:
    data = {"title": "milk", "_hx_key": KEY}
    anonymous_one, anonymous_two = h.client(), h.client()
    first = anonymous_one.submit("notes.add_quietly", {"title": "one", "_hx_key": KEY}, json=True)
    second = anonymous_two.submit("notes.add_quietly", {"title": "two", "_hx_key": KEY}, json=True)
    assert first.status_code == second.status_code == 200
    assert REPLAYED_HEADER not in second.headers
    alice, bob = h.client("alice"), h.client("bob")
    assert alice.submit("notes.add", data, json=True).get_json()["data"] == {"title": "milk"}
    bobs = bob.submit("notes.add", {"title": "bread", "_hx_key": KEY}, json=True)
    assert bobs.status_code == 200, bobs.text  # not alice's answer, not a 422
    assert bobs.get_json()["data"] == {"title": "bread"}
    other_action = alice.submit("notes.add_quietly", {"title": "salt", "_hx_key": KEY}, json=True)
    assert other_action.status_code == 200
    assert REPLAYED_HEADER not in other_action.headers
    assert sorted(h.notes()) == ["bread", "milk", "one", "salt", "two"]


def test_htmx_answer_without_its_form_carries_a_fresh_key_and_so_does_its_replay(h: App) -> None:
    client = h.client("alice")
    data = {"title": "milk", "_hx_key": KEY}
    first = client.submit("notes.add_quietly", data, htmx=True)
    again = client.submit("notes.add_quietly", data, htmx=True)
    assert first.headers["HX-Reswap"] == "none"
    keys = {KEY, answer_key(first.headers), answer_key(again.headers)}
    assert len(keys) == 3 and None not in keys
    following = client.submit(
        "notes.add_quietly", {"title": "bread", "_hx_key": answer_key(first.headers)}, htmx=True
    )
    assert following.status_code == 200
    assert REPLAYED_HEADER not in following.headers
    assert h.notes() == ["milk", "bread"]


def test_reused_key_answer_gives_the_form_a_fresh_key(h: App) -> None:
    """The first answer was lost: the page still holds its key, and the user edits and submits
    again. The 422 gives the form a new key, so the next submit runs instead of another 422."""
    client = h.client("alice")
    client.submit("notes.add_quietly", {"title": "milk", "_hx_key": KEY}, htmx=True)
    refused = client.submit("notes.add_quietly", {"title": "bread", "_hx_key": KEY}, htmx=True)
    assert refused.status_code == 422
    fresh = answer_key(refused.headers)
    assert refused.headers["HX-Actions"] == f"1; key={fresh}"
    assert fresh is not None and fresh != KEY
    retried = client.submit("notes.add_quietly", {"title": "bread", "_hx_key": fresh}, htmx=True)
    assert retried.status_code == 200
    assert REPLAYED_HEADER not in retried.headers
    assert h.notes() == ["milk", "bread"]
    as_json = client.submit("notes.add_quietly", {"title": "salt", "_hx_key": KEY}, json=True)
    assert as_json.status_code == 422
    assert "HX-Actions" not in as_json.headers  # a script chooses its own keys


# -- failures free the key and roll back ---------------------------------------------------------


def test_fail_rolls_back_frees_the_key_and_renders_nothing(h: App) -> None:
    client = h.client("alice")
    failed = client.submit("notes.reject", {"title": "milk", "_hx_key": KEY}, htmx=True)
    assert failed.status_code == 422
    assert "committed=" not in failed.text  # no re-render of a change that did not happen
    assert failed.headers["HX-Actions"] == "1"  # no new key: the failed submit freed its own
    assert h.notes() == []
    assert h.keys_held() == 0
    again = client.submit("notes.reject", {"title": "bread", "_hx_key": KEY}, htmx=True)
    assert again.status_code == 422  # other input, same key: the failed run did not keep it
    assert h.calls["reject"] == 2


@pytest.mark.parametrize("kind", ["json", "htmx", "plain"])
def test_not_found_rolls_back_and_frees_the_key(h: App, kind: str) -> None:
    client = h.client("alice")
    extra = {} if kind == "plain" else {kind: True}
    for title in ("milk", "bread"):  # the second run has other input: still not a 422
        answer = client.submit("notes.missing", {"title": title, "_hx_key": KEY}, **extra)
        assert answer.status_code == 404
        assert "committed=" not in answer.text
    assert h.calls["missing"] == 2
    assert h.notes() == []
    assert h.keys_held() == 0


@pytest.mark.parametrize("action", ["explode", "clash"])
def test_an_exception_rolls_back_and_frees_the_key(h: App, action: str) -> None:
    h.app.config["PROPAGATE_EXCEPTIONS"] = False
    client = h.client("alice")
    for title in ("milk", "bread"):
        answer = client.submit(f"notes.{action}", {"title": title, "_hx_key": KEY}, json=True)
        assert answer.status_code == 500
    assert h.calls[action] == 2
    assert h.notes() == []
    assert h.keys_held() == 0


def test_a_propagated_exception_rolls_back_and_frees_the_key(h: App) -> None:
    client = h.client("alice")
    with pytest.raises(RuntimeError, match="boom"):
        client.submit("notes.explode", {"title": "milk", "_hx_key": KEY}, json=True)
    assert h.notes() == []
    assert h.keys_held() == 0


# -- revalidation after the commit ----------------------------------------------------------------


def test_fragments_render_after_the_commit(h: App) -> None:
    """``note-list`` counts the notes on a connection of its own: rendered before the commit it
    would say 0 (or wait on the writer's lock)."""
    client = h.client("alice")
    answer = client.submit("notes.add", {"title": "milk", "_hx_key": KEY}, htmx=True)
    assert answer.status_code == 200
    assert "committed=1" in answer.text
    replay = client.submit("notes.add", {"title": "milk", "_hx_key": KEY}, htmx=True)
    assert "committed=1" in replay.text


# -- keys over time ------------------------------------------------------------------------------


def test_key_expires_after_the_ttl(make: Any) -> None:
    h: App = make(HX_ACTIONS_IDEMPOTENCY_TTL=0.5)
    client = h.client("alice")
    client.submit("notes.add", {"title": "milk", "_hx_key": KEY}, json=True)
    early = client.submit("notes.add", {"title": "bread", "_hx_key": KEY}, json=True)
    assert early.status_code == 422
    time.sleep(0.7)
    late = client.submit("notes.add", {"title": "bread", "_hx_key": KEY}, json=True)
    assert late.status_code == 200
    assert REPLAYED_HEADER not in late.headers
    assert h.notes() == ["milk", "bread"]


def test_purge_keys_deletes_expired_keys_on_every_store(make: Any) -> None:
    h: App = make(HX_ACTIONS_IDEMPOTENCY_TTL=0.3)
    client = h.client("alice")
    client.submit("notes.add", {"title": "milk", "_hx_key": KEY}, json=True)
    assert h.keys_held() == 1
    time.sleep(0.5)
    result = h.app.test_cli_runner().invoke(args=["hx-actions", "purge-keys"])
    assert result.exit_code == 0, result.output
    expected = 0 if h.store == "redis" else 1  # Redis expired it itself
    plural = "" if expected == 1 else "s"
    assert result.output == f"Deleted {expected} expired idempotency key{plural}.\n"
    assert h.keys_held() == 0


# -- refusals before any user code ---------------------------------------------------------------


BAD_HEADERS = {
    "129": "k" * 129,
    "5000": "k" * 5000,
    "latin1": "clé-12345678",
    "utf8-bytes": "cl\xc3\xa9-12345678",
    "two": "a1234567, b12",
    "short": "short",
    "empty": "",
    "blank": "  ",
    "empty-quoted": '""',
}


@pytest.mark.parametrize("header", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_malformed_or_empty_key_header_is_400_before_any_user_code(h: App, header: str) -> None:
    client = h.client("alice")
    answer = client.submit(
        "notes.guarded",
        {"title": "milk", "_hx_key": ""},
        json=True,
        headers={"Idempotency-Key": header},
    )
    assert answer.status_code == 400, answer.text
    assert answer.get_json()["code"] == "bad_idempotency_key"
    assert h.calls == Counter()  # neither authorize= nor the body ran
    assert h.notes() == []
    assert h.keys_held() == 0


def test_rate_limited_submit_runs_no_code_and_does_not_take_its_key(h: App) -> None:
    client = h.client("alice")
    first = client.submit("notes.limited", {"title": "a", "_hx_key": KEY}, json=True)
    assert first.status_code == 200
    limited = client.submit("notes.limited", {"title": "b", "_hx_key": "second-key-1"}, json=True)
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
    assert h.calls["limited"] == 1
    assert h.keys_held() == 1  # only the first request's key
    assert h.notes() == ["a"]
