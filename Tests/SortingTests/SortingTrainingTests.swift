import TestSupport
import Sorting
import Foundation
import NeuralNet
import Permutations
import Testing
import TensorKit

/// A Double-precision reference of the whole sorting loss: the MLP, the plain log-domain Sinkhorn
/// loop (explicit row and column log-sum-exps) and the mean squared error of `Pᵀx`.
private enum SortingReference {
    static func logSumExp(_ values: [Double]) -> Double {
        let top = values.max()!
        return top + log(values.reduce(0) { $0 + exp($1 - top) })
    }

    static func sinkhorn(_ x: [Double], n: Int, temperature: Double, iterations: Int) -> [Double] {
        var l = x.map { $0 / temperature }
        for _ in 0..<iterations {
            for i in 0..<n {
                let shift = logSumExp(Array(l[(i * n)..<(i * n + n)]))
                for j in 0..<n { l[i * n + j] -= shift }
            }
            for j in 0..<n {
                let shift = logSumExp((0..<n).map { l[$0 * n + j] })
                for i in 0..<n { l[i * n + j] -= shift }
            }
        }
        return l.map { exp($0) }
    }

    static func loss(parameters t: [String: [Double]], lists: [Double], noise: [Double], batch: Int, n: Int,
                     hidden: Int, samples: Int, settings: SortingTrainingSettings) -> Double {
        let h = Reference.relu(Reference.linear(lists, rows: batch * n, inputs: 1, weight: t["fc1.weight"]!,
                                                outputs: hidden, bias: t["fc1.bias"]))
        let scores = Reference.linear(h, rows: batch * n, inputs: hidden, weight: t["fc2.weight"]!, outputs: n,
                                      bias: t["fc2.bias"])
        var total = 0.0
        for b in 0..<batch {
            let x = Array(lists[(b * n)..<(b * n + n)])
            let sorted = x.sorted()
            for k in 0..<samples {
                let offset = (b * samples + k) * n * n
                let perturbed = (0..<(n * n)).map {
                    scores[b * n * n + $0] + Double(settings.noiseFactor) * noise[offset + $0]
                }
                let p = sinkhorn(perturbed, n: n, temperature: Double(settings.temperature),
                                 iterations: settings.iterations)
                for j in 0..<n {
                    let out = (0..<n).reduce(0.0) { $0 + p[$1 * n + j] * x[$1] }
                    total += (out - sorted[j]) * (out - sorted[j])
                }
            }
        }
        return total / Double(batch * samples * n)
    }
}

@Suite("Sorting network training")
struct SortingTrainingTests {
    /// The parameter gradients of the full loss (network → Gumbel-Sinkhorn → MSE) against central
    /// differences of the Double reference. The unrolled and tape backwards differentiate the
    /// iterations exactly; the implicit one is exact at the fixed point, so it runs 300 iterations.
    @Test(arguments: [(SinkhornBackward.unrolled, 4), (.tape, 4), (.implicit, 300)])
    func lossGradientMatchesFiniteDifferences(backward: SinkhornBackward, iterations: Int) throws {
        let seed: UInt64 = 61
        let (batch, n, hidden, samples) = (2, 4, 3, 2)
        let network = try SortingNetwork(configuration: SortingNetworkConfiguration(count: n, hiddenUnits: hidden),
                                         seed: seed)
        var generator = SeededGenerator(seed: seed)
        let lists = generator.uniform([batch, n])
        let noise = SortingLoss.gumbelNoise(batch: batch, count: n, samplesPerExample: samples, generator: &generator)
        let settings = SortingTrainingSettings(temperature: 0.9, iterations: iterations, noiseFactor: 0.5,
                                               samplesPerExample: samples, backward: backward)
        network.zeroGradients()
        let report = try network.accumulateLossGradient(lists: lists, noise: noise, settings: settings)
        let tensors = network.namedTensors()
        var doubles = tensors.mapValues(\.doubles)
        let reference = { (t: [String: [Double]]) in
            SortingReference.loss(parameters: t, lists: lists.doubles, noise: noise.doubles, batch: batch, n: n,
                                  hidden: hidden, samples: samples, settings: settings)
        }
        #expect(abs(Double(report.loss) - reference(doubles)) < 1e-5 * max(1, reference(doubles)), "seed \(seed)")
        for parameter in network.parameters {
            let numeric = Reference.gradient(at: doubles[parameter.name]!) { value in
                doubles[parameter.name] = value
                return reference(doubles)
            }
            doubles[parameter.name] = tensors[parameter.name]!.doubles
            let error = Reference.relativeError(parameter.gradient.doubles, numeric)
            #expect(error < gradientTolerance, "\(backward) \(parameter.name), seed \(seed): relative error \(error)")
        }
    }

    /// With a converged forward pass the implicit and unrolled backwards give nearly the same
    /// gradient, hence nearly the same Adam update.
    @Test func implicitAndUnrolledStepsAgreeWhenConverged() throws {
        let seed: UInt64 = 62
        var updates: [SinkhornBackward: [String: Tensor]] = [:]
        var gradients: [SinkhornBackward: [Double]] = [:]
        for backward in [SinkhornBackward.implicit, .unrolled] {
            let network = try SortingNetwork(configuration: SortingNetworkConfiguration(count: 12), seed: seed)
            let before = network.namedTensors()
            let settings = SortingTrainingSettings(iterations: 300, backward: backward)
            let trainer = try SortingTrainer(network: network, settings: settings, seed: seed)
            try trainer.step()
            gradients[backward] = network.parameters.flatMap(\.gradient.doubles)
            updates[backward] = network.namedTensors().merging(before) { after, start in
                Tensor(shape: after.shape, storage: zip(after.storage, start.storage).map { $0 - $1 })
            }
        }
        let error = Reference.relativeError(gradients[.implicit]!, gradients[.unrolled]!)
        #expect(error < 1e-3, "seed \(seed): gradients differ by \(error)")
        // Sinkhorn is invariant to adding a constant to a column, so `fc2.bias` has no gradient
        // (rounding only, which Adam's first step would scale up to ±lr): it is checked as zero.
        let biasGradient = gradients[.unrolled]!.suffix(12).map(abs).max() ?? 0
        #expect(biasGradient < 1e-6, "seed \(seed): fc2.bias gradient \(biasGradient)")
        for (name, update) in updates[.implicit]! where name != "fc2.bias" {
            let other = updates[.unrolled]![name]!
            let scale = max(other.storage.map(abs).max() ?? 0, 1e-12)
            #expect(update.maxAbsDifference(other) / scale < 0.05, "seed \(seed): update of \(name)")
        }
    }

