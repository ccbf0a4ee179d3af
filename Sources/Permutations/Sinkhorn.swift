#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TensorKit

/// Invalid input to a Sinkhorn operator or to one of its gradients.
public enum SinkhornError: Error, Equatable, Sendable {
    /// The scores or cost are not `[n, n]`/`[B, n, n]` (square) or `[m, n]`/`[B, m, n]` (transport).
    case invalidShape(shape: [Int])
    /// The temperature or entropy weight is not a positive finite number.
    case invalidTemperature(Float)
    /// A negative iteration count.
    case invalidIterations(Int)
    /// A tolerance that is negative or not finite, or a check interval below 1.
    case invalidTolerance(tolerance: Float, checkInterval: Int)
    /// An input element that is NaN or infinite, or becomes infinite once divided by the temperature.
    case nonFiniteInput(index: Int)
    /// A marginal of the wrong length.
    case marginalLength(expected: Int, found: Int)
    /// A marginal entry that is not positive and finite.
    case nonPositiveMarginal(index: Int, value: Float)
    /// Row and column marginals with different total mass.
    case unequalMass(rowMass: Float, columnMass: Float)
    /// An upstream gradient or input whose shape differs from the forward pass's.
    case shapeMismatch(expected: [Int], found: [Int])
    /// The unrolled gradient needs a forward result computed with `recordsHistory: true`.
    case missingHistory
    /// A gradient was asked for the wrong kind of forward result (square Sinkhorn vs transport).
    case wrongProblemKind
    /// A Gumbel-Sinkhorn sample count below 1.
    case invalidSampleCount(Int)
    /// A Gumbel noise factor that is negative or not finite.
    case invalidNoiseFactor(Float)
    /// An iterative backward (`ImplicitSolver.conjugateGradient`) stopped above its tolerance, or
    /// was given settings it cannot use (then `iterations` is the cap and the residual NaN).
    case notConverged(iterations: Int, relativeResidual: Double)
}

/// Which marginal the iteration enforces first in each iteration.
enum SinkhornOrder: Sendable {
    /// Rows then columns (the Sinkhorn operator, Mena et al. 2018): columns hold exactly at the end.
    case rowsFirst
    /// Columns then rows (the transport layer, Eisenberger et al. 2022): rows hold exactly at the end.
    case columnsFirst
}

/// The shape and constants of one forward problem.
struct SinkhornProblem: Sendable {
    var batch: Int
    var rows: Int
    var columns: Int
    /// `L⁰ = scale · input`: `1/τ` for scores, `−1/λ` for a cost.
    var scale: Float
    var order: SinkhornOrder
    /// Row marginal `a [m]`, or nil for all ones.
    var rowMarginal: [Float]?
    /// Column marginal `b [n]`, or nil for all ones.
    var columnMarginal: [Float]?
    /// The input's shape (rank 2 or 3), which the outputs keep.
    var shape: [Int]
}

/// What the unrolled backward needs from the forward pass: the dual potentials of every
/// iteration, `O(iterations · (m + n))` floats per matrix instead of the `O(iterations · m · n)`
/// iterates an autodiff tape keeps.
///
/// Iteration `k` is stored as multipliers `u [m]`, `v [n]` relative to the kernel of its epoch `e`,
/// `K_e = exp(s·x + f_e + g_e)`; a new epoch starts whenever the forward absorbs `u`, `v` into the
/// potentials (Schmitzer 2019, POT's `sinkhorn_stabilized`). Iteration 1 is the log-domain one; its
/// potentials are epoch 0's base and its multipliers are ones.
public struct SinkhornHistory: Sendable {
    struct Item: Sendable {
        var u: [Float] = []
        var v: [Float] = []
        var epochOfIteration: [Int32] = []
        var baseF: [Float] = []
        var baseG: [Float] = []
        /// Whether the first half-step's output is not representable on epoch 0's kernel and the
        /// backward must recompute it with exponentials.
        var firstStepDirect = false
    }

    var items: [Item]

    /// The bytes held by the recorded potentials.
    public var bytes: Int {
        items.reduce(0) {
            $0 + 4 * ($1.u.count + $1.v.count + $1.epochOfIteration.count + $1.baseF.count + $1.baseG.count)
        }
    }
}

