#!/usr/bin/env python3
"""Hostile loads against a running jigsaw-server, for RSS and /healthz latency figures.

Python standard library only. Start the server first (release build, default limits), e.g.

    .build/release/jigsaw-server --models Models --port 8080 &
    python3 bench/attack.py --port 8080 --pid $! bodies 150
    python3 bench/attack.py --port 8080 --pid $! bodies 400
    python3 bench/attack.py --port 8080 healthz-solves 50        # 8 MB noise PNG solves
    python3 bench/attack.py --port 8080 healthz-scrambles 16     # 2000x2000 PNG, grid 16
    python3 bench/attack.py --port 8080 healthz-soft 16          # tau 0.5, 1000 iterations
    python3 bench/attack.py --port 8080 give-up 16               # clients leave after 1.5 s
    python3 bench/attack.py --port 8080 idle 1100                # from 127.0.0.1, probe from 127.0.0.2

Commands
  bodies N            N connections send POST /v1/solve with Content-Length 10485760 and
                      10,485,759 bytes, then hold; prints the statuses received, the server's RSS
                      peak (needs --pid) and RSS 30 s after they close.
  healthz-solves N    N parallel solves of an 8 MB noise PNG; 20 /healthz probes (p50, max).
  healthz-scrambles N N clients looping POST /v1/scramble?grid=16 on a 2000x2000 PNG; probes.
  healthz-soft N      N connections looping GET /v1/puzzles/{id}/soft?tau=0.5&iterations=1000.
  give-up N           N scrambles whose clients close after 1.5 s; reads the abandoned and
                      scramble counters of /metrics before and after.
  idle N              N idle sockets from 127.0.0.1, then /healthz from 127.0.0.2.
"""
import argparse
import random
import socket
import struct
import sys
import threading
import time
import zlib


def png(width, height, channels, pixel):
    """A PNG (8-bit gray or RGB) whose rows come from pixel(x, y, rng) -> bytes."""
    colour = {1: 0, 3: 2}[channels]
    raw = bytearray()
    for y in range(height):
        raw.append(0)
        raw += pixel(y)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw), 1)) + chunk(b"IEND", b"")


def noise_png(side, seed):
    rng = random.Random(seed)
    return png(side, side, 3, lambda y: rng.randbytes(side * 3))


