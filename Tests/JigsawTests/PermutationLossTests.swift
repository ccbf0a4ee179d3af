import Foundation
import Jigsaw
import NeuralNet
import Permutations
import Testing
import TensorKit

/// The permutation cross-entropy, checked in value against its definition and in gradient, through
/// the Sinkhorn backward, against central differences of an independent Double Sinkhorn.
@Suite struct PermutationLossTests {
    /// `S(X/τ)` in Double: `iterations` rounds of row then column log-normalisation.
    static func referenceSinkhorn(_ x: [Double], n: Int, tau: Double, iterations: Int) -> [Double] {
        var a = x.map { $0 / tau }
        func logSumExp(_ values: [Double]) -> Double {
            let m = values.max()!
            return m + Foundation.log(values.map { Foundation.exp($0 - m) }.reduce(0, +))
        }
        for _ in 0..<iterations {
            for i in 0..<n {
                let l = logSumExp((0..<n).map { a[i * n + $0] })
                for j in 0..<n { a[i * n + j] -= l }
            }
            for j in 0..<n {
                let l = logSumExp((0..<n).map { a[$0 * n + j] })
                for i in 0..<n { a[i * n + j] -= l }
            }
        }
        return a.map { Foundation.exp($0) }
    }

    @Test func valueAndGradientThroughSinkhornMatchFiniteDifferences() throws {
        let (batch, n, tau, iterations) = (2, 4, 0.7, 15)
        var generator = SeededGenerator(seed: 41)
        let scores = generator.normal([batch, n, n])
        let permutations = (0..<batch).flatMap { _ in generator.permutation(n) }
        let weight: Float = 1.5
        let result = try Sinkhorn.forward(scores, temperature: Float(tau), iterations: iterations, recordsHistory: true)
        var upstream = Tensor(shape: [batch, n, n])
        let loss = ReconstructionLoss.permutationCrossEntropy(
            matrices: result.matrix, permutations: permutations, puzzles: batch, samplesPerExample: 1,
            weight: weight, upstream: &upstream)

        func reference(_ x: [Double]) -> Double {
            var total = 0.0
            for b in 0..<batch {
                let p = Self.referenceSinkhorn(Array(x[(b * n * n)..<((b + 1) * n * n)]), n: n, tau: tau,
                                               iterations: iterations)
                for i in 0..<n { total -= Double(weight) * Foundation.log(p[i * n + permutations[b * n + i]]) }
            }
            return total
        }
        let x = scores.storage.map(Double.init)
        #expect(abs(loss - reference(x)) < 1e-4 * max(1, abs(loss)), "loss \(loss) vs \(reference(x))")
        let gradient = try Sinkhorn.unrolledGradient(result, scores: scores, upstream: upstream)
        let step = 1e-5
        for k in 0..<x.count {
            var plus = x, minus = x
            plus[k] += step
            minus[k] -= step
            let numeric = (reference(plus) - reference(minus)) / (2 * step)
            #expect(abs(Double(gradient.storage[k]) - numeric) < 2e-3 * max(1, abs(numeric)),
                    "∂/∂X[\(k)]: \(gradient.storage[k]) vs \(numeric)")
        }
    }

    @Test func aSoftPermutationThatUnderflowsGivesAFiniteLossAndGradient() {
        // Piece 0 sits with certainty in the wrong cell: P[0, π(0)] = 0.
        let matrix = Tensor(shape: [1, 2, 2], storage: [0, 1, 1, 0])
        var upstream = Tensor(shape: [1, 2, 2])
        let loss = ReconstructionLoss.permutationCrossEntropy(
            matrices: matrix, permutations: [0, 1], puzzles: 1, samplesPerExample: 1, weight: 1, upstream: &upstream)
        #expect(loss.isFinite && loss > 80)
        #expect(upstream.storage.allSatisfy { $0.isFinite })
    }

    @Test func trainingOnThePermutationLossAloneLowersItAndSolvesHeldOutPuzzles() throws {
        let digits = try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
        let training = ImageDataset.slice(digits, 0..<200)
        let heldOut = ImageDataset.slice(digits, 200..<300)
        let configuration = JigsawTrainingConfiguration(
            network: JigsawNetworkConfiguration(grid: 2, hiddenChannels: 8), learningRate: 3e-3, batchSize: 20,
            epochs: 6, seed: 11, threads: 1, validationSize: 0, reconstructionWeight: 0, permutationWeight: 1)
        #expect(configuration.metadata["train.loss"] == "permutation_ce")
        let trainer = try JigsawTrainer(configuration: configuration, training: training)
        let (firstEpochLoss, lastEpochLoss) = try trainRecordingEpochLosses(trainer)
        let after = try JigsawEvaluator.evaluate(network: trainer.network, dataset: heldOut, seed: 5)
        #expect(lastEpochLoss < 0.5 * firstEpochLoss, "loss \(firstEpochLoss) → \(lastEpochLoss)")
        #expect(after.propWrong < 0.15, "trained prop. wrong \(after.propWrong)")
    }

    @Test func lossWeightsAreValidated() {
        for (reconstruction, permutation) in [(Float(0), Float(0)), (-1, 1), (1, .nan)] {
            let configuration = JigsawTrainingConfiguration(reconstructionWeight: reconstruction,
                                                            permutationWeight: permutation)
            #expect(throws: JigsawTrainingError.self) { try configuration.validate() }
        }
    }
}
