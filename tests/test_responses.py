"""Every row of the response table (plain form, htmx, JSON) and the headers of action answers."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from app_factory import Harness, contract_app, top_level

from flask_hx_actions.responses import answer_key

SECRET = "hunter2"


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        yield h


@pytest.fixture
def live(tmp_path) -> Iterator[Harness]:
    """An app that does not propagate exceptions (what production runs)."""
    with contract_app(tmp_path / "live.db", TESTING=False, PROPAGATE_EXCEPTIONS=False) as h:
        yield h


def _input(html: str, dom_id: str) -> str:
    match = re.search(rf'<(input|textarea)[^>]* id="{re.escape(dom_id)}"[^>]*>', html)
    assert match, f"no input #{dom_id}"
    return match.group(0)


def _element(html: str, tag: str, dom_id: str) -> str:
    match = re.search(rf'<{tag} id="{re.escape(dom_id)}"[^>]*>(.*?)</{tag}>', html, re.S)
    assert match, f"no <{tag} id={dom_id}>"
    return match.group(0)


def _oob_ids(html: str) -> list[str]:
    return [attrs["id"] for _tag, attrs in top_level(html) if "hx-swap-oob" in attrs]


# -- plain form POST (no JavaScript) -------------------------------------------------------------


def test_plain_success_is_303_to_the_safe_next(harness):
    response = harness.client().submit(
        "items.add", {"title": "Milk", "next": "/show/page.html?x=1"}, referrer="http://localhost/"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/show/page.html?x=1"


def test_plain_success_without_next_is_303_to_the_referer_page(harness):
    response = harness.client().submit(
        "items.add", {"title": "Milk"}, referrer="http://localhost/list?page=2"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/list?page=2"


def test_plain_success_ignores_a_foreign_referer(harness):
    response = harness.client().submit(
        "items.add", {"title": "Milk"}, referrer="https://evil.example/phish"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_plain_success_without_next_or_referer_is_303_to_the_default(harness):
    harness.app.config["HX_ACTIONS_DEFAULT_REDIRECT"] = "/home"
    response = harness.client().submit("items.add", {"title": "Milk"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/home"


def test_plain_success_commits_the_write(harness):
    harness.client().submit("items.add", {"title": "Milk", "priority": "2"})
    assert [row[1:3] for row in harness.items()] == [("Milk", 2)]
    assert harness.calls["add"] == 1


def test_plain_validation_error_is_303_back_and_runs_nothing(harness):
    response = harness.client().submit(
        "items.add", {"title": "", "next": "/elsewhere"}, referrer="http://localhost/form"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/form"
    assert harness.body_calls == 0
    assert harness.items() == []


def test_plain_validation_errors_and_old_input_show_on_the_next_get(harness):
    client = harness.client()
    client.submit("items.add", {"title": "x" * 101, "priority": "9"}, referrer="http://localhost/")
    page = client.get("/").text
    summary = _element(page, "div", "hx-items-add-errors")
    assert "Please correct the errors below." in summary
    assert "Title: Length must be between 1 and 100." in summary
    title = _input(page, "hx-items-add-title")
    assert f'value="{"x" * 101}"' in title
    assert 'aria-invalid="true"' in title
    priority = _input(page, "hx-items-add-priority")
    assert 'value="9"' in priority
    slot = _element(page, "span", "hx-items-add-priority-error")
    assert "Must be greater than or equal to 1 and less than or equal to 5." in slot


def test_plain_errors_are_shown_by_the_submitted_form_only(harness):
    client = harness.client()
    client.submit("items.add", {"title": ""}, referrer="http://localhost/")
    page = client.get("/").text
    assert "Length must be between" in _element(page, "span", "hx-items-add-title-error")
    assert _element(page, "span", "hx-items-reject-title-error").endswith("></span>")
    assert 'aria-invalid="true"' not in _input(page, "hx-items-reject-title")


def test_plain_errors_of_a_bound_form_show_in_its_own_row_only(harness):
    one, two = harness.add_item("one"), harness.add_item("two")
    client = harness.client()
    client.submit("items.rename", {"title": ""}, bind={"id": one}, referrer="http://localhost/")
    page = client.get("/").text
    slot = _element(page, "span", f"hx-items-rename-{one}-title-error")
    assert "This field is required." in slot
    assert _element(page, "span", f"hx-items-rename-{two}-title-error").endswith("></span>")


def test_plain_errors_are_shown_once(harness):
    client = harness.client()
    client.submit("items.add", {"title": ""}, referrer="http://localhost/")
    assert "Length must be between" in client.get("/").text
    assert "Length must be between" not in client.get("/").text


def test_plain_fail_is_303_back_with_its_message_and_errors_on_the_next_get(harness):
    client = harness.client()
    response = client.submit("items.reject", {"title": "Milk"}, referrer="http://localhost/")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/").text
    summary = _element(page, "div", "hx-items-reject-errors")
    assert "Milk already exists" in summary
    assert "Milk is taken" in _element(page, "span", "hx-items-reject-title-error")
    assert 'value="Milk"' in _input(page, "hx-items-reject-title")


@pytest.mark.parametrize("kind", ["plain", "htmx", "json"])
def test_fail_rolls_back_the_transaction(harness, kind):
    harness.client().submit(
        "items.reject", {"title": "Milk"}, htmx=kind == "htmx", json=kind == "json"
    )
    assert harness.calls["reject"] == 1
    assert harness.items() == []


def test_plain_redirect_to_is_303_to_the_endpoint(harness):
    response = harness.client().submit("items.finish", {}, referrer="http://localhost/x")
    assert response.status_code == 303
    assert response.headers["Location"] == "/?tab=done"


def test_plain_not_found_is_a_404_page(harness):
    response = harness.client().submit("items.toggle", bind={"id": 404})
    assert response.status_code == 404
    assert "text/html" in response.headers["Content-Type"]
    assert harness.calls["toggle"] == 1


def test_plain_exception_is_a_generic_500_page_with_the_request_id(live):
    response = live.client().submit("items.explode", {"title": "boom"})
    assert response.status_code == 500
    assert "text/html" in response.headers["Content-Type"]
    request_id = response.headers["X-Request-ID"]
    assert request_id
    assert request_id in response.text
    assert SECRET not in response.text
    assert "RuntimeError" not in response.text


def test_exception_is_logged_with_the_request_id(live, caplog):
    with caplog.at_level(logging.ERROR):
        response = live.client().submit("items.explode", {"title": "boom"})
    request_id = response.headers["X-Request-ID"]
    records = [r for r in caplog.records if request_id in r.getMessage()]
    assert records, "the exception is logged with the request id"
    assert any(r.exc_info and SECRET in str(r.exc_info[1]) for r in records)


@pytest.mark.parametrize("kind", ["plain", "htmx", "json"])
def test_exception_rolls_back_the_transaction(live, kind):
    live.client().submit(
        "items.explode", {"title": "boom"}, htmx=kind == "htmx", json=kind == "json"
    )
    assert live.calls["explode"] == 1
    assert live.items() == []


def test_exception_propagates_when_testing(harness):
    with pytest.raises(RuntimeError, match=SECRET):
        harness.client().submit("items.explode", {"title": "boom"})
    assert harness.items() == []


def test_incoming_request_id_is_ignored_unless_trusted(live):
    client = live.client()
    headers = {"X-Request-ID": "from-the-client-123"}
    response = client.submit("items.explode", {"title": "boom"}, headers=headers)
    assert response.headers["X-Request-ID"] != "from-the-client-123"
    live.app.config["HX_ACTIONS_TRUST_REQUEST_ID"] = True
    response = client.submit("items.explode", {"title": "boom"}, headers=headers)
    assert response.headers["X-Request-ID"] == "from-the-client-123"
    assert "from-the-client-123" in response.text


# -- htmx ----------------------------------------------------------------------------------------


def test_htmx_success_is_200_own_fragment_then_oob_for_invalidated_tags(harness):
    one = harness.add_item("one")
    harness.add_item("two")
    response = harness.client().submit("items.toggle", bind={"id": one}, htmx=True)
    assert response.status_code == 200
    assert "HX-Reswap" not in response.headers
    parts = top_level(response.text)
    assert [(tag, attrs["id"]) for tag, attrs in parts] == [("li", "item-row-1"), ("p", "stats")]
    own, stats = (attrs for _tag, attrs in parts)
    assert "hx-swap-oob" not in own
    assert stats["hx-swap-oob"] == "true"
    assert "(done)" in response.text
    assert "1 of 2 done" in response.text
    assert harness.item(one)[3] is True


def test_htmx_success_skips_regions_whose_tags_were_not_invalidated(harness):
    one = harness.add_item("one")
    response = harness.client().submit("items.toggle", bind={"id": one}, htmx=True)
    assert 'id="item-list"' not in response.text
    assert 'id="item-row-2"' not in response.text


def test_htmx_regions_header_leaves_out_regions_the_page_lacks(harness):
    one = harness.add_item("one")
    response = harness.client().submit(
        "items.toggle", bind={"id": one}, htmx=True, regions="item-list"
    )
    assert response.status_code == 200
    assert [attrs["id"] for _tag, attrs in top_level(response.text)] == ["item-row-1"]


def test_htmx_without_regions_header_refreshes_no_parametrised_region_but_its_own(harness):
    harness.add_item("one")
    harness.add_item("two")
    response = harness.client().submit("items.mark_all", {}, htmx=True)
    assert response.status_code == 200
    assert _oob_ids(response.text) == ["stats"]


def test_htmx_regions_header_adds_the_parametrised_regions_it_names(harness):
    harness.add_item("one")
    two = harness.add_item("two")
    response = harness.client().submit(
        "items.mark_all", {}, htmx=True, regions=f"stats item-row?id={two}"
    )
    assert response.status_code == 200
    assert sorted(_oob_ids(response.text)) == ["item-row-2", "stats"]


def test_htmx_regions_header_with_unknown_or_bad_regions_is_ignored(harness):
    harness.add_item("one")
    response = harness.client().submit(
        "items.mark_all",
        {},
        htmx=True,
        regions="nope item-row?id=abc item-row?evil=1 item-row?id=1&x=2 <script> stats",
    )
    assert response.status_code == 200
    assert _oob_ids(response.text) == ["stats"]


def test_htmx_regions_header_refreshes_an_authorized_parametrised_fragment(harness):
    item = harness.add_item("alice's item", owner="alice")
    client = harness.client()
    with client.session_transaction() as sess:
        sess["user"] = "alice"
    response = client.submit(
        "items.toggle", bind={"id": item}, htmx=True, regions=f"item-note?id={item}"
    )
    assert _oob_ids(response.text) == [f"item-note-{item}"]
    assert "Private note of alice" in response.text


def test_tags_function_receives_validated_arguments(tmp_path):
    from flask import Flask
    from jinja2 import DictLoader
    from marshmallow import Schema, fields

    from flask_hx_actions import ActionsBlueprint, HxActions
    from flask_hx_actions.testing import ActionClient

    class KindSchema(Schema):
        kind = fields.String(required=True)

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", TESTING=True)
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader({"k.html": "{{ name }}"})
    HxActions(app)
    bp = ActionsBlueprint("k", __name__, url_prefix="/k")

    @bp.action("bump", schema=KindSchema, tags=lambda kind: [f"kind:{kind}"])
    def bump(kind: str) -> None:
        return None

    @bp.fragment("kind-a", template="k.html", tags=["kind:a"])
    def kind_a() -> dict[str, Any]:
        return {"name": "A"}

    @bp.fragment("kind-b", template="k.html", tags=["kind:b"])
    def kind_b() -> dict[str, Any]:
        return {"name": "B"}

    app.register_blueprint(bp)
    response = app.test_client().submit("k.bump", {"kind": "b"}, htmx=True)
    assert response.status_code == 200
    assert _oob_ids(response.text) == ["kind-b"]


def test_htmx_success_without_fragment_has_only_oob_parts_and_reswap_none(harness):
    harness.add_item("one")
    response = harness.client().submit("items.mark_all", {}, htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Reswap"] == "none"
    parts = top_level(response.text)
    assert parts and all("hx-swap-oob" in attrs for _tag, attrs in parts)


def test_htmx_answers_carry_a_fresh_actions_key(harness):
    client = harness.client()
    first = client.submit("items.add", {"title": "a"}, htmx=True)
    second = client.submit("items.add", {"title": "b"}, htmx=True)
    assert re.fullmatch(r"1; key=[A-Za-z0-9_-]{22}", first.headers["HX-Actions"])
    assert answer_key(first.headers) != answer_key(second.headers)
    assert "HX-Actions-Key" not in first.headers  # the key rides in HX-Actions


def test_htmx_error_and_redirect_answers_keep_the_form_key(harness):
    """Only answers that end a submit give the form a new key: a failed submit freed its key."""
    client = harness.client()
    invalid = client.submit("items.add", {"title": ""}, htmx=True)
    assert invalid.status_code == 422
    assert invalid.headers["HX-Actions"] == "1"
    assert answer_key(invalid.headers) is None


def test_htmx_validation_error_is_422_with_only_oob_error_slots(harness):
    response = harness.client().submit("items.add", {"title": "", "priority": "2"}, htmx=True)
    assert response.status_code == 422
    assert response.headers["HX-Reswap"] == "none"
    parts = top_level(response.text)
    assert all("hx-swap-oob" in attrs for _tag, attrs in parts)
    assert [attrs["id"] for _tag, attrs in parts] == [
        "hx-items-add-errors",
        "hx-items-add-title-error",
        "hx-items-add-priority-error",
    ]
    assert "Length must be between 1 and 100." in _element(
        response.text, "span", "hx-items-add-title-error"
    )
    assert _element(response.text, "span", "hx-items-add-priority-error").endswith("></span>")
    assert harness.body_calls == 0


def test_htmx_errors_without_hx_trigger_use_the_rendered_form_id(harness):
    one = harness.add_item("one")
    client = harness.client()
    fields = client.hidden_fields("items.rename", {"id": one})
    response = client.post(
        "/items/rename",
        data={**fields, "title": ""},
        headers={"HX-Request": "true", "Origin": "http://localhost"},
    )
    assert response.status_code == 422
    assert _oob_ids(response.text) == [
        f"hx-items-rename-{one}-errors",
        f"hx-items-rename-{one}-title-error",
    ]


def test_htmx_fail_is_422_with_its_message_in_the_summary_slot(harness):
    response = harness.client().submit("items.reject", {"title": "Milk"}, htmx=True)
    assert response.status_code == 422
    assert response.headers["HX-Reswap"] == "none"
    assert "Milk already exists" in _element(response.text, "div", "hx-items-reject-errors")
    assert "Milk is taken" in _element(response.text, "span", "hx-items-reject-title-error")


def test_htmx_redirect_is_200_with_hx_redirect(harness):
    response = harness.client().submit("items.finish", {}, htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/?tab=done"
    assert "Location" not in response.headers
    assert response.headers["HX-Actions"] == "1"  # the page goes away: no key for the form


def test_htmx_not_found_is_404_without_fragments(harness):
    response = harness.client().submit("items.toggle", bind={"id": 404}, htmx=True)
    assert response.status_code == 404
    assert "<li" not in response.text
    assert all("hx-swap-oob" in attrs for _tag, attrs in top_level(response.text))


def test_htmx_exception_is_a_generic_500(live):
    response = live.client().submit("items.explode", {"title": "boom"}, htmx=True)
    assert response.status_code == 500
    assert response.headers["HX-Reswap"] == "none"
    assert SECRET not in response.text
    assert response.headers["X-Request-ID"] in response.text


def test_htmx_answers_are_marked_for_the_client_runtime(harness):
    ok_answer = harness.client().submit("items.add", {"title": "a"}, htmx=True)
    invalid = harness.client().submit("items.add", {"title": ""}, htmx=True)
    refused = harness.client().post(
        "/items/add",
        data={"title": "a"},
        headers={"HX-Request": "true", "Origin": "https://evil.example"},
    )
    marks = [r.headers.get("HX-Actions", "").split(";")[0] for r in (ok_answer, invalid, refused)]
    assert marks == ["1"] * 3
    assert refused.status_code == 403


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_boosted_and_history_restore_requests_get_plain_answers(harness, header):
    response = harness.client().submit(
        "items.add",
        {"title": "a"},
        htmx=True,
        headers={header: "true"},
        referrer="http://localhost/",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


# -- JSON ----------------------------------------------------------------------------------------


def test_json_success_body(harness):
    response = harness.client().submit("items.add", {"title": "Milk"}, json=True)
    assert response.status_code == 200
    assert response.json == {"ok": True, "code": None, "data": {"id": 1}}


def test_json_success_without_data_has_an_empty_data_object(harness):
    one = harness.add_item("one")
    response = harness.client().submit("items.toggle", bind={"id": one}, json=True)
    assert response.status_code == 200
    assert response.json == {"ok": True, "code": None, "data": {}}


def test_json_validation_error_body(harness):
    response = harness.client().submit("items.add", {"title": ""}, json=True)
    assert response.status_code == 422
    assert response.json == {
        "ok": False,
        "code": "invalid",
        "message": None,
        "errors": {"title": ["Length must be between 1 and 100."]},
    }


def test_json_fail_body(harness):
    response = harness.client().submit("items.reject", {"title": "Milk"}, json=True)
    assert response.status_code == 422
    assert response.json == {
        "ok": False,
        "code": "DUPLICATE",
        "message": "Milk already exists",
        "errors": {"title": ["Milk is taken"]},
    }


def test_json_redirect_body(harness):
    response = harness.client().submit("items.finish", {}, json=True)
    assert response.status_code == 200
    assert response.json == {"ok": True, "redirect": "/?tab=done"}


def test_json_not_found_is_404(harness):
    response = harness.client().submit("items.toggle", bind={"id": 404}, json=True)
    assert response.status_code == 404
    assert response.json["ok"] is False
    assert response.json["code"] == "not_found"


def test_json_exception_is_a_generic_500(live):
    response = live.client().submit("items.explode", {"title": "boom"}, json=True)
    assert response.status_code == 500
    assert response.json["ok"] is False
    assert SECRET not in response.text


# -- headers of every action answer --------------------------------------------------------------


def _refused_origin(h: Harness) -> Any:
    return h.client().post("/items/add", data={"title": "a"}, headers={"Origin": "null"})


def _refused_csrf(h: Harness) -> Any:
    return h.client().post("/items/add", data={"title": "a"})


def _too_large(h: Harness) -> Any:
    return h.client().post("/items/add", data={"title": "a" * (1024 * 1024 + 10)})


def _bad_bound(h: Harness) -> Any:
    return h.client().submit("items.toggle", {"_hx_bound": "x.y.z"})


def _anonymous(h: Harness) -> Any:
    return h.client().submit("items.claim", bind={"id": h.add_item("a")})


ANSWERS: dict[str, Callable[[Harness], Any]] = {
    "plain-success": lambda h: h.client().submit("items.add", {"title": "a"}),
    "plain-invalid": lambda h: h.client().submit("items.add", {"title": ""}),
    "plain-redirect": lambda h: h.client().submit("items.finish", {}),
    "plain-not-found": lambda h: h.client().submit("items.toggle", bind={"id": 9}),
    "htmx-success": lambda h: h.client().submit("items.add", {"title": "a"}, htmx=True),
    "htmx-invalid": lambda h: h.client().submit("items.add", {"title": ""}, htmx=True),
    "htmx-redirect": lambda h: h.client().submit("items.finish", {}, htmx=True),
    "json-success": lambda h: h.client().submit("items.add", {"title": "a"}, json=True),
    "json-invalid": lambda h: h.client().submit("items.add", {"title": ""}, json=True),
    "origin-403": _refused_origin,
    "csrf-400": _refused_csrf,
    "size-413": _too_large,
    "bound-400": _bad_bound,
    "login-401": _anonymous,
}


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_every_action_answer_has_vary_no_store_and_a_request_id(harness, answer):
    response = ANSWERS[answer](harness)
    assert "HX-Request" in response.vary
    assert response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,128}", response.headers["X-Request-ID"])


@pytest.mark.parametrize("kind", ["plain", "htmx", "json"])
def test_exception_answers_have_vary_no_store_and_a_request_id(live, kind):
    response = live.client().submit(
        "items.explode", {"title": "boom"}, htmx=kind == "htmx", json=kind == "json"
    )
    assert response.status_code == 500
    assert "HX-Request" in response.vary
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Request-ID"]


def test_request_ids_differ_between_requests(harness):
    client = harness.client()
    first = client.submit("items.add", {"title": "a"})
    second = client.submit("items.add", {"title": "b"})
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


def test_pages_are_not_marked_as_action_answers(harness):
    response = harness.client().get("/")
    assert response.headers.get("Cache-Control") != "no-store"
    assert "X-Request-ID" not in response.headers
