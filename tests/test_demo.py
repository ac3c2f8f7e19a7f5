"""The demo app (demo/) through the Flask test client: sign-in, todos, ownership, uploads.

CSRF protection stays on (Flask-WTF's CSRFProtect): ActionClient.submit fills the token the way
the rendered form would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import FileStorage
from werkzeug.test import TestResponse, encode_multipart

from demo.app import create_app
from demo.models import Attachment, Todo, User, db
from flask_hx_actions.testing import ActionClient

ROOT = Path(__file__).resolve().parent.parent


PAGE = "http://localhost/todos/"


# -- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'demo.sqlite'}", "TESTING": True}
    )
    app.test_client_class = ActionClient
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> ActionClient:
    return app.test_client()  # type: ignore[return-value]


@pytest.fixture
def alice(app: Flask) -> ActionClient:
    return signed_in(app, "alice")


@pytest.fixture
def bob(app: Flask) -> ActionClient:
    return signed_in(app, "bob")


def signed_in(app: Flask, username: str) -> ActionClient:
    client: ActionClient = app.test_client()  # type: ignore[assignment]
    response = client.submit(
        "auth.sign_in", {"username": username, "password": f"{username}-password"}
    )
    assert response.status_code == 303, response.text
    assert response.location == "/todos/"
    return client


def user_id(app: Flask, username: str) -> int:
    with app.app_context():
        found = db.session.scalar(db.select(User.id).filter_by(username=username))
        assert found is not None
        return found


def make_todo(app: Flask, owner: str, title: str, *, done: bool = False) -> int:
    with app.app_context():
        todo = Todo(owner_id=user_id(app, owner), title=title, done=done)
        db.session.add(todo)
        db.session.commit()
        return todo.id


def todos_of(app: Flask, owner: str) -> list[tuple[int, str, bool]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(Todo).filter_by(owner_id=user_id(app, owner)).order_by(Todo.id)
        )
        return [(t.id, t.title, t.done) for t in rows]


def attachments_of(app: Flask, todo_id: int) -> list[tuple[str, str, bytes]]:
    with app.app_context():
        rows = db.session.scalars(db.select(Attachment).filter_by(todo_id=todo_id))
        return [(a.filename, a.content_type, a.data) for a in rows]


def submit_big_file(
    client: ActionClient,
    todo_id: int,
    size: int,
    *,
    htmx: bool = False,
    referrer: str | None = None,
) -> TestResponse:
    """Submit a ``size``-byte text file to todos.attach, the body encoded in memory.

    (Werkzeug's test client spools multipart bodies over 500 kB to a temporary file that it
    never closes: a ResourceWarning, an error under filterwarnings=error.)
    """
    fields: dict[str, Any] = client.hidden_fields("todos.attach", {"id": todo_id})
    fields["file"] = FileStorage(BytesIO(b"a" * size), "big.txt", content_type="text/plain")
    boundary, body = encode_multipart(fields)
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    if htmx:
        headers |= {"HX-Request": "true", "HX-Trigger": f"hx-todos-attach-{todo_id}"}
    if referrer:
        headers["Referer"] = referrer
    return client.post(
        "/todos/attach",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=headers,
    )


def make_attachment(app: Flask, todo_id: int, data: bytes = b"secret notes") -> int:
    with app.app_context():
        attachment = Attachment(
            todo_id=todo_id,
            filename="notes.txt",
            content_type="text/plain",
            size=len(data),
            data=data,
        )
        db.session.add(attachment)
        db.session.commit()
        return attachment.id


class _ById(HTMLParser):
    """The attributes and text of the element with a given id."""

    def __init__(self, wanted: str) -> None:
        super().__init__()
        self.wanted = wanted
        self.attrs: dict[str, str | None] | None = None
        self.depth = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            if tag not in ("input", "meta", "link", "br", "img"):
                self.depth += 1
        elif dict(attrs).get("id") == self.wanted and self.attrs is None:
            self.attrs = dict(attrs)
            if tag not in ("input", "meta", "link", "br", "img"):
                self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def element(html: str, dom_id: str) -> tuple[dict[str, str | None], str]:
    """(attributes, whitespace-normalised text) of the element ``dom_id``; fails when absent."""
    parser = _ById(dom_id)
    parser.feed(html)
    assert parser.attrs is not None, f"no element with id {dom_id!r}"
    return parser.attrs, " ".join("".join(parser.text).split())


def has_element(html: str, dom_id: str) -> bool:
    return f'id="{dom_id}"' in html


# -- app set-up ----------------------------------------------------------------------------------


def test_demo_users_are_seeded_with_hashed_passwords(app: Flask) -> None:
    with app.app_context():
        users = db.session.scalars(db.select(User).order_by(User.username)).all()
        assert [u.username for u in users] == ["alice", "bob"]
        assert all("password" not in u.password_hash for u in users)
        assert users[0].check_password("alice-password")
        assert not users[0].check_password("bob-password")


def test_create_app_twice_on_the_same_database_seeds_once(tmp_path: Path) -> None:
    config = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'again.sqlite'}"}
    for _ in range(2):
        app = create_app(config)
        with app.app_context():
            assert db.session.scalar(db.select(db.func.count(User.id))) == 2
            db.engine.dispose()


def test_database_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.sqlite"
    monkeypatch.setenv("DEMO_DATABASE_URL", f"sqlite:///{path}")
    app = create_app()
    with app.app_context():
        db.engine.dispose()
    assert path.is_file()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{path}"


def test_default_database_lives_in_the_instance_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEMO_DATABASE_URL", raising=False)
    # The config mapping wins over the default, so this does not touch demo/instance/.
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite'}"})
    with app.app_context():
        db.engine.dispose()
    assert Path(app.instance_path) == ROOT / "demo" / "instance"


@pytest.mark.slow
def test_flask_cli_finds_the_factory(tmp_path: Path) -> None:
    env = {**os.environ, "DEMO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    env.pop("FLASK_APP", None)
    flask = Path(sys.executable).with_name("flask")
    done = subprocess.run(
        [str(flask), "--app", "demo.app", "routes"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for endpoint in (
        "todos.add",
        "todos.attach",
        "todos.download",
        "auth.sign_in",
        "auth.sign_out",
    ):
        assert endpoint in done.stdout


# -- pages and signing in ------------------------------------------------------------------------


def test_root_redirects_by_sign_in_state(client: ActionClient, alice: ActionClient) -> None:
    assert client.get("/").location == "/auth/sign-in"
    assert client.get("/todos/").location == "/auth/sign-in"
    assert alice.get("/").location == "/todos/"
    assert alice.get("/auth/sign-in").location == "/todos/"


def test_sign_in_page_shows_the_demo_users(client: ActionClient) -> None:
    page = client.get("/auth/sign-in")
    assert page.status_code == 200
    for text in ("alice", "alice-password", "bob", "bob-password"):
        assert text in page.text
    assert 'name="csrf_token"' in page.text
    assert '<meta name="csrf-token"' in page.text


def test_sign_in_wrong_password_without_js_keeps_the_user_name_only(client: ActionClient) -> None:
    response = client.submit(
        "auth.sign_in",
        {"username": "alice", "password": "wrong-password-123"},
        referrer="http://localhost/auth/sign-in",
    )
    assert response.status_code == 303
    assert response.location == "/auth/sign-in"
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert "wrong-password-123" not in repr(cookie.decoded_value)

    page = client.get("/auth/sign-in").text
    _, summary = element(page, "hx-auth-sign-in-errors")
    assert summary == "Wrong user name or password."
    attrs, _ = element(page, "hx-auth-sign-in-username")
    assert attrs["value"] == "alice"
    attrs, _ = element(page, "hx-auth-sign-in-password")
    assert "value" not in attrs
    assert "wrong-password-123" not in page
    # Still anonymous.
    assert client.get("/todos/").location == "/auth/sign-in"


def test_sign_in_unknown_user_and_empty_fields(client: ActionClient) -> None:
    response = client.submit("auth.sign_in", {"username": "mallory", "password": "x"}, htmx=True)
    assert response.status_code == 422
    assert "Wrong user name or password." in response.text
    assert response.headers["HX-Reswap"] == "none"

    response = client.submit("auth.sign_in", {"username": "", "password": ""}, json=True)
    assert response.status_code == 422
    assert response.json is not None
    assert set(response.json["errors"]) == {"username", "password"}


def test_sign_in_with_htmx_redirects_with_a_header(client: ActionClient) -> None:
    response = client.submit(
        "auth.sign_in", {"username": "bob", "password": "bob-password"}, htmx=True
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/todos/"
    page = client.get("/todos/")
    assert page.status_code == 200
    assert "Signed in as <b>bob</b>" in page.text


def test_sign_out(alice: ActionClient) -> None:
    response = alice.submit("auth.sign_out")
    assert response.status_code == 303
    assert response.location == "/auth/sign-in"
    assert alice.get("/todos/").location == "/auth/sign-in"


def test_todos_page_lists_only_my_todos(app: Flask, alice: ActionClient) -> None:
    mine = make_todo(app, "alice", "Water the plants")
    theirs = make_todo(app, "bob", "Bob's secret plan")
    page = alice.get("/todos/").text
    assert "Water the plants" in page
    assert "secret plan" not in page
    assert has_element(page, f"todo-{mine}")
    assert not has_element(page, f"todo-{theirs}")
    _, stats = element(page, "stats")
    assert stats == "0 of 1 done"
    assert "Signed in as <b>alice</b>" in page
    assert "<title>Your todos · flask-hx-actions demo" in page


# -- add -----------------------------------------------------------------------------------------


def test_add_without_js(app: Flask, alice: ActionClient) -> None:
    response = alice.submit("todos.add", {"title": "  Buy milk  "}, referrer=PAGE)
    assert response.status_code == 303
    assert response.location == "/todos/"
    assert [t[1:] for t in todos_of(app, "alice")] == [("Buy milk", False)]
    assert todos_of(app, "bob") == []
    page = alice.get("/todos/").text
    assert "Buy milk" in page
    assert element(page, "stats")[1] == "0 of 1 done"


@pytest.mark.parametrize(
    ("title", "message"),
    [("", "Length must be between 1 and 100."), ("x" * 101, "Length must be between 1 and 100.")],
)
def test_add_invalid_without_js_shows_errors_and_keeps_the_value(
    app: Flask, alice: ActionClient, title: str, message: str
) -> None:
    response = alice.submit("todos.add", {"title": title}, referrer=PAGE)
    assert response.status_code == 303
    assert response.location == "/todos/"
    assert todos_of(app, "alice") == []

    page = alice.get("/todos/").text
    _, error = element(page, "hx-todos-add-title-error")
    assert error == message
    attrs, _ = element(page, "hx-todos-add-title")
    assert attrs["value"] == title
    assert attrs["aria-invalid"] == "true"
    _, summary = element(page, "hx-todos-add-errors")
    assert "Please correct the errors below." in summary
    # Shown once: the next page is clean.
    again = alice.get("/todos/").text
    assert element(again, "hx-todos-add-title-error")[1] == ""


def test_add_with_htmx_returns_the_list_and_the_stats(app: Flask, alice: ActionClient) -> None:
    make_todo(app, "alice", "First", done=True)
    response = alice.submit("todos.add", {"title": "Second"}, htmx=True)
    assert response.status_code == 200
    assert "HX-Reswap" not in response.headers
    assert response.headers["HX-Actions"].startswith("1; key=")
    body = response.text
    assert body.startswith('<div id="todo-list" data-hx-fragment="todo-list">')
    assert "First" in body
    assert "Second" in body
    assert '<p id="stats" data-hx-fragment="stats" hx-swap-oob="true">1 of 2 done</p>' in body
    # The add form comes back empty, with a fresh idempotency key.
    attrs, _ = element(body, "hx-todos-add-title")
    assert attrs["value"] == ""
    assert [t[1] for t in todos_of(app, "alice")] == ["First", "Second"]


def test_add_invalid_with_htmx_answers_error_slots_only(app: Flask, alice: ActionClient) -> None:
    response = alice.submit("todos.add", {"title": ""}, htmx=True)
    assert response.status_code == 422
    assert response.headers["HX-Reswap"] == "none"
    assert response.headers["HX-Actions"] == "1"
    attrs, error = element(response.text, "hx-todos-add-title-error")
    assert attrs["hx-swap-oob"] == "innerHTML"
    assert error == "Length must be between 1 and 100."
    assert not has_element(response.text, "todo-list")
    assert todos_of(app, "alice") == []


def test_add_duplicate_title_is_a_field_error(app: Flask, alice: ActionClient) -> None:
    make_todo(app, "alice", "Milk")
    make_todo(app, "bob", "Eggs")
    response = alice.submit("todos.add", {"title": "Milk"}, htmx=True)
    assert response.status_code == 422
    assert element(response.text, "hx-todos-add-title-error")[1] == (
        "You already have a todo with this title."
    )
    # Another user's titles do not count.
    assert alice.submit("todos.add", {"title": "Eggs"}, htmx=True).status_code == 200
    assert [t[1] for t in todos_of(app, "alice")] == ["Milk", "Eggs"]


def test_add_json(app: Flask, alice: ActionClient) -> None:
    response = alice.submit("todos.add", {"title": "From a script"}, json=True)
    assert response.status_code == 200
    assert response.json == {"ok": True, "code": None, "data": {}}
    response = alice.submit("todos.add", {}, json=True)
    assert response.status_code == 422
    assert response.json is not None
    assert response.json["code"] == "invalid"
    assert response.json["errors"] == {"title": ["Missing data for required field."]}
    assert [t[1] for t in todos_of(app, "alice")] == ["From a script"]


# -- toggle, rename, delete ----------------------------------------------------------------------


def test_toggle_with_htmx_returns_the_row_and_the_stats(app: Flask, alice: ActionClient) -> None:
    first = make_todo(app, "alice", "One")
    make_todo(app, "alice", "Two")
    response = alice.submit("todos.toggle", bind={"id": first}, htmx=True)
    assert response.status_code == 200
    body = response.text
    assert body.startswith(f'<li id="todo-{first}" data-hx-fragment="todo"')
    assert 'class="title done"' in body
    assert "Mark not done" in body
    assert '<p id="stats" data-hx-fragment="stats" hx-swap-oob="true">1 of 2 done</p>' in body
    assert not has_element(body, "todo-list")  # the list is not re-sent for a toggle
    assert todos_of(app, "alice")[0] == (first, "One", True)

    again = alice.submit("todos.toggle", bind={"id": first}, htmx=True)
    assert "Mark done" in again.text
    assert todos_of(app, "alice")[0] == (first, "One", False)


def test_toggle_without_js(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "One")
    response = alice.submit("todos.toggle", bind={"id": todo}, referrer=PAGE)
    assert response.status_code == 303
    assert response.location == "/todos/"
    page = alice.get("/todos/").text
    assert element(page, "stats")[1] == "1 of 1 done"
    assert todos_of(app, "alice") == [(todo, "One", True)]


def test_toggle_json_reports_the_new_state(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "One")
    response = alice.submit("todos.toggle", bind={"id": todo}, json=True)
    assert response.json == {"ok": True, "code": None, "data": {"done": True}}


def test_rename(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "Old name")
    response = alice.submit("todos.rename", {"title": "New name"}, bind={"id": todo}, htmx=True)
    assert response.status_code == 200
    assert response.text.startswith(f'<li id="todo-{todo}"')
    assert '<span class="title">New name</span>' in response.text
    assert todos_of(app, "alice") == [(todo, "New name", False)]


def test_rename_invalid_with_and_without_js(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "Old name")
    other = make_todo(app, "alice", "Other")
    response = alice.submit("todos.rename", {"title": " "}, bind={"id": todo}, htmx=True)
    assert response.status_code == 422
    assert element(response.text, f"hx-todos-rename-{todo}-title-error")[1] == (
        "Length must be between 1 and 100."
    )

    response = alice.submit("todos.rename", {"title": "Other"}, bind={"id": todo}, referrer=PAGE)
    assert response.status_code == 303
    page = alice.get("/todos/").text
    # The errors and the typed value go to that row's form, not to the other rows.
    assert element(page, f"hx-todos-rename-{todo}-title-error")[1] == (
        "You already have a todo with this title."
    )
    assert element(page, f"hx-todos-rename-{todo}-title")[0]["value"] == "Other"
    assert element(page, f"hx-todos-rename-{other}-title-error")[1] == ""
    assert element(page, f"hx-todos-rename-{other}-title")[0]["value"] == "Other"
    assert todos_of(app, "alice") == [(todo, "Old name", False), (other, "Other", False)]


def test_delete(app: Flask, alice: ActionClient) -> None:
    keep = make_todo(app, "alice", "Keep", done=True)
    drop = make_todo(app, "alice", "Drop")
    make_attachment(app, drop)
    response = alice.submit("todos.delete", bind={"id": drop}, htmx=True)
    assert response.status_code == 200
    body = response.text
    assert body.startswith('<div id="todo-list"')
    assert has_element(body, f"todo-{keep}")
    assert not has_element(body, f"todo-{drop}")
    assert "1 of 1 done" in body
    assert todos_of(app, "alice") == [(keep, "Keep", True)]
    assert attachments_of(app, drop) == []

    response = alice.submit("todos.delete", bind={"id": keep}, referrer=PAGE)
    assert response.status_code == 303
    page = alice.get("/todos/").text
    assert "Nothing to do yet." in page
    assert element(page, "stats")[1] == "0 of 0 done"


# -- refusals ------------------------------------------------------------------------------------

BOUND_ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("todos.toggle", {}),
    ("todos.rename", {"title": "Hijacked"}),
    ("todos.delete", {}),
    ("todos.attach", {"file": (b"x", "x.txt", "text/plain")}),
]


def _data(data: dict[str, Any]) -> dict[str, Any]:
    """Fresh file objects for each submit (a stream is read once)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, tuple):
            content, name, content_type = value
            out[key] = (BytesIO(content), name, content_type)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("mode", ["plain", "htmx", "json"])
