"""flask_hx_actions.url_adapters: Flask's URL adapter of a recent request reused, the same
adapter, host, matches and answers as Flask's own."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, Request, request, url_for
from hypothesis import example, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, RequestRedirect
from werkzeug.test import EnvironBuilder

from flask_hx_actions import HxActions
from flask_hx_actions.url_adapters import ADAPTERS_MAX

ADAPTER_FIELDS = (
    "server_name",
    "script_name",
    "subdomain",
    "url_scheme",
    "path_info",
    "default_method",
    "query_args",
    "websocket",
)


def make_app(fast: bool = True, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config, HX_ACTIONS_FAST_URL_ADAPTER=fast)

    @app.route("/items/<int:id>", methods=["GET", "POST"])
    def item(id: int) -> str:
        return f"{id} {request.host} {url_for('item', id=id + 1, _external=True)}"

    @app.get("/list/")
    def listing() -> str:
        return "list"

    HxActions(app)
    return app


def adapters_of(app: Flask) -> dict[Any, Any]:
    return app.create_url_adapter._hx_adapters  # type: ignore[attr-defined,no-any-return]


def test_installed_where_the_app_keeps_flasks_own_only() -> None:
    assert "create_url_adapter" in make_app().__dict__
    assert "create_url_adapter" not in make_app(fast=False).__dict__

    class Own(Flask):
        def create_url_adapter(self, request: Any) -> Any:
            return super().create_url_adapter(request)

    subclassed = Own(__name__)
    HxActions(subclassed)
    assert "create_url_adapter" not in subclassed.__dict__


def outcome(app: Flask, environ: dict[str, Any]) -> tuple[Any, ...]:
    """What Flask made of the environ: the adapter's fields, the host, the match."""
    with app.request_context(dict(environ)) as ctx:
        adapter = ctx.url_adapter
        fields = tuple(getattr(adapter, name) for name in ADAPTER_FIELDS)
        exception = request.routing_exception
        try:
            match: Any = adapter.match(return_rule=True) if adapter is not None else None
            match = (match[0].endpoint, match[1]) if match else None
        except RequestRedirect as redirect:
            match = ("redirect", redirect.new_url)
        except HTTPException as error:
            match = ("error", error.code)
        return fields, request.host, match, type(exception).__name__


HOSTS = st.sampled_from(
    ["localhost", "example.com:80", "example.com:8080", "Example.COM", "xn--caf-dma.example", ""]
)


@settings(max_examples=200, deadline=None)
@given(
    host=HOSTS,
    scheme=st.sampled_from(["http", "https"]),
    path=st.sampled_from(["/items/7", "/items/8", "/list", "/list/", "/nope", "/items/x"]),
    method=st.sampled_from(["GET", "POST", "PUT"]),
    query=st.sampled_from(["", "a=1", "a=%20b"]),
    script=st.sampled_from(["", "/prefix"]),
    websocket=st.booleans(),
    server_name=st.sampled_from([None, "example.com"]),
)
@example(
    host="localhost",
    scheme="http",
    path="/list",
    method="GET",
    query="a=1",
    script="",
    websocket=False,
    server_name=None,
)
def test_the_same_adapter_host_and_match_as_flasks(
    host: str,
    scheme: str,
    path: str,
    method: str,
    query: str,
    script: str,
    websocket: bool,
    server_name: str | None,
) -> None:
    environ = EnvironBuilder(
        path=path, base_url=f"{scheme}://localhost{script}", method=method, query_string=query
    ).get_environ()
    if host:
        environ["HTTP_HOST"] = host
    else:
        environ.pop("HTTP_HOST", None)
    if websocket:
        environ["HTTP_CONNECTION"] = "keep-alive, Upgrade"
        environ["HTTP_UPGRADE"] = "websocket"
    # One app per setting across examples: its memo meets environs that differ in one value.
    ours = SHARED.get(server_name)
    if ours is None:
        ours = SHARED[server_name] = make_app(SERVER_NAME=server_name)
    expected = outcome(make_app(False, SERVER_NAME=server_name), environ)
    assert outcome(ours, environ) == expected  # bound anew, or reused
    assert outcome(ours, environ) == expected  # reused


SHARED: dict[str | None, Flask] = {}


def test_a_changed_server_name_setting_binds_anew() -> None:
    app = make_app()
    environ = EnvironBuilder(path="/items/7", base_url="http://example.com").get_environ()
    assert outcome(app, environ)[0][0] == "example.com"
    app.config["SERVER_NAME"] = "other.example"
    assert outcome(app, environ) == outcome(make_app(False, SERVER_NAME="other.example"), environ)


