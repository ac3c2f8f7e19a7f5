"""static/hx-actions.js against a hand-wired server that speaks docs/wire.md (no library code).

The server mimics what flask_hx_actions renders and answers, so the client runtime is checked
on its own: request headers, swapping of error answers, the idempotency key refresh,
aria-invalid and focus, the pending state and double-submit protection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

FORM_ID = "hx-todos-rename-7"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="csrf-token" content="meta-token">
  <title>runtime</title>
  <script src="/static/htmx.min.js"></script>
  <script src="/static/hx-actions.js"></script>
</head>
<body>
  <p id="stats" data-hx-fragment="stats">0 done</p>
  <ul id="todo-list" data-hx-fragment="todo-list">
    <li id="todo-7" data-hx-fragment="todo" data-hx-fragment-params="id=7"
        data-hx-tags="todo:7">Seven</li>
    <li id="todo-8" data-hx-fragment="todo" data-hx-fragment-params="id=8"
        data-hx-tags="todo:8">Eight</li>
  </ul>
  <p id="stats-copy" data-hx-fragment="stats">0 done</p>
  <form id="{FORM_ID}" method="post" action="/todos/rename"
        hx-post="/todos/rename" hx-target="#todo-7" hx-swap="outerHTML"
        data-hx-action="todos.rename" data-hx-tags="todo:7 stats">
    <input type="hidden" name="csrf_token" value="form-token">
    <input type="hidden" name="_hx_key" value="key-0">
    <div id="{FORM_ID}-errors" class="hx-errors" role="alert"></div>
    <label for="title">Title</label>
    <input id="title" name="title">
    <span id="{FORM_ID}-title-error" class="hx-field-error" data-hx-field-error="title"></span>
    <label for="note">Note</label>
    <textarea id="note" name="note"></textarea>
    <span id="{FORM_ID}-note-error" class="hx-field-error" data-hx-field-error="note"></span>
    <button id="save" type="submit">Save</button>
    <button id="other" type="submit" disabled>Never enabled</button>
  </form>
  <input id="outside" aria-label="outside the form">
  <ul>
    <li id="todo-9" data-hx-fragment="todo" data-hx-fragment-params="id=9" data-hx-tags="todo:9">
      <form id="hx-todos-toggle-9" method="post" action="/todos/toggle" hx-post="/todos/toggle"
            hx-target="#todo-9" hx-swap="outerHTML" data-hx-action="todos.toggle"
            data-hx-tags="todo:9"><input type="hidden" name="_hx_key" value="t-0"><button
            id="toggle-9" type="submit">Toggle nine</button></form>
    </li>
  </ul>
</body>
</html>
"""


def _slots(title: str = "", note: str = "", summary: str = "") -> str:
    return (
        f'<div id="{FORM_ID}-errors" hx-swap-oob="true" class="hx-errors"'
        f' role="alert">{escape(summary)}</div>'
        f'<span id="{FORM_ID}-title-error" hx-swap-oob="true" class="hx-field-error"'
        f' data-hx-field-error="title">{escape(title)}</span>'
        f'<span id="{FORM_ID}-note-error" hx-swap-oob="true" class="hx-field-error"'
        f' data-hx-field-error="note">{escape(note)}</span>'
    )


