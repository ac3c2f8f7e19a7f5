"""The fragment registry: named regions of a page, each a template (or one block of one) plus a
function that returns its context, and the tags that invalidate it.

A region is rendered inside its own element (``id`` = DOM id, ``data-hx-fragment`` = name), so the
same markup serves the first page, the action's own swap and out-of-band refreshes.

Rendering cost: a page may render hundreds of fragments (one per row), so a fragment's template
is rendered through ``app.jinja_env`` directly rather than ``flask.render_template``. The
difference is one documented shortcut: the app's template context processors (and Flask's
``g``/``request``/``session``/``config``) run **once per request**, the first time a fragment is
rendered, and that context is reused for every later fragment of the same request; the values a
fragment function returns still win over it, as with ``render_template``. Flask's
``before_render_template`` / ``template_rendered`` signals are still sent, per fragment, whenever
they have receivers (then the fragment is rendered by ``render_template`` itself).
"""

from __future__ import annotations

import hashlib
import inspect
import re
import types
import typing
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal
from urllib.parse import parse_qsl, quote_plus, urlencode

from flask import Flask, current_app, g, render_template
from flask.signals import before_render_template, template_rendered
from markupsafe import Markup, escape

from . import forms, oldinput, security, signals
from .context import TEMPLATE_CONTEXT, current_app_object, flags, request_values
from .signing import freeze_scalars, remember
from .tag_memo import MEMO_MAX, memo_key, new_memo

TagsSpec = Iterable[str] | Callable[..., Iterable[str]] | None
CacheScope = Literal["user", "global"]

# Elements the HTML parser drops or moves when they stand alone: out-of-band copies of them
# travel inside <template>, as htmx's hx-swap-oob documentation describes for tables.
_TABLE_PARTS = frozenset(
    {"tr", "td", "th", "thead", "tbody", "tfoot", "colgroup", "caption", "col"}
)
_ABSENT = object()
_ELEMENT = re.compile(r"^[a-z][a-z0-9-]*$")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class FragmentError(LookupError):
    """A fragment name is unknown or its parameters are wrong."""


