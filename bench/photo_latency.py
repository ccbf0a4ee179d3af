"""End-to-end latency of a phone-photo solve: a 12-megapixel scrambled JPEG in, JSON out.

Makes a 4032 x 3024 photo from PHOTO (centre-cropped to 4:3, enlarged, with sensor-like noise so
the JPEG is as large as a phone's), cuts it GRID x GRID, shuffles the pieces with a fixed seed,
saves it as a quality-92 JPEG and posts it to a running jigsaw-server (no model named: the
server finds the grid and the photo model). Prints the median wall time seen by the client and
the median of every Server-Timing phase, and checks that the answer is the true permutation.

    python bench/photo_latency.py Models/samples/photos/Wine_by_Jakkub_Mede.jpg --url http://127.0.0.1:8080
Needs Pillow and NumPy (a virtual environment outside the repository).
"""

import argparse
import io
import json
import random
import statistics
import time
import urllib.request

import numpy as np
from PIL import Image


def phone_photo(path, grid, seed):
    image = Image.open(path).convert("RGB")
    width, height = image.size
    if width * 3 > height * 4:
        crop = height * 4 // 3
        image = image.crop(((width - crop) // 2, 0, (width - crop) // 2 + crop, height))
    else:
        crop = width * 3 // 4
        image = image.crop((0, (height - crop) // 2, width, (height - crop) // 2 + crop))
    image = image.resize((4032, 3024), Image.BICUBIC)
    pixels = np.asarray(image).astype(np.float32)
    pixels += np.random.default_rng(seed).normal(0, 4, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    piece_width, piece_height = 4032 // grid, 3024 // grid
    cells = [image.crop(((k % grid) * piece_width, (k // grid) * piece_height,
                         (k % grid + 1) * piece_width, (k // grid + 1) * piece_height)) for k in range(grid * grid)]
    permutation = list(range(grid * grid))
    random.Random(seed).shuffle(permutation)
    scrambled = Image.new("RGB", (piece_width * grid, piece_height * grid))
    for slot, cell in enumerate(permutation):
        scrambled.paste(cells[cell], ((slot % grid) * piece_width, (slot // grid) * piece_height))
    buffer = io.BytesIO()
    scrambled.save(buffer, "JPEG", quality=92)
    return buffer.getvalue(), permutation


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo")
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    body, truth = phone_photo(args.photo, args.grid, args.seed)
    totals, phases, answers = [], {}, set()
    for run in range(args.runs + 2):
        request = urllib.request.Request(args.url + "/v1/solve", data=body, headers={"Content-Type": "image/jpeg"})
        start = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
            timing = response.headers.get("Server-Timing", "")
        elapsed = (time.perf_counter() - start) * 1000
        if run < 2:
            continue  # warm-up
        totals.append(elapsed)
        answers.add((answer["model"], tuple(answer["permutation"])))
        for part in timing.split(","):
            name, _, duration = part.strip().partition(";dur=")
            phases.setdefault(name, []).append(float(duration))
    (model, permutation), = answers if len(answers) == 1 else (next(iter(answers)),)
    print(json.dumps({
        "jpeg_bytes": len(body), "grid": args.grid, "runs": args.runs, "model": model,
        "solved": list(permutation) == truth, "client_ms_median": round(statistics.median(totals), 2),
        "server_ms_median": {name: round(statistics.median(values), 2) for name, values in phases.items()},
    }))


if __name__ == "__main__":
    main()
