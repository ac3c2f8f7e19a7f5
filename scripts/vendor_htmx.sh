#!/usr/bin/env bash
# Vendor a pinned htmx build into static/.
#
# Fetches htmx.org@$HTMX_VERSION from the npm registry (the only upstream this project relies on:
# no CDN), checks the tarball against the sha512 integrity value pinned below (npm's `dist.integrity`),
# copies package/dist/htmx.min.js to static/htmx.min.js and records its sha256 in static/VERSIONS.txt.
#
# Bumping htmx: change HTMX_VERSION, set HTMX_INTEGRITY to the output of
#   npm view htmx.org@<version> dist.integrity
# run this script, run the tests (tests/test_static_assets.py checks the three agree), commit static/.
set -euo pipefail

HTMX_VERSION=2.0.10
HTMX_INTEGRITY="sha512-kdeJe7ZVwaS6QMz/ebBIVtZdpwen6L0OQ5GOhPV9MKBb196TCZeZu4yA7ZIQsaLKv7EpXz+So7KSXNuHXhj7Cw=="

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
static_dir="$repo_root/static"

for tool in npm tar openssl sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "vendor_htmx: '$tool' is required" >&2; exit 1; }
done

workdir="$(mktemp -d)"
trap 'rm -rf -- "$workdir"' EXIT

echo "vendor_htmx: fetching htmx.org@$HTMX_VERSION from the npm registry"
tarball_name="$(cd "$workdir" && npm pack --silent "htmx.org@$HTMX_VERSION" | tail -n 1)"
tarball="$workdir/$tarball_name"
[[ -f "$tarball" ]] || { echo "vendor_htmx: npm pack produced no tarball" >&2; exit 1; }

actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"
if [[ "$actual" != "$HTMX_INTEGRITY" ]]; then
    echo "vendor_htmx: integrity mismatch for $tarball_name" >&2
    echo "  expected $HTMX_INTEGRITY" >&2
    echo "  got      $actual" >&2
    exit 1
fi

tar -xzf "$tarball" -C "$workdir" package/dist/htmx.min.js package/package.json
pkg_version="$(node -p 'require(process.argv[1]).version' "$workdir/package/package.json" 2>/dev/null \
    || sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$workdir/package/package.json" | head -n 1)"
if [[ "$pkg_version" != "$HTMX_VERSION" ]]; then
    echo "vendor_htmx: tarball holds version '$pkg_version', expected $HTMX_VERSION" >&2
    exit 1
fi

mkdir -p "$static_dir"
install -m 0644 "$workdir/package/dist/htmx.min.js" "$static_dir/htmx.min.js"
digest="$(sha256sum "$static_dir/htmx.min.js" | cut -d' ' -f1)"

{
    echo "# Vendored client assets, written by scripts/vendor_htmx.sh (do not edit by hand)."
    echo "htmx.org $HTMX_VERSION sha256=$digest"
} > "$static_dir/VERSIONS.txt"

echo "vendor_htmx: static/htmx.min.js = htmx.org $HTMX_VERSION (sha256 $digest)"
