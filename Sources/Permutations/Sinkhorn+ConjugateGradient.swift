import CBLAS
import TensorKit

/// How the implicit transport backward (Eisenberger et al. 2022, Algorithm 1) solves its linear
/// system.
///
/// With `T = P ⊙ G`, `â = P1`, `b̂ = Pᵀ1` (the marginals the forward reached), the backward solves
/// `[[diag(â), P], [Pᵀ, diag(b̂)]] [α; β] = [T1; Tᵀ1]`. Eliminating `α = diag(â)⁻¹ (T1 − Pβ)` leaves
///
///     S β = r,   S = diag(b̂) − Pᵀ diag(â)⁻¹ P,   r = Tᵀ1 − Pᵀ diag(â)⁻¹ T1,
///
/// with `S` `n×n`, symmetric positive semidefinite and `S1 = 0` (because `P1 = â`, `Pᵀ1 = b̂`): the
/// `(+t, −t)` gauge of `α`, `β`. The system is consistent (`1ᵀr = 0`), and both solvers return the
/// solution with `β_n = 0`.
public enum ImplicitSolver: Sendable, Equatable {
    /// Cholesky of the `(n−1)×(n−1)` principal block of `S` (`β_n = 0` pinned) in Double (LAPACK
    /// `dposv`), formed by rank-k updates: `O(m·n² + n³)` time, `O(n²)` Double memory. Exact to
    /// Double rounding; the choice for small `n` and the default.
    case dense
    /// Jacobi-preconditioned conjugate gradients on the singular system `S β = r` (Saad 2003,
    /// Algorithm 9.1; Kaasschieter 1988 for consistent semidefinite systems), from `β = 0`, never
    /// forming `S`: each iteration applies `S d = b̂ ⊙ d − Pᵀ (diag(â)⁻¹ (P d))` with two float
    /// matrix–vector products over the same block of rows of `P` (BLAS `sgemv`, one pass over `P`),
    /// and keeps the iterates, residuals and dot products in Double. The preconditioner is
    /// `diag(S)_j = b̂_j − Σ_i P_ij² / â_i`. The residual is projected onto `1ᵀr = 0` (the range of
    /// `S`) after every update so that rounding cannot make the system inconsistent; the solution is
    /// then shifted to `β_n = 0`.
    ///
    /// It stops when `‖r_k‖₂ ≤ tolerance · ‖r‖₂` and throws `ImplicitSolveError.notConverged` when
    /// `maximumIterations` pass first. `O(m·n)` time per iteration, `O(m + n)` memory besides the
    /// output; the iterations needed grow with `1/√(1 − σ₂²)`, `σ₂` the second singular value of
    /// `diag(â)^(-1/2) P diag(b̂)^(-1/2)` (the rate the Sinkhorn forward itself converges at).
    ///
    /// When the plan's support splits into blocks (`P` numerically a permutation, e.g. `λ` far
    /// below the squared bin spacing, where `exp(−C/λ)` underflows), `S` has one null vector per
    /// block. `∂ℓ/∂C` does not depend on which solution is taken, but `∂ℓ/∂a` and `∂ℓ/∂b` are then
    /// fixed only up to a constant per block, and this solver and `.dense` (which adds a ridge) may
    /// return different ones.
    ///
    /// - Parameters:
    ///   - tolerance: the relative residual to reach, finite and positive. The gradient's error
    ///     relative to its largest entry is about the tolerance down to `1e-6`; below that the float
    ///     products of `P` limit it, and the residual still falls while the solution improves little.
    ///   - maximumIterations: at least 1.
    case conjugateGradient(tolerance: Double = 1e-6, maximumIterations: Int = 1000)
}

/// Why the implicit transport backward with a chosen `ImplicitSolver` gave no gradient.
public enum ImplicitSolveError: Error, Equatable, Sendable {
    /// A problem the dense backward reports the same way: the wrong kind of forward result, an
    /// upstream gradient of the wrong shape, a non-finite upstream entry (`nonFiniteInput` with its
    /// flat index).
    case sinkhorn(SinkhornError)
    /// A conjugate-gradient tolerance that is not finite and positive, or an iteration cap below 1.
    case invalidSolverSettings(tolerance: Double, maximumIterations: Int)
    /// Conjugate gradients on batch matrix `item` stopped after `iterations` with the relative
    /// residual `‖r_k‖₂ / ‖r‖₂` above the tolerance (the cap was reached, or a direction with
    /// `dᵀSd ≤ 0` appeared, which only rounding or non-finite input can cause).
    case notConverged(item: Int, iterations: Int, relativeResidual: Double)
}

