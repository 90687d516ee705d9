#!/usr/bin/env bash
# Installs what the test suites drive besides Rust: nothing yet beyond the toolchain.
# Later suites add their tools here (each install is idempotent and local to the checkout).
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "test-deps: nothing to install"
