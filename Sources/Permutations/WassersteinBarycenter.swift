#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TensorKit

/// What one evaluation of the barycenter energy produced.
public struct BarycenterEnergy: Sendable {
    /// `E(b) = Σ_k w_k · OT_λ(b, a_k)`.
    public let energy: Float
    /// `∂E/∂b` with its mean under `b` removed, `g − ⟨b, g⟩` (the component along the simplex; a
    /// constant added to `∂E/∂b` cannot change `E` on the simplex).
    public let gradient: [Float]
    /// The largest marginal error `Σ_j |Σ_i P_ij − a_kj|` over the inputs' forward passes.
    public let marginalError: Float
    /// The bytes the backward held besides the forward's plan: the implicit backward's Double
    /// scratch, or the unrolled backward's recorded potentials and its scratch.
    public let backwardBytes: Int
}

/// A barycenter and the path that reached it.
public struct BarycenterResult: Sendable {
    /// The barycenter `b`, a histogram on the grid (sums to 1), row-major.
    public let histogram: [Float]
    /// `E(b)` at the start and after every step (`steps + 1` values).
    public let energies: [Float]
    /// The largest `backwardBytes` of any step.
    public let peakBackwardBytes: Int
    /// Energy and gradient evaluations, the start's and every tried step's (more than `steps + 1`
    /// when backtracking rejected steps).
    public let evaluations: Int
}

/// Wasserstein barycenters of histograms on a grid with a differentiable Sinkhorn layer
/// (Cuturi & Doucet 2014; Eisenberger et al. 2022, §5.2, Figure 3).
///
/// For inputs `a_1 … a_K` (histograms on one `width × height` grid) and weights `w_k ≥ 0` summing
/// to 1, the barycenter minimises
///
///     E(b) = Σ_k w_k · OT_λ(b, a_k),   OT_λ(b, a) = ⟨C, P_λ(b, a)⟩
///
/// over the simplex, where `P_λ` is the entropic plan after `τ` Sinkhorn iterations
/// (`GridTransport.solve`) and `C` the squared distance between bins in normalised coordinates.
/// `∂E/∂b = Σ_k w_k ∂OT_λ/∂a` comes from the chosen backward of the Sinkhorn layer (the implicit
/// one of Eisenberger et al. 2022, Algorithm 1, or the unrolled one). The minimisation is entropic
/// mirror descent, `log b ← log b − η (∂E/∂b − ⟨b, ∂E/∂b⟩)` followed by normalisation (gradient
/// descent on the softmax logits of `b` in the geometry of the simplex; Cuturi & Doucet 2014, §4).
///
/// The Sinkhorn layer needs positive marginals: `histogram(of:floor:)` turns an image into one,
/// giving every bin at least `floor` of the mass.
public enum WassersteinBarycenter {
    /// An image's pixels as a histogram: `(max(x, 0) + floor · S) / ((1 + n · floor) · S)` with
    /// `S = Σ max(x, 0)`, so every bin holds at least `floor / (1 + n · floor)` and the total is 1.
    ///
    /// - Throws: `SinkhornError.nonPositiveMarginal` for an image with no positive pixel or a
    ///   non-finite one.
    public static func histogram(of pixels: [Float], floor: Float = 1e-6) throws(SinkhornError) -> [Float] {
        var total: Double = 0
        for (index, value) in pixels.enumerated() {
            guard value.isFinite else { throw .nonPositiveMarginal(index: index, value: value) }
            total += Double(Swift.max(value, 0))
        }
        guard total > 0 else { throw .nonPositiveMarginal(index: 0, value: 0) }
        let n = Double(pixels.count), f = Double(floor)
        let scale = 1 / ((1 + n * f) * total)
        return pixels.map { Float((Double(Swift.max($0, 0)) + f * total) * scale) }
    }

