import TensorKit

/// The score head: `Linear(in → n, no bias)`, one row of position scores per piece (the
/// tutorial's `g_2`, or `g_2.2` after a hidden layer).
public final class ScoreHead: LinearStage {
    public let linear: Linear

    var storage = LinearStageBuffers()

    /// - Parameter name: `g_2` for the tutorial network, `g_2.2` after a hidden layer.
    public init(name: String, inputFeatures: Int, positions: Int, generator: inout SeededGenerator) {
        linear = Linear(name: name, inputFeatures: inputFeatures, outputFeatures: positions, bias: false,
                        generator: &generator)
    }


    public func forward(rows range: Range<Int>, input: UnsafePointer<Float>, pass: StagePass) {
        linear.forward(input: input, range: range, output: activations)
    }

    public func backward(_ pass: StagePass) {
        storage.backward(linear, pass: pass, outputGradient: activationGradient)
    }
}
