"""The library's per-request values, kept in ``flask.g``, and the current app.

They are read through :func:`flags`, the dict behind ``g``: a name missing from ``g`` costs an
exception raised and caught, and every ``g`` access goes through a context-local proxy, and
these values are read several times per rendered row. :func:`current_app_object` is
``current_app`` without its proxy, for the same reason.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from flask.globals import _cv_app


def flags() -> dict[str, Any]:
    """This app context's ``g`` as its dict (the usual error outside an app context)."""
    app_ctx = _cv_app.get(None)
    if app_ctx is None:
        return g._get_current_object().__dict__  # type: ignore[no-any-return]
    return app_ctx.g.__dict__


def current_app_object() -> Flask:
    """The current app (the usual error outside an app context)."""
    app_ctx = _cv_app.get(None)
    if app_ctx is None:
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    return app_ctx.app
