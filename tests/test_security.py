"""Refusals before any user code: CSRF, origin gate, size limits, bound arguments, authorization;
safe redirects, escaping, and the size of the session after a failed submit.

Every refusal test checks that no action body ran and that the database did not change.
"""

from __future__ import annotations

import io
import json
import random
import string
import time
from collections.abc import Iterator
from typing import Any

import pytest
from app_factory import FixedKeySession, Harness, contract_app, session_data
from itsdangerous.timed import TimestampSigner
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
JSON = {"Accept": "application/json"}
MiB = 1024 * 1024


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        yield h


class Guard:
    """Snapshot of the body counter and the database, to check a refusal changed nothing."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.calls = harness.body_calls
        self.before = harness.snapshot()

    def refused(self, response: Any, status: int, code: str | None = None) -> None:
        assert response.status_code == status, response.get_data(as_text=True)[:500]
        assert self.harness.body_calls == self.calls, "an action body ran"
        assert self.harness.snapshot() == self.before, "the database changed"
        if code is not None:
            assert response.json["code"] == code
            assert response.json["ok"] is False


def _fields(harness: Harness, client: Any, endpoint: str = "items.add", **bind: Any) -> dict:
    """The hidden inputs ``action_form`` renders for ``client``'s session."""
    return client.hidden_fields(endpoint, bind or None)


@pytest.fixture
def aged_signatures(monkeypatch):
    """Sign tokens as if ``seconds`` ago (CSRF tokens and bound arguments alike)."""

    def age(seconds: int) -> None:
        monkeypatch.setattr(
            TimestampSigner, "get_timestamp", lambda self: int(time.time()) - seconds
        )

    yield age
    monkeypatch.undo()


# -- CSRF ----------------------------------------------------------------------------------------


def test_missing_csrf_token_is_400(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = _fields(harness, client)
    del fields["csrf_token"]
    response = client.post(
        "/items/add", data={**fields, "title": "x"}, headers={**SAME_ORIGIN, **JSON}
    )
    guard.refused(response, 400, "csrf")


def test_wrong_csrf_token_is_400(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "csrf_token": "not-a-token", "title": "x"}
    response = client.post("/items/add", data=fields, headers={**SAME_ORIGIN, **JSON})
    guard.refused(response, 400, "csrf")


def test_csrf_token_of_another_session_is_400(harness):
    guard = Guard(harness)
    mine, theirs = harness.client(), harness.client()
    fields = {**_fields(harness, mine), "csrf_token": _fields(harness, theirs)["csrf_token"]}
    response = mine.post(
        "/items/add", data={**fields, "title": "x"}, headers={**SAME_ORIGIN, **JSON}
    )
    guard.refused(response, 400, "csrf")


def test_expired_csrf_token_is_400(harness, aged_signatures):
    guard = Guard(harness)
    client = harness.client()
    aged_signatures(7200)
    fields = _fields(harness, client)
    aged_signatures(0)
    response = client.post(
        "/items/add", data={**fields, "title": "x"}, headers={**SAME_ORIGIN, **JSON}
    )
    guard.refused(response, 400, "csrf")


def test_plain_csrf_refusal_is_a_400_page(harness):
    guard = Guard(harness)
    response = harness.client().post("/items/add", data={"title": "x"}, headers=SAME_ORIGIN)
    guard.refused(response, 400)
    assert "text/html" in response.headers["Content-Type"]


def test_csrf_token_in_the_x_csrftoken_header_is_accepted(harness):
    client = harness.client()
    fields = _fields(harness, client)
    token = fields.pop("csrf_token")
    response = client.post(
        "/items/add",
        data={**fields, "title": "x"},
        headers={**SAME_ORIGIN, "X-CSRFToken": token, "HX-Request": "true"},
    )
    assert response.status_code == 200
    assert harness.calls["add"] == 1


# -- origin gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "same-site"},
        {"Origin": "null", "Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost:8080"},
        {"Origin": "https://localhost"},
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://app.localhost"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example@localhost"},
        {"Origin": "http://localhost/evil"},
        {"Origin": "http://localhost?evil"},
        {"Origin": "http://localhost#evil"},
        {"Origin": "http://localhost\\evil.example"},
    ],
    ids=[
        "foreign-origin",
        "foreign-origin-same-origin-fetch",
        "origin-null",
        "origin-null-same-site",
        "origin-null-fetch-none",
        "other-port",
        "other-scheme",
        "suffix-host",
        "cross-site",
        "cross-site-own-origin",
        "same-site-untrusted",
        "same-site-no-origin",
        "user-info",
        "path",
        "query",
        "fragment",
        "backslash",
    ],
)
def test_cross_origin_post_with_a_valid_token_is_403(harness, headers):
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    response = client.post("/items/add", data=fields, headers={**headers, **JSON})
    guard.refused(response, 403, "cross_origin")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://admin.example"},
        {"Origin": "https://admin.example:443"},
        {"Origin": "https://admin.example", "Sec-Fetch-Site": "same-site"},
    ],
    ids=["origin", "default-port", "same-site"],
)
def test_trusted_origin_passes_the_gate(tmp_path, headers):
    trusted = ["https://admin.example"]
    with contract_app(tmp_path / "t.db", HX_ACTIONS_TRUSTED_ORIGINS=trusted) as h:
        client = h.client()
        fields = {**_fields(h, client), "title": "x"}
        response = client.post("/items/add", data=fields, headers=headers)
        assert response.status_code == 303
        assert h.calls["add"] == 1


