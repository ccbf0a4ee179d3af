import TensorKit

/// Which backward pass differentiates an entropic transport problem.
public enum TransportBackward: String, Sendable, CaseIterable {
    /// Eisenberger et al. 2022, Algorithm 1: memory independent of the iteration count. Its linear
    /// system is solved densely; `GridTransport.gradient(of:solver:)` picks the solver.
    case implicit
    /// Back-propagation through every Sinkhorn iteration (what automatic differentiation does).
    case unrolled
}

/// The solution of an entropic optimal transport problem between two histograms, with its loss.
public struct GridTransportResult: Sendable {
    /// The forward result of `Sinkhorn.transport`; `result.matrix` is the plan `P [m, n]`.
    public let result: SinkhornResult
    /// The cost `C [m, n]` the plan was computed for.
    public let cost: Tensor
    /// `OT_λ(a, b) = ⟨C, P⟩ = Σ_ij C_ij P_ij`, the transport cost of the entropic plan.
    public let loss: Float
    /// The plan `P`, `[m, n]`.
    public var plan: Tensor { result.matrix }
}

/// Entropic optimal transport between histograms on a regular grid (Cuturi 2013; Eisenberger et
/// al. 2022, §5.2).
///
/// A histogram of a `width × height` image has `n = width · height` bins at normalised coordinates
/// `x_p = (column / (width − 1), row / (height − 1))` (a side of 1 maps to 0). The cost is
/// `C_pq = ‖x_p − x_q‖²`, the plan is `P = argmin ⟨C, P⟩ − λ·h(P)` over `P1 = a`, `Pᵀ1 = b`
/// (computed by `Sinkhorn.transport`), and the loss is `OT_λ(a, b) = ⟨C, P⟩`.
public enum GridTransport {
    /// `C_pq = ‖x_p − x_q‖²` between the bins of a `width × height` grid in normalised coordinates.
    ///
    /// - Returns: `[n, n]` with `n = width · height`, row-major bins (row by row of the image).
    /// - Throws: `SinkhornError.invalidShape` for a side below 1.
    /// - Complexity: `O(n²)` time and memory.
    public static func squaredDistanceCost(width: Int, height: Int) throws(SinkhornError) -> Tensor {
        guard width > 0, height > 0 else { throw .invalidShape(shape: [height, width]) }
        let n = width * height
        let sx: Float = width > 1 ? 1 / Float(width - 1) : 0
        let sy: Float = height > 1 ? 1 / Float(height - 1) : 0
        var storage = [Float](repeating: 0, count: n * n)
        for p in 0..<n {
            let (py, px) = p.quotientAndRemainder(dividingBy: width)
            for q in 0..<n {
                let (qy, qx) = q.quotientAndRemainder(dividingBy: width)
                let dx = Float(px - qx) * sx, dy = Float(py - qy) * sy
                storage[p * n + q] = dx * dx + dy * dy
            }
        }
        return Tensor(shape: [n, n], storage: storage)
    }

