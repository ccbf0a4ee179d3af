import TensorKit

/// The score head: `Linear(in → n, no bias)`, one row of position scores per piece (the
/// tutorial's `g_2`, or `g_2.2` after a hidden layer).
public final class ScoreHead: JigsawStage {
    public let linear: Linear

    private var rowBuffers = RowBuffers()
    private var partials = FloatBuffer(count: 0)
    private var workers = 0

    /// - Parameter name: `g_2` for the tutorial network, `g_2.2` after a hidden layer.
    public init(name: String, inputFeatures: Int, positions: Int, generator: inout SeededGenerator) {
        linear = Linear(name: name, inputFeatures: inputFeatures, outputFeatures: positions, bias: false,
                        generator: &generator)
    }

    public var parameters: [Parameter] { linear.parameters }
    public var outputFeatures: Int { linear.outputFeatures }
    public var activations: UnsafeMutablePointer<Float> { rowBuffers.output.pointer }
    public var activationGradient: UnsafeMutablePointer<Float> { rowBuffers.gradient.pointer }
    public func checkParameterShapes() { linear.checkParameterShapes() }

    public func prepare(_ pass: StagePass) {
        if rowBuffers.prepare(rows: pass.rows, width: outputFeatures) || workers != pass.workers {
            workers = pass.workers
            partials = FloatBuffer(count: workers * linear.partialStride)
        }
    }

    public func forward(_ pass: StagePass) {
        let (input, output) = (pass.input, activations)
        Parallel.forEachRange(count: pass.rows, workers: pass.workers) { _, range in
            linear.forward(input: input, range: range, output: output)
        }
    }

    public func backward(_ pass: StagePass) {
        let (input, dScores) = (pass.input, UnsafePointer(activationGradient))
        let (partials, stride, inputGradient) = (partials.pointer, linear.partialStride, pass.inputGradient)
        Parallel.forEachRange(count: pass.rows, workers: pass.workers) { worker, range in
            let partial = partials + worker * stride
            partial.update(repeating: 0, count: stride)
            linear.backward(input: input, outputGradient: dScores, range: range, partial: partial,
                            inputGradient: inputGradient)
        }
        linear.reducePartials(partials, workers: pass.workers)
    }
}
