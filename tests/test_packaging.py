"""The built wheel is complete and works in a fresh virtualenv (static files, templates, types)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_FILES = {
    "flask_hx_actions/__init__.py",
    "flask_hx_actions/py.typed",
    "flask_hx_actions/static/htmx.min.js",
    "flask_hx_actions/static/hx-actions.js",
    "flask_hx_actions/templates/hx_actions/macros.html",
}
# Never copied into the build tree: build output, caches, VCS data, local environments.
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    ".hypothesis",
    "node_modules",
    "instance",
    "out",
)

SMOKE_SCRIPT = textwrap.dedent(
    """
    import warnings

    warnings.simplefilter("error")

    import flask_hx_actions
    from flask import Flask, render_template_string
    from flask_hx_actions import ActionsBlueprint, HxActions, ok

    print("MODULE", flask_hx_actions.__file__)

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "packaging-smoke-test"
    HxActions(app)
    bp = ActionsBlueprint("todos", __name__, url_prefix="/todos")

    @bp.action("add")
    def add():
        return ok()

    app.register_blueprint(bp)

    with app.test_request_context("/"):
        html = render_template_string('{{ action_form("todos.add", label="Add") }}')
    for needle in ('action="/todos/add"', 'name="csrf_token"', 'name="_hx_key"'):
        assert needle in html, (needle, html)

    client = app.test_client()
    response = client.get("/_hx/static/htmx.min.js")
    try:
        assert response.status_code == 200, response.status_code
        assert len(response.get_data()) > 1000
    finally:
        response.close()
    print("SMOKE OK")
    """
)


def _run(cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return proc.stdout + proc.stderr


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONWARNINGS"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest keeps those around, and a virtualenv is tens of MB.
    path = Path(tempfile.mkdtemp(prefix="hx-actions-packaging-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def wheel(workdir: Path) -> Path:
    # Build from a copy, so the build leaves no build/ or *.egg-info in the checkout.
    src = workdir / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE, symlinks=True)
    dist = workdir / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(src)],
        cwd=src,
        timeout=600,
        env=_clean_env(),
    )
    wheels = list(dist.glob("flask_hx_actions-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents_and_fresh_install(wheel: Path, workdir: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    missing = REQUIRED_FILES - names
    assert not missing, f"missing from {wheel.name}: {sorted(missing)}"
    top_level = {name.split("/", 1)[0] for name in names}
    stray = {t for t in top_level if t != "flask_hx_actions" and not t.endswith(".dist-info")}
    assert not stray, f"unexpected top-level entries in the wheel: {sorted(stray)}"

    venv = workdir / "venv"
    env = _clean_env()
    _run([sys.executable, "-m", "venv", str(venv)], cwd=workdir, timeout=300, env=env)
    python = venv / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        cwd=workdir,
        timeout=900,
        env=env,
    )

    script = workdir / "smoke.py"
    script.write_text(SMOKE_SCRIPT, encoding="utf-8")
    # cwd is the temp dir, not the checkout: the import must come from the installed wheel.
    output = _run([str(python), "-W", "error", str(script)], cwd=workdir, timeout=120, env=env)
    assert "SMOKE OK" in output
    module_line = next(line for line in output.splitlines() if line.startswith("MODULE "))
    assert module_line.removeprefix("MODULE ").startswith(str(venv)), module_line
    assert "Warning" not in output, output
