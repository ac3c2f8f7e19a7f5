"""Idempotency keys through the whole request lifecycle (needs the pipeline integration)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from app_factory import Harness, contract_app, db, normalise

from flask_hx_actions.idempotency import REPLAYED_HEADER
from flask_hx_actions.idempotency_stores import TABLE_NAME, SQLAlchemyStore
from flask_hx_actions.responses import answer_key

KEY = "retry-key-0001"
JSON = {"Accept": "application/json"}


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        yield h


def test_htmx_retry_replays_the_answer_and_writes_once(harness: Harness) -> None:
    client = harness.client()
    first = client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, htmx=True)
    second = client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, htmx=True)
    assert first.status_code == second.status_code == 200
    # Rendered again from the committed state (the forms in it get fresh keys and tokens).
    assert normalise(second.get_data(as_text=True)) == normalise(first.get_data(as_text=True))
    assert second.headers[REPLAYED_HEADER] == "true"
    assert REPLAYED_HEADER not in first.headers
    assert answer_key(second.headers) not in (None, KEY, answer_key(first.headers))
    assert second.headers["Cache-Control"] == "no-store"
    assert harness.calls["add"] == 1
    assert [row[1] for row in harness.items()] == ["Milk"]


def test_plain_and_json_retries_replay_the_stored_answer(harness: Harness) -> None:
    client = harness.client()
    plain = [client.submit("items.add", {"title": "A", "_hx_key": KEY}) for _ in range(2)]
    assert [r.status_code for r in plain] == [303, 303]
    assert plain[1].headers["Location"] == plain[0].headers["Location"]
    data = {"title": "B", "_hx_key": "json-key-0001"}
    answers = [client.submit("items.add", data, json=True).get_json() for _ in range(2)]
    assert answers[0] == answers[1] == {"ok": True, "code": None, "data": {"id": 2}}
    assert harness.calls["add"] == 2


def test_htmx_redirect_is_replayed_as_stored(harness: Harness) -> None:
    client = harness.client()
    answers = [client.submit("items.finish", {"_hx_key": KEY}, htmx=True) for _ in range(2)]
    assert answers[0].headers["HX-Redirect"] == answers[1].headers["HX-Redirect"]
    assert answers[1].headers[REPLAYED_HEADER] == "true"
    assert harness.calls["finish"] == 1


def test_header_key_works_like_the_field(harness: Harness) -> None:
    client = harness.client()
    for _ in range(2):
        client.submit(
            "items.add", {"title": "A", "_hx_key": ""}, json=True, headers={"Idempotency-Key": KEY}
        )
    assert harness.calls["add"] == 1


def test_test_client_sends_a_header_key_like_a_script(harness: Harness) -> None:
    # A script sends Idempotency-Key and no _hx_key: ActionClient.submit(headers=...) does too.
    client = harness.client()
    answers = [
        client.submit("items.add", {"title": "A"}, json=True, headers={"Idempotency-Key": KEY})
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers[REPLAYED_HEADER] == "true"
    assert harness.calls["add"] == 1


def test_same_key_with_other_input_is_422(harness: Harness) -> None:
    client = harness.client()
    client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, json=True)
    other = client.submit("items.add", {"title": "Bread", "_hx_key": KEY}, json=True)
    assert other.status_code == 422
    assert other.get_json()["code"] == "idempotency_key_reused"
    assert harness.calls["add"] == 1


def test_malformed_key_is_400_and_runs_nothing(harness: Harness) -> None:
    response = harness.client().submit("items.add", {"title": "x", "_hx_key": "bad key!"})
    assert response.status_code == 400
    assert harness.calls["add"] == 0


def test_fail_frees_the_key(harness: Harness) -> None:
    client = harness.client()
    for _ in range(2):
        response = client.submit("items.reject", {"title": "Dup", "_hx_key": KEY}, json=True)
        assert response.status_code == 422
    assert harness.calls["reject"] == 2
    assert harness.items() == []


def test_exception_frees_the_key(harness: Harness) -> None:
    harness.app.config["PROPAGATE_EXCEPTIONS"] = False
    client = harness.client()
    for _ in range(2):
        response = client.submit("items.explode", {"title": "Boom", "_hx_key": KEY}, json=True)
        assert response.status_code == 500
    assert harness.calls["explode"] == 2
    assert harness.items() == []


@pytest.mark.parametrize("kind", ["json", "htmx"])
def test_unfinished_key_is_409_with_retry_after(harness: Harness, kind: str) -> None:
    client = harness.client()
    data = {"title": "Milk", "_hx_key": KEY}
    assert client.submit("items.add", data, **{kind: True}).status_code == 200
    with harness.app.app_context():  # as if the first request had committed mid-body
        table = SQLAlchemyStore().table
        db.session.execute(table.update().values(state="in_flight"))
        db.session.commit()
    again = client.submit("items.add", data, **{kind: True})
    assert again.status_code == 409
    assert again.headers["Retry-After"] == "1"
    assert harness.calls["add"] == 1


def test_fields_hx_actions_js_adds_are_not_part_of_the_fingerprint(harness: Harness) -> None:
    """The page's token and regions describe the page, not the input: a retry from a page that
    changed meanwhile is a replay, not a 422."""
    client = harness.client()
    token = client.hidden_fields("items.add")["csrf_token"]
    answers = [
        client.submit(
            "items.add", {"title": "Milk", "_hx_key": KEY, "_hx_csrf": token}, htmx=True, regions=r
        )
        for r in ("item-list", "item-list stats")
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers[REPLAYED_HEADER] == "true"
    assert harness.calls["add"] == 1


def test_same_key_asked_another_way_is_422(harness: Harness) -> None:
    client = harness.client()
    client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, json=True)
    other = client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, htmx=True)
    assert other.status_code == 422
    assert harness.calls["add"] == 1


def test_key_done_without_answer_gets_a_success_without_running_the_body(
    harness: Harness,
) -> None:
    client = harness.client()
    data = {"title": "Milk", "_hx_key": KEY}
    client.submit("items.add", data, json=True)
    with harness.app.app_context():
        table = SQLAlchemyStore().table
        db.session.execute(table.update().values(state="done", status=None))
        db.session.commit()
    again = client.submit("items.add", data, json=True)
    assert again.status_code == 200
    assert again.headers[REPLAYED_HEADER] == "true"
    assert again.get_json()["ok"] is True
    assert harness.calls["add"] == 1


def test_answer_is_committed_with_the_writes(harness: Harness) -> None:
    client = harness.client()
    client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, json=True)
    with harness.app.app_context():
        table = SQLAlchemyStore().table
        rows = db.session.execute(table.select()).all()
    assert [(r.state, r.status) for r in rows] == [("done", 200)]


def test_htmx_fragments_and_plain_ok_cost_one_statement_on_the_key_table(harness: Harness) -> None:
    """Its row is inserted as done without an answer and not written again, a plain ``ok``'s row
    with its 303; another kept answer (JSON, ``redirect_to``) or tags the body revalidated
    (``mark_all``) take an UPDATE too."""
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        verb = statement.split(None, 1)[0].upper()
        if TABLE_NAME in statement and verb in ("INSERT", "UPDATE", "SELECT", "DELETE"):
            statements.append(verb)

    client = harness.client()
    client.submit("items.add", {"title": "Warm-up", "_hx_key": "warm-key-0001"}, htmx=True)
    with harness.app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        seen_by: dict[str, list[str]] = {}
        locations: dict[str, str | None] = {}
        for kind, action, data in [
            ("htmx", "items.add", {"title": "Milk"}),
            ("json", "items.add", {"title": "Bread"}),
            ("htmx", "items.mark_all", {}),
            ("plain", "items.add", {"title": "Jam"}),  # its 303 is inserted with the claim
            ("plain", "items.finish", {}),  # redirect_to: another answer
        ]:
            statements.clear()
            key = f"{kind}-{action.replace('.', '-')}-key"
            asked = {kind: True} if kind != "plain" else {}
            answered = client.submit(action, {**data, "_hx_key": key}, **asked)
            seen_by[f"{kind} {action}"] = list(statements)
            locations[action] = answered.headers.get("Location")
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert seen_by == {
        "htmx items.add": ["INSERT"],
        "json items.add": ["INSERT", "UPDATE"],
        "htmx items.mark_all": ["INSERT", "UPDATE"],
        "plain items.add": ["INSERT"],
        "plain items.finish": ["INSERT", "UPDATE"],
    }
    again = client.submit(
        "items.add", {"title": "Milk", "_hx_key": "htmx-items-add-key"}, htmx=True
    )
    assert (again.status_code, again.headers.get(REPLAYED_HEADER)) == (200, "true"), again.text
    assert locations["items.add"] != locations["items.finish"]
    for action, data in [("items.add", {"title": "Jam"}), ("items.finish", {})]:
        key = f"plain-{action.replace('.', '-')}-key"
        replayed = client.submit(action, {**data, "_hx_key": key})
        assert (replayed.status_code, replayed.headers[REPLAYED_HEADER]) == (303, "true")
        assert replayed.headers["Location"] == locations[action]
    assert harness.calls["add"] == 4  # the warm-up, Milk, Bread, Jam
    assert harness.calls["finish"] == 1


def test_same_form_twice_with_new_input_writes_twice(harness: Harness) -> None:
    """The answer carries a fresh key that hx-actions.js puts in the form: two writes."""
    client = harness.client()
    first = client.submit("items.mark_all", {"_hx_key": KEY}, htmx=True)
    fresh = answer_key(first.headers)
    assert fresh is not None
    assert first.headers["HX-Reswap"] == "none"  # the form is not re-rendered
    client.submit("items.add", {"title": "A", "_hx_key": "add-key-0001"}, htmx=True)
    second = client.submit("items.mark_all", {"_hx_key": fresh}, htmx=True)
    assert REPLAYED_HEADER not in second.headers
    assert harness.calls["mark_all"] == 2


def test_keys_are_per_user(harness: Harness) -> None:
    alice, bob = harness.client(), harness.client()
    for client, user in ((alice, "alice"), (bob, "bob")):
        with client.session_transaction() as sess:
            sess["user"] = user
        client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, json=True)
    assert harness.calls["add"] == 2


@pytest.fixture
def redis_harness(tmp_path, redis_url: str) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db", HX_ACTIONS_IDEMPOTENCY_STORE=redis_url) as h:
        yield h


def test_redis_store_replays_the_rendered_answer_byte_for_byte(redis_harness: Harness) -> None:
    client = redis_harness.client()
    first = client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, htmx=True)
    second = client.submit("items.add", {"title": "Milk", "_hx_key": KEY}, htmx=True)
    assert second.get_data() == first.get_data()
    assert second.headers[REPLAYED_HEADER] == "true"
    assert redis_harness.calls["add"] == 1


def test_redis_store_frees_the_key_after_fail_and_exception(redis_harness: Harness) -> None:
    redis_harness.app.config["PROPAGATE_EXCEPTIONS"] = False
    client = redis_harness.client()
    for _ in range(2):
        client.submit("items.reject", {"title": "Dup", "_hx_key": KEY}, json=True)
        client.submit("items.explode", {"title": "Boom", "_hx_key": "boom-key-01"}, json=True)
    assert redis_harness.calls["reject"] == redis_harness.calls["explode"] == 2


def test_action_with_idempotent_false_skips_the_key_store(tmp_path) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_hx_actions import ActionsBlueprint, HxActions, ok
    from flask_hx_actions.testing import ActionClient

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'optout.sqlite'}",
    )
    app.test_client_class = ActionClient
    SQLAlchemy(app)
    HxActions(app)
    runs = {"kept": 0, "repeatable": 0}
    bp = ActionsBlueprint("jobs", __name__, url_prefix="/jobs")

    @bp.action("kept")
    def kept() -> object:
        runs["kept"] += 1
        return ok()

    @bp.action("repeatable", idempotent=False)
    def repeatable() -> object:
        runs["repeatable"] += 1
        return ok()

    app.register_blueprint(bp)
    client = app.test_client()
    for endpoint in ("jobs.kept", "jobs.repeatable"):
        for _ in range(2):
            response = client.submit(endpoint, {"_hx_key": "same-key-0001"}, json=True)
            assert response.status_code == 200
    assert runs == {"kept": 1, "repeatable": 2}
