#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TensorKit

/// Entropic optimal transport between histograms on a regular grid with the Gibbs kernel applied
/// one axis at a time (Solomon et al. 2015, "Convolutional Wasserstein distances"), in the log
/// domain, with the implicit and the unrolled backward.
///
/// The cost is `GridTransport`'s, `C_pq = ‖x_p − x_q‖² = (Δx)² + (Δy)²` in normalised coordinates, so
/// the kernel factors: `exp(−C_pq/λ) = exp(−Δx²/λ) · exp(−Δy²/λ)`. Every `n × n` product the dense
/// solver makes is then two passes of 1-D products, one along the rows of the image and one along its
/// columns: `O(n·(w + h))` work instead of `O(n²)` for `n = w·h` bins (at 64², 128 exponentials per
/// bin instead of 4,096), and `O(n)` memory (the plan is never formed).
///
/// Each 1-D pass is a log-sum-exp, `t_p = log Σ_q exp(h_q − Δ_pq²/λ)`, taken around its maximum for
/// every output bin, so nothing under- or overflows however small `λ` is; the forward is therefore
/// exactly the dense log-domain iteration of `Sinkhorn.transport` (columns first, from zero
/// potentials), with `log P_pq = f_p + g_q − C_pq/λ`:
///
///     g ← log b − lse_p(f_p − C_pq/λ),   f ← log a − lse_q(g_q − C_pq/λ).
///
/// Products of the plan with a vector of either sign, `P x`, carry a log-scale and a signed sum
/// through both passes. The backward needs nothing else:
/// - **implicit** (Eisenberger et al. 2022, Algorithm 1): the system of `ImplicitSolver` solved by
///   conjugate gradients, each iteration two plan products; `.dense` forms the plan and uses the
///   dense Cholesky solve (for small grids and as a reference).
/// - **unrolled**: back-propagation through the `τ` iterations, from the potentials of each
///   (`2τn` floats), each iteration two plan products.
///
/// Only the gradients with respect to the marginals are computed (`∂ℓ/∂C` would be `n × n`).
public struct SeparableGridTransport: Sendable {
    /// Columns of the grid (the image width).
    public let width: Int
    /// Rows of the grid (the image height).
    public let height: Int
    /// `λ > 0`.
    public let entropy: Float
    /// `n = width · height` bins, row-major.
    public var count: Int { width * height }

    /// `−Δ²/λ` between the columns `[w, w]` and between the rows `[h, h]` (symmetric).
    let logKernelX: [Float], logKernelY: [Float]
    /// `Δ²` between columns `[w, w]` and rows `[h, h]`: the two parts of the cost.
    let costX: [Float], costY: [Float]
    /// The 1-D kernels of the passes: `exp(−Δ²/λ)`, the same times `Δ²` (for `P ⊙ C`), and
    /// `exp(−2Δ²/λ)` (for `P ⊙ P`), per axis.
    let kernelX: AxisKernel, kernelY: AxisKernel
    let costKernelX: AxisKernel, costKernelY: AxisKernel
    let squaredKernelX: AxisKernel, squaredKernelY: AxisKernel

    /// - Throws: `SinkhornError.invalidShape` for a side below 1, `.invalidTemperature` for `λ` that
    ///   is not finite and positive, `.nonFiniteInput` when `λ` is so small that `−C/λ` overflows.
    public init(width: Int, height: Int, entropy: Float) throws(SinkhornError) {
        guard width > 0, height > 0 else { throw .invalidShape(shape: [height, width]) }
        guard entropy.isFinite, entropy > 0 else { throw .invalidTemperature(entropy) }
        func squares(_ side: Int) -> [Float] {
            let spacing: Float = side > 1 ? 1 / Float(side - 1) : 0
            var values = [Float](repeating: 0, count: side * side)
            for k in 0..<side {
                for j in 0..<side {
                    let d = Float(k - j) * spacing
                    values[k * side + j] = d * d
                }
            }
            return values
        }
        self.width = width
        self.height = height
        self.entropy = entropy
        costX = squares(width)
        costY = squares(height)
        logKernelX = costX.map { -$0 / entropy }
        logKernelY = costY.map { -$0 / entropy }
        for (index, value) in (logKernelX + logKernelY).enumerated() where !(2 * value).isFinite {
            throw .nonFiniteInput(index: index)
        }
        kernelX = AxisKernel(log: logKernelX, weight: nil)
        kernelY = AxisKernel(log: logKernelY, weight: nil)
        costKernelX = AxisKernel(log: logKernelX, weight: costX)
        costKernelY = AxisKernel(log: logKernelY, weight: costY)
        squaredKernelX = AxisKernel(log: logKernelX.map { 2 * $0 }, weight: nil)
        squaredKernelY = AxisKernel(log: logKernelY.map { 2 * $0 }, weight: nil)
    }

