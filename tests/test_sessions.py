"""flask_hx_actions.sessions: Flask's cookie sessions, the same cookies, at a lower cost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from unittest import mock

import pytest
from flask import Flask, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous.timed import TimestampSigner

from flask_hx_actions import HxActions, signing
from flask_hx_actions.sessions import CookieSessionInterface

NOW = 1_800_000_000


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    signing._VERIFIED.clear()
    yield
    signing._VERIFIED.clear()


def make_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.secret_key = "secret"
    app.config.update(config)

    @app.get("/set")
    def set_() -> str:
        session["n"] = session.get("n", 0) + 1
        session["when"] = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
        session["pair"] = (1, "x")
        return "ok"

    @app.get("/get")
    def get() -> str:
        return repr(sorted(session.items()))

    return app


def cookie_of(app: Flask, path: str = "/set", cookie: str | None = None) -> str:
    client = app.test_client()
    if cookie:
        client.set_cookie("session", cookie)
    client.get(path)
    found = client.get_cookie("session")
    assert found is not None
    return found.value


def test_installed_in_place_of_flasks_default_only() -> None:
    app = make_app()
    HxActions(app)
    assert type(app.session_interface) is CookieSessionInterface

    class Own(SecureCookieSessionInterface):
        pass

    custom = make_app()
    custom.session_interface = Own()
    HxActions(custom)
    assert type(custom.session_interface) is Own
    off = make_app(HX_ACTIONS_FAST_SESSION=False)
    HxActions(off)
    assert type(off.session_interface) is SecureCookieSessionInterface


def test_the_same_cookies_as_flask() -> None:
    flask_app, ours = make_app(), make_app()
    ours.session_interface = CookieSessionInterface()
    with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: NOW):
        assert cookie_of(flask_app) == cookie_of(ours)
        # and each reads the other's, tagged values (datetime, tuple) included
        for writer, reader in ((flask_app, ours), (ours, flask_app)):
            client = reader.test_client()
            client.set_cookie("session", cookie_of(writer))
            text = client.get("/get").text
            assert "('n', 1)" in text and "('pair', (1, 'x'))" in text and "2026, 11, 25" in text


def test_a_remembered_cookie_still_expires_and_is_decoded_afresh() -> None:
    app = make_app(PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=100))
    app.session_interface = CookieSessionInterface()
    with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: NOW):
        cookie = cookie_of(app)
        client = app.test_client()
        client.set_cookie("session", cookie)
        assert "('n', 1)" in client.get("/get").text
        assert len(signing._VERIFIED) == 1
        # a request that changes its copy of the session does not change the remembered one
        assert cookie_of(app, "/set", cookie) != cookie
        assert "('n', 1)" in client.get("/get").text
    with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: NOW + 101):
        assert client.get("/get").text == "[]"  # expired: an empty session, as with Flask


def test_tampered_cookies_and_rotated_keys() -> None:
    app = make_app()
    app.session_interface = CookieSessionInterface()
    cookie = cookie_of(app)
    client = app.test_client()
    client.set_cookie("session", cookie)
    assert "('n', 1)" in client.get("/get").text
    payload, stamp, signature = cookie.split(".")
    client.set_cookie("session", f"{payload}A.{stamp}.{signature}")
    assert client.get("/get").text == "[]"
    app.secret_key = "new"
    client.set_cookie("session", cookie)
    assert client.get("/get").text == "[]"  # the old key alone no longer verifies it
    app.config["SECRET_KEY_FALLBACKS"] = ["secret"]
    assert "('n', 1)" in client.get("/get").text
