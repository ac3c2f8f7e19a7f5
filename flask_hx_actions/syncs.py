"""Flask's ``app.ensure_sync`` with its answer for plain functions remembered.

Flask passes every hook, context processor and view through ``app.ensure_sync`` before calling
it, and for a plain (not ``async def``) function the answer, the function itself, comes from
``inspect.iscoroutinefunction``: five Python calls each time. An action request that renders
fragments makes six such calls (its two ``before_request`` hooks, its ``after_request`` hook, the
view and the two context processors of the template context), about 4 µs of an htmx toggle's
150 µs in process in the benchmark.

:func:`install` gives the app an ``ensure_sync`` of its own that returns a function it has seen
before to be plain at once, by identity (the remembered function is kept alive, so its ``id``
names no other object while remembered), and asks Flask's own for anything else: an ``async
def`` function still gets Flask's ``async_to_sync`` wrapper every time. Bound methods, which are
a new object at every attribute access, are not remembered. The memo is bounded (oldest out
first). A function whose ``__code__`` is replaced by a coroutine's after it was first run is not
seen as async afterwards; Flask's own ``ensure_sync`` would see it.

``HxActions`` installs it only where the app's class keeps Flask's own ``ensure_sync`` and the
app has none of its own (``HX_ACTIONS_FAST_ENSURE_SYNC``, on by default).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType
from typing import Any

from flask import Flask

from .signing import remember

#: Plain functions remembered per app.
PLAIN_MAX = 4096


def fast_ensure_sync(app: Flask) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.ensure_sync`` that remembers the functions Flask's own returned unchanged."""
    plain: dict[int, Callable[..., Any]] = {}

    def ensure_sync(func: Callable[..., Any]) -> Callable[..., Any]:
        if plain.get(id(func)) is func:
            return func
        made = Flask.ensure_sync(app, func)
        if made is func and type(func) is not MethodType:
            remember(plain, id(func), func, PLAIN_MAX)
        return made

    ensure_sync.__doc__ = Flask.ensure_sync.__doc__
    ensure_sync._hx_plain = plain  # type: ignore[attr-defined]  # for tests
    return ensure_sync


def install(app: Flask) -> None:
    """Give ``app`` the remembering ``ensure_sync``, unless it has its own or the setting is off."""
    if (
        app.config.get("HX_ACTIONS_FAST_ENSURE_SYNC", True)
        and type(app).ensure_sync is Flask.ensure_sync
        and "ensure_sync" not in app.__dict__
    ):
        app.ensure_sync = fast_ensure_sync(app)  # type: ignore[method-assign,assignment]
