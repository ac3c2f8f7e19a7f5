"""Typed results: ok / fail / redirect_to / not_found, and what an action may return."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_hx_actions import ActionsBlueprint, HxActions, fail, not_found, ok, redirect_to
from flask_hx_actions.testing import ActionClient


def test_ok_without_data_is_a_success_with_no_code():
    result = ok()
    assert (result.ok, result.code, result.message) == (True, None, None)
    assert dict(result.errors) == {}
    assert dict(result.data) == {}


def test_ok_keeps_json_data():
    result = ok(id=7, tags=["a", "b"], nested={"x": None})
    assert result.ok is True
    assert dict(result.data) == {"id": 7, "tags": ["a", "b"], "nested": {"x": None}}


def test_fail_carries_code_message_errors_and_status():
    result = fail("DUPLICATE", "Already exists", errors={"title": ["taken"], "_form": "bad"})
    assert result.ok is False
    assert result.code == "DUPLICATE"
    assert result.message == "Already exists"
    assert {k: list(v) for k, v in result.errors.items()} == {
        "title": ["taken"],
        "_form": ["bad"],
    }
    assert result.status == 422


def test_fail_accepts_another_error_status():
    assert fail("CONFLICT", status=409).status == 409


def test_fail_needs_a_code():
    with pytest.raises(TypeError):
        fail("")


def test_redirect_to_a_path_is_ok_with_its_target():
    result = redirect_to("/items/?page=2")
    assert result.ok is True
    assert result.redirect == "/items/?page=2"


def test_redirect_to_an_endpoint_resolves_with_url_for():
    app = Flask(__name__)

    @app.get("/things/<int:id>")
    def thing(id: int) -> str:
        return ""

    result = redirect_to("thing", id=3)
    assert result.ok is True
    with app.test_request_context():
        assert result.redirect == "/things/3"


def test_not_found_is_a_404_failure():
    result = not_found()
    assert result.ok is False
    assert result.code == "not_found"
    assert result.status == 404


@pytest.mark.parametrize(
    "result", [ok(), ok(id=1), fail("X", "m", {"a": ["b"]}), redirect_to("/x"), not_found()]
)
def test_results_are_frozen(result):
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ok = not result.ok
    with pytest.raises(TypeError):
        result.errors["new"] = ["x"]
    with pytest.raises(TypeError):
        result.data["new"] = 1


@pytest.mark.parametrize(
    "value",
    [datetime.date(2024, 1, 1), object(), {1, 2}, b"bytes", float("nan")],
    ids=["date", "object", "set", "bytes", "nan"],
)
def test_ok_with_non_json_data_is_a_type_error(value):
    with pytest.raises(TypeError, match="JSON"):
        ok(value=value)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "https://evil.example",
        "http://evil.example/x",
        "/\\evil.example",
        "/\\/evil.example",
        "\\\\evil",
        "javascript:alert(1)",
        "%2F%2Fevil.example",
        "/ok\r\nSet-Cookie: x=1",
        "/\t/evil.example",
        "",
    ],
)
def test_redirect_to_refuses_unsafe_targets(target):
    with pytest.raises((ValueError, TypeError)):
        redirect_to(target)


# -- what an action returns ----------------------------------------------------------------------


def _app_with(fn: Any, tmp_path: Path) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", TESTING=True)
    app.test_client_class = ActionClient
    HxActions(app)
    bp = ActionsBlueprint("r", __name__, url_prefix="/r")
    bp.action("act")(fn)
    app.register_blueprint(bp)
    return app


def test_returning_none_is_ok(tmp_path):
    def act() -> None:
        return None

    app = _app_with(act, tmp_path)
    action = app.extensions["hx_actions"].actions["r.act"]
    result = action.invoke({})
    assert result.ok is True
    assert result.code is None


@pytest.mark.parametrize("junk", ["done", 1, {"ok": True}, ["x"], True])
def test_returning_anything_else_is_a_type_error(tmp_path, junk):
    def act() -> Any:
        return junk

    app = _app_with(act, tmp_path)
    action = app.extensions["hx_actions"].actions["r.act"]
    with pytest.raises(TypeError, match=r"r\.act"):
        action.invoke({})


def test_returning_junk_over_http_is_an_error_not_a_success(tmp_path):
    def act() -> Any:
        return "done"

    app = _app_with(act, tmp_path)
    client = app.test_client()
    with pytest.raises(TypeError):
        client.submit("r.act", {})
