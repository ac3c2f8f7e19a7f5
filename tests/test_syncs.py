"""flask_hx_actions.syncs: ``app.ensure_sync`` remembering plain functions, as Flask answers."""

from __future__ import annotations

import asyncio
import functools
import gc
import weakref
from typing import Any

import flask
import pytest
from flask import Flask, g

from flask_hx_actions import HxActions
from flask_hx_actions.syncs import PLAIN_MAX, fast_ensure_sync


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def test_installed_where_the_app_keeps_flasks_own_only() -> None:
    app = make_app()
    HxActions(app)
    assert "ensure_sync" in app.__dict__
    assert app.ensure_sync(make_app) is make_app

    off = make_app(HX_ACTIONS_FAST_ENSURE_SYNC=False)
    HxActions(off)
    assert "ensure_sync" not in off.__dict__

    class Own(Flask):
        def ensure_sync(self, func: Any) -> Any:
            return func

    subclassed = Own(__name__)
    HxActions(subclassed)
    assert "ensure_sync" not in subclassed.__dict__

    def mine(func: Any) -> Any:
        return func

    given = make_app()
    given.ensure_sync = mine  # type: ignore[method-assign]
    HxActions(given)
    assert given.ensure_sync is mine


class Callable_:
    def __call__(self) -> str:
        return "object"

    async def later(self) -> str:
        return "method"


def plain() -> str:
    return "plain"


async def coroutine() -> str:
    return "async"


CALLABLES = [
    plain,
    lambda: "lambda",
    functools.partial(plain),
    Callable_(),
    Callable_().__call__,
    len,
    dict,
    coroutine,
    functools.partial(coroutine),
    Callable_().later,
]


@pytest.mark.parametrize("func", CALLABLES)
def test_the_same_answer_as_flasks_every_time(func: Any) -> None:
    app = make_app()
    ours = fast_ensure_sync(app)
    expected_plain = Flask.ensure_sync(app, func) is func
    for _ in range(3):  # the first call, then from the memo (or not)
        made = ours(func)
        assert (made is func) is expected_plain
        if not expected_plain:  # Flask's async_to_sync wrapper, which runs the coroutine
            with app.app_context():
                assert made() == asyncio.run(func())


def test_only_plain_functions_are_remembered_and_bound_methods_never() -> None:
    app = make_app()
    ours = fast_ensure_sync(app)
    memo = ours._hx_plain  # type: ignore[attr-defined]
    method = Callable_().__call__
    for func in (plain, coroutine, method):
        ours(func)
    assert list(memo.values()) == [plain]


def test_a_remembered_function_is_kept_alive_so_its_id_names_it() -> None:
    app = make_app()
    ours = fast_ensure_sync(app)

    def made() -> None:
        return None

    ref = weakref.ref(made)
    key = id(made)
    assert ours(made) is made
    del made
    gc.collect()
    assert ref() is not None  # held by the memo: no other object can take its id
    assert ours._hx_plain[key] is ref()  # type: ignore[attr-defined]


def test_the_memo_is_bounded() -> None:
    app = make_app()
    ours = fast_ensure_sync(app)
    funcs = [(lambda i=i: i) for i in range(PLAIN_MAX + 50)]
    for func in funcs:
        assert ours(func) is func
    memo = ours._hx_plain  # type: ignore[attr-defined]
    assert len(memo) <= PLAIN_MAX
    assert memo.get(id(funcs[-1])) is funcs[-1]  # the newest stay
    assert id(funcs[0]) not in memo  # the oldest went first


def test_an_app_with_hooks_and_async_views_runs_as_with_flasks_own() -> None:
    def build(fast: bool) -> Flask:
        app = make_app(HX_ACTIONS_FAST_ENSURE_SYNC=fast)
        HxActions(app)

        @app.before_request
        def before() -> None:
            g.seen = ["before"]

        @app.before_request
        async def before_async() -> None:
            g.seen.append("before_async")

        @app.context_processor
        def extra() -> dict[str, str]:
            return {"extra": "x"}

        @app.get("/sync")
        def sync_view() -> str:
            return ",".join(g.seen) + flask.render_template_string("/{{ extra }}")

        @app.get("/async")
        async def async_view() -> str:
            return ",".join(g.seen) + "/async"

        return app

    for path in ("/sync", "/async", "/sync"):
        answers = [build(fast).test_client().get(path) for fast in (True, False)]
        assert answers[0].status_code == answers[1].status_code == 200
        assert answers[0].data == answers[1].data
    assert build(True).test_client().get("/sync").data == b"before,before_async/x"
