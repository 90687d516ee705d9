#!/usr/bin/env bash
# Installs what the test suites drive besides Rust, into ignored folders of this checkout
# (.local/). Needs only Python 3 (with its venv module), Node.js with npm, and the package
# registries.
#
# Every step is idempotent: it checks what is there and installs only what is missing or at
# the wrong version, so `make test` runs this every time at almost no cost. Later suites add
# their own step: a function below, named in STEPS at the end.
#
# Usage: test-deps.sh [STEP...]   (default: every step; e.g. `make run` needs only `moto`)
set -euo pipefail
cd "$(dirname "$0")/../.."

LOCAL_DIR=.local
VENV="$LOCAL_DIR/venv"
PYTHON="${PYTHON:-python3}"

# The AWS emulator the AWS adapter, function and end-to-end tests start (tests/support).
MOTO_VERSION=5.2.5
# Older pips cannot install some of moto's dependencies (wheels with newer metadata).
MIN_PIP_MAJOR=22

say() { echo "test-deps: $*"; }
die() {
    echo "test-deps: error: $*" >&2
    exit 1
}

# ensure_venv, ensure_pip, venv_has.
# shellcheck source=infra/scripts/venv.sh
. infra/scripts/venv.sh

step_moto() {
    ensure_venv
    if venv_has moto "$MOTO_VERSION" && [[ -x "$VENV/bin/moto_server" ]] &&
        "$VENV/bin/python" -c 'import moto.server' 2>/dev/null; then
        say "moto[server]==$MOTO_VERSION already installed ($VENV/bin/moto_server)"
        return
    fi
    ensure_pip
    say "installing moto[server]==$MOTO_VERSION into $VENV (a minute or two the first time)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    "$VENV/bin/python" -c 'import moto.server' || die "moto[server] installed but does not import"
    say "moto[server]==$MOTO_VERSION installed ($VENV/bin/moto_server)"
}

# Headless Chromium for the page tests (the sandbox's, infra/local/alipay-sandbox/tests/sandbox/ui.rs,
# and the operator console's, tests/e2e/tests/console.rs):
# Debian's package, which the test finds on PATH (or at /usr/bin/chromium). Also a CJK font,
# optional (the test does not depend on it), so that Chinese text is legible in screenshots.
APT=()
# Sets APT to the apt-get command to use (root, or passwordless sudo); fails otherwise.
ensure_apt() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if ((EUID == 0)); then
        APT=(apt-get)
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        APT=(sudo -n apt-get)
    else
        return 1
    fi
}

step_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        say "chromium already installed ($(command -v chromium))"
    else
        ensure_apt || die "chromium is not installed, and apt-get cannot be run here (not root, no passwordless sudo, or no apt-get): install Debian's chromium as root ('apt-get install chromium') so that 'chromium' is on PATH"
        say "installing chromium with apt-get (a minute or two the first time)"
        "${APT[@]}" update -qq
        DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends chromium >/dev/null
        command -v chromium >/dev/null 2>&1 || die "chromium installed but not on PATH"
        say "chromium installed ($(command -v chromium))"
    fi
    if ! fc-list ':lang=zh' 2>/dev/null | grep -q .; then
        if ensure_apt && DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends fonts-noto-cjk >/dev/null; then
            say "fonts-noto-cjk installed (Chinese text in screenshots)"
        else
            say "warning: no CJK font (fonts-noto-cjk): screenshots show boxes for Chinese text; tests are not affected"
        fi
    fi
}

# The official Alipay Python SDK (and its two crypto dependencies, pinned) for the sandbox's
# conformance test (infra/local/alipay-sandbox/conformance/sdk_check.py).
ALIPAY_SDK_VERSION=3.7.1411
RSA_VERSION=4.9.1
PYCRYPTODOME_VERSION=4.4.0
step_alipay_sdk() {
    ensure_venv
    if venv_has alipay-sdk-python "$ALIPAY_SDK_VERSION" && venv_has rsa "$RSA_VERSION" &&
        venv_has pycryptodome "$PYCRYPTODOME_VERSION" &&
        "$VENV/bin/python" -c 'import alipay.aop.api.DefaultAlipayClient, Crypto.PublicKey.RSA' 2>/dev/null; then
        say "alipay-sdk-python==$ALIPAY_SDK_VERSION already installed"
        return
    fi
    ensure_pip
    say "installing alipay-sdk-python==$ALIPAY_SDK_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "alipay-sdk-python==$ALIPAY_SDK_VERSION" "rsa==$RSA_VERSION" "pycryptodome==$PYCRYPTODOME_VERSION"
    "$VENV/bin/python" -c 'import alipay.aop.api.DefaultAlipayClient, Crypto.PublicKey.RSA' ||
        die "alipay-sdk-python installed but does not import"
    say "alipay-sdk-python==$ALIPAY_SDK_VERSION installed"
}

