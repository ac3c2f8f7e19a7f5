"""The benchmark driver: the workload of ../shared/bench/WORKLOAD.md on the library app, on a
hand-wired Flask + htmx baseline, and on the same baseline with the library's protections written
by hand (baseline+checks), and the floor (the protections the workload requires and nothing else,
written as cheaply as the stack allows), all under gunicorn (2 sync workers), measured with wrk.

Use ``bench/run`` (it installs what is missing, then calls this file):

    bench/run                  # Markdown tables on stdout (10 s per point after a 2 s warm-up)
    DURATION=3s bench/run      # a quick run
    bench/run --json           # one JSON object per point instead
    ROUNDS=3 bench/run         # every point 3 times, interleaved; the median round is reported
    VARIANTS=none bench/run    # only the in-memory systems (default: VARIANTS=cache,idem,pg)

It starts every app (baseline, baseline+checks, floor, library, library with WIDGETS=200, with Redis
on 127.0.0.1:6379 the variants library+cache and library+idem, and with PostgreSQL on
127.0.0.1:5432 baseline+pg, baseline+pg+keys, library+pg and library+pg (keys off)) under
gunicorn on a free port of 127.0.0.1, waits until ``GET /`` answers,
checks correctness (200 rows, "66 of 200 done", an htmx toggle flips its row and moves the
stats, a no-JS toggle answers 303 and flips the row; with the library, baseline+checks and floor
also that a toggle without a CSRF token or from another origin is refused), then measures each point
with wrk (closed loop) at ``-t1 -c1`` and ``-t2 -c16``, the systems back to back per point so
that background load on the machine hits them alike. The library's toggle carries the CSRF
token, the signed bound id and the session cookie read from the page, as a browser would send
them. wrk sends each library toggle with a key of its own in ``_hx_key`` (a Lua ``request()``:
a random prefix per wrk thread and a count), as hx-actions.js sends a fresh key per submit;
toggling the same row again and again is fine.

``baseline+checks`` (apps/checked_app.py) is the baseline plus what the library checks, by hand:
Flask-WTF's ``CSRFProtect`` with a token input in each row form, an origin check before it, and
the row id signed into the form (itsdangerous, salted with a per-session id) for
``POST /todos/toggle``. Its toggle replays the page's token and signed id with the session
cookie. baseline+checks ÷ baseline is what the checks cost; library ÷ baseline+checks (its own
table, and informational lines under the targets) is what the library adds on top of them.

``floor`` (apps/floor_app.py) is the baseline plus only what the workload and the issues require of
a toggle, hand-written as cheaply as this stack allows: no Flask session, no Flask-WTF, one
``hmac.digest`` per check (a session cookie of a random id, a CSRF token derived from it, a row id
signed with a time stamp), the re-rendered row's form with a fresh key, a new signed id and the
token, and ``Vary`` and ``Cache-Control: no-store`` on the answer. floor ÷ baseline is what the
required protections cost on this server whoever writes them; library ÷ floor is what the library
costs beyond them (its own table and lines under the targets).

The variants (``VARIANTS``, all by default; skipped with a message when Redis or PostgreSQL does
not answer):

- ``library+cache``: rows ``cache="user"``, widgets ``cache="global"`` (``BENCH_CACHE=1``), with
  ``HX_ACTIONS_REDIS_URL`` so both workers share tag versions and cached HTML, idempotency off,
  and the done flags shared between the workers (``BENCH_SHARED_DATA``, see apps/data.py) so a
  row cached by one worker holds what the other sees. Checked: after a toggle, the next
  ``GET /`` shows the flipped row and the moved stats, and a second session's toggle works.
- ``library+idem``: idempotency keys in Redis (``HX_ACTIONS_REDIS_URL``, the "auto" store with
  no SQLAlchemy). Checked: a repeated key is replayed, fresh keys are not; after each load, Redis
  holds one new key per request wrk completed (none was a replay).
- ``pg``: the todos in PostgreSQL (``BENCH_DATABASE_URL``, see apps/data.py; each system in a
  schema of its own in the database ``test``, created and seeded before its server starts and
  dropped at the end). ``baseline+pg`` is the baseline on that store (it commits each toggle by
  hand); ``library+pg`` is the library as the README teaches it with Flask-SQLAlchemy: the "auto"
  idempotency store is the SQL store, so every toggle claims its key in its own transaction;
  ``library+pg (keys off)`` is the same with ``HX_ACTIONS_IDEMPOTENCY_STORE=none``. library+pg ÷
  baseline+pg is the targets' ratio with idempotency on; library+pg minus library+pg (keys off)
  is what the claim costs per action. ``baseline+pg+keys`` (apps/keyed_app.py) is the baseline
  with exactly-once toggles written by hand (a fresh key in each row's form, claimed with
  ``INSERT ... ON CONFLICT DO NOTHING`` in the toggle's transaction): baseline+pg+keys ÷
  baseline+pg is what the key costs whoever writes it, library+pg ÷ baseline+pg+keys what the
  library adds to a hand-wired app with the same guarantee (lines under the targets). Checked: as
  for library+idem, with the keys counted in the table ``hx_actions_idempotency`` (``hand_keys``
  for baseline+pg+keys).

Redis is ``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``); that database is flushed
before the servers start and after the run. PostgreSQL is ``BENCH_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Only the servers started here are
stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
VENV_BIN = Path(sys.executable).parent

N_TODOS = 200
INITIAL_DONE = 66
LOAD_ROW = 7  # the row wrk toggles (7 % 3 != 0: not done at first)
CONCURRENCY = ((1, 1), (2, 16))  # (wrk threads, connections)
WARMUP = "2s"

KEYS = ("system", "endpoint", "variant", "concurrency", "rps", "p50_ms", "p99_ms", "bytes")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
IDEM_PREFIX = "hx-actions:idempotency:"  # RedisStore's default key prefix
POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
KEYS_TABLE = "hx_actions_idempotency"  # SQLAlchemyStore's default table
HAND_KEYS_TABLE = "hand_keys"  # apps/keyed_app.py's keys, written by hand


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# -- reading a page ------------------------------------------------------------------------------


@dataclass
class Form:
    attrs: dict[str, str]
    inputs: list[tuple[str, str]] = field(default_factory=list)
    checked: str | None = None  # aria-checked of its role=checkbox button


class PageParser(HTMLParser):
    """What a browser (and hx-actions.js) would read from a page or a fragment answer: the rows
    and their forms, the stats text, the CSRF meta tag and the regions (``data-hx-fragment``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: dict[int, Form] = {}  # row id -> its form
        self.row_ids: list[int] = []
        self.stats: list[tuple[str, dict[str, str]]] = []  # (text, attrs) of each #stats
        self.widgets = 0
        self.csrf_meta: str | None = None
        self.regions: list[dict[str, str]] = []  # attrs of elements with data-hx-fragment
        self._row: int | None = None
        self._form: Form | None = None
        self._in_stats: dict[str, str] | None = None
        self._stats_text: list[str] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        ident = attrs.get("id", "")
        if "data-hx-fragment" in attrs:
            self.regions.append(attrs)
        if tag == "li" and ident.startswith("todo-"):
            self._row = int(ident.removeprefix("todo-"))
            self.row_ids.append(self._row)
        elif tag == "div" and ident.startswith("widget-"):
            self.widgets += 1
        elif ident == "stats":
            self._in_stats = attrs
            self._stats_text = []
        elif tag == "meta" and attrs.get("name") == "csrf-token":
            self.csrf_meta = attrs.get("content")
        elif tag == "form" and self._row is not None:
            self._form = self.forms[self._row] = Form(attrs)
        elif tag == "input" and self._form is not None:
            self._form.inputs.append((attrs.get("name", ""), attrs.get("value", "")))
        elif tag == "button" and self._form is not None and attrs.get("role") == "checkbox":
            self._form.checked = attrs.get("aria-checked")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "li" and self._form is None:
            self._row = None
        elif tag == "p" and self._in_stats is not None:
            self.stats.append(("".join(self._stats_text).strip(), self._in_stats))
            self._in_stats = None

    def handle_data(self, data: str) -> None:
        if self._in_stats is not None:
            self._stats_text.append(data)

    @classmethod
    def of(cls, html: str) -> PageParser:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser

    def checked_count(self) -> int:
        return sum(1 for f in self.forms.values() if f.checked == "true")

    def regions_field(self, form: Form) -> str:
        """The ``_hx_regions`` field as static/hx-actions.js builds it for ``form``: every
        non-parametrised region name, then ``name?params`` for each parametrised region whose
        ``data-hx-tags`` meet the form's ``data-hx-tags``."""
        form_tags = set(form.attrs.get("data-hx-tags", "").split())
        names: list[str] = []
        parametrised: list[str] = []
        seen: set[str] = set()
        for region in self.regions:
            name = region.get("data-hx-fragment", "")
            if not name:
                continue
            # the attribute static/hx-actions.js reads (data-hx-params in earlier versions)
            params = region.get("data-hx-fragment-params", region.get("data-hx-params"))
            if params is None:
                if name not in seen:
                    seen.add(name)
                    names.append(name)
                continue
            token = f"{name}?{params}"
            if token in seen or not form_tags:
                continue
            if set(region.get("data-hx-tags", "").split()) & form_tags:
                seen.add(token)
                parametrised.append(token)
        return " ".join(names + parametrised)


def stats_done(text: str) -> int:
    match = re.fullmatch(r"(\d+) of (\d+) done", text)
    if not match or int(match.group(2)) != N_TODOS:
        raise BenchError(f"unexpected stats text {text!r}")
    return int(match.group(1))


# -- HTTP without a library: one request per connection, redirects not followed ------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def http_request(
    port: int, method: str, path: str, headers: dict[str, str], body: str = "", timeout: float = 10
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            method, path, body=body.encode() if method == "POST" else None, headers=headers
        )
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def session_cookie(answer: Answer) -> str:
    """``name=value`` pairs of the cookies an answer sets (the session cookie here)."""
    pairs = []
    for raw in answer.headers.get_all("Set-Cookie") or []:
        pairs.append(raw.split(";", 1)[0].strip())
    return "; ".join(pairs)