def test_a_repeated_request_reuses_its_adapter_and_answers_the_same() -> None:
    app = make_app()
    client = app.test_client()
    first = client.post("/items/7", base_url="http://example.com:8080")
    assert len(adapters_of(app)) == 1
    again = client.post("/items/7", base_url="http://example.com:8080")
    assert len(adapters_of(app)) == 1
    assert first.text == again.text == "7 example.com:8080 http://example.com:8080/items/8"
    other = client.post("/items/7", base_url="http://other.example")
    assert other.text == "7 other.example http://other.example/items/8"
    assert len(adapters_of(app)) == 2
    assert client.get("/list").status_code == 308  # Werkzeug's redirect to /list/
    assert client.get("/list").headers["Location"] == "http://localhost/list/"


def test_trusted_hosts_are_checked_by_flask_on_every_request() -> None:
    app = make_app(TRUSTED_HOSTS=["good.example"])
    client = app.test_client()
    for _ in range(2):
        assert client.get("/items/1", base_url="http://evil.example").status_code == 400
        assert client.get("/items/1", base_url="http://good.example").status_code == 200
    assert adapters_of(app) == {}


def test_a_request_class_with_trusted_hosts_is_checked_by_flask_on_every_request() -> None:
    app = make_app()
    app.request_class = type("Trusting", (Request,), {"trusted_hosts": ["good.example"]})
    client = app.test_client()
    for _ in range(2):
        assert client.get("/items/1", base_url="http://evil.example").status_code == 400
        assert client.get("/items/1", base_url="http://good.example").status_code == 200
    assert adapters_of(app) == {}


@pytest.mark.parametrize("setting", ["subdomain_matching", "host_matching"])
def test_subdomain_and_host_matching_go_through_flask(setting: str) -> None:
    if setting == "host_matching":
        app = Flask(__name__, host_matching=True, static_host="example.com")

        @app.get("/x", host="<sub>.example.com")
        def x(sub: str) -> str:
            return sub

    else:
        app = Flask(__name__, subdomain_matching=True)
        app.config["SERVER_NAME"] = "example.com"

        @app.get("/x", subdomain="<sub>")
        def x(sub: str) -> str:
            return sub

    HxActions(app)
    client = app.test_client()
    for _ in range(2):
        assert client.get("/x", base_url="http://a.example.com").text == "a"
        assert client.get("/x", base_url="http://b.example.com").text == "b"
    assert adapters_of(app) == {}


def test_a_new_url_map_gets_a_new_adapter() -> None:
    app = make_app()
    client = app.test_client()
    assert client.get("/list/").status_code == 200
    app.url_map = Map()  # no app does this between requests, but the memo checks it
    assert client.get("/list/").status_code == 404


def test_the_memo_is_bounded() -> None:
    app = make_app()
    client = app.test_client()
    for i in range(ADAPTERS_MAX + 20):
        assert client.get(f"/items/{i}").text.startswith(f"{i} localhost")
    assert len(adapters_of(app)) == ADAPTERS_MAX


NO_HOST = {"HTTP_HOST": None, "SERVER_NAME": "example.com", "SERVER_PORT": "80"}
UPGRADE = {"HTTP_CONNECTION": "Upgrade"}


@pytest.mark.parametrize(
    ("first", "change"),
    [
        ({}, {"wsgi.url_scheme": "https"}),
        (UPGRADE, {"HTTP_UPGRADE": "websocket"}),
        ({"HTTP_UPGRADE": "websocket"}, UPGRADE),
        ({}, {"HTTP_HOST": "example.com:8080"}),
        (NO_HOST, {"SERVER_NAME": "other.example"}),
        (NO_HOST, {"SERVER_PORT": "81"}),
        ({}, {"SCRIPT_NAME": "/prefix"}),
        ({}, {"PATH_INFO": "/items/8"}),
        ({}, {"REQUEST_METHOD": "PUT"}),
        ({}, {"QUERY_STRING": "a=1"}),
    ],
)
def test_each_environ_value_binding_reads_is_part_of_the_key(
    first: dict[str, Any], change: dict[str, Any]
) -> None:
    """A request that differs from a remembered one in one value binding reads gets its own
    adapter, Flask's."""

    def environ(*changes: dict[str, Any]) -> dict[str, Any]:
        made = EnvironBuilder(path="/items/7", base_url="http://example.com").get_environ()
        for values in changes:
            made.update(values)
        return {name: value for name, value in made.items() if value is not None}

    app = make_app()
    base, changed = environ(first), environ(first, change)
    assert outcome(app, base) == outcome(make_app(False), base)
    assert outcome(app, changed) == outcome(make_app(False), changed)
    assert len(adapters_of(app)) == 2
