# The two commands of the README: `make demo` and `make test`.
# One target directory and one profile (release) for everything: the bundled DuckDB build is
# far too slow to compile twice.
export CARGO_TARGET_DIR ?= /var/tmp/databrain-target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/release/databrain
# Runtime needs: Vulkan on Mesa's lavapipe (CPU rendering), Chromium for the browser test,
# a CJK font for Chinese labels, Xvfb and xdotool for the planners' window test. Build needs: cmake, sqlite3 and its headers for the bundled
# PROJ 9.6 (Debian's PROJ 9.1 is too old for the proj crate). nasm: the H.264 encoder's SIMD (openh264 builds C only without it).
DEB_PACKAGES := mesa-vulkan-drivers libvulkan1 chromium fonts-noto-cjk cmake sqlite3 libsqlite3-dev python3-venv \
	xvfb xauth xdotool nasm
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

BENCH := $(CARGO_TARGET_DIR)/release/databrain-bench
# Every run below builds the same target set as `make build` (`--workspace --all-targets`,
# release), so none of them re-resolves features and restarts the bundled DuckDB build.
CARGO_ALL := $(CARGO) build --release --workspace --all-targets

# Python tools in a virtual environment of their own (outside the work tree, kept between runs).
VENV ?= /var/tmp/databrain-venv
# pyspark bundles Spark itself (the standalone master and workers of the Spark conformance
# test, and the driver `analytics::spark` starts); Java 17 is the machine's.
PY_PACKAGES := schemathesis==4.32.5 pyspark==4.0.1
export DATABRAIN_PYTHON ?= $(VENV)/bin/python

.PHONY: demo test deps build bless spark-cluster test-spark api-fuzz load-test bench-catalogue bench-policy bench-twin bench-stream bench-live bench-spark

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
	@[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	@$(VENV)/bin/python -c "import schemathesis, pyspark" 2>/dev/null || $(VENV)/bin/pip install -q $(PY_PACKAGES)
	@# The pages' libraries (ECharts), exactly as package-lock.json pins them; the server serves
	@# them from node_modules/ (never committed, never fetched at run time).
	@[ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error

# --all-targets builds what `cargo test` builds (dev-dependencies included), so that demo and
# test share one feature resolution and never rebuild each other's dependencies.
build:
	$(CARGO) build --release --workspace --all-targets

demo: deps build
	$(BIN) demo --addr 127.0.0.1:8080

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) test --release --workspace
	tests/fuzz/schemathesis.sh $(BIN) $(VENV) $(EXAMPLES)

# Schemathesis against the server's own OpenAPI description (bounded: EXAMPLES per operation).
EXAMPLES ?= 30
api-fuzz: deps
	$(CARGO_ALL) && tests/fuzz/schemathesis.sh $(BIN) $(VENV) $(EXAMPLES)

# The 60-second load test (200 clients, 8 viewers), as BENCHMARKS.md records it. The filter
# runs only that test, from the test binaries `make test` builds.
load-test: deps
	DATABRAIN_LOAD_SECONDS=$${DATABRAIN_LOAD_SECONDS:-60} $(CARGO) test --release --workspace -- \
		--exact two_hundred_clients_and_eight_viewers_get_no_errors --nocapture

# Benchmarks (the `databrain-bench` binary); each writes its section of BENCHMARKS.md.
# DB= names the database for the policy and stream benchmarks (default: the demo's).
DB ?= demo-data/databrain.duckdb
bench-catalogue: deps
	$(CARGO_ALL) && $(BENCH) catalogue $(ARGS)
bench-policy: deps
	$(CARGO_ALL) && $(BENCH) policy --db $(DB) $(ARGS)
# The twin benchmark compares loading with cjio (PyPI), in the same virtual environment.
CJIO := cjio==0.10.1
bench-twin: deps
	@$(VENV)/bin/python -c "import cjio" 2>/dev/null || $(VENV)/bin/pip install -q $(CJIO)
	$(CARGO_ALL) && $(BENCH) twin --python $(VENV)/bin/python $(ARGS)
bench-stream: deps
	$(CARGO_ALL) && $(BENCH) stream --db $(DB) $(ARGS)
# Writes to DB: give it a copy.
bench-live: deps
	$(CARGO_ALL) && $(BENCH) live --db $(DB) $(ARGS)
# Starts its own two-worker Spark cluster on loopback; samples and histories in bench-data/.
bench-spark: deps
	$(CARGO_ALL) && $(BENCH) spark --python $(DATABRAIN_PYTHON) $(ARGS)

# The Spark conformance test (every indicator, level and grain on DuckDB and on a two-worker
# cluster it starts itself), alone. `make test` runs it too: about 13 minutes on 2 cores.
test-spark: deps
	$(CARGO) test --release --workspace -- --exact every_indicator_agrees_on_duckdb_and_a_two_worker_spark_cluster --nocapture

# A Spark standalone cluster on loopback (a master and two workers, separate processes) for
# `--engine spark://127.0.0.1:PORT`; it prints the master's URL and runs until Ctrl-C.
spark-cluster: deps
	$(CARGO_ALL) && $(BIN) spark-cluster --workers 2 --python $(DATABRAIN_PYTHON)

# Re-bless the golden images after a reviewed rendering change: the scenes (tests/golden/*.png)
# and the pages at 1920x1080 and 3840x2160 (tests/golden/pages/*.png, also the README's).
bless: deps
	DATABRAIN_BLESS=1 $(CARGO) test --release --workspace -- --exact scenes_match_their_golden_images \
		the_wall_shows_the_apis_numbers_at_1080p_and_4k the_analyst_page_drills_down_and_its_charts_are_the_apis_numbers \
		the_planner_and_the_task_board_match_their_golden_images
