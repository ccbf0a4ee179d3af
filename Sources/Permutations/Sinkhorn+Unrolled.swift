#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TensorKit

/// Gradients of a transport-form forward pass with respect to its inputs.
public struct TransportGradient: Sendable {
    /// `∂ℓ/∂C`, the cost's shape.
    public var cost: Tensor
    /// `∂ℓ/∂a`, `[B, m]` (one row per batch matrix). Only defined up to adding `t` to `∂ℓ/∂a` and
    /// subtracting it from `∂ℓ/∂b` (the marginals must keep equal mass, so a perturbation has
    /// `Σ δa = Σ δb` and never sees `t`).
    public var rowMarginal: Tensor
    /// `∂ℓ/∂b`, `[B, n]`.
    public var columnMarginal: Tensor
}

/// Where one half-step's matrix `S = exp(L after the step)` comes from in the backward pass.
enum HalfStepSource {
    /// `S = diag(u) K_e diag(v)` on epoch `e`'s kernel.
    case scaled(epoch: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>)
    /// `S = exp(s·x + F·1ᵀ + 1·Gᵀ)`, recomputed with exponentials.
    case direct(f: UnsafePointer<Float>, g: UnsafePointer<Float>)

    var epoch: Int? {
        if case .scaled(let epoch, _, _) = self { return epoch }
        return nil
    }
}

extension SinkhornKernels {
    /// `A ← G ⊙ P` over `rows`, with the column sums of those rows of `A` into `columnSums`.
    static func startAdjoint(upstream: UnsafePointer<Float>, matrix: UnsafePointer<Float>, columns n: Int,
                             adjoint: UnsafeMutablePointer<Float>, rows: Range<Int>,
                             columnSums: UnsafeMutablePointer<Float>) {
        for j in 0..<n { columnSums[j] = 0 }
        for i in rows {
            let o = i * n
            var j = 0
            while j + 8 <= n {
                let t = VectorMath.load8(upstream + o + j) * VectorMath.load8(matrix + o + j)
                VectorMath.store8(t, adjoint + o + j)
                VectorMath.store8(VectorMath.load8(columnSums + j) + t, columnSums + j)
                j += 8
            }
            while j < n { let t = upstream[o + j] * matrix[o + j]; adjoint[o + j] = t; columnSums[j] += t; j += 1 }
        }
    }

    /// One reverse sweep over `rows` of the adjoint `A = ∂ℓ/∂L`: first the pending column-step
    /// correction `A_ij −= S_ij · q_j` (`q_j = c_j / b_j` with `c` the column sums of `A` before it),
    /// then the row-step correction `A_ij −= S_ij · r_i / a_i` with `r_i = Σ_j A_ij` (stored in
    /// `rowSums`), then the column sums of the updated rows into `columnSums`. This is the chain
    /// rule through `L′ = L − lse(L) + log a`: `∂L′_ij/∂L_ik = δ_jk − softmax_ik`.
    static func reverseSweep(adjoint: UnsafeMutablePointer<Float>, columns n: Int, rows: Range<Int>,
                             x: UnsafePointer<Float>, scale s: Float, kernel: UnsafePointer<Float>,
                             column: HalfStepSource?, columnWeights q: UnsafePointer<Float>,
                             row: HalfStepSource?, inverseA: UnsafePointer<Float>,
                             rowSums: UnsafeMutablePointer<Float>, columnSums: UnsafeMutablePointer<Float>) {
        let sv = SIMD8<Float>(repeating: s)
        for j in 0..<n { columnSums[j] = 0 }
        for i in rows {
            let ai = adjoint + i * n, xi = x + i * n, ki = kernel + i * n
            switch column {
            case .scaled(_, let u, let v):
                // q already holds v_j c_j / b_j for the scaled form.
                _ = v
                let uv = SIMD8<Float>(repeating: u[i])
                var j = 0
                while j + 8 <= n { VectorMath.store8(VectorMath.load8(ai + j) - uv * VectorMath.load8(ki + j) * VectorMath.load8(q + j), ai + j); j += 8 }
                while j < n { ai[j] -= u[i] * ki[j] * q[j]; j += 1 }
            case .direct(let f, let g):
                let fv = SIMD8<Float>(repeating: f[i])
                var j = 0
                while j + 8 <= n {
                    let e = VectorMath.exp(sv * VectorMath.load8(xi + j) + fv + VectorMath.load8(g + j))
                    VectorMath.store8(VectorMath.load8(ai + j) - e * VectorMath.load8(q + j), ai + j)
                    j += 8
                }
                while j < n { ai[j] -= VectorMath.exp(s * xi[j] + f[i] + g[j]) * q[j]; j += 1 }
            case nil:
                break
            }
            if let row {
                var acc = SIMD8<Float>(repeating: 0)
                var j = 0
                while j + 8 <= n { acc += VectorMath.load8(ai + j); j += 8 }
                var r = acc.sum()
                while j < n { r += ai[j]; j += 1 }
                rowSums[i] = r
                let weight = r * inverseA[i]
                switch row {
                case .scaled(_, let u, let v):
                    let wv = SIMD8<Float>(repeating: weight * u[i])
                    j = 0
                    while j + 8 <= n { VectorMath.store8(VectorMath.load8(ai + j) - wv * VectorMath.load8(ki + j) * VectorMath.load8(v + j), ai + j); j += 8 }
                    while j < n { ai[j] -= wv[0] * ki[j] * v[j]; j += 1 }
                case .direct(let f, let g):
                    let fv = SIMD8<Float>(repeating: f[i])
                    let wv = SIMD8<Float>(repeating: weight)
                    j = 0
                    while j + 8 <= n {
                        let e = VectorMath.exp(sv * VectorMath.load8(xi + j) + fv + VectorMath.load8(g + j))
                        VectorMath.store8(VectorMath.load8(ai + j) - wv * e, ai + j)
                        j += 8
                    }
                    while j < n { ai[j] -= weight * VectorMath.exp(s * xi[j] + f[i] + g[j]); j += 1 }
                }
            }
            var j = 0
            while j + 8 <= n { VectorMath.store8(VectorMath.load8(columnSums + j) + VectorMath.load8(ai + j), columnSums + j); j += 8 }
            while j < n { columnSums[j] += ai[j]; j += 1 }
        }
    }
}

