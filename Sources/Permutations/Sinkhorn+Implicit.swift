import CBLAS
import TensorKit

extension Sinkhorn {
    /// The implicit gradient of the Sinkhorn operator (Eisenberger et al. 2022, Algorithm 1), with
    /// memory independent of the iteration count.
    ///
    /// With `T = P ⊙ G`, `â = P1`, `b̂ = Pᵀ1` (the marginals the forward reached), solve
    /// `[[diag(â), P], [Pᵀ, diag(b̂)]] [α; β] = [T1; Tᵀ1]` with `β_n = 0` (the system has the null
    /// vector `(1, −1)`), then `∂ℓ/∂X = (1/τ) · (T − P ⊙ (α1ᵀ + 1βᵀ))`. The solve eliminates `α` and
    /// factors the `(n−1)×(n−1)` Schur complement `diag(b̂) − P̃ᵀ diag(â)⁻¹ P̃` by Cholesky in Double
    /// (LAPACK `dposv`). A ridge of `1e-12 · max b̂` keeps the factorisation alive when `P` is
    /// (nearly) a permutation and the support splits into components, each adding a null vector;
    /// those null directions change `α_i + β_j` only where `P_ij ≈ 0`, so `∂ℓ/∂X` is unaffected.
    /// If the factorisation still fails the ridge grows (to `1e-8`, then `1e-4`).
    ///
    /// The gradient is exact for the problem whose marginals are the reached `â`, `b̂`; it matches
    /// `unrolledGradient` when the forward has converged.
    ///
    /// - Parameters:
    ///   - result: any forward result of `forward(_:…)` (no history needed).
    ///   - upstream: `G = ∂ℓ/∂P`, the shape of `X`.
    /// - Returns: `∂ℓ/∂X`, the shape of `X`.
    /// - Throws: `SinkhornError.shapeMismatch`, `.wrongProblemKind`.
    /// - Complexity: `O(B · n³)` time, `O(n²)` Double scratch per thread.
    public static func implicitGradient(_ result: SinkhornResult, upstream: Tensor,
                                        workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> Tensor {
        guard result.problem.order == .rowsFirst else { throw .wrongProblemKind }
        return try implicit(result, upstream: upstream, workspace: workspace).input
    }

    /// The implicit gradient of `transport(cost:…)` with respect to the cost and both marginals:
    /// `∂ℓ/∂C = −(1/λ)(T − P ⊙ (α1ᵀ + 1βᵀ))`, `∂ℓ/∂a = α`, `∂ℓ/∂b = β` (Eisenberger et al. 2022,
    /// Algorithm 1; `β_n = 0` fixes the gauge shared by `a` and `b`), with the dense solve;
    /// `implicitTransportGradient(_:upstream:solver:workspace:)` offers the matrix-free one.
    public static func implicitTransportGradient(_ result: SinkhornResult, upstream: Tensor,
                                                 workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> TransportGradient {
        guard result.problem.order == .columnsFirst else { throw .wrongProblemKind }
        let answer = try implicit(result, upstream: upstream, workspace: workspace)
        return TransportGradient(cost: answer.input, rowMarginal: answer.rowMarginal,
                                 columnMarginal: answer.columnMarginal)
    }

    /// Rows of `P̃ diag(â)^(-1/2)` formed at a time for the rank-k update of the Schur complement.
    static let schurBlockRows = 64

    static func implicit(_ result: SinkhornResult, upstream: Tensor, workspace: SinkhornWorkspace?) throws(SinkhornError)
        -> (input: Tensor, rowMarginal: Tensor, columnMarginal: Tensor) {
        let problem = result.problem
        guard upstream.shape == problem.shape else {
            throw .shapeMismatch(expected: problem.shape, found: upstream.shape)
        }
        let (batch, m, n) = (problem.batch, problem.rows, problem.columns)
        let k = n - 1
        // Small systems run one matrix per core with single-threaded LAPACK calls; large ones let
        // OpenBLAS thread inside each call.
        let workers = (n <= 128 && batch > 1) ? Swift.min(sinkhornProcessorCount, batch) : 1
        let block = Swift.min(schurBlockRows, m)
        let doubles = k * k + block * k + 2 * m + 3 * n
        let space = workspace ?? SinkhornWorkspace()
        let buffers = space.doubleBuffers(workers: workers, count: doubles)
        let count = batch * m * n
        var gradient = [Float](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
        var dA = [Float](repeating: 0, count: batch * m)
        var dB = [Float](repeating: 0, count: batch * n)
        upstream.withUnsafeBufferPointer { g in
            result.matrix.withUnsafeBufferPointer { p in
                gradient.withUnsafeMutableBufferPointer { out in
                    dA.withUnsafeMutableBufferPointer { dA in
                        dB.withUnsafeMutableBufferPointer { dB in
                            let gBase = g.baseAddress!, pBase = p.baseAddress!, outBase = out.baseAddress!
                            let dABase = dA.baseAddress!, dBBase = dB.baseAddress!
                            forEachBlock(workers) { worker in
                                for item in stride(from: worker, to: batch, by: workers) {
                                    let offset = item * m * n
                                    implicitItem(matrix: pBase + offset, upstream: gBase + offset, rows: m, columns: n,
                                                 scale: problem.scale, output: outBase + offset,
                                                 alpha: dABase + item * m, beta: dBBase + item * n,
                                                 blockRows: block, buffer: buffers[worker])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (Tensor(shape: problem.shape, storage: gradient),
                Tensor(shape: [batch, m], storage: dA), Tensor(shape: [batch, n], storage: dB))
    }

    /// One matrix of the implicit backward (see `implicitGradient`).
    static func implicitItem(matrix p: UnsafePointer<Float>, upstream g: UnsafePointer<Float>, rows m: Int,
                             columns n: Int, scale s: Float, output: UnsafeMutablePointer<Float>,
                             alpha alphaOut: UnsafeMutablePointer<Float>, beta betaOut: UnsafeMutablePointer<Float>,
                             blockRows: Int, buffer: UnsafeMutablePointer<Double>) {
        let k = n - 1
        let schur = buffer
        let q = schur + k * k
        let rowMass = q + blockRows * k, rowTarget = rowMass + m
        let columnMass = rowTarget + m, rhs = columnMass + n
        // Marginals reached and right-hand sides T1, Tᵀ1, in Double.
        for j in 0..<n { columnMass[j] = 0; rhs[j] = 0 }
        for i in 0..<m {
            var mass = 0.0, target = 0.0
            for j in 0..<n {
                let pij = Double(p[i * n + j])
                let t = pij * Double(g[i * n + j])
                mass += pij; target += t
                columnMass[j] += pij; rhs[j] += t
            }
            rowMass[i] = mass; rowTarget[i] = target
        }
        let beta = rhs + n
        if k > 0 {
            var largest = 0.0
            for j in 0..<n { largest = Swift.max(largest, columnMass[j]) }
            var solved = false
            for ridge in [1e-12, 1e-8, 1e-4] where !solved {
                // S = diag(b̂̃) + ridge − P̃ᵀ diag(â)⁻¹ P̃ (lower triangle, row-major) and
                // r = Tᵀ1̃ − P̃ᵀ diag(â)⁻¹ T1.
                for a in 0..<k {
                    for b in 0...a { schur[a * k + b] = 0 }
                    schur[a * k + a] = columnMass[a] + ridge * largest
                    beta[a] = rhs[a]
                }
                var start = 0
                while start < m {
                    let end = Swift.min(m, start + blockRows)
                    for i in start..<end {
                        let weight = 1 / rowMass[i]
                        let root = weight.squareRoot()
                        let ratio = rowTarget[i] * weight
                        let row = q + (i - start) * k
                        for j in 0..<k {
                            let pij = Double(p[i * n + j])
                            row[j] = pij * root
                            beta[j] -= pij * ratio
                        }
                    }
                    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(k), Int32(end - start),
                                -1, q, Int32(k), 1, schur, Int32(k))
                    start = end
                }
                // Row-major lower is column-major upper.
                var uplo = CChar(UInt8(ascii: "U"))
                var order = Int32(k), one: Int32 = 1, leading = Int32(k), info: Int32 = 0
                dposv_(&uplo, &order, &one, schur, &leading, beta, &leading, &info)
                solved = info == 0
                if !solved { for j in 0..<k { beta[j] = rhs[j] } }
            }
            if !solved {
                // Every ridge failed (non-finite input): fall back to β̃ = 0, a finite answer.
                for j in 0..<k { beta[j] = 0 }
            }
        }
        implicitFinish(matrix: p, upstream: g, rows: m, columns: n, scale: s, rowMass: rowMass,
                       rowTarget: rowTarget, beta: beta, output: output, alpha: alphaOut, betaOut: betaOut)
    }

    /// The end of either solve: with `β̃` (the first `n − 1` entries of `β`, `β_n = 0` fixing the
    /// gauge), `α = diag(â)⁻¹ (T1 − P̃ β̃)` and `output = s · (T − P ⊙ (α1ᵀ + 1βᵀ))`.
    static func implicitFinish(matrix p: UnsafePointer<Float>, upstream g: UnsafePointer<Float>, rows m: Int,
                               columns n: Int, scale s: Float, rowMass: UnsafePointer<Double>,
                               rowTarget: UnsafePointer<Double>, beta: UnsafePointer<Double>,
                               output: UnsafeMutablePointer<Float>, alpha alphaOut: UnsafeMutablePointer<Float>,
                               betaOut: UnsafeMutablePointer<Float>) {
        let k = n - 1
        let betaLast = n - 1
        for i in 0..<m {
            var acc = rowTarget[i]
            for j in 0..<k { acc -= Double(p[i * n + j]) * beta[j] }
            let alpha = acc / rowMass[i]
            alphaOut[i] = Float(alpha)
            let oi = output + i * n
            for j in 0..<n {
                let bj = j == betaLast ? 0 : beta[j]
                let pij = Double(p[i * n + j])
                oi[j] = Float(Double(s) * (pij * Double(g[i * n + j]) - pij * (alpha + bj)))
            }
        }
        for j in 0..<n { betaOut[j] = j == betaLast ? 0 : Float(beta[j]) }
    }
}
