"""The demo app in Chromium, with JavaScript on (htmx swaps fragments in place) and off (plain
form posts, Post/Redirect/Get).

Screenshots go to $DEMO_SCREENSHOTS when set (a directory), else to the test's tmp_path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from demo.app import create_app
from demo.models import db

pytestmark = pytest.mark.browser

TOO_LONG = "x" * 101
LENGTH_ERROR = "Length must be between 1 and 100."


@pytest.fixture
def demo_url(tmp_path: Path, live_server: Callable[[Flask], str]) -> Iterator[str]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.sqlite'}"})
    yield live_server(app)
    with app.app_context():
        db.engine.dispose()


def _screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("DEMO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _sign_in(page: Page, password: str) -> None:
    page.fill("#hx-auth-sign-in-username", "alice")
    page.fill("#hx-auth-sign-in-password", password)
    page.click("#hx-auth-sign-in button[type=submit]")


def _row_id(page: Page, title: str) -> str:
    row = page.locator("ul.todos > li", has=page.locator(".title", has_text=title))
    expect(row).to_have_count(1)
    dom_id = row.get_attribute("id")
    assert dom_id is not None
    assert re.fullmatch(r"todo-\d+", dom_id)
    return dom_id.removeprefix("todo-")


def test_demo_with_javascript(
    demo_url: str, page_js: Page, js_errors: list[str], tmp_path: Path
) -> None:
    page = page_js
    page.goto(demo_url + "/")
    expect(page).to_have_url(demo_url + "/auth/sign-in")
    expect(page.locator("main")).to_contain_text("alice-password")

    # A wrong password: the message appears in place, the page is not reloaded.
    page.evaluate("window.__demoMarker = 'sign-in page'")
    _sign_in(page, "not-it")
    expect(page.locator("#hx-auth-sign-in-errors")).to_have_text("Wrong user name or password.")
    assert page.evaluate("window.__demoMarker") == "sign-in page"
    expect(page.locator("#hx-auth-sign-in-username")).to_have_value("alice")

    # Signing in redirects (HX-Redirect) to the todos page.
    _sign_in(page, "alice-password")
    expect(page).to_have_url(demo_url + "/todos/")
    expect(page.locator("header")).to_contain_text("Signed in as alice")
    expect(page.locator("#stats")).to_have_text("0 of 0 done")
    page.evaluate("window.__demoMarker = 'todos page'")

    # Add: the list and the stats are swapped in; the page stays (the marker survives).
    page.fill("#hx-todos-add-title", "Buy milk")
    page.click("#hx-todos-add button[type=submit]")
    expect(page.locator("ul.todos .title")).to_have_text(["Buy milk"])
    expect(page.locator("#stats")).to_have_text("0 of 1 done")
    expect(page.locator("#hx-todos-add-title")).to_have_value("")
    page.fill("#hx-todos-add-title", "Write the report")
    page.press("#hx-todos-add-title", "Enter")
    expect(page.locator("ul.todos .title")).to_have_text(["Buy milk", "Write the report"])
    expect(page.locator("#stats")).to_have_text("0 of 2 done")
    assert page.evaluate("window.__demoMarker") == "todos page"
    milk = _row_id(page, "Buy milk")

    # Toggle: that row and the stats change.
    page.click(f"#hx-todos-toggle-{milk} button")
    expect(page.locator(f"#todo-{milk} .title")).to_have_class("title done")
    expect(page.locator(f"#hx-todos-toggle-{milk} button")).to_have_text("Mark not done")
    expect(page.locator("#stats")).to_have_text("1 of 2 done")
    assert page.evaluate("window.__demoMarker") == "todos page"

    # Rename in place.
    page.fill(f"#hx-todos-rename-{milk}-title", "Buy oat milk")
    page.click(f"#hx-todos-rename-{milk} button[type=submit]")
    expect(page.locator(f"#todo-{milk} .title")).to_have_text("Buy oat milk")

    # Upload: a multipart htmx request; the row comes back with the link.
    page.set_input_files(
        f"#hx-todos-attach-{milk}-file",
        files=[{"name": "list.txt", "mimeType": "text/plain", "buffer": b"oat milk\n"}],
    )
    page.click(f"#hx-todos-attach-{milk} button[type=submit]")
    link = page.locator(f"#todo-{milk} ul.attachments a")
    expect(link).to_have_text("list.txt")
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "list.txt"
    assert Path(download.path()).read_bytes() == b"oat milk\n"

    # A refused type: the field error shows in place.
    report = _row_id(page, "Write the report")
    page.set_input_files(
        f"#hx-todos-attach-{report}-file",
        files=[{"name": "page.html", "mimeType": "text/html", "buffer": b"<p>hi</p>"}],
    )
    page.click(f"#hx-todos-attach-{report} button[type=submit]")
    expect(page.locator(f"#hx-todos-attach-{report}-file-error")).to_have_text(
        "Files of type text/html are not accepted."
    )

    # Delete: the list is swapped, the stats follow.
    page.click(f"#hx-todos-delete-{report} button")
    expect(page.locator("ul.todos .title")).to_have_text(["Buy oat milk"])
    expect(page.locator("#stats")).to_have_text("1 of 1 done")

    # Invalid add: the field error shows, the typed text stays, nothing is added.
    page.fill("#hx-todos-add-title", TOO_LONG)
    page.click("#hx-todos-add button[type=submit]")
    expect(page.locator("#hx-todos-add-title-error")).to_have_text(LENGTH_ERROR)
    expect(page.locator("#hx-todos-add-title")).to_have_value(TOO_LONG)
    expect(page.locator("#hx-todos-add-title")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#hx-todos-add-errors")).to_contain_text("Please correct the errors")
    expect(page.locator("ul.todos > li")).to_have_count(1)
    assert page.evaluate("window.__demoMarker") == "todos page"

    # Fixing the input clears the error (the form is re-rendered with the list).
    page.fill("#hx-todos-add-title", "Call mum")
    page.click("#hx-todos-add button[type=submit]")
    expect(page.locator("ul.todos .title")).to_have_text(["Buy oat milk", "Call mum"])
    expect(page.locator("#hx-todos-add-title-error")).to_have_text("")
    expect(page.locator("#hx-todos-add-title")).not_to_have_attribute("aria-invalid", "true")

    # Leave an error on the page for the screenshot.
    page.fill("#hx-todos-add-title", "Call mum")
    page.click("#hx-todos-add button[type=submit]")
    expect(page.locator("#hx-todos-add-title-error")).to_have_text(
        "You already have a todo with this title."
    )
    assert page.evaluate("window.__demoMarker") == "todos page"
    _screenshot(page, tmp_path, "demo-js.png")

    # Sign out: back to the sign-in page.
    page.click("#hx-auth-sign-out button")
    expect(page).to_have_url(demo_url + "/auth/sign-in")
    assert js_errors == []


def test_demo_without_javascript(demo_url: str, page_nojs: Page, tmp_path: Path) -> None:
    page = page_nojs
    page.goto(demo_url + "/")
    expect(page).to_have_url(demo_url + "/auth/sign-in")
    assert page.evaluate("typeof window.htmx") == "undefined"

    # A wrong password: 303 back to the page with the message; the user name is kept.
    with page.expect_navigation():
        _sign_in(page, "not-it")
    expect(page).to_have_url(demo_url + "/auth/sign-in")
    expect(page.locator("#hx-auth-sign-in-errors")).to_contain_text("Wrong user name or password.")
    expect(page.locator("#hx-auth-sign-in-username")).to_have_value("alice")
    expect(page.locator("#hx-auth-sign-in-password")).to_have_value("")

    with page.expect_navigation():
        _sign_in(page, "alice-password")
    expect(page).to_have_url(demo_url + "/todos/")
    expect(page.locator("header")).to_contain_text("Signed in as alice")

    # Add.
    page.fill("#hx-todos-add-title", "Buy milk")
    with page.expect_navigation():
        page.click("#hx-todos-add button[type=submit]")
    expect(page).to_have_url(demo_url + "/todos/")
    expect(page.locator("ul.todos .title")).to_have_text(["Buy milk"])
    expect(page.locator("#stats")).to_have_text("0 of 1 done")
    milk = _row_id(page, "Buy milk")

    # Invalid add: after the redirect the error shows and the typed value is back.
    page.fill("#hx-todos-add-title", TOO_LONG)
    with page.expect_navigation():
        page.click("#hx-todos-add button[type=submit]")
    expect(page).to_have_url(demo_url + "/todos/")
    expect(page.locator("#hx-todos-add-title-error")).to_have_text(LENGTH_ERROR)
    expect(page.locator("#hx-todos-add-title")).to_have_value(TOO_LONG)
    expect(page.locator("#hx-todos-add-title")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#hx-todos-add-errors")).to_contain_text("Please correct the errors")
    expect(page.locator("ul.todos > li")).to_have_count(1)

    # Toggle.
    with page.expect_navigation():
        page.click(f"#hx-todos-toggle-{milk} button")
    expect(page.locator(f"#todo-{milk} .title")).to_have_class("title done")
    expect(page.locator("#stats")).to_have_text("1 of 1 done")
    # The error of the previous submit was shown once only.
    expect(page.locator("#hx-todos-add-title-error")).to_have_text("")

    # Invalid rename: the error lands on that row's form, with the typed value.
    page.fill(f"#hx-todos-rename-{milk}-title", "")
    with page.expect_navigation():
        page.click(f"#hx-todos-rename-{milk} button[type=submit]")
    expect(page.locator(f"#hx-todos-rename-{milk}-title-error")).to_have_text(LENGTH_ERROR)
    expect(page.locator(f"#hx-todos-rename-{milk}-title")).to_have_value("")
    expect(page.locator(f"#todo-{milk} .title")).to_have_text("Buy milk")
    _screenshot(page, tmp_path, "demo-nojs.png")

    # Upload without JavaScript: a multipart POST, then the link on the page.
    page.set_input_files(
        f"#hx-todos-attach-{milk}-file",
        files=[{"name": "list.txt", "mimeType": "text/plain", "buffer": b"milk\n"}],
    )
    with page.expect_navigation():
        page.click(f"#hx-todos-attach-{milk} button[type=submit]")
    expect(page.locator(f"#todo-{milk} ul.attachments a")).to_have_text("list.txt")

    # Delete, then sign out.
    with page.expect_navigation():
        page.click(f"#hx-todos-delete-{milk} button")
    expect(page.locator("main")).to_contain_text("Nothing to do yet.")
    expect(page.locator("#stats")).to_have_text("0 of 0 done")
    with page.expect_navigation():
        page.click("#hx-auth-sign-out button")
    expect(page).to_have_url(demo_url + "/auth/sign-in")
