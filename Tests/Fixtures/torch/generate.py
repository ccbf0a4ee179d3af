#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures for the Gumbel-Sinkhorn jigsaw network.

The build and the Swift tests never run this script: they only read the .safetensors files it
writes next to itself. It documents exactly how those files were produced and can regenerate them.

Requirements (kept outside the repository):
    python3 -m venv "${VENV:-../venv-torch}"
    "${VENV:-../venv-torch}/bin/pip" install torch (CPU build) safetensors scipy numpy
Run (from the package root):
    "${VENV:-../venv-torch}/bin/python" Tests/Fixtures/torch/generate.py [--mnist PATH]
--mnist defaults to $MNIST_DIR/t10k-images-idx3-ubyte.gz, else ../shared/data/mnist beside the
package.

Produced files (all tensors F32 except the state_dict's int64 counter):

tutorial-2x2-random.safetensors
    state_dict() of the tutorial's SinkhornConvNet(in_channels=1, num_pieces=2, image_size=28,
    hidden_channels=32, kernel_size=5) after torch.manual_seed(0), with the BatchNorm weight,
    bias, running_mean and running_var overwritten by seeded random values; no metadata
    (mimics a raw `safetensors.torch.save_file(model.state_dict(), path)` export).

tutorial-2x2-reference.safetensors   (reference A: forward pass, eval mode)
    images [4,1,28,28]            first 4 MNIST test digits, (x/255 - 0.1307)/0.3081
    pieces [4,4,1,14,14]          chunk_image cells, row-major: cell k = (row k//2, col k%2)
    permutations [4,4]            pi[b, s] = original cell placed at scrambled slot s
    permutation_matrices [4,4,4]  M[b, s, pi[b,s]] = 1, so einsum("bpq,bpchw->bqchw", M, scrambled) = pieces
    scrambled_pieces [4,4,1,14,14] scrambled[b, s] = pieces[b, pi[b, s]]
    eval_scores [4,4,4]           log_alphas in eval mode (running BN statistics); row s = scrambled piece s
    eval_matching [4,4]           tutorial's matching(): linear_sum_assignment(-eval_scores[b]) column per row

tutorial-2x2-train-step.safetensors  (reference B: one training step, fixed Gumbel noise)
    gumbel_noise [4,4,4], tau [1] = 0.1, iterations [1] = 20
    train_scores [4,4,4]          log_alphas in train mode, tutorial forward: g_1 applied ONCE PER
                                  SCRAMBLED SLOT (batch of 4 pieces), so BatchNorm batch statistics are
                                  per slot and the running statistics are updated 4 times (momentum 0.1,
                                  unbiased variance with n = 4*7*7 = 196), slot 0 first
    train_P [4,4,4]               log_sinkhorn((train_scores + gumbel_noise)/tau, 20)
    train_reconstruction [4,4,1,14,14]  einsum("bpq,bpchw->bqchw", train_P, scrambled_pieces)
    train_loss [1]                mse_loss(reconstruction, pieces, reduction='sum')
    grad.<param> for g_1.0.weight, g_1.0.bias, g_1.3.weight, g_1.3.bias, g_2.weight
    after.g_1.3.running_mean [32], after.g_1.3.running_var [32], after.g_1.3.num_batches_tracked [1] (= 4)
    adam1.<param>                 parameters after one Adam step (lr 1e-4, eps 1e-8, betas (0.9, 0.999))
    joint.*                       the same step when all 16 pieces of the batch go through g_1 in ONE
                                  call (BatchNorm statistics over 16 pieces, n = 784; running
                                  statistics updated once): joint.train_scores, joint.train_P,
                                  joint.train_loss, joint.grad.<param>, joint.after.g_1.3.running_mean,
                                  joint.after.g_1.3.running_var. Not the tutorial's semantics; provided
                                  because a batched implementation computes this instead.

sinkhorn-reference.safetensors       (reference C: Sinkhorn operator and its gradients, float64 maths
                                      rounded to F32)
    X [3,5,5] ~ N(0,1), W [5,5] ~ N(0,1), taus [2] = (1.0, 0.3), iterations [1] = 20
    for tag in (tau_1_0, tau_0_3):
        sinkhorn_<tag> [3,5,5]            S(X/tau), 20 iterations, rows then columns (tutorial log_sinkhorn)
        grad_<tag> [3,5,5]                d sum(W * S(X/tau)) / dX by autograd through the 20 unrolled iterations
        implicit_grad_<tag> [3,5,5]       same derivative by the implicit formula (Eisenberger et al. 2022,
                                          Alg. 1, PAPERS.md section 2) evaluated at the 20-iteration P
        sinkhorn_converged_<tag> [3,5,5]  S(X/tau) after 2000 iterations (converged)
        grad_converged_<tag> [3,5,5]      unrolled autograd gradient after 2000 iterations; equals the
                                          implicit gradient at the converged P (checked below)
"""

import argparse
import gzip
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.numpy import load_file as np_load_file
from safetensors.torch import save_file
from scipy.optimize import linear_sum_assignment

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MNIST = os.path.join(
    os.environ.get("MNIST_DIR", os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "mnist")),
    "t10k-images-idx3-ubyte.gz",
)

# Fixed scrambles: pi[b, s] = original cell shown at scrambled slot s. Chosen so that none is its
# own inverse except the last, which makes a row/column (or pi/pi^-1) mix-up visible.
PERMUTATIONS = [[1, 2, 3, 0], [3, 0, 1, 2], [2, 0, 3, 1], [0, 3, 2, 1]]
PARAM_NAMES = ["g_1.0.weight", "g_1.0.bias", "g_1.3.weight", "g_1.3.bias", "g_2.weight"]


# ---- The tutorial's code, verbatim apart from the score-only helper -------------------------------

def log_sinkhorn(log_alpha, n_iter):
    for _ in range(n_iter):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, -1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, -2, keepdim=True)
    return log_alpha.exp()


def inverse_permutation_for_image(X, permutation_matrix):
    return torch.einsum("bpq,bpchw->bqchw", (permutation_matrix, X)).contiguous()


def matching(alpha):
    row, col = linear_sum_assignment(-alpha)
    return row, col


class SinkhornConvNet(nn.Module):
    def __init__(self, in_channels, num_pieces, image_size, hidden_channels, kernel_size,
                 tau=1.0, n_sink_iter=20):
        super().__init__()
        self.tau = tau
        self.n_sink_iter = n_sink_iter
        self.g_1 = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=kernel_size // 2),
            nn.MaxPool2d(2),
            nn.ReLU(True),
            nn.BatchNorm2d(hidden_channels),
        )
        piece_size = image_size // num_pieces
        piece_size_after_conv = piece_size // (2 * 1)
        self.g_2 = nn.Linear(piece_size_after_conv ** 2 * hidden_channels, num_pieces ** 2, bias=False)

    def scores(self, batch_pieces):
        """The tutorial's forward up to (and including) `log_alphas = torch.stack(latent_pieces, 1)`."""
        batch_size = batch_pieces.shape[0]
        pieces = batch_pieces.transpose(0, 1).contiguous()
        conv_pieces = []
        for piece in pieces:
            piece = self.g_1(piece)
            conv_piece = piece.reshape(batch_size, -1)
            conv_pieces.append(conv_piece)
        latent_pieces = []
        for piece in conv_pieces:
            latent_piece = self.g_2(piece)
            latent_pieces.append(latent_piece)
        return torch.stack(latent_pieces, 1)

    def scores_joint(self, batch_pieces):
        """All pieces through g_1 in one call (what a batched implementation does)."""
        b, n = batch_pieces.shape[:2]
        features = self.g_1(batch_pieces.reshape(b * n, *batch_pieces.shape[2:]))
        return self.g_2(features.reshape(b, n, -1))


# ---- Helpers ---------------------------------------------------------------------------------------

def load_mnist_images(path, count):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"not an IDX image file: magic {magic}")
    images = np.frombuffer(data[16:], dtype=np.uint8).reshape(n, rows, cols)
    return images[:count]


