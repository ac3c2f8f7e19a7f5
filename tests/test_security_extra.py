"""The rest of the security list of the exactly-once issue (item 5), one behaviour per test:
GET on an action, unknown action, too many parts, invalid input, escaping of uploads and rows,
redirects built by actions, no caching of refusals, history restores, the configured origin, and
"a refusal runs no user code": not the body, nor the schema's validators, the ``authorize=``
check, the app's authorizers, the ``tags=`` function or an ``action_started`` receiver.

The rest of the list lives in ``test_security.py``; this file reuses its ``Guard``.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from app_factory import FixedKeySession, Harness, Item, contract_app, db
from flask import session
from itsdangerous.timed import TimestampSigner
from marshmallow import Schema, fields, validates_schema
from test_security import XSS, Guard, _no_markup

from flask_hx_actions import ActionsBlueprint, ok, redirect_to, signals

SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
JSON = {"Accept": "application/json"}
HOSTILE_NEXT = [
    "//evil.example",
    "https://evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "\\\\evil",
]


class ProbeSchema(Schema):
    title = fields.String(required=True)

    @validates_schema
    def count(self, data: dict[str, Any], **kwargs: Any) -> None:
        PROBES["validator"] += 1


PROBES: Counter[str] = Counter()


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    """The contract app plus ``probe.*`` actions whose every piece of user code counts its runs
    in ``PROBES``."""
    PROBES.clear()
    with contract_app(tmp_path / "app.db") as h:
        h.app.session_interface = FixedKeySession()
        h.app.config["WTF_CSRF_SECRET_KEY"] = "csrf-only-key"
        bp = ActionsBlueprint("probe", __name__, url_prefix="/probe")

        def owner_only(id: int) -> bool:
            PROBES["authorize"] += 1
            return session.get("user") == "alice"

        def tags(id: int) -> list[str]:
            PROBES["tags"] += 1
            return [f"item:{id}"]

        @bp.action("write", schema=ProbeSchema, authorize=owner_only, tags=tags)
        def write(id: int, title: str) -> Any:
            PROBES["body"] += 1
            h.calls["probe.write"] += 1
            db.session.add(Item(title=f"{id}:{title}"))
            return ok()

        @bp.action("goto", schema=ProbeSchema)
        def goto(title: str) -> Any:
            h.calls["probe.goto"] += 1
            db.session.add(Item(title=title))
            return redirect_to(title)  # an action that trusts its input too much

        h.app.register_blueprint(bp)

        def authorizer(action: Any, args: Any) -> bool:
            PROBES["authorizer"] += 1
            return True

        h.app.extensions["hx_actions"].extension.authorizer(authorizer)

        def started(sender: Any, **kwargs: Any) -> None:
            PROBES["action_started"] += 1

        signals.action_started.connect(started)
        try:
            yield h
        finally:
            signals.action_started.disconnect(started)


def _alice(harness: Harness) -> Any:
    client = harness.client()
    with client.session_transaction() as sess:
        sess["user"] = "alice"
    return client


def _probe_fields(client: Any, **bind: Any) -> dict[str, str]:
    return {**client.hidden_fields("probe.write", bind or {"id": 1}), "title": "t"}


# -- the probe works: a valid submit runs every piece of user code -------------------------------


def test_a_valid_probe_submit_runs_all_user_code(harness):
    client = _alice(harness)
    response = client.post("/probe/write", data=_probe_fields(client), headers={**SAME_ORIGIN})
    assert response.status_code == 303
    assert {k: PROBES[k] for k in ("validator", "authorize", "authorizer", "body")} == {
        "validator": 1,
        "authorize": 1,
        "authorizer": 1,
        "body": 1,
    }
    assert PROBES["action_started"] == 1
    assert PROBES["tags"] >= 1


# -- refusals before authorization run no user code at all ---------------------------------------


def _missing_csrf(client: Any, fields: dict) -> Any:
    del fields["csrf_token"]
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _wrong_csrf(client: Any, fields: dict) -> Any:
    fields["csrf_token"] = "forged"
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _foreign_origin(client: Any, fields: dict) -> Any:
    return client.post(
        "/probe/write", data=fields, headers={"Origin": "https://evil.example", **JSON}
    )


def _origin_null(client: Any, fields: dict) -> Any:
    return client.post("/probe/write", data=fields, headers={"Origin": "null", **JSON})


def _cross_site(client: Any, fields: dict) -> Any:
    return client.post(
        "/probe/write", data=fields, headers={"Sec-Fetch-Site": "cross-site", **JSON}
    )


def _oversized(client: Any, fields: dict) -> Any:
    fields["title"] = "x" * (1024 * 1024 + 1)
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _too_many_parts(client: Any, fields: dict) -> Any:
    fields.update({f"p{i}": "v" for i in range(250)})
    return client.post(
        "/probe/write",
        data=fields,
        headers={**SAME_ORIGIN, **JSON},
        content_type="multipart/form-data",
    )


def _get(client: Any, fields: dict) -> Any:
    return client.get("/probe/write", query_string=fields, headers=SAME_ORIGIN)


def _tampered_bound(client: Any, fields: dict) -> Any:
    payload, stamp, signature = fields["_hx_bound"].split(".")
    payload = base64.urlsafe_b64encode(json.dumps({"id": 2}).encode()).decode().rstrip("=")
    fields["_hx_bound"] = f"{payload}.{stamp}.{signature}"
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _bound_of_another_action(client: Any, fields: dict) -> Any:
    fields["_hx_bound"] = client.hidden_fields("items.toggle", {"id": 1})["_hx_bound"]
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _bound_of_another_user(client: Any, fields: dict) -> Any:
    with client.session_transaction() as sess:
        sess["user"] = "mallory"
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _expired_bound(client: Any, fields: dict) -> Any:
    client.application.config["HX_ACTIONS_BOUND_MAX_AGE"] = 60
    stamp = int(time.time()) - 120
    original = TimestampSigner.get_timestamp
    TimestampSigner.get_timestamp = lambda self: stamp  # type: ignore[method-assign]
    try:
        # All signed as if two minutes ago (the session cookie too: itsdangerous refuses a
        # timestamp from the future), so only the bound token's max age is passed.
        with client.session_transaction() as sess:
            sess["user"] = "alice"
        fields.update(client.hidden_fields("probe.write", {"id": 1}))
    finally:
        TimestampSigner.get_timestamp = original  # type: ignore[method-assign]
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _rotated_key(client: Any, fields: dict) -> Any:
    # The session and the CSRF token have their own keys (see the fixture): only the bound
    # token meets the new SECRET_KEY.
    client.application.config.update(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=[])
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


def _malformed_key(client: Any, fields: dict) -> Any:
    fields["_hx_key"] = "no spaces allowed"
    return client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON})


EARLY_REFUSALS = {
    "missing-csrf": (_missing_csrf, 400, "csrf"),
    "wrong-csrf": (_wrong_csrf, 400, "csrf"),
    "foreign-origin": (_foreign_origin, 403, "cross_origin"),
    "origin-null": (_origin_null, 403, "cross_origin"),
    "cross-site": (_cross_site, 403, "cross_origin"),
    "oversized": (_oversized, 413, "too_large"),
    "too-many-parts": (_too_many_parts, 413, "too_large"),
    "get": (_get, 405, None),
    "tampered-bound": (_tampered_bound, 400, "bad_bound_arguments"),
    "bound-of-another-action": (_bound_of_another_action, 400, "bad_bound_arguments"),
    "bound-of-another-user": (_bound_of_another_user, 400, "bad_bound_arguments"),
    "expired-bound": (_expired_bound, 400, "bad_bound_arguments"),
    "rotated-key": (_rotated_key, 400, "bad_bound_arguments"),
}


@pytest.mark.parametrize("refusal", list(EARLY_REFUSALS))
def test_refusals_before_validation_run_no_user_code(harness, refusal):
    send, status, code = EARLY_REFUSALS[refusal]
    client = _alice(harness)
    fields = _probe_fields(client)
    guard = Guard(harness)
    guard.refused(send(client, fields), status, code)
    assert not +PROBES, f"user code ran: {dict(PROBES)}"


def test_a_malformed_idempotency_key_runs_no_body(harness):
    """The key is read after authorization (it is scoped to the user): the checks ran, the body
    and the tags did not."""
    client = _alice(harness)
    guard = Guard(harness)
    guard.refused(_malformed_key(client, _probe_fields(client)), 400)
    assert PROBES["body"] == PROBES["action_started"] == 0


def test_an_authorization_refusal_runs_no_body_and_no_tags(harness):
    client = harness.client()
    with client.session_transaction() as sess:
        sess["user"] = "bob"
    guard = Guard(harness)
    response = client.post("/probe/write", data=_probe_fields(client), headers={**SAME_ORIGIN})
    guard.refused(response, 403)
    assert PROBES["authorize"] == 1
    assert PROBES["body"] == PROBES["tags"] == PROBES["authorizer"] == 0
    assert PROBES["action_started"] == 0


def test_invalid_input_runs_no_authorization_and_no_body(harness):
    client = _alice(harness)
    fields = {**_probe_fields(client)}
    del fields["title"]
    guard = Guard(harness)
    guard.refused(client.post("/probe/write", data=fields, headers={**SAME_ORIGIN, **JSON}), 422)
    assert PROBES["authorize"] == PROBES["authorizer"] == PROBES["body"] == PROBES["tags"] == 0


# -- routing -------------------------------------------------------------------------------------


def test_get_with_a_valid_form_in_the_query_string_is_405(harness):
    client = harness.client()
    fields = {**client.hidden_fields("items.add"), "title": "x"}
    guard = Guard(harness)
    guard.refused(client.get("/items/add", query_string=fields, headers=SAME_ORIGIN), 405)


def test_unknown_action_with_a_valid_token_is_404(harness):
    client = harness.client()
    fields = {**client.hidden_fields("items.add"), "title": "x"}
    guard = Guard(harness)
    guard.refused(client.post("/items/nope", data=fields, headers={**SAME_ORIGIN, **JSON}), 404)


# -- size: number of parts -----------------------------------------------------------------------


def test_too_many_multipart_parts_is_413(tmp_path):
    with contract_app(tmp_path / "p.db", HX_ACTIONS_MAX_FORM_PARTS=10) as h:
        client = h.client()
        fields = {**client.hidden_fields("items.add"), "title": "x"}
        fields.update({f"p{i}": "v" for i in range(20)})
        guard = Guard(h)
        response = client.post(
            "/items/add",
            data=fields,
            headers={**SAME_ORIGIN, **JSON},
            content_type="multipart/form-data",
        )
        guard.refused(response, 413, "too_large")


def test_a_multipart_field_over_the_field_limit_is_413(tmp_path):
    with contract_app(tmp_path / "f.db", HX_ACTIONS_MAX_FORM_MEMORY_SIZE=1000) as h:
        client = h.client()
        fields = {**client.hidden_fields("items.add"), "title": "x", "pad": "p" * 2000}
        guard = Guard(h)
        response = client.post(
            "/items/add",
            data=fields,
            headers={**SAME_ORIGIN, **JSON},
            content_type="multipart/form-data",
        )
        guard.refused(response, 413, "too_large")


# -- invalid input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [{"title": ""}, {"title": "x" * 101}, {"title": "x", "priority": "9"}, {"priority": "2"}],
    ids=["empty", "too-long", "out-of-range", "missing"],
)
def test_invalid_input_is_422_and_writes_nothing(harness, data):
    guard = Guard(harness)
    response = harness.client().submit("items.add", data, json=True)
    guard.refused(response, 422, "invalid")


def test_invalid_input_without_js_is_303_back_and_writes_nothing(harness):
    guard = Guard(harness)
    response = harness.client().submit("items.add", {"title": ""}, referrer="http://localhost/")
    guard.refused(response, 303)
    assert response.headers["Location"] == "/"


def test_invalid_wtforms_input_is_422_and_writes_nothing(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    response = harness.client().submit("items.rename", {"title": ""}, bind={"id": item}, json=True)
    guard.refused(response, 422, "invalid")


# -- escaping ------------------------------------------------------------------------------------


def test_a_hostile_upload_content_type_is_escaped_in_the_error(harness):
    content_type = "text/x<img src=x onerror=alert(2)><script>alert(1)</script>"
    upload = (io.BytesIO(b"hi"), "a.txt", content_type)
    response = harness.client().submit("items.upload", {"file": upload}, htmx=True)
    assert response.status_code == 422
    assert "<script>" not in response.text
    assert "<img src=x" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_a_hostile_upload_content_type_is_escaped_on_the_next_page(harness):
    client = harness.client()
    upload = (io.BytesIO(b"hi"), "a.txt", "text/x<script>alert(1)</script>")
    client.submit("items.upload", {"file": upload}, referrer="http://localhost/show/up.html")
    harness.templates["up.html"] = (
        '{% call action_form("items.upload") %}{{ field("file", type="file") }}{% endcall %}'
    )
    page = client.get("/show/up.html").text
    assert "not accepted" in page
    assert "<script>" not in page


def test_user_input_is_escaped_in_the_row_fragment_of_a_bound_action(harness):
    item = harness.add_item("a")
    response = harness.client().submit(
        "items.rename", {"title": XSS[:90]}, bind={"id": item}, htmx=True
    )
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_user_input_is_escaped_by_the_fragment_endpoint(harness):
    item = harness.add_item(XSS[:90])
    response = harness.client().get(f"/_hx/fragments/item-row?id={item}")
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_user_input_is_escaped_in_the_fail_message(harness):
    response = harness.client().submit("items.reject", {"title": XSS[:90]}, htmx=True)
    assert response.status_code == 422
    _no_markup(response.text)


def test_user_input_in_json_errors_is_served_as_json(harness):
    response = harness.client().submit("items.reject", {"title": XSS[:90]}, json=True)
    assert response.status_code == 422
    assert response.mimetype == "application/json"
    assert response.headers.get("X-Content-Type-Options", "nosniff") == "nosniff"
    assert XSS[:20] in response.get_json()["message"]


# -- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", HOSTILE_NEXT)
@pytest.mark.parametrize("kind", ["htmx", "json"])
def test_hostile_next_never_reaches_an_htmx_or_json_answer(harness, target, kind):
    response = harness.client().submit(
        "items.finish", {"next": target}, htmx=kind == "htmx", json=kind == "json"
    )
    assert response.status_code == 200
    assert "evil" not in str(response.headers)
    assert "evil" not in response.get_data(as_text=True)
    assert "javascript" not in str(response.headers).lower()


@pytest.mark.parametrize("kind", ["plain", "htmx", "json"])
@pytest.mark.parametrize(
    "target",
    ["/ok\r\nSet-Cookie: stolen=1", "/ok\nHX-Redirect: //evil.example", "//evil.example"],
    ids=["crlf", "lf", "protocol-relative"],
)
def test_redirect_to_with_a_hostile_target_writes_nothing_and_sets_no_header(harness, kind, target):
    harness.app.config["PROPAGATE_EXCEPTIONS"] = False
    before = harness.snapshot()
    response = harness.client().submit(
        "probe.goto", {"title": target}, htmx=kind == "htmx", json=kind == "json"
    )
    assert response.status_code == 500
    assert harness.calls["probe.goto"] == 1
    assert harness.snapshot() == before, "the transaction was not rolled back"
    assert "stolen" not in str(response.headers)
    assert "evil" not in str(response.headers)
    assert "Location" not in response.headers


# -- caching -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "refusal", ["missing-csrf", "foreign-origin", "oversized", "expired-bound"]
)
def test_refusals_are_never_cached(harness, refusal):
    send, status, _code = EARLY_REFUSALS[refusal]
    client = _alice(harness)
    response = send(client, _probe_fields(client))
    assert response.status_code == status
    assert "HX-Request" in response.vary
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("kind", ["plain", "htmx", "json"])
def test_authorization_refusals_are_never_cached(harness, kind):
    response = harness.client().submit(
        "items.claim", bind={"id": 1}, htmx=kind == "htmx", json=kind == "json"
    )
    assert response.status_code == 401
    assert "HX-Request" in response.vary
    assert response.headers["Cache-Control"] == "no-store"


# -- history restore -----------------------------------------------------------------------------


def test_a_history_restore_of_a_page_gets_the_full_page(harness):
    harness.add_item("a")
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    page = harness.client().get("/", headers=headers)
    assert page.status_code == 200
    assert page.text.startswith("<!doctype html>")
    assert "<head>" in page.text
    assert 'id="item-list"' in page.text


def test_a_history_restore_request_to_an_action_gets_the_no_js_answer(harness):
    response = harness.client().submit(
        "items.add",
        {"title": "a"},
        htmx=True,
        headers={"HX-History-Restore-Request": "true"},
        referrer="http://localhost/",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert "hx-swap-oob" not in response.text


# -- the configured origin -----------------------------------------------------------------------


def test_a_configured_origin_is_not_overridden_by_the_host_header(tmp_path):
    with contract_app(tmp_path / "o.db", HX_ACTIONS_ORIGIN="https://public.example") as h:
        client = h.client()
        fields = {**client.hidden_fields("items.add"), "title": "x"}
        guard = Guard(h)
        headers = {"Host": "evil.example", "Origin": "http://evil.example", **JSON}
        guard.refused(client.post("/items/add", data=fields, headers=headers), 403, "cross_origin")


def test_a_configured_origin_is_accepted(tmp_path):
    with contract_app(tmp_path / "o.db", HX_ACTIONS_ORIGIN="https://public.example") as h:
        client = h.client()
        fields = {**client.hidden_fields("items.add"), "title": "x"}
        response = client.post(
            "/items/add", data=fields, headers={"Origin": "https://public.example"}
        )
        assert response.status_code == 303
        assert h.calls["add"] == 1