# -- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """gunicorn, 2 sync workers, on 127.0.0.1 (in its own process group, stopped by its pid).

    ``wrap`` goes before gunicorn's command (``bench/instructions.py --server`` runs it under
    valgrind); ``patience`` multiplies the waits for a server that slow."""

    def __init__(
        self,
        module: str,
        widgets: int,
        env: dict[str, str] | None = None,
        *,
        workers: int = 2,
        wrap: Sequence[str] = (),
        patience: float = 1.0,
    ) -> None:
        self.module = module
        self.widgets = widgets
        self.env = dict(env or {})
        self.workers = workers
        self.wrap = list(wrap)
        self.patience = patience
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Lives as long as the server (closed in stop()), so no context manager.
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="bench-gunicorn-", suffix=".log"
        )

    def start(self) -> None:
        # Only this system's settings: none inherited from the shell (HX_ACTIONS_REDIS_URL...).
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HX_ACTIONS_", "BENCH_CACHE", "BENCH_SHARED"))
        }
        env = dict(inherited, WIDGETS=str(self.widgets), PYTHONUNBUFFERED="1", **self.env)
        cmd = [
            *self.wrap,
            str(VENV_BIN / "gunicorn"),
            f"--workers={self.workers}",
            "--worker-class=sync",
            f"--bind=127.0.0.1:{self.port}",
            f"--chdir={APPS}",
            "--log-level=warning",  # no --access-logfile: access logging stays off
            f"{self.module}:app",
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=APPS,
            env=env,
            stdout=self.logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _record_pid(self.proc.pid)
        wait = 30 * self.patience
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.module} exited at start:\n{self.log_tail()}")
            try:
                probe = http_request(self.port, "GET", "/", {}, timeout=2 * self.patience)
                if probe.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.module} did not answer within {wait:.0f} s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        self.logfile.flush()
        return Path(self.logfile.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            # gunicorn's own process group: its arbiter and workers, nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15 * self.patience)
            except subprocess.TimeoutExpired:
                os.killpg(pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        _forget_pid(pid)
        self.proc = None
        self.logfile.close()


_PIDFILE = os.environ.get("BENCH_PIDFILE")  # bench/run's trap stops whatever is listed there


def _record_pid(pid: int) -> None:
    if _PIDFILE:
        with open(_PIDFILE, "a") as fh:
            fh.write(f"{pid}\n")


def _forget_pid(pid: int) -> None:
    if _PIDFILE and os.path.exists(_PIDFILE):
        kept = [line for line in Path(_PIDFILE).read_text().split() if line != str(pid)]
        Path(_PIDFILE).write_text("".join(f"{p}\n" for p in kept))


# -- requests a browser would send ---------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str = ""


class Browser:
    """Builds the requests of one browser session from the page it loaded."""

    def __init__(self, system: str, port: int) -> None:
        self.system = system
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.cookie = ""
        self.page: PageParser | None = None

    def load(self) -> tuple[Answer, PageParser]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        answer = http_request(self.port, "GET", "/", headers)
        if answer.status != 200:
            raise BenchError(f"{self.system}: GET / answered {answer.status}")
        cookie = session_cookie(answer)
        if cookie:
            self.cookie = cookie
        page = PageParser.of(answer.text)
        self.page = page
        return answer, page

    def get_page(self) -> Request:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        return Request("GET", "/", headers)

    def _form(self, row: int) -> Form:
        assert self.page is not None
        try:
            return self.page.forms[row]
        except KeyError:
            raise BenchError(f"{self.system}: the page has no form in row {row}") from None

    def _common(self, form: Form, content: bool) -> tuple[str, dict[str, str], str]:
        path = form.attrs.get("action") or ""
        headers = {"Origin": self.origin, "Sec-Fetch-Site": "same-origin"}
        if content:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookie:
            headers["Cookie"] = self.cookie
        body = urlencode([(n, v) for n, v in form.inputs if n])
        return path, headers, body

    def htmx_toggle(self, row: int) -> Request:
        """The request htmx 2 + hx-actions.js send for a click on the row's button."""
        assert self.page is not None
        form = self._form(row)
        path, headers, body = self._common(form, content=True)
        path = form.attrs.get("hx-post") or path
        headers["HX-Request"] = "true"
        headers["HX-Current-URL"] = f"{self.origin}/"
        if form.attrs.get("id"):
            headers["HX-Trigger"] = form.attrs["id"]
        target = form.attrs.get("hx-target", "")
        if target.startswith("#"):
            headers["HX-Target"] = target[1:]
        if "data-hx-action" in form.attrs:  # hx-actions.js adds these fields to action forms
            added = [("_hx_regions", self.page.regions_field(form))]
            if self.page.csrf_meta:
                added.insert(0, ("_hx_csrf", self.page.csrf_meta))
            body = "&".join([body, urlencode(added)]) if body else urlencode(added)
        return Request("POST", path, headers, body)

    def plain_toggle(self, row: int) -> Request:
        """The same form posted by a browser without JavaScript."""
        form = self._form(row)
        path, headers, body = self._common(form, content=True)
        headers["Referer"] = f"{self.origin}/"
        return Request("POST", path, headers, body)

    def send(self, req: Request) -> Answer:
        return http_request(self.port, req.method, req.path, req.headers, req.body)


