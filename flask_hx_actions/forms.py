"""Template globals: ``action_form``, ``field``, ``old``, ``field_errors``, ``fragment``,
``hx_actions_head``, and the error markup the htmx answers reuse.

``action_form`` is a plain Python function (Jinja passes ``caller=`` to it in a call block): pages
render one per row, so it builds its HTML directly with markupsafe instead of rendering a
template each time, and renders the body of its call block without Jinja's general macro call
(:func:`call_block_body`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, request, url_for
from flask.globals import _cv_app, _cv_request
from flask_wtf.csrf import generate_csrf
from jinja2.runtime import Macro
from markupsafe import Markup, escape

from . import oldinput, security
from .context import current_app_object, flags
from .signing import freeze_scalars, remember

if TYPE_CHECKING:
    from .actions import Action
    from .extension import HxState

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
#: ``Markup(text)`` of a ``str``, without ``Markup.__new__`` (Python code that looks for an
#: ``__html__`` a ``str`` does not have): once per form and per fragment a page renders.
as_markup: Callable[[str], Markup] = functools.partial(str.__new__, Markup)
#: Strings that are the same escaped or not (no & < > " ').
_SAFE = re.compile(r"[A-Za-z0-9_:.-]+\Z")
#: The ``v=`` of the script URLs, per file: see :func:`asset_version`.
_ASSET_VERSIONS: dict[str, str] = {}


# -- ids -----------------------------------------------------------------------------------------


def id_part(value: Any) -> str:
    """One value in a DOM id: characters outside ``[A-Za-z0-9_-]`` become ``-``."""
    if type(value) is int:  # the common case (row ids): already safe
        return str(value)
    return _ID_UNSAFE.sub("-", str(value))


_BASE_IDS: dict[str, str] = {}


def form_dom_id(endpoint: str, bound: Mapping[str, Any] | None, params: Sequence[str]) -> str:
    """``hx-todos-rename-7``: the action's endpoint and its bound values."""
    base = _BASE_IDS.get(endpoint)
    if base is None:
        base = _BASE_IDS[endpoint] = "hx-" + _ID_UNSAFE.sub(
            "-", endpoint.replace(".", "-").replace("_", "-")
        )
    if not bound:
        return base
    parts = [id_part(bound[p]) for p in params if p in bound]
    return "-".join([base, *parts])


def slot_id(form_id: str, name: str) -> str:
    return f"{form_id}-{_ID_UNSAFE.sub('-', name)}"


# -- error markup (page and htmx answers) --------------------------------------------------------


def humanise(name: str) -> str:
    return name.replace("_", " ").replace(".", " ").strip().capitalize() or name


def error_summary(
    form_id: str,
    errors: Mapping[str, Sequence[str]],
    message: str | None,
    labels: Mapping[str, str],
    *,
    oob: bool = False,
) -> Markup:
    """The form's error summary: the message, non-field errors and every field error as a link."""
    items: list[str] = []
    for name, messages in errors.items():
        for text in messages:
            if name == "_form":
                items.append(f"<li>{escape(text)}</li>")
            else:
                label = labels.get(name) or humanise(name)
                items.append(
                    f'<li><a href="#{escape(slot_id(form_id, name))}">{escape(label)}: '
                    f"{escape(text)}</a></li>"
                )
    inner = ""
    if message or items:
        shown = message or "Please correct the errors below."
        inner = f'<p class="hx-errors-message">{escape(shown)}</p>'
        if items:
            inner += f"<ul>{''.join(items)}</ul>"
    swap = ' hx-swap-oob="innerHTML"' if oob else ""
    return Markup(
        f'<div id="{escape(form_id)}-errors" class="hx-errors" role="alert"{swap}>{inner}</div>'
    )


def error_slot(form_id: str, name: str, messages: Sequence[str], *, oob: bool = False) -> Markup:
    """The slot under one input where its errors appear (``<form id>-<name>-error``)."""
    text = " ".join(str(m) for m in messages)
    swap = ' hx-swap-oob="innerHTML"' if oob else ""
    return Markup(
        f'<span id="{escape(slot_id(form_id, name))}-error" class="hx-field-error"'
        f' data-hx-field-error="{escape(name)}"{swap}>{escape(text)}</span>'
    )


