"""The benchmark workload written with flask-hx-actions, the way the README teaches it.

``HxActions(app)`` with Flask-WTF's ``CSRFProtect`` on; one ``ActionsBlueprint`` holding the
``toggle`` action (signed bound id, tags ``todo:<id>`` and ``stats``, own fragment ``todo``) and
the fragments ``todos`` (the list section), ``todo`` (one row, ``<li id="todo-<id>">``, given its
todo by the list as the README teaches, so a page loads each todo once), ``stats``
(``<p id="stats">``) and ``widgets`` (``<section id="widgets">``). The page ``GET /`` is built from
``fragment(...)`` calls. Data lives in memory, one copy per worker (``data.py``).

Run: ``gunicorn --chdir bench/apps library_app:app`` (``WIDGETS=200`` for a ten times heavier page).

``BENCH_CACHE=1`` turns the fragment cache on: rows ``cache="user"`` (they hold an action_form),
widgets ``cache="global"``. With several workers, set ``HX_ACTIONS_REDIS_URL`` so the tag versions
and the cache are shared, and ``BENCH_SHARED_DATA`` (see ``data.py``) so the data is too.
``HX_ACTIONS_REDIS_URL`` alone (no SQLAlchemy here) also turns on idempotency keys, kept in Redis.

``BENCH_DATABASE_URL`` keeps the todos in a database (``data.py``) and, with Flask-SQLAlchemy set
up, turns on idempotency keys in the SQL store, claimed in the toggle's own transaction.
"""

from __future__ import annotations

import os
from typing import Any

import data
from data import TODOS, WIDGETS, done_count
from flask import Flask, abort, render_template
from flask_wtf.csrf import CSRFProtect

from flask_hx_actions import ActionsBlueprint, HxActions, not_found, ok

app = Flask(__name__, template_folder="templates/library")
# Fixed, so every gunicorn worker signs and verifies session cookies, CSRF tokens and bound ids
# with the same key.
app.secret_key = os.environ.get("BENCH_SECRET_KEY", "bench-only-secret-key")
# The README's way to share tag versions and cached fragments between workers; with no
# SQLAlchemy, the "auto" idempotency store then keeps the keys in Redis too.
# HX_ACTIONS_IDEMPOTENCY_STORE=none keeps keys off (the cache variant measures the cache alone).
for _name in ("HX_ACTIONS_REDIS_URL", "HX_ACTIONS_IDEMPOTENCY_STORE"):
    if os.environ.get(_name):
        app.config[_name] = os.environ[_name]
CACHE = os.environ.get("BENCH_CACHE", "") not in ("", "0")
ROW_CACHE = "user" if CACHE else None
WIDGETS_CACHE = "global" if CACHE else None
# With BENCH_DATABASE_URL, the todos live in that database through Flask-SQLAlchemy; the "auto"
# idempotency store is then the SQL store (the README's setup): the key is claimed in the
# toggle's own transaction. HX_ACTIONS_IDEMPOTENCY_STORE=none turns keys off, to measure them.
data.init_app(app)
CSRFProtect(app)
HxActions(app)

bp = ActionsBlueprint("todos", __name__, url_prefix="/todos")


@bp.action("toggle", tags=lambda id: [f"todo:{id}", "stats"], fragment="todo")
def toggle(id: int):  # id comes from the signed bound argument rendered by action_form
    if data.toggle(id) is None:
        return not_found()
    return ok()


@bp.fragment("todos", template="_todos.html", tags=["todos"], element="section")
def todos() -> dict[str, Any]:
    return {"todos": data.all_todos()}


@bp.fragment(
    "todo", template="_todo.html", tags=lambda id: [f"todo:{id}"], element="li", cache=ROW_CACHE
)
def todo(id: int, *, t: Any = None) -> dict[str, Any]:
    # t: the todo, given by the list that loaded it (absent after an action: loaded here).
    found = t if t is not None else data.get(id)
    if found is None:
        abort(404)
    return {"t": found}


@bp.fragment("stats", template="_stats.html", tags=["stats"], element="p")
def stats() -> dict[str, Any]:
    return {"done": done_count(), "total": len(TODOS)}


@bp.fragment(
    "widgets", template="_widgets.html", tags=["widgets"], element="section", cache=WIDGETS_CACHE
)
def widgets() -> dict[str, Any]:
    return {"widgets": WIDGETS}


app.register_blueprint(bp)
if data.SHARED:
    app.before_request(data.refresh)


@app.get("/")
def index() -> str:
    return render_template("index.html")
