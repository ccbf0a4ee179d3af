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
    (128, 10), (128, 50), (128, 100), (128, 200),
]

/// Grids above this side run only the separable backwards (the dense cost alone would take
/// `4·side⁴` bytes: 1 GiB at 128²).
let barycenterDenseSideLimit = 64

/// The backwards of `barycenter_step`: `implicit` (dense solve) and `unrolled` are
/// `TransportBackward`'s; `implicit_cg` is the implicit backward with
/// `ImplicitSolver.conjugateGradient()` at its default settings; `separable_implicit` (conjugate
/// gradients at their default settings) and `separable_unrolled` are the same two backwards of
/// `SeparableGridTransport`, which never forms the `n × n` cost or plan.
let barycenterBackwards = ["implicit", "implicit_cg", "unrolled", "separable_implicit", "separable_unrolled"]

/// The conjugate-gradient tolerances `barycenter_cg_tolerance` sweeps.
let barycenterTolerances: [Double] = [1e-3, 1e-4, 1e-5, 1e-6, 1e-7]

/// Set in a child process of this executable to measure one barycenter step on a fresh heap.
let barycenterChildVariable = "SINKHORN_BENCH_BARYCENTER"

let barycenterBenchmarks: [Benchmark] = {
    if let request = ProcessInfo.processInfo.environment[barycenterChildVariable] {
        runBarycenterChild(request)
        exit(0)
    }
    return [
        // Size by size, all backwards at each size, so that a change in the machine's load
        // between sizes falls on all of them alike.
        Benchmark(op: "barycenter_step") {
            for size in barycenterSizes {
                for backward in barycenterBackwards
                where size.side <= barycenterDenseSideLimit || backward.hasPrefix("separable") {
                    spawnChild(variable: barycenterChildVariable, value: "\(backward),\(size.side),\(size.iterations)")
                }
            }
        },
        Benchmark(op: "barycenter_cg_tolerance") {
            for iterations in [10, 50, 200] {
                spawnChild(variable: barycenterChildVariable, value: "tolerance,64,\(iterations)")
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

/// The cost, the barycenter and input histograms (seed 11) and `λ` of one barycenter step's
/// transport problem on a `side × side` grid.
func barycenterProblem(side: Int, dense: Bool = true)
    -> (cost: Tensor, barycenter: [Float], input: [Float], entropy: Float)? {
    let n = side * side
    guard let cost = dense ? try? GridTransport.squaredDistanceCost(width: side, height: side)
                           : Tensor(shape: [1, 1], storage: [0]) else { return nil }
    var rng = SeededGenerator(seed: 11)
    func histogram() -> [Float] {
        let raw = (0..<n).map { _ in 0.05 + rng.nextUniform() }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }
    let (b, a) = (histogram(), histogram())
    return (cost, b, a, 0.002)
}

/// `max |x − y| / max |y|` over two gradients of the same shape.
func relativeMaxError(_ x: Tensor, _ y: Tensor) -> Double {
    var difference = 0.0, scale = 0.0
    for (u, v) in zip(x.storage, y.storage) {
        difference = max(difference, abs(Double(u) - Double(v)))
        scale = max(scale, abs(Double(v)))
    }
    return difference / max(scale, .leastNormalMagnitude)
}

/// In the child: one barycenter step's transport problem — the forward from the barycenter to one
/// input image and the gradient of `⟨C, P⟩` with respect to the barycenter — timed (median) with
/// its peak memory beyond a process that holds the cost, the two histograms and a finished plain
/// forward. A step with K inputs does this K times.
///
/// For `implicit_cg` the line also carries the conjugate-gradient iterations and relative residual
/// and, measured after the timing (so neither the time nor the peak includes it), the error of the
/// gradient against the dense implicit one of the same forward: `max |Δ| / max |dense|` for
/// `∂/∂a` (the barycenter's gradient) and for `∂/∂C`. `tolerance` requests sweep the
/// conjugate-gradient tolerance instead (`barycenter_cg_tolerance`).
func runBarycenterChild(_ request: String) {
    let parts = request.split(separator: ",").map(String.init)
    guard parts.count == 3, barycenterBackwards.contains(parts[0]) || parts[0] == "tolerance",
          let side = Int(parts[1]), let iterations = Int(parts[2]) else {
        FileHandle.standardError.write(Data("bad request \(request)\n".utf8))
        return
    }
    if parts[0] == "tolerance" {
        runToleranceSweep(side: side, iterations: iterations)
        return
    }
    let name = parts[0]
    if name.hasPrefix("separable") {
        runSeparableBarycenterChild(name: name, side: side, iterations: iterations)
        return
    }
    let backward: TransportBackward = name == "unrolled" ? .unrolled : .implicit
    let solver: ImplicitSolver? = name == "implicit_cg" ? .conjugateGradient() : nil
    let n = side * side
    guard let (cost, b, a, entropy) = barycenterProblem(side: side) else { return }
    let space = SinkhornWorkspace()
    guard (try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy, iterations: iterations,
                                    backward: .implicit, workspace: space)) != nil else { return }
    let baseline = peakResidentBytes()
    let backwardSpace = SinkhornWorkspace()
    var solverIterations = 0, solverResidual = Double.nan
    func step() -> Int {
        guard let solution = try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy,
                                                      iterations: iterations, backward: backward, workspace: space)
        else { return 0 }
        let gradient: TransportGradient
        if let solver {
            guard let answer = try? GridTransport.gradient(of: solution, solver: solver, workspace: backwardSpace)
            else { return 0 }
            gradient = answer.gradient
            solverIterations = answer.iterations.first ?? 0
            solverResidual = answer.relativeResiduals.first ?? .nan
        } else {
            guard let answer = try? GridTransport.gradient(of: solution, backward: backward, workspace: backwardSpace)
            else { return 0 }
            gradient = answer
        }
        return backwardSpace.reservedBytes + (solution.result.history?.bytes ?? 0) + 4 * gradient.cost.count
    }
    let accounted = step()
    let peak = peakResidentBytes() - baseline
    let large = n > 2048
    let ms = medianMilliseconds(warmup: 0, minRuns: large ? 2 : 5, budget: large ? 1 : 3) { _ = step() }
    guard let solver else {
        emit(["op": "barycenter_step", "backward": name, "n": n, "side": side, "L": iterations,
              "entropy": entropy, "ms": ms, "peak_bytes": peak, "accounted_bytes": accounted])
        return
    }
    var errorA = Double.nan, errorCost = Double.nan
    if let solution = try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy,
                                               iterations: iterations, workspace: space),
       let dense = try? GridTransport.gradient(of: solution, backward: .implicit),
       let matrixFree = try? GridTransport.gradient(of: solution, solver: solver) {
        errorA = relativeMaxError(matrixFree.gradient.rowMarginal, dense.rowMarginal)
        errorCost = relativeMaxError(matrixFree.gradient.cost, dense.cost)
    }
    emit(["op": "barycenter_step", "backward": name, "n": n, "side": side, "L": iterations,
          "entropy": entropy, "ms": ms, "peak_bytes": peak, "accounted_bytes": accounted,
          "cg_iterations": solverIterations, "cg_relative_residual": solverResidual,
          "error_a_vs_dense": errorA, "error_cost_vs_dense": errorCost])
}

/// The separable backwards of `barycenter_step` (see `runBarycenterChild`): the same transport
/// problem by `SeparableGridTransport`, timed with its peak memory beyond a process holding the two
/// histograms and a finished forward; up to 64² the line also carries, measured after the timing,
/// `max |Δ| / max |dense|` of `∂/∂a` against the dense implementation's same backward.
func runSeparableBarycenterChild(name: String, side: Int, iterations: Int) {
    let backward: TransportBackward = name == "separable_unrolled" ? .unrolled : .implicit
    let n = side * side
    guard let (_, b, a, entropy) = barycenterProblem(side: side, dense: false),
          let grid = try? SeparableGridTransport(width: side, height: side, entropy: entropy),
          (try? grid.solve(source: b, target: a, iterations: iterations)) != nil else { return }
    let baseline = peakResidentBytes()
    var solverIterations = 0
    var last: SeparableTransportGradient?
    func step() -> Int {
        guard let solution = try? grid.solve(source: b, target: a, iterations: iterations,
                                             recordsHistory: backward == .unrolled),
              let gradient = try? grid.gradient(of: solution, backward: backward) else { return 0 }
        solverIterations = gradient.solverIterations
        last = gradient
        return solution.historyBytes + gradient.scratchBytes
    }
    let accounted = step()
    let peak = peakResidentBytes() - baseline
    let large = n > 2048
    let ms = medianMilliseconds(warmup: 0, minRuns: large ? 3 : 5, budget: large ? 2 : 3) { _ = step() }
    var line: [(key: String, value: Any)] = [
        ("op", "barycenter_step"), ("backward", name), ("n", n), ("side", side), ("L", iterations),
        ("entropy", entropy), ("ms", ms), ("peak_bytes", peak), ("accounted_bytes", accounted),
    ]
    if backward == .implicit { line.append(("cg_iterations", solverIterations)) }
    if side <= barycenterDenseSideLimit, let last, let (cost, _, _, _) = barycenterProblem(side: side),
       let solution = try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy,
                                               iterations: iterations, backward: backward),
       let dense = try? GridTransport.gradient(of: solution, backward: backward,
                                               solver: backward == .implicit ? .conjugateGradient() : .dense) {
        line.append(("error_a_vs_dense", relativeMaxError(Tensor(shape: [n], storage: last.source),
                                                          Tensor(shape: [n], storage: dense.rowMarginal.storage))))
    }
    emit(pairs: line)
}

