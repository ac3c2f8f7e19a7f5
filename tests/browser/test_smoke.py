"""The vendored htmx and hx-actions.js load in Chromium; a plain form POST works without JS."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path

import pytest
from flask import Flask, redirect, request, url_for
from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>smoke</title>
  <script src="/static/htmx.min.js"></script>
  <script src="/static/hx-actions.js"></script>
</head>
<body>
  <p id="said">{said}</p>
  <form method="post" action="/say">
    <label for="words">Words</label> <input id="words" name="words">
    <button type="submit">Say</button>
  </form>
</body>
</html>
"""


def smoke_app(static_dir: Path) -> Flask:
    app = Flask(__name__, static_folder=str(static_dir), static_url_path="/static")

    @app.get("/")
    def index() -> str:
        return PAGE.format(said=escape(request.args.get("said", "nothing yet")))

    @app.post("/say")
    def say():  # Post/Redirect/Get, as an action answers a plain form POST
        return redirect(url_for("index", said=request.form.get("words", "")), code=303)

    return app


def test_htmx_and_runtime_load(
    live_server: Callable[[Flask], str], static_dir: Path, page_js: Page, js_errors: list[str]
) -> None:
    page_js.goto(live_server(smoke_app(static_dir)) + "/")
    assert page_js.evaluate("htmx.version") == "2.0.10"
    assert page_js.evaluate("window.hxActions && window.hxActions.version") == "0.1.0"
    assert page_js.evaluate("Object.isFrozen(window.hxActions)") is True
    assert js_errors == []


def test_plain_form_post_without_javascript(
    live_server: Callable[[Flask], str], static_dir: Path, page_nojs: Page
) -> None:
    base = live_server(smoke_app(static_dir))
    page_nojs.goto(base + "/")
    # Playwright can still evaluate, but the page's own scripts never ran.
    assert page_nojs.evaluate("typeof window.htmx") == "undefined"
    page_nojs.fill("#words", "hello <world>")
    with page_nojs.expect_navigation():
        page_nojs.click("button[type=submit]")
    assert page_nojs.url.startswith(base + "/?said=")
    assert page_nojs.text_content("#said") == "hello <world>"