# -- correctness ---------------------------------------------------------------------------------


def check_page(system: str, page: PageParser, widgets: int) -> int:
    """200 rows each with a form, a consistent stats line, all the widgets; returns done count."""
    if len(page.row_ids) != N_TODOS or len(page.forms) != N_TODOS:
        raise BenchError(f"{system}: GET / has {len(page.row_ids)} rows, {len(page.forms)} forms")
    if len(page.stats) != 1:
        raise BenchError(f"{system}: GET / has {len(page.stats)} #stats elements")
    done = stats_done(page.stats[0][0])
    if done != page.checked_count():
        raise BenchError(f"{system}: stats say {done} done, {page.checked_count()} rows checked")
    if page.widgets != widgets:
        raise BenchError(f"{system}: GET / has {page.widgets} widgets, expected {widgets}")
    if page.csrf_meta is not None:
        check_forms(system, page)
    return done


def check_forms(system: str, page: PageParser) -> None:
    """Library pages: every form carries the page's CSRF token and its own idempotency key (no
    placeholder of a cached fragment left unfilled, no key shared by two forms)."""
    keys = set()
    for row, form in page.forms.items():
        fields = dict(form.inputs)
        if fields.get("csrf_token") != page.csrf_meta:
            raise BenchError(
                f"{system}: row {row}'s form has csrf_token {fields.get('csrf_token')!r}, not the "
                f"page's token (an unfilled placeholder of a cached fragment?)"
            )
        key = fields.get("_hx_key", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{22}", key) or key in keys:
            raise BenchError(
                f"{system}: row {row}'s _hx_key {key!r} is not a fresh key of its own "
                "(an unfilled placeholder of a cached fragment?)"
            )
        keys.add(key)


def check(system: str, browser: Browser, widgets: int, shared: bool = False) -> None:
    """Run against a freshly started server (every worker holds the initial data). ``shared``:
    the workers share the data (and the fragment cache): every later page must show a toggle."""
    _, page = browser.load()
    done = check_page(system, page, widgets)
    if done != INITIAL_DONE:
        raise BenchError(f"{system}: GET / says {done} of 200 done, expected {INITIAL_DONE}")
    if system.startswith("library") or system in (CHECKED, FLOOR):
        check_refusals(system, browser)
    if system.startswith("library"):
        check_regions_field(system, browser)

    # htmx toggle of row 1 (not done): the answer holds the row, now checked, and the stats at
    # 67, out-of-band, and nothing else. Deterministic: both workers still hold the initial data.
    answer = browser.send(browser.htmx_toggle(1))
    if answer.status != 200:
        raise BenchError(f"{system}: htmx toggle answered {answer.status}: {answer.text[:300]}")
    part = PageParser.of(answer.text)
    if part.row_ids != [1] or part.forms[1].checked != "true":
        raise BenchError(f"{system}: htmx toggle did not answer row 1 checked: {answer.text}")
    if len(part.stats) != 1 or part.stats[0][1].get("hx-swap-oob") != "true":
        raise BenchError(f"{system}: htmx toggle has no out-of-band stats: {answer.text}")
    if stats_done(part.stats[0][0]) != INITIAL_DONE + 1:
        raise BenchError(f"{system}: stats did not move to 67: {part.stats[0][0]!r}")
    if part.widgets:
        raise BenchError(f"{system}: htmx toggle re-rendered the widgets")
    if shared:
        check_pages_show(system, browser, widgets, {1: "true"}, INITIAL_DONE + 1)

    # No-JS toggle of row 2: 303 to "/", and some worker now shows row 2 checked (the workers
    # hold separate copies of the data: look until the one that took the POST answers).
    answer = browser.send(browser.plain_toggle(2))
    location = answer.headers.get("Location", "")
    if answer.status != 303 or location not in ("/", f"{browser.origin}/"):
        raise BenchError(f"{system}: no-JS toggle answered {answer.status} {location!r}")
    if shared:
        check_pages_show(system, browser, widgets, {1: "true", 2: "true"}, INITIAL_DONE + 2)
        check_other_session(system, browser, widgets)
        log(f"{system}: correctness check passed (toggles seen by every later page)")
        return
    for _ in range(80):
        _, page = browser.load()
        check_page(system, page, widgets)  # stats always agree with the rows
        if page.forms[2].checked == "true":
            break
    else:
        raise BenchError(f"{system}: no page showed row 2 checked after the no-JS toggle")
    log(f"{system}: correctness check passed")


def check_pages_show(
    system: str, browser: Browser, widgets: int, rows: dict[int, str], done: int
) -> None:
    """With shared data and a shared fragment cache, every page after a toggle (whichever worker
    serves it, cached rows or not) shows the flipped rows and the moved stats."""
    for attempt in range(6):  # both workers, several times
        _, page = browser.load()
        if check_page(system, page, widgets) != done:
            raise BenchError(
                f"{system}: GET / #{attempt + 1} after a toggle says {page.stats[0][0]!r}, "
                f"expected {done} done (a stale cached fragment?)"
            )
        for row, checked in rows.items():
            if page.forms[row].checked != checked:
                raise BenchError(
                    f"{system}: GET / #{attempt + 1} after a toggle shows row {row} "
                    f"aria-checked={page.forms[row].checked!r}, expected {checked!r}"
                )


def check_other_session(system: str, browser: Browser, widgets: int) -> None:
    """Rows are cached per user: another session gets its own forms (its bound ids and keys
    verify), and its toggle works and is seen by the first session's pages too."""
    other = Browser(system, browser.port)
    _, page = other.load()
    before = check_page(system, page, widgets)
    answer = other.send(other.htmx_toggle(3))  # 3 is done at first: unchecks it
    if answer.status != 200:
        raise BenchError(f"{system}: a second session's toggle answered {answer.status}")
    part = PageParser.of(answer.text)
    if part.row_ids != [3] or part.forms[3].checked != "false":
        raise BenchError(f"{system}: a second session's toggle did not uncheck row 3")
    check_pages_show(system, other, widgets, {3: "false"}, before - 1)
    check_pages_show(system, browser, widgets, {3: "false"}, before - 1)


def check_regions_field(system: str, browser: Browser) -> None:
    """The ``_hx_regions`` field built from the page names the non-parametrised regions and the
    toggled row's own region with its parameters (as hx-actions.js would send it); if the
    page's markup changed under this reader, stop rather than measure a different request."""
    fields = dict(parse_qsl(browser.htmx_toggle(LOAD_ROW).body))
    value = fields.get("_hx_regions", "")
    expected = ["todos", "stats", "widgets", f"todo?id={LOAD_ROW}"]
    if value.split() != expected:
        raise BenchError(
            f"{system}: _hx_regions would be {value!r}, expected {' '.join(expected)!r};"
            " has the region markup changed? Make PageParser.regions_field follow"
            " static/hx-actions.js."
        )


def check_refusals(system: str, browser: Browser) -> None:
    """The protections are on: no CSRF token is 400, another origin is 403 (nothing runs)."""
    req = browser.htmx_toggle(1)
    tokens = ("csrf_token=", "_hx_csrf=")
    body = "&".join(p for p in req.body.split("&") if not p.startswith(tokens))
    answer = browser.send(Request("POST", req.path, req.headers, body))
    if answer.status != 400:
        raise BenchError(f"{system}: a toggle without CSRF token answered {answer.status}")
    evil = dict(req.headers, Origin="https://evil.example", **{"Sec-Fetch-Site": "cross-site"})
    answer = browser.send(Request("POST", req.path, evil, req.body))
    if answer.status != 403:
        raise BenchError(f"{system}: a cross-site toggle answered {answer.status}")


# -- wrk -----------------------------------------------------------------------------------------


def lua_string(value: str) -> str:
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.extend(f"\\{b}" for b in ch.encode())
    return '"' + "".join(out) + '"'


DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH %d %d %.3f %.3f %d %d %d %d %d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# Each request gets a new 22-character _hx_key: 12 random base64url characters drawn once per wrk
# thread (72 bits from /dev/urandom) and a 10-digit count of the thread's requests, so no two
# requests of a run share a key: every toggle is a new submit, never a replay. The request is
# formatted once with a placeholder key and cut around it; request() only joins three strings
# (a request built per call, and a random key made character by character, cost wrk about 12 us
# of CPU per request, on the cores the servers use).
FRESH_KEY_LUA = """
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local head, tail, prefix
local count = 0
init = function(args)
  local urandom = assert(io.open("/dev/urandom", "rb"))
  local bytes = urandom:read(12)
  urandom:close()
  local chars = {}
  for i = 1, 12 do
    local b = bytes:byte(i) % 64 + 1
    chars[i] = alphabet:sub(b, b)
  end
  prefix = table.concat(chars)
  local req = wrk.format(nil, nil, nil, body_head .. string.rep("A", 22) .. body_tail)
  local at = #req - #body_tail - 22  -- the body ends the request
  head = req:sub(1, at)
  tail = req:sub(at + 23)
end
request = function()
  count = count + 1
  return head .. prefix .. string.format("%010d", count) .. tail
end
"""


def fresh_key(req: Request) -> Request:
    """``req`` with a new random ``_hx_key`` (what hx-actions.js sends for the next submit)."""
    body = with_key(req.body, secrets.token_urlsafe(16))
    return Request(req.method, req.path, req.headers, body)


def with_key(body: str, key: str) -> str:
    """The form ``body`` with its ``_hx_key`` set to ``key`` (empty: no key)."""
    if not KEY_FIELD_RE.search(body):
        raise BenchError(f"no _hx_key field in {body[:200]!r}")
    return KEY_FIELD_RE.sub(lambda m: m.group(1) + key, body, count=1)


KEY_FIELD_RE = re.compile(r"((?:^|&)_hx_key=)[A-Za-z0-9_-]*")


def wrk_script(req: Request, directory: Path, name: str, fresh_keys: bool = False) -> Path:
    lines = [f"wrk.method = {lua_string(req.method)}"]
    extra = ""
    if req.method == "POST":
        lines.append(f"wrk.body = {lua_string(req.body)}")
        if fresh_keys:
            match = KEY_FIELD_RE.search(req.body)
            if not match:
                raise BenchError(f"no _hx_key field in {req.body[:200]!r}")
            lines.append(f"body_head = {lua_string(req.body[: match.end(1)])}")
            lines.append(f"body_tail = {lua_string(req.body[match.end() :])}")
            extra = FRESH_KEY_LUA
    for key, value in req.headers.items():
        lines.append(f"wrk.headers[{lua_string(key)}] = {lua_string(value)}")
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + extra + DONE_LUA)
    return path


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", duration.strip())
    if not match:
        raise BenchError(f"DURATION={duration!r}: use e.g. 10s, 3s or 1m")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass
