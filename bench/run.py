"""The benchmark driver: the workload of ../shared/bench/WORKLOAD.md on the library app and on a
hand-wired Flask + htmx baseline, both under gunicorn (2 sync workers), measured with wrk.

Use ``bench/run`` (it installs what is missing, then calls this file):

    bench/run                  # Markdown tables on stdout (10 s per point after a 2 s warm-up)
    DURATION=3s bench/run      # a quick run
    bench/run --json           # one JSON object per point instead
    ROUNDS=3 bench/run         # every point 3 times, interleaved; the median round is reported

It starts every app (baseline, library, library with WIDGETS=200) under gunicorn on a free port
of 127.0.0.1, waits until ``GET /`` answers,
checks correctness (200 rows, "66 of 200 done", an htmx toggle flips its row and moves the
stats, a no-JS toggle answers 303 and flips the row; with the library also that a toggle without
a CSRF token or from another origin is refused), then measures each point with wrk (closed loop)
at ``-t1 -c1`` and ``-t2 -c16``, the systems back to back per point so that background load on
the machine hits them alike. The library's toggle carries the CSRF token, the signed bound id
and the session cookie read from the page, as a browser would send them; wrk replays that one
request (idempotency is not enforced yet, and toggling the same row again and again is fine).
Only the servers started here are stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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

    def regions_header(self, form: Form) -> str:
        """``HX-Actions-Regions`` as static/hx-actions.js builds it for ``form``: every
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
    """gunicorn, 2 sync workers, on 127.0.0.1 (in its own process group, stopped by its pid)."""

    def __init__(self, module: str, widgets: int) -> None:
        self.module = module
        self.widgets = widgets
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Lives as long as the server (closed in stop()), so no context manager.
        self.logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="bench-gunicorn-", suffix=".log"
        )

    def start(self) -> None:
        env = dict(os.environ, WIDGETS=str(self.widgets), PYTHONUNBUFFERED="1")
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "--workers=2",
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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.module} exited at start:\n{self.log_tail()}")
            try:
                if http_request(self.port, "GET", "/", {}, timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"{self.module} did not answer within 30 s:\n{self.log_tail()}")

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
                self.proc.wait(timeout=15)
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
        if "data-hx-action" in form.attrs:  # hx-actions.js adds these to action forms
            if self.page.csrf_meta:
                headers["X-CSRFToken"] = self.page.csrf_meta
            headers["HX-Actions-Regions"] = self.page.regions_header(form)
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
    return done


def check(system: str, browser: Browser, widgets: int) -> None:
    """Run against a freshly started server (every worker holds the initial data)."""
    _, page = browser.load()
    done = check_page(system, page, widgets)
    if done != INITIAL_DONE:
        raise BenchError(f"{system}: GET / says {done} of 200 done, expected {INITIAL_DONE}")
    if system == "library":
        check_refusals(system, browser)
        check_regions_header(system, browser)

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

    # No-JS toggle of row 2: 303 to "/", and some worker now shows row 2 checked (the workers
    # hold separate copies of the data: look until the one that took the POST answers).
    answer = browser.send(browser.plain_toggle(2))
    location = answer.headers.get("Location", "")
    if answer.status != 303 or location not in ("/", f"{browser.origin}/"):
        raise BenchError(f"{system}: no-JS toggle answered {answer.status} {location!r}")
    for _ in range(80):
        _, page = browser.load()
        check_page(system, page, widgets)  # stats always agree with the rows
        if page.forms[2].checked == "true":
            break
    else:
        raise BenchError(f"{system}: no page showed row 2 checked after the no-JS toggle")
    log(f"{system}: correctness check passed")


def check_regions_header(system: str, browser: Browser) -> None:
    """The ``HX-Actions-Regions`` header built from the page names the non-parametrised regions
    and the toggled row's own region with its parameters (as hx-actions.js would send it); if
    the page's markup changed under this reader, stop rather than measure a different request."""
    header = browser.htmx_toggle(LOAD_ROW).headers.get("HX-Actions-Regions", "")
    tokens = header.split()
    expected = ["todos", "stats", "widgets", f"todo?id={LOAD_ROW}"]
    if tokens != expected:
        raise BenchError(
            f"{system}: HX-Actions-Regions would be {header!r}, expected {' '.join(expected)!r};"
            " has the region markup changed? Make PageParser.regions_header follow"
            " static/hx-actions.js."
        )


def check_refusals(system: str, browser: Browser) -> None:
    """The protections are on: no CSRF token is 400, another origin is 403 (nothing runs)."""
    req = browser.htmx_toggle(1)
    stripped = {k: v for k, v in req.headers.items() if k != "X-CSRFToken"}
    body = "&".join(p for p in req.body.split("&") if not p.startswith("csrf_token="))
    answer = browser.send(Request("POST", req.path, stripped, body))
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


def wrk_script(req: Request, directory: Path, name: str) -> Path:
    lines = [f"wrk.method = {lua_string(req.method)}"]
    if req.method == "POST":
        lines.append(f"wrk.body = {lua_string(req.body)}")
    for key, value in req.headers.items():
        lines.append(f"wrk.headers[{lua_string(key)}] = {lua_string(value)}")
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + DONE_LUA)
    return path


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", duration.strip())
    if not match:
        raise BenchError(f"DURATION={duration!r}: use e.g. 10s, 3s or 1m")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass
