# Two commands matter: `make run` (the local stack) and `make test` (every test).
# Everything they need beyond the Rust toolchain, Python 3 and make is installed by the
# targets below into ignored folders of this checkout.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
LOCAL_DIR := .local
SANDBOX_PORT ?= 8601

.PHONY: help run test test-deps lint fmt bench clean-local

help:
	@echo "make run    - start the local stack on 127.0.0.1 (Alipay sandbox simulator, ...)"
	@echo "make test   - lint and run every test (unit, integration, doc)"
	@echo "make bench  - RSA2 benchmarks, compared with 'openssl speed' in the same run"
	@echo "make lint   - cargo fmt --check and clippy -D warnings"

run:
	$(CARGO) build -p alipay-sandbox
	@echo "Starting the Alipay sandbox simulator (keys and sandbox.json in $(LOCAL_DIR)/sandbox)."
	@echo "  gateway:  http://127.0.0.1:$(SANDBOX_PORT)/gateway.do"
	@echo "  web page: http://127.0.0.1:$(SANDBOX_PORT)/  (trades, QR codes, buyer buttons)"
	@echo "Not built yet: the merchant API host (functions on their routes) and the AWS emulator."
	$(CARGO) run -q -p alipay-sandbox -- --listen 127.0.0.1:$(SANDBOX_PORT) --keys-dir $(LOCAL_DIR)/sandbox

# Services and tools the tests start or drive themselves (each test starts and stops its
# own processes on 127.0.0.1).
test-deps:
	@./infra/scripts/test-deps.sh

test: lint test-deps
	$(CARGO) test --workspace --all-features --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p alipay --all-features --bench rsa2

clean-local:
	rm -rf $(LOCAL_DIR)
