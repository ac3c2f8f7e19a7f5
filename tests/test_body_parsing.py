"""The pipeline's own reading of urlencoded bodies (:func:`pipeline._read_urlencoded`) gives the
form Werkzeug would give, for any bytes; other bodies are left to Werkzeug."""

from __future__ import annotations

import io

import pytest
from flask import Flask, request
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import ClientDisconnected
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from flask_hx_actions import pipeline

URLENCODED = "application/x-www-form-urlencoded"
APP = Flask(__name__)


def environ(body: bytes, content_type: str = URLENCODED) -> dict[str, object]:
    return EnvironBuilder(
        method="POST",
        input_stream=io.BytesIO(body),
        content_type=content_type,
        content_length=len(body),
    ).get_environ()


def werkzeug_form(body: bytes, content_type: str = URLENCODED) -> list[tuple[str, str]]:
    return list(Request(environ(body, content_type)).form.items(multi=True))


def ours(body: bytes, content_type: str = URLENCODED) -> tuple[bool, list[tuple[str, str]]]:
    with APP.request_context(environ(body, content_type)):
        req = request._get_current_object()  # type: ignore[attr-defined]
        taken = pipeline._read_urlencoded(req)
        if taken:  # the mappings Werkzeug would build, of the same class
            expected = Request(environ(body, content_type))
            assert type(req.form) is type(expected.form) is ImmutableMultiDict
            assert req.form.to_dict(flat=False) == expected.form.to_dict(flat=False)
            assert type(req.files) is ImmutableMultiDict and not req.files
        return taken, list(req.form.items(multi=True))


pieces = st.sampled_from(
    [
        b"a",
        b"=",
        b"&",
        b";",
        b"+",
        b"%",
        b"%2",
        b"%41",
        b"%zz",
        b"\xc3\xa9",
        b"\xff",
        b"\xe2\x82",
        b"_hx_bound",
        b"x=1",
        b"\r\n",
        b" ",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(pieces, st.binary(max_size=8)), max_size=24).map(b"".join))
@example(b"a=1&a=2&b=")
@example(b"\xff=\xfe")  # not UTF-8: both give an empty form
@example(b"")
def test_the_same_form_as_werkzeug_for_any_body(body: bytes) -> None:
    taken, form = ours(body)
    assert taken
    assert form == werkzeug_form(body)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded; charset=utf-8", "Application/X-WWW-Form-Urlencoded"],
)
def test_content_type_parameters_and_case(content_type: str) -> None:
    assert ours(b"a=%C3%A9", content_type) == (True, [("a", "é")])


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "text/plain", ""])
def test_other_bodies_are_left_to_werkzeug(content_type: str) -> None:
    with APP.request_context(environ(b"a=1", content_type)):
        assert not pipeline._read_urlencoded(request._get_current_object())  # type: ignore[attr-defined]
        assert "form" not in request.__dict__


def test_a_body_read_before_is_left_to_werkzeug() -> None:
    with APP.request_context(environ(b"a=1")):
        assert request.get_data(cache=True) == b"a=1"
        assert not pipeline._read_urlencoded(request._get_current_object())  # type: ignore[attr-defined]
        assert request.form["a"] == "1"


def test_a_body_shorter_than_its_content_length_is_a_client_disconnect() -> None:
    env = environ(b"a=1")
    env["CONTENT_LENGTH"] = "10"
    with APP.request_context(env), pytest.raises(ClientDisconnected):
        pipeline._read_urlencoded(request._get_current_object())  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
@example("a=1&&b&c=&=d&e==f")
@example("_hx_regions=todos+stats+todo%3Fid%3D7&a%2Bb=%ff%fe%zz&c=%E2%82%AC+")
def test_plain_ascii_bodies_split_as_parse_qsl_does(text: str) -> None:
    # Split directly; the fields with % or + unquoted one by one (undecodable %XX kept).
    from urllib.parse import parse_qsl

    body = text.encode()
    assert pipeline._form_items(body) == parse_qsl(
        text, keep_blank_values=True, errors="werkzeug.url_quote"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(pieces, st.binary(max_size=8)), max_size=24).map(b"".join))
