"""Per-action rate limits, enforced by Flask-Limiter.

``@bp.action("add", limit="5/minute")`` puts a Flask-Limiter route limit on the action's view.
The app's own ``Limiter`` is used when it has one (``app.extensions["limiter"]``); otherwise the
library creates one with ``HX_ACTIONS_RATELIMIT_STORAGE_URI`` (``memory://`` by default,
``redis://...`` so several workers share the counts). The check runs in Flask-Limiter's
``before_request`` hook, after the library's gate (size, origin, CSRF) and before any user code.

A breach answers in the caller's kind: 429 with ``Retry-After`` and the message in the form's
error summary for htmx, 429 JSON for scripts, and for a plain form a flashed message and a 303
back to the page (browsers show no useful page for a bare 429), where the form shows again what
the user typed, as after a failed validation (:func:`keep_typed_input`). The request passed the
gate (origin and CSRF token) before the limit was checked, so what it carried is the user's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from flask import Flask, Response, current_app, flash, request

from . import oldinput, responses
from .context import form_value
from .errors import BoundArgumentsInvalid
from .htmx import request_kind
from .pipeline import read_bound

if TYPE_CHECKING:
    from flask_limiter import Limiter, RequestLimit

    from .actions import Action

LimitKey = Literal["user", "ip"] | Callable[[], str]

MESSAGE = "Too many attempts. Please wait a moment and try again."
FLASH_CATEGORY = "error"


def _remote_address() -> str:
    return request.remote_addr or "127.0.0.1"


def _user_or_ip() -> str:
    identity = current_app.extensions["hx_actions"].identity()
    return f"user:{identity}" if identity is not None else f"ip:{_remote_address()}"


def key_func(key: LimitKey) -> Callable[[], str]:
    """``"user"`` (the signed-in user, else the client address), ``"ip"``, or your function."""
    if callable(key):
        return key
    if key == "user":
        return _user_or_ip
    if key == "ip":
        return lambda: f"ip:{_remote_address()}"
    raise ValueError(f"limit_key must be 'user', 'ip' or a function, not {key!r}.")


def limiter_for(app: Flask) -> Limiter:
    """The app's Flask-Limiter ``Limiter``; one is created when the app has none."""
    try:
        from flask_limiter import Limiter
    except ImportError:  # pragma: no cover - flask-limiter is an optional dependency
        raise RuntimeError(
            "Actions with limit= need Flask-Limiter: pip install 'flask-hx-actions[limits]'."
        ) from None
    existing = app.extensions.get("limiter")
    if existing:
        return next(iter(existing))  # type: ignore[no-any-return]
    return Limiter(
        _user_or_ip,
        app=app,
        storage_uri=app.config["HX_ACTIONS_RATELIMIT_STORAGE_URI"],
    )


def apply_limit(app: Flask, action: Action, endpoint: str) -> None:
    """Put ``action.limit`` on the action's view: Flask-Limiter's wrapper checks it when the view
    is called, after the library's gate and before the action's own steps."""
    if not action.limit:
        return
    limiter = limiter_for(app)
    view: Callable[..., Any] = app.view_functions[endpoint]
    app.view_functions[endpoint] = limiter.limit(
        action.limit,
        key_func=key_func(action.limit_key),
        on_breach=on_breach,
        scope=action.endpoint,
    )(view)


def on_breach(limit: RequestLimit) -> Response:
    window = int(limit.limit.get_expiry())
    retry_after = min(window, max(1, math.ceil(limit.reset_at - time.time())))
    kind = request_kind(request)
    if kind == "plain":
        flash(MESSAGE, FLASH_CATEGORY)
        keep_typed_input(current_app._get_current_object())  # type: ignore[attr-defined]
        response = responses.see_other(responses.back_target(current_app))
    elif kind == "json":
        response = responses.json_message(429, "rate_limited", MESSAGE)
    else:
        response = responses.htmx_message(429, MESSAGE)
    response.headers["Retry-After"] = str(retry_after)
    return response


def keep_typed_input(app: Flask) -> None:
    """Stash the refused plain form's values for the page it goes back to, as a failed
    validation does (the fields its schema names, minus passwords and files; no field errors:
    the flashed message says why). Nothing is kept when the action has no schema or its bound
    arguments do not verify: the stash is keyed by them, and a form that cannot be named is
    not filled."""
    state = app.extensions["hx_actions"]
    action = state.actions.get(request.endpoint or "")
    validator = None if action is None else action.validator
    if action is None or validator is None or not validator.input_names:
        return
    try:
        bound = read_bound(app, action, state.identity())
    except BoundArgumentsInvalid:
        return
    form = request.form
    oldinput.stash(
        app,
        oldinput.form_key(action.endpoint, bound, form_value(form, oldinput.FORM_ID_FIELD)),
        form,
        validator.input_names,
        validator.sensitive,
        {},
        None,
    )
