#!/usr/bin/env python3
"""Comparison server: jigsaw-server's `POST /v1/solve` served with FastAPI + PyTorch (CPU).

Any jigsaw model file the Swift server serves (tutorial, set context, self-attention, edge
attention photo networks; gray or RGB) is rebuilt from its `__metadata__` by `torch_jigsaw.py`.
Per request it does the same work as jigsaw-server: decode the PNG (or the JSON piece list / base64
image), cut into the model's grid (centre crop), fit every cell to the model's piece side, convert
channels, normalise, run the network in evaluation mode under `torch.inference_mode`, match with
scipy's `linear_sum_assignment`, read the confidences from a log-domain Sinkhorn S(X / tau)
(tau = 1 and 20 iterations unless the request says otherwise), store the puzzle in a bounded LRU
store, reassemble the display pieces, encode a base64 PNG and answer the same JSON
(`id`, `model`, `grid`, `permutation`, `confidence`, `reconstruction`, `soft` with `tau`,
`origin`, `created`, `links`); `Accept: image/png` (or `format=png`) answers the PNG itself.
`GET /v1/puzzles/{id}` returns the stored puzzle with its `scores`, as jigsaw-server does.
One puzzle per request and per forward pass.

    "${TORCH_PYTHON:-python}" bench/fastapi_server.py --weights Models/photo-3x3.safetensors --port 8081
    "${TORCH_PYTHON:-python}" bench/fastapi_server.py --models Models --port 8081 --threads 2 --workers 1

Not implemented: grid detection for uploads that name no model and no grid (the default model,
the smallest grid, is used instead), JPEG/WebP decoding identical to the Swift decoders (Pillow
decodes them), the other routes of the service.
"""
import argparse
import base64
import binascii
import collections
import datetime
import glob
import io
import json
import math
import os
import secrets
import sys
import threading

# Idle OpenMP threads sleep instead of spinning: with spinning, two intra-op threads on a 2-core
# machine shared with the load generator lose their time slices and a request takes 10x longer.
# OMP_WAIT_POLICY=ACTIVE in the environment restores the spinning default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fastapi import FastAPI, Request, Response  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_jigsaw as tj  # noqa: E402

ENV = "JIGSAW_TORCH_SERVER_ARGS"


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="FastAPI + PyTorch comparison server for POST /v1/solve")
    parser.add_argument("--weights", action="append", default=[], help="a jigsaw weights file (repeatable)")
    parser.add_argument("--models", help="a directory whose jigsaw *.safetensors files are all served")
    parser.add_argument("--default-model", help="the model used when a request names none (default: smallest grid)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads per worker")
    parser.add_argument("--display-size", type=int, default=512)
    parser.add_argument("--store-capacity", type=int, default=1024)
    parser.add_argument("--confidence-tau", type=float, default=1.0)
    parser.add_argument("--iterations", type=int, default=20, help="default Sinkhorn iterations")
    parser.add_argument("--max-iterations", type=int, default=1000)
    parser.add_argument("--max-image-samples", type=int, default=16 << 20)
    return parser.parse_args(argv)


if ENV in os.environ:  # a uvicorn worker process: the parent's arguments
    ARGS = argparse.Namespace(**json.loads(os.environ[ENV]))
else:
    ARGS = parse_arguments(sys.argv[1:] if __name__ == "__main__" else [])
    if ARGS.models is None and not ARGS.weights:
        ARGS.weights = [os.environ.get("WEIGHTS", "Models/mnist-2x2.safetensors")]
    os.environ[ENV] = json.dumps(vars(ARGS))

torch.set_num_threads(ARGS.threads)


def load_models():
    paths = list(ARGS.weights)
    if ARGS.models:
        paths += sorted(glob.glob(os.path.join(ARGS.models, "*.safetensors")))
    models = {}
    for path in paths:
        try:
            model = tj.Model(path)
        except ValueError as error:  # a sorting network or an unserved channel count
            if path in ARGS.weights:
                raise
            print(f"skipping {path}: {error}", file=sys.stderr)
            continue
        models[model.name] = model
    if not models:
        raise SystemExit("no jigsaw model loaded")
    return models


