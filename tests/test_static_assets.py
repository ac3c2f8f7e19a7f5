"""The vendored client assets are the pinned, recorded versions (see scripts/vendor_htmx.sh)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
VENDOR_SCRIPT = ROOT / "scripts" / "vendor_htmx.sh"
HTMX_VERSION = "2.0.10"


def _versions() -> dict[str, tuple[str, str]]:
    """package -> (version, sha256) from static/VERSIONS.txt."""
    entries = {}
    for line in (STATIC / "VERSIONS.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"(\S+) (\S+) sha256=([0-9a-f]{64})", line.strip())
        assert match, f"malformed VERSIONS.txt line: {line!r}"
        entries[match[1]] = (match[2], match[3])
    return entries


def test_vendored_htmx_declares_pinned_version() -> None:
    source = (STATIC / "htmx.min.js").read_text(encoding="utf-8")
    # htmx's own object literal: `version:"2.0.10"` (minified; `version: '2.0.10'` in htmx.js).
    assert re.findall(r"""version:\s*["']([^"']+)["']""", source) == [HTMX_VERSION]


def test_vendored_htmx_matches_recorded_sha256() -> None:
    version, digest = _versions()["htmx.org"]
    assert version == HTMX_VERSION
    assert hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest() == digest


def test_vendor_script_pins_same_version_and_integrity() -> None:
    script = VENDOR_SCRIPT.read_text(encoding="utf-8")
    assert re.search(r"^HTMX_VERSION=(\S+)$", script, re.M)[1] == HTMX_VERSION
    integrity = re.search(r'^HTMX_INTEGRITY="(sha512-[A-Za-z0-9+/]{86}==)"$', script, re.M)
    assert integrity, "the script must pin the npm dist.integrity (sha512) of the tarball"
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script


def test_runtime_script_is_plain_and_small() -> None:
    source = (STATIC / "hx-actions.js").read_text(encoding="utf-8")
    assert "'use strict'" in source
    assert "window.hxActions = Object.freeze({ version: '0.1.0' })" in source
    # A guard against growth, not a target (a quarter of the lines are comments).
    assert len(source.splitlines()) < 500
    # No build step and no module syntax: the file is served as a classic script.
    assert not re.search(r"^\s*(import|export)\s", source, re.M)
