# shellcheck shell=bash
# Shared helpers for scripts/run-tests and scripts/run-demo. Sourced, not executed.
# Expects the caller to have done `set -euo pipefail`.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HX_ACTIONS_VENV:-$ROOT/.venv}"
STAMP="$VENV/.hx-actions-install-stamp"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '!!! %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, through sudo when it exists.
# Returns 127 when neither is possible.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 127
    fi
}

can_be_root() {
    [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1
}

apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

# Create the virtualenv when missing (or broken) and install the project into it with
# the dev extras. The install is skipped when setup.cfg and pyproject.toml are unchanged
# since the last successful install (hash kept in a stamp file inside the venv).
ensure_venv() {
    local py="${PYTHON:-python3}"
    if [ -e "$VENV" ] && ! python_ok "$VENV/bin/python"; then
        [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists but is not a virtualenv; move it away and retry"
        warn "$VENV exists but its python does not run (or is older than 3.11); recreating it"
        rm -rf "$VENV"
    fi
    if [ ! -e "$VENV" ]; then
        command -v "$py" >/dev/null 2>&1 || die "$py not found; install Python 3.11+ (Debian: apt-get install python3)"
        python_ok "$py" || die "$py is $("$py" -V 2>&1); flask-hx-actions needs Python 3.11 or newer"
        # Debian ships venv/ensurepip separately (python3-venv).
        if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
            if command -v apt-get >/dev/null 2>&1 && can_be_root; then
                log "installing python3-venv (needed to create $VENV)"
                apt_install python3-venv || die "apt-get install python3-venv failed"
            else
                die "$py cannot create virtualenvs; install python3-venv (Debian) and retry"
            fi
        fi
        log "creating virtualenv $VENV"
        "$py" -m venv "$VENV"
    fi

    local want
    want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | "$VENV/bin/python" -c \
        'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        log "dependencies up to date (setup.cfg/pyproject.toml unchanged)"
    else
        log "installing flask-hx-actions in editable mode with the dev extras (pip, quiet)"
        rm -f "$STAMP"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        (cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]')
        printf '%s\n' "$want" >"$STAMP"
    fi
    export VIRTUAL_ENV="$VENV"
    export PATH="$VENV/bin:$PATH"
}
