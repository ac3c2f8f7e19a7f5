"""Per-action rate limits (Flask-Limiter): 429 with Retry-After, the message per kind of caller."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, get_flashed_messages, render_template_string, session
from marshmallow import Schema, fields

from flask_hx_actions import ActionsBlueprint, HxActions, ok
from flask_hx_actions.testing import ActionClient


class RenameSchema(Schema):
    title = fields.String(required=True)
    password = fields.String(load_default="")


def make_app(**config: Any) -> tuple[Flask, list[str]]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, **config)
    app.test_client_class = ActionClient
    HxActions(app, identity=lambda: session.get("user"))
    calls: list[str] = []
    bp = ActionsBlueprint("notes", __name__, url_prefix="/notes")

    @bp.action("ping", limit="3/minute")
    def ping() -> Any:
        calls.append("ping")
        return ok()

    @bp.action("by_ip", limit="2/minute", limit_key="ip")
    def by_ip() -> Any:
        calls.append("by_ip")
        return ok()

    @bp.action("free")
    def free() -> Any:
        calls.append("free")
        return ok()

    @bp.action("rename", schema=RenameSchema, limit="1/minute", idempotent=False)
    def rename(id: int, title: str, password: str) -> Any:
        calls.append(f"rename {id} {title}")
        return ok()

    app.register_blueprint(bp)

    @app.get("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        return "ok"

    @app.get("/flashes")
    def flashes() -> str:
        return "|".join(get_flashed_messages())

    @app.get("/page")
    def page() -> str:
        return render_template_string(
            "{% for id in (1, 2) %}{% call action_form('notes.rename', bind={'id': id}) %}"
            "{{ field('title') }}{{ field('password', type='password') }}{% endcall %}"
            "{% endfor %}"
        )

    return app, calls


def test_htmx_caller_past_the_limit_gets_429_with_retry_after_and_the_message():
    app, calls = make_app()
    client = app.test_client()
    for _ in range(3):
        assert client.submit("notes.ping", htmx=True).status_code == 200
    response = client.submit("notes.ping", htmx=True)
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["HX-Reswap"] == "none"
    assert "Too many attempts" in response.text
    assert 'id="hx-notes-ping-errors"' in response.text
    assert calls == ["ping"] * 3


def test_json_caller_past_the_limit_gets_a_429_object():
    app, calls = make_app()
    client = app.test_client()
    for _ in range(3):
        client.submit("notes.ping", json=True)
    response = client.submit("notes.ping", json=True)
    assert response.status_code == 429
    assert response.json["code"] == "rate_limited"
    assert response.json["ok"] is False
    assert "Retry-After" in response.headers
    assert len(calls) == 3


def test_plain_form_past_the_limit_goes_back_with_a_flashed_message():
    app, calls = make_app()
    client = app.test_client()
    for _ in range(3):
        client.submit("notes.ping", referrer="http://localhost/page")
    response = client.submit("notes.ping", referrer="http://localhost/page")
    assert response.status_code == 303
    assert response.headers["Location"] == "/page"
    assert "Retry-After" in response.headers
    assert "Too many attempts" in client.get("/flashes").text
    assert len(calls) == 3


def test_plain_form_past_the_limit_shows_what_was_typed_again():
    """As after a failed validation: the refused form (and only it) has the typed values back,
    without the password; the action did not run."""
    app, calls = make_app()
    client = app.test_client()
    sent = {"title": "first", "password": "hunter2"}
    assert client.submit("notes.rename", sent, bind={"id": 2}, referrer="http://localhost/page")
    assert calls == ["rename 2 first"]
    typed = {"title": "typed <again>", "password": "hunter2"}
    response = client.submit(
        "notes.rename", typed, bind={"id": 2}, referrer="http://localhost/page"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/page"
    assert calls == ["rename 2 first"]
    page = client.get("/page").text
    first, second = page.split("</form>")[:2]
    assert 'value="typed &lt;again&gt;"' in second
    assert "typed" not in first  # the other row's form of the same action
    assert "hunter2" not in page
    assert "Too many attempts" in client.get("/flashes").text
    assert "typed" not in client.get("/page").text  # shown once, as after validation


def test_plain_form_past_the_limit_with_a_bad_bound_token_keeps_nothing():
    app, calls = make_app()
    client = app.test_client()
    client.submit("notes.rename", {"title": "a"}, bind={"id": 1})
    fields = {**client.hidden_fields("notes.rename", {"id": 1}), "title": "typed"}
    fields["_hx_bound"] = fields["_hx_bound"][:-2] + "xx"
    response = client.post(
        "/notes/rename",
        data=fields,
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303  # still the limit's answer: it is checked first
    assert "typed" not in client.get("/page").text
    assert calls == ["rename 1 a"]


def test_limit_counts_each_signed_in_user_apart():
    app, _calls = make_app()
    alice, bob = app.test_client(), app.test_client()
    alice.get("/login/alice")
    bob.get("/login/bob")
    for _ in range(3):
        alice.submit("notes.ping", json=True)
    assert alice.submit("notes.ping", json=True).status_code == 429
    assert bob.submit("notes.ping", json=True).status_code == 200


def test_ip_keyed_limit_counts_every_session_of_one_address_together():
    app, _calls = make_app()
    first, second = app.test_client(), app.test_client()
    first.get("/login/alice")
    second.get("/login/bob")
    assert first.submit("notes.by_ip", json=True).status_code == 200
    assert second.submit("notes.by_ip", json=True).status_code == 200
    assert first.submit("notes.by_ip", json=True).status_code == 429


def test_actions_without_a_limit_are_not_limited():
    app, _calls = make_app()
    client = app.test_client()
    for _ in range(10):
        assert client.submit("notes.free", json=True).status_code == 200


def test_rate_limit_runs_after_the_origin_gate():
    app, calls = make_app()
    client = app.test_client()
    for _ in range(3):
        client.submit("notes.ping", json=True)
    refused = client.submit("notes.ping", json=True, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert len(calls) == 3


def test_the_apps_own_limiter_is_used():
    from flask_limiter import Limiter

    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True)
    limiter = Limiter(lambda: "everyone", app=app, storage_uri="memory://")
    HxActions(app)
    bp = ActionsBlueprint("notes", __name__, url_prefix="/notes")

    @bp.action("ping", limit="1/minute")
    def ping() -> Any:
        return ok()

    app.register_blueprint(bp)
    app.test_client_class = ActionClient
    client = app.test_client()
    assert client.submit("notes.ping", json=True).status_code == 200
    assert client.submit("notes.ping", json=True).status_code == 429
    assert app.extensions["limiter"] == {limiter}


def test_redis_storage_shares_counts_between_apps(redis_url):
    first, _ = make_app(HX_ACTIONS_RATELIMIT_STORAGE_URI=redis_url)
    second, _ = make_app(HX_ACTIONS_RATELIMIT_STORAGE_URI=redis_url)
    a, b = first.test_client(), second.test_client()
    # Both apps see the same client address; count by address across the two "workers".
    assert a.submit("notes.by_ip", json=True).status_code == 200
    assert b.submit("notes.by_ip", json=True).status_code == 200
    assert a.submit("notes.by_ip", json=True).status_code == 429


def test_unknown_limit_key_is_an_error_at_registration():
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test")
    HxActions(app)
    bp = ActionsBlueprint("notes", __name__, url_prefix="/notes")

    @bp.action("ping", limit="1/minute", limit_key="nobody")  # type: ignore[arg-type]
    def ping() -> Any:
        return ok()

    with pytest.raises(ValueError, match="limit_key"):
        app.register_blueprint(bp)