    /// `E(b)` and its gradient on the simplex.
    ///
    /// - Parameters:
    ///   - barycenter: `b [n]`, positive, summing to 1.
    ///   - inputs: the `a_k`, each `[n]`, positive, summing to 1.
    ///   - weights: `w_k`, one per input; inputs with weight 0 are skipped.
    ///   - cost: `C [n, n]` (`GridTransport.squaredDistanceCost`).
    ///   - entropy: `λ`.
    ///   - iterations: Sinkhorn iterations `τ` per transport problem.
    ///   - backward: `.implicit` or `.unrolled`.
    ///   - solver: the implicit backward's linear solve (``ImplicitSolver``; dense by default).
    ///   - workspace: scratch of the forward passes.
    ///   - backwardWorkspace: scratch of the backward passes, kept apart from the forward's so that
    ///     `backwardBytes` counts it (reuse one across calls with the same sizes).
    /// - Throws: `SinkhornError` for bad shapes, marginals or settings.
    public static func energy(of barycenter: [Float], inputs: [[Float]], weights: [Float], cost: Tensor,
                              entropy: Float, iterations: Int, backward: TransportBackward,
                              solver: ImplicitSolver = .dense,
                              workspace: SinkhornWorkspace? = nil,
                              backwardWorkspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> BarycenterEnergy {
        let n = barycenter.count
        guard inputs.count == weights.count, !inputs.isEmpty else {
            throw .marginalLength(expected: inputs.count, found: weights.count)
        }
        for (index, weight) in weights.enumerated() where !(weight.isFinite && weight >= 0) {
            throw .nonPositiveMarginal(index: index, value: weight)
        }
        let space = workspace ?? SinkhornWorkspace()
        var energy: Double = 0
        var gradient = [Double](repeating: 0, count: n)
        var marginalError: Float = 0
        var backwardBytes = 0
        for (input, weight) in zip(inputs, weights) where weight > 0 {
            let solution = try GridTransport.solve(cost: cost, source: barycenter, target: input, entropy: entropy,
                                                   iterations: iterations, backward: backward, workspace: space)
            // The backward has a workspace of its own, so that its size is what the backward needs.
            let backwardSpace = backwardWorkspace ?? SinkhornWorkspace()
            let partial = try GridTransport.gradient(of: solution, backward: backward, solver: solver, workspace: backwardSpace)
            backwardBytes = Swift.max(backwardBytes,
                                      (solution.result.history?.bytes ?? 0) + backwardSpace.reservedBytes)
            energy += Double(weight) * Double(solution.loss)
            marginalError = Swift.max(marginalError, solution.result.marginalError[0])
            partial.rowMarginal.withUnsafeBufferPointer { g in
                for i in 0..<n { gradient[i] += Double(weight) * Double(g[i]) }
            }
        }
        var mean: Double = 0
        for i in 0..<n { mean += Double(barycenter[i]) * gradient[i] }
        return BarycenterEnergy(energy: Float(energy), gradient: gradient.map { Float($0 - mean) },
                                marginalError: marginalError, backwardBytes: backwardBytes)
    }

    /// `E(b)` and its gradient on the simplex with the separable grid transport (`grid` holds the
    /// grid and `λ`): each `OT_λ(b, a_k)` by `SeparableGridTransport.solve` and its `∂/∂b` by the
    /// chosen backward (conjugate gradients by default for `.implicit`; `.dense` forms each plan).
    ///
    /// The transport problems run concurrently, one per core; each is computed the same way on any
    /// thread and the sum is taken in input order, so the result does not depend on the core count.
    /// `backwardBytes` is the largest of one problem's history and backward scratch.
    /// - Throws: `SinkhornError` for bad shapes, marginals or settings.
    public static func energy(of barycenter: [Float], inputs: [[Float]], weights: [Float],
                              grid: SeparableGridTransport, iterations: Int, backward: TransportBackward,
                              solver: ImplicitSolver = .conjugateGradient()) throws(SinkhornError) -> BarycenterEnergy {
        let n = barycenter.count
        guard inputs.count == weights.count, !inputs.isEmpty else {
            throw .marginalLength(expected: inputs.count, found: weights.count)
        }
        guard n == grid.count else { throw .marginalLength(expected: grid.count, found: n) }
        for (index, weight) in weights.enumerated() where !(weight.isFinite && weight >= 0) {
            throw .nonPositiveMarginal(index: index, value: weight)
        }
        let active = weights.indices.filter { weights[$0] > 0 }
        var outcomes = [Result<(SeparableTransportSolution, SeparableTransportGradient), SinkhornError>?](
            repeating: nil, count: active.count)
        outcomes.withUnsafeMutableBufferPointer { results in
            let base = results.baseAddress!
            let workers = Swift.min(sinkhornProcessorCount, active.count)
            forEachBlock(workers) { worker in
                for slot in stride(from: worker, to: active.count, by: workers) {
                    base[slot] = Result { () throws(SinkhornError) in
                        let solution = try grid.solve(source: barycenter, target: inputs[active[slot]],
                                                      iterations: iterations, recordsHistory: backward == .unrolled)
                        return (solution, try grid.gradient(of: solution, backward: backward, solver: solver))
                    }
                }
            }
        }
        var energy: Double = 0
        var gradient = [Double](repeating: 0, count: n)
        var marginalError: Float = 0
        var backwardBytes = 0
        for (slot, index) in active.enumerated() {
            let (solution, partial) = try outcomes[slot]!.get()
            let weight = Double(weights[index])
            energy += weight * Double(solution.loss)
            marginalError = Swift.max(marginalError, solution.marginalError)
            backwardBytes = Swift.max(backwardBytes, solution.historyBytes + partial.scratchBytes)
            for i in 0..<n { gradient[i] += weight * Double(partial.source[i]) }
        }
        var mean: Double = 0
        for i in 0..<n { mean += Double(barycenter[i]) * gradient[i] }
        return BarycenterEnergy(energy: Float(energy), gradient: gradient.map { Float($0 - mean) },
                                marginalError: marginalError, backwardBytes: backwardBytes)
    }

    /// Minimises `E(b)` by entropic mirror descent from `start` (uniform when `nil`).
    ///
    /// With `backtracking` a step that raises `E` is retried from the same point with half the
    /// step size (up to 30 times, after which the step is taken as it is; the size reached is kept
    /// for the next step and grown by 1.25 after two steps in a row accepted at once), so a too large `stepSize`
    /// costs evaluations, not divergence. Without it every step is taken as it comes (plain mirror
    /// descent, as in Figure 3 of Eisenberger et al.).
    ///
    /// - Parameters:
    ///   - steps: accepted mirror-descent steps.
    ///   - stepSize: the initial `η`.
    ///   - progress: called after every step with the step number (from 1) and `E` after it.
    /// - Throws: `SinkhornError` for bad inputs or settings (`invalidIterations` for negative steps,
    ///   `invalidTemperature` for a step size that is not positive), `nonFiniteInput` when an
    ///   energy or gradient stops being finite.
    public static func compute(inputs: [[Float]], weights: [Float], cost: Tensor, entropy: Float,
                               iterations: Int, backward: TransportBackward, solver: ImplicitSolver = .dense,
                               steps: Int, stepSize: Float,
                               backtracking: Bool = true, start: [Float]? = nil,
                               workspace: SinkhornWorkspace? = nil,
                               progress: ((Int, Float) -> Void)? = nil) throws(SinkhornError) -> BarycenterResult {
        let space = workspace ?? SinkhornWorkspace(), backwardSpace = SinkhornWorkspace()
        return try descend(inputs: inputs, steps: steps, stepSize: stepSize, backtracking: backtracking, start: start,
                           progress: progress) { (b: [Float]) throws(SinkhornError) -> BarycenterEnergy in
            try energy(of: b, inputs: inputs, weights: weights, cost: cost, entropy: entropy,
                       iterations: iterations, backward: backward, solver: solver, workspace: space,
                       backwardWorkspace: backwardSpace)
        }
    }

    /// ``compute(inputs:weights:cost:entropy:iterations:backward:solver:steps:stepSize:backtracking:start:workspace:progress:)``
    /// with the separable grid transport (`grid` holds `λ`): the same descent, each transport
    /// problem solved and differentiated without forming its `n × n` plan.
    public static func compute(inputs: [[Float]], weights: [Float], grid: SeparableGridTransport,
                               iterations: Int, backward: TransportBackward,
                               solver: ImplicitSolver = .conjugateGradient(),
                               steps: Int, stepSize: Float, backtracking: Bool = true, start: [Float]? = nil,
                               progress: ((Int, Float) -> Void)? = nil) throws(SinkhornError) -> BarycenterResult {
        try descend(inputs: inputs, steps: steps, stepSize: stepSize, backtracking: backtracking, start: start,
                    progress: progress) { (b: [Float]) throws(SinkhornError) -> BarycenterEnergy in
            try energy(of: b, inputs: inputs, weights: weights, grid: grid, iterations: iterations,
                       backward: backward, solver: solver)
        }
    }

    /// Entropic mirror descent on `E` given by `evaluate` (see `compute`).
    static func descend(inputs: [[Float]], steps: Int, stepSize: Float, backtracking: Bool, start: [Float]?,
                        progress: ((Int, Float) -> Void)?,
                        energy: ([Float]) throws(SinkhornError) -> BarycenterEnergy) throws(SinkhornError) -> BarycenterResult {
        guard steps >= 0 else { throw .invalidIterations(steps) }
        guard let n = inputs.first?.count, n > 0 else { throw .marginalLength(expected: 1, found: 0) }
        guard stepSize.isFinite, stepSize > 0 else { throw .invalidTemperature(stepSize) }
        var b = start ?? [Float](repeating: 1 / Float(n), count: n)
        guard b.count == n else { throw .marginalLength(expected: n, found: b.count) }
        func evaluate(_ b: [Float]) throws(SinkhornError) -> BarycenterEnergy {
            let value = try energy(b)
            guard value.energy.isFinite, value.gradient.allSatisfy(\.isFinite) else { throw .nonFiniteInput(index: 0) }
            return value
        }
        var logB = b.map { Double(logf($0)) }
        var current = try evaluate(b)
        var energies = [current.energy]
        var peak = current.backwardBytes
        var eta = Double(stepSize)
        var streak = 0
        var evaluations = 1
        for step in 0..<steps {
            var attempts = 0
            while true {
                var candidateLog = logB
                for i in 0..<n { candidateLog[i] -= eta * Double(current.gradient[i]) }
                let candidate = normalisedExponential(candidateLog)
                let value = try evaluate(candidate)
                peak = Swift.max(peak, value.backwardBytes)
                attempts += 1
                evaluations += 1
                if !backtracking || value.energy <= current.energy || attempts > 30 {
                    logB = candidate.map { Double(logf($0)) }
                    b = candidate
                    current = value
                    break
                }
                eta /= 2
                streak = 0
            }
            if backtracking, attempts == 1 {
                streak += 1
                if streak >= 2 { eta *= 1.25; streak = 0 }
            }
            energies.append(current.energy)
            progress?(step + 1, current.energy)
        }
        return BarycenterResult(histogram: b, energies: energies, peakBackwardBytes: peak, evaluations: evaluations)
    }

    /// `exp(x − max x) / Σ exp(x − max x)` in Double, with `x − max x` held above −40 so that no
    /// bin falls below `e⁻⁴⁰ ≈ 4·10⁻¹⁸` of the largest and the Sinkhorn layer's scalings stay finite.
    static func normalisedExponential(_ logits: [Double]) -> [Float] {
        let top = logits.max() ?? 0
        var values = logits.map { exp(Swift.max($0 - top, -40)) }
        let total = values.reduce(0, +)
        for i in values.indices { values[i] /= total }
        return values.map { Swift.max(Float($0), Float.leastNormalMagnitude) }
    }

    /// The bilinear weights of the four corners `(0, 0), (1, 0), (0, 1), (1, 1)` at `(s, t)`:
    /// `[(1−s)(1−t), s(1−t), (1−s)t, st]` (Figure 3's interpolation between four corner images).
    public static func bilinearWeights(s: Float, t: Float) -> [Float] {
        [(1 - s) * (1 - t), s * (1 - t), (1 - s) * t, s * t]
    }
}
