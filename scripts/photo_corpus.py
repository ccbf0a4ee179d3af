#!/usr/bin/env python3
"""Builds a photograph corpus for jigsaw training and evaluation from folders of images.

    python3 scripts/photo_corpus.py OUT SRC [SRC ...] [--test-fraction 0.2] [--max-side 768]

Steps (see docs/photos.md):
  1. every *.jpg / *.jpeg / *.png / *.webp under the SRC folders, recursively;
  2. drop files matching an --exclude glob (relative to their SRC), files under --min-bytes
     (20 kB) and files with a shorter side under --min-side (256 px);
  3. drop non-photographs: an image is kept when its 64x64 RGB thumbnail has at least
     --min-colours (32) distinct colours after quantising each channel to 5 bits, and its mean
     absolute gray gradient on a 256x256 thumbnail (0..255 scale) is at least --min-gradient (2.0)
     and its fraction of flat pixels (both gradients < 1) is at most --max-flat (0.3);
     flat vector artwork fails the colour count or the flat fraction;
  4. group near-duplicates (the same picture at several resolutions or crops of one aspect):
     a 63-bit DCT perceptual hash (32x32 gray, top-left 8x8 DCT block without the DC term against
     its median) and union-find over pairs within --hamming (10) bits, joined with name families
     (one Plasma wallpaper package NAME/contents/...; names differing only by a light/dark or
     WxH suffix); links to one file count once; the largest image (by pixel count) of each
     group is its source photo, its path relative to its SRC root the group's canonical name;
  5. split by group: test when the first 8 bytes of SHA-256(canonical name), as a fraction of
     2^64, fall below --test-fraction; all others train, so no photo is in both;
  6. write each source photo as RGB PNG, downscaled (Lanczos) so its shorter side is at most
     --max-side, to OUT/train/ or OUT/test/, and OUT/manifest.json.
Requires Pillow and NumPy (only this preparation script; the Swift package does not).
"""
import argparse
import hashlib
import json
import fnmatch
import os
import re
import sys

import numpy as np
from PIL import Image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def find_images(roots):
    seen = set()  # wallpaper packages link one file under several names
    for root in roots:
        root = os.path.abspath(root)
        for folder, _, files in os.walk(root, followlinks=True):
            for name in sorted(files):
                if name.lower().endswith(EXTENSIONS):
                    path = os.path.join(folder, name)
                    real = os.path.realpath(path)
                    if os.path.isfile(path) and real not in seen:
                        seen.add(real)
                        yield root, path


def load_rgb(path):
    image = Image.open(path)
    image.draft("RGB", (512, 512))  # JPEG: decode at a reduced scale for the measurements
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def measures(image):
    small = np.asarray(image.resize((64, 64), Image.BOX), dtype=np.uint8)
    quantised = (small >> 3).astype(np.int32)
    codes = (quantised[..., 0] << 10) | (quantised[..., 1] << 5) | quantised[..., 2]
    colours = int(np.unique(codes).size)
    gray = np.asarray(image.convert("L").resize((256, 256), Image.BOX), dtype=np.float64)
    gx = np.abs(np.diff(gray, axis=1))[:-1, :]
    gy = np.abs(np.diff(gray, axis=0))[:, :-1]
    gradient = float((gx.mean() + gy.mean()) / 2)
    flat = float(((gx < 1) & (gy < 1)).mean())
    return colours, gradient, flat


def dct_matrix(n):
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


DCT32 = dct_matrix(32)


def perceptual_hash(image):
    gray = np.asarray(image.convert("L").resize((32, 32), Image.BOX), dtype=np.float64)
    block = (DCT32 @ gray @ DCT32.T)[:8, :8].flatten()
    bits = block[1:] > np.median(block[1:])  # the DC term carries no structure
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value  # 63 bits


FAMILY_SUFFIX = re.compile(r"([-_](l|d|light|dark|day|night|morning|evening))?([-_]?\d+x\d+)?$", re.IGNORECASE)


def family(relative):
    """Files that are variants of one picture by their names: a Plasma wallpaper package
    (NAME/contents/images*/WxH.ext) is one family; otherwise the file name without extension, a
    light/dark suffix and a resolution suffix, within its folder."""
    parts = relative.split(os.sep)
    if "contents" in parts:
        return os.sep.join(parts[:parts.index("contents")])
    stem = os.path.splitext(relative)[0]
    return FAMILY_SUFFIX.sub("", stem).lower()


def hamming(a, b):
    return bin(a ^ b).count("1")


class UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, i):
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def split_of(name, test_fraction):
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2.0**64 < test_fraction else "train"