# -- action_form ---------------------------------------------------------------------------------


class _FormContext:
    __slots__ = ("action", "form_id", "state")

    def __init__(self, action: Action, form_id: str, state: oldinput.FormState) -> None:
        self.action = action
        self.form_id = form_id
        self.state = state


def _hx_state() -> HxState:
    return current_app_object().extensions["hx_actions"]  # type: ignore[no-any-return]


def _action(state: HxState, endpoint: str) -> Action:
    try:
        return state.actions[endpoint]
    except KeyError:
        raise LookupError(
            f"action_form({endpoint!r}): no action is registered at that endpoint "
            f"(known: {sorted(state.actions)})."
        ) from None


#: The name, on Flask's request context, of its form plans by endpoint (see :func:`action_form`).
_REQUEST_PLANS = "_hx_form_plans"
_NO_STASH = object()

#: Entries of the per-(endpoint, script root) memos (``state.url_cache``, ``state.form_plans``):
#: the script root comes from the environ (``SCRIPT_NAME``, a proxy's prefix), so they are bounded.
_PLANS_MAX = 2048


def action_url(state: HxState, endpoint: str) -> str:
    key = (endpoint, request.script_root)
    url = state.url_cache.get(key)
    if url is None:
        url = url_for(endpoint)
        remember(state.url_cache, key, url, _PLANS_MAX)
    return url


class _Marks:
    """Markers that cached fragments hold where per-render values go (CSRF token, idempotency
    key); they are replaced by fresh values each time the HTML is served. They are derived from
    the app's secret key, so every worker and machine sharing a Redis cache reads the same
    markers, and user content cannot forge them."""

    __slots__ = ("csrf", "key", "pattern", "stem")

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self.stem = hmac.new(raw, b"hx-actions.placeholders", hashlib.sha256).hexdigest()[:20]
        self.key = f"hx-key-{self.stem}"
        self.csrf = f"hx-csrf-{self.stem}"
        self.pattern = re.compile(f"hx-(key|csrf)-{self.stem}")


def _marks(app: Any) -> _Marks:
    marks: _Marks | None = app.extensions.get("hx_actions_marks")
    if marks is None:
        marks = app.extensions["hx_actions_marks"] = _Marks(app.secret_key or "")
    return marks


def has_placeholders(app: Any, html: str) -> bool:
    """True when ``html`` (a cached fragment) holds markers: it renders an action form."""
    return _marks(app).stem in html


def fill_placeholders(html: str, *, marked: bool = False) -> str:
    """Cached HTML with its markers replaced: a fresh idempotency key for each key marker, this
    request's CSRF token for each token marker. ``marked``: :func:`has_placeholders` said so.

    In an htmx answer to a page that sends its own token (see :func:`hidden_inputs`), the token
    inputs are left out, as a render for that request leaves them out: the answer is as small,
    and no token is signed for it."""
    app = current_app_object()
    marks = _marks(app)
    if not marked and marks.stem not in html:
        return html
    pieces = html.split(marks.key)
    if len(pieces) > 1:
        keys = [security.fresh_key() for _ in range(len(pieces) - 1)]
        html = pieces[0] + "".join(k + p for k, p in zip(keys, pieces[1:], strict=True))
    if marks.csrf in html:
        if flags().get("_hx_csrf_by_header"):
            html = html.replace(_csrf_placeholder_input(app, marks), "")
        if marks.csrf in html:  # a marker outside the library's own input
            html = html.replace(marks.csrf, _csrf_value(app))
    return html


def _csrf_placeholder_input(app: Any, marks: _Marks) -> str:
    """The CSRF input a cached form holds, with the token's marker for its value."""
    field_name = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    return f'<input type="hidden" name="{escape(field_name)}" value="{marks.csrf}">'


