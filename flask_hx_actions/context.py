"""The library's per-request values, kept in ``flask.g``, and the current app.

They are read through :func:`flags`, the dict behind ``g``: a name missing from ``g`` costs an
exception raised and caught, and every ``g`` access goes through a context-local proxy, and
these values are read several times per rendered row. :func:`current_app_object` is
``current_app`` without its proxy, for the same reason, and :func:`current_request` is
``request`` without its proxy; :func:`form_value` reads one form field without the exception
Werkzeug raises and catches for an absent one. :func:`forget_identity` drops the
identity loaded for this request when it may have changed.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, current_app, g, has_app_context, request
from flask.globals import _cv_app, _cv_request


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


def current_request() -> Request:
    """The current request without its proxy (the usual error outside a request context)."""
    request_ctx = _cv_request.get(None)
    if request_ctx is None:
        return request._get_current_object()  # type: ignore[attr-defined,no-any-return]
    return request_ctx.request


def request_values() -> dict[str, Any] | None:
    """The library's values kept on Flask's request context instead of in ``g``: those that hold
    ``g`` or the request themselves, such as the template context (``g``, ``request``). Kept in
    ``g`` they form a reference cycle that only the garbage collector frees, which keeps the
    request, its form and its streams alive after the request ended. ``None`` outside a request
    context."""
    request_ctx = _cv_request.get(None)
    if request_ctx is None:
        return None
    values: dict[str, Any] = request_ctx.__dict__.setdefault("_hx_values", {})
    return values


def form_value(form: Any, name: str) -> str | None:
    """``form.get(name)`` of a Werkzeug ``MultiDict`` (which keeps a list per name), without the
    exception ``MultiDict.get`` raises and catches when the field is absent."""
    values = dict.get(form, name)
    return values[0] if values else None


#: The name in ``g`` of this app's origin, as the origin gate computed it for this request.
OWN_ORIGIN = "_hx_own_origin"
#: The name in ``g`` of the identity ``HxState.identity`` loaded.
IDENTITY = "_hx_identity"
#: The name of the context fragments render with (``fragments._base_context``), in
#: :func:`request_values` (in ``g`` outside a request): it holds what context processors gave,
#: such as ``g``, ``request`` and Flask-Login's ``current_user``.
TEMPLATE_CONTEXT = "_hx_template_context"
#: The name in ``g`` of what forms sign bound arguments with in this request (the session id and
#: a serializer per action, ``security.RequestSigning``): bound to the session and the identity.
BOUND_SERIALIZERS = "_hx_bound_serializers"


def forget_identity(*_args: Any, **_kwargs: Any) -> None:
    """Load the signed-in user again on next use, in this request.

    The identity scopes what is rendered after it changes: bound arguments and idempotency keys
    of the forms, and the cache entries of ``cache="user"`` fragments. The template context of
    fragments is computed again too (context processors such as Flask-Login's ``current_user``),
    and so are the serializers forms sign bound arguments with.
    The pipeline calls it after every action body (a sign-in or sign-out action re-rendering
    forms or a per-user fragment in its answer); with Flask-Login, ``login_user`` and
    ``logout_user`` call it through their signals. A custom identity loader whose answer can
    change in a plain view before it renders forms calls ``HxActions.identity_changed()``. A
    no-op outside an app context; signal receivers get the sender and keyword arguments,
    ignored here.
    """
    if has_app_context():
        values = flags()
        values.pop(IDENTITY, None)
        values.pop(TEMPLATE_CONTEXT, None)
        values.pop(BOUND_SERIALIZERS, None)
        in_request = request_values()
        if in_request is not None:
            in_request.pop(TEMPLATE_CONTEXT, None)
