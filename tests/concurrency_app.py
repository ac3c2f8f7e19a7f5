"""A small app for the concurrency tests and the soak, served by gunicorn:

    HX_TEST_DATABASE_URL=postgresql+psycopg://... \\
        gunicorn -w 2 --preload --chdir tests -b 127.0.0.1:PORT 'concurrency_app:create_app()'

Settings from the environment:

- ``HX_TEST_DATABASE_URL``: the SQLAlchemy URL (PostgreSQL in the tests; one schema per run);
- ``HX_TEST_STORE``: ``sql`` (default: the SQL store, claimed in the action's transaction) or a
  ``redis://`` URL (the Redis store; the SQL store is off, the writes still go to PostgreSQL);
- ``HX_TEST_SECRET``: the secret key (all workers share it, so one session works on both).

Routes: ``GET /login?user=<name>`` signs a user in and answers ``{"csrf_token": ...}`` (the token
of that session); ``GET /orders/<id>/bind`` answers the signed bound argument of ``shop.bump``
for order ``id`` in this session.

Actions (blueprint ``shop``, ``POST /shop/<name>``), every one records each run of its body in
the ``event`` table under the ``op`` the client chose, so a test can count runs per submission:

- ``place(op, title)``: a new order; fragment ``order-count``;
- ``bump(id, op)``: bound ``id``; adds one to the order's ``bumps``;
- ``reject(op)``: writes, then ``fail(...)`` (rolled back: no event survives);
- ``slow(op, ms)``: like ``place``, sleeping ``ms`` milliseconds inside the transaction.
"""

from __future__ import annotations

import os
import time
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request, session
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import generate_csrf
from jinja2 import DictLoader
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_hx_actions import ActionsBlueprint, HxActions, fail, ok, security


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Order(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    owner: Mapped[str | None] = mapped_column(sa.String(50))
    bumps: Mapped[int] = mapped_column(default=0)


class Event(db.Model):  # type: ignore[name-defined,misc]
    """One row per run of an action body (no unique constraint: duplicates must show)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    op: Mapped[str] = mapped_column(sa.String(100), index=True)
    action: Mapped[str] = mapped_column(sa.String(20))
    order_id: Mapped[int | None]
    worker: Mapped[int]


class PlaceSchema(Schema):
    op = fields.String(required=True, validate=validate.Length(min=1, max=100))
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))


class OpSchema(Schema):
    op = fields.String(required=True, validate=validate.Length(min=1, max=100))


class SlowSchema(OpSchema):
    ms = fields.Integer(load_default=0, validate=validate.Range(min=0, max=5000))


def _event(op: str, action: str, order_id: int | None = None) -> None:
    db.session.add(Event(op=op, action=action, order_id=order_id, worker=os.getpid()))


def create_app() -> Flask:
    app = Flask(__name__)
    store = os.environ.get("HX_TEST_STORE", "sql")
    app.config.update(
        SECRET_KEY=os.environ.get("HX_TEST_SECRET", "concurrency-secret"),
        SQLALCHEMY_DATABASE_URI=os.environ["HX_TEST_DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        HX_ACTIONS_IDEMPOTENCY_STORE="sqlalchemy" if store == "sql" else store,
    )
    if store != "sql":
        app.config["HX_ACTIONS_REDIS_URL"] = store
    app.jinja_loader = DictLoader({"count.html": "{{ count }} orders"})
    db.init_app(app)
    HxActions(app, identity=lambda: session.get("user"))
    bp = ActionsBlueprint("shop", __name__, url_prefix="/shop")

    @bp.action("place", schema=PlaceSchema, tags=["orders"], fragment="order-count")
    def place(op: str, title: str) -> Any:
        order = Order(title=title, owner=session.get("user"))
        db.session.add(order)
        db.session.flush()
        _event(op, "place", order.id)
        return ok(id=order.id)

    @bp.action("bump", schema=OpSchema, tags=lambda id: [f"order:{id}"])
    def bump(id: int, op: str) -> Any:
        order = db.session.get(Order, id, with_for_update=True)
        if order is None:
            return fail("missing", "No such order.", status=404)
        order.bumps += 1
        _event(op, "bump", id)
        return ok(bumps=order.bumps)

    @bp.action("reject", schema=OpSchema)
    def reject(op: str) -> Any:
        _event(op, "reject")
        return fail("nope", "Refused on purpose.")

    @bp.action("slow", schema=SlowSchema, tags=["orders"])
    def slow(op: str, ms: int) -> Any:
        order = Order(title=op, owner=session.get("user"))
        db.session.add(order)
        db.session.flush()
        _event(op, "slow", order.id)
        time.sleep(ms / 1000)
        return ok(id=order.id)

    @bp.fragment("order-count", template="count.html", tags=["orders"])
    def order_count() -> dict[str, Any]:
        return {"count": db.session.scalar(sa.select(sa.func.count(Order.id)))}

    app.register_blueprint(bp)

    @app.get("/login")
    def login() -> Any:
        session["user"] = request.args.get("user", "anonymous")
        return jsonify(csrf_token=generate_csrf())

    @app.get("/orders/<int:id>/bind")
    def bind(id: int) -> Any:
        state = app.extensions["hx_actions"]
        binding = security.session_binding(state.identity())
        return jsonify(
            _hx_bound=security.sign_bound(app, "shop.bump", {"id": id}, binding),
            csrf_token=generate_csrf(),
        )

    @app.get("/health")
    def health() -> Any:
        return jsonify(pid=os.getpid())

    with app.app_context():
        db.create_all()
        db.engine.dispose()  # with --preload: no connection crosses the fork
        # Each worker's connections carry its pid (the soak finds a worker mid-transaction in
        # pg_stat_activity); the event runs in the worker, when it connects.
        sa.event.listen(db.engine, "do_connect", _name_connection)
    return app


def _name_connection(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
    if dialect.name == "postgresql":
        cparams["application_name"] = f"hx-worker-{os.getpid()}"
