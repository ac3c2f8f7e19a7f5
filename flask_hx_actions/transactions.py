"""The action body's database transaction: commit on success, roll back on anything else.

When the app uses Flask-SQLAlchemy (``app.extensions["sqlalchemy"]``) and
``HX_ACTIONS_SQLALCHEMY_TRANSACTIONS`` is on, the body runs inside the request's session and the
pipeline commits it after an ``ok``/redirect result, or rolls it back after ``fail``,
``not_found`` or an exception. Without Flask-SQLAlchemy this is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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
