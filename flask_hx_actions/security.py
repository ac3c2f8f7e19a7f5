"""Security steps of the lifecycle: origin gate, CSRF token, signed bound arguments, redirects.

Each check raises one of the refusals in :mod:`flask_hx_actions.errors` before any user code runs.
The CSRF token is Flask-WTF's (``validate_csrf``); the HTTPS Referer check that ``CSRFProtect``
adds on top of it is done here too, because calling ``validate_csrf`` directly skips it. Bound
arguments are signed with itsdangerous (JSON, one salt per action, bound to the session and user).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, g, session
from flask_wtf.csrf import validate_csrf
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from wtforms.validators import ValidationError

from .errors import BoundArgumentsInvalid, CSRFRefused, OriginRefused

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_SESSION_ID_KEY = "_hx_sid"


# -- origin gate ---------------------------------------------------------------------------------


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port."""
    parts = urlsplit(value.strip().lower())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return value
    if port is not None and str(port) != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"


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
    trusted one (``null`` never is). With neither header the CSRF token decides.
    """
    headers = request.headers
    origin = headers.get("Origin")
    site = headers.get("Sec-Fetch-Site")
    if (
        site is not None
        and site not in ("same-origin", "none")
        and (site != "same-site" or origin is None or normalise_origin(origin) not in trusted)
    ):
        raise OriginRefused()
    if origin is not None:
        if origin == "null":
            raise OriginRefused()
        origin = normalise_origin(origin)
        if origin != own and origin not in trusted:
            raise OriginRefused()


def trusted_origins(values: Iterable[str]) -> frozenset[str]:
    return frozenset(normalise_origin(v) for v in values)


# -- CSRF ----------------------------------------------------------------------------------------


def check_csrf(request: Request, app: Flask, own: str) -> None:
    """Validate the Flask-WTF CSRF token from the form field or the ``X-CSRFToken`` header."""
    config = app.config
    if not config.get("WTF_CSRF_ENABLED", True):
        return
    field_name = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    token = request.form.get(field_name)
    if not token:
        for header in config.get("WTF_CSRF_HEADERS", ("X-CSRFToken", "X-CSRF-Token")):
            token = request.headers.get(header)
            if token:
                break
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFRefused(description=f"{exc.args[0]} Reload the page and try again.") from None
    if (
        request.is_secure
        and config.get("WTF_CSRF_SSL_STRICT", True)
        and "Origin" not in request.headers
        and "Sec-Fetch-Site" not in request.headers
    ):
        referrer = request.referrer
        if not referrer:
            raise CSRFRefused(description="The referrer header is missing.")
        if normalise_origin(referrer) != own:
            raise CSRFRefused(description="The referrer does not match this site.")


# -- bound arguments -----------------------------------------------------------------------------


def session_binding(identity: str | None) -> str:
    """A value that ties signed data to this browser session and, when signed in, to the user."""
    sid = session.get(_SESSION_ID_KEY)
    if sid is None:
        sid = secrets.token_urlsafe(12)
        session[_SESSION_ID_KEY] = sid
    return f"{sid}|{identity or ''}"


def _serializer(app: Flask, endpoint: str, binding: str) -> URLSafeTimedSerializer:
    # A page signs one token per row, mostly for the same action and session: keep the
    # serializer for the rest of the request instead of building it per row.
    cache: dict[tuple[str, str], URLSafeTimedSerializer] = g.setdefault("_hx_serializers", {})
    found = cache.get((endpoint, binding))
    if found is None:
        if app.secret_key is None:
            raise RuntimeError("flask-hx-actions needs app.secret_key to sign bound arguments.")
        keys: list[Any] = [*(app.config.get("SECRET_KEY_FALLBACKS") or ()), app.secret_key]
        found = URLSafeTimedSerializer(keys, salt=f"hx-actions.bound|{endpoint}|{binding}")
        cache[(endpoint, binding)] = found
    return found


def sign_bound(app: Flask, endpoint: str, values: Mapping[str, Any], binding: str) -> str:
    """Sign ``values`` for ``endpoint``: readable by the client, not changeable by it."""
    try:
        return str(_serializer(app, endpoint, binding).dumps(dict(values)))
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


def safe_target(value: str | None, own: str) -> str | None:
    """``value`` as a same-origin path, or ``None``: a path or an absolute URL of ``own``."""
    if not value:
        return None
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
