#!/usr/bin/env bash
# Replays the Dockerfile without a container engine (see deploy/README.md).
#
#   deploy/verify.sh [all|build|bootstrap|rootfs|run|lb]
#
#   build   the build stage: the files the Dockerfile copies (after .dockerignore) in a new
#           directory, then the stage's RUN commands there (a full release build)
#   bootstrap  only the debootstrap of the rootfs step (it can run while the build does)
#   rootfs  the runtime stage: a minimal Debian root filesystem (debootstrap --variant=minbase),
#           the final stage's RUN commands inside it (chroot), its COPY steps and the binary
#   run     starts the entrypoint inside the root filesystem as the image's user (chroot, with
#           /proc mounted in a private mount namespace as a container runtime does), checks ldd,
#           /healthz, /readyz, the image's HEALTHCHECK command, one solve, then SIGTERM
#   lb      two replicas as in run behind the host's nginx with deploy/nginx/nginx.conf
#   all     build, rootfs and run in order (the default)
#
# Environment: WORK (where everything is made; default ${TMPDIR:-/tmp}/jigsaw-deploy-proof),
# PORT (loopback port of the run step; default 18080), SUITE (default bookworm), MIRROR (the
# Debian mirror; default the first one in the apt sources), NICE (niceness of the build; 10),
# KEEP_ROOTFS_BASE=1 reuses a root filesystem bootstrapped before.
# Needs root (debootstrap, chroot, unshare, mount), python3, curl, debootstrap and the host packages of the
# build stage's apt-get line (checked, since here they stand in for the build image's own).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
STEPS="python3 $REPO/deploy/dockerfile_steps.py --dockerfile $REPO/Dockerfile"
WORK="${WORK:-${TMPDIR:-/tmp}/jigsaw-deploy-proof}"
PORT="${PORT:-18080}"
SUITE="${SUITE:-bookworm}"
NICE="${NICE:-10}"
BUILD_ROOT="$WORK/build-root"
ROOTFS_BASE="$WORK/rootfs-base"
ROOTFS="$WORK/rootfs"
mkdir -p "$WORK"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

default_mirror() {
    local uri
    uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]*/debian/?( |$)' | head -n1 | tr -d ' ')"
    echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${MIRROR:-$(default_mirror)}"

build_stage() {
    local start step_start packages missing=() p
    start=$(date +%s)
    log "build stage: base image $($STEPS get build from); its apt-get line is checked against this host"
    packages="$($STEPS apt-packages build)"
    for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing on the host: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    log "swift: $(swift --version 2>&1 | head -n1)"
    rm -rf "$BUILD_ROOT"
    mkdir -p "$BUILD_ROOT"
    $STEPS copy build "$REPO" "$BUILD_ROOT"
    local workdir
    workdir="$BUILD_ROOT$($STEPS get build workdir)"
    log "context copied to $workdir: $(find "$workdir" -type f | wc -l) files, $(du -sh "$workdir" | cut -f1)"
    while IFS= read -r command; do
        case "$command" in *apt-get*) continue ;; esac
        # Absolute paths of the image map into the build root.
        command="${command//\/usr\/local\/bin\//$BUILD_ROOT/usr/local/bin/}"
        step_start=$(date +%s)
        log "RUN $command"
        (cd "$workdir" && nice -n "$NICE" bash -euo pipefail -c "$command")
        log "RUN done in $(elapsed "$step_start")"
    done < <($STEPS runs build)
    local binary="$BUILD_ROOT/usr/local/bin/jigsaw-server"
    log "binary: $(du -h "$binary" | cut -f1) $(file -b "$binary" 2>/dev/null | cut -d, -f1-2 || true)"
    log "build stage done in $(elapsed "$start")"
}

bootstrap_stage() {
    local step_start
    if [ "${KEEP_ROOTFS_BASE:-0}" = 1 ] && [ -x "$ROOTFS_BASE/bin/sh" ]; then
        log "reusing $ROOTFS_BASE"
        return
    fi
    rm -rf "$ROOTFS_BASE"
    step_start=$(date +%s)
    log "debootstrap --variant=minbase $SUITE from $MIRROR"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS_BASE" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log"; exit 1; }
    log "debootstrap done in $(elapsed "$step_start"): $(du -sh "$ROOTFS_BASE" | cut -f1)"
}