MODELS = load_models()
DEFAULT = ARGS.default_model or min(MODELS.values(), key=lambda m: (m.grid, m.name)).name
STORE = collections.OrderedDict()
STORE_LOCK = threading.Lock()
app = FastAPI()


class ServiceError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(error):
    return Response(json.dumps({"error": {"code": error.code, "message": error.message}}),
                    status_code=error.status, media_type="application/json")


def json_response(body, status=200):
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json")


# ----------------------------------------------------------------------------------------------
# Request content


def decode_image(data):
    """[H, W, C] uint8 (C = 1, 3 or 4) of PNG (or other Pillow-readable) bytes."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height * len(image.getbands()) > ARGS.max_image_samples:
            raise ServiceError(413, "image_too_large", f"a {image.width}x{image.height} image exceeds the sample limit")
        image.load()
    except ServiceError:
        raise
    except Exception as error:
        raise ServiceError(400, "invalid_image", f"the image cannot be decoded: {error}")
    if image.mode in ("1", "L", "I", "I;16", "F"):
        image = image.convert("L")
    elif image.mode in ("LA", "PA", "RGBA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def base64_bytes(text, field):
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise ServiceError(400, "invalid_image", f"{field} is not valid base64")
    return data


def piece_from_numbers(value, field):
    """[H][W] or [C][H][W] numbers in [0, 1] -> [H, W, C] uint8, rounded as the service does."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except ValueError:
        raise ServiceError(422, "unprocessable_input", f"{field} is not rectangular")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 3) or array.shape[1] == 0 or array.shape[2] == 0:
        raise ServiceError(422, "unprocessable_input", f"{field}: a piece array is [H][W] or [C][H][W] with C = 1 or 3")
    if not np.all((array >= 0) & (array <= 1)):
        raise ServiceError(422, "unprocessable_input", f"{field}: values must be in [0, 1]")
    scaled = array * 255
    whole = np.floor(scaled)
    whole += (scaled - whole) >= 0.5
    return whole.astype(np.uint8).transpose(1, 2, 0).copy()