def test_a_single_trusted_origin_may_be_given_as_a_string(tmp_path):
    # The README's example value is one origin; a string must not be read as its characters.
    with contract_app(tmp_path / "t.db", HX_ACTIONS_TRUSTED_ORIGINS="https://admin.example") as h:
        client = h.client()
        fields = {**_fields(h, client), "title": "x"}
        headers = {"Origin": "https://admin.example", "Sec-Fetch-Site": "same-site"}
        response = client.post("/items/add", data=fields, headers=headers)
        assert response.status_code == 303
        assert h.calls["add"] == 1
        other = {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-site", **JSON}
        fields = {**_fields(h, client), "title": "y"}
        refused = client.post("/items/add", data=fields, headers=other)
        assert refused.status_code == 403
        assert h.calls["add"] == 1


def test_trusted_origin_does_not_relax_cross_site(tmp_path):
    trusted = ["https://admin.example"]
    with contract_app(tmp_path / "t.db", HX_ACTIONS_TRUSTED_ORIGINS=trusted) as h:
        guard = Guard(h)
        client = h.client()
        fields = {**_fields(h, client), "title": "x"}
        headers = {"Origin": "https://admin.example", "Sec-Fetch-Site": "cross-site", **JSON}
        response = client.post("/items/add", data=fields, headers=headers)
        guard.refused(response, 403, "cross_origin")


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost:80"},
        {"Origin": "HTTP://LOCALHOST"},
        {},
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    ],
    ids=["same-origin", "none", "default-port", "upper-case", "no-headers", "no-referrer-page"],
)
def test_same_origin_posts_pass_the_gate(harness, headers):
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    response = client.post("/items/add", data=fields, headers=headers)
    assert response.status_code == 303
    assert harness.calls["add"] == 1


