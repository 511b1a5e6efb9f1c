# The two commands of the README: `make demo` and `make test`.
# One target directory and one profile (release) for everything: the bundled DuckDB build is
# far too slow to compile twice.
export CARGO_TARGET_DIR ?= /var/tmp/databrain-target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/release/databrain
# Runtime needs: Vulkan on Mesa's lavapipe (CPU rendering), Chromium for the browser test,
# a CJK font for Chinese labels, Xvfb and xdotool for the planners' window test. Build needs: cmake, sqlite3 and its headers for the bundled
# PROJ 9.6 (Debian's PROJ 9.1 is too old for the proj crate).
DEB_PACKAGES := mesa-vulkan-drivers libvulkan1 chromium fonts-noto-cjk cmake sqlite3 libsqlite3-dev \
	xvfb xauth xdotool
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test deps build bless

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

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

# Re-bless the golden images after a reviewed rendering change (tests/golden/*.png).
bless: deps
	DATABRAIN_BLESS=1 $(CARGO) test --release --workspace --test golden
