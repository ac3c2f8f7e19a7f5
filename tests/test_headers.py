"""flask_hx_actions.headers: add_vary writes what ``response.vary.add`` writes."""

from __future__ import annotations

from flask import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_hx_actions.headers import add_vary, put_headers, request_header

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