    /// Solves `OT_λ(a, b)` with `iterations` log-domain Sinkhorn iterations.
    ///
    /// - Parameters:
    ///   - source: `a [n]`, positive (the rows of the plan).
    ///   - target: `b [n]`, positive, `Σ b = Σ a` (relative difference below 1e-4).
    ///   - iterations: `τ ≥ 0`.
    ///   - recordsHistory: keep every iteration's potentials for the unrolled backward.
    /// - Throws: `SinkhornError` for bad marginals or iterations.
    /// - Complexity: `O(τ·n·(w + h))` time, `O(n)` memory (`O(τ·n)` with the history).
    public func solve(source: [Float], target: [Float], iterations: Int,
                      recordsHistory: Bool = false) throws(SinkhornError) -> SeparableTransportSolution {
        let n = count
        guard iterations >= 0 else { throw .invalidIterations(iterations) }
        guard source.count == n else { throw .marginalLength(expected: n, found: source.count) }
        guard target.count == n else { throw .marginalLength(expected: n, found: target.count) }
        for (index, value) in source.enumerated() where !(value.isFinite && value > 0) {
            throw .nonPositiveMarginal(index: index, value: value)
        }
        for (index, value) in target.enumerated() where !(value.isFinite && value > 0) {
            throw .nonPositiveMarginal(index: n + index, value: value)
        }
        let sourceMass = source.reduce(0, +), targetMass = target.reduce(0, +)
        guard abs(sourceMass - targetMass) <= 1e-4 * Swift.max(sourceMass, targetMass) else {
            throw .unequalMass(rowMass: sourceMass, columnMass: targetMass)
        }
        let logA = source.map { logf($0) }, logB = target.map { logf($0) }
        var f = [Float](repeating: 0, count: n), g = [Float](repeating: 0, count: n)
        var history = [Float]()
        if recordsHistory { history.reserveCapacity(2 * n * iterations) }
        var scratch = ConvolutionScratch(width: width, height: height)
        var sums = [Float](repeating: 0, count: n)
        for _ in 0..<iterations {
            logConvolve(f, into: &sums, scratch: &scratch)
            for q in 0..<n { g[q] = logB[q] - sums[q] }
            logConvolve(g, into: &sums, scratch: &scratch)
            for p in 0..<n { f[p] = logA[p] - sums[p] }
            if recordsHistory { history += f; history += g }
        }
        // Column sums of the plan: exp(g_q + lse_p(f_p − C_pq/λ)).
        logConvolve(f, into: &sums, scratch: &scratch)
        var marginalError: Float = 0
        for q in 0..<n { marginalError += abs(expf(g[q] + sums[q]) - target[q]) }
        var solution = SeparableTransportSolution(
            width: width, height: height, entropy: entropy, source: source, target: target, f: f, g: g,
            iterations: iterations, loss: 0, marginalError: marginalError,
            history: recordsHistory ? history : nil)
        let rowCost = weightedRowSums(f: f, g: g, scratch: &scratch)
        solution.loss = Float(rowCost.reduce(0.0) { $0 + Double($1) })
        return solution
    }

