"""Tag functions that read only their arguments are remembered per argument values; any other is
called every time. And forms sign for the session as it is when each one renders."""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
from flask import Flask, render_template_string, session
from jinja2 import DictLoader
from markupsafe import Markup

from flask_hx_actions import ActionsBlueprint, HxActions, ok
from flask_hx_actions.security import sign_bound
from flask_hx_actions.tag_memo import memo_key, reads_only_arguments

LISTS = {1: "inbox"}  # read by an impure tag function


def _global_name(id: int) -> list[str]:
    return [str(id)]  # names the builtin str


def _attribute(id: str) -> list[str]:
    return [id.upper()]  # an attribute (a method) of the argument


def _reads_global(id: int) -> list[str]:
    return [f"list:{LISTS[id]}"]


def _mutable_default(id: int, seen: list[str] = []) -> list[str]:  # noqa: B006 - the point
    seen += [f"todo:{id}"]
    return seen


def _comprehension(id: int, n: int = 2) -> list[str]:
    return [f"part:{id}:{i}" for i in (1, 2)]


def _comprehension_with_global(id: int) -> list[str]:
    return [f"part:{id}:{i}" for i in range(2)]


def _closure() -> Any:
    prefix = ["todo"]
    return lambda id: [f"{prefix[0]}:{id}"]


class _Callable:
    def __call__(self, id: int) -> list[str]:
        return [f"todo:{id}"]


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (lambda id: [f"todo:{id}", "stats"], True),
        (lambda id, kind="row": [f"{kind}:{id}"], True),
        (lambda a, b: [f"{a}:{b}", f"{a!r}"] if a else [], True),
        (_comprehension, True),
        (_global_name, False),
        (_attribute, False),
        (_reads_global, False),
        (_mutable_default, False),
        (_comprehension_with_global, False),
        (_closure(), False),
        (_Callable(), False),
        (functools.partial(lambda id, x: [f"{x}:{id}"], x="a"), False),
        (str.split, False),
    ],
)
def test_only_functions_that_name_nothing_and_close_over_nothing_are_remembered(
    func: Any, expected: bool
) -> None:
    assert reads_only_arguments(func) is expected


def test_memo_keys_tell_equal_values_of_different_types_apart() -> None:
    keys = [memo_key(v) for v in (1, True, 1.0, "1", None, 0.0)]
    assert len(set(keys)) == len(keys)
    assert None not in keys
    assert memo_key(1) == memo_key(1) and memo_key("a") == "a"
    # Not exact scalars, or formatted otherwise while equal: never remembered.
    for value in (-0.0, Markup("<b>"), [1], (1,), 10**0 * 1.5j, object()):
        assert memo_key(value) is None


def make_app() -> tuple[Flask, dict[str, Any]]:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", TESTING=True, WTF_CSRF_ENABLED=False)
    app.jinja_loader = DictLoader(
        {
            "row.html": "{{ action_form('t.toggle', bind={'id': id}, label='Go') }}",
            "item.html": "{{ value }}",
        }
    )
    HxActions(app)
    bp = ActionsBlueprint("t", __name__, url_prefix="/t")

    @bp.action("toggle", tags=lambda id: [f"todo:{id}", "stats"], fragment="row")
    def toggle(id: Any) -> Any:
        return ok()

    @bp.action("move", tags=_reads_global)
    def move(id: int) -> Any:
        return ok()

    @bp.fragment("row", template="row.html", tags=lambda id: [f"todo:{id}"], element="li")
    def row(id: Any) -> dict[str, Any]:
        return {"id": id}

    @bp.fragment("listed", template="item.html", tags=_reads_global, element="li")
    def listed(id: int) -> dict[str, Any]:
        return {"value": id}

    app.register_blueprint(bp)
    return app, {"toggle": toggle, "move": move}


