"""Todos: pages, actions and fragments. Every todo belongs to one user; another user's todo is
answered as if it did not exist (404)."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from flask import abort, render_template, send_file
from marshmallow import Schema, fields, pre_load, validate
from sqlalchemy import func
from werkzeug.utils import secure_filename

from flask_hx_actions import ActionsBlueprint, FileUpload, Upload, fail, not_found, ok

from .auth import current_user_id, login_required_page
from .models import Attachment, Todo, db

todos = ActionsBlueprint("todos", __name__, url_prefix="/todos")

ATTACHMENT_TYPES = {"text/plain", "image/png", "image/jpeg", "application/pdf"}


# -- schemas -------------------------------------------------------------------------------------


class TitleSchema(Schema):
    title = fields.String(
        required=True, validate=validate.Length(min=1, max=100), metadata={"label": "Title"}
    )

    @pre_load
    def strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if isinstance(data.get("title"), str):
            data = {**data, "title": data["title"].strip()}
        return data


class AttachSchema(Schema):
    file = FileUpload(
        required=True,
        max_size=1_000_000,
        content_types=ATTACHMENT_TYPES,
        metadata={"label": "File"},
    )


# -- helpers -------------------------------------------------------------------------------------


def own_todo(todo_id: int) -> Todo | None:
    """The signed-in user's todo ``todo_id``, or ``None`` (missing or someone else's)."""
    todo = db.session.get(Todo, todo_id)
    if todo is None or todo.owner_id != current_user_id():
        return None
    return todo


def _title_taken(title: str, *, except_id: int | None = None) -> bool:
    query = db.select(Todo.id).filter_by(owner_id=current_user_id(), title=title)
    if except_id is not None:
        query = query.filter(Todo.id != except_id)
    return db.session.scalar(query.limit(1)) is not None


_DUPLICATE = {"title": ["You already have a todo with this title."]}


# -- pages ---------------------------------------------------------------------------------------


@todos.get("/")
@login_required_page
def index() -> str:
    return render_template("todos/index.html")


@todos.get("/attachments/<int:attachment_id>")
def download(attachment_id: int) -> Any:
    user_id = current_user_id()
    attachment = db.session.get(Attachment, attachment_id)
    if user_id is None or attachment is None or attachment.todo.owner_id != user_id:
        abort(404)  # someone else's file is answered like a missing one
    response = send_file(
        BytesIO(attachment.data),
        mimetype=attachment.content_type,
        as_attachment=True,
        download_name=attachment.filename,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- actions -------------------------------------------------------------------------------------


@todos.action("add", schema=TitleSchema, tags=["todos"], fragment="todo-list", login_required=True)
def add(title: str) -> Any:
    if _title_taken(title):
        return fail("duplicate", errors=_DUPLICATE)
    db.session.add(Todo(owner_id=current_user_id(), title=title))
    return ok()


@todos.action(
    "toggle",
    tags=lambda id: [f"todo:{id}", "stats"],
    fragment="todo",
    login_required=True,
)
def toggle(id: int) -> Any:
    todo = own_todo(id)
    if todo is None:
        return not_found()
    todo.done = not todo.done
    return ok(done=todo.done)


@todos.action(
    "rename",
    schema=TitleSchema,
    tags=lambda id: [f"todo:{id}"],
    fragment="todo",
    login_required=True,
)
def rename(id: int, title: str) -> Any:
    todo = own_todo(id)
    if todo is None:
        return not_found()
    if _title_taken(title, except_id=id):
        return fail("duplicate", errors=_DUPLICATE)
    todo.title = title
    return ok()


@todos.action("delete", tags=["todos", "stats"], fragment="todo-list", login_required=True)
def delete(id: int) -> Any:
    todo = own_todo(id)
    if todo is None:
        return not_found()
    db.session.delete(todo)
    return ok()


@todos.action(
    "attach",
    schema=AttachSchema,
    tags=lambda id: [f"todo:{id}"],
    fragment="todo",
    login_required=True,
    max_content_length=2_000_000,
)
def attach(id: int, file: Upload) -> Any:
    todo = own_todo(id)
    if todo is None:
        return not_found()
    # The browser's file name is untrusted: keep a safe version of it for the download.
    name = secure_filename(file.filename)[:200] or "attachment"
    todo.attachments.append(
        Attachment(filename=name, content_type=file.content_type, size=file.size, data=file.data)
    )
    return ok()


# -- fragments -----------------------------------------------------------------------------------


@todos.fragment("todo-list", template="todos/_list.html", tags=["todos"], login_required=True)
def todo_list() -> dict[str, Any]:
    query = db.select(Todo).filter_by(owner_id=current_user_id()).order_by(Todo.id)
    return {"todos": db.session.scalars(query).all()}


@todos.fragment(
    "todo",
    template="todos/_todo.html",
    tags=lambda id: [f"todo:{id}"],
    element="li",
    login_required=True,
    authorize=lambda id: own_todo(id) is not None,
)
def todo(id: int, *, todo: Todo | None = None) -> dict[str, Any]:
    # todo: given by the list, which loaded the user's todos already; after an action, loaded here.
    return {"todo": todo if todo is not None else own_todo(id)}


@todos.fragment(
    "stats", template="todos/_stats.html", tags=["stats", "todos"], element="p", login_required=True
)
def stats() -> dict[str, Any]:
    owner = Todo.owner_id == current_user_id()
    total = db.session.scalar(db.select(func.count(Todo.id)).where(owner)) or 0
    done = db.session.scalar(db.select(func.count(Todo.id)).where(owner, Todo.done)) or 0
    return {"total": total, "done": done}
