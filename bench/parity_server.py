#!/usr/bin/env python3
"""Parity of jigsaw-server and the FastAPI + PyTorch comparison server on every shipped model.

Starts both servers on free loopback ports with the same models directory, sends each jigsaw model
the same seeded puzzles through `POST /v1/solve?model=NAME`, reads the stored scores back with
`GET /v1/puzzles/{id}` from each, and compares: the largest |difference| of the scores (must be
<= --tolerance, default 1e-4), equal permutations, the largest |difference| of the confidences and
whether the reconstructed images are pixel-identical. Prints one table row per model; exits 1
when a model fails.

Puzzles, per model and seed:
  png     a scrambled image as a PNG body. Digits: a test image of the model's dataset (28 x 28,
          cut without resizing). Photos: a sample JPEG from Models/samples/photos decoded by
          Pillow, resized to a seeded non-square size, scrambled cell by cell and sent losslessly,
          so both servers decode the same pixels and each fits the cells to the model's piece side
          with its own resize (area filter when shrinking, bilinear when enlarging).
  pieces  the same puzzle as a JSON piece list already at the model's piece side (digits: number
          arrays; photos: base64 PNG pieces cut and resized by Pillow): no resizing on either side.

    SERVER=.build/release/jigsaw-server TORCH_PYTHON=../venv-torch/bin/python \\
        "$TORCH_PYTHON" bench/parity_server.py --models Models --seeds 3
"""
import argparse
import base64
import glob
import gzip
import io
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_of(path):
    with open(path, "rb") as handle:
        length = struct.unpack("<Q", handle.read(8))[0]
        return json.loads(handle.read(length)).get("__metadata__", {}) or {}


def request(url, data=None, content_type=None, timeout=120):
    headers = {"Content-Type": content_type} if content_type else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


