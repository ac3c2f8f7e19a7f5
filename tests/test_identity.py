"""Who is signed in, when it changes during a request.

The identity is loaded once per request (it is read for every form a page renders), so a
sign-in or sign-out in the middle of a request must drop it: what renders afterwards (bound
arguments, idempotency keys, ``cache="user"`` fragments) belongs to the new user. The pipeline
drops it after every action body; Flask-Login's ``login_user`` / ``logout_user`` drop it through
their signals; ``HxActions.identity_changed()`` drops it for a custom loader in a plain view.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, render_template_string, session
from flask_login import LoginManager, UserMixin, login_user, logout_user
from jinja2 import DictLoader

from flask_hx_actions import ActionsBlueprint, HxActions, ok
from flask_hx_actions.testing import ActionClient

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


def hidden(html: str, form_id: str) -> dict[str, str]:
    """The hidden inputs of the form ``form_id`` in ``html``."""
    start = html.index(f'<form id="{form_id}"')
    form = html[start : html.index("</form>", start)]
    return dict(HIDDEN.findall(form))


def make_app(*, flask_login: bool = False) -> tuple[Flask, HxActions, dict[str, Any]]:
    """``t.sign_in`` / ``t.sign_out`` actions whose answer re-renders ``panel``: a ``cache="user"``
    fragment naming the user, with a form of ``t.rename`` bound to ``id=3``."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="identity", TESTING=True)
    app.test_client_class = ActionClient
    app.jinja_loader = DictLoader(
        {
            "panel.html": "signed in as {{ who }}"
            "{{ action_form('t.rename', bind={'id': 3}, label='Rename') }}",
        }
    )
    seen: dict[str, Any] = {"renamed": [], "loads": 0}
    if flask_login:
        hx = HxActions(app)
        manager = LoginManager(app)
        manager.user_loader(lambda user_id: User(user_id))
    else:

        def load() -> Any:
            seen["loads"] += 1
            return session.get("user")

        hx = HxActions(app, identity=load)

    bp = ActionsBlueprint("t", __name__, url_prefix="/t")

    @bp.action("sign_in", fragment="panel")
    def sign_in() -> Any:
        if flask_login:
            login_user(User("alice"))
        else:
            session["user"] = "alice"
        return ok()

    @bp.action("sign_out", fragment="panel")
    def sign_out() -> Any:
        if flask_login:
            logout_user()
        else:
            session.pop("user", None)
        return ok()

    @bp.action("rename")
    def rename(id: int) -> Any:
        seen["renamed"].append((id, who()))
        return ok()

    def who() -> str:
        if flask_login:
            from flask_login import current_user

            return current_user.get_id() if current_user.is_authenticated else "nobody"
        return session.get("user") or "nobody"

    @bp.fragment("panel", template="panel.html", tags=["panel"], cache="user")
    def panel() -> dict[str, Any]:
        return {"who": who()}

    app.register_blueprint(bp)

    @app.get("/")
    def page() -> str:
        return render_template_string("{{ fragment('panel') }}")

    return app, hx, seen


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


@pytest.mark.parametrize("flask_login", [False, True], ids=["loader", "flask-login"])
def test_a_sign_in_action_renders_its_answer_for_the_new_user(flask_login: bool) -> None:
    app, _, seen = make_app(flask_login=flask_login)
    client = app.test_client()
    answer = client.submit("t.sign_in", htmx=True)
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    assert "signed in as alice" in html
    # The re-rendered form is bound to alice's session: her next submit is taken.
    form = hidden(html, "hx-t-rename-3")
    assert client.post("/t/rename", data=form, headers=SAME_ORIGIN).status_code == 303
    assert seen["renamed"] == [(3, "alice")]


@pytest.mark.parametrize("flask_login", [False, True], ids=["loader", "flask-login"])
def test_a_sign_out_action_renders_its_answer_for_nobody(flask_login: bool) -> None:
    app, _, seen = make_app(flask_login=flask_login)
    client = app.test_client()
    assert client.submit("t.sign_in").status_code == 303
    answer = client.submit("t.sign_out", htmx=True)
    html = answer.get_data(as_text=True)
    assert "signed in as nobody" in html
    form = hidden(html, "hx-t-rename-3")
    assert client.post("/t/rename", data=form, headers=SAME_ORIGIN).status_code == 303
    assert seen["renamed"] == [(3, "nobody")]