def gradient_png(side):
    base = bytes(v for x in range(side) for v in (x * 255 // side, 0, (x * 7) % 256))
    def row(y):
        line = bytearray(base)
        line[1::3] = bytes([y * 255 // side]) * side
        return line
    return png(side, side, 3, row)


def exchange(port, method, target, body=b"", headers=None, host="127.0.0.1", source=None, timeout=120):
    """One request on a fresh connection; returns (status, body)."""
    s = socket.socket()
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while True:
        try:
            part = s.recv(65536)
        except OSError:
            break
        if not part:
            break
        data += part
    s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data.partition(b"\r\n\r\n")[2]


def rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return float("nan")
    return float("nan")


def probe_healthz(port, count=20, pause=0.25):
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, _ = exchange(port, "GET", "/healthz", timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            print(f"  /healthz status {status}")
        time.sleep(pause)
    times.sort()
    print(f"  /healthz over {count} probes: p50 {times[len(times) // 2]:.1f} ms, max {times[-1]:.1f} ms")


def loop_clients(port, n, make_request, seconds):
    """n threads repeat make_request() until the deadline; returns (threads, stop, counts)."""
    stop = time.time() + seconds
    counts = {}
    lock = threading.Lock()
    def worker():
        while time.time() < stop:
            try:
                status = make_request()
            except OSError:
                status = "error"
            with lock:
                counts[status] = counts.get(status, 0) + 1
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, counts


def cmd_bodies(args):
    n, length = args.n, 10485760
    sockets, statuses = [], {}
    peak = rss_mb(args.pid) if args.pid else float("nan")
    print(f"RSS before: {peak:.0f} MB")
    chunk = b"x" * 65536
    for i in range(n):
        s = socket.socket()
        s.settimeout(0.5)
        s.connect(("127.0.0.1", args.port))
        s.sendall(f"POST /v1/solve HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {length}\r\n\r\n".encode())
        sent = 0
        try:
            while sent < length - 1:
                sent += s.send(chunk[: min(len(chunk), length - 1 - sent)])
        except (socket.timeout, OSError):
            pass
        sockets.append((s, sent))
        if args.pid:
            peak = max(peak, rss_mb(args.pid))
    time.sleep(2)
    for s, sent in sockets:
        s.settimeout(0.2)
        try:
            data = s.recv(4096)
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else ("closed" if not data else "?")
        except socket.timeout:
            status = "holding (no answer)"
        except OSError:
            status = "reset"
        statuses[status] = statuses.get(status, 0) + 1
        if args.pid:
            peak = max(peak, rss_mb(args.pid))
    print(f"{n} connections: statuses {statuses}")
    print(f"bytes sent per connection: min {min(x for _, x in sockets)}, max {max(x for _, x in sockets)}")
    print(f"RSS peak while holding: {peak:.0f} MB")
    for s, _ in sockets:
        s.close()
    time.sleep(30)
    print(f"RSS 30 s after they closed: {rss_mb(args.pid):.0f} MB")


def cmd_healthz_solves(args):
    body = noise_png(1634, 7)  # 1634² RGB noise, ~8 MB as PNG
    print(f"noise PNG: {len(body)} bytes")
    threads, counts = loop_clients(args.port, args.n, lambda: exchange(
        args.port, "POST", "/v1/solve?grid=3", body, {"Content-Type": "image/png"})[0], args.seconds)
    time.sleep(1)
    probe_healthz(args.port)
    for t in threads:
        t.join()
    print(f"  solve statuses: {counts}")


def cmd_healthz_scrambles(args):
    body = gradient_png(2000)
    print(f"2000² PNG: {len(body)} bytes")
    threads, counts = loop_clients(args.port, args.n, lambda: exchange(
        args.port, "POST", "/v1/scramble?grid=16", body, {"Content-Type": "image/png"})[0], args.seconds)
    time.sleep(1)
    probe_healthz(args.port)
    for t in threads:
        t.join()
    print(f"  scramble statuses: {counts}")


def cmd_healthz_soft(args):
    import json
    status, answer = exchange(args.port, "GET", "/v1/samples/0?model=mnist-3x3")
    if status != 200:
        status, answer = exchange(args.port, "GET", "/v1/samples/0")
    ident = json.loads(answer)["id"]
    target = f"/v1/puzzles/{ident}/soft?tau=0.5&iterations=1000"
    threads, counts = loop_clients(args.port, args.n, lambda: exchange(args.port, "GET", target)[0], args.seconds)
    time.sleep(1)
    probe_healthz(args.port)
    for t in threads:
        t.join()
    print(f"  soft statuses: {counts} ({sum(v for k, v in counts.items() if k == 200) / args.seconds:.1f} req/s answered 200)")


def metric(port, name):
    _, text = exchange(port, "GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def cmd_give_up(args):
    body = gradient_png(2000)
    before = (metric(args.port, "jigsaw_scrambles_total"), metric(args.port, "jigsaw_work_abandoned_total"))
    def client():
        try:
            exchange(args.port, "POST", "/v1/scramble?grid=16", body, {"Content-Type": "image/png"}, timeout=1.5)
        except OSError:
            pass
    threads = [threading.Thread(target=client) for _ in range(args.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Wait until nothing is working or waiting any more.
    while (metric(args.port, "jigsaw_work_in_progress") or 0) + (metric(args.port, "jigsaw_work_waiting") or 0) > 0:
        time.sleep(0.5)
    after = (metric(args.port, "jigsaw_scrambles_total"), metric(args.port, "jigsaw_work_abandoned_total"))
    print(f"{args.n} clients gave up after 1.5 s: scrambles computed {after[0] - before[0]}, "
          f"dropped as abandoned {after[1] - before[1]}")


def cmd_idle(args):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.n + 256)), hard))
    held, refused = [], 0
    for _ in range(args.n):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", args.port))
            held.append(s)
        except OSError:
            refused += 1
    time.sleep(1)
    answered = {}
    for s in held:
        s.setblocking(False)
        try:
            data = s.recv(4096)
            key = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else "closed"
        except BlockingIOError:
            key = "open"
        except OSError:
            key = "reset"
        answered[key] = answered.get(key, 0) + 1
    print(f"{args.n} idle sockets from 127.0.0.1: {answered} (connect failures {refused})")
    status, body = exchange(args.port, "GET", "/healthz", source="127.0.0.2")
    print(f"/healthz from 127.0.0.2 while they are held: {status} {body[:80]!r}")
    status, body = exchange(args.port, "GET", "/healthz")
    print(f"/healthz from 127.0.0.1 while they are held: {status} {body[:80]!r}")
    for s in held:
        s.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--pid", type=int, help="the server's process id (for RSS)")
    parser.add_argument("--seconds", type=float, default=15, help="length of the looping loads")
    parser.add_argument("command", choices=["bodies", "healthz-solves", "healthz-scrambles", "healthz-soft", "give-up", "idle"])
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    {"bodies": cmd_bodies, "healthz-solves": cmd_healthz_solves, "healthz-scrambles": cmd_healthz_scrambles,
     "healthz-soft": cmd_healthz_soft, "give-up": cmd_give_up, "idle": cmd_idle}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
