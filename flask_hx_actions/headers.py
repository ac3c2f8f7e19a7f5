"""HTTP header helpers for the answers the library touches on every request.

:func:`add_vary` exists because ``response.vary.add(...)`` parses the header into a
``HeaderSet`` and writes it back on every call; the session interface and the action pipeline
each add one name to ``Vary`` on every action request. :func:`request_header` reads a request
header from the WSGI environ, because ``request.headers.get`` raises and catches an exception
for each absent header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.sansio.response import Response

#: A header value that is an HTTP token (RFC 9110), which ``dump_header`` leaves unquoted.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def add_vary(response: Response, name: str) -> None:
    """``response.vary.add(name)``, without the ``HeaderSet`` round trip when ``Vary`` is absent
    or a list of plain tokens (the value is then the one Werkzeug would write)."""
    headers = response.headers
    current = headers.get("Vary")
    if current is None:
        headers["Vary"] = name
        return
    items = [item.strip() for item in current.split(",")]
    if not all(_TOKEN.fullmatch(item) for item in items):
        response.vary.add(name)
        return
    if name.lower() not in {item.lower() for item in items}:
        headers["Vary"] = ", ".join([*items, name])


def environ_key(name: str) -> str:
    """The WSGI environ key of request header ``name`` (``"HX-Request"`` -> ``"HTTP_HX_REQUEST"``),
    the key Werkzeug's ``EnvironHeaders`` reads."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


def request_header(environ: Mapping[str, Any], name: str) -> str | None:
    """``request.headers.get(name)``, read from the environ: ``EnvironHeaders.get`` raises and
    catches a ``BadRequestKeyError`` for every header the request does not carry, which costs
    more than the lookup (an action request asks for several absent headers)."""
    key = _KEYS.get(name)
    if key is None:
        key = environ_key(name)
        if len(_KEYS) < 256:
            _KEYS[name] = key
    return environ.get(key)


_KEYS: dict[str, str] = {}
