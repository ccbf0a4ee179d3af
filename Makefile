# Build, test and serve. Every target installs the system packages it needs when they are missing.
SWIFT      ?= swift
PORT       ?= 8080
HOST       ?= 0.0.0.0
APT_PKGS   := libopenblas-dev libpng-dev zlib1g-dev libturbojpeg0-dev libwebp-dev pkgconf
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps browser-deps redis-deps build release test browser-test serve bench clean

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

# The browser test (Tests/Browser/run.py) drives headless Chromium from Debian's chromium package,
# installed when missing; when it cannot be installed the test prints why and is skipped.
browser-deps:
	@command -v python3 >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3; }
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing chromium for the browser test"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium \
			|| echo "could not install chromium: the browser test will be skipped"; }

# The shared-store tests (Tests/RESPTests, Tests/PuzzleServiceTests/Redis*) start their own
# redis-server from Debian's redis-server package on a free loopback port, installed when missing;
# when it cannot be installed they are skipped with the reason printed. The Debian package may
# also start a system-wide server on port 6379: the tests neither need nor touch it.
redis-deps:
	@command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || [ -x /usr/sbin/redis-server ] || { \
		echo "installing redis-server for the shared-store tests"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server \
			|| echo "could not install redis-server: the Redis tests will be skipped"; }

# The suite runs in release mode: the numerical tests (brute-force assignment, finite differences,
# small training runs) would take many times longer in a debug build.
test: deps browser-deps redis-deps
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build
	python3 Tests/Browser/run.py --server .build/release/jigsaw-server

browser-test: deps browser-deps
	$(SWIFT) build -c release --product jigsaw-server
	python3 Tests/Browser/run.py --server .build/release/jigsaw-server --screenshot docs/screenshot.png

serve: release
	$(SWIFT) run -c release --skip-build jigsaw-server --host $(HOST) --port $(PORT) --models Models --public Public

bench: release
	$(SWIFT) run -c release --skip-build sinkhorn-bench

clean:
	rm -rf .build
