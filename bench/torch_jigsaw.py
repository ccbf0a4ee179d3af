"""PyTorch (CPU) twin of jigsaw-server's inference path, built from a weights file alone.

`load_model(path)` reads a `.safetensors` file's `__metadata__` (the keys of
`JigsawNetworkConfiguration`) and builds the exact network it describes: the tutorial's
conv blocks (Conv -> MaxPool(2) -> ReLU -> BatchNorm, x (1 + extra_conv_blocks)), an optional
hidden layer with set context (DeepSets mean, optional context embedding), edge attention blocks
on the edge graph (MGC or prediction compatibilities of the full-resolution normalised pieces),
self-attention blocks and the score head. The tensor names are the project's (`g_1.0.weight`,
`g_2.0.weight`, `context.weight`, `edges.0.weight`, `attention.0.query.weight`, ...); loading is
strict. A file without metadata is read as the tutorial's network with shapes inferred, as
`ModelInference` does.

The preprocessing follows `JigsawInference` and `PuzzleSolver`: centre-crop to a multiple of the
grid, cut into cells, resize every cell on its own (area filter when shrinking, bilinear with
half-pixel centres when enlarging, float sums rounded once to 8 bits), alpha on black, BT.601 luma
for a one-channel model, pixels / 255, per-channel normalisation; Hungarian matching maximising
the scores; confidences from a log-domain Sinkhorn S(X / tau) (rows then columns).
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

LUMA = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------------------------
# Weights files


def read_safetensors(path):
    """(tensors as float32 torch tensors, metadata dict) of a safetensors file."""
    with open(path, "rb") as handle:
        data = handle.read()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    body = memoryview(data)[8 + length:]
    tensors = {}
    dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=dtypes[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.astype(np.float32, copy=True))
    return tensors, header.get("__metadata__", {}) or {}


def _floats(text):
    return [float(v) for v in text.split(",")]


def configuration(metadata, tensors):
    """The network configuration of a weights file, with `JigsawNetworkConfiguration`'s defaults."""
    m = dict(metadata)
    if "architecture" not in m:
        m = _inferred_metadata(tensors)
    if m["architecture"] != "jigsaw-cnn":
        raise ValueError(f"architecture {m['architecture']!r} is not a jigsaw network")
    flag = lambda key: m.get(key, "0").strip().lower() in ("1", "true", "yes")
    c = {
        "grid": int(m["grid"]),
        "image_size": int(m["image_size"]),
        "channels": int(m.get("channels", 1)),
        "hidden_channels": int(m.get("hidden_channels", 32)),
        "kernel_size": int(m.get("kernel_size", 5)),
        "extra_conv_blocks": int(m.get("extra_conv_blocks", 0)),
        "hidden_units": int(m.get("hidden_units", 0)),
        "set_context": flag("set_context"),
        "context_units": int(m.get("context_units", 0)),
        "attention_blocks": int(m.get("attention_blocks", 0)),
        "attention_heads": int(m.get("attention_heads", 4)),
        "attention_head_units": int(m.get("attention_head_units", 32)),
        "edge_blocks": int(m.get("edge_blocks", 0)),
        "edge_measure": m.get("edge_measure", "mgc"),
        "edge_sharpness": float(m.get("edge_sharpness", 8)),
        "normalization_mean": _floats(m.get("normalization_mean", "0.1307")),
        "normalization_std": _floats(m.get("normalization_std", "0.3081")),
    }
    c["piece_size"] = c["image_size"] // c["grid"]
    if c["channels"] not in (1, 3):
        raise ValueError(f"models with {c['channels']} input channels are not served")
    return c


