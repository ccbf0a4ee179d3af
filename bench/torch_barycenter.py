"""PyTorch (CPU) twin of `sinkhorn-bench barycenter_step`: one transport problem of the barycenter
step, the log-domain Sinkhorn forward from the barycenter b to an input a on a side x side grid
(squared distances in normalised coordinates, lambda = 0.002) and the gradient of <C, P> with
respect to b by automatic differentiation through every iteration (what the paper calls AD).

Each point runs in a fresh child process; peak_bytes is the growth of ru_maxrss over the child's
baseline (cost, histograms and one forward without gradient already held). Prints one JSON line per
point, the same fields as sinkhorn-bench.

Each child's address space is limited to --budget-gib (default 8): a point that needs more reports
an error line instead of running.

With --kernel separable the same work is done the way `SeparableGridTransport` does it: the kernel
exp(-C/lambda) = exp(-dx^2/lambda) exp(-dy^2/lambda) applied one axis at a time with logsumexp over
[side, side, side] tensors (never the n x n cost), the loss <C, P> from the two parts of the cost,
and the gradient by autograd through every iteration ("backward": "autograd_separable"; the
counterpart of `separable_unrolled`).

Usage: python bench/torch_barycenter.py [--threads 2] [--budget-gib 8] [--sizes 32:10,32:50,...]
       [--kernel dense|separable]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

DEFAULT = "32:10,32:50,32:100,32:200,32:500,64:10,64:50,64:100,64:200"


def separable_problem(side, torch):
    """The separable twin of the dense problem below: same histograms (seed 11), same lambda."""
    n = side * side
    gen = torch.Generator().manual_seed(11)
    a = 0.05 + torch.rand(n, generator=gen)
    a = a / a.sum()
    b0 = 0.05 + torch.rand(n, generator=gen)
    b0 = b0 / b0.sum()
    lam = 0.002
    t = torch.arange(side, dtype=torch.float32) / (side - 1)
    d2 = (t[:, None] - t[None, :]) ** 2  # [side, side], symmetric
    log_k = -d2 / lam
    log_d2 = torch.log(d2)  # -inf on the diagonal, where the cost part is 0

    def convolve(h, stage_x=None, stage_y=None):
        # out[y, p] = log sum_{r, q} exp(h[r, q] + log_k[q, p] (+ stage_x[q, p]) + log_k[y, r] (+ stage_y[y, r]))
        kx = log_k if stage_x is None else log_k + stage_x
        ky = log_k if stage_y is None else log_k + stage_y
        along_x = torch.logsumexp(h[:, :, None] + kx[None, :, :], dim=1)
        return torch.logsumexp(along_x[None, :, :] + ky[:, :, None], dim=1)

    def loss(b):
        log_a, log_b = torch.log(a).view(side, side), torch.log(b).view(side, side)
        f = torch.zeros(side, side)
        for _ in range(iterations_holder[0]):
            g = log_a - convolve(f)
            f = log_b - convolve(g)
        return (torch.exp(f + convolve(g, stage_x=log_d2)) + torch.exp(f + convolve(g, stage_y=log_d2))).sum()

    iterations_holder = [0]
    return a, b0, lam, loss, iterations_holder


def separable_child(side, iterations, threads, budget_gib):
    limit = int(budget_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(threads)
    n = side * side
    a, b0, lam, loss, holder = separable_problem(side, torch)
    holder[0] = iterations
    with torch.no_grad():
        loss(b0)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def step():
        b = b0.clone().requires_grad_(True)
        loss(b).backward()
        return b.grad

    name = "autograd_separable"
    try:
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
        times = []
        budget = 2.0 if n > 2048 else 3.0
        spent = 0.0
        while len(times) < (3 if n > 2048 else 5) or spent < budget:
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
            spent += times[-1]
    except RuntimeError as error:
        print(json.dumps({"op": "torch_barycenter_step", "backward": name, "n": n, "side": side,
                          "L": iterations, "threads": threads, "budget_gib": budget_gib,
                          "error": "out of memory within the budget: " + str(error).split("\n")[0][:120]}), flush=True)
        return
    print(json.dumps({"op": "torch_barycenter_step", "backward": name, "n": n, "side": side, "L": iterations,
                      "entropy": lam, "threads": threads, "budget_gib": budget_gib, "ms": statistics.median(times) * 1000,
                      "peak_bytes": peak}), flush=True)


def child(side, iterations, threads, budget_gib):
    # The address-space limit turns an allocation beyond the budget into a RuntimeError instead of
    # a visit from the kernel's out-of-memory killer.
    limit = int(budget_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(threads)
    n = side * side
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    coords = torch.stack([xs.flatten(), ys.flatten()], 1).float() / (side - 1)
    cost = torch.cdist(coords, coords) ** 2
    gen = torch.Generator().manual_seed(11)
    a = 0.05 + torch.rand(n, generator=gen)
    a = a / a.sum()
    b0 = 0.05 + torch.rand(n, generator=gen)
    b0 = b0 / b0.sum()
    lam = 0.002

    def plan(b):
        log_p = -cost / lam
        log_a, log_b = torch.log(a), torch.log(b)
        for _ in range(iterations):
            log_p = log_p - (torch.logsumexp(log_p, 0, keepdim=True) - log_a[None, :])
            log_p = log_p - (torch.logsumexp(log_p, 1, keepdim=True) - log_b[:, None])
        return torch.exp(log_p)

    with torch.no_grad():
        plan(b0)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def step():
        b = b0.clone().requires_grad_(True)
        loss = (cost * plan(b)).sum()
        loss.backward()
        return b.grad

    try:
        step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
        times = []
        budget = 1.0 if n > 2048 else 3.0
        spent = 0.0
        while len(times) < (2 if n > 2048 else 5) or spent < budget:
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
            spent += times[-1]
    except RuntimeError as error:
        print(json.dumps({"op": "torch_barycenter_step", "backward": "autograd", "n": n, "side": side,
                          "L": iterations, "threads": threads, "budget_gib": budget_gib,
                          "error": "out of memory within the budget: " + str(error).split("\n")[0][:120]}), flush=True)
        return
    print(json.dumps({"op": "torch_barycenter_step", "backward": "autograd", "n": n, "side": side, "L": iterations,
                      "entropy": lam, "threads": threads, "budget_gib": budget_gib, "ms": statistics.median(times) * 1000,
                      "peak_bytes": peak}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default=DEFAULT)
    parser.add_argument("--budget-gib", type=float, default=8.0)
    parser.add_argument("--child", default=None)
    parser.add_argument("--kernel", choices=["dense", "separable"], default="dense")
    args = parser.parse_args()
    if args.child:
        side, iterations = map(int, args.child.split(":"))
        (separable_child if args.kernel == "separable" else child)(side, iterations, args.threads, args.budget_gib)
        return
    for point in args.sizes.split(","):
        result = subprocess.run([sys.executable, __file__, "--child", point, "--threads", str(args.threads),
                                 "--budget-gib", str(args.budget_gib), "--kernel", args.kernel])
        if result.returncode != 0:
            side, iterations = point.split(":")
            print(json.dumps({"op": "torch_barycenter_step", "side": int(side), "L": int(iterations),
                              "error": f"exit status {result.returncode} (out of memory?)"}), flush=True)


if __name__ == "__main__":
    main()