    /// `∂OT_λ/∂a` and `∂OT_λ/∂b` of the loss `⟨C, P⟩` by the chosen backward.
    ///
    /// The implicit backward solves `[[diag(â), P], [Pᵀ, diag(b̂)]] [α; β] = [T1; Tᵀ1]` with
    /// `T = P ⊙ C`, `â = P1`, `b̂ = Pᵀ1` and returns `∂ℓ/∂a = α`, `∂ℓ/∂b = β` (`β_n = 0`); `solver`
    /// picks conjugate gradients on the Schur complement (two plan products per iteration) or
    /// `.dense`, which forms the plan and the cost (`O(n²)` memory, `O(n³)` time).
    ///
    /// The unrolled backward runs the forward's iterations backwards (it needs `recordsHistory`):
    /// with adjoints `f̄ = T1`, `ḡ = Tᵀ1` of the last potentials, each iteration `t = τ … 1` does
    ///
    ///     ā += f̄ / a,  ḡ −= P_tᵀ (f̄ / a),  b̄ += ḡ / b,  f̄ ← −P_t′ (ḡ / b),  ḡ ← 0,
    ///
    /// with `P_t = exp(f_t ⊕ g_t − C/λ)` and `P_t′ = exp(f_{t−1} ⊕ g_t − C/λ)` (the softmax weights
    /// of the two half-steps). Its result is the derivative of exactly the iterations run.
    ///
    /// Both backwards return `∂ℓ/∂a_i` as a float sum divided by `a_i` (and `∂ℓ/∂b_j` by `b_j`), so
    /// for a bin holding a tiny share of the mass the absolute error grows like `10⁻⁷ / a_i` times
    /// the gradient's scale (with the unrolled backward, at `a_i = 10⁻¹⁰` on an 10×8 grid, errors of
    /// order 10 where the Double derivative is 10⁻⁴). Keep the marginals above about `10⁻⁶` of
    /// their largest bin (`WassersteinBarycenter.histogram(of:floor:)`) where such bins matter.
    ///
    /// - Throws: `SinkhornError.missingHistory` for `.unrolled` on a forward without history,
    ///   `.shapeMismatch` for a solution of another grid, `.notConverged` when conjugate gradients
    ///   reach their cap, `.invalidTolerance` for bad solver settings.
    public func gradient(of solution: SeparableTransportSolution, backward: TransportBackward,
                         solver: ImplicitSolver = .conjugateGradient()) throws(SinkhornError) -> SeparableTransportGradient {
        guard solution.width == width, solution.height == height, solution.entropy == entropy else {
            throw .shapeMismatch(expected: [height, width], found: [solution.height, solution.width])
        }
        switch backward {
        case .unrolled: return try unrolledGradient(of: solution)
        case .implicit:
            switch solver {
            case .dense: return try denseImplicitGradient(of: solution)
            case let .conjugateGradient(tolerance, cap): return try implicitGradient(of: solution, tolerance: tolerance, cap: cap)
            }
        }
    }

    /// `P x` (`transposed: false`) or `Pᵀ x` for the solution's plan, without forming it.
    /// - Complexity: `O(n·(w + h))`.
    public func applyPlan(of solution: SeparableTransportSolution, to x: [Float],
                          transposed: Bool = false) throws(SinkhornError) -> [Float] {
        guard solution.width == width, solution.height == height, solution.entropy == entropy else {
            throw .shapeMismatch(expected: [height, width], found: [solution.height, solution.width])
        }
        guard x.count == count else { throw .marginalLength(expected: count, found: x.count) }
        var scratch = ConvolutionScratch(width: width, height: height)
        var out = [Float](repeating: 0, count: count)
        if transposed {
            signedConvolve(log: solution.f, values: x, outer: solution.g, into: &out, scratch: &scratch)
        } else {
            signedConvolve(log: solution.g, values: x, outer: solution.f, into: &out, scratch: &scratch)
        }
        return out
    }

    /// The plan `P [n, n]`, `P_pq = exp(f_p + g_q − C_pq/λ)` (for inspection and small grids).
    /// - Complexity: `O(n²)` time and memory.
    public func plan(of solution: SeparableTransportSolution) -> Tensor {
        Tensor(shape: [count, count], storage: logPlan(of: solution).map { expf($0) })
    }

    // MARK: - Backward passes

