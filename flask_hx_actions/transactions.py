"""The action body's database transaction: commit on success, roll back on anything else.

When the app uses Flask-SQLAlchemy (``app.extensions["sqlalchemy"]``) and
``HX_ACTIONS_SQLALCHEMY_TRANSACTIONS`` is on, the body runs inside the request's session and the
pipeline commits it after an ``ok``/redirect result, or rolls it back after ``fail``,
``not_found`` or an exception. Without Flask-SQLAlchemy this is a no-op.

Reads after the commit
----------------------
An htmx success renders its fragments after the commit, from the committed state, and so does
a replay's re-render after its claim's rollback (:func:`reads_after_commit`, in
``responses.success``). In a transaction of their own those reads would cost two round
trips that carry nothing: psycopg's ``BEGIN`` before the first ``SELECT`` and the ``ROLLBACK``
when the request ends and the connection goes back to the pool. On PostgreSQL at ``READ
COMMITTED`` (its default) every statement sees what was committed when it started, in a
transaction or not, so the renders read in autocommit mode instead: the session's connection is
taken with SQLAlchemy's ``isolation_level="AUTOCOMMIT"`` execution option (SQLAlchemy sets the
driver back when the connection returns to the pool) and given back as soon as the fragments
are rendered. Autoflush is off meanwhile and the session is rolled back afterwards, so an
object a fragment changes is never written (as before, when the request's end rolled it back).
At a stricter level (``REPEATABLE READ``, ``SERIALIZABLE``: one snapshot for all the reads of a
transaction), on other databases and on other binds, the reads run in a transaction as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from flask import Flask


@dataclass(slots=True)
class Transaction:
    #: Set by the pipeline once the result is known: commit (True) or roll back (False).
    commit: bool = False
    session: Any = None


def sqlalchemy_session(app: Flask) -> Any:
    """The Flask-SQLAlchemy session the pipeline manages, or ``None``."""
    if not app.config["HX_ACTIONS_SQLALCHEMY_TRANSACTIONS"]:
        return None
    db = app.extensions.get("sqlalchemy")
    return None if db is None else db.session


def transaction(app: Flask) -> AbstractContextManager[Transaction]:
    """The body's transaction: the session's, or nothing to commit without Flask-SQLAlchemy."""
    session = sqlalchemy_session(app)
    if session is None:
        return _NoTransaction()
    return _session_transaction(session)


class _NoTransaction:
    """A class rather than a generator context manager: it runs on every action request of an
    app without Flask-SQLAlchemy, and costs a third as much."""

    __slots__ = ()

    def __enter__(self) -> Transaction:
        return Transaction()

    def __exit__(self, *exc_info: object) -> None:
        return None


@contextmanager
def _session_transaction(session: Any) -> Iterator[Transaction]:
    tx = Transaction(session=session)
    try:
        yield tx
    except BaseException:
        session.rollback()
        raise
    if tx.commit:
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise
    else:
        session.rollback()


def reads_after_commit(app: Flask) -> AbstractContextManager[None]:
    """Around the renders of an htmx success, once the transaction ended: reads in autocommit
    mode on PostgreSQL at ``READ COMMITTED`` (see the module docstring); otherwise as before."""
    scoped = sqlalchemy_session(app)
    if scoped is None:
        return _AS_BEFORE
    session = scoped()  # the request's Session behind Flask-SQLAlchemy's scoped_session
    if session.get_transaction() is not None:  # something began one since the commit
        return _AS_BEFORE
    # The default engine, the one a fragment's plain query uses; none with named binds only.
    engine = app.extensions["sqlalchemy"].engines.get(None)
    if engine is None:
        return _AS_BEFORE
    reads = _reads_in_autocommit.get(engine)
    if reads is None:
        reads = _reads_in_autocommit[engine] = _read_committed_postgresql(engine)
    return _autocommit_reads(session) if reads else _AS_BEFORE


_AS_BEFORE: AbstractContextManager[None] = nullcontext()
#: Per engine: does it read at PostgreSQL's READ COMMITTED (asked once, on a connection of its own)?
_reads_in_autocommit: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _read_committed_postgresql(engine: Any) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as connection:  # the engine's own setting included
        return bool(connection.get_isolation_level() in ("READ COMMITTED", "READ UNCOMMITTED"))


@contextmanager
def _autocommit_reads(session: Any) -> Iterator[None]:
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        with session.no_autoflush:
            yield
    finally:
        session.rollback()  # nothing to roll back: gives the connection back, undoes changes
