"""The demo's tables: users, their todos and the files attached to them."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


def _now() -> datetime:
    return datetime.now(UTC)


class User(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Todo(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="todo",
        cascade="all, delete-orphan",
        order_by="Attachment.id",
        # The row lists names and sizes only: never load the bytes to render it.
        lazy="selectin",
    )


class Attachment(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    todo_id: Mapped[int] = mapped_column(ForeignKey("todo.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    todo: Mapped[Todo] = relationship(back_populates="attachments")


#: The demo users, shown on the sign-in page.
DEMO_USERS = (("alice", "alice-password"), ("bob", "bob-password"))


def seed() -> None:
    """Create the demo users once."""
    existing = set(db.session.scalars(db.select(User.username)))
    for username, password in DEMO_USERS:
        if username not in existing:
            user = User(username=username)
            user.set_password(password)
            db.session.add(user)
    db.session.commit()
