"""Building the answer to an action request, one function per row of the response table.

| request | success | failure | redirect | not found | exception |
| plain   | 303     | 303 back (errors in session) | 303 | 404 page | 500 page |
| htmx    | 200 fragments (+OOB) | 422 OOB error slots | 200 + HX-Redirect | 404 slots | 500 slots |
| json    | 200 object | 422 object | 200 {redirect} | 404 object | 500 object |
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import Flask, Response, abort, current_app, g, jsonify, render_template, request
from werkzeug.datastructures import Headers

from . import forms
from .context import OWN_ORIGIN, current_request, flags, form_value
from .fragments import Fragment, FragmentError, cache_key, parse_region_token
from .headers import append_built, environ_key
from .htmx import hx_redirect, reswap
from .results import Result
from .security import fresh_key, own_origin, safe_target
from .signing import remember
from .transactions import reads_after_commit

if TYPE_CHECKING:
    from .actions import Action
    from .errors import ActionRefused
    from .extension import HxState

#: The form field hx-actions.js sends the page's regions in (docs/wire.md); the header is still
#: read when the field is absent (clients of earlier versions, scripts).
REGIONS_FIELD = "_hx_regions"
REGIONS_HEADER = "HX-Actions-Regions"
_REGIONS_KEY = environ_key(REGIONS_HEADER)  # read from the environ (see headers.py)
#: On every answer to an htmx request for an action; on its answers that end a submit (2xx
#: without ``HX-Redirect``, and the 422 of a reused key) it carries the form's next idempotency
#: key too: ``HX-Actions: 1; key=<fresh key>`` (docs/wire.md).
ACTIONS_HEADER = "HX-Actions"
_KEY_PARAMETER = re.compile(r";\s*key=([A-Za-z0-9_-]+)")
#: The form field of a plain form's target after success (``action_form(next=...)``).
NEXT_FIELD = "next"
#: The page a form with ``next=`` was rendered on: where a failed no-JS submit goes back to when
#: the browser sends no ``Referer`` (a page with ``Referrer-Policy: no-referrer``), rather than
#: to ``next``, the page that says it worked.
BACK_FIELD = "_hx_back"
_DOM_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_:.-]{0,200}$")
_SERVER_ERROR = "Something went wrong on our side. Please try again."


# -- where a plain form goes ---------------------------------------------------------------------


def _own(app: Flask) -> str:
    """The app's origin: the one the origin gate computed for this request, else computed."""
    own: str | None = flags().get(OWN_ORIGIN)
    if own is None:
        own = own_origin(current_request(), app.config["HX_ACTIONS_ORIGIN"])
    return own


def _next_and_referrer() -> tuple[str | None, str | None]:
    """The form's ``next`` and the ``Referer`` header, read without Werkzeug's lookups, which
    raise and catch an exception when the value is absent (``next`` usually is)."""
    req = current_request()
    return form_value(req.form, NEXT_FIELD), req.environ.get("HTTP_REFERER")


def success_target(app: Flask) -> str:
    """After success: the form's safe ``next``, else the page the form was on, else the default."""
    own = _own(app)
    next_url, referrer = _next_and_referrer()
    return (
        safe_target(next_url, own)
        or safe_target(referrer, own)
        or app.config["HX_ACTIONS_DEFAULT_REDIRECT"]
    )


def back_target(app: Flask) -> str:
    """After a failure: back to the page the form was on (its ``Referer``, else the page the
    form says it was rendered on), else ``next``, else the default."""
    own = _own(app)
    next_url, referrer = _next_and_referrer()
    return (
        safe_target(referrer, own)
        or safe_target(form_value(current_request().form, BACK_FIELD), own)
        or safe_target(next_url, own)
        or app.config["HX_ACTIONS_DEFAULT_REDIRECT"]
    )


#: A ``Location`` that Werkzeug's ``iri_to_uri`` gives back unchanged: a path on this site (not
#: ``//``), then an optional non-empty query, made only of the characters it leaves unquoted
#: there. ``tests/test_see_other.py`` checks both claims against Werkzeug itself.
_URI_AS_IS = re.compile(
    r"/(?![/\\])[A-Za-z0-9\-._~%!$&'()*+,/:;=@]*(?:\?[A-Za-z0-9\-._~%!$&'()*+,/:;=?@]+)?"
)


