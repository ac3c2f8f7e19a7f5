"""HTTP header helpers for the answers the library touches on every request.

:func:`add_vary` exists because ``response.vary.add(...)`` parses the header into a
``HeaderSet`` and writes it back on every call; the session interface and the action pipeline
each add one name to ``Vary`` on every action request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

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
