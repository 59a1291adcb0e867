# Accumen build, test and run targets. `make help` lists them.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
CONFIG ?= config/local.yaml

.PHONY: help build build-release test lint fmt bench run-sequencer run-follower clean stress

help:
	@echo "make build          debug build of the node and libraries"
	@echo "make build-release  optimized build; the binary lands at bin/accumen"
	@echo "make test           every unit, property and whole-node test"
	@echo "make lint           rustfmt check and clippy with warnings as errors"
	@echo "make fmt            format the code"
	@echo "make bench          criterion benchmarks (engine, storage, tx)"
	@echo "make run-sequencer  run a sequencer on $(CONFIG) (in-memory storage, bridge off)"
	@echo "make run-follower   follow that sequencer on $(FOLLOWER_CONFIG) (ports 8090-8092)"

build:
	$(CARGO) build --workspace

build-release:
	$(CARGO) build --release -p accumen --bin accumen
	mkdir -p bin
	cp $(TARGET_DIR)/release/accumen bin/accumen

# nextest runs every test in its own process and ends with one summary line; plain cargo test
# is the fallback where nextest is not installed.
test:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench -p accumen-actors

run-sequencer: build
	$(TARGET_DIR)/debug/accumen --role=sequencer --config=$(CONFIG)

# Follows the local sequencer (`make run-sequencer`, config/local.yaml) on 8090-8092. The local
# sequencer's key is ephemeral, so it is read from its /v1/chain and pinned for this run
# (development only: a production follower pins follower.sequencer_key in its config).
FOLLOWER_CONFIG ?= config/follower-local.yaml
SEQUENCER_API ?= http://127.0.0.1:8080
run-follower: build
	ACCUMEN_FOLLOWER__SEQUENCER_API=$(SEQUENCER_API) \
	ACCUMEN_FOLLOWER__SEQUENCER_KEY=$$(curl -sf $(SEQUENCER_API)/v1/chain | sed -n 's/.*"sequencer":"\([0-9a-f]*\)".*/\1/p') \
	$(TARGET_DIR)/debug/accumen --role=follower --config=$(FOLLOWER_CONFIG)

clean:
	$(CARGO) clean
	rm -rf bin

# Load test against a running node (release build recommended): make stress API=http://127.0.0.1:8080
API ?= http://127.0.0.1:8080
stress:
	$(CARGO) run --release --bin accumen-stress -- --api $(API)
