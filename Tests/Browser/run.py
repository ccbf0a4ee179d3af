#!/usr/bin/env python3
"""Browser test of the web page: headless Chromium driven over the DevTools protocol.

Starts `jigsaw-server` on a free port and headless Chromium, then plays the page as a person would
(keyboard and mouse events), and checks what the page shows against answers fetched independently
with urllib: the solved permutation, the confidences, the soft matrix at two temperatures, the
upload path, the API reference page /docs against /openapi.json, the error messages, the phone
layout and the absence of console errors. Writes the screenshot docs/screenshot.png.

Python 3 standard library only (the websocket client is implemented here, RFC 6455).
Exit status: 0 when every check passes or the test is skipped (with a printed reason), 1 otherwise.

    python3 Tests/Browser/run.py [--server PATH] [--chromium PATH] [--screenshot docs/screenshot.png]
"""

import argparse
import base64
import json
import os
import queue
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE = 7  # the test image shown in the screenshot


class Failure(Exception):
    pass


# MARK: - A minimal websocket client (RFC 6455), enough for the DevTools protocol.

class WebSocket:
    def __init__(self, url, timeout=30):
        parsed = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = parsed.path + ("?" + parsed.query if parsed.query else "")
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failure("websocket handshake: connection closed")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise Failure("websocket handshake refused: " + head.decode(errors="replace"))

    def _read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise Failure("websocket closed by the browser")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def receive(self):
        """The next text message (fragments joined; pings answered)."""
        message = b""
        while True:
            first, second = self._read(2)
            opcode, final = first & 0x0F, first & 0x80
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise Failure("websocket closed by the browser")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if final:
                    return message.decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
            self.sock.close()
        except OSError:
            pass


class DevTools:
    """Commands and events of one page target."""

    def __init__(self, url):
        self.socket = WebSocket(url)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.receive())
            if message.get("id") == ident:
                if "error" in message:
                    raise Failure(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression, await_promise=False):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise Failure(f"evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what, timeout=15.0, error_expected=False):
        """Polls a page expression until it is truthy; fails naming `what` and the page's error
        (at once when the page shows an error, unless `error_expected`)."""
        if not error_expected:
            expression = f"(!document.getElementById('error').hidden ? (() => {{ throw 0; }})() : ({expression}))"
        deadline = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (error) {{ return null; }} }})()"  # mid-navigation
        while time.monotonic() < deadline:
            value = self.evaluate(guarded)
            if value:
                return value
            if value is None and not error_expected and self.evaluate(
                    "document.readyState === 'complete' && !!document.getElementById('error') && !document.getElementById('error').hidden"):
                break
            time.sleep(0.05)
        shown = self.evaluate("document.getElementById('error').hidden ? '' : document.getElementById('error').innerText")
        raise Failure(f"timed out waiting for {what}" + (f"; the page shows: {shown}" if shown else ""))

    def key(self, key, code=None, key_code=0, text=None):
        """Presses and releases a key; `text` makes it a character key (Enter is "\r")."""
        down = {"type": "keyDown", "text": text} if text else {"type": "rawKeyDown"}
        for event in (down, {"type": "keyUp"}):
            self.call("Input.dispatchKeyEvent", key=key, code=code or key,
                      windowsVirtualKeyCode=key_code, nativeVirtualKeyCode=key_code, **event)

    def click(self, selector):
        rect = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                             " e.scrollIntoView({ block: 'center' }); const r = e.getBoundingClientRect();"
                             " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=rect[0], y=rect[1], button="left", clickCount=1)

    def console_errors(self, since=0):
        """Console errors and uncaught exceptions seen since event `since`: (text, source) pairs."""
        found = []
        for event in self.events[since:]:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append((details.get("exception", {}).get("description") or details.get("text"), "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append((" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])), "console"))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append((entry.get("text", "") + " " + entry.get("url", ""), entry.get("source", "")))
        return found


# MARK: - Processes