@dataclass
class Server:
    base: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def server(live_server: Callable[[Flask], str], static_dir: Path) -> Iterator[Server]:
    app = Flask(__name__, static_folder=str(static_dir), static_url_path="/static")
    state = Server(base="")
    keys = iter(f"key-{n}" for n in range(1, 1000))

    @app.get("/")
    def index() -> str:
        return PAGE

    @app.post("/todos/rename")
    def rename() -> tuple[str, int, dict[str, str]]:
        state.requests.append({"headers": dict(request.headers), "form": request.form.to_dict()})
        # As the library answers: the form's next key only on answers that end the submit.
        headers = {"HX-Actions": "1", "Cache-Control": "no-store"}
        title = request.form.get("title", "")
        note = request.form.get("note", "")
        if title == "slow":
            state.release.wait(timeout=10)
        if title == "boom":
            headers["HX-Reswap"] = "none"
            return _slots(summary="Something went wrong (request id abc)"), 500, headers
        if not title or len(note) > 5:
            headers["HX-Reswap"] = "none"
            body = _slots(
                title="" if title else "Required.",
                note="Too long." if len(note) > 5 else "",
                summary="Please fix the errors below.",
            )
            return body, 422, headers
        body = (
            f'<li id="todo-7" data-hx-fragment="todo" data-hx-fragment-params="id=7"'
            f' data-hx-tags="todo:7">{escape(title)}</li>'
            '<p id="stats" hx-swap-oob="true" data-hx-fragment="stats">1 done</p>' + _slots()
        )
        headers["HX-Actions"] = f"1; key={next(keys)}"
        return body, 200, headers

    @app.post("/todos/toggle")
    def toggle() -> tuple[str, int, dict[str, str]]:
        # The first toggle answers with the row re-rendered as the library renders it (its
        # form without an empty error summary); the next one fails.
        state.requests.append({"headers": dict(request.headers), "form": request.form.to_dict()})
        # As the library answers: the form's next key only on answers that end the submit.
        headers = {"HX-Actions": "1", "Cache-Control": "no-store"}
        if len(state.requests) == 1:
            row = (
                '<li id="todo-9" data-hx-fragment="todo" data-hx-fragment-params="id=9"'
                ' data-hx-tags="todo:9"><form id="hx-todos-toggle-9" method="post"'
                ' action="/todos/toggle" hx-post="/todos/toggle" hx-target="#todo-9"'
                ' hx-swap="outerHTML" data-hx-action="todos.toggle" data-hx-tags="todo:9">'
                '<input type="hidden" name="_hx_key" value="t-1">'
                '<button id="toggle-9" type="submit">Toggled nine</button></form></li>'
            )
            headers["HX-Actions"] = f"1; key={next(keys)}"
            return row, 200, headers
        headers["HX-Reswap"] = "none"
        summary = (
            '<div id="hx-todos-toggle-9-errors" class="hx-errors" role="alert"'
            ' hx-swap-oob="innerHTML"><p class="hx-errors-message">Not now.</p></div>'
        )
        return summary, 422, headers

    state.base = live_server(app)
    try:
        yield state
    finally:
        state.release.set()  # never leave a handler thread waiting


def _open(page: Page, server: Server) -> None:
    page.goto(server.base + "/")
    page.wait_for_function("window.htmx && window.hxActions")


def _submit(
    page: Page, server: Server, title: str, note: str = "", *, enter: bool = False
) -> dict[str, Any]:
    """Fill the form, submit it (click Save, or Enter in the title field), wait for the answer."""
    count = len(server.requests)
    page.fill("#note", note)
    page.fill("#title", title)
    with page.expect_response("**/todos/rename"):
        if enter:
            page.press("#title", "Enter")
        else:
            page.click("#save")
    page.wait_for_function("!document.getElementById('hx-todos-rename-7').ariaBusy")
    assert len(server.requests) == count + 1
    return server.requests[-1]


def test_request_fields_and_key_refresh(page_js: Page, server: Server, js_errors: list[str]):
    _open(page_js, server)
    sent = _submit(page_js, server, "Renamed")
    headers = sent["headers"]
    assert headers["Hx-Request"] == "true"
    # The page's token and regions travel as fields, not headers.
    assert "X-Csrftoken" not in headers and "Hx-Actions-Regions" not in headers
    assert sent["form"]["_hx_csrf"] == "meta-token"
    # Non-parametrised names once each, then only the parametrised regions the form's tags meet.
    assert sent["form"]["_hx_regions"] == "stats todo-list todo?id=7"
    assert sent["form"]["_hx_key"] == "key-0"
    assert sent["form"]["csrf_token"] == "form-token"

    assert page_js.text_content("#todo-7") == "Renamed"
    assert page_js.text_content("#stats") == "1 done"
    # The form was not re-rendered: it now holds the fresh key of `HX-Actions: 1; key=...`.
    assert page_js.input_value("input[name=_hx_key]") == "key-1"
    assert _submit(page_js, server, "Again")["form"]["_hx_key"] == "key-1"
    assert page_js.input_value("input[name=_hx_key]") == "key-2"
    assert js_errors == []


def test_422_is_swapped_marks_fields_and_focuses(
    page_js: Page, server: Server, js_errors: list[str]
):
    _open(page_js, server)
    _submit(page_js, server, "", note="far too long")
    assert page_js.text_content(f"#{FORM_ID}-errors") == "Please fix the errors below."
    assert page_js.text_content(f"#{FORM_ID}-title-error") == "Required."
    assert page_js.get_attribute("#title", "aria-invalid") == "true"
    assert page_js.get_attribute("#note", "aria-invalid") == "true"
    assert page_js.evaluate("document.activeElement.id") == "title"
    assert page_js.input_value("#note") == "far too long"  # typed values stay

    # Submitted with Enter in the title field: focus is inside the form, so it stays there
    # even though the first invalid input is now the note.
    _submit(page_js, server, "Fixed", note="still too long", enter=True)
    assert page_js.get_attribute("#title", "aria-invalid") is None
    assert page_js.get_attribute("#note", "aria-invalid") == "true"
    assert page_js.evaluate("document.activeElement.id") == "title"

    # Focus outside the form (a script submitted it): the first invalid input gets it.
    page_js.focus("#outside")
    with page_js.expect_response("**/todos/rename"):
        page_js.evaluate(f"htmx.trigger('#{FORM_ID}', 'submit')")
    page_js.wait_for_function("document.activeElement.id === 'note'")

    # A success clears the slots and the marks; the pressed button gets its focus back.
    _submit(page_js, server, "Fine")
    assert page_js.get_attribute("#note", "aria-invalid") is None
    assert page_js.text_content(f"#{FORM_ID}-errors") == ""
    assert page_js.evaluate("document.activeElement.id") == "save"
    assert js_errors == []


