"""Property tests (hypothesis) for the parts of the library that read untrusted text.

- redirect targets: whatever :func:`security.is_safe_path` / :func:`security.safe_target` accept is
  a path a browser resolves on this host; generated hostile variants are always refused;
- signed bound arguments: JSON values round-trip; a changed character, another action, another
  session or user, an expired token or an unknown key are refused;
- form parsing and the validation adapters: arbitrary unicode input never raises, errors are keyed
  by input names, and the idempotency fingerprint depends on the input, not on its order;
- header values: the ``HX-*`` response helpers refuse CR, LF and NUL; ``request_kind`` and
  ``HtmxDetails.of`` are total over any header value; ``request_key`` only ever refuses with a 400.

Examples are few (this runs in the normal suite) and deadlines off (CI machines vary).
"""

from __future__ import annotations

import base64
import datetime as dt
import string
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import urljoin, urlsplit

import pytest
from app_factory import Harness, contract_app
from flask import Flask, Response
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from itsdangerous.timed import TimestampSigner
from marshmallow import Schema, fields, validate
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request
from wtforms import DateField, Form, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from flask_hx_actions import htmx, idempotency, security
from flask_hx_actions.errors import BoundArgumentsInvalid
from flask_hx_actions.idempotency import IdempotencyKeyInvalid
from flask_hx_actions.results import FORM_ERRORS
from flask_hx_actions.validation import make_validator

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OWN = "http://localhost"

# -- redirect targets ----------------------------------------------------------------------------

# Characters that matter to URL parsers, mixed with anything else.
URL_CHARS = st.sampled_from([*"/\\:@?#%.;&=+ \t\r\n\x00\x0b\x0c\x7f", "\u3000", "\uff0f"])
url_text = st.text(st.one_of(URL_CHARS, st.characters()), max_size=40)


def browser_resolves_here(target: str) -> bool:
    """Resolve ``target`` against a page of this site, the way a browser's URL parser does
    (WHATWG: tab and newline removed, ``\\`` read as ``/`` in http(s) URLs, leading C0 and
    spaces stripped), and tell whether it stays on this origin."""
    cleaned = target.strip("".join(map(chr, range(0x21))))
    cleaned = cleaned.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
    resolved = urlsplit(urljoin(f"{OWN}/some/page", cleaned))
    return (resolved.scheme, resolved.netloc) == ("http", "localhost")


def assert_same_origin_path(target: str) -> None:
    assert target.startswith("/")
    assert not target.startswith(("//", "/\\"))
    assert "\\" not in target
    assert not any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target)
    joined = urlsplit(urljoin(f"{OWN}/", target))
    assert (joined.scheme, joined.netloc) == ("http", "localhost")
    assert browser_resolves_here(target)


@FAST
@given(url_text)
@example("/todos/?page=2")
@example("/\\evil.example")
@example("/\t/evil.example")
def test_anything_is_safe_path_accepts_stays_on_this_host(target: str) -> None:
    if security.is_safe_path(target):
        assert_same_origin_path(target)


@FAST
@given(st.one_of(url_text, st.builds(lambda p: OWN + p, url_text)))
@example("http://localhost/ok?x=1")
@example("http://evil.example\\@localhost/")
@example("http://localhost@evil.example/")
def test_anything_safe_target_returns_is_a_same_origin_path(value: str) -> None:
    found = security.safe_target(value, OWN)
    if found is not None:
        assert_same_origin_path(found)


