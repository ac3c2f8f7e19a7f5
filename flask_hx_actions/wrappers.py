"""Flask's request class with its blueprint names kept once computed.

Flask reads ``request.blueprints`` four times in an action request that renders fragments
(``preprocess_request``, ``process_response`` and twice in ``update_template_context``), and the
property computes the list again each time from the URL rule's endpoint. Every action lives on a
blueprint, where that is a string split and a cache lookup, not the short cut of an endpoint
without a blueprint. :class:`Request` keeps the list with the rule it was computed from and
computes it again when the rule changes (before routing, or a rule set by hand). The values are
Flask's own.

``HxActions`` installs it only where the app still has Flask's own request class
(``HX_ACTIONS_FAST_REQUEST``, on by default); an app with its own request class keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import flask

if TYPE_CHECKING:
    from flask import Flask

_BLUEPRINTS = "_hx_blueprints"


class Request(flask.Request):
    """``flask.Request`` whose ``blueprints`` is computed once per URL rule."""

    @property
    def blueprints(self) -> list[str]:
        rule = self.url_rule
        known = self.__dict__.get(_BLUEPRINTS)
        if known is not None and known[0] is rule:
            return known[1]  # type: ignore[no-any-return]
        names = flask.Request.blueprints.fget(self)  # type: ignore[attr-defined]
        if rule is not None:
            self.__dict__[_BLUEPRINTS] = (rule, names)
        return names  # type: ignore[no-any-return]


def install(app: Flask) -> None:
    """Put :class:`Request` in place of Flask's own request class, and only of that."""
    if app.config.get("HX_ACTIONS_FAST_REQUEST", True) and app.request_class is flask.Request:
        app.request_class = Request
