import TensorKit

/// The hidden layer of the score network, `hᵢ = ReLU(A·fᵢ + a [+ tᵦ])` (`g_2.0`), where `tᵦ` is
/// the per-puzzle term of a ``SetContext`` stage before it, when there is one.
public final class HiddenLayer: LinearStage {
    /// `A`, `a`.
    public let linear: Linear
    /// The set context whose term is added to the pre-activation.
    public let context: SetContext?

    var storage = LinearStageBuffers()

    /// - Parameters:
    ///   - linear: `A`, `a` (named `g_2.0`).
    ///   - context: the set context stage before this layer, whose term is added.
    public init(linear: Linear, context: SetContext?) {
        self.linear = linear
        self.context = context
    }


    public func forward(rows range: Range<Int>, input: UnsafePointer<Float>, pass: StagePass) {
        let (output, units, n) = (activations, outputFeatures, pass.piecesPerPuzzle)
        let term = context?.term
        linear.forEachChunk(of: range) { start, rows in
            let hidden = output + start * units
            linear.forward(input: input + start * linear.inputFeatures, rows: rows, output: hidden)
            if let term {
                for r in 0..<rows {
                    let t = term + ((start + r) / n) * units
                    let row = hidden + r * units
                    for u in 0..<units { row[u] += t[u] }
                }
            }
            ReLU.rectify(hidden, count: rows * units)
        }
    }

    public func backward(_ pass: StagePass) {
        let (output, dHidden, units) = (UnsafePointer(activations), activationGradient, outputFeatures)
        storage.backward(linear, pass: pass, outputGradient: dHidden) { range in
            let offset = range.lowerBound * units
            ReLU.mask(dHidden + offset, output: output + offset, count: range.count * units)
        }
        context?.collect(preActivationGradient: dHidden, pass: pass)
    }
}
