"""Signing in and out: a plain session login, written as two actions.

The signed-in user's id lives in the (signed cookie) session. ``current_user_id`` is also the
identity loader given to ``HxActions``, so bound arguments and idempotency keys are scoped to the
user.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, redirect, render_template, session, url_for
from marshmallow import Schema, fields, validate
from werkzeug.security import check_password_hash, generate_password_hash

from flask_hx_actions import ActionsBlueprint, fail, redirect_to

from .models import DEMO_USERS, User, db

auth = ActionsBlueprint("auth", __name__, url_prefix="/auth")


def current_user() -> User | None:
    """The signed-in user (loaded once per request), or ``None``."""
    if "demo_user" not in g:
        user_id = session.get("user_id")
        g.demo_user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    return g.demo_user  # type: ignore[no-any-return]


def current_user_id() -> int | None:
    """The identity loader: the signed-in user's id, or ``None`` when anonymous."""
    user = current_user()
    return None if user is None else user.id


def login_required_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """For GET pages: anonymous visitors go to the sign-in page (actions use login_required=)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("auth.sign_in_page"))
        return view(*args, **kwargs)

    return wrapper


class SignInSchema(Schema):
    username = fields.String(
        required=True, validate=validate.Length(min=1, max=80), metadata={"label": "User name"}
    )
    # sensitive: never carried back to the page after a failed submit.
    password = fields.String(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"label": "Password", "sensitive": True},
    )


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not a password of anyone")


@auth.get("/sign-in")
def sign_in_page() -> Any:
    if current_user() is not None:
        return redirect(url_for("todos.index"))
    return render_template("auth/sign_in.html", demo_users=DEMO_USERS)


@auth.action("sign_in", schema=SignInSchema, limit="10/minute", limit_key="ip")
def sign_in(username: str, password: str) -> Any:
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None:
        check_password_hash(_dummy_hash(), password)  # take as long as for a wrong password
        return fail("bad_credentials", "Wrong user name or password.")
    if not user.check_password(password):
        return fail("bad_credentials", "Wrong user name or password.")
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    session["user_id"] = user.id
    return redirect_to("todos.index")


@auth.action("sign_out")
def sign_out() -> Any:
    session.clear()
    return redirect_to("auth.sign_in_page")
