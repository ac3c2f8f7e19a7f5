"""A bounded soak of flask-hx-actions: mixed actions through gunicorn (2 sync workers) on
127.0.0.1 with PostgreSQL and the SQL idempotency store, then one worker killed during load.

    .venv/bin/python bench/soak.py                 # 60 s, 8 client threads
    .venv/bin/python bench/soak.py --seconds 20    # a quick run
    .venv/bin/python bench/soak.py --markdown      # also print a Markdown section for SOAK.md

The app is ``tests/concurrency_app.py`` (orders; every run of an action body writes one row in
``event`` under the client's ``op`` id, with no unique constraint, so a duplicate shows). It
runs in a schema of its own in the database ``test`` (``HX_ACTIONS_TEST_POSTGRES_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), dropped at the end.

Each client thread signs in as its own user, places its own order, and then loops over a mix:
place (JSON, htmx, no-JS), bump its order (bound id; JSON, no-JS), a ``fail`` (422, rolled back)
and invalid input (422). Every submission has a fresh idempotency key and op id; a connection
error, a 5xx or a 409 is retried with the same key and body until it gets an answer.

Phases: warm-up (the first sixth, at most 10 s), steady load (RSS of each worker read at its
start and end: growth must stay under 20 MB), then a kill window (the last sixth, at least 8 s)
where one worker gets SIGKILL while slow actions are in flight; gunicorn starts a new one.

Checks (exit status 1 when one fails): no unexpected answer (any 5xx or connection error outside
the kill window, any status the mix does not expect); worker RSS growth < 20 MB; and, in the
database: every acknowledged submission's body ran exactly once (one ``event`` row), submissions
answered 422 left nothing, no op has two rows, no row belongs to an op that was not sent, and
each order's ``bumps`` equals its bump events. p50 / p99 latencies of the steady phase are
reported. Only the gunicorn started here is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
GUNICORN = Path(sys.executable).parent / "gunicorn"
POSTGRES_URL = os.environ.get(
    "HX_ACTIONS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RSS_LIMIT_MB = 20.0
MAX_ATTEMPTS = 60
TIMEOUT = 30.0

sys.path.insert(0, str(TESTS))
from loopback import Answer, free_port, request  # noqa: E402 - the tests' loopback client


def log(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


# -- the server ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the gunicorn workers of a master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return sorted(found)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (psutil when installed, else /proc/<pid>/status)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for {pid}") from None
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


def call(port: int, method: str, path: str, body: str | None, headers: dict[str, str]) -> Answer:
    return request(port, method, path, body, headers, TIMEOUT)


class Server:
    def __init__(self, database_url: str, workers: int, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {
            **os.environ,
            "HX_TEST_DATABASE_URL": database_url,
            "HX_TEST_STORE": "sql",
            "HX_TEST_SECRET": secrets.token_hex(16),
            "PYTHONPATH": str(ROOT),
        }
        command = [
            str(GUNICORN),
            f"--workers={workers}",
            "--worker-class=sync",
            "--preload",
            f"--bind=127.0.0.1:{self.port}",
            f"--chdir={TESTS}",
            "--timeout=30",
            "--graceful-timeout=5",
            "concurrency_app:create_app()",
        ]
        with log_path.open("wb") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()}")
            try:
                if call(self.port, "GET", "/health", None, {}).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer:\n{log_path.read_text()}")
            time.sleep(0.1)
        while len(self.workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# -- the load ------------------------------------------------------------------------------------


@dataclass
class Op:
    """One submission, however many attempts it took."""

    op: str
    action: str  # place, bump, reject, invalid, slow
    kind: str  # json, htmx, plain
    expected: int  # the status the mix expects
    effect: str | None  # the event its body leaves: "place", "bump", "slow" or None
    order_id: int | None = None
    attempts: int = 0
    status: int | None = None  # the final answer
    replayed: bool = False
    answer_id: int | None = None  # JSON place / slow: the id the answer names
    errors: list[str] = field(default_factory=list)  # failed attempts: "<phase>:<what>"
    unexpected: list[str] = field(default_factory=list)
    latency: float | None = None  # first attempt, when it got the final answer
    phase: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and self.status in (200, 303) and self.effect is not None


class Clock:
    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.seconds = seconds
        self.warmup = min(10.0, seconds / 6)
        self.kill_window = max(8.0, seconds / 6)
        self.kill_at = seconds - self.kill_window
        self.killed_at: float | None = None
        self.recovered_at: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.start

    def phase(self) -> str:
        t = self.now()
        if t < self.warmup:
            return "warmup"
        if t < self.kill_at:
            return "steady"
        return "kill"

    def done(self) -> bool:
        return self.now() >= self.seconds


class Client(threading.Thread):
    def __init__(self, index: int, server: Server, clock: Clock, seed: int) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.index = index
        self.server = server
        self.clock = clock
        self.rng = random.Random(seed + index)
        self.ops: list[Op] = []
        self.seq = 0
        self.cookie = ""
        self.csrf = ""
        self.bound = ""
        self.order_id: int | None = None
        self.failure: BaseException | None = None

    # -- set-up

    def sign_in(self) -> None:
        answer = call(self.server.port, "GET", f"/login?user=soak-{self.index}", None, {})
        assert answer.status == 200, answer.body
        self.cookie = answer.headers["set-cookie"].split(";", 1)[0]
        self.csrf = json.loads(answer.body)["csrf_token"]
        first = self.submit("place", "json")
        assert first.status == 200 and first.answer_id is not None, first
        self.order_id = first.answer_id
        answer = call(
            self.server.port, "GET", f"/orders/{self.order_id}/bind", None, self._headers("plain")
        )
        assert answer.status == 200, answer.body
        data = json.loads(answer.body)
        self.bound = data["_hx_bound"]
        self.csrf = data["csrf_token"]
        # The bind call may have set _hx_sid: keep the newest cookie.
        if "set-cookie" in answer.headers:
            self.cookie = answer.headers["set-cookie"].split(";", 1)[0]

    def _headers(self, kind: str) -> dict[str, str]:
        headers = {
            "Cookie": self.cookie,
            "Origin": self.server.origin,
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/x-www-form-urlencoded",
            "Connection": "close",
        }
        if kind == "json":
            headers["Accept"] = "application/json"
        elif kind == "htmx":
            headers["HX-Request"] = "true"
        return headers

    # -- one submission, retried with the same key until it gets an answer

    def submit(self, action: str, kind: str) -> Op:
        self.seq += 1
        op_id = f"c{self.index}-{self.seq}"
        fields = {"csrf_token": self.csrf, "_hx_key": secrets.token_urlsafe(16), "op": op_id}
        path = f"/shop/{action}"
        expected = 303 if kind == "plain" else 200
        effect: str | None = action
        if action == "place":
            fields["title"] = f"order {op_id}"
        elif action == "bump":
            fields["_hx_bound"] = self.bound
        elif action == "slow":
            fields["ms"] = str(self.rng.choice((50, 150, 300)))
        elif action == "reject":
            expected, effect = (303 if kind == "plain" else 422), None
        elif action == "invalid":
            path, effect = "/shop/place", None
            expected = 303 if kind == "plain" else 422
            fields["title"] = ""
        op = Op(op_id, action, kind, expected, effect, self.order_id if action == "bump" else None)
        op.phase = self.clock.phase()
        body = urlencode(fields)
        headers = self._headers(kind)
        while True:
            op.attempts += 1
            phase = self.clock.phase()
            started = time.perf_counter()
            try:
                answer = call(self.server.port, "POST", path, body, headers)
            except OSError as exc:
                op.errors.append(f"{phase}:{type(exc).__name__}")
                if op.attempts >= MAX_ATTEMPTS:
                    op.unexpected.append(f"gave up after {op.attempts} attempts")
                    return op
                time.sleep(0.1)
                continue
            elapsed = time.perf_counter() - started
            if answer.status == 409 or answer.status >= 500:
                op.errors.append(f"{phase}:{answer.status}")
                if op.attempts >= MAX_ATTEMPTS:
                    op.unexpected.append(f"gave up after {op.attempts} attempts")
                    return op
                time.sleep(float(answer.headers.get("retry-after", "0.1")) / 4)
                continue
            op.status = answer.status
            op.replayed = answer.replayed
            if op.attempts == 1:
                op.latency = elapsed
            if answer.status != expected:
                op.unexpected.append(f"status {answer.status}: {answer.body[:200]!r}")
            if kind == "json" and action in ("place", "slow") and answer.status == 200:
                op.answer_id = json.loads(answer.body)["data"]["id"]
            return op

    # -- the loop

    MIX = (
        (("place", "json"), 30),
        (("place", "htmx"), 15),
        (("place", "plain"), 10),
        (("bump", "json"), 20),
        (("bump", "plain"), 10),
        (("reject", "json"), 5),
        (("invalid", "json"), 5),
        (("invalid", "plain"), 5),
    )

    def run(self) -> None:
        try:
            choices = [c for c, _ in self.MIX]
            weights = [w for _, w in self.MIX]
            while not self.clock.done():
                action, kind = self.rng.choices(choices, weights)[0]
                if self.clock.phase() == "kill" and self.rng.random() < 0.5:
                    action, kind = "slow", "json"  # keep transactions in flight for the kill
                self.ops.append(self.submit(action, kind))
        except BaseException as exc:  # reported by the main thread
            self.failure = exc


# -- checks --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def verify(database_url: str, ops: list[Op]) -> dict[str, Any]:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT op, action, order_id FROM event")).all()
            bumps = dict(conn.execute(sa.text('SELECT id, bumps FROM "order"')).all())
            orders = conn.scalar(sa.text('SELECT count(*) FROM "order"'))
    finally:
        engine.dispose()
    per_op = Counter(op for op, _, _ in events)
    sent = {o.op: o for o in ops}
    lost = [o.op for o in ops if o.acknowledged and per_op[o.op] != 1]
    duplicated = [op for op, n in per_op.items() if n > 1]
    stray = [op for op in per_op if op not in sent]
    left_by_refused = [o.op for o in ops if o.effect is None and per_op[o.op]]
    unresolved = [o.op for o in ops if o.status is None]
    wrong_id = [
        o.op
        for o in ops
        if o.answer_id is not None
        and not any(op == o.op and oid == o.answer_id for op, _, oid in events)
    ]
    bump_events = Counter(oid for _, action, oid in events if action == "bump")
    bad_bumps = {oid: (n, bump_events[oid]) for oid, n in bumps.items() if n != bump_events[oid]}
    creating = sum(1 for _, action, _ in events if action in ("place", "slow"))
    return {
        "per_op": {o.op: per_op[o.op] for o in ops if any(e.startswith("kill:") for e in o.errors)},
        "events": len(events),
        "orders": orders,
        "lost": lost,
        "duplicated": duplicated,
        "stray": stray,
        "left_by_refused": left_by_refused,
        "unresolved": unresolved,
        "wrong_answer_id": wrong_id,
        "bumps_mismatch": bad_bumps,
        "orders_without_event": orders - creating,
    }


# -- main ----------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    import gunicorn

    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{int(mem) / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gunicorn": gunicorn.__version__,
        "sqlalchemy": sa.__version__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the soak")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown section")
    parser.add_argument("--keep-schema", action="store_true", help="do not drop the schema")
    args = parser.parse_args()
    if args.seconds < 20:
        parser.error("--seconds must be at least 20 (warm-up, steady phase, kill window)")

    base = make_url(POSTGRES_URL)
    if base.host not in ("127.0.0.1", "localhost"):
        parser.error("the soak runs against 127.0.0.1 only")
    schema = f"hxsoak_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        pg_version = conn.scalar(sa.text("SHOW server_version"))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )
    log_path = Path(f"/tmp/hx-soak-{schema}.log")
    server = None
    try:
        server = Server(url, args.workers, log_path)
        log(f"gunicorn {server.process.pid} on {server.origin}, workers {server.workers()}")
        clock = Clock(args.seconds)
        clients = [Client(i, server, clock, args.seed) for i in range(args.clients)]
        for client in clients:
            client.sign_in()
        clock = Clock(args.seconds)  # the soak starts now
        for client in clients:
            client.clock = clock
            client.start()

        rss: dict[str, dict[int, float]] = {}
        time.sleep(clock.warmup)
        rss["after_warmup"] = {pid: rss_mb(pid) for pid in server.workers()}
        log(f"after warm-up ({clock.now():.1f} s): RSS {fmt_rss(rss['after_warmup'])}")
        time.sleep(max(0.0, clock.kill_at - clock.now() - 0.5))
        rss["before_kill"] = {pid: rss_mb(pid) for pid in server.workers()}
        log(f"end of steady load ({clock.now():.1f} s): RSS {fmt_rss(rss['before_kill'])}")
        time.sleep(max(0.0, clock.kill_at + 1.0 - clock.now()))
        found = in_transaction(admin, server.workers())
        victim = found if found is not None else server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        clock.killed_at = clock.now()
        log(f"SIGKILL worker {victim} at {clock.killed_at:.1f} s (in a transaction: {bool(found)})")
        deadline = time.monotonic() + 15
        while (victim in server.workers() or len(server.workers()) < args.workers) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        clock.recovered_at = clock.now()
        log(f"workers {server.workers()} at {clock.recovered_at:.1f} s")
        for client in clients:
            client.join(timeout=args.seconds + 120)
        survivors = [pid for pid in rss["before_kill"] if pid != victim]
        rss["end"] = {pid: rss_mb(pid) for pid in server.workers()}
        failures = [c.failure for c in clients if c.failure is not None]
        ops = [op for c in clients for op in c.ops]
        db = verify(url, [*ops, *(first_ops(c) for c in clients)])
    finally:
        if server is not None:
            server.stop()
        if not args.keep_schema:
            with admin.begin() as conn:
                conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    # -- the report
    steady = [o for o in ops if o.phase == "steady" and o.latency is not None]
    latencies = [o.latency * 1000 for o in steady if o.latency is not None]
    killed = [o for o in ops if any(e.startswith("kill:") for e in o.errors)]
    conflicts = sum(1 for o in ops for e in o.errors if e.endswith(":409"))
    unexpected = [(o.op, o.action, o.kind, u) for o in ops for u in o.unexpected]
    for o in ops:  # connection errors and 5xx outside the kill window are failures too
        for e in o.errors:
            phase, what = e.split(":", 1)
            if phase != "kill" and what != "409":
                unexpected.append((o.op, o.action, o.kind, e))
    growth = {
        pid: rss["before_kill"][pid] - rss["after_warmup"][pid]
        for pid in rss["before_kill"]
        if pid in rss["after_warmup"]
    }
    growth_end = {pid: rss["end"][pid] - rss["after_warmup"][pid] for pid in survivors}
    result = {
        "seconds": args.seconds,
        "clients": args.clients,
        "workers": args.workers,
        "submissions": len(ops),
        "attempts": sum(o.attempts for o in ops),
        "per_second": round(len(ops) / args.seconds, 1),
        "mix": dict(Counter(f"{o.action}/{o.kind}" for o in ops)),
        "replayed_answers": sum(o.replayed for o in ops),
        "retried_409": conflicts,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "steady_samples": len(latencies),
        "rss_after_warmup_mb": {k: round(v, 1) for k, v in rss["after_warmup"].items()},
        "rss_before_kill_mb": {k: round(v, 1) for k, v in rss["before_kill"].items()},
        "rss_end_mb": {k: round(v, 1) for k, v in rss["end"].items()},
        "rss_growth_mb": {k: round(v, 2) for k, v in growth.items()},
        "rss_growth_to_end_mb": {k: round(v, 2) for k, v in growth_end.items()},
        "killed_worker": victim,
        "killed_in_transaction": found is not None,
        "killed_at_s": round(clock.killed_at or 0, 1),
        "replaced_after_s": round((clock.recovered_at or 0) - (clock.killed_at or 0), 2),
        "hit_by_kill": len(killed),
        "hit_by_kill_resolved": sum(1 for o in killed if o.status is not None),
        "hit_by_kill_replayed": sum(1 for o in killed if o.replayed),
        "hit_by_kill_ops": [
            {
                "op": o.op,
                "action": o.action,
                "attempts": o.attempts,
                "status": o.status,
                "replayed": o.replayed,
                "rows": db["per_op"].get(o.op, 0),
            }
            for o in killed
        ],
        "unexpected": unexpected[:20],
        "unexpected_count": len(unexpected),
        "client_failures": [repr(f) for f in failures],
        "db": db,
        "postgres": pg_version,
        "machine": machine(),
    }
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected answers or errors")
    if failures:
        problems.append(f"client threads failed: {failures}")
    if any(v >= RSS_LIMIT_MB for v in [*growth.values(), *growth_end.values()]):
        problems.append(f"RSS grew by {growth} / {growth_end} MB")
    if not growth:
        problems.append("no worker RSS to compare")
    for name in ("lost", "duplicated", "stray", "left_by_refused", "unresolved", "wrong_answer_id"):
        if db[name]:
            problems.append(f"{name}: {db[name][:10]}")
    if db["bumps_mismatch"] or db["orders_without_event"]:
        problems.append(
            f"bumps {db['bumps_mismatch']}, orders without event {db['orders_without_event']}"
        )
    if not killed:
        problems.append("the kill hit no request (nothing in flight?)")
    result["problems"] = problems
    print(json.dumps(result, indent=2, default=str))
    if args.markdown:
        print(markdown(result))
    if problems:
        log("FAILED: " + "; ".join(problems))
        log(f"gunicorn log: {log_path}")
        return 1
    log_path.unlink(missing_ok=True)
    log("passed")
    return 0


def in_transaction(admin: sa.Engine, workers: list[int], wait: float = 3.0) -> int | None:
    """A worker whose database connection is inside a transaction (a slow action between its
    claim and its commit), found by the ``application_name`` the app gives its connections."""
    deadline = time.monotonic() + wait
    query = sa.text(
        "SELECT application_name FROM pg_stat_activity "
        "WHERE application_name LIKE 'hx-worker-%' AND state = 'idle in transaction'"
    )
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            names = conn.scalars(query).all()
        for name in names:
            pid = int(name.rsplit("-", 1)[1])
            if pid in workers:
                return pid
        time.sleep(0.01)
    log("no worker found inside a transaction: killing the first one")
    return None


def first_ops(client: Client) -> Op:
    """The order each client placed while signing in (its bumps count on it)."""
    op = Op(f"c{client.index}-1", "place", "json", 200, "place")
    op.status = 200
    return op


def fmt_rss(values: dict[int, float]) -> str:
    return ", ".join(f"{pid}: {mb:.1f} MB" for pid, mb in values.items())


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    db = r["db"]
    lines = [
        f"## Soak {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"- Machine: {m['cpus']} vCPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}; "
        f"Python {m['python']}, gunicorn {m['gunicorn']}, SQLAlchemy {m['sqlalchemy']}, "
        f"PostgreSQL {r['postgres']}.",
        f"- Run: `bench/soak.py --seconds {r['seconds']:g}`: {r['clients']} client threads, "
        f"{r['workers']} sync workers, SQL idempotency store.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| submissions (attempts) | {r['submissions']} ({r['attempts']}), {r['per_second']}/s |",
        f"| unexpected answers or errors | {r['unexpected_count']} |",
        f"| latency, steady phase ({r['steady_samples']} requests) | p50 {r['p50_ms']} ms, "
        f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms |",
        f"| worker RSS after warm-up (MB) | {r['rss_after_warmup_mb']} |",
        f"| worker RSS at the end of steady load (MB) | {r['rss_before_kill_mb']} |",
        f"| RSS growth (MB, limit {RSS_LIMIT_MB:g}) | {r['rss_growth_mb']}; survivor to the end "
        f"{r['rss_growth_to_end_mb']} |",
        f"| worker killed (SIGKILL) | at {r['killed_at_s']} s"
        f"{', inside a transaction' if r['killed_in_transaction'] else ''}, replaced within "
        f"{r['replaced_after_s']} s |",
        f"| submissions hit by the kill | {r['hit_by_kill']}, retried with the same key: "
        f"{r['hit_by_kill_resolved']} answered ({r['hit_by_kill_replayed']} as replays); "
        f"rows per op {[o['rows'] for o in r['hit_by_kill_ops']]} |",
        f"| 409 answers retried | {r['retried_409']} |",
        f"| rows: events / orders | {db['events']} / {db['orders']} |",
        f"| lost / duplicated / stray / left by refused | {len(db['lost'])} / "
        f"{len(db['duplicated'])} / {len(db['stray'])} / {len(db['left_by_refused'])} |",
        f"| bump counters that disagree with their events | {len(db['bumps_mismatch'])} |",
        f"| result | {'passed' if not r['problems'] else 'FAILED: ' + '; '.join(r['problems'])} |",
        "",
        f"Mix: {r['mix']}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