def test_without_origin_headers_over_https_a_missing_referer_is_refused(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    response = client.post("/items/add", data=fields, base_url="https://localhost", headers=JSON)
    guard.refused(response, 400, "csrf")


def test_without_origin_headers_over_https_a_foreign_referer_is_refused(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    response = client.post(
        "/items/add",
        data=fields,
        base_url="https://localhost",
        headers={**JSON, "Referer": "https://evil.example/form"},
    )
    guard.refused(response, 400, "csrf")


def test_without_origin_headers_over_https_a_same_origin_referer_passes(harness):
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    response = client.post(
        "/items/add",
        data=fields,
        base_url="https://localhost",
        headers={"Referer": "https://localhost/"},
    )
    assert response.status_code == 303
    assert harness.calls["add"] == 1


@pytest.mark.parametrize("order", ["before", "after"])
def test_gate_runs_before_csrfprotect_whatever_the_set_up_order(tmp_path, order):
    with contract_app(tmp_path / "c.db", csrf_protect=order) as h:
        guard = Guard(h)
        response = h.client().post(
            "/items/add", data={"title": "x"}, headers={"Origin": "https://evil.example"}
        )
        guard.refused(response, 403)


@pytest.mark.parametrize("order", ["before", "after"])
def test_csrfprotect_does_not_refuse_a_valid_action_submit(tmp_path, order):
    with contract_app(tmp_path / "c.db", csrf_protect=order) as h:
        client = h.client()
        assert client.submit("items.add", {"title": "x"}, htmx=True).status_code == 200
        fields = _fields(h, client)
        token = fields.pop("csrf_token")
        headers = {**SAME_ORIGIN, "X-CSRFToken": token, "HX-Request": "true"}
        response = client.post("/items/add", data={**fields, "title": "y"}, headers=headers)
        assert response.status_code == 200
        assert h.calls["add"] == 2


@pytest.mark.parametrize("order", ["before", "after"])
def test_csrfprotect_still_guards_the_apps_other_views(tmp_path, order):
    with contract_app(tmp_path / "c.db", csrf_protect=order) as h:
        h.app.add_url_rule("/other", "other", lambda: "done", methods=["POST"])
        client = h.client()
        client.submit("items.add", {"title": "x"})
        assert client.post("/other", data={}, headers=SAME_ORIGIN).status_code == 400


@pytest.mark.parametrize("order", ["before", "after"])
def test_app_hook_reading_the_form_runs_after_the_gate_on_oversized_bodies(tmp_path, order):
    with contract_app(tmp_path / "h.db", form_hook=order) as h:
        guard = Guard(h)
        client = h.client()
        fields = {**_fields(h, client), "title": "x" * (MiB + 10)}
        response = client.post("/items/add", data=fields, headers={**SAME_ORIGIN, **JSON})
        guard.refused(response, 413, "too_large")
        assert h.hooks["form"] == 0


@pytest.mark.parametrize("order", ["before", "after"])
def test_app_hook_reading_the_form_runs_after_the_gate_on_cross_origin_posts(tmp_path, order):
    with contract_app(tmp_path / "h.db", form_hook=order) as h:
        guard = Guard(h)
        response = h.client().post(
            "/items/add", data={"title": "x"}, headers={"Origin": "https://evil.example"}
        )
        guard.refused(response, 403)
        assert h.hooks["form"] == 0


def test_x_forwarded_host_is_ignored_without_proxyfix(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    headers = {
        "Origin": "https://evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        **JSON,
    }
    response = client.post("/items/add", data=fields, headers=headers)
    guard.refused(response, 403, "cross_origin")


def test_x_forwarded_host_counts_with_proxyfix(harness):
    harness.app.wsgi_app = ProxyFix(harness.app.wsgi_app, x_proto=1, x_host=1)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    headers = {
        "Origin": "https://public.example",
        "X-Forwarded-Host": "public.example",
        "X-Forwarded-Proto": "https",
    }
    response = client.post("/items/add", data=fields, headers=headers)
    assert response.status_code == 303
    assert harness.calls["add"] == 1


# -- signed bound arguments ----------------------------------------------------------------------


def _toggle(client: Any, fields: dict, **headers: str) -> Any:
    return client.post("/items/toggle", data=fields, headers={**SAME_ORIGIN, **JSON, **headers})


def test_valid_bound_arguments_pass(harness):
    item = harness.add_item("a")
    client = harness.client()
    response = _toggle(client, _fields(harness, client, "items.toggle", id=item))
    assert response.status_code == 200
    assert harness.item(item)[3] is True


def test_missing_bound_arguments_are_400(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    client = harness.client()
    fields = _fields(harness, client, "items.toggle", id=item)
    del fields["_hx_bound"]
    guard.refused(_toggle(client, fields), 400, "bad_bound_arguments")


def test_empty_bound_arguments_are_400(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client, "items.toggle", id=item), "_hx_bound": ""}
    guard.refused(_toggle(client, fields), 400, "bad_bound_arguments")


def test_a_plain_form_field_never_fills_a_bound_parameter(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    client = harness.client()
    fields = _fields(harness, client, "items.toggle", id=item)
    del fields["_hx_bound"]
    guard.refused(_toggle(client, {**fields, "id": str(item)}), 400, "bad_bound_arguments")


def test_a_form_field_does_not_override_a_signed_bound_value(harness):
    one, two = harness.add_item("one"), harness.add_item("two")
    client = harness.client()
    fields = {**_fields(harness, client, "items.toggle", id=one), "id": str(two)}
    assert _toggle(client, fields).status_code == 200
    assert harness.item(one)[3] is True
    assert harness.item(two)[3] is False


@pytest.mark.parametrize("part", ["payload", "signature", "timestamp"])
def test_tampered_bound_arguments_are_400(harness, part):
    import base64

    one, two = harness.add_item("one"), harness.add_item("two")
    guard = Guard(harness)
    client = harness.client()
    fields = _fields(harness, client, "items.toggle", id=one)
    payload, stamp, signature = fields["_hx_bound"].split(".")
    if part == "payload":
        payload = base64.urlsafe_b64encode(json.dumps({"id": two}).encode()).decode().rstrip("=")
    elif part == "signature":
        signature = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    else:
        stamp = stamp[:-1] + ("A" if stamp[-1] != "A" else "B")
    fields["_hx_bound"] = f"{payload}.{stamp}.{signature}"
    guard.refused(_toggle(client, fields), 400, "bad_bound_arguments")


def test_bound_arguments_signed_for_another_action_are_400(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    client = harness.client()
    fields = _fields(harness, client, "items.toggle", id=item)
    response = client.post("/items/remove", data=fields, headers={**SAME_ORIGIN, **JSON})
    guard.refused(response, 400, "bad_bound_arguments")


def test_bound_arguments_of_another_session_are_400(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    mine, theirs = harness.client(), harness.client()
    fields = {
        **_fields(harness, mine, "items.toggle"),
        "_hx_bound": _fields(harness, theirs, "items.toggle", id=item)["_hx_bound"],
    }
    guard.refused(_toggle(mine, fields), 400, "bad_bound_arguments")


def test_bound_arguments_of_another_user_are_400(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    client = harness.client()
    with client.session_transaction() as sess:
        sess["user"] = "alice"
    fields = _fields(harness, client, "items.toggle", id=item)
    with client.session_transaction() as sess:
        sess["user"] = "bob"
    guard.refused(_toggle(client, fields), 400, "bad_bound_arguments")


def test_expired_bound_arguments_are_400(harness, aged_signatures):
    harness.app.config["HX_ACTIONS_BOUND_MAX_AGE"] = 60
    item = harness.add_item("a")
    guard = Guard(harness)
    client = harness.client()
    aged_signatures(120)  # the CSRF token (1 hour) is still valid
    fields = _fields(harness, client, "items.toggle", id=item)
    aged_signatures(0)
    guard.refused(_toggle(client, fields), 400, "bad_bound_arguments")


def _rotating(harness: Harness) -> Any:
    """Session and CSRF signed with their own keys: only the bound token sees SECRET_KEY."""
    harness.app.session_interface = FixedKeySession()
    harness.app.config["WTF_CSRF_SECRET_KEY"] = "csrf-only-key"
    return harness.client()


def test_bound_arguments_signed_with_a_fallback_key_are_accepted(harness):
    item = harness.add_item("a")
    client = _rotating(harness)
    fields = _fields(harness, client, "items.toggle", id=item)
    harness.app.config.update(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=["contract-secret"])
    assert _toggle(client, fields).status_code == 200
    assert harness.item(item)[3] is True


def test_bound_arguments_signed_with_an_unknown_key_are_400(harness):
    item = harness.add_item("a")
    client = _rotating(harness)
    fields = _fields(harness, client, "items.toggle", id=item)
    harness.app.config.update(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=[])
    guard = Guard(harness)
    guard.refused(_toggle(client, fields), 400, "bad_bound_arguments")


def test_forms_rendered_after_rotation_are_signed_with_the_new_key(harness):
    item = harness.add_item("a")
    client = _rotating(harness)
    harness.app.config.update(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=["contract-secret"])
    fields = _fields(harness, client, "items.toggle", id=item)
    harness.app.config.update(SECRET_KEY_FALLBACKS=[])
    assert _toggle(client, fields).status_code == 200


# -- size limits ---------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_from_content_length(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x" * MiB}
    response = client.post("/items/add", data=fields, headers={**SAME_ORIGIN, **JSON})
    guard.refused(response, 413, "too_large")


def test_content_length_alone_decides_before_the_body_is_read(harness):
    guard = Guard(harness)
    harness.client()
    body = b"title=x"
    environ = EnvironBuilder(
        path="/items/add",
        method="POST",
        input_stream=io.BytesIO(body),
        content_type="application/x-www-form-urlencoded",
        headers={**SAME_ORIGIN, **JSON},
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(2 * MiB)  # announced, never sent
    response = Response.from_app(harness.app, environ, buffered=True)
    guard.refused(response, 413, "too_large")


def _encoded(fields: dict, encoding: str) -> tuple[bytes, str]:
    """``fields`` as a request body in ``encoding`` and its Content-Type."""
    if encoding == "multipart":
        from werkzeug.test import encode_multipart

        boundary, body = encode_multipart(fields)
        return body, f"multipart/form-data; boundary={boundary}"
    from urllib.parse import urlencode

    return urlencode(fields).encode(), "application/x-www-form-urlencoded"


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_body_shorter_than_its_content_length_is_a_refusal_in_the_callers_format(harness, encoding):
    """A client that stops sending mid-body: a 400 answered like every other refusal (JSON for
    a JSON caller), not Werkzeug's HTML page."""
    guard = Guard(harness)
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x" * 100}
    body, content_type = _encoded(fields, encoding)
    environ = EnvironBuilder(
        path="/items/add",
        method="POST",
        input_stream=io.BytesIO(body[: len(body) // 2]),
        content_type=content_type,
        headers={**SAME_ORIGIN, **JSON},
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input_terminated"] = False
    environ["HTTP_COOKIE"] = f"session={client.get_cookie('session').value}"
    response = Response.from_app(harness.app, environ, buffered=True)
    guard.refused(response, 400, "bad_request")
    if encoding == "multipart":  # Werkzeug's own parse would read it as an empty form (a CSRF 400)
        assert "incomplete" in response.json["message"]
    else:
        assert response.json["message"] == "The request ended before all of its data arrived."


def test_malformed_multipart_body_is_a_bad_request_not_a_csrf_refusal(harness):
    """A multipart body with no closing boundary is refused as unreadable, even though its CSRF
    token arrived whole: the action runs on a form it has read entirely, or not at all."""
    guard = Guard(harness)
    client = harness.client()
    body, content_type = _encoded({**_fields(harness, client), "title": "x"}, "multipart")
    body = body[: body.rindex(b"--\r\n")]  # no closing "--" after the last boundary
    response = client.post(
        "/items/add", data=body, content_type=content_type, headers={**SAME_ORIGIN, **JSON}
    )
    guard.refused(response, 400, "bad_request")
    assert "malformed" in response.json["message"]


def _post_chunked(harness: Harness, client: Any, fields: dict, encoding: str) -> Response:
    """A body without Content-Length, as a server that de-chunks requests passes it on."""
    body, content_type = _encoded(fields, encoding)
    environ = EnvironBuilder(
        path="/items/add",
        method="POST",
        input_stream=io.BytesIO(body),
        content_type=content_type,
        headers={**SAME_ORIGIN, **JSON, "Transfer-Encoding": "chunked"},
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    environ["HTTP_COOKIE"] = f"session={client.get_cookie('session').value}"
    return Response.from_app(harness.app, environ, buffered=True)


ENCODINGS = ["urlencoded", "multipart"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_small_chunked_body_is_accepted(harness, encoding):
    client = harness.client()
    fields = {**_fields(harness, client), "title": "x"}
    response = _post_chunked(harness, client, fields, encoding)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert harness.calls["add"] == 1


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_chunked_body_over_the_limit_is_413(harness, encoding):
    guard = Guard(harness)
    client = harness.client()
    # A valid title, then padding past the limit: cutting the body at the limit and parsing the
    # rest would run the action with a truncated form.
    fields = {**_fields(harness, client), "title": "x", "pad": "p" * (MiB + 10)}
    guard.refused(_post_chunked(harness, client, fields, encoding), 413, "too_large")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_chunked_body_over_the_limit_is_413_before_app_hooks(tmp_path, encoding):
    with contract_app(tmp_path / "h.db", form_hook="before") as h:
        guard = Guard(h)
        client = h.client()
        fields = {**_fields(h, client), "title": "x", "pad": "p" * (MiB + 10)}
        guard.refused(_post_chunked(h, client, fields, encoding), 413, "too_large")
        assert h.hooks["form"] == 0


def test_configured_limit_applies(tmp_path):
    with contract_app(tmp_path / "l.db", HX_ACTIONS_MAX_CONTENT_LENGTH=2000) as h:
        guard = Guard(h)
        client = h.client()
        fields = {**_fields(h, client), "title": "x" * 3000}
        response = client.post("/items/add", data=fields, headers={**SAME_ORIGIN, **JSON})
        guard.refused(response, 413, "too_large")


def test_per_action_max_content_length_is_enforced(harness):
    guard = Guard(harness)
    client = harness.client()
    fields = {
        **_fields(harness, client, "items.upload"),
        "file": (io.BytesIO(b"x" * 10_000), "big.txt", "text/plain"),
    }
    response = client.post("/items/upload", data=fields, headers={**SAME_ORIGIN, **JSON})
    guard.refused(response, 413, "too_large")


def test_upload_under_the_per_action_limit_is_accepted(harness):
    client = harness.client()
    fields = {
        **_fields(harness, client, "items.upload"),
        "file": (io.BytesIO(b"hello"), "a.txt", "text/plain"),
    }
    response = client.post("/items/upload", data=fields, headers={**SAME_ORIGIN, **JSON})
    assert response.status_code == 200
    assert harness.attachments() == [("a.txt", "text/plain", 5)]


# -- authorization -------------------------------------------------------------------------------


def _sign_in(client: Any, user: str | None) -> None:
    with client.session_transaction() as sess:
        if user is None:
            sess.pop("user", None)
        else:
            sess["user"] = user


def test_login_required_action_is_401_for_anonymous_users(harness):
    item = harness.add_item("a")
    guard = Guard(harness)
    response = harness.client().submit("items.claim", bind={"id": item}, json=True)
    guard.refused(response, 401, "unauthenticated")


def test_login_required_action_runs_for_a_signed_in_user(harness):
    item = harness.add_item("a")
    client = harness.client()
    _sign_in(client, "alice")
    response = client.submit("items.claim", bind={"id": item}, json=True)
    assert response.status_code == 200
    assert harness.item(item)[4] == "alice"


def test_authorize_refusal_is_403_for_another_user(harness):
    item = harness.add_item("a", owner="alice")
    guard = Guard(harness)
    client = harness.client()
    _sign_in(client, "bob")
    response = client.submit("items.archive", bind={"id": item}, json=True)
    guard.refused(response, 403, "forbidden")


def test_authorize_refusal_is_401_for_anonymous_users(harness):
    item = harness.add_item("a", owner="alice")
    guard = Guard(harness)
    response = harness.client().submit("items.archive", bind={"id": item}, json=True)
    guard.refused(response, 401, "unauthenticated")


def test_authorize_lets_the_owner_in(harness):
    item = harness.add_item("a", owner="alice")
    client = harness.client()
    _sign_in(client, "alice")
    assert client.submit("items.archive", bind={"id": item}, json=True).status_code == 200
    assert harness.item(item)[1] == "[archived] a"


@pytest.mark.parametrize("kind", ["plain", "htmx"])
def test_authorization_refusals_for_browsers(harness, kind):
    item = harness.add_item("a", owner="alice")
    guard = Guard(harness)
    client = harness.client()
    _sign_in(client, "bob")
    response = client.submit("items.archive", bind={"id": item}, htmx=kind == "htmx")
    guard.refused(response, 403)


def test_regions_header_cannot_reveal_a_fragment_the_user_may_not_see(harness):
    """Fragment parameters from the client are untrusted: the fragment's own authorization runs
    for out-of-band refreshes as it does on a page."""
    item = harness.add_item("alice's item", owner="alice")
    client = harness.client()
    _sign_in(client, "bob")
    response = client.submit(
        "items.toggle", bind={"id": item}, htmx=True, regions=f"item-note?id={item}"
    )
    assert response.status_code == 200
    assert "Private note" not in response.text


# -- redirect targets ----------------------------------------------------------------------------

HOSTILE = [
    "//evil.example",
    "https://evil.example",
    "http://evil.example/",
    "/\\evil.example",
    "\\/evil.example",
    "javascript:alert(1)",
    "%2F%2Fevil.example",
    "\\\\evil",
    "/ok\r\nSet-Cookie: stolen=1",
    "/ok\nLocation: https://evil.example",
    "/\t/evil.example",
    "http://localhost@evil.example/",
    "https:evil.example",
    "///evil.example",
    " //evil.example",
]


def _safe_location(response: Any) -> str:
    location = response.headers.get("Location", "")
    assert "evil" not in location
    assert not location.startswith(("//", "/\\", "\\"))
    assert "javascript" not in location.lower()
    assert not any(ch in location for ch in "\r\n\t")
    assert "stolen" not in str(response.headers)
    return location


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_next_never_ends_in_location_after_success(harness, target):
    response = harness.client().submit("items.add", {"title": "x", "next": target})
    assert response.status_code == 303
    assert _safe_location(response) == "/"


@pytest.mark.parametrize("target", HOSTILE)
def test_hostile_next_never_ends_in_location_after_failure(harness, target):
    response = harness.client().submit("items.add", {"title": "", "next": target})
    assert response.status_code == 303
    assert _safe_location(response) == "/"


@pytest.mark.parametrize("target", [t for t in HOSTILE if "\n" not in t and "\r" not in t])
def test_hostile_referer_never_ends_in_location(harness, target):
    response = harness.client().submit("items.add", {"title": "x"}, referrer=target)
    assert response.status_code == 303
    assert _safe_location(response) == "/"


# -- escaping ------------------------------------------------------------------------------------

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def _no_markup(html: str) -> None:
    assert "<script>" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_user_input_is_escaped_in_fragments(harness):
    response = harness.client().submit("items.add", {"title": XSS}, htmx=True)
    assert response.status_code == 200
    _no_markup(response.text)


def test_user_input_is_escaped_in_htmx_errors(harness):
    response = harness.client().submit("items.reject", {"title": XSS}, htmx=True)
    assert response.status_code == 422
    _no_markup(response.text)


def test_user_input_is_escaped_in_errors_and_old_input_on_the_next_page(harness):
    client = harness.client()
    client.submit("items.reject", {"title": XSS}, referrer="http://localhost/")
    page = client.get("/").text
    _no_markup(page)
    assert 'value="&#34;&gt;&lt;script&gt;' in page or 'value="&quot;&gt;&lt;script&gt;' in page


def test_hostile_hx_trigger_does_not_reach_the_markup(harness):
    response = harness.client().submit(
        "items.add", {"title": ""}, htmx=True, headers={"HX-Trigger": XSS}
    )
    assert response.status_code == 422
    assert "<script>" not in response.text
    assert "onerror" not in response.text


# -- old input in the session --------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "


def _random_text(length: int, rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def _session_cookie(response: Any) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert headers, "the failed submit sets the session cookie"
    return headers[0]


def test_session_cookie_stays_small_after_a_failed_submit_with_random_input(harness):
    rng = random.Random(4000)
    client = harness.client()
    data = {
        name: _random_text(420, rng) for name in ("bio", *[f"note{i:02d}" for i in range(1, 15)])
    }
    data.update(name="", password="correct horse battery staple")
    assert sum(len(v) for v in data.values()) > 6000
    response = client.submit("items.profile", data, referrer="http://localhost/")
    assert response.status_code == 303
    assert len(_session_cookie(response)) < 4000
    page = client.get("/")
    assert "Length must be between 1 and 50." in page.text


def test_one_long_random_value_is_not_kept(harness):
    rng = random.Random(6000)
    client = harness.client()
    long_value = _random_text(6000, rng)
    data = {"name": "", "password": "correct horse", "bio": long_value}
    response = client.submit("items.profile", data, referrer="http://localhost/")
    assert len(_session_cookie(response)) < 4000
    assert long_value[:200] not in json.dumps(
        session_data(harness.app, client.get_cookie("session").value)
    )


def test_the_session_survives_a_failed_submit_with_random_input(harness):
    rng = random.Random(1)
    client = harness.client()
    data = {
        name: _random_text(420, rng) for name in ("bio", *[f"note{i:02d}" for i in range(1, 15)])
    }
    data.update(name="", password="x" * 10)
    client.submit("items.profile", data, referrer="http://localhost/")
    page = client.get("/")
    assert page.status_code == 200
    # The CSRF token of the session still works: the next submit goes through.
    assert client.submit("items.add", {"title": "after"}).status_code == 303
    assert harness.calls["add"] == 1


def test_password_fields_are_never_kept(harness):
    client = harness.client()
    secret = "s3cret-Passw0rd-never-stored"
    response = client.submit(
        "items.profile",
        {"name": "", "password": secret, "bio": "kept"},
        referrer="http://localhost/",
    )
    assert response.status_code == 303
    stored = json.dumps(session_data(harness.app, client.get_cookie("session").value))
    assert "kept" in stored
    assert secret not in stored
    page = client.get("/").text
    assert secret not in page
    assert "kept" in page