def _csrf_value(app: Any) -> str:
    """This request's CSRF token, escaped (empty with CSRF off), computed once per request."""
    values = flags()
    value: str | None = values.get("_hx_csrf_value")
    if value is None:
        enabled = app.config.get("WTF_CSRF_ENABLED", True)
        value = values["_hx_csrf_value"] = str(escape(generate_csrf())) if enabled else ""
    return value


#: The name in ``g`` of the CSRF input this request's forms carry (:func:`_csrf_part`), computed
#: once per request (Flask-WTF's token is per request too).
_CSRF_PART = "_hx_csrf_part"


def hidden_inputs(
    action: Action,
    bind: Mapping[str, Any] | None,
    next_url: str | None,
    *,
    app: Any = None,
    state: HxState | None = None,
    frozen: tuple[Any, ...] | None = None,
    request_flags: dict[str, Any] | None = None,
) -> str:
    """The hidden inputs every action form carries: CSRF token, idempotency key, bound args.

    The CSRF input is left out of forms re-rendered in an htmx answer when the request carried
    the page's valid token (the ``_hx_csrf`` field or the ``X-CSRFToken`` header): that page sends
    the token from its meta tag.
    ``frozen``: ``signing.freeze_scalars(bind)``, and ``request_flags``: ``context.flags()``,
    when the caller has them already.
    """
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    if state is None:
        state = _hx_state()
    if request_flags is None:
        request_flags = flags()
    placeholders = request_flags.get("_hx_placeholders")
    request_flags["_hx_form_rendered"] = True
    # The session exists (its id created) before the first submit, bind or not: an anonymous
    # user's retried submit then finds its idempotency key under the same session.
    signing = security.request_signing(request_flags)
    if placeholders:  # cached HTML serves every kind of request: always with the token
        enabled = app.config.get("WTF_CSRF_ENABLED", True)
        marks = _marks(app)
        csrf = _csrf_placeholder_input(app, marks) if enabled else ""
        key = marks.key
    else:
        known: str | None = request_flags.get(_CSRF_PART)
        if known is None:
            known = request_flags[_CSRF_PART] = _csrf_part(app, request_flags)
        csrf = known
        key = security.fresh_key()
    html = f'{csrf}<input type="hidden" name="_hx_key" value="{key}">'
    if bind:
        token = security.sign_bound_for_request(app, state, action.endpoint, bind, frozen, signing)
        # itsdangerous' URL-safe tokens hold only [A-Za-z0-9_.-]: nothing to escape.
        html = f'{html}<input type="hidden" name="_hx_bound" value="{token}">'
    if next_url is not None:
        html = f'{html}<input type="hidden" name="next" value="{escape(next_url)}">'
        back = None if placeholders else _page_path()
        if back is not None:
            html = f'{html}<input type="hidden" name="_hx_back" value="{escape(back)}">'
    return html


def _csrf_part(app: Any, request_flags: dict[str, Any]) -> str:
    """The CSRF input of this request's forms: none with CSRF off, and none in an htmx answer to
    a page that sends the token as a header (hx-actions.js, from the meta tag): the page has it.
    Both are known before the first form renders (the token check comes before the body)."""
    if not app.config.get("WTF_CSRF_ENABLED", True) or request_flags.get("_hx_csrf_by_header"):
        return ""
    field_name = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    return f'<input type="hidden" name="{escape(field_name)}" value="{_csrf_value(app)}">'


