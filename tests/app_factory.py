"""A small app written against the public API only, used by the contract tests.

Items (a to-do-like list with owners) and attachments live in a Flask-SQLAlchemy SQLite file, so a
test can check in the database that a refused or failed request wrote nothing. Every action body
bumps ``harness.calls[<action>]``: a refusal must leave that counter alone ("no user code ran").

Actions (blueprint ``items``, ``/items/<name>``):

========== ===================================================================================
add        marshmallow schema (title, priority); tags ``items``; fragment ``item-list``
toggle     bound ``id``; tags ``item:<id>`` + ``stats`` (a function); fragment ``item-row``
rename     bound ``id`` + WTForms ``RenameForm``; fragment ``item-row``
reject     writes an item, then ``fail("DUPLICATE", ...)`` echoing the title (rollback, escaping)
finish     ``redirect_to("index", tab="done")``
remove     bound ``id``; ``not_found()`` for a missing item; no fragment (``HX-Reswap: none``)
explode    writes an item, then raises (500, rollback, request id)
add_later  ``async def`` version of ``add``
upload     ``FileUpload(max_size=2000, content_types=...)``, ``max_content_length=8192``
claim      ``login_required=True``, bound ``id``: the signed-in user becomes the owner
archive    ``authorize=`` the item's owner only
mark_all   no arguments, no fragment; ``revalidate()`` of every row + tags ``stats``
profile    a wide schema (password, checkbox, select, 14 notes) for old input and cookie size
========== ===================================================================================

Fragments: ``item-list`` (tags ``items``), ``item-row`` (``element="li"``, tags ``item:<id>``),
``item-note`` (tags ``item:<id>``, ``authorize=`` the item's owner only), ``stats``
(``element="p"``, tags ``stats items``). ``GET /`` is the page; ``GET /show/<name>``
renders any template of ``harness.templates`` (tests add their own).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from flask import Flask, render_template, session
from flask.sessions import SecureCookieSessionInterface
from flask_sqlalchemy import SQLAlchemy
from jinja2 import DictLoader
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from wtforms import Form, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from flask_hx_actions import (
    ActionsBlueprint,
    FileUpload,
    HxActions,
    fail,
    not_found,
    ok,
    redirect_to,
    revalidate,
)
from flask_hx_actions.testing import ActionClient


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Item(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    priority: Mapped[int] = mapped_column(default=1)
    done: Mapped[bool] = mapped_column(default=False)
    owner: Mapped[str | None] = mapped_column(sa.String(50), default=None)


class Attachment(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(sa.String(200))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    size: Mapped[int]


# -- schemas -------------------------------------------------------------------------------------


class NewItemSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    priority = fields.Integer(load_default=1, validate=validate.Range(min=1, max=5))


class RenameForm(Form):
    title = StringField("Title", [DataRequired(), Length(max=100)])
    submit = SubmitField("Rename")


class UploadSchema(Schema):
    file = FileUpload(required=True, max_size=2000, content_types={"text/plain", "image/png"})
    caption = fields.String(load_default="")


NOTE_FIELDS = [f"note{i:02d}" for i in range(1, 15)]

ProfileSchema = Schema.from_dict(
    {
        "name": fields.String(required=True, validate=validate.Length(min=1, max=50)),
        "bio": fields.String(load_default=""),
        "subscribe": fields.Boolean(load_default=False),
        "color": fields.String(load_default="red", validate=validate.OneOf(["red", "green"])),
        "password": fields.String(required=True, validate=validate.Length(min=8)),
        **{name: fields.String(load_default="") for name in NOTE_FIELDS},
    },
    name="ProfileSchema",
)


# -- templates -----------------------------------------------------------------------------------

TEMPLATES: dict[str, str] = {
    "page.html": (
        "<!doctype html><html><head>{{ hx_actions_head() }}</head><body>\n"
        '{% call action_form("items.add") %}{{ field("title", label="Title") }}'
        '{{ field("priority", type="number") }}<button>Add</button>{% endcall %}\n'
        '{% call action_form("items.reject") %}{{ field("title") }}'
        "<button>Try</button>{% endcall %}\n"
        '{% call action_form("items.profile") %}{{ field("name") }}'
        '{{ field("password", type="password") }}{{ field("bio", type="textarea") }}'
        "<button>Save</button>{% endcall %}\n"
        '{{ fragment("item-list") }}\n{{ fragment("stats") }}\n'
        '{{ action_form("items.mark_all", label="Mark all done") }}\n'
        "</body></html>"
    ),
    "items/_list.html": (
        '<ul>{% for item in items %}{{ fragment("item-row", id=item.id) }}{% endfor %}</ul>'
    ),
    "items/_row.html": (
        '<span class="title">{{ item.title }}</span>{% if item.done %} (done){% endif %}'
        '{{ action_form("items.toggle", bind={"id": item.id}, label="Toggle") }}'
        '{% call action_form("items.rename", bind={"id": item.id}) %}'
        '{{ field("title", value=item.title) }}<button>Rename</button>{% endcall %}'
    ),
    "items/_stats.html": "{{ done }} of {{ total }} done",
    "items/_note.html": "Private note of {{ item.owner }} on {{ item.title }}",
}


# -- the harness ---------------------------------------------------------------------------------


@dataclass
class Harness:
    """The app plus what tests look at: body calls, hook calls and the database."""

    app: Flask
    templates: dict[str, str]
    calls: Counter[str] = field(default_factory=Counter)
    hooks: Counter[str] = field(default_factory=Counter)

    @property
    def body_calls(self) -> int:
        return sum(self.calls.values())

    def client(self, **kwargs: Any) -> ActionClient:
        client = self.app.test_client(**kwargs)
        assert isinstance(client, ActionClient)
        return client

    def add_item(self, title: str, *, done: bool = False, owner: str | None = None) -> int:
        with self.app.app_context():
            item = Item(title=title, done=done, owner=owner)
            db.session.add(item)
            db.session.commit()
            return int(item.id)

    def items(self) -> list[tuple[int, str, int, bool, str | None]]:
        with self.app.app_context():
            rows = db.session.execute(sa.select(Item).order_by(Item.id)).scalars().all()
            return [(i.id, i.title, i.priority, i.done, i.owner) for i in rows]

    def item(self, item_id: int) -> tuple[int, str, int, bool, str | None] | None:
        return next((row for row in self.items() if row[0] == item_id), None)

    def attachments(self) -> list[tuple[str, str, int]]:
        with self.app.app_context():
            rows = db.session.execute(sa.select(Attachment).order_by(Attachment.id)).scalars()
            return [(a.filename, a.content_type, a.size) for a in rows]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything in the database: equal before and after means nothing was written."""
        return (self.items(), self.attachments())

    def close(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


Order = Literal["before", "after"] | None


def create_app(
    db_path: Path,
    *,
    csrf_protect: Order = None,
    form_hook: Order = None,
    **config: Any,
) -> Harness:
    """A fresh app on ``db_path``.

    :param csrf_protect: set up Flask-WTF's ``CSRFProtect(app)`` before or after ``HxActions(app)``.
    :param form_hook: register an app ``before_request`` hook that reads ``request.form``,
        before or after ``HxActions(app)`` (it counts its calls in ``harness.hooks["form"]``).
    """
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="contract-secret",
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{db_path}",
    )
    app.config.update(config)
    app.test_client_class = ActionClient
    templates = dict(TEMPLATES)
    app.jinja_loader = DictLoader(templates)
    harness = Harness(app=app, templates=templates)
    calls, hooks = harness.calls, harness.hooks

    def read_form() -> None:
        from flask import request

        if request.method == "POST":
            hooks["form"] += 1
            request.form  # noqa: B018 - reading the body is the point

    if form_hook == "before":
        app.before_request(read_form)
    if csrf_protect == "before":
        from flask_wtf.csrf import CSRFProtect

        CSRFProtect(app)
    db.init_app(app)
    HxActions(app, identity=lambda: session.get("user"))
    if csrf_protect == "after":
        from flask_wtf.csrf import CSRFProtect

        CSRFProtect(app)
    if form_hook == "after":
        app.before_request(read_form)

    bp = ActionsBlueprint("items", __name__, url_prefix="/items")

    @bp.action("add", schema=NewItemSchema, tags=["items"], fragment="item-list")
    def add(title: str, priority: int) -> Any:
        calls["add"] += 1
        item = Item(title=title, priority=priority)
        db.session.add(item)
        db.session.flush()
        return ok(id=item.id)

    @bp.action("toggle", tags=lambda id: [f"item:{id}", "stats"], fragment="item-row")
    def toggle(id: int) -> Any:
        calls["toggle"] += 1
        item = db.session.get(Item, id)
        if item is None:
            return not_found()
        item.done = not item.done
        return None

    @bp.action("rename", schema=RenameForm, tags=lambda id: [f"item:{id}"], fragment="item-row")
    def rename(id: int, title: str) -> Any:
        calls["rename"] += 1
        item = db.session.get(Item, id)
        if item is None:
            return not_found()
        item.title = title
        return ok()

    @bp.action("reject", schema=NewItemSchema, tags=["items"])
    def reject(title: str) -> Any:
        calls["reject"] += 1
        db.session.add(Item(title=title))
        db.session.flush()
        return fail("DUPLICATE", f"{title} already exists", errors={"title": [f"{title} is taken"]})

    @bp.action("finish")
    def finish() -> Any:
        calls["finish"] += 1
        return redirect_to("index", tab="done")

    @bp.action("remove", tags=["items", "stats"])
    def remove(id: int) -> Any:
        calls["remove"] += 1
        item = db.session.get(Item, id)
        if item is None:
            return not_found()
        db.session.delete(item)
        return ok()

    @bp.action("explode", schema=NewItemSchema)
    def explode(title: str) -> Any:
        calls["explode"] += 1
        db.session.add(Item(title=title))
        db.session.flush()
        raise RuntimeError("secret detail: the database password is hunter2")

    @bp.action("add_later", schema=NewItemSchema, tags=["items"], fragment="item-list")
    async def add_later(title: str, priority: int) -> Any:
        calls["add_later"] += 1
        await asyncio.sleep(0)
        item = Item(title=title, priority=priority)
        db.session.add(item)
        db.session.flush()
        return ok(id=item.id)

    @bp.action("upload", schema=UploadSchema, tags=["attachments"], max_content_length=8192)
    def upload(file: Any, caption: str) -> Any:
        calls["upload"] += 1
        db.session.add(
            Attachment(filename=file.filename, content_type=file.content_type, size=file.size)
        )
        return ok(size=file.size, caption=caption)

    @bp.action(
        "claim",
        login_required=True,
        tags=lambda id: [f"item:{id}"],
        fragment="item-row",
    )
    def claim(id: int) -> Any:
        calls["claim"] += 1
        item = db.session.get(Item, id)
        if item is None:
            return not_found()
        item.owner = session["user"]
        return ok()

    def is_owner(id: int) -> bool:
        item, user = db.session.get(Item, id), session.get("user")
        return item is not None and user is not None and item.owner == user

    @bp.action("archive", authorize=is_owner, tags=lambda id: [f"item:{id}"], fragment="item-row")
    def archive(id: int) -> Any:
        calls["archive"] += 1
        item = db.session.get(Item, id)
        item.title = f"[archived] {item.title}"
        return ok()

    @bp.action("mark_all", tags=["stats"])
    def mark_all() -> Any:
        calls["mark_all"] += 1
        items = db.session.execute(sa.select(Item)).scalars().all()
        for item in items:
            item.done = True
        revalidate(*[f"item:{item.id}" for item in items])
        return ok(count=len(items))

    @bp.action("profile", schema=ProfileSchema)
    def profile(**values: Any) -> Any:
        calls["profile"] += 1
        return ok(name=values["name"])

    @bp.fragment("item-list", template="items/_list.html", tags=["items"])
    def item_list() -> dict[str, Any]:
        return {"items": db.session.execute(sa.select(Item).order_by(Item.id)).scalars().all()}

    @bp.fragment(
        "item-row", template="items/_row.html", tags=lambda id: [f"item:{id}"], element="li"
    )
    def item_row(id: int) -> dict[str, Any]:
        return {"item": db.get_or_404(Item, id)}

    @bp.fragment(
        "item-note", template="items/_note.html", tags=lambda id: [f"item:{id}"], authorize=is_owner
    )
    def item_note(id: int) -> dict[str, Any]:
        return {"item": db.get_or_404(Item, id)}

    @bp.fragment("stats", template="items/_stats.html", tags=["stats", "items"], element="p")
    def stats() -> dict[str, Any]:
        items = db.session.execute(sa.select(Item)).scalars().all()
        return {"done": sum(i.done for i in items), "total": len(items)}

    app.register_blueprint(bp)
    app.extensions["contract_actions"] = {
        "add": add,
        "toggle": toggle,
        "rename": rename,
        "reject": reject,
        "finish": finish,
        "remove": remove,
        "explode": explode,
        "add_later": add_later,
        "upload": upload,
        "claim": claim,
        "archive": archive,
        "mark_all": mark_all,
        "profile": profile,
    }

    @app.get("/")
    def index() -> str:
        return render_template("page.html")

    @app.get("/show/<name>")
    def show(name: str) -> str:
        return render_template(name)

    with app.app_context():
        db.create_all()
    return harness


