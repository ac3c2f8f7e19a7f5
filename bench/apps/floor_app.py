"""The floor: the benchmark workload with exactly the protections the issues require of a toggle,
written by hand as cheaply as this stack allows (no library, no Flask session, no Flask-WTF).

What a toggle must do beyond the baseline (``../shared/bench/WORKLOAD.md`` and issues 4 and 5):
refuse cross-site posts (``Sec-Fetch-Site`` / ``Origin``), check a CSRF token tied to the browser
session, read a row id that was signed for this session and is not expired, re-render the row's
form with a fresh idempotency key, a new signed id and the token, and answer with
``Vary: HX-Request, Cookie`` and ``Cache-Control: no-store``. Everything else the library does
(idempotency store, tags, regions, signals, request ids, old input, ...) is left out.

The session is a cookie holding a random id and its MAC; the CSRF token is a MAC of that id
(a stateless synchronizer token); a bound id is ``<id>.<unix time>.<MAC of session, action, id
and time>``. Each MAC is one keyed BLAKE2b call (``hashlib.blake2b(..., key=...)``, a MAC by
design), the cheapest one in Python's standard library: on this stack's OpenSSL 3,
``hmac.digest(key, message, "sha256")`` costs about three times as much (27k instructions a call,
110k of the htmx toggle's). The session cookie is found in the ``Cookie``
header and the body parsed with ``parse_qsl``, skipping Werkzeug's parsers, as the library does.
Fresh keys are cut from one ``os.urandom`` block at a time, as the library's are. That is as
little work as a correct check can do in Python on Flask. It exists so the bench can
say what the required checks cost on their own: floor ÷ baseline is what the workload's
protections cost on this server whoever writes them, and library ÷ floor is what the library adds
beyond them.

Run: ``gunicorn --chdir bench/apps floor_app:app``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from urllib.parse import parse_qsl

import data
from data import TODOS, WIDGETS, done_count
from flask import Response, abort, g, render_template, request
from over_baseline import app_over_baseline

# Only the row differs from the baseline (its form carries the token, the key and the signed id).
app = app_over_baseline(__name__, "floor")
KEY = os.environ.get("BENCH_SECRET_KEY", "bench-only-secret-key").encode()
COOKIE = "sid"
BOUND_MAX_AGE = 86400  # seconds a signed row id stays valid
MAX_BODY = 64 * 1024  # the largest body of a toggle, in bytes
ANSWER_HEADERS = {"Vary": "HX-Request, Cookie", "Cache-Control": "no-store"}


def mac(message: str) -> str:
    digest = hashlib.blake2b(message.encode(), key=KEY, digest_size=18).digest()
    return base64.urlsafe_b64encode(digest).decode()


def same(given: str, expected: str) -> bool:
    """``hmac.compare_digest`` of a client's value, which refuses non-ASCII text (a TypeError)."""
    return given.isascii() and hmac.compare_digest(given, expected)


def digits(text: str) -> bool:
    """Only ASCII digits (``str.isdigit`` also takes others, which ``int`` then refuses)."""
    return text.isascii() and text.isdigit()


def cookie_tag(sid: str) -> str:
    return mac("sid|" + sid)


def session_id() -> str | None:
    """The session id of a valid session cookie, else None. The ``Cookie`` header is searched
    for the one cookie by hand: ``request.cookies`` parses every cookie into a dict first."""
    header = request.environ.get("HTTP_COOKIE", "")
    start = header.find(COOKIE + "=")
    if start < 0 or (start and header[start - 1] not in " ;"):
        return None
    value = header[start + len(COOKIE) + 1 :].split(";", 1)[0].strip()
    sid, _, tag = value.partition(".")
    if sid and same(tag, cookie_tag(sid)):
        return sid
    return None


#: Fresh keys cut from one ``os.urandom`` block at a time, as the library cuts its own: each
#: ``os.urandom`` call is a system call, and ``secrets.token_urlsafe(16)`` per key would make a
#: page of 200 rows 200 of them. 22 base64url characters each, 132 random bits.
_keys: list[str] = []
os.register_at_fork(after_in_child=_keys.clear)


@app.template_global()
def fresh_key() -> str:
    if not _keys:
        block = base64.urlsafe_b64encode(os.urandom(33 * 64)).decode()  # 128 keys
        _keys.extend(block[i : i + 22] for i in range(0, len(block), 22))
    return _keys.pop()


@app.template_global()
def bound_id(id: int) -> str:
    stamp = int(time.time())
    return f"{id}.{stamp}.{mac(f'bound|{g.sid}|toggle|{id}|{stamp}')}"


def read_bound(sid: str, token: str) -> int | None:
    id_text, _, rest = token.partition(".")
    stamp_text, _, tag = rest.partition(".")
    if not (digits(id_text) and digits(stamp_text)):
        return None
    if time.time() - int(stamp_text) > BOUND_MAX_AGE:
        return None
    if not same(tag, mac(f"bound|{sid}|toggle|{id_text}|{stamp_text}")):
        return None
    return int(id_text)


def form_fields() -> dict[str, str]:
    """The urlencoded body's fields, read straight from the WSGI input (``request.form`` goes
    through Werkzeug's stream wrapper, form parser and ``MultiDict``, several times slower)."""
    environ = request.environ
    if environ.get("CONTENT_TYPE", "").partition(";")[0] != "application/x-www-form-urlencoded":
        return {}
    length = environ.get("CONTENT_LENGTH", "")
    if not length:  # WSGI: no Content-Length, no body
        return {}
    if not digits(length):
        abort(400)
    if int(length) > MAX_BODY:
        abort(413)
    return dict(parse_qsl(environ["wsgi.input"].read(int(length)).decode("utf-8", "replace")))


def answer(body: str, status: int = 200, location: str | None = None) -> Response:
    response = Response(body, status, ANSWER_HEADERS)
    if location is not None:
        response.headers["Location"] = location
    return response


@app.get("/")
def index() -> Response:
    sid = session_id()
    new = sid is None
    g.sid = sid = sid or secrets.token_urlsafe(12)
    html = render_template(
        "index.html",
        todos=data.all_todos(),
        done=done_count(),
        total=len(TODOS),
        widgets=WIDGETS,
        csrf=mac("csrf|" + sid),
    )
    response = answer(html)
    if new:
        response.set_cookie(COOKIE, f"{sid}.{cookie_tag(sid)}", httponly=True, samesite="Lax")
    return response


@app.post("/todos/toggle")
def toggle() -> Response:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        abort(403)
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        abort(403)
    sid = session_id()
    if sid is None:
        abort(400)
    csrf = mac("csrf|" + sid)
    form = form_fields()
    if not same(form.get("csrf_token", ""), csrf):
        abort(400)
    id = read_bound(sid, form.get("bound", ""))
    if id is None:
        abort(400)
    todo = data.toggle(id)
    if todo is None:
        abort(404)
    data.commit()
    if request.headers.get("HX-Request") == "true":
        g.sid = sid
        html = render_template(
            "_toggled.html", t=todo, done=done_count(), total=len(TODOS), csrf=csrf
        )
        return answer(html)
    return answer("", 303, "/")
