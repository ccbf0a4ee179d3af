"""PyTorch (CPU) twin of `sinkhorn-bench barycenter_step`: one transport problem of the barycenter
step, the log-domain Sinkhorn forward from the barycenter b to an input a on a side x side grid
(squared distances in normalised coordinates, lambda = 0.002) and the gradient of <C, P> with
respect to b by automatic differentiation through every iteration (what the paper calls AD).

Each point runs in a fresh child process; peak_bytes is the growth of ru_maxrss over the child's
baseline (cost, histograms and one forward without gradient already held). Prints one JSON line per
point, the same fields as sinkhorn-bench.

Each child's address space is limited to --budget-gib (default 8): a point that needs more reports
an error line instead of running.

Usage: python bench/torch_barycenter.py [--threads 2] [--budget-gib 8] [--sizes 32:10,32:50,...]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

DEFAULT = "32:10,32:50,32:100,32:200,32:500,64:10,64:50,64:100,64:200"


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
    args = parser.parse_args()
    if args.child:
        side, iterations = map(int, args.child.split(":"))
        child(side, iterations, args.threads, args.budget_gib)
        return
    for point in args.sizes.split(","):
        result = subprocess.run([sys.executable, __file__, "--child", point, "--threads", str(args.threads),
                                 "--budget-gib", str(args.budget_gib)])
        if result.returncode != 0:
            side, iterations = point.split(":")
            print(json.dumps({"op": "torch_barycenter_step", "side": int(side), "L": int(iterations),
                              "error": f"exit status {result.returncode} (out of memory?)"}), flush=True)


if __name__ == "__main__":
    main()
