"""Profile the library app in process (Flask test client, no server): ~2000 htmx toggles and ~50
``GET /``, with pyinstrument. Prints, for each, the time per request, the time by package, the
most expensive functions by own time (all code, then the library's), the library's functions by
inclusive time, and the top of pyinstrument's call tree.

    .venv/bin/python bench/profile.py [--toggles 2000] [--pages 50] [--tree-lines 60]

Installs pyinstrument into the running interpreter's environment when it is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH / "apps")]

try:
    from pyinstrument import Profiler
except ImportError:  # pragma: no cover - first run
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyinstrument"], check=True)
    from pyinstrument import Profiler

from library_app import app  # noqa: E402
from run import LOAD_ROW, Browser, PageParser  # noqa: E402

ORIGIN = "http://localhost"


def package_of(path: str) -> str:
    """Which code a frame belongs to: the library, the bench app, a site package or the stdlib."""
    if "/flask_hx_actions/" in path or "/templates/hx_actions/" in path:
        return "flask_hx_actions"
    if "/bench/apps/" in path:
        return "bench app (+ its templates)"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith("<"):
        return path
    return "stdlib"


def walk(frame: Any, stack: frozenset[tuple[str, str, int]], visit: Callable[..., None]) -> None:
    key = (frame.function, frame.file_path or "", frame.line_no or 0)
    visit(frame, key, key in stack)
    for child in frame.children:
        if not child.is_synthetic:
            walk(child, stack | {key}, visit)


def tables(profiler: Any, requests: int, title: str, tree_lines: int) -> None:
    root = profiler.last_session.root_frame()
    own: dict[tuple[str, str, int], float] = defaultdict(float)
    inclusive: dict[tuple[str, str, int], float] = defaultdict(float)
    by_package: dict[str, float] = defaultdict(float)

    def visit(frame: Any, key: tuple[str, str, int], recursive: bool) -> None:
        self_time = frame.total_self_time
        own[key] += self_time
        by_package[package_of(key[1])] += self_time
        if not recursive:
            inclusive[key] += frame.time

    walk(root, frozenset(), visit)
    total = root.time

    def us(seconds: float) -> str:
        return f"{seconds / requests * 1e6:8.1f} µs/req"

    def name(key: tuple[str, str, int]) -> str:
        function, path, line = key
        short = path
        for marker in ("site-packages/", "/work/main/", "/lib/python3"):
            if marker in short:
                short = short.split(marker, 1)[1]
                break
        return f"{function}  ({short}:{line})"

    print(f"\n=== {title}: {requests} requests, {total * 1000:.0f} ms profiled, {us(total)}")
    print("\n-- own time by package")
    for pkg, t in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
        print(f"{us(t)}  {t / total:6.1%}  {pkg}")
    print("\n-- top 15 functions by own time (all code)")
    for key, t in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{us(t)}  {t / total:6.1%}  [{package_of(key[1])}] {name(key)}")
    lib = {k: v for k, v in own.items() if package_of(k[1]) == "flask_hx_actions"}
    print("\n-- top 10 library functions by own time")
    for key, t in sorted(lib.items(), key=lambda kv: -kv[1])[:10]:
        print(f"{us(t)}  {t / total:6.1%}  {name(key)}")
    lib_incl = {k: v for k, v in inclusive.items() if package_of(k[1]) == "flask_hx_actions"}
    print("\n-- top 10 library functions by inclusive time (with what they call)")
    for key, t in sorted(lib_incl.items(), key=lambda kv: -kv[1])[:10]:
        print(f"{us(t)}  {t / total:6.1%}  {name(key)}")
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    lines = text.splitlines()
    print(f"\n-- pyinstrument call tree (first {tree_lines} lines)")
    print("\n".join(lines[:tree_lines]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toggles", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--tree-lines", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling interval, s")
    args = parser.parse_args()

    client = app.test_client()
    first = client.get("/")
    assert first.status_code == 200, first.status_code
    page = PageParser.of(first.text)
    browser = Browser("library", 0)
    browser.origin = ORIGIN
    browser.page = page  # the test client keeps the session cookie itself
    req = browser.htmx_toggle(LOAD_ROW)
    headers = {k: v for k, v in req.headers.items() if k != "Content-Type"}
    content_type = req.headers["Content-Type"]

    def toggle() -> None:
        r = client.post(req.path, data=req.body, headers=headers, content_type=content_type)
        assert r.status_code == 200, (r.status_code, r.text[:300])

    def get_page() -> None:
        r = client.get("/")
        assert r.status_code == 200, r.status_code

    for _ in range(100):  # warm-up: templates compiled, caches filled
        toggle()
    for _ in range(5):
        get_page()

    for title, fn, count in (
        ("htmx toggle", toggle, args.toggles),
        ("GET /", get_page, args.pages),
    ):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        plain = time.perf_counter() - start
        profiler = Profiler(interval=args.interval)
        profiler.start()
        for _ in range(count):
            fn()
        profiler.stop()
        print(f"\n{title}: {plain / count * 1e6:.0f} µs/request unprofiled (test client)")
        tables(profiler, count, title, args.tree_lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
