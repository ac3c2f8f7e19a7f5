"""Registering actions and fragments: endpoints, plain calls, invoke(), start-up errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from app_factory import Harness, contract_app
from flask import Flask, render_template_string, url_for
from marshmallow import Schema, fields, validate

from flask_hx_actions import Action, ActionsBlueprint, HxActions, ok


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        yield h


def test_each_action_is_a_flask_endpoint_for_url_for(harness):
    with harness.app.test_request_context():
        assert url_for("items.add") == "/items/add"
        assert url_for("items.toggle") == "/items/toggle"


def test_get_on_an_action_is_405(harness):
    response = harness.client().get("/items/add")
    assert response.status_code == 405
    assert harness.body_calls == 0


def test_unknown_action_is_404_and_runs_no_user_code(harness):
    client = harness.client()
    client.get("/")
    response = client.post(
        "/items/nope", data={"title": "x"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 404
    assert harness.body_calls == 0


def test_the_registered_action_is_still_a_plain_callable():
    bp = ActionsBlueprint("calc", __name__)

    @bp.action("double")
    def double(n: int) -> Any:
        return ok(value=n * 2)

    assert isinstance(double, Action)
    assert double.__name__ == "double"
    assert dict(double(n=4).data) == {"value": 8}
    assert dict(double(5).data) == {"value": 10}


def test_plain_call_runs_the_body_without_validation(harness):
    add = harness.app.extensions["contract_actions"]["add"]
    with harness.app.app_context():
        result = add(title="", priority=99)  # the schema would refuse both
        from app_factory import db

        db.session.commit()
    assert result.ok is True
    assert harness.calls["add"] == 1
    assert [row[1:3] for row in harness.items()] == [("", 99)]


def test_invoke_validates_and_returns_errors_without_running_the_body(harness):
    add = harness.app.extensions["contract_actions"]["add"]
    with harness.app.app_context():
        result = add.invoke({"title": "", "priority": "9"})
    assert result.ok is False
    assert result.code == "invalid"
    assert {k: list(v) for k, v in result.errors.items()} == {
        "title": ["Length must be between 1 and 100."],
        "priority": ["Must be greater than or equal to 1 and less than or equal to 5."],
    }
    assert harness.calls["add"] == 0


def test_invoke_runs_the_body_with_validated_values(harness):
    add = harness.app.extensions["contract_actions"]["add"]
    with harness.app.app_context():
        result = add.invoke({"title": "Milk", "priority": "3", "unknown": "x"})
        from app_factory import db

        db.session.commit()
    assert result.ok is True
    assert harness.calls["add"] == 1
    assert [row[1:3] for row in harness.items()] == [("Milk", 3)]


def test_invoke_takes_bound_arguments(harness):
    item = harness.add_item("a")
    toggle = harness.app.extensions["contract_actions"]["toggle"]
    with harness.app.app_context():
        result = toggle.invoke({}, bound={"id": item})
        from app_factory import db

        db.session.commit()
    assert result.ok is True
    assert harness.item(item)[3] is True


def test_invoke_without_the_required_bound_arguments_is_a_type_error(harness):
    toggle = harness.app.extensions["contract_actions"]["toggle"]
    with harness.app.app_context(), pytest.raises(TypeError, match="bound"):
        toggle.invoke({})
    assert harness.calls["toggle"] == 0


def test_invoke_works_without_an_app():
    class Schema1(Schema):
        title = fields.String(required=True, validate=validate.Length(min=1, max=100))

    bp = ActionsBlueprint("solo", __name__)
    seen = []

    @bp.action("add", schema=Schema1)
    def add(title: str) -> Any:
        seen.append(title)
        return ok()

    assert add.invoke({"title": ""}).errors["title"] == ("Length must be between 1 and 100.",)
    assert add.invoke({"title": "x"}).ok is True
    assert seen == ["x"]


def test_a_fragment_name_registered_twice_is_an_error_at_start_up():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "k"
    HxActions(app)
    one = ActionsBlueprint("one", __name__)
    two = ActionsBlueprint("two", __name__)

    @one.fragment("stats", template="a.html")
    def stats_one() -> dict[str, Any]:
        return {}

    @two.fragment("stats", template="b.html")
    def stats_two() -> dict[str, Any]:
        return {}

    app.register_blueprint(one)
    with pytest.raises(ValueError, match="stats"):
        app.register_blueprint(two)


@pytest.mark.parametrize(
    "template",
    [
        '{{ action_form("items.toggle", label="x") }}',
        '{{ action_form("items.toggle", bind={"id": 1, "extra": 2}, label="x") }}',
        '{{ action_form("items.toggle", bind={"ident": 1}, label="x") }}',
        '{{ action_form("items.add", bind={"id": 1}, label="x") }}',
    ],
    ids=["missing", "extra", "misspelt", "action-without-bound-args"],
)
def test_bind_that_does_not_match_the_action_is_an_error_in_action_form(harness, template):
    with harness.app.test_request_context(), pytest.raises(TypeError, match="bind="):
        render_template_string(template)


def test_action_form_for_an_unknown_action_names_it(harness):
    with harness.app.test_request_context(), pytest.raises(LookupError, match=r"items\.nope"):
        render_template_string('{{ action_form("items.nope", label="x") }}')


def test_registering_an_actions_blueprint_without_hxactions_is_a_clear_error():
    app = Flask(__name__)
    bp = ActionsBlueprint("todos", __name__)

    @bp.action("add")
    def add() -> None:
        return None

    with pytest.raises(RuntimeError, match=r"HxActions\(app\)"):
        app.register_blueprint(bp)


def test_init_app_pattern_registers_actions(tmp_path):
    hx = HxActions()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "k"
    hx.init_app(app)
    bp = ActionsBlueprint("todos", __name__, url_prefix="/todos")

    @bp.action("add")
    def add() -> None:
        return None

    app.register_blueprint(bp)
    assert "todos.add" in app.extensions["hx_actions"].actions
    with app.test_request_context():
        assert url_for("todos.add") == "/todos/add"


def test_action_name_must_be_one_url_segment():
    bp = ActionsBlueprint("todos", __name__)
    with pytest.raises(ValueError, match="segment"):
        bp.action("a/b")(lambda: None)


def test_templates_of_a_blueprint_view_get_g_request_and_session_once() -> None:
    """Flask gives every blueprint its own copy of the default context processor; an
    ActionsBlueprint drops it (the app's runs already) and keeps the blueprint's own."""
    app = Flask(__name__)
    app.secret_key = "test"
    bp = ActionsBlueprint("pages", __name__)
    calls: list[str] = []

    @bp.context_processor
    def own() -> dict[str, Any]:
        calls.append("own")
        return {"who": "bp"}

    @bp.get("/")
    def page() -> str:
        from flask import g, session

        g.marker = "g-ok"
        session["s"] = "session-ok"
        return render_template_string(
            "{{ g.marker }} {{ session['s'] }} {{ request.path }} {{ who }}"
        )

    app.register_blueprint(bp)
    defaults = [p for p in app.template_context_processors["pages"] if p.__name__ != "own"]
    assert defaults == []
    assert len(app.template_context_processors[None]) == 1  # the app's default is kept
    assert app.test_client().get("/").text == "g-ok session-ok / bp"
    assert calls == ["own"]
