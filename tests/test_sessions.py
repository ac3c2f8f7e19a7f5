"""flask_hx_actions.sessions: Flask's cookie sessions, the same cookies, at a lower cost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous.timed import TimestampSigner
from werkzeug.test import EnvironBuilder

from flask_hx_actions import HxActions, signing
from flask_hx_actions.sessions import CookieSessionInterface, will_vary_on_cookie

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


def test_lifetime_in_seconds_cookie_name_and_session_class_as_flask_reads_them() -> None:
    class Marked(SecureCookieSession):
        pass

    for interface in (SecureCookieSessionInterface(), CookieSessionInterface()):
        app = make_app(PERMANENT_SESSION_LIFETIME=100, SESSION_COOKIE_NAME="sid")
        interface.session_class = Marked
        app.session_interface = interface

        @app.get("/kind")
        def kind() -> str:
            return type(session._get_current_object()).__name__  # type: ignore[attr-defined]

        with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: NOW):
            client = app.test_client()
            client.get("/set")
            assert client.get_cookie("sid") is not None
            assert "('n', 1)" in client.get("/get").text
            assert client.get("/kind").text == "Marked"
        with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: NOW + 101):
            assert client.get("/get").text == "[]"  # 100 seconds, given as an int
            assert client.get("/kind").text == "Marked"  # an expired cookie: a new session
        client.delete_cookie("sid")
        assert client.get("/kind").text == "Marked"  # no cookie: a new session


def test_a_subclass_keeps_flasks_steps() -> None:
    class Named(CookieSessionInterface):
        def get_cookie_name(self, app: Flask) -> str:
            return "named"

    app = make_app()
    app.session_interface = Named()
    client = app.test_client()
    client.get("/set")
    assert client.get_cookie("named") is not None
    assert "('n', 1)" in client.get("/get").text


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


def answers_of(app: Flask, scenario: str, cookie: str | None) -> tuple[str | None, list[str]]:
    """``Vary`` and the ``Set-Cookie`` headers of one request running ``scenario``."""
    client = app.test_client()
    if cookie:
        client.set_cookie("session", cookie)
    answer = client.get(f"/s/{scenario}")
    return answer.headers.get("Vary"), answer.headers.getlist("Set-Cookie")


def scenario_app(interface: SecureCookieSessionInterface, **config: object) -> Flask:
    app = make_app(**config)
    app.session_interface = interface

    @app.get("/s/<scenario>")
    def scenario(scenario: str) -> tuple[str, int, dict[str, str]]:
        headers = {"Vary": "Accept-Encoding"} if scenario.endswith("-vary") else {}
        if scenario.startswith("read"):
            session.get("n")
        elif scenario.startswith("write"):
            session["n"] = 5
        elif scenario.startswith("clear"):
            session.clear()
        elif scenario.startswith("permanent"):
            session.permanent = True
        elif scenario.startswith("quoted-vary"):
            session.get("n")
            headers = {"Vary": 'Accept-Encoding, "odd value"'}
        return "ok", 200, headers

    return app


@pytest.mark.parametrize(
    "scenario",
    ["none", "read", "read-vary", "write", "write-vary", "clear", "permanent", "quoted-vary"],
)
@pytest.mark.parametrize("refresh", [True, False])
def test_save_session_answers_as_flask_does(scenario: str, refresh: bool) -> None:
    """Every branch of save_session (nothing read, read, written, emptied, made permanent, with
    and without a Vary header of the view's own) gives Flask's headers, byte for byte."""
    config = {"SESSION_REFRESH_EACH_REQUEST": refresh}
    # A permanent session's cookie expires "now + lifetime": one fixed now for both interfaces,
    # or two answers a second apart would differ in Expires.
    expires = dt.datetime.fromtimestamp(NOW, dt.UTC) + dt.timedelta(days=31)
    with (
        mock.patch.object(TimestampSigner, "get_timestamp", lambda self: NOW),
        mock.patch.object(
            SecureCookieSessionInterface,
            "get_expiration_time",
            lambda self, app, session: expires if session.permanent else None,
        ),
    ):
        flask_app = scenario_app(SecureCookieSessionInterface(), **config)
        ours = scenario_app(CookieSessionInterface(), **config)
        permanent = cookie_of(scenario_app(SecureCookieSessionInterface()), "/s/permanent")
        for cookie in (None, cookie_of(flask_app), permanent):
            assert answers_of(ours, scenario, cookie) == answers_of(flask_app, scenario, cookie)


@pytest.mark.parametrize(
    "scenario",
    ["none", "read", "read-vary", "write", "write-vary", "clear", "permanent", "quoted-vary"],
)
@pytest.mark.parametrize("ours", [True, False])
def test_will_vary_on_cookie_only_when_the_save_adds_cookie(scenario: str, ours: bool) -> None:
    """The action pipeline adds ``Cookie`` to ``Vary`` ahead of the session's save when
    ``will_vary_on_cookie`` says the save will: it must never say so when the save would not."""
    interface = CookieSessionInterface() if ours else SecureCookieSessionInterface()
    app = scenario_app(interface)
    said: list[bool] = []

    @app.after_request
    def record(response: Any) -> Any:
        said.append(will_vary_on_cookie(app))
        return response

    for cookie in (None, cookie_of(scenario_app(SecureCookieSessionInterface()))):
        said.clear()
        vary, _ = answers_of(app, scenario, cookie)
        if said == [True]:
            assert vary is not None and "cookie" in vary.lower()
    if scenario == "read":  # a read of a non-empty session: the case the pipeline shortens
        assert said == [True]


@settings(max_examples=300, deadline=None)
@given(header=st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=80))
def test_request_cookies_are_werkzeugs(header: str) -> None:
    """open_session fills request.cookies itself: the same values Werkzeug's Request.cookies
    gives, for any Cookie header a WSGI server can pass (latin-1 text)."""
    app = make_app()
    app.session_interface = CookieSessionInterface()
    environ = EnvironBuilder(path="/").get_environ()
    environ["HTTP_COOKIE"] = header
    expected = Request(environ).cookies
    with app.request_context(environ):
        assert "cookies" in request.__dict__  # filled by open_session, not by Werkzeug
        assert list(request.cookies.items(multi=True)) == list(expected.items(multi=True))
        assert type(request.cookies) is type(expected)


def test_request_without_a_cookie_header() -> None:
    app = make_app()
    app.session_interface = CookieSessionInterface()
    with app.test_request_context("/"):
        assert dict(request.cookies) == {} and dict(session) == {}


def test_a_cookie_header_seen_again_gives_the_same_immutable_cookies() -> None:
    from werkzeug.datastructures import ImmutableMultiDict, MultiDict

    from flask_hx_actions.sessions import _COOKIES_HEADER_MAX, cookies_of

    first = cookies_of("a=1; b=2", ImmutableMultiDict)
    assert cookies_of("a=1; b=2", ImmutableMultiDict) is first
    assert dict(first) == {"a": "1", "b": "2"}
    with pytest.raises(TypeError):
        first["a"] = "3"  # type: ignore[index]
    # A mutable class, or a header too long to remember, is parsed anew each time.
    assert cookies_of("a=1", MultiDict) is not cookies_of("a=1", MultiDict)
    long = "c=" + "x" * _COOKIES_HEADER_MAX
    assert cookies_of(long, ImmutableMultiDict) is not cookies_of(long, ImmutableMultiDict)


@pytest.mark.parametrize("ours", [True, False])
def test_will_vary_on_cookie_is_false_for_a_null_session(ours: bool) -> None:
    """Without a secret key the session is Flask's NullSession: its save sets no header."""
    app = Flask(__name__)
    app.session_interface = CookieSessionInterface() if ours else SecureCookieSessionInterface()
    with app.test_request_context("/"):
        current = app.session_interface.open_session(app, request._get_current_object())  # type: ignore[attr-defined]
        assert current is None
        null = app.session_interface.make_null_session(app)
        dict.__setitem__(null, "x", 1)  # not empty, and read
        null.accessed = True
        from flask.globals import request_ctx

        request_ctx._session = null  # Flask 3.1 keeps it there (the property marks it read)
        assert not will_vary_on_cookie(app)


def test_is_null_session_answers_as_flasks() -> None:
    from flask.sessions import NullSession

    class Marked(SecureCookieSession):
        pass

    class OwnNull(SecureCookieSession):
        pass

    objects = [SecureCookieSession(), NullSession(), Marked(), OwnNull(), {}, None]
    for null_class in (NullSession, OwnNull):
        ours, theirs = CookieSessionInterface(), SecureCookieSessionInterface()
        ours.null_session_class = theirs.null_session_class = null_class
        for obj in objects:
            assert ours.is_null_session(obj) is theirs.is_null_session(obj), (null_class, obj)


@pytest.mark.parametrize(
    "storage", ["werkzeug.datastructures.ImmutableMultiDict", "werkzeug.datastructures.MultiDict"]
)
def test_the_first_session_cookie_of_several_is_read_as_flask_reads_it(storage: str) -> None:
    """Two cookies of the session's name: Flask reads the first, with Werkzeug's immutable
    cookies (read without MultiDict.get) and with an app's own storage class."""
    import importlib

    module, _, name = storage.rpartition(".")
    storage_class = getattr(importlib.import_module(module), name)
    good = cookie_of(make_app())
    answers = []
    for interface in (CookieSessionInterface(), SecureCookieSessionInterface()):
        app = make_app()
        app.session_interface = interface
        app.request_class = type("Own", (Request,), {"dict_storage_class": storage_class})
        for header in (f"session={good}; session=bad", f"session=bad; session={good}", ""):
            environ = EnvironBuilder(path="/get", headers={"Cookie": header}).get_environ()
            with app.request_context(environ):
                answers.append((header, sorted(session.items())))
    half = len(answers) // 2
    assert answers[:half] == answers[half:]
    assert answers[0][1] != [] and answers[1][1] == []  # the first cookie counts
