# Multi-stage build: compile with the official Swift image, run on a slim Debian with only the
# runtime libraries, the shipped models and the web page.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas-dev libpng-dev zlib1g-dev libturbojpeg0-dev libwebp-dev pkgconf \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
RUN swift package resolve
COPY Sources Sources
RUN swift build -c release --static-swift-stdlib --product jigsaw-server \
 && cp "$(swift build -c release --static-swift-stdlib --show-bin-path)/jigsaw-server" /usr/local/bin/jigsaw-server

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0-pthread libpng16-16 zlib1g libturbojpeg0 libwebp7 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin jigsaw
WORKDIR /srv
COPY --from=build /usr/local/bin/jigsaw-server /usr/local/bin/jigsaw-server
COPY Models /srv/Models
COPY Public /srv/Public
USER jigsaw
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["jigsaw-server", "--host", "0.0.0.0", "--port", "8080", "--models", "/srv/Models", "--public", "/srv/Public"]
