"""hx-actions.js with the real library (tests/app_factory.py plus a few actions and fragments of
its own) in Chromium: the edge cases of the client runtime that tests/browser/test_runtime.py
(a hand-wired server) and the demo tests leave out.

Lazy fragments (loaded after the page, inline without JS, a failed load), the idempotency key
of a form the answer does not re-render, the regions header of a page without regions, a 500 and
a 429 answer, two forms in flight at once, an answer whose target was replaced while it was in
flight, errors cleared by a success, and htmx history restores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from flask import Flask, abort
from marshmallow import Schema, fields
from playwright.sync_api import Page, Request, expect

from flask_hx_actions import ActionsBlueprint, ok
from flask_hx_actions.responses import answer_key
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
    '{% call action_form("items.explode") %}<input type="hidden" name="title" value="x">'
    '<button id="explode-btn">Explode</button>{% endcall %}'
    '{{ action_form("items.mark_all", label="Mark all done") }}'
    '{{ fragment("stats") }}{{ fragment("item-list") }}'
    '<a id="away" hx-get="/show/rv-other.html" hx-target="body" hx-push-url="true"'
    ' href="/show/rv-other.html">away</a></body></html>',
    # A form whose answer does not re-render it, with input (items.profile).
    "rv-profile.html": HEAD
    + '{% call action_form("items.profile", data_hx_failure_message="No answer: try again.") %}'
    '<input name="name" id="pname"><input type="hidden" name="password" value="long enough">'
    '<button id="profile-btn">Save</button>{% endcall %}'
    '<a id="away" hx-get="/show/rv-other.html" hx-target="body" hx-push-url="true"'
    ' href="/show/rv-other.html">away</a></body></html>',
    # The add form, the list, the stats and a remove of item 1 (which re-renders the list).
    "rv-list.html": HEAD + '{% call action_form("items.add") %}{{ field("title") }}'
    '<button id="add-btn">Add</button>{% endcall %}'
    '{{ action_form("items.remove", bind={"id": 1}, label="Remove 1", id="remove-1") }}'
    '{{ fragment("item-list") }}{{ fragment("stats") }}</body></html>',
    # The rows, and a link to another page that has an element with a row's id.
    "rv-rows.html": HEAD
    + '{{ fragment("item-list") }}<a id="away" hx-get="/show/rv-elsewhere.html"'
    ' hx-target="body" hx-push-url="true" href="/show/rv-elsewhere.html">away</a></body></html>',
    "rv-elsewhere.html": HEAD + '<ul><li id="item-row-1">Elsewhere</li></ul></body></html>',
    # A page without any region: mark_all's answer must not carry stats or rows.
    "rv-bare.html": HEAD + '{{ action_form("items.mark_all", label="Mark all done") }}'
    "</body></html>",
}

SLOW = "#hx-rv-slow"
LIMITED = "#hx-rv-limited"
EXPLODE = "#hx-items-explode"
MARK_ALL = "#hx-items-mark-all"
PROFILE = "#hx-items-profile"


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

        class TextSchema(Schema):
            text = fields.String(load_default="")

        # No idempotency key: its claim would hold SQLite's write lock while the body waits.
        @bp.action("slow", schema=TextSchema, tags=["items"], idempotent=False)
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
        lambda r: (
            statuses.update({r.url.split("/")[-1].split("?")[0]: r.status})
            if "/_hx/fragments/" in r.url
            else None
        ),
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


# -- answers -------------------------------------------------------------------------------------


def test_key_is_refreshed_in_a_form_the_answer_does_not_rerender(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """mark_all has no fragment (HX-Reswap: none): its form stays, and its next submit, with the
    same (empty) input, must run again rather than be replayed under the first key."""
    review.harness.add_item("one")
    _open(page_js, review.url("forms.html"))
    key = f"{MARK_ALL} input[name=_hx_key]"
    first = page_js.input_value(key)
    with page_js.expect_response("**/items/mark_all") as answer:
        page_js.click(f"{MARK_ALL} button")
    _idle(page_js, MARK_ALL)
    assert answer.value.status == 200
    fresh = answer_key(answer.value.headers)
    assert fresh is not None
    assert page_js.input_value(key) == fresh != first
    expect(page_js.locator("#stats")).to_have_text("1 of 1 done")
    with page_js.expect_response("**/items/mark_all") as answer:
        page_js.click(f"{MARK_ALL} button")
    _idle(page_js, MARK_ALL)
    assert answer.value.headers.get("idempotent-replayed") is None
    assert review.harness.calls["mark_all"] == 2
    assert js_errors == []


def test_a_form_whose_answer_was_lost_can_submit_other_input(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """The first answer never reached the page, so the form still holds the spent key. Other
    input under it is the 422 of a reused key, which brings a fresh key: the next submit runs."""
    _open(page_js, review.url("profile.html"))
    key = f"{PROFILE} input[name=_hx_key]"
    spent = page_js.input_value(key)
    page_js.fill("#pname", "ann")
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click("#profile-btn")
    _idle(page_js, PROFILE)
    assert answer.value.status == 200
    page_js.eval_on_selector(key, "(el, spent) => { el.value = spent; }", spent)  # answer "lost"
    page_js.fill("#pname", "bea")
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click("#profile-btn")
    _idle(page_js, PROFILE)
    assert answer.value.status == 422
    fresh = answer_key(answer.value.headers)
    assert fresh is not None
    assert page_js.input_value(key) == fresh != spent
    assert review.harness.calls["profile"] == 1
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click("#profile-btn")
    _idle(page_js, PROFILE)
    assert answer.value.status == 200
    assert answer.value.headers.get("idempotent-replayed") is None
    assert review.harness.calls["profile"] == 2
    assert js_errors == []


def test_no_answer_from_the_library_is_said_in_the_form(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """A proxy's 502 and a network error carry no message of the library's: the form's summary
    says the request failed (the form's own text, else the default) until its next attempt."""
    _open(page_js, review.url("profile.html"))
    summary = "#hx-items-profile-errors"
    page_js.fill("#pname", "ann")
    page_js.route("**/items/profile", lambda route: route.fulfill(status=502, body="Bad gateway"))
    page_js.click("#profile-btn")
    expect(page_js.locator(summary)).to_have_text("No answer: try again.")
    _idle(page_js, PROFILE)
    page_js.unroute("**/items/profile")
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click("#profile-btn")
    _idle(page_js, PROFILE)
    assert answer.value.status == 200
    expect(page_js.locator(summary)).to_have_text("")
    assert review.harness.calls["profile"] == 1
    _open(page_js, review.url("forms.html"))
    page_js.route("**/items/mark_all", lambda route: route.abort("connectionrefused"))
    page_js.click(f"{MARK_ALL} button")
    expect(page_js.locator(f"{MARK_ALL}-errors")).to_have_text(
        "The request failed. Check your connection and try again."
    )
    _idle(page_js, MARK_ALL)
    assert page_js.is_enabled(f"{MARK_ALL} button")
    assert review.harness.calls["mark_all"] == 0
    assert all("hx-actions.js" not in error for error in js_errors)


def test_regions_field_of_a_page_without_regions_asks_for_none(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """No region on the page: the field is sent empty, and the answer carries no region (without
    the field the server would send every invalidated non-parametrised fragment: stats)."""
    review.harness.add_item("one")
    _open(page_js, review.url("bare.html"))
    with page_js.expect_response("**/items/mark_all") as answer:
        page_js.click(f"{MARK_ALL} button")
    _idle(page_js, MARK_ALL)
    sent = parse_qs(answer.value.request.post_data or "", keep_blank_values=True)
    assert sent["_hx_regions"] == [""]
    assert answer.value.status == 200
    assert answer.value.text() == ""
    assert review.harness.calls["mark_all"] == 1
    assert js_errors == []


def test_500_answer_shows_the_request_id_and_restores_the_form(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    _open(page_js, review.url("forms.html"))
    before = review.harness.snapshot()
    with page_js.expect_response("**/items/explode") as answer:
        page_js.click("#explode-btn")
    _idle(page_js, EXPLODE)
    assert answer.value.status == 500
    request_id = answer.value.headers["x-request-id"]
    expect(page_js.locator(f"{EXPLODE}-errors")).to_contain_text(f"(request id {request_id})")
    expect(page_js.locator(f"{EXPLODE}-errors")).not_to_contain_text("hunter2")
    assert page_js.is_enabled("#explode-btn")
    assert "hx-pending" not in (page_js.get_attribute(EXPLODE, "class") or "")
    assert review.harness.snapshot() == before
    assert js_errors == []


def test_429_message_is_shown_with_javascript(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    _open(page_js, review.url("forms.html"))
    for status in (200, 429):
        with page_js.expect_response("**/rv/limited") as answer:
            page_js.click(f"{LIMITED} button")
        _idle(page_js, LIMITED)
        assert answer.value.status == status
    assert 1 <= int(answer.value.headers["retry-after"]) <= 60
    expect(page_js.locator(f"{LIMITED}-errors")).to_have_text(
        "Too many attempts. Please wait a moment and try again."
    )
    assert page_js.is_enabled(f"{LIMITED} button")
    assert review.harness.calls["limited"] == 1
    assert js_errors == []


def test_429_message_is_shown_without_javascript(review: Review, page_nojs: Page) -> None:
    page_nojs.goto(review.url("forms.html"))
    for _ in range(2):
        with page_nojs.expect_navigation():
            page_nojs.click(f"{LIMITED} button")
        assert page_nojs.url == review.url("forms.html")
    expect(page_nojs.locator(".flash")).to_have_text(
        "Too many attempts. Please wait a moment and try again."
    )
    assert review.harness.calls["limited"] == 1


# -- requests in flight --------------------------------------------------------------------------


def test_two_forms_in_flight_at_once_keep_their_own_pending_state(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    review.harness.add_item("one")
    _open(page_js, review.url("forms.html"))
    page_js.fill("#hx-rv-slow-text", "wait")
    page_js.dblclick("#slow-btn")  # the second click of a double click sends nothing
    page_js.wait_for_function(f"document.querySelector('{SLOW}').ariaBusy === 'true'")
    assert page_js.is_disabled("#slow-btn")
    # Another form submits and completes while the first is still in flight.
    with page_js.expect_response("**/items/mark_all"):
        page_js.click(f"{MARK_ALL} button")
    _idle(page_js, MARK_ALL)
    expect(page_js.locator("#stats")).to_have_text("1 of 1 done")
    assert page_js.is_enabled(f"{MARK_ALL} button")
    assert page_js.get_attribute(SLOW, "aria-busy") == "true"
    assert page_js.is_disabled("#slow-btn")
    with page_js.expect_response("**/rv/slow"):
        review.release.set()
    _idle(page_js, SLOW)
    assert page_js.is_enabled("#slow-btn")
    page_js.wait_for_timeout(300)  # a queued duplicate would have been sent by now
    assert review.harness.calls["slow"] == 1
    assert review.harness.calls["mark_all"] == 1
    assert js_errors == []


# -- answers racing other answers, errors after a success ------------------------------------------


def _hold(page: Page, pattern: str) -> list[Any]:
    """Requests matching ``pattern`` wait in the browser until the test continues them."""
    held: list[Any] = []
    page.route(pattern, lambda route: held.append(route))
    return held


def _wait_held(page: Page, held: list[Any]) -> Any:
    page.wait_for_function("true")  # lets Playwright dispatch the route handler
    for _ in range(100):
        if held:
            return held.pop()
        page.wait_for_timeout(50)
    raise AssertionError("the request was not sent")


def _release(page: Page, route: Any, pattern: str) -> None:
    """Let a held request go; its answer is a success."""
    with page.expect_response(pattern) as answer:
        route.continue_()
    assert answer.value.status == 200


def _send_held_rename(review: Review, page: Page, template: str, item: int) -> Any:
    """Open ``template``, rename ``item`` to "renamed": the request waits in the browser."""
    _open(page, review.url(template))
    held = _hold(page, "**/items/rename")
    page.fill(f"#hx-items-rename-{item}-title", "renamed")
    page.click(f"#hx-items-rename-{item} button")
    return _wait_held(page, held)


def test_answer_whose_row_was_rerendered_in_flight_lands_in_the_row_on_the_page(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """A rename is in flight when a toggle re-renders the same row: htmx chose the old row as
    the rename's target, and the rename's answer must still show, in the row now on the page."""
    item = review.harness.add_item("one")
    rename = _send_held_rename(review, page_js, "forms.html", item)
    with page_js.expect_response("**/items/toggle"):
        page_js.click(f"#hx-items-toggle-{item} button")
    expect(page_js.locator(f"#item-row-{item}")).to_contain_text("(done)")
    _release(page_js, rename, "**/items/rename")
    expect(page_js.locator(f"#item-row-{item} .title")).to_have_text("renamed")
    expect(page_js.locator(f"#item-row-{item}")).to_contain_text("(done)")
    assert review.harness.item(item)[1] == "renamed"
    assert js_errors == []


def test_answer_that_comes_after_the_user_went_to_another_page_is_not_swapped_there(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """The other page has an element with the id of the row a rename was sent from: a late
    answer is not this page's to show, and stays out of it."""
    item = review.harness.add_item("one")
    assert item == 1  # rv-elsewhere.html holds #item-row-1
    rename = _send_held_rename(review, page_js, "rows.html", item)
    page_js.click("#away")
    expect(page_js.locator(f"#item-row-{item}")).to_have_text("Elsewhere")
    _release(page_js, rename, "**/items/rename")
    page_js.wait_for_timeout(300)  # the answer has been handled by now
    expect(page_js.locator(f"#item-row-{item}")).to_have_text("Elsewhere")
    assert review.harness.item(item)[1] == "renamed"
    assert js_errors == []


def test_answer_whose_form_was_rerendered_in_flight_still_swaps_its_out_of_band_parts(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """A toggle is in flight when a rename re-renders the row, toggle form included. htmx looks
    for out-of-band targets in the sending form's tree, now detached: the stats must still be
    updated, with no htmx target errors."""
    item = review.harness.add_item("one")
    _open(page_js, review.url("forms.html"))
    held = _hold(page_js, "**/items/toggle")
    page_js.click(f"#hx-items-toggle-{item} button")
    toggle = _wait_held(page_js, held)
    page_js.fill(f"#hx-items-rename-{item}-title", "renamed")
    with page_js.expect_response("**/items/rename"):
        page_js.click(f"#hx-items-rename-{item} button")
    expect(page_js.locator(f"#item-row-{item} .title")).to_have_text("renamed")
    _release(page_js, toggle, "**/items/toggle")
    expect(page_js.locator("#stats")).to_have_text("1 of 1 done")
    expect(page_js.locator(f"#item-row-{item}")).to_contain_text("(done)")
    assert js_errors == []


def test_answer_whose_list_was_rerendered_in_flight_updates_the_list_and_stats(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """An add is in flight when a remove re-renders the list (out of band): the add's answer
    (its list, the stats out of band) still reaches the page, with no htmx target errors."""
    first = review.harness.add_item("one")
    assert first == 1  # the page's remove form is bound to item 1
    _open(page_js, review.url("list.html"))
    held = _hold(page_js, "**/items/add")
    page_js.fill("#hx-items-add-title", "two")
    page_js.click("#add-btn")
    add = _wait_held(page_js, held)
    with page_js.expect_response("**/items/remove"):
        page_js.click("#remove-1 button")
    expect(page_js.locator("#stats")).to_have_text("0 of 0 done")
    _release(page_js, add, "**/items/add")
    expect(page_js.locator("#item-list .title")).to_have_text(["two"])
    expect(page_js.locator("#stats")).to_have_text("0 of 1 done")
    assert js_errors == []


def test_success_clears_the_errors_of_a_form_its_answer_does_not_rerender(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """items.profile has no fragment: after a 422 and then a success, the summary, the name's
    slot and its aria-invalid are gone. The 422 carries slots for every field of the schema;
    those the form has no place for are dropped, not logged by htmx as missing targets."""
    _open(page_js, f"{review.base}/")
    form = PROFILE
    page_js.fill(f"{form}-password", "long enough")
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click(f"{form} button")
    _idle(page_js, form)
    assert answer.value.status == 422
    assert "hx-items-profile-note01-error" in answer.value.text()  # a field this form lacks
    expect(page_js.locator(f"{form}-name-error")).not_to_be_empty()
    expect(page_js.locator(f"{form}-errors")).not_to_be_empty()
    assert page_js.get_attribute(f"{form}-name", "aria-invalid") == "true"
    assert js_errors == []  # no "htmx:oobErrorNoTarget" for the slots the form lacks
    page_js.fill(f"{form}-name", "ann")
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click(f"{form} button")
    _idle(page_js, form)
    assert answer.value.status == 200
    expect(page_js.locator(f"{form}-name-error")).to_be_empty()
    expect(page_js.locator(f"{form}-errors")).to_be_empty()
    assert page_js.get_attribute(f"{form}-name", "aria-invalid") is None
    assert review.harness.calls["profile"] == 1
    assert js_errors == []


# -- history -------------------------------------------------------------------------------------


def test_history_restore_without_the_cache_gets_the_full_page(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """Back to a page htmx has no snapshot of: htmx asks the server (HX-History-Restore-Request),
    gets the whole page, and its forms work (summaries added, CSRF header, fresh keys)."""
    review.harness.add_item("one")
    _open(page_js, review.url("forms.html"))
    page_js.evaluate("htmx.config.historyCacheSize = 0")
    page_js.click("#away")
    expect(page_js.locator("#other")).to_have_text("Another page")
    with page_js.expect_request(
        lambda r: (
            r.url == review.url("forms.html")
            and r.headers.get("hx-history-restore-request") == "true"
        )
    ):
        page_js.go_back()
    expect(page_js.locator(MARK_ALL)).to_have_count(1)
    expect(page_js.locator("body > body, body html")).to_have_count(0)
    expect(page_js.locator(f"{MARK_ALL}-errors")).to_have_count(1)
    with page_js.expect_response("**/items/mark_all") as answer:
        page_js.click(f"{MARK_ALL} button")
    _idle(page_js, MARK_ALL)
    assert answer.value.status == 200
    expect(page_js.locator("#stats")).to_have_text("1 of 1 done")
    assert js_errors == []


def test_history_snapshot_taken_while_a_form_is_pending_restores_it_usable(
    review: Review, page_js: Page
) -> None:
    """The user leaves (an htmx navigation that pushes a URL) while a submit is in flight: the
    snapshot htmx keeps holds the busy form; back on the page, it must not stay disabled."""
    _open(page_js, review.url("forms.html"))
    page_js.fill("#hx-rv-slow-text", "wait")
    page_js.click("#slow-btn")
    page_js.wait_for_function(f"document.querySelector('{SLOW}').ariaBusy === 'true'")
    page_js.click("#away")
    expect(page_js.locator("#other")).to_have_text("Another page")
    with page_js.expect_response("**/rv/slow"):
        review.release.set()
    page_js.go_back()
    expect(page_js.locator(SLOW)).to_have_count(1)
    page_js.wait_for_function("window.htmx && window.hxActions")
    assert page_js.get_attribute(SLOW, "aria-busy") is None
    assert "hx-pending" not in (page_js.get_attribute(SLOW, "class") or "")
    assert page_js.is_enabled("#slow-btn")
    page_js.fill("#hx-rv-slow-text", "again")
    with page_js.expect_response("**/rv/slow") as answer:
        page_js.click("#slow-btn")
    _idle(page_js, SLOW)
    assert answer.value.status == 200
    assert review.harness.calls["slow"] == 2


def test_form_restored_from_a_snapshot_taken_in_flight_gets_the_fresh_key(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """The user leaves (an htmx navigation) while a submit is in flight; its answer then spends
    the key the snapshot holds. Back on the page, the form holds the answer's fresh key, so
    other input runs instead of being refused as a reused key."""
    _open(page_js, review.url("profile.html"))
    key = f"{PROFILE} input[name=_hx_key]"
    spent = page_js.input_value(key)
    held = _hold(page_js, "**/items/profile")
    page_js.fill("#pname", "ann")
    page_js.click("#profile-btn")
    submit = _wait_held(page_js, held)
    page_js.click("#away")
    expect(page_js.locator("#other")).to_have_text("Another page")
    with page_js.expect_response("**/items/profile") as answer:
        submit.continue_()
    page_js.unroute("**/items/profile")
    assert answer.value.status == 200
    fresh = answer_key(answer.value.headers)
    assert fresh is not None and fresh != spent
    page_js.go_back()
    expect(page_js.locator(PROFILE)).to_have_count(1)
    page_js.wait_for_function("window.htmx && window.hxActions")
    assert page_js.input_value(key) == fresh
    page_js.fill("#pname", "bea")
    with page_js.expect_response("**/items/profile") as answer:
        page_js.click("#profile-btn")
    _idle(page_js, PROFILE)
    assert answer.value.status == 200
    assert review.harness.calls["profile"] == 2
    assert js_errors == []


# -- forms re-rendered by their own answer -------------------------------------------------------


def test_row_form_replaced_by_its_own_answer(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """A toggle re-renders its own row, form included: the new form is not busy, keeps the
    keyboard focus on its button, and submits again; its rename form, re-rendered without the
    CSRF input, submits with the meta tag's token."""
    item = review.harness.add_item("one")
    _open(page_js, review.url("forms.html"))
    toggle = f"#hx-items-toggle-{item}"
    rename = f"#hx-items-rename-{item}"
    page_js.focus(f"{toggle} button")
    with page_js.expect_response("**/items/toggle"):
        page_js.keyboard.press("Enter")
    expect(page_js.locator(f"#item-row-{item}")).to_contain_text("(done)")
    _idle(page_js, toggle)
    assert page_js.is_enabled(f"{toggle} button")
    page_js.wait_for_function(
        f"document.activeElement === document.querySelector('{toggle} button')"
    )
    with page_js.expect_response("**/items/toggle"):
        page_js.keyboard.press("Enter")
    expect(page_js.locator(f"#item-row-{item}")).not_to_contain_text("(done)")
    assert review.harness.calls["toggle"] == 2

    expect(page_js.locator(f"{rename} input[name=csrf_token]")).to_have_count(0)
    page_js.fill(f"{rename}-title", "renamed")
    with page_js.expect_response("**/items/rename") as answer:
        page_js.click(f"{rename} button")
    assert answer.value.status == 200
    expect(page_js.locator(f"#item-row-{item} .title")).to_have_text("renamed")
    assert review.harness.item(item) == (item, "renamed", 1, False, None)
    assert js_errors == []


def test_form_submitted_before_htmx_settles_goes_through_htmx(
    review: Review, page_js: Page, js_errors: list[str]
) -> None:
    """htmx sets up swapped-in content when it settles. Enter on the re-rendered row's button
    before then (a long settle delay makes the window wide) still sends an htmx request with
    the meta tag's token, not a plain POST that lacks the CSRF input."""
    item = review.harness.add_item("one")
    _open(page_js, review.url("forms.html"))
    page_js.evaluate("htmx.config.defaultSettleDelay = 3000")
    toggle = f"#hx-items-toggle-{item}"
    page_js.focus(f"{toggle} button")
    with page_js.expect_response("**/items/toggle"):
        page_js.keyboard.press("Enter")
    expect(page_js.locator(f"#item-row-{item}")).to_contain_text("(done)")
    assert page_js.locator(f"#item-row-{item}.htmx-added").count() == 1  # not settled yet
    # A named button's value goes with the submit, as it does once htmx has set the form up.
    page_js.eval_on_selector(f"{toggle} button", "b => { b.name = 'intent'; b.value = 'again'; }")
    page_js.focus(f"{toggle} button")
    with page_js.expect_response("**/items/toggle") as answer:
        page_js.keyboard.press("Enter")
    assert answer.value.status == 200
    assert answer.value.request.headers.get("hx-request") == "true"
    assert "intent=again" in (answer.value.request.post_data or "").split("&")
    expect(page_js.locator(f"#item-row-{item}")).not_to_contain_text("(done)")
    assert page_js.url == review.url("forms.html")
    assert review.harness.calls["toggle"] == 2
    assert js_errors == []
