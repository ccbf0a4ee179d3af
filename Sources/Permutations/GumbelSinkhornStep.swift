import TensorKit

/// How the gradient goes back through the Sinkhorn layer.
public enum SinkhornBackward: String, Sendable, CaseIterable {
    /// Implicit differentiation of the fixed point (Eisenberger et al. 2022, Algorithm 1): memory
    /// independent of the iteration count.
    case implicit
    /// The exact derivative of the iterations, recomputed from the recorded dual potentials
    /// (`Sinkhorn.unrolledGradient`): `O(iterations · B · n)` extra memory.
    case unrolled
    /// The exact derivative of the iterations through a tape of every iterate, as autodiff keeps it
    /// (`Sinkhorn.tapeGradient`): `O(iterations · B · n²)` extra memory.
    case tape
}

/// The Gumbel-Sinkhorn layer of one training step, with the choice of backward made once:
/// `P = S((X + c·g)/τ)` for `S` samples per example, recorded as the backward needs (nothing, the
/// dual potentials, or a tape of every iterate), then `∂L/∂X` from `∂L/∂P`, summed over the
/// samples of each example (Mena et al. 2018, §3; Eisenberger et al. 2022, Algorithm 1).
///
/// Both trainers (jigsaw and sorting) differentiate through this one type.
public struct GumbelSinkhornStep: Sendable {
    /// The perturbed scores and their Sinkhorn forward.
    public let sample: GumbelSinkhornSample
    /// How the gradient goes back.
    public let backward: SinkhornBackward
    private let tape: SinkhornTape?

    /// Draws the Gumbel noise from `generator` (none when `noiseFactor` is 0) and runs the forward.
    /// - Throws: `SinkhornError` for bad shapes, settings or non-finite scores.
    public init(_ scores: Tensor, temperature: Float, noiseFactor: Float, samplesPerExample: Int, iterations: Int,
                backward: SinkhornBackward, generator: inout SeededGenerator,
                workspace: SinkhornWorkspace? = nil) throws(SinkhornError) {
        let noise = try GumbelSinkhorn.noise(for: scores, noiseFactor: noiseFactor, samplesPerExample: samplesPerExample,
                                             generator: &generator)
        try self.init(scores, noise: noise, temperature: temperature, noiseFactor: noiseFactor,
                      samplesPerExample: samplesPerExample, iterations: iterations, backward: backward,
                      workspace: workspace)
    }

    /// Runs the forward on given standard Gumbel noise `[B·S, n, n]` (scaled by `noiseFactor` here).
    /// - Throws: `SinkhornError` for bad shapes, settings or non-finite scores.
    public init(_ scores: Tensor, noise: Tensor, temperature: Float, noiseFactor: Float, samplesPerExample: Int,
                iterations: Int, backward: SinkhornBackward, workspace: SinkhornWorkspace? = nil) throws(SinkhornError) {
        self.backward = backward
        if backward == .tape {
            // The tape forward is the forward: every iterate kept, as autodiff keeps it.
            let perturbed = GumbelSinkhorn.perturb(scores, noise: noise, noiseFactor: noiseFactor,
                                                   samplesPerExample: samplesPerExample)
            let recorded = try Sinkhorn.tapeForward(perturbed, temperature: temperature, iterations: iterations)
            tape = recorded
            sample = GumbelSinkhornSample(result: recorded.result, noise: noise, perturbedScores: perturbed,
                                          samplesPerExample: samplesPerExample, scoresShape: scores.shape)
        } else {
            tape = nil
            sample = try GumbelSinkhorn.sample(scores, noise: noise, temperature: temperature, noiseFactor: noiseFactor,
                                               samplesPerExample: samplesPerExample, iterations: iterations,
                                               recordsHistory: backward == .unrolled, workspace: workspace)
        }
    }

    /// `P` `[B·S, n, n]`.
    public var matrices: Tensor { sample.result.matrix }

    /// Bytes the backward keeps from the forward beyond its output: the tape, the recorded
    /// potentials, or 0 for the implicit backward.
    public var backwardStateBytes: Int {
        switch backward {
        case .implicit: 0
        case .unrolled: sample.result.history?.bytes ?? 0
        case .tape: tape?.bytes ?? 0
        }
    }

    /// `∂L/∂X` `[B, n, n]` from `∂L/∂P` `[B·S, n, n]`.
    /// - Throws: `SinkhornError` for a mismatched upstream gradient.
    public func scoresGradient(upstream: Tensor, workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> Tensor {
        switch backward {
        case .unrolled: return try sample.unrolledGradient(upstream: upstream, workspace: workspace)
        case .implicit: return try sample.implicitGradient(upstream: upstream, workspace: workspace)
        case .tape:
            guard let tape else { preconditionFailure("tape backward without a tape") }
            return try sample.scoresGradient(fromSampleGradient: Sinkhorn.tapeGradient(tape, upstream: upstream))
        }
    }
}
