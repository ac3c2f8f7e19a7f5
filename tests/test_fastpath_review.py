"""Security review of the hot path's memos and shortcuts: each must answer as the slow path
would, and no per-user or per-render value may reach another user or another render."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, session
from jinja2 import DictLoader

from flask_hx_actions import ActionsBlueprint, HxActions
from flask_hx_actions.testing import ActionClient

KEY = re.compile(r'name="_hx_key" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BOUND = re.compile(r'name="_hx_bound" value="([^"]+)"')

TEMPLATES = {
    "row.html": "{{ title }}{{ action_form('t.toggle', bind={'id': id}, label='Toggle') }}",
    "board.html": "<h1>board</h1>{{ fragment('row', id=1) }}",
}


def make_app(outer_cache: str | None, **config: Any) -> Flask:
    """A user-cached fragment holding a form (``row``) inside another cached one (``board``)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="review", TESTING=True, ROW_RENDERS=0, **config)
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader(TEMPLATES)
    HxActions(app, identity=lambda: session.get("user"))
    bp = ActionsBlueprint("t", __name__, url_prefix="/t")

    @bp.action("toggle", tags=lambda id: [f"row:{id}"])
    def toggle(id: int) -> None:
        pass

    @bp.fragment("row", template="row.html", tags=lambda id: [f"row:{id}"], cache="user")
    def row(id: int) -> dict[str, Any]:
        app.config["ROW_RENDERS"] += 1
        return {"id": id, "title": f"row {id}"}

    @bp.fragment("board", template="board.html", tags=["board"], cache=outer_cache)  # type: ignore[arg-type]
    def board() -> dict[str, Any]:
        return {}

    app.register_blueprint(bp)
    _add_login(app)
    return app


