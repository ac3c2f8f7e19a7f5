"""Schema adapters: marshmallow and WTForms / Flask-WTF, uploads, and async actions."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from app_factory import Harness, contract_app
from flask import Flask
from flask_wtf import FlaskForm
from marshmallow import Schema, fields, validate
from wtforms import FileField, Form, IntegerField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from flask_hx_actions import ActionsBlueprint, HxActions, Upload, ok
from flask_hx_actions.testing import ActionClient


@pytest.fixture
def harness(tmp_path) -> Iterator[Harness]:
    with contract_app(tmp_path / "app.db") as h:
        yield h


def make_app(schema: Any) -> tuple[Flask, list[dict[str, Any]]]:
    """An app with one action ``v.save`` on ``schema`` that records the keyword arguments."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", TESTING=True)
    app.test_client_class = ActionClient
    HxActions(app)
    seen: list[dict[str, Any]] = []
    bp = ActionsBlueprint("v", __name__, url_prefix="/v")

    @bp.action("save", schema=schema)
    def save(**values: Any) -> Any:
        seen.append(values)
        return ok()

    app.register_blueprint(bp)
    return app, seen


def submit(app: Flask, data: dict[str, Any]) -> Any:
    return app.test_client().submit("v.save", data, json=True)


# -- marshmallow ---------------------------------------------------------------------------------


def test_validated_fields_arrive_as_keyword_arguments(harness):
    harness.client().submit("items.add", {"title": "Milk", "priority": "4"})
    assert [row[1:3] for row in harness.items()] == [("Milk", 4)]


def test_marshmallow_unknown_and_library_fields_are_excluded():
    class S(Schema):
        title = fields.String()

    app, seen = make_app(S)
    response = submit(app, {"title": "a", "evil": "1", "next": "/x", "submit": "Save"})
    assert response.status_code == 200
    assert seen == [{"title": "a"}]


def test_marshmallow_empty_string_for_a_number_is_missing():
    class S(Schema):
        count = fields.Integer(load_default=1)
        ratio = fields.Float(load_default=None)
        day = fields.Date(load_default=None)

    app, seen = make_app(S)
    assert submit(app, {"count": "", "ratio": "", "day": ""}).status_code == 200
    assert seen == [{"count": 1, "ratio": None, "day": None}]


def test_marshmallow_empty_string_for_a_required_number_is_missing_data():
    class S(Schema):
        count = fields.Integer(required=True)

    app, seen = make_app(S)
    response = submit(app, {"count": ""})
    assert response.status_code == 422
    assert response.json["errors"] == {"count": ["Missing data for required field."]}
    assert seen == []


def test_marshmallow_empty_string_for_a_string_stays_a_string():
    class S(Schema):
        note = fields.String(load_default="default")

    app, seen = make_app(S)
    submit(app, {"note": ""})
    assert seen == [{"note": ""}]


def test_marshmallow_unchecked_checkbox_takes_the_default():
    class S(Schema):
        subscribe = fields.Boolean(load_default=False)

    app, seen = make_app(S)
    submit(app, {})
    submit(app, {"subscribe": "on"})
    assert seen == [{"subscribe": False}, {"subscribe": True}]


def test_marshmallow_lists_take_every_value():
    class S(Schema):
        tags = fields.List(fields.String(), load_default=list)
        nums = fields.List(fields.Integer(), load_default=list)

    app, seen = make_app(S)
    response = app.test_client().submit(
        "v.save", {"tags": ["a", "b"], "nums": ["1", "2", "3"]}, json=True
    )
    assert response.status_code == 200
    assert seen == [{"tags": ["a", "b"], "nums": [1, 2, 3]}]


def test_marshmallow_list_without_values_takes_the_default():
    class S(Schema):
        tags = fields.List(fields.String(), load_default=list)

    app, seen = make_app(S)
    submit(app, {})
    assert seen == [{"tags": []}]


def test_marshmallow_list_item_errors_are_reported_under_the_input_name():
    class S(Schema):
        nums = fields.List(fields.Integer())

    app, _seen = make_app(S)
    response = app.test_client().submit("v.save", {"nums": ["1", "x"]}, json=True)
    assert response.status_code == 422
    assert response.json["errors"] == {"nums": ["Not a valid integer."]}