class Measure:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]


def wrk(port: int, script: Path, path: str, threads: int, conns: int, duration: str) -> Measure:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{duration}",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
    ]
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds(duration) + 60, check=False
    )
    if run.returncode != 0:
        raise BenchError(f"wrk failed ({run.returncode}): {run.stderr or run.stdout}")
    match = re.search(r"^BENCH (.+)$", run.stdout, re.M)
    if not match:
        raise BenchError(f"wrk printed no summary:\n{run.stdout}")
    fields = match.group(1).split()
    requests, duration_us = int(fields[0]), int(fields[1])
    p50_us, p99_us = float(fields[2]), float(fields[3])
    names = ("connect", "read", "write", "status", "timeout")
    errors = {n: int(v) for n, v in zip(names, fields[4:], strict=True)}
    return Measure(requests, requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000, errors)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    module: str
    widgets: int
    points: tuple[tuple[str, str], ...]  # (endpoint, variant)
    env: dict[str, str] = field(default_factory=dict)  # the server's own settings
    shared: bool = False  # data and fragment cache shared by the workers (check every page)
    idempotency: str = ""  # keys enforced, in "redis" or "sql": check replays, count keys
    keys_table: str = KEYS_TABLE  # with "sql": the table its keys are counted in
    database: bool = False  # the todos in a PostgreSQL schema of its own (BENCH_DATABASE_URL)

    @property
    def fresh_keys(self) -> bool:
        """wrk sends a new ``_hx_key`` per toggle (all library systems, store or not, and the
        baseline with keys by hand)."""
        return self.module in ("library_app", "keyed_app")


ALL_POINTS = (("GET /", "page"), ("toggle", "htmx"), ("toggle", "no-JS (303)"))

CHECKED = "baseline+checks"  # the baseline with the library's protections written by hand
FLOOR = "floor"  # the baseline with only the required protections, written as cheaply as possible
#: The apps by short name (``bench/apps/<name>_app.py``), as ``cpu.py`` and ``instructions.py``
#: take them.
APP_NAMES = ("baseline", "checked", "floor", "library")

