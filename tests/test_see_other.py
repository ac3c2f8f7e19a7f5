"""responses.Answer: the headers it sends are the ones Werkzeug's own ``get_wsgi_headers`` and
``get_wsgi_response`` send, without the copy of the headers when nothing in them changes, and
without ``iri_to_uri`` for a ``Location`` that function gives back unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import werkzeug.wrappers.response as werkzeug_response
from flask import Response
from hypothesis import example, given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from werkzeug.test import EnvironBuilder
from werkzeug.urls import iri_to_uri

from flask_hx_actions.responses import _URI_AS_IS, Answer, see_other

ENVIRON = EnvironBuilder(path="/todos/toggle", method="POST").get_environ()
AS_IS = st.from_regex(_URI_AS_IS, fullmatch=True)
LOCATIONS = st.one_of(
    AS_IS,
    st.text(max_size=30)
    .filter(lambda text: "\r" not in text and "\n" not in text)  # refused by Headers itself
    .map(lambda text: "/" + text),
    st.sampled_from(
        [
            "/",
            "/a?",
            "/a#b",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/caf\u00e9",
            "/a b",
            "/%zz",
            "/?q=1",
            "relative",
            "",
        ]
    ),
)


@settings(max_examples=500, deadline=None)
@given(AS_IS)
@example("/")
@example("/todos/?page=2&sort=-title")
@example("/a%20b")
def test_as_is_locations_are_unchanged_by_iri_to_uri(location: str) -> None:
    assert iri_to_uri(location) == location


def sent(response: Response) -> list[tuple[str, str]]:
    """The headers Werkzeug's two methods send: both must agree."""
    headers = response.get_wsgi_headers(ENVIRON).to_wsgi_list()
    app_iter, status, listed = response.get_wsgi_response(ENVIRON)
    app_iter.close()  # type: ignore[attr-defined]
    assert listed == headers and status == response.status
    return headers


def body_of(response: Response, method: str = "POST") -> bytes:
    environ = dict(ENVIRON, REQUEST_METHOD=method)
    app_iter = response.get_wsgi_response(environ)[0]
    try:
        return b"".join(app_iter)
    finally:
        app_iter.close()  # type: ignore[attr-defined]


def pair(
    location: str,
    status: int,
    extra: list[tuple[str, str]],
    body: str | None,
    name: str = "Location",
) -> tuple[Response, Response]:
    """The same answer as an Answer and as Flask's own Response."""
    made = []
    for cls in (Answer, Response):
        response = cls(body, status=status, mimetype="text/html")
        for name, value in extra:
            response.headers.add(name, value)
        response.headers.add(name, location)
        made.append(response)
    return made[0], made[1]


@settings(max_examples=500, deadline=None)
@given(
    location=LOCATIONS,
    status=st.sampled_from([303, 302, 301, 307, 200, 204, 304, 101]),
    extra=st.lists(
        st.tuples(
            st.sampled_from(["Vary", "location", "Location", "Content-Location", "X-Request-ID"]),
            st.sampled_from(["/x", "Cookie", "/caf\u00e9", "abc"]),
        ),
        max_size=3,
    ),
    body=st.sampled_from([None, "", "moved"]),
    name=st.sampled_from(["Location", "location"]),
)
def test_sends_what_werkzeug_sends(
    location: str, status: int, extra: list[tuple[str, str]], body: str | None, name: str
) -> None:
    ours, theirs = pair(location, status, extra, body, name)
    try:
        expected: Any = sent(theirs)
    except Exception as error:  # what Werkzeug refuses, Answer refuses the same way
        with pytest.raises(type(error)):
            sent(ours)
        return
    assert sent(ours) == expected
    for method in ("POST", "HEAD"):
        assert body_of(ours, method) == body_of(theirs, method)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 422, 500, 204, 304, 101]),
    extra=st.lists(
        st.tuples(
            st.sampled_from(
                ["Vary", "Cache-Control", "X-Request-ID", "HX-Actions", "content-length"]
            ),
            st.sampled_from(["HX-Request, Cookie", "no-store", "1; key=abc", "7"]),
        ),
        max_size=4,
    ),
    body=st.sampled_from([None, "", '<li id="todo-7">x</li>', b"bytes"]),
    stream=st.booleans(),
)
def test_answers_without_location_send_what_werkzeug_sends(
    status: int, extra: list[tuple[str, str]], body: str | bytes | None, stream: bool
) -> None:
    """Fragment and error answers (no Location), buffered or streamed, with and without a
    Content-Length: the same headers, status and body as Flask's own Response."""
    made = []
    for cls in (Answer, Response):
        content: Any = iter([body or b""]) if stream else body
        response = cls(content, status=status, mimetype="text/html")
        for name, value in extra:
            response.headers.add(name, value)
        made.append(response)
    ours, theirs = made
    assert sent(ours) == sent(theirs)
    assert body_of(ours) == body_of(theirs)


