"""Markup of the template globals, compared with golden files in tests/golden/.

The per-render random values (CSRF token, ``_hx_key``, ``_hx_bound``) are normalised first. To
rewrite the golden files after a deliberate markup change: ``HX_UPDATE_GOLDEN=1 pytest
tests/test_forms.py``, then read the diff.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_factory import Harness, contract_app, normalise

GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(name: str, html: str) -> None:
    html = normalise(html).strip() + "\n"
    path = GOLDEN / f"{name}.html"
    if os.environ.get("HX_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(html)
    assert path.exists(), f"missing golden file {path} (HX_UPDATE_GOLDEN=1 writes it)"
    assert html == path.read_text()


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        h.add_item("First <item>")
        yield h


def render(harness: Harness, source: str, client=None) -> str:
    """Render ``source`` in a real page request of ``client`` (a new one by default)."""
    name = f"t{len(harness.templates)}.html"
    harness.templates[name] = source
    response = (client or harness.client()).get(f"/show/{name}")
    assert response.status_code == 200, response.text
    return response.text


# -- action_form ---------------------------------------------------------------------------------


def test_action_form_call_block(harness):
    html = render(
        harness,
        '{% call action_form("items.add") %}{{ field("title", label="Title") }}'
        "<button>Add</button>{% endcall %}",
    )
    assert_golden("action_form_call_block", html)


def test_action_form_one_button(harness):
    html = render(harness, '{{ action_form("items.toggle", bind={"id": 7}, label="Toggle") }}')
    assert_golden("action_form_one_button", html)


def test_action_form_options(harness):
    html = render(
        harness,
        '{{ action_form("items.remove", bind={"id": 7}, label="Delete", next="/after?x=1&y=2",'
        ' id="delete-7", class_="inline", hx_confirm="Sure?", disabled=False) }}',
    )
    assert_golden("action_form_options", html)


def test_action_form_target_and_swap_override_the_own_fragment(harness):
    html = render(
        harness,
        '{% call action_form("items.rename", bind={"id": 7}, target="#elsewhere",'
        ' swap="innerHTML") %}{{ field("title") }}{% endcall %}',
    )
    assert_golden("action_form_target_swap", html)


def test_remembered_opening_tags_follow_every_argument(harness):
    """Opening tags are remembered per bound values, target, swap and id: each variant of the
    same form on one page keeps its own markup (and ``1`` is not ``True``)."""
    html = render(
        harness,
        '{% for args in [{"bind": {"id": 7}}, {"bind": {"id": 8}}, {"bind": {"id": 7}},'
        ' {"bind": {"id": 7}, "target": "#x"}, {"bind": {"id": 7}, "swap": "innerHTML"},'
        ' {"bind": {"id": 7}, "id": "own"}, {"bind": {"id": 7}, "class_": "c"}] %}'
        '{{ action_form("items.toggle", label="Go", **args) }}\n{% endfor %}',
    )
    tags = re.findall(r"<form [^>]*>", html)
    assert len(tags) == 7
    assert tags[0] == tags[2]
    assert 'id="hx-items-toggle-8"' in tags[1] and 'hx-target="#item-row-8"' in tags[1]
    assert 'hx-target="#x"' in tags[3] and 'hx-target="#item-row-7"' not in tags[3]
    assert 'hx-swap="innerHTML"' in tags[4]
    assert 'id="own"' in tags[5]
    assert 'class="c"' in tags[6]
    assert len(set(tags)) == 6


def test_action_form_with_file_fields_is_multipart(harness):
    html = render(
        harness,
        '{% call action_form("items.upload") %}{{ field("file", type="file") }}'
        '{{ field("caption") }}{% endcall %}',
    )
    assert_golden("action_form_multipart", html)


def test_action_form_hidden_inputs(harness):
    html = render(harness, '{{ action_form("items.toggle", bind={"id": 7}, label="Go") }}')
    names = re.findall(r'<input type="hidden" name="([^"]+)"', html)
    assert names == ["csrf_token", "_hx_key", "_hx_bound"]
    html = render(harness, '{{ action_form("items.finish", label="Go") }}')
    assert re.findall(r'<input type="hidden" name="([^"]+)"', html) == ["csrf_token", "_hx_key"]


def test_action_form_renders_fresh_keys(harness):
    client = harness.client()
    first = render(harness, '{{ action_form("items.finish", label="Go") }}', client)
    second = render(harness, '{{ action_form("items.finish", label="Go") }}', client)
    key = re.compile(r'name="_hx_key" value="([^"]+)"')
    assert key.search(first).group(1) != key.search(second).group(1)


def test_action_form_uses_the_configured_csrf_field_name(tmp_path):
    with contract_app(tmp_path / "c.db", WTF_CSRF_FIELD_NAME="token") as h:
        html = render(h, '{{ action_form("items.finish", label="Go") }}')
        assert '<input type="hidden" name="token" value="' in html
        assert 'name="csrf_token"' not in html


def test_the_macros_file_offers_the_same_helpers(harness):
    html = render(
        harness,
        '{% from "hx_actions/macros.html" import action_form, field %}'
        '{% call action_form("items.add") %}{{ field("title", label="Title") }}'
        "<button>Add</button>{% endcall %}",
    )
    assert_golden("action_form_call_block", html)


def test_the_macros_take_positional_arguments_like_the_globals(harness):
    # field(name, label=None, type="text", **attrs): the macro passes on what the global takes.
    html = render(
        harness,
        '{% from "hx_actions/macros.html" import action_form, field %}'
        '{% call action_form("items.add") %}{{ field("title", "Title") }}'
        "<button>Add</button>{% endcall %}",
    )
    assert_golden("action_form_call_block", html)
    typed = render(
        harness,
        '{% from "hx_actions/macros.html" import action_form, field %}'
        '{% call action_form("items.profile") %}{{ field("bio", "Bio", "textarea") }}{% endcall %}',
    )
    assert '<label for="hx-items-profile-bio">Bio</label><textarea' in typed


# -- fields --------------------------------------------------------------------------------------

FIELDS = (
    '{% call action_form("items.profile") %}'
    '{{ field("name") }}\n{{ field("bio", type="textarea", rows=3) }}\n'
    '{{ field("subscribe", type="checkbox") }}\n'
    '{{ field("color", type="select", options=[("red", "Red"), ("green", "Green")]) }}\n'
    '{{ field("password", type="password", autocomplete="new-password") }}\n'
    '{{ field("note01", label="First note", value="preset", required=True) }}'
    "{% endcall %}"
)


def test_fields(harness):
    assert_golden("fields", render(harness, FIELDS))


def test_fields_after_a_failed_submit_show_errors_and_old_values(harness):
    client = harness.client()
    client.submit(
        "items.profile",
        {
            "name": "",
            "bio": 'Hi <b>"there"</b>',
            "subscribe": "on",
            "color": "green",
            "password": "short",
            "note01": "typed",
        },
        referrer="http://localhost/",
    )
    assert_golden("fields_after_error", render(harness, FIELDS, client))


HAND_WRITTEN = (
    '{% call action_form("items.add") %}'
    '<input name="title" value="{{ old("title") }}" aria-describedby="t-err">'
    '{{ field_errors("title") }}{% endcall %}'
)


def test_old_and_field_errors_for_hand_written_inputs(harness):
    assert_golden("old_field_errors", render(harness, HAND_WRITTEN))


def test_old_and_field_errors_after_a_failed_submit(harness):
    client = harness.client()
    client.submit("items.add", {"title": "x" * 101}, referrer="http://localhost/")
    assert_golden("old_field_errors_after_error", render(harness, HAND_WRITTEN, client))


def test_field_outside_action_form_is_a_clear_error(harness):
    harness.templates["bad.html"] = '{{ field("title") }}'
    with pytest.raises(RuntimeError, match="action_form"):
        harness.client().get("/show/bad.html")


# -- fragments and head --------------------------------------------------------------------------


def test_fragment_regions(harness):
    html = render(
        harness,
        '{{ fragment("stats") }}\n{{ fragment("item-row", id=1) }}\n{{ fragment("item-list") }}',
    )
    assert_golden("fragments", html)


def test_parametrised_fragment_region_attributes(harness):
    html = render(harness, '{{ fragment("item-row", id=1) }}')
    assert html.startswith(
        '<li id="item-row-1" data-hx-fragment="item-row" data-hx-fragment-params="id=1"'
        ' data-hx-tags="item:1">'
    )
    assert html.endswith("</li>")


def test_non_parametrised_fragment_region_attributes(harness):
    html = render(harness, '{{ fragment("stats") }}')
    assert html == '<p id="stats" data-hx-fragment="stats">0 of 1 done</p>'


def test_fragment_the_user_may_not_see_renders_an_empty_region(harness):
    item = harness.add_item("Alice's", owner="alice")
    html = render(harness, f'{{{{ fragment("item-note", id={item}) }}}}')
    assert html == f'<div id="item-note-{item}" data-hx-fragment="item-note"></div>'


def test_fragment_with_wrong_parameters_is_an_error(harness):
    harness.templates["bad.html"] = '{{ fragment("item-row", ident=1) }}'
    with pytest.raises(LookupError, match="item-row"):
        harness.client().get("/show/bad.html")


def test_hx_actions_head(harness):
    html = render(harness, "{{ hx_actions_head() }}")
    versions = re.findall(r"\?v=([0-9a-f]{12})\"", html)
    assert len(versions) == 2
    for version in versions:
        html = html.replace(f"?v={version}", "?v=SHA")
    assert_golden("hx_actions_head", html)


def test_script_urls_change_with_the_scripts_content(harness):
    """The ``v=`` of a script URL is a digest of the file, so a browser holding an earlier
    hx-actions.js in its cache loads the new one."""
    html = render(harness, "{{ hx_actions_head() }}")
    static = Path(harness.app.blueprints["hx_actions"].static_folder)
    for name in ("htmx.min.js", "hx-actions.js"):
        digest = hashlib.sha256((static / name).read_bytes()).hexdigest()[:12]
        assert f'/{name}?v={digest}"' in html


def test_hx_actions_head_scripts_are_served(harness):
    html = render(harness, "{{ hx_actions_head() }}")
    client = harness.client()
    for src in re.findall(r'<script src="([^"]+)"', html):
        response = client.get(src)
        assert response.status_code == 200
        response.close()


def test_page_meta_token_and_form_tokens_agree(harness):
    html = harness.client().get("/").text
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
    assert set(re.findall(r'name="csrf_token" value="([^"]+)"', html)) == {meta}


def test_region_tags_follow_the_tags_function_each_render():
    """Region opening tags are remembered per parameters and tags, and the tags function runs
    on every render: tags that change (here with the data) change the markup."""
    from flask import Flask, render_template_string

    from flask_hx_actions import ActionsBlueprint, HxActions

    app = Flask(__name__)
    app.secret_key = "test"
    HxActions(app)
    bp = ActionsBlueprint("rows", __name__)
    extra: list[str] = []

    @bp.fragment(
        "row",
        template="row.html",
        tags=lambda id: [f"row:{id}", *extra],
        element="li",
    )
    def row(id: int) -> dict[str, object]:
        return {"id": id}

    app.register_blueprint(bp)
    from jinja2 import DictLoader

    app.jinja_loader = DictLoader({"row.html": "{{ id }}"})
    source = '{{ fragment("row", id=1) }}|{{ fragment("row", id="1") }}|{{ fragment("row", id=2) }}'
    with app.test_request_context():
        first = render_template_string(source).split("|")
        extra.append("stats")
        second = render_template_string(source).split("|")
    assert first[0] == (
        '<li id="row-1" data-hx-fragment="row" data-hx-fragment-params="id=1"'
        ' data-hx-tags="row:1">1</li>'
    )
    assert first[1] == first[0]  # "1" and 1 name the same region
    assert 'id="row-2"' in first[2] and 'data-hx-tags="row:2"' in first[2]
    assert 'data-hx-tags="row:1 stats"' in second[0]
    assert 'data-hx-tags="row:2 stats"' in second[2]


@pytest.mark.parametrize("autoescape", [True, False])
@pytest.mark.parametrize(
    "source",
    [
        "{% call f() %}<b>{{ v }}</b>{% endcall %}",
        "{% call(x) f() %}[{{ x }}]{{ v }}{% endcall %}",  # a block with arguments
        "{% call f() %}{% for i in range(2) %}{{ i }}{{ caller }}{% endfor %}{% endcall %}",
    ],
)
def test_call_block_bodies_are_what_jinja_gives(source: str, autoescape: bool) -> None:
    """forms.call_block_body gives str(caller()) for any call block, with and without
    autoescaping (its direct path covers Jinja's Macro of a block without arguments)."""
    from jinja2 import Environment

    from flask_hx_actions.forms import call_block_body

    env = Environment(autoescape=autoescape)  # noqa: S701 - both ways, on purpose
    seen: list[tuple[str, str]] = []

    def f(caller):
        seen.append((call_block_body(caller), str(caller())))
        return ""

    env.from_string(source).render(f=f, v="<i>&</i>")
    assert seen and all(ours == jinjas for ours, jinjas in seen)


def test_tags_functions_get_their_arguments_by_position_keyword_or_default():
    """A tags function is called with its parameters by position when it can take them that way
    and all are there, else by keyword with the ones present, so defaults and keyword-only
    parameters behave as in an ordinary call."""
    from flask_hx_actions.fragments import tags_from, takes_by_position

    def plain(id, kind="row"):
        return [f"{kind}:{id}"]

    def keyword_only(id, *, kind):
        return [f"{kind}:{id}"]

    def variadic(id, *rest, **more):
        return [f"row:{id}", *(str(r) for r in rest), *more]

    assert takes_by_position(plain) and takes_by_position(variadic)
    assert not takes_by_position(keyword_only)
    base = frozenset({"stats"})
    names = ("id", "kind")
    assert tags_from(base, plain, names, {"id": 7, "kind": "todo"}, True) == {"todo:7", "stats"}
    assert tags_from(base, plain, names, {"id": 7}, True) == {"row:7", "stats"}  # the default
    assert tags_from(frozenset(), keyword_only, names, {"id": 7, "kind": "todo"}) == {"todo:7"}
    assert tags_from(frozenset(), variadic, ("id",), {"id": 7, "x": 1}, True) == {"row:7"}
    with pytest.raises(TypeError):
        tags_from(frozenset(), plain, names, {"kind": "todo"}, True)  # id missing: as a call

    # one parameter (the usual tags=lambda id: ...): its value by position, its default when absent
    def one(id=3):
        return [f"row:{id}"]

    assert tags_from(frozenset(), one, ("id",), {"id": 7}, True) == {"row:7"}
    assert tags_from(base, one, ("id",), {"id": 7, "other": 1}, True) == {"row:7", "stats"}
    assert tags_from(frozenset(), one, ("id",), {}, True) == {"row:3"}
    with pytest.raises(ValueError):  # its tags are checked as any others
        tags_from(frozenset(), lambda id: [f"row {id}"], ("id",), {"id": 7}, True)
    with pytest.raises(TypeError):
        tags_from(frozenset(), lambda id: f"row:{id}", ("id",), {"id": 7}, True)


def test_a_forms_declared_tags_need_every_parameter_of_the_tag_function():
    from types import MappingProxyType

    from flask_hx_actions.actions import Action
    from flask_hx_actions.forms import _declared_tags

    def move(id, kind):
        return None

    action = Action(
        move, name="move", endpoint="t.move", tags=lambda id, kind: [f"{kind}:{id}", "stats"]
    )
    static = Action(move, name="move", endpoint="t.move", tags=["stats"])
    assert _declared_tags(action, {"id": 7, "kind": "row"}) == {"row:7", "stats"}
    assert _declared_tags(action, {"id": 7, "kind": "row", "x": 1}) == {"row:7", "stats"}
    assert _declared_tags(action, MappingProxyType({"id": 7, "kind": "row"})) == {"row:7", "stats"}
    assert _declared_tags(action, {"id": 7}) == frozenset()  # one missing: none from the function
    assert _declared_tags(action, None) == frozenset()
    assert _declared_tags(static, {"id": 7}) == {"stats"}