def start_server(binary):
    command = [binary, "--host", "127.0.0.1", "--port", "0", "--models", "Models", "--public", "Public", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 30
    output = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        output.append(line)
        if line.startswith("listening on http://"):
            return process, line.split("listening on ", 1)[1].strip()
    process.kill()
    raise Failure("the server did not start:\n" + "".join(output))


def start_chromium(binary, profile):
    command = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
               "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-port=0",
               "--window-size=1280,900", "about:blank"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errors = []
    threading.Thread(target=lambda: [errors.append(line) for line in process.stderr], daemon=True).start()
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Failure("chromium exited:\n" + "".join(errors[-20:]))
        if os.path.exists(port_file):
            text = open(port_file).read().split("\n")
            if len(text) >= 2 and text[0].strip():
                port = int(text[0])
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return process, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.1)
    process.kill()
    raise Failure("chromium did not open its DevTools port:\n" + "".join(errors[-20:]))


def stop(process):
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# MARK: - Independent answers

def fetch(base, path, data=None, content_type=None):
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": content_type} if content_type else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def fetch_json(base, path, **kwargs):
    return json.loads(fetch(base, path, **kwargs))


def png_bytes(width, height, pixel, declared=None):
    """An 8-bit RGB PNG whose pixel (x, y) is `pixel(x, y)` (RFC 2083 / PNG spec, filter 0);
    `declared` puts another size in the header."""
    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", *(declared or (width, height)), 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# MARK: - The scenario

class Checks:
    def __init__(self):
        self.passed = []

    def expect(self, condition, message):
        if not condition:
            raise Failure(message)
        self.passed.append(message)
        print(f"  ok  {message}", flush=True)


def page_state(dev):
    return dev.evaluate("document.body.dataset.state || ''")


def soft_sequence(dev):
    return int(dev.evaluate("document.body.dataset.softSequence || '0'"))


def soft_snapshot(dev):
    """The soft image's pixels (a checksum) and the heat map's values as the page shows them."""
    return dev.evaluate("""(() => {
      const img = document.getElementById('soft-image');
      const canvas = document.createElement('canvas');
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      const context = canvas.getContext('2d');
      context.drawImage(img, 0, 0);
      const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
      let sum = 0, weighted = 0;
      for (let k = 0; k < data.length; k += 4) { sum += data[k]; weighted = (weighted * 31 + data[k]) % 1000000007; }
      const rows = [...document.querySelectorAll('#heatmap tr')].slice(1).map((row) =>
        [...row.querySelectorAll('td')].map((td) => Number(td.title.split(': ')[1])));
      return { tau: Number(img.dataset.tau), width: canvas.width, sum, checksum: weighted, matrix: rows,
               alt: img.alt, status: document.getElementById('soft-status').textContent };
    })()""")


def set_tau_by_keys(dev, key, key_code, checks, label):
    before = soft_sequence(dev)
    dev.evaluate("document.getElementById('tau').focus()")
    dev.key(key, key_code=key_code)
    dev.wait_for(f"Number(document.body.dataset.softSequence || 0) > {before} && "
                 "Math.abs(Number(document.getElementById('soft-image').dataset.tau) - Math.pow(10, Number(document.getElementById('tau').value))) < 1e-9",
                 f"the soft reconstruction after pressing {key} on the τ slider")
    snapshot = soft_snapshot(dev)
    checks.expect(snapshot["width"] > 0, f"τ slider ({label}): the soft image at τ = {snapshot['tau']:.3g} is shown")
    return snapshot


def compare_matrix(shown, reference, tolerance=1e-4):
    if len(shown) != len(reference):
        return False
    return all(len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b)) for a, b in zip(shown, reference))


