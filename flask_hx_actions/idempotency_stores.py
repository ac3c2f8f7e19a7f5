"""The two idempotency stores: :class:`SQLAlchemyStore` (the default with Flask-SQLAlchemy)
and :class:`RedisStore` (for actions that write elsewhere). :mod:`flask_hx_actions.idempotency`
holds the semantics, the request side and the store protocol they implement.

SQLAlchemy: one transaction for the claim, the writes and the answer
--------------------------------------------------------------------
The claim is an ``INSERT ... ON CONFLICT DO NOTHING`` of the key's row in ``db.session``, inside
the pipeline's transaction; the answer is an ``UPDATE`` of that row in the same transaction, before
the commit. So the claim, the action's writes and the answer commit together or not at all
(``fail``, ``not_found``, exceptions roll all three back and the key is free again): there is no
moment, and no crash, where effects are committed without their key or a key without its answer.
On PostgreSQL (READ COMMITTED, the default) a concurrent duplicate's INSERT waits until the first
transaction ends, then claims the key (after a rollback) or replays the committed answer. SQLite
serialises writers (a duplicate waits up to the driver's busy timeout, 5 s by default).

Fragments are rendered after the commit (that is when tag versions of the fragment cache go up),
so an htmx answer that renders fragments cannot be stored before the commit: its row is marked
``done`` without an answer, and a replay re-renders the fragments from the committed state
(outcome ``rerender``) without running the body. Plain, JSON and redirect answers need no
rendering and are stored whole. Storing the rendered answer in a second transaction after the
commit was the alternative: byte-identical htmx replays, but one more commit per action (about
1.5 ms on SQLite, four times the claim) and a window between the commits where a crash leaves the
key without an answer.

The row is inserted as it will read after a plain commit: ``done`` without an answer. Nothing
outside the transaction sees it before the commit, and an htmx answer that renders fragments (the
usual htmx success) keeps no answer, so for those the ``UPDATE`` is skipped: one statement, one
round trip per action instead of two. A plain form's answer to ``ok`` (its 303) is known before
the body runs (it depends on the request only), so the pipeline hands it to the claim and the row
is inserted with it: when the body returns ``ok``, that is the answer and there is nothing more to
write. The answer's ``UPDATE`` runs when there is something else to keep (another answer, such as
``redirect_to``'s, or the tags the body revalidated).

The statements run on the session's connection (``Session.connection()``: the same transaction)
as driver SQL (``Connection.exec_driver_sql``): each prebuilt statement is compiled once per
dialect, and each action passes only its parameters, run through the column types' bind
processors as Core would. Neither the ORM's execution path (autoflush, ORM compile state) nor
Core's (cache key, execution context of a compiled statement, RETURNING's result) runs per
action: on PostgreSQL over 127.0.0.1 the claim took 560 µs through Core with ``RETURNING`` and
365 µs as driver SQL, of which 176 µs is the round trip a ``SELECT`` of one row takes
(medians of 2,000, in one process, Dec 7 2026). The claim's ``INSERT`` reports whether it
inserted by its row count (``ON CONFLICT DO NOTHING``: 1 or 0). SQLAlchemy's cursor events
still fire (``exec_driver_sql`` goes through them), so echo and tracing see the statements.
The action's own pending ORM changes are flushed at the commit, after the answer's ``UPDATE``;
inside one transaction the order does not matter.

A row is visible to others before its answer only if something commits the session between the
claim and the answer (an action body that calls ``commit()`` itself). A ``before_commit`` hook on
SQLAlchemy sessions catches that commit while a claim of the session is open: it marks the row
``in_flight`` in the same commit, and the answer's ``UPDATE`` then runs in any case. A duplicate
sees the row really in flight and gets the 409; after ``pending_grace`` seconds without an answer
it is taken as done (``rerender``), never run twice. The hook costs one dictionary lookup per commit
of a session with no open claim.

Redis: a lease
--------------
``SET key value NX PX lease`` claims the key; the answer replaces the value on completion (kept
for the TTL) and a failure deletes it. Both check an owner token, so a request whose lease ran
out cannot overwrite or free a key another request holds now. A worker that dies mid-body keeps
the key for ``lease`` seconds; then a retry runs the body again, since Redis cannot know whether
the writes elsewhere happened.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
import sqlalchemy.orm
from flask import Flask
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .context import current_app_object
from .idempotency import DONE, IN_FLIGHT, Claim, Outcome, StoredAnswer

if TYPE_CHECKING:
    import redis
    from sqlalchemy.engine import CursorResult

TABLE_NAME = "hx_actions_idempotency"

#: ``Session.info`` key: the claims of the session's transaction whose row still reads as
#: inserted (``done``, with the presumed answer or none): ``(scope, key)`` -> (store, claim). See
#: the module docstring.
_OPEN_CLAIMS = "hx_actions_open_claims"
_hook_lock = threading.Lock()
_hooked = False


def _watch_commits() -> None:
    """Listen to ``before_commit`` of every SQLAlchemy session, once per process."""
    global _hooked
    with _hook_lock:
        if not _hooked:
            sa.event.listen(sa.orm.Session, "before_commit", _commit_with_open_claims)
            _hooked = True


def _commit_with_open_claims(session: sa.orm.Session) -> None:
    """A session commits while claims of its transaction are open (the action body committed):
    their rows become visible now, so they must read ``in_flight``, not done."""
    opened = session.info.get(_OPEN_CLAIMS)
    if not opened or session.in_nested_transaction():  # a savepoint: nothing becomes visible
        return
    session.info[_OPEN_CLAIMS] = {}
    for store, claim in opened.values():
        store._mark_in_flight(session, claim)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- SQLAlchemy ------------------------------------------------------------------------------------


class SQLAlchemyStore:
    """Keys in the table ``hx_actions_idempotency``, claimed and answered in the action's own
    transaction.

    The table is created on first use on the Flask-SQLAlchemy engine; :meth:`claim` and
    :meth:`complete` run in ``db.session`` and rely on the pipeline to commit or roll back.
    ``bind_key`` puts the table on another bind: then the claim is atomic only with the writes on
    that bind. PostgreSQL and SQLite claim with ``ON CONFLICT``, other databases with a savepoint.

    :param pending_grace: seconds after which a visible ``in_flight`` row counts as done
        (``rerender``): something committed it, so the action's effects may be in.

    >>> app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = SQLAlchemyStore()  # doctest: +SKIP
    """

    transactional = True
    #: :meth:`claim` takes the presumed answer and inserts the row with it.
    keeps_answer_with_claim = True

    def __init__(
        self,
        db: Any = None,
        *,
        bind_key: str | None = None,
        table_name: str = TABLE_NAME,
        pending_grace: float = 60.0,
    ) -> None:
        self._db_object = db
        self.bind_key = bind_key
        self.pending_grace = pending_grace
        self.table = sa.Table(
            table_name,
            sa.MetaData(info={"bind_key": bind_key}),
            sa.Column("scope", sa.String(255), primary_key=True),
            sa.Column("key", sa.String(128), primary_key=True),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("status", sa.Integer),
            sa.Column("headers", sa.Text),
            sa.Column("body", sa.LargeBinary),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("expires_at", sa.DateTime, nullable=False, index=True),
        )
        self._ready: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
        self._ready_apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        self._lock = threading.Lock()
        c = self.table.c
        _watch_commits()
        # Built once, compiled once per dialect and run as driver SQL (see the module docstring).
        self._claims = {
            "postgresql": self._claim_statement(pg_insert),
            "sqlite": self._claim_statement(sqlite_insert),
        }
        self._compiled: dict[tuple[int, str, str, str], _DriverSQL] = {}
        this_claim = sa.and_(
            c.scope == sa.bindparam("w_scope"),
            c.key == sa.bindparam("w_key"),
            c.fingerprint == sa.bindparam("w_fingerprint"),
        )
        self._in_flight = sa.update(self.table).where(this_claim).values(state=IN_FLIGHT)
        self._answer = (
            sa.update(self.table)
            .where(this_claim)
            .values(
                state=DONE,
                status=sa.bindparam("v_status"),
                headers=sa.bindparam("v_headers"),
                body=sa.bindparam("v_body"),
                expires_at=sa.bindparam("v_expires_at"),
            )
        )

    def _claim_statement(self, insert: Any) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` of one row, values bound by name. Run as driver
        SQL, its row count says whether it inserted (1) or found the key taken (0)."""
        columns = (
            *("scope", "key", "fingerprint", "state"),
            *("status", "headers", "body", "created_at", "expires_at"),
        )
        values: dict[str, Any] = {name: sa.bindparam(name) for name in columns}
        return insert(self.table).values(values).on_conflict_do_nothing()

    def _run(self, connection: sa.Connection, statement: Any, values: Mapping[str, Any]) -> int:
        """Run one of the prebuilt ``statement``s on ``connection`` as driver SQL, compiled for
        its dialect on first use; the row count."""
        dialect = connection.dialect
        memo = (id(statement), dialect.name, dialect.driver, dialect.paramstyle)
        compiled = self._compiled.get(memo)
        if compiled is None:
            compiled = self._compiled[memo] = _DriverSQL(statement, dialect)
        return compiled.run(connection, values)

    def _connection(self, session: Any) -> sa.Connection:
        """The connection of ``session``'s transaction on the store's bind (begun if need be)."""
        return cast(sa.Connection, session.connection(bind_arguments={"clause": self.table}))

    def _db(self) -> Any:
        if self._db_object is not None:
            return self._db_object
        return current_app_object().extensions["sqlalchemy"]

    def engine(self) -> sa.Engine:
        """The engine of the store's bind in the current app."""
        return cast(sa.Engine, self._db().engines[self.bind_key])

    def ensure_table(self) -> None:
        """Create the table when missing (once per engine; safe when processes race). Asked
        once per app: an app's engines are set up once, and finding one costs several lookups."""
        app = current_app_object()
        if app in self._ready_apps:
            return
        engine = self.engine()
        if engine in self._ready:
            self._ready_apps.add(app)
            return
        with self._lock:
            try:
                with engine.begin() as conn:
                    self.table.create(conn, checkfirst=True)
            except sa.exc.SQLAlchemyError:
                if not sa.inspect(engine).has_table(self.table.name):
                    raise  # not another process creating it at the same moment
            self._ready.add(engine)
            self._ready_apps.add(app)

    def claim(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        ttl: float,
        presumed: StoredAnswer | None = None,
    ) -> Claim:
        """Insert the key's row in ``db.session``'s transaction, as it reads after the commit:
        ``done``, with the ``presumed`` answer or without one (see the module docstring); or
        report the row that holds the key. An expired row is taken over as if it were absent."""
        self.ensure_table()
        session = self._db().session
        table, c = self.table, self.table.c
        now = _utcnow()
        values = {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "state": DONE,  # as it reads after a plain commit; see the module docstring
            "status": None if presumed is None else presumed.status,
            "headers": None if presumed is None else presumed.headers_json(),
            "body": None if presumed is None else presumed.body,
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl),
        }
        new = Claim("new", scope, key, fingerprint, ttl, self, kept=presumed)
        for _ in range(5):  # the row can vanish between statements (rollback, purge)
            if self._insert(session, values):
                return self._opened(session, new)
            this = sa.and_(c.scope == scope, c.key == key)  # only when the key is taken
            # Flask-SQLAlchemy routes a SELECT to the default bind unless told the table.
            found = session.execute(sa.select(table).where(this), bind_arguments={"clause": table})
            row = found.one_or_none()
            if row is None:
                continue
            if row.expires_at <= now:
                takeover = sa.update(table).where(this, c.expires_at <= now)
                if _rowcount(session.execute(takeover.values(**values))):
                    return self._opened(session, new)
                continue
            return self._outcome(row, fingerprint, ttl, now)
        raise RuntimeError(f"idempotency key {key!r} could not be claimed")

    def _opened(self, session: Any, claim: Claim) -> Claim:
        """Remember ``claim`` as open in ``session`` until :meth:`complete` or :meth:`release`."""
        info = session.info
        opened = info.get(_OPEN_CLAIMS)
        if opened is None:
            opened = info[_OPEN_CLAIMS] = {}
        opened[(claim.scope, claim.key)] = (self, claim)
        return claim

    def _mark_in_flight(self, session: Any, claim: Claim) -> None:
        self._run(
            self._connection(session),
            self._in_flight,
            {"w_scope": claim.scope, "w_key": claim.key, "w_fingerprint": claim.fingerprint},
        )

    def _insert(self, session: Any, values: Mapping[str, Any]) -> bool:
        connection = self._connection(session)
        claim = self._claims.get(connection.dialect.name)
        if claim is not None:
            return self._run(connection, claim, values) == 1
        try:
            with session.begin_nested():
                session.execute(sa.insert(self.table).values(**values))
        except sa.exc.IntegrityError:
            return False
        return True

    def _outcome(self, row: Any, fingerprint: str, ttl: float, now: datetime) -> Claim:
        def claim(outcome: Outcome, answer: StoredAnswer | None = None) -> Claim:
            return Claim(outcome, row.scope, row.key, fingerprint, ttl, self, answer)

        if row.fingerprint != fingerprint:
            return claim("mismatch")
        if row.state == DONE:
            if row.status is None:  # headers: the tags the body revalidated, for the re-render
                listed = json.loads(row.headers) if row.headers else ()
                tags = frozenset(t for t in listed if isinstance(t, str))
                return Claim("rerender", row.scope, row.key, fingerprint, ttl, self, tags=tags)
            return claim("replay", StoredAnswer.from_parts(row.status, row.headers, row.body))
        # Visible before its answer: the session was committed in the middle of the action.
        if (now - row.created_at).total_seconds() < self.pending_grace:
            return claim("conflict")
        return claim("rerender")

    def complete(self, claim: Claim, answer: StoredAnswer | None) -> None:
        """Mark the key done with its answer, in ``db.session``'s transaction: call it before the
        commit (after it, nothing would commit this write). Without an answer, ``headers`` keeps
        the claim's revalidated tags instead (a JSON list), for the re-render. A row still as
        inserted needs no write when it holds this answer already (the presumed one), or when
        there is neither an answer nor tags to keep and it was inserted without an answer."""
        session = self._db().session
        opened = session.info.get(_OPEN_CLAIMS)
        still_open = opened is not None and opened.pop((claim.scope, claim.key), None) is not None
        if still_open and (
            (answer is claim.kept or answer == claim.kept)
            if answer is not None
            else (not claim.tags and claim.kept is None)
        ):
            return
        if answer is not None:
            headers: str | None = answer.headers_json()
        else:
            headers = json.dumps(sorted(claim.tags)) if claim.tags else None
        params = {
            "w_scope": claim.scope,
            "w_key": claim.key,
            "w_fingerprint": claim.fingerprint,
            "v_status": None if answer is None else answer.status,
            "v_headers": headers,
            "v_body": None if answer is None else answer.body,
            "v_expires_at": _utcnow() + timedelta(seconds=claim.ttl),
        }
        self._run(self._connection(session), self._answer, params)

    def release(self, claim: Claim) -> None:
        """Nothing to write: the rollback of the action's transaction removed the claim, and
        after a commit the key must stay taken. The claim is no longer open."""
        opened = self._db().session.info.get(_OPEN_CLAIMS)
        if opened:
            opened.pop((claim.scope, claim.key), None)

    def purge_expired(self) -> int:
        """Delete expired rows; the number deleted."""
        self.ensure_table()
        with self.engine().begin() as conn:
            result = conn.execute(sa.delete(self.table).where(self.table.c.expires_at <= _utcnow()))
        return result.rowcount