def _page_path() -> str | None:
    """The path and query of the page being rendered (a GET other than the fragment endpoint),
    for ``responses.BACK_FIELD``; None for an action's answer or a fragment."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    if req.method != "GET" or req.endpoint == "hx_actions.fragment":
        return None
    query = req.query_string.decode("latin-1")
    return f"{req.path}?{query}" if query else str(req.path)


class _FormPlan:
    """What every ``action_form`` of one action shares: the start of its ``<form>`` tag (URL,
    ``data-hx-action``, multipart), its labels and its own fragment."""

    __slots__ = (
        "action",
        "bound_set",
        "fragment",
        "head",
        "head_end",
        "heads",
        "labels",
        "multipart",
        "target_safe",
        "url",
    )

    def __init__(self, state: HxState, action: Action, url: str) -> None:
        self.action = action
        self.url = url
        #: ``bind=`` with exactly these keys passes ``action.check_bind`` (None: always check).
        bound = action.bound_set
        self.bound_set = bound if action.required_bound <= bound else None
        self.fragment = state.fragment(action.fragment) if action.fragment is not None else None
        #: The own fragment's DOM ids need no escaping (its name is plain; values are sanitised).
        self.target_safe = self.fragment is not None and _SAFE.match(self.fragment.name) is not None
        validator = action.validator
        self.labels: Mapping[str, str] = validator.labels if validator else {}
        self.head = f' method="post" action="{escape(url)}" hx-post="{escape(url)}"'
        self.head_end = f' data-hx-action="{escape(action.endpoint)}"'
        self.multipart = validator is not None and validator.multipart
        #: (bound values, target, swap, id, tags) -> (form id, opening tag); see action_form.
        self.heads: dict[tuple[Any, ...], tuple[str, str]] = {}


def _plan(state: HxState, endpoint: str, script_root: str | None = None) -> _FormPlan:
    key = (endpoint, request.script_root if script_root is None else script_root)
    plan: _FormPlan | None = state.form_plans.get(key)
    if plan is None:
        action = _action(state, endpoint)
        plan = _FormPlan(state, action, action_url(state, endpoint))
        remember(state.form_plans, key, plan, _PLANS_MAX)
    return plan


def action_form(
    endpoint: str,
    *,
    bind: Mapping[str, Any] | None = None,
    target: str | None = None,
    swap: str | None = None,
    label: str | None = None,
    next: str | None = None,
    id: str | None = None,
    caller: Any = None,
    **attrs: Any,
) -> Markup:
    """A form that posts to the action ``endpoint``, with and without JavaScript.

    Use it as a call block around the fields, or alone with ``label=`` for a one-button action::

        {% call action_form("todos.add") %}{{ field("title", label="Title") }}
          <button>Add</button>{% endcall %}
        {{ action_form("todos.delete", bind={"id": t.id}, label="Delete") }}

    :param bind: the action's bound arguments (signed into one hidden input).
    :param target: htmx target (CSS selector); defaults to the action's own fragment region.
    :param swap: htmx swap style; ``outerHTML`` for the own fragment, ``none`` without one.
    :param label: text of a submit button rendered after the fields.
    :param next: where a plain form goes after success (same-origin paths only).
    :param id: the form's DOM id (default ``hx-<endpoint>-<bound values>``). Give one to each
        of several forms of one action and bound values on a page: a failed no-JS submit then
        shows its errors and typed values in the form that sent it only.
    :param attrs: more attributes: ``class_="x"`` -> ``class="x"``, ``hx_confirm=...`` ->
        ``hx-confirm=...``; ``True`` renders a bare attribute, ``False``/``None`` none.
    """
    app_ctx = _cv_app.get(None)
    request_ctx = _cv_request.get(None)
    if app_ctx is None or request_ctx is None:  # the ordinary errors outside a request
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        script_root = request.script_root
    else:
        app = app_ctx.app
        script_root = None
    request_flags: dict[str, Any] = app_ctx.g.__dict__  # type: ignore[union-attr]
    state = app.extensions["hx_actions"]
    # The plans of this request by endpoint: the script root is the request's, so one lookup
    # per row instead of reading it and keying the app-wide memo with it. Kept on the request
    # context (request contexts pushed in one app context share ``g``, not their script root).
    request_dict = request_ctx.__dict__
    plans: dict[str, _FormPlan] | None = request_dict.get(_REQUEST_PLANS)
    if plans is None:
        plans = request_dict[_REQUEST_PLANS] = {}
    plan = plans.get(endpoint)
    if plan is None:
        plan = plans[endpoint] = _plan(state, endpoint, script_root)
    action = plan.action
    if (bind or action.required_bound) and (
        bind is None or plan.bound_set is None or bind.keys() != plan.bound_set
    ):
        action.check_bind(bind or {})
    if request_flags.get(oldinput.STASH, _NO_STASH) is None:  # read: none this request
        form_state = oldinput.EMPTY_STATE
    else:
        form_state = oldinput.state_for_form(endpoint, bind, id)
    tags = _declared_tags(action, bind)
    frozen = freeze_scalars(bind) if not attrs else None
    if frozen is not None:
        head_key = (frozen, target, swap, id, tags)
        known = plan.heads.get(head_key)
        if known is None:
            known = _form_head(plan, endpoint, bind, target, swap, id, tags, attrs)
            remember(plan.heads, head_key, known, _HEADS_MAX)
    else:
        known = _form_head(plan, endpoint, bind, target, swap, id, tags, attrs)
    form_id, opening = known
    head = [
        opening,
        hidden_inputs(
            action, bind, next, app=app, state=state, frozen=frozen, request_flags=request_flags
        ),
    ]
    if id is not None:  # which of several forms of this action failed (oldinput.form_key)
        head.append(f'<input type="hidden" name="{oldinput.FORM_ID_FIELD}" value="{escape(id)}">')
    if form_state is not oldinput.EMPTY_STATE:  # old input after a no-JS failure
        head.append(error_summary(form_id, form_state.errors, form_state.message, plan.labels))
    # An empty summary is not rendered: only hx-actions.js uses it (as the target of error
    # answers), and it adds one to every action form htmx loads (docs/wire.md).

    body = ""
    if caller is not None:
        stack: list[_FormContext] = request_flags.setdefault("_hx_forms", [])
        stack.append(_FormContext(action, form_id, form_state))
        try:
            body = call_block_body(caller)
        finally:
            stack.pop()
    if body:
        head.append(body)
    if label is not None:
        head.append(f'<button type="submit">{escape(label)}</button>')
    head.append("</form>")
    return as_markup("".join(head))  # one join: a row's form is copied once, not once a part


def call_block_body(caller: Any) -> str:
    """``str(caller())``: the body of a ``{% call %}`` block. For Jinja's own ``Macro`` of a
    block that takes no arguments, its function is called directly, as ``Macro.__call__``
    ends up doing after sorting out arguments there are none of (a third of the cost of a row's
    form); anything else is called the ordinary way."""
    if (
        type(caller) is Macro
        and not caller.arguments
        and not caller.catch_kwargs
        and not caller.catch_varargs
        and not caller.caller
    ):
        env = getattr(caller, "_environment", None)
        func = getattr(caller, "_func", None)
        if env is not None and func is not None and not env.is_async:
            return str(func())  # Macro wraps it in Markup when autoescaping: the same text
    return str(caller())


#: Opening tags remembered per form plan (one per row on a page), oldest out first.
_HEADS_MAX = 4096


def _form_head(
    plan: _FormPlan,
    endpoint: str,
    bind: Mapping[str, Any] | None,
    target: str | None,
    swap: str | None,
    id: str | None,
    tags: frozenset[str],
    attrs: Mapping[str, Any],
) -> tuple[str, str]:
    """The form's DOM id and its opening tag."""
    action = plan.action
    if id:
        form_id = id
        head = [f'<form id="{escape(id)}"', plan.head]
    else:
        form_id = form_dom_id(endpoint, bind, action.bound_params)  # only [A-Za-z0-9_-]
        head = [f'<form id="{form_id}"', plan.head]
    fragment = plan.fragment
    if target is None and fragment is not None:
        params = {p: bind[p] for p in fragment.params if bind and p in bind}
        dom_id = fragment.dom_id(params)
        head.append(
            f' hx-target="#{dom_id}"' if plan.target_safe else f' hx-target="#{escape(dom_id)}"'
        )
        head.append(f' hx-swap="{escape(swap)}"' if swap else ' hx-swap="outerHTML"')
    else:
        if target:
            head.append(f' hx-target="{escape(target)}"')
        if target is None and not swap:
            swap = "none"
        if swap:
            head.append(f' hx-swap="{escape(swap)}"')
    head.append(plan.head_end)
    if tags:
        head.append(f' data-hx-tags="{escape(" ".join(sorted(tags)))}"')
    if plan.multipart:
        head.append(' enctype="multipart/form-data"')
    if attrs:
        head.append(render_attrs(attrs))
    head.append(">")
    return form_id, "".join(head)