@example(b"a=\xff\xff\xff")
def test_no_field_is_longer_than_three_times_the_body(body: bytes) -> None:
    """read_body skips the per-field limit of a urlencoded body whose length times three is
    within it: no field's UTF-8 text can be longer (an undecodable byte becomes "%XX")."""
    for name, value in ours(body)[1]:
        assert len(name.encode()) <= 3 * len(body)
        assert len(value.encode()) <= 3 * len(body)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"CONTENT_LENGTH": "12"},
        {"CONTENT_LENGTH": "-3"},
        {"CONTENT_LENGTH": "x"},
        {"CONTENT_LENGTH": " 7 "},
        {"CONTENT_LENGTH": "12", "HTTP_TRANSFER_ENCODING": "chunked"},
        {"HTTP_TRANSFER_ENCODING": "gzip, Chunked"},
        {"CONTENT_LENGTH": "0012"},
        {"CONTENT_LENGTH": "+5"},
        {"CONTENT_LENGTH": "\u0665"},  # an Arabic-Indic five: a digit to str.isdigit, not to HTTP
        {"CONTENT_LENGTH": "\u00b2"},  # superscript two
        {"CONTENT_LENGTH": "1_0"},
        {"CONTENT_LENGTH": ""},
        {"CONTENT_LENGTH": "9" * 30},
        {"CONTENT_LENGTH": "12", "HTTP_TRANSFER_ENCODING": "gzip"},
    ],
)
def test_content_length_is_werkzeugs(headers: dict[str, str]) -> None:
    env = EnvironBuilder(method="POST").get_environ()
    env.pop("CONTENT_LENGTH", None)
    env.update(headers)
    expected = Request(dict(env)).content_length
    with APP.request_context(env):
        req = request._get_current_object()  # type: ignore[attr-defined]
        assert pipeline.content_length(req) == expected
        assert req.content_length == expected  # and kept where Werkzeug keeps it


def test_the_form_and_files_cannot_be_changed() -> None:
    with APP.request_context(environ(b"a=1&a=2")):
        req = request._get_current_object()  # type: ignore[attr-defined]
        assert pipeline._read_urlencoded(req)
        assert req.form.getlist("a") == ["1", "2"]
        for mapping in (req.form, req.files):
            with pytest.raises(TypeError):
                mapping["b"] = "x"
            with pytest.raises(TypeError):
                mapping.setlist("b", ["x"])
        assert not req.files


def test_an_app_with_its_own_form_class_gets_it() -> None:
    from flask import Request as FlaskRequest
    from werkzeug.datastructures import MultiDict

    class Own(FlaskRequest):
        parameter_storage_class = MultiDict

    app = Flask(__name__)
    app.request_class = Own
    with app.request_context(environ(b"a=1&a=2")):
        req = request._get_current_object()  # type: ignore[attr-defined]
        assert pipeline._read_urlencoded(req)
        assert type(req.form) is MultiDict and req.form.getlist("a") == ["1", "2"]
        assert type(req.files) is MultiDict


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=6), st.text("0123456789 -+", max_size=6)),
    st.one_of(st.none(), st.sampled_from(["chunked", "gzip", "gzip, chunked", ""])),
)
def test_content_length_is_werkzeugs_for_any_header(raw: str | None, encoding: str | None) -> None:
    env = EnvironBuilder(method="POST").get_environ()
    env.pop("CONTENT_LENGTH", None)
    if raw is not None:
        env["CONTENT_LENGTH"] = raw
    if encoding is not None:
        env["HTTP_TRANSFER_ENCODING"] = encoding
    expected = Request(dict(env)).content_length
    with APP.request_context(env):
        assert pipeline.content_length(request._get_current_object()) == expected  # type: ignore[attr-defined]
