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
        spawnChild(variable: sinkhornChildVariable, value: "\(kind),\(size.batch),\(size.n),\(size.iterations)")
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

/// The barycenter sizes `(side, iterations)`: one transport problem of Figure 3's barycenter step
/// (`n = side²` bins, `λ = 0.002`) for each backward.
let barycenterSizes: [(side: Int, iterations: Int)] = [
    (32, 10), (32, 50), (32, 100), (32, 200), (32, 500), (64, 10), (64, 50), (64, 100), (64, 200),
]

/// Set in a child process of this executable to measure one barycenter step on a fresh heap.
let barycenterChildVariable = "SINKHORN_BENCH_BARYCENTER"

let barycenterBenchmarks: [Benchmark] = {
    if let request = ProcessInfo.processInfo.environment[barycenterChildVariable] {
        runBarycenterChild(request)
        exit(0)
    }
    return [
        Benchmark(op: "barycenter_step") {
            for backward in ["implicit", "unrolled"] {
                for size in barycenterSizes {
                    spawnChild(variable: barycenterChildVariable, value: "\(backward),\(size.side),\(size.iterations)")
                }
            }
        },
    ]
}()

/// Runs this executable again with `variable=value` and waits for it.
func spawnChild(variable: String, value: String) {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    child.arguments = ["child"]
    var environment = ProcessInfo.processInfo.environment
    environment[variable] = value
    child.environment = environment
    do {
        try child.run()
        child.waitUntilExit()
    } catch {
        FileHandle.standardError.write(Data("cannot start the measuring child: \(error)\n".utf8))
    }
}

/// In the child: one barycenter step's transport problem — the forward from the barycenter to one
/// input image and the gradient of `⟨C, P⟩` with respect to the barycenter — timed (median) with
/// its peak memory beyond a process that holds the cost, the two histograms and a finished plain
/// forward. A step with K inputs does this K times.
func runBarycenterChild(_ request: String) {
    let parts = request.split(separator: ",").map(String.init)
    guard parts.count == 3, let backward = TransportBackward(rawValue: parts[0]), let side = Int(parts[1]),
          let iterations = Int(parts[2]) else {
        FileHandle.standardError.write(Data("bad request \(request)\n".utf8))
        return
    }
    let n = side * side
    guard let cost = try? GridTransport.squaredDistanceCost(width: side, height: side) else { return }
    var rng = SeededGenerator(seed: 11)
    func histogram() -> [Float] {
        let raw = (0..<n).map { _ in 0.05 + rng.nextUniform() }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }
    let (b, a) = (histogram(), histogram())
    let entropy: Float = 0.002
    let space = SinkhornWorkspace()
    guard (try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy, iterations: iterations,
                                    backward: .implicit, workspace: space)) != nil else { return }
    let baseline = peakResidentBytes()
    let backwardSpace = SinkhornWorkspace()
    func step() -> Int {
        guard let solution = try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy,
                                                      iterations: iterations, backward: backward, workspace: space),
              let gradient = try? GridTransport.gradient(of: solution, backward: backward, workspace: backwardSpace)
        else { return 0 }
        return backwardSpace.reservedBytes + (solution.result.history?.bytes ?? 0) + 4 * gradient.cost.count
    }
    let accounted = step()
    let peak = peakResidentBytes() - baseline
    let large = n > 2048
    let ms = medianMilliseconds(warmup: 0, minRuns: large ? 2 : 5, budget: large ? 1 : 3) { _ = step() }
    emit(["op": "barycenter_step", "backward": backward.rawValue, "n": n, "side": side, "L": iterations,
          "entropy": entropy, "ms": ms, "peak_bytes": peak, "accounted_bytes": accounted])
}
