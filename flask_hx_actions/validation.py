"""Adapters that validate a submitted form with a marshmallow ``Schema`` or a WTForms ``Form``.

Both give the same thing to the pipeline: the validated values keyed by the names the action's
parameters use, or errors keyed by the input names the form shows them under (``"_form"`` for
errors that belong to no field). Uploads arrive as :class:`Upload` values (bytes, filename,
content type), read within the action's size limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import marshmallow
from marshmallow import EXCLUDE, fields
from werkzeug.datastructures import CombinedMultiDict, FileStorage, MultiDict

from .results import FORM_ERRORS

Errors = dict[str, list[str]]
FormData = MultiDict[str, Any]


@dataclass(frozen=True, slots=True)
class Upload:
    """A small uploaded file, read into memory.

    :param filename: The name the browser sent (untrusted: never use it as a path as is).
    :param content_type: The type the browser declared (untrusted too).
    :param data: The file's bytes.
    """

    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:  # keep test output and logs short
        return f"Upload({self.filename!r}, {self.content_type!r}, {self.size} bytes)"


class UploadTooLarge(ValueError):
    pass


def read_upload(storage: FileStorage, max_size: int | None) -> Upload:
    """Read ``storage`` into an :class:`Upload`, never more than ``max_size + 1`` bytes."""
    limit = -1 if max_size is None else max_size + 1
    data = storage.stream.read(limit)
    if max_size is not None and len(data) > max_size:
        raise UploadTooLarge(f"The file is larger than {_human(max_size)}.")
    return Upload(
        filename=storage.filename or "",
        content_type=(storage.mimetype or "application/octet-stream"),
        data=data,
    )


class FileUpload(fields.Field):  # type: ignore[type-arg]
    """A marshmallow field for one small upload, loaded as an :class:`Upload`.

    >>> class AttachSchema(marshmallow.Schema):
    ...     file = FileUpload(max_size=1_000_000, content_types={"image/png", "text/plain"})

    :param max_size: Largest accepted file in bytes.
    :param content_types: Accepted declared content types (``None``: any).
    """

    default_error_messages = {
        "invalid": "Not a valid file.",
        "too_large": "The file is larger than {max}.",
        "type": "Files of type {type} are not accepted.",
        "empty": "The file is empty.",
    }

    def __init__(
        self,
        *,
        max_size: int | None = None,
        content_types: set[str] | frozenset[str] | None = None,
        allow_empty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_size = max_size
        self.content_types = frozenset(content_types) if content_types else None
        self.allow_empty = allow_empty

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Upload:
        if isinstance(value, Upload):
            upload = value
            if self.max_size is not None and upload.size > self.max_size:
                raise self.make_error("too_large", max=_human(self.max_size))
        elif isinstance(value, FileStorage):
            try:
                upload = read_upload(value, self.max_size)
            except UploadTooLarge:
                raise self.make_error("too_large", max=_human(self.max_size or 0)) from None
        else:
            raise self.make_error("invalid")
        if self.content_types is not None and upload.content_type not in self.content_types:
            raise self.make_error("type", type=upload.content_type)
        if not upload.data and not self.allow_empty:
            raise self.make_error("empty")
        return upload


class Validator(Protocol):
    """What the pipeline needs from a schema adapter."""

    #: Input names of the form, in order (error slots and old input use them).
    input_names: tuple[str, ...]
    #: Names of the validated values (the action's keyword arguments).
    value_names: frozenset[str]
    #: Inputs never carried back to the next page (passwords, files).
    sensitive: frozenset[str]
    #: True when the form needs ``enctype="multipart/form-data"``.
    multipart: bool
    #: Input name -> label shown in the error summary.
    labels: dict[str, str]

    def validate(self, form: FormData, files: FormData) -> tuple[dict[str, Any], Errors]: ...


def make_validator(schema: Any) -> Validator:
    """The adapter for a marshmallow ``Schema`` class or a WTForms ``Form`` class."""
    if isinstance(schema, type) and issubclass(schema, marshmallow.Schema):
        return MarshmallowValidator(schema)
    try:
        import wtforms
    except ImportError:  # pragma: no cover - WTForms is a dependency of Flask-WTF
        wtforms = None
    if wtforms is not None and isinstance(schema, type) and issubclass(schema, wtforms.Form):
        return WTFormsValidator(schema)
    raise TypeError(
        f"schema= must be a marshmallow Schema class or a WTForms Form class, not {schema!r}."
    )


#: Field names holding one of these are never kept as old input (nor are WTForms
#: ``PasswordField``, marshmallow fields with ``metadata={"sensitive": True}`` and uploads).
_SENSITIVE_WORDS = ("password", "passwd", "passphrase", "passcode", "secret", "token")
#: ... or one of these as a whole part (``card_pin``, ``cvv``; not ``shipping``).
_SENSITIVE_PARTS = frozenset({"pin", "cvv", "cvc", "otp", "ssn"})
_NAME_PARTS = re.compile(r"[^a-z0-9]+")


def _is_sensitive_name(name: str) -> bool:
    lowered = name.lower()
    if any(word in lowered for word in _SENSITIVE_WORDS):
        return True
    return not _SENSITIVE_PARTS.isdisjoint(_NAME_PARTS.split(lowered))


class MarshmallowValidator:
    """Loads with ``unknown=EXCLUDE`` so the library's own fields (CSRF token, key) pass through."""

    def __init__(self, schema_class: type[marshmallow.Schema]) -> None:
        self.schema = schema_class(unknown=EXCLUDE)
        plan: list[tuple[str, str, str]] = []  # (input name, attribute, how to read)
        sensitive: set[str] = set()
        labels: dict[str, str] = {}
        for attr, field in self.schema.load_fields.items():
            key = field.data_key or attr
            if isinstance(field, FileUpload):
                how = "file"
                sensitive.add(key)
            elif isinstance(field, fields.List):
                how = "list"
            elif isinstance(field, fields.String):
                how = "str"
            else:
                how = "scalar"
            if field.metadata.get("sensitive") or _is_sensitive_name(key):
                sensitive.add(key)
            if field.metadata.get("label"):
                labels[key] = str(field.metadata["label"])
            plan.append((key, attr, how))
        self._plan = tuple(plan)
        self.input_names = tuple(key for key, _, _ in plan)
        self.value_names = frozenset(attr for _, attr, _ in plan)
        self.sensitive = frozenset(sensitive)
        self.multipart = any(how == "file" for _, _, how in plan)
        self.labels = labels

    def validate(self, form: FormData, files: FormData) -> tuple[dict[str, Any], Errors]:
        data: dict[str, Any] = {}
        for key, _attr, how in self._plan:
            if how == "file":
                storage = files.get(key)
                if storage is not None and (
                    isinstance(storage, Upload) or getattr(storage, "filename", None)
                ):
                    data[key] = storage
            elif how == "list":
                if key in form:
                    data[key] = form.getlist(key)
            elif key in form:
                value = form.get(key)
                # Browsers send "" for an empty number or date input: that is "no value".
                if how == "scalar" and value == "":
                    continue
                data[key] = value
        try:
            return self.schema.load(data), {}
        except marshmallow.ValidationError as exc:
            return {}, flatten_errors(exc.messages)


