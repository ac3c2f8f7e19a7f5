"""The benchmark workload hand-wired with Flask + htmx, like ``baseline_app.py``, but with the
protections the library applies, written by hand as a careful developer would (no library
import): Flask-WTF's ``CSRFProtect`` with a ``csrf_token`` input in every row form, an origin
check (``Sec-Fetch-Site`` / ``Origin``) before it, and the row id signed into the form, bound to
the browser session and checked by ``POST /todos/toggle``.

It exists to tell what the protections cost by hand from what the library adds: baseline ÷ this
is the price of the checks themselves, library ÷ this is the library's own overhead. Same data
store (``data.py``) and the same markup shape as the baseline.

Run: ``gunicorn --chdir bench/apps checked_app:app``.
"""

from __future__ import annotations

import os
import secrets

import data
from data import TODOS, WIDGETS, done_count
from flask import abort, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect
from itsdangerous import BadData, URLSafeTimedSerializer
from over_baseline import app_over_baseline

# Only the row differs from the baseline (its form carries the CSRF token and the signed id).
app = app_over_baseline(__name__, "checked")
# Fixed, so every gunicorn worker signs and verifies session cookies, CSRF tokens and bound ids
# with the same key.
app.secret_key = os.environ.get("BENCH_SECRET_KEY", "bench-only-secret-key")
CSRFProtect(app)

BOUND_MAX_AGE = 86400  # seconds a signed row id stays valid


def check_origin() -> None:
    """Refuse POSTs a browser marks as coming from another site."""
    if request.method != "POST":
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        abort(403)
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        abort(403)


# First of all before_request functions: a cross-site POST is refused before the CSRF check.
app.before_request_funcs.setdefault(None, []).insert(0, check_origin)


def bound_serializer() -> URLSafeTimedSerializer:
    """This request's signer of row ids, salted with a random id kept in the session: a signed
    id is only good for the browser session it was rendered for."""
    serializer = g.get("bound_serializer")
    if serializer is None:
        sid = session.get("bound_sid")
        if sid is None:
            sid = session["bound_sid"] = secrets.token_urlsafe(16)
        serializer = g.bound_serializer = URLSafeTimedSerializer(
            app.secret_key, salt="toggle|" + sid
        )
    return serializer


@app.template_global()
def bound_id(id: int) -> str:
    return bound_serializer().dumps(id)


@app.get("/")
def index() -> str:
    return render_template(
        "index.html", todos=TODOS.values(), done=done_count(), total=len(TODOS), widgets=WIDGETS
    )


@app.post("/todos/toggle")
def toggle():
    try:
        id = bound_serializer().loads(request.form["bound"], max_age=BOUND_MAX_AGE)
    except (KeyError, BadData):
        abort(400)
    todo = data.toggle(id)
    if todo is None:
        abort(404)
    if request.headers.get("HX-Request") == "true":
        return render_template("_toggled.html", t=todo, done=done_count(), total=len(TODOS))
    return redirect(url_for("index"), 303)