    func implicitGradient(of solution: SeparableTransportSolution, tolerance: Double,
                          cap: Int) throws(SinkhornError) -> SeparableTransportGradient {
        guard tolerance.isFinite, tolerance > 0, cap >= 1 else {
            throw .invalidTolerance(tolerance: Float(tolerance), checkInterval: cap)
        }
        let n = count, f = solution.f, g = solution.g
        var scratch = ConvolutionScratch(width: width, height: height)
        let ones = [Float](repeating: 1, count: n)
        var rowMass = [Float](repeating: 0, count: n), columnMass = [Float](repeating: 0, count: n)
        signedConvolve(log: g, values: ones, outer: f, into: &rowMass, scratch: &scratch)
        signedConvolve(log: f, values: ones, outer: g, into: &columnMass, scratch: &scratch)
        let rowTarget = weightedRowSums(f: f, g: g, scratch: &scratch)
        let columnTarget = weightedRowSums(f: g, g: f, scratch: &scratch)
        // diag(S) = b̂ − Σ_p P_pq² / â_p, with P² = exp(2f ⊕ 2g − 2C/λ).
        var squared = [Float](repeating: 0, count: n)
        signedConvolve(log: f.map { 2 * $0 }, values: rowMass.map { 1 / $0 }, outer: g.map { 2 * $0 },
                       into: &squared, scratch: &scratch, kernelX: squaredKernelX, kernelY: squaredKernelY)
        var inverseDiagonal = [Double](repeating: 0, count: n)
        for q in 0..<n {
            inverseDiagonal[q] = Sinkhorn.jacobiInverse(diagonal: Double(columnMass[q]) - Double(squared[q]),
                                                        mass: Double(columnMass[q]))
        }
        var ratio = [Float](repeating: 0, count: n), back = [Float](repeating: 0, count: n)
        for p in 0..<n { ratio[p] = rowTarget[p] / rowMass[p] }
        signedConvolve(log: f, values: ratio, outer: g, into: &back, scratch: &scratch)
        var residual = [Double](repeating: 0, count: n), solutionBeta = [Double](repeating: 0, count: n)
        for q in 0..<n { residual[q] = Double(columnTarget[q]) - Double(back[q]) }
        var preconditioned = [Double](repeating: 0, count: n), direction = [Double](repeating: 0, count: n)
        var product = [Double](repeating: 0, count: n)
        var directionF = [Float](repeating: 0, count: n), forward = [Float](repeating: 0, count: n)
        let outcome = residual.withUnsafeMutableBufferPointer { r in
            solutionBeta.withUnsafeMutableBufferPointer { beta in
                inverseDiagonal.withUnsafeBufferPointer { inverse in
                    preconditioned.withUnsafeMutableBufferPointer { z in
                        direction.withUnsafeMutableBufferPointer { d in
                            product.withUnsafeMutableBufferPointer { sd in
                                Sinkhorn.projectedConjugateGradient(
                                    count: n, residual: r.baseAddress!, solution: beta.baseAddress!,
                                    inverseDiagonal: inverse.baseAddress!, preconditioned: z.baseAddress!,
                                    direction: d.baseAddress!, product: sd.baseAddress!, tolerance: tolerance,
                                    maximumIterations: cap) {
                                    // S d = b̂ ⊙ d − Pᵀ (P d / â)
                                    for q in 0..<n { directionF[q] = Float(d[q]) }
                                    self.signedConvolve(log: g, values: directionF, outer: f, into: &forward, scratch: &scratch)
                                    for p in 0..<n { forward[p] /= rowMass[p] }
                                    self.signedConvolve(log: f, values: forward, outer: g, into: &back, scratch: &scratch)
                                    for q in 0..<n { sd[q] = Double(columnMass[q]) * d[q] - Double(back[q]) }
                                }
                            }
                        }
                    }
                }
            }
        }
        guard outcome.converged else {
            throw .notConverged(iterations: outcome.iterations, relativeResidual: outcome.relativeResidual)
        }
        let beta = solutionBeta.map { Float($0) }
        signedConvolve(log: g, values: beta, outer: f, into: &forward, scratch: &scratch)
        var alpha = [Float](repeating: 0, count: n)
        for p in 0..<n { alpha[p] = (rowTarget[p] - forward[p]) / rowMass[p] }
        let bytes = (8 * 6) * n + 4 * (10 * n) + scratch.bytes
        return SeparableTransportGradient(source: alpha, target: beta, solverIterations: outcome.iterations,
                                          relativeResidual: outcome.relativeResidual, scratchBytes: bytes)
    }

