#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TensorKit

/// A Sinkhorn forward pass that kept every log iterate, as reverse-mode autodiff keeps them.
///
/// This is the memory behaviour of `torch.autograd` (or `tf.GradientTape`) through the tutorial's
/// loop `L ← L − logsumexp_row(L); L ← L − logsumexp_col(L)`: each half-step saves its `[n, n]`
/// output (the softmax the backward needs is its exponential), so the tape holds
/// `2 · iterations · B · n²` floats. It exists to measure that cost faithfully beside
/// `Sinkhorn.unrolledGradient` (same derivative, `O(iterations · B · n)` memory) and
/// `Sinkhorn.implicitGradient` (memory independent of the iterations; Eisenberger et al. 2022).
public struct SinkhornTape: Sendable {
    /// The forward result (`matrix`, `logMatrix`, iterations, row-marginal error); no history.
    public let result: SinkhornResult
    /// `[B][2·iterations][n][n]`: the log iterate after every half-step, in order.
    let iterates: [Float]
    /// The iterations every matrix ran (no early stop: autodiff unrolls a fixed loop).
    public let iterations: Int

    /// The bytes the tape holds: `4 · 2 · iterations · B · n²`.
    public var bytes: Int { iterates.count * MemoryLayout<Float>.stride }

    /// The bytes a tape of this size would hold, to refuse a run before allocating it.
    public static func predictedBytes(batch: Int, size n: Int, iterations: Int) -> Int {
        2 * iterations * batch * n * n * MemoryLayout<Float>.stride
    }
}

