"""The baseline with exactly-once toggles written by hand: what an idempotency key claimed in the
toggle's own transaction costs whoever writes it, with no library.

Issue 4 (item 9) asks the library's toggles to keep their speed targets with idempotency keys on,
as the README teaches them: a key claimed in the SQL store, in the action's own transaction.
The baseline (``baseline_app``) claims nothing, so library+pg ÷ baseline+pg holds the key's own
database statement on top of the library's overhead. This app is that baseline plus keys and
nothing else, so ``bench/run`` and ``bench/interleaved.py`` can tell the two apart:
baseline+pg+keys ÷ baseline+pg is what the guarantee costs on this server whoever writes it, and
library+pg ÷ baseline+pg+keys is what the library adds to a hand-wired app with the same guarantee.

Written as a Flask developer would write it by hand, in the baseline's idiom (``request.form``,
``db.session``, ``sa.text``):

- every row's form carries a fresh key (``secrets.token_urlsafe(16)``, 22 characters);
- the toggle claims ``(scope, key)`` with ``INSERT ... ON CONFLICT DO NOTHING`` in the session's
  transaction, with a fingerprint of what the key was used for (the action and the row), before
  it flips the row; the row's flip and the key commit together (a 404 rolls both back);
- a key already claimed: the same row answers as a replay of the first submit's answer
  (``Idempotent-Replayed: true``; the stored status says which: a no-JS toggle's 303, or none for
  htmx, whose row and count are re-rendered from the committed state, as the library replays an
  htmx success), another row gets 422. On PostgreSQL a concurrent
  duplicate's ``INSERT`` waits for the first transaction, then finds the key taken;
- a request without a key toggles unclaimed, as the library does.

Keys are scoped by action only: the baseline has no users or sessions. Expired keys are left to a
purge job (none runs in the bench, which never reuses a key). The table is
``hand_keys``, beside the library's own in ``bench/interleaved.py``, where both apps share a
schema; ``bench/run`` counts its rows as it counts the library's keys.

Needs the todos in a database: ``BENCH_DATABASE_URL`` (see ``data.py``).
Run: ``BENCH_DATABASE_URL=... gunicorn --chdir bench/apps keyed_app:app``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import data
import sqlalchemy as sa
from data import TODOS, WIDGETS, done_count
from flask import Response, abort, redirect, render_template, request, url_for
from over_baseline import app_over_baseline

if not data.DATABASE_URL:
    raise RuntimeError("keyed_app keeps its keys beside the todos: set BENCH_DATABASE_URL")

# Only the row differs from the baseline: its form carries a key.
app = app_over_baseline(__name__, "keyed")
data.init_app(app)

SCOPE = "toggle"
TTL = timedelta(days=1)
KEYS = "hand_keys"  # bench/run counts its rows (HAND_KEYS_TABLE)
CREATE = sa.text(
    f"CREATE TABLE IF NOT EXISTS {KEYS} (scope VARCHAR(255) NOT NULL, key VARCHAR(128) NOT NULL, "
    "fingerprint VARCHAR(64) NOT NULL, status INTEGER, created_at TIMESTAMP NOT NULL, "
    "expires_at TIMESTAMP NOT NULL, PRIMARY KEY (scope, key))"
)
CLAIM = sa.text(
    f"INSERT INTO {KEYS} (scope, key, fingerprint, status, created_at, expires_at) "  # noqa: S608
    "VALUES (:scope, :key, :fingerprint, :status, :now, :expires) ON CONFLICT DO NOTHING"
)
FIND = sa.text(f"SELECT fingerprint, status FROM {KEYS} WHERE scope = :scope AND key = :key")  # noqa: S608


def create_table() -> None:
    """Create the keys' table when missing (both gunicorn workers may race to it)."""
    with app.app_context():
        engine = data.session().get_bind()
        try:
            with engine.begin() as conn:
                conn.execute(CREATE)
        except sa.exc.SQLAlchemyError:
            if not sa.inspect(engine).has_table(KEYS):
                raise


create_table()


@app.template_global()
def fresh_key() -> str:
    return secrets.token_urlsafe(16)


@app.get("/")
def index() -> str:
    return render_template(
        "index.html", todos=data.all_todos(), done=done_count(), total=len(TODOS), widgets=WIDGETS
    )


@app.post("/todos/<int:id>/toggle")
def toggle(id: int) -> Response:
    htmx = request.headers.get("HX-Request") == "true"
    key = request.form.get("_hx_key", "")
    if key:
        replay = claim(key, id, htmx)
        if replay is not None:
            return replay
    todo = data.toggle(id)
    if todo is None:
        data.session().rollback()  # the key is free again
        abort(404)
    data.commit()
    return answer(todo, htmx)


def claim(key: str, id: int, htmx: bool) -> Response | None:
    """Claim ``key`` in the session's transaction: None when it is new, else the replay."""
    if len(key) > 128:
        abort(400)
    fingerprint = hashlib.sha256(f"toggle {id}".encode()).hexdigest()
    now = datetime.now(UTC).replace(tzinfo=None)
    session = data.session()
    values = {
        "scope": SCOPE,
        "key": key,
        "fingerprint": fingerprint,
        "status": None if htmx else 303,  # htmx: re-rendered on a replay
        "now": now,
        "expires": now + TTL,
    }
    if session.execute(CLAIM, values).rowcount == 1:
        return None
    session.rollback()
    found = session.execute(FIND, {"scope": SCOPE, "key": key}).one()
    if found.fingerprint != fingerprint:
        abort(422)
    # The stored answer: the 303 of a no-JS submit, else (None) the htmx re-render.
    replay = answer(data.get(id), htmx=found.status is None)
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def answer(todo: object, htmx: bool) -> Response:
    if htmx:
        return Response(
            render_template("_toggled.html", t=todo, done=done_count(), total=len(TODOS))
        )
    return redirect(url_for("index"), 303)
