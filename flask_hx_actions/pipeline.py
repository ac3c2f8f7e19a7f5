"""The request lifecycle of an action, top to bottom.

:func:`gate` runs as the app's first ``before_request`` hook, before any other hook can read the
body: 1. size limits, 2. origin gate, 3. CSRF token. Step 4 (which action) is Flask's routing: an
unknown action is its 404 and a GET its 405. The action's view, :func:`run`, then reads the
idempotency key (400 when malformed) and does 5. bound arguments, 6. validation,
7. authorization, 8.-10. the body in a transaction, 11. revalidation and 12. the answer. A
refused request stops at its step: no user code ran and nothing was written.
"""

from __future__ import annotations

import contextvars
import functools
import io
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, unquote_plus

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" error handler
from flask import Flask, Request, Response, current_app, has_app_context, request
from flask.globals import _cv_app
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import ClientDisconnected, NotFound, RequestEntityTooLarge
from werkzeug.sansio.utils import get_content_length

from . import idempotency, oldinput, responses, security, sessions, signals
from .context import (
    OWN_ORIGIN,
    current_app_object,
    current_request,
    flags,
    forget_identity,
    form_value,
    request_values,
)
from .errors import (
    ActionRefused,
    BoundArgumentsInvalid,
    ContentTooLarge,
    InvalidUpload,
    NotAuthenticated,
    NotAuthorized,
)
from .headers import add_vary, append_built, put_headers
from .htmx import request_kind
from .results import Result, invalid, ok
from .signing import remember
from .transactions import transaction

if TYPE_CHECKING:
    from .actions import Action
    from .extension import HxState

log = logging.getLogger("flask_hx_actions")

BOUND_FIELD = "_hx_bound"

_collected_tags: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "hx_actions_tags", default=None
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: In ``g``: a refusal spent the form's idempotency key (``ActionRefused.renews_key``), so its
#: htmx answer gives the form a fresh one (:func:`finish_response`).
_RENEW_KEY = "_hx_renew_key"


# -- before_request: steps 1-3 -------------------------------------------------------------------


def gate() -> None:
    """Steps 1-3 for requests routed to an action; other requests pass untouched."""
    app = current_app_object()
    state: HxState = app.extensions["hx_actions"]
    req = current_request()
    action = state.actions.get(req.endpoint or "")
    if action is None:
        return
    values = flags()
    values["_hx_action"] = action  # g._hx_action
    config = app.config
    limit_request_size(action, config, req)  # 1
    own = values[OWN_ORIGIN] = security.own_origin(req, config["HX_ACTIONS_ORIGIN"])
    security.check_origin(req, own, _trusted(config))  # 2
    _exempt_from_csrfprotect(app, state, req.endpoint or "")
    read_body(config, req)
    security.check_csrf(req, app, own)  # 3
    passed = request_values()
    if passed is not None:
        passed[_GATE_PASSED] = True


def limit_request_size(action: Action, config: Mapping[str, Any], req: Request) -> None:
    """413 from ``Content-Length`` before the body is read; limits for chunked bodies while read."""
    limit = action.max_content_length or config["HX_ACTIONS_MAX_CONTENT_LENGTH"]
    req.max_content_length = limit
    req.max_form_memory_size = config["HX_ACTIONS_MAX_FORM_MEMORY_SIZE"]
    req.max_form_parts = config["HX_ACTIONS_MAX_FORM_PARTS"]
    length = content_length(req)
    if length is not None and length > limit:
        raise ContentTooLarge(description=f"The submitted data is larger than {_size(limit)}.")
    if length is None and req.environ.get("wsgi.input_terminated"):
        buffer_chunked_body(limit)


def content_length(req: Request) -> int | None:
    """``req.content_length``, computed the way Werkzeug does from the environ's headers, and
    kept where Werkzeug's cached property keeps it (its own lookup goes through
    ``EnvironHeaders``, which raises and catches an exception for the absent
    ``Transfer-Encoding``). The usual value, plain ASCII digits without ``Transfer-Encoding``,
    is read without Werkzeug's regular expression."""
    cached = req.__dict__
    if "content_length" not in cached:
        environ = req.environ
        raw = environ.get("CONTENT_LENGTH")
        encoding = environ.get("HTTP_TRANSFER_ENCODING")
        if encoding is None and raw is not None and raw.isascii() and raw.isdigit():
            cached["content_length"] = int(raw)  # Werkzeug's answer for plain ASCII digits
        else:
            cached["content_length"] = get_content_length(
                http_content_length=raw, http_transfer_encoding=encoding
            )
    return cached["content_length"]  # type: ignore[no-any-return]


