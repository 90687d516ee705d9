#!/usr/bin/env bash
# The pay function's QR create at the CPU share Lambda gives each memory size (a full vCPU at
# 1,769 MB, proportionally less below), with the emulator and the sandbox unthrottled: the
# create_cpu bench with its process in a cgroup v1 CPU quota of size/1769 of one CPU. Prints
# the wall time per create and the cost of 1,000 creates at Lambda's arm64 price per GB-second
# (requests not counted). Linux, as root (it creates cgroups under /sys/fs/cgroup/cpu).
#
# Usage: pay-memory-sizes.sh [SIZE_MB...]   (default: 128 256 512 1024; CREATES=200)
set -euo pipefail
cd "$(dirname "$0")/../.."

CGROUPS=/sys/fs/cgroup/cpu
# arm64, first pricing tier, USD per GB-second (us-east-1).
PRICE_PER_GB_SECOND=0.0000133334
PERIOD_US=100000
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(128 256 512 1024)

[[ -w "$CGROUPS" ]] || {
    echo "pay-memory-sizes: $CGROUPS is not writable (needs cgroup v1's cpu controller and root)" >&2
    exit 1
}
cargo build --release -q -p alipay-sandbox
cargo bench -q -p pay --bench create_cpu --no-run

printf '%8s %10s %14s %16s\n' "MB" "vCPU" "wall ms/create" "USD/1000 creates"
for size in "${SIZES[@]}"; do
    group="$CGROUPS/pay-$size-mb"
    mkdir -p "$group"
    echo "$PERIOD_US" >"$group/cpu.cfs_period_us"
    echo $((PERIOD_US * size / 1769)) >"$group/cpu.cfs_quota_us"
    wall=$(CPU_CGROUP="$group" cargo bench -q -p pay --bench create_cpu 2>/dev/null |
        awk '/^wall time:/ { print $3 }')
    rmdir "$group" 2>/dev/null || true
    [[ -n "$wall" ]] || {
        echo "pay-memory-sizes: the bench gave no wall time at $size MB" >&2
        exit 1
    }
    awk -v mb="$size" -v ms="$wall" -v price="$PRICE_PER_GB_SECOND" 'BEGIN {
        printf "%8d %10.3f %14.2f %16.6f\n", mb, mb / 1769, ms, 1000 * ms / 1000 * mb / 1024 * price
    }'
done
