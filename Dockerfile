# Multi-stage build: compile with the official Swift image, run on a slim Debian with only the
# runtime libraries, the shipped models and the web page.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas-dev libpng-dev zlib1g-dev libturbojpeg0-dev libwebp-dev pkgconf \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest first, so the dependency checkout is cached while only sources change.
# Package.resolve[d] copies the resolved file when the checkout has one and nothing otherwise.
COPY Package.swift Package.resolve[d] ./
RUN swift package resolve
# Package.swift declares the test targets: the manifest does not load without Tests/.
COPY Sources Sources
COPY Tests Tests
RUN swift build -c release --static-swift-stdlib --product jigsaw-server \
 && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/jigsaw-server" /usr/local/bin/jigsaw-server

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread libpng16-16 zlib1g libturbojpeg0 libwebp7 curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 jigsaw \
 && useradd --system --uid 10001 --gid 10001 --home-dir /srv --no-create-home --shell /usr/sbin/nologin jigsaw
WORKDIR /srv
COPY --from=build /usr/local/bin/jigsaw-server /usr/local/bin/jigsaw-server
COPY Models /srv/Models
COPY Public /srv/Public
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080
# A solve can keep both cores busy for a while: /healthz is allowed 10 s and five misses in a row
# before the container counts as unhealthy, so a busy server is not mistaken for a dead one.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=5 \
  CMD ["curl", "-fsS", "--max-time", "10", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["jigsaw-server", "--host", "0.0.0.0", "--port", "8080", "--models", "/srv/Models", "--public", "/srv/Public"]