def _add_login(app: Flask) -> None:
    """``GET /login/<user>`` signs ``user`` in (the session's ``user``)."""

    @app.get("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        return "ok"


def test_global_fragment_around_a_cached_form_fragment_is_refused_even_on_a_cache_hit() -> None:
    """The inner fragment served from the cache held alice's CSRF token, idempotency key and
    bound token; a global fragment around it would have cached them for every user."""
    app = make_app("global")
    alice, bob = app.test_client(), app.test_client()
    alice.get("/login/alice")
    bob.get("/login/bob")
    assert alice.get("/_hx/fragments/row?id=1").status_code == 200  # now in the cache
    with pytest.raises(TypeError, match="cache='user'"):
        alice.get("/_hx/fragments/board")
    with pytest.raises(TypeError, match="cache='user'"):
        bob.get("/_hx/fragments/board")


def test_user_fragment_around_a_cached_form_fragment_gets_fresh_keys_each_time() -> None:
    app = make_app("user")
    client = app.test_client()
    client.get("/login/alice")
    client.get("/_hx/fragments/row?id=1")  # the inner fragment is cached first
    first = client.get("/_hx/fragments/board").text
    second = client.get("/_hx/fragments/board").text  # the outer one from the cache
    assert KEY.search(first).group(1) != KEY.search(second).group(1)
    assert "ETag" not in client.get("/_hx/fragments/board").headers


def test_form_fragment_served_from_another_workers_cache_gets_no_etag(redis_url: str) -> None:
    """A worker that never rendered the fragment itself serves it from Redis: its idempotency
    key must still be fresh on every request, so no ETag and no 304."""
    first = make_app(None, HX_ACTIONS_REDIS_URL=redis_url)
    second = make_app(None, HX_ACTIONS_REDIS_URL=redis_url)
    a = first.test_client()
    a.get("/login/alice")
    rendered = a.get("/_hx/fragments/row?id=1")
    assert "ETag" not in rendered.headers
    rendered.close()  # the server has sent it: the entry is written to Redis now
    b = second.test_client()
    b.set_cookie("session", a.get_cookie("session").value)
    served = b.get("/_hx/fragments/row?id=1")
    assert KEY.search(served.text)
    assert second.config["ROW_RENDERS"] == 0  # served from Redis, not rendered here
    assert "ETag" not in served.headers
    again = b.get("/_hx/fragments/row?id=1", headers={"If-None-Match": "*"})
    assert again.status_code == 200


# -- signing memos: what a remembered token gives back is what decoding it gives -----------------


def test_session_with_non_string_keys_reads_back_as_flasks_does() -> None:
    """JSON turns a session key ``1`` into ``"1"``: a cookie this worker signed and reads back
    from its memo must give the same dict as decoding the cookie."""
    from flask.sessions import SecureCookieSessionInterface

    answers = []
    for fast in (True, False):
        app = Flask(__name__)
        app.config.update(SECRET_KEY="review", HX_ACTIONS_FAST_SESSION=fast)
        HxActions(app)
        assert (type(app.session_interface) is SecureCookieSessionInterface) is not fast

        @app.get("/set")
        def set_() -> str:
            session[1] = "one"  # type: ignore[index]
            return "ok"

        @app.get("/get")
        def get() -> str:
            return repr(sorted((repr(k), v) for k, v in session.items()))

        client = app.test_client()
        client.get("/set")
        answers.append(client.get("/get").text)
    assert answers[0] == answers[1] == repr([("'1'", "one")])


def test_bound_negative_zero_is_not_served_the_token_of_zero() -> None:
    """``0.0 == -0.0`` (and their hashes are equal): the reuse memo must not take one for the
    other, since their tokens carry different JSON."""
    import math

    from flask_hx_actions import security

    app = make_app(None)
    with app.test_request_context("/"):
        binding = security.session_binding(None)
        zero = security.sign_bound(app, "t.toggle", {"id": 0.0}, binding)
        minus = security.sign_bound(app, "t.toggle", {"id": -0.0}, binding)
        value = security.verify_bound(app, "t.toggle", minus, binding, 60)["id"]
        assert zero != minus
        assert math.copysign(1.0, value) == -1.0


# -- a global fragment holds nothing that belongs to one user ----------------------------------

SCOPED = {
    "hello.html": "hello {{ user }}",
    "page.html": "<h1>page</h1>{{ fragment(inner) }}",
}


def scoped_app(**inner: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="review", TESTING=True)
    app.jinja_loader = DictLoader(SCOPED)
    HxActions(app, identity=lambda: session.get("user"))
    bp = ActionsBlueprint("s", __name__, url_prefix="/s")

    @bp.fragment("hello", template="hello.html", tags=["hello"], **inner)
    def hello() -> dict[str, Any]:
        return {"user": session.get("user")}

    @bp.fragment("page", template="page.html", tags=["page"], cache="global")
    def page() -> dict[str, Any]:
        return {"inner": "hello"}

    app.register_blueprint(bp)
    _add_login(app)
    return app


@pytest.mark.parametrize(
    "inner",
    [
        {"cache": "user"},
        {"login_required": True},
        {"authorize": lambda: session.get("user") == "alice"},
    ],
    ids=["cache-user", "login-required", "authorize"],
)
def test_a_global_fragment_around_a_per_user_fragment_is_refused(inner: dict[str, Any]) -> None:
    app = scoped_app(**inner)
    alice, bob = app.test_client(), app.test_client()
    alice.get("/login/alice")
    bob.get("/login/bob")
    if "cache" in inner:
        assert "hello alice" in alice.get("/_hx/fragments/hello").text  # cached for alice
    with pytest.raises(TypeError, match="cache='global'"):
        alice.get("/_hx/fragments/page")
    with pytest.raises(TypeError, match="cache='global'"):
        bob.get("/_hx/fragments/page")


def test_form_memos_stay_bounded_whatever_the_script_root() -> None:
    """The script root comes from the environ (a proxy's ``X-Forwarded-Prefix`` through
    ``ProxyFix``, gunicorn's ``SCRIPT_NAME``): one memo entry per value must not grow without
    bound."""
    from flask import render_template_string

    from flask_hx_actions import forms

    app = make_app(None)
    state = app.extensions["hx_actions"]
    for i in range(forms._PLANS_MAX + 100):
        with app.test_request_context("/", base_url=f"http://localhost/p{i}/"):
            html = render_template_string("{{ action_form('t.toggle', bind={'id': 1}) }}")
            assert f'action="/p{i}/t/toggle"' in html
    assert len(state.form_plans) <= forms._PLANS_MAX
    assert len(state.url_cache) <= forms._PLANS_MAX


def test_request_contexts_in_one_app_context_each_get_their_own_script_root() -> None:
    """Request contexts pushed in one app context share ``g``: a form plan remembered for the
    request (its URL holds the script root) is kept per request context, not in ``g``."""
    from flask import render_template_string

    app = make_app(None)
    form = "{{ action_form('t.toggle', bind={'id': 1}) }}"
    with app.app_context(), app.test_request_context("/", base_url="http://localhost/a/"):
        outer = render_template_string(form)
        with app.test_request_context("/", base_url="http://localhost/b/"):
            inner = render_template_string(form)
        again = render_template_string(form)
    assert 'action="/a/t/toggle"' in outer and 'action="/a/t/toggle"' in again
    assert 'action="/b/t/toggle"' in inner
