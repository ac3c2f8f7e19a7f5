"""Flask's signed-cookie session at a lower cost per request; the cookies are the same bytes.

Every action request reads the session (Flask-WTF keeps the CSRF token there, bound arguments
are tied to the session), and Flask's ``SecureCookieSessionInterface`` builds a new
``URLSafeTimedSerializer`` for each request: its constructor serialises ``{}`` to learn the
payload serializer's type, and every cookie then derives its key and keys a new HMAC. That was
about a tenth of an htmx action's time in the benchmark. :class:`CookieSessionInterface` is
Flask's class with one serializer per key list, kept and reused
(:class:`~flask_hx_actions.signing.Serializer`: a reused signer and a bounded memo of verified
cookies whose age is still checked on every request).

Four more per-request costs of Flask's class are cut, with the same outcome:

- ``open_session`` fills ``request.cookies`` from the ``HTTP_COOKIE`` environ key with the
  parser Werkzeug's ``Request.cookies`` uses; Werkzeug gets the header through
  ``EnvironHeaders.getlist``, which walks and renames every key of the WSGI environ. The parsed
  (immutable) mapping of a recent header is reused (:func:`cookies_of`).
- ``open_session`` then takes Flask's steps itself (for this class, not a subclass), reading the
  cookie name and the lifetime straight from the config; the lifetime's whole seconds are
  remembered per config value.
- ``is_null_session`` of Flask's own cookie session class answers without an ``isinstance``
  through the ABCs of ``SessionMixin`` (Flask asks it after every request).
- ``save_session`` of a session that sets no cookie (not modified, no refresh of a permanent
  session) only adds ``Vary: Cookie`` when the session was read, without parsing the ``Vary``
  header into a ``HeaderSet`` and writing it back when it holds plain tokens
  (:func:`~flask_hx_actions.headers.add_vary`).

``HxActions`` installs it only where the app still has Flask's own default interface
(``HX_ACTIONS_FAST_SESSION``, on by default); an app with its own session interface (a
server-side session, a subclass) keeps it untouched.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from flask.globals import _cv_request
from flask.sessions import (
    NullSession,
    SecureCookieSession,
    SecureCookieSessionInterface,
    SessionInterface,
    SessionMixin,
)
from itsdangerous import BadSignature
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.sansio.http import parse_cookie

from .headers import add_vary
from .signing import Serializer, remember

if TYPE_CHECKING:
    from flask import Flask, Request, Response

_MAX_SERIALIZERS = 16


class CookieSessionInterface(SecureCookieSessionInterface):
    """``SecureCookieSessionInterface`` with its signing serializer kept per key list."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[Any, ...], Serializer] = {}

    def get_signing_serializer(self, app: Flask) -> Serializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)  # newest last
        found = self._serializers.get(keys)
        if found is None:
            if len(self._serializers) >= _MAX_SERIALIZERS:
                self._serializers.clear()
            found = self._serializers[keys] = Serializer(
                list(keys),
                salt=self.salt,
                serializer=self.serializer,
                key_derivation=self.key_derivation,
                digest_method=_digest(self.digest_method),
            )
        return found

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        cached = request.__dict__
        cookies = cached.get("cookies")
        if cookies is None:  # what Werkzeug's cached property would hold
            cookies = cached["cookies"] = cookies_of(
                request.environ.get("HTTP_COOKIE", ""), request.dict_storage_class
            )
        if type(self) is not CookieSessionInterface:  # a subclass may override any step
            return super().open_session(app, request)
        # Flask's steps, with the cookie name and lifetime read straight from the config.
        s = self.get_signing_serializer(app)
        if s is None:
            return None
        config = app.config
        session_class = self.session_class
        name = config["SESSION_COOKIE_NAME"]
        if type(cookies) is ImmutableMultiDict:  # its first value, as get() returns it
            values = dict.get(cookies, name)
            val = values[0] if values else None
        else:
            val = cookies.get(name)
        if not val:
            return session_class()
        try:
            return session_class(
                s.loads(val, max_age=_lifetime_seconds(config["PERMANENT_SESSION_LIFETIME"]))
            )
        except BadSignature:
            return session_class()

    def is_null_session(self, obj: object) -> bool:
        return _is_null(self, obj)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if (
            not isinstance(session, dict)
            or session.modified
            or not session
            # SecureCookieSession.get would mark the session accessed: read past it.
            or (dict.get(session, "_permanent") and app.config["SESSION_REFRESH_EACH_REQUEST"])
        ):
            super().save_session(app, session, response)
        elif session.accessed:  # no cookie to set: Flask would only add "Vary: Cookie"
            add_vary(response, "Cookie")