safe_segment = st.text(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@", max_size=12)
safe_paths = st.builds(
    lambda segments, query: "/" + "/".join(segments) + (f"?{query}" if query else ""),
    st.lists(safe_segment, max_size=4).filter(lambda s: not s or s[0] != ""),
    st.text(string.ascii_letters + string.digits + "=&", max_size=12),
)


@FAST
@given(safe_paths)
def test_ordinary_paths_are_accepted_as_they_are(path: str) -> None:
    assert security.is_safe_path(path)
    assert security.safe_target(path, OWN) == path
    assert security.safe_target(OWN + path, OWN) == path


hosts = st.one_of(
    st.sampled_from(["evil.example", "evil", "127.0.0.1", "[::1]", "localhost.evil.example"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}\.[a-z]{2,6}", fullmatch=True),
)
HOSTILE_FORMS = [
    "//{h}",
    "///{h}",
    "////{h}",
    "/\\{h}",
    "\\/{h}",
    "\\\\{h}",
    "\\{h}",
    "http://{h}",
    "https://{h}",
    "HTTPS://{h}",
    "https:{h}",
    "https:/{h}",
    "https:\\\\{h}",
    "//{h}@localhost",
    "http://localhost@{h}",
    "javascript:alert(1)//{h}",
    "JaVaScRiPt:alert(1)//{h}",
    "data:text/html,{h}",
    "%2F%2F{h}",
    "%2f%5c{h}",
    " //{h}",
    "\t//{h}",
    "/\t/{h}",
    "/\n/{h}",
    "/\r/{h}",
    "/\x00/{h}",
    "/ /{h}",
    "\x0b//{h}",
    "/.\\{h}",
]


@FAST
@given(st.sampled_from(HOSTILE_FORMS), hosts, st.sampled_from(["", "/", "/x?y=1", "#f"]))
def test_hostile_targets_are_always_refused(form: str, host: str, tail: str) -> None:
    target = form.format(h=host) + tail
    assert not security.is_safe_path(target)
    assert security.safe_target(target, OWN) is None


@FAST
@given(safe_paths, st.integers(1, 20), st.sampled_from(list("\r\n\t\x00\x0b\x7f \\")))
def test_a_control_character_or_backslash_anywhere_is_refused(path: str, at: int, bad: str) -> None:
    at = min(at, len(path))
    target = path[:at] + bad + path[at:]
    assert not security.is_safe_path(target)
    assert security.safe_target(target, OWN) is None
    # In an absolute URL, urlsplit (like a browser) drops tab, CR and LF: what is left may be
    # used, as long as it is a same-origin path.
    found = security.safe_target(OWN + target, OWN)
    if found is not None:
        assert_same_origin_path(found)


# -- signed bound arguments ----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=12,
)
bound_values = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
endpoints = st.from_regex(r"[a-z][a-z_]{0,8}\.[a-z][a-z_]{0,8}", fullmatch=True)
# What session_binding() builds: a url-safe session id, "|", the signed-in user (or nothing).
bindings = st.builds(
    lambda sid, user: f"{sid}|{user}",
    st.text(string.ascii_letters + string.digits + "-_", min_size=4, max_size=16),
    st.text(max_size=12),
)
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."


@pytest.fixture(scope="module")
def signing_app() -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "property-secret"
    return app


def _sign(app: Flask, endpoint: str, values: dict[str, Any], binding: str) -> str:
    with app.test_request_context():  # the serializer cache lives in ``g``: one per request
        return security.sign_bound(app, endpoint, values, binding)


def _verify(app: Flask, endpoint: str, token: str, binding: str, max_age: int = 3600) -> Any:
    with app.test_request_context():
        return security.verify_bound(app, endpoint, token, binding, max_age)


@FAST
@given(endpoints, bound_values, bindings)
def test_bound_values_round_trip(signing_app: Flask, endpoint: str, values: Any, binding: str):
    token = _sign(signing_app, endpoint, values, binding)
    assert _verify(signing_app, endpoint, token, binding) == values


def _segments(token: str) -> list[bytes] | None:
    """The decoded parts of ``payload.timestamp.signature`` (None when they do not decode)."""
    parts = token.split(".")
    try:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts]
    except ValueError:
        return None


@FAST
@given(endpoints, bound_values, bindings, st.data())
def test_any_single_character_change_is_refused(
    signing_app: Flask, endpoint: str, values: Any, binding: str, data: st.DataObject
) -> None:
    token = _sign(signing_app, endpoint, values, binding)
    at = data.draw(st.integers(0, len(token) - 1), label="position")
    new = data.draw(st.sampled_from(TOKEN_ALPHABET).filter(lambda c: c != token[at]), label="char")
    changed = token[:at] + new + token[at + 1 :]
    try:
        accepted = _verify(signing_app, endpoint, changed, binding)
    except BoundArgumentsInvalid:
        return
    # Base64 leaves the low bits of a segment's last character unused: a change there that
    # decodes to the very same bytes is the same token, not a forgery.
    assert _segments(changed) == _segments(token), (token, changed)
    assert accepted == values


@FAST
@given(endpoints, endpoints, bound_values, bindings)
def test_a_token_for_another_action_is_refused(
    signing_app: Flask, endpoint: str, other: str, values: Any, binding: str
) -> None:
    assume(endpoint != other)
    token = _sign(signing_app, endpoint, values, binding)
    with pytest.raises(BoundArgumentsInvalid):
        _verify(signing_app, other, token, binding)


