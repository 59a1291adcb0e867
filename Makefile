# Accumen build, test and run targets. `make help` lists them.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
CONFIG ?= config/local.yaml

.PHONY: help build build-release test lint fmt bench bench-limits run-sequencer run-follower run-devnet clean stress perf fuzz crash-loop

help:
	@echo "make build          debug build of the node and libraries"
	@echo "make build-release  optimized build; the binary lands at bin/accumen"
	@echo "make test           every unit, property and whole-node test"
	@echo "make lint           rustfmt check and clippy with warnings as errors"
	@echo "make fmt            format the code"
	@echo "make bench          criterion benchmarks (engine, storage, tx)"
	@echo "make bench-limits   the bare-pipeline limit: per-stage cost and tx/s ceiling (2 cores)"
	@echo "make fuzz           coverage-guided fuzzing, FUZZ_SECONDS per target (needs cargo-fuzz)"
	@echo "make run-sequencer  run a sequencer on $(CONFIG) (in-memory storage, bridge off)"
	@echo "make run-devnet     a local L0 stand-in (devnet-l0) and a sequencer anchoring to it"
	@echo "make run-follower   follow that sequencer on $(FOLLOWER_CONFIG) (ports 8090-8092)"
	@echo "make stress         load test a running node: API=URL STRESS_ARGS=\"--duration 60s --rate 25000\""
	@echo "make perf           start a node on config/perf.yaml, load it, print tx/s, latency, RSS (deploy/perf-run.sh)"
	@echo "make crash-loop     SIGKILL a loaded sequencer CRASH_ROUNDS times, check nothing acknowledged is lost (deploy/crash-loop.sh)"

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

# The bare-pipeline limit (actors/benches/limits.rs): decode, signature checks, one contract call
# and a durable commit, each alone; prints a table and `bare-pipeline ceiling: N tx/s (2 cores)`.
# BENCH_ARGS=--json adds a machine-readable line. Never part of `make test`.
BENCH_ARGS ?=
bench-limits:
	$(CARGO) bench -p accumen-actors --bench limits -- $(BENCH_ARGS)

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

# A local L0 (accumen devnet-l0 on 127.0.0.1:26660, state in data/devnet/l0) and a sequencer on
# config/devnet.yaml anchoring to it. The L0 key is made once (data/devnet/l0.key; its public
# key is kept in l0.key.json, the output of `key generate`). Ctrl-C stops both, the sequencer
# first (devnet-l0 runs in its own session where setsid exists, so the terminal's SIGINT does not
# reach it): the sequencer's stop can still confirm its last anchors, then devnet-l0 saves.
DEVNET_DIR := data/devnet
DEVNET_KEY := $(DEVNET_DIR)/l0.key
run-devnet: build
	@mkdir -p $(DEVNET_DIR)
	@if [ ! -f $(DEVNET_KEY) ]; then \
		$(TARGET_DIR)/debug/accumen key generate --out $(DEVNET_KEY) > $(DEVNET_KEY).json || exit 1; \
	fi
	@pk=$$(sed -n 's/.*"public_key": *"\([0-9a-f]\{64\}\)".*/\1/p' $(DEVNET_KEY).json 2>/dev/null); \
	if [ -z "$$pk" ]; then \
		echo "no public key in $(DEVNET_KEY).json: remove $(DEVNET_KEY) and run make run-devnet again"; \
		exit 1; \
	fi; \
	own=$$(command -v setsid); \
	$$own $(TARGET_DIR)/debug/accumen devnet-l0 --listen 127.0.0.1:26660 --control 127.0.0.1:26661 \
		--key-page acc://accumen.acme/book/1 --public-key $$pk \
		--data-account acc://accumen.acme/anchors --data-dir $(DEVNET_DIR)/l0 & l0=$$!; \
	$(TARGET_DIR)/debug/accumen --role=sequencer --config=config/devnet.yaml & seq=$$!; \
	trap 'kill -INT $$seq 2>/dev/null' INT TERM; \
	wait $$seq; rc=$$?; \
	while kill -0 $$seq 2>/dev/null; do wait $$seq; rc=$$?; done; \
	kill -INT $$l0 2>/dev/null; wait $$l0; exit $$rc

clean:
	$(CARGO) clean
	rm -rf bin

# Load test against a running node (release build recommended), e.g.
#   make stress API=http://127.0.0.1:8080 STRESS_ARGS="--duration 60s --rate 25000"
# (flags: accumen-stress --help; RUNBOOK "Load testing").
API ?= http://127.0.0.1:8080
STRESS_ARGS ?=
stress:
	$(CARGO) run --release --bin accumen-stress -- --api $(API) $(STRESS_ARGS)

# One whole benchmark run (RUNBOOK "Performance"): a fresh sequencer on config/perf.yaml
# (persistent storage, mempool.persist), accumen-stress, RSS sampling; variables pass through
# (STRESS_ARGS, BLOCK_TIME, MODE=mem, PROFILE).
perf:
	deploy/perf-run.sh

# Coverage-guided fuzzing (cargo-fuzz + libFuzzer; not part of `make test` or CI, see RUNBOOK.md
# "Fuzzing"): every target of fuzz/ for FUZZ_SECONDS, from the repo corpus
# (actors/fuzz-corpus/<target>/, read only); new inputs go to FUZZ_WORK, crashes to
# fuzz/artifacts/. No sanitizer (safe Rust; it would only slow the runs). RUSTC_BOOTSTRAP=1: the
# instrumentation flags cargo-fuzz passes are nightly-only flags.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= tx_binary tx_json block_binary l0_answer wasm wasm_smith
FUZZ_WORK ?= $(abspath $(TARGET_DIR))/fuzz-work
FUZZ_FLAGS = -O -a -s none --target-dir $(abspath $(TARGET_DIR))/fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "needs cargo-fuzz: cargo install cargo-fuzz --locked"; exit 1; }
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build $(FUZZ_FLAGS)
	@for t in $(FUZZ_TARGETS); do \
		corpus=$$(echo $$t | tr _ -); mkdir -p $(FUZZ_WORK)/$$t; \
		echo "== $$t ($(FUZZ_SECONDS) s)"; \
		(cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $(FUZZ_FLAGS) $$t $(FUZZ_WORK)/$$t \
			../actors/fuzz-corpus/$$corpus -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 \
			-print_final_stats=1) || exit 1; \
	done

# The crash loop (RUNBOOK "Crash-safety check"): a sequencer on config/devnet.yaml with a local
# devnet-l0, loaded by accumen-stress and SIGKILLed at a random point CRASH_ROUNDS times; db
# check, restart and the acknowledged-transaction check after each kill. CRASH_PROFILE picks the
# cargo profile (bench: release optimizations without LTO; dev for a debug build); the script's
# variables (RATE, SENDERS, CONTRACTS, BATCH, KILL_MIN, KILL_MAX, BLOCK_TIME, DRAIN, SEED, KEEP)
# pass through. Not part of `make test` (about half an hour for 50 rounds); CI runs 3 rounds.
CRASH_PROFILE ?= bench
CRASH_ROUNDS ?= 50
CRASH_DIR = $(TARGET_DIR)/$(if $(filter dev test,$(CRASH_PROFILE)),debug,release)
crash-loop:
	$(CARGO) build --profile $(CRASH_PROFILE) --bin accumen --bin accumen-stress --bin accumen-crash-check
	deploy/crash-loop.sh $(CRASH_DIR)/accumen $(CRASH_ROUNDS)
