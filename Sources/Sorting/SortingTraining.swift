import NeuralNet
import Permutations
import TensorKit

/// The hyperparameters of sorting-network training (Mena et al. 2018, §4.1 and the original code).
public struct SortingTrainingSettings: Sendable, Equatable {
    /// `τ` of `S((X + noise)/τ)` (1 in the original code).
    public var temperature: Float
    /// Sinkhorn iterations per forward (10 in the original code).
    public var iterations: Int
    /// The scale of the Gumbel noise (1 in training, 0 at evaluation).
    public var noiseFactor: Float
    /// Gumbel samples per list (5 in the original code).
    public var samplesPerExample: Int
    /// Lists per step (10 in the original code).
    public var batchSize: Int
    /// Adam's learning rate (0.1 in the original code).
    public var learningRate: Float
    /// The Sinkhorn backward.
    public var backward: SinkhornBackward

    public init(temperature: Float = 1, iterations: Int = 10, noiseFactor: Float = 1, samplesPerExample: Int = 5,
                batchSize: Int = 10, learningRate: Float = 0.1, backward: SinkhornBackward = .implicit) {
        self.temperature = temperature
        self.iterations = iterations
        self.noiseFactor = noiseFactor
        self.samplesPerExample = samplesPerExample
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.backward = backward
    }

    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)`` naming the offending setting.
    public func validate() throws {
        guard temperature.isFinite, temperature > 0 else {
            throw NeuralNetError.invalidConfiguration("temperature \(temperature) must be positive and finite")
        }
        guard (1...100_000).contains(iterations) else {
            throw NeuralNetError.invalidConfiguration("iterations \(iterations) not in 1...100000")
        }
        guard noiseFactor.isFinite, noiseFactor >= 0 else {
            throw NeuralNetError.invalidConfiguration("noise factor \(noiseFactor) must be finite and non-negative")
        }
        guard (1...1000).contains(samplesPerExample) else {
            throw NeuralNetError.invalidConfiguration("samples per example \(samplesPerExample) not in 1...1000")
        }
        guard (1...100_000).contains(batchSize) else {
            throw NeuralNetError.invalidConfiguration("batch size \(batchSize) not in 1...100000")
        }
        guard learningRate.isFinite, learningRate > 0 else {
            throw NeuralNetError.invalidConfiguration("learning rate \(learningRate) must be positive and finite")
        }
    }
}

/// What one loss evaluation produced.
public struct SortingStepReport: Sendable {
    /// The mean squared error of the step.
    public var loss: Float
    /// Bytes the backward kept from the forward beyond its output: the tape, the recorded
    /// potentials, or 0 for the implicit backward.
    public var backwardStateBytes: Int
}

/// The sorting loss of Mena et al. 2018, §4.1: the mean squared error between each sorted list and
/// its soft reconstruction `Pᵀ·x`, with `P = S((X + c·g)/τ)` one Gumbel-Sinkhorn sample.
public enum SortingLoss {
    /// Standard Gumbel noise for `samplesPerExample` samples of each of `batch` lists, `[B·S, N, N]`
    /// (matrix `b·S + k` is sample `k` of list `b`), drawn in that order, row-major.
    public static func gumbelNoise(batch: Int, count n: Int, samplesPerExample: Int,
                                   generator: inout SeededGenerator) -> Tensor {
        generator.gumbel([batch * samplesPerExample, n, n])
    }

    /// The loss and `∂loss/∂X` for scores `X` of lists `x`.
    ///
    ///     out[b,k,j] = Σ_i P[b,k,i,j] · x[b,i],   loss = mean_{b,k,j} (out[b,k,j] − sort(x[b])[j])²
    ///
    /// so `∂loss/∂P[b,k,i,j] = 2 (out[b,k,j] − sort(x[b])[j]) · x[b,i] / (B·S·N)`, which the chosen
    /// Sinkhorn backward turns into `∂loss/∂X`, summed over the samples of each list.
    ///
    /// - Parameters:
    ///   - lists: `x`, `[B, N]`.
    ///   - scores: `X`, `[B, N, N]`.
    ///   - noise: standard Gumbel noise `g`, `[B·S, N, N]` (scaled by `settings.noiseFactor` here).
    ///   - settings: temperature, iterations, noise factor, samples per example and backward.
    /// - Returns: the loss, `∂loss/∂X` `[B, N, N]` and the bytes the backward kept.
    /// - Throws: `SinkhornError` from the layer (non-finite scores).
    public static func valueAndScoresGradient(lists: Tensor, scores: Tensor, noise: Tensor,
                                              settings: SortingTrainingSettings,
                                              workspace: SinkhornWorkspace? = nil) throws
        -> (value: Float, scoresGradient: Tensor, backwardStateBytes: Int) {
        precondition(lists.rank == 2, "lists must be [B, N], got \(lists.shape)")
        let (batch, n) = (lists.shape[0], lists.shape[1])
        let samples = settings.samplesPerExample
        precondition(scores.shape == [batch, n, n], "scores \(scores.shape) vs lists \(lists.shape)")
        precondition(noise.shape == [batch * samples, n, n], "noise \(noise.shape) vs [\(batch * samples), \(n), \(n)]")
        let step = try GumbelSinkhornStep(scores, noise: noise, temperature: settings.temperature,
                                          noiseFactor: settings.noiseFactor, samplesPerExample: samples,
                                          iterations: settings.iterations, backward: settings.backward,
                                          workspace: workspace)
        let (value, upstream) = reconstructionLoss(lists: lists, matrices: step.matrices, samples: samples)
        let gradient = try step.scoresGradient(upstream: upstream, workspace: workspace)
        return (value, gradient, step.backwardStateBytes)
    }

