"""CPU time per request, by process: the gunicorn workers' and wrk's own, user and system.

req/s on a 2-core machine mixes what a request costs with what else ran; instruction counts
(``instructions.py``) miss cache misses and the kernel. This reads the CPU time the workers spent
(``/proc/<pid>/stat``) and wrk's (``getrusage`` of this process's children) around one wrk run,
and divides by the requests wrk completed. At c=16, wrk shares the cores with the workers: its own
time per request shows what the load generator takes from the servers.

    .venv/bin/python bench/cpu.py                       # htmx toggle, baseline and library, c=16
    .venv/bin/python bench/cpu.py --kind plain -c 1 --rounds 3
    .venv/bin/python bench/cpu.py --systems baseline,checked,library --kind page

Servers, requests and wrk scripts are ``run.py``'s (2 sync workers on 127.0.0.1, the library's
toggles with a new ``_hx_key`` each). Linux only (``/proc``). Prints one line per system and round.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402

MODULES = {name: f"{name}_app" for name in run.APP_NAMES}
#: --kind -> run.py's (endpoint, variant) of that point.
POINTS = {"page": ("GET /", "page"), "htmx": ("toggle", "htmx"), "plain": ("toggle", "no-JS (303)")}
TICKS = os.sysconf("SC_CLK_TCK")


def workers(server: run.Server) -> list[int]:
    """The pids of the gunicorn workers (children of the arbiter)."""
    assert server.proc is not None
    out = subprocess.run(
        ["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in out.split()]


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of ``pids`` so far."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / TICKS, system / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="baseline,library", help=",".join(MODULES))
    parser.add_argument("--kind", choices=tuple(POINTS), default="htmx")
    parser.add_argument("-c", "--concurrency", type=int, choices=(1, 16), default=16)
    parser.add_argument("--duration", default="6s", help="wrk's -d per run (default 6s)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per system, interleaved")
    args = parser.parse_args()
    names = args.systems.split(",")
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(MODULES)}")
    threads = 1 if args.concurrency == 1 else 2
    directory = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    started: list[tuple[str, run.Server, run.Request, Path]] = []
    try:
        for name in names:
            server = run.Server(MODULES[name], 20)
            server.start()
            browser = run.Browser(name, server.port)
            browser.load()
            req = run.request_for(browser, *POINTS[args.kind])
            # As bench/run: the library's toggles carry a new key each (System.fresh_keys).
            fresh = MODULES[name] == "library_app" and req.method == "POST"
            script = run.wrk_script(req, directory, name, fresh_keys=fresh)
            started.append((name, server, req, script))
            run.wrk(server.port, script, req.path, threads, args.concurrency, "2s")  # warm-up
        print(f"{args.kind}, c={args.concurrency}, {args.duration} per run; µs of CPU per request")
        for _ in range(args.rounds):
            for name, server, req, script in started:
                pids = workers(server)
                user0, sys0 = cpu_seconds(pids)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                measure = run.wrk(
                    server.port, script, req.path, threads, args.concurrency, args.duration
                )
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                user1, sys1 = cpu_seconds(pids)
                per = 1e6 / max(measure.requests, 1)  # µs per request of a CPU second
                print(
                    f"{name:9} {measure.rps:9.1f} req/s  "
                    f"workers user {(user1 - user0) * per:6.1f} sys {(sys1 - sys0) * per:5.1f}  "
                    f"wrk user {(after.ru_utime - before.ru_utime) * per:5.1f} "
                    f"sys {(after.ru_stime - before.ru_stime) * per:5.1f}",
                    flush=True,
                )
    finally:
        for _, server, _, _ in started:
            server.stop()


if __name__ == "__main__":
    main()
