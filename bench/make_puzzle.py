#!/usr/bin/env python3
"""Writes a scrambled MNIST test digit as a PNG for the load tests (standard library only).

    python3 bench/make_puzzle.py --grid 2 --index 0 --seed 0 --out /tmp/puzzle-2x2.png
"""
import argparse
import gzip
import random
import struct
import zlib

parser = argparse.ArgumentParser()
parser.add_argument("--images", default="Tests/Fixtures/mnist-test-300-images-idx3-ubyte.gz")
parser.add_argument("--grid", type=int, default=2)
parser.add_argument("--index", type=int, default=0)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", required=True)
args = parser.parse_args()

data = gzip.open(args.images).read()
_, count, rows, cols = struct.unpack(">IIII", data[:16])
pixels = data[16 + args.index * rows * cols: 16 + (args.index + 1) * rows * cols]
grid, side = args.grid, rows // args.grid
order = list(range(grid * grid))
random.Random(args.seed).shuffle(order)  # slot s holds cell order[s]; the answer is `order`
image = bytearray(rows * cols)
for slot, cell in enumerate(order):
    for y in range(side):
        for x in range(side):
            source = ((cell // grid) * side + y) * cols + (cell % grid) * side + x
            target = ((slot // grid) * side + y) * cols + (slot % grid) * side + x
            image[target] = pixels[source]


def chunk(kind, payload):
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


raw = b"".join(b"\x00" + bytes(image[y * cols:(y + 1) * cols]) for y in range(rows))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open(args.out, "wb").write(png)
print(f"{args.out}: {cols}x{rows}, grid {grid}, answer {order}")
