"""Idempotency keys: a retried submit runs its action once and gets the first answer again.

We wrote this ourselves because no well-kept library does idempotency keys for Flask, and none
can put the key's claim in the same database transaction as the action's own writes, which is
what makes "exactly once" hold when a worker dies half-way. The semantics follow Stripe's API and
the IETF ``Idempotency-Key`` HTTP header draft.

Semantics
---------
- **Key**: the ``_hx_key`` form field (``action_form`` renders a fresh one) or the
  ``Idempotency-Key`` header (a bare token or a quoted structured-field string), 8 to 128 of
  ``A-Z a-z 0-9 _ -``. No key (or an empty field): the action runs unprotected. A malformed key,
  an empty header, or a field and a header that disagree, is a 400
  (:class:`IdempotencyKeyInvalid`), before any user code: silently running the action without
  the protection the client asked for would break its retry logic.
- **Scope**: the action's endpoint and the signed-in user (else the browser session) hold the
  key: two users or two actions never share one. A caller with neither a user nor a session
  cookie starts a new session each request, so its keys never match: sign API callers in.
- **Fingerprint**: SHA-256 of the input (:func:`fingerprint`) and of the kind of answer asked
  for (htmx, JSON, plain). The same key with another fingerprint is a 422
  (:class:`IdempotencyKeyReused`).
- **Outcomes** of :meth:`Pending.claim`: ``new`` (run the body), ``replay`` (send the stored
  answer; the body does not run), ``mismatch`` (422), ``conflict`` (a request with this key has
  not finished: 409 with ``Retry-After: 1`` at once, rather than holding a worker to wait), and
  ``rerender`` (the action's effects are committed but no answer was kept: answer as a success
  again, rendering the fragments from the committed state, without running the body).
- What is kept: the answer (status, body, :data:`REPLAYED_HEADERS`) of a committed ``ok`` or
  redirect. With the SQL store an htmx answer that renders fragments is not kept (fragments are
  rendered after the commit, and the answer is stored before it): its replay is ``rerender``.
  ``fail``, ``not_found`` and exceptions free the key.
- Concurrent duplicates: on PostgreSQL (and SQLite) with the SQL store a duplicate waits for the
  first request's transaction, then replays its answer (or runs, if the first rolled back); with
  Redis it gets the 409 at once.
- Keys expire after ``HX_ACTIONS_IDEMPOTENCY_TTL`` seconds (24 h); ``flask hx-actions purge-keys``
  deletes expired rows.

Stores
------
:mod:`flask_hx_actions.idempotency_stores` holds the two stores and why each is safe:
:class:`~flask_hx_actions.idempotency_stores.SQLAlchemyStore` claims the key in the action's own
transaction (the default with Flask-SQLAlchemy);
:class:`~flask_hx_actions.idempotency_stores.RedisStore` is for actions that write elsewhere.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import IO, Any, Literal, Protocol, cast

from flask import Flask, Request, Response
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import BadRequest, Conflict, UnprocessableEntity

from . import security
from .context import current_request
from .errors import ActionRefused
from .headers import request_header
from .responses import REGIONS_FIELD

log = logging.getLogger("flask_hx_actions")

KEY_FIELD = "_hx_key"
KEY_REQUEST_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL_SETTING = "HX_ACTIONS_IDEMPOTENCY_TTL"
STORE_SETTING = "HX_ACTIONS_IDEMPOTENCY_STORE"
DEFAULT_TTL = 24 * 3600

#: Response headers kept with an answer and sent again on a replay (lower case).
REPLAYED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Content-Type",
        "Location",
        "HX-Location",
        "HX-Redirect",
        "HX-Refresh",
        "HX-Push-Url",
        "HX-Replace-Url",
        "HX-Reswap",
        "HX-Retarget",
        "HX-Reselect",
        "HX-Trigger",
        "HX-Trigger-After-Settle",
        "HX-Trigger-After-Swap",
    )
)

Outcome = Literal["new", "replay", "mismatch", "conflict", "rerender"]
IN_FLIGHT = "in_flight"
DONE = "done"
_KEY = re.compile(r"[A-Za-z0-9_-]{8,128}")
_EXTENSION = "hx_actions.idempotency"


# -- refusals --------------------------------------------------------------------------------------


class IdempotencyKeyInvalid(ActionRefused, BadRequest):
    """400: the idempotency key is malformed, or the form field and the header disagree."""

    hx_code = "bad_idempotency_key"
    description = "The idempotency key must be 8 to 128 letters, digits, '-' or '_'."


class IdempotencyKeyReused(ActionRefused, UnprocessableEntity):
    """422: this key was already used for this action with different input.

    The htmx answer carries a fresh key: the form holds a key whose first submit went through
    but whose answer never reached the page (a lost connection), and each later submit of other
    input would otherwise be this 422 again until the page is reloaded.
    """

    hx_code = "idempotency_key_reused"
    renews_key = True
    description = "This idempotency key was already used with different input."


class IdempotencyKeyInFlight(ActionRefused, Conflict):
    """409 with ``Retry-After``: a request with this key has not finished yet."""

    hx_code = "idempotency_in_flight"
    description = "This request is still being processed. Try again in a moment."
    retry_after = 1

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("Retry-After", str(self.retry_after))]


# -- answers and claims ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The part of an action's answer a replay sends again: status, headers, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def of(cls, response: Response) -> StoredAnswer:
        """Keep ``response``'s status, body and :data:`REPLAYED_HEADERS` (no cookies)."""
        headers = tuple(
            (k, v) for k, v in response.headers.items() if k.lower() in REPLAYED_HEADERS
        )
        return cls(response.status_code, headers, response.get_data())

    def to_response(self) -> Response:
        """The stored answer, marked ``Idempotent-Replayed``. To an htmx request its
        ``HX-Actions`` header (set for every answer, ``pipeline.finish_response``) carries a
        fresh key, so the form that was answered does not submit the same key again."""
        response = Response(self.body, status=self.status, headers=list(self.headers))
        response.headers[REPLAYED_HEADER] = "true"
        return response

    def headers_json(self) -> str:
        """The headers as a JSON list of pairs (how the SQL store keeps them)."""
        return _headers_json(self.headers)

    @classmethod
    def from_parts(cls, status: int, headers_json: str | None, body: bytes | None) -> StoredAnswer:
        pairs = json.loads(headers_json or "[]")
        return cls(status, tuple((str(k), str(v)) for k, v in pairs), bytes(body or b""))


