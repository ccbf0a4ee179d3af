import TensorKit

/// Gumbel-Sinkhorn samples and their gradients.
///
/// Layout: the output batch holds `samplesPerExample` consecutive matrices per example,
/// matrix `b · S + k` being sample `k` of example `b` (the reference code's `[B, S, n, n]`,
/// flattened).
public struct GumbelSinkhornSample: Sendable {
    /// `S((X + noiseFactor · g)/τ)`, `[B·S, n, n]`.
    public internal(set) var result: SinkhornResult
    /// The standard Gumbel noise `g`, `[B·S, n, n]` (all zeros when the noise factor is 0).
    public internal(set) var noise: Tensor
    /// `X + noiseFactor · g`, the scores the forward saw, `[B·S, n, n]`.
    public internal(set) var perturbedScores: Tensor
    /// `S`, the samples drawn per example.
    public let samplesPerExample: Int
    /// The shape of the scores before repetition (`[n, n]` or `[B, n, n]`).
    public let scoresShape: [Int]

    /// Sums per-sample gradients `[B·S, n, n]` over the samples of each example, giving `∂ℓ/∂X` in
    /// the scores' shape (the noise is additive, so `∂(X + c·g)/∂X` is the identity per sample).
    public func scoresGradient(fromSampleGradient perSample: Tensor) throws(SinkhornError) -> Tensor {
        guard perSample.shape == perturbedScores.shape else {
            throw .shapeMismatch(expected: perturbedScores.shape, found: perSample.shape)
        }
        return GumbelSinkhorn.sumOverSamples(perSample, scoresShape: scoresShape, samplesPerExample: samplesPerExample)
    }