@dataclass(frozen=True, slots=True)
class Fragment:
    """A registered fragment (see :meth:`ActionsBlueprint.fragment`)."""

    name: str
    func: Callable[..., Any]
    template: str | None
    block: str | None
    element: str
    static_tags: frozenset[str]
    tags_func: Callable[..., Iterable[str]] | None
    tags_params: tuple[str, ...]
    params: tuple[str, ...]
    required: frozenset[str]
    converters: Mapping[str, Callable[[str], Any]]
    cache: CacheScope | None = None
    login_required: bool = False
    authorize: Callable[..., bool | None] | None = None
    #: The function's keyword-only parameters: values a template may give the function when it
    #: renders the region (``fragment("todo", id=t.id, todo=t)``), never part of the region's
    #: identity (DOM id, tags, cache key, endpoint URL) and never taken from a client.
    given: tuple[str, ...] = ()
    #: Precomputed per fragment (see ``__post_init__``): the parameter names as a set, the
    #: start and the ``data-hx-fragment`` attribute of the region tag, each parameter's
    #: URL-encoded name, whether ``func`` is a plain (non-coroutine) function, the
    #: parameter names ``authorize`` takes and whether the tags function takes its parameters
    #: by position (``tags_from``).
    param_set: frozenset[str] = field(init=False, repr=False, compare=False)
    #: The parameter names and the given values' names together.
    call_set: frozenset[str] = field(init=False, repr=False, compare=False)
    #: The one parameter's name, for a fragment with one parameter and given values (a row).
    one_param: str | None = field(init=False, repr=False, compare=False)
    _open: str = field(init=False, repr=False, compare=False)
    _close: str = field(init=False, repr=False, compare=False)
    _name_attr: str = field(init=False, repr=False, compare=False)
    _quoted: Mapping[str, str] = field(init=False, repr=False, compare=False)
    _sync: bool = field(init=False, repr=False, compare=False)
    _authorize_params: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _tags_by_position: bool = field(init=False, repr=False, compare=False)
    #: The tags function's answers per parameter values, when it reads only them (``tag_memo``).
    _tags_memo: dict[Any, frozenset[str]] | None = field(init=False, repr=False, compare=False)
    #: What this fragment shows depends on the user (``cache="user"``, ``login_required=``,
    #: ``authorize=``): a ``cache="global"`` fragment must not render it.
    per_user: bool = field(init=False, repr=False, compare=False)
    #: (parameters, tags, oob) -> the region's opening tag and DOM id, for rows rendered again
    #: and again (bounded, oldest out first).
    _heads: dict[tuple[Any, ...], tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "param_set", frozenset(self.params))
        setattr_(self, "call_set", self.param_set | frozenset(self.given))
        one = self.params[0] if len(self.params) == 1 and self.given else None
        setattr_(self, "one_param", one)
        setattr_(self, "_open", f'<{self.element} id="')
        setattr_(self, "_close", f"</{self.element}>")
        setattr_(self, "_name_attr", f'" data-hx-fragment="{escape(self.name)}"')
        setattr_(self, "_quoted", {p: str(escape(quote_plus(p))) for p in self.params})
        setattr_(self, "_sync", not inspect.iscoroutinefunction(self.func))
        setattr_(self, "_authorize_params", _param_names(self.authorize) if self.authorize else ())
        setattr_(self, "_heads", {})
        by_position = self.tags_func is not None and takes_by_position(self.tags_func)
        setattr_(self, "_tags_by_position", by_position)
        setattr_(self, "_tags_memo", new_memo(self.tags_func, by_position))
        setattr_(
            self,
            "per_user",
            self.cache == "user" or self.login_required or self.authorize is not None,
        )

    @classmethod
    def build(
        cls,
        name: str,
        func: Callable[..., Any],
        *,
        template: str | None,
        block: str | None,
        tags: TagsSpec,
        element: str,
        cache: CacheScope | None = None,
        login_required: bool = False,
        authorize: Callable[..., bool | None] | None = None,
    ) -> Fragment:
        if cache not in (None, "user", "global"):
            raise ValueError(f"fragment {name!r}: cache= must be None, 'user' or 'global'.")
        if not _ELEMENT.match(element):
            raise ValueError(f"fragment {name!r}: element={element!r} is not an HTML tag name.")
        if template is None and block is not None:
            raise ValueError(f"fragment {name!r}: block= needs template=.")
        signature = inspect.signature(func)
        params: list[str] = []
        given: list[str] = []
        required: set[str] = set()
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"fragment {name!r}: *args / **kwargs are not supported.")
            if param.kind is param.KEYWORD_ONLY:
                if param.default is param.empty:
                    raise TypeError(
                        f"fragment {name!r}: the keyword-only parameter {param.name!r} is a given"
                        " value, which a re-render after an action or the fragment endpoint does"
                        " not pass: give it a default."
                    )
                given.append(param.name)
                continue
            params.append(param.name)
            if param.default is param.empty:
                required.add(param.name)
        try:
            hints = typing.get_type_hints(func)
        except Exception:
            hints = {}
        converters = {p: _converter(hints.get(p, str)) for p in params}
        tags_func = tags if callable(tags) else None
        static = frozenset() if tags is None or callable(tags) else frozenset(_check_tags(tags))
        tags_params = _param_names(tags_func) if tags_func else ()
        tagged_given = set(tags_params) & set(given)
        if tagged_given:
            raise TypeError(
                f"fragment {name!r}: the tags function takes the given value(s)"
                f" {sorted(tagged_given)}; tags come from the parameters only."
            )
        return cls(
            name=name,
            func=func,
            template=template,
            block=block,
            element=element,
            static_tags=static,
            tags_func=tags_func,
            tags_params=tags_params,
            params=tuple(params),
            required=frozenset(required),
            converters=converters,
            cache=cache,
            login_required=login_required,
            authorize=authorize,
            given=tuple(given),
        )

    @property
    def parametrised(self) -> bool:
        return bool(self.params)

    def dom_id(self, params: Mapping[str, Any]) -> str:
        if not self.params:
            return self.name
        parts = [_id_part(params.get(p, "")) for p in self.params]
        return "-".join([self.name, *parts])

    def tags(self, params: Mapping[str, Any]) -> frozenset[str]:
        if self.tags_func is None:
            return self.static_tags
        return tags_from(
            self.static_tags,
            self.tags_func,
            self.tags_params,
            params,
            self._tags_by_position,
            self._tags_memo,
        )

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against the signature, as a dict (``params`` itself if it is one)."""
        if params.keys() == self.param_set:  # every parameter given, none unknown
            return params if type(params) is dict else dict(params)
        unknown = set(params) - set(self.params)
        missing = self.required - set(params)
        if unknown or missing:
            takes = f"takes {list(self.params)}"
            if self.given:
                takes += f" (and may be given {list(self.given)} by a template)"
            raise FragmentError(
                f"fragment {self.name!r} {takes}; "
                f"missing {sorted(missing)}, unknown {sorted(unknown)}."
            )
        return dict(params)

    def split_given(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A template's call ``fragment(name, **values)`` as the region's parameters (checked)
        and the function's keyword arguments when the call gives values (the parameters and the
        given values; ``None`` when it gives none)."""
        if values.keys() == self.call_set:  # every parameter and every given value
            return {name: values[name] for name in self.params}, values
        if values.keys().isdisjoint(self.given):
            return self.check_params(values), None
        params = {name: value for name, value in values.items() if name not in self.given}
        return self.check_params(params), values

    def convert(self, raw: Mapping[str, str]) -> dict[str, Any]:
        """Untrusted string parameters (from a client) through the function's type hints."""
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in self.converters:
                raise FragmentError(f"fragment {self.name!r} has no parameter {key!r}.")
            try:
                out[key] = self.converters[key](value)
            except (TypeError, ValueError, ArithmeticError):  # Decimal("x"): InvalidOperation
                raise FragmentError(f"fragment {self.name!r}: bad value for {key!r}.") from None
        params = self.check_params(out)
        if self.tags_func is not None:
            # A value that makes no valid tag (a str with a space: "item:a b") is bad input
            # too, not a 500 from the tag check later (after an action's commit).
            try:
                self.tags(params)
            except ValueError:
                raise FragmentError(f"fragment {self.name!r}: bad parameter values.") from None
        return params

    def render_inner(
        self,
        params: Mapping[str, Any],
        head: str = "",
        tail: str = "",
        app: Any = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> str:
        """The fragment's template rendered with its context, between ``head`` and ``tail`` (the
        region's opening and closing tags, joined with the template's output in one go).
        ``app``: the current app, when the caller has it already; ``kwargs``: the function's
        keyword arguments when a template gave it values (:meth:`split_given`), else ``params``.
        """
        if app is None:
            app = current_app_object()
        call = params if kwargs is None else kwargs
        if self._sync and type(app).ensure_sync is Flask.ensure_sync:
            context = self.func(**call)  # what ensure_sync returns for a plain function
        else:
            context = app.ensure_sync(self.func)(**call)
        if context is None:
            context = {}
        if type(context) is not dict and not isinstance(context, Mapping):
            raise TypeError(
                f"fragment {self.name!r}: the function must return a dict (the template context),"
                f" not {type(context).__name__}."
            )
        if self.template is None:
            raise TypeError(f"fragment {self.name!r} has no template=.")
        if self.block is not None:
            from jinja2_fragments.flask import render_block

            inner = str(render_block(self.template, self.block, **context))
        elif before_render_template.receivers or template_rendered.receivers:
            inner = render_template(self.template, **context)
        else:
            return _render(app, self.template, context, head, tail)
        return f"{head}{inner}{tail}" if head or tail else inner

    def allowed(self, params: Mapping[str, Any], identity: Any) -> bool:
        """The fragment's own authorization (``login_required=``, ``authorize=``)."""
        if self.login_required and identity is None:
            return False
        if self.authorize is not None:
            call = {k: params[k] for k in self._authorize_params if k in params}
            return current_app.ensure_sync(self.authorize)(**call) is not False
        return True

    def region(
        self,
        params: Mapping[str, Any],
        *,
        oob: bool = False,
        app: Any = None,
        kwargs: Mapping[str, Any] | None = None,
    ) -> Markup:
        """The fragment rendered inside its region element. ``app``: the current app, when the
        caller has it already; ``kwargs``: the function's keyword arguments when a template gave
        it values (:meth:`split_given`)."""
        tags = self.tags(params)
        names = self.params
        if len(names) == 1 and len(params) == 1:  # a row: its one value is the memo's key
            one = params.get(names[0], _ABSENT)
            frozen: Any = None if one is _ABSENT else memo_key(one)
        else:
            frozen = freeze_scalars(params)  # never a key of the other kind (see memo_key)
        if frozen is None:
            head, dom_id = self._head(params, tags, oob)
        else:
            key = (frozen, tags, oob)
            known = self._heads.get(key)
            if known is None:
                known = self._head(params, tags, oob)
                remember(self._heads, key, known, _HEADS_MAX)
            head, dom_id = known
        if self.cache is None:
            html = self.render_inner(params, head, self._close, app, kwargs)
        else:
            html = f"{head}{cached_inner(self, params, tags, kwargs)}{self._close}"
        if oob and self.element in _TABLE_PARTS:
            html = f"<template>{html}</template>"
        if signals.fragment_rendered.receivers:
            signals.fragment_rendered.send(
                current_app._get_current_object(),  # type: ignore[attr-defined]
                name=self.name,
                params=dict(params),
                dom_id=dom_id,
                oob=oob,
            )
        return forms.as_markup(html)

    def opening_tag(self, params: Mapping[str, Any]) -> str:
        """The region element's opening tag, as :meth:`region` renders it (not out-of-band)."""
        return self._head(params, self.tags(params), False)[0]

    def _head(self, params: Mapping[str, Any], tags: frozenset[str], oob: bool) -> tuple[str, str]:
        """The region's opening tag and its DOM id."""
        dom_id = self.dom_id(params)
        # dom_id holds only [A-Za-z0-9_-] plus the name: escape() changes nothing there unless
        # the name has a character it escapes.
        head = [self._open, str(escape(dom_id)), self._name_attr]
        if self.params:
            head.append(f' data-hx-fragment-params="{self._params_attr(params)}"')
            if tags:
                head.append(f' data-hx-tags="{escape(" ".join(sorted(tags)))}"')
        if oob:
            head.append(' hx-swap-oob="true"')
        head.append(">")
        return "".join(head), dom_id

    def _params_attr(self, params: Mapping[str, Any]) -> str:
        """``escape(urlencode(plain_params(params)))``; int values (row ids) without the generic
        path."""
        quoted = self._quoted
        parts = []
        for key, value in params.items():
            name = quoted.get(key)
            if name is None or type(value) is not int:
                return str(escape(urlencode(plain_params(params))))
            parts.append(f"{name}={value}")
        return "&amp;".join(parts)


def _base_context(app: Any) -> dict[str, Any]:
    """What every template of this request starts from: the environment's globals, then what
    Flask adds (``g``, ``request``, ``session``, ``config``, the app's and blueprints' context
    processors), computed once per request (see the module docstring). Kept on the request
    context, not in ``g``, which it holds (see ``context.request_values``)."""
    values = request_values()
    if values is None:
        values = flags()
    base: dict[str, Any] | None = values.get(TEMPLATE_CONTEXT)
    if base is not None:
        return base
    flask_context: dict[str, Any] = {}
    app.update_template_context(flask_context)
    base = dict(app.jinja_env.globals)
    base.update(flask_context)
    values[TEMPLATE_CONTEXT] = base
    return base


def _render(app: Any, name: str, context: Mapping[str, Any], head: str = "", tail: str = "") -> str:
    """``head + render_template(name, **context) + tail`` with the per-request base context.

    The base context (globals, Flask's values, context processors: one dict per request) is the
    template context's parent, which Jinja only reads, and the fragment's own values are the
    context's variables, which Jinja looks up first: nothing is copied per row of a list. The
    template's output is joined once, with ``head`` and ``tail`` (the region's tags) around it:
    a row's HTML is not copied again to wrap it."""
    # Flask's jinja_env is a werkzeug cached_property, whose __get__ is Python code (once per
    # row): its value, once computed, is in the app's __dict__.
    env = app.__dict__.get("jinja_env") or app.jinja_env
    template, plain = _template(env, name)
    if env.is_async or not plain:  # template globals: the ordinary way
        full = dict(_base_context(app))
        full.update(context)
        inner = str(template.render(full))
        return f"{head}{inner}{tail}" if head or tail else inner
    template_context = env.context_class(env, _base_context(app), template.name, template.blocks)
    template_context.vars.update(context)
    try:
        if head or tail:
            return env.concat(  # type: ignore[no-any-return]
                [head, *template.root_render_func(template_context), tail]
            )
        return env.concat(template.root_render_func(template_context))  # type: ignore[no-any-return]
    except Exception:
        env.handle_exception()
        raise  # pragma: no cover - handle_exception always raises


#: Templates a fragment renders, per environment, while templates are not auto-reloaded.
_TEMPLATES_MAX = 1024


def _template(env: Any, name: str) -> tuple[Any, bool]:
    """``env.get_or_select_template(name)``, and whether it has no globals of its own
    (:func:`_plain_globals`), remembered on the environment while it does not auto-reload
    templates: Jinja's own cache takes a lock and reorders its LRU list on every lookup, once
    per row of a list."""
    if env.auto_reload:
        template = env.get_or_select_template(name)
        return template, _plain_globals(template, env)
    memo: dict[str, tuple[Any, Any, bool]] | None = env.__dict__.get("_hx_templates")
    if memo is None:
        memo = env.__dict__.setdefault("_hx_templates", {})
    known = memo.get(name)
    if known is not None and known[0] is env.loader:
        return known[1], known[2]
    template = env.get_or_select_template(name)
    plain = _plain_globals(template, env)
    remember(memo, name, (env.loader, template, plain), _TEMPLATES_MAX)
    return template, plain


def _plain_globals(template: Any, env: Any) -> bool:
    """True when the template has no globals of its own (only the environment's)."""
    template_globals = template.globals
    return (
        isinstance(template_globals, ChainMap)
        and len(template_globals.maps) == 2
        and not template_globals.maps[0]
        and template_globals.maps[1] is env.globals
    )


def cache_key(
    fragment: Fragment, params: Mapping[str, Any], tags: frozenset[str] | None = None
) -> str:
    """Fragment, parameters, versions of its tags and the user scope (everyone for
    ``cache="global"``, else this session and user), hashed. ``tags``: the fragment's tags for
    these parameters, when the caller has them already."""
    app = current_app_object()
    state = app.extensions["hx_actions"]
    ordered = sorted(fragment.tags(params) if tags is None else tags)
    versions = state.tag_versions.get(ordered)
    scope = "*" if fragment.cache == "global" else security.session_binding(state.identity())
    numbers = tuple(versions[t] for t in ordered)
    frozen = freeze_scalars(params)
    known = None if frozen is None else (fragment.name, frozen, tuple(ordered), numbers, scope)
    if known is not None:
        found = _CACHE_KEYS.get(known)
        if found is not None:
            return found
    # repr() of strings and ints is unambiguous: no two different keys share a text.
    raw = repr((fragment.name, tuple(sorted(plain_params(params).items())), numbers, scope))
    key = hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
    if known is not None:
        remember(_CACHE_KEYS, known, key, _CACHE_KEYS_MAX)
    return key


#: Keys computed for recent (fragment, parameters, tags, versions, scope): a cached page asks
#: for the key of every row on every request. Bounded; oldest out first.
_CACHE_KEYS: dict[tuple[Any, ...], str] = {}
_CACHE_KEYS_MAX = 16384


def cached_inner(
    fragment: Fragment,
    params: Mapping[str, Any],
    tags: frozenset[str] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The fragment's HTML from the cache, with per-render values (CSRF token, idempotency keys)
    filled in now: cached HTML holds placeholders for them.

    A fragment one of whose tags this request bumped (an action's answer) is rendered, neither
    looked up (its key is new) nor stored: the page swaps it in, and the page's next full render
    stores it. That saves the answer a cache write (a Redis round trip) that a page updated in
    place would seldom read. A per-user fragment on the page after a failed no-JS submit is
    rendered the same way: its forms show that submit's errors, once.

    Inside the render of another cached fragment the placeholders are left for that one to fill
    when it is served (its cached HTML must not keep this render's token and keys), and HTML
    served from the cache tells the caller it holds a form, as rendering it would have."""
    app = current_app_object()
    state = app.extensions["hx_actions"]
    tags = fragment.tags(params) if tags is None else tags
    values = flags()
    bumped = values.get("_hx_bumped_tags")
    renewed = bumped is not None and not bumped.isdisjoint(tags)  # its key is new: no lookup
    if renewed and not values.get("_hx_placeholders"):
        return _rendered_uncached(state, fragment, params, kwargs)
    if fragment.cache == "user" and oldinput.take() is not None:
        # The page after a failed no-JS submit: its forms show that submit's errors and typed
        # values, which the cached HTML does not hold and must not keep for the next pages.
        return _rendered_uncached(state, fragment, params, kwargs)
    key = cache_key(fragment, params, tags)
    html: str | None = None if renewed else state.fragment_cache.get(key)
    if html is None:
        previous, previous_form = g.get("_hx_placeholders"), g.get("_hx_form_rendered", False)
        previous_user = values.get("_hx_per_user")
        g._hx_placeholders = True
        g._hx_form_rendered = False
        values["_hx_per_user"] = None
        try:
            html = fragment.render_inner(params, kwargs=kwargs)
        finally:
            g._hx_placeholders = previous
            has_form = g.get("_hx_form_rendered", False)
            g._hx_form_rendered = previous_form or has_form
            per_user = values.get("_hx_per_user")
            values["_hx_per_user"] = previous_user or per_user
        if per_user is not None and fragment.cache == "global":
            raise TypeError(
                f"fragment {fragment.name!r} (cache='global') renders fragment {per_user!r},"
                " whose content depends on the user: cache it with cache='user' or not at all."
            )
        if has_form:
            state.fragment_forms.add(fragment.name)
            if fragment.cache == "global":
                raise TypeError(
                    f"fragment {fragment.name!r} renders an action_form, whose CSRF token and "
                    "bound arguments belong to one session: use cache='user', not 'global'."
                )
        state.fragment_cache.set(key, html, int(app.config["HX_ACTIONS_FRAGMENT_CACHE_TTL"]))
        if values.get("_hx_placeholders"):
            return html
        return forms.fill_placeholders(html)
    if not forms.has_placeholders(app, html):
        return html
    values["_hx_form_rendered"] = True
    state.fragment_forms.add(fragment.name)
    if values.get("_hx_placeholders"):
        return html
    return forms.fill_placeholders(html, marked=True)


def _rendered_uncached(
    state: Any,
    fragment: Fragment,
    params: Mapping[str, Any],
    kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The fragment rendered for this request only, its forms noted as a cached render notes
    them."""
    previous_form = g.get("_hx_form_rendered", False)
    g._hx_form_rendered = False
    try:
        html = fragment.render_inner(params, kwargs=kwargs)
    finally:
        has_form = g.get("_hx_form_rendered", False)
        g._hx_form_rendered = previous_form or has_form
    if has_form:
        state.fragment_forms.add(fragment.name)
    return html


def parse_region_token(token: str) -> tuple[str, dict[str, str]]:
    """``"todo?id=7"`` -> ``("todo", {"id": "7"})`` (a token of the ``_hx_regions`` field)."""
    name, _, query = token.partition("?")
    return name, dict(parse_qsl(query, keep_blank_values=True)) if query else {}


_HEADS_MAX = 4096


def plain_params(params: Mapping[str, Any]) -> dict[str, str]:
    """The parameters as they travel (region attributes, lazy URLs, cache keys): an enum member
    as its value (what its converter reads back), anything else as ``str()``."""
    return {k: str(v.value) if isinstance(v, Enum) else str(v) for k, v in params.items()}


def _id_part(value: Any) -> str:
    if type(value) is int:  # row ids: already safe
        return str(value)
    return _ID_UNSAFE.sub("-", str(value))


# \s matches exactly the characters for which str.isspace() is true.
_SPACE = re.compile(r"\s")


#: Tags already checked (bounded: cleared when full), so a row's tags are checked once.
_GOOD_TAGS: set[str] = set()


def tags_from(
    static: frozenset[str],
    func: Callable[..., Iterable[str]],
    names: tuple[str, ...],
    values: Mapping[str, Any],
    by_position: bool = False,
    memo: dict[Any, frozenset[str]] | None = None,
) -> frozenset[str]:
    """``static`` and the tags ``func`` gives for the ``names`` it takes from ``values`` (the
    tags of a fragment for its parameters, of an action for its arguments).

    ``by_position`` (see :func:`takes_by_position`): when ``values`` has every name, ``func`` is
    called with them in order, the same call without building a keyword dict (tag functions run
    once per row of a page); otherwise with the ones present as keywords, so defaults apply.
    ``memo``: for a ``func`` that reads only its arguments (:mod:`.tag_memo`), the answers for
    argument values seen before, given every name by position."""
    if by_position and len(names) == 1:  # tags=lambda id: [...], the usual case
        name = names[0]
        if name in values:
            value = values[name]
            key = None if memo is None else memo_key(value)
            if memo is not None and key is not None:
                known = memo.get(key)
                if known is not None:
                    return known
            found = tag_set(func(value))
            if static:
                found = static | found
            if memo is not None and key is not None:
                remember(memo, key, found, MEMO_MAX)
            return found
    args: tuple[Any, ...] | None = None
    if by_position:
        try:
            args = tuple(map(values.__getitem__, names))
        except KeyError:
            args = None
    key = None
    if args is not None:
        if memo is not None:
            keys = tuple(map(memo_key, args))
            key = None if None in keys else keys
            if key is not None:
                known = memo.get(key)
                if known is not None:
                    return known
        found = tag_set(func(*args))
    else:
        found = tag_set(func(**{k: values[k] for k in names if k in values}))
    if static:
        found = static | found
    if memo is not None and key is not None:
        remember(memo, key, found, MEMO_MAX)
    return found


def takes_by_position(func: Callable[..., Any]) -> bool:
    """True when every parameter :func:`_param_names` lists for ``func`` can be passed by
    position, in that order (no keyword-only ones)."""
    return all(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def tag_set(tags: Iterable[str]) -> frozenset[str]:
    """``frozenset(_check_tags(tags))``: tags seen before pass with one subset test."""
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of strings, not the string {tags!r}.")
    found = frozenset(tags)
    if found <= _GOOD_TAGS:  # only checked str tags are in it
        return found
    return frozenset(_check_tags(found))


def _check_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of strings, not the string {tags!r}.")
    out = list(tags)
    good = _GOOD_TAGS
    for tag in out:
        if type(tag) is str and tag in good:
            continue
        if not isinstance(tag, str) or not tag or _SPACE.search(tag):
            raise ValueError(f"a tag must be a non-empty string without spaces, not {tag!r}.")
        if len(good) >= 65536:
            good.clear()
        good.add(str(tag))
    return out


def _param_names(func: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def _to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "on", "yes"):
        return True
    if lowered in ("0", "false", "off", "no", ""):
        return False
    raise ValueError(value)


def _converter(hint: Any) -> Callable[[str], Any]:
    """How a parameter's text (from a region's attributes or the fragment endpoint's query) is
    read back into what :func:`plain_params` wrote: by the parameter's type hint, with ``X | None``
    read as ``X``. A value the hint refuses raises ``ValueError`` (or ``TypeError``,
    ``ArithmeticError``), which :meth:`Fragment.convert` turns into a ``FragmentError``."""
    hint = _optional_of(hint)
    if hint is bool:
        return _to_bool
    if hint is int:
        return _to_int
    if hint in (float, str):
        return typing.cast(Callable[[str], Any], hint)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return _enum_converter(hint)
        if issubclass(hint, datetime):
            return datetime.fromisoformat  # str(datetime) is ISO with a space: it reads back
        if issubclass(hint, date):
            return date.fromisoformat
        return typing.cast(Callable[[str], Any], hint)  # UUID, Decimal...
    return str


#: The range of a signed 64-bit integer: what a database id column holds. A client's larger
#: number would reach the app's query (SQLite raises ``OverflowError``: a 500), so it is refused.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _to_int(value: str) -> int:
    number = int(value)
    if not _INT_MIN <= number <= _INT_MAX:
        raise ValueError(value)
    return number


def _optional_of(hint: Any) -> Any:
    """``X`` for ``X | None`` and ``Optional[X]``; any other hint as it is."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _enum_converter(enum: type[Enum]) -> Callable[[str], Any]:
    """An enum member from the text of its value (``Color.RED`` travels as ``red`` or ``1``)."""
    members = {str(member.value): member for member in enum}

    def convert(value: str) -> Any:
        try:
            return members[value]
        except KeyError:
            raise ValueError(value) from None

    return convert
