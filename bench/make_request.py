#!/usr/bin/env python3
"""Writes one `POST /v1/solve` request body for a model file, the same puzzles as parity_server.py.

Digit models get a scrambled test image of their dataset (28 x 28 PNG); photo models a sample
photo resized to a non-square size, scrambled and sent as a PNG (so the server cuts and resizes
the cells), or with --route pieces a JSON piece list already at the model's piece side. Prints
the content type on stdout.

    python bench/make_request.py Models/photo-3x3.safetensors --out /tmp/body --route png --seed 0
"""
import argparse
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parity_server import digit_puzzles, metadata_of, photo_puzzles  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model", help="a jigsaw .safetensors file")
    parser.add_argument("--out", required=True)
    parser.add_argument("--route", choices=("png", "pieces"), default="png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", help="the samples directory (default: MODEL's directory/samples)")
    args = parser.parse_args()
    meta = metadata_of(args.model)
    grid, channels = int(meta["grid"]), int(meta.get("channels", 1))
    piece = int(meta["image_size"]) // grid
    samples = args.samples or os.path.join(os.path.dirname(os.path.abspath(args.model)), "samples")
    name = os.path.basename(args.model)
    if channels == 3:
        puzzles = photo_puzzles(sorted(glob.glob(os.path.join(samples, "photos", "*.jpg"))), grid, piece, [args.seed])
    else:
        dataset = "fashion-mnist" if name.startswith("fashion") else "mnist"
        puzzles = digit_puzzles(sorted(glob.glob(os.path.join(samples, dataset, "*images*")))[0], grid, piece, [args.seed])
    puzzle = next((p for p in puzzles if p["route"] == args.route), None)
    if puzzle is None:
        raise SystemExit(f"no {args.route} request for {name}")
    with open(args.out, "wb") as handle:
        handle.write(puzzle["body"])
    print(puzzle["type"])
    print(f"{args.out}: {puzzle['route']} {puzzle['size']}, answer {puzzle['answer']}", file=sys.stderr)


if __name__ == "__main__":
    main()