def test_marshmallow_schema_level_errors_are_form_errors():
    from marshmallow import ValidationError, validates_schema

    class S(Schema):
        start = fields.Integer(required=True)
        end = fields.Integer(required=True)

        @validates_schema
        def order(self, data: dict[str, Any], **kwargs: Any) -> None:
            if data["start"] > data["end"]:
                raise ValidationError("Start must come before end.")

    app, _seen = make_app(S)
    response = submit(app, {"start": "5", "end": "1"})
    assert response.status_code == 422
    assert response.json["errors"] == {"_form": ["Start must come before end."]}


def test_marshmallow_data_key_is_the_input_name_and_the_attribute_the_argument():
    class S(Schema):
        email = fields.Email(data_key="e-mail", required=True)

    app, seen = make_app(S)
    assert submit(app, {"e-mail": "a@example.com"}).status_code == 200
    assert seen == [{"email": "a@example.com"}]
    response = submit(app, {"e-mail": "nope"})
    assert response.json["errors"] == {"e-mail": ["Not a valid email address."]}


def test_marshmallow_label_metadata_names_the_field_in_the_summary():
    class S(Schema):
        title = fields.String(required=True, metadata={"label": "Your title"})

    app, _seen = make_app(S)
    response = app.test_client().submit("v.save", {}, htmx=True)
    assert response.status_code == 422
    assert "Your title: Missing data for required field." in response.text


# -- uploads (FileUpload) ------------------------------------------------------------------------


def _upload(harness: Harness, file: Any, **data: Any) -> Any:
    return harness.client().submit("items.upload", {"file": file, **data}, json=True)


def test_upload_arrives_as_an_upload_value(harness):
    response = _upload(harness, (io.BytesIO(b"hello"), "a.txt", "text/plain"), caption="hi")
    assert response.status_code == 200
    assert response.json["data"] == {"size": 5, "caption": "hi"}
    assert harness.attachments() == [("a.txt", "text/plain", 5)]


def test_upload_over_max_size_is_a_field_error(harness):
    response = _upload(harness, (io.BytesIO(b"x" * 2001), "a.txt", "text/plain"))
    assert response.status_code == 422
    assert response.json["errors"] == {"file": ["The file is larger than 2 kB."]}
    assert harness.calls["upload"] == 0


def test_upload_of_a_refused_type_is_a_field_error(harness):
    response = _upload(harness, (io.BytesIO(b"MZ"), "a.exe", "application/x-msdownload"))
    assert response.status_code == 422
    assert response.json["errors"] == {
        "file": ["Files of type application/x-msdownload are not accepted."]
    }


def test_empty_upload_is_a_field_error(harness):
    response = _upload(harness, (io.BytesIO(b""), "a.txt", "text/plain"))
    assert response.status_code == 422
    assert response.json["errors"] == {"file": ["The file is empty."]}


def test_upload_without_a_file_is_missing(harness):
    response = _upload(harness, (io.BytesIO(b""), "", "application/octet-stream"))
    assert response.status_code == 422
    assert response.json["errors"] == {"file": ["Missing data for required field."]}


def test_failed_upload_keeps_other_old_input_but_never_the_file(harness):
    client = harness.client()
    client.submit(
        "items.upload",
        {"file": (io.BytesIO(b"x" * 3000), "big.txt", "text/plain"), "caption": "my caption"},
        referrer="http://localhost/form",
    )
    harness.templates["up.html"] = (
        '{% call action_form("items.upload") %}{{ field("file", type="file") }}'
        '{{ field("caption") }}{% endcall %}'
    )
    page = client.get("/show/up.html").text
    assert 'value="my caption"' in page
    assert "big.txt" not in page
    assert "The file is larger than 2 kB." in page


def test_fileupload_validates_upload_values_in_invoke():
    from flask_hx_actions import FileUpload

    class S(Schema):
        file = FileUpload(max_size=3, content_types={"text/plain"})

    bp = ActionsBlueprint("u", __name__)

    @bp.action("up", schema=S)
    def up(file: Upload) -> Any:
        return ok(size=file.size)

    assert up.invoke({}, files={"file": Upload("a.txt", "text/plain", b"abc")}).data == {"size": 3}
    too_big = up.invoke({}, files={"file": Upload("a.txt", "text/plain", b"abcd")})
    assert too_big.errors["file"] == ("The file is larger than 3 bytes.",)


# -- WTForms -------------------------------------------------------------------------------------


def test_wtforms_errors_are_flattened_by_input_name(harness):
    item = harness.add_item("a")
    response = harness.client().submit("items.rename", {"title": ""}, bind={"id": item}, json=True)
    assert response.status_code == 422
    assert response.json["errors"] == {"title": ["This field is required."]}
    assert harness.calls["rename"] == 0


