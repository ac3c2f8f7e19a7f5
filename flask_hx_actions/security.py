"""Security steps of the lifecycle: origin gate, CSRF token, signed bound arguments, redirects.

Each check raises one of the refusals in :mod:`flask_hx_actions.errors` before any user code runs.
The CSRF token is Flask-WTF's (``validate_csrf``); the HTTPS Referer check that ``CSRFProtect``
adds on top of it is done here too, because calling ``validate_csrf`` directly skips it. Bound
arguments are signed with itsdangerous (JSON, one salt per action, bound to the session and user).
"""

from __future__ import annotations

import base64
import functools
import hmac
import os
import re
import secrets
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, session
from flask.globals import _cv_request
from itsdangerous import BadData, BadSignature, SignatureExpired
from wtforms.validators import ValidationError

from .context import BOUND_SERIALIZERS, flags, form_value
from .errors import BoundArgumentsInvalid, CSRFRefused, OriginRefused
from .headers import request_header
from .signing import Serializer, remember

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_SESSION_ID_KEY = "_hx_sid"
#: The form field hx-actions.js puts the page's CSRF token in (from ``<meta name="csrf-token">``);
#: the ``X-CSRFToken`` header is still read when the field is absent.
PAGE_CSRF_FIELD = "_hx_csrf"


# -- origin gate ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port.

    A value that does not parse (``http://[``) gives a string no real origin equals, so the
    checks refuse it instead of failing with a 500. Remembered (a bounded LRU): every action
    request reads its own origin and the ``Origin`` header, which are nearly always the same."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return f"invalid:{value!r}"
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and str(port) != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


#: A serialised origin as browsers send it in ``Origin`` (RFC 6454): scheme, host and port.
_SERIALISED_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\\\s]+")


@functools.lru_cache(maxsize=1024)
def header_origin(value: str) -> str:
    """The ``Origin`` header's value, normalised; a string no origin equals when the value is
    more than a serialised origin (a path, query, fragment or user info, which browsers never
    send and :func:`normalise_origin` would drop: ``http://evil.example@app.example``)."""
    if _SERIALISED_ORIGIN.fullmatch(value) is None:
        return f"invalid:{value!r}"
    return normalise_origin(value)


def own_origin(request: Request, configured: str | None) -> str:
    """The origin of this app: ``HX_ACTIONS_ORIGIN`` when set, else the request's scheme and host.

    Proxy headers (``X-Forwarded-Proto``/``-Host``) count only when the app trusts them explicitly
    with Werkzeug's ``ProxyFix``, which rewrites ``request.scheme`` and ``request.host``.
    """
    if configured:
        return normalise_origin(configured)
    return normalise_origin(f"{request.scheme}://{request.host}")


def check_origin(request: Request, own: str, trusted: frozenset[str]) -> None:
    """Refuse requests a browser marks as coming from another site.

    ``Sec-Fetch-Site: same-origin`` or ``none`` pass; ``same-site`` passes only with a trusted
    ``Origin``; anything else is refused. Then ``Origin``, when sent, must be this app's origin or a
    trusted one (``null`` only with ``Sec-Fetch-Site: same-origin``: a no-referrer page's own
    forms). With neither header the CSRF token decides.
    """
    environ = request.environ  # the headers, without EnvironHeaders (see headers.py)
    origin = environ.get("HTTP_ORIGIN")
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if (
        site is not None
        and site not in ("same-origin", "none")
        and (site != "same-site" or origin is None or header_origin(origin) not in trusted)
    ):
        raise OriginRefused()
    if origin is not None:
        if origin == "null":
            # A page with ``Referrer-Policy: no-referrer`` makes the browser send ``Origin:
            # null`` with its own forms; ``Sec-Fetch-Site: same-origin`` (which no page can
            # forge) then says where the form came from. Without it, null is refused.
            if site == "same-origin":
                return
            raise OriginRefused()
        origin = header_origin(origin)
        if origin != own and origin not in trusted:
            raise OriginRefused()


def trusted_origins(values: Iterable[str]) -> frozenset[str]:
    return frozenset(normalise_origin(v) for v in values)


# -- CSRF ----------------------------------------------------------------------------------------


