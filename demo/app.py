"""The demo app factory. ``flask --app demo.app run`` finds :func:`create_app` by itself.

Configuration: ``DEMO_DATABASE_URL`` (a SQLAlchemy URL; default SQLite in ``demo/instance/``) and
``DEMO_SECRET_KEY`` (default: a development-only key), or a ``config`` mapping for tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, redirect, url_for
from flask_wtf.csrf import CSRFProtect

from flask_hx_actions import HxActions

from .auth import auth, current_user, current_user_id
from .models import db, seed
from .todos import todos

HERE = Path(__file__).resolve().parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(HERE / "instance"))
    default_db = f"sqlite:///{Path(app.instance_path) / 'demo.sqlite'}"
    app.config.update(
        SECRET_KEY=os.environ.get("DEMO_SECRET_KEY", "dev-only-demo-secret-change-me"),
        SQLALCHEMY_DATABASE_URI=os.environ.get("DEMO_DATABASE_URL") or default_db,
    )
    app.config.update(config or {})
    if app.config["SQLALCHEMY_DATABASE_URI"] == default_db:
        Path(app.instance_path).mkdir(exist_ok=True)

    db.init_app(app)
    CSRFProtect(app)
    HxActions(app, identity=current_user_id)
    app.register_blueprint(auth)
    app.register_blueprint(todos)

    @app.get("/")
    def index() -> Any:
        if current_user() is None:
            return redirect(url_for("auth.sign_in_page"))
        return redirect(url_for("todos.index"))

    @app.context_processor
    def inject_user() -> dict[str, Any]:
        return {"user": current_user()}

    with app.app_context():
        db.create_all()
        seed()
    return app