def test_wtforms_valid_submit_runs_the_action(harness):
    item = harness.add_item("a")
    response = harness.client().submit(
        "items.rename", {"title": "b", "submit": "Rename"}, bind={"id": item}, json=True
    )
    assert response.status_code == 200
    assert harness.item(item)[1] == "b"


def test_wtforms_submit_field_is_not_an_argument():
    class F(Form):
        title = StringField("Title", [DataRequired()])
        count = IntegerField("Count", default=0)
        go = SubmitField("Go")

    app, seen = make_app(F)
    assert submit(app, {"title": "a", "count": "2", "go": "Go", "extra": "x"}).status_code == 200
    assert seen == [{"title": "a", "count": 2}]


def test_wtforms_form_errors_are_form_errors():
    class F(Form):
        title = StringField("Title")

        def validate(self, extra_validators: Any = None) -> bool:
            super().validate(extra_validators)
            self.form_errors.append("Nothing may be saved today.")
            return False

    app, seen = make_app(F)
    response = submit(app, {"title": "a"})
    assert response.status_code == 422
    assert response.json["errors"] == {"_form": ["Nothing may be saved today."]}
    assert seen == []


def test_wtforms_file_field_arrives_as_an_upload():
    class F(Form):
        doc = FileField("Document")
        title = StringField("Title", [Length(max=10)])

    app, seen = make_app(F)
    response = app.test_client().submit(
        "v.save", {"doc": (io.BytesIO(b"data"), "d.txt", "text/plain"), "title": "t"}, json=True
    )
    assert response.status_code == 200
    assert seen == [{"doc": Upload("d.txt", "text/plain", b"data"), "title": "t"}]


def test_wtforms_file_field_makes_the_form_multipart():
    class F(Form):
        doc = FileField("Document")

    app, _seen = make_app(F)
    from flask import render_template_string

    with app.test_request_context():
        html = render_template_string('{{ action_form("v.save", label="Go") }}')
    assert 'enctype="multipart/form-data"' in html


def test_flask_wtf_form_works_with_its_own_csrf_off():
    class F(FlaskForm):
        title = StringField("Title", [DataRequired()])
        submit = SubmitField("Save")

    app = Flask(__name__)
    app.config.update(SECRET_KEY="k", TESTING=True)
    app.test_client_class = ActionClient
    HxActions(app)
    seen: list[str] = []
    bp = ActionsBlueprint("f", __name__, url_prefix="/f")
    with app.app_context():

        @bp.action("save", schema=F)
        def save(title: str) -> Any:
            seen.append(title)
            return ok()

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.submit("f.save", {"title": "a"}, json=True).status_code == 200
    response = client.submit("f.save", {"title": ""}, json=True)
    assert response.json["errors"] == {"title": ["This field is required."]}
    assert seen == ["a"]


def test_flask_wtf_form_outside_an_app_context_is_a_clear_error():
    class F(FlaskForm):
        title = StringField("Title")

    bp = ActionsBlueprint("f", __name__)
    with pytest.raises(RuntimeError, match="app context"):
        bp.action("save", schema=F)(lambda title: None)


def test_schema_of_another_kind_is_a_type_error():
    bp = ActionsBlueprint("x", __name__)
    with pytest.raises(TypeError, match="schema="):
        bp.action("save", schema=dict)(lambda: None)


# -- async actions -------------------------------------------------------------------------------


def test_async_action_runs_and_commits(harness):
    response = harness.client().submit("items.add_later", {"title": "later", "priority": "2"})
    assert response.status_code == 303
    assert harness.calls["add_later"] == 1
    assert [row[1:3] for row in harness.items()] == [("later", 2)]


def test_async_action_answers_htmx_with_its_fragment(harness):
    response = harness.client().submit("items.add_later", {"title": "later"}, htmx=True)
    assert response.status_code == 200
    assert response.text.startswith('<div id="item-list" data-hx-fragment="item-list">')
    assert "later" in response.text


def test_async_action_validation_runs_first(harness):
    response = harness.client().submit("items.add_later", {"title": ""}, json=True)
    assert response.status_code == 422
    assert harness.calls["add_later"] == 0


def test_async_action_invoke_without_an_app():
    class S(Schema):
        n = fields.Integer(required=True, validate=validate.Range(min=0))

    bp = ActionsBlueprint("a", __name__)

    @bp.action("double", schema=S)
    async def double(n: int) -> Any:
        return ok(value=n * 2)

    assert dict(double.invoke({"n": "4"}).data) == {"value": 8}
    assert double.invoke({"n": "-1"}).ok is False