def chunk(images, num_pieces):
    """[B,C,H,W] -> [B, num_pieces^2, C, H/num_pieces, W/num_pieces], cells row-major (chunk_image)."""
    _, _, h, w = images.shape
    ph, pw = h // num_pieces, w // num_pieces
    cells = [images[:, :, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw]
             for r in range(num_pieces) for c in range(num_pieces)]
    return torch.stack(cells, 1)


def build_model():
    torch.manual_seed(0)
    model = SinkhornConvNet(in_channels=1, num_pieces=2, image_size=28, hidden_channels=32,
                            kernel_size=5, tau=0.1, n_sink_iter=20)
    gen = torch.Generator().manual_seed(1)
    bn = model.g_1[3]
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.5 * torch.randn(32, generator=gen))
        bn.bias.copy_(0.5 * torch.randn(32, generator=gen))
        bn.running_mean.copy_(0.5 * torch.randn(32, generator=gen))
        bn.running_var.copy_(0.25 + 1.5 * torch.rand(32, generator=gen))
    return model


def f32(t):
    return t.detach().to(torch.float32).contiguous().clone()


def train_step(model, scrambled, pieces, noise, tau, iterations, joint):
    """One tutorial training step with fixed noise. Returns dict of results (model is mutated)."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4, eps=1e-8)
    log_alphas = model.scores_joint(scrambled) if joint else model.scores(scrambled)
    P = log_sinkhorn((log_alphas + noise) / tau, iterations)
    recon = inverse_permutation_for_image(scrambled, P)
    loss = torch.nn.functional.mse_loss(recon, pieces, reduction="sum")
    optimizer.zero_grad()
    loss.backward()
    named = dict(model.named_parameters())
    out = {
        "train_scores": log_alphas, "train_P": P, "train_reconstruction": recon,
        "train_loss": loss.reshape(1),
    }
    for name in PARAM_NAMES:
        out["grad." + name] = named[name].grad.clone()
    bn = model.g_1[3]
    out["after.g_1.3.running_mean"] = bn.running_mean.clone()
    out["after.g_1.3.running_var"] = bn.running_var.clone()
    out["after.g_1.3.num_batches_tracked"] = bn.num_batches_tracked.reshape(1).clone()
    optimizer.step()
    for name in PARAM_NAMES:
        out["adam1." + name] = named[name].detach().clone()
    return out


def implicit_grad(P, W, tau):
    """Eisenberger et al. 2022, Alg. 1 for the square Sinkhorn operator, float64 numpy.

    Returns d sum(W * P) / dX where P = S(X / tau) (C = -X, lambda = tau).
    """
    m, n = P.shape
    T = P * W
    a_hat, b_hat = P.sum(1), P.sum(0)
    K = np.zeros((m + n, m + n))
    K[:m, :m] = np.diag(a_hat)
    K[:m, m:] = P
    K[m:, :m] = P.T
    K[m:, m:] = np.diag(b_hat)
    rhs = np.concatenate([T.sum(1), T.sum(0)])
    sol = np.linalg.solve(K[:-1, :-1], rhs[:-1])
    alpha, beta = sol[:m], np.concatenate([sol[m:], [0.0]])
    return (T - P * (alpha[:, None] + beta[None, :])) / tau


def max_abs(a, b):
    return float((a.detach().double() - b.detach().double()).abs().max())


# ---- References --------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist", default=DEFAULT_MNIST)
    parser.add_argument("--out", default=HERE)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one fixed summation order
    torch.use_deterministic_algorithms(True)
    meta = {"generator": "Tests/Fixtures/torch/generate.py", "torch": torch.__version__}

    # Model ------------------------------------------------------------------------------------
    model = build_model()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out, "tutorial-2x2-random.safetensors"))

    # Inputs -----------------------------------------------------------------------------------
    raw = load_mnist_images(args.mnist, 4)
    images = torch.from_numpy(((raw.astype(np.float32) / 255.0 - 0.1307) / 0.3081).astype(np.float32))
    images = images.reshape(4, 1, 28, 28)
    pieces = chunk(images, 2)
    perms = torch.tensor(PERMUTATIONS)
    scrambled = torch.stack([pieces[b, perms[b]] for b in range(4)], 0)
    perm_mats = torch.zeros(4, 4, 4)
    for b in range(4):
        for s in range(4):
            perm_mats[b, s, perms[b, s]] = 1.0
    assert torch.equal(inverse_permutation_for_image(scrambled, perm_mats), pieces)

    # Reference A: eval-mode scores ------------------------------------------------------------
    model.eval()
    with torch.no_grad():
        eval_scores = model.scores(scrambled)
        assert torch.allclose(eval_scores, model.scores_joint(scrambled), atol=1e-5)
    eval_matching = torch.zeros(4, 4)
    for b in range(4):
        row, col = matching(eval_scores[b].numpy())
        eval_matching[b, torch.from_numpy(row)] = torch.from_numpy(col).float()
    ref_a = {
        "images": images, "pieces": pieces, "scrambled_pieces": scrambled,
        "permutations": perms.float(), "permutation_matrices": perm_mats,
        "eval_scores": eval_scores, "eval_matching": eval_matching,
    }
    save_file({k: f32(v) for k, v in ref_a.items()},
              os.path.join(args.out, "tutorial-2x2-reference.safetensors"),
              metadata=dict(meta, description="reference A: eval-mode scores of tutorial-2x2-random"))

    # Float64 twin of the eval forward, to measure float32 rounding.
    model64 = build_model().double().eval()
    with torch.no_grad():
        eval64 = model64.scores(scrambled.double())
    print(f"A: eval_scores range [{eval_scores.min():.4f}, {eval_scores.max():.4f}], "
          f"|f32 - f64| max {max_abs(eval_scores, eval64):.3e}")

    # Reference B: one training step -------------------------------------------------------------
    tau, iterations = 0.1, 20
    gen = torch.Generator().manual_seed(2)
    u = torch.rand((4, 4, 4), generator=gen)
    noise = -torch.log(-torch.log(u + 1e-20) + 1e-20)  # the tutorial's sample_gumbel
    ref_b = {"gumbel_noise": noise, "tau": torch.tensor([tau]), "iterations": torch.tensor([float(iterations)])}
    tutorial = train_step(build_model(), scrambled, pieces, noise, tau, iterations, joint=False)
    ref_b.update(tutorial)
    joint = train_step(build_model(), scrambled, pieces, noise, tau, iterations, joint=True)
    for key in ["train_scores", "train_P", "train_loss", "after.g_1.3.running_mean",
                "after.g_1.3.running_var"] + ["grad." + n for n in PARAM_NAMES]:
        ref_b["joint." + key] = joint[key]
    save_file({k: f32(v) for k, v in ref_b.items()},
              os.path.join(args.out, "tutorial-2x2-train-step.safetensors"),
              metadata=dict(meta, description="reference B: one training step of tutorial-2x2-random"))

    t64 = train_step(build_model().double(), scrambled.double(), pieces.double(), noise.double(),
                     tau, iterations, joint=False)
    print(f"B: loss f32 {tutorial['train_loss'].item():.6f} f64 {t64['train_loss'].item():.6f}; "
          f"P min/max {tutorial['train_P'].min():.3e}/{tutorial['train_P'].max():.6f}")
    for key in ["train_scores", "train_P", "after.g_1.3.running_mean", "after.g_1.3.running_var"] + \
            ["grad." + n for n in PARAM_NAMES] + ["adam1." + n for n in PARAM_NAMES]:
        ref = t64[key]
        scale = float(ref.detach().abs().max())
        print(f"   {key:28s} max|v| {scale:.3e}  |f32 - f64| max {max_abs(tutorial[key], ref):.3e}")
    g = tutorial["grad.g_2.weight"].abs()
    print(f"   smallest |grad| g_1.0.weight {tutorial['grad.g_1.0.weight'].abs().min():.3e}, "
          f"g_2.weight {g.min():.3e} (Adam's first step is ~lr*sign(grad) unless |grad| ~ eps)")
    print(f"B joint: loss {joint['train_loss'].item():.6f}, "
          f"|scores - tutorial scores| max {max_abs(joint['train_scores'], tutorial['train_scores']):.3e}")

    # Reference C: Sinkhorn and gradients, float64 ----------------------------------------------
    gen = torch.Generator().manual_seed(3)
    X = torch.randn((3, 5, 5), generator=gen, dtype=torch.float64)
    W = torch.randn((5, 5), generator=gen, dtype=torch.float64)
    ref_c = {"X": X, "W": W, "taus": torch.tensor([1.0, 0.3]), "iterations": torch.tensor([20.0])}
    for tau, tag in [(1.0, "tau_1_0"), (0.3, "tau_0_3")]:
        for iters, prefix in [(20, ""), (2000, "converged_")]:
            Xg = X.clone().requires_grad_(True)
            S = log_sinkhorn(Xg / tau, iters)
            (S * W).sum().backward()
            ref_c[f"sinkhorn_{prefix}{tag}"] = S.detach()
            ref_c[f"grad_{prefix}{tag}"] = Xg.grad.clone()
            implicit = torch.from_numpy(np.stack([implicit_grad(S[b].detach().numpy(), W.numpy(), tau)
                                                  for b in range(3)]))
            if prefix == "":
                ref_c[f"implicit_grad_{tag}"] = implicit
            row_err = float((S.detach().sum(-1) - 1).abs().max())
            print(f"C: tau {tau} iters {iters}: row-marginal error {row_err:.2e}, "
                  f"|unrolled - implicit| max {max_abs(Xg.grad, implicit):.2e}")
        # converged implicit == converged unrolled validates implicit_grad's formula and sign
        S = ref_c[f"sinkhorn_converged_{tag}"]
        implicit_conv = torch.from_numpy(np.stack([implicit_grad(S[b].numpy(), W.numpy(), tau)
                                                   for b in range(3)]))
        assert max_abs(implicit_conv, ref_c[f"grad_converged_{tag}"]) < 1e-9
    save_file({k: f32(v) for k, v in ref_c.items()},
              os.path.join(args.out, "sinkhorn-reference.safetensors"),
              metadata=dict(meta, description="reference C: Sinkhorn operator, float64 maths rounded to F32"))

    # Summary: read every file back with the numpy loader ----------------------------------------
    for name in ["tutorial-2x2-random", "tutorial-2x2-reference", "tutorial-2x2-train-step",
                 "sinkhorn-reference"]:
        path = os.path.join(args.out, name + ".safetensors")
        tensors = np_load_file(path)
        print(f"{name}.safetensors  {os.path.getsize(path)} bytes, {len(tensors)} tensors")
        for key in sorted(tensors):
            print(f"    {key:40s} {str(tensors[key].dtype):8s} {list(tensors[key].shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