def run(args):
    checks = Checks()
    profile = tempfile.mkdtemp(prefix="jigsaw-browser-")
    server = chromium = dev = None
    started = time.monotonic()
    try:
        server, base = start_server(args.server)
        print(f"server at {base}", flush=True)
        chromium, ws_url = start_chromium(args.chromium, profile)
        dev = DevTools(ws_url)
        for domain in ("Page", "Runtime", "Log"):
            dev.call(f"{domain}.enable")
        dev.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        dev.call("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": os.environ.get("COLOR_SCHEME", "light")},
                                                         {"name": "prefers-reduced-motion", "value": "no-preference"}])
        model = fetch_json(base, "/v1/models")["default_model"]

        # 1. A sample puzzle, solved from the keyboard.
        dev.call("Page.navigate", url=f"{base}/?sample={SAMPLE}")
        dev.wait_for("document.body.dataset.state === 'scrambled'", "the sample puzzle")
        checks.expect(dev.evaluate("document.activeElement && document.activeElement.id") == "solve",
                      "after a sample loads, the Solve button has the keyboard focus")
        pieces = dev.evaluate("document.querySelectorAll('#board .piece img').length")
        grid = int(fetch_json(base, f"/v1/models/{model}")["configuration"]["grid"])
        checks.expect(pieces == grid * grid, f"the board shows {grid}×{grid} scrambled pieces")
        alts = dev.evaluate("[...document.images].filter(i => !i.hidden && !i.alt).length")
        checks.expect(alts == 0, "every image on the page has alt text")
        dev.key("Enter", key_code=13, text="\r")
        dev.wait_for("document.body.dataset.state === 'solved' && Number(document.body.dataset.softSequence || 0) > 0",
                     "the solution and the first soft reconstruction")
        shown = [int(x) for x in dev.evaluate("document.getElementById('permutation').dataset.permutation").split(",")]
        puzzle_id = dev.evaluate("document.getElementById('permutation').dataset.puzzle")
        stored = fetch_json(base, f"/v1/puzzles/{urllib.parse.quote(puzzle_id)}")
        checks.expect(shown == stored["permutation"], f"the page's permutation {shown} equals the service's stored answer")
        scrambled_png = fetch(base, f"/v1/puzzles/{urllib.parse.quote(puzzle_id)}/scrambled.png")
        resolved = fetch_json(base, f"/v1/solve?model={model}", data=scrambled_png, content_type="image/png")
        checks.expect(shown == resolved["permutation"], "it also equals a fresh POST /v1/solve of the scrambled image")
        sample = fetch_json(base, f"/v1/samples/{SAMPLE}?model={model}")
        checks.expect(shown == sample["permutation"], "and the answer of GET /v1/samples/{k} made independently")
        confidences = dev.evaluate("[...document.querySelectorAll('#piece-rows .num')].map(e => parseFloat(e.textContent))")
        checks.expect(len(confidences) == len(shown) and all(abs(c - 100 * r) < 0.051 for c, r in zip(confidences, stored["confidence"])),
                      "each piece's confidence in the table matches the service's")
        cells = f"""JSON.stringify([...document.querySelectorAll('#board .piece')].map(p => {{
            const board = document.getElementById('board').getBoundingClientRect(), r = p.getBoundingClientRect();
            return Math.round((r.top - board.top) / board.height * {grid}) * {grid} + Math.round((r.left - board.left) / board.width * {grid}); }}))"""
        dev.wait_for(f"{cells} === {json.dumps(json.dumps(shown, separators=(',', ':')))}", "the pieces to reach their cells", timeout=5)
        time.sleep(0.3)  # let the move settle: the rounded cells match before the transition ends
        placed = json.loads(dev.evaluate(cells))
        checks.expect(placed == shown, "every piece has moved to the cell the permutation gives it")

        # 2. The τ slider, from the keyboard: Home = 0.01, End = 10.
        cold = set_tau_by_keys(dev, "Home", 36, checks, "Home")
        hot = set_tau_by_keys(dev, "End", 35, checks, "End")
        checks.expect(abs(cold["tau"] - 0.01) < 1e-6 and abs(hot["tau"] - 10) < 1e-6, "the slider spans τ = 0.01 … 10")
        checks.expect(cold["checksum"] != hot["checksum"] and cold["sum"] != hot["sum"], "the soft image changes with τ")
        for snapshot in (cold, hot):
            reference = fetch_json(base, f"/v1/puzzles/{puzzle_id}/soft?tau={snapshot['tau']}&format=json")["soft"]["matrix"]
            checks.expect(compare_matrix(snapshot["matrix"], reference),
                          f"the heat map at τ = {snapshot['tau']:.3g} equals the service's matrix")
        n = len(shown)
        checks.expect(all(cold["matrix"][i][shown[i]] > 0.9 for i in range(n)), "at τ = 0.01 the matrix is close to the permutation")
        checks.expect(all(0.02 < v < 0.9 for row in hot["matrix"] for v in row),
                      "at τ = 10 every piece is spread over every cell (all entries in 0.02 … 0.9)")
        images = [fetch(base, f"/v1/puzzles/{puzzle_id}/soft?tau={t}") for t in (0.01, 10)]
        checks.expect(images[0] != images[1], "the service's soft PNGs differ between τ = 0.01 and 10")
        before = soft_sequence(dev)
        dev.key("ArrowLeft", key_code=37)
        dev.wait_for(f"Number(document.body.dataset.softSequence || 0) > {before}", "the soft image after an arrow key")
        checks.expect(abs(soft_snapshot(dev)["tau"] - 10 ** 0.99) < 1e-6, "an arrow key moves τ one step on the log scale")

        # 3. A nice state for the screenshot, then the phone layout.
        before = soft_sequence(dev)
        dev.evaluate("const t = document.getElementById('tau'); t.value = '0.4'; t.dispatchEvent(new Event('input'));")
        dev.wait_for(f"Number(document.body.dataset.softSequence || 0) > {before}", "the soft image at τ = 2.5")
        dev.evaluate("document.activeElement.blur()")
        errors = dev.console_errors()
        checks.expect(not errors, "no console errors or exceptions while playing" + (f": {errors}" if errors else ""))
        if args.screenshot:
            height = dev.evaluate("Math.ceil(document.documentElement.scrollHeight)")
            dev.call("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)
            time.sleep(0.2)
            shot = base64.b64decode(dev.call("Page.captureScreenshot", format="png")["data"])
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            with open(args.screenshot, "wb") as file:
                file.write(shot)
            print(f"  wrote {args.screenshot} ({len(shot) // 1024} KiB, 1280×{height})", flush=True)
        dev.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        time.sleep(0.3)
        overflow = dev.evaluate("document.documentElement.scrollWidth")
        checks.expect(overflow <= 390, f"on a 390 px phone screen nothing overflows sideways (scroll width {overflow})")
        controls_top = dev.evaluate("Math.round(document.querySelector('.controls').getBoundingClientRect().top + window.scrollY)")
        checks.expect(controls_top < 844 / 2,
                      f"on a 390 px phone the puzzle controls start in the upper half of the first screen ({controls_top} px)")
        if args.phone_screenshot:
            height = dev.evaluate("Math.ceil(document.documentElement.scrollHeight)")
            dev.call("Emulation.setDeviceMetricsOverride", width=390, height=height, deviceScaleFactor=1, mobile=True)
            time.sleep(0.2)
            with open(args.phone_screenshot, "wb") as file:
                file.write(base64.b64decode(dev.call("Page.captureScreenshot", format="png")["data"]))
        dev.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)

        # 4. The sample button, with the mouse.
        dev.call("Page.navigate", url=f"{base}/")
        dev.wait_for("document.body.dataset.state === 'ready'", "the page to load its models")
        dev.click("#sample")
        dev.wait_for("document.body.dataset.state === 'scrambled'", "a random sample after clicking the sample button")
        dev.click("#solve")
        dev.wait_for("document.body.dataset.state === 'solved'", "the solution after clicking Solve")
        checks.expect(True, "clicking the sample button, then Solve, solves a random sample")

        # 5. An upload: a PNG made here, scrambled and solved by the page through the service.
        upload = os.path.join(profile, "stripes.png")
        with open(upload, "wb") as file:
            file.write(png_bytes(56, 56, lambda x, y: (x * 4, y * 4, 255 if (x // 7 + y // 7) % 2 else 40)))
        document = dev.call("DOM.getDocument")
        file_input = dev.call("DOM.querySelector", nodeId=document["root"]["nodeId"], selector="#file")["nodeId"]
        dev.call("DOM.setFileInputFiles", nodeId=file_input, files=[upload])
        dev.wait_for("document.body.dataset.state === 'scrambled'", "the uploaded image, scrambled")
        dev.key("Enter", key_code=13, text="\r")
        dev.wait_for("document.body.dataset.state === 'solved'", "the uploaded puzzle solved")
        shown = [int(x) for x in dev.evaluate("document.getElementById('permutation').dataset.permutation").split(",")]
        puzzle_id = dev.evaluate("document.getElementById('permutation').dataset.puzzle")
        stored = fetch_json(base, f"/v1/puzzles/{urllib.parse.quote(puzzle_id)}")
        checks.expect(shown == stored["permutation"] and stored["origin"] == "upload",
                      "an uploaded PNG is scrambled (POST /v1/scramble), solved (POST /v1/solve) and shown with the service's permutation")
        errors = dev.console_errors()
        checks.expect(not errors, "still no console errors" + (f": {errors}" if errors else ""))

        # 5b. A phone photo (a JPEG of the test split): the page switches to the photo model of the
        # current grid, the service scrambles and solves it, and the soft reconstruction and heat
        # map follow τ as for digits. Then a photo sample puzzle from the photo model's own samples.
        models = fetch_json(base, "/v1/models")["models"]
        photo_models = sorted(m["name"] for m in models if m.get("kind") == "jigsaw" and (m.get("configuration") or {}).get("channels") == 3)
        photo_dir = os.path.join(ROOT, "Models", "samples", "photos")
        photos = sorted(f for f in os.listdir(photo_dir) if f.endswith(".jpg")) if os.path.isdir(photo_dir) else []
        if photo_models and photos:
            dev.call("Page.navigate", url=f"{base}/")
            dev.wait_for("document.body.dataset.state === 'ready'", "the page to load its models")
            grid_before = dev.evaluate("(() => { const m = document.getElementById('model'); return m.value; })()")
            dev.call("DOM.setFileInputFiles", nodeId=dev.call("DOM.querySelector", nodeId=dev.call("DOM.getDocument")["root"]["nodeId"],
                                                                 selector="#file")["nodeId"], files=[os.path.join(photo_dir, photos[0])])
            dev.wait_for("document.body.dataset.state === 'scrambled'", "the uploaded phone photo, scrambled")
            chosen = dev.evaluate("document.getElementById('model').value")
            checks.expect(chosen in photo_models and chosen != grid_before,
                          f"a JPEG photo switches the page from {grid_before} to a photo model ({chosen})")
            dev.click("#solve")
            dev.wait_for("document.body.dataset.state === 'solved'", "the photo puzzle solved")
            shown = [int(x) for x in dev.evaluate("document.getElementById('permutation').dataset.permutation").split(",")]
            puzzle_id = dev.evaluate("document.getElementById('permutation').dataset.puzzle")
            stored = fetch_json(base, f"/v1/puzzles/{urllib.parse.quote(puzzle_id)}")
            checks.expect(shown == stored["permutation"] and stored["model"] == chosen,
                          f"the photo is solved by {chosen} and the page shows the service's permutation")
            dev.wait_for("document.getElementById('soft-image').naturalWidth > 0", "the photo's soft reconstruction")
            first = soft_snapshot(dev)
            later = set_tau_by_keys(dev, "End", 35, checks, "photo, End")
            checks.expect(first["checksum"] != later["checksum"] and len(later["matrix"]) == len(shown),
                          "for the photo the soft image changes with τ and the heat map has a row per piece")
            three = "photo-3x3" if "photo-3x3" in photo_models else photo_models[0]
            dev.evaluate(f"(() => {{ const m = document.getElementById('model'); m.value = {json.dumps(three)}; m.dispatchEvent(new Event('change')); }})()")
            dev.wait_for("document.body.dataset.state === 'ready' || document.body.dataset.state === 'empty' || !document.getElementById('sample').disabled",
                         "the photo model selected")
            dev.click("#sample")
            dev.wait_for("document.body.dataset.state === 'scrambled'", "a photo sample puzzle")
            facts = dev.evaluate("document.getElementById('sample-facts').textContent")
            label = dev.evaluate("document.getElementById('sample-label').textContent")
            grid = fetch_json(base, f"/v1/models/{urllib.parse.quote(three)}")["configuration"]["grid"]
            pieces = dev.evaluate("document.querySelectorAll('#board .piece img').length")
            checks.expect("photos" in facts and label == "Test-set photo" and pieces == grid * grid,
                          f"{three}'s sample button makes a {grid}×{grid} puzzle of a test photo (“{facts}”)")
            dev.click("#solve")
            dev.wait_for("document.body.dataset.state === 'solved'", "the photo sample solved")
            errors = dev.console_errors()
            checks.expect(not errors, "no console errors with photos" + (f": {errors}" if errors else ""))
        else:
            print("browser test: no photo model or photo samples in Models/: photo checks skipped", flush=True)

        # 5b. Assembling a drawn digit into another (POST /v1/assemble), if the server has an assembler.
        try:
            assembler = fetch_json(base, "/v1/assemble")
        except urllib.error.HTTPError:
            assembler = None
        if assembler:
            dev.call("Page.navigate", url=f"{base}/")
            dev.wait_for("!document.getElementById('assemble-card').hidden", "the assembly section")
            checks.expect(dev.evaluate("document.querySelectorAll('#targets input[type=radio]').length") == assembler["targets"],
                          f"the assembly section offers {assembler['targets']} target digits")
            checks.expect(dev.evaluate("document.getElementById('assemble').disabled"), "Assemble waits for a drawing")
            box = dev.evaluate("(() => { const c = document.getElementById('draw'); c.scrollIntoView({ block: 'center' });"
                               " const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
            # A "7": a stroke across the top and one down to the bottom left, with the mouse.
            path = [(0.3, 0.25), (0.5, 0.25), (0.7, 0.25), (0.62, 0.45), (0.52, 0.62), (0.45, 0.8)]
            dev.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0] + box[2] * path[0][0], y=box[1] + box[3] * path[0][1])
            dev.call("Input.dispatchMouseEvent", type="mousePressed", x=box[0] + box[2] * path[0][0], y=box[1] + box[3] * path[0][1],
                     button="left", buttons=1, clickCount=1)
            for (u, v) in path[1:]:
                dev.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0] + box[2] * u, y=box[1] + box[3] * v, button="left", buttons=1)
            dev.call("Input.dispatchMouseEvent", type="mouseReleased", x=box[0] + box[2] * path[-1][0], y=box[1] + box[3] * path[-1][1],
                     button="left", buttons=0, clickCount=1)
            checks.expect(not dev.evaluate("document.getElementById('assemble').disabled"), "drawing a digit enables Assemble")
            dev.click("label:has(#target-2)")
            checks.expect(dev.evaluate("document.getElementById('target-2').checked"), "a click picks the target digit 2")
            dev.click("#assemble")
            dev.wait_for("document.body.dataset.assembly === 'done'", "the pieces to move into a 2", timeout=20)
            card = dev.evaluate("(() => { const d = document.getElementById('assemble-card').dataset;"
                                " return { sent: d.sent, cells: d.cells, verdict: d.verdict }; })()")
            direct = fetch_json(base, "/v1/assemble", data=json.dumps({"image": card["sent"], "target": 2}).encode(),
                                content_type="application/json")
            cells = [int(x) for x in card["cells"].split(",")]
            checks.expect(cells == direct["cells"] and sorted(cells) == list(range(direct["grid"] ** 2)),
                          f"the page's arrangement of {len(cells)} pieces equals a direct POST /v1/assemble of the drawing")
            checks.expect(int(card["verdict"]) == direct["assembled"]["verdict"]["digit"],
                          f"the page shows the classifier's verdict ({direct['assembled']['verdict']['digit']})")
            text = dev.evaluate("document.getElementById('assemble-verdict').innerText")
            checks.expect(f"reads {direct['assembled']['verdict']['digit']} (" in text, f"the verdict is written out: “{text}”")
            # The last frame of the animation is the service's assembly, pixel for pixel.
            mismatched = dev.evaluate(f"""new Promise((resolve) => {{
                const image = new Image();
                image.onload = () => {{
                    const shown = document.getElementById('assembly'), reference = document.createElement('canvas');
                    reference.width = shown.width; reference.height = shown.height;
                    const context = reference.getContext('2d');
                    context.imageSmoothingEnabled = false;
                    context.drawImage(image, 0, 0, reference.width, reference.height);
                    const a = shown.getContext('2d').getImageData(0, 0, shown.width, shown.height).data;
                    const b = context.getImageData(0, 0, shown.width, shown.height).data;
                    let bad = 0;
                    for (let i = 0; i < a.length; i += 4) if (Math.abs(a[i] - b[i]) > 2) bad += 1;
                    resolve(bad);
                }};
                image.src = 'data:image/png;base64,{direct["assembled"]["png"]}';
            }})""", await_promise=True)
            checks.expect(mismatched == 0, f"the animation ends on the service's assembled image ({mismatched} pixels differ)")
            errors = dev.console_errors()
            checks.expect(not errors, "no console errors while assembling" + (f": {errors}" if errors else ""))
        else:
            print("browser test: the server has no assembler: assembly checks skipped", flush=True)

        # 6. The API reference at /docs, rendered in the page from /openapi.json.
        seen_docs = len(dev.events)
        openapi = fetch_json(base, "/openapi.json")
        operations = sorted(f"{method.upper()} {path}" for path, item in openapi["paths"].items()
                            for method in item if method in ("get", "head", "post", "put", "patch", "delete", "options"))
        dev.call("Page.navigate", url=f"{base}/docs")
        dev.wait_for("document.body.dataset.ready === 'true'", "the API reference page", error_expected=True)
        rendered = sorted(dev.evaluate("[...document.querySelectorAll('.operation')].map(e => e.dataset.method + ' ' + e.dataset.path)"))
        checks.expect(rendered == operations, f"/docs shows every operation of /openapi.json ({len(operations)})")
        links = dev.evaluate("document.querySelectorAll('#toc a').length")
        checks.expect(links == len(operations), "and links to each from its table of contents")
        solve = dev.evaluate("""(() => { const card = document.querySelector('.operation[data-method="POST"][data-path="/v1/solve"]');
            return { parameters: [...card.querySelectorAll('.parameter')].map(r => r.dataset.name),
                     responses: [...card.querySelectorAll('.response')].map(r => r.dataset.status),
                     media: [...card.querySelectorAll('.media code')].map(c => c.textContent),
                     text: card.innerText }; })()""")
        expected_parameters = [p.get("name") or openapi["components"]["parameters"][p["$ref"].split("/")[-1]]["name"]
                               for p in openapi["paths"]["/v1/solve"]["post"]["parameters"]]
        checks.expect(solve["parameters"] == expected_parameters, f"POST /v1/solve lists its parameters {expected_parameters}")
        checks.expect(solve["responses"] == list(openapi["paths"]["/v1/solve"]["post"]["responses"]),
                      "and its responses by status")
        checks.expect("image/png" in solve["media"] and "application/json" in solve["media"] and "SolveRequest" in solve["text"],
                      "and its request bodies with their schemas")
        schemas = sorted(dev.evaluate("[...document.querySelectorAll('.schema-card')].map(e => e.dataset.schema)"))
        checks.expect(schemas == sorted(openapi["components"]["schemas"]), f"/docs shows every schema ({len(schemas)})")
        sizes = dev.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                             " return [n.encodedBodySize, n.decodedBodySize]; })()")
        checks.expect(0 < sizes[0] < sizes[1], f"the browser received /docs gzip-compressed ({sizes[0]} of {sizes[1]} bytes)")
        errors = dev.console_errors(since=seen_docs)
        checks.expect(not errors, "no console errors on /docs" + (f": {errors}" if errors else ""))
        dev.call("Page.navigate", url=f"{base}/")
        dev.wait_for("document.body.dataset.state === 'ready'", "the page again after /docs")
        document = dev.call("DOM.getDocument")
        file_input = dev.call("DOM.querySelector", nodeId=document["root"]["nodeId"], selector="#file")["nodeId"]

        # 7. Errors from the service are shown in the page. Chromium logs each 4xx response as a
        # network error in the console; those (and only those) are expected from here on.
        seen = len(dev.events)

        def expect_error(codes, what):
            code = dev.wait_for("document.getElementById('error').hidden ? '' : document.body.dataset.error || ''", what,
                                error_expected=True)
            text = dev.evaluate("document.getElementById('error').innerText")
            checks.expect(code in codes and len(text) > 20, f"{what}: the page shows “{' '.join(text.split())}”")
            dev.click("#error-close")

        text_file = os.path.join(profile, "notes.txt")
        with open(text_file, "w") as file:
            file.write("this is not an image\n")
        dev.call("DOM.setFileInputFiles", nodeId=file_input, files=[text_file])
        expect_error({"invalid_image", "unsupported_media_type"}, "a file that is not an image")
        big = os.path.join(profile, "huge.png")
        with open(big, "wb") as file:
            file.write(b"\x89PNG\r\n\x1a\n" + random.Random(0).randbytes(11 * 1024 * 1024))
        dev.call("DOM.setFileInputFiles", nodeId=file_input, files=[big])
        expect_error({"content_too_large", "upload_failed"}, "an upload over the 10 MiB body limit")
        wide = os.path.join(profile, "wide.png")
        with open(wide, "wb") as file:  # a valid PNG whose header declares 60000 × 60000 pixels
            file.write(png_bytes(1, 1, lambda x, y: (0, 0, 0), declared=(60000, 60000)))
        dev.call("DOM.setFileInputFiles", nodeId=file_input, files=[wide])
        expect_error({"image_too_large"}, "an image whose declared size is too large")
        dev.call("Page.navigate", url=f"{base}/?model=no-such-model&sample=1")
        expect_error({"model_not_found"}, "a model that does not exist")
        unexpected = [e for e in dev.console_errors(since=seen) if e[1] != "network"]
        checks.expect(not unexpected, "the error cases raise no exceptions or script errors" + (f": {unexpected}" if unexpected else ""))
        print(f"browser test: {len(checks.passed)} checks passed in {time.monotonic() - started:.1f} s", flush=True)
        return 0
    except Failure as failure:
        print(f"browser test FAILED: {failure}", file=sys.stderr, flush=True)
        if dev:
            errors = dev.console_errors()
            if errors:
                print(f"console errors: {errors}", file=sys.stderr)
        return 1
    finally:
        if dev:
            dev.socket.close()
        stop(chromium)
        stop(server)
        shutil.rmtree(profile, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=None, help="the jigsaw-server binary (default: .build/release/jigsaw-server)")
    parser.add_argument("--chromium", default=None, help="the Chromium binary (default: chromium on PATH)")
    parser.add_argument("--screenshot", default=None, help="write a screenshot of the solved page here")
    parser.add_argument("--phone-screenshot", default=None, help="write a phone-sized screenshot here")
    args = parser.parse_args()
    args.server = args.server or os.path.join(ROOT, ".build", "release", "jigsaw-server")
    if not os.access(args.server, os.X_OK):
        print(f"browser test FAILED: no server binary at {args.server} (swift build -c release --product jigsaw-server)", file=sys.stderr)
        return 1
    args.chromium = args.chromium or next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if not args.chromium:
        print("SKIPPED browser test: Chromium is not installed and could not be installed (apt-get install chromium)")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
