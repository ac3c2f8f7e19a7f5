"""HTTP header helpers for the answers the library touches on every request.

:func:`add_vary` exists because ``response.vary.add(...)`` parses the header into a
``HeaderSet`` and writes it back on every call; the session interface and the action pipeline
each add one name to ``Vary`` on every action request. :func:`request_header` reads a request
header from the WSGI environ, because ``request.headers.get`` raises and catches an exception
for each absent header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers

from .signing import remember

if TYPE_CHECKING:
    from werkzeug.sansio.response import Response

#: A header value that is an HTTP token (RFC 9110), which ``dump_header`` leaves unquoted.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def add_vary(response: Response, *names: str) -> None:
    """``response.vary.add(name)`` for each name, without the ``HeaderSet`` round trip when
    ``Vary`` is absent or a list of plain tokens (the value is then the one Werkzeug would
    write), and with one write of the header for all the names. The merged value of a recent
    (value, names) pair is remembered: a response of one kind gets the same ``Vary`` each time."""
    headers = response.headers
    current = _first(headers, "vary")
    key = (current, names)
    merged = _MERGED.get(key, _UNKNOWN)
    if merged is _UNKNOWN:
        merged = _merged(current, names)
        if current is None or len(current) <= _MERGED_VALUE_MAX:
            remember(_MERGED, key, merged, _MERGED_MAX)
    if merged is None:  # every name is there already
        return
    if merged is _NOT_TOKENS:
        for name in names:
            response.vary.add(name)
    elif current is None:
        headers.add("Vary", merged)
    else:
        headers["Vary"] = merged


#: (current Vary value, names added) -> the new value, None (unchanged) or _NOT_TOKENS.
_MERGED: dict[tuple[str | None, tuple[str, ...]], Any] = {}
_MERGED_MAX = 256
_MERGED_VALUE_MAX = 512
_UNKNOWN = object()
#: The current value is not a list of plain tokens: Werkzeug's ``HeaderSet`` merges it.
_NOT_TOKENS = object()


def _merged(current: str | None, names: tuple[str, ...]) -> Any:
    items = [] if current is None else [item.strip() for item in current.split(",")]
    if not all(_TOKEN.fullmatch(item) for item in items):
        return _NOT_TOKENS
    seen = {item.lower() for item in items}
    added = False
    for name in names:
        if name.lower() not in seen:
            items.append(name)
            seen.add(name.lower())
            added = True
    return ", ".join(items) if added else None


def environ_key(name: str) -> str:
    """The WSGI environ key of request header ``name`` (``"HX-Request"`` -> ``"HTTP_HX_REQUEST"``),
    the key Werkzeug's ``EnvironHeaders`` reads."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


def request_header(environ: Mapping[str, Any], name: str) -> str | None:
    """``request.headers.get(name)``, read from the environ: ``EnvironHeaders.get`` raises and
    catches a ``BadRequestKeyError`` for every header the request does not carry, which costs
    more than the lookup (an action request asks for several absent headers)."""
    return environ.get(environ_key(name))


def _first(headers: Iterable[tuple[str, str]], lower_name: str) -> str | None:
    """``headers.get(name)`` by walking the (few) header tuples: ``Headers.get`` raises and
    catches an exception when the header is absent, the usual case here."""
    for key, value in headers:
        if key.lower() == lower_name:
            return value
    return None


def append_built(headers: Headers, items: list[tuple[str, str]]) -> None:
    """``headers.add(name, value)`` for each item, for values the library built itself (fixed
    text, its own keys and ids, tokens merged by :func:`add_vary`'s rules, a request id that
    matched its pattern): none can hold a line break, which is all ``Headers.add`` checks, one
    regular-expression search per value. Werkzeug's ``Headers`` keeps its items in the list
    ``_list``; any other mapping, or a ``Headers`` without that list, gets ``add`` calls."""
    raw = getattr(headers, "_list", None) if type(headers) is Headers else None
    if type(raw) is list:
        raw.extend(items)
    else:
        for name, value in items:
            headers.add(name, value)


def put_headers(
    headers: Headers, values: Mapping[str, str], present: set[str] | None = None
) -> None:
    """``headers[name] = value`` for each item, in one walk of the header list: names the
    response has are set (replaced), the others appended, as ``Headers.set`` does one by one.
    ``present``: the lower-cased names ``headers`` holds, when the caller has them (updated)."""
    if present is None:
        present = {key.lower() for key, _ in headers}
    for name, value in values.items():
        lower = name.lower()
        if lower in present:
            headers.set(name, value)
        else:
            headers.add(name, value)
            present.add(lower)
