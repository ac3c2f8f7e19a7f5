"""responses.SeeOther: the headers it sends are the ones Werkzeug's own ``get_wsgi_headers``
sends, without ``iri_to_uri`` for a ``Location`` that function gives back unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import werkzeug.wrappers.response as werkzeug_response
from flask import Response
from hypothesis import example, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.urls import iri_to_uri

from flask_hx_actions.responses import _URI_AS_IS, SeeOther, see_other

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
    return response.get_wsgi_headers(ENVIRON).to_wsgi_list()


def pair(
    location: str,
    status: int,
    extra: list[tuple[str, str]],
    body: str | None,
    name: str = "Location",
) -> tuple[Response, Response]:
    """The same answer as a SeeOther and as Flask's own Response."""
    made = []
    for cls in (SeeOther, Response):
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
    except Exception as error:  # what Werkzeug refuses, SeeOther refuses the same way
        with pytest.raises(type(error)):
            sent(ours)
        return
    assert sent(ours) == expected


def test_relative_location_fix_up_is_werkzeugs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SeeOther, "autocorrect_location_header", True)
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
    sent(see_other("/caf\u00e9"))  # anything else still goes through it
    assert seen == ["/caf\u00e9"]


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
    assert type(ours) is SeeOther
    assert ours.status == theirs.status and ours.get_data() == theirs.get_data()
    assert list(ours.headers) == list(theirs.headers)
