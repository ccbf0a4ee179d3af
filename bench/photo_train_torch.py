"""Training throughput of the photo jigsaw network in PyTorch (CPU), the twin of `sinkhorn-bench photo_train`.

The same work per step as `JigsawTrainer` with the shipped photo recipe: cut a batch of RGB images
into grid x grid pieces, scramble each puzzle, normalise per channel, run the network (conv blocks
-> hidden layer with set context -> edge attention on Mahalanobis gradient compatibilities of the
full-resolution pieces -> self-attention -> scores), 20 log-domain Sinkhorn iterations at tau,
the permutation cross-entropy, backward, Adam. Prints one JSON line: median images per second over
windows of steps.

    python bench/photo_train_torch.py --grid 3 --threads 2 --batch 32

With --parity FILE (a safetensors file holding a Swift network's tensors under their names, the
input `pieces` [B, n, 3, p, p] and the Swift evaluation-mode `scores` [B, n, n]), the twin loads
those weights, scores the same pieces and reports the largest difference from the Swift scores:
the check that both sides train the same network.
"""

import argparse
import json
import math
import statistics
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def gradient_models(strips):
    """Mean and inverse covariance of the gradients outer - inner along each edge.

    strips: [..., 2, C, L] (outer line, inner line). Returns mean [..., C], inverse [..., C, C].
    Gallagher's nine dummy gradients keep the covariance well conditioned, as in the Swift code.
    """
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
    centred = samples - mean.unsqueeze(-2)
    cov = centred.transpose(-1, -2) @ centred / (samples.shape[-2] - 1)
    cov = cov + 1e-6 * torch.eye(channels)
    return mean, torch.linalg.inv(cov.double()).float()


def mgc(first, second):
    """Costs [B, n, n]: first[b, i] (facing edge) against second[b, j]; strips [B, n, 2, C, L]."""
    mean_a, inv_a = gradient_models(first)
    mean_b, inv_b = gradient_models(second)
    a = first[:, :, 0].transpose(-1, -2)  # [B, n, L, C]
    b = second[:, :, 0].transpose(-1, -2)
    across = b.unsqueeze(1) - a.unsqueeze(2)  # [B, i, j, L, C]: b_j - a_i
    da = across - mean_a[:, :, None, None, :]
    db = -across - mean_b[:, None, :, None, :]
    term_a = torch.einsum("bijlc,bicd,bijld->bij", da, inv_a, da).clamp(min=0)
    term_b = torch.einsum("bijlc,bjcd,bijld->bij", db, inv_b, db).clamp(min=0)
    return term_a + term_b


def edge_graph(pieces, sharpness):
    """Weights [B, 4, n, n] and features [B, n, 8] of EdgeGraph (right, left, below, above)."""
    B, n = pieces.shape[:2]
    right = torch.stack([pieces[..., :, -1], pieces[..., :, -2]], dim=2)   # [B, n, 2, C, H]
    left = torch.stack([pieces[..., :, 0], pieces[..., :, 1]], dim=2)
    bottom = torch.stack([pieces[..., -1, :], pieces[..., -2, :]], dim=2)
    top = torch.stack([pieces[..., 0, :], pieces[..., 1, :]], dim=2)
    horizontal = mgc(right, left)   # i left of j
    vertical = mgc(bottom, top)     # i above j
    costs = torch.stack([horizontal, horizontal.transpose(1, 2), vertical, vertical.transpose(1, 2)], dim=1)
    eye = torch.eye(n, dtype=torch.bool)
    costs = costs.masked_fill(eye, float("inf"))
    two = costs.topk(2, dim=-1, largest=False).values
    best, second = two[..., 0], two[..., 1]
    scale = torch.where(second > 0, sharpness / second, torch.zeros_like(second))
    logits = (-scale.unsqueeze(-1) * costs).masked_fill(eye, float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    confidence = torch.where(second > 0, 1 - best / second, torch.zeros_like(second))  # [B, 4, n]
    opposite = weights[:, [1, 0, 3, 2]]
    mutual = (weights * opposite.transpose(-1, -2)).sum(-1)
    features = torch.cat([confidence, mutual], dim=1).transpose(1, 2)  # [B, n, 8]
    return weights, features


class PhotoJigsawNetwork(nn.Module):
    def __init__(self, grid, piece, channels=3, hidden=4, kernel=3, extra=3, units=128, edge_blocks=3,
                 attention_blocks=1, heads=4, head_units=32, sharpness=8.0):
        super().__init__()
        layers, side = [], piece
        for block in range(1 + extra):
            layers += [nn.Conv2d(channels if block == 0 else hidden, hidden, kernel, padding=kernel // 2),
                       nn.MaxPool2d(2), nn.ReLU(), nn.BatchNorm2d(hidden)]
            side //= 2
        self.g_1 = nn.Sequential(*layers)
        features = hidden * side * side
        self.n = grid * grid
        self.hidden = nn.Linear(features, units)
        self.context = nn.Linear(features, units, bias=False)
        self.edges = nn.ModuleList([nn.Linear(4 * units + 8, units) for _ in range(edge_blocks)])
        self.attention = nn.ModuleList([nn.ModuleDict({
            "query": nn.Linear(units, heads * head_units, bias=False),
            "key": nn.Linear(units, heads * head_units, bias=False),
            "value": nn.Linear(units, heads * head_units, bias=False),
            "output": nn.Linear(heads * head_units, units)}) for _ in range(attention_blocks)])
        self.heads, self.head_units = heads, head_units
        self.head = nn.Linear(units, self.n, bias=False)
        self.sharpness = sharpness

    def forward(self, pieces):
        B, n = pieces.shape[:2]
        with torch.no_grad():
            weights, edge_features = edge_graph(pieces, self.sharpness)
        f = self.g_1(pieces.reshape(B * n, *pieces.shape[2:])).reshape(B, n, -1)
        h = F.relu(self.hidden(f) + self.context(f.mean(dim=1, keepdim=True)))
        for edge in self.edges:
            messages = torch.einsum("bdij,bju->bidu", weights, h).reshape(B, n, -1)
            h = F.relu(h + edge(torch.cat([messages, edge_features], dim=-1)))
        for block in self.attention:
            q = block["query"](h).reshape(B, n, self.heads, self.head_units).transpose(1, 2)
            k = block["key"](h).reshape(B, n, self.heads, self.head_units).transpose(1, 2)
            v = block["value"](h).reshape(B, n, self.heads, self.head_units).transpose(1, 2)
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_units), dim=-1)
            mixed = (a @ v).transpose(1, 2).reshape(B, n, -1)
            h = F.relu(h + block["output"](mixed))
        return self.head(h)