class Answer(Response):
    """The library's own answers: fragments, errors and the 303 of a plain form.

    Werkzeug copies every response's headers when it sends them (``get_wsgi_headers``, one
    checked ``add`` per header, about 2 µs for an htmx answer's six), to pass ``Location`` and
    ``Content-Location`` through ``iri_to_uri`` (about 25,000 instructions for ``/``, 2 % of a
    no-JS submit: it splits the URL, reads its host, port and user, and quotes each part), fix
    up a relative location, drop body headers of a 1xx, 204 or 304 and set a missing
    ``Content-Length``. When none of that applies (:meth:`sent_as_is`: a ``Location``, if any,
    that ``iri_to_uri`` returns unchanged, :data:`_URI_AS_IS`; no ``Content-Location``; a
    ``Content-Length``; a status that keeps its body headers; no location fix-up), the headers
    sent are the answer's own, listed without the copy. Any other answer goes through
    Werkzeug's own methods.
    """

    @classmethod
    def html(cls, body: str, status: int = 200) -> Answer:
        """``cls(body, status=status, mimetype="text/html")``: the same status, headers and body,
        built with the content type given whole and the body's length appended (Werkzeug's
        constructor looks the mimetype up and sets ``Content-Length`` through ``Headers.set``,
        which walks the header list and checks the value)."""
        response = cls(status=status, content_type=_HTML)
        data = body.encode()
        response.response = [data]
        if response.automatically_set_content_length:
            append_built(response.headers, [("Content-Length", str(len(data)))])
        return response

    def sent_as_is(self) -> bool:
        """True when Werkzeug's ``get_wsgi_headers`` would send these headers unchanged."""
        status = self.status_code
        if self.autocorrect_location_header or status < 200 or status in (204, 304):
            return False
        locations = 0
        length = as_is = False
        for key, value in self.headers:
            lower = key.lower()
            if lower == "location":  # Werkzeug writes it back as "Location"
                locations += 1
                as_is = key == "Location" and _URI_AS_IS.fullmatch(value) is not None
            elif lower == "content-length":
                length = True
            elif lower == "content-location":
                return False
        return length and (locations == 0 or (locations == 1 and as_is))

    def get_wsgi_headers(self, environ: Any) -> Any:
        if self.sent_as_is():
            return Headers(self.headers)
        return super().get_wsgi_headers(environ)

    def get_wsgi_response(self, environ: Any) -> Any:
        if not self.sent_as_is():
            return super().get_wsgi_response(environ)
        return self.get_app_iter(environ), self.status, self.headers.to_wsgi_list()


def see_other(location: str) -> Response:
    # The content type given whole: without one, Werkzeug looks for a Content-Type header that
    # is not there, which raises and catches an exception.
    response = Answer(b"", status=303, content_type=_HTML)  # with its Content-Length
    if "\r" in location or "\n" in location:
        response.headers["Location"] = location  # Werkzeug refuses it (ValueError)
    else:  # the response has no Location yet, and the value no line break: appended as is
        append_built(response.headers, [("Location", location)])
    return response


_HTML = "text/html; charset=utf-8"


# -- success -------------------------------------------------------------------------------------


def success(
    app: Flask,
    state: HxState,
    action: Action,
    kind: str,
    args: Mapping[str, Any],
    bound: Mapping[str, Any],
    result: Result,
    tags: set[str],
) -> Response:
    """``tags``: every tag the action invalidated (declared and passed to ``revalidate``).
    Called once the action's transaction ended (committed; or rolled back, for a replay's
    re-render): the fragments read the committed state (``transactions.reads_after_commit``)."""
    if result.kind == "redirect":
        location = result.redirect or "/"
        if kind == "plain":
            return see_other(location)
        if kind == "json":
            return jsonify({"ok": True, "redirect": location})
        return hx_redirect(Answer("", status=200), location)
    if kind == "plain":
        return plain_success(app)
    if kind == "json":
        return jsonify({"ok": True, "code": None, "data": dict(result.data)})
    with reads_after_commit(app):
        return htmx_success(state, action, args, tags)


def plain_success(app: Flask) -> Response:
    """A plain form's answer to ``ok``: 303 to the form's ``next`` or the page it was on. It
    depends on the request only (the SQL idempotency store keeps it with the claim)."""
    return see_other(success_target(app))