#: ``PERMANENT_SESSION_LIFETIME`` values (a ``timedelta`` or seconds) in whole seconds.
_LIFETIMES: dict[Any, int] = {}


def _lifetime_seconds(value: Any) -> int:
    """``int(app.permanent_session_lifetime.total_seconds())`` for the config value ``value``."""
    found = _LIFETIMES.get(value)
    if found is None:
        lifetime = value if isinstance(value, timedelta) else timedelta(seconds=value)
        found = int(lifetime.total_seconds())
        remember(_LIFETIMES, value, found, 16)
    return found


def will_vary_on_cookie(app: Flask) -> bool:
    """True when the app's session interface is sure to add ``Cookie`` to ``Vary`` when it saves
    this request's session: Flask's cookie interface (or ours) does so for a session that was
    read and is not empty. The action pipeline then adds ``HX-Request, Cookie`` in one write, and
    the save finds ``Cookie`` there. False when unsure (another interface, nothing read)."""
    request_ctx = _cv_request.get(None)
    current = None if request_ctx is None else request_ctx.session
    if current is None or (
        type(current) is not SecureCookieSession and not isinstance(current, SecureCookieSession)
    ):
        return False
    interface = app.session_interface
    return (
        type(interface) in (CookieSessionInterface, SecureCookieSessionInterface)
        and current.accessed
        and len(current) > 0  # an empty session sets no Vary unless it was emptied now
        and not _is_null(interface, current)
    )


def _is_null(interface: SessionInterface, current: object) -> bool:
    """Flask's ``is_null_session`` (an ``isinstance`` of ``null_session_class``), for an
    interface that does not override it (Flask's cookie interface, or ours); a session of
    exactly Flask's cookie session class is not Flask's ``NullSession``, known without the
    ``isinstance`` through the ABCs of ``SessionMixin``."""
    if type(current) is SecureCookieSession and interface.null_session_class is NullSession:
        return False
    return SessionInterface.is_null_session(interface, current)


#: Parsed ``Cookie`` headers: a browser sends the same header with every request. Only the
#: immutable mapping Werkzeug uses by default is shared between requests; bounded in count and
#: in header length, the header being untrusted input.
_COOKIES: dict[str, ImmutableMultiDict[str, str]] = {}
_COOKIES_MAX = 256
_COOKIES_HEADER_MAX = 4096


def cookies_of(header: str, cls: type[Any]) -> Any:
    """``parse_cookie(header, cls=cls)``, the same object again for a header seen recently."""
    if cls is not ImmutableMultiDict or len(header) > _COOKIES_HEADER_MAX:
        return parse_cookie(header, cls=cls)
    found = _COOKIES.get(header)
    if found is None:
        found = cast("ImmutableMultiDict[str, str]", parse_cookie(header, cls=ImmutableMultiDict))
        remember(_COOKIES, header, found, _COOKIES_MAX)
    return found


def _digest(method: Any) -> Any:
    """Flask's default digest is a lazy wrapper of ``hashlib.sha1`` (for FIPS builds); the
    constructor itself gives the same HMAC through OpenSSL's fast path."""
    try:
        name = method().name
    except Exception:  # a digest that cannot be built without arguments: keep it as it is
        return method
    return hashlib.sha1 if name == "sha1" else method


def install(app: Flask) -> None:
    """Put :class:`CookieSessionInterface` in place of Flask's default interface, and only that."""
    if app.config.get("HX_ACTIONS_FAST_SESSION", True) and (
        type(app.session_interface) is SecureCookieSessionInterface
    ):
        app.session_interface = CookieSessionInterface()
