import TensorKit

/// The score head: `Linear(in → n, no bias)`, one row of position scores per piece (the
/// tutorial's `g_2`, or `g_2.2` after a hidden layer).
public final class ScoreHead: JigsawStage {
    public let linear: Linear

    private var storage = LinearStageBuffers()

    /// - Parameter name: `g_2` for the tutorial network, `g_2.2` after a hidden layer.
    public init(name: String, inputFeatures: Int, positions: Int, generator: inout SeededGenerator) {
        linear = Linear(name: name, inputFeatures: inputFeatures, outputFeatures: positions, bias: false,
                        generator: &generator)
    }

    public var parameters: [Parameter] { linear.parameters }
    public var outputFeatures: Int { linear.outputFeatures }
    public var activations: UnsafeMutablePointer<Float> { storage.rows.output.pointer }
    public var activationGradient: UnsafeMutablePointer<Float> { storage.rows.gradient.pointer }
    public func checkParameterShapes() { linear.checkParameterShapes() }

    public func prepare(_ pass: StagePass) { storage.prepare(pass, linear: linear) }

    public func forward(_ pass: StagePass) {
        let (input, output) = (pass.input, activations)
        Parallel.forEachRange(count: pass.rows, workers: pass.workers) { _, range in
            linear.forward(input: input, range: range, output: output)
        }
    }

    public func backward(_ pass: StagePass) {
        storage.backward(linear, pass: pass, outputGradient: activationGradient)
    }
}