@pytest.mark.parametrize(("endpoint", "data"), BOUND_ACTIONS)
def test_another_users_todo_is_not_found(
    app: Flask, alice: ActionClient, endpoint: str, data: dict[str, Any], mode: str
) -> None:
    bobs = make_todo(app, "bob", "Bob's todo")
    make_attachment(app, bobs)
    before = todos_of(app, "bob"), attachments_of(app, bobs)
    response = alice.submit(
        endpoint,
        _data(data),
        bind={"id": bobs},
        htmx=mode == "htmx",
        json=mode == "json",
        referrer=PAGE,
    )
    assert response.status_code == 404
    assert (todos_of(app, "bob"), attachments_of(app, bobs)) == before
    assert "Bob's todo" not in response.text


@pytest.mark.parametrize(("endpoint", "data"), BOUND_ACTIONS)
def test_a_missing_todo_is_not_found(
    app: Flask, alice: ActionClient, endpoint: str, data: dict[str, Any]
) -> None:
    response = alice.submit(endpoint, _data(data), bind={"id": 999}, htmx=True)
    assert response.status_code == 404
    assert response.headers["HX-Reswap"] == "none"


def test_a_form_field_never_fills_the_bound_id(app: Flask, alice: ActionClient) -> None:
    bobs = make_todo(app, "bob", "Bob's todo")
    response = alice.submit("todos.delete", {"id": str(bobs)})
    assert response.status_code == 400
    assert todos_of(app, "bob") == [(bobs, "Bob's todo", False)]


