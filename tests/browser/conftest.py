"""Playwright (sync API) fixtures driving Debian's Chromium, and a live server for Flask apps.

Browser tests skip when Chromium is missing (or does not start), unless
HX_ACTIONS_REQUIRE_SERVICES=1 or CI=true, where they fail. `playwright install` is never
needed: the tests use the system browser at HX_ACTIONS_CHROMIUM (default /usr/bin/chromium).

    def test_x(live_server, page_js):
        base = live_server(create_app())
        page_js.goto(base + "/")
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright
    from werkzeug.serving import BaseWSGIServer

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
STATIC_DIR = REPO_ROOT / "static"
CHROMIUM = os.environ.get("HX_ACTIONS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DEFAULT_TIMEOUT_MS = 10_000


def _required() -> bool:
    return (
        os.environ.get("HX_ACTIONS_REQUIRE_SERVICES") == "1"
        or os.environ.get("CI", "").lower() == "true"
    )


def _unavailable(reason: str) -> NoReturn:
    if _required():
        pytest.fail(f"{reason} (required: HX_ACTIONS_REQUIRE_SERVICES=1 or CI=true)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees every collected item: mark only the tests under tests/browser/.
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"the playwright package is not installed: {exc}")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    from playwright.sync_api import Error as PlaywrightError

    try:
        instance = playwright_session.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=30_000
        )
    except PlaywrightError as exc:
        _unavailable(f"Chromium at {CHROMIUM} did not start: {exc.message.splitlines()[0]}")
    try:
        yield instance
    finally:
        instance.close()


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's handler without the per-request access log (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def live_server() -> Iterator[Callable[..., str]]:
    """Factory: `live_server(app)` serves a WSGI app on 127.0.0.1 and returns its base URL.

    Each server runs `serve_forever` in a daemon thread (threaded=True: one thread per
    connection) on a port the OS picked; all are shut down and closed at teardown.
    """
    started: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(app: Callable[..., object]) -> str:
        server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_QuietRequestHandler
        )
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"live-server-{server.server_port}",
            daemon=True,
        )
        thread.start()
        started.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive(), f"{thread.name} did not stop"


def _record_console(msg: ConsoleMessage, errors: list[str]) -> None:
    # Chromium logs every 4xx/5xx answer as "Failed to load resource": those are expected
    # (422 and refusals are part of the protocol), so only script errors are kept.
    if msg.type in ("error", "warning") and not msg.text.startswith("Failed to load resource"):
        errors.append(f"console.{msg.type}: {msg.text}")


def _new_page(browser: Browser, *, javascript: bool, errors: list[str] | None) -> Iterator[Page]:
    context = browser.new_context(java_script_enabled=javascript)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        page = context.new_page()
        if errors is not None:
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: _record_console(msg, errors))
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def static_dir() -> Path:
    """This repository's static/ (vendored htmx.min.js, hx-actions.js)."""
    return STATIC_DIR


@pytest.fixture
def js_errors() -> list[str]:
    """Uncaught exceptions and console errors/warnings of `page_js` (not failed loads)."""
    return []


@pytest.fixture
def page_js(browser: Browser, js_errors: list[str]) -> Iterator[Page]:
    """A page in a fresh browser context with JavaScript on."""
    yield from _new_page(browser, javascript=True, errors=js_errors)


@pytest.fixture
def page_nojs(browser: Browser) -> Iterator[Page]:
    """A page in a fresh browser context with JavaScript off (plain HTML forms)."""
    yield from _new_page(browser, javascript=False, errors=None)
