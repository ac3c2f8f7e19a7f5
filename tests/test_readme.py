"""The README's quickstart runs as written, and its configuration table matches the defaults."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from flask import Flask

from flask_hx_actions import HxActions
from flask_hx_actions.extension import DEFAULTS
from flask_hx_actions.testing import ActionClient

README_DIR = Path(__file__).resolve().parent.parent
README = (README_DIR / "README.md").read_text()


def _quickstart(tmp_path: Path) -> Flask:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    index = re.search(r"```jinja\n(.*?)```", section, re.S).group(1)
    row = re.search(r"`templates/_list.html`: `(.*?)`", section).group(1)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "index.html").write_text(index)
    (templates / "_list.html").write_text(row)
    module = tmp_path / "quickstart.py"
    module.write_text(code)
    namespace: dict[str, object] = {"__name__": "quickstart", "__file__": str(module)}
    exec(compile(code, str(module), "exec"), namespace)  # noqa: S102 - our own README
    app = namespace["app"]
    assert isinstance(app, Flask)
    app.root_path = str(tmp_path)
    app.template_folder = "templates"
    app.test_client_class = ActionClient
    return app


def test_quickstart_works_without_javascript(tmp_path):
    app = _quickstart(tmp_path)
    client = app.test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert 'action="/todos/add"' in page.text
    response = client.submit("todos.add", {"title": "Milk"}, referrer="http://localhost/")
    assert response.status_code == 303
    assert "<li>Milk</li>" in client.get("/").text


def test_quickstart_answers_htmx_with_the_list_out_of_band(tmp_path):
    app = _quickstart(tmp_path)
    client = app.test_client()
    client.get("/")
    response = client.submit("todos.add", {"title": "Eggs"}, htmx=True, regions="todo-list")
    assert response.status_code == 200
    assert response.headers["HX-Reswap"] == "none"
    assert 'id="todo-list"' in response.text and "hx-swap-oob" in response.text
    assert "<li>Eggs</li>" in response.text
    bad = client.submit("todos.add", {"title": ""}, htmx=True)
    assert bad.status_code == 422


def test_quickstart_keeps_errors_and_typed_values_after_a_failed_plain_submit(tmp_path):
    app = _quickstart(tmp_path)
    client = app.test_client()
    client.get("/")
    typed = "x" * 101  # over the schema's max=100
    response = client.submit("todos.add", {"title": typed}, referrer="http://localhost/")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = client.get("/").text
    assert 'class="hx-errors" role="alert"' in page
    assert "Length must be between 1 and 100." in page
    assert f'aria-invalid="true" value="{typed}"' in page
    assert "Length must be between" not in client.get("/").text  # shown once


def test_quickstart_htmx_answer_without_the_regions_header_is_the_list_alone(tmp_path):
    # Without hx-actions.js's _hx_regions field every invalidated non-parametrised
    # region is sent: here the list, out-of-band, and nothing else.
    app = _quickstart(tmp_path)
    client = app.test_client()
    client.get("/")
    response = client.submit("todos.add", {"title": "Tea"}, htmx=True)
    assert response.status_code == 200
    assert response.headers["HX-Reswap"] == "none"
    assert response.text == (
        '<div id="todo-list" data-hx-fragment="todo-list" hx-swap-oob="true">'
        "<ul><li>Tea</li></ul></div>"
    )


def _table_rows() -> dict[str, str]:
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(HX_ACTIONS_\w+)` \| `([^`]*)`", table, re.M)
    return dict(rows)


def test_every_setting_is_in_the_readme_table_with_its_default():
    rows = _table_rows()
    for key, default in DEFAULTS.items():
        assert key in rows, key
        assert ast.literal_eval(rows[key]) == default, (key, rows[key], default)
    assert set(rows) == set(DEFAULTS)


def test_every_setting_the_docs_name_exists():
    docs = README + (README_DIR / "docs" / "wire.md").read_text()
    named = set(re.findall(r"HX_ACTIONS_[A-Z_]*[A-Z]", docs))
    test_only = {"HX_ACTIONS_REQUIRE_SERVICES"}  # read by the test suite, not the library
    assert named - test_only <= set(DEFAULTS), named - test_only - set(DEFAULTS)


def test_session_cookie_defaults_to_samesite_lax_unless_the_app_chose():
    app = Flask(__name__)
    HxActions(app)
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    chosen = Flask(__name__)
    chosen.config["SESSION_COOKIE_SAMESITE"] = "Strict"
    HxActions(chosen)
    assert chosen.config["SESSION_COOKIE_SAMESITE"] == "Strict"
    left = Flask(__name__)
    left.config["HX_ACTIONS_SESSION_SAMESITE"] = None
    HxActions(left)
    assert left.config["SESSION_COOKIE_SAMESITE"] is None