def _declared_tags(action: Action, bind: Mapping[str, Any] | None) -> frozenset[str]:
    if action.tags_func is None:
        return action.static_tags
    available = bind or {}
    if available.keys() >= action.tags_param_set:
        return action.tags_for(available)
    return action.static_tags


def render_attrs(attrs: Mapping[str, Any]) -> str:
    out = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        if value is True:
            out.append(f" {escape(name)}")
        else:
            out.append(f' {escape(name)}="{escape(value)}"')
    return "".join(out)


# -- fields --------------------------------------------------------------------------------------


def _current_form(helper: str) -> _FormContext:
    stack: list[_FormContext] = flags().get("_hx_forms") or []
    if not stack:
        raise RuntimeError(f"{helper}() must be used inside {{% call action_form(...) %}}.")
    return stack[-1]


def old(name: str) -> str:
    """The value the user typed into ``name`` before a failed no-JS submit (or ``""``)."""
    return _current_form("old").state.old(name)


def old_list(name: str) -> list[str]:
    """Every value the user sent for ``name`` before a failed no-JS submit (checkboxes of one
    name, a multiple select), or ``[]``."""
    return list(_current_form("old_list").state.old_list(name))


def field_errors(name: str) -> Markup:
    """The error slot of ``name`` (with its errors): put it under a hand-written input."""
    form = _current_form("field_errors")
    return error_slot(form.form_id, name, form.state.errors.get(name, ()))