/// The output of a Sinkhorn forward pass.
///
/// `logMatrix` and `matrix` have the input's shape (`[n, n]`, `[B, n, n]`, `[m, n]` or `[B, m, n]`).
public struct SinkhornResult: Sendable {
    /// `log P`, the final log iterate (finite wherever the input is).
    public internal(set) var logMatrix: Tensor
    /// `P = exp(log P)`. For the Sinkhorn operator its columns sum to 1 to float rounding and its
    /// rows to 1 within `marginalError`.
    public internal(set) var matrix: Tensor
    /// The iterations that ran, per batch matrix (fewer than asked when a tolerance was met).
    public internal(set) var iterations: [Int]
    /// Per batch matrix, `Σ_i |Σ_j P_ij − a_i|` for the Sinkhorn operator (rows; `a = 1`) and
    /// `Σ_j |Σ_i P_ij − b_j|` for the transport form: the error of the marginal the last half-step
    /// does not enforce, measured on the returned `matrix`.
    public internal(set) var marginalError: [Float]
    /// The recorded potentials when the forward ran with `recordsHistory: true`.
    public internal(set) var history: SinkhornHistory?

    let problem: SinkhornProblem

    /// The number of matrices in the batch (1 for an unbatched input).
    public var batchCount: Int { problem.batch }
}

/// The Sinkhorn operator and the entropic transport layer, with unrolled and implicit gradients.
///
/// The operator of Mena et al. 2018 (§2, eq. 1–2) in the log domain:
///
///     L⁰ = X/τ;  repeat: L ← L − logsumexp_row(L);  L ← L − logsumexp_col(L);  S(X/τ) = exp(L)
///
/// is run as its dual-potential form `L = X/τ + f·1ᵀ + 1·gᵀ`. The first iteration is exact
/// log-domain; later iterations use the stabilised scaling form `P = diag(u) K diag(v)` with
/// `K = exp(L)` frozen at the last absorption, one fused sweep over `K` per iteration, and absorption
/// of `u`, `v` into `f`, `g` whenever they leave `[1e-8, 1e8]`. After the first iteration each
/// half-step rescales by a factor in `[1/n, n²]`, so the scaling form never divides by an underflowed
/// sum; the two forms are the same iteration, and the tests compare against a Double log-domain
/// reference.
public enum Sinkhorn {
    /// Multipliers beyond this range (either way) are absorbed into the log potentials.
    static let absorptionBound: Float = 1e8

