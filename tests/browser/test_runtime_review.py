"""hx-actions.js with the real library (tests/app_factory.py plus a few actions and fragments of
its own) in Chromium: the edge cases of the client runtime that tests/browser/test_runtime.py
(a hand-wired server) and the demo tests leave out.

Lazy fragments (loaded after the page, inline without JS, a failed load), the idempotency key
of a form the answer does not re-render, the regions header of a page without regions, a 500 and
a 429 answer, two forms in flight at once, and htmx history restores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort
from playwright.sync_api import Page, Request, expect

from flask_hx_actions import ActionsBlueprint, ok
from tests.app_factory import Harness, contract_app

pytestmark = pytest.mark.browser

HEAD = "<!doctype html><html><head>{{ hx_actions_head() }}<title>review</title></head><body>"
FLASHES = (
    '{% for m in get_flashed_messages() %}<p class="flash" role="status">{{ m }}</p>{% endfor %}'
)
TEMPLATES = {
    # A lazy fragment that loads, and a link that navigates with htmx (pushes a history entry).
    "rv-lazy.html": HEAD + '{{ fragment("rv-clock", lazy=True) }}'
    '<a id="away" hx-get="/show/rv-other.html" hx-target="body" hx-push-url="true"'
    ' href="/show/rv-other.html">away</a></body></html>',
    "rv/_clock.html": "Clock number {{ n }}",
    "rv-other.html": HEAD + '<p id="other">Another page</p></body></html>',
    # Lazy fragments whose load fails: 404, 500, 401 (refused once the page is out).
    "rv-failing.html": HEAD + '{{ fragment("rv-gone", lazy=True) }}'
    '{{ fragment("rv-broken", lazy=True) }}{{ fragment("rv-private", lazy=True) }}</body></html>',
    # Forms: one slow, one rate-limited, one without a fragment (mark_all), the regions.
    "rv-forms.html": HEAD + FLASHES + '{% call action_form("rv.slow") %}{{ field("text") }}'
    '<button id="slow-btn">Slow</button>{% endcall %}'
    '{{ action_form("rv.limited", label="Limited") }}'
    '{{ action_form("items.explode", label="Explode") }}'
    '{{ action_form("items.mark_all", label="Mark all done") }}'
    '{{ fragment("stats") }}{{ fragment("item-list") }}'
    '<a id="away" hx-get="/show/rv-other.html" hx-target="body" hx-push-url="true"'
    ' href="/show/rv-other.html">away</a></body></html>',
    # A page without any region: mark_all's answer must not carry stats or rows.
    "rv-bare.html": HEAD + '{{ action_form("items.mark_all", label="Mark all done") }}'
    "</body></html>",
}

SLOW = "#hx-rv-slow"
LIMITED = "#hx-rv-limited"
EXPLODE = "#hx-items-explode"
MARK_ALL = "#hx-items-mark-all"


@dataclass
class Review:
    base: str
    harness: Harness
    release: threading.Event = field(default_factory=threading.Event)
    state: dict[str, Any] = field(default_factory=lambda: {"private": True, "clock": 0})

    def url(self, template: str) -> str:
        return f"{self.base}/show/rv-{template}"


@pytest.fixture
def review(tmp_path: Path, live_server: Callable[[Flask], str]) -> Iterator[Review]:
    # PROPAGATE_EXCEPTIONS off: an exception in an action is the generic 500 a user gets.
    with contract_app(tmp_path / "review.sqlite", PROPAGATE_EXCEPTIONS=False) as harness:
        harness.templates.update(TEMPLATES)
        review = Review(base="", harness=harness)
        bp = ActionsBlueprint("rv", __name__, url_prefix="/rv")
        from marshmallow import Schema, fields

        class TextSchema(Schema):
            text = fields.String(load_default="")

        @bp.action("slow", schema=TextSchema, tags=["items"])
        def slow(text: str) -> Any:
            harness.calls["slow"] += 1
            if text == "wait":
                review.release.wait(timeout=10)
            return ok()

        @bp.action("limited", limit="1/minute", limit_key="ip")
        def limited() -> Any:
            harness.calls["limited"] += 1
            return ok()

        @bp.fragment("rv-clock", template="rv/_clock.html")
        def clock() -> dict[str, Any]:
            review.state["clock"] += 1
            return {"n": review.state["clock"]}

        @bp.fragment("rv-gone", template="rv/_clock.html")
        def gone() -> dict[str, Any]:
            abort(404)

        @bp.fragment("rv-broken", template="rv/_clock.html")
        def broken() -> dict[str, Any]:
            raise RuntimeError("the fragment failed")

        @bp.fragment(
            "rv-private", template="rv/_clock.html", authorize=lambda: review.state["private"]
        )
        def private() -> dict[str, Any]:
            return {"n": 0}

        harness.app.register_blueprint(bp)
        review.base = live_server(harness.app)
        try:
            yield review
        finally:
            review.release.set()  # never leave a handler thread waiting


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.htmx && window.hxActions")


def _idle(page: Page, form: str) -> None:
    page.wait_for_function(f"!document.querySelector('{form}').hasAttribute('aria-busy')")


def _fragment_requests(page: Page) -> list[str]:
    seen: list[str] = []

    def record(request: Request) -> None:
        if "/_hx/fragments/" in request.url:
            seen.append(request.url)

    page.on("request", record)
    return seen


# -- lazy fragments ------------------------------------------------------------------------------


def test_lazy_fragment_loads_after_the_page_with_javascript(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    requests = _fragment_requests(page_js)
    # The very first page has no hx_js cookie yet: inline, no fragment request.
    _open(page_js, review.url("lazy.html"))
    expect(page_js.locator("#rv-clock")).to_have_text("Clock number 1")
    assert page_js.get_attribute("#rv-clock", "hx-get") is None
    assert requests == []
    assert any(c["name"] == "hx_js" for c in page_js.context.cookies())
    # Later pages: a busy placeholder, filled by htmx from the fragment endpoint.
    _open(page_js, review.url("lazy.html"))
    expect(page_js.locator("#rv-clock")).to_have_text("Clock number 2")
    expect(page_js.locator("#rv-clock")).not_to_have_attribute("aria-busy", "true")
    assert page_js.get_attribute("#rv-clock", "hx-get") is None  # the region, not the placeholder
    assert len(requests) == 1 and "/_hx/fragments/rv-clock" in requests[0]
    assert js_errors == []


def test_lazy_fragment_is_inline_without_javascript(review: Review, page_nojs: Page) -> None:
    requests = _fragment_requests(page_nojs)
    for expected in ("Clock number 1", "Clock number 2"):
        page_nojs.goto(review.url("lazy.html"))
        expect(page_nojs.locator("#rv-clock")).to_have_text(expected)
    assert requests == []
    assert not any(c["name"] == "hx_js" for c in page_nojs.context.cookies())


def test_lazy_fragment_whose_load_fails_is_not_left_busy(review: Review, page_js: Page) -> None:
    """A 404, a 500 or a 401 (refused since the page was rendered) leaves the empty placeholder,
    no longer marked busy (a screen reader would announce it loading for ever)."""
    page_js.context.add_cookies([{"name": "hx_js", "value": "1", "url": review.base}])
    review.state["private"] = True  # the page may render the placeholder ...
    page_js.route(
        "**/_hx/fragments/rv-private*",
        lambda route: (review.state.update(private=False), route.continue_()),  # ... not the GET
    )
    statuses: dict[str, int] = {}
    page_js.on(
        "response",
        lambda r: statuses.update({r.url.split("/")[-1].split("?")[0]: r.status})
        if "/_hx/fragments/" in r.url
        else None,
    )
    _open(page_js, review.url("failing.html"))
    page_js.wait_for_function("document.querySelectorAll('[aria-busy]').length === 0")
    assert statuses == {"rv-gone": 404, "rv-broken": 500, "rv-private": 401}
    for dom_id in ("rv-gone", "rv-broken", "rv-private"):
        region = page_js.locator(f"#{dom_id}")
        expect(region).to_have_text("")
        assert region.get_attribute("data-hx-fragment") == dom_id
    page_js.wait_for_timeout(200)
    assert len(statuses) == 3  # no retry loop


def test_lazy_fragment_whose_load_cannot_reach_the_server_is_not_left_busy(
    review: Review, page_js: Page
) -> None:
    page_js.context.add_cookies([{"name": "hx_js", "value": "1", "url": review.base}])
    page_js.route("**/_hx/fragments/**", lambda route: route.abort("connectionrefused"))
    _open(page_js, review.url("lazy.html"))
    page_js.wait_for_function("!document.getElementById('rv-clock').hasAttribute('aria-busy')")
    expect(page_js.locator("#rv-clock")).to_have_text("")