extension Sinkhorn {
    /// The Sinkhorn operator `S(X/τ)` in the plain log domain, recording every iterate on a tape.
    ///
    /// Same operator as `forward(_:temperature:iterations:)` (rows then columns, Mena et al. 2018,
    /// eq. 2), computed as autodiff frameworks run the tutorial's code: an explicit row and column
    /// log-sum-exp per half-step, each output stored.
    ///
    /// - Parameters:
    ///   - scores: `X`, `[n, n]` or `[B, n, n]`, finite.
    ///   - temperature: `τ > 0`.
    ///   - iterations: the fixed number of iterations, `≥ 0`.
    /// - Returns: the tape (its `result.matrix` is `P`).
    /// - Throws: `SinkhornError` for a non-square shape, a bad temperature or iteration count, or
    ///   non-finite scores.
    /// - Complexity: `O(B · n² · iterations)` time and memory.
    public static func tapeForward(_ scores: Tensor, temperature: Float = 1,
                                   iterations: Int = 20) throws(SinkhornError) -> SinkhornTape {
        let (batch, rows, columns) = try batchShape(scores.shape)
        guard rows == columns else { throw .invalidShape(shape: scores.shape) }
        guard temperature.isFinite, temperature > 0 else { throw .invalidTemperature(temperature) }
        guard iterations >= 0 else { throw .invalidIterations(iterations) }
        let scale = 1 / temperature
        let bad: Int? = scores.withUnsafeBufferPointer { x in
            for index in 0..<x.count where !(x[index] * scale).isFinite { return index }
            return nil
        }
        if let bad { throw .nonFiniteInput(index: bad) }
        let n = rows
        let size = n * n
        let steps = 2 * iterations
        let tapeCount = batch * steps * size
        var tape = [Float](unsafeUninitializedCapacity: tapeCount) { _, initialised in initialised = tapeCount }
        var logMatrix = [Float](unsafeUninitializedCapacity: batch * size) { _, initialised in initialised = batch * size }
        var matrix = [Float](unsafeUninitializedCapacity: batch * size) { _, initialised in initialised = batch * size }
        var errors = [Float](repeating: 0, count: batch)
        let workers = Swift.min(sinkhornProcessorCount, batch)
        scores.withUnsafeBufferPointer { x in
            tape.withUnsafeMutableBufferPointer { tape in
                logMatrix.withUnsafeMutableBufferPointer { logP in
                    matrix.withUnsafeMutableBufferPointer { p in
                        errors.withUnsafeMutableBufferPointer { errors in
                            let xBase = x.baseAddress!, tapeBase = tape.baseAddress
                            let logBase = logP.baseAddress!, pBase = p.baseAddress!
                            let errorBase = errors.baseAddress!
                            forEachBlock(workers) { worker in
                                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * n)
                                defer { scratch.deallocate() }
                                for item in stride(from: worker, to: batch, by: workers) {
                                    errorBase[item] = tapeForwardItem(
                                        x: xBase + item * size, scale: scale, n: n, iterations: iterations,
                                        tape: tapeBase.map { $0 + item * steps * size },
                                        logP: logBase + item * size, p: pBase + item * size, scratch: scratch)
                                }
                            }
                        }
                    }
                }
            }
        }
        let problem = SinkhornProblem(batch: batch, rows: n, columns: n, scale: scale, order: .rowsFirst,
                                      rowMarginal: nil, columnMarginal: nil, shape: scores.shape)
        let result = SinkhornResult(logMatrix: Tensor(shape: scores.shape, storage: logMatrix),
                                    matrix: Tensor(shape: scores.shape, storage: matrix),
                                    iterations: [Int](repeating: iterations, count: batch),
                                    marginalError: errors, history: nil, problem: problem)
        return SinkhornTape(result: result, iterates: tape, iterations: iterations)
    }

    /// One matrix of `tapeForward`; returns `Σ_i |Σ_j P_ij − 1|`.
    static func tapeForwardItem(x: UnsafePointer<Float>, scale: Float, n: Int, iterations: Int,
                                tape: UnsafeMutablePointer<Float>?, logP: UnsafeMutablePointer<Float>,
                                p: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Float {
        let size = n * n
        for index in 0..<size { logP[index] = scale * x[index] }
        var previous = UnsafePointer(logP)
        let lse = scratch, columnScratch = scratch + n
        for k in 0..<iterations {
            // Row half-step: tape slot 2k.
            let rowOut = tape! + (2 * k) * size
            for i in 0..<n {
                let shift = VectorMath.logSumExp(previous + i * n, count: n)
                let source = previous + i * n, target = rowOut + i * n
                for j in 0..<n { target[j] = source[j] - shift }
            }
            // Column half-step: tape slot 2k + 1.
            let columnOut = rowOut + size
            VectorMath.logSumExpColumns(rowOut, rows: n, columns: n, into: lse, scratch: columnScratch)
            for i in 0..<n {
                let source = rowOut + i * n, target = columnOut + i * n
                for j in 0..<n { target[j] = source[j] - lse[j] }
            }
            previous = UnsafePointer(columnOut)
        }
        if iterations > 0 { logP.update(from: previous, count: size) }
        var error: Float = 0
        for i in 0..<n {
            let rowSum = VectorMath.exp(logP + i * n, into: p + i * n, count: n)
            error += abs(rowSum - 1)
        }
        return error
    }

    /// `∂ℓ/∂X` by reverse-mode differentiation through the taped iterates: the derivative of exactly
    /// the iterations that ran, equal (to float rounding) to `unrolledGradient`.
    ///
    /// Starting from `A = G ⊙ P`, each half-step `L′ = L − lse(L)` is undone in reverse order with
    /// `A ← A − exp(L′) ⊙ (A summed along the normalised axis)`; finally `∂ℓ/∂X = A / τ`.
    ///
    /// - Parameters:
    ///   - tape: a tape from `tapeForward`.
    ///   - upstream: `G = ∂ℓ/∂P`, the scores' shape.
    /// - Returns: `∂ℓ/∂X`, the scores' shape.
    /// - Throws: `SinkhornError.shapeMismatch`.
    /// - Complexity: `O(B · n² · iterations)` time (one exponential per element per half-step, as the
    ///   autograd backward of `logsumexp` computes), `O(n)` scratch per thread.
    public static func tapeGradient(_ tape: SinkhornTape, upstream: Tensor) throws(SinkhornError) -> Tensor {
        let problem = tape.result.problem
        guard upstream.shape == problem.shape else {
            throw .shapeMismatch(expected: problem.shape, found: upstream.shape)
        }
        let (batch, n) = (problem.batch, problem.rows)
        let size = n * n
        let steps = 2 * tape.iterations
        let scale = problem.scale
        var gradient = [Float](unsafeUninitializedCapacity: batch * size) { _, initialised in initialised = batch * size }
        let workers = Swift.min(sinkhornProcessorCount, batch)
        tape.iterates.withUnsafeBufferPointer { iterates in
            upstream.withUnsafeBufferPointer { g in
                tape.result.matrix.withUnsafeBufferPointer { p in
                    gradient.withUnsafeMutableBufferPointer { out in
                        let tapeBase = iterates.baseAddress, gBase = g.baseAddress!, pBase = p.baseAddress!
                        let outBase = out.baseAddress!
                        forEachBlock(workers) { worker in
                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * n)
                            defer { scratch.deallocate() }
                            for item in stride(from: worker, to: batch, by: workers) {
                                tapeBackwardItem(upstream: gBase + item * size, matrix: pBase + item * size,
                                                 tape: tapeBase.map { $0 + item * steps * size }, n: n,
                                                 steps: steps, scale: scale, adjoint: outBase + item * size,
                                                 scratch: scratch)
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: problem.shape, storage: gradient)
    }

    /// One matrix of `tapeGradient`.
    static func tapeBackwardItem(upstream: UnsafePointer<Float>, matrix: UnsafePointer<Float>,
                                 tape: UnsafePointer<Float>?, n: Int, steps: Int, scale: Float,
                                 adjoint: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let size = n * n
        for index in 0..<size { adjoint[index] = upstream[index] * matrix[index] }
        let sums = scratch, softmax = scratch + n
        for step in stride(from: steps - 1, through: 0, by: -1) {
            let output = tape! + step * size
            if step % 2 == 1 {
                // Column half-step: c_j = Σ_i A_ij, A_ij −= exp(L′_ij) · c_j.
                for j in 0..<n { sums[j] = 0 }
                for i in 0..<n {
                    let a = adjoint + i * n
                    for j in 0..<n { sums[j] += a[j] }
                }
                for i in 0..<n {
                    let a = adjoint + i * n
                    VectorMath.exp(output + i * n, into: softmax, count: n)
                    for j in 0..<n { a[j] -= softmax[j] * sums[j] }
                }
            } else {
                // Row half-step: r_i = Σ_j A_ij, A_ij −= exp(L′_ij) · r_i.
                for i in 0..<n {
                    let a = adjoint + i * n
                    var r: Float = 0
                    for j in 0..<n { r += a[j] }
                    VectorMath.exp(output + i * n, into: softmax, count: n)
                    for j in 0..<n { a[j] -= softmax[j] * r }
                }
            }
        }
        for index in 0..<size { adjoint[index] *= scale }
    }
}