def test_forms_get_their_empty_error_summary_from_the_runtime(
    page_js: Page, server: Server, js_errors: list[str]
):
    """The library renders no empty error summary: the script adds one to each action form on
    the page and to each form htmx swaps in, where the server puts a full one, and an error
    answer then fills it. A form that has its summary keeps that one."""
    _open(page_js, server)
    summary = "#hx-todos-toggle-9-errors"
    children = "[...document.getElementById('hx-todos-toggle-9').children].map(e => e.id || e.name)"
    assert page_js.evaluate(children) == ["_hx_key", "hx-todos-toggle-9-errors", "toggle-9"]
    assert page_js.locator(f"#{FORM_ID}-errors").count() == 1  # the page's own, not a second
    with page_js.expect_response("**/todos/toggle"):
        page_js.click("#toggle-9")
    page_js.wait_for_function("document.getElementById('toggle-9').textContent === 'Toggled nine'")
    # htmx fires load on swapped-in content once it has settled (after htmx's settle delay).
    page_js.wait_for_selector(summary, state="attached")
    assert page_js.evaluate(children) == ["_hx_key", "hx-todos-toggle-9-errors", "toggle-9"]
    assert page_js.get_attribute(summary, "role") == "alert"
    assert page_js.get_attribute(summary, "class") == "hx-errors"
    assert page_js.text_content(summary) == ""
    with page_js.expect_response("**/todos/toggle"):
        page_js.click("#toggle-9")
    page_js.wait_for_function(f"document.querySelector('{summary}').textContent === 'Not now.'")
    assert page_js.locator(summary).count() == 1
    assert js_errors == []


def test_500_answer_with_hx_actions_is_swapped(page_js: Page, server: Server):
    _open(page_js, server)
    _submit(page_js, server, "boom")
    assert page_js.text_content(f"#{FORM_ID}-errors") == "Something went wrong (request id abc)"
    assert page_js.text_content("#todo-7") == "Seven"
    assert page_js.is_enabled("#save")


def test_pending_state_blocks_a_second_submit(page_js: Page, server: Server, js_errors: list[str]):
    _open(page_js, server)
    page_js.fill("#title", "slow")
    page_js.click("#save")
    form = f"#{FORM_ID}"
    page_js.wait_for_function(f"document.querySelector('{form}').ariaBusy === 'true'")
    assert "hx-pending" in (page_js.get_attribute(form, "class") or "")
    assert page_js.is_disabled("#save")
    # Enter in a field, a script's requestSubmit, htmx.trigger: all dropped while in flight.
    page_js.press("#title", "Enter")
    page_js.evaluate(f"document.querySelector('{form}').requestSubmit()")
    page_js.evaluate(f"htmx.trigger('{form}', 'submit')")
    with page_js.expect_response("**/todos/rename"):
        server.release.set()
    page_js.wait_for_function(f"!document.querySelector('{form}').hasAttribute('aria-busy')")
    assert "hx-pending" not in (page_js.get_attribute(form, "class") or "")
    assert page_js.is_enabled("#save")
    assert page_js.is_disabled("#other")  # was disabled before: stays disabled
    page_js.wait_for_timeout(300)  # a queued duplicate would have been sent by now
    assert len(server.requests) == 1
    assert page_js.text_content("#todo-7") == "slow"
    assert js_errors == []


def test_pending_state_is_restored_after_network_failure(page_js: Page, server: Server):
    _open(page_js, server)
    page_js.route("**/todos/rename", lambda route: route.abort("connectionrefused"))
    page_js.fill("#title", "lost")
    with page_js.expect_event("requestfailed"):
        page_js.click("#save")
    page_js.wait_for_function(f"!document.getElementById('{FORM_ID}').hasAttribute('aria-busy')")
    assert page_js.is_enabled("#save")
    page_js.unroute("**/todos/rename")
    assert _submit(page_js, server, "back")["form"]["title"] == "back"
