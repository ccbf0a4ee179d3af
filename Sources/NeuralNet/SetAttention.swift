import Glibc
import TensorKit

/// Multi-head self-attention over the pieces of each puzzle, with a residual connection and a
/// ReLU: for the `n` rows `X` `[n, u]` of one puzzle,
///
///     Qₕ = X·Wqₕᵀ, Kₕ = X·Wkₕᵀ, Vₕ = X·Wvₕᵀ            (h = 1…H, each [n, d])
///     Aₕ = softmax_rows(Qₕ·Kₕᵀ / √d)                     ([n, n])
///     Z  = ReLU(X + [A₁V₁ … A_HV_H]·Woᵀ + bo)            ([n, u])
///
/// Every piece can look at every other piece of its own puzzle (a stroke that leaves one piece's
/// edge and enters another's), and the block is permutation-equivariant: reordering a puzzle's
/// rows reorders its outputs the same way. Tensor names: `NAME.query.weight`, `NAME.key.weight`,
/// `NAME.value.weight` (each `[H·d, u]`, no bias), `NAME.output.weight` `[u, H·d]` and
/// `NAME.output.bias` `[u]`.
///
/// The projections run as single BLAS calls over all rows of the batch; the per-puzzle attention
/// is split over workers by puzzle. Buffers are kept between calls; an instance is not safe to use
/// from several threads at once.
public final class SetAttention: JigsawStage {
    public let features: Int
    public let heads: Int
    public let headUnits: Int
    public let query: Linear
    public let key: Linear
    public let value: Linear
    public let output: Linear

    private var rows = 0, piecesPerPuzzle = 0
    private var q = FloatBuffer(count: 0), k = FloatBuffer(count: 0), v = FloatBuffer(count: 0)
    private var attention = FloatBuffer(count: 0)
    private var mixed = FloatBuffer(count: 0)
    private var dQ = FloatBuffer(count: 0), dK = FloatBuffer(count: 0), dV = FloatBuffer(count: 0)
    private var dMixed = FloatBuffer(count: 0)
    private var scratch = FloatBuffer(count: 0)
    private var scratchStride = 0
    private var stageBuffers = RowBuffers()

    /// - Parameter name: the prefix of the tensor names (`attention.0` gives `attention.0.query.weight`).
    public init(name: String, features: Int, heads: Int, headUnits: Int, generator: inout SeededGenerator) {
        precondition(features > 0 && heads > 0 && headUnits > 0, "empty attention block")
        self.features = features
        self.heads = heads
        self.headUnits = headUnits
        let width = heads * headUnits
        query = Linear(name: name + ".query", inputFeatures: features, outputFeatures: width, bias: false,
                       generator: &generator)
        key = Linear(name: name + ".key", inputFeatures: features, outputFeatures: width, bias: false,
                     generator: &generator)
        value = Linear(name: name + ".value", inputFeatures: features, outputFeatures: width, bias: false,
                       generator: &generator)
        output = Linear(name: name + ".output", inputFeatures: width, outputFeatures: features, generator: &generator)
    }

    public var parameters: [Parameter] {
        query.parameters + key.parameters + value.parameters + output.parameters
    }

    public func checkParameterShapes() {
        query.checkParameterShapes()
        key.checkParameterShapes()
        value.checkParameterShapes()
        output.checkParameterShapes()
    }

    private var width: Int { heads * headUnits }

    private func prepare(rows: Int, piecesPerPuzzle n: Int, workers: Int) {
        let stride = (n * n + 15) / 16 * 16
        if rows == self.rows && n == piecesPerPuzzle && scratch.count >= workers * stride { return }
        self.rows = rows
        piecesPerPuzzle = n
        let size = rows * width
        q = FloatBuffer(count: size); k = FloatBuffer(count: size); v = FloatBuffer(count: size)
        mixed = FloatBuffer(count: size)
        dQ = FloatBuffer(count: size); dK = FloatBuffer(count: size); dV = FloatBuffer(count: size)
        dMixed = FloatBuffer(count: size)
        attention = FloatBuffer(count: rows * heads * n)
        scratchStride = stride
        scratch = FloatBuffer(count: workers * stride)
    }

    /// `Z [rows, u]` from `X [rows, u]`, `n` consecutive rows per puzzle. `input` and `result` must
    /// stay unchanged until ``backward(input:result:resultGradient:inputGradient:workers:)``.
    func forward(input: UnsafePointer<Float>, rows: Int, piecesPerPuzzle n: Int, workers: Int,
                 result: UnsafeMutablePointer<Float>) {
        precondition(n > 0 && rows % n == 0, "attention rows \(rows) are not whole puzzles of \(n)")
        prepare(rows: rows, piecesPerPuzzle: n, workers: workers)
        query.forward(input: input, rows: rows, output: q.pointer)
        key.forward(input: input, rows: rows, output: k.pointer)
        value.forward(input: input, rows: rows, output: v.pointer)
        let (heads, d, width) = (heads, headUnits, width)
        let scale = 1 / Float(d).squareRoot()
        let (q, k, v, attention, mixed) = (q.pointer, k.pointer, v.pointer, attention.pointer, mixed.pointer)
        Parallel.forEachRange(count: rows / n, workers: workers) { _, puzzles in
            for b in puzzles {
                let base = b * n * width
                for h in 0..<heads {
                    let a = attention + (b * heads + h) * n * n
                    BLAS.gemm(.none, .transpose, m: n, n: n, k: d, alpha: scale,
                              a: q + base + h * d, lda: width, b: k + base + h * d, ldb: width,
                              c: a, ldc: n)
                    for i in 0..<n { Self.softmax(a + i * n, count: n) }
                    BLAS.gemm(.none, .none, m: n, n: d, k: n, a: a, lda: n, b: v + base + h * d, ldb: width,
                              c: mixed + base + h * d, ldc: width)
                }
            }
        }
        // Z = ReLU(X + O·Woᵀ + bo)
        result.update(from: input, count: rows * features)
        output.bias!.value.withUnsafeBufferPointer { bias in
            for r in 0..<rows {
                let row = result + r * features
                for o in 0..<features { row[o] += bias[o] }
            }
        }
        output.weight.value.withUnsafeBufferPointer { w in
            BLAS.gemm(.none, .transpose, m: rows, n: features, k: width, a: mixed, lda: width,
                      b: w.baseAddress!, ldb: width, beta: 1, c: result, ldc: features)
        }
        ReLU.rectify(result, count: rows * features)
    }