def test_a_pure_tag_function_is_remembered_and_gives_the_same_tags() -> None:
    app, _ = make_app()
    state = app.extensions["hx_actions"]
    row = state.fragments["row"]
    action = state.actions["t.toggle"]
    assert row._tags_memo == {} and action.tags_memo == {}
    with app.test_request_context():
        first = render_template_string("{{ fragment('row', id=7) }}{{ fragment('row', id=7) }}")
        again = render_template_string("{{ fragment('row', id=7) }}")
    no_keys = functools.partial(re.sub, r'name="_hx_key" value="[^"]+"', "")
    assert no_keys(first) == no_keys(again + again)
    assert 'data-hx-tags="todo:7"' in again and 'data-hx-tags="stats todo:7"' in again
    assert row._tags_memo == {7: frozenset({"todo:7"})}
    assert action.tags_memo == {7: frozenset({"stats", "todo:7"})}
    # The same object each time: its hash is computed once, for every memo keyed by it.
    assert row.tags({"id": 7}) is row.tags({"id": 7})


def test_equal_values_of_different_types_get_their_own_tags() -> None:
    app, _ = make_app()
    with app.test_request_context():
        html = render_template_string(
            "{% for v in values %}{{ fragment('row', id=v) }}{% endfor %}",
            values=[1, True, 1.0, "1"],
        )
    tags = re.findall(r'<li [^>]*data-hx-tags="([^"]*)"', html)
    assert tags == ["todo:1", "todo:True", "todo:1.0", "todo:1"]
    row = app.extensions["hx_actions"].fragments["row"]
    assert len(row._tags_memo) == 4


def test_a_tag_function_that_reads_data_is_asked_every_time() -> None:
    """Its answer can change between renders (here: the row moved to another list), so it is
    never remembered: the next render shows the new tags, on the region and on the form."""
    app, _ = make_app()
    state = app.extensions["hx_actions"]
    assert state.fragments["listed"]._tags_memo is None
    assert state.actions["t.move"].tags_memo is None
    page = "{{ fragment('listed', id=1) }}{{ action_form('t.move', bind={'id': 1}, label='M') }}"
    try:
        with app.test_request_context():
            before = render_template_string(page)
        LISTS[1] = "archive"
        with app.test_request_context():
            after = render_template_string(page)
    finally:
        LISTS[1] = "inbox"
    assert before.count('data-hx-tags="list:inbox"') == 2
    assert after.count('data-hx-tags="list:archive"') == 2 and "inbox" not in after


def _bound_token(html: str) -> str:
    found = re.search(r'name="_hx_bound" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_a_form_rendered_after_the_session_is_cleared_is_signed_for_the_new_session() -> None:
    app, _ = make_app()
    form = "{{ action_form('t.toggle', bind={'id': 3}, label='Go') }}"
    with app.test_request_context():
        first = render_template_string(form)
        old_sid = session["_hx_sid"]
        session.clear()
        second = render_template_string(form)
        new_sid = session["_hx_sid"]
        assert new_sid != old_sid
        assert _bound_token(first) == sign_bound(app, "t.toggle", {"id": 3}, f"{old_sid}|")
        assert _bound_token(second) == sign_bound(app, "t.toggle", {"id": 3}, f"{new_sid}|")


def test_a_second_request_context_in_the_same_app_context_signs_for_its_own_session() -> None:
    """Request contexts pushed inside one app context share ``g``: what the first request's
    forms signed with is not reused for the second one's session."""
    app, _ = make_app()
    form = "{{ action_form('t.toggle', bind={'id': 3}, label='Go') }}"
    with app.app_context(), app.test_request_context():
        outer = render_template_string(form)
        outer_sid = session["_hx_sid"]
        with app.test_request_context():
            inner = render_template_string(form)
            inner_sid = session["_hx_sid"]
    assert inner_sid != outer_sid
    with app.test_request_context():
        assert _bound_token(outer) == sign_bound(app, "t.toggle", {"id": 3}, f"{outer_sid}|")
        assert _bound_token(inner) == sign_bound(app, "t.toggle", {"id": 3}, f"{inner_sid}|")