    /// `∂ℓ/∂X` by the unrolled backward (the sample must have been drawn with `recordsHistory: true`).
    /// - Parameter upstream: `G = ∂ℓ/∂P`, `[B·S, n, n]`.
    public func unrolledGradient(upstream: Tensor, workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> Tensor {
        try scoresGradient(fromSampleGradient: Sinkhorn.unrolledGradient(
            result, scores: perturbedScores, upstream: upstream, workspace: workspace))
    }

    /// `∂ℓ/∂X` by the implicit backward.
    /// - Parameter upstream: `G = ∂ℓ/∂P`, `[B·S, n, n]`.
    public func implicitGradient(upstream: Tensor, workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> Tensor {
        try scoresGradient(fromSampleGradient: Sinkhorn.implicitGradient(result, upstream: upstream, workspace: workspace))
    }
}

/// Gumbel-Sinkhorn sampling (Mena et al. 2018, §3, "Gumbel-Sinkhorn networks").
public enum GumbelSinkhorn {
    /// Draws `S((X + noiseFactor · g)/τ)` with `g` standard Gumbel, `samplesPerExample` times per
    /// example.
    ///
    /// `g = −log(−log(u + ε) + ε)`, `u ~ U(0, 1)`, `ε = 1e-20` (the reference code), drawn from
    /// `generator` in output order (matrix by matrix, row-major); no numbers are drawn when
    /// `noiseFactor` is 0, as at evaluation.
    ///
    /// - Parameters:
    ///   - scores: `X`, `[n, n]` or `[B, n, n]`.
    ///   - temperature: `τ > 0`.
    ///   - noiseFactor: the scale of the noise, `≥ 0`.
    ///   - samplesPerExample: `S ≥ 1`.
    ///   - iterations, tolerance, checkInterval, recordsHistory, workspace: as in `Sinkhorn.forward`.
    ///   - generator: the source of the noise.
    /// - Returns: the Sinkhorn result of the `[B·S, n, n]` perturbed scores, the noise and the scores.
    /// - Throws: `SinkhornError` as `Sinkhorn.forward`, plus `.invalidSampleCount`, `.invalidNoiseFactor`.
    public static func sample(_ scores: Tensor, temperature: Float, noiseFactor: Float = 1,
                              samplesPerExample: Int = 1, iterations: Int = 20, tolerance: Float? = nil,
                              checkInterval: Int = 1, recordsHistory: Bool = false,
                              generator: inout SeededGenerator,
                              workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> GumbelSinkhornSample {
        let noise = try noise(for: scores, noiseFactor: noiseFactor, samplesPerExample: samplesPerExample,
                              generator: &generator)
        return try sample(scores, noise: noise, temperature: temperature, noiseFactor: noiseFactor,
                          samplesPerExample: samplesPerExample, iterations: iterations, tolerance: tolerance,
                          checkInterval: checkInterval, recordsHistory: recordsHistory, workspace: workspace)
    }

    /// Standard Gumbel noise `[B·S, n, n]` for `S` samples of every example of `scores`, drawn in
    /// row-major order (all zeros, and no draws, when `noiseFactor` is 0).
    /// - Throws: ``SinkhornError`` for a non-square or empty batch, a sample count below 1 or a
    ///   negative or non-finite noise factor.
    public static func noise(for scores: Tensor, noiseFactor: Float, samplesPerExample: Int,
                             generator: inout SeededGenerator) throws(SinkhornError) -> Tensor {
        let (batch, rows, columns) = try Sinkhorn.batchShape(scores.shape)
        guard rows == columns else { throw .invalidShape(shape: scores.shape) }
        guard samplesPerExample >= 1 else { throw .invalidSampleCount(samplesPerExample) }
        guard noiseFactor.isFinite, noiseFactor >= 0 else { throw .invalidNoiseFactor(noiseFactor) }
        var noise = Tensor(shape: [batch * samplesPerExample, rows, columns])
        if noiseFactor != 0 {
            noise.withUnsafeMutableBufferPointer { g in
                for index in 0..<g.count { g[index] = generator.nextGumbel() }
            }
        }
        return noise
    }

    /// One Gumbel-Sinkhorn sample per noise matrix: `S((X + noiseFactor · g)/τ)` with given standard
    /// Gumbel noise `g` `[B·S, n, n]`.
    /// - Throws: ``SinkhornError`` for mismatched shapes or settings, and the forward's errors.
    public static func sample(_ scores: Tensor, noise: Tensor, temperature: Float, noiseFactor: Float = 1,
                              samplesPerExample: Int = 1, iterations: Int = 20, tolerance: Float? = nil,
                              checkInterval: Int = 1, recordsHistory: Bool = false,
                              workspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> GumbelSinkhornSample {
        let (batch, rows, columns) = try Sinkhorn.batchShape(scores.shape)
        guard rows == columns else { throw .invalidShape(shape: scores.shape) }
        guard samplesPerExample >= 1 else { throw .invalidSampleCount(samplesPerExample) }
        guard noiseFactor.isFinite, noiseFactor >= 0 else { throw .invalidNoiseFactor(noiseFactor) }
        let shape = [batch * samplesPerExample, rows, columns]
        guard noise.shape == shape else { throw .shapeMismatch(expected: shape, found: noise.shape) }
        let perturbed = perturb(scores, noise: noise, noiseFactor: noiseFactor, samplesPerExample: samplesPerExample)
        let result = try Sinkhorn.forward(perturbed, temperature: temperature, iterations: iterations,
                                          tolerance: tolerance, checkInterval: checkInterval,
                                          recordsHistory: recordsHistory, workspace: workspace)
        return GumbelSinkhornSample(result: result, noise: noise, perturbedScores: perturbed,
                                    samplesPerExample: samplesPerExample, scoresShape: scores.shape)
    }

    public static func perturb(_ scores: Tensor, noise: Tensor, noiseFactor: Float, samplesPerExample: Int) -> Tensor {
        let size = scores.rank >= 2 ? scores.shape[scores.rank - 2] * scores.shape[scores.rank - 1] : scores.count
        let batch = size == 0 ? 0 : scores.count / size
        precondition(noise.count == batch * samplesPerExample * size,
                     "noise \(noise.shape) does not hold \(samplesPerExample) samples of scores \(scores.shape)")
        var perturbed = Tensor(shape: noise.shape)
        scores.withUnsafeBufferPointer { x in
            noise.withUnsafeBufferPointer { g in
                perturbed.withUnsafeMutableBufferPointer { y in
                    for example in 0..<batch {
                        for sample in 0..<samplesPerExample {
                            let to = (example * samplesPerExample + sample) * size
                            for index in 0..<size { y[to + index] = x[example * size + index] + noiseFactor * g[to + index] }
                        }
                    }
                }
            }
        }
        return perturbed
    }

    /// Sums per-sample matrices `[B·S, n, n]` over the `S` samples of each example, giving a tensor
    /// of `scoresShape` (`[n, n]` or `[B, n, n]`): the gradient with respect to the scores, since the
    /// noise is additive.
    public static func sumOverSamples(_ perSample: Tensor, scoresShape: [Int], samplesPerExample: Int) -> Tensor {
        var out = Tensor(shape: scoresShape)
        let size = scoresShape.count >= 2 ? scoresShape[scoresShape.count - 2] * scoresShape[scoresShape.count - 1] : out.count
        let examples = size == 0 ? 0 : out.count / size
        precondition(perSample.count == examples * samplesPerExample * size,
                     "per-sample tensor \(perSample.shape) does not hold \(samplesPerExample) samples of \(scoresShape)")
        perSample.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                for example in 0..<examples {
                    for sample in 0..<samplesPerExample {
                        let from = (example * samplesPerExample + sample) * size
                        for index in 0..<size { target[example * size + index] += source[from + index] }
                    }
                }
            }
        }
        return out
    }
}
