"""flask_hx_actions.headers: add_vary writes what ``response.vary.add`` writes."""

from __future__ import annotations

from flask import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_hx_actions.headers import add_vary

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


def test_add_vary_examples() -> None:
    response = Response("x")
    add_vary(response, "HX-Request")
    add_vary(response, "Cookie")
    add_vary(response, "cookie")
    assert response.headers["Vary"] == "HX-Request, Cookie"