rootfs_stage() {
    local start step_start
    start=$(date +%s)
    bootstrap_stage
    rm -rf "$ROOTFS"
    cp -a "$ROOTFS_BASE" "$ROOTFS"
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    while IFS= read -r command; do
        step_start=$(date +%s)
        log "RUN (chroot) $command"
        chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            /bin/sh -c "$command" > "$WORK/rootfs-run.log" 2>&1 || { tail -n 20 "$WORK/rootfs-run.log"; exit 1; }
        log "RUN done in $(elapsed "$step_start")"
    done < <($STEPS runs -1)
    $STEPS copy -1 "$REPO" "$ROOTFS"
    local from source destination
    while read -r from source destination; do
        [ "$from" = build ] || { echo "COPY --from=$from is not replayed" >&2; exit 1; }
        install -D -m 0755 "$BUILD_ROOT$source" "$ROOTFS$destination"
        log "COPY --from=build $source -> $destination"
    done < <($STEPS from-copies -1)
    log "runtime packages: $($STEPS apt-packages -1)"
    local total cache
    total="$(du -sm "$ROOTFS" | cut -f1)"
    cache="$(du -sm "$ROOTFS/var/cache/apt" | cut -f1)"
    log "root filesystem: ${total} MB, $((total - cache)) MB without apt's package cache (which the slim image does not keep); bootstrap alone: $(du -sm "$ROOTFS_BASE" | cut -f1) MB"
    log "rootfs stage done in $(elapsed "$start")"
}

# Runs a command inside the root filesystem as USER:GROUP, the root filesystem read-only with a
# tmpfs /tmp (as the Kubernetes Deployment and the compose file run it), /proc and a read-only
# /sys, as a container runtime provides them (without /proc the server sees none of its options;
# the processor count comes from /proc and /sys). The mounts live in a private mount namespace and
# go away with the process, which keeps its pid.
in_rootfs=(unshare --mount --propagation private /bin/sh -c
    'root="$0"; user="$1"; shift
     mount --bind "$root" "$root" && mount -o remount,bind,ro "$root" &&
     mount -t tmpfs -o size=64m tmpfs "$root/tmp" &&
     mount -t proc proc "$root/proc" && mount -t sysfs -o ro sysfs "$root/sys" &&
     exec chroot --userspec="$user" --groups="${user#*:}" "$root" "$@"'
    "$ROOTFS")

run_stage() {
    local user workdir healthcheck=() entrypoint=() server_pid code
    user="$($STEPS get -1 user)"
    workdir="$($STEPS get -1 workdir)"
    mapfile -t entrypoint < <($STEPS get -1 entrypoint)
    mapfile -t healthcheck < <($STEPS get -1 healthcheck)
    local binary="/usr/local/bin/${entrypoint[0]}"

    log "ldd $binary inside the root filesystem:"
    chroot "$ROOTFS" ldd "$binary" | tee "$WORK/ldd.txt"
    if grep -q 'not found' "$WORK/ldd.txt"; then echo "missing libraries" >&2; exit 1; fi

    if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then echo "port $PORT is taken: set PORT" >&2; exit 1; fi
    # The image listens on 0.0.0.0:8080; here, on the host's network, loopback and PORT instead
    # (a repeated option takes its last value).
    log "starting as $user in $workdir: ${entrypoint[*]} --host 127.0.0.1 --port $PORT"
    "${in_rootfs[@]}" "$user" /usr/bin/env -i HOME="$workdir" PATH=/usr/local/bin:/usr/bin:/bin \
        /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" \
        "${entrypoint[@]}" --host 127.0.0.1 --port "$PORT" > "$WORK/server.log" 2>&1 &
    server_pid=$!
    trap 'kill -TERM '"$server_pid"' 2>/dev/null || true' EXIT
    local started
    started=$(date +%s)
    until grep -q 'listening on' "$WORK/server.log"; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
        [ $(( $(date +%s) - started )) -lt 120 ] || { echo "no listening line after 120 s" >&2; exit 1; }
        sleep 0.2
    done
    log "listening after $(elapsed "$started"): $(grep 'listening on' "$WORK/server.log")"
    log "process: $(grep -E '^(Uid|Gid):' "/proc/$server_pid/status" | tr -s '\t ' ' ' | tr '\n' ' ')"
    log "root filesystem as the server sees it: $("${in_rootfs[@]}" "$user" /bin/sh -c 'grep " / " /proc/mounts')"

    log "GET /healthz: $(curl -fsS "http://127.0.0.1:$PORT/healthz")"
    log "GET /readyz: $(curl -fsS "http://127.0.0.1:$PORT/readyz" | head -c 300)"
    local check=("${healthcheck[@]/:8080/:$PORT}")
    log "HEALTHCHECK inside the root filesystem as $user: ${check[*]}"
    "${in_rootfs[@]}" "$user" "${check[@]}"
    echo

    local sample puzzle
    sample="$(curl -fsS "http://127.0.0.1:$PORT/v1/samples/0?model=mnist-3x3")"
    puzzle="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["links"]["scrambled"])' "$sample")"
    curl -fsS -o "$WORK/scrambled.png" "http://127.0.0.1:$PORT$puzzle"
    log "POST /v1/solve?model=mnist-3x3 with $puzzle ($(stat -c %s "$WORK/scrambled.png") bytes):"
    local status
    status="$(curl -fsS -H 'Content-Type: image/png' --data-binary "@$WORK/scrambled.png" -o "$WORK/solve.json" \
        -w 'HTTP %{http_code} in %{time_total}s' "http://127.0.0.1:$PORT/v1/solve?model=mnist-3x3")"
    python3 -c 'import json, sys
answer = json.load(open(sys.argv[1]))
sample = json.loads(sys.argv[2])
print("  permutation", answer["permutation"], "(the sample was solved as", sample["permutation"], "),",
      "model", answer["model"], "|", sys.argv[3])' "$WORK/solve.json" "$sample" "$status"

    log "server memory after the solve: $(grep -E '^VmRSS' "/proc/$server_pid/status" | tr -s '\t ' ' ')"
    log "SIGTERM"
    kill -TERM "$server_pid"
    code=0
    wait "$server_pid" || code=$?
    trap - EXIT
    log "server exited with status $code; its last lines:"
    tail -n 3 "$WORK/server.log"
}