/// The implicit transport gradient with what the solver did to get it.
public struct ImplicitTransportGradient: Sendable {
    /// `∂ℓ/∂C`, `∂ℓ/∂a`, `∂ℓ/∂b`, as `Sinkhorn.implicitTransportGradient(_:upstream:workspace:)`
    /// returns them (`β_n = 0`).
    public var gradient: TransportGradient
    /// Conjugate-gradient iterations per batch matrix; empty for `.dense`.
    public let iterations: [Int]
    /// The relative residual `‖r_k‖₂ / ‖r‖₂` each batch matrix stopped at (the recursively updated
    /// residual, projected onto `1ᵀr = 0`); empty for `.dense`.
    public let relativeResiduals: [Double]
}

extension Sinkhorn {
    /// The implicit gradient of `transport(cost:…)` (Eisenberger et al. 2022, Algorithm 1) with the
    /// linear system solved by `solver` (see `ImplicitSolver` for the system and both methods).
    ///
    /// `∂ℓ/∂C = −(1/λ)(T − P ⊙ (α1ᵀ + 1βᵀ))`, `∂ℓ/∂a = α`, `∂ℓ/∂b = β`, `β_n = 0`. With `.dense` this is
    /// `implicitTransportGradient(_:upstream:workspace:)`.
    ///
    /// - Parameters:
    ///   - result: a forward result of `transport(cost:…)` (no history needed).
    ///   - upstream: `G = ∂ℓ/∂P`, the shape of the cost.
    ///   - solver: `.dense` or `.conjugateGradient(tolerance:maximumIterations:)`.
    /// - Returns: the gradient, with the iterations and residuals of a conjugate-gradient solve.
    /// - Throws: `ImplicitSolveError.sinkhorn(.wrongProblemKind)`, `.sinkhorn(.shapeMismatch)`,
    ///   `.sinkhorn(.nonFiniteInput)`, `.invalidSolverSettings`, `.notConverged` (for the first batch
    ///   matrix that did not converge).
    /// - Complexity: `.dense` `O(B·(m·n² + n³))`; `.conjugateGradient` `O(B·m·n·(K + 1))` for `K`
    ///   iterations, `O(m + n)` Double and float scratch per thread.
    public static func implicitTransportGradient(_ result: SinkhornResult, upstream: Tensor, solver: ImplicitSolver,
                                                 workspace: SinkhornWorkspace? = nil)
        throws(ImplicitSolveError) -> ImplicitTransportGradient {
        let tolerance: Double, cap: Int
        switch solver {
        case .dense:
            do {
                let gradient = try implicitTransportGradient(result, upstream: upstream, workspace: workspace)
                return ImplicitTransportGradient(gradient: gradient, iterations: [], relativeResiduals: [])
            } catch {
                throw .sinkhorn(error)
            }
        case let .conjugateGradient(requested, maximumIterations):
            tolerance = requested
            cap = maximumIterations
        }
        let problem = result.problem
        guard problem.order == .columnsFirst else { throw .sinkhorn(.wrongProblemKind) }
        guard upstream.shape == problem.shape else {
            throw .sinkhorn(.shapeMismatch(expected: problem.shape, found: upstream.shape))
        }
        guard tolerance.isFinite, tolerance > 0, cap >= 1 else {
            throw .invalidSolverSettings(tolerance: tolerance, maximumIterations: cap)
        }
        let bad: Int? = upstream.withUnsafeBufferPointer { g in
            for index in 0..<g.count where !g[index].isFinite { return index }
            return nil
        }
        if let bad { throw .sinkhorn(.nonFiniteInput(index: bad)) }

        let (batch, m, n) = (problem.batch, problem.rows, problem.columns)
        let workers = (n <= 128 && batch > 1) ? Swift.min(sinkhornProcessorCount, batch) : 1
        let block = conjugateGradientBlockRows(columns: n, rows: m)
        let space = workspace ?? SinkhornWorkspace()
        let doubleBuffers = space.doubleBuffers(workers: workers, count: 2 * m + 7 * n)
        let floatBuffers = space.floatBuffers(workers: workers, count: 2 * n + block)
        let count = batch * m * n
        var gradient = [Float](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
        var dA = [Float](repeating: 0, count: batch * m)
        var dB = [Float](repeating: 0, count: batch * n)
        var iterations = [Int](repeating: 0, count: batch)
        var residuals = [Double](repeating: 0, count: batch)
        var converged = [Bool](repeating: false, count: batch)
        upstream.withUnsafeBufferPointer { g in
            result.matrix.withUnsafeBufferPointer { p in
                gradient.withUnsafeMutableBufferPointer { out in
                    dA.withUnsafeMutableBufferPointer { dA in
                        dB.withUnsafeMutableBufferPointer { dB in
                            iterations.withUnsafeMutableBufferPointer { iterations in
                                residuals.withUnsafeMutableBufferPointer { residuals in
                                    converged.withUnsafeMutableBufferPointer { converged in
                                        let gBase = g.baseAddress!, pBase = p.baseAddress!
                                        let outBase = out.baseAddress!
                                        let dABase = dA.baseAddress!, dBBase = dB.baseAddress!
                                        let itBase = iterations.baseAddress!, resBase = residuals.baseAddress!
                                        let okBase = converged.baseAddress!
                                        forEachBlock(workers) { worker in
                                            for item in stride(from: worker, to: batch, by: workers) {
                                                let offset = item * m * n
                                                let outcome = conjugateGradientItem(
                                                    matrix: pBase + offset, upstream: gBase + offset, rows: m,
                                                    columns: n, scale: problem.scale, output: outBase + offset,
                                                    alpha: dABase + item * m, beta: dBBase + item * n,
                                                    tolerance: tolerance, maximumIterations: cap, blockRows: block,
                                                    doubles: doubleBuffers[worker], floats: floatBuffers[worker])
                                                itBase[item] = outcome.iterations
                                                resBase[item] = outcome.relativeResidual
                                                okBase[item] = outcome.converged
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let item = converged.firstIndex(of: false) {
            throw .notConverged(item: item, iterations: iterations[item], relativeResidual: residuals[item])
        }
        let answer = TransportGradient(cost: Tensor(shape: problem.shape, storage: gradient),
                                       rowMarginal: Tensor(shape: [batch, m], storage: dA),
                                       columnMarginal: Tensor(shape: [batch, n], storage: dB))
        return ImplicitTransportGradient(gradient: answer, iterations: iterations, relativeResiduals: residuals)
    }

    /// Rows of `P` per pair of `sgemv` calls in `S d`: a block of at most 256 KiB, so that the
    /// transposed product reads it from cache after the plain one brought it in.
    static func conjugateGradientBlockRows(columns n: Int, rows m: Int) -> Int {
        Swift.max(1, Swift.min(m, (256 * 1024 / MemoryLayout<Float>.stride) / Swift.max(n, 1)))
    }

    /// One matrix of the conjugate-gradient backward (see `ImplicitSolver.conjugateGradient`).
    ///
    /// `doubles` holds `2m + 7n` values, `floats` `2n + blockRows`.
    static func conjugateGradientItem(matrix p: UnsafePointer<Float>, upstream g: UnsafePointer<Float>, rows m: Int,
                                      columns n: Int, scale s: Float, output: UnsafeMutablePointer<Float>,
                                      alpha alphaOut: UnsafeMutablePointer<Float>,
                                      beta betaOut: UnsafeMutablePointer<Float>, tolerance: Double,
                                      maximumIterations: Int, blockRows: Int, doubles: UnsafeMutablePointer<Double>,
                                      floats: UnsafeMutablePointer<Float>)
        -> (iterations: Int, relativeResidual: Double, converged: Bool) {
        let rowMass = doubles, rowTarget = rowMass + m
        let columnMass = rowTarget + m, residual = columnMass + n, solution = residual + n
        let preconditioned = solution + n, direction = preconditioned + n, product = direction + n
        let inverseDiagonal = product + n
        let directionF = floats, productF = directionF + n, rowsF = productF + n

        // One pass over P and G: â, T1 per row, then (row still in cache) b̂, Tᵀ1 − Pᵀ diag(â)⁻¹ T1 and
        // diag(S) = b̂ − Σ_i P_ij² / â_i.
        for j in 0..<n { columnMass[j] = 0; residual[j] = 0; inverseDiagonal[j] = 0 }
        for i in 0..<m {
            let pi = p + i * n, gi = g + i * n
            var mass = 0.0, target = 0.0
            for j in 0..<n {
                let pij = Double(pi[j])
                mass += pij; target += pij * Double(gi[j])
            }
            rowMass[i] = mass; rowTarget[i] = target
            let ratio = target / mass, weight = 1 / mass
            for j in 0..<n {
                let pij = Double(pi[j])
                columnMass[j] += pij
                residual[j] += pij * Double(gi[j]) - pij * ratio
                inverseDiagonal[j] += pij * pij * weight
            }
        }
        for j in 0..<n { inverseDiagonal[j] = jacobiInverse(diagonal: columnMass[j] - inverseDiagonal[j], mass: columnMass[j]) }

        /// `product = S · direction`, one pass over `P` in blocks of rows.
        func applySchur() {
            for j in 0..<n {
                directionF[j] = Float(direction[j])
                product[j] = columnMass[j] * direction[j]
            }
            var start = 0
            while start < m {
                let rows = Swift.min(blockRows, m - start)
                let block = p + start * n
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(n), 1, block, Int32(n),
                            directionF, 1, 0, rowsF, 1)
                for i in 0..<rows { rowsF[i] = Float(Double(rowsF[i]) / rowMass[start + i]) }
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(rows), Int32(n), 1, block, Int32(n),
                            rowsF, 1, 0, productF, 1)
                for j in 0..<n { product[j] -= Double(productF[j]) }
                start += rows
            }
        }
        let outcome = projectedConjugateGradient(
            count: n, residual: residual, solution: solution, inverseDiagonal: inverseDiagonal,
            preconditioned: preconditioned, direction: direction, product: product, tolerance: tolerance,
            maximumIterations: maximumIterations, applySchur: applySchur)
        implicitFinish(matrix: p, upstream: g, rows: m, columns: n, scale: s, rowMass: rowMass,
                       rowTarget: rowTarget, beta: solution, output: output, alpha: alphaOut, betaOut: betaOut)
        return outcome
    }

    /// `1 / diag(S)_j` for the Jacobi preconditioner, where `diag(S)_j = Σ_i P_ij (1 − P_ij/â_i)` and
    /// `mass = b̂_j`. The diagonal is 0 only for a column with a single nonzero (a permutation-like
    /// plan); `b̂_j` scales such a column instead.
    @inline(__always) static func jacobiInverse(diagonal: Double, mass: Double) -> Double {
        1 / (diagonal > 1e-6 * mass ? diagonal : mass)
    }

    /// Jacobi-preconditioned conjugate gradients on the consistent semidefinite system `S β = r`
    /// with `S1 = 0` (see `ImplicitSolver.conjugateGradient`), from `β = 0`.
    ///
    /// `residual` holds `r` on entry (it is projected onto `1ᵀr = 0` first) and is overwritten;
    /// `solution` receives `β` shifted to `β_n = 0`. `applySchur` must set `product = S · direction`.
    /// `preconditioned`, `direction` and `product` are scratch of `count` Doubles.
    static func projectedConjugateGradient(
        count n: Int, residual: UnsafeMutablePointer<Double>, solution: UnsafeMutablePointer<Double>,
        inverseDiagonal: UnsafePointer<Double>, preconditioned: UnsafeMutablePointer<Double>,
        direction: UnsafeMutablePointer<Double>, product: UnsafeMutablePointer<Double>, tolerance: Double,
        maximumIterations: Int, applySchur: () -> Void) -> (iterations: Int, relativeResidual: Double, converged: Bool) {
        /// Removes the component along `1` (outside the range of `S`).
        func project(_ vector: UnsafeMutablePointer<Double>) {
            var total = 0.0
            for j in 0..<n { total += vector[j] }
            let mean = total / Double(n)
            for j in 0..<n { vector[j] -= mean }
        }
        func norm(_ vector: UnsafePointer<Double>) -> Double {
            var total = 0.0
            for j in 0..<n { total += vector[j] * vector[j] }
            return total.squareRoot()
        }

        project(residual)
        for j in 0..<n { solution[j] = 0 }
        let initial = norm(residual)
        var iterations = 0, relative = 0.0, converged = true
        if initial > 0 {
            converged = false
            var rho = 0.0
            for j in 0..<n {
                preconditioned[j] = residual[j] * inverseDiagonal[j]
                direction[j] = preconditioned[j]
                rho += residual[j] * preconditioned[j]
            }
            relative = 1
            while iterations < maximumIterations {
                applySchur()
                var curvature = 0.0
                for j in 0..<n { curvature += direction[j] * product[j] }
                // dᵀSd ≤ 0 for d ≠ 0 outside span{1} happens only through rounding (or NaN).
                guard curvature > 0, curvature.isFinite else { break }
                let step = rho / curvature
                for j in 0..<n {
                    solution[j] += step * direction[j]
                    residual[j] -= step * product[j]
                }
                project(residual)
                iterations += 1
                relative = norm(residual) / initial
                if relative <= tolerance { converged = true; break }
                var next = 0.0
                for j in 0..<n {
                    preconditioned[j] = residual[j] * inverseDiagonal[j]
                    next += residual[j] * preconditioned[j]
                }
                let ratio = next / rho
                rho = next
                for j in 0..<n { direction[j] = preconditioned[j] + ratio * direction[j] }
            }
            if !relative.isFinite { converged = false }
        }
        // Gauge β_n = 0, the dense solve's.
        let shift = solution[n - 1]
        for j in 0..<n { solution[j] -= shift }
        return (iterations, relative, converged)
    }
}
