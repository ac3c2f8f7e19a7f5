"""flask_hx_actions.headers: add_vary writes what ``response.vary.add`` writes; the headers
``pipeline.finish_response`` gives every answer to an action are the same whether it appends
them in one step or merges them one by one."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, Response, session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from flask_hx_actions import ActionsBlueprint, HxActions, ok, pipeline
from flask_hx_actions.context import flags
from flask_hx_actions.headers import add_vary, append_built, put_headers, request_header
from flask_hx_actions.sessions import will_vary_on_cookie
from flask_hx_actions.testing import ActionClient

_ITEM = st.one_of(
    st.sampled_from(["Cookie", "cookie", "HX-Request", "Accept-Encoding", "*", ""]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(
    current=st.one_of(st.none(), st.lists(_ITEM, max_size=4).map(", ".join), _ITEM),
    name=st.sampled_from(["Cookie", "HX-Request", "Accept"]),
)
def test_add_vary_is_werkzeugs_vary_add(current: str | None, name: str) -> None:
    ours, theirs = Response("x"), Response("x")
    if current is not None:
        ours.headers["Vary"] = theirs.headers["Vary"] = current
    add_vary(ours, name)
    theirs.vary.add(name)
    assert ours.headers.getlist("Vary") == theirs.headers.getlist("Vary")


@settings(max_examples=300, deadline=None)
@given(
    current=st.one_of(st.none(), st.lists(_ITEM, max_size=4).map(", ".join), _ITEM),
    names=st.lists(st.sampled_from(["Cookie", "cookie", "HX-Request", "Accept"]), max_size=3),
    again=st.booleans(),
)
def test_add_vary_of_several_names_is_werkzeugs_vary_add_of_each(
    current: str | None, names: list[str], again: bool
) -> None:
    """``again``: the same call a second time (the merged value then comes from the memo)."""
    for _ in range(2 if again else 1):
        ours, theirs = Response("x"), Response("x")
        if current is not None:
            ours.headers["Vary"] = theirs.headers["Vary"] = current
        add_vary(ours, *names)
        for name in names:
            theirs.vary.add(name)
        assert ours.headers.getlist("Vary") == theirs.headers.getlist("Vary")


def test_add_vary_examples() -> None:
    response = Response("x")
    add_vary(response, "HX-Request")
    add_vary(response, "Cookie")
    add_vary(response, "cookie")
    assert response.headers["Vary"] == "HX-Request, Cookie"
    both = Response("x")
    add_vary(both, "HX-Request", "Cookie")
    add_vary(both, "Cookie")
    assert both.headers.getlist("Vary") == ["HX-Request, Cookie"]


_NAMES = st.sampled_from(["Cache-Control", "cache-control", "X-Request-ID", "HX-Actions", "Vary"])


@settings(max_examples=300, deadline=None)
@given(
    existing=st.lists(st.tuples(_NAMES, st.sampled_from(["a", "b", "no-cache"])), max_size=5),
    values=st.dictionaries(_NAMES, st.sampled_from(["no-store", "1", "abc"]), max_size=3),
)
def test_put_headers_is_setting_each_header(
    existing: list[tuple[str, str]], values: dict[str, str]
) -> None:
    ours, theirs = Response("x"), Response("x")
    for key, value in existing:
        ours.headers.add(key, value)
        theirs.headers.add(key, value)
    put_headers(ours.headers, values)
    for key, value in values.items():
        theirs.headers[key] = value
    assert list(ours.headers) == list(theirs.headers)


def test_request_header_is_environ_headers_get() -> None:
    from werkzeug.datastructures import EnvironHeaders

    environ = {"HTTP_HX_REQUEST": "true", "CONTENT_TYPE": "text/plain", "HTTP_X_CSRFTOKEN": "t"}
    for name in ("HX-Request", "hx-request", "Content-Type", "X-CSRFToken", "X-CSRF-Token", "A"):
        assert request_header(environ, name) == EnvironHeaders(environ).get(name)


def test_append_built_is_adding_each_header() -> None:
    items = [("Vary", "HX-Request, Cookie"), ("Cache-Control", "no-store"), ("X-Request-ID", "a1")]
    ours, theirs = (
        Headers([("Content-Type", "text/html")]),
        Headers([("Content-Type", "text/html")]),
    )
    append_built(ours, items)
    for name, value in items:
        theirs.add(name, value)
    assert list(ours) == list(theirs)

    class Other(Headers):  # not Werkzeug's own class: its add() is what it means
        def add(self, key: str, value: Any, /, **kwargs: Any) -> None:
            super().add(key.upper(), value)

    other = Other()
    append_built(other, items[:1])
    assert list(other) == [("VARY", "HX-Request, Cookie")]


def _action_app() -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="headers", TESTING=True)
    app.test_client_class = ActionClient
    HxActions(app)
    bp = ActionsBlueprint("t", __name__, url_prefix="/t")
    bp.action("ping")(lambda: ok())
    app.register_blueprint(bp)
    return app


_APP = _action_app()
_EXISTING = st.lists(
    st.tuples(
        st.sampled_from(
            ["Vary", "vary", "Cache-Control", "X-Request-ID", "HX-Actions", "HX-Redirect", "X-A"]
        ),
        st.sampled_from(["a", "Accept", "no-cache", "a, b", '"q"']),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    existing=_EXISTING,
    htmx=st.booleans(),
    status=st.sampled_from([200, 204, 303, 400, 409, 422]),
    session_read=st.booleans(),
    renew=st.booleans(),
)
def test_finish_response_is_add_vary_then_put_headers(
    existing: list[tuple[str, str]], htmx: bool, status: int, session_read: bool, renew: bool
) -> None:
    """Whatever headers an answer has already: the one-step append (for answers with none of the
    four) and the merge give what ``add_vary`` then ``put_headers`` give, the way they were
    written before the one-step path."""
    headers = {"HX-Request": "true"} if htmx else {}
    with _APP.test_request_context("/t/ping", method="POST", headers=headers):
        values_of_g = flags()
        values_of_g["_hx_action"] = _APP.extensions["hx_actions"].actions["t.ping"]
        if renew:
            values_of_g[pipeline._RENEW_KEY] = True
        if session_read:
            session["x"] = 1
            session.modified = False  # read and not empty: the save only adds Vary: Cookie
        ours, theirs = Response("x", status=status), Response("x", status=status)
        for name, value in existing:
            ours.headers.add(name, value)
            theirs.headers.add(name, value)
        pipeline.finish_response(ours)

        add_vary(
            theirs, *(("HX-Request", "Cookie") if will_vary_on_cookie(_APP) else ("HX-Request",))
        )
        present = {key.lower() for key, _ in theirs.headers}
        values = {"Cache-Control": "no-store", "X-Request-ID": pipeline.request_id()}
        if htmx:
            renews = renew or (200 <= status < 300 and "hx-redirect" not in present)
            sent = ours.headers["HX-Actions"]
            assert sent.startswith("1; key=") if renews else sent == "1"
            values["HX-Actions"] = sent
        put_headers(theirs.headers, values, present)
        assert list(ours.headers) == list(theirs.headers)


@pytest.mark.parametrize("htmx", [True, False])
def test_an_answer_of_the_library_gets_the_four_headers_appended(htmx: bool) -> None:
    client = _APP.test_client()
    answer = client.submit("t.ping", htmx=htmx)
    assert answer.status_code == (200 if htmx else 303)
    names = [name for name, _ in answer.headers]
    assert names.count("Vary") == 1 and names.count("Cache-Control") == 1
    assert answer.headers["Vary"] == "HX-Request, Cookie"
    assert answer.headers["Cache-Control"] == "no-store"
    assert len(answer.headers["X-Request-ID"]) == 16
    assert answer.headers.get("HX-Actions", "").startswith("1; key=") is htmx
