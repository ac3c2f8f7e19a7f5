"""The key's cost in process: baseline+pg and library+pg, one request of each in turn.

On the shared 2-vCPU hosts the benchmark runs on, the speed of the whole machine moves by tens of
per cent from one minute to the next (seen: the same toggle at 5.1 ms, then 1.9 ms twenty minutes
later), so two systems measured one after the other, as ``bench/run`` does per point, can differ
by more than what is being measured. Here the apps run in one process against one PostgreSQL
schema, and the requests alternate one by one (the order rotates every round), so every system
meets the same moment of the machine:

- ``baseline+pg``: the hand-wired baseline with the todos in PostgreSQL;
- ``baseline+pg+keys``: the same baseline with exactly-once toggles written by hand
  (``apps/keyed_app.py``: each toggle with a fresh key, claimed by an ``INSERT ... ON CONFLICT DO
  NOTHING`` in the toggle's own transaction): what the key costs whoever writes it;
- ``library+pg``: the library as the README teaches it, each toggle with a fresh ``_hx_key``
  (the key claimed in the toggle's own transaction, as ``bench/run``'s wrk script sends them);
- ``library+pg, no key``: the same app and request with an empty ``_hx_key`` (nothing claimed).

It prints the median wall time and CPU time (of this thread: the client's side, PostgreSQL's
work not included) per request, each system's ratio to the baseline and to the baseline with keys
by hand (reference time ÷ system time, as the benchmark's req/s ratios read) and what the key
costs (with minus without) in the library and by hand. The requests are
``bench/instructions.py``'s, sent to the apps' WSGI callables.

    .venv/bin/python bench/interleaved.py                 # no-JS toggle, 2,000 rounds
    .venv/bin/python bench/interleaved.py --kind htmx -n 1000

Needs PostgreSQL at ``BENCH_POSTGRES_URL`` (default as ``bench/run``); the schema it creates is
dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "apps")]

from run import HAND_KEYS_TABLE, POSTGRES_URL, Postgres, with_key  # noqa: E402

BASELINE, HAND, KEYED, UNKEYED = (
    "baseline+pg",
    "baseline+pg+keys",
    "library+pg",
    "library+pg, no key",
)


def keyed(env: dict[str, Any], key: str) -> dict[str, Any]:
    """``env`` (an environ of ``instructions.environ``) with ``_hx_key`` set to ``key``."""
    body = with_key(env["_body"].decode(), key).encode()
    return {**env, "_body": body, "CONTENT_LENGTH": str(len(body))}


def timed(call: Callable[[], str]) -> tuple[float, float]:
    """Wall and thread CPU seconds of ``call()``, which returns the answer's status line."""
    wall, cpu = time.perf_counter(), time.thread_time()
    status = call()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    if status[:3] not in ("200", "303"):
        raise SystemExit(f"answered {status}")
    return wall, cpu


def measure(kind: str, rounds: int, warmup: int) -> dict[str, list[tuple[float, float]]]:
    from instructions import call, requests

    baseline, baseline_requests = requests("baseline")
    hand, hand_requests = requests("keyed")
    library, library_requests = requests("library")
    plain = baseline_requests[kind]
    by_hand = hand_requests[kind]
    submit = library_requests[kind]
    arms: dict[str, Callable[[], str]] = {
        BASELINE: lambda: call(baseline, plain)[0],
        HAND: lambda: call(hand, keyed(by_hand, secrets.token_urlsafe(16)))[0],
        KEYED: lambda: call(library, keyed(submit, secrets.token_urlsafe(16)))[0],
        UNKEYED: lambda: call(library, keyed(submit, ""))[0],
    }
    names = list(arms)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for i in range(warmup + rounds):
        first = i % len(names)  # who goes first rotates
        turn = names[first:] + names[:first]
        for name in turn:
            taken = timed(arms[name])
            if i >= warmup:
                times[name].append(taken)
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    wall = {name: statistics.median(t[0] for t in v) for name, v in times.items()}
    cpu = {name: statistics.median(t[1] for t in v) for name, v in times.items()}
    print(f"| system | wall µs | CPU µs | ratio to {BASELINE} | ratio to {HAND} |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in times:
        ratios = f"{wall[BASELINE] / wall[name]:.3f}x | {wall[HAND] / wall[name]:.3f}x"
        print(f"| {name} | {wall[name] * 1e6:,.0f} | {cpu[name] * 1e6:,.0f} | {ratios} |")
    print()
    for label, keyed_arm, unkeyed_arm in (("library", KEYED, UNKEYED), ("by hand", HAND, BASELINE)):
        print(
            f"The key, {label}: {(wall[keyed_arm] - wall[unkeyed_arm]) * 1e6:+,.0f} µs wall, "
            f"{(cpu[keyed_arm] - cpu[unkeyed_arm]) * 1e6:+,.0f} µs CPU per request"
        )
    print(f"(medians of {len(times[BASELINE]):,} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("plain", "htmx"), default="plain")
    parser.add_argument("-n", type=int, default=2000, help="rounds (one request per system)")
    parser.add_argument("--warmup", type=int, default=100, help="rounds not counted")
    args = parser.parse_args()
    pg = Postgres.connect(POSTGRES_URL)
    if pg is None:
        raise SystemExit(f"PostgreSQL does not answer at {POSTGRES_URL}")
    schema, url = pg.new_schema("interleaved")
    import data  # apps/data.py, imported by new_schema already: it read no URL then

    data.DATABASE_URL = os.environ["BENCH_DATABASE_URL"] = url  # before the apps are imported
    try:
        times = measure(args.kind, args.n, args.warmup)
        keys = pg.count_keys(schema)
        hand_keys = pg.count_keys(schema, HAND_KEYS_TABLE)
    finally:
        pg.close()
    expected = args.n + args.warmup
    for system, claimed in ((KEYED, keys), (HAND, hand_keys)):
        if claimed != expected:
            raise SystemExit(f"{system}: {claimed} keys were claimed for {expected} keyed requests")
    print(f"{args.kind} toggle, todos and keys in PostgreSQL ({POSTGRES_URL}), {keys:,} keys:\n")
    report(times)


if __name__ == "__main__":
    main()