def field(
    name: str,
    label: str | None = None,
    type: str = "text",
    *,
    options: Iterable[tuple[Any, Any]] | None = None,
    value: Any = None,
    **attrs: Any,
) -> Markup:
    """A labelled input with its old value, its errors and the aria attributes that tie them.

    ``type`` is an input type, or ``"textarea"`` / ``"select"`` (with ``options=[(value, label)]``;
    with ``multiple=True`` every old value is selected, and ``value`` may be a list).
    ``value`` is the initial value when there is no old input. Passwords and files never get a
    value back.
    """
    form = _current_form("field")
    input_id = slot_id(form.form_id, name)
    errors = form.state.errors.get(name, ())
    labels = form.action.validator.labels if form.action.validator else {}
    shown_label = label if label is not None else labels.get(name) or humanise(name)
    has_old = form.state.has_old(name)
    current = form.state.old(name) if has_old else ("" if value is None else str(value))
    common = f' id="{escape(input_id)}" name="{escape(name)}"'
    common += f' aria-describedby="{escape(input_id)}-error"'
    if errors:
        common += ' aria-invalid="true"'
    common += render_attrs(attrs)
    if type == "textarea":
        # The HTML parser drops one newline right after <textarea>: this one, not the value's.
        control = f"<textarea{common}>\n{escape(current)}</textarea>"
    elif type == "select":
        if has_old:
            chosen = set(form.state.old_list(name))
        elif isinstance(value, list | tuple | set | frozenset):
            chosen = {str(v) for v in value}
        else:
            chosen = {current}
        opts = "".join(
            f'<option value="{escape(v)}"{" selected" if str(v) in chosen else ""}>'
            f"{escape(text)}</option>"
            for v, text in (options or ())
        )
        control = f"<select{common}>{opts}</select>"
    elif type == "checkbox":
        # After a failed submit, a box it did not carry was unchecked (stashed as []).
        stashed = name in form.state.values
        checked = bool(form.state.old(name)) if stashed else bool(value)
        control = f'<input type="checkbox"{common} value="on"{" checked" if checked else ""}>'
    elif type in ("password", "file"):
        control = f'<input type="{type}"{common}>'
    else:
        control = f'<input type="{escape(type)}"{common} value="{escape(current)}">'
    label_html = f'<label for="{escape(input_id)}">{escape(shown_label)}</label>'
    inner = f"{control} {label_html}" if type == "checkbox" else f"{label_html}{control}"
    slot = error_slot(form.form_id, name, errors)
    return Markup(f'<div class="hx-field">{inner}{slot}</div>')


