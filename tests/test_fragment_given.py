"""Given values: a fragment function's keyword-only parameters, which a template that renders the
region may pass (``fragment("shelf-row", id=item.id, item=item)``: the row a list loaded already),
so that a page of rows loads each row once instead of once for the list and again per row.

- The function gets the given value; the region's identity (DOM id, parameters attribute, tags)
  is the same as without it.
- A re-render after an action, the fragment endpoint and a lazy placeholder never have one: the
  function loads what it needs from the parameters, and a client can never send one.
- With the fragment cache on, a given value serves a miss; a hit calls nothing.
- A keyword-only parameter without a default, or a tags function that takes a given value, is a
  registration error.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from app_factory import Harness, Item, contract_app, db
from flask import Flask, render_template, render_template_string
from test_security import Guard

from flask_hx_actions import ActionsBlueprint, HxActions, ok
from flask_hx_actions.fragments import FragmentError

ROW = "{{ item.title }}{% if item.done %} (done){% endif %}"


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    """The contract app plus a ``shelf`` blueprint: ``shelf-row`` (given ``item``; it counts the
    rows it loads itself in ``calls["shelf.load"]``), ``shelf-note`` (two given values),
    ``shelf-pair`` (two parameters and a given value), ``shelf-cached`` (``cache="global"``),
    a ``shelf.flip`` action whose own fragment is ``shelf-row``, and pages that render the rows
    with and without given values."""
    with contract_app(tmp_path / "app.db") as h:
        calls = h.calls
        seen: list[dict[str, Any]] = []
        h.app.extensions["shelf_seen"] = seen
        bp = ActionsBlueprint("shelf", __name__, url_prefix="/shelf")
        h.templates["shelf/_row.html"] = ROW
        h.templates["shelf/_note.html"] = "{{ note }}"

        @bp.fragment(
            "shelf-row", template="shelf/_row.html", tags=lambda id: [f"item:{id}"], element="li"
        )
        def shelf_row(id: int, *, item: Item | None = None) -> dict[str, Any]:
            seen.append({"id": id, "given": item is not None})
            if item is None:
                calls["shelf.load"] += 1
                item = db.get_or_404(Item, id)
            return {"item": item}

        @bp.fragment("shelf-note", template="shelf/_note.html")
        def shelf_note(id: int, *, prefix: str = "p", suffix: str = "s") -> dict[str, Any]:
            return {"note": f"{prefix}-{id}-{suffix}"}

        @bp.fragment("shelf-pair", template="shelf/_note.html")
        def shelf_pair(a: int, b: int, *, label: str = "none") -> dict[str, Any]:
            return {"note": f"{a}-{b}-{label}"}

        @bp.fragment("shelf-cached", template="shelf/_row.html", tags=["shelf"], cache="global")
        def shelf_cached(id: int, *, item: Item | None = None) -> dict[str, Any]:
            calls["shelf.cached"] += 1
            seen.append({"id": id, "given": item is not None, "cached": True})
            return {"item": item if item is not None else db.get_or_404(Item, id)}

        @bp.action("flip", tags=lambda id: [f"item:{id}"], fragment="shelf-row")
        def flip(id: int) -> Any:
            calls["shelf.flip"] += 1
            found = db.session.get(Item, id)
            found.done = not found.done
            return ok()

        h.app.register_blueprint(bp)
        loop = "{% for item in items %}{{ fragment('shelf-row', id=item.id, item=item) }}"
        h.templates["shelf/given.html"] = f"<ul>{loop}{{% endfor %}}</ul>"
        h.templates["shelf/plain.html"] = (
            "<ul>{% for item in items %}{{ fragment('shelf-row', id=item.id) }}{% endfor %}</ul>"
        )
        h.templates["shelf/cached.html"] = (
            "{% for item in items %}{{ fragment('shelf-cached', id=item.id, item=item) }}"
            "{% endfor %}"
        )
        h.templates["shelf/action.html"] = (
            "{% for item in items %}{% call action_form('shelf.flip', bind={'id': item.id}) %}"
            "<button>Flip</button>{% endcall %}{% endfor %}"
        )

        @h.app.get("/shelf/<page>")
        def shelf_page(page: str) -> str:
            items = db.session.execute(sa.select(Item).order_by(Item.id)).scalars().all()
            return render_template(f"shelf/{page}.html", items=items)

        for title in ("one", "two", "three"):
            h.add_item(title)
        yield h


def _regions(page: str) -> list[str]:
    return re.findall(r'<li id="shelf-row-[^"]*"[^>]*>', page)


def test_a_template_gives_each_row_its_item_and_the_function_loads_none(harness):
    client = harness.client()
    given = client.get("/shelf/given").get_data(as_text=True)
    assert harness.calls["shelf.load"] == 0
    seen = harness.app.extensions["shelf_seen"]
    assert seen == [{"id": i, "given": True} for i in (1, 2, 3)]
    plain = client.get("/shelf/plain").get_data(as_text=True)
    assert harness.calls["shelf.load"] == 3  # without the given value, each row loads its own
    assert given == plain  # the same regions, the same content


def test_a_given_value_is_no_part_of_the_region_identity(harness):
    page = harness.client().get("/shelf/given").get_data(as_text=True)
    assert _regions(page) == [
        f'<li id="shelf-row-{i}" data-hx-fragment="shelf-row"'
        f' data-hx-fragment-params="id={i}" data-hx-tags="item:{i}">'
        for i in (1, 2, 3)
    ]
    assert "item=" not in page


def test_an_actions_answer_renders_its_region_without_a_given_value(harness):
    client = harness.client()
    client.get("/shelf/action")
    response = client.submit("shelf.flip", bind={"id": 2}, htmx=True)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_data(as_text=True)
    assert 'id="shelf-row-2"' in body and "two (done)" in body  # loaded after the commit
    assert harness.calls["shelf.flip"] == 1
    assert harness.calls["shelf.load"] == 1
    assert harness.app.extensions["shelf_seen"][-1] == {"id": 2, "given": False}


def test_the_fragment_endpoint_renders_from_the_parameters_alone(harness):
    response = harness.client().get("/_hx/fragments/shelf-row?id=3")
    assert response.status_code == 200
    assert "three" in response.get_data(as_text=True)
    assert harness.calls["shelf.load"] == 1


@pytest.mark.parametrize("query", ["id=1&item=forged", "id=1&prefix=x"])
def test_the_fragment_endpoint_takes_no_given_value_from_a_client(harness, query):
    guard = Guard(harness)
    name = "shelf-row" if "item" in query else "shelf-note"
    guard.refused(harness.client().get(f"/_hx/fragments/{name}?{query}"), 400)
    assert harness.app.extensions["shelf_seen"] == []  # the fragment function never ran


def test_a_lazy_placeholder_drops_the_given_value(harness):
    harness.templates["shelf/lazy.html"] = (
        "{% for item in items %}{{ fragment('shelf-row', id=item.id, item=item, lazy=True) }}"
        "{% endfor %}"
    )
    client = harness.client()
    client.set_cookie("hx_js", "1")
    page = client.get("/shelf/lazy").get_data(as_text=True)
    urls = [html.unescape(u) for u in re.findall(r'hx-get="([^"]*)"', page)]
    assert urls == [f"/_hx/fragments/shelf-row?id={i}" for i in (1, 2, 3)]
    assert harness.app.extensions["shelf_seen"] == []
    assert "one" in client.get(urls[0]).get_data(as_text=True)
    assert harness.calls["shelf.load"] == 1


def test_some_given_values_may_be_left_out_and_keep_their_defaults(harness):
    with harness.app.test_request_context():
        out = render_template_string(
            "{{ fragment('shelf-note', id=4, suffix='S') }}|{{ fragment('shelf-note', id=5) }}"
            "|{{ fragment('shelf-note', id=6, prefix='P', suffix='S') }}"
        )
    assert ">p-4-S<" in out and ">p-5-s<" in out and ">P-6-S<" in out
    assert 'id="shelf-note-4"' in out and 'data-hx-fragment-params="id=4"' in out


def test_a_fragment_of_two_parameters_takes_a_given_value_too(harness):
    with harness.app.test_request_context():
        out = render_template_string(
            "{{ fragment('shelf-pair', a=1, b=2, label='x') }}"
            "|{{ fragment('shelf-pair', b=4, a=3) }}"
        )
    first, second = out.split("|")
    assert 'id="shelf-pair-1-2"' in first and 'data-hx-fragment-params="a=1&amp;b=2"' in first
    assert ">1-2-x<" in first and "label" not in first
    assert 'id="shelf-pair-3-4"' in second and ">3-4-none<" in second


def test_an_unknown_keyword_names_the_parameters_and_the_given_values(harness):
    with harness.app.test_request_context():
        with pytest.raises(FragmentError, match=r"takes \['id'\] \(and may be given \['item'\]"):
            render_template_string("{{ fragment('shelf-row', id=1, itme=None) }}")
        with pytest.raises(FragmentError, match=r"missing \['id'\]"):
            render_template_string("{{ fragment('shelf-row', item=None) }}")


def test_a_cached_region_uses_a_given_value_on_a_miss_and_calls_nothing_on_a_hit(harness):
    client = harness.client()
    first = client.get("/shelf/cached").get_data(as_text=True)
    assert harness.calls["shelf.cached"] == 3
    assert all(s["given"] for s in harness.app.extensions["shelf_seen"])
    assert harness.calls["shelf.load"] == 0
    second = client.get("/shelf/cached").get_data(as_text=True)
    assert second == first
    assert harness.calls["shelf.cached"] == 3  # served from the cache: nothing called


def _registered(register: Any) -> None:
    """An app with a blueprint on which ``register`` registers a fragment."""
    app = Flask(__name__)
    app.secret_key = "x"
    HxActions(app)
    bp = ActionsBlueprint("bad", __name__)
    register(bp)
    app.register_blueprint(bp)


def test_a_keyword_only_parameter_without_a_default_is_refused_at_registration():
    def register(bp: ActionsBlueprint) -> None:
        @bp.fragment("bad", template="x.html")
        def bad(id: int, *, item: Any) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match=r"'item' is a given value.*give it a default"):
        _registered(register)


def test_a_tags_function_that_takes_a_given_value_is_refused_at_registration():
    def register(bp: ActionsBlueprint) -> None:
        @bp.fragment("bad", template="x.html", tags=lambda id, item: [f"x:{id}"])
        def bad(id: int, *, item: Any = None) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match=r"takes the given value\(s\) \['item'\]"):
        _registered(register)
