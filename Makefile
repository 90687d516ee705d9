# Two commands matter: `make run` (the local stack) and `make test` (every test).
# Everything they need beyond the Rust toolchain, Python 3 and make is installed by the
# targets below into ignored folders of this checkout.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
LOCAL_DIR := .local
API_PORT ?= 8600
SANDBOX_PORT ?= 8601
MOTO_PORT ?= 8602

.PHONY: help run demo test test-deps lint lint-template package fmt bench bench-stack bench-init chaos schemathesis fuzz fuzz-smoke model-check clean-local

help:
	@echo "make run    - start the local stack on 127.0.0.1 (merchant API :$(API_PORT), Alipay sandbox :$(SANDBOX_PORT), AWS emulator :$(MOTO_PORT))"
	@echo "make demo   - a scripted tour of the stack started by 'make run' (in another shell): QR, expiry, barcode, duplicate, refund, reconciliation"
	@echo "make test   - lint and run every test (unit, integration, doc, end-to-end, model check, schemathesis, chaos) and the fuzz smoke"
	@echo "make schemathesis - the schema-driven API test of 'make test' (schemathesis against a local stack of its own) with $(SCHEMATHESIS_MAX_EXAMPLES) cases per operation and phase instead of 30"
	@echo "make bench  - RSA2 benchmarks (vs 'openssl speed' in the same run), the notification flood, bill parse-and-match (vs the parser alone), then bench-stack"
	@echo "make chaos  - the fault run: CHAOS_PAYMENTS (default $(CHAOS_PAYMENTS)) payments of every kind against the local stack while the Alipay sandbox and the AWS emulator fail at random; every order must end as Alipay says, every event be published once, nothing be stuck; prints the counts"
	@echo "make bench-stack - the local stack's create rate, compared with moto's raw write rate in the same run, its business events rate, and reconciliation (read units per 1,000 orders, a 100,000-row day end to end)"
	@echo "make fuzz   - every fuzz target (shared/fuzz, cargo-fuzz on nightly) for FUZZ_SECONDS each (default $(FUZZ_SECONDS)); FUZZ_TARGETS=... for some"
	@echo "             FUZZ_RUNS=N stops each after N executions; FUZZ_TRACE_COMPARES=0 builds without comparison tracing (faster long runs)"
	@echo "make fuzz-smoke - every fuzz target for $(FUZZ_SMOKE_SECONDS) s: they build, and their seeds and a short run find nothing"
	@echo "make model-check - the order state machine model-checked: 10 000 generated interleavings of the real handlers against a model of Alipay (release mode; MODEL_CASES for more)"
	@echo "make bench-init - cold starts: each function's release binary against a local Lambda Runtime API and the AWS emulator, init and first invocation next to a bare lambda_runtime hello-world in the same run"
	@echo "make lint   - cargo fmt --check and clippy -D warnings"
	@echo "make lint-template - template.yaml through the SAM translator and cfn-lint (sam validate --lint), offline, no AWS credentials"
	@echo "make package - every function's deployment ZIP for arm64 as sam build makes it (cargo lambda, no Docker), checked against its size budget"

# The whole stack in one process tree: moto (from the venv, installed here if missing), the
# Alipay sandbox simulator and the merchant API functions on their API Gateway routes.
# Ctrl-C stops it all.
run:
	@./infra/scripts/test-deps.sh moto
	$(CARGO) build -q -p local-stack -p payments-cli
	$(CARGO) run -q -p local-stack -- --port $(API_PORT) --sandbox-port $(SANDBOX_PORT) \
		--moto-port $(MOTO_PORT) --local-dir $(LOCAL_DIR)

# A scripted tour of the running stack (`make run` in another shell), described by
# $(LOCAL_DIR)/stack.json: each step printed, a non-zero exit at the first unexpected outcome.
# It moves the sandbox's clock to the next day for the bill: restart the stack afterwards.
demo:
	@test -f $(LOCAL_DIR)/stack.json || { echo "make demo: no running stack ($(LOCAL_DIR)/stack.json is missing). Start it with 'make run' in another shell, wait for 'Local stack ready', then run 'make demo'." >&2; exit 1; }
	$(CARGO) run -q -p payments-cli -- demo --stack $(LOCAL_DIR)/stack.json

# Services and tools the tests start or drive themselves (each test starts and stops its
# own processes on 127.0.0.1).
test-deps:
	@./infra/scripts/test-deps.sh

# The suite is built once per run, so cargo's incremental caches would only add to the disk a
# clean checkout needs (they hold another copy of every workspace crate's code); a CI machine
# ran out of disk with them. `cargo test` by hand keeps them.
test: export CARGO_INCREMENTAL ?= 0
test: lint lint-template test-deps
	$(CARGO) test --workspace --all-features --no-fail-fast
	$(MAKE) fuzz-smoke

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# The SAM CLI (pinned, in .local/sam-venv) checks the template offline: `sam validate` runs the
# SAM translator and `--lint` runs cfn-lint (each misses what the other finds). A region is
# required but never called; no credentials, no Docker.
lint-template:
	@./infra/scripts/sam-deps.sh
	SAM_CLI_TELEMETRY=0 $(LOCAL_DIR)/sam-venv/bin/sam validate --region us-east-1 --template template.yaml
	SAM_CLI_TELEMETRY=0 $(LOCAL_DIR)/sam-venv/bin/sam validate --lint --region us-east-1 --template template.yaml

