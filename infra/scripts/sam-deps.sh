#!/usr/bin/env bash
# Installs the AWS SAM CLI (pinned, from PyPI) into its own ignored venv, .local/sam-venv, for
# `make lint-template` (`sam validate --lint`). Apart from the emulator's venv (.local/venv):
# the SAM CLI pins many AWS libraries of its own, which must not move moto's.
#
# Needs only Python 3 (with its venv module) and the package registry. Idempotent: when the
# pinned version is there and runs, it does nothing, so `make test` runs it every time.
#
# Usage: sam-deps.sh   (then run .local/sam-venv/bin/sam)
set -euo pipefail
cd "$(dirname "$0")/../.."

LOCAL_DIR=.local
VENV="$LOCAL_DIR/sam-venv"
PYTHON="${PYTHON:-python3}"

# The SAM CLI, which brings the SAM translator and cfn-lint (`sam validate --lint`).
SAM_CLI_VERSION=1.170.0
# Older pips cannot install some of its dependencies (wheels with newer metadata).
MIN_PIP_MAJOR=22

say() { echo "sam-deps: $*"; }
die() {
    echo "sam-deps: error: $*" >&2
    exit 1
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

# The pinned version installed and its entry point runs.
sam_ready() {
    [[ -x "$VENV/bin/sam" ]] && venv_has aws-sam-cli "$SAM_CLI_VERSION" &&
        "$VENV/bin/python" -c 'import samcli, cfnlint, samtranslator' 2>/dev/null
}

if [[ -x "$VENV/bin/python" ]] && sam_ready; then
    say "aws-sam-cli==$SAM_CLI_VERSION already installed ($VENV/bin/sam)"
    exit 0
fi

if ! { [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' 2>/dev/null; }; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3 (3.9 or newer)"
    say "creating the Python venv $VENV"
    rm -rf "$VENV"
    mkdir -p "$LOCAL_DIR"
    "$PYTHON" -m venv "$VENV" ||
        die "'$PYTHON -m venv' failed (on Debian or Ubuntu: apt-get install python3-venv)"
fi

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

say "installing aws-sam-cli==$SAM_CLI_VERSION into $VENV (a minute or two the first time)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION"
sam_ready || die "aws-sam-cli==$SAM_CLI_VERSION installed but $VENV/bin/sam does not run"
say "aws-sam-cli==$SAM_CLI_VERSION installed ($VENV/bin/sam)"