    func unrolledGradient(of solution: SeparableTransportSolution) throws(SinkhornError) -> SeparableTransportGradient {
        guard let history = solution.history else { throw .missingHistory }
        let n = count, tau = solution.iterations
        var scratch = ConvolutionScratch(width: width, height: height)
        var fBar = weightedRowSums(f: solution.f, g: solution.g, scratch: &scratch)
        var gBar = weightedRowSums(f: solution.g, g: solution.f, scratch: &scratch)
        var logABar = [Double](repeating: 0, count: n), logBBar = [Double](repeating: 0, count: n)
        let inverseA = solution.source.map { 1 / $0 }, inverseB = solution.target.map { 1 / $0 }
        var weights = [Float](repeating: 0, count: n), product = [Float](repeating: 0, count: n)
        history.withUnsafeBufferPointer { stored in
            let base = stored.baseAddress!
            func potentials(_ t: Int) -> (f: UnsafeBufferPointer<Float>, g: UnsafeBufferPointer<Float>) {
                let start = base + (t - 1) * 2 * n
                return (UnsafeBufferPointer(start: start, count: n), UnsafeBufferPointer(start: start + n, count: n))
            }
            var t = tau
            while t >= 1 {
                let (ft, gt) = potentials(t)
                // f_t = log a − lse_q(g_t − C/λ)
                for p in 0..<n { logABar[p] += Double(fBar[p]); weights[p] = fBar[p] * inverseA[p] }
                signedConvolve(log: ft, values: weights, outer: gt, into: &product, scratch: &scratch)
                for q in 0..<n { gBar[q] -= product[q] }
                // g_t = log b − lse_p(f_{t−1} − C/λ), f_0 = 0
                for q in 0..<n { logBBar[q] += Double(gBar[q]); weights[q] = gBar[q] * inverseB[q] }
                if t > 1 {
                    let previous = potentials(t - 1).f
                    signedConvolve(log: gt, values: weights, outer: previous, into: &product, scratch: &scratch)
                    for p in 0..<n { fBar[p] = -product[p]; gBar[p] = 0 }
                }
                t -= 1
            }
        }
        var source = [Float](repeating: 0, count: n), target = [Float](repeating: 0, count: n)
        for p in 0..<n { source[p] = Float(logABar[p] / Double(solution.source[p])) }
        for q in 0..<n { target[q] = Float(logBBar[q] / Double(solution.target[q])) }
        let bytes = 4 * history.count + 8 * 2 * n + 4 * 8 * n + scratch.bytes
        return SeparableTransportGradient(source: source, target: target, solverIterations: 0, relativeResidual: 0,
                                          scratchBytes: bytes)
    }

    func denseImplicitGradient(of solution: SeparableTransportSolution) throws(SinkhornError) -> SeparableTransportGradient {
        let n = count
        let logMatrix = logPlan(of: solution)
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let problem = SinkhornProblem(batch: 1, rows: n, columns: n, scale: -1 / entropy, order: .columnsFirst,
                                      rowMarginal: solution.source, columnMarginal: solution.target, shape: [n, n])
        let result = SinkhornResult(logMatrix: Tensor(shape: [n, n], storage: logMatrix),
                                    matrix: Tensor(shape: [n, n], storage: logMatrix.map { expf($0) }),
                                    iterations: [solution.iterations], marginalError: [solution.marginalError],
                                    history: nil, problem: problem)
        let answer = try Sinkhorn.implicitTransportGradient(result, upstream: cost)
        return SeparableTransportGradient(source: answer.rowMarginal.storage, target: answer.columnMarginal.storage,
                                          solverIterations: 0, relativeResidual: 0,
                                          scratchBytes: 4 * 4 * n * n + 8 * n * n)
    }

    func logPlan(of solution: SeparableTransportSolution) -> [Float] {
        let n = count
        var values = [Float](repeating: 0, count: n * n)
        for p in 0..<n {
            let (py, px) = p.quotientAndRemainder(dividingBy: width)
            for q in 0..<n {
                let (qy, qx) = q.quotientAndRemainder(dividingBy: width)
                values[p * n + q] = solution.f[p] + solution.g[q] + logKernelX[px * width + qx]
                    + logKernelY[py * height + qy]
            }
        }
        return values
    }

    // MARK: - Separable passes

    /// Intermediate planes of one two-pass product.
    struct ConvolutionScratch {
        /// `[h, w]` planes: the scaled inputs of a pass, its sums, their magnitudes, the log-scales
        /// and the signed values between the passes.
        var scaled: [Float], sums: [Float], magnitudes: [Float], logs: [Float], values: [Float]
        /// `[w]`: the log-scale of each column in the second pass.
        var columnScale: [Float]
        init(width: Int, height: Int) {
            scaled = [Float](repeating: 0, count: width * height)
            sums = scaled; magnitudes = scaled; logs = scaled; values = scaled
            columnScale = [Float](repeating: 0, count: width)
        }
        var bytes: Int { 4 * (5 * scaled.count + columnScale.count) }
    }

    /// `(T1)_p = Σ_q P_pq C_pq` for the plan `exp(f ⊕ g − C/λ)` (with `f`, `g` swapped, `Tᵀ1`).
    func weightedRowSums(f: some Collection<Float>, g: some Collection<Float>,
                         scratch: inout ConvolutionScratch) -> [Float] {
        let f = Array(f), g = Array(g)
        let ones = [Float](repeating: 1, count: count)
        var alongX = [Float](repeating: 0, count: count), alongY = [Float](repeating: 0, count: count)
        signedConvolve(log: g, values: ones, outer: f, into: &alongX, scratch: &scratch, kernelX: costKernelX)
        signedConvolve(log: g, values: ones, outer: f, into: &alongY, scratch: &scratch, kernelY: costKernelY)
        for p in 0..<count { alongX[p] += alongY[p] }
        return alongX
    }

