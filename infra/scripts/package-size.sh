#!/usr/bin/env bash
# Checks the zipped deployment package of every function in template.yaml against its budget,
# as `cargo lambda build --release --arm64 --output-format zip` (what `sam build` runs) made
# it: target/lambda/<binary>/bootstrap.zip. Budgets (bytes) are in infra/package-size-budget.txt;
# a function without a budget, a missing package or one over its budget fails the check.
#
# Usage: package-size.sh   (after the packages are built; `make package` does both)
set -euo pipefail
cd "$(dirname "$0")/../.."

BUDGETS=infra/package-size-budget.txt

budget_of() {
    awk -v name="$1" '$1 == name { print $2 }' "$BUDGETS"
}

status=0
printf '%-16s %10s %10s %6s\n' function zip budget used
for binary in $(awk '$1 == "Binary:" { print $2 }' template.yaml); do
    budget=$(budget_of "$binary")
    zip="target/lambda/$binary/bootstrap.zip"
    if [[ -z "$budget" ]]; then
        echo "package-size: $binary has no budget in $BUDGETS" >&2
        status=1
        continue
    fi
    if [[ ! -f "$zip" ]]; then
        echo "package-size: $zip is missing (make package builds it)" >&2
        status=1
        continue
    fi
    bytes=$(stat -c %s "$zip")
    printf '%-16s %10d %10d %5d%%\n' "$binary" "$bytes" "$budget" $((bytes * 100 / budget))
    if ((bytes > budget)); then
        echo "package-size: $binary is $bytes bytes, over its budget of $budget" >&2
        status=1
    fi
done
exit $status