/// Offsets of the unrolled backward's scratch vectors inside one worker's float buffer.
struct UnrolledLayout {
    let kernel: Int, ones: Int, zeros: Int, inverseA: Int, inverseB: Int
    let columnSums: Int, pending: Int, weights: Int, rowSums: Int, dLogA: Int, dLogB: Int
    let partials: Int, discard: Int
    let count: Int

    init(rows m: Int, columns n: Int, blocks: Int) {
        var next = 0
        func take(_ size: Int) -> Int { defer { next += size }; return next }
        let longest = Swift.max(m, n)
        kernel = take(m * n); ones = take(longest); zeros = take(longest)
        inverseA = take(m); inverseB = take(n)
        columnSums = take(n); pending = take(n); weights = take(n); rowSums = take(m)
        dLogA = take(m); dLogB = take(n)
        partials = take(blocks * n); discard = take(blocks * n)
        count = next
    }
}

extension Sinkhorn {
    /// The exact derivative of the iterations the forward pass ran (backpropagation through every
    /// row and column normalisation, as autodiff through the tutorial's loop computes it).
    ///
    /// `∂ℓ/∂X = (1/τ) · Aᵀ⁽⁰⁾` where the adjoint `A = ∂ℓ/∂L` starts at `G ⊙ P` and goes back through
    /// each half-step `L′ = L − lse(L)`: `A ← A − softmax(L) ⊙ (A summed along the normalised axis)`.
    /// The iterates are not stored: each `softmax(L)` is rebuilt from the recorded potentials as
    /// `diag(u) K_e diag(v)`, so the memory is `O(iterations · B · n)` for the history plus one
    /// `[n, n]` kernel per thread, and each iteration costs one sweep over `K` and `A`.
    ///
    /// - Parameters:
    ///   - result: a forward result of `forward(_:…, recordsHistory: true)`.
    ///   - scores: the same `X` the forward saw.
    ///   - upstream: `G = ∂ℓ/∂P`, the shape of `X`.
    ///   - workspace: scratch memory to reuse across calls.
    /// - Returns: `∂ℓ/∂X`, the shape of `X`.
    /// - Throws: `SinkhornError.missingHistory`, `.shapeMismatch`, `.wrongProblemKind`.
    /// - Complexity: `O(B · n² · iterations)` multiply-adds plus `O(B · n²)` exponentials per epoch.
    public static func unrolledGradient(_ result: SinkhornResult, scores: Tensor, upstream: Tensor,
                                        workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> Tensor {
        guard result.problem.order == .rowsFirst else { throw .wrongProblemKind }
        return try unrolled(result, input: scores, upstream: upstream, workspace: workspace).input
    }

    /// The unrolled gradient of `transport(cost:…, recordsHistory: true)` with respect to the cost
    /// and both marginals (`∂ℓ/∂a_i = Σ_row steps r_i / a_i`, `∂ℓ/∂b_j = Σ_column steps c_j / b_j`).
    public static func unrolledTransportGradient(_ result: SinkhornResult, cost: Tensor, upstream: Tensor,
                                                 workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> TransportGradient {
        guard result.problem.order == .columnsFirst else { throw .wrongProblemKind }
        let answer = try unrolled(result, input: cost, upstream: upstream, workspace: workspace)
        return TransportGradient(cost: answer.input, rowMarginal: answer.rowMarginal,
                                 columnMarginal: answer.columnMarginal)
    }

    static func unrolled(_ result: SinkhornResult, input: Tensor, upstream: Tensor,
                         workspace: SinkhornWorkspace?) throws(SinkhornError)
        -> (input: Tensor, rowMarginal: Tensor, columnMarginal: Tensor) {
        let problem = result.problem
        guard let history = result.history else { throw .missingHistory }
        guard input.shape == problem.shape else { throw .shapeMismatch(expected: problem.shape, found: input.shape) }
        guard upstream.shape == problem.shape else {
            throw .shapeMismatch(expected: problem.shape, found: upstream.shape)
        }
        let (batch, m, n) = (problem.batch, problem.rows, problem.columns)
        let plan = ParallelPlan(batch: batch, rows: m, columns: n,
                                sweeps: (result.iterations.max() ?? 0) + 2)
        let layout = UnrolledLayout(rows: m, columns: n, blocks: plan.blocks)
        let space = workspace ?? SinkhornWorkspace()
        let buffers = space.floatBuffers(workers: plan.workers, count: layout.count)
        for base in buffers {
            for i in 0..<Swift.max(m, n) { base[layout.ones + i] = 1; base[layout.zeros + i] = 0 }
            for i in 0..<m { base[layout.inverseA + i] = 1 / (problem.rowMarginal?[i] ?? 1) }
            for j in 0..<n { base[layout.inverseB + j] = 1 / (problem.columnMarginal?[j] ?? 1) }
        }
        let count = batch * m * n
        var gradient = [Float](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
        var dA = [Float](repeating: 0, count: batch * m)
        var dB = [Float](repeating: 0, count: batch * n)
        input.withUnsafeBufferPointer { x in
            upstream.withUnsafeBufferPointer { g in
                result.matrix.withUnsafeBufferPointer { p in
                    gradient.withUnsafeMutableBufferPointer { out in
                        dA.withUnsafeMutableBufferPointer { dA in
                            dB.withUnsafeMutableBufferPointer { dB in
                                let xBase = x.baseAddress!, gBase = g.baseAddress!, pBase = p.baseAddress!
                                let outBase = out.baseAddress!, dABase = dA.baseAddress!, dBBase = dB.baseAddress!
                                forEachBlock(plan.workers) { worker in
                                    for item in stride(from: worker, to: batch, by: plan.workers) {
                                        let offset = item * m * n
                                        unrolledItem(x: xBase + offset, upstream: gBase + offset, matrix: pBase + offset,
                                                     adjoint: outBase + offset, problem: problem,
                                                     iterations: result.iterations[item], history: history.items[item],
                                                     layout: layout, blocks: plan.blocks, buffer: buffers[worker])
                                        let base = buffers[worker]
                                        for i in 0..<m { dABase[item * m + i] = base[layout.dLogA + i] * base[layout.inverseA + i] }
                                        for j in 0..<n { dBBase[item * n + j] = base[layout.dLogB + j] * base[layout.inverseB + j] }
                                    }
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

    /// Backpropagates one matrix; leaves `∂ℓ/∂(input)` in `adjoint` and `∂ℓ/∂log a`, `∂ℓ/∂log b`
    /// in the workspace.
    static func unrolledItem(x: UnsafePointer<Float>, upstream: UnsafePointer<Float>, matrix: UnsafePointer<Float>,
                             adjoint: UnsafeMutablePointer<Float>, problem: SinkhornProblem, iterations total: Int,
                             history: SinkhornHistory.Item, layout: UnrolledLayout, blocks: Int,
                             buffer: UnsafeMutablePointer<Float>) {
        let m = problem.rows, n = problem.columns, s = problem.scale
        let kernel = buffer + layout.kernel
        let ones = UnsafePointer(buffer + layout.ones), zeros = UnsafePointer(buffer + layout.zeros)
        let inverseA = UnsafePointer(buffer + layout.inverseA), inverseB = buffer + layout.inverseB
        let columnSums = buffer + layout.columnSums, pendingSums = buffer + layout.pending
        let weights = buffer + layout.weights, rowSums = buffer + layout.rowSums
        let dLogA = buffer + layout.dLogA, dLogB = buffer + layout.dLogB
        let partials = buffer + layout.partials, discard = buffer + layout.discard
        for i in 0..<m { dLogA[i] = 0 }
        for j in 0..<n { dLogB[j] = 0 }

        func merge(into target: UnsafeMutablePointer<Float>) {
            for j in 0..<n {
                var sum: Float = 0
                for block in 0..<blocks { sum += partials[block * n + j] }
                target[j] = sum
            }
        }
        forEachBlock(blocks) { block in
            SinkhornKernels.startAdjoint(upstream: upstream, matrix: matrix, columns: n, adjoint: adjoint,
                                         rows: rowRange(block, of: blocks, rows: m), columnSums: partials + block * n)
        }
        merge(into: columnSums)

        history.u.withUnsafeBufferPointer { storedU in
            history.v.withUnsafeBufferPointer { storedV in
                history.baseF.withUnsafeBufferPointer { baseF in
                    history.baseG.withUnsafeBufferPointer { baseG in
                        let uAt = { (k: Int) in storedU.baseAddress! + (k - 1) * m }
                        let vAt = { (k: Int) in storedV.baseAddress! + (k - 1) * n }
                        let epochOf = { (k: Int) in Int(history.epochOfIteration[k - 1]) }
                        var kernelEpoch = -1
                        func useKernel(_ epoch: Int) {
                            if epoch == kernelEpoch { return }
                            let f = baseF.baseAddress! + epoch * m, g = baseG.baseAddress! + epoch * n
                            forEachBlock(blocks) { block in
                                SinkhornKernels.buildKernel(x: x, columns: n, scale: s, f: f, g: g, kernel: kernel,
                                                            rows: rowRange(block, of: blocks, rows: m),
                                                            columnSums: discard + block * n)
                            }
                            kernelEpoch = epoch
                        }
                        var pending: HalfStepSource? = nil
                        func sweep(column: HalfStepSource?, row: HalfStepSource?) {
                            if let epoch = column?.epoch ?? row?.epoch { useKernel(epoch) }
                            if let column {
                                // Weights of the column correction: v_j c_j / b_j (scaled) or c_j / b_j.
                                switch column {
                                case .scaled(_, _, let v): for j in 0..<n { weights[j] = v[j] * pendingSums[j] * inverseB[j] }
                                case .direct: for j in 0..<n { weights[j] = pendingSums[j] * inverseB[j] }
                                }
                            }
                            forEachBlock(blocks) { block in
                                SinkhornKernels.reverseSweep(
                                    adjoint: adjoint, columns: n, rows: rowRange(block, of: blocks, rows: m),
                                    x: x, scale: s, kernel: kernel, column: column, columnWeights: weights,
                                    row: row, inverseA: inverseA, rowSums: rowSums, columnSums: partials + block * n)
                            }
                            merge(into: columnSums)
                            if row != nil { for i in 0..<m { dLogA[i] += rowSums[i] } }
                        }
                        func columnStep(_ source: HalfStepSource) {
                            pending = source
                            for j in 0..<n { pendingSums[j] = columnSums[j]; dLogB[j] += columnSums[j] }
                        }
                        func rowStep(_ source: HalfStepSource) {
                            if let column = pending, let a = column.epoch, let b = source.epoch, a != b {
                                sweep(column: column, row: nil)
                                sweep(column: nil, row: source)
                            } else {
                                sweep(column: pending, row: source)
                            }
                            pending = nil
                        }
                        let direct = history.firstStepDirect
                        if problem.order == .rowsFirst {
                            for k in stride(from: total, through: 1, by: -1) {
                                let e = epochOf(k)
                                columnStep(.scaled(epoch: e, u: uAt(k), v: vAt(k)))
                                if k == 1 && direct {
                                    rowStep(.direct(f: baseF.baseAddress!, g: zeros))
                                } else {
                                    let previousV = k > 1 && epochOf(k - 1) == e ? vAt(k - 1) : ones
                                    rowStep(.scaled(epoch: e, u: uAt(k), v: k == 1 ? ones : previousV))
                                }
                            }
                        } else {
                            for k in stride(from: total, through: 1, by: -1) {
                                let e = epochOf(k)
                                rowStep(.scaled(epoch: e, u: uAt(k), v: vAt(k)))
                                if k == 1 {
                                    columnStep(.direct(f: zeros, g: baseG.baseAddress!))
                                } else {
                                    columnStep(.scaled(epoch: e, u: epochOf(k - 1) == e ? uAt(k - 1) : ones, v: vAt(k)))
                                }
                            }
                        }
                        if let column = pending { sweep(column: column, row: nil) }
                    }
                }
            }
        }
        let scale = SIMD8<Float>(repeating: s)
        var index = 0
        let count = m * n
        while index + 8 <= count { VectorMath.store8(VectorMath.load8(adjoint + index) * scale, adjoint + index); index += 8 }
        while index < count { adjoint[index] *= s; index += 1 }
    }
}