    /// Solves `OT_λ(a, b)` for the given cost and returns the plan and the loss `⟨C, P⟩`.
    ///
    /// - Parameters:
    ///   - cost: `C [m, n]`, e.g. `squaredDistanceCost(width:height:)`.
    ///   - source: `a [m]`, positive.
    ///   - target: `b [n]`, positive, `Σ b = Σ a`.
    ///   - entropy: `λ > 0`.
    ///   - iterations: Sinkhorn iterations `τ`.
    ///   - backward: which gradient `gradient(of:backward:)` will compute (the unrolled one needs the
    ///     forward's history, kept only when asked for).
    /// - Throws: `SinkhornError` for a bad cost, marginals, `λ` or iteration count.
    public static func solve(cost: Tensor, source: [Float], target: [Float], entropy: Float,
                             iterations: Int, backward: TransportBackward = .implicit,
                             workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> GridTransportResult {
        guard cost.shape.count == 2 else { throw .invalidShape(shape: cost.shape) }
        let result = try Sinkhorn.transport(cost: cost, rowMarginal: source, columnMarginal: target,
                                            entropy: entropy, iterations: iterations,
                                            recordsHistory: backward == .unrolled, workspace: workspace)
        let loss: Float = cost.withUnsafeBufferPointer { c in
            result.matrix.withUnsafeBufferPointer { p in
                var total: Double = 0
                for index in 0..<c.count { total += Double(c[index]) * Double(p[index]) }
                return Float(total)
            }
        }
        return GridTransportResult(result: result, cost: cost, loss: loss)
    }

    /// `∂OT_λ/∂C`, `∂OT_λ/∂a`, `∂OT_λ/∂b` of `loss = ⟨C, P(C, a, b)⟩`.
    ///
    /// The chain rule gives `∂loss/∂C = P + J_Cᵀ C` and `∂loss/∂a = J_aᵀ C`, `∂loss/∂b = J_bᵀ C`,
    /// where `Jᵀ G` is the Sinkhorn layer's backward for the upstream gradient `G = ∂loss/∂P = C`:
    /// the implicit one (Eisenberger et al. 2022, Algorithm 1, with the dense solve; see
    /// `gradient(of:solver:)` for the matrix-free one) or the unrolled one. The marginal
    /// gradients are defined up to `(+t, −t)` (see `TransportGradient`).
    ///
    /// - Throws: `SinkhornError.missingHistory` for `.unrolled` on a forward solved for `.implicit`.
    /// - Complexity: implicit `O(m·n² + n³)`; unrolled `O(m·n·τ)`.
    public static func gradient(of solution: GridTransportResult, backward: TransportBackward,
                                workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> TransportGradient {
        var answer: TransportGradient
        switch backward {
        case .implicit:
            answer = try Sinkhorn.implicitTransportGradient(solution.result, upstream: solution.cost,
                                                            workspace: workspace)
        case .unrolled:
            answer = try Sinkhorn.unrolledTransportGradient(solution.result, cost: solution.cost,
                                                            upstream: solution.cost, workspace: workspace)
        }
        addPlan(of: solution, to: &answer)
        return answer
    }

    /// `∂OT_λ/∂C`, `∂OT_λ/∂a`, `∂OT_λ/∂b` through the implicit backward, its linear system solved by
    /// `solver` (see `ImplicitSolver`): `∂loss/∂C = P + J_Cᵀ C` with `Jᵀ C` from
    /// `Sinkhorn.implicitTransportGradient(_:upstream:solver:workspace:)` for `G = C`.
    ///
    /// `.dense` gives what `gradient(of:backward: .implicit)` gives. `.conjugateGradient` never forms
    /// the `n×n` Schur complement, so at `n = 64²` it needs `O(n)` scratch instead of `O(n²)` Doubles
    /// and `O(n²)` time per iteration instead of `O(n³)` in all.
    ///
    /// - Throws: `ImplicitSolveError` (`.sinkhorn` wraps the errors of the dense backward;
    ///   `.notConverged` when conjugate gradients reach their iteration cap).
    /// - Complexity: `.dense` `O(m·n² + n³)`; `.conjugateGradient` `O(m·n)` per iteration.
    public static func gradient(of solution: GridTransportResult, solver: ImplicitSolver,
                                workspace: SinkhornWorkspace? = nil) throws(ImplicitSolveError)
        -> ImplicitTransportGradient {
        var answer = try Sinkhorn.implicitTransportGradient(solution.result, upstream: solution.cost, solver: solver,
                                                            workspace: workspace)
        addPlan(of: solution, to: &answer.gradient)
        return answer
    }

    /// ``gradient(of:backward:workspace:)`` with the implicit backward's linear solve chosen
    /// (`solver` is ignored for `.unrolled`); a conjugate-gradient solve that does not converge is
    /// `SinkhornError.notConverged`.
    /// - Throws: `SinkhornError`.
    public static func gradient(of solution: GridTransportResult, backward: TransportBackward, solver: ImplicitSolver,
                                workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> TransportGradient {
        guard backward == .implicit, solver != .dense else {
            return try gradient(of: solution, backward: backward, workspace: workspace)
        }
        do {
            return try gradient(of: solution, solver: solver, workspace: workspace).gradient
        } catch {
            switch error {
            case .sinkhorn(let inner): throw inner
            case .notConverged(_, let iterations, let residual): throw .notConverged(iterations: iterations, relativeResidual: residual)
            case .invalidSolverSettings(_, let cap): throw .notConverged(iterations: cap, relativeResidual: .nan)
            }
        }
    }

    /// `∂loss/∂C = P + J_Cᵀ C`: adds the plan to the layer's backward.
    static func addPlan(of solution: GridTransportResult, to answer: inout TransportGradient) {
        let plan = solution.plan.storage
        answer.cost.storage.withUnsafeMutableBufferPointer { g in
            for index in 0..<g.count { g[index] += plan[index] }
        }
    }
}