def test_a_form_rendered_for_bob_does_not_work_for_alice(
    app: Flask, alice: ActionClient, bob: ActionClient
) -> None:
    bobs = make_todo(app, "bob", "Bob's todo")
    bobs_form = bob.hidden_fields("todos.delete", bind={"id": bobs})
    alices_form = alice.hidden_fields("todos.delete")
    response = alice.post(
        "/todos/delete",
        data={**bobs_form, "csrf_token": alices_form["csrf_token"]},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 400
    assert todos_of(app, "bob") == [(bobs, "Bob's todo", False)]


@pytest.mark.parametrize("mode", ["plain", "htmx", "json"])
@pytest.mark.parametrize(
    ("endpoint", "data"), [*BOUND_ACTIONS, ("todos.add", {"title": "Anonymous"})]
)
def test_anonymous_users_are_refused(
    app: Flask, client: ActionClient, endpoint: str, data: dict[str, Any], mode: str
) -> None:
    todo = make_todo(app, "alice", "Alice's todo")
    bind = None if endpoint == "todos.add" else {"id": todo}
    response = client.submit(
        endpoint, _data(data), bind=bind, htmx=mode == "htmx", json=mode == "json"
    )
    assert response.status_code == 401
    assert todos_of(app, "alice") == [(todo, "Alice's todo", False)]
    assert attachments_of(app, todo) == []


def test_csrf_and_origin_are_checked(app: Flask, alice: ActionClient) -> None:
    no_token = alice.post("/todos/add", data={"title": "x"})
    assert no_token.status_code == 400
    fields = alice.hidden_fields("todos.add")
    cross_site = alice.post(
        "/todos/add",
        data={**fields, "title": "x"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403
    assert alice.get("/todos/add").status_code == 405
    assert todos_of(app, "alice") == []


def test_fragment_endpoint_applies_ownership(
    app: Flask, client: ActionClient, alice: ActionClient
) -> None:
    mine = make_todo(app, "alice", "Mine")
    theirs = make_todo(app, "bob", "Theirs")
    own = alice.get(f"/_hx/fragments/todo?id={mine}")
    assert own.status_code == 200
    assert "Mine" in own.text
    other = alice.get(f"/_hx/fragments/todo?id={theirs}")
    assert other.status_code == 403
    assert "Theirs" not in other.text
    assert client.get(f"/_hx/fragments/todo?id={mine}").status_code == 401
    assert client.get("/_hx/fragments/todo-list").status_code == 401
    stats = alice.get("/_hx/fragments/stats")
    assert stats.status_code == 200
    assert "0 of 1 done" in stats.text


# -- attachments ---------------------------------------------------------------------------------


def test_upload_and_download(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "With a file")
    response = alice.submit(
        "todos.attach",
        {"file": (BytesIO(b"hello\n"), "../../etc/my notes.txt", "text/plain")},
        bind={"id": todo},
        referrer=PAGE,
    )
    assert response.status_code == 303
    assert attachments_of(app, todo) == [("etc_my_notes.txt", "text/plain", b"hello\n")]

    page = alice.get("/todos/").text
    match = re.search(r'href="(/todos/attachments/(\d+))">etc_my_notes.txt</a>', page)
    assert match, page
    download = alice.get(match[1])
    assert download.status_code == 200
    assert download.data == b"hello\n"
    assert download.mimetype == "text/plain"
    assert download.headers["Content-Disposition"] == "attachment; filename=etc_my_notes.txt"
    assert download.headers["X-Content-Type-Options"] == "nosniff"


def test_upload_with_htmx_returns_the_row_with_the_link(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "With a picture")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    response = alice.submit(
        "todos.attach",
        {"file": (BytesIO(png), "pic.png", "image/png")},
        bind={"id": todo},
        htmx=True,
    )
    assert response.status_code == 200
    assert response.text.startswith(f'<li id="todo-{todo}"')
    assert ">pic.png</a>" in response.text
    assert "image/png, 108 bytes" in response.text
    assert attachments_of(app, todo) == [("pic.png", "image/png", png)]


def test_upload_over_the_file_limit_is_a_field_error(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "Big file")
    response = submit_big_file(alice, todo, 1_500_000, htmx=True)
    assert response.status_code == 422
    assert element(response.text, f"hx-todos-attach-{todo}-file-error")[1] == (
        "The file is larger than 1 MB."
    )
    assert attachments_of(app, todo) == []

    # Without JS: the error shows on that row's form after the redirect.
    response = submit_big_file(alice, todo, 1_500_000, referrer=PAGE)
    assert response.status_code == 303
    page = alice.get("/todos/").text
    assert element(page, f"hx-todos-attach-{todo}-file-error")[1] == (
        "The file is larger than 1 MB."
    )
    assert attachments_of(app, todo) == []


def test_upload_over_the_request_limit_is_413(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "Huge file")
    for htmx in (False, True):
        response = submit_big_file(alice, todo, 2_500_000, htmx=htmx)
        assert response.status_code == 413
    assert attachments_of(app, todo) == []


@pytest.mark.parametrize(
    ("content_type", "content"),
    [("application/x-msdownload", b"MZ\x90\x00"), ("text/html", b"<script>alert(1)</script>")],
)
def test_upload_of_a_refused_type_is_a_field_error(
    app: Flask, alice: ActionClient, content_type: str, content: bytes
) -> None:
    todo = make_todo(app, "alice", "Typed")
    response = alice.submit(
        "todos.attach",
        {"file": (BytesIO(content), "file.bin", content_type)},
        bind={"id": todo},
        htmx=True,
    )
    assert response.status_code == 422
    assert element(response.text, f"hx-todos-attach-{todo}-file-error")[1] == (
        f"Files of type {content_type} are not accepted."
    )
    assert attachments_of(app, todo) == []


def test_upload_without_a_file_is_a_field_error(app: Flask, alice: ActionClient) -> None:
    todo = make_todo(app, "alice", "No file")
    response = alice.submit("todos.attach", {}, bind={"id": todo}, htmx=True)
    assert response.status_code == 422
    assert element(response.text, f"hx-todos-attach-{todo}-file-error")[1] == (
        "Missing data for required field."
    )


def test_download_of_another_users_attachment_is_not_found(
    app: Flask, client: ActionClient, alice: ActionClient, bob: ActionClient
) -> None:
    bobs = make_attachment(app, make_todo(app, "bob", "Bob's"), b"bob's data")
    assert bob.get(f"/todos/attachments/{bobs}").data == b"bob's data"
    for who in (alice, client):
        response = who.get(f"/todos/attachments/{bobs}")
        assert response.status_code == 404
        assert b"bob's data" not in response.data
    assert alice.get("/todos/attachments/999").status_code == 404


def test_sign_in_is_rate_limited_per_address(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'limit.sqlite'}"})
    app.test_client_class = ActionClient
    client = app.test_client()
    statuses = [
        client.submit(
            "auth.sign_in", {"username": "alice", "password": "wrong"}, json=True
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
