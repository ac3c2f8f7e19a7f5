"""The workload's data (../../shared/bench/WORKLOAD.md), in memory, one copy per worker process.

Both benchmark apps import it, so they serve the same data from the same kind of store.
``WIDGETS`` (environment, default 20) sets the number of widgets: 200 makes the page about ten
times heavier without changing what a toggle touches.

``BENCH_SHARED_DATA=<file>`` shares the done flags between the worker processes through that file,
mapped into memory (``mmap``, created with the initial flags when missing): a toggle flips the
flag under a file lock and bumps a generation counter; ``refresh()`` (before each request) copies
the flags into ``TODOS`` when the counter moved. The fragment cache needs it: with the cache in
Redis, a row cached by one worker must show the data every worker sees.

``BENCH_DATABASE_URL=<SQLAlchemy URL>`` keeps the todos in a database instead (the widgets, which
never change, stay in memory), through Flask-SQLAlchemy's ORM as the demo uses it: the page loads
the 200 todos in one query, and a row fragment's ``get(id)`` finds its todo in the session's
identity map; a toggle loads the todo, flips it and commits (the library's transaction, or by hand
in the baseline). ``init_app(app)`` sets it up in an app; ``seed(url)`` (``python data.py seed
URL``) creates the table with the initial todos, as ``bench/run`` does before a server starts.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import sys
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

N_TODOS = 200
N_ITEMS = 50
N_WIDGETS = int(os.environ.get("WIDGETS", "20"))


def make_todos() -> dict[int, dict[str, Any]]:
    return {
        i: {
            "id": i,
            "title": f"Todo #{i}: write section {i} of the quarterly report",
            "done": i % 3 == 0,
        }
        for i in range(1, N_TODOS + 1)
    }


def make_widgets(count: int = N_WIDGETS) -> list[dict[str, Any]]:
    return [
        {
            "id": w,
            "title": f"Widget {w}",
            "items": [
                {"id": i, "label": f"Widget {w} item {i}", "value": (w * 31 + i * 17) % 1000}
                for i in range(1, N_ITEMS + 1)
            ],
        }
        for w in range(1, count + 1)
    ]


TODOS = make_todos()
WIDGETS = make_widgets()

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "")


def all_todos() -> Any:
    """The todos in id order (each with ``id``, ``title`` and ``done``)."""
    if DATABASE_URL:
        return _db.session.scalars(sa.select(Todo).order_by(Todo.id)).all()
    return TODOS.values()


def get(id: int) -> Any:
    """One todo, or None."""
    if DATABASE_URL:
        return _db.session.get(Todo, id)
    return TODOS.get(id)


def done_count() -> int:
    if DATABASE_URL:
        return int(_db.session.scalar(sa.select(sa.func.count()).where(Todo.done)) or 0)
    return sum(1 for t in TODOS.values() if t["done"])


def toggle(id: int) -> Any:
    """Flip todos[id].done (in this process, in the shared file, or in the database session,
    which the caller commits); the todo, or None."""
    if DATABASE_URL:
        found = _db.session.get(Todo, id)
        if found is not None:
            found.done = not found.done
        return found
    todo = TODOS.get(id)
    if todo is None:
        return None
    if _shared is None:
        todo["done"] = not todo["done"]
    else:
        _shared.toggle(id)
    return todo


def commit() -> None:
    """What a hand-wired view does after a write: commit the database session (in memory,
    nothing)."""
    if DATABASE_URL:
        _db.session.commit()


def session() -> Any:
    """The database session of the current app context (``BENCH_DATABASE_URL`` only)."""
    return _db.session


def init_app(app: Any) -> None:
    """With ``BENCH_DATABASE_URL``, Flask-SQLAlchemy on that database (in memory, nothing)."""
    if DATABASE_URL:
        app.config["SQLALCHEMY_DATABASE_URI"] = DATABASE_URL
        _db.init_app(app)


def seed(url: str) -> None:
    """(Re)create the todo table at ``url`` with the initial todos (66 of 200 done)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            Todo.__table__.drop(conn, checkfirst=True)
            Todo.__table__.create(conn)
            conn.execute(sa.insert(Todo.__table__), list(make_todos().values()))
    finally:
        engine.dispose()


class SharedFlags:
    """Done flags in a file mapped by every worker: 8 bytes of generation, then one byte a todo."""

    HEADER = struct.Struct("<Q")

    def __init__(self, path: str) -> None:
        self._path = path
        self._open()

    def _open(self) -> None:
        # Per process: a flock belongs to the open file, so workers forked from a preloading
        # gunicorn master must not share the master's descriptor.
        self._pid = os.getpid()
        size = self.HEADER.size + N_TODOS
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < size:
                flags = bytes(1 if t["done"] else 0 for t in make_todos().values())
                os.pwrite(self._fd, self.HEADER.pack(0) + flags, 0)
            self._map = mmap.mmap(self._fd, size)
        self._seen = -1
        self.refresh()

    def _locked(self) -> Any:
        fd = self._fd

        class Lock:
            def __enter__(self) -> None:
                fcntl.flock(fd, fcntl.LOCK_EX)

            def __exit__(self, *exc: object) -> None:
                fcntl.flock(fd, fcntl.LOCK_UN)

        return Lock()

    def refresh(self) -> None:
        if self._pid != os.getpid():
            self._open()
            return
        generation = self.HEADER.unpack_from(self._map, 0)[0]
        if generation == self._seen:
            return
        flags = self._map[self.HEADER.size :]
        for i, todo in TODOS.items():
            todo["done"] = flags[i - 1] == 1
        self._seen = generation

    def toggle(self, id: int) -> None:
        if self._pid != os.getpid():
            self._open()
        with self._locked():
            self.refresh()
            offset = self.HEADER.size + id - 1
            self._map[offset] = 0 if self._map[offset] else 1
            generation = self.HEADER.unpack_from(self._map, 0)[0] + 1
            self.HEADER.pack_into(self._map, 0, generation)
            self.refresh()


class _Base(DeclarativeBase):
    pass


class Todo(_Base):
    __tablename__ = "todo"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    title: Mapped[str] = mapped_column(sa.String(200))
    done: Mapped[bool]


_db = SQLAlchemy(model_class=_Base)

SHARED = os.environ.get("BENCH_SHARED_DATA", "")
_shared = SharedFlags(SHARED) if SHARED else None


def refresh() -> None:
    """Before each request: take the other workers' toggles (a no-op without shared data)."""
    if _shared is not None:
        _shared.refresh()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "seed":
        raise SystemExit("usage: python data.py seed <SQLAlchemy URL>")
    seed(sys.argv[2])
