import Foundation
import NeuralNet
import Testing
import TensorKit

/// `DigitClassifier`: the cross-entropy against a hand computation, and every parameter's gradient
/// against central differences of the loss (in Float, on a small network and inputs chosen away
/// from ReLU and max-pool ties).
@Suite struct DigitClassifierTests {
    @Test func crossEntropyByHand() {
        // Two rows: logits (0, ln 3) with label 1 → p = (1/4, 3/4), loss −ln(3/4);
        // logits (2, 2) with label 0 → p = (1/2, 1/2), loss ln 2.
        let logits = Tensor(shape: [2, 2], storage: [0, Float(log(3.0)), 2, 2])
        let (loss, gradient) = DigitClassifier.crossEntropy(logits: logits, labels: [1, 0])
        let want = (-log(0.75) + log(2.0)) / 2
        #expect(abs(Double(loss) - want) < 1e-6)
        let expected: [Float] = [0.25 / 2, -0.25 / 2, -0.5 / 2, 0.5 / 2]
        for (got, value) in zip(gradient.storage, expected) { #expect(abs(got - value) < 1e-6) }
    }

    @Test func gradientsMatchCentralDifferences() {
        var rng = SeededGenerator(seed: 1800)
        let configuration = DigitClassifierConfiguration(firstChannels: 2, secondChannels: 3, hidden: 5, classes: 4, side: 8)
        let classifier = DigitClassifier(configuration, generator: &rng)
        let images = rng.uniform([3, 1, 8, 8])
        let labels = [0, 3, 2]
        func loss() -> Double {
            Double(DigitClassifier.crossEntropy(logits: classifier.forward(images), labels: labels).loss)
        }
        classifier.zeroGradients()
        let (_, gradient) = DigitClassifier.crossEntropy(logits: classifier.forward(images), labels: labels)
        classifier.backward(gradient)
        var checked = 0
        for parameter in classifier.parameters {
            let analytic = parameter.gradient.storage
            for index in stride(from: 0, to: parameter.value.count, by: Swift.max(1, parameter.value.count / 6)) {
                let original = parameter.value.storage[index]
                let h: Float = 2e-3
                parameter.value.storage[index] = original + h
                let plus = loss()
                parameter.value.storage[index] = original - h
                let minus = loss()
                parameter.value.storage[index] = original
                let numeric = (plus - minus) / Double(2 * h)
                #expect(abs(numeric - Double(analytic[index])) < 2e-3 + 2e-2 * abs(numeric),
                        "seed 1800 \(parameter.name)[\(index)]: \(analytic[index]) vs \(numeric)")
                checked += 1
            }
        }
        #expect(checked > 30)
    }

    @Test func configurationRoundTripsThroughMetadata() throws {
        let configuration = DigitClassifierConfiguration(firstChannels: 8, secondChannels: 16, hidden: 32, classes: 10, side: 28)
        #expect(try DigitClassifierConfiguration(metadata: configuration.metadata) == configuration)
        var other = configuration.metadata
        other["architecture"] = "gumbel-sinkhorn-jigsaw-v1"
        #expect(throws: NeuralNetError.unsupportedArchitecture("gumbel-sinkhorn-jigsaw-v1")) {
            _ = try DigitClassifierConfiguration(metadata: other)
        }
        var bad = configuration.metadata
        bad["classifier.side"] = "30"
        #expect(throws: NeuralNetError.self) { _ = try DigitClassifierConfiguration(metadata: bad) }
    }
}