@FAST
@given(endpoints, bound_values, bindings, bindings)
def test_a_token_of_another_session_or_user_is_refused(
    signing_app: Flask, endpoint: str, values: Any, binding: str, other: str
) -> None:
    assume(binding != other)
    token = _sign(signing_app, endpoint, values, binding)
    with pytest.raises(BoundArgumentsInvalid):
        _verify(signing_app, endpoint, token, other)


@FAST
@given(endpoints, bound_values, bindings, st.integers(1, 10**6), st.integers(1, 10**6))
def test_an_expired_token_is_refused(
    signing_app: Flask, endpoint: str, values: Any, binding: str, max_age: int, late: int
) -> None:
    signed_at = int(time.time()) - max_age - late - 1
    with mock.patch.object(TimestampSigner, "get_timestamp", lambda self: signed_at):
        token = _sign(signing_app, endpoint, values, binding)
    with pytest.raises(BoundArgumentsInvalid, match="expired"):
        _verify(signing_app, endpoint, token, binding, max_age)


@FAST
@given(endpoints, bound_values, bindings)
def test_a_rotated_key_verifies_only_while_it_is_a_fallback(
    endpoint: str, values: Any, binding: str
) -> None:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "old-key"
    token = _sign(app, endpoint, values, binding)
    app.config.update(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=["old-key"])
    assert _verify(app, endpoint, token, binding) == values
    app.config["SECRET_KEY_FALLBACKS"] = []
    with pytest.raises(BoundArgumentsInvalid):
        _verify(app, endpoint, token, binding)


@FAST
@given(st.text(max_size=80), endpoints, bindings)
def test_verify_refuses_arbitrary_text_with_a_400_only(
    signing_app: Flask, token: str, endpoint: str, binding: str
) -> None:
    with pytest.raises(BoundArgumentsInvalid):
        _verify(signing_app, endpoint, token, binding)


# -- validation adapters -------------------------------------------------------------------------


class EverythingSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=20))
    user_name = fields.String(data_key="user-name", validate=validate.Regexp(r"^[a-z]+$"))
    age = fields.Integer(validate=validate.Range(min=0, max=150))
    ratio = fields.Float()
    price = fields.Decimal(places=2)
    subscribe = fields.Boolean()
    born = fields.Date()
    seen = fields.DateTime()
    email = fields.Email()
    site = fields.URL()
    ident = fields.UUID()
    color = fields.String(validate=validate.OneOf(["red", "green"]))
    tags = fields.List(fields.Integer())
    password = fields.String(validate=validate.Length(min=8))


class EverythingForm(Form):
    title = StringField("Title", [DataRequired(), Length(max=30)])
    count = IntegerField("Count", [Optional(), NumberRange(min=0, max=10)])
    when = DateField("When", [Optional()])
    note = StringField("Note", [Optional(), Regexp(r"^[a-z ]*$")])
    kind = SelectField("Kind", choices=["a", "b"])


MARSHMALLOW = make_validator(EverythingSchema)
WTFORMS = make_validator(EverythingForm)

# Values as a browser can send them: any unicode (Werkzeug decodes the body as UTF-8 with
# replacement, so no lone surrogates), plus the shapes that trip number and date parsers.
TRICKY = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-0",
        "1e309",
        "nan",
        "inf",
        "-inf",
        "1" * 5000,
        "9" * 400 + ".5",
        "1e-999999999",
        "1E+999999999",
        "٣",
        "\uff12",
        "0x10",
        "1_000",
        "true",
        "off",
        "2024-02-30",
        "9999-12-31T23:59:59+99:99",
        "0000-00-00",
        "a@b",
        "http://[",
        "\x00",
        "\ufeff1",
        "00000000-0000-0000-0000-00000000000g",
    ]
)
form_values = st.one_of(TRICKY, st.text(max_size=60))


def _form(names: tuple[str, ...], extra: list[str]) -> st.SearchStrategy[MultiDict[str, str]]:
    pairs = st.lists(
        st.tuples(st.sampled_from([*names, *extra]), form_values),
        max_size=len(names) + 4,
    )
    return pairs.map(MultiDict)


def _check_errors(validator: Any, values: dict[str, Any], errors: dict[str, list[str]]) -> None:
    assert not (values and errors)
    assert set(errors) <= {*validator.input_names, FORM_ERRORS}, errors
    for messages in errors.values():
        assert messages
        assert all(isinstance(m, str) and m for m in messages)
    if not errors:
        assert set(values) <= validator.value_names