def _rowcount(result: Any) -> int:
    return cast("CursorResult[Any]", result).rowcount


class _DriverSQL:
    """One prebuilt statement compiled for one dialect, run with ``exec_driver_sql``: the SQL
    string, the values of its literal binds (``state=DONE``), the parameter order of a positional
    paramstyle, and the bind processors of the columns' types, applied per run as Core applies
    them (``LargeBinary`` on psycopg, ``DateTime`` on SQLite)."""

    __slots__ = ("defaults", "order", "processors", "sql")

    def __init__(self, statement: Any, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positional else None
        )
        self.defaults: dict[str, Any] = {}
        self.processors: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            if not bind.required:
                self.defaults[name] = bind.value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def run(self, connection: sa.Connection, values: Mapping[str, Any]) -> int:
        params = {**self.defaults, **values}
        for name, processor in self.processors.items():
            params[name] = processor(params[name])
        order = self.order
        result = connection.exec_driver_sql(
            self.sql, params if order is None else tuple(params[name] for name in order)
        )
        return _rowcount(result)


# -- Redis -----------------------------------------------------------------------------------------

# The value is "<owner token>\n<json>": only the request that claimed a key completes or frees it.
_COMPLETE = """
if string.sub(redis.call('GET', KEYS[1]) or '', 1, #ARGV[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1
end
return 0
"""
# The same, and then the tag versions the action invalidated (KEYS[2] is their hash; every tag
# is incremented whoever owns the key: the action's effects happened).
_COMPLETE_AND_BUMP = """
local done = 0
if string.sub(redis.call('GET', KEYS[1]) or '', 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  done = 1
end
for i = 4, #ARGV do
  redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
end
return done
"""
_RELEASE = """
if string.sub(redis.call('GET', KEYS[1]) or '', 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStore:
    """Keys in Redis (redis-py), for actions whose writes are not in the app's database.

    :param client: a ``redis.Redis`` client or a URL.
    :param lease: seconds an unfinished claim holds its key; a worker that dies mid-body frees
        it then (and a retry runs the body again), so keep it above the slowest action.

    >>> store = RedisStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    >>> app.config["HX_ACTIONS_IDEMPOTENCY_STORE"] = store  # doctest: +SKIP
    """

    transactional = False

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "hx-actions:idempotency:",
        lease: float = 300.0,
    ) -> None:
        if isinstance(client, str):
            import redis as redis_module

            client = redis_module.Redis.from_url(client)
        self.client = client
        self.prefix = prefix
        self.lease = lease
        self._complete = client.register_script(_COMPLETE)
        self._complete_and_bump = client.register_script(_COMPLETE_AND_BUMP)
        self._release = client.register_script(_RELEASE)

    def _name(self, scope: str, key: str) -> str:
        return f"{self.prefix}{scope}:{key}"

    def claim(self, scope: str, key: str, fingerprint: str, ttl: float) -> Claim:
        """``SET NX PX``: the key for this request, or the outcome of the one that has it."""
        name = self._name(scope, key)
        token = f"{secrets.token_hex(16)}\n"
        value = token + json.dumps({"state": IN_FLIGHT, "fingerprint": fingerprint})
        lease_ms = max(1, int(min(self.lease, ttl) * 1000))
        for _ in range(5):  # the key can expire or be freed between SET and GET
            if self.client.set(name, value, nx=True, px=lease_ms):
                return Claim("new", scope, key, fingerprint, ttl, self, token=token)
            raw = cast("bytes | None", self.client.get(name))
            if raw is not None:
                return self._outcome(raw, scope, key, fingerprint, ttl)
        raise RuntimeError(f"idempotency key {key!r} could not be claimed")

    def _outcome(self, raw: bytes, scope: str, key: str, fingerprint: str, ttl: float) -> Claim:
        data = json.loads(raw.split(b"\n", 1)[1])
        if data["fingerprint"] != fingerprint:
            return Claim("mismatch", scope, key, fingerprint, ttl, self)
        if data["state"] == IN_FLIGHT:
            return Claim("conflict", scope, key, fingerprint, ttl, self)
        if data.get("status") is None:
            tags = frozenset(data.get("tags", ()))
            return Claim("rerender", scope, key, fingerprint, ttl, self, tags=tags)
        answer = StoredAnswer.from_parts(
            data["status"], json.dumps(data["headers"]), base64.b64decode(data["body"])
        )
        return Claim("replay", scope, key, fingerprint, ttl, self, answer)

    def complete(self, claim: Claim, answer: StoredAnswer | None) -> None:
        """Replace the claim by the answer, kept for the claim's TTL (only if still ours). Call it
        once the action's effects happened (after any database commit)."""
        value, ttl_ms = self._done_value(claim, answer)
        self._complete(keys=[self._name(claim.scope, claim.key)], args=[claim.token, value, ttl_ms])

    def complete_and_bump(
        self, claim: Claim, answer: StoredAnswer | None, hash_key: str, tags: Iterable[str]
    ) -> None:
        """:meth:`complete`, and the increment of ``tags`` in the tag-version hash ``hash_key``
        (``RedisTagVersions`` on this same client), in one round trip."""
        value, ttl_ms = self._done_value(claim, answer)
        self._complete_and_bump(
            keys=[self._name(claim.scope, claim.key), hash_key],
            args=[claim.token, value, ttl_ms, *sorted(tags)],
        )

    def _done_value(self, claim: Claim, answer: StoredAnswer | None) -> tuple[str, int]:
        data: dict[str, Any] = {"state": DONE, "fingerprint": claim.fingerprint, "status": None}
        if answer is None and claim.tags:
            data["tags"] = sorted(claim.tags)
        if answer is not None:
            data.update(
                status=answer.status,
                headers=[list(h) for h in answer.headers],
                body=base64.b64encode(answer.body).decode(),
            )
        value = claim.token + json.dumps(data, separators=(",", ":"))
        return value, max(1, int(claim.ttl * 1000))

    def release(self, claim: Claim) -> None:
        """Delete the claim (only if still ours), so a retry runs the action."""
        self._release(keys=[self._name(claim.scope, claim.key)], args=[claim.token])

    def purge_expired(self) -> int:
        """Nothing to delete: Redis expires the keys itself."""
        return 0


__all__ = ["TABLE_NAME", "RedisStore", "SQLAlchemyStore"]
