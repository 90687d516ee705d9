# Shared by the setup scripts: a Python venv under .local/ with a recent pip. The caller sets
# LOCAL_DIR, VENV, PYTHON and MIN_PIP_MAJOR and defines say and die, then sources this file.
# shellcheck shell=bash

# The Python virtual environment $VENV, created once.
ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        return
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3 (3.9 or newer)"
    say "creating the Python venv $VENV"
    rm -rf "$VENV"
    mkdir -p "$LOCAL_DIR"
    "$PYTHON" -m venv "$VENV" ||
        die "'$PYTHON -m venv' failed (on Debian or Ubuntu: apt-get install python3-venv)"
}

# pip inside the venv, upgraded only when missing or too old.
ensure_pip() {
    local major
    major=$("$VENV/bin/python" -m pip --version 2>/dev/null | awk '{ split($2, v, "."); print v[1] }' || true)
    if [[ -z "$major" ]]; then
        say "bootstrapping pip in $VENV"
        "$VENV/bin/python" -m ensurepip --upgrade >/dev/null || die "ensurepip failed in $VENV"
        major=$("$VENV/bin/python" -m pip --version | awk '{ split($2, v, "."); print v[1] }')
    fi
    if ((major < MIN_PIP_MAJOR)); then
        say "upgrading pip $major.x in $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    fi
}

# True when the venv has exactly this version of a distribution.
venv_has() {
    "$VENV/bin/python" - "$1" "$2" <<'EOF' 2>/dev/null
import sys
from importlib import metadata
try:
    sys.exit(0 if metadata.version(sys.argv[1]) == sys.argv[2] else 1)
except metadata.PackageNotFoundError:
    sys.exit(1)
EOF
}
