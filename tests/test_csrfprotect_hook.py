"""Flask-WTF's CSRFProtect hook is skipped for action requests the gate passed, and only for them.

The gate checks an action's CSRF token itself and exempts the action's view from CSRFProtect, so
the library puts a wrapper in place of CSRFProtect's ``before_request`` hook that returns at once
for such a request (``pipeline._skip_csrfprotect_hook_for_actions``). Every other request, a
plain POST view above all, must still be checked by CSRFProtect, whatever the order in which the
extensions were set up, and even when several requests share one app context (``g``).
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from flask import Flask
from flask_wtf.csrf import CSRFProtect

from flask_hx_actions import ActionsBlueprint, HxActions, ok
from flask_hx_actions.testing import ActionClient

SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


def make_app(order: str, instances: int = 1) -> tuple[Flask, list[str]]:
    app = Flask(__name__)
    app.secret_key = "test-secret"
    app.test_client_class = ActionClient
    calls: list[str] = []
    if order == "csrf-first":
        for _ in range(instances):
            CSRFProtect(app)
        HxActions(app)
    else:
        HxActions(app)
        for _ in range(instances):
            CSRFProtect(app)
    add_action(app, "t", "ping", calls)

    @app.post("/plain")
    def plain() -> str:
        calls.append("plain")
        return "done"

    return app, calls


def add_action(app: Flask, blueprint: str, name: str, calls: list[str]) -> None:
    """A blueprint ``blueprint`` with one action ``name`` that records its runs in ``calls``."""
    bp = ActionsBlueprint(blueprint, __name__, url_prefix=f"/{blueprint}")

    def body() -> Any:
        calls.append(name)
        return ok()

    bp.action(name, idempotent=False)(body)
    app.register_blueprint(bp)


def csrfprotect_hooks(app: Flask) -> list[Any]:
    return [
        hook
        for hook in app.before_request_funcs[None]
        if getattr(getattr(hook, "__wrapped__", hook), "__qualname__", "").startswith(
            "CSRFProtect."
        )
    ]


@pytest.mark.parametrize("order", ["csrf-first", "hx-first"])
def test_action_requests_skip_the_hook_and_plain_posts_keep_it(order: str) -> None:
    app, calls = make_app(order)
    client = app.test_client()
    csrf = app.extensions["csrf"]
    with mock.patch.object(csrf, "protect", wraps=csrf.protect) as protect:
        answer = client.submit("t.ping", {})
        assert answer.status_code == 303
        assert calls == ["ping"]
        assert protect.call_count == 0  # the wrapper returned before CSRFProtect's own hook

        refused = client.post("/plain", data={"x": "1"}, headers=SAME_ORIGIN)
        assert refused.status_code == 400  # CSRFProtect's CSRFError: the token is missing
        assert calls == ["ping"]
        assert protect.call_count == 1

        token = client.hidden_fields("t.ping")["csrf_token"]
        passed = client.post("/plain", data={"csrf_token": token}, headers=SAME_ORIGIN)
        assert passed.status_code == 200
        assert calls == ["ping", "plain"]
    (hook,) = csrfprotect_hooks(app)
    assert getattr(hook, "_hx_skips_actions", False)


def test_a_refused_action_request_runs_nothing_with_the_hook_replaced() -> None:
    app, calls = make_app("csrf-first")
    client = app.test_client()
    assert client.submit("t.ping", {}).status_code == 303  # the hook is replaced from here
    refused = client.post("/t/ping", data={}, headers=SAME_ORIGIN)
    assert refused.status_code == 400
    assert calls == ["ping"]


def test_a_shared_app_context_does_not_carry_the_skip_to_the_next_request() -> None:
    """Requests inside one pushed app context share ``g``: the gate's mark lives on the request
    context, so a plain POST after an action request is still checked."""
    app, calls = make_app("csrf-first")
    client = app.test_client()
    with app.app_context():
        assert client.submit("t.ping", {}).status_code == 303
        refused = client.post("/plain", data={"x": "1"}, headers=SAME_ORIGIN)
    assert refused.status_code == 400
    assert calls == ["ping"]


def test_two_csrfprotect_hooks_are_left_alone() -> None:
    app, calls = make_app("csrf-first", instances=2)
    client = app.test_client()
    assert client.submit("t.ping", {}).status_code == 303
    hooks = csrfprotect_hooks(app)
    assert len(hooks) == 2
    assert not any(getattr(hook, "_hx_skips_actions", False) for hook in hooks)
    assert client.post("/plain", data={"x": "1"}, headers=SAME_ORIGIN).status_code == 400
    assert calls == ["ping"]


def test_the_hook_is_replaced_once_for_many_actions() -> None:
    app, calls = make_app("hx-first")
    add_action(app, "u", "pong", calls)
    client = app.test_client()
    assert client.submit("t.ping", {}).status_code == 303
    assert client.submit("u.pong", {}).status_code == 303
    (hook,) = csrfprotect_hooks(app)
    assert getattr(hook, "_hx_skips_actions", False)
    assert not getattr(hook.__wrapped__, "_hx_skips_actions", False)
    assert calls == ["ping", "pong"]
