"""Typed results of actions: :func:`ok`, :func:`fail`, :func:`redirect_to`, :func:`not_found`.

Results are returned, not raised, so an action reads like a plain function and a unit test can
look at what it returned. The pipeline turns a result into the answer the caller expects (a 303
for a plain form, fragments for htmx, JSON for scripts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from flask import url_for

from .security import is_safe_path

ResultKind = Literal["ok", "fail", "redirect", "not_found"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: The code of a validation failure produced by the library (not by the action).
INVALID = "invalid"
#: The key of non-field errors in :attr:`Result.errors`.
FORM_ERRORS = "_form"


@dataclass(frozen=True, slots=True)
class Result:
    """What an action returned.

    :param ok: ``True`` for :func:`ok` and :func:`redirect_to`.
    :param code: ``None`` on success; the failure code otherwise (``"invalid"`` for
        validation errors, ``"not_found"`` for :func:`not_found`).
    :param message: A message meant for the user (shown by the form's error summary).
    :param errors: Field name -> list of messages; ``"_form"`` holds non-field errors.
    :param data: JSON-serialisable values for JSON callers and templates.
    :param status: The HTTP status of the answer for htmx and JSON callers.
    :param location: For redirects: a same-origin path, or an endpoint name.
    :param url_values: For redirects to an endpoint: the values given to ``url_for``.
    """

    ok: bool
    kind: ResultKind
    code: str | None = None
    message: str | None = None
    errors: Mapping[str, Sequence[str]] = field(default_factory=lambda: _EMPTY)
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    status: int = 200
    location: str | None = None
    url_values: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def redirect(self) -> str | None:
        """The redirect target as a URL path (resolved with ``url_for`` for endpoint names)."""
        if self.location is None:
            return None
        if self.location.startswith("/"):
            return self.location
        return url_for(self.location, **self.url_values)


_OK = Result(ok=True, kind="ok")


def ok(**data: Any) -> Result:
    """A successful result, optionally with JSON-serialisable ``data``.

    >>> ok(id=7).data["id"]
    7

    :raises TypeError: when a value cannot be serialised to JSON.
    """
    if not data:
        return _OK
    _check_json(data)
    return Result(ok=True, kind="ok", data=MappingProxyType(dict(data)))


def fail(
    code: str,
    message: str | None = None,
    errors: Mapping[str, Sequence[str] | str] | None = None,
    status: int = 422,
) -> Result:
    """A failed result: the transaction is rolled back and the user sees ``message``.

    ``errors`` maps field names to messages (a single string is accepted for one message);
    use ``"_form"`` for errors that belong to no field.

    >>> fail("DUPLICATE", "Already exists").code
    'DUPLICATE'
    """
    if not isinstance(code, str) or not code:
        raise TypeError("fail() needs a non-empty string code, e.g. fail('DUPLICATE').")
    if not 400 <= status <= 599:
        raise ValueError(f"fail() status must be a 4xx or 5xx code, not {status}.")
    normalised: dict[str, tuple[str, ...]] = {}
    for name, messages in (errors or {}).items():
        normalised[str(name)] = (messages,) if isinstance(messages, str) else tuple(messages)
    return Result(
        ok=False,
        kind="fail",
        code=code,
        message=message,
        errors=MappingProxyType(normalised),
        status=status,
    )


def redirect_to(target: str, **url_values: Any) -> Result:
    """Redirect after the action: an endpoint name (``"todos.index"``) or a same-origin path.

    Plain forms get a 303, htmx gets ``HX-Redirect`` and JSON callers ``{"redirect": ...}``.

    >>> redirect_to("/todos/").redirect
    '/todos/'

    :raises ValueError: for anything that is not a same-origin path or an endpoint name.
    """
    if target.startswith("/"):
        if url_values:
            raise TypeError("redirect_to(path) takes no url values; pass an endpoint name.")
        if not is_safe_path(target):
            raise ValueError(f"redirect_to() only accepts same-origin paths, not {target!r}.")
    elif not _is_endpoint_name(target):
        raise ValueError(
            f"redirect_to() takes an endpoint name like 'todos.index' or a path like '/todos/',"
            f" not {target!r}."
        )
    return Result(
        ok=True,
        kind="redirect",
        location=target,
        url_values=MappingProxyType(dict(url_values)),
        status=200,
    )


_NOT_FOUND = Result(ok=False, kind="not_found", code="not_found", message="Not found.", status=404)


def not_found() -> Result:
    """The thing the action works on does not exist (or is not the user's): 404.

    >>> not_found().status
    404
    """
    return _NOT_FOUND


def invalid(errors: Mapping[str, Sequence[str]], message: str | None = None) -> Result:
    """The result of a validation failure (built by the library; actions use :func:`fail`)."""
    return Result(
        ok=False,
        kind="fail",
        code=INVALID,
        message=message,
        errors=MappingProxyType({k: tuple(v) for k, v in errors.items()}),
        status=422,
    )


def _check_json(data: Mapping[str, Any]) -> None:
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"ok() data must be JSON-serialisable: {exc}. Convert the value first "
            "(for example str() a date or pass a model's id instead of the model)."
        ) from None


def _is_endpoint_name(target: str) -> bool:
    return bool(target) and all(part.isidentifier() for part in target.split("."))