@contextmanager
def contract_app(db_path: Path, **kwargs: Any) -> Iterator[Harness]:
    """``create_app`` plus clean-up of the database engine (no unclosed-connection warnings)."""
    harness = create_app(db_path, **kwargs)
    try:
        yield harness
    finally:
        harness.close()


# -- helpers for tests ---------------------------------------------------------------------------

_RANDOM_VALUES = [
    (re.compile(r'(name="csrf_token" value=")[^"]*(")'), r"\1CSRF\2"),
    (re.compile(r'(name="_hx_key" value=")[^"]*(")'), r"\1KEY\2"),
    (re.compile(r'(name="_hx_bound" value=")[^"]*(")'), r"\1BOUND\2"),
    (re.compile(r'(<meta name="csrf-token" content=")[^"]*(")'), r"\1CSRF\2"),
]


def normalise(html: str) -> str:
    """Replace the per-render random values (CSRF token, idempotency key, bound token)."""
    for pattern, replacement in _RANDOM_VALUES:
        html = pattern.sub(replacement, html)
    return html


class FixedKeySession(SecureCookieSessionInterface):
    """A cookie session signed with its own key, so rotating ``SECRET_KEY`` in a test changes the
    bound-argument signatures only (not the session that holds the CSRF token)."""

    def get_signing_serializer(self, app: Flask) -> Any:
        from itsdangerous import URLSafeTimedSerializer

        return URLSafeTimedSerializer(
            "fixed-session-key",
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )


def session_data(app: Flask, cookie_value: str) -> dict[str, Any]:
    """Decode a session cookie value of ``app`` (to check what the session holds)."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return dict(serializer.loads(cookie_value))


_VOID = frozenset({"input", "br", "img", "meta", "link", "hr", "source", "wbr", "area", "col"})


def top_level(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """The top-level elements of an HTML fragment: ``[(tag, attributes), ...]``."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str | None]]] = []
    depth = 0

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            nonlocal depth
            if depth == 0:
                found.append((tag, dict(attrs)))
            if tag not in _VOID:
                depth += 1

        def handle_endtag(self, tag: str) -> None:
            nonlocal depth
            if tag not in _VOID:
                depth -= 1

        def handle_data(self, data: str) -> None:
            if depth == 0 and data.strip():
                found.append(("#text", {"data": data}))

    parser = Parser()
    parser.feed(html)
    parser.close()
    return found
