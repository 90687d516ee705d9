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

# ensure_venv, ensure_pip, venv_has.
# shellcheck source=infra/scripts/venv.sh
. infra/scripts/venv.sh

# The pinned version installed and its entry point runs.
sam_ready() {
    [[ -x "$VENV/bin/sam" ]] && venv_has aws-sam-cli "$SAM_CLI_VERSION" &&
        "$VENV/bin/python" -c 'import samcli, cfnlint, samtranslator' 2>/dev/null
}

if [[ -x "$VENV/bin/python" ]] && sam_ready; then
    say "aws-sam-cli==$SAM_CLI_VERSION already installed ($VENV/bin/sam)"
    exit 0
fi

ensure_venv
ensure_pip

say "installing aws-sam-cli==$SAM_CLI_VERSION into $VENV (a minute or two the first time)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION"
sam_ready || die "aws-sam-cli==$SAM_CLI_VERSION installed but $VENV/bin/sam does not run"
say "aws-sam-cli==$SAM_CLI_VERSION installed ($VENV/bin/sam)"