SYSTEMS = (
    System("baseline", "baseline_app", 20, ALL_POINTS),
    System(CHECKED, "checked_app", 20, ALL_POINTS),
    System(FLOOR, "floor_app", 20, ALL_POINTS),
    System("library", "library_app", 20, ALL_POINTS),
    System("library", "library_app", 200, (("toggle", "htmx, 200 widgets"),)),
)

VARIANT_NAMES = {
    "cache": "library+cache",
    "idem": "library+idem",
    "pg": "baseline+pg, baseline+pg+keys, library+pg, library+pg (keys off)",
}
PG_KEYS_OFF = "library+pg (keys off)"
PG_HAND_KEYS = "baseline+pg+keys"  # the baseline with exactly-once toggles written by hand
PG_LIBRARIES = ("library+pg", PG_KEYS_OFF)
PG_OVER_BASELINE = (*PG_LIBRARIES, PG_HAND_KEYS)  # compared with baseline+pg, not with baseline
#: Each variant's reference in the "variants" table: what the variant adds is measured against it.
VARIANT_REFERENCE = {
    "library+cache": "library",
    "library+idem": "library",
    "library+pg": PG_KEYS_OFF,
}


def variant_systems(names: list[str], shared_dir: Path) -> list[System]:
    """The Redis variants asked for in ``VARIANTS``, in a fixed order."""
    out = []
    if "cache" in names:
        out.append(
            System(
                "library+cache",
                "library_app",
                20,
                (("GET /", "page"), ("toggle", "htmx")),
                env={
                    "BENCH_CACHE": "1",
                    "HX_ACTIONS_REDIS_URL": REDIS_URL,
                    "HX_ACTIONS_IDEMPOTENCY_STORE": "none",  # the cache alone
                    "BENCH_SHARED_DATA": str(shared_dir / "cache-variant-done-flags"),
                },
                shared=True,
            )
        )
    if "idem" in names:
        out.append(
            System(
                "library+idem",
                "library_app",
                20,
                (("toggle", "htmx"), ("toggle", "no-JS (303)")),
                env={"HX_ACTIONS_REDIS_URL": REDIS_URL},
                idempotency="redis",
            )
        )
    if "pg" in names:
        toggles = (("toggle", "htmx"), ("toggle", "no-JS (303)"))
        out += [
            pg_system("baseline+pg", "baseline_app", ALL_POINTS),
            pg_system(
                PG_HAND_KEYS, "keyed_app", ALL_POINTS, idempotency="sql", keys_table=HAND_KEYS_TABLE
            ),
            pg_system("library+pg", "library_app", ALL_POINTS, idempotency="sql"),
            pg_system(
                PG_KEYS_OFF,
                "library_app",
                toggles,
                {"HX_ACTIONS_IDEMPOTENCY_STORE": "none"},
            ),
        ]
    return out


def pg_system(
    name: str,
    module: str,
    points: tuple[tuple[str, str], ...],
    env: dict[str, str] | None = None,
    idempotency: str = "",
    keys_table: str = KEYS_TABLE,
) -> System:
    """A system of the ``pg`` variant: the todos in PostgreSQL, shared by both workers."""
    return System(
        name,
        module,
        20,
        points,
        env=dict(env or {}),
        shared=True,
        idempotency=idempotency,
        keys_table=keys_table,
        database=True,
    )


def parse_variants(value: str) -> list[str]:
    names = [n.strip() for n in value.replace(",", " ").split() if n.strip()]
    if names in ([], ["none"]):
        return []
    if names == ["all"]:
        return list(VARIANT_NAMES)
    unknown = [n for n in names if n not in VARIANT_NAMES]
    if unknown:
        raise BenchError(f"VARIANTS: unknown {unknown}; use cache, idem, pg, all or none")
    return names


