"""Instructions per request, counted by valgrind: a steadier measure than time on a shared VM.

The bench's requests (the page, the htmx toggle and the no-JS toggle of row 7, built from the page
the way ``bench/run`` builds them) are sent straight to the app's WSGI callable in process, N times
after a warm-up; valgrind (callgrind) counts the instructions of the whole run twice, with N and
with 0 requests, and the difference divided by N is printed. Both runs go in parallel; counts do
not depend on what else the machine does.

    .venv/bin/python bench/instructions.py                  # library and baseline, every request
    .venv/bin/python bench/instructions.py --system library --kind htmx -n 300
    .venv/bin/python bench/instructions.py --server         # in a gunicorn worker, over sockets
    .venv/bin/python bench/instructions.py --cache          # and simulated cache misses

``--server`` counts in a real gunicorn sync worker instead (one worker, started under valgrind
with ``--trace-children=yes`` and its garbage collector off, which otherwise makes the count
jump by hundreds of thousands between runs; the requests go over 127.0.0.1 sockets as
``bench/run`` sends them). That count holds gunicorn's own work too: parsing the request,
building the environ, writing the answer. It is what the req/s ratios of ``bench/run`` follow;
the in-process count leaves out what a request's shape costs the server (gunicorn 27
parses and checks each header in Python). Even with the collector off, a run now and then
lands far from its neighbours, and it was the run with 0 requests that did (seen: four of them
at 2,306.6M-2,307.5M instructions and one at 2,388.7M, 0.27M per request at n=300, while the
runs with 300 requests agreed within 1M): ``--server`` makes each run ``--repeat`` times (3 by
default) and takes the median of each, printing the spread.

``--cache`` runs cachegrind's cache simulation instead of callgrind and prints the first-level
instruction (I1) and data (D1) cache misses per request beside the instructions: two requests
with similar instruction counts can still differ in time by how much distinct code and data they
touch, which instruction counts do not see. With ``--server`` it runs callgrind's cache and
branch simulation in the worker instead, switched on (``callgrind_control -i on``) only after
the warm-up, so no run with 0 requests is subtracted; it adds the mispredicted branches
(conditional and indirect) per request, and the D1 misses are reads and writes.

Needs valgrind (Debian package). ``--run SYSTEM KIND N`` is the inner run valgrind executes.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "apps")]

from run import APP_NAMES  # noqa: E402

PORT = 8000  # the Host the requests name; nothing listens there
KINDS = ("page", "htmx", "plain")
ROW = 7


def environ(req: Any) -> dict[str, Any]:
    """The WSGI environ of a ``run.Request`` (as gunicorn would build it)."""
    body = req.body.encode()
    env: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "PATH_INFO": req.path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(PORT),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SCRIPT_NAME": "",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": f"127.0.0.1:{PORT}",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
    }
    for name, value in req.headers.items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    env["_body"] = body
    return env


def call(app: Any, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    env = dict(env)
    env["wsgi.input"] = io.BytesIO(env.pop("_body"))
    started: list[Any] = []
    result = app(env, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return started[0][0], started[0][1], body


def requests(system: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The app of ``system`` and the bench's three requests, built by ``run.Browser`` from the
    page the app served (with its session cookie), as ``bench/run`` builds them."""
    from run import Browser, PageParser

    app = importlib.import_module(f"{system}_app").app
    browser = Browser(system, PORT)
    _, headers, body = call(app, environ(browser.get_page()))
    browser.cookie = next((v.split(";")[0] for k, v in headers if k.lower() == "set-cookie"), "")
    browser.page = PageParser.of(body.decode())
    return app, {
        "page": environ(browser.get_page()),
        "htmx": environ(browser.htmx_toggle(ROW)),
        "plain": environ(browser.plain_toggle(ROW)),
    }


def inner(system: str, kind: str, count: int) -> None:
    app, made = requests(system)
    env = made[kind]
    for _ in range(30):  # warm-up: memos, templates, the session
        call(app, env)
    for _ in range(count):
        status, _, _ = call(app, env)
        if status[:3] not in ("200", "303"):
            raise SystemExit(f"{system} {kind}: {status}")