@FAST
@given(_form(MARSHMALLOW.input_names, ["csrf_token", "_hx_key", "user_name", "_hx_bound"]))
@example(MultiDict([("age", "1" * 5000), ("name", "x")]))
@example(MultiDict([("price", "1E+999999999"), ("name", "x")]))
@example(MultiDict([("ratio", "nan"), ("name", "x")]))
def test_marshmallow_adapter_never_raises(form: MultiDict[str, str]) -> None:
    values, errors = MARSHMALLOW.validate(form, MultiDict())
    _check_errors(MARSHMALLOW, values, errors)


@FAST
@given(_form(WTFORMS.input_names, ["csrf_token", "submit"]))
@example(MultiDict([("title", "x"), ("count", "1" * 5000), ("kind", "a")]))
def test_wtforms_adapter_never_raises(form: MultiDict[str, str]) -> None:
    values, errors = WTFORMS.validate(form, MultiDict())
    _check_errors(WTFORMS, values, errors)


@FAST
@given(
    st.text(max_size=40),
    st.binary(max_size=64),
    st.text(st.characters(exclude_characters="\r\n"), max_size=40),
)
def test_marshmallow_adapter_takes_any_upload(filename: str, data: bytes, mimetype: str) -> None:
    import io

    from app_factory import UploadSchema

    validator = make_validator(UploadSchema)
    storage = FileStorage(io.BytesIO(data), filename=filename, content_type=mimetype)
    values, errors = validator.validate(MultiDict(), MultiDict([("file", storage)]))
    _check_errors(validator, values, errors)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with contract_app(tmp_path_factory.mktemp("props") / "app.db") as h:
        yield h


PROFILE_NAMES = ["name", "bio", "subscribe", "color", "password", "note01", "note14", "other"]


@settings(FAST, max_examples=40)
@given(
    st.dictionaries(st.sampled_from(PROFILE_NAMES), form_values, max_size=6),
    st.sampled_from(["plain", "htmx", "json"]),
)
def test_any_form_input_gets_an_answer_not_an_error(
    harness: Harness, data: dict[str, str], kind: str
) -> None:
    """Through the whole pipeline: parsing, validation, old input, error rendering."""
    response = harness.client().submit(
        "items.profile", data, htmx=kind == "htmx", json=kind == "json"
    )
    assert response.status_code in {200, 303, 422}, response.get_data(as_text=True)[:300]
    if kind == "json":
        body = response.get_json()
        assert body["ok"] is (response.status_code == 200)
        if not body["ok"]:
            assert set(body["errors"]) <= {*PROFILE_NAMES, FORM_ERRORS}


# -- idempotency fingerprint and key -------------------------------------------------------------

# Names of the action's own fields: never the key field, which the fingerprint leaves out.
field_lists = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda name: name != idempotency.KEY_FIELD),
    st.lists(st.text(max_size=10), min_size=1, max_size=3),
)


def _multidict(items: list[tuple[str, list[str]]]) -> MultiDict[str, str]:
    return MultiDict([(name, value) for name, values in items for value in values])


@FAST
@given(field_lists, st.randoms(use_true_random=False))
def test_fingerprint_ignores_field_order_and_the_library_fields(
    fields_: dict[str, list[str]], rng: Any
) -> None:
    items = list(fields_.items())
    shuffled = items[:]
    rng.shuffle(shuffled)
    extra = [("_hx_key", ["k" * 10]), ("csrf_token", ["t"])]
    one = idempotency.fingerprint(_multidict(items), MultiDict(), exclude=("csrf_token",))
    two = idempotency.fingerprint(
        _multidict(shuffled + extra), MultiDict(), exclude=("csrf_token",)
    )
    assert one == two


@FAST
@given(field_lists, st.data())
def test_fingerprint_changes_with_any_value(fields_: dict[str, list[str]], data: Any) -> None:
    assume(fields_)
    name = data.draw(st.sampled_from(sorted(fields_)))
    changed = {**fields_, name: [*fields_[name][:-1], fields_[name][-1] + "x"]}
    assert idempotency.fingerprint(
        _multidict(list(fields_.items())), MultiDict()
    ) != idempotency.fingerprint(_multidict(list(changed.items())), MultiDict())


latin1 = st.text(st.characters(max_codepoint=0xFF), max_size=60)


