import TensorKit

/// Set context: every piece's hidden layer also sees its whole puzzle (a DeepSets layer).
///
///     hᵢ = ReLU(A·fᵢ + a + C·mean_j φ(f_j)),   φ(f) = f  or  ReLU(E·f + e)
///
/// The stage passes its input `f` through unchanged and contributes the per-puzzle term
/// `C·mean_j φ(f_j)` `[puzzles, u]` (``term``) that the ``HiddenLayer`` after it adds to every
/// pre-activation of the puzzle. The mean runs over one puzzle's pieces, so the scores stay
/// permutation-equivariant. Tensor names: `context.weight` `[u, m]` (no bias) and, with context
/// units, `context.embed.weight` `[m, F]`, `context.embed.bias` `[m]`.
public final class SetContext: JigsawStage {
    /// `C`.
    public let contextLayer: Linear
    /// `φ`'s Linear layer `E`, or `nil` when the mean is taken over the features themselves.
    public let embedding: Linear?
    /// Features per input row (`F`).
    public let inputFeatures: Int

    private var rows = -1, workers = 0
    private var embedded = FloatBuffer(count: 0), embeddedGradient = FloatBuffer(count: 0)
    private var means = FloatBuffer(count: 0), meansGradient = FloatBuffer(count: 0)
    private(set) var termBuffer = FloatBuffer(count: 0)
    /// `Σ_{i ∈ puzzle} ∂L/∂(pre-activation)ᵢ` `[puzzles, u]`, written by the hidden layer's backward.
    private(set) var termGradient = FloatBuffer(count: 0)
    private var partials = FloatBuffer(count: 0)

    /// - Parameters:
    ///   - inputFeatures: `F`, the features of a piece.
    ///   - hiddenUnits: `u`, the width of the hidden layer that receives the term.
    ///   - contextUnits: `m`, the width of `φ`; 0 for `φ(f) = f`.
    public init(inputFeatures: Int, hiddenUnits: Int, contextUnits: Int, generator: inout SeededGenerator) {
        self.inputFeatures = inputFeatures
        contextLayer = Linear(name: "context", inputFeatures: contextUnits > 0 ? contextUnits : inputFeatures,
                              outputFeatures: hiddenUnits, bias: false, generator: &generator)
        embedding = contextUnits > 0
            ? Linear(name: "context.embed", inputFeatures: inputFeatures, outputFeatures: contextUnits,
                     generator: &generator)
            : nil
    }

    public var parameters: [Parameter] { (embedding?.parameters ?? []) + contextLayer.parameters }
    public var outputFeatures: Int { inputFeatures }
    public var passesInputThrough: Bool { true }
    public var activations: UnsafeMutablePointer<Float> { preconditionFailure("set context passes its input through") }
    public var activationGradient: UnsafeMutablePointer<Float> { preconditionFailure("set context passes its input through") }
    /// `C·mean φ(f)` `[puzzles, u]` of the last forward.
    var term: UnsafePointer<Float> { UnsafePointer(termBuffer.pointer) }

    public func checkParameterShapes() {
        contextLayer.checkParameterShapes()
        embedding?.checkParameterShapes()
    }

    public func prepare(_ pass: StagePass) {
        guard pass.rows != rows || pass.workers != workers else { return }
        (rows, workers) = (pass.rows, pass.workers)
        let (puzzles, units, width) = (pass.puzzles, contextLayer.outputFeatures, contextLayer.inputFeatures)
        if let embedding {
            embedded = FloatBuffer(count: rows * embedding.outputFeatures)
            embeddedGradient = FloatBuffer(count: rows * embedding.outputFeatures)
            partials = FloatBuffer(count: workers * embedding.partialStride)
        }
        means = FloatBuffer(count: puzzles * width)
        meansGradient = FloatBuffer(count: puzzles * width)
        termBuffer = FloatBuffer(count: puzzles * units)
        termGradient = FloatBuffer(count: puzzles * units)
    }

    public func forward(_ pass: StagePass) {
        var features = pass.input
        if let embedding {
            let (input, output, units) = (pass.input, embedded.pointer, embedding.outputFeatures)
            Parallel.forEachRowRange(count: pass.rows, workers: pass.workers) { _, range in
                embedding.forward(input: input, range: range, output: output)
                ReLU.rectify(output + range.lowerBound * units, count: range.count * units)
            }
            features = UnsafePointer(embedded.pointer)
        }
        let n = pass.piecesPerPuzzle
        sumPerPuzzle(features, width: contextLayer.inputFeatures, piecesPerPuzzle: n, puzzles: pass.puzzles,
                     scale: 1 / Float(n), into: means.pointer)
        contextLayer.forward(input: means.pointer, rows: pass.puzzles, output: termBuffer.pointer)
    }

    /// Sums the hidden layer's pre-activation gradient over each puzzle (called by its backward).
    func collect(preActivationGradient: UnsafePointer<Float>, pass: StagePass) {
        sumPerPuzzle(preActivationGradient, width: contextLayer.outputFeatures, piecesPerPuzzle: pass.piecesPerPuzzle,
                     puzzles: pass.puzzles, scale: 1, into: termGradient.pointer)
    }

    /// With `Sᵦ` the collected sums: `∂L/∂C += Σᵦ Sᵦ·meanᵦᵀ` and every piece's `φ` gradient is
    /// `Cᵀ·Sᵦ / n`, which is added (through `φ`) to the input gradient.
    public func backward(_ pass: StagePass) {
        guard let inputGradient = pass.inputGradient else { preconditionFailure("set context needs an input gradient") }
        let (puzzles, n, width) = (pass.puzzles, pass.piecesPerPuzzle, contextLayer.inputFeatures)
        let sums = UnsafePointer(termGradient.pointer)
        contextLayer.weight.gradient.withUnsafeMutableBufferPointer { g in
            contextLayer.accumulateGradients(input: means.pointer, outputGradient: sums, rows: puzzles,
                                             weightGradient: g.baseAddress!, biasGradient: nil)
        }
        let dMeans = meansGradient.pointer
        contextLayer.inputGradient(outputGradient: sums, rows: puzzles, inputGradient: dMeans)
        let scale = 1 / Float(n)
        for k in 0..<(puzzles * width) { dMeans[k] *= scale }
        let input = pass.input
        if let embedding {
            let (units, stride) = (embedding.outputFeatures, embedding.partialStride)
            let (embedded, dEmbedded, partials) = (embedded.pointer, embeddedGradient.pointer, partials.pointer)
            Parallel.forEachRowRange(count: pass.rows, workers: pass.workers) { worker, range in
                for piece in range {
                    let row = dEmbedded + piece * units
                    row.update(from: dMeans + (piece / n) * units, count: units)
                    ReLU.mask(row, output: UnsafePointer(embedded + piece * units), count: units)
                }
                let partial = partials + worker * stride
                partial.update(repeating: 0, count: stride)
                embedding.backward(input: input, outputGradient: dEmbedded, range: range, partial: partial,
                                   inputGradient: inputGradient, accumulating: true)
            }
            embedding.reducePartials(partials, workers: pass.workers)
        } else {
            Parallel.forEachRowRange(count: pass.rows, workers: pass.workers) { _, range in
                for piece in range {
                    let row = inputGradient + piece * width
                    let term = dMeans + (piece / n) * width
                    for k in 0..<width { row[k] += term[k] }
                }
            }
        }
    }
}
