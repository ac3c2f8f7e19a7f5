"""The action body's database transaction: commit on success, roll back on anything else.

When the app uses Flask-SQLAlchemy (``app.extensions["sqlalchemy"]``) and
``HX_ACTIONS_SQLALCHEMY_TRANSACTIONS`` is on, the body runs inside the request's session and the
pipeline commits it after an ``ok``/redirect result, or rolls it back after ``fail``,
``not_found`` or an exception. Without Flask-SQLAlchemy this is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def transaction(app: Flask) -> Iterator[Transaction]:
    session = sqlalchemy_session(app)
    tx = Transaction(session=session)
    if session is None:
        yield tx
        return
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