def buffer_chunked_body(limit: int) -> None:
    """A chunked body has no Content-Length: read at most ``limit + 1`` bytes now. Werkzeug's
    limited stream would otherwise end a urlencoded body silently at the limit, and the action
    would run on a truncated form."""
    environ = request.environ
    data = environ["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        raise ContentTooLarge(description=f"The submitted data is larger than {_size(limit)}.")
    environ["wsgi.input"] = io.BytesIO(data)  # still "terminated": it ends where the body ended


def read_body(config: Mapping[str, Any], req: Request) -> None:
    """Parse the form now, inside the limits, so a too-large body is a 413 from the library."""
    try:
        if _read_urlencoded(req):
            urlencoded = True
        elif _read_multipart(req):
            urlencoded = False
        else:
            req.form  # noqa: B018 - parses the body
            urlencoded = req.mimetype == _URLENCODED
    except RequestEntityTooLarge as exc:
        raise ContentTooLarge(description=exc.description) from None
    except ClientDisconnected:
        # Werkzeug's own is an HTML 400; this one answers JSON callers in JSON too.
        raise InvalidUpload(description=_INCOMPLETE_BODY) from None
    except ValueError:
        raise InvalidUpload() from None
    if urlencoded:
        # Werkzeug applies the per-field limit to multipart bodies only. A field's UTF-8 text is
        # at most three times the body's length (an undecodable byte becomes "%XX").
        limit = config["HX_ACTIONS_MAX_FORM_MEMORY_SIZE"]
        length = req.content_length
        if length is not None and limit is not None and length * 3 <= limit:
            return
        if limit is not None and any(
            len(v) * 4 > limit and len(v.encode()) > limit for _, v in req.form.items(multi=True)
        ):
            raise ContentTooLarge(description=f"A field is larger than {_size(limit)}.")


_URLENCODED = "application/x-www-form-urlencoded"
_INCOMPLETE_BODY = "The request ended before all of its data arrived."
_UNREADABLE_MULTIPART = (
    "The submitted form could not be read: it is incomplete (the upload was cut off) or malformed."
)


def _unread(req: Request) -> bool:
    """Nothing has read or parsed the body yet (no form, stream or cached data)."""
    d = req.__dict__
    return not ("form" in d or "stream" in d or getattr(req, "_cached_data", None) is not None)


def _read_urlencoded(req: Request) -> bool:
    """Parse a urlencoded body of known length the way Werkzeug does (``parse_qsl`` of the UTF-8
    text with Werkzeug's error handler; an empty form when the body is not UTF-8), without its
    stream wrappers and parser objects, which cost a small action more than the parsing: most
    action posts are this case. False (nothing read) for every other case, which Werkzeug
    handles."""
    if not _unread(req):
        return False
    d = req.__dict__
    environ = req.environ
    if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != _URLENCODED:
        return False
    length = req.content_length  # within the limit: limit_request_size checked it
    if length is None or current_app_object().debug:  # debug: Flask's files helper wants Werkzeug
        return False
    data = environ["wsgi.input"].read(length) if length else b""
    if len(data) < length:
        raise ClientDisconnected()
    cls = req.parameter_storage_class
    items = _form_items(data)
    if cls is ImmutableMultiDict:
        d["stream"], d["form"], d["files"] = io.BytesIO(), _immutable_form(items), _NO_FILES
    else:
        d["stream"], d["form"], d["files"] = io.BytesIO(), cls(items), cls()
    return True


#: The ``files`` of every urlencoded body: none, in a mapping nothing can change.
_NO_FILES: ImmutableMultiDict[str, Any] = ImmutableMultiDict()


def _immutable_form(items: list[tuple[str, str]]) -> ImmutableMultiDict[str, str]:
    """``ImmutableMultiDict(items)``: the same mapping of each name to the list of its values
    (which :func:`~.context.form_value` reads too), grouped here without the constructor's
    per-item ``setdefault`` calls."""
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        values = grouped.get(name)
        if values is None:
            grouped[name] = [value]
        else:
            values.append(value)
    form: ImmutableMultiDict[str, str] = ImmutableMultiDict.__new__(ImmutableMultiDict)
    dict.update(form, grouped)
    return form


def _read_multipart(req: Request) -> bool:
    """Parse a multipart body with Werkzeug's parser, inside the request's limits, as
    ``req.form`` would, except that a body that cannot be parsed (cut before its closing
    boundary, or malformed) is an :class:`InvalidUpload` rather than an empty form, which the
    CSRF check would then refuse as a missing token. False (nothing read) for every other
    body."""
    if not _unread(req) or req.mimetype != "multipart/form-data":
        return False
    d = req.__dict__
    parser = req.make_form_data_parser()
    parser.silent = False  # Werkzeug's own parse reads an unparsable body as an empty form
    try:
        parsed = parser.parse(req.stream, req.mimetype, req.content_length, req.mimetype_params)
    except ValueError:
        raise InvalidUpload(description=_UNREADABLE_MULTIPART) from None
    d["stream"], d["form"], d["files"] = parsed
    return True


def _form_items(data: bytes) -> list[tuple[str, str]]:
    """``parse_qsl`` of the UTF-8 text with Werkzeug's error handler (an empty form when the
    body is not UTF-8). An ASCII body is split here, and only the fields that hold a ``%`` or a
    ``+`` are unquoted, the way ``parse_qsl`` unquotes them: hidden inputs, ids and tokens, most
    of an action post, have nothing to unquote."""
    if data.isascii():
        items = []
        for part in data.decode("ascii").split("&"):
            if part:
                name, _, value = part.partition("=")
                if name == responses.REGIONS_FIELD:
                    value = _regions_unquoted(value)
                elif "%" in part or "+" in part:
                    name, value = _unquoted(name), _unquoted(value)
                items.append((name, value))
        return items
    try:
        return parse_qsl(data.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
    except ValueError:
        return []


def _unquoted(text: str) -> str:
    """``unquote_plus`` with Werkzeug's error handler, as ``parse_qsl`` unquotes each part."""
    if "%" not in text:
        return text.replace("+", " ")
    return unquote_plus(text, errors="werkzeug.url_quote")


#: Unquoted values of recent ``_hx_regions`` fields: hx-actions.js sends the same value (with
#: ``%3F`` and ``+``) for every submit of a form. Only that field: a memo of user input would
#: keep what users typed in the process. Bounded in count and value length.
_REGIONS_UNQUOTED: dict[str, str] = {}
_REGIONS_UNQUOTED_MAX = 256
_REGIONS_UNQUOTED_LENGTH_MAX = 1024


def _regions_unquoted(text: str) -> str:
    if "%" not in text or len(text) > _REGIONS_UNQUOTED_LENGTH_MAX:
        return _unquoted(text)
    found = _REGIONS_UNQUOTED.get(text)
    if found is None:
        found = _unquoted(text)
        remember(_REGIONS_UNQUOTED, text, found, _REGIONS_UNQUOTED_MAX)
    return found


def _exempt_from_csrfprotect(app: Flask, state: HxState, endpoint: str) -> None:
    # Flask-WTF's CSRFProtect would check the token a second time (and without the origin gate
    # first); the gate has checked it, so the action's view is exempt from CSRFProtect's hook.
    csrf = app.extensions.get("csrf")
    if csrf is not None and (csrf, endpoint) not in state.csrf_exempted:
        view = state.views[endpoint]
        csrf.exempt(f"{view.__module__}.{view.__name__}")
        state.csrf_exempted.add((csrf, endpoint))
        _skip_csrfprotect_hook_for_actions(app)


#: In :func:`~.context.request_values` (per request, where ``g`` may outlive one): this request
#: is an action request that passed steps 1-3.
_GATE_PASSED = "_hx_gate_passed"
#: The ``__qualname__`` of the ``before_request`` hook ``CSRFProtect.init_app`` registers.
_CSRFPROTECT_HOOK = "CSRFProtect.init_app.<locals>.csrf_protect"


def _skip_csrfprotect_hook_for_actions(app: Flask) -> None:
    """Put in place of CSRFProtect's ``before_request`` hook one that returns at once for a
    request the gate passed, and calls the original for every other request.

    For an action request the original can only return without doing anything: the gate has
    exempted the action's view before, and the hook's first step is to look that up. The
    lookup (about six context-local proxies) was about 58k instructions, 5 to 7 % of an action
    request in process. The hook is found by its name; when the app has not exactly one
    (Flask-WTF renamed it, or two ``CSRFProtect`` instances), nothing is replaced. Called from
    the gate, so the order in which the extensions were set up does not matter; replacing an
    item of the hook list while Flask walks it is safe (the walk reads it by index)."""
    funcs = app.before_request_funcs.get(None, [])
    if any(getattr(hook, "_hx_skips_actions", False) for hook in funcs):
        return
    found = [
        i for i, hook in enumerate(funcs) if getattr(hook, "__qualname__", "") == _CSRFPROTECT_HOOK
    ]
    if len(found) != 1:
        return
    original = funcs[found[0]]

    def csrf_protect_unless_action() -> Any:
        passed = request_values()
        if passed is not None and passed.get(_GATE_PASSED):
            return None
        return original()

    csrf_protect_unless_action.__wrapped__ = original  # type: ignore[attr-defined]
    csrf_protect_unless_action._hx_skips_actions = True  # type: ignore[attr-defined]
    funcs[found[0]] = csrf_protect_unless_action


_trusted_cache: dict[tuple[str, ...], frozenset[str]] = {}


def _trusted(config: Mapping[str, Any]) -> frozenset[str]:
    value = config["HX_ACTIONS_TRUSTED_ORIGINS"] or ()
    # One origin may be given as a plain string (not read as a sequence of characters).
    key = (value,) if isinstance(value, str) else tuple(value)
    found = _trusted_cache.get(key)
    if found is None:
        found = _trusted_cache[key] = security.trusted_origins(key)
    return found


# -- the view: steps 5-12 ------------------------------------------------------------------------


def make_view(action: Action) -> Callable[[], Response]:
    def view() -> Response:
        return run(action)

    # CSRFProtect exempts views by "module.name": every action view needs its own name.
    view.__name__ = f"hx_action_{action.name}_{id(action):x}"
    view.__qualname__ = view.__name__
    return view


def run(action: Action) -> Response:
    """Steps 5-12 of one action request."""
    app: Flask = current_app_object()
    state: HxState = app.extensions["hx_actions"]
    kind = request_kind(current_request())
    identity = state.identity()
    pending = (  # the key; 400 if malformed, before any user code (validators, authorize=)
        idempotency.prepare(app, action.endpoint, identity, kind) if action.idempotent else None
    )
    bound = read_bound(app, action, identity)  # 5
    values, errors = validate(action)  # 6
    if errors:
        return respond_failure(app, state, action, kind, bound, invalid(errors))
    args = action.call_args(bound, values)
    authorize(state, action, args, identity)  # 7
    claim: idempotency.Claim | None = None
    deferred: set[str] | None = None  # tags to increment with the claim's completion
    try:
        done = run_body(app, state, action, kind, args, bound, pending)  # 8-10
        result, tags, claim = done.result, done.tags, done.claim
        if claim is not None and claim.outcome != "new":
            return respond_again(app, state, action, kind, args, bound, claim)
        if result.ok:
            tags |= action.tags_for(args)
            if tags:
                if (
                    claim is not None
                    and not state.caches_fragments  # nothing rendered reads the versions
                    and idempotency.bumps_with(claim, state.tag_versions)
                ):
                    deferred = tags  # one round trip with the completion, below
                else:
                    state.tag_versions.bump(tags)
                flags()["_hx_bumped_tags"] = tags  # cached fragments with them are new renders
        if result.kind == "not_found":
            return respond_not_found(app, state, action, kind, bound, result)
        if not result.ok:
            return respond_failure(app, state, action, kind, bound, result)
        response = done.answer  # built before the commit when it renders no fragments
        if response is None:  # 11-12
            response = responses.success(app, state, action, kind, args, bound, result, tags)
        if claim is not None and not claim.transactional:  # Redis: once the effects happened
            if deferred:
                tags_left, deferred = deferred, None
                idempotency.complete_with_bump(claim, response, state.tag_versions, tags_left)
            else:
                claim.complete(response)
        return response
    except (NotFound, ActionRefused):
        raise
    except Exception as error:
        if claim is not None and claim.outcome == "new" and not claim.transactional:
            if deferred:  # the effects happened: their tags must move even without an answer
                idempotency.complete_with_bump(claim, None, state.tag_versions, deferred)
            else:
                claim.complete(None, tags)  # no answer happened (no-op if released)
        if propagates(app):
            raise
        return handle_exception(app, action, error)


def read_bound(app: Flask, action: Action, identity: Any) -> dict[str, Any]:
    """Step 5: the signed bound arguments; 400 when missing, tampered with, expired or foreign."""
    if not action.bound_params:
        return {}
    token = form_value(current_request().form, BOUND_FIELD)
    if not token and not action.required_bound:
        return {}
    binding = security.session_binding(identity)
    values = security.verify_bound(
        app, action.endpoint, token, binding, int(app.config["HX_ACTIONS_BOUND_MAX_AGE"])
    )
    if not (values.keys() <= action.bound_set and action.required_bound.issubset(values)):
        raise BoundArgumentsInvalid()
    return values


def validate(action: Action) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Step 6: the schema's values, or errors keyed by input name."""
    if action.validator is None:
        return {}, {}
    req = current_request()
    return action.validator.validate(req.form, req.files)


def authorize(state: HxState, action: Action, args: Mapping[str, Any], identity: Any) -> None:
    """Step 7: ``login_required``, the action's ``authorize=`` and the app-wide authorizers."""
    refusal = NotAuthenticated if identity is None else NotAuthorized
    if action.login_required and identity is None:
        raise NotAuthenticated()
    if action.authorize is not None:
        named = {k: args[k] for k in action.authorize_params if k in args}
        if current_app.ensure_sync(action.authorize)(**named) is False:
            raise refusal()
    for check in state.extension._authorizers:
        if check(action, args) is False:
            raise refusal()


class Done(NamedTuple):
    """What steps 8-10 produced."""

    result: Result
    tags: set[str]
    #: The idempotency claim; when its outcome is not "new", the body did not run.
    claim: idempotency.Claim | None = None
    #: The answer, when it renders no fragments and was built before the commit.
    answer: Response | None = None


def run_body(
    app: Flask,
    state: HxState,
    action: Action,
    kind: str,
    args: dict[str, Any],
    bound: Mapping[str, Any],
    pending: idempotency.Pending | None = None,
) -> Done:
    """Steps 8-10: the idempotency claim, the body and (with the SQL store) the answer kept for
    replays, in one transaction that commits on success and rolls back on ``fail``,
    ``not_found`` and exceptions, which also free the key."""
    claim = answer = presumed = None
    try:
        with transaction(app) as tx:
            if pending is not None:
                presumed = presumed_answer(app, kind, pending)
                # 8: in the action's own transaction
                claim = pending.claim(None if presumed is None else presumed[1])
                if claim.outcome != "new":
                    return Done(ok(), set(), claim)  # the body does not run, nothing is written
            if signals.action_started.receivers:
                signals.action_started.send(app, action=action)
            returned, tags = call_collecting_tags(action, args)  # 9
            result = as_result(action, returned)
            tx.commit = result.ok
            if claim is not None and result.ok and claim.transactional:
                if presumed is not None and result.kind == "ok":
                    answer = presumed[0]  # the claim's row holds it already: nothing to write
                    claim.complete(answer, stored=presumed[1])
                else:
                    answer = answer_without_fragments(app, state, action, kind, args, bound, result)
                    # Committed with the writes (None: replays re-render, with the body's tags).
                    claim.complete(answer, tags if answer is None else ())
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    if claim is not None and not result.ok:
        claim.release()
    if signals.action_finished.receivers:
        signals.action_finished.send(app, action=action, result=result)
    return Done(result, tags, claim, answer)


def presumed_answer(
    app: Flask, kind: str, pending: idempotency.Pending
) -> tuple[Response, idempotency.StoredAnswer] | None:
    """A plain form's answer to ``ok`` (its 303, which depends on the request only), and what a
    replay would send, for a store that keeps it with the claim; else ``None``."""
    if kind != "plain" or not pending.keeps_answer_with_claim:
        return None
    target = responses.success_target(app)
    return responses.see_other(target), _stored_see_other(target)


@functools.lru_cache(maxsize=256)
def _stored_see_other(target: str) -> idempotency.StoredAnswer:
    """A plain form's 303 to ``target`` as a replay sends it again (the same for every submit
    of a page's forms): built once rather than per claim."""
    return idempotency.StoredAnswer.of(responses.see_other(target))


def answer_without_fragments(
    app: Flask,
    state: HxState,
    action: Action,
    kind: str,
    args: Mapping[str, Any],
    bound: Mapping[str, Any],
    result: Result,
) -> Response | None:
    """The success answer when it renders no fragments (plain, JSON, redirects), else ``None``:
    fragments are rendered after the commit only."""
    if kind == "htmx" and result.kind != "redirect":
        return None
    return responses.success(app, state, action, kind, args, bound, result, set())


def call_collecting_tags(action: Action, args: Mapping[str, Any]) -> tuple[Any, set[str]]:
    """Call the action's function and collect the tags it passed to :func:`revalidate`; the
    identity is loaded again afterwards (the body may have signed someone in or out)."""
    tags: set[str] = set()
    token = _collected_tags.set(tags)
    try:
        if action.is_async:
            if has_app_context():
                returned = current_app.ensure_sync(action.fn)(**args)
            else:  # pragma: no cover - invoke() of an async action outside an app
                import asyncio

                returned = asyncio.run(action.fn(**args))
        else:
            returned = action.fn(**args)
    finally:
        _collected_tags.reset(token)
        forget_identity()  # a sign-in or sign-out: what renders next is for the new user
    return returned, tags


def as_result(action: Action, returned: Any) -> Result:
    if returned is None:
        return ok()
    if isinstance(returned, Result):
        return returned
    raise TypeError(
        f"Action {action.endpoint!r} returned {type(returned).__name__}; return ok(...), "
        "fail(...), redirect_to(...), not_found() or None."
    )


def revalidate(*tags: str) -> None:
    """Inside an action: mark tags whose fragments must be re-rendered after the commit.

    >>> revalidate("todos", f"todo:{todo.id}")  # doctest: +SKIP
    """
    collected = _collected_tags.get()
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"revalidate() takes tag strings, not {tag!r}.")
    if collected is not None:
        collected.update(tags)


# -- failure answers -----------------------------------------------------------------------------


def respond_failure(
    app: Flask,
    state: HxState,
    action: Action,
    kind: str,
    bound: Mapping[str, Any],
    result: Result,
) -> Response:
    """Validation errors and ``fail(...)``: 303 back with the errors (no JS), OOB error slots
    (htmx) or a JSON object."""
    if kind == "plain":
        validator = action.validator
        oldinput.stash(
            app,
            oldinput.form_key(action.endpoint, bound, request.form.get(oldinput.FORM_ID_FIELD)),
            request.form,
            validator.input_names if validator else (),
            validator.sensitive if validator else frozenset(),
            result.errors,
            result.message,
        )
        return responses.see_other(responses.back_target(app))
    if kind == "json":
        return responses.json_failure(result)
    return responses.htmx_errors(app, action, bound, result)


def respond_again(
    app: Flask,
    state: HxState,
    action: Action,
    kind: str,
    args: Mapping[str, Any],
    bound: Mapping[str, Any],
    claim: idempotency.Claim,
) -> Response:
    """A key used before: its stored answer, 422 (other input) or 409 (not finished); or, when
    the effects are committed without a stored answer, the success answer rendered again."""
    if claim.outcome != "rerender":
        return claim.respond()
    tags = set(action.tags_for(args)) | claim.tags
    response = responses.success(app, state, action, kind, args, bound, ok(), tags)
    response.headers[idempotency.REPLAYED_HEADER] = "true"
    return response


def respond_not_found(
    app: Flask, state: HxState, action: Action, kind: str, bound: Mapping[str, Any], result: Result
) -> Response:
    if kind == "plain":
        raise NotFound()
    if kind == "json":
        return responses.json_failure(result)
    return responses.htmx_errors(app, action, bound, result)


# -- refusals, exceptions, headers ---------------------------------------------------------------


def handle_refusal(error: ActionRefused) -> Response | ActionRefused:
    """The fallback handler of every refusal (apps may register their own, by class or status)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if signals.action_refused.receivers:
        signals.action_refused.send(app, endpoint=request.endpoint, error=error)
    log.info(
        "action refused: %s %s (%s) request_id=%s",
        request.endpoint,
        error.code,
        error.hx_code,
        request_id(),
    )
    kind = request_kind(request)
    if kind == "json":
        response = responses.json_refusal(error)
    elif kind == "htmx":
        response = responses.htmx_refusal(error)
        if error.renews_key:  # the form's key is spent: finish_response sends a fresh one
            flags()[_RENEW_KEY] = True
    else:
        return error
    retry_after = getattr(error, "retry_after", None)  # 409 of a key in flight, 429
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_exception(app: Flask, action: Action, error: BaseException) -> Response:
    """An exception in the body: logged with the request id; a generic answer, or re-raised when
    the app propagates exceptions (``PROPAGATE_EXCEPTIONS``, testing, debug)."""
    rid = request_id()
    log.error("action %s failed request_id=%s", action.endpoint, rid, exc_info=error)
    return responses.server_error(request_kind(request), rid)


def request_id() -> str:
    """This request's id: the incoming ``X-Request-ID`` when the app trusts it, else a new one."""
    return _request_id(flags(), current_app_object())


def _request_id(values: dict[str, Any], app: Flask) -> str:
    """:func:`request_id`, given ``g``'s dict and the app."""
    rid: str | None = values.get("_hx_request_id")
    if rid is not None:
        return rid
    if app.config["HX_ACTIONS_TRUST_REQUEST_ID"]:
        incoming = current_request().environ.get("HTTP_X_REQUEST_ID", "")
        if _REQUEST_ID.match(incoming):
            rid = incoming
    values["_hx_request_id"] = rid = rid or security.fresh_request_id()
    return rid


def finish_response(response: Response) -> Response:
    """Headers of every answer to an action request, whatever produced it: ``Vary:
    HX-Request`` (with ``Cookie`` when the session was read), ``Cache-Control: no-store`` and
    ``X-Request-ID``. An htmx answer that ends the submit (2xx without ``HX-Redirect``: success,
    replay; or a refusal that spent the key) gives the form its next idempotency key in
    ``HX-Actions``: one header fewer than a header of its own, which a server parses and checks
    one by one.

    The library's own answers have none of these headers yet: they are appended in one step
    (:func:`~.headers.append_built`). Any other answer gets them one by one, merged with what it
    has."""
    app_ctx = _cv_app.get(None)
    if app_ctx is None:  # an after_request hook runs in an app context; the usual error if not
        values_of_g = flags()
        app = current_app_object()
    else:
        values_of_g = app_ctx.g.__dict__
        app = app_ctx.app
    if values_of_g.get("_hx_action") is None:
        return response
    # With "Cookie" when the session's save will add it: one write, which the save then finds.
    vary = _VARY_WITH_COOKIE if sessions.will_vary_on_cookie(app) else _VARY_ALONE
    headers = response.headers
    present = {key.lower() for key, _ in headers}
    rid = _request_id(values_of_g, app)
    actions: str | None = None
    # The header, without EnvironHeaders.
    if current_request().environ.get("HTTP_HX_REQUEST") == "true":
        renew = values_of_g.get(_RENEW_KEY) or (
            200 <= response.status_code < 300 and "hx-redirect" not in present
        )
        actions = responses.actions_header(bool(renew))
    if present.isdisjoint(_FINISHING):
        built = [("Vary", vary[1]), ("Cache-Control", "no-store"), ("X-Request-ID", rid)]
        if actions is not None:
            built.append((responses.ACTIONS_HEADER, actions))
        append_built(headers, built)
        return response
    add_vary(response, *vary[0])
    values = {"Cache-Control": "no-store", "X-Request-ID": rid}
    if actions is not None:
        values[responses.ACTIONS_HEADER] = actions
    put_headers(headers, values, present)
    return response


#: (the tokens, the header's value when it is written whole).
_VARY_ALONE = (("HX-Request",), "HX-Request")
_VARY_WITH_COOKIE = (("HX-Request", "Cookie"), "HX-Request, Cookie")
#: The headers :func:`finish_response` writes, lower-cased: an answer with none of them gets
#: them appended in one step.
_FINISHING = frozenset({"vary", "cache-control", "x-request-id", "hx-actions"})


def propagates(app: Flask) -> bool:
    propagate = app.config["PROPAGATE_EXCEPTIONS"]
    return bool(app.testing or app.debug) if propagate is None else bool(propagate)


def _size(limit: int) -> str:
    from .validation import _human

    return _human(limit)