@functools.lru_cache(maxsize=256)
def _headers_json(headers: tuple[tuple[str, str], ...]) -> str:
    """Remembered: a plain form's 303 keeps the same headers for every submit of a page."""
    return _HEADERS_ENCODER.encode([list(h) for h in headers])


# Created once: ``json.dumps`` with options builds an encoder per call.
_HEADERS_ENCODER = json.JSONEncoder(separators=(",", ":"))
_CANONICAL_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a store says about one key; :attr:`outcome` tells the pipeline what to do."""

    outcome: Outcome
    scope: str
    key: str
    fingerprint: str
    ttl: float
    store: IdempotencyStore = field(repr=False, compare=False)
    answer: StoredAnswer | None = None
    token: str = field(default="", repr=False)
    #: Tags the body passed to ``revalidate()``: kept with a key done without an answer, so its
    #: re-render (``rerender``) refreshes those regions too, not only the declared ``tags=``.
    tags: frozenset[str] = frozenset()
    #: The answer the key's row was inserted with (:meth:`Pending.claim` with ``presumed``):
    #: completing the claim with this same answer writes nothing more.
    kept: StoredAnswer | None = field(default=None, repr=False)

    @property
    def transactional(self) -> bool:
        """True when the claim is part of the action's database transaction: then
        :meth:`complete` belongs before the commit, otherwise after it."""
        return self.store.transactional

    def complete(
        self,
        response: Response | None,
        tags: Iterable[str] = (),
        stored: StoredAnswer | None = None,
    ) -> None:
        """Keep ``response`` as the key's answer (``None``: done, with no answer to keep; a
        replay re-renders, and refreshes ``tags``, the ones the body revalidated, with the
        declared ones). ``stored``: ``StoredAnswer.of(response)``, when the caller has it
        already (the presumed answer the claim was inserted with). A transactional store writes
        in the action's transaction, so its errors are raised and roll the action back; other
        stores run after the action happened, so their errors are logged and the caller still
        gets its answer."""
        if stored is not None:
            answer: StoredAnswer | None = stored
        else:
            answer = None if response is None else StoredAnswer.of(response)
        claim = self.finished(answer, tags)
        if self.store.transactional:
            self.store.complete(claim, answer)
            return
        try:
            self.store.complete(claim, answer)
        except Exception:
            log.warning("could not store the answer of idempotency key %s", self.key, exc_info=True)

    def finished(self, answer: StoredAnswer | None, tags: Iterable[str]) -> Claim:
        """The claim as its store completes it: done without an answer, it keeps ``tags`` (the
        ones the body revalidated) for the replay's re-render."""
        return self if answer is not None or not tags else replace(self, tags=frozenset(tags))

    def release(self) -> None:
        """Free the key after ``fail``, ``not_found`` or an exception (errors are logged)."""
        try:
            self.store.release(self)
        except Exception:
            log.warning("could not release idempotency key %s", self.key, exc_info=True)

    def respond(self) -> Response:
        """The answer for ``replay``; raises the refusal for ``mismatch`` and ``conflict``."""
        if self.outcome == "replay" and self.answer is not None:
            return self.answer.to_response()
        if self.outcome == "mismatch":
            raise IdempotencyKeyReused()
        if self.outcome == "conflict":
            raise IdempotencyKeyInFlight()
        raise ValueError(f"a {self.outcome!r} claim has no stored answer")