#: What ``--cache`` reads off cachegrind's summary: instructions, then first-level misses.
CACHE_EVENTS = {"I refs": "instructions", "I1 misses": "I1 misses", "D1 misses": "D1 misses"}


def counted(system: str, kind: str, count: int, cache: bool = False) -> dict[str, int]:
    """Instructions of the whole in-process run (callgrind); with ``cache``, cachegrind's
    simulated first-level cache misses too."""
    tool = ["--tool=cachegrind", "--cache-sim=yes", "--cachegrind-out-file=/dev/null"]
    if not cache:
        tool = ["--tool=callgrind", "--callgrind-out-file=/dev/null"]
    run = subprocess.run(
        ["valgrind", *tool, sys.executable, __file__, "--run", system, kind, str(count)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
        check=False,
    )
    found: dict[str, int] = {}
    if not cache:
        match = re.search(r"Collected : (\d+)", run.stderr)
        if match:
            found["instructions"] = int(match.group(1))
    else:
        for label, name in CACHE_EVENTS.items():
            pattern = r"==\d+== " + label.replace(" ", r"\s+") + r":\s+([\d,]+)"
            match = re.search(pattern, run.stderr)
            if match:
                found[name] = int(match.group(1).replace(",", ""))
    if run.returncode != 0 or not found:
        raise SystemExit(f"valgrind failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return found


def cache_configuration() -> str:
    """The first-level caches cachegrind simulates: it reads them off the host's CPU, so the
    miss counts of two machines compare only when these match."""
    tool = ["--tool=cachegrind", "--cache-sim=yes", "--cachegrind-out-file=/dev/null", "-v"]
    run = subprocess.run(
        ["valgrind", *tool, sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.findall(r"==\d+==\s+((?:I1|D1): [^\n]+)", run.stderr)
    return "; ".join(found) or "unknown (cachegrind printed no configuration)"


def _worker_under_callgrind(out: Path, system: str, *options: str) -> Any:
    """A gunicorn server of ``system`` with one worker, run under callgrind (``options``: more of
    its options), writing one file per process into ``out``. The worker's garbage collector is
    off: when a full collection falls inside one run and not the other, it adds hundreds of
    thousands of instructions per request at n=200 (seen: the same request counted 1.79M and
    2.42M)."""
    from run import Server

    config = out / "no_gc.py"
    config.write_text("def post_fork(server, worker):\n    import gc\n\n    gc.disable()\n")
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        *options,
        "--trace-children=yes",
        f"--callgrind-out-file={out}/cg.%p",
        sys.executable,
    ]
    return Server(
        f"{system}_app",
        20,
        # The worker's idle wake-ups: none within a run.
        {"PYTHONHASHSEED": "0", "GUNICORN_CMD_ARGS": f"--timeout=600 -c {config}"},
        workers=1,
        wrap=valgrind,
        patience=10,
    )


def _served_request(server: Any, system: str, kind: str) -> Callable[[], None]:
    """A function that sends the bench's request of ``kind`` to ``server`` once (built from the
    page it loads now, with its session cookie) and checks the answer's status."""
    from run import Browser, http_request

    browser = Browser(system, server.port)
    browser.load()
    if kind == "page":
        req = browser.get_page()
    elif kind == "htmx":
        req = browser.htmx_toggle(ROW)
    else:
        req = browser.plain_toggle(ROW)

    def send() -> None:
        answer = http_request(server.port, req.method, req.path, req.headers, req.body, timeout=120)
        if answer.status not in (200, 303):
            raise SystemExit(f"{system} {kind}: {answer.status}")

    return send


def served_count(system: str, kind: str, count: int) -> int:
    """Instructions of the gunicorn worker serving ``count`` of the bench's requests (after the
    page load that builds them and a warm-up), counted by valgrind until the worker exits."""
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out:
        server = _worker_under_callgrind(Path(out), system)
        try:
            server.start()
            master = server.proc.pid  # valgrind's pid is gunicorn's arbiter
            send = _served_request(server, system, kind)
            for _ in range(10 + count):  # 10 for the warm-up, in both runs
                send()
        finally:
            server.stop()  # the worker exits and callgrind writes its file
        workers = [f for f in Path(out).glob("cg.*") if f.name != f"cg.{master}"]
        if len(workers) != 1:
            raise SystemExit(f"expected one worker's callgrind file, found {len(workers)}")
        match = re.search(r"^(?:summary|totals): (\d+)", workers[0].read_text(), re.M)
        if not match:
            raise SystemExit(f"no total in {workers[0]}")
        return int(match.group(1))


#: What ``--server --cache`` reads off callgrind's totals: (name, events summed).
SERVED_EVENTS = (
    ("instructions", ("Ir",)),
    ("I1 misses", ("I1mr",)),
    ("D1 misses", ("D1mr", "D1mw")),
    ("mispredicted branches", ("Bcm", "Bim")),
)


def served_misses(system: str, kind: str, count: int) -> list[tuple[str, int]]:
    """Instructions, simulated first-level cache misses and mispredicted branches of a gunicorn
    worker serving ``count`` of the bench's requests, collected only from after the warm-up."""
    with tempfile.TemporaryDirectory(prefix="bench-cachesim-") as out:
        options = ("--cache-sim=yes", "--branch-sim=yes", "--instr-atstart=no")
        server = _worker_under_callgrind(Path(out), system, *options)
        try:
            server.start()
            send = _served_request(server, system, kind)
            for _ in range(30):  # warm-up, not collected
                send()
            worker = subprocess.run(
                ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
            switch = ["callgrind_control", "-i"]
            subprocess.run([*switch, "on", worker], capture_output=True, check=True)
            for _ in range(count):
                send()
            subprocess.run([*switch, "off", worker], capture_output=True, check=True)
        finally:
            server.stop()  # the worker exits and callgrind writes its file
        text = (Path(out) / f"cg.{worker}").read_text()
    events = re.search(r"^events: (.+)$", text, re.M)
    totals = re.search(r"^totals: (.+)$", text, re.M)
    if not events or not totals:
        raise SystemExit(f"no events or totals in the worker's callgrind file ({system} {kind})")
    values = dict(zip(events.group(1).split(), map(int, totals.group(1).split()), strict=True))
    return [(name, sum(values[e] for e in parts)) for name, parts in SERVED_EVENTS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=APP_NAMES, action="append")
    parser.add_argument("--kind", choices=KINDS, action="append")
    parser.add_argument("-n", type=int, default=0, help="requests (default 300, 10 for the page)")
    parser.add_argument("--server", action="store_true", help="count in a gunicorn worker")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each count with --server (median kept)"
    )
    parser.add_argument(
        "--cache", action="store_true", help="also first-level cache misses (cachegrind)"
    )
    parser.add_argument("--run", nargs=3, metavar=("SYSTEM", "KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        inner(args.run[0], args.run[1], int(args.run[2]))
        return
    if args.cache:
        print(f"simulated caches: {cache_configuration()}", flush=True)
    for system in args.system or ["baseline", "library"]:
        for kind in args.kind or list(KINDS):
            count = args.n or (10 if kind == "page" else 300)
            if args.cache and args.server:
                found = served_misses(system, kind, count)
                per = "; ".join(f"{value / count:14,.0f} {name}/request" for name, value in found)
                print(f"{system:8} {kind:5} {per} in a gunicorn worker (n={count})", flush=True)
                continue
            spread = 0.0
            with ThreadPoolExecutor(2) as pool:  # the runs with 0 and with `count` requests
                if args.server:
                    runs_of = {
                        n: [pool.submit(served_count, system, kind, n) for _ in range(args.repeat)]
                        for n in (0, count)
                    }
                    totals = {n: sorted(f.result() for f in fs) for n, fs in runs_of.items()}
                    empty = {"instructions": statistics.median_low(totals[0])}
                    full = {"instructions": statistics.median_low(totals[count])}
                    spread = max(t[-1] - t[0] for t in totals.values()) / count
                else:
                    runs = [pool.submit(counted, system, kind, n, args.cache) for n in (0, count)]
                    empty, full = runs[0].result(), runs[1].result()
            per = "; ".join(
                f"{(full[name] - empty[name]) / count:14,.0f} {name}/request" for name in full
            )
            where = ""
            if args.server:
                where = f" in a gunicorn worker (median of {args.repeat}; spread {spread:,.0f})"
            print(f"{system:8} {kind:5} {per}{where} (n={count})", flush=True)


if __name__ == "__main__":
    main()