def check_csrf(request: Request, app: Flask, own: str) -> None:
    """Validate the Flask-WTF CSRF token: from the form's own field, else the ``_hx_csrf`` field
    hx-actions.js adds from the page's meta tag, else the ``X-CSRFToken`` header."""
    config = app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return
    field_name = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    form = request.form
    form_token = form_value(form, field_name)
    page_token = form_value(form, PAGE_CSRF_FIELD)
    header_token = None
    environ = request.environ
    if not page_token:
        for header in config.get("WTF_CSRF_HEADERS", ("X-CSRFToken", "X-CSRF-Token")):
            header_token = request_header(environ, header)
            if header_token:
                break
    from_page = page_token or header_token
    token = form_token or from_page
    try:
        validate_csrf(app, token)
    except ValidationError as exc:
        raise CSRFRefused(description=f"{exc.args[0]} Reload the page and try again.") from None
    if from_page and from_page == token and environ.get("HTTP_HX_REQUEST") == "true":
        # The page sends a valid token of its own (hx-actions.js, from the page's meta tag):
        # forms re-rendered in this htmx answer need no token input of their own.
        flags()["_hx_csrf_by_header"] = True
    if (
        request.is_secure
        and config.get("WTF_CSRF_SSL_STRICT", True)
        and "HTTP_ORIGIN" not in environ
        and "HTTP_SEC_FETCH_SITE" not in environ
    ):
        referrer = request.referrer
        if not referrer:
            raise CSRFRefused(description="The referrer header is missing.")
        if normalise_origin(referrer) != own:
            raise CSRFRefused(description="The referrer does not match this site.")


def validate_csrf(app: Flask, data: str | None) -> None:
    """Flask-WTF's ``validate_csrf(data)``: the same configuration, token format, session key,
    time limit and error messages, with one serializer (and its derived key and keyed HMAC) per
    secret instead of a new ``URLSafeTimedSerializer`` per call."""
    config = app.config
    secret_key = config.get("WTF_CSRF_SECRET_KEY", app.secret_key)
    if secret_key is None:
        raise RuntimeError("A secret key is required to use CSRF.")
    field_name = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if field_name is None:
        raise RuntimeError("A field name is required to use CSRF.")
    time_limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)
    if not data:
        raise ValidationError("The CSRF token is missing.")
    current = current_session()
    if field_name not in current:
        raise ValidationError("The CSRF session token is missing.")
    serializer = _CSRF_SERIALIZERS.get(secret_key)
    if serializer is None:
        serializer = Serializer([secret_key], salt="wtf-csrf-token")
        if len(_CSRF_SERIALIZERS) >= 8:
            _CSRF_SERIALIZERS.clear()
        _CSRF_SERIALIZERS[secret_key] = serializer
    try:
        token = serializer.loads(data, max_age=time_limit)
    except SignatureExpired as e:
        raise ValidationError("The CSRF token has expired.") from e
    except BadData as e:
        raise ValidationError("The CSRF token is invalid.") from e
    if not hmac.compare_digest(current[field_name], token):
        raise ValidationError("The CSRF tokens do not match.")


# -- bound arguments -----------------------------------------------------------------------------


#: Random idempotency keys and request ids, cut from one ``os.urandom`` block at a time: a page
#: holds a fresh key per form and every action answer has a request id, and each ``os.urandom``
#: call is a ``getrandom`` system call. ``secrets.token_urlsafe`` per key costs three times as
#: much; ``secrets.token_hex(8)`` per request id 410 ns, a cut id 130 ns (``timeit`` on the
#: benchmark's VM). Each key is 22 base64url characters of its block: 132 random bits, as
#: ``secrets.token_urlsafe(16)`` gives; each request id 16 hex characters, 64 random bits, as
#: ``secrets.token_hex(8)`` gives.
_KEY_CHARS = 22
_KEYS_PER_BLOCK = 128
_keys: list[str] = []
_ID_CHARS = 16
_IDS_PER_BLOCK = 128
_ids: list[str] = []


def current_session() -> Any:
    """The session of this request without its proxy (the proxy itself outside a request, for
    its usual error)."""
    ctx = _cv_request.get(None)
    return session if ctx is None else ctx.session