    /// The Sinkhorn operator `S(X/τ)` on a square matrix or a batch of them.
    ///
    /// Each iteration normalises rows then columns (Mena et al. 2018, eq. 2; the tutorial's
    /// order), so after the last iteration the columns sum to 1 exactly (to rounding) and the rows
    /// within `marginalError`.
    ///
    /// - Parameters:
    ///   - scores: `X`, `[n, n]` or `[B, n, n]`, finite.
    ///   - temperature: `τ > 0`; the operator sees `X/τ`.
    ///   - iterations: the number of iterations, or the maximum when `tolerance` is given.
    ///   - tolerance: stop after iteration `k` once `Σ_i |Σ_j P_ij − 1| < tolerance` (checked every
    ///     `checkInterval` iterations, per matrix of the batch).
    ///   - checkInterval: how often the tolerance is checked.
    ///   - recordsHistory: keep the potentials of every iteration for `unrolledGradient`.
    ///   - workspace: scratch memory to reuse across calls.
    /// - Returns: `log P`, `P`, the iterations run and the final row-marginal error per matrix.
    /// - Throws: `SinkhornError` for a non-square shape, a bad temperature, iteration count or
    ///   tolerance, or non-finite scores.
    /// - Complexity: `O(B · n² · iterations)` multiply-adds plus `O(B · n²)` exponentials per
    ///   absorption; the batch or, for one large matrix, its rows are split across the cores.
    public static func forward(_ scores: Tensor, temperature: Float = 1, iterations: Int = 20,
                               tolerance: Float? = nil, checkInterval: Int = 1,
                               recordsHistory: Bool = false,
                               workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> SinkhornResult {
        let (batch, rows, columns) = try batchShape(scores.shape)
        guard rows == columns else { throw .invalidShape(shape: scores.shape) }
        guard temperature.isFinite, temperature > 0 else { throw .invalidTemperature(temperature) }
        let problem = SinkhornProblem(batch: batch, rows: rows, columns: columns, scale: 1 / temperature,
                                      order: .rowsFirst, rowMarginal: nil, columnMarginal: nil,
                                      shape: scores.shape)
        return try run(scores, problem: problem, iterations: iterations, tolerance: tolerance,
                       checkInterval: checkInterval, recordsHistory: recordsHistory, workspace: workspace)
    }

    /// Entropy-regularised optimal transport with general marginals (Eisenberger et al. 2022, §3).
    ///
    /// Starts from `log P = −C/λ` and alternates `log P −= logsumexp_col(log P) − log b` and
    /// `log P −= logsumexp_row(log P) − log a`; after the last iteration the rows sum to `a` exactly
    /// (to rounding) and the columns to `b` within `marginalError`. With `C = −X`, `λ = τ` and unit
    /// marginals it is the Sinkhorn operator with the two half-steps swapped.
    ///
    /// - Parameters:
    ///   - cost: `C`, `[m, n]` or `[B, m, n]`, finite.
    ///   - rowMarginal: `a [m]`, positive, shared by the batch.
    ///   - columnMarginal: `b [n]`, positive, with `Σ b = Σ a` (relative difference below 1e-4).
    ///   - entropy: `λ > 0`.
    ///   - iterations: the number of iterations, or the maximum when `tolerance` is given.
    ///   - tolerance: stop once `Σ_j |Σ_i P_ij − b_j| < tolerance`, checked every `checkInterval`.
    ///   - recordsHistory: keep the potentials for `unrolledTransportGradient`.
    ///   - workspace: scratch memory to reuse across calls.
    /// - Throws: `SinkhornError` for bad shapes, marginals, `λ`, iterations, tolerance or costs.
    public static func transport(cost: Tensor, rowMarginal: [Float], columnMarginal: [Float],
                                 entropy: Float, iterations: Int = 100, tolerance: Float? = nil,
                                 checkInterval: Int = 1, recordsHistory: Bool = false,
                                 workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> SinkhornResult {
        let (batch, rows, columns) = try batchShape(cost.shape)
        guard entropy.isFinite, entropy > 0 else { throw .invalidTemperature(entropy) }
        guard rowMarginal.count == rows else { throw .marginalLength(expected: rows, found: rowMarginal.count) }
        guard columnMarginal.count == columns else {
            throw .marginalLength(expected: columns, found: columnMarginal.count)
        }
        for (index, value) in rowMarginal.enumerated() where !(value.isFinite && value > 0) {
            throw .nonPositiveMarginal(index: index, value: value)
        }
        for (index, value) in columnMarginal.enumerated() where !(value.isFinite && value > 0) {
            throw .nonPositiveMarginal(index: rows + index, value: value)
        }
        let rowMass = rowMarginal.reduce(0, +)
        let columnMass = columnMarginal.reduce(0, +)
        guard abs(rowMass - columnMass) <= 1e-4 * Swift.max(rowMass, columnMass) else {
            throw .unequalMass(rowMass: rowMass, columnMass: columnMass)
        }
        let problem = SinkhornProblem(batch: batch, rows: rows, columns: columns, scale: -1 / entropy,
                                      order: .columnsFirst, rowMarginal: rowMarginal,
                                      columnMarginal: columnMarginal, shape: cost.shape)
        return try run(cost, problem: problem, iterations: iterations, tolerance: tolerance,
                       checkInterval: checkInterval, recordsHistory: recordsHistory, workspace: workspace)
    }

    /// `(B, m, n)` of a rank-2 or rank-3 shape with positive extents.
    static func batchShape(_ shape: [Int]) throws(SinkhornError) -> (Int, Int, Int) {
        switch shape.count {
        case 2 where shape[0] > 0 && shape[1] > 0: return (1, shape[0], shape[1])
        case 3 where shape[0] > 0 && shape[1] > 0 && shape[2] > 0: return (shape[0], shape[1], shape[2])
        default: throw .invalidShape(shape: shape)
        }
    }

    /// Validates the common arguments, picks the parallel plan and runs every matrix.
    static func run(_ input: Tensor, problem: SinkhornProblem, iterations: Int, tolerance: Float?,
                    checkInterval: Int, recordsHistory: Bool,
                    workspace: SinkhornWorkspace?) throws(SinkhornError) -> SinkhornResult {
        guard iterations >= 0 else { throw .invalidIterations(iterations) }
        if let tolerance, !(tolerance.isFinite && tolerance >= 0) || checkInterval < 1 {
            throw .invalidTolerance(tolerance: tolerance, checkInterval: checkInterval)
        }
        let scale = problem.scale
        let bad: Int? = input.withUnsafeBufferPointer { x in
            for index in 0..<x.count where !(x[index] * scale).isFinite { return index }
            return nil
        }
        if let bad { throw .nonFiniteInput(index: bad) }

        let (batch, m, n) = (problem.batch, problem.rows, problem.columns)
        let plan = ParallelPlan(batch: batch, rows: m, columns: n, sweeps: iterations + 4)
        let layout = ForwardLayout(rows: m, columns: n, blocks: plan.blocks)
        let space = workspace ?? SinkhornWorkspace()
        let buffers = space.floatBuffers(workers: plan.workers, count: layout.count)
        for buffer in buffers { layout.fillMarginals(buffer, problem: problem) }

        let count = batch * m * n
        var logMatrix = [Float](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
        var matrix = [Float](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
        var ran = [Int](repeating: 0, count: batch)
        var errors = [Float](repeating: 0, count: batch)
        var histories = [SinkhornHistory.Item](repeating: .init(), count: recordsHistory ? batch : 0)
        let settings = ForwardSettings(iterations: iterations, tolerance: tolerance, checkInterval: checkInterval)

        input.withUnsafeBufferPointer { x in
            logMatrix.withUnsafeMutableBufferPointer { logP in
                matrix.withUnsafeMutableBufferPointer { p in
                    ran.withUnsafeMutableBufferPointer { ran in
                        errors.withUnsafeMutableBufferPointer { errors in
                            histories.withUnsafeMutableBufferPointer { histories in
                                let xBase = x.baseAddress!, logBase = logP.baseAddress!, pBase = p.baseAddress!
                                let historyBase = recordsHistory ? histories.baseAddress : nil
                                forEachBlock(plan.workers) { worker in
                                    let buffer = buffers[worker]
                                    for item in stride(from: worker, to: batch, by: plan.workers) {
                                        let offset = item * m * n
                                        let outcome = forwardItem(
                                            x: xBase + offset, logP: logBase + offset, p: pBase + offset,
                                            problem: problem, settings: settings,
                                            layout: layout, buffer: buffer,
                                            history: historyBase.map { $0 + item })
                                        ran[item] = outcome.iterations
                                        errors[item] = outcome.error
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return SinkhornResult(
            logMatrix: Tensor(shape: problem.shape, storage: logMatrix),
            matrix: Tensor(shape: problem.shape, storage: matrix),
            iterations: ran, marginalError: errors,
            history: recordsHistory ? SinkhornHistory(items: histories) : nil,
            problem: problem)
    }
}

/// How a call spreads over the cores: whole matrices per worker, or one matrix's rows per block.
struct ParallelPlan {
    /// Threads that each take every `workers`-th matrix of the batch.
    var workers: Int
    /// Row blocks each matrix is split into (run concurrently).
    var blocks: Int

    init(batch: Int, rows: Int, columns: Int, sweeps: Int) {
        let cores = sinkhornProcessorCount
        let work = batch * rows * columns * Swift.max(1, sweeps)
        // Below ~100k multiply-adds a dispatch round trip costs more than it saves.
        if cores > 1 && batch > 1 && work >= 100_000 {
            workers = Swift.min(cores, batch); blocks = 1
        } else if cores > 1 && rows * columns >= 128 * 1024 && rows >= 2 * cores {
            workers = 1; blocks = cores
        } else {
            workers = 1; blocks = 1
        }
    }
}

struct ForwardSettings {
    var iterations: Int
    var tolerance: Float?
    var checkInterval: Int
}

/// Offsets of the forward scratch vectors inside one worker's float buffer.
struct ForwardLayout {
    let rows: Int, columns: Int, blocks: Int
    let kernel: Int, f: Int, g: Int, u: Int, newU: Int, v: Int
    let a: Int, logA: Int, b: Int, logB: Int
    let partials: Int, maxima: Int, sums: Int, scratch: Int
    let potentialF: Int, potentialG: Int
    let count: Int

    init(rows m: Int, columns n: Int, blocks: Int) {
        self.rows = m; self.columns = n; self.blocks = blocks
        var next = 0
        func take(_ size: Int) -> Int { defer { next += size }; return next }
        kernel = take(m * n)
        f = take(m); g = take(n); u = take(m); newU = take(m); v = take(n)
        a = take(m); logA = take(m); b = take(n); logB = take(n)
        partials = take(blocks * n); maxima = take(blocks * n); sums = take(blocks * n)
        scratch = take(blocks * n)
        potentialF = take(m); potentialG = take(n)
        count = next
    }

    func fillMarginals(_ base: UnsafeMutablePointer<Float>, problem: SinkhornProblem) {
        for i in 0..<rows {
            let value = problem.rowMarginal?[i] ?? 1
            base[a + i] = value
            base[logA + i] = logf(value)
        }
        for j in 0..<columns {
            let value = problem.columnMarginal?[j] ?? 1
            base[b + j] = value
            base[logB + j] = logf(value)
        }
    }
}

extension Sinkhorn {
    /// Runs one matrix: a log-domain first iteration, then fused scaling sweeps with absorption.
    static func forwardItem(x: UnsafePointer<Float>, logP: UnsafeMutablePointer<Float>,
                            p: UnsafeMutablePointer<Float>, problem: SinkhornProblem,
                            settings: ForwardSettings, layout: ForwardLayout,
                            buffer: UnsafeMutablePointer<Float>,
                            history: UnsafeMutablePointer<SinkhornHistory.Item>?) -> (iterations: Int, error: Float) {
        let m = problem.rows, n = problem.columns, s = problem.scale, blocks = layout.blocks
        let kernel = buffer + layout.kernel
        let f = buffer + layout.f, g = buffer + layout.g
        var u = buffer + layout.u, newU = buffer + layout.newU
        let v = buffer + layout.v
        let a = buffer + layout.a, logA = buffer + layout.logA
        let b = buffer + layout.b, logB = buffer + layout.logB
        let partials = buffer + layout.partials
        let maxima = buffer + layout.maxima, sums = buffer + layout.sums, scratch = buffer + layout.scratch
        let rowsFirst = problem.order == .rowsFirst
        let total = settings.iterations
        for i in 0..<m { f[i] = 0; u[i] = 1 }
        for j in 0..<n { g[j] = 0; v[j] = 1 }

        func rowStep() {
            forEachBlock(blocks) { block in
                SinkhornKernels.logRowStep(x: x, columns: n, scale: s, f: f, g: g, logA: logA,
                                           rows: rowRange(block, of: blocks, rows: m), scratch: scratch + block * n)
            }
        }
        func columnStep() {
            forEachBlock(blocks) { block in
                SinkhornKernels.columnLogSumExpPartial(x: x, columns: n, scale: s, f: f,
                                                       rows: rowRange(block, of: blocks, rows: m),
                                                       maxima: maxima + block * n, sums: sums + block * n)
            }
            SinkhornKernels.finishColumnStep(maxima: maxima, sums: sums, blocks: blocks, columns: n, logB: logB, g: g)
        }
        /// Sums the per-block column partials into the first block's slot.
        func mergePartials() {
            if blocks == 1 { return }
            for block in 1..<blocks {
                let part = partials + block * n
                for j in 0..<n { partials[j] += part[j] }
            }
        }
        func rebuildKernel() {
            forEachBlock(blocks) { block in
                SinkhornKernels.buildKernel(x: x, columns: n, scale: s, f: f, g: g, kernel: kernel,
                                            rows: rowRange(block, of: blocks, rows: m),
                                            columnSums: partials + block * n)
            }
            mergePartials()
            for i in 0..<m { u[i] = 1 }
            for j in 0..<n { v[j] = 1 }
        }
        var epoch: Int32 = 0
        func recordBase() {
            guard let history else { return }
            history.pointee.baseF.append(contentsOf: UnsafeBufferPointer(start: f, count: m))
            history.pointee.baseG.append(contentsOf: UnsafeBufferPointer(start: g, count: n))
        }
        func recordIteration() {
            guard let history else { return }
            history.pointee.u.append(contentsOf: UnsafeBufferPointer(start: u, count: m))
            history.pointee.v.append(contentsOf: UnsafeBufferPointer(start: v, count: n))
            history.pointee.epochOfIteration.append(epoch)
        }
        if let history {
            history.pointee.u.reserveCapacity(total * m)
            history.pointee.v.reserveCapacity(total * n)
            history.pointee.epochOfIteration.reserveCapacity(total)
        }

        var ran = 0
        var haveKernel = false
        if total >= 1 {
            if rowsFirst {
                // Row step and kernel in one exponential pass; the column step is then the scaling
                // v = b / colsum(K), valid unless a column of K underflowed (tiny τ, a column no row
                // wants), in which case the column step runs in the log domain.
                forEachBlock(blocks) { block in
                    SinkhornKernels.firstRowStep(x: x, columns: n, scale: s, f: f, a: a, logA: logA,
                                                 kernel: kernel, rows: rowRange(block, of: blocks, rows: m),
                                                 columnSums: partials + block * n)
                }
                mergePartials()
                var safe = true
                for j in 0..<n where !(partials[j] >= 1e-20 && partials[j].isFinite) { safe = false; break }
                if safe {
                    for j in 0..<n { v[j] = b[j] / partials[j] }
                    haveKernel = true
                } else {
                    columnStep()
                    history?.pointee.firstStepDirect = true
                }
            } else {
                columnStep()
                rowStep()
                history?.pointee.firstStepDirect = true
            }
            ran = 1
            recordBase()
            recordIteration()
        }
        if total >= 2 {
            if !haveKernel {
                rebuildKernel()
                haveKernel = true
            } else {
                for j in 0..<n { partials[j] = 0 }  // not read in the rows-first order
            }
            let bound = absorptionBound, inverseBound = 1 / absorptionBound
            var errors = [Float](repeating: 0, count: blocks)
            for k in 2...total {
                let checks = settings.tolerance != nil && (k - 1) % settings.checkInterval == 0
                if !rowsFirst {
                    // partials = Kᵀu: the column sums of the current iterate are v ⊙ partials.
                    var error: Float = 0
                    for j in 0..<n { error += abs(v[j] * partials[j] - b[j]) }
                    if checks, let tolerance = settings.tolerance, error < tolerance { break }
                    for j in 0..<n { v[j] = b[j] / partials[j] }
                }
                errors.withUnsafeMutableBufferPointer { errors in
                    forEachBlock(blocks) { block in
                        errors[block] = SinkhornKernels.fusedScalingSweep(
                            kernel: kernel, columns: n, u: u, v: v, a: a, newU: newU,
                            rows: rowRange(block, of: blocks, rows: m), columnProducts: partials + block * n)
                    }
                }
                mergePartials()
                if rowsFirst {
                    let error = errors.reduce(0, +)
                    if checks, let tolerance = settings.tolerance, error < tolerance { break }
                    swap(&u, &newU)
                    for j in 0..<n { v[j] = b[j] / partials[j] }
                } else {
                    swap(&u, &newU)
                }
                ran = k
                recordIteration()
                var outside = false
                for i in 0..<m where !(u[i] <= bound && u[i] >= inverseBound) { outside = true; break }
                if !outside { for j in 0..<n where !(v[j] <= bound && v[j] >= inverseBound) { outside = true; break } }
                if outside && k < total {
                    for i in 0..<m { f[i] += logf(u[i]) }
                    for j in 0..<n { g[j] += logf(v[j]) }
                    rebuildKernel()
                    epoch += 1
                    recordBase()
                }
            }
        }
        var rowErrors = [Float](repeating: 0, count: blocks)
        if haveKernel {
            // Final potentials F = f + log u, G = g + log v go to the scratch vectors.
            let potentialF = buffer + layout.potentialF, potentialG = buffer + layout.potentialG
            for i in 0..<m { potentialF[i] = f[i] + logf(u[i]) }
            for j in 0..<n { potentialG[j] = g[j] + logf(v[j]) }
            rowErrors.withUnsafeMutableBufferPointer { rowErrors in
                forEachBlock(blocks) { block in
                    rowErrors[block] = SinkhornKernels.writeScaledOutput(
                        x: x, columns: n, scale: s, potentialF: potentialF, potentialG: potentialG,
                        kernel: kernel, u: u, v: v, a: a, logP: logP, p: p,
                        rows: rowRange(block, of: blocks, rows: m), columnSums: partials + block * n)
                }
            }
        } else {
            rowErrors.withUnsafeMutableBufferPointer { rowErrors in
                forEachBlock(blocks) { block in
                    rowErrors[block] = SinkhornKernels.writeOutput(
                        x: x, columns: n, scale: s, f: f, g: g, a: a, logP: logP, p: p,
                        rows: rowRange(block, of: blocks, rows: m), columnSums: partials + block * n)
                }
            }
        }
        if rowsFirst { return (ran, rowErrors.reduce(0, +)) }
        mergePartials()
        var columnError: Float = 0
        for j in 0..<n { columnError += abs(partials[j] - b[j]) }
        return (ran, columnError)
    }
}