def _inferred_metadata(tensors):
    """The tutorial layout from tensor shapes (a PyTorch `state_dict` export without metadata)."""
    hidden, channels, kernel, _ = tensors["g_1.0.weight"].shape
    blocks = 1
    while f"g_1.{4 * blocks}.weight" in tensors:
        blocks += 1
    if "g_2.weight" in tensors:
        n, features = tensors["g_2.weight"].shape
        units = 0
    else:
        units, features = tensors["g_2.0.weight"].shape
        n = tensors["g_2.2.weight"].shape[0]
    grid = math.isqrt(n)
    side = math.isqrt(features // hidden)
    piece = side << blocks
    metadata = {"architecture": "jigsaw-cnn", "grid": str(grid), "image_size": str(grid * piece),
                "channels": str(channels), "hidden_channels": str(hidden), "kernel_size": str(kernel),
                "extra_conv_blocks": str(blocks - 1), "hidden_units": str(units),
                "set_context": "1" if "context.weight" in tensors else "0"}
    if "context.embed.weight" in tensors:
        metadata["context_units"] = str(tensors["context.embed.weight"].shape[0])
    return metadata


# ----------------------------------------------------------------------------------------------
# Edge graph (EdgeGraph / EdgeCompatibility)


def _gradient_models(strips):
    """Mean [..., C] and inverse covariance [..., C, C] of the gradients outer - inner along an edge
    (strips [..., 2, C, L]), with Gallagher's dummy gradients and a 1e-6 ridge."""
    g = (strips[..., 0, :, :] - strips[..., 1, :, :]).transpose(-1, -2)  # [..., L, C]
    channels = g.shape[-1]
    dummies = []
    for value in (0.0, 1.0 / 255, -1.0 / 255):
        for c in range(channels):
            d = torch.full((channels,), value)
            d[c] = -value
            dummies.append(d)
    dummy = torch.stack(dummies).expand(*g.shape[:-2], len(dummies), channels)
    samples = torch.cat([g, dummy], dim=-2)
    mean = samples.mean(dim=-2)
    centred = (samples - mean.unsqueeze(-2)).double()
    cov = centred.transpose(-1, -2) @ centred / (samples.shape[-2] - 1)
    cov = cov + 1e-6 * torch.eye(channels, dtype=torch.float64)
    return mean, torch.linalg.inv(cov).float()


def _mgc(first, second):
    """L[i, j] = MGC of first[b, i]'s facing edge against second[b, j]'s; strips [B, n, 2, C, L]."""
    mean_a, inv_a = _gradient_models(first)
    mean_b, inv_b = _gradient_models(second)
    a = first[:, :, 0].transpose(-1, -2)  # [B, n, L, C]
    b = second[:, :, 0].transpose(-1, -2)
    across = b.unsqueeze(1) - a.unsqueeze(2)  # [B, i, j, L, C]: b_j - a_i
    da = across - mean_a[:, :, None, None, :]
    db = -across - mean_b[:, None, :, None, :]
    term_a = ((da @ inv_a[:, :, None]) * da).sum(-1).clamp(min=0).sum(-1)  # inv_a [B, i, 1, C, C]
    term_b = ((db @ inv_b[:, None]) * db).sum(-1).clamp(min=0).sum(-1)
    return term_a + term_b


def _prediction(first, second):
    """L1 prediction dissimilarity of first[b, i] placed against second[b, j] (p = q = 1)."""
    a_last, a_prev = first[:, :, 0].flatten(2), first[:, :, 1].flatten(2)  # [B, n, C*L]
    b_first, b_next = second[:, :, 0].flatten(2), second[:, :, 1].flatten(2)
    e1 = (2 * a_last - a_prev).unsqueeze(2) - b_first.unsqueeze(1)
    e2 = (2 * b_first - b_next).unsqueeze(1) - a_last.unsqueeze(2)
    return (e1.abs() + e2.abs()).sum(-1)


def edge_graph(pieces, sharpness, measure="mgc"):
    """Weights [B, 4, n, n] (piece j right of, left of, below, above i) and features [B, n, 8]."""
    n = pieces.shape[1]
    right = torch.stack([pieces[..., :, -1], pieces[..., :, -2]], dim=2)  # [B, n, 2, C, H]
    left = torch.stack([pieces[..., :, 0], pieces[..., :, 1]], dim=2)
    bottom = torch.stack([pieces[..., -1, :], pieces[..., -2, :]], dim=2)
    top = torch.stack([pieces[..., 0, :], pieces[..., 1, :]], dim=2)
    cost = _mgc if measure == "mgc" else _prediction
    horizontal = cost(right, left)  # i left of j
    vertical = cost(bottom, top)    # i above j
    costs = torch.stack([horizontal, horizontal.transpose(1, 2), vertical, vertical.transpose(1, 2)], dim=1)
    eye = torch.eye(n, dtype=torch.bool)
    costs = costs.masked_fill(eye, float("inf"))
    two = costs.topk(min(2, n - 1), dim=-1, largest=False).values
    best, second = two[..., 0], two[..., -1]
    usable = (second > 0) & torch.isfinite(second)
    scale = torch.where(usable, sharpness / second, torch.zeros_like(second))
    logits = (-scale.unsqueeze(-1) * costs).masked_fill(eye, float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    confidence = torch.where(usable, 1 - best / second, torch.zeros_like(second))  # [B, 4, n]
    opposite = weights[:, [1, 0, 3, 2]]
    mutual = (weights * opposite.transpose(-1, -2)).sum(-1)
    return weights, torch.cat([confidence, mutual], dim=1).transpose(1, 2)


# ----------------------------------------------------------------------------------------------
# The network


class SetContext(nn.Module):
    """`C . mean_j phi(f_j)` with phi(f) = f or ReLU(E f + e); tensors `context.weight`, `context.embed.*`."""

    def __init__(self, features, units, context_units):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(units, context_units or features))
        self.embed = nn.Linear(features, context_units) if context_units else None

    def forward(self, f):  # [B, n, F] -> [B, 1, u]
        phi = F.relu(self.embed(f)) if self.embed is not None else f
        return F.linear(phi.mean(dim=1, keepdim=True), self.weight)


class Attention(nn.Module):
    def __init__(self, units, heads, head_units):
        super().__init__()
        width = heads * head_units
        self.heads, self.head_units = heads, head_units
        self.query = nn.Linear(units, width, bias=False)
        self.key = nn.Linear(units, width, bias=False)
        self.value = nn.Linear(units, width, bias=False)
        self.output = nn.Linear(width, units)

    def forward(self, h):
        B, n, _ = h.shape
        split = lambda x: x.reshape(B, n, self.heads, self.head_units).transpose(1, 2)
        q, k, v = split(self.query(h)), split(self.key(h)), split(self.value(h))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_units), dim=-1)
        return F.relu(h + self.output((a @ v).transpose(1, 2).reshape(B, n, -1)))