def bumps_with(claim: Claim, tag_versions: Any) -> bool:
    """True when ``claim``'s store can increment ``tag_versions`` in the round trip that
    completes the claim: a Redis store on the very client of Redis tag versions."""
    complete_and_bump = getattr(claim.store, "complete_and_bump", None)
    return (
        complete_and_bump is not None
        and claim.outcome == "new"
        and not claim.store.transactional
        and getattr(tag_versions, "client", None) is not None
        and getattr(claim.store, "client", None) is tag_versions.client
    )


def complete_with_bump(
    claim: Claim, response: Response | None, tag_versions: Any, tags: set[str]
) -> None:
    """Complete ``claim`` with ``response`` and increment ``tags`` in one round trip (see
    :func:`bumps_with`). Should that fail, the increment is made on its own, and raises when it
    fails too (a stale cached fragment is worse than an error); then the claim is completed the
    ordinary way."""
    answer = None if response is None else StoredAnswer.of(response)
    store = cast(Any, claim.store)
    try:
        store.complete_and_bump(claim.finished(answer, tags), answer, tag_versions.hash_key, tags)
    except Exception:
        log.warning("could not complete idempotency key %s with its tags", claim.key, exc_info=True)
    else:
        tag_versions.bumped_elsewhere()
        return
    tag_versions.bump(tags)
    claim.complete(response, tags)