    /// `out_p = lse_q(h_q − C_pq/λ)`.
    func logConvolve(_ h: [Float], into out: inout [Float], scratch: inout ConvolutionScratch) {
        let none: [Float]? = nil
        convolve(log: h, values: none, outer: none, into: &out, scratch: &scratch, kernelX: kernelX, kernelY: kernelY)
    }

    /// `out_p = Σ_q exp(outer_p + h_q + kx(p, q) + ky(p, q)) · wx(p, q) · wy(p, q) · x_q` for any sign
    /// of `x`, with the kernels `kernelX`, `kernelY` (default: the plan's).
    func signedConvolve(log h: some Collection<Float>, values x: [Float], outer: some Collection<Float>,
                        into out: inout [Float], scratch: inout ConvolutionScratch,
                        kernelX: AxisKernel? = nil, kernelY: AxisKernel? = nil) {
        let outer: [Float]? = Array(outer)
        convolve(log: Array(h), values: x, outer: outer, into: &out, scratch: &scratch,
                 kernelX: kernelX ?? self.kernelX, kernelY: kernelY ?? self.kernelY)
    }

    /// A share of a pass's largest term below which a sum is recomputed exactly: `e⁻⁵⁰`. Terms
    /// lost to underflow in the fast form are below `e⁻⁸⁷` of the same scale each, so a sum above
    /// this threshold has a relative error under `n · e⁻³⁷ ≈ 10⁻¹²` from them.
    static let exactThreshold: Float = 1.928_749_8e-22

    /// Both passes of one product. Without `outer` the output is `log Σ …` (and `x` must be nil:
    /// all ones); with it the output is the signed sum scaled by `exp(outer)`.
    ///
    /// Each pass first takes the fast form: every input is scaled by the largest log of its line,
    /// `e_j = exp(h_j − H) · x_j` (one exponential per bin), and the sums are 1-D kernel products
    /// `Σ_j K_ij e_j` with `K = exp(k) ⊙ w` precomputed (multiply-adds, no exponentials). A sum
    /// whose magnitude `Σ_j K_ij |e_j|` falls below `exactThreshold` of the line's scale, where the
    /// terms that carry it may have underflowed, is recomputed exactly around its own maximum,
    /// `M = max_j (h_j + k_ij)`, `Σ_j exp(h_j + k_ij − M) · w_ij · x_j`.
    func convolve(log h: [Float], values x: [Float]?, outer: [Float]?, into out: inout [Float],
                  scratch: inout ConvolutionScratch, kernelX: AxisKernel, kernelY: AxisKernel) {
        let w = width, hgt = height
        let signed = x != nil
        h.withUnsafeBufferPointer { h in
        Self.withOptional(x) { x in
        Self.withOptional(outer) { outer in
        out.withUnsafeMutableBufferPointer { out in
        scratch.scaled.withUnsafeMutableBufferPointer { e in
        scratch.sums.withUnsafeMutableBufferPointer { sums in
        scratch.magnitudes.withUnsafeMutableBufferPointer { magnitudes in
        scratch.logs.withUnsafeMutableBufferPointer { logs in
        scratch.values.withUnsafeMutableBufferPointer { values in
        scratch.columnScale.withUnsafeMutableBufferPointer { columnScale in
        kernelX.pointers { kxLog, kxProduct, kxWeight in
        kernelY.pointers { kyLog, kyProduct, kyWeight in
            let h = h.baseAddress!, e = e.baseAddress!, sums = sums.baseAddress!, magnitudes = magnitudes.baseAddress!
            let logs = logs.baseAddress!, values = values.baseAddress!, columnScale = columnScale.baseAddress!
            let out = out.baseAddress!
            // Along x, row by row: logs[y, p] + log values[y, p] = log Σ_q exp(h[y, q] + kx(q, p)) wx x[y, q].
            for y in 0..<hgt {
                let hy = h + y * w, ey = e + y * w, sy = sums + y * w, my = magnitudes + y * w
                var top = -Float.infinity
                for q in 0..<w { top = Swift.max(top, hy[q]) }
                Self.exponentials(of: hy, shift: -top, times: x.map { $0 + y * w }, into: ey, count: w)
                Self.fill(sy, 0, w)
                if signed { Self.fill(my, 0, w) }
                for q in 0..<w where ey[q] != 0 {
                    Self.axpy(ey[q], kxProduct + q * w, into: sy, count: w)
                    if signed { Self.axpy(abs(ey[q]), kxProduct + q * w, into: my, count: w) }
                }
                let magnitude = signed ? UnsafePointer(my) : UnsafePointer(sy)
                for p in 0..<w {
                    if magnitude[p] >= Self.exactThreshold {
                        logs[y * w + p] = top
                        values[y * w + p] = sy[p]
                    } else {
                        // kx is symmetric: row p holds kx(q, p) over q.
                        let exact = Self.exactSum(log: hy, stride: 1, kernel: kxLog + p * w,
                                                  weight: kxWeight.map { $0 + p * w },
                                                  values: x.map { $0 + y * w }, valueStride: 1, count: w)
                        logs[y * w + p] = exact.scale
                        values[y * w + p] = exact.sum
                    }
                }
            }
            // Along y, column-wise: out[y, p] from Σ_r exp(logs[r, p] + ky(y, r)) wy values[r, p].
            Self.fill(columnScale, -.infinity, w)
            for r in 0..<hgt { Self.maximum(into: columnScale, base: logs + r * w, shift: 0, count: w) }
            for r in 0..<hgt {
                Self.exponentials(of: logs + r * w, minus: columnScale, times: values + r * w, into: e + r * w, count: w)
            }
            let sy = sums, my = magnitudes
            for y in 0..<hgt {
                Self.fill(sy, 0, w)
                if signed { Self.fill(my, 0, w) }
                for r in 0..<hgt {
                    let k = kyProduct[y * hgt + r]
                    if k == 0 { continue }
                    Self.axpy(k, e + r * w, into: sy, count: w)
                    if signed { Self.absoluteAxpy(k, e + r * w, into: my, count: w) }
                }
                let magnitude = signed ? UnsafePointer(my) : UnsafePointer(sy)
                for p in 0..<w {
                    var scale = columnScale[p], sum = sy[p]
                    if !(magnitude[p] >= Self.exactThreshold) {
                        let exact = Self.exactSum(log: logs + p, stride: w, kernel: kyLog + y * hgt,
                                                  weight: kyWeight.map { $0 + y * hgt },
                                                  values: values + p, valueStride: w, count: hgt)
                        scale = exact.scale
                        sum = exact.sum
                    }
                    if let outer {
                        out[y * w + p] = sum == 0 ? 0 : expf(outer[y * w + p] + scale) * sum
                    } else {
                        out[y * w + p] = scale + logf(sum)
                    }
                }
            }
        }}}}}}}}}}}}
    }

