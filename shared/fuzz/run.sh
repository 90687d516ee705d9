#!/usr/bin/env bash
# Runs the fuzz targets of shared/fuzz (cargo-fuzz: libFuzzer with AddressSanitizer) for SECONDS
# each, one after the other, and prints each one's executions, rate, peak memory and verdict from
# libFuzzer's final statistics. `make fuzz` and `make fuzz-smoke` call it.
#
# Usage: shared/fuzz/run.sh SECONDS [TARGET...]   (default: every target)
#
# The committed seeds (shared/fuzz/corpus/<target>) are read, never written: what a run finds
# goes to .local/fuzz/corpus/<target>, kept for the next run. A crash (a panic or a failed
# property), a timeout (one input over 10 s), a leak or more than 2 GiB of memory stops that
# target with the input that caused it in shared/fuzz/artifacts/<target>/ (replay it with
# `cargo +nightly fuzz run --fuzz-dir shared/fuzz <target> <file>`); the other targets still
# run, and the script exits non-zero. Logs: .local/fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:?usage: shared/fuzz/run.sh SECONDS [TARGET...]}
shift
FUZZ_DIR=shared/fuzz
WORK=.local/fuzz

# Like every other tool of `make test`, installed here when missing (rustup's minimal profile).
if ! cargo +nightly --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    echo "fuzz: installing the nightly Rust toolchain (rustup, minimal profile)"
    rustup toolchain install nightly --profile minimal || true
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: the nightly Rust toolchain is missing ('cargo +nightly' does not run): cargo-fuzz builds with nightly-only sanitizer flags. Install it with 'rustup toolchain install nightly'." >&2
    exit 1
fi
./infra/scripts/test-deps.sh cargo_fuzz
export PATH="$PWD/.local/cargo-fuzz/bin:$PATH"

# FUZZ_DEV=1: unoptimised builds (cargo fuzz --dev). They compile in about half the time and
# run slower: right for the short smoke of `make test` on a cold CI machine, not for long runs.
build=()
if [[ "${FUZZ_DEV:-}" == 1 ]]; then
    build=(--dev)
fi
# FUZZ_TRACE_COMPARES=0: without libFuzzer's comparison tracing (--no-trace-compares), which
# guides mutations towards the constants the code compares with and costs most of the time of
# the parsers' targets: about 2.8x the executions a second once the corpus has grown. For long
# runs from a grown corpus; its own target directory, so the default build stays as it is.
if [[ "${FUZZ_TRACE_COMPARES:-1}" == 0 ]]; then
    build+=(--no-trace-compares --target-dir "$FUZZ_DIR/target/no-trace-compares")
fi
# FUZZ_RUNS=N: each target stops after N executions (or SECONDS, whichever comes first).
limits=(-max_total_time="$seconds")
if [[ -n "${FUZZ_RUNS:-}" ]]; then
    limits+=(-runs="$FUZZ_RUNS")
fi
if (($# > 0)); then
    targets=("$@")
else
    targets=("$FUZZ_DIR"/fuzz_targets/*.rs)
    targets=("${targets[@]##*/}")
    targets=("${targets[@]%.rs}")
fi
# Every target at once: the dependencies are built once, and a target that no longer compiles
# fails here whichever targets are run.
cargo +nightly fuzz build "${build[@]}" --fuzz-dir "$FUZZ_DIR"

stat() { awk -v key="stat::$1:" '$1 == key { print $2 }' "$2" | tail -n 1; }

failed=()
mkdir -p "$WORK/logs"
printf '%-16s %14s %10s %10s  %s\n' target executions 'exec/s' 'peak RSS' verdict
for target in "${targets[@]}"; do
    mkdir -p "$WORK/corpus/$target"
    log="$WORK/logs/$target.log"
    verdict=ok
    if ! cargo +nightly fuzz run "${build[@]}" --fuzz-dir "$FUZZ_DIR" "$target" \
        "$WORK/corpus/$target" "$FUZZ_DIR/corpus/$target" -- \
        "${limits[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        verdict="FAILED: $(grep -m 1 -E '^(==[0-9]+==)?ERROR|^thread .* panicked|Test unit written' "$log" || echo "see $log")"
        failed+=("$target")
    fi
    printf '%-16s %14s %10s %7s MB  %s\n' "$target" "$(stat number_of_executed_units "$log")" \
        "$(stat average_exec_per_sec "$log")" "$(stat peak_rss_mb "$log")" "$verdict"
done
if ((${#failed[@]} > 0)); then
    echo "fuzz: ${failed[*]} failed; the inputs are in $FUZZ_DIR/artifacts/, the logs in $WORK/logs/" >&2
    exit 1
fi
