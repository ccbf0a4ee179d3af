import Foundation
import Permutations
import TensorKit

/// The forward sizes `(B, n, iterations)` compared with PyTorch.
let sinkhornSizes: [(batch: Int, n: Int, iterations: Int)] = [
    (64, 4, 20), (64, 9, 20), (64, 36, 20), (1, 100, 20), (1, 1000, 20), (1, 1000, 100),
]

/// The backward sizes: the forward ones plus a long unroll.
let sinkhornBackwardSizes = sinkhornSizes + [(1, 1000, 200)]

/// Set in a child process of this executable to measure one backward on a fresh heap.
let sinkhornChildVariable = "SINKHORN_BENCH_BACKWARD"

let sinkhornBenchmarks: [Benchmark] = {
    if let request = ProcessInfo.processInfo.environment[sinkhornChildVariable] {
        runBackwardChild(request)
        exit(0)
    }
    return [
        Benchmark(op: "sinkhorn_forward") {
            let workspace = SinkhornWorkspace()
            for size in sinkhornSizes {
                var rng = SeededGenerator(seed: 7)
                let scores = rng.normal([size.batch, size.n, size.n])
                let ms = medianMilliseconds {
                    _ = try? Sinkhorn.forward(scores, temperature: 1, iterations: size.iterations, workspace: workspace)
                }
                emit(["op": "sinkhorn_forward", "B": size.batch, "n": size.n, "L": size.iterations, "ms": ms])
            }
        },
        Benchmark(op: "sinkhorn_backward_unrolled") { spawnBackwardChildren(kind: "unrolled") },
        Benchmark(op: "sinkhorn_backward_implicit") { spawnBackwardChildren(kind: "implicit") },
    ]
}()

/// Runs each size in its own process so that the peak resident set (`VmHWM`, monotone over a
/// process's life) reflects that backward alone; the child prints the JSON line.
func spawnBackwardChildren(kind: String) {
    for size in sinkhornBackwardSizes {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = ["sinkhorn_backward_child"]
        var environment = ProcessInfo.processInfo.environment
        environment[sinkhornChildVariable] = "\(kind),\(size.batch),\(size.n),\(size.iterations)"
        child.environment = environment
        do {
            try child.run()
            child.waitUntilExit()
        } catch {
            FileHandle.standardError.write(Data("cannot start the measuring child: \(error)\n".utf8))
        }
    }
}

/// In the child: time one backward kind at one size and report the memory it adds.
///
/// `peak_bytes` is the growth of the peak resident set across a first call (forward with history
/// plus backward for `unrolled`; backward alone for `implicit`) beyond a process that already holds
/// the inputs, a finished plain forward and its outputs: the memory the gradient needs on top of
/// inference. `accounted_bytes` counts what the code holds on purpose: the workspace's buffers,
/// the recorded potentials and the gradient tensor.
func runBackwardChild(_ request: String) {
    let parts = request.split(separator: ",").map(String.init)
    guard parts.count == 4, let batch = Int(parts[1]), let n = Int(parts[2]), let iterations = Int(parts[3]) else {
        FileHandle.standardError.write(Data("bad request \(request)\n".utf8))
        return
    }
    let kind = parts[0]
    var rng = SeededGenerator(seed: 7)
    let scores = rng.normal([batch, n, n])
    let upstream = rng.normal([batch, n, n])
    let forwardSpace = SinkhornWorkspace()
    guard let plain = try? Sinkhorn.forward(scores, iterations: iterations, workspace: forwardSpace) else { return }
    let baseline = peakResidentBytes()
    let backwardSpace = SinkhornWorkspace()
    var accounted = 0
    switch kind {
    case "unrolled":
        guard let recorded = try? Sinkhorn.forward(scores, iterations: iterations, recordsHistory: true,
                                                   workspace: forwardSpace),
              let gradient = try? Sinkhorn.unrolledGradient(recorded, scores: scores, upstream: upstream,
                                                            workspace: backwardSpace) else { return }
        let peak = peakResidentBytes() - baseline
        accounted = backwardSpace.reservedBytes + (recorded.history?.bytes ?? 0) + 4 * gradient.count
        let ms = medianMilliseconds {
            _ = try? Sinkhorn.unrolledGradient(recorded, scores: scores, upstream: upstream, workspace: backwardSpace)
        }
        emit(["op": "sinkhorn_backward_unrolled", "B": batch, "n": n, "L": iterations, "ms": ms,
              "peak_bytes": peak, "accounted_bytes": accounted])
    default:
        guard let gradient = try? Sinkhorn.implicitGradient(plain, upstream: upstream, workspace: backwardSpace)
        else { return }
        let peak = peakResidentBytes() - baseline
        accounted = backwardSpace.reservedBytes + 4 * gradient.count
        let ms = medianMilliseconds {
            _ = try? Sinkhorn.implicitGradient(plain, upstream: upstream, workspace: backwardSpace)
        }
        emit(["op": "sinkhorn_backward_implicit", "B": batch, "n": n, "L": iterations, "ms": ms,
              "peak_bytes": peak, "accounted_bytes": accounted])
    }
}
