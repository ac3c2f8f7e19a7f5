"""Revalidation registry: fragment endpoint, lazy fragments, tag versions and the fragment cache."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, render_template_string, session
from jinja2 import DictLoader

from flask_hx_actions import ActionsBlueprint, HxActions, ok, revalidate
from flask_hx_actions.cache import MemoryFragmentCache, RedisFragmentCache, RedisTagVersions
from flask_hx_actions.signals import fragment_rendered
from flask_hx_actions.testing import ActionClient

TEMPLATES = {
    "row.html": "{{ t.title }}:{{ 'x' if t.done else ' ' }}"
    "{{ action_form('todos.toggle', bind={'id': t.id}, label='Toggle') }}",
    "stats.html": "{{ done }} of {{ total }} done",
    "widgets.html": "{% for w in widgets %}<h2>{{ w }}</h2>{% endfor %}",
    "secret.html": "secret for {{ user }}",
    "page.html": "{{ fragment('stats') }}{{ fragment('widgets', lazy=True) }}"
    "<ul>{% for id in ids %}{{ fragment('todo', id=id) }}{% endfor %}</ul>",
}


def make_app(**config: Any) -> tuple[Flask, dict[str, Any]]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, **config)
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader(TEMPLATES)
    hx = HxActions(app, identity=lambda: session.get("user"))
    calls: dict[str, Any] = {
        "widgets": 0,
        "todos": {i: {"id": i, "title": f"T{i}", "done": False} for i in (1, 2, 3)},
    }
    todos = calls["todos"]
    bp = ActionsBlueprint("todos", __name__, url_prefix="/todos")

    @bp.action("toggle", tags=lambda id: [f"todo:{id}", "stats"], fragment="todo")
    def toggle(id: int) -> None:
        todos[id]["done"] = not todos[id]["done"]

    @bp.action("rename_all")
    def rename_all() -> Any:
        for todo in todos.values():
            todo["title"] += "!"
        revalidate("todos")
        return ok()

    @bp.fragment("todo", template="row.html", tags=lambda id: [f"todo:{id}", "todos"], element="li")
    def todo(id: int) -> dict[str, Any]:
        return {"t": todos[id]}

    @bp.fragment("stats", template="stats.html", tags=["stats"], element="p")
    def stats() -> dict[str, Any]:
        return {"done": sum(t["done"] for t in todos.values()), "total": len(todos)}

    @bp.fragment(
        "widgets", template="widgets.html", tags=["widgets"], cache="global", element="section"
    )
    def widgets() -> dict[str, Any]:
        calls["widgets"] += 1
        return {"widgets": ["W1", "W2"]}

    @bp.fragment(
        "secret", template="secret.html", tags=["secret"], login_required=True, cache="user"
    )
    def secret() -> dict[str, Any]:
        return {"user": session.get("user")}

    @bp.fragment(
        "mine", template="row.html", tags=["todos"], cache="user", authorize=lambda id: id != 3
    )
    def mine(id: int) -> dict[str, Any]:
        return {"t": todos[id]}

    @bp.fragment("global_form", template="row.html", tags=["todos"], cache="global")
    def global_form() -> dict[str, Any]:
        return {"t": todos[1]}

    app.register_blueprint(bp)

    @app.get("/")
    def index() -> str:
        return render_template_string("{% include 'page.html' %}", ids=[1, 2, 3])

    @app.get("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        return "ok"

    del hx
    return app, calls


@pytest.fixture
def app_calls() -> tuple[Flask, dict[str, Any]]:
    return make_app()


@pytest.fixture
def renders() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Flask, **extra: Any) -> None:
        seen.append(extra)

    fragment_rendered.connect(receiver)
    try:
        yield seen
    finally:
        fragment_rendered.disconnect(receiver)


def test_toggle_renders_exactly_the_row_and_the_stats(app_calls, renders):
    app, _ = app_calls
    client = app.test_client()
    client.get("/")
    renders.clear()
    response = client.submit("todos.toggle", bind={"id": 2}, htmx=True, regions="stats widgets")
    assert response.status_code == 200
    assert [(r["dom_id"], r["oob"]) for r in renders] == [("todo-2", False), ("stats", True)]
    assert '<p id="stats" data-hx-fragment="stats" hx-swap-oob="true">1 of 3 done</p>' in (
        response.text
    )


def test_revalidate_inside_the_action_refreshes_listed_parametrised_regions(app_calls, renders):
    app, _ = app_calls
    client = app.test_client()
    response = client.submit("todos.rename_all", htmx=True, regions="todo?id=1 todo?id=3 stats")
    assert response.status_code == 200
    assert response.headers["HX-Reswap"] == "none"
    assert sorted(r["dom_id"] for r in renders) == ["todo-1", "todo-3"]
    assert "T1!" in response.text and "T3!" in response.text


def test_listed_region_the_user_may_not_see_is_not_sent_out_of_band(app_calls, renders):
    app, _ = app_calls
    client = app.test_client()
    client.get("/login/alice")
    response = client.submit("todos.rename_all", htmx=True, regions="mine?id=3 mine?id=2")
    assert response.status_code == 200
    assert [r["dom_id"] for r in renders] == ["mine-2"]
    # The row's title, as rendered after rename_all ("T3" alone also turns up by chance in the
    # random key and tokens of row 2's form).
    assert 'id="mine-3"' not in response.text
    assert "T3!:" not in response.text


def test_regions_header_with_unknown_or_malformed_tokens_is_ignored(app_calls, renders):
    app, _ = app_calls
    client = app.test_client()
    response = client.submit(
        "todos.rename_all", htmx=True, regions="nope todo?id=abc todo?zzz=1 todo?id=2"
    )
    assert response.status_code == 200
    assert [r["dom_id"] for r in renders] == ["todo-2"]


def test_a_regions_header_is_parsed_once_and_served_the_same_each_time(app_calls, renders):
    """The parsed HX-Actions-Regions header is remembered per app; each request gets its own
    parameter dicts, and a header too long to remember is still honoured."""
    app, _ = app_calls
    client = app.test_client()
    state = app.extensions["hx_actions"]
    header = "nope todo?id=1 todo?id=abc todo?id=3"
    for _ in range(2):
        renders.clear()
        assert client.submit("todos.rename_all", htmx=True, regions=header).status_code == 200
        assert sorted(r["dom_id"] for r in renders) == ["todo-1", "todo-3"]
    assert list(state.region_lists) == [header]
    first, _ = state.region_lists[header]
    assert first.fragment.name == "todo" and first.items == (("id", 1),)
    assert first.dom_id == "todo-1"
    long_header = f"{'unknown' * 8} " * 90 + "todo?id=2"  # over 4096 characters
    renders.clear()
    assert client.submit("todos.rename_all", htmx=True, regions=long_header).status_code == 200
    assert [r["dom_id"] for r in renders] == ["todo-2"]
    assert long_header not in state.region_lists


def test_fragment_endpoint_renders_one_region(app_calls):
    app, _ = app_calls
    response = app.test_client().get("/_hx/fragments/stats")
    assert response.status_code == 200
    assert response.text == '<p id="stats" data-hx-fragment="stats">0 of 3 done</p>'
    assert response.headers["Cache-Control"] == "private, no-cache"


def test_fragment_endpoint_converts_parameters_through_type_hints(app_calls):
    app, _ = app_calls
    client = app.test_client()
    assert client.get("/_hx/fragments/todo?id=2").status_code == 200
    assert client.get("/_hx/fragments/todo?id=two").status_code == 400
    assert client.get("/_hx/fragments/todo?id=2&x=1").status_code == 400
    assert client.get("/_hx/fragments/todo").status_code == 400
    assert client.get("/_hx/fragments/nope").status_code == 404


def test_fragment_endpoint_etag_gives_304_until_a_tag_is_invalidated(app_calls):
    app, _ = app_calls
    client = app.test_client()
    first = client.get("/_hx/fragments/stats")
    etag = first.headers["ETag"]
    again = client.get("/_hx/fragments/stats", headers={"If-None-Match": etag})
    assert again.status_code == 304
    client.submit("todos.toggle", bind={"id": 1})
    after = client.get("/_hx/fragments/stats", headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.text.endswith("1 of 3 done</p>")


def test_fragment_endpoint_compares_etags_weakly_as_if_none_match_requires(app_calls):
    """RFC 9110, 13.1.2: If-None-Match uses the weak comparison. A proxy that compresses the
    answer (nginx's gzip) turns its ETag into ``W/"..."``, which the browser then sends back."""
    app, _ = app_calls
    client = app.test_client()
    weak = "W/" + client.get("/_hx/fragments/stats").headers["ETag"]
    for sent in (weak, f'W/"other", {weak}'):
        again = client.get("/_hx/fragments/stats", headers={"If-None-Match": sent})
        assert again.status_code == 304
    client.submit("todos.toggle", bind={"id": 1})
    after = client.get("/_hx/fragments/stats", headers={"If-None-Match": weak})
    assert after.status_code == 200


def test_fragment_with_forms_never_gets_a_304_so_keys_stay_fresh(app_calls):
    app, _ = app_calls
    client = app.test_client()
    first = client.get("/_hx/fragments/todo?id=1")
    assert "ETag" not in first.headers
    second = client.get("/_hx/fragments/todo?id=1", headers={"If-None-Match": "*"})
    assert second.status_code == 200


def test_fragment_endpoint_requires_login_when_the_fragment_does(app_calls):
    app, _ = app_calls
    client = app.test_client()
    assert client.get("/_hx/fragments/secret").status_code == 401
    client.get("/login/alice")
    response = client.get("/_hx/fragments/secret")
    assert response.status_code == 200
    assert "secret for alice" in response.text


def test_fragment_endpoint_runs_the_fragments_authorize(app_calls):
    app, _ = app_calls
    client = app.test_client()
    client.get("/login/alice")
    assert client.get("/_hx/fragments/mine?id=1").status_code == 200
    assert client.get("/_hx/fragments/mine?id=3").status_code == 403


def test_user_cached_fragment_never_reaches_another_user(app_calls):
    app, _ = app_calls
    alice, bob = app.test_client(), app.test_client()
    alice.get("/login/alice")
    bob.get("/login/bob")
    assert "secret for alice" in alice.get("/_hx/fragments/secret").text
    assert "secret for alice" in alice.get("/_hx/fragments/secret").text  # from the cache
    bobs = bob.get("/_hx/fragments/secret").text
    assert "secret for bob" in bobs
    assert "alice" not in bobs


def test_global_cache_renders_once_until_its_tag_changes(app_calls):
    app, calls = app_calls
    client = app.test_client()
    for _ in range(3):
        assert "<h2>W1</h2>" in client.get("/").text
    assert calls["widgets"] == 1
    with app.app_context():
        app.extensions["hx_actions"].tag_versions.bump(["widgets"])
    client.get("/")
    assert calls["widgets"] == 2


def test_cached_fragment_with_a_form_gets_fresh_keys_and_a_valid_token_each_time(app_calls):
    app, _ = app_calls
    client = app.test_client()
    client.get("/login/alice")
    first = client.get("/_hx/fragments/mine?id=1").text
    second = client.get("/_hx/fragments/mine?id=1").text
    key = re.compile(r'name="_hx_key" value="([^"]+)"')
    assert key.search(first).group(1) != key.search(second).group(1)
    assert "hx-key-" not in second and "hx-csrf-" not in second
    token = re.search(r'name="csrf_token" value="([^"]+)"', second).group(1)
    bound = re.search(r'name="_hx_bound" value="([^"]+)"', second).group(1)
    response = client.post(
        "/todos/toggle",
        data={"csrf_token": token, "_hx_bound": bound, "_hx_key": "k" * 22},
        headers={"Origin": "http://localhost"},
    )
    assert response.status_code == 303


def test_global_cache_of_a_fragment_with_a_form_is_an_error(app_calls):
    app, _ = app_calls
    app.config["TESTING"] = True
    with pytest.raises(TypeError, match="cache='user'"):
        app.test_client().get("/_hx/fragments/global_form")


def test_lazy_fragment_is_inline_without_the_js_cookie(app_calls):
    app, _ = app_calls
    page = app.test_client().get("/").text
    assert '<section id="widgets" data-hx-fragment="widgets"><h2>W1</h2>' in page


def test_lazy_fragment_is_a_placeholder_when_the_browser_runs_js(app_calls):
    app, _ = app_calls
    client = app.test_client()
    client.set_cookie("hx_js", "1")
    page = client.get("/").text
    assert (
        '<section id="widgets" data-hx-fragment="widgets" hx-get="/_hx/fragments/widgets"'
        ' hx-trigger="load" hx-swap="outerHTML" aria-busy="true"></section>'
    ) in page


def test_lazy_placeholder_of_a_parametrised_fragment_names_its_params_and_tags(app_calls):
    """While it loads, the placeholder is a region like the one it becomes: hx-actions.js names
    it in the regions header, so an action committed meanwhile still refreshes it."""
    app, _ = app_calls
    with app.test_request_context(headers={"Cookie": "hx_js=1"}):
        html = render_template_string("{{ fragment('todo', id=7, lazy=True) }}")
    assert html == (
        '<li id="todo-7" data-hx-fragment="todo" data-hx-fragment-params="id=7"'
        ' data-hx-tags="todo:7 todos" hx-get="/_hx/fragments/todo?id=7" hx-trigger="load"'
        ' hx-swap="outerHTML" aria-busy="true"></li>'
    )


def test_page_renders_an_unauthorised_region_empty(app_calls):
    app, _ = app_calls
    with app.test_request_context():
        html = render_template_string("{{ fragment('secret') }}")
    assert html == '<div id="secret" data-hx-fragment="secret"></div>'


def test_cached_fragment_without_params_follows_the_tags_its_function_gives():
    """``tags=`` a function of no parameters: a cached region's key holds those tags' versions
    (it kept the first render for good, its tags being taken as none)."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True)
    app.jinja_loader = DictLoader({"count.html": "n={{ n }}"})
    HxActions(app)
    bp = ActionsBlueprint("counts", __name__, url_prefix="/counts")
    counter = {"n": 0}

    @bp.fragment("count", template="count.html", tags=lambda: ["count"], cache="global")
    def count() -> dict[str, Any]:
        return dict(counter)

    app.register_blueprint(bp)
    page = "{{ fragment('count') }}"
    with app.test_request_context():
        assert render_template_string(page) == '<div id="count" data-hx-fragment="count">n=0</div>'
    counter["n"] = 5
    with app.test_request_context():
        assert "n=0" in render_template_string(page)  # cached while its tag has not moved
        app.extensions["hx_actions"].tag_versions.bump({"count"})
    with app.test_request_context():
        assert render_template_string(page) == '<div id="count" data-hx-fragment="count">n=5</div>'


def test_memory_fragment_cache_is_bounded_and_expires():
    cache = MemoryFragmentCache(size=2)
    cache.set("a", "A", ttl=60)
    cache.set("b", "B", ttl=60)
    cache.set("c", "C", ttl=60)
    assert cache.get("a") is None
    assert cache.get("c") == "C"
    cache.set("d", "D", ttl=-1)
    assert cache.get("d") is None


def test_redis_stores_share_versions_and_fragments(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    versions = RedisTagVersions(client, prefix="test-hx")
    assert versions.get(["a", "b"]) == {"a": 0, "b": 0}
    versions.bump(["a"])
    versions.bump(["a", "b"])
    assert RedisTagVersions(client, prefix="test-hx").get(["a", "b"]) == {"a": 2, "b": 1}
    cache = RedisFragmentCache(client, prefix="test-hx")
    cache.set("k", "<p>é</p>", ttl=30)
    assert cache.get("k") == "<p>é</p>"
    assert cache.get("missing") is None
    client.close()


def test_two_apps_on_one_redis_see_each_others_invalidations(redis_url):
    first, _ = make_app(HX_ACTIONS_REDIS_URL=redis_url)
    second, calls = make_app(HX_ACTIONS_REDIS_URL=redis_url)
    client = second.test_client()
    client.get("/")
    client.get("/")
    assert calls["widgets"] <= 1
    with first.app_context():
        first.extensions["hx_actions"].tag_versions.bump(["widgets"])
    before = calls["widgets"]
    client.get("/")
    assert calls["widgets"] == before + 1


def test_htmx_answer_forms_skip_the_csrf_input_only_when_the_page_sends_the_header() -> None:
    app, _calls = make_app()
    client = app.test_client()
    fields = client.hidden_fields("todos.toggle", {"id": 1})
    token = fields["csrf_token"]

    plain = client.submit("todos.toggle", bind={"id": 1}, htmx=True)
    assert plain.status_code == 200
    assert 'name="csrf_token"' in plain.text  # no header: the re-rendered form keeps its token

    by_header = client.submit(
        "todos.toggle", bind={"id": 1}, htmx=True, headers={"X-CSRFToken": token}
    )
    assert by_header.status_code == 200
    assert 'id="todo-1"' in by_header.text and 'name="_hx_bound"' in by_header.text
    assert 'name="csrf_token"' not in by_header.text

    # The page's next submit of that form sends the header only, and passes.
    again = client.post(
        "/todos/toggle",
        data={"_hx_bound": fields["_hx_bound"], "_hx_key": "k" * 22},
        headers={"X-CSRFToken": token, "HX-Request": "true", "Origin": "http://localhost"},
    )
    assert again.status_code == 200
    # A wrong header token is refused even when no form token is sent.
    wrong = client.post(
        "/todos/toggle",
        data={"_hx_bound": fields["_hx_bound"]},
        headers={"X-CSRFToken": "nope", "HX-Request": "true", "Origin": "http://localhost"},
    )
    assert wrong.status_code == 400

    # A page (not an htmx action answer) always renders the token input.
    page = client.get("/", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert page.status_code == 200
    assert 'name="csrf_token"' in page.text


def test_htmx_answer_forms_skip_the_csrf_input_when_the_page_sends_its_token_as_a_field() -> None:
    """hx-actions.js adds the meta tag's token as ``_hx_csrf`` (a field, not a header)."""
    app, calls = make_app()
    client = app.test_client()
    fields = client.hidden_fields("todos.toggle", {"id": 1})
    token = fields["csrf_token"]
    htmx = {"HX-Request": "true", "Origin": "http://localhost"}

    with_field = client.post(
        "/todos/toggle",
        data={**fields, "_hx_key": "k" * 22, "_hx_csrf": token, "_hx_regions": "stats"},
        headers=htmx,
    )
    assert with_field.status_code == 200
    assert 'id="todo-1"' in with_field.text and 'id="stats"' in with_field.text
    assert 'name="csrf_token"' not in with_field.text

    # The re-rendered form has no token input: the page's field alone passes.
    again = client.post(
        "/todos/toggle",
        data={"_hx_bound": fields["_hx_bound"], "_hx_key": "j" * 22, "_hx_csrf": token},
        headers=htmx,
    )
    assert again.status_code == 200
    done = calls["todos"][1]["done"]
    # A wrong page token is refused, whatever header comes with it, and runs nothing.
    for headers in ({}, {"X-CSRFToken": token}):
        wrong = client.post(
            "/todos/toggle",
            data={"_hx_bound": fields["_hx_bound"], "_hx_csrf": "nope"},
            headers={**htmx, **headers},
        )
        assert wrong.status_code == 400
    assert calls["todos"][1]["done"] == done  # the action did not run


def test_an_htmx_answer_leaves_no_reference_cycle_holding_the_request() -> None:
    """The per-request template context holds ``g`` and the request: kept in ``g`` it made a
    cycle, so every htmx answer left its request, form and streams for the garbage collector.
    Called as a server calls the app (Werkzeug's test client makes cycles of its own)."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request as WerkzeugRequest

    app, _calls = make_app()
    client = app.test_client()
    client.get("/")
    cookie = client.get_cookie("session")
    assert cookie is not None
    fields = {**client.hidden_fields("todos.toggle", {"id": 1}), "_hx_regions": "stats"}

    def toggle() -> bytes:
        environ = EnvironBuilder(
            path="/todos/toggle",
            method="POST",
            data=fields,
            headers={
                "Origin": "http://localhost",
                "HX-Request": "true",
                "Cookie": f"session={cookie.value}",
            },
        ).get_environ()
        statuses: list[str] = []
        body = b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
        assert statuses == ["200 OK"], body
        return body

    toggle()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            assert b'id="stats"' in toggle()  # fragments rendered through the base context
        gc.collect()
        held = [o for o in gc.garbage if isinstance(o, WerkzeugRequest)]
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()
    assert held == []


def test_forms_render_no_empty_error_summary_and_errors_target_the_one_the_runtime_adds() -> None:
    """An empty error summary is never rendered (hx-actions.js adds it to every action form
    htmx loads): not on pages, not in htmx answers, not from the fragment endpoint or the cache.
    Error answers still name it as their out-of-band target."""
    app, _calls = make_app()
    client = app.test_client()
    answers = [
        client.get("/"),
        client.submit("todos.toggle", bind={"id": 1}, htmx=True, regions="stats"),
        client.submit("todos.toggle", bind={"id": 1}, htmx=True),
        client.get("/_hx/fragments/todo?id=1", headers={"HX-Request": "true"}),
        client.submit("todos.rename_all", htmx=True, regions="mine?id=2"),  # cached region
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert 'name="_hx_key"' in answer.text and "-errors" not in answer.text
    failed = client.submit(
        "todos.toggle", {"csrf_token": "x"}, bind={"id": 1}, htmx=True, regions="stats"
    )
    assert failed.status_code == 400
    assert '<div id="hx-todos-toggle-1-errors" class="hx-errors" role="alert"' in failed.text
    assert 'hx-swap-oob="innerHTML"' in failed.text


def test_cached_forms_are_filled_by_every_worker_sharing_the_redis_cache(redis_url):
    """A second process (another gunicorn worker) serves HTML the first one cached in Redis."""
    import subprocess
    import sys
    from pathlib import Path

    first, _ = make_app(HX_ACTIONS_REDIS_URL=redis_url)
    a = first.test_client()
    a.get("/login/alice")
    assert "hx-key-" not in a.get("/_hx/fragments/mine?id=1").text  # now cached in Redis
    worker = (
        "import sys\n"
        "from tests.test_revalidation import make_app\n"
        f"app, _ = make_app(HX_ACTIONS_REDIS_URL={redis_url!r})\n"
        "client = app.test_client()\n"
        "client.set_cookie('session', sys.argv[1])\n"
        "sys.stdout.write(client.get('/_hx/fragments/mine?id=1').text)\n"
    )
    root = Path(__file__).resolve().parent.parent
    served = subprocess.run(
        [sys.executable, "-W", "error", "-c", worker, a.get_cookie("session").value],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert 'name="_hx_key"' in served
    assert "hx-key-" not in served and "hx-csrf-" not in served
    assert re.search(r'name="_hx_key" value="[A-Za-z0-9_-]{22}"', served)


def test_redis_fragment_cache_keeps_served_entries_in_process(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    writer = RedisFragmentCache(client, prefix="test-local")
    reader = RedisFragmentCache(client, prefix="test-local")  # another worker
    writer.set("k", "<p>x</p>", ttl=30)
    assert reader.get("k") == "<p>x</p>"  # from Redis, then kept in process
    client.delete("test-local:fragment:k")
    assert reader.get("k") == "<p>x</p>"  # no round trip: entries under a key never change
    assert RedisFragmentCache(client, prefix="test-local").get("k") is None
    client.close()


def test_redis_tag_versions_read_once_per_request_and_see_their_own_bumps(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    versions = RedisTagVersions(client, prefix="test-snap")

    def other_worker_bumps(tag: str) -> None:
        client.hincrby("test-snap:tag-versions", tag, 1)

    app = Flask(__name__)
    with app.test_request_context():
        assert versions.get(["a", "b"]) == {"a": 0, "b": 0}
        other_worker_bumps("a")
        assert versions.get(["a"]) == {"a": 0}  # one consistent snapshot per request
        versions.bump(["b"])
        assert versions.get(["a", "b"]) == {"a": 1, "b": 1}  # its own bump drops the snapshot
    with app.test_request_context():
        other_worker_bumps("a")
        assert versions.get(["a"]) == {"a": 2}  # a new request reads again
    small = RedisTagVersions(
        client, prefix="test-snap", snapshot_max=1
    )  # too many tags: no snapshot
    with app.test_request_context():
        assert small.get(["a"]) == {"a": 2}
        other_worker_bumps("a")
        assert small.get(["a"]) == {"a": 3}
    client.close()


def test_a_bump_keeps_the_versions_its_increments_returned_for_the_render(redis_url):
    """An action's answer renders the fragments of the tags it bumped: their versions come back
    with the increments, so the render reads nothing (no snapshot of the whole hash, which grows
    with every tag the app has bumped); a tag it did not bump is read as before."""
    import redis

    client = redis.Redis.from_url(redis_url)
    versions = RedisTagVersions(client, prefix="test-bump")
    app = Flask(__name__)
    sent: list[tuple[Any, ...]] = []
    original = client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args)
        return original(*args, **kwargs)

    with app.test_request_context():
        assert versions.get(["a"]) == {"a": 0}  # decides that snapshots are read (small hash)
    client.execute_command = counting  # type: ignore[method-assign]
    with app.test_request_context():
        versions.bump(["a", "b"])  # one pipeline: the increments
        versions.bump(["b"])
        assert versions.get(["a", "b"]) == {"a": 1, "b": 2}
        assert versions.get(["b"]) == {"b": 2}
    assert sent == []  # pipelines do not go through execute_command: nothing else was sent
    other = redis.Redis.from_url(redis_url)  # another worker, or a store's own command
    with app.test_request_context():
        versions.bump(["a"])
        other.hincrby(versions.hash_key, "c", 1)
        assert versions.get(["a", "c"]) == {"a": 2, "c": 1}  # "c" was not bumped here: read
    assert [args[0] for args in sent] == ["HGETALL"]
    with app.test_request_context():
        versions.bump(["a"])
        other.hincrby(versions.hash_key, "a", 1)  # as an idempotency store's completion does
        versions.bumped_elsewhere()
        assert versions.get(["a"]) == {"a": 4}  # not the 3 its own increment returned
    assert [args[0] for args in sent] == ["HGETALL", "HGETALL"]
    other.close()
    client.close()


def test_a_cached_fragment_whose_tag_the_action_bumped_is_rendered_without_a_lookup():
    """... and not stored: the page swaps the answer in; its next full render stores it."""
    app, _ = make_app()
    state = app.extensions["hx_actions"]
    looked_up: list[str] = []
    stored: list[str] = []
    original = state.fragment_cache.get
    original_set = state.fragment_cache.set

    def spy(key: str) -> str | None:
        looked_up.append(key)
        return original(key)

    def set_spy(key: str, value: str, ttl: int) -> None:
        stored.append(key)
        original_set(key, value, ttl)

    state.fragment_cache.get = spy
    state.fragment_cache.set = set_spy
    client = app.test_client()
    client.get("/login/alice")
    assert "T1" in client.get("/_hx/fragments/mine?id=1").text
    assert len(looked_up) == 1
    answer = client.post(
        "/todos/rename_all",
        data=client.hidden_fields("todos.rename_all"),
        headers={
            "Origin": "http://localhost",
            "HX-Request": "true",
            "HX-Actions-Regions": "mine?id=1",
        },
    )
    assert answer.status_code == 200
    assert 'id="mine-1"' in answer.text and "T1!" in answer.text  # sent out of band
    assert len(looked_up) == 1  # "todos" was bumped: the region was rendered, not looked up
    assert len(stored) == 1  # nor stored
    assert 'name="_hx_key"' in answer.text and "hx-key-" not in answer.text
    assert "T1!" in client.get("/_hx/fragments/mine?id=1").text  # a miss, rendered and stored
    assert len(looked_up) == 2 and len(stored) == 2 and stored[1] != stored[0]
    assert "T1!" in client.get("/_hx/fragments/mine?id=1").text  # served from the cache
    assert len(looked_up) == 3 and len(stored) == 2


def test_a_cached_form_in_an_htmx_answer_to_a_page_with_its_token_has_no_token_input():
    """As an uncached render for that request: the page sends its token (``_hx_csrf``), so the
    re-rendered form needs none; other requests get the input with a real token."""
    app, _ = make_app()
    client = app.test_client()
    client.get("/login/alice")
    htmx = {"Origin": "http://localhost", "HX-Request": "true", "HX-Actions-Regions": "mine?id=1"}
    fields = client.hidden_fields("todos.rename_all")
    answer = client.post(
        "/todos/rename_all", data={**fields, "_hx_csrf": fields["csrf_token"]}, headers=htmx
    )
    assert answer.status_code == 200 and 'id="mine-1"' in answer.text
    assert 'name="csrf_token"' not in answer.text and "hx-csrf-" not in answer.text
    assert re.search(r'name="_hx_key" value="[A-Za-z0-9_-]{22}"', answer.text)

    fields = client.hidden_fields("todos.rename_all")
    without = client.post("/todos/rename_all", data=fields, headers=htmx)  # no page token
    assert without.status_code == 200 and 'id="mine-1"' in without.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', without.text)
    assert token is not None and "hx-csrf-" not in without.text
    served = client.get("/_hx/fragments/mine?id=1").text  # from the cache
    assert 'name="csrf_token"' in served and "hx-csrf-" not in served


@pytest.mark.parametrize("auto_reload", [True, False])
def test_fragment_templates_follow_jinjas_auto_reload(auto_reload):
    """Fragments remember their templates only while Jinja does not auto-reload them: with
    TEMPLATES_AUTO_RELOAD an edited template shows on the next render, as with render_template."""
    app, _ = make_app(TEMPLATES_AUTO_RELOAD=auto_reload)
    app.jinja_loader = DictLoader(dict(TEMPLATES))
    client = app.test_client()
    assert "0 of 3 done" in client.get("/_hx/fragments/stats").text
    app.jinja_loader.mapping["stats.html"] = "{{ done }}/{{ total }}"
    expected = "0/3" if auto_reload else "0 of 3 done"
    assert expected in client.get("/_hx/fragments/stats").text


def test_cache_keys_are_remembered_per_parameters_versions_and_scope(app_calls):
    """cache_key remembers what it hashed: the remembered key is the computed one, and another
    version of a tag, another user or other parameters give another key."""
    from flask_hx_actions import fragments

    app, _ = app_calls
    state = app.extensions["hx_actions"]
    mine = state.fragments["mine"]
    with app.test_request_context():
        session["user"] = "alice"
        first = fragments.cache_key(mine, {"id": 1})
        assert fragments.cache_key(mine, {"id": 1}) == first
        fragments._CACHE_KEYS.clear()
        assert fragments.cache_key(mine, {"id": 1}) == first  # computed afresh: the same
        assert fragments.cache_key(mine, {"id": 2}) != first
        state.tag_versions.bump(["todos"])
        bumped = fragments.cache_key(mine, {"id": 1})
        assert bumped != first
    with app.test_request_context():
        session["user"] = "bob"
        assert fragments.cache_key(mine, {"id": 1}) not in (first, bumped)


def test_redis_fragment_cache_writes_after_the_answer_is_sent(redis_url):
    """In a request, a cached fragment is kept in process at once and written to Redis (in one
    pipeline) when the response closes, after its bytes went out; outside a request, at once."""
    import redis

    app, calls = make_app(HX_ACTIONS_REDIS_URL=redis_url)
    state = app.extensions["hx_actions"]
    client = redis.Redis.from_url(redis_url)
    sent: list[str] = []
    original_set = state.fragment_cache.write

    def spy(entries: list[tuple[str, bytes, int]]) -> None:
        sent.append(f"{len(entries)} at close")
        original_set(entries)

    state.fragment_cache.write = spy
    response = app.test_client().get("/_hx/fragments/widgets", buffered=False)
    assert response.status_code == 200 and calls["widgets"] == 1
    assert sent == []  # not written while the answer is still being sent
    assert not client.keys("hx-actions:fragment:*")
    response.close()
    assert sent == ["1 at close"]
    assert len(client.keys("hx-actions:fragment:*")) == 1
    other, other_calls = make_app(HX_ACTIONS_REDIS_URL=redis_url)  # another worker
    assert other.test_client().get("/_hx/fragments/widgets").status_code == 200
    assert other_calls["widgets"] == 0  # served from Redis
    with app.app_context():  # no request: written at once
        state.fragment_cache.set("direct", "<p>x</p>", ttl=30)
    assert client.get("hx-actions:fragment:direct") == b"<p>x</p>"
    client.close()


def test_a_failed_fragment_cache_write_is_logged_not_raised(redis_url, caplog):
    app, _ = make_app(HX_ACTIONS_REDIS_URL=redis_url)
    cache = app.extensions["hx_actions"].fragment_cache

    class Broken:
        def pipeline(self, **kwargs: Any) -> Any:
            raise ConnectionError("Redis went away")

    cache._redis = Broken()
    entries = [("hx-actions:fragment:k", b"x", 30)]
    with caplog.at_level("WARNING", logger="flask_hx_actions"):
        cache.write(entries)
    assert "could not write 1 fragment cache entries" in caplog.text
    assert entries == []


def test_a_fragment_context_shadows_the_page_context_for_its_own_render_only() -> None:
    """A fragment's values are looked up before the request's shared template context (globals,
    context processors), are seen by the templates it includes or extends, and do not leak
    into the next fragment of the page, nor do its top-level ``{% set %}``s."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True)
    app.jinja_loader = DictLoader(
        {
            "base.html": "[{% block body %}{% endblock %}]",
            "mine.html": "{% set local = 'set-in-mine' %}{{ site }}/{{ local }}/"
            "{% include 'inc.html' %}",
            "inc.html": "inc:{{ site }}",
            "theirs.html": "{{ site }}/{{ local | default('no-local') }}",
            "child.html": "{% extends 'base.html' %}{% block body %}{{ n }}{% endblock %}",
            "page.html": "{{ fragment('mine') }}|{{ fragment('theirs') }}|"
            "{{ fragment('child', n=1) }}{{ fragment('child', n=2) }}|{{ site }}",
        }
    )
    HxActions(app)
    bp = ActionsBlueprint("pages", __name__)

    @app.context_processor
    def site() -> dict[str, str]:
        return {"site": "global"}

    @bp.fragment("mine", template="mine.html", tags=["mine"])
    def mine() -> dict[str, Any]:
        return {"site": "mine"}

    @bp.fragment("theirs", template="theirs.html", tags=["theirs"])
    def theirs() -> dict[str, Any]:
        return {}

    @bp.fragment("child", template="child.html", tags=["child"])
    def child(n: int) -> dict[str, Any]:
        return {"n": n}

    app.register_blueprint(bp)

    with app.test_request_context("/"):
        html = render_template_string("{% include 'page.html' %}")
    inner = re.sub(r"<[^>]+>", "", html)
    assert inner == "mine/set-in-mine/inc:mine|global/no-local|[1][2]|global"