class WTFormsValidator:
    """Runs a WTForms (or Flask-WTF) form with its own CSRF off: the pipeline checked the token."""

    def __init__(self, form_class: type[Any]) -> None:
        from wtforms import fields as wtf_fields

        self.form_class = form_class
        probe = self._instantiate(None)
        input_names: list[str] = []
        value_names: set[str] = set()
        sensitive: set[str] = set()
        skip: set[str] = set()
        labels: dict[str, str] = {}
        multipart = False
        for attr, field in probe._fields.items():
            if isinstance(field, wtf_fields.SubmitField) or field.type == "CSRFTokenField":
                skip.add(attr)
                continue
            input_names.append(field.name)
            value_names.add(attr)
            labels[field.name] = str(field.label.text)
            if isinstance(field, wtf_fields.FileField | wtf_fields.MultipleFileField):
                multipart = True
                sensitive.add(field.name)
            if isinstance(field, wtf_fields.PasswordField) or _is_sensitive_name(field.name):
                sensitive.add(field.name)
        self._skip = frozenset(skip)
        self.input_names = tuple(input_names)
        self.value_names = frozenset(value_names)
        self.sensitive = frozenset(sensitive)
        self.multipart = multipart
        self.labels = labels

    def _instantiate(self, formdata: Any) -> Any:
        try:
            return self.form_class(formdata=formdata, meta={"csrf": False})
        except RuntimeError as exc:  # FlaskForm outside an app context
            raise RuntimeError(
                f"{self.form_class.__name__} needs an app context (Flask-WTF's FlaskForm). "
                "Register the action's blueprint inside create_app or use a wtforms.Form."
            ) from exc

    def validate(self, form: FormData, files: FormData) -> tuple[dict[str, Any], Errors]:
        formdata = CombinedMultiDict([files, form]) if files else form
        instance = self._instantiate(formdata)
        if not instance.validate():
            return {}, flatten_errors(instance.errors)
        values: dict[str, Any] = {}
        for attr, field in instance._fields.items():
            if attr in self._skip:
                continue
            values[attr] = _file_value(field.data)
        return values, {}


def _file_value(value: Any) -> Any:
    if isinstance(value, FileStorage):
        return read_upload(value, None) if value.filename else None
    if isinstance(value, list) and any(isinstance(v, FileStorage) for v in value):
        return [read_upload(v, None) for v in value if isinstance(v, FileStorage) and v.filename]
    return value


def flatten_errors(messages: Any) -> Errors:
    """marshmallow / WTForms error structures -> ``{"field": [...], "nested.field": [...]}``."""
    out: Errors = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in (None, "_schema") or (isinstance(key, int) and name):
                    # list items ("tags.1") report under the input's own name
                    walk(value, name or FORM_ERRORS)
                else:
                    walk(value, f"{name}.{key}" if name else str(key))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, name)
        else:
            out.setdefault(name or FORM_ERRORS, []).append(str(node))

    walk(messages, "")
    return out


def _human(size: int) -> str:
    for unit, factor in (("MB", 1_000_000), ("kB", 1_000)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"