# The deployment packages as `sam build` makes them (its rust-cargolambda method runs cargo
# lambda; Zig cross-links for arm64, no Docker), each checked against its budget in
# infra/package-size-budget.txt. Not part of `make test`: a cold arm64 release build of every
# function takes longer than the rest of the suite on a 2-core machine.
FUNCTIONS := $(shell awk '$$1 == "Binary:" { print $$2 }' template.yaml)
package:
	@./infra/scripts/sam-deps.sh
	PATH="$(CURDIR)/$(LOCAL_DIR)/sam-venv/bin:$$PATH" cargo-lambda lambda build --release --arm64 \
		--output-format zip $(addprefix --bin ,$(FUNCTIONS))
	./infra/scripts/package-size.sh

fmt:
	$(CARGO) fmt --all

# The schema-driven test of `make test` (tests/e2e/tests/schemathesis.rs: schemathesis against
# a local stack of its own) with many more generated requests; its report is printed.
SCHEMATHESIS_MAX_EXAMPLES ?= 1000
schemathesis:
	@./infra/scripts/test-deps.sh moto schemathesis
	SCHEMATHESIS_MAX_EXAMPLES=$(SCHEMATHESIS_MAX_EXAMPLES) $(CARGO) test -p e2e-tests --test schemathesis -- --nocapture

# The cargo-fuzz targets of shared/fuzz (libFuzzer, AddressSanitizer; the nightly toolchain,
# cargo-fuzz installed by test-deps.sh), one after the other, each with its committed seeds
# and what earlier runs found (.local/fuzz/corpus). A crash, timeout, leak or out-of-memory
# fails the target, its input in shared/fuzz/artifacts/<target>/.
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_TARGETS ?=
fuzz:
	./shared/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke:
	FUZZ_DEV=1 ./shared/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

# The fault run of tests/chaos with a batch of CHAOS_PAYMENTS (`make test` runs 36);
# CHAOS_SEED picks another draw.
CHAOS_PAYMENTS ?= 240
chaos:
	@./infra/scripts/test-deps.sh moto
	CHAOS_PAYMENTS=$(CHAOS_PAYMENTS) $(CARGO) test -p chaos-tests --test chaos -- --nocapture

bench:
	$(CARGO) bench -p alipay --all-features --bench rsa2
	$(CARGO) bench -p alipay --bench notify_flood
	$(CARGO) bench -p notify --bench notify_cpu
	$(CARGO) bench -p reconcile --bench reconcile_match
	$(MAKE) bench-stack

# The order state machine model-checked (tests/model): MODEL_CASES generated scripts of
# concurrent requests, notifications, expiries, crashes and Alipay's nondeterminism against the
# real handlers, the invariants checked after every step. `make test` runs 256 of them in debug.
# Seeded (PROPTEST_RNG_SEED to vary); a failure is shrunk and kept in
# tests/model/tests/state_machine.proptest-regressions.
MODEL_CASES ?= 10000
model-check:
	PROPTEST_CASES=$(MODEL_CASES) $(CARGO) test --release -p model-check --test state_machine -- --nocapture

# QR creates through the stack of `make run` (8 clients) on an empty table and on 10 000
# orders, each next to moto's raw conditional-PutItem rate measured in the same run; then
# business events published per second from a backlog of the table's stream; then the
# DynamoDB read units of a day's reconciliation per 1,000 orders, and a 100,000-row day from
# the bill's upload to its report (next to its query and matching alone, in the same run).
bench-stack:
	@./infra/scripts/test-deps.sh moto
	$(CARGO) bench -p local-stack --bench stack_throughput
	$(CARGO) bench -p local-stack --bench events_throughput
	$(CARGO) bench -p local-stack --bench reconcile_stack
	$(CARGO) bench -p admin --bench console_pages

# Cold starts (15 interleaved rounds; BENCH_INIT_ROUNDS for more): exec to the first
# `GET /runtime/invocation/next` and the first invocation of every function's release binary,
# each with its ratio to a bare lambda_runtime hello-world measured in the same run, and the
# Secrets Manager round trips of init on their own. The Alipay gateway is a closed port.
# Run twice: with the machine's certificate store as it is, then with one bundle file.
CERT_BUNDLE := $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem))
bench-init:
	@./infra/scripts/test-deps.sh moto
	$(CARGO) build --release -p pay -p query -p notify -p timeout-close -p bill-fetch \
		-p reconcile -p publish-events -p admin
	$(CARGO) bench -p bench-init --bench init
	@echo "The same, the functions trusting the store SSL_CERT_FILE=$(CERT_BUNDLE) names instead of their bundled roots (read at init, as on Amazon Linux 2023):"
	BENCH_INIT_CERT_BUNDLE=$(CERT_BUNDLE) $(CARGO) bench -p bench-init --bench init

clean-local:
	rm -rf $(LOCAL_DIR)
