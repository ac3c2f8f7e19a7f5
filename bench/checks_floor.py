"""What the protections of a toggle cost on their own, in instructions counted by valgrind.

The library's toggle runs checks the hand-wired baseline does not: it loads the session cookie
(Flask-WTF keeps the CSRF secret there), validates the CSRF token, verifies the signed bound id
and, for the htmx answer, signs a new one for the re-rendered form and cuts a fresh idempotency
key. Each of these is run alone here, ``N`` times inside the bench's own htmx toggle request
(built from the page as ``bench/run`` builds it), with the library's own functions; a loop that
does nothing is subtracted. The sum is the floor of what any implementation of these checks on
Flask's session and these tokens pays per request, against which the library's whole overhead
over the baseline (``bench/instructions.py``) can be read.

    .venv/bin/python bench/checks_floor.py [-n 2000]

Needs valgrind (Debian package). ``--run PART N`` is the inner run valgrind executes.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "apps")]

PARTS = {
    "session": "open the session cookie (Flask's SecureCookieSessionInterface)",
    "csrf": "validate the CSRF token against the session",
    "bound_verify": "verify the signed bound id",
    "bound_sign": "sign the bound id of the re-rendered form",
    "key": "cut a fresh idempotency key",
}
WARM_UP = 30


def inner(part: str, count: int) -> None:
    """Run ``part`` (or nothing, for ``none``) ``count`` times after a warm-up."""
    import instructions
    from flask import request
    from flask import session as session_proxy

    from flask_hx_actions import security

    app, made = instructions.requests("library")
    env = dict(made["htmx"])
    body = env.pop("_body")
    form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
    env["wsgi.input"] = io.BytesIO(body)
    with app.request_context(env):
        interface = app.session_interface
        session_proxy._get_current_object()  # type: ignore[attr-defined] # loaded as in a request
        token = env["HTTP_X_CSRFTOKEN"]
        bound = form["_hx_bound"]
        max_age = int(app.config["HX_ACTIONS_BOUND_MAX_AGE"])
        for _ in range(WARM_UP + count):
            if part == "session":
                interface.open_session(app, request)
            elif part == "csrf":
                security.validate_csrf(app, token)
            elif part == "bound_verify":
                binding = security.session_binding(None)
                security.verify_bound(app, "todos.toggle", bound, binding, max_age)
            elif part == "bound_sign":
                binding = security.session_binding(None)
                security.sign_bound(app, "todos.toggle", {"id": instructions.ROW}, binding)
            elif part == "key":
                security.fresh_key()


def counted(part: str, count: int) -> int:
    run = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--run",
            part,
            str(count),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
        check=False,
    )
    match = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or match is None:
        raise SystemExit(f"valgrind failed ({run.returncode}):\n{run.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="runs of each part")
    parser.add_argument("--run", nargs=2, metavar=("PART", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        inner(args.run[0], int(args.run[1]))
        return
    empty = counted("none", args.n)
    total = 0.0
    for part, what in PARTS.items():
        each = (counted(part, args.n) - empty) / args.n
        total += each
        print(f"{part:13s} {each:9,.0f} instructions  {what}", flush=True)
    print(f"{'sum':13s} {total:9,.0f} instructions")


if __name__ == "__main__":
    main()