/// `barycenter_cg_tolerance`: on one forward, the conjugate-gradient backward at each tolerance of
/// `barycenterTolerances` — its time (median), iterations and error against the dense backward
/// (as in `runBarycenterChild`), beside the dense backward's time.
func runToleranceSweep(side: Int, iterations: Int) {
    guard let (cost, b, a, entropy) = barycenterProblem(side: side),
          let solution = try? GridTransport.solve(cost: cost, source: b, target: a, entropy: entropy,
                                                  iterations: iterations) else { return }
    let space = SinkhornWorkspace()
    guard let dense = try? GridTransport.gradient(of: solution, backward: .implicit, workspace: space) else { return }
    let denseMs = medianMilliseconds(warmup: 0, minRuns: 2, budget: 1) {
        _ = try? GridTransport.gradient(of: solution, backward: .implicit, workspace: space)
    }
    for tolerance in barycenterTolerances {
        let solver = ImplicitSolver.conjugateGradient(tolerance: tolerance)
        guard let answer = try? GridTransport.gradient(of: solution, solver: solver, workspace: space) else {
            emit(["op": "barycenter_cg_tolerance", "n": side * side, "side": side, "L": iterations,
                  "tolerance": tolerance, "converged": 0])
            continue
        }
        let ms = medianMilliseconds(warmup: 0, minRuns: 3, budget: 1) {
            _ = try? GridTransport.gradient(of: solution, solver: solver, workspace: space)
        }
        emit(["op": "barycenter_cg_tolerance", "n": side * side, "side": side, "L": iterations, "entropy": entropy,
              "tolerance": tolerance, "converged": 1, "cg_iterations": answer.iterations.first ?? 0,
              "cg_relative_residual": answer.relativeResiduals.first ?? .nan, "backward_ms": ms,
              "dense_backward_ms": denseMs,
              "marginal_error": solution.result.marginalError.first ?? .nan,
              "error_a_vs_dense": relativeMaxError(answer.gradient.rowMarginal, dense.rowMarginal),
              "error_cost_vs_dense": relativeMaxError(answer.gradient.cost, dense.cost)])
    }
}