def _request(**environ_headers: str) -> Request:
    environ = EnvironBuilder(method="POST").get_environ()
    for name, value in environ_headers.items():
        environ[f"HTTP_{name.upper()}"] = value
    return Request(environ)


@FAST
@given(st.one_of(latin1, st.from_regex(r"[A-Za-z0-9_-]{8,128}", fullmatch=True)), latin1)
def test_request_key_returns_a_valid_key_or_refuses_with_400(header: str, field: str) -> None:
    environ = EnvironBuilder(method="POST", data={"_hx_key": field}).get_environ()
    environ["HTTP_IDEMPOTENCY_KEY"] = header
    try:
        key = idempotency.request_key(Request(environ))
    except IdempotencyKeyInvalid:
        return
    assert key is None or idempotency._KEY.fullmatch(key)


# -- header values -------------------------------------------------------------------------------

SETTERS = {
    "HX-Redirect": htmx.hx_redirect,
    "HX-Location": htmx.hx_location,
    "HX-Retarget": htmx.retarget,
    "HX-Trigger": htmx.trigger_client_event,
}
header_text = st.text(st.one_of(st.sampled_from("\r\n\x00"), st.characters()), max_size=40)


@FAST
@given(st.sampled_from(sorted(SETTERS)), header_text)
@example("HX-Redirect", "/ok\r\nSet-Cookie: x=1")
@example("HX-Location", "/ok\x00")
def test_header_helpers_refuse_cr_lf_nul_and_keep_anything_else(name: str, value: str) -> None:
    response = Response()
    if any(ch in value for ch in "\r\n\x00"):
        with pytest.raises(ValueError):
            SETTERS[name](response, value)
        assert name not in response.headers
    else:
        SETTERS[name](response, value)
        assert response.headers[name] == value


@FAST
@given(
    st.one_of(st.just("true"), latin1),
    st.one_of(st.just("true"), latin1),
    st.one_of(st.just("true"), latin1),
    st.one_of(st.sampled_from(["application/json", "text/html", "*/*"]), latin1),
)
@example("true", "", "", "application/json")
@example("", "", "", "application/json;q=0.1, text/html;q=0.9")
@example("", "", "", "application/json;q=nan")
def test_request_kind_is_total_over_header_values(
    hx_request: str, boosted: str, restore: str, accept: str
) -> None:
    request = _request(
        HX_REQUEST=hx_request,
        HX_BOOSTED=boosted,
        HX_HISTORY_RESTORE_REQUEST=restore,
        ACCEPT=accept,
    )
    kind = htmx.request_kind(request)
    assert kind in {"htmx", "json", "plain"}
    wants_fragments = hx_request == "true" and "true" not in (boosted, restore)
    assert (kind == "htmx") is wants_fragments
    if not wants_fragments and accept == "application/json":
        assert kind == "json"
    if "json" not in accept:
        assert kind != "json"
    details = htmx.HtmxDetails.of(request)
    assert details.request is (hx_request == "true")
    assert details.boosted is (boosted == "true")
    assert details.history_restore_request is (restore == "true")


@FAST
@given(st.dates(), st.text(max_size=10))
def test_date_values_round_trip_through_the_form(day: dt.date, junk: str) -> None:
    """A date input's value (ISO) loads as that date; anything after it is an error, not a crash."""
    values, errors = MARSHMALLOW.validate(
        MultiDict([("name", "x"), ("born", day.isoformat())]), MultiDict()
    )
    assert errors == {} and values["born"] == day
    values, errors = MARSHMALLOW.validate(
        MultiDict([("name", "x"), ("born", day.isoformat() + junk)]), MultiDict()
    )
    assert errors or values["born"] == day


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=600), absolute=st.booleans())
def test_safe_target_answers_the_same_from_its_memo(value: str, absolute: bool) -> None:
    """safe_target remembers recent answers (a page's Referer repeats): a remembered answer is
    the computed one, and values too long to remember are computed each time."""
    target = OWN + value if absolute else value
    first = security.safe_target(target, OWN)
    assert security.safe_target(target, OWN) == first
    if target:
        assert first == security._safe_target(target, OWN)
        remembered = (target, OWN) in security._SAFE_TARGETS
        assert remembered == (len(target) <= security._SAFE_TARGET_LENGTH_MAX)
    assert len(security._SAFE_TARGETS) <= security._SAFE_TARGETS_MAX
