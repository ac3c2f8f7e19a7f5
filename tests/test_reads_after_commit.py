"""An htmx success renders its fragments after the commit; on PostgreSQL at READ COMMITTED those
reads run in autocommit mode (no BEGIN, no ROLLBACK round trip), elsewhere in a transaction as
before. See ``flask_hx_actions.transactions``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from jinja2 import DictLoader
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_hx_actions import ActionsBlueprint, HxActions
from flask_hx_actions.testing import ActionClient

IDLE, INTRANS = 0, 2  # psycopg.pq.TransactionStatus


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    done: Mapped[bool] = mapped_column(default=False)


TEMPLATES = {
    "row.html": "{{ n.title }}{% if n.done %} (done){% endif %}",
    "stats.html": "{{ done }} done",
}


def make_app(url: str, **engine_options: Any) -> tuple[Flask, SQLAlchemy, dict[str, Any]]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, SQLALCHEMY_DATABASE_URI=url)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader(TEMPLATES)
    db = SQLAlchemy(app, model_class=Base)
    HxActions(app)
    seen: dict[str, Any] = {"states": [], "body": 0}
    bp = ActionsBlueprint("notes", __name__, url_prefix="/notes")

    def driver_state() -> tuple[int, bool] | None:
        dbapi = db.session.connection().connection.dbapi_connection
        pgconn = getattr(dbapi, "pgconn", None)
        return None if pgconn is None else (pgconn.transaction_status, dbapi.autocommit)

    @bp.action("toggle", tags=lambda id: [f"note:{id}", "stats"], fragment="row")
    def toggle(id: int) -> None:
        seen["body"] += 1
        note = db.session.get(Note, id)
        assert note is not None
        note.done = not note.done

    @bp.fragment("row", template="row.html", tags=lambda id: [f"note:{id}"], element="li")
    def row(id: int) -> dict[str, Any]:
        note = db.session.get(Note, id)
        seen["states"].append(driver_state())
        if seen.get("scribble"):  # a fragment that changes what it reads: never written
            assert note is not None
            note.title = "scribbled"
            db.session.scalar(sa.select(sa.func.count()).select_from(Note))  # no autoflush
        if seen.get("explode"):
            raise RuntimeError("the fragment broke")
        return {"n": note}

    @bp.fragment("stats", template="stats.html", tags=["stats"], element="p")
    def stats() -> dict[str, Any]:
        done = db.session.scalar(sa.select(sa.func.count()).where(Note.done))
        seen["states"].append(driver_state())
        return {"done": done}

    app.register_blueprint(bp)
    with app.app_context():
        Base.metadata.create_all(db.engine)
        db.session.add_all([Note(id=1, title="Milk"), Note(id=2, title="Bread")])
        db.session.commit()
    return app, db, seen


@pytest.fixture
def pg(postgres_url: str) -> Iterator[tuple[Flask, SQLAlchemy, dict[str, Any]]]:
    app, db, seen = make_app(postgres_url)
    yield app, db, seen
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def toggle(app: Flask, id: int = 1) -> Any:
    client = app.test_client()
    return client.submit("notes.toggle", bind={"id": id}, htmx=True, regions="stats")


def test_fragments_after_the_commit_read_without_a_transaction_on_postgresql(pg):
    app, db, seen = pg
    answer = toggle(app)
    assert answer.status_code == 200, answer.text
    assert "Milk (done)" in answer.text and "1 done" in answer.text  # the committed state
    # Each read left no transaction open: no BEGIN was sent, so no ROLLBACK is owed.
    assert seen["states"] == [(IDLE, True), (IDLE, True)]
    with app.app_context():  # the pooled connection is back in transactional mode
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
            conn.execute(sa.update(Note).where(Note.id == 2).values(title="Not kept"))
            conn.rollback()
        assert db.session.get(Note, 2).title == "Bread"


def test_a_replays_re_render_reads_without_a_transaction_too(pg):
    """The first submit committed and kept no answer (an htmx answer with fragments); the same
    key again re-renders from the committed state, after its claim's rollback."""
    app, _db, seen = pg
    client = app.test_client()
    fields = {"_hx_key": "replayed-key-0001"}
    first = client.submit("notes.toggle", fields, bind={"id": 1}, htmx=True, regions="stats")
    seen["states"].clear()
    again = client.submit("notes.toggle", fields, bind={"id": 1}, htmx=True, regions="stats")
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (200, "true")
    assert seen["body"] == 1 and "Milk (done)" in first.text and "Milk (done)" in again.text
    assert seen["states"] == [(IDLE, True), (IDLE, True)]


def test_a_fragment_that_changes_an_object_after_the_commit_writes_nothing(pg):
    app, db, seen = pg
    seen["scribble"] = True
    answer = toggle(app)
    assert answer.status_code == 200, answer.text
    assert seen["body"] == 1
    with app.app_context():
        note = db.session.get(Note, 1)
        assert (note.title, note.done) == ("Milk", True)  # the body's change only


def test_a_fragment_that_raises_gives_the_connection_back_in_transactional_mode(pg):
    app, db, seen = pg
    seen["explode"] = True
    with pytest.raises(RuntimeError, match="the fragment broke"):  # TESTING propagates it
        toggle(app)
    seen["explode"] = False
    seen["states"].clear()
    answer = toggle(app, 2)
    assert answer.status_code == 200, answer.text
    assert seen["states"] == [(IDLE, True), (IDLE, True)]
    with app.app_context():
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
        assert [n.done for n in db.session.scalars(sa.select(Note).order_by(Note.id))] == [
            True,
            True,
        ]


def test_at_a_stricter_isolation_level_the_reads_keep_their_transaction(postgres_url):
    app, db, seen = make_app(postgres_url, isolation_level="REPEATABLE READ")
    try:
        answer = toggle(app)
        assert answer.status_code == 200, answer.text
        assert "Milk (done)" in answer.text
        assert seen["states"] == [(INTRANS, False), (INTRANS, False)]  # one snapshot for both
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_on_sqlite_the_reads_run_as_before(tmp_path):
    app, db, seen = make_app(f"sqlite:///{tmp_path / 'notes.db'}")
    try:
        answer = toggle(app)
        assert answer.status_code == 200, answer.text
        assert "Milk (done)" in answer.text and "1 done" in answer.text
        assert seen["states"] == [None, None]  # not a psycopg connection: nothing to check
        with app.app_context():
            assert db.session.get(Note, 1).done is True
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_an_app_with_named_binds_only_reads_as_before():
    """No default engine (``SQLALCHEMY_BINDS`` only): nothing to choose, nothing changes."""
    from flask_hx_actions.transactions import _AS_BEFORE, reads_after_commit

    app = Flask(__name__)
    app.config["SQLALCHEMY_BINDS"] = {"other": "sqlite://"}
    db = SQLAlchemy(app)
    HxActions(app)
    with app.app_context():
        assert reads_after_commit(app) is _AS_BEFORE
        db.session.remove()