def test_a_fragment_answer_is_sent_without_copying_its_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of get_wsgi_response: no Headers copy for an answer sent as it is."""
    answer = Answer("<p>x</p>", mimetype="text/html")
    answer.headers.add("Vary", "HX-Request")
    assert answer.sent_as_is()
    copies: list[Any] = []
    real = werkzeug_response.Headers
    monkeypatch.setattr(werkzeug_response, "Headers", lambda *a: copies.append(a) or real(*a))
    app_iter, status, headers = answer.get_wsgi_response(ENVIRON)
    assert copies == []
    assert status == "200 OK"
    assert headers == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "8"),
        ("Vary", "HX-Request"),
    ]
    closed: list[bool] = []
    answer.call_on_close(lambda: closed.append(True))
    app_iter = answer.get_wsgi_response(ENVIRON)[0]
    assert b"".join(app_iter) == b"<p>x</p>"
    app_iter.close()  # type: ignore[attr-defined]
    assert closed == [True]  # the answer's close callbacks still run


def test_relative_location_fix_up_is_werkzeugs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Answer, "autocorrect_location_header", True)
    monkeypatch.setattr(Response, "autocorrect_location_header", True)
    ours, theirs = pair("/done", 303, [], "")
    assert sent(ours) == sent(theirs)
    assert ("Location", "http://localhost/done") in sent(ours)


def test_a_plain_path_skips_iri_to_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the class: a see_other answer to a path is sent without iri_to_uri."""
    seen: list[str] = []
    real = werkzeug_response.iri_to_uri
    monkeypatch.setattr(
        werkzeug_response, "iri_to_uri", lambda value: seen.append(value) or real(value)
    )
    headers = sent(see_other("/todos/?page=2"))
    assert ("Location", "/todos/?page=2") in headers
    assert ("Content-Length", "0") in headers
    assert seen == []
    sent(see_other("/caf\u00e9"))  # anything else still goes through it (in both methods)
    assert seen == ["/caf\u00e9", "/caf\u00e9"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(LOCATIONS, st.text(max_size=12)))
@example("/a\r\nSet-Cookie: x=1")
@example("/a\n")
def test_see_other_is_a_response_with_its_location_set(location: str) -> None:
    """see_other appends Location to its new answer; the answer is the one Flask's Response
    with ``headers["Location"] = location`` makes, and a line break is refused the same way."""
    theirs = Response("", status=303, mimetype="text/html")
    try:
        theirs.headers["Location"] = location
    except ValueError:
        with pytest.raises(ValueError):
            see_other(location)
        return
    ours = see_other(location)
    assert type(ours) is Answer
    assert ours.status == theirs.status and ours.get_data() == theirs.get_data()
    assert list(ours.headers) == list(theirs.headers)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(st.text(max_size=40), st.text(max_size=10).map(Markup)),
    status=st.sampled_from([200, 400, 403, 409, 413, 422, 429, 500]),
)
@example(body="", status=200)
@example(body='<li id="todo-7">caf\u00e9 \U0001f600</li>', status=200)
def test_html_answers_are_what_flasks_response_makes(body: str, status: int) -> None:
    ours = Answer.html(body, status)
    theirs = Response(body, status=status, mimetype="text/html")
    assert type(ours) is Answer
    assert ours.status == theirs.status
    assert list(ours.headers) == list(theirs.headers)
    assert ours.get_data() == theirs.get_data()
    assert sent(ours) == sent(theirs)


def test_html_answers_keep_werkzeugs_content_length_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Answer, "automatically_set_content_length", False)
    monkeypatch.setattr(Response, "automatically_set_content_length", False)
    ours, theirs = Answer.html("<p>x</p>"), Response("<p>x</p>", mimetype="text/html")
    assert (
        list(ours.headers) == list(theirs.headers) == [("Content-Type", "text/html; charset=utf-8")]
    )
    assert ours.get_data() == theirs.get_data()