    /// `(M, Σ_j exp(log_j + kernel_j − M) · weight_j · values_j)` with `M = max_j (log_j + kernel_j)`;
    /// `log` and `values` read with their strides, `kernel` and `weight` contiguously.
    @inline(__always) static func exactSum(log: UnsafePointer<Float>, stride: Int, kernel: UnsafePointer<Float>,
                                           weight: UnsafePointer<Float>?, values: UnsafePointer<Float>?,
                                           valueStride: Int, count: Int) -> (scale: Float, sum: Float) {
        var top = -Float.infinity
        for j in 0..<count { top = Swift.max(top, log[j * stride] + kernel[j]) }
        var sum: Float = 0
        for j in 0..<count {
            var term = VectorMath.exp(log[j * stride] + kernel[j] - top)
            if let weight { term *= weight[j] }
            if let values { term *= values[j * valueStride] }
            sum += term
        }
        return (top, sum)
    }

    @inline(__always) static func withOptional<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let array else { return body(nil) }
        return array.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    @inline(__always) static func fill(_ p: UnsafeMutablePointer<Float>, _ value: Float, _ count: Int) {
        for index in 0..<count { p[index] = value }
    }

    /// `m[j] = max(m[j], base[j] + shift)`.
    @inline(__always) static func maximum(into m: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>,
                                          shift: Float, count: Int) {
        let sv = SIMD8<Float>(repeating: shift)
        var j = 0
        while j + 8 <= count {
            VectorMath.store8(VectorMath.lanesMax(VectorMath.load8(m + j), VectorMath.load8(base + j) + sv), m + j)
            j += 8
        }
        while j < count { m[j] = Swift.max(m[j], base[j] + shift); j += 1 }
    }

    /// `out[j] = exp(x[j] + shift) · (factor?[j] ?? 1)`.
    @inline(__always) static func exponentials(of x: UnsafePointer<Float>, shift: Float, times factor: UnsafePointer<Float>?,
                                               into out: UnsafeMutablePointer<Float>, count: Int) {
        let sv = SIMD8<Float>(repeating: shift)
        var j = 0
        while j + 8 <= count {
            var v = VectorMath.exp(VectorMath.load8(x + j) + sv)
            if let factor { v *= VectorMath.load8(factor + j) }
            VectorMath.store8(v, out + j)
            j += 8
        }
        while j < count { out[j] = VectorMath.exp(x[j] + shift) * (factor?[j] ?? 1); j += 1 }
    }