class Redis:
    """The bench's own look at the Redis the variants use (redis-py, from the library's extra)."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    @classmethod
    def connect(cls, url: str) -> Redis | None:
        try:
            redis = cls(url)
            redis.client.ping()
        except ImportError:
            log(f"redis-py is not installed (pip install -e '.[dev]'): cannot use {url}")
            return None
        except Exception as exc:  # connection refused, timeout, auth...
            log(f"Redis at {url} does not answer ({type(exc).__name__}: {exc})")
            return None
        return redis

    def flush(self) -> None:
        self.client.flushdb()

    def count(self, prefix: str) -> int:
        return sum(1 for _ in self.client.scan_iter(match=f"{prefix}*", count=5000))


class Postgres:
    """The PostgreSQL of the ``pg`` variant: one schema per system (its todos and, for the
    library, its idempotency keys), created and seeded before the system's server starts."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import make_url

        self.sa = sa
        self.base = make_url(url)
        self.engine = sa.create_engine(self.base, pool_pre_ping=True)
        self.schemas: list[str] = []

    @classmethod
    def connect(cls, url: str) -> Postgres | None:
        try:
            pg = cls(url)
            with pg.engine.connect() as conn:
                conn.execute(pg.sa.text("SELECT 1"))
        except ImportError as exc:
            log(f"{exc.name} is not installed (pip install -e '.[dev]'): cannot use {url}")
            return None
        except Exception as exc:  # connection refused, no such database...
            log(f"PostgreSQL at {url} does not answer ({type(exc).__name__}: {exc})")
            return None
        return pg

    def new_schema(self, system: str) -> tuple[str, str]:
        """A fresh schema for ``system``, seeded with the initial todos: (schema, URL)."""
        slug = re.sub(r"[^a-z0-9]+", "_", system.lower()).strip("_")
        schema = f"hxbench_{slug}_{secrets.token_hex(4)}"
        with self.engine.begin() as conn:
            conn.execute(self.sa.text(f'CREATE SCHEMA "{schema}"'))
        self.schemas.append(schema)
        url = self.base.update_query_dict({"options": f"-csearch_path={schema}"})
        rendered = url.render_as_string(hide_password=False)
        sys.path.insert(0, str(APPS))
        try:
            import data  # apps/data.py: the same model the apps use
        finally:
            sys.path.remove(str(APPS))
        data.seed(rendered)
        return schema, rendered

    def count_keys(self, schema: str, table: str = KEYS_TABLE) -> int:
        """Rows of the SQL idempotency store in ``schema`` (0 before its first claim): the
        library's, or ``table`` (``HAND_KEYS_TABLE`` for the keys written by hand)."""
        sa = self.sa
        with self.engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT to_regclass(:name)"), {"name": f'"{schema}".{table}'}
            ).scalar()
            if exists is None:
                return 0
            # The schema's name is this class's own ([a-z0-9_]) and the table one of ours.
            query = f'SELECT count(*) FROM "{schema}".{table}'  # noqa: S608
            count = conn.execute(sa.text(query))
            return int(count.scalar() or 0)

    def close(self) -> None:
        with contextlib.suppress(Exception), self.engine.begin() as conn:
            for schema in self.schemas:
                conn.execute(self.sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.engine.dispose()


POINT_ORDER = ALL_POINTS


def request_for(browser: Browser, endpoint: str, variant: str) -> Request:
    if endpoint == "GET /":
        return browser.get_page()
    if variant.startswith("htmx"):
        return browser.htmx_toggle(LOAD_ROW)
    return browser.plain_toggle(LOAD_ROW)


def expected_status(endpoint: str, variant: str) -> int:
    return 303 if variant.startswith("no-JS") else 200


MEASURED_VERSIONS: list[str] = []  # the library's commit at each library server start


def library_version() -> str:
    """The commit of the library code being measured (others may be changing it meanwhile)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h", "--", "flask_hx_actions"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "-uno", "--", "flask_hx_actions"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + uncommitted changes" if dirty else commit


@dataclass
class Target:
    """One point of one system, ready for wrk."""

    system: System
    server: Server
    endpoint: str
    variant: str
    request: Request
    script: Path
    size: int


def prepare(system: System, server: Server, workdir: Path) -> list[Target]:
    """Check a fresh server, then read the page the load replays (cookie, tokens, bound id) and
    record one answer's body size per point."""
    browser = Browser(system.name, server.port)
    check(system.name, browser, system.widgets, shared=system.shared)
    browser.load()
    targets = []
    for endpoint, variant in system.points:
        req = request_for(browser, endpoint, variant)
        if system.fresh_keys and req.method == "POST":
            req = fresh_key(req)  # as for a new submit: the page's key may be spent already
        answer = browser.send(req)
        if answer.status != expected_status(endpoint, variant):
            raise BenchError(
                f"{system.name} {endpoint} {variant}: answered {answer.status}, "
                f"expected {expected_status(endpoint, variant)}"
            )
        if req.method == "POST":
            check_keys(system, endpoint, variant, browser, req, answer)
        slug = re.sub(r"[^a-z0-9]+", "-", f"{system.name}-{system.widgets}-{endpoint}-{variant}")
        fresh = system.fresh_keys and req.method == "POST"
        script = wrk_script(req, workdir, slug.lower(), fresh_keys=fresh)
        targets.append(Target(system, server, endpoint, variant, req, script, len(answer.body)))
    return targets


def check_keys(
    system: System, endpoint: str, variant: str, browser: Browser, req: Request, first: Answer
) -> None:
    """What wrk will send is a real toggle each time, never a stored replay: requests with fresh
    keys are not replayed. With the store on, the same key sent again is replayed (so the store
    is really in the path); with it off, the same key runs again."""
    label = f"{system.name} {endpoint} {variant}"
    status = expected_status(endpoint, variant)
    answers = [first]
    if system.fresh_keys:
        answers += [browser.send(fresh_key(req)) for _ in range(3)]
    replayed = [a for a in answers if "Idempotent-Replayed" in a.headers]
    if replayed or any(a.status != status for a in answers):
        raise BenchError(
            f"{label}: answers to fresh keys: {[a.status for a in answers]}, "
            f"{len(replayed)} with Idempotent-Replayed; wrk would not measure real toggles"
        )
    again = browser.send(req)  # the first request's key, once more
    if system.idempotency:
        if again.status != status or again.headers.get("Idempotent-Replayed") != "true":
            raise BenchError(
                f"{label}: a repeated _hx_key answered {again.status} without "
                f"Idempotent-Replayed: true; is the {system.idempotency} idempotency store on?"
            )
    elif "Idempotent-Replayed" in again.headers:
        raise BenchError(f"{label}: a repeated key was replayed, but this system has no store")


def measure(
    target: Target,
    threads: int,
    conns: int,
    duration: str,
    keys: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """One point with wrk. ``keys`` counts the system's idempotency keys: with it, every
    request wrk completed must have added one."""
    port, path = target.server.port, target.request.path
    counting = keys is not None and target.request.method == "POST"
    keys_before = keys() if counting and keys else 0
    warm = wrk(port, target.script, path, threads, conns, WARMUP)
    m = wrk(port, target.script, path, threads, conns, duration)
    bad = {k: v for k, v in m.errors.items() if v}
    label = f"{target.system.name} {target.endpoint} {target.variant} c={conns}"
    if bad:
        raise BenchError(f"{label}: wrk errors {bad}\n{target.server.log_tail()}")
    if counting and keys:
        # Every request claimed a key of its own (a replay or a 409 would not add one), plus at
        # most the requests still in flight when wrk stopped (not counted by wrk).
        added = keys() - keys_before
        sent = warm.requests + m.requests
        if not sent <= added <= sent + 2 * conns:
            raise BenchError(
                f"{label}: wrk completed {sent} toggles but the store holds {added} new "
                "idempotency keys: some requests were not new submits"
            )
        log(f"  {label}: {added} new idempotency keys for {sent} requests")
    row = {
        "system": target.system.name,
        "endpoint": target.endpoint,
        "variant": target.variant,
        "concurrency": conns,
        "rps": round(m.rps, 1),
        "p50_ms": round(m.p50_ms, 2),
        "p99_ms": round(m.p99_ms, 2),
        "bytes": target.size,
    }
    log(
        f"  {label}: {row['rps']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
        f"{target.size} B"
    )
    return row


def run_all(
    duration: str, workdir: Path, rounds: int = 1, variants: list[str] | None = None
) -> list[dict[str, Any]]:
    """Start every server (idle ones cost nothing), check each, then measure point by point with
    the systems back to back, so a change in the machine's background load hits them alike.
    With ``rounds`` > 1 every point is measured that many times and the median round is kept."""
    systems = list(SYSTEMS)
    redis: Redis | None = None
    postgres: Postgres | None = None
    on_redis = [n for n in variants or [] if n in ("cache", "idem")]
    if on_redis:
        redis = Redis.connect(REDIS_URL)
        if redis is None:
            skipped = ", ".join(VARIANT_NAMES[n] for n in on_redis)
            log(f"SKIPPING {skipped}: they need Redis at {REDIS_URL} (set BENCH_REDIS_URL)")
        else:
            redis.flush()  # no tag versions, cached fragments or keys from an earlier run
            log(f"Redis {REDIS_URL}: flushed for {', '.join(VARIANT_NAMES[n] for n in on_redis)}")
            systems += variant_systems(on_redis, workdir)
    if "pg" in (variants or []):
        postgres = Postgres.connect(POSTGRES_URL)
        if postgres is None:
            log(f"SKIPPING {VARIANT_NAMES['pg']}: they need PostgreSQL at {POSTGRES_URL}")
        else:
            systems += variant_systems(["pg"], workdir)
    servers: list[Server] = []
    counters: dict[int, Callable[[], int]] = {}  # id(system) -> its idempotency key count
    try:
        targets: list[Target] = []
        for system in systems:
            env = dict(system.env)
            if system.database and postgres is not None:
                schema, env["BENCH_DATABASE_URL"] = postgres.new_schema(system.name)
                if system.idempotency == "sql":
                    counters[id(system)] = functools.partial(
                        postgres.count_keys, schema, system.keys_table
                    )
            if system.idempotency == "redis" and redis is not None:
                counters[id(system)] = functools.partial(redis.count, IDEM_PREFIX)
            server = Server(system.module, system.widgets, env)
            servers.append(server)
            version = ""
            if system.module == "library_app":
                MEASURED_VERSIONS.append(library_version())
                version = f", flask_hx_actions {MEASURED_VERSIONS[-1]}"
            settings = "".join(f", {k}={v}" for k, v in env.items())
            where = f"WIDGETS={system.widgets}{settings}{version}, 127.0.0.1:{server.port}"
            log(f"{system.name} ({system.module}, {where})")
            server.start()
            targets += prepare(system, server, workdir)
        samples: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
        for round_no in range(rounds):
            if rounds > 1:
                log(f"round {round_no + 1} of {rounds}")
            # Alternate which system goes first, so neither always follows the other.
            ordered = targets if round_no % 2 == 0 else targets[::-1]
            for endpoint, variant in POINT_ORDER:
                for threads, conns in CONCURRENCY:
                    for target in ordered:
                        if (target.endpoint, target.variant.split(",")[0]) == (endpoint, variant):
                            keys = counters.get(id(target.system))
                            row = measure(target, threads, conns, duration, keys)
                            key = (row["system"], row["endpoint"], row["variant"], conns)
                            samples.setdefault(key, []).append(row)
        # Per point, the round with the median req/s (all its figures from that one round); the
        # rounds themselves are kept for paired ratios (systems measured back to back).
        rows = []
        for rs in samples.values():
            row = dict(sorted(rs, key=lambda r: r["rps"])[len(rs) // 2])
            row["rounds"] = rs
            rows.append(row)
        order = {id(t.system): i for i, t in enumerate(targets)}
        index = {(t.system.name, t.endpoint, t.variant): order[id(t.system)] for t in targets}
        rows.sort(key=lambda r: (index[(r["system"], r["endpoint"], r["variant"])],))
        return rows
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            with contextlib.suppress(Exception):
                redis.flush()  # the run's keys (hundreds of thousands with library+idem)
        if postgres is not None:
            postgres.close()  # drops the run's schemas


# -- output --------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def markdown(rows: list[dict[str, Any]], duration: str, rounds: int, load: str) -> str:
    repeat = f", median of {rounds} interleaved rounds" if rounds > 1 else ""
    out = [
        f"Each point: wrk closed loop, {duration} after a {WARMUP} warm-up{repeat}; c=1 is "
        "`-t1 -c1`, c=16 is `-t2 -c16`; systems measured back to back per point; bytes = body "
        "of one response. Library code measured: "
        + (", ".join(dict.fromkeys(MEASURED_VERSIONS)) or "unknown")
        + f". 1-min load average before the run: {load}.",
        "",
        "| system | endpoint | variant | concurrency | req/s | p50 ms | p99 ms | bytes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        out.append(
            f"| {r['system']} | {r['endpoint']} | {r['variant']} | {r['concurrency']} | "
            f"{fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} | "
            f"{r['bytes']:,} |"
        )
    ratios = ratio_rows(rows)
    out += [
        "",
        "Ratio system ÷ baseline (÷ baseline+pg for baseline+pg+keys, library+pg and "
        "library+pg (keys off); "
        "req/s above 1 is better; latency and bytes below 1 are; "
        "with several rounds, the median of the per-round ratios):",
        "",
        "| system | endpoint | variant | concurrency | req/s | p50 | p99 | bytes |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ratios:
        out.append(
            f"| {r['system']} | {r['endpoint']} | {r['variant']} | {r['concurrency']} | "
            f"{r['rps']:.2f}x | {r['p50_ms']:.2f}x | {r['p99_ms']:.2f}x | {r['bytes']:.2f}x |"
        )
    for reference, what in (
        (CHECKED, "the same protections written by hand as a careful developer would"),
        (FLOOR, "only the required protections, written as cheaply as the stack allows"),
    ):
        overhead = library_rows(rows, reference)
        if not overhead:
            continue
        out += [
            "",
            f"Library ÷ {reference} ({what}; same point; µs/request = 1e6 ÷ req/s, library "
            f"minus {reference}: what the library adds per request beyond those checks, at "
            "c=1; at c=16 two workers share the load):",
            "",
            "| system | endpoint | variant | concurrency | req/s | p50 "
            f"| µs/request vs {reference} |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in overhead:
            out.append(
                f"| {r['system']} | {r['endpoint']} | {r['variant']} | {r['concurrency']} | "
                f"{r['rps']:.2f}x | {r['p50_ms']:.2f}x | {r['us_per_request']:+,.0f} |"
            )
    against = variant_rows(rows)
    if against:
        out += [
            "",
            "Variants ÷ the plain library (library+pg ÷ library+pg (keys off); same point; "
            "µs/request = 1e6 ÷ req/s, variant minus its reference: the cost per request at "
            "c=1; at c=16 two workers share the load):",
            "",
            "| system | endpoint | variant | concurrency | req/s | p50 | µs/request vs reference |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for r in against:
            out.append(
                f"| {r['system']} | {r['endpoint']} | {r['variant']} | {r['concurrency']} | "
                f"{r['rps']:.2f}x | {r['p50_ms']:.2f}x | {r['us_per_request']:+,.0f} |"
            )
    out += ["", "Targets:", ""]
    out += [f"- {line}" for line in target_lines(rows)]
    return "\n".join(out) + "\n"


def _find(rows: list[dict[str, Any]], system: str, endpoint: str, variant: str, conc: int) -> Any:
    for r in rows:
        if (r["system"], r["endpoint"], r["variant"], r["concurrency"]) == (
            system,
            endpoint,
            variant,
            conc,
        ):
            return r
    return None


def paired(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    """``a[key] / b[key]``; over several rounds, the median of the per-round ratios (each round
    measured the two back to back, so background load on the machine cancels out best)."""
    return _median(round_ratios(a, b, key))


def _round_pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The rounds of ``a`` and ``b`` side by side (the points themselves without rounds)."""
    ra, rb = a.get("rounds", [a]), b.get("rounds", [b])
    if len(ra) != len(rb):
        ra, rb = [a], [b]
    return list(zip(ra, rb, strict=True))


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def round_ratios(a: dict[str, Any], b: dict[str, Any], key: str) -> list[float]:
    """``a[key] / b[key]`` of each round (one value without rounds), sorted."""
    return sorted(x[key] / y[key] if y[key] else float("nan") for x, y in _round_pairs(a, b))


def spread(a: dict[str, Any], b: dict[str, Any], key: str = "rps") -> str:
    """`` (rounds 0.74x-0.95x)``: how far the per-round ratios lie apart (empty for one round),
    so that a verdict on the median shows how much the machine's noise moved it."""
    ratios = round_ratios(a, b, key)
    if len(ratios) < 2:
        return ""
    return f" (rounds {ratios[0]:.2f}x-{ratios[-1]:.2f}x)"


def paired_us(a: dict[str, Any], b: dict[str, Any]) -> float:
    """µs per request of ``a`` minus that of ``b`` (1e6 / req/s); over several rounds, the
    median of the per-round differences."""
    return _median(sorted(1e6 / x["rps"] - 1e6 / y["rps"] for x, y in _round_pairs(a, b)))


def rows_against(
    rows: list[dict[str, Any]], systems: Callable[[str], bool], reference: str
) -> list[dict[str, Any]]:
    """Each point of the ``systems`` against the same point of the ``reference`` system: paired
    ratios, µs/request difference, and both µs/request figures."""
    out = []
    for row in rows:
        if not systems(row["system"]):
            continue
        ref = _find(rows, reference, row["endpoint"], row["variant"], row["concurrency"])
        if ref is None:
            continue
        out.append(
            {
                "system": row["system"],
                "endpoint": row["endpoint"],
                "variant": row["variant"],
                "concurrency": row["concurrency"],
                "rps": paired(row, ref, "rps"),
                "p50_ms": paired(row, ref, "p50_ms"),
                "us_per_request": paired_us(row, ref),
                "reference_us": 1e6 / ref["rps"],
                "system_us": 1e6 / row["rps"],
            }
        )
    return out


def variant_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each variant's point against the same point of its reference (``VARIANT_REFERENCE``: the
    plain library, or library+pg (keys off) for library+pg)."""
    out = []
    for variant, reference in VARIANT_REFERENCE.items():
        out += rows_against(rows, lambda name, v=variant: name == v, reference)
    return out


def library_rows(rows: list[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Each in-memory library system's point (the plain library and its Redis variants) against
    the same point of ``reference`` (baseline+checks or floor)."""
    return rows_against(
        rows, lambda name: name.startswith("library") and name not in PG_LIBRARIES, reference
    )


def baseline_of(system: str) -> str:
    """The baseline a system's ratios are taken against (same data store)."""
    return "baseline+pg" if system in PG_OVER_BASELINE else "baseline"


def ratio_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for lib in rows:
        if lib["system"] == "baseline":
            continue
        base = _find(
            rows, baseline_of(lib["system"]), lib["endpoint"], lib["variant"], lib["concurrency"]
        )
        if base is None:
            continue
        out.append(
            {
                "system": lib["system"],
                "endpoint": lib["endpoint"],
                "variant": lib["variant"],
                "concurrency": lib["concurrency"],
                **{k: paired(lib, base, k) for k in ("rps", "p50_ms", "p99_ms", "bytes")},
            }
        )
    return out


TARGET_POINTS = (("toggle", "htmx"), ("toggle", "no-JS (303)"), ("GET /", "page"))


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    def speed_targets(system: str, baseline: str, label: str, target: bool = True) -> None:
        """The 0.85x req/s target of each point, ``system`` against ``baseline`` (``target``
        False: the ratio only, for information)."""
        for endpoint, variant in TARGET_POINTS:
            for conc in (1, 16):
                lib = _find(rows, system, endpoint, variant, conc)
                base = _find(rows, baseline, endpoint, variant, conc)
                if lib and base:
                    ratio = paired(lib, base, "rps")
                    judged = f" (target >= 0.85x): {verdict(ratio >= 0.85)}" if target else ""
                    lines.append(
                        f"{label}{endpoint} {variant}, c={conc}: {ratio:.2f}x {baseline} req/s"
                        + spread(lib, base)
                        + judged
                    )

    speed_targets("library", "baseline", "")
    lib = _find(rows, "library", "toggle", "htmx", 1)
    base = _find(rows, "baseline", "toggle", "htmx", 1)
    if lib and base:
        ratio = lib["bytes"] / base["bytes"]
        lines.append(
            f"htmx toggle body: {lib['bytes']} B vs {base['bytes']} B = {ratio:.2f}x "
            f"(target <= 2x): {verdict(ratio <= 2)}"
        )
    for conc in (1, 16):
        small = _find(rows, "library", "toggle", "htmx", conc)
        big = _find(rows, "library", "toggle", "htmx, 200 widgets", conc)
        if small and big:
            ratio = paired(big, small, "rps")
            diff = abs(ratio - 1)
            lines.append(
                f"htmx toggle, 200 vs 20 widgets, c={conc}: {fmt(big['rps'])} vs "
                f"{fmt(small['rps'])} req/s, ratio {ratio:.2f}x{spread(big, small)}, {diff:.1%} "
                "apart (target < 10%): "
                f"{verdict(diff < 0.10)}"
            )
    for conc in (1, 16):
        cached = _find(rows, "library+cache", "GET /", "page", conc)
        base = _find(rows, "baseline", "GET /", "page", conc)
        lib = _find(rows, "library", "GET /", "page", conc)
        if cached and base:
            ratio = paired(cached, base, "rps")
            vs_lib = f", {paired(cached, lib, 'rps'):.2f}x the library without cache" if lib else ""
            lines.append(
                f"GET / with the fragment cache (library+cache), c={conc}: {fmt(cached['rps'])} "
                f"req/s, {ratio:.2f}x baseline{spread(cached, base)}{vs_lib} "
                "(target >= 1.5x baseline): "
                f"{verdict(ratio >= 1.5)}"
            )
    speed_targets(
        FLOOR, "baseline", "the required protections alone, hand-written (floor), ", target=False
    )
    for reference in (CHECKED, FLOOR):
        for r in library_rows(rows, reference):
            if r["system"] == "library":
                lines.append(
                    f"library vs {reference}, {r['endpoint']} {r['variant']}, "
                    f"c={r['concurrency']}: {r['rps']:.2f}x req/s "
                    f"({r['us_per_request']:+,.0f} µs/request; information, no target)"
                )
    speed_targets(
        "library+pg",
        "baseline+pg",
        "with idempotency on as the README teaches (todos and keys in PostgreSQL), ",
    )
    speed_targets(
        PG_HAND_KEYS,
        "baseline+pg",
        "the keys alone, written by hand (baseline+pg+keys), ",
        target=False,
    )
    speed_targets(
        "library+pg",
        PG_HAND_KEYS,
        "with idempotency on, against the baseline with keys by hand (library+pg), ",
    )
    stores = {"library+idem": "Redis store", "library+pg": "SQL store, PostgreSQL"}
    for r in variant_rows(rows):
        if r["system"] in stores and r["concurrency"] == 1:
            lines.append(
                f"idempotency cost per action ({stores[r['system']]}), toggle {r['variant']}, "
                f"c=1: {r['us_per_request']:+,.0f} µs/request ({r['reference_us']:,.0f} µs "
                f"without keys, {r['system_us']:,.0f} µs with them; {r['rps']:.2f}x the req/s)"
            )
    return lines


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="JSON lines instead of Markdown")
    args = parser.parse_args(argv)
    duration = os.environ.get("DURATION", "10s")
    seconds(duration)
    rounds = int(os.environ.get("ROUNDS", "1"))
    if not 1 <= rounds <= 9:
        log("ROUNDS must be 1 to 9")
        return 2
    load_before = Path("/proc/loadavg").read_text().split()[0]
    if shutil.which("wrk") is None:
        log("wrk is not installed (bench/run installs it)")
        return 2

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        try:
            variants = parse_variants(os.environ.get("VARIANTS", "all"))
            rows = run_all(duration, Path(tmp), rounds, variants)
        except BenchError as exc:
            log(f"FAILED: {exc}")
            return 1
    if args.json:
        for row in rows:
            print(json.dumps({k: row[k] for k in KEYS}))
    else:
        print(markdown(rows, duration, rounds, load_before), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
