#!/usr/bin/env python3
"""Comparison server: the tutorial's jigsaw network served with FastAPI + PyTorch (CPU).

It does the same work per request as `POST /v1/solve` of jigsaw-server: decode a scrambled PNG,
convert to the model's channels, cut into grid x grid pieces, normalise, run the network in eval
mode, match with scipy's linear_sum_assignment (Hungarian / Jonker-Volgenant), read confidences
from a 20-iteration log-domain Sinkhorn at tau = 1, reassemble the image, encode it as a base64
PNG and answer JSON. CI never runs this file; see bench/README.md.

    "${PYTHON:-../venv-torch/bin/python}" bench/fastapi_server.py --weights Models/mnist-2x2.safetensors --port 8081 --workers 2
"""
import argparse
import base64
import io
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
from fastapi import FastAPI, Request, Response
from PIL import Image
from safetensors.torch import load_file
from scipy.optimize import linear_sum_assignment


class SinkhornConvNet(nn.Module):
    """The tutorial's network (PAPERS.md section 3); all pieces go through g_1 in one call."""

    def __init__(self, in_channels=1, num_pieces=2, image_size=28, hidden_channels=32, kernel_size=5):
        super().__init__()
        self.num_pieces = num_pieces
        self.piece_size = image_size // num_pieces
        self.g_1 = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=kernel_size // 2),
            nn.MaxPool2d(2), nn.ReLU(), nn.BatchNorm2d(hidden_channels))
        self.g_2 = nn.Linear(hidden_channels * (self.piece_size // 2) ** 2, num_pieces ** 2, bias=False)

    def forward(self, pieces):  # [B, n, C, p, p] -> [B, n, n]
        b, n = pieces.shape[:2]
        features = self.g_1(pieces.flatten(0, 1)).flatten(1)
        return self.g_2(features).view(b, n, n)


def log_sinkhorn(log_alpha, iterations=20):
    for _ in range(iterations):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
    return log_alpha.exp()


def load_model(path):
    state = load_file(path)
    with open(path, "rb") as handle:
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    meta = header.get("__metadata__", {}) or {}
    n, features = state["g_2.weight"].shape
    hidden, channels, kernel, _ = state["g_1.0.weight"].shape
    grid = int(meta.get("grid", round(math.sqrt(n))))
    side = int(round(math.sqrt(features // hidden)))
    image_size = int(meta.get("image_size", grid * side * 2))
    mean = float(meta.get("normalization_mean", "0.1307").split(",")[0])
    std = float(meta.get("normalization_std", "0.3081").split(",")[0])
    model = SinkhornConvNet(channels, grid, image_size, hidden, kernel)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, grid, image_size, channels, mean, std


parser = argparse.ArgumentParser()
parser.add_argument("--weights", default=os.environ.get("WEIGHTS", "Tests/Fixtures/torch/tutorial-2x2-random.safetensors"))
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8081)
parser.add_argument("--workers", type=int, default=2)
args, _ = parser.parse_known_args()
os.environ["WEIGHTS"] = args.weights

torch.set_num_threads(1)
MODEL, GRID, IMAGE_SIZE, CHANNELS, MEAN, STD = load_model(os.environ["WEIGHTS"])
PIECE = IMAGE_SIZE // GRID
app = FastAPI()


@app.post("/v1/solve")
async def solve(request: Request):
    body = await request.body()
    try:
        image = Image.open(io.BytesIO(body))
        image.load()
    except Exception as error:  # the same contract as the Swift server: a JSON 400
        return Response(json.dumps({"error": {"code": "invalid_image", "message": str(error)}}), status_code=400,
                        media_type="application/json")
    image = image.convert("L" if CHANNELS == 1 else "RGB")
    width, height = image.size
    cell_w, cell_h = width // GRID, height // GRID
    left, top = (width - GRID * cell_w) // 2, (height - GRID * cell_h) // 2
    cells = [image.crop((left + c * cell_w, top + r * cell_h, left + (c + 1) * cell_w, top + (r + 1) * cell_h))
             for r in range(GRID) for c in range(GRID)]
    display = np.stack([np.asarray(cell, dtype=np.float32) / 255 for cell in cells])
    network = [cell if cell.size == (PIECE, PIECE) else cell.resize((PIECE, PIECE), Image.BILINEAR) for cell in cells]
    pieces = torch.from_numpy(np.stack([np.asarray(cell, dtype=np.float32) / 255 for cell in network]))
    pieces = pieces.view(1, GRID * GRID, CHANNELS, PIECE, PIECE)
    pieces = (pieces - MEAN) / STD
    with torch.no_grad():
        scores = MODEL(pieces)[0]
        soft = log_sinkhorn(scores.unsqueeze(0))[0].numpy()
    rows, columns = linear_sum_assignment(-scores.numpy())
    permutation = columns.tolist()
    confidence = [float(soft[i, permutation[i]]) for i in range(len(permutation))]
    solved = np.empty_like(display)
    solved[columns] = display[rows]
    canvas = np.zeros((GRID * cell_h, GRID * cell_w) + display.shape[3:], dtype=np.float32)
    for cell in range(GRID * GRID):
        r, c = divmod(cell, GRID)
        canvas[r * cell_h:(r + 1) * cell_h, c * cell_w:(c + 1) * cell_w] = solved[cell]
    buffer = io.BytesIO()
    Image.fromarray((canvas * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return {"permutation": permutation, "confidence": confidence,
            "reconstruction": base64.b64encode(buffer.getvalue()).decode()}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run("fastapi_server:app", host=args.host, port=args.port, workers=args.workers, log_level="warning",
                app_dir=os.path.dirname(os.path.abspath(__file__)))