def test_a_per_user_fragment_rendered_after_sign_in_stays_with_that_user() -> None:
    """The answer of the sign-in is cached under alice's scope, not the anonymous one of the
    same browser session: once she has signed out, the page does not show her panel."""
    app, _, _ = make_app()
    client = app.test_client()
    assert "signed in as alice" in client.submit("t.sign_in", htmx=True).get_data(as_text=True)
    assert "signed in as alice" in client.get("/").get_data(as_text=True)  # her cached panel
    with client.session_transaction() as sess:  # signed out, same browser session
        sess.pop("user")
    assert "signed in as nobody" in client.get("/").get_data(as_text=True)


def test_the_identity_is_loaded_once_for_a_page_of_forms() -> None:
    app, _, seen = make_app()
    app.jinja_loader = DictLoader(
        {
            "panel.html": "{% for i in range(20) %}"
            "{{ action_form('t.rename', bind={'id': i}, label='Rename') }}{% endfor %}",
        }
    )
    client = app.test_client()
    client.get("/")
    seen["loads"] = 0
    assert client.get("/").get_data(as_text=True).count("<form ") == 20
    assert seen["loads"] == 1


def sign_in_between_two_forms(app: Flask, sign_in: Any) -> dict[str, int]:
    """``GET /welcome`` renders a form of ``t.rename``, calls ``sign_in()``, renders another:
    the status of a submit of each form, from the same browser."""
    form_html = "{{ action_form('t.rename', bind={'id': 3}, id=form_id, label='Rename') }}"

    @app.get("/welcome")
    def welcome() -> str:
        before = render_template_string(form_html, form_id="before")  # loads "nobody"
        sign_in()
        return before + render_template_string(form_html, form_id="after")

    client = app.test_client()
    html = client.get("/welcome").get_data(as_text=True)
    return {
        form_id: client.post(
            "/t/rename", data=hidden(html, form_id), headers=SAME_ORIGIN
        ).status_code
        for form_id in ("after", "before")
    }


def test_identity_changed_scopes_the_forms_a_plain_view_renders_next() -> None:
    app, hx, seen = make_app()

    def sign_in() -> None:
        session["user"] = "alice"
        hx.identity_changed()

    # The form rendered before the sign-in was bound to the anonymous session: refused.
    assert sign_in_between_two_forms(app, sign_in) == {"after": 303, "before": 400}
    assert seen["renamed"] == [(3, "alice")]


def test_flask_login_sign_in_in_a_plain_view_scopes_the_forms_it_renders() -> None:
    app, _, seen = make_app(flask_login=True)
    assert sign_in_between_two_forms(app, lambda: login_user(User("bob"))) == {
        "after": 303,
        "before": 400,
    }
    assert seen["renamed"] == [(3, "bob")]


def test_flask_login_is_the_default_identity() -> None:
    """Without ``identity=``, the signed-in Flask-Login user scopes bound arguments: a form
    rendered for one user does not submit for another."""
    app, _, seen = make_app(flask_login=True)

    @app.get("/as/<name>")
    def sign_in_as(name: str) -> str:
        login_user(User(name))
        return "ok"

    client = app.test_client()
    client.get("/as/carol")
    form = hidden(client.get("/").get_data(as_text=True), "hx-t-rename-3")
    client.get("/as/dave")
    assert client.post("/t/rename", data=form, headers=SAME_ORIGIN).status_code == 400
    assert seen["renamed"] == []


def test_fragments_rendered_after_a_sign_in_see_the_new_current_user() -> None:
    """Fragments share one template context per request; Flask-Login's ``current_user`` in it is
    the user signed in when the fragment renders."""
    app, _, _ = make_app(flask_login=True)
    assert isinstance(app.jinja_loader, DictLoader)
    app.jinja_loader.mapping["whoami.html"] = (
        "{{ current_user.get_id() if current_user.is_authenticated else 'nobody' }}"
    )
    bp = ActionsBlueprint("w", __name__)
    bp.fragment("whoami", template="whoami.html")(lambda: {})
    app.register_blueprint(bp)

    @app.get("/welcome")
    def welcome() -> str:
        page = "{{ fragment('whoami') }}"
        before = render_template_string(page)
        login_user(User("erin"))
        return before + render_template_string(page)

    html = app.test_client().get("/welcome").get_data(as_text=True)
    assert re.findall(r'data-hx-fragment="whoami">([^<]*)<', html) == ["nobody", "erin"]
