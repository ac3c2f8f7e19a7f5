"""The Redis store completes a key and increments the action's tags in one round trip when it
shares its client with the Redis tag versions (HX_ACTIONS_REDIS_URL, no SQLAlchemy)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from jinja2 import DictLoader

from flask_hx_actions import ActionsBlueprint, HxActions, ok, revalidate
from flask_hx_actions.idempotency import REPLAYED_HEADER, store_for
from flask_hx_actions.testing import ActionClient


def make_app(redis_url: str, *, cached: bool = False, tag: str) -> Flask:
    app = Flask(__name__)
    app.secret_key = "test-secret"
    app.config.update(HX_ACTIONS_REDIS_URL=redis_url, TESTING=True)
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader(
        {"row.html": "<b>{{ n }}</b>", "stats.html": "{{ total }} in all"}
    )
    HxActions(app)
    bp = ActionsBlueprint("things", __name__, url_prefix="/things")
    app.extensions["calls"] = {"add": 0, "boom": 0}
    rows: dict[int, int] = {}

    @bp.action("add", tags=lambda id: [f"{tag}:{id}", tag], fragment="row")
    def add(id: int) -> Any:
        app.extensions["calls"]["add"] += 1
        rows[id] = rows.get(id, 0) + 1
        return ok()

    @bp.action("boom", tags=[f"{tag}-broken"], fragment="broken")
    def boom() -> Any:
        app.extensions["calls"]["boom"] += 1
        revalidate(f"{tag}-extra")
        return ok()

    @bp.fragment("row", template="row.html", tags=lambda id: [f"{tag}:{id}"])
    def row(id: int) -> dict[str, Any]:
        return {"n": rows.get(id, 0)}

    @bp.fragment("stats", template="stats.html", tags=[tag], cache="global" if cached else None)
    def stats() -> dict[str, Any]:
        return {"total": sum(rows.values())}

    @bp.fragment("broken", template="row.html", tags=[f"{tag}-broken"])
    def broken() -> dict[str, Any]:
        raise RuntimeError("the answer fails to render")

    app.register_blueprint(bp)
    return app


@pytest.fixture
def tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app(redis_url: str, tag: str) -> Iterator[Flask]:
    app = make_app(redis_url, tag=tag)
    yield app
    app.extensions["hx_actions"].tag_versions.client.close()


def versions(app: Flask, *tags: str) -> list[int]:
    got = app.extensions["hx_actions"].tag_versions.get(list(tags))
    return [got[t] for t in tags]


class RoundTrips:
    """Counts the commands and pipelines the shared Redis client sends."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = client.execute_command

        def execute_command(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", execute_command)
        pipeline_class = type(client.pipeline())
        original_execute = pipeline_class.execute

        def execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original_execute(pipe, *args, **kwargs)

        monkeypatch.setattr(pipeline_class, "execute", execute)


def test_the_store_shares_the_tag_versions_client(app: Flask) -> None:
    with app.app_context():
        store = store_for(app)
    assert store is not None
    assert store.client is app.extensions["hx_actions"].tag_versions.client  # type: ignore[attr-defined]


@pytest.mark.parametrize("htmx", [True, False])
def test_claim_then_one_round_trip_for_the_answer_and_the_tags(
    app: Flask, tag: str, htmx: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    client.submit("things.add", {"_hx_key": "warm-up-key-1"}, bind={"id": 1}, htmx=htmx)
    before = versions(app, tag, f"{tag}:7")
    trips = RoundTrips(app.extensions["hx_actions"].tag_versions.client, monkeypatch)
    first = client.submit("things.add", {"_hx_key": "key-0000001"}, bind={"id": 7}, htmx=htmx)
    assert trips.count == 2  # SET NX (the claim), then EVALSHA (completion + increments)
    assert first.status_code == (200 if htmx else 303)
    assert versions(app, tag, f"{tag}:7") == [before[0] + 1, before[1] + 1]
    again = client.submit("things.add", {"_hx_key": "key-0000001"}, bind={"id": 7}, htmx=htmx)
    assert again.get_data() == first.get_data()  # the stored answer, replayed
    assert again.headers[REPLAYED_HEADER] == "true"
    assert app.extensions["calls"]["add"] == 2
    assert versions(app, tag, f"{tag}:7") == [before[0] + 1, before[1] + 1]


def replace_combined_call(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the store's one-round-trip completion raise; the list returned records its calls."""
    with app.app_context():
        store = store_for(app)
    calls: list[str] = []

    def raising(*args: Any, **kwargs: Any) -> None:
        calls.append("combined")
        raise ConnectionError("lost the connection")

    monkeypatch.setattr(store, "_complete_and_bump", raising)
    return calls


def submit_twice(client: Any, key: str) -> tuple[Any, Any]:
    """Toggle row 7 twice with the same key: the second answer is a replay."""
    first = client.submit("things.add", {"_hx_key": key}, bind={"id": 7}, htmx=True)
    again = client.submit("things.add", {"_hx_key": key}, bind={"id": 7}, htmx=True)
    return first, again


def test_with_cached_fragments_the_tags_move_before_the_answer_renders(
    redis_url: str, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(redis_url, cached=True, tag=tag)
    try:
        calls = replace_combined_call(app, monkeypatch)
        first, again = submit_twice(app.test_client(), "key-0000002")
        assert calls == []  # cached renders need the new versions before they render
        assert first.status_code == 200
        assert versions(app, f"{tag}:7") == [1]
        assert again.headers[REPLAYED_HEADER] == "true"
    finally:
        app.extensions["hx_actions"].tag_versions.client.close()


def test_when_the_combined_call_fails_the_tags_still_move(
    app: Flask, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    client.submit("things.add", {"_hx_key": "warm-up-key-1"}, bind={"id": 1}, htmx=True)
    calls = replace_combined_call(app, monkeypatch)
    first, again = submit_twice(client, "key-0000003")
    assert calls == ["combined"]
    assert first.status_code == 200
    assert versions(app, f"{tag}:7") == [1]
    assert again.headers[REPLAYED_HEADER] == "true"  # completed the ordinary way
    assert app.extensions["calls"]["add"] == 2


def test_an_answer_that_fails_to_render_still_moves_the_tags(app: Flask, tag: str) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    before = versions(app, f"{tag}-broken")[0]
    answer = client.submit("things.boom", {"_hx_key": "key-0000004"}, htmx=True)
    assert answer.status_code == 500
    assert app.extensions["calls"]["boom"] == 1
    assert versions(app, f"{tag}-broken") == [before + 1]
    again = client.submit("things.boom", {"_hx_key": "key-0000004"}, htmx=True)
    assert app.extensions["calls"]["boom"] == 1  # the key is done: the body does not run again
    assert again.status_code == 500  # re-rendered, and the render fails again


def test_a_key_done_without_an_answer_keeps_the_tags_its_body_revalidated(
    app: Flask, tag: str
) -> None:
    """The answer failed to render after the combined completion took the tags: a replay
    re-renders, and must refresh what the body revalidated, as without the combined call."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    answer = app.test_client().submit("things.boom", {"_hx_key": "key-0000005"}, htmx=True)
    assert answer.status_code == 500
    assert versions(app, f"{tag}-extra") == [1]
    with app.app_context():
        store = store_for(app)
    assert store is not None
    (name,) = store.client.scan_iter(f"{store.prefix}*:key-0000005")
    scope = name.decode()[len(store.prefix) : -len(":key-0000005")]
    fingerprint = json.loads(store.client.get(name).split(b"\n", 1)[1])["fingerprint"]
    again = store.claim(scope, "key-0000005", fingerprint, 60.0)
    assert again.outcome == "rerender"
    assert again.tags >= {f"{tag}-extra", f"{tag}-broken"}
