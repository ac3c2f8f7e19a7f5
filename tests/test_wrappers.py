"""flask_hx_actions.wrappers: Flask's request class, its blueprint names computed once per rule."""

from __future__ import annotations

from typing import Any
from unittest import mock

import flask
import pytest
from flask import Blueprint, Flask, request
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder

from flask_hx_actions import HxActions
from flask_hx_actions.wrappers import Request


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    outer = Blueprint("outer", __name__, url_prefix="/outer")
    inner = Blueprint("inner", __name__, url_prefix="/inner")

    @inner.get("/here")
    def here() -> str:
        return ",".join(request.blueprints)

    outer.register_blueprint(inner)
    app.register_blueprint(outer)

    @app.get("/top")
    def top() -> str:
        return ",".join(request.blueprints) or "-"

    return app


def test_installed_in_place_of_flasks_default_only() -> None:
    app = make_app()
    HxActions(app)
    assert app.request_class is Request

    class Own(flask.Request):
        pass

    custom = make_app()
    custom.request_class = Own
    HxActions(custom)
    assert custom.request_class is Own
    off = make_app(HX_ACTIONS_FAST_REQUEST=False)
    HxActions(off)
    assert off.request_class is flask.Request


@pytest.mark.parametrize(
    ("path", "expected"), [("/outer/inner/here", "outer.inner,outer"), ("/top", "-")]
)
def test_the_same_blueprints_as_flask(path: str, expected: str) -> None:
    ours, theirs = make_app(), make_app()
    HxActions(ours)
    assert ours.test_client().get(path).text == expected
    assert theirs.test_client().get(path).text == expected


def test_computed_once_per_rule() -> None:
    req = Request(EnvironBuilder(path="/outer/inner/here").get_environ())
    assert req.blueprints == []  # not routed yet: no rule, nothing kept
    spy = mock.Mock(wraps=flask.Request.blueprints.fget)
    with mock.patch.object(flask.Request, "blueprints", property(spy)):
        assert req.blueprints == []
        assert spy.call_count == 1
        req.url_rule = Rule("/outer/inner/here", endpoint="outer.inner.here")
        assert req.blueprints == ["outer.inner", "outer"]
        assert req.blueprints == ["outer.inner", "outer"]
        assert spy.call_count == 2
        # A rule set again (a test, an app's own routing) is read afresh.
        req.url_rule = Rule("/x", endpoint="other.view")
        assert req.blueprints == ["other"]
        assert spy.call_count == 3