def wait_ready(url, process, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server for {url} exited with status {process.returncode}")
        try:
            request(url + "/healthz", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready")


def start_swift(binary, models, log):
    process = subprocess.Popen([binary, "--models", models, "--port", "0", "--no-access-log"],
                               stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"{binary} exited before listening")
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            url = found.group(1).replace("localhost", "127.0.0.1")
            wait_ready(url, process)
            return process, url
    raise SystemExit(f"{binary} did not print its port")


def start_torch(models, threads, log):
    port = free_port()
    process = subprocess.Popen([sys.executable, os.path.join(HERE, "fastapi_server.py"), "--models", models,
                                "--port", str(port), "--threads", str(threads)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process)
    return process, url


# ----------------------------------------------------------------------------------------------
# Puzzles


def idx_images(path):
    data = gzip.open(path).read()
    _, count, rows, cols = struct.unpack(">IIII", data[:16])
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def grid_cells(pixels, grid):
    height, width = pixels.shape[:2]
    w, h = width // grid, height // grid
    left, top = (width - grid * w) // 2, (height - grid * h) // 2
    return [pixels[top + r * h: top + (r + 1) * h, left + c * w: left + (c + 1) * w]
            for r in range(grid) for c in range(grid)]


def scrambled(pixels, grid, seed):
    """(scrambled image of the grid crop, answer): slot s holds cell order[s] (the solve convention)."""
    cells = grid_cells(pixels, grid)
    order = list(range(grid * grid))
    random.Random(seed).shuffle(order)
    h, w = cells[0].shape[:2]
    out = np.zeros((grid * h, grid * w) + pixels.shape[2:], dtype=np.uint8)
    for slot, cell in enumerate(order):
        r, c = divmod(slot, grid)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = cells[cell]
    return out, order


def png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_puzzles(dataset_file, grid, piece, seeds):
    images = idx_images(dataset_file)
    for seed in seeds:
        image = images[(seed * 7) % len(images)]
        puzzle, answer = scrambled(image, grid, seed)
        cells = grid_cells(puzzle, grid)
        yield {"seed": seed, "route": "png", "body": png(puzzle), "type": "image/png", "answer": answer,
               "size": f"{puzzle.shape[1]}x{puzzle.shape[0]}", "classes": classes(cells)}
        if all(cell.shape == (piece, piece) for cell in cells):
            pieces = [(cell.astype(np.float64) / 255).round(6).tolist() for cell in cells]
            yield {"seed": seed, "route": "pieces", "body": json.dumps({"pieces": pieces}).encode(),
                   "type": "application/json", "answer": answer, "size": f"{len(cells)}x{piece}x{piece}",
                   "classes": classes(cells)}


PHOTO_SIZES = [(480, 360), (600, 450), (300, 400), (512, 512), (420, 315)]


def photo_puzzles(photos, grid, piece, seeds):
    for seed in seeds:
        source = Image.open(photos[seed % len(photos)]).convert("RGB")
        width, height = PHOTO_SIZES[seed % len(PHOTO_SIZES)]
        image = np.asarray(source.resize((width, height), Image.LANCZOS))
        puzzle, answer = scrambled(image, grid, seed)
        yield {"seed": seed, "route": "png", "body": png(puzzle), "type": "image/png", "answer": answer,
               "size": f"{puzzle.shape[1]}x{puzzle.shape[0]}", "classes": classes(grid_cells(puzzle, grid))}
        cells = [np.asarray(Image.fromarray(cell).resize((piece, piece), Image.BOX)) for cell in grid_cells(puzzle, grid)]
        pieces = [base64.b64encode(png(cell)).decode() for cell in cells]
        yield {"seed": seed, "route": "pieces", "body": json.dumps({"pieces": pieces}).encode(),
               "type": "application/json", "answer": answer, "size": f"{len(cells)}x{piece}x{piece}",
               "classes": classes(cells)}


def classes(cells):
    """A class number per piece: pieces with identical pixels share one (interchangeable pieces,
    whose score rows are identical, so any order of them is an optimal matching)."""
    seen = {}
    return [seen.setdefault(cell.tobytes(), len(seen)) for cell in cells]


def placed(permutation, kinds):
    """The class of the piece each cell receives (`permutation[i] = j`: piece i goes to cell j)."""
    cells = [None] * len(permutation)
    for piece, cell in enumerate(permutation):
        cells[cell] = kinds[piece]
    return cells


def same_up_to_identical(first, second, kinds):
    """Whether two permutations put pieces of the same class in every cell."""
    return placed(first, kinds) == placed(second, kinds)


def decoded(text):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))), dtype=np.int16)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("SERVER", os.path.join(ROOT, ".build/release/jigsaw-server")))
    parser.add_argument("--models", default=os.path.join(ROOT, "Models"))
    parser.add_argument("--seeds", type=int, default=3, help="puzzles per model and route")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the comparison server")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--json", action="store_true", help="also print one JSON line per model")
    args = parser.parse_args()

    models = []
    for path in sorted(glob.glob(os.path.join(args.models, "*.safetensors"))):
        meta = metadata_of(path)
        if meta.get("architecture", "jigsaw-cnn") != "jigsaw-cnn":
            continue
        models.append((os.path.basename(path).removesuffix(".safetensors"), meta))
    photos = sorted(glob.glob(os.path.join(args.models, "samples", "photos", "*.jpg")))
    log = open(os.devnull, "w")
    swift, swift_url = start_swift(args.server, args.models, log)
    torch_server, torch_url = start_torch(args.models, args.threads, log)
    rows, failed = [], False
    try:
        for name, meta in models:
            grid, channels = int(meta["grid"]), int(meta.get("channels", 1))
            piece = int(meta["image_size"]) // grid
            seeds = range(args.seeds)
            if channels == 3:
                puzzles = photo_puzzles(photos, grid, piece, seeds)
            else:
                dataset = "fashion-mnist" if name.startswith("fashion") else "mnist"
                files = sorted(glob.glob(os.path.join(args.models, "samples", dataset, "*images*")))
                puzzles = digit_puzzles(files[0], grid, piece, seeds)
            stats = {"model": name, "puzzles": 0, "routes": set(), "max_abs_score_diff": 0.0, "max_abs_score": 0.0,
                     "max_abs_confidence_diff": 0.0, "permutations_identical": 0, "permutations_equivalent": 0,
                     "reconstructions_equal": True,
                     "correct_pieces": 0, "pieces": 0, "sizes": set()}
            for puzzle in puzzles:
                url = f"/v1/solve?model={name}"
                answers = [request(base + url, puzzle["body"], puzzle["type"]) for base in (swift_url, torch_url)]
                stored = [request(f"{base}/v1/puzzles/{answer['id']}") for base, answer in zip((swift_url, torch_url), answers)]
                ours, theirs = (np.asarray(s["scores"], dtype=np.float64) for s in stored)
                stats["puzzles"] += 1
                stats["routes"].add(puzzle["route"])
                stats["sizes"].add(puzzle["size"])
                stats["max_abs_score_diff"] = max(stats["max_abs_score_diff"], float(np.abs(ours - theirs).max()))
                stats["max_abs_score"] = max(stats["max_abs_score"], float(np.abs(ours).max()))
                stats["max_abs_confidence_diff"] = max(stats["max_abs_confidence_diff"], float(np.abs(
                    np.asarray(answers[0]["confidence"]) - np.asarray(answers[1]["confidence"])).max()))
                first, second = answers[0]["permutation"], answers[1]["permutation"]
                stats["permutations_identical"] += first == second == stored[0]["permutation"] == stored[1]["permutation"]
                stats["permutations_equivalent"] += same_up_to_identical(first, second, puzzle["classes"])
                images = [decoded(a["reconstruction"]) for a in answers]
                stats["reconstructions_equal"] &= images[0].shape == images[1].shape and bool((images[0] == images[1]).all())
                solved, truth = placed(first, puzzle["classes"]), placed(puzzle["answer"], puzzle["classes"])
                stats["correct_pieces"] += sum(a == b for a, b in zip(solved, truth))
                stats["pieces"] += len(puzzle["answer"])
            ok = stats["max_abs_score_diff"] <= args.tolerance and stats["permutations_equivalent"] == stats["puzzles"]
            failed |= not ok
            stats["pass"] = ok
            rows.append(stats)
    finally:
        for process in (torch_server, swift):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    header = ("model", "routes", "puzzles", "max |Δscore|", "max |score|", "max |Δconf|", "perms identical",
              "perms equal up to identical pieces", "images equal", "correct (equal terms)", "result")
    table = [header]
    for s in rows:
        table.append((s["model"], "+".join(sorted(s["routes"])), str(s["puzzles"]), f"{s['max_abs_score_diff']:.2e}",
                      f"{s['max_abs_score']:.1f}", f"{s['max_abs_confidence_diff']:.2e}",
                      f"{s['permutations_identical']}/{s['puzzles']}", f"{s['permutations_equivalent']}/{s['puzzles']}",
                      "yes" if s["reconstructions_equal"] else "no",
                      f"{s['correct_pieces']}/{s['pieces']}", "ok" if s["pass"] else "FAIL"))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"tolerance {args.tolerance:g}; jigsaw-server {swift_url}, FastAPI + PyTorch {torch_url} ({args.threads} threads)")
    for index, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    if args.json:
        for s in rows:
            print(json.dumps({k: (sorted(v) if isinstance(v, set) else v) for k, v in s.items()}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