def safe_name(relative):
    stem = os.path.splitext(relative)[0]
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem.replace(os.sep, "__"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--max-side", type=int, default=768)
    parser.add_argument("--min-bytes", type=int, default=20_000)
    parser.add_argument("--min-side", type=int, default=256)
    parser.add_argument("--min-colours", type=int, default=32)
    parser.add_argument("--min-gradient", type=float, default=2.0)
    parser.add_argument("--max-flat", type=float, default=0.3)
    parser.add_argument("--hamming", type=int, default=10)
    parser.add_argument("--exclude", action="append", default=[],
                        help="glob on the path relative to its source root (repeatable): pictures known "
                             "to be renders or patterns that pass the measured criteria")
    args = parser.parse_args()

    found, candidates, rejected = 0, [], {"small": 0, "unreadable": 0, "artwork": 0, "excluded": 0}
    for root, path in find_images(args.sources):
        found += 1
        if any(fnmatch.fnmatch(os.path.relpath(path, root), pattern) for pattern in args.exclude):
            rejected["excluded"] += 1
            continue
        size_bytes = os.path.getsize(path)
        if size_bytes < args.min_bytes:
            rejected["small"] += 1
            continue
        try:
            with Image.open(path) as probe:
                width, height = probe.size
            if min(width, height) < args.min_side:
                rejected["small"] += 1
                continue
            image = load_rgb(path)
        except Exception as error:  # noqa: BLE001 - any undecodable file is skipped
            print(f"skip {path}: {error}", file=sys.stderr)
            rejected["unreadable"] += 1
            continue
        colours, gradient, flat = measures(image)
        entry = {"path": path, "relative": os.path.relpath(path, root), "root": root,
                 "width": width, "height": height, "bytes": size_bytes,
                 "colours": colours, "gradient": round(gradient, 3), "flat": round(flat, 4)}
        if colours < args.min_colours or gradient < args.min_gradient or flat > args.max_flat:
            rejected["artwork"] += 1
            print(f"artwork {path}: colours {colours} gradient {gradient:.2f} flat {flat:.2f}", file=sys.stderr)
            continue
        entry["hash"] = perceptual_hash(image)
        candidates.append(entry)

    groups = UnionFind(len(candidates))
    first_of_family = {}
    for i, entry in enumerate(candidates):
        key = (entry["root"], family(entry["relative"]))
        if key in first_of_family:
            groups.union(first_of_family[key], i)
        else:
            first_of_family[key] = i
    for i in range(len(candidates)):
        for j in range(i + 1, len(candidates)):
            if hamming(candidates[i]["hash"], candidates[j]["hash"]) <= args.hamming:
                groups.union(i, j)
    members = {}
    for i in range(len(candidates)):
        members.setdefault(groups.find(i), []).append(i)

    manifest = []
    for split in ("train", "test"):
        os.makedirs(os.path.join(args.output, split), exist_ok=True)
    used_names = set()
    for group in sorted(members.values(), key=lambda g: candidates[g[0]]["relative"]):
        best = max(group, key=lambda i: (candidates[i]["width"] * candidates[i]["height"], candidates[i]["bytes"],
                                         candidates[i]["relative"]))
        entry = candidates[best]
        canonical = entry["relative"]
        split = split_of(canonical, args.test_fraction)
        name = safe_name(canonical)
        while name in used_names:
            name += "_"
        used_names.add(name)
        with Image.open(entry["path"]) as full:
            full.load()
            if full.mode in ("RGBA", "LA", "PA") or (full.mode == "P" and "transparency" in full.info):
                full = Image.alpha_composite(Image.new("RGBA", full.size, (0, 0, 0, 255)), full.convert("RGBA"))
            full = full.convert("RGB")
            scale = min(1.0, args.max_side / min(full.size))
            if scale < 1:
                full = full.resize((max(1, round(full.width * scale)), max(1, round(full.height * scale))), Image.LANCZOS)
            out_path = os.path.join(args.output, split, name + ".png")
            full.save(out_path, optimize=False, compress_level=6)
            written = full.size
        manifest.append({
            "name": name + ".png", "split": split, "source": entry["path"], "canonical": canonical,
            "source_size": [entry["width"], entry["height"]], "size": list(written),
            "hash": f"{entry['hash']:016x}", "colours": entry["colours"], "gradient": entry["gradient"],
            "flat": entry["flat"],
            "duplicates": sorted(candidates[i]["path"] for i in group if i != best),
        })
    counts = {
        "found": found, "rejected": rejected, "kept": len(candidates), "groups": len(members),
        "train": sum(1 for m in manifest if m["split"] == "train"),
        "test": sum(1 for m in manifest if m["split"] == "test"),
    }
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "sources")}
    with open(os.path.join(args.output, "manifest.json"), "w") as handle:
        json.dump({"counts": counts, "settings": settings, "sources": [os.path.abspath(s) for s in args.sources],
                   "photos": manifest}, handle, indent=1)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