    /// Accumulates the parameter gradients from `∂L/∂Z` and writes `∂L/∂X` (overwriting).
    /// `resultGradient` is masked by the ReLU in place.
    func backward(input: UnsafePointer<Float>, result: UnsafePointer<Float>,
                  resultGradient: UnsafeMutablePointer<Float>, inputGradient: UnsafeMutablePointer<Float>,
                  workers: Int) {
        let n = piecesPerPuzzle
        precondition(n > 0 && rows > 0, "SetAttention.backward before forward")
        let count = rows * features
        ReLU.mask(resultGradient, output: result, count: count)
        let dPre = UnsafePointer(resultGradient)
        // Output projection: ∂Wo += dPreᵀ·O, ∂bo += Σ dPre, ∂O = dPre·Wo.
        output.accumulateGradients(input: mixed.pointer, outputGradient: dPre, rows: rows)
        output.inputGradient(outputGradient: dPre, rows: rows, inputGradient: dMixed.pointer)
        let (heads, d, width) = (heads, headUnits, width)
        let scale = 1 / Float(d).squareRoot()
        let (q, k, v, attention) = (q.pointer, k.pointer, v.pointer, attention.pointer)
        let (dQ, dK, dV, dMixed) = (dQ.pointer, dK.pointer, dV.pointer, UnsafePointer(dMixed.pointer))
        let (scratch, stride) = (scratch.pointer, scratchStride)
        Parallel.forEachRange(count: rows / n, workers: workers) { worker, puzzles in
            let dA = scratch + worker * stride
            for b in puzzles {
                let base = b * n * width
                for h in 0..<heads {
                    let a = UnsafePointer(attention + (b * heads + h) * n * n)
                    let offset = base + h * d
                    // ∂A = ∂Oₕ·Vₕᵀ, ∂Vₕ = Aᵀ·∂Oₕ
                    BLAS.gemm(.none, .transpose, m: n, n: n, k: d, a: dMixed + offset, lda: width,
                              b: v + offset, ldb: width, c: dA, ldc: n)
                    BLAS.gemm(.transpose, .none, m: n, n: d, k: n, a: a, lda: n, b: dMixed + offset, ldb: width,
                              c: dV + offset, ldc: width)
                    // Softmax backward: ∂S = A ⊙ (∂A − rowsum(∂A ⊙ A)), times the 1/√d scale.
                    for i in 0..<n {
                        let rowA = a + i * n, rowD = dA + i * n
                        var dot: Float = 0
                        for j in 0..<n { dot += rowA[j] * rowD[j] }
                        for j in 0..<n { rowD[j] = scale * rowA[j] * (rowD[j] - dot) }
                    }
                    // ∂Qₕ = ∂S·Kₕ, ∂Kₕ = ∂Sᵀ·Qₕ
                    BLAS.gemm(.none, .none, m: n, n: d, k: n, a: dA, lda: n, b: k + offset, ldb: width,
                              c: dQ + offset, ldc: width)
                    BLAS.gemm(.transpose, .none, m: n, n: d, k: n, a: dA, lda: n, b: q + offset, ldb: width,
                              c: dK + offset, ldc: width)
                }
            }
        }
        query.accumulateGradients(input: input, outputGradient: dQ, rows: rows)
        key.accumulateGradients(input: input, outputGradient: dK, rows: rows)
        value.accumulateGradients(input: input, outputGradient: dV, rows: rows)
        inputGradient.update(from: dPre, count: count)
        query.inputGradient(outputGradient: dQ, rows: rows, inputGradient: inputGradient, accumulating: true)
        key.inputGradient(outputGradient: dK, rows: rows, inputGradient: inputGradient, accumulating: true)
        value.inputGradient(outputGradient: dV, rows: rows, inputGradient: inputGradient, accumulating: true)
    }

    private static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var largest = -Float.infinity
        for j in 0..<count { largest = max(largest, row[j]) }
        var sum: Float = 0
        for j in 0..<count {
            let e = expf(row[j] - largest)
            row[j] = e
            sum += e
        }
        let inverse = 1 / sum
        for j in 0..<count { row[j] *= inverse }
    }
}

// MARK: - As a network stage

extension SetAttention {
    public var outputFeatures: Int { features }
    public var activations: UnsafeMutablePointer<Float> { stageBuffers.output.pointer }
    public var activationGradient: UnsafeMutablePointer<Float> { stageBuffers.gradient.pointer }

    public func prepare(_ pass: StagePass) {
        stageBuffers.prepare(rows: pass.rows, width: features)
    }

    public func forward(_ pass: StagePass) {
        forward(input: pass.input, rows: pass.rows, piecesPerPuzzle: pass.piecesPerPuzzle, workers: pass.workers,
                result: activations)
    }

    public func backward(_ pass: StagePass) {
        guard let inputGradient = pass.inputGradient else { preconditionFailure("attention needs an input gradient") }
        backward(input: pass.input, result: UnsafePointer(activations), resultGradient: activationGradient,
                 inputGradient: inputGradient, workers: pass.workers)
    }
}
