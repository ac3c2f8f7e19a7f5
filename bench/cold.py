"""Time per request in process, warm and with cold caches, split by Flask's phases.

In a gunicorn worker, a request starts after gunicorn, the kernel and wrk have run: much of its
code and data is no longer in the first- and second-level caches. A loop that sends the same
request again and again (``bench/profile.py``, ``bench/instructions.py``) keeps them warm and
hides what a larger footprint costs. Here, with ``--evict MB`` (default 4, more than the
second-level cache of the machines measured so far), that many megabytes are copied before
each request; the request itself is timed alone, and so are Flask's phases inside it (the
request context push with the session, the ``before_request`` hooks, the view, the
``after_request`` hooks with the session save, the context pop). The collector is off.

    .venv/bin/python bench/cold.py          # htmx toggle, every system, warm and cold
    .venv/bin/python bench/cold.py --kind plain --systems floor,library --evict 8

Requests are ``bench/instructions.py``'s (the bench's page, htmx toggle and no-JS toggle of row 7,
sent to the app's WSGI callable). Times vary with the machine and what else runs; compare
systems within one run.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "apps")]

import flask  # noqa: E402
import flask.ctx  # noqa: E402
from instructions import KINDS, call, requests  # noqa: E402
from run import APP_NAMES  # noqa: E402

#: (class, method, label) of the phases timed.
PHASES = (
    (flask.ctx.RequestContext, "push", "push"),
    (flask.Flask, "preprocess_request", "before"),
    (flask.Flask, "dispatch_request", "view"),
    (flask.Flask, "process_response", "after"),
    (flask.ctx.RequestContext, "pop", "pop"),
)


def timed(spent: dict[str, float]) -> None:
    """Wrap each phase's method so that its time adds up in ``spent``."""
    clock = time.perf_counter
    for cls, name, label in PHASES:
        original = getattr(cls, name)

        def wrapper(*args: Any, _original: Callable[..., Any] = original, _label: str = label,
                    **kwargs: Any) -> Any:  # fmt: skip
            started = clock()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] += clock() - started

        setattr(cls, name, wrapper)


#: Seconds spent in each phase since the last clear (``timed`` adds to it).
SPENT: dict[str, float] = defaultdict(float)


def measure(system: str, kind: str, count: int, evict_mb: int, rounds: int) -> str:
    app, made = requests(system)
    env = made[kind]
    for _ in range(50):  # warm-up: memos, templates, the session
        call(app, env)
    spent = SPENT
    spent.clear()
    block = bytearray(evict_mb << 20)
    totals = []
    gc.disable()
    try:
        for _ in range(rounds):
            total = 0.0
            for _ in range(count):
                if evict_mb:
                    copy = bytes(block)  # reads and writes evict_mb MB
                    del copy
                started = time.perf_counter()
                call(app, env)
                total += time.perf_counter() - started
            totals.append(total / count * 1e6)
    finally:
        gc.enable()
    per = 1e6 / (count * rounds)
    phases = "  ".join(f"{label} {spent[label] * per:6.1f}" for _, _, label in PHASES)
    return f"{system:9} {kind:6} {evict_mb:3} MB  {statistics.median(totals):8.1f} µs  ({phases})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="baseline,floor,library", help=",".join(APP_NAMES))
    parser.add_argument("--kind", choices=KINDS, default="htmx")
    parser.add_argument("--evict", type=int, default=4, help="MB copied before each request")
    parser.add_argument("-n", type=int, default=300, help="requests per round (default 300)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is printed")
    args = parser.parse_args()
    timed(SPENT)
    print("system    kind   evict  median per request  (phases: mean µs per request)")
    for evict in (0, args.evict):
        for system in args.systems.split(","):
            print(measure(system, args.kind, args.n, evict, args.rounds), flush=True)


if __name__ == "__main__":
    main()