    /// A short seeded run at N = 5 sorts held-out lists far better than chance (a random
    /// permutation puts 4/5 of the numbers in a wrong slot and almost every list has an error).
    @Test func shortTrainingRunSorts() throws {
        let seed: UInt64 = 63
        let network = try SortingNetwork(configuration: SortingNetworkConfiguration(count: 5), seed: seed)
        let trainer = try SortingTrainer(network: network, settings: SortingTrainingSettings(backward: .unrolled),
                                         seed: seed)
        for _ in 0..<600 { try trainer.step() }
        let result = try SortingEvaluation.evaluate(network, on: SortingTestDistribution(low: 0, high: 1),
                                                    lists: 500, seed: seed + 1)
        #expect(result.proportionWrong < 0.1, "seed \(seed): prop. wrong \(result.proportionWrong)")
        #expect(result.proportionAnyWrong < 0.3, "seed \(seed): prop. any wrong \(result.proportionAnyWrong)")
        #expect(result.kendallTau > 0.9, "seed \(seed): Kendall tau \(result.kendallTau)")

        // Slot reordering: an ordered network is left alone; exchanging two output units (rows of
        // fc2) is detected and undone exactly.
        let trained = network.namedTensors()
        #expect(try network.reorderOutputSlots(lists: 300, seed: seed + 2) == Array(0..<5))
        #expect(network.namedTensors() == trained)
        var swapped = trained
        let hidden = network.configuration.hiddenUnits
        for k in 0..<hidden {
            swapped["fc2.weight"]!.storage.swapAt(1 * hidden + k, 3 * hidden + k)
        }
        swapped["fc2.bias"]!.storage.swapAt(1, 3)
        try network.load(swapped)
        let broken = try SortingEvaluation.evaluate(network, on: SortingTestDistribution(low: 0, high: 1),
                                                    lists: 200, seed: seed + 1)
        #expect(broken.proportionWrong > 0.3, "seed \(seed): swapped slots still sort (\(broken.proportionWrong))")
        #expect(try network.reorderOutputSlots(lists: 300, seed: seed + 2) == [0, 3, 2, 1, 4])
        #expect(network.namedTensors() == trained, "seed \(seed)")
    }

    @Test func truthOfTiedNumbersFollowsThePrediction() {
        #expect(SortingEvaluation.truth(of: [0.5, 0.2, 0.9]) == [1, 0, 2])
        #expect(SortingEvaluation.truth(of: [0.5, 0.2, 0.5]) == [1, 0, 2])
        #expect(SortingEvaluation.truth(of: [0.5, 0.2, 0.5], prediction: [2, 0, 1]) == [2, 0, 1])
        // A prediction outside the tie group leaves that number the group's free slot.
        #expect(SortingEvaluation.truth(of: [0.5, 0.2, 0.5], prediction: [0, 2, 1]) == [2, 0, 1])
        #expect(SortingEvaluation.truth(of: [3, 3, 3, 1], prediction: [3, 1, 1, 0]) == [3, 1, 2, 0])
    }

    @Test func listNormalisationMakesScoresInvariantToShiftAndScale() throws {
        let configuration = SortingNetworkConfiguration(count: 6, inputNormalisation: .listMinMax)
        let network = try SortingNetwork(configuration: configuration, seed: 64)
        var generator = SeededGenerator(seed: 64)
        let lists = generator.uniform([3, 6])
        let moved = Tensor(shape: [3, 6], storage: lists.storage.map { 100 + 4 * $0 })
        // The affine map is exact up to a few ulps of 100 after normalising.
        #expect(network.forward(lists).maxAbsDifference(network.forward(moved)) < 1e-3, "seed 64")
        #expect(try SortingNetworkConfiguration(metadata: configuration.metadata) == configuration)
        #expect(throws: NeuralNetError.invalidMetadata(key: "input_normalisation", value: "zscore")) {
            try SortingNetworkConfiguration(metadata: ["architecture": "sorting-mlp", "count": "5",
                                                       "input_normalisation": "zscore"])
        }
        let constant = network.forward(Tensor(shape: [1, 6], repeating: 7))
        #expect(constant.storage.allSatisfy { $0.isFinite })
    }

    @Test func badSettingsAreRefused() throws {
        let network = try SortingNetwork(configuration: SortingNetworkConfiguration(count: 4), seed: 1)
        for settings in [SortingTrainingSettings(temperature: 0), SortingTrainingSettings(iterations: 0),
                         SortingTrainingSettings(noiseFactor: -1), SortingTrainingSettings(samplesPerExample: 0),
                         SortingTrainingSettings(batchSize: 0), SortingTrainingSettings(learningRate: .nan)] {
            #expect(throws: NeuralNetError.self) { try SortingTrainer(network: network, settings: settings, seed: 1) }
        }
    }
}
