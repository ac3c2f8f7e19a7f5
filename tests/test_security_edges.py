"""Security edge cases found by the property tests, each once a bug (now fixed):

1. a malformed ``Origin`` header (``http://[``), or a malformed ``Referer`` over HTTPS, is a
   refusal (403 / 400), not a 500 from ``urllib.parse``;
2. ``HX_ACTIONS_MAX_FORM_MEMORY_SIZE`` holds for urlencoded bodies too (Werkzeug applies
   ``max_form_memory_size`` to multipart bodies only);
3. an anonymous session has its id (which scopes idempotency keys) from the page that rendered the
   form, so a retry that still carries the page's cookie finds the first submit's key.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest
from app_factory import Harness, contract_app
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_security import Guard
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from flask_hx_actions import security
from flask_hx_actions.errors import OriginRefused

JSON = {"Accept": "application/json"}
MALFORMED = ["http://[", "http://[::1", "https://a]b", "http://localhost]"]


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        h.app.config["PROPAGATE_EXCEPTIONS"] = False
        yield h


@pytest.mark.parametrize("origin", MALFORMED)
def test_a_malformed_origin_is_403_not_500(harness, origin):
    client = harness.client()
    fields = {**client.hidden_fields("items.add"), "title": "x"}
    guard = Guard(harness)
    response = client.post("/items/add", data=fields, headers={"Origin": origin, **JSON})
    guard.refused(response, 403, "cross_origin")


def test_same_site_with_a_malformed_origin_is_403_not_500(harness):
    client = harness.client()
    fields = {**client.hidden_fields("items.add"), "title": "x"}
    guard = Guard(harness)
    headers = {"Sec-Fetch-Site": "same-site", "Origin": "http://[", **JSON}
    guard.refused(client.post("/items/add", data=fields, headers=headers), 403, "cross_origin")


def test_a_malformed_referer_over_https_is_400_not_500(harness):
    client = harness.client()
    fields = {**client.hidden_fields("items.add"), "title": "x"}
    guard = Guard(harness)
    response = client.post(
        "/items/add",
        data=fields,
        base_url="https://localhost",
        headers={"Referer": "https://[evil", **JSON},
    )
    guard.refused(response, 400, "csrf")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["", "http://", "https://", "null"]),
    st.text(st.one_of(st.sampled_from("[]:@/."), st.characters(max_codepoint=0xFF)), max_size=30),
)
def test_check_origin_passes_or_refuses_any_origin_header(scheme: str, rest: str) -> None:
    environ = EnvironBuilder(method="POST").get_environ()
    environ["HTTP_ORIGIN"] = scheme + rest
    with contextlib.suppress(OriginRefused):
        security.check_origin(Request(environ), "http://localhost", frozenset())


def test_an_urlencoded_field_over_the_field_limit_is_413(tmp_path):
    with contract_app(tmp_path / "f.db", HX_ACTIONS_MAX_FORM_MEMORY_SIZE=1000) as h:
        client = h.client()
        fields = {**client.hidden_fields("items.add"), "title": "x", "pad": "p" * 2000}
        guard = Guard(h)
        response = client.post(
            "/items/add",
            data=fields,
            headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin", **JSON},
        )
        guard.refused(response, 413, "too_large")


def test_an_anonymous_retry_after_a_lost_answer_writes_once(harness):
    client = harness.client()
    page = client.get("/")  # the form: a CSRF token in the session, no _hx_sid yet
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    cookie = client.get_cookie("session").value
    data = {"csrf_token": csrf, "_hx_key": "retry-key-0001", "title": "Milk"}
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin", **JSON}
    answers = []
    for _ in range(2):
        client.set_cookie("session", cookie)  # the answer to the first submit never arrived
        answers.append(client.post("/items/add", data=data, headers=headers))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].headers.get("Idempotent-Replayed") == "true"
    assert harness.calls["add"] == 1
    assert len(harness.items()) == 1