    /// `out[j] = exp(x[j] − minus[j]) · factor[j]`.
    @inline(__always) static func exponentials(of x: UnsafePointer<Float>, minus: UnsafePointer<Float>,
                                               times factor: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                                               count: Int) {
        var j = 0
        while j + 8 <= count {
            let v = VectorMath.exp(VectorMath.load8(x + j) - VectorMath.load8(minus + j)) * VectorMath.load8(factor + j)
            VectorMath.store8(v, out + j)
            j += 8
        }
        while j < count { out[j] = VectorMath.exp(x[j] - minus[j]) * factor[j]; j += 1 }
    }

    /// `y[j] += a · x[j]`.
    @inline(__always) static func axpy(_ a: Float, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                                       count: Int) {
        let av = SIMD8<Float>(repeating: a)
        var j = 0
        while j + 8 <= count {
            VectorMath.store8(VectorMath.load8(y + j) + av * VectorMath.load8(x + j), y + j)
            j += 8
        }
        while j < count { y[j] += a * x[j]; j += 1 }
    }

    /// `y[j] += a · |x[j]|` (`a ≥ 0`).
    @inline(__always) static func absoluteAxpy(_ a: Float, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                                               count: Int) {
        let av = SIMD8<Float>(repeating: a)
        var j = 0
        while j + 8 <= count {
            let v = VectorMath.load8(x + j)
            let magnitude = VectorMath.lanesMax(v, -v)
            VectorMath.store8(VectorMath.load8(y + j) + av * magnitude, y + j)
            j += 8
        }
        while j < count { y[j] += a * abs(x[j]); j += 1 }
    }
}

/// One axis's kernel for the passes: `log = −Δ²/λ` (or a multiple), an optional weight `w`, and
/// `product = exp(log) ⊙ w`, each `[side, side]` and symmetric.
struct AxisKernel: Sendable {
    let log: [Float]
    let weight: [Float]?
    let product: [Float]

    init(log: [Float], weight: [Float]?) {
        self.log = log
        self.weight = weight
        var product = log.map { VectorMath.exp($0) }
        if let weight { for index in product.indices { product[index] *= weight[index] } }
        self.product = product
    }

    func pointers<R>(_ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>?) -> R) -> R {
        log.withUnsafeBufferPointer { log in
            product.withUnsafeBufferPointer { product in
                SeparableGridTransport.withOptional(weight) { weight in
                    body(log.baseAddress!, product.baseAddress!, weight)
                }
            }
        }
    }
}

/// The result of `SeparableGridTransport.solve`: the plan as its dual potentials,
/// `P_pq = exp(f_p + g_q − C_pq/λ)`, and the loss `⟨C, P⟩`.
public struct SeparableTransportSolution: Sendable {
    public let width: Int, height: Int, entropy: Float
    /// `a [n]` and `b [n]`, the marginals asked for.
    public let source: [Float], target: [Float]
    /// The potentials after the last iteration (the rows sum to `a` to rounding).
    public let f: [Float], g: [Float]
    /// Iterations run, `τ`.
    public let iterations: Int
    /// `OT_λ(a, b) = ⟨C, P⟩`.
    public internal(set) var loss: Float
    /// `Σ_q |Σ_p P_pq − b_q|`.
    public let marginalError: Float
    /// `f_1, g_1, …, f_τ, g_τ` when the forward recorded them (`2τn` floats).
    let history: [Float]?
    /// Bytes of the recorded potentials.
    public var historyBytes: Int { 4 * (history?.count ?? 0) }
}

/// `∂OT_λ/∂a` and `∂OT_λ/∂b` from `SeparableGridTransport.gradient`, defined up to `(+t, −t)`.
public struct SeparableTransportGradient: Sendable {
    /// `∂ℓ/∂a [n]`.
    public let source: [Float]
    /// `∂ℓ/∂b [n]`.
    public let target: [Float]
    /// Conjugate-gradient iterations (0 for the other backwards).
    public let solverIterations: Int
    /// The relative residual conjugate gradients stopped at (0 for the other backwards).
    public let relativeResidual: Double
    /// Scratch bytes the backward held besides the forward's history.
    public let scratchBytes: Int
}