class IdempotencyStore(Protocol):
    """Where keys live. ``claim`` runs before the body; then ``complete`` (the action succeeded:
    before the commit when ``transactional``, after it otherwise) or ``release`` (it failed)."""

    #: The claim and the answer join the action's database transaction.
    transactional: bool

    def claim(self, scope: str, key: str, fingerprint: str, ttl: float) -> Claim: ...

    def complete(self, claim: Claim, answer: StoredAnswer | None) -> None: ...

    def release(self, claim: Claim) -> None: ...

    def purge_expired(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """A request's key, scope and fingerprint, ready to be claimed inside the transaction."""

    store: IdempotencyStore
    scope: str
    key: str
    fingerprint: str
    ttl: float

    @property
    def keeps_answer_with_claim(self) -> bool:
        """The store inserts the key's row with a presumed answer (see :meth:`claim`)."""
        return bool(getattr(self.store, "keeps_answer_with_claim", False))

    def claim(self, presumed: StoredAnswer | None = None) -> Claim:
        """Claim the key. ``presumed``: the answer a success will most likely get, known before
        the body runs (a plain form's 303 after ``ok``); a store that can keep it with the claim
        (``keeps_answer_with_claim``) inserts the key's row with it, so completing the claim
        with that same answer costs no second statement."""
        if presumed is not None and self.keeps_answer_with_claim:
            store = cast(Any, self.store)
            return cast(
                Claim, store.claim(self.scope, self.key, self.fingerprint, self.ttl, presumed)
            )
        return self.store.claim(self.scope, self.key, self.fingerprint, self.ttl)


# -- reading the request ---------------------------------------------------------------------------


def prepare(app: Flask, endpoint: str, identity: Any, kind: str) -> Pending | None:
    """The request's :class:`Pending` claim, or ``None`` without a store or a key.

    >>> pending = prepare(app, "todos.add", identity, "htmx")  # doctest: +SKIP
    """
    store = store_for(app)
    if store is None:
        return None
    req = current_request()
    key = request_key(req)
    if key is None:
        return None
    csrf_field = app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    # What hx-actions.js adds (the page's token and regions) is not the action's input.
    exclude = (csrf_field, security.PAGE_CSRF_FIELD, REGIONS_FIELD)
    digest = fingerprint(req.form, req.files, exclude=exclude, extra=(kind,))
    return Pending(store, scope_for(endpoint, identity), key, digest, ttl_seconds(app))


def request_key(req: Request) -> str | None:
    """The key from ``_hx_key`` or ``Idempotency-Key``; ``None`` when neither is sent.

    :raises IdempotencyKeyInvalid: a malformed key, or two different keys.
    """
    found = {v for v in req.form.getlist(KEY_FIELD) if v}
    sent = request_header(req.environ, KEY_REQUEST_HEADER)
    if sent is not None:
        header = sent.strip()
        if len(header) >= 2 and header[0] == header[-1] == '"':
            header = header[1:-1]
        if not header:  # the caller asked for protection: not running it unprotected
            raise IdempotencyKeyInvalid(description="The Idempotency-Key header is empty.")
        found.add(header)
    if not found:
        return None
    if len(found) > 1:
        raise IdempotencyKeyInvalid(
            description="The request carries two different idempotency keys."
        )
    key = found.pop()
    if not _KEY.fullmatch(key):
        raise IdempotencyKeyInvalid()
    return key


def fingerprint(
    form: MultiDict[str, str],
    files: MultiDict[str, FileStorage],
    *,
    exclude: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> str:
    """SHA-256 of the canonical input: fields sorted by name with their values in order (the
    key field and ``exclude`` left out), files by field, file name, size and content hash.

    >>> fingerprint(MultiDict({"title": "Milk"}), MultiDict())[:12]
    '7689e9d6292f'
    """
    skip = {KEY_FIELD, *exclude}
    fields = [[name, values] for name, values in sorted(form.lists()) if name not in skip]
    uploads = [
        [name, [_file_digest(f) for f in storages]] for name, storages in sorted(files.lists())
    ]
    canonical = {"v": 1, "fields": fields, "files": uploads, "extra": list(extra)}
    data = _CANONICAL_ENCODER.encode(canonical)
    return hashlib.sha256(data.encode()).hexdigest()


def _file_digest(storage: FileStorage) -> list[Any]:
    stream: IO[bytes] = storage.stream
    position = stream.tell()
    stream.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(65536):
        digest.update(chunk)
        size += len(chunk)
    stream.seek(position)  # the action reads the file after us
    return [storage.filename or "", size, digest.hexdigest()]


def scope_for(endpoint: str, identity: Any) -> str:
    """``endpoint|u:<hash>`` for a signed-in user, ``endpoint|s:<hash>`` for a browser session.

    Hashed so the table holds no session ids; at most 255 characters.
    """
    subject = f"u:{identity}" if identity is not None else f"s:{_session_id()}"
    scope = f"{endpoint}|{subject[:2]}{hashlib.sha256(subject.encode()).hexdigest()[:32]}"
    if len(scope) > 255:
        scope = f"h:{hashlib.sha256(scope.encode()).hexdigest()}"
    return scope


def _session_id() -> str:
    return security.session_binding(None).split("|", 1)[0]


def ttl_seconds(app: Flask) -> float:
    """``HX_ACTIONS_IDEMPOTENCY_TTL`` in seconds (a number or a ``timedelta``; default 24 h)."""
    value = app.config.get(TTL_SETTING, DEFAULT_TTL)
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"{TTL_SETTING} must be positive, not {value!r}.")
    return seconds


# -- choosing the store ----------------------------------------------------------------------------


def store_for(app: Flask) -> IdempotencyStore | None:
    """The app's store, from ``HX_ACTIONS_IDEMPOTENCY_STORE``.

    ``"auto"`` (default): ``SQLAlchemyStore`` when Flask-SQLAlchemy is set up and
    ``HX_ACTIONS_SQLALCHEMY_TRANSACTIONS`` is on, else ``RedisStore`` on
    ``HX_ACTIONS_REDIS_URL`` when set, else none. ``"sqlalchemy"``, a ``redis://`` URL, a store
    object, or ``None``/``"off"`` choose explicitly.
    """
    setting = app.config.get(STORE_SETTING, "auto")
    cached = app.extensions.get(_EXTENSION)
    if cached is not None and cached[0] is setting:
        return cast("IdempotencyStore | None", cached[1])
    store = _resolve(app, setting)
    app.extensions[_EXTENSION] = (setting, store)
    return store


def _resolve(app: Flask, setting: Any) -> IdempotencyStore | None:
    from .idempotency_stores import RedisStore, SQLAlchemyStore

    if setting is None or setting is False or setting in ("off", "none", ""):
        return None
    if not isinstance(setting, str):
        if not callable(getattr(setting, "claim", None)) or not hasattr(setting, "transactional"):
            raise TypeError(f"{STORE_SETTING} must be a store, a name or a URL, not {setting!r}.")
        return cast(IdempotencyStore, setting)
    sql = "sqlalchemy" in app.extensions and app.config.get(
        "HX_ACTIONS_SQLALCHEMY_TRANSACTIONS", True
    )
    if setting == "auto":
        if sql:
            return SQLAlchemyStore()
        url = app.config.get("HX_ACTIONS_REDIS_URL")
        if not url:
            return None
        # The tag versions' client when they live on the same URL: an action's completion and
        # its tag increments then go in one round trip (see complete_with_bump).
        state = app.extensions.get("hx_actions")
        versions: Any = getattr(state, "tag_versions", None)
        shared = versions.client if getattr(versions, "url", None) == url else None
        return RedisStore(shared if shared is not None else url)
    if setting == "sqlalchemy":
        if not sql:
            raise RuntimeError(
                f"{STORE_SETTING}='sqlalchemy' needs Flask-SQLAlchemy set up on the app and "
                "HX_ACTIONS_SQLALCHEMY_TRANSACTIONS on: the claim shares the action's transaction."
            )
        return SQLAlchemyStore()
    if setting.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(setting)
    raise ValueError(f"Unknown {STORE_SETTING}: {setting!r}.")


__all__ = [
    "DEFAULT_TTL",
    "KEY_FIELD",
    "KEY_REQUEST_HEADER",
    "REPLAYED_HEADER",
    "REPLAYED_HEADERS",
    "Claim",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyReused",
    "IdempotencyStore",
    "Outcome",
    "Pending",
    "StoredAnswer",
    "bumps_with",
    "complete_with_bump",
    "fingerprint",
    "prepare",
    "request_key",
    "scope_for",
    "store_for",
    "ttl_seconds",
]
