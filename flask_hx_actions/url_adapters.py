"""Flask's ``app.create_url_adapter`` with the adapter of a recent request reused.

For every request, Flask binds its URL map to the WSGI environ (``Map.bind_to_environ``): it
reads the host twice (once for its trusted-host check, once in Werkzeug), encodes the server
name with IDNA and builds a new ``MapAdapter``, about 4.5 µs of an htmx toggle's 150 µs in
process in the benchmark, the same for every submit of the same form. A ``MapAdapter`` is not
changed after it is built (matching and building read it, and ``match`` brings the map up to
date itself), so the adapter of a request with the same environ values, the ones binding reads
(scheme, ``Host``, server name and port, script name, path, method, query string, and the
``Connection`` and ``Upgrade`` headers of a WebSocket), is the same adapter, and
``request.host`` the same host.

:func:`install` gives the app a ``create_url_adapter`` that remembers them per such values, for
requests of an app without trusted hosts (``TRUSTED_HOSTS``, or a request class's own
``trusted_hosts``), host matching or subdomain matching (each of those goes through Flask's own
method every time, as does the adapter of an app context without a request). The memo is
bounded (oldest out first): paths and query strings are the client's.

``HxActions`` installs it only where the app's class keeps Flask's own ``create_url_adapter``
and the app has none of its own (``HX_ACTIONS_FAST_URL_ADAPTER``, on by default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request
from werkzeug.routing import MapAdapter

from .signing import remember

#: Adapters remembered per app.
ADAPTERS_MAX = 256
#: The environ keys ``Map.bind_to_environ`` and Werkzeug's ``get_host`` read.
_ENVIRON_KEYS = (
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
    "REQUEST_METHOD",
    "QUERY_STRING",
    "HTTP_CONNECTION",
    "HTTP_UPGRADE",
)


def reusing_create_url_adapter(app: Flask) -> Callable[[Request | None], MapAdapter | None]:
    """``app.create_url_adapter`` that reuses the adapter (and host) of a recent request."""
    adapters: dict[tuple[Any, ...], tuple[MapAdapter, str]] = {}

    def create_url_adapter(request: Request | None) -> MapAdapter | None:
        url_map = app.url_map
        if (
            request is None
            or url_map.host_matching
            or app.subdomain_matching
            or app.config["TRUSTED_HOSTS"] is not None
            or request.trusted_hosts is not None  # a request class's own (Werkzeug's way)
        ):
            return Flask.create_url_adapter(app, request)
        environ = request.environ
        get = environ.get
        key = (
            app.config["SERVER_NAME"],
            url_map.default_subdomain,
            *[get(name) for name in _ENVIRON_KEYS],
        )
        found = adapters.get(key)
        if found is not None and found[0].map is url_map:
            request.host = found[1]  # what Flask's method sets
            return found[0]
        adapter = Flask.create_url_adapter(app, request)
        if adapter is not None:
            remember(adapters, key, (adapter, request.host), ADAPTERS_MAX)
        return adapter

    create_url_adapter.__doc__ = Flask.create_url_adapter.__doc__
    create_url_adapter._hx_adapters = adapters  # type: ignore[attr-defined]  # for tests
    return create_url_adapter


def install(app: Flask) -> None:
    """Give ``app`` the reusing ``create_url_adapter``, unless it has its own or the setting is
    off."""
    if (
        app.config.get("HX_ACTIONS_FAST_URL_ADAPTER", True)
        and type(app).create_url_adapter is Flask.create_url_adapter
        and "create_url_adapter" not in app.__dict__
    ):
        app.create_url_adapter = reusing_create_url_adapter(app)  # type: ignore[method-assign,assignment]