def fresh_key() -> str:
    """A new random idempotency key (22 URL-safe characters, like ``token_urlsafe(16)``)."""
    try:
        return _keys.pop()
    except IndexError:
        # 33 bytes are 44 characters, two keys, with no padding.
        block = base64.urlsafe_b64encode(os.urandom(33 * _KEYS_PER_BLOCK // 2)).decode("ascii")
        return _refill(_keys, block, _KEY_CHARS)


def fresh_request_id() -> str:
    """A new random request id (16 hex characters, like ``token_hex(8)``)."""
    try:
        return _ids.pop()
    except IndexError:
        return _refill(_ids, os.urandom(_ID_CHARS // 2 * _IDS_PER_BLOCK).hex(), _ID_CHARS)


def _refill(pool: list[str], block: str, size: int) -> str:
    """Cut ``block`` into pieces of ``size`` characters: one to return, the rest into ``pool``
    (``list.pop`` and ``list.extend`` are atomic: threads never get the same piece)."""
    pieces = [block[i : i + size] for i in range(0, len(block), size)]
    piece = pieces.pop()
    pool.extend(pieces)
    return piece


def _forget_random_pools() -> None:
    """A forked worker must not hand out the keys and ids its parent (or a sibling) holds."""
    _keys.clear()
    _ids.clear()


os.register_at_fork(after_in_child=_forget_random_pools)


def session_id() -> str:
    """This browser session's random id (created, and so sent as a cookie, on first use).

    Pages call it when they render a form, so the session exists before the first submit: an
    anonymous user's retried submit then finds its idempotency key under the same session."""
    current = current_session()
    sid = current.get(_SESSION_ID_KEY)
    if sid is None:
        sid = secrets.token_urlsafe(12)
        current[_SESSION_ID_KEY] = sid
    return str(sid)


def session_binding(identity: Any, sid: str | None = None) -> str:
    """A value that ties signed data to this browser session and, when signed in, to the user.
    ``sid``: this session's id, when the caller has it already."""
    return f"{session_id() if sid is None else sid}|{'' if identity is None else identity}"


#: Serializers of recent (keys, action, session binding) triples, shared by the requests of a
#: session: building one derives its key and keys an HMAC. Bounded; oldest out first.
_SERIALIZERS: dict[tuple[Any, ...], Serializer] = {}
_SERIALIZERS_MAX = 512
#: The CSRF token serializer of each secret key (see :func:`validate_csrf`).
_CSRF_SERIALIZERS: dict[Any, Serializer] = {}


def _serializer(app: Flask, endpoint: str, binding: str) -> Serializer:
    config = app.config
    secret = config["SECRET_KEY"]  # app.secret_key, without its descriptor
    if secret is None:
        raise RuntimeError("flask-hx-actions needs app.secret_key to sign bound arguments.")
    fallbacks = config.get("SECRET_KEY_FALLBACKS")
    # The "|" keeps (key, fallbacks) apart from (endpoint, binding); without fallbacks, the
    # shorter tuple cannot equal one with them.
    key = (secret, *fallbacks, "|", endpoint, binding) if fallbacks else (secret, endpoint, binding)
    found = _SERIALIZERS.get(key)
    if found is None:
        keys: list[Any] = [*(fallbacks or ()), secret]
        found = Serializer(keys, salt=f"hx-actions.bound|{endpoint}|{binding}")
        remember(_SERIALIZERS, key, found, _SERIALIZERS_MAX)
    return found


def sign_bound(
    app: Flask,
    endpoint: str,
    values: Mapping[str, Any],
    binding: str,
    frozen: tuple[Any, ...] | None = None,
) -> str:
    """Sign ``values`` for ``endpoint``: readable by the client, not changeable by it.
    ``frozen``: ``signing.freeze_scalars(values)`` when the caller has it already."""
    return _sign_with(_serializer(app, endpoint, binding), endpoint, values, frozen)


class RequestSigning:
    """What the forms of one request sign bound arguments with: the session they are bound to,
    its id, and the serializer of each action for that session and identity. Built by the first
    form a request renders (:func:`request_signing`), kept in ``g`` and built again when the
    session's id changes (a view that clears the session gets a new one), in another request
    context sharing this ``g``, or when the identity may have changed
    (:func:`context.forget_identity` drops it)."""

    __slots__ = ("request_ctx", "session", "sid", "signers")

    def __init__(self, request_ctx: Any, current: Any, sid: str) -> None:
        # Weakly: held in ``g``, the request context (which holds ``g``) would make a cycle.
        self.request_ctx = weakref.ref(request_ctx)
        self.session = current
        self.sid = sid
        self.signers: dict[str, Serializer] = {}


def request_signing(values: dict[str, Any] | None = None) -> RequestSigning:
    """This request's :class:`RequestSigning`, with the session id created when missing (as
    :func:`session_id` does). A page asks once per row: after the first time, the id is read
    from the session's dict directly, which does not mark the session as accessed again.
    ``values``: :func:`context.flags`, when the caller has it already."""
    if values is None:
        values = flags()
    request_ctx = _cv_request.get(None)
    known: RequestSigning | None = values.get(BOUND_SERIALIZERS)
    if known is not None and known.request_ctx() is request_ctx:
        current = known.session
        if isinstance(current, dict):  # Flask's sessions
            sid = dict.get(current, _SESSION_ID_KEY)
        else:
            sid = current.get(_SESSION_ID_KEY)
        if sid is not None and sid == known.sid:
            return known
    sid = session_id()
    known = values[BOUND_SERIALIZERS] = RequestSigning(request_ctx, current_session(), sid)
    return known


def sign_bound_for_request(
    app: Flask,
    state: Any,
    endpoint: str,
    values: Mapping[str, Any],
    frozen: tuple[Any, ...] | None = None,
    signing: RequestSigning | None = None,
) -> str:
    """:func:`sign_bound` for this request's session binding, with the serializer of each
    action remembered for the rest of the request (a page signs one form per row).
    ``signing``: :func:`request_signing`, when the caller has it already."""
    if signing is None:
        signing = request_signing()
    signer = signing.signers.get(endpoint)
    if signer is None:
        binding = session_binding(state.identity(), signing.sid)
        signer = signing.signers[endpoint] = _serializer(app, endpoint, binding)
    return _sign_with(signer, endpoint, values, frozen)


def _sign_with(
    signer: Serializer, endpoint: str, values: Mapping[str, Any], frozen: tuple[Any, ...] | None
) -> str:
    plain = values if type(values) is dict else dict(values)
    try:
        return signer.dumps_recent(plain, frozen)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"bind= values for {endpoint!r} must be JSON-serialisable: {exc}") from None


def verify_bound(
    app: Flask, endpoint: str, token: str | None, binding: str, max_age: int
) -> dict[str, Any]:
    """The values signed into ``token``; :class:`BoundArgumentsInvalid` when anything is off."""
    if not token:
        raise BoundArgumentsInvalid(description="This form is missing its bound arguments.")
    try:
        values = _serializer(app, endpoint, binding).loads(token, max_age=max_age)
    except SignatureExpired:
        raise BoundArgumentsInvalid(
            description="This form has expired. Reload the page and try again."
        ) from None
    except BadSignature:
        raise BoundArgumentsInvalid() from None
    if not isinstance(values, dict):
        raise BoundArgumentsInvalid()
    return values


# -- redirect targets ----------------------------------------------------------------------------


def is_safe_path(target: str) -> bool:
    """True for a path on this site (``/todos/?page=2``); false for anything a browser could read
    as another host (``//evil``, ``/\\evil``, ``https://...``, control characters)."""
    if not target or target[0] != "/":
        return False
    if len(target) > 1 and target[1] in "/\\":
        return False
    for char in target:
        code = ord(char)
        if code < 0x21 or code == 0x7F or char == "\\":
            return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


#: Answers of :func:`safe_target` for recent (value, own origin) pairs: a page's forms send the
#: same ``Referer`` again and again. Bounded in count and in the length of what it keeps.
_SAFE_TARGETS: dict[tuple[str, str], str | None] = {}
_SAFE_TARGETS_MAX = 1024
_SAFE_TARGET_LENGTH_MAX = 512
_UNKNOWN = object()


def safe_target(value: str | None, own: str) -> str | None:
    """``value`` as a same-origin path, or ``None``: a path or an absolute URL of ``own``."""
    if not value:
        return None
    if len(value) > _SAFE_TARGET_LENGTH_MAX:
        return _safe_target(value, own)
    key = (value, own)
    found = _SAFE_TARGETS.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        found = _safe_target(value, own)
        remember(_SAFE_TARGETS, key, found, _SAFE_TARGETS_MAX)
    return found  # type: ignore[return-value]


def _safe_target(value: str, own: str) -> str | None:
    if value.startswith("/"):
        return value if is_safe_path(value) else None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if normalise_origin(f"{parts.scheme}://{parts.netloc}") != own:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path if is_safe_path(path) else None