# -- fragments and head --------------------------------------------------------------------------


#: Set by hx-actions.js: this browser runs JavaScript, so lazy fragments may load after the page.
JS_COOKIE = "hx_js"


def fragment(name: str, *, lazy: bool = False, **params: Any) -> Markup:
    """Render the registered fragment ``name`` inside its region element.

    ``lazy=True`` renders an empty placeholder that htmx fills from the fragment endpoint once
    the page has loaded (the Suspense equivalent), for browsers known to run JavaScript (the
    ``hx_js`` cookie hx-actions.js sets); any other browser gets the fragment inline.

    Keywords that name the fragment function's keyword-only parameters are given values
    (``fragment("todo", id=t.id, todo=t)``: the row the list loaded already), passed to the
    function and nothing else; the others are the region's parameters. A lazy placeholder
    drops them: the endpoint renders the fragment from its parameters alone.
    """
    app_ctx = _cv_app.get(None)
    app = current_app_object() if app_ctx is None else app_ctx.app  # the usual error outside
    state: HxState = app.extensions["hx_actions"]
    frag = state.fragments.get(name) or state.fragment(name)  # the latter raises the error
    kwargs = None  # the function's keywords, when the call gives it values
    if params.keys() != frag.param_set:  # else every parameter given, none unknown
        row = frag.one_param  # a row given its object: split_given's first case, inline
        if row is not None and params.keys() == frag.call_set:
            kwargs, params = params, {row: params[row]}
        else:
            params, kwargs = frag.split_given(params)
    if frag.per_user:  # a cached fragment around this one checks it (fragments.cached_inner)
        flags()["_hx_per_user"] = name
    if (frag.login_required or frag.authorize is not None) and not frag.allowed(
        params, state.identity()
    ):
        return Markup(
            f'<{frag.element} id="{escape(frag.dom_id(params))}"'
            f' data-hx-fragment="{escape(name)}"></{frag.element}>'
        )
    if lazy and request.cookies.get(JS_COOKIE) == "1":
        # The region's own opening tag (with the parameters and tags of a parametrised one, so
        # the ``_hx_regions`` field names it while it loads), then what makes htmx load it.
        from .fragments import plain_params  # fragments imports this module

        query: dict[str, Any] = plain_params(params)
        url = url_for("hx_actions.fragment", name=name, **query)
        head = frag.opening_tag(params)
        return Markup(
            f'{head[:-1]} hx-get="{escape(url)}" hx-trigger="load" hx-swap="outerHTML"'
            f' aria-busy="true"></{frag.element}>'
        )
    return frag.region(params, app=app, kwargs=kwargs)


def asset_version(app: Flask, filename: str) -> str:
    """The first 12 hex digits of the SHA-256 of one of the library's static files: a browser
    that cached an earlier htmx or hx-actions.js (whose wire format may differ) loads the new
    one, since the URL changed with the content. Read once per file, or on every call in debug
    mode, where the file may change while the app runs."""
    folder = app.blueprints["hx_actions"].static_folder
    if folder is None:  # pragma: no cover - the extension always sets it
        raise RuntimeError("the hx_actions blueprint has no static folder")
    path = os.path.join(folder, filename)
    version = None if app.debug else _ASSET_VERSIONS.get(path)
    if version is None:
        with open(path, "rb") as file:
            version = hashlib.sha256(file.read()).hexdigest()[:12]
        _ASSET_VERSIONS[path] = version
    return version


def hx_actions_head() -> Markup:
    """The CSRF meta tag and the script tags of htmx and hx-actions.js (put it in ``<head>``)."""
    app = current_app
    parts = []
    if app.config.get("WTF_CSRF_ENABLED", True):
        parts.append(f'<meta name="csrf-token" content="{escape(generate_csrf())}">')
    for filename in ("htmx.min.js", "hx-actions.js"):
        src = url_for("hx_actions.static", filename=filename, v=asset_version(app, filename))
        parts.append(f'<script src="{escape(src)}" defer></script>')
    return Markup("".join(parts))