def htmx_success(
    state: HxState, action: Action, args: Mapping[str, Any], invalidated: set[str] | frozenset[str]
) -> Response:
    """The action's own fragment, then every invalidated region the page holds, out-of-band."""
    parts: list[str] = []
    seen: set[str] = set()
    if action.fragment is not None:
        own = state.fragment(action.fragment)
        params = _own_params(action, own, args)
        seen.add(own.dom_id(params))
        parts.append(own.region(params))
    if invalidated:
        identity = state.identity()
        for fragment, items, dom_id, static_tags in _candidates(state):
            if dom_id in seen:
                continue
            params = dict(items)
            tags = fragment.tags(params) if static_tags is None else static_tags
            if not (tags & invalidated):
                continue
            if not fragment.allowed(params, identity):
                continue  # as on a page: a region the user may not see is not sent
            seen.add(dom_id)
            parts.append(fragment.region(params, oob=True))
    response = Answer.html("".join(parts))
    if action.fragment is None:
        reswap(response, "none")
    return response  # its HX-Actions header, with the form's next key: pipeline.finish_response


def actions_header(renew_key: bool) -> str:
    """The value of ``HX-Actions``: ``1``, with a fresh idempotency key for the submitting form
    when ``renew_key`` (hx-actions.js puts it into the form's ``_hx_key`` when the answer did not
    re-render the form)."""
    return f"1; key={fresh_key()}" if renew_key else "1"


def answer_key(headers: Any) -> str | None:
    """The fresh idempotency key an htmx answer carries in ``HX-Actions``, if any. ``headers``:
    Werkzeug's ``Headers``, or a dict of them (also with lower-case names, as browsers give)."""
    value = headers.get(ACTIONS_HEADER) or headers.get(ACTIONS_HEADER.lower())
    match = _KEY_PARAMETER.search(value) if value else None
    return match.group(1) if match else None


def _own_params(action: Action, fragment: Fragment, args: Mapping[str, Any]) -> dict[str, Any]:
    missing = fragment.required - set(args)
    if missing:
        raise TypeError(
            f"action {action.endpoint!r} re-renders fragment {fragment.name!r}, which needs "
            f"{sorted(missing)}; give the action parameters with those names."
        )
    return {p: args[p] for p in fragment.params if p in args}


class Candidate(NamedTuple):
    """A region the page holds: its fragment, its parameters (as items), its DOM id, and its
    tags when they do not depend on the parameters (``None`` when they do)."""

    fragment: Fragment
    items: tuple[tuple[str, Any], ...]
    dom_id: str
    static_tags: frozenset[str] | None

    @classmethod
    def of(cls, fragment: Fragment, params: Mapping[str, Any]) -> Candidate:
        return cls(
            fragment,
            tuple(params.items()),
            fragment.dom_id(params),
            fragment.static_tags if fragment.tags_func is None else None,
        )


def _candidates(state: HxState) -> tuple[Candidate, ...]:
    """Regions to consider for out-of-band refresh: those the page says it holds (the
    ``_hx_regions`` field hx-actions.js adds, or the ``HX-Actions-Regions`` header), else every
    non-parametrised fragment. A page sends the same list with every submit of a form: what
    each region needs to be skipped (its DOM id, its static tags) is kept with the parsed list."""
    req = current_request()
    header = form_value(req.form, REGIONS_FIELD)
    if header is None:
        header = req.environ.get(_REGIONS_KEY)
    if header is None:
        return tuple(Candidate.of(f, {}) for f in state.fragments.values() if not f.parametrised)
    if len(header) > _REGION_LISTS_HEADER_MAX:
        return tuple(Candidate.of(f, params) for f, params in _parse_regions(state, header))
    known = state.region_lists.get(header)
    if known is None:
        known = tuple(Candidate.of(f, params) for f, params in _parse_regions(state, header))
        remember(state.region_lists, header, known, _REGION_LISTS_MAX)
    return known


#: Parsed region lists (``_hx_regions``), remembered per app (a page sends the same list for
#: the same form again and again); bounded in count and in the length of a list, which is
#: untrusted input.
_REGION_LISTS_MAX = 256
_REGION_LISTS_HEADER_MAX = 4096


def _parse_regions(state: HxState, header: str) -> list[tuple[Fragment, dict[str, Any]]]:
    out: list[tuple[Fragment, dict[str, Any]]] = []
    for token in header.split()[:200]:
        name, raw = parse_region_token(token)
        fragment = state.fragments.get(name)
        if fragment is None:
            continue
        try:
            out.append((fragment, fragment.convert(raw)))
        except FragmentError:
            continue  # untrusted input: a region we cannot name is not refreshed
    return out


# -- the fragment endpoint ---------------------------------------------------------------------