# The official Alipay Node.js SDK (npm `alipay-sdk`, pinned) for the sandbox's conformance test
# (infra/local/alipay-sandbox/conformance/sdk_check.cjs), installed with the machine's npm into
# .local/node; the test finds it through NODE_PATH.
NODE_DIR="$LOCAL_DIR/node"
ALIPAY_SDK_NODE_VERSION=4.14.0
MIN_NODE_MAJOR=18
step_alipay_sdk_node() {
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
        die "node and npm not found: install Node.js $MIN_NODE_MAJOR or newer (on Debian or Ubuntu: apt-get install nodejs npm)"
    node -e "process.exit(Number(process.versions.node.split('.')[0]) >= $MIN_NODE_MAJOR ? 0 : 1)" ||
        die "Node.js $(node --version) is too old: alipay-sdk needs $MIN_NODE_MAJOR or newer"
    local installed
    installed=$(NODE_PATH="$NODE_DIR/node_modules" node -p "require('alipay-sdk/package.json').version" 2>/dev/null || true)
    if [[ "$installed" == "$ALIPAY_SDK_NODE_VERSION" ]] &&
        NODE_PATH="$NODE_DIR/node_modules" node -e "require('alipay-sdk')" 2>/dev/null; then
        say "alipay-sdk@$ALIPAY_SDK_NODE_VERSION (npm) already installed ($NODE_DIR)"
        return
    fi
    mkdir -p "$NODE_DIR"
    say "installing alipay-sdk@$ALIPAY_SDK_NODE_VERSION (npm) into $NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact --loglevel=error \
        "alipay-sdk@$ALIPAY_SDK_NODE_VERSION" >/dev/null
    NODE_PATH="$NODE_DIR/node_modules" node -e "require('alipay-sdk')" ||
        die "alipay-sdk installed but does not load"
    say "alipay-sdk@$ALIPAY_SDK_NODE_VERSION (npm) installed ($NODE_DIR)"
}

# Schemathesis (pinned) for the schema-driven API test (tests/e2e/tests/schemathesis.rs,
# `make schemathesis`), in a venv of its own, so that installing either never moves the other's
# dependencies (werkzeug, requests, ...).
SCHEMATHESIS_VENV="$LOCAL_DIR/schemathesis-venv"
SCHEMATHESIS_VERSION=4.32.5
step_schemathesis() {
    local VENV="$SCHEMATHESIS_VENV"
    ensure_venv
    if venv_has schemathesis "$SCHEMATHESIS_VERSION" && [[ -x "$VENV/bin/schemathesis" ]]; then
        say "schemathesis==$SCHEMATHESIS_VERSION already installed ($VENV/bin/schemathesis)"
        return
    fi
    ensure_pip
    say "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    "$VENV/bin/schemathesis" --version >/dev/null || die "schemathesis installed but does not run"
    say "schemathesis==$SCHEMATHESIS_VERSION installed ($VENV/bin/schemathesis)"
}

# cargo-fuzz (pinned) for the fuzz targets of shared/fuzz (`make fuzz`, `make fuzz-smoke`), built
# from crates.io into .local/cargo-fuzz; running the targets also needs the nightly toolchain.
CARGO_FUZZ_VERSION=0.13.1
CARGO_FUZZ_ROOT="$LOCAL_DIR/cargo-fuzz"
step_cargo_fuzz() {
    local bin="$CARGO_FUZZ_ROOT/bin/cargo-fuzz"
    if [[ -x "$bin" ]] && [[ "$("$bin" --version 2>/dev/null)" == "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
        say "cargo-fuzz $CARGO_FUZZ_VERSION already installed ($bin)"
        return
    fi
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT (a few minutes the first time)"
    cargo install --quiet --locked --root "$CARGO_FUZZ_ROOT" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
    [[ "$("$bin" --version 2>/dev/null)" == "cargo-fuzz $CARGO_FUZZ_VERSION" ]] ||
        die "cargo-fuzz installed but $bin does not report version $CARGO_FUZZ_VERSION"
    say "cargo-fuzz $CARGO_FUZZ_VERSION installed ($bin)"
}

STEPS=(moto chromium alipay_sdk alipay_sdk_node schemathesis cargo_fuzz)
if (($# == 0)); then
    set -- "${STEPS[@]}"
fi
for step in "$@"; do
    step=${step//-/_}
    if [[ " ${STEPS[*]} " == *" $step "* ]]; then
        "step_$step"
    else
        die "unknown step '$step' (steps: ${STEPS[*]})"
    fi
done