    /// The mean squared error of `Pᵀx` against the sorted lists and `∂loss/∂P`.
    static func reconstructionLoss(lists: Tensor, matrices: Tensor, samples: Int) -> (Float, Tensor) {
        let (batch, n) = (lists.shape[0], lists.shape[1])
        let size = n * n
        var upstream = Tensor(shape: matrices.shape)
        var total = 0.0
        let divisor = Float(batch * samples * n)
        var output = [Float](repeating: 0, count: n)
        lists.withUnsafeBufferPointer { x in
            matrices.withUnsafeBufferPointer { p in
                upstream.withUnsafeMutableBufferPointer { g in
                    for list in 0..<batch {
                        let values = x.baseAddress! + list * n
                        let sorted = UnsafeBufferPointer(start: values, count: n).sorted()
                        for sample in 0..<samples {
                            let offset = (list * samples + sample) * size
                            for j in 0..<n { output[j] = 0 }
                            for i in 0..<n {
                                let row = p.baseAddress! + offset + i * n
                                let xi = values[i]
                                for j in 0..<n { output[j] += row[j] * xi }
                            }
                            for j in 0..<n {
                                let difference = output[j] - sorted[j]
                                total += Double(difference) * Double(difference)
                                output[j] = 2 * difference / divisor
                            }
                            for i in 0..<n {
                                let row = g.baseAddress! + offset + i * n
                                let xi = values[i]
                                for j in 0..<n { row[j] = output[j] * xi }
                            }
                        }
                    }
                }
            }
        }
        return (Float(total / Double(divisor)), upstream)
    }
}

extension SortingNetwork {
    /// Runs the network and the loss on `lists` with the given noise and accumulates the parameter
    /// gradients (the caller zeroes them).
    ///
    /// - Parameters:
    ///   - lists: `[B, N]`.
    ///   - noise: standard Gumbel noise `[B·S, N, N]` (``SortingLoss/gumbelNoise(batch:count:samplesPerExample:generator:)``).
    /// - Throws: `SinkhornError` if the scores are not finite.
    @discardableResult
    public func accumulateLossGradient(lists: Tensor, noise: Tensor, settings: SortingTrainingSettings,
                                       workspace: SinkhornWorkspace? = nil) throws -> SortingStepReport {
        let scores = forward(lists)
        let (value, scoresGradient, bytes) = try SortingLoss.valueAndScoresGradient(
            lists: lists, scores: scores, noise: noise, settings: settings, workspace: workspace)
        backward(scoresGradient)
        return SortingStepReport(loss: value, backwardStateBytes: bytes)
    }
}

/// Trains a ``SortingNetwork`` on fresh `U(0, 1)` lists every step (Mena et al. 2018, §4.1), with
/// Adam and Gumbel-Sinkhorn samples, every draw from one seeded generator.
public final class SortingTrainer {
    public let network: SortingNetwork
    public let optimiser: Adam
    public let settings: SortingTrainingSettings
    /// The source of the lists and the noise.
    public private(set) var generator: SeededGenerator
    private let workspace = SinkhornWorkspace()

    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)`` for bad settings.
    public init(network: SortingNetwork, settings: SortingTrainingSettings, seed: UInt64) throws {
        try settings.validate()
        self.network = network
        self.settings = settings
        optimiser = Adam(parameters: network.parameters, learningRate: settings.learningRate)
        generator = SeededGenerator(seed: seed)
    }

    /// Fresh `U(0, 1)` lists `[B, N]` from the trainer's generator.
    public func drawLists() -> Tensor {
        generator.uniform([settings.batchSize, network.configuration.count])
    }

    /// One step: fresh lists and noise, the loss gradient, one Adam update.
    ///
    /// - Throws: `SinkhornError` if the scores stop being finite (a diverged run).
    @discardableResult
    public func step() throws -> SortingStepReport {
        let lists = drawLists()
        let noise = settings.noiseFactor == 0
            ? Tensor(shape: [settings.batchSize * settings.samplesPerExample, network.configuration.count,
                             network.configuration.count])
            : SortingLoss.gumbelNoise(batch: settings.batchSize, count: network.configuration.count,
                                      samplesPerExample: settings.samplesPerExample, generator: &generator)
        optimiser.zeroGradients()
        let report = try network.accumulateLossGradient(lists: lists, noise: noise, settings: settings,
                                                        workspace: workspace)
        optimiser.step()
        return report
    }
}