def is_colourful(pixels):
    if pixels.shape[2] < 3:
        return False
    flat = pixels.reshape(-1, pixels.shape[2])[:, :3].astype(np.int16)
    step = max(1, len(flat) // 65536)
    sample = flat[::step]
    spread = np.abs(sample[:, [0, 1, 0]] - sample[:, [1, 2, 2]]).max(axis=1)
    return bool((spread > 8).sum() * 100 > len(sample))


def choose_model(name, grid, piece_count=None, colourful=False):
    if name is not None:
        if name not in MODELS:
            raise ServiceError(404, "model_not_found", f"no model named '{name}'; available: {', '.join(MODELS)}")
        model = MODELS[name]
        if grid is not None and grid != model.grid:
            raise ServiceError(422, "unprocessable_input", f"model '{name}' solves {model.grid}x{model.grid} puzzles")
        return model
    wanted = grid
    if wanted is None and piece_count is not None and math.isqrt(piece_count) ** 2 == piece_count:
        wanted = math.isqrt(piece_count)
    if wanted is None:
        return MODELS[DEFAULT]
    candidates = [m for m in MODELS.values() if m.grid == wanted]
    if not candidates:
        raise ServiceError(422, "unprocessable_input", f"no model solves {wanted}x{wanted} puzzles")
    preferred = 3 if colourful else 1
    return min(candidates, key=lambda m: (m.channels != preferred, m.name != DEFAULT, m.name))


def query_float(request, name, value):
    if value is None:
        value = request.query_params.get(name)
        if value is None:
            return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ServiceError(400, "invalid_parameter", f"{name} must be a positive finite number")
    if not (math.isfinite(value) and value > 0):
        raise ServiceError(400, "invalid_parameter", f"{name} must be a positive finite number")
    return value


def query_int(request, name, value, low, high):
    if value is None:
        value = request.query_params.get(name)
        if value is None:
            return None
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ServiceError(400, "invalid_parameter", f"{name} must be an integer in {low}...{high}")
    if not low <= value <= high:
        raise ServiceError(400, "invalid_parameter", f"{name} must be an integer in {low}...{high}")
    return value


def wants_png(request):
    form = request.query_params.get("format")
    if form is not None:
        if form.lower() not in ("png", "json"):
            raise ServiceError(400, "invalid_parameter", "format must be png or json")
        return form.lower() == "png"
    accepted = [t.split(";")[0].strip() for t in request.headers.get("accept", "").split(",")]
    return "image/png" in accepted and "application/json" not in accepted


# ----------------------------------------------------------------------------------------------
# Solving


def links(identifier):
    base = f"/v1/puzzles/{identifier}"
    return {"self": base, "scrambled": base + "/scrambled.png", "solution": base + "/solution.png",
            "soft": base + "/soft?tau=1"}


def png_base64(pixels):
    return base64.b64encode(png_bytes(pixels)).decode()


def png_bytes(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def solve_cells(cell_list, model, tau, iterations, origin):
    """Scores, matches and stores a puzzle; returns the stored record and the soft matrix."""
    if len(cell_list) != model.n:
        raise ServiceError(422, "unprocessable_input",
                           f"the model expects {model.n} pieces (a {model.grid}x{model.grid} grid), got {len(cell_list)}")
    shape = cell_list[0].shape[:2]
    if shape[0] == 0 or shape[1] == 0 or any(cell.shape[:2] != shape for cell in cell_list):
        raise ServiceError(422, "unprocessable_input", "all pieces must have the same non-zero width and height")
    pieces = tj.network_pieces(cell_list, model)
    display = tj.display_cells(cell_list, ARGS.display_size)
    scores = model.scores(pieces)[0]
    if not torch.isfinite(scores).all():
        raise ServiceError(500, "numerical_failure", "the scores are not finite")
    largest = float(scores.abs().max())
    if largest / tau > 1e6:
        raise ServiceError(400, "invalid_parameter", f"tau is too small for these scores (max |X|/tau = {largest / tau})")
    scores_np = scores.numpy()
    permutation = tj.match(scores_np)
    soft, marginal_error = tj.sinkhorn(scores, tau, iterations)
    soft_np = soft.numpy()
    confidence = soft_np[np.arange(model.n), permutation]
    identifier = secrets.token_hex(8)
    record = {"id": identifier, "model": model.name, "grid": model.grid, "pieces": display, "scores": scores_np,
              "permutation": permutation.tolist(), "confidence": [float(v) for v in confidence], "origin": origin,
              "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with STORE_LOCK:
        STORE[identifier] = record
        while len(STORE) > ARGS.store_capacity:
            STORE.popitem(last=False)
    return record, soft_np, marginal_error


def puzzle_body(record, reconstruction=None, soft=None, scores=False):
    body = {"id": record["id"], "model": record["model"], "grid": record["grid"],
            "permutation": record["permutation"], "confidence": record["confidence"]}
    if reconstruction is not None:
        body["reconstruction"] = reconstruction
    if scores:
        body["scores"] = record["scores"].tolist()
    if soft is not None:
        body["soft"] = soft
    body.update(origin=record["origin"], created=record["created"], links=links(record["id"]))
    return body


def kind_of(request, body):
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body:
        raise ServiceError(400, "empty_body", "the request has no body")
    if media.startswith("image/"):
        return "image"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media in ("", "application/octet-stream", "application/x-www-form-urlencoded"):
        if body[:8] == b"\x89PNG\r\n\x1a\n" or body[:3] == b"\xff\xd8\xff" or body[:4] == b"RIFF":
            return "image"
        if body.lstrip()[:1] == b"{":
            return "json"
    raise ServiceError(415, "unsupported_media_type", f"unsupported media type {media or '(none)'}")


def solve_request(request, body):
    png = wants_png(request)
    grid = query_int(request, "grid", None, 1, 16)
    if kind_of(request, body) == "image":
        tau_given = query_float(request, "tau", None)
        iterations = query_int(request, "iterations", None, 1, ARGS.max_iterations) or ARGS.iterations
        pixels = decode_image(body)
        model = choose_model(request.query_params.get("model"), grid, colourful=is_colourful(pixels))
        if pixels.shape[0] < model.grid or pixels.shape[1] < model.grid:
            raise ServiceError(422, "unprocessable_input", "the image is smaller than the grid")
        cell_list, origin = tj.cells(pixels, model.grid), "upload"
    else:
        try:
            payload = json.loads(body)
        except ValueError as error:
            raise ServiceError(400, "invalid_json", f"the body is not JSON: {error}")
        if not isinstance(payload, dict):
            raise ServiceError(400, "invalid_json", "the body is not a JSON object")
        tau_given = query_float(request, "tau", payload.get("tau"))
        iterations = query_int(request, "iterations", payload.get("iterations"), 1, ARGS.max_iterations) or ARGS.iterations
        name = payload.get("model") or request.query_params.get("model")
        pieces, image = payload.get("pieces"), payload.get("image")
        if pieces is not None and image is None:
            if not isinstance(pieces, list) or not pieces:
                raise ServiceError(422, "unprocessable_input", "the piece list is empty")
            cell_list = []
            for index, piece in enumerate(pieces):
                field = f"pieces[{index}]"
                if isinstance(piece, str):
                    cell_list.append(decode_image(base64_bytes(piece, field)))
                else:
                    cell_list.append(piece_from_numbers(piece, field))
            colourful = any(is_colourful(cell) for cell in cell_list)
            model = choose_model(name, grid, piece_count=len(cell_list), colourful=colourful)
            origin = "pieces"
        elif image is not None and pieces is None:
            pixels = decode_image(base64_bytes(image, "image"))
            model = choose_model(name, grid, colourful=is_colourful(pixels))
            cell_list, origin = tj.cells(pixels, model.grid), "upload"
        else:
            raise ServiceError(400, "invalid_json", "give exactly one of 'pieces' (a list of pieces) and 'image' (a base64 PNG)")
    tau = tau_given if tau_given is not None else ARGS.confidence_tau
    record, soft, marginal_error = solve_cells(cell_list, model, tau, iterations, origin)
    solved = tj.assemble(record["pieces"], np.asarray(record["permutation"]), model.grid)
    if png:
        return Response(png_bytes(solved), media_type="image/png", headers={
            "X-Puzzle-Id": record["id"], "X-Model": model.name,
            "X-Permutation": ",".join(map(str, record["permutation"])),
            "Content-Location": f"/v1/puzzles/{record['id']}/solution.png"})
    soft_body = None
    if tau_given is not None:
        soft_body = {"tau": tau_given, "iterations": iterations, "matrix": soft.tolist(),
                     "row_marginal_error": marginal_error}
    return json_response(puzzle_body(record, reconstruction=png_base64(solved), soft=soft_body))


@app.post("/v1/solve")
async def solve(request: Request):
    body = await request.body()
    try:
        return solve_request(request, body)
    except ServiceError as error:
        return error_response(error)


@app.get("/v1/puzzles/{identifier}")
async def describe_puzzle(identifier: str):
    with STORE_LOCK:
        record = STORE.get(identifier)
    if record is None:
        return error_response(ServiceError(404, "puzzle_not_found", f"no puzzle '{identifier}'"))
    return json_response(puzzle_body(record, scores=True))


@app.get("/v1/models")
async def list_models():
    return json_response({"default_model": DEFAULT, "models": [
        {"name": m.name, "kind": "jigsaw", "grid": m.grid, "channels": m.channels, "piece_size": m.piece,
         "default": m.name == DEFAULT, "metadata": m.metadata} for m in MODELS.values()]})


@app.get("/healthz")
async def health():
    return json_response({"status": "ok"})


@app.get("/readyz")
async def ready():
    return json_response({"status": "ready", "models": list(MODELS)})


if __name__ == "__main__":
    import uvicorn

    print(f"listening on http://{ARGS.host}:{ARGS.port} ({len(MODELS)} models, {ARGS.workers} worker(s), "
          f"{ARGS.threads} torch thread(s) each)", flush=True)
    if ARGS.workers > 1:
        uvicorn.run("fastapi_server:app", host=ARGS.host, port=ARGS.port, workers=ARGS.workers, log_level="warning",
                    access_log=False, app_dir=os.path.dirname(os.path.abspath(__file__)))
    else:
        uvicorn.run(app, host=ARGS.host, port=ARGS.port, log_level="warning", access_log=False)
