"""Fragment parameters as they travel: written into a region's attributes (and a lazy region's
URL) by the page, read back through the fragment function's type hints when a client sends them
(the GET fragment endpoint, the page's regions of an action request).

- Values round-trip: enums by value, dates and datetimes in ISO form, ``X | None`` read as ``X``.
- A value a hint refuses (also the way ``Decimal`` does: ``InvalidOperation``, not
  ``ValueError``), or one that converts but makes no valid tag, is bad input: a 400 from the
  endpoint, a region skipped by an action, never a 500, and never a 500 after an action's commit.

The rest of the security list lives in ``test_security.py``; this file reuses its ``Guard``.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest
from app_factory import Harness, Item, contract_app, db
from flask import render_template, request
from test_security import Guard

from flask_hx_actions import ActionsBlueprint, ok


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


KINDS: dict[str, Any] = {
    "color": Color.BLUE,
    "level": Level.HIGH,
    "day": date(2026, 12, 6),
    "at": datetime(2026, 12, 6, 15, 30, 5),
}
RENDERED = "BLUE HIGH 2026-12-06 2026-12-06T15:30:05 False 5"

# A slug with a space (or a newline) makes the tag "page:a b", which the tag check refuses.
BAD_SLUGS = ["a%20b", "a+b", "a%0Ab", "%09"]


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    """The contract app plus a ``page-tag`` fragment whose tags hold its ``str`` parameter, a
    ``price`` fragment with a ``Decimal`` parameter, and a ``pages.touch`` action that writes an
    item and invalidates the ``stats`` region only."""
    with contract_app(tmp_path / "app.db") as h:
        h.templates["pages/_tag.html"] = "tag {{ slug }}"
        bp = ActionsBlueprint("pages", __name__, url_prefix="/pages")

        @bp.fragment("page-tag", template="pages/_tag.html", tags=lambda slug: [f"page:{slug}"])
        def page_tag(slug: str) -> dict[str, Any]:
            return {"slug": slug}

        @bp.fragment("price", template="pages/_tag.html")
        def price(slug: Decimal) -> dict[str, Any]:
            return {"slug": slug}

        @bp.fragment("kinds", template="pages/_kinds.html", tags=["kinds"])
        def kinds(
            color: Color, level: Level, day: date, at: datetime, n: int | None = None
        ) -> dict[str, Any]:
            h.calls["pages.kinds"] += 1
            return {"color": color, "level": level, "day": day, "at": at, "n": n}

        h.templates["pages/_kinds.html"] = (
            "{{ color.name }} {{ level.name }} {{ day.isoformat() }} {{ at.isoformat() }} "
            "{{ n is none }} {{ n }}"
        )
        h.templates["pages/kinds.html"] = (
            "{{ fragment('kinds', color=color, level=level, day=day, at=at, n=5, lazy=lazy) }}"
        )

        @h.app.get("/pages/kinds")
        def kinds_page() -> str:
            return render_template(
                "pages/kinds.html", lazy=request.args.get("lazy") == "1", **KINDS
            )

        @bp.action("touch", tags=["stats"])
        def touch() -> Any:
            h.calls["pages.touch"] += 1
            db.session.add(Item(title="touched"))
            return ok()

        h.app.register_blueprint(bp)
        yield h


def test_a_fragment_parameter_that_makes_a_valid_tag_is_served(harness):
    response = harness.client().get("/_hx/fragments/page-tag?slug=abc")
    assert response.status_code == 200
    assert 'data-hx-tags="page:abc"' in response.get_data(as_text=True)


@pytest.mark.parametrize("slug", BAD_SLUGS)
def test_the_fragment_endpoint_refuses_a_parameter_that_makes_no_valid_tag(harness, slug):
    guard = Guard(harness)
    response = harness.client().get(f"/_hx/fragments/page-tag?slug={slug}")
    guard.refused(response, 400)


@pytest.mark.parametrize("value", ["abc", ""])
def test_the_fragment_endpoint_refuses_a_value_decimal_refuses(harness, value):
    guard = Guard(harness)
    client = harness.client()
    assert client.get("/_hx/fragments/price?slug=1.5").status_code == 200
    guard.refused(client.get(f"/_hx/fragments/price?slug={value}"), 400)


def _touch_with_regions(harness, region: str, via: str):
    """``pages.touch`` by htmx from a page holding ``region``, named in the field hx-actions.js
    sends or in the header older clients send; the action ran and committed once."""
    client = harness.client()
    if via == "field":
        response = client.submit("pages.touch", htmx=True, regions=region)
    else:
        response = client.submit("pages.touch", htmx=True, headers={"HX-Actions-Regions": region})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert harness.calls["pages.touch"] == 1
    assert [row[1] for row in harness.items()] == ["touched"]
    return response


@pytest.mark.parametrize("via", ["field", "header"])
def test_a_region_decimal_refuses_is_skipped_not_a_500_after_the_commit(harness, via):
    response = _touch_with_regions(harness, "price?slug=abc stats", via)
    assert 'id="stats"' in response.get_data(as_text=True)


@pytest.mark.parametrize("slug", BAD_SLUGS)
@pytest.mark.parametrize("via", ["field", "header"])
def test_a_region_that_makes_no_valid_tag_is_skipped_not_a_500_after_the_commit(harness, slug, via):
    response = _touch_with_regions(harness, f"page-tag?slug={slug} stats", via)
    html = response.get_data(as_text=True)
    assert 'id="stats"' in html  # the valid region of the same list is still refreshed
    assert "page-tag" not in html


def _region_params(page: str) -> str:
    found = re.search(r'data-hx-fragment="kinds" data-hx-fragment-params="([^"]*)"', page)
    assert found, page
    return html.unescape(found.group(1))


def test_region_parameters_read_back_as_the_values_the_page_rendered(harness):
    client = harness.client()
    page = client.get("/pages/kinds").get_data(as_text=True)
    assert RENDERED in page
    params = _region_params(page)
    assert dict(parse_qsl(params)) == {
        "color": "blue",
        "level": "2",
        "day": "2026-12-06",
        "at": "2026-12-06 15:30:05",
        "n": "5",
    }
    # The endpoint and an action's answer (the region, invalidated) render it from that text.
    response = client.get(f"/_hx/fragments/kinds?{params}")
    assert response.status_code == 200
    assert RENDERED in response.get_data(as_text=True)
    with harness.app.app_context():
        fragment = harness.app.extensions["hx_actions"].fragment("kinds")
        assert fragment.convert(dict(parse_qsl(params))) == {**KINDS, "n": 5}


def test_a_lazy_region_loads_from_a_url_its_hints_read_back(harness):
    client = harness.client()
    client.set_cookie("hx_js", "1")
    page = client.get("/pages/kinds?lazy=1").get_data(as_text=True)
    found = re.search(r'hx-get="([^"]*)"', page)
    assert found, page
    url = html.unescape(found.group(1))
    assert "color=blue" in url and "level=2" in url
    response = client.get(url)
    assert response.status_code == 200
    assert RENDERED in response.get_data(as_text=True)


def test_an_optional_hint_converts_its_value_and_refuses_others(harness):
    client = harness.client()
    base = "color=red&level=1&day=2026-01-02&at=2026-01-02T03:04:05"
    response = client.get(f"/_hx/fragments/kinds?{base}&n=7")
    assert response.status_code == 200
    assert "RED LOW 2026-01-02 2026-01-02T03:04:05 False 7" in response.get_data(as_text=True)
    assert "True None" in client.get(f"/_hx/fragments/kinds?{base}").get_data(as_text=True)
    guard = Guard(harness)
    guard.refused(client.get(f"/_hx/fragments/kinds?{base}&n=x"), 400)


@pytest.mark.parametrize(
    "bad",
    [
        "color=Color.RED",  # the member's str(), not its value
        "color=green",
        "level=LOW",
        "level=3",
        "day=06.12.2026",
        "at=yesterday",
    ],
)
def test_a_value_no_member_or_date_reads_back_from_is_refused(harness, bad):
    good = dict(color="red", level="1", day="2026-01-02", at="2026-01-02T03:04:05")
    name, value = bad.split("=")
    query = "&".join(f"{k}={value if k == name else v}" for k, v in good.items())
    client = harness.client()
    calls = harness.calls["pages.kinds"]
    response = client.get(f"/_hx/fragments/kinds?{query}")
    assert response.status_code == 400
    assert harness.calls["pages.kinds"] == calls  # the fragment function did not run


@pytest.mark.parametrize("value", ["9223372036854775808", "-9223372036854775809", "1" + "0" * 30])
def test_an_int_hint_refuses_a_number_no_database_id_can_hold(harness, value):
    """Past a signed 64-bit integer the value would reach the app's query (SQLite raises
    ``OverflowError``): the endpoint refuses it instead of a 500 from the app's code."""
    base = "color=red&level=1&day=2026-01-02&at=2026-01-02T03:04:05"
    client = harness.client()
    assert client.get(f"/_hx/fragments/kinds?{base}&n=9223372036854775807").status_code == 200
    calls = harness.calls["pages.kinds"]
    assert client.get(f"/_hx/fragments/kinds?{base}&n={value}").status_code == 400
    assert harness.calls["pages.kinds"] == calls
