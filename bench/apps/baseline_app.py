"""The benchmark workload hand-wired with Flask + htmx: plain routes, Jinja templates, the
out-of-band stats written by hand, no CSRF, no library. Same data store as the library app
(``data.py``, in memory, one copy per worker) and the same markup shape.

Run: ``gunicorn --chdir bench/apps baseline_app:app`` (``BENCH_DATABASE_URL`` for the todos in a
database; see ``data.py``).
"""

from __future__ import annotations

from pathlib import Path

import data
from data import TODOS, WIDGETS, done_count
from flask import Flask, abort, redirect, render_template, request, url_for

# htmx itself is served from the repository's vendored copy (a plain static file).
STATIC = Path(__file__).resolve().parents[2] / "static"

app = Flask(__name__, template_folder="templates/baseline", static_folder=str(STATIC))
data.init_app(app)  # with BENCH_DATABASE_URL: the todos in that database (see data.py)


@app.get("/")
def index() -> str:
    return render_template(
        "index.html", todos=data.all_todos(), done=done_count(), total=len(TODOS), widgets=WIDGETS
    )


@app.post("/todos/<int:id>/toggle")
def toggle(id: int):
    todo = data.toggle(id)
    if todo is None:
        abort(404)
    data.commit()
    if request.headers.get("HX-Request") == "true":
        return render_template("_toggled.html", t=todo, done=done_count(), total=len(TODOS))
    return redirect(url_for("index"), 303)
