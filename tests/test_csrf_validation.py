"""flask_hx_actions.security.validate_csrf answers exactly as Flask-WTF's validate_csrf."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from flask import Flask, session
from flask_wtf.csrf import generate_csrf
from flask_wtf.csrf import validate_csrf as wtf_validate_csrf
from wtforms.validators import ValidationError

from flask_hx_actions.security import validate_csrf


def _outcome(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except (ValidationError, RuntimeError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


@pytest.mark.parametrize(
    "config", [{}, {"WTF_CSRF_SECRET_KEY": "csrf-only"}, {"WTF_CSRF_TIME_LIMIT": None}]
)
def test_same_answers_as_flask_wtf(config: dict[str, Any]) -> None:
    app = Flask(__name__)
    app.secret_key = "secret"
    app.config.update(config)
    with app.test_request_context():
        token = generate_csrf()
        for candidate in [token, token[:-2] + "xx", token + "a", "", None, "garbage"]:
            expected = _outcome(wtf_validate_csrf, candidate)
            assert _outcome(validate_csrf, app, candidate) == expected
        with mock.patch("time.time", return_value=time.time() + 4000):
            assert _outcome(validate_csrf, app, token) == _outcome(wtf_validate_csrf, token)
        session["csrf_token"] = "another"
        assert (
            _outcome(validate_csrf, app, token) == "ValidationError: The CSRF tokens do not match."
        )
        session.pop("csrf_token")
        expected = "ValidationError: The CSRF session token is missing."
        assert _outcome(validate_csrf, app, token) == expected


def test_other_secret_is_refused() -> None:
    app = Flask(__name__)
    app.secret_key = "secret"
    with app.test_request_context():
        token = generate_csrf()
        app.config["WTF_CSRF_SECRET_KEY"] = "rotated"
        assert _outcome(validate_csrf, app, token) == "ValidationError: The CSRF token is invalid."


def test_bound_tokens_are_itsdangerous_tokens() -> None:
    from itsdangerous import URLSafeTimedSerializer

    from flask_hx_actions.signing import Serializer

    ours = Serializer(["old", "new"], salt="hx-actions.bound|x|sid|")
    theirs = URLSafeTimedSerializer(["old", "new"], salt="hx-actions.bound|x|sid|")
    for now in (1_700_000_000, 1_700_000_000, 1_700_000_001):
        with mock.patch("time.time", return_value=now + 0.5):
            for value in ({"id": 7}, {"id": "é", "n": [1, 2]}, {"big": "x" * 300}):
                token = ours.dumps(value)
                assert token == theirs.dumps(value)
                assert ours.loads(token, max_age=10) == value