class Measure:
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
    return Measure(requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000, errors)


# -- the run -------------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    module: str
    widgets: int
    points: tuple[tuple[str, str], ...]  # (endpoint, variant)


SYSTEMS = (
    System(
        "baseline",
        "baseline_app",
        20,
        (("GET /", "page"), ("toggle", "htmx"), ("toggle", "no-JS (303)")),
    ),
    System(
        "library",
        "library_app",
        20,
        (("GET /", "page"), ("toggle", "htmx"), ("toggle", "no-JS (303)")),
    ),
    System("library", "library_app", 200, (("toggle", "htmx, 200 widgets"),)),
)


POINT_ORDER = (("GET /", "page"), ("toggle", "htmx"), ("toggle", "no-JS (303)"))


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
    check(system.name, browser, system.widgets)
    browser.load()
    targets = []
    for endpoint, variant in system.points:
        req = request_for(browser, endpoint, variant)
        answer = browser.send(req)
        if answer.status != expected_status(endpoint, variant):
            raise BenchError(
                f"{system.name} {endpoint} {variant}: answered {answer.status}, "
                f"expected {expected_status(endpoint, variant)}"
            )
        if req.method == "POST":
            # wrk replays this very request (same _hx_key). Fine while the app keeps no
            # idempotency store; with one, the load would measure stored replays, not toggles.
            again = browser.send(req)
            if "Idempotent-Replayed" in answer.headers or "Idempotent-Replayed" in again.headers:
                raise BenchError(
                    f"{system.name} {endpoint} {variant}: the answer is an idempotent replay; "
                    "wrk would measure replays: give each request its own _hx_key first."
                )
        slug = re.sub(r"[^a-z0-9]+", "-", f"{system.name}-{system.widgets}-{endpoint}-{variant}")
        script = wrk_script(req, workdir, slug.lower())
        targets.append(Target(system, server, endpoint, variant, req, script, len(answer.body)))
    return targets


def measure(target: Target, threads: int, conns: int, duration: str) -> dict[str, Any]:
    port, path = target.server.port, target.request.path
    wrk(port, target.script, path, threads, conns, WARMUP)
    m = wrk(port, target.script, path, threads, conns, duration)
    bad = {k: v for k, v in m.errors.items() if v}
    label = f"{target.system.name} {target.endpoint} {target.variant} c={conns}"
    if bad:
        raise BenchError(f"{label}: wrk errors {bad}\n{target.server.log_tail()}")
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


def run_all(duration: str, workdir: Path, rounds: int = 1) -> list[dict[str, Any]]:
    """Start every server (idle ones cost nothing), check each, then measure point by point with
    the systems back to back, so a change in the machine's background load hits them alike.
    With ``rounds`` > 1 every point is measured that many times and the median round is kept."""
    servers: list[Server] = []
    try:
        targets: list[Target] = []
        for system in SYSTEMS:
            server = Server(system.module, system.widgets)
            servers.append(server)
            version = ""
            if system.name == "library":
                MEASURED_VERSIONS.append(library_version())
                version = f", flask_hx_actions {MEASURED_VERSIONS[-1]}"
            where = f"WIDGETS={system.widgets}{version}, 127.0.0.1:{server.port}"
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
                            row = measure(target, threads, conns, duration)
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
        "Ratio library ÷ baseline (req/s above 1 is better; latency and bytes below 1 are; "
        "with several rounds, the median of the per-round ratios):",
        "",
        "| endpoint | variant | concurrency | req/s | p50 | p99 | bytes |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ratios:
        out.append(
            f"| {r['endpoint']} | {r['variant']} | {r['concurrency']} | {r['rps']:.2f}x | "
            f"{r['p50_ms']:.2f}x | {r['p99_ms']:.2f}x | {r['bytes']:.2f}x |"
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
    ra, rb = a.get("rounds", [a]), b.get("rounds", [b])
    if len(ra) != len(rb):
        ra, rb = [a], [b]
    ratios = sorted(
        x[key] / y[key] if y[key] else float("nan") for x, y in zip(ra, rb, strict=True)
    )
    n = len(ratios)
    return ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2


def ratio_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for lib in rows:
        if lib["system"] != "library":
            continue
        base = _find(rows, "baseline", lib["endpoint"], lib["variant"], lib["concurrency"])
        if base is None:
            continue
        out.append(
            {
                "endpoint": lib["endpoint"],
                "variant": lib["variant"],
                "concurrency": lib["concurrency"],
                **{k: paired(lib, base, k) for k in ("rps", "p50_ms", "p99_ms", "bytes")},
            }
        )
    return out


def target_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for endpoint, variant in (("toggle", "htmx"), ("toggle", "no-JS (303)"), ("GET /", "page")):
        for conc in (1, 16):
            lib = _find(rows, "library", endpoint, variant, conc)
            base = _find(rows, "baseline", endpoint, variant, conc)
            if lib and base:
                ratio = paired(lib, base, "rps")
                lines.append(
                    f"{endpoint} {variant}, c={conc}: {ratio:.2f}x baseline req/s "
                    f"(target >= 0.85x): {verdict(ratio >= 0.85)}"
                )
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
                f"{fmt(small['rps'])} req/s, ratio {ratio:.2f}x, {diff:.1%} apart (target < 10%): "
                f"{verdict(diff < 0.10)}"
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
            rows = run_all(duration, Path(tmp), rounds)
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