class JigsawNetwork(nn.Module):
    """Pieces [B, n, C, p, p] (normalised) -> scores [B, n, n], as `JigsawNetwork.forward`."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        n, p, hidden, kernel = c["grid"] ** 2, c["piece_size"], c["hidden_channels"], c["kernel_size"]
        layers, side = [], p
        for block in range(1 + c["extra_conv_blocks"]):
            layers += [nn.Conv2d(c["channels"] if block == 0 else hidden, hidden, kernel, padding=kernel // 2),
                       nn.MaxPool2d(2), nn.ReLU(), nn.BatchNorm2d(hidden)]
            side //= 2
        self.g_1 = nn.Sequential(*layers)
        features, units = hidden * side * side, c["hidden_units"]
        if units:
            self.g_2 = nn.Sequential(nn.Linear(features, units), nn.ReLU(), nn.Linear(units, n, bias=False))
        else:
            self.g_2 = nn.Linear(features, n, bias=False)
        self.context = SetContext(features, units, c["context_units"]) if c["set_context"] else None
        self.edges = nn.ModuleList([nn.Linear(4 * units + 8, units) for _ in range(c["edge_blocks"])])
        self.attention = nn.ModuleList([Attention(units, c["attention_heads"], c["attention_head_units"])
                                        for _ in range(c["attention_blocks"])])

    def forward(self, pieces):
        B, n = pieces.shape[:2]
        f = self.g_1(pieces.flatten(0, 1)).reshape(B, n, -1)
        if not self.c["hidden_units"]:
            return self.g_2(f)
        pre = self.g_2[0](f)
        if self.context is not None:
            pre = pre + self.context(f)
        h = F.relu(pre)
        if len(self.edges):
            weights, features = edge_graph(pieces, self.c["edge_sharpness"], self.c["edge_measure"])
            for edge in self.edges:
                messages = torch.einsum("bdij,bju->bidu", weights, h).reshape(B, n, -1)
                h = F.relu(h + edge(torch.cat([messages, features], dim=-1)))
        for block in self.attention:
            h = block(h)
        return self.g_2[2](h)


class Model:
    """A served model: the network in evaluation mode and its preprocessing constants."""

    def __init__(self, path, name=None):
        tensors, metadata = read_safetensors(path)
        self.path, self.metadata = path, metadata
        self.config = configuration(metadata, tensors)
        c = self.config
        self.name = name or path.rsplit("/", 1)[-1].removesuffix(".safetensors")
        self.grid, self.n, self.piece, self.channels = c["grid"], c["grid"] ** 2, c["piece_size"], c["channels"]
        self.network = JigsawNetwork(c)
        state = self.network.state_dict()
        for key in state:
            if key.endswith("num_batches_tracked"):
                tensors.setdefault(key, torch.zeros((), dtype=torch.long))
        self.network.load_state_dict(tensors, strict=True)
        self.network.eval()
        expand = lambda values: values * c["channels"] if len(values) == 1 else values
        self.mean = torch.tensor(expand(c["normalization_mean"]), dtype=torch.float32).view(1, 1, -1, 1, 1)
        self.std = torch.tensor(expand(c["normalization_std"]), dtype=torch.float32).view(1, 1, -1, 1, 1)

    @torch.inference_mode()
    def scores(self, pieces):
        """Scores [B, n, n] of pieces in [0, 1] [B, n, C, p, p]."""
        return self.network((pieces - self.mean) / self.std)


# ----------------------------------------------------------------------------------------------
# Images: cut, resize, channels (Image.cells, Image.fitted, Image.tensor)


def grid_crop(width, height, grid):
    """(left, top, cell width, cell height) of the centre crop to a multiple of the grid."""
    cell_w, cell_h = width // grid, height // grid
    return (width - grid * cell_w) // 2, (height - grid * cell_h) // 2, cell_w, cell_h


def cells(pixels, grid):
    """The grid x grid cells (row-major) of an [H, W, C] uint8 image."""
    height, width = pixels.shape[:2]
    left, top, w, h = grid_crop(width, height, grid)
    return [pixels[top + r * h: top + (r + 1) * h, left + c * w: left + (c + 1) * w]
            for r in range(grid) for c in range(grid)]


def _taps(source, target, area):
    """Per output index: (first source index, float32 weights), as `Image.taps`."""
    scale = source / target
    taps = []
    for x in range(target):
        if area:
            begin, end = x * scale, (x + 1) * scale
            first, last = math.floor(begin), min(math.ceil(end), source)
            taps.append((first, np.array([(min(end, s + 1) - max(begin, s)) / scale for s in range(first, last)],
                                         dtype=np.float32)))
        else:
            position = min(max((x + 0.5) * scale - 0.5, 0.0), float(source - 1))
            left = math.floor(position)
            fraction = np.float32(position - left)
            taps.append((left, np.array([1 - fraction, fraction] if left + 1 < source else [1], dtype=np.float32)))
    return taps


_TAP_CACHE = {}


def _tap_matrix(source, target, area):
    """(index [target, k], weight [target, k]) padded with zero weights, cached per size."""
    key = (source, target, area)
    if key not in _TAP_CACHE:
        taps = _taps(source, target, area)
        k = max(len(w) for _, w in taps)
        index = np.zeros((target, k), dtype=np.intp)
        weight = np.zeros((target, k), dtype=np.float32)
        for x, (first, w) in enumerate(taps):
            index[x, :len(w)] = first + np.arange(len(w))
            index[x, len(w):] = first
            weight[x, :len(w)] = w
        _TAP_CACHE[key] = (index, weight)
    return _TAP_CACHE[key]


def resized(pixels, width, height, area):
    """[H, W, C] uint8 resampled to [height, width, C]: rows then columns in float32, summed tap by
    tap in order, rounded once (`Image.resized`)."""
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    hi, hw = _tap_matrix(w, width, area)
    vi, vw = _tap_matrix(h, height, area)
    source = pixels.astype(np.float32)
    middle = np.zeros((h, width, pixels.shape[2]), dtype=np.float32)
    for k in range(hi.shape[1]):
        middle += hw[None, :, k, None] * source[:, hi[:, k], :]
    out = np.zeros((height, width, pixels.shape[2]), dtype=np.float32)
    for k in range(vi.shape[1]):
        out += vw[:, k, None, None] * middle[vi[:, k], :, :]
    return round_bytes(out)


def round_bytes(values):
    """float32 values rounded half away from zero (Swift's `rounded()`) and clamped to 0...255."""
    whole = np.floor(values)
    whole += (values - whole) >= 0.5
    return np.clip(whole, 0, 255).astype(np.uint8)


def fitted(pixels, width, height):
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    return resized(pixels, width, height, area=width <= w and height <= h)


def to_tensor(pixels, channels):
    """[H, W, C] uint8 (C = 1, 3 or 4) -> float32 [channels, H, W] in [0, 1] (`Image.tensor`)."""
    x = pixels.astype(np.float32) / np.float32(255)
    if pixels.shape[2] == 4:
        x = x[..., 3:4] * x[..., :3]  # alpha on black
    if channels == 1:
        if x.shape[2] == 1:
            return np.ascontiguousarray(x.transpose(2, 0, 1))
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        return (np.float32(LUMA[0]) * r + np.float32(LUMA[1]) * g + np.float32(LUMA[2]) * b)[None]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def network_pieces(cell_list, model):
    """[1, n, C, p, p] float32 tensor: every cell fitted to p x p on its own, then converted."""
    p = model.piece
    return torch.from_numpy(np.stack([to_tensor(fitted(cell, p, p), model.channels) for cell in cell_list])[None])


def display_cells(cell_list, display_size=512):
    """Display pieces [n, C', h, w] in [0, 1] (`PuzzleSolver.prepare`): gray stays gray, else RGB,
    shrunk when the assembled image would exceed `display_size` on its longer side."""
    height, width = cell_list[0].shape[:2]
    grid = math.isqrt(len(cell_list))
    longest = grid * max(width, height)
    scale = display_size / longest if longest > display_size else 1
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    channels = 1 if all(cell.shape[2] == 1 for cell in cell_list) else 3
    return np.stack([to_tensor(fitted(cell, w, h), channels) for cell in cell_list])


# ----------------------------------------------------------------------------------------------
# Matching and Sinkhorn


def match(scores):
    """M(X): the permutation maximising sum_i X[i, perm[i]] (`linear_sum_assignment(-X)`)."""
    rows, columns = linear_sum_assignment(-scores.astype(np.float64))
    permutation = np.empty(len(rows), dtype=np.int64)
    permutation[rows] = columns
    return permutation


@torch.inference_mode()
def sinkhorn(scores, tau=1.0, iterations=20):
    """S(X / tau) [n, n] (log domain, rows then columns) and the row-marginal error."""
    log_alpha = torch.as_tensor(scores, dtype=torch.float32) / tau
    for _ in range(iterations):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
    soft = log_alpha.exp()
    return soft, float((soft.sum(-1) - 1).abs().sum())


def assemble(display, permutation, grid):
    """The solved image [H, W, C'] uint8 from display pieces [n, C', h, w]: cell j gets piece i
    with permutation[i] = j."""
    n, channels, h, w = display.shape
    solved = np.empty_like(display)
    solved[permutation] = display
    canvas = solved.reshape(grid, grid, channels, h, w).transpose(0, 3, 1, 4, 2).reshape(grid * h, grid * w, channels)
    return round_bytes(np.clip(canvas, 0, 1) * np.float32(255))