def log_sinkhorn(scores, tau, iterations):
    log_alpha = scores / tau
    for _ in range(iterations):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=2, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=1, keepdim=True)
    return log_alpha.exp()


def read_safetensors(path):
    """float32 tensors of a safetensors file (standard library and torch only)."""
    with open(path, "rb") as file:
        data = file.read()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32).reshape(entry["shape"])
    return tensors, header.get("__metadata__", {})


def parity(path, threads):
    torch.set_num_threads(threads)
    tensors, metadata = read_safetensors(path)
    pieces, expected = tensors.pop("pieces"), tensors.pop("scores")
    grid, piece = int(metadata["grid"]), int(metadata["piece_size"])
    network = PhotoJigsawNetwork(grid, piece, hidden=int(metadata["hidden_channels"]),
                                 kernel=int(metadata["kernel_size"]), extra=int(metadata["extra_conv_blocks"]),
                                 units=int(metadata["hidden_units"]), edge_blocks=int(metadata["edge_blocks"]),
                                 attention_blocks=int(metadata["attention_blocks"]),
                                 heads=int(metadata["attention_heads"]), head_units=int(metadata["attention_head_units"]),
                                 sharpness=float(metadata["edge_sharpness"]))
    renamed = {name.replace("g_2.0.", "hidden.").replace("g_2.2.", "head."): value for name, value in tensors.items()}
    state = network.state_dict()
    missing = sorted(set(state) - set(renamed) - {k for k in state if k.endswith("num_batches_tracked")})
    if missing:
        raise SystemExit(f"parity: tensors missing from {path}: {missing}")
    network.load_state_dict({k: renamed.get(k, v) for k, v in state.items()})
    network.eval()
    with torch.no_grad():
        scores = network(pieces)
    difference = (scores - expected).abs().max().item()
    scale = expected.abs().max().item()
    print(json.dumps({"op": "photo_parity", "grid": grid, "max_abs_difference": difference, "max_abs_score": scale}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=3)
    parser.add_argument("--piece", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--parity", help="a safetensors file of weights, pieces and Swift scores to compare")
    args = parser.parse_args()
    if args.parity:
        parity(args.parity, args.threads)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    grid, piece, n = args.grid, args.piece, args.grid * args.grid
    side = grid * piece
    network = PhotoJigsawNetwork(grid, piece)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-3)
    images = torch.randint(0, 256, (args.batch * args.steps, 3, side, side), dtype=torch.uint8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)

    def step(batch):
        x = batch.float() / 255
        cells = x.reshape(-1, 3, grid, piece, grid, piece).permute(0, 2, 4, 1, 3, 5).reshape(-1, n, 3, piece, piece)
        perms = torch.stack([torch.randperm(n) for _ in range(cells.shape[0])])
        scrambled = torch.stack([cells[b, perms[b]] for b in range(cells.shape[0])])
        scrambled = (scrambled - mean) / std
        scores = network(scrambled)
        p = log_sinkhorn(scores, 0.1, 20)
        picked = p.gather(2, perms.unsqueeze(-1)).squeeze(-1).clamp(min=torch.finfo(torch.float32).tiny)
        loss = -picked.log().sum() / cells.shape[0]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    step(images[: args.batch])
    rates = []
    for _ in range(args.windows):
        start = time.perf_counter()
        for s in range(args.steps):
            step(images[s * args.batch:(s + 1) * args.batch])
        rates.append(args.batch * args.steps / (time.perf_counter() - start))
    print(json.dumps({"op": "photo_train", "impl": "pytorch", "grid": grid, "piece": piece, "batch": args.batch,
                      "threads": args.threads, "images_per_s": round(statistics.median(rates), 1),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
