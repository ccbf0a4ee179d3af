# Build, test and serve. Every target installs the system packages it needs when they are missing.
SWIFT      ?= swift
PORT       ?= 8080
HOST       ?= 0.0.0.0
APT_PKGS   := libopenblas-dev libpng-dev zlib1g-dev pkgconf
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build release test serve bench clean

deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The suite runs in release mode: the numerical tests (brute-force assignment, finite differences,
# small training runs) would take many times longer in a debug build.
test: deps
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build

serve: release
	$(SWIFT) run -c release --skip-build jigsaw-server --host $(HOST) --port $(PORT) --models Models --public Public

bench: release
	$(SWIFT) run -c release --skip-build sinkhorn-bench

clean:
	rm -rf .build
