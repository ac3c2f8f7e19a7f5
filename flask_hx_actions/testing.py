"""A test client that submits to actions like a browser does, with and without htmx.

>>> app.test_client_class = ActionClient  # doctest: +SKIP
>>> client = app.test_client()  # doctest: +SKIP
>>> client.submit("todos.add", {"title": "Milk"}, htmx=True).status_code  # doctest: +SKIP
200

It fills the hidden inputs ``action_form`` would render (CSRF token, idempotency key, signed bound
arguments) in the client's own session, and sends the headers a same-origin browser sends
(``Origin``, ``Sec-Fetch-Site``, and the htmx headers when ``htmx=True``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask.ctx import RequestContext
from flask.testing import EnvironBuilder, FlaskClient
from flask_wtf.csrf import generate_csrf
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from . import security
from .forms import action_url, form_dom_id


class ActionClient(FlaskClient):
    """``FlaskClient`` plus :meth:`submit` and :meth:`hidden_fields`."""

    def hidden_fields(self, endpoint: str, bind: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The hidden inputs ``action_form(endpoint, bind=...)`` renders, in this session."""
        app: Flask = self.application
        state = app.extensions["hx_actions"]
        action = state.actions[endpoint]
        fields: dict[str, str] = {"_hx_key": secrets.token_urlsafe(16)}
        with self.session_transaction() as sess:
            environ = EnvironBuilder(app).get_environ()
            ctx = RequestContext(app, environ, session=sess)
            ctx.push()
            try:
                fields.update(_render_hidden(app, state, action, bind))
            finally:
                ctx.pop()
        return fields

    def submit(
        self,
        endpoint: str,
        data: Mapping[str, Any] | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        htmx: bool = False,
        json: bool = False,
        headers: Mapping[str, str] | None = None,
        referrer: str | None = None,
        regions: str | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        """POST ``data`` to the action ``endpoint`` as a same-origin browser form would.

        :param bind: bound arguments, signed for this client's session.
        :param htmx: send ``HX-Request`` (and ``HX-Trigger`` with the form's id).
        :param json: ask for JSON (``Accept: application/json``).
        :param regions: the ``_hx_regions`` field hx-actions.js would add (the page's regions).
        :param headers: more request headers. With an ``Idempotency-Key`` header the form
            carries no ``_hx_key`` of its own (as a script sends it), unless ``data`` has one.
        """
        app: Flask = self.application
        state = app.extensions["hx_actions"]
        action = state.actions[endpoint]
        form = MultiDict(self.hidden_fields(endpoint, bind))
        if any(name.lower() == "idempotency-key" for name in headers or {}):
            del form["_hx_key"]
        # ``data`` replaces the hidden fields it names; a MultiDict or a list value sends a
        # name several times (a multiple select, checkboxes of one name).
        items = list(
            data.items(multi=True) if isinstance(data, MultiDict) else (data or {}).items()
        )
        for name in {name for name, _ in items}:
            form.poplist(name)
        for name, value in items:
            for one in value if isinstance(value, list) else (value,):
                form.add(name, one)
        if htmx and regions is not None:
            form["_hx_regions"] = regions
        with app.test_request_context():
            url = action_url(state, endpoint)
            origin = f"{request.scheme}://{request.host}"
        sent = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        if referrer is not None:
            sent["Referer"] = referrer
        if htmx:
            sent["HX-Request"] = "true"
            sent["HX-Trigger"] = form_dom_id(endpoint, bind, action.bound_params)
        if json:
            sent["Accept"] = "application/json"
        sent.update(headers or {})
        return self.post(url, data=form, headers=sent, **kwargs)


def _render_hidden(
    app: Flask, state: Any, action: Any, bind: Mapping[str, Any] | None
) -> dict[str, str]:
    fields: dict[str, str] = {}
    if app.config.get("WTF_CSRF_ENABLED", True):
        fields[app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")] = generate_csrf()
    if bind:
        binding = security.session_binding(state.identity())
        fields["_hx_bound"] = security.sign_bound(app, action.endpoint, bind, binding)
    return fields


__all__ = ["ActionClient"]
