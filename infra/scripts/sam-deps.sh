#!/usr/bin/env bash
# Installs the AWS SAM CLI and cargo-lambda (pinned, from PyPI; cargo-lambda brings Zig, its
# cross-linker for arm64) into their own ignored venv, .local/sam-venv, for `make
# lint-template` (`sam validate --lint`), `make package` (`cargo lambda build --arm64
# --output-format zip`) and `sam build` (which runs cargo lambda). Apart from the emulator's
# venv (.local/venv): the SAM CLI pins many AWS libraries of its own, which must not move moto's.
#
# Needs only Python 3 (with its venv module) and the package registry. Idempotent: when the
# pinned version is there and runs, it does nothing, so `make test` runs it every time.
#
# Usage: sam-deps.sh   (then run .local/sam-venv/bin/sam or .local/sam-venv/bin/cargo-lambda)
set -euo pipefail
cd "$(dirname "$0")/../.."

LOCAL_DIR=.local
VENV="$LOCAL_DIR/sam-venv"
PYTHON="${PYTHON:-python3}"

# The SAM CLI, which brings the SAM translator and cfn-lint (`sam validate --lint`).
SAM_CLI_VERSION=1.170.0
# `cargo lambda build`, as `sam build`'s rust-cargolambda build method runs it.
CARGO_LAMBDA_VERSION=1.9.2
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

# The pinned versions installed and their entry points run.
tools_ready() {
    [[ -x "$VENV/bin/sam" ]] && venv_has aws-sam-cli "$SAM_CLI_VERSION" &&
        "$VENV/bin/python" -c 'import samcli, cfnlint, samtranslator' 2>/dev/null &&
        [[ -x "$VENV/bin/cargo-lambda" ]] && venv_has cargo-lambda "$CARGO_LAMBDA_VERSION" &&
        "$VENV/bin/cargo-lambda" lambda --version >/dev/null 2>&1
}

if [[ -x "$VENV/bin/python" ]] && tools_ready; then
    say "aws-sam-cli==$SAM_CLI_VERSION and cargo-lambda==$CARGO_LAMBDA_VERSION already installed ($VENV/bin)"
    exit 0
fi

ensure_venv
ensure_pip

say "installing aws-sam-cli==$SAM_CLI_VERSION and cargo-lambda==$CARGO_LAMBDA_VERSION into $VENV (a minute or two the first time)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aws-sam-cli==$SAM_CLI_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
tools_ready || die "aws-sam-cli==$SAM_CLI_VERSION and cargo-lambda==$CARGO_LAMBDA_VERSION installed but one of them does not run"
say "aws-sam-cli==$SAM_CLI_VERSION and cargo-lambda==$CARGO_LAMBDA_VERSION installed ($VENV/bin)"
