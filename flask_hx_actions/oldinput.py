"""Errors and typed values carried from a failed no-JS submit to the next page (Post/Redirect/Get).

They travel in the session, which is usually a cookie: browsers drop cookies over ~4 KB and lose
the whole session (CSRF token included) with them. So the stash is capped: long values are
dropped, passwords and files are never kept, messages are shortened, and the whole entry,
errors included, stays under ``HX_ACTIONS_OLD_INPUT_MAX_BYTES``. Only one stash exists at a time;
the first page that renders a form after it takes it out of the session.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, session
from werkzeug.datastructures import MultiDict

from .context import flags
from .security import current_session

_KEY = "_hx_old"
#: The name in ``g`` of this request's stash, once read (``None``: there is none).
STASH = "_hx_old"
_MESSAGE_MAX = 300
_MAX_FIELDS = 30


#: The hidden field of a form given its own ``id=``: two forms of one action and bound values
#: on a page (a form at the top and at the bottom) then keep their failures apart.
FORM_ID_FIELD = "_hx_form"
_FORM_ID_MAX = 128


def form_key(endpoint: str, bound: Mapping[str, Any] | None, form_id: str | None = None) -> str:
    """Which rendered form a stash belongs to: the action, its bound values and the ``id=`` the
    template gave it, if any."""
    if not bound and not form_id:
        return endpoint
    raw = json.dumps(bound or {}, sort_keys=True, separators=(",", ":"), default=str)
    if form_id:
        raw += "#" + form_id[:_FORM_ID_MAX]
    return f"{endpoint}|{hashlib.blake2s(raw.encode(), digest_size=6).hexdigest()}"


@dataclass(frozen=True, slots=True)
class FormState:
    """What a form shows after a failed submit: values, field errors and a message."""

    values: Mapping[str, Sequence[str]] = field(default_factory=dict)
    errors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    message: str | None = None

    def old(self, name: str) -> str:
        values = self.values.get(name)
        return values[0] if values else ""

    def has_old(self, name: str) -> bool:
        """The submit carried ``name`` (a field it did not carry is stashed as ``[]``)."""
        return bool(self.values.get(name))

    def old_list(self, name: str) -> Sequence[str]:
        return self.values.get(name, ())


EMPTY_STATE = FormState()


def stash(
    app: Flask,
    key: str,
    form: MultiDict[str, Any],
    names: Sequence[str],
    sensitive: frozenset[str],
    errors: Mapping[str, Sequence[str]],
    message: str | None,
) -> None:
    """Put the failed submit's errors and (capped) values into the session."""
    max_value = int(app.config["HX_ACTIONS_OLD_INPUT_MAX_VALUE"])
    max_bytes = int(app.config["HX_ACTIONS_OLD_INPUT_MAX_BYTES"])
    kept_errors = {
        name: [str(m)[:_MESSAGE_MAX] for m in list(messages)[:3]]
        for name, messages in list(errors.items())[:_MAX_FIELDS]
    }
    entry: dict[str, Any] = {
        "k": key,
        "e": kept_errors,
        "m": message[:_MESSAGE_MAX] if message else None,
        "v": {},
    }
    budget = max_bytes - _size(entry)
    values: dict[str, list[str]] = {}
    for name in names:
        if name in sensitive:
            continue
        # A field the submit did not carry is kept as [] (an unchecked checkbox sends nothing:
        # without this it would come back checked by its default).
        items = [v for v in form.getlist(name) if isinstance(v, str) and len(v) <= max_value]
        if not items and name in form:
            continue  # every value too long: the field falls back to its default
        cost = _size({name: items}) + 1
        if cost <= budget:
            values[name] = items
            budget -= cost
    entry["v"] = values
    if _size(entry) > max_bytes:  # the errors alone are too long (see _fitted)
        entry = _fitted(key, kept_errors, message, max_bytes)
    session[_KEY] = entry


#: A field's error when its own message does not fit in the stash.
_SHORT_ERROR = "Invalid value."


def _fitted(
    key: str, errors: Mapping[str, Sequence[str]], message: str | None, max_bytes: int
) -> dict[str, Any]:
    """An entry within ``max_bytes`` when the errors alone exceed it (long messages, or text
    that JSON escapes six bytes a character, as ``{input}`` in a message can make them): no
    values; every field marked with a short error, then as many of the first messages
    (shortened) as fit; fields past the cap dropped (the summary still asks for corrections).
    Always under the cap: a session cookie over ~4 KB is dropped by the browser, and with it
    every error, value and the CSRF token."""
    entry: dict[str, Any] = {"k": key, "e": {}, "m": None, "v": {}}
    if message:
        text = message[:_MESSAGE_MAX]
        while text and _size({**entry, "m": text}) > max_bytes // 3:
            text = text[: len(text) // 2]
        entry["m"] = text or None
    budget = max_bytes - _size(entry)
    kept: dict[str, list[str]] = {}
    for name in errors:  # first every field marked invalid, then as many messages as fit
        cost = _size({name: [_SHORT_ERROR]}) + 1
        if cost <= budget:
            kept[name] = [_SHORT_ERROR]
            budget -= cost
    short = _size([_SHORT_ERROR])
    for name, messages in errors.items():
        if name in kept and messages:
            text = str(messages[0])[:80]
            extra = _size([text]) - short
            if extra <= budget:
                kept[name] = [text]
                budget -= extra
    entry["e"] = kept
    return entry


def take() -> dict[str, Any] | None:
    """The stash, read once per request and removed from the session on first read."""
    values = flags()
    if STASH in values:
        return values[STASH]  # type: ignore[no-any-return]
    current = current_session()
    entry = current.pop(_KEY, None) if _KEY in current else None
    values[STASH] = entry
    return entry


def state_for(key: str) -> FormState:
    entry = take()
    if entry is None or entry.get("k") != key:
        return EMPTY_STATE
    return FormState(
        values=entry.get("v") or {}, errors=entry.get("e") or {}, message=entry.get("m")
    )


def state_for_form(
    endpoint: str, bound: Mapping[str, Any] | None, form_id: str | None = None
) -> FormState:
    """:func:`state_for` of the form of ``endpoint`` with ``bound`` (and its own ``id=``);
    without a stash in this request (the usual case) it costs no key computation."""
    if take() is None:
        return EMPTY_STATE
    return state_for(form_key(endpoint, bound, form_id))


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())