# The compose file's load balancer in front of two replicas: both started in the root filesystem
# as in run, nginx (the host's, Debian's nginx-light as in deploy/nginx/Dockerfile) with
# deploy/nginx/nginx.conf, its replica names and port replaced by loopback ports.
lb_stage() {
    command -v nginx >/dev/null || { echo "nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
    local user workdir entrypoint=() pids=() n port lb_port=$((PORT + 10)) conf="$WORK/lb"
    user="$($STEPS get -1 user)"
    workdir="$($STEPS get -1 workdir)"
    mapfile -t entrypoint < <($STEPS get -1 entrypoint)
    rm -rf "$conf"; mkdir -p "$conf"
    trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
    for n in 1 2; do
        port=$((PORT + n))
        "${in_rootfs[@]}" "$user" /usr/bin/env -i HOME="$workdir" PATH=/usr/local/bin:/usr/bin:/bin \
            /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" \
            "${entrypoint[@]}" --host 127.0.0.1 --port "$port" > "$conf/jigsaw-$n.log" 2>&1 &
        pids+=($!)
    done
    sed -e "s/server jigsaw-1:8080/server 127.0.0.1:$((PORT + 1))/" \
        -e "s/server jigsaw-2:8080/server 127.0.0.1:$((PORT + 2))/" \
        -e "s/listen 8080;/listen 127.0.0.1:$lb_port;/" \
        -e "s|/tmp/|$conf/|" "$REPO/deploy/nginx/nginx.conf" > "$conf/nginx.conf"
    for n in 1 2; do
        until grep -q 'listening on' "$conf/jigsaw-$n.log"; do
            kill -0 "${pids[$((n - 1))]}" 2>/dev/null || { cat "$conf/jigsaw-$n.log"; exit 1; }
            sleep 0.2
        done
    done
    nginx -e "$conf/error.log" -p "$conf" -c "$conf/nginx.conf" -g 'daemon off;' > "$conf/nginx.out" 2>&1 &
    pids+=($!)
    sleep 1
    log "nginx on 127.0.0.1:$lb_port over replicas on $((PORT + 1)) and $((PORT + 2))"
    log "GET /lb-health: $(curl -fsS "http://127.0.0.1:$lb_port/lb-health")"
    local i codes=""
    for i in $(seq 1 20); do
        codes+="$(curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$lb_port/readyz")"
    done
    log "20 x GET /readyz through nginx: $codes"
    log "requests per replica: jigsaw-1 $(grep -c '"GET /readyz"' "$conf/jigsaw-1.log"), jigsaw-2 $(grep -c '"GET /readyz"' "$conf/jigsaw-2.log")"
    log "stopping replica 1; 10 x GET /readyz through nginx:"
    kill -TERM "${pids[0]}"; wait "${pids[0]}" || true
    codes=""
    for i in $(seq 1 10); do
        codes+="$(curl -s -o /dev/null -w '%{http_code} ' "http://127.0.0.1:$lb_port/readyz")"
    done
    log "  $codes"
    kill -TERM "${pids[@]:1}" 2>/dev/null || true
    wait "${pids[@]:1}" 2>/dev/null || true
    trap - EXIT
    log "lb check done"
}

main() {
    case "${1:-all}" in
        build) build_stage ;;
        bootstrap) bootstrap_stage ;;
        rootfs) rootfs_stage ;;
        run) run_stage ;;
        lb) lb_stage ;;
        all) build_stage; rootfs_stage; run_stage ;;
        *) echo "usage: $0 [all|build|bootstrap|rootfs|run|lb]" >&2; exit 2 ;;
    esac
    exit 0
}

main "$@"