def fragment_endpoint(name: str) -> Response:
    """``GET /_hx/fragments/<name>?<params>``: one fragment for the current user, under the
    fragment's own authorization, with an ETag from its tags' versions (304 when unchanged;
    never for fragments holding forms, whose idempotency keys must be fresh)."""
    state: HxState = current_app.extensions["hx_actions"]
    fragment = state.fragments.get(name)
    if fragment is None:
        abort(404)
    try:
        params = fragment.convert(request.args.to_dict())
    except FragmentError as exc:
        abort(400, description=str(exc))
    identity = state.identity()
    if not fragment.allowed(params, identity):
        abort(401 if identity is None else 403)
    etag = _fragment_etag(state, fragment, params)
    if etag is not None and request.if_none_match.contains_weak(etag):
        response = Answer(status=304)
    else:
        g._hx_form_rendered = False
        response = Answer.html(fragment.region(params))
        if g.get("_hx_form_rendered"):
            state.fragment_forms.add(fragment.name)
            etag = None
    if etag is not None:
        response.set_etag(etag)
    response.headers["Cache-Control"] = "private, no-cache"
    response.vary.add("Cookie")
    response.vary.add("HX-Request")
    return response


def _fragment_etag(state: HxState, fragment: Fragment, params: Mapping[str, Any]) -> str | None:
    if fragment.name in state.fragment_forms:
        return None
    # Scoped to the user unless the fragment is cache="global", like its cache key.
    return cache_key(fragment, params)


# -- failures --------------------------------------------------------------------------------------


def failure_body(result: Result) -> dict[str, Any]:
    return {
        "ok": False,
        "code": result.code,
        "message": result.message,
        "errors": {k: list(v) for k, v in result.errors.items()},
    }


def json_failure(result: Result) -> Response:
    response = jsonify(failure_body(result))
    response.status_code = result.status
    return response


def _form_id(action: Action | None, bound: Mapping[str, Any]) -> str | None:
    trigger: str | None = request.environ.get("HTTP_HX_TRIGGER")
    if trigger and _DOM_ID.match(trigger):
        return trigger
    if action is None:
        return None
    return forms.form_dom_id(action.endpoint, bound, action.bound_params)


def htmx_errors(app: Flask, action: Action, bound: Mapping[str, Any], result: Result) -> Response:
    """Only out-of-band error slots (summary + one per field), so typed values, focus and caret
    stay as they are."""
    form_id = _form_id(action, bound) or ""
    validator = action.validator
    labels = validator.labels if validator else {}
    parts = [forms.error_summary(form_id, result.errors, result.message, labels, oob=True)]
    names = list(validator.input_names) if validator else []
    names += [n for n in result.errors if n not in names and n != "_form"]
    for name in names:
        parts.append(forms.error_slot(form_id, name, result.errors.get(name, ()), oob=True))
    response = Answer.html("".join(parts), result.status)
    return reswap(response, "none")


def htmx_message(status: int, message: str) -> Response:
    """A message for the submitting form's error summary (out-of-band), with ``HX-Reswap: none``
    and an ``hx-actions:error`` client event."""
    form_id = _form_id(None, {})
    body = ""
    if form_id:
        body = str(forms.error_summary(form_id, {}, message, {}, oob=True))
    response = Answer.html(body, status)
    response.headers["HX-Trigger"] = json.dumps(
        {"hx-actions:error": {"status": status, "message": message}}
    )
    return reswap(response, "none")


def json_message(status: int, code: str, message: str | None) -> Response:
    response = jsonify({"ok": False, "code": code, "message": message})
    response.status_code = status
    return response


def json_refusal(error: ActionRefused) -> Response:
    return json_message(error.code or 400, error.hx_code, error.description)


def htmx_refusal(error: ActionRefused) -> Response:
    return htmx_message(error.code or 400, error.description or "Refused.")


def server_error(kind: str, request_id: str) -> Response:
    """A generic 500: the exception text is never shown, the request id always is."""
    message = f"{_SERVER_ERROR} (request id {request_id})"
    if kind == "json":
        response = jsonify(
            {
                "ok": False,
                "code": "server_error",
                "message": _SERVER_ERROR,
                "request_id": request_id,
            }
        )
        response.status_code = 500
        return response
    if kind == "htmx":
        return htmx_message(500, message)
    html = render_template(
        "hx_actions/error.html", status=500, message=_SERVER_ERROR, request_id=request_id
    )
    return Answer.html(html, 500)
