import TestSupport
import Sorting
import NeuralNet
import Testing
import TensorKit

@Suite("SortingNetwork")
struct SortingNetworkTests {
    @Test("scores and parameter gradients against Double finite differences")
    func gradients() throws {
        let seed: UInt64 = 51
        var generator = SeededGenerator(seed: seed)
        let configuration = SortingNetworkConfiguration(count: 6, hiddenUnits: 5, inputScale: 2, inputShift: 0.5)
        let network = try SortingNetwork(configuration: configuration, seed: seed)
        #expect(network.namedTensors().mapValues(\.shape) == [
            "fc1.weight": [5, 1], "fc1.bias": [5], "fc2.weight": [6, 5], "fc2.bias": [6],
        ])
        let (batch, n) = (3, 6)
        let numbers = generator.uniform([batch, n])
        func reference(_ t: [String: [Double]]) -> [Double] {
            let x = numbers.doubles.map { ($0 - 0.5) * 2 }
            let h = Reference.relu(Reference.linear(x, rows: batch * n, inputs: 1, weight: t["fc1.weight"]!,
                                                    outputs: 5, bias: t["fc1.bias"]))
            return Reference.linear(h, rows: batch * n, inputs: 5, weight: t["fc2.weight"]!, outputs: n, bias: t["fc2.bias"])
        }
        let tensors = network.namedTensors()
        var doubles = tensors.mapValues(\.doubles)
        let scores = network.forward(numbers)
        #expect(scores.shape == [batch, n, n])
        #expect(Reference.relativeError(scores.doubles, reference(doubles)) < forwardTolerance)
        let upstream = generator.normal(scores.shape)
        network.backward(upstream)
        for parameter in network.parameters {
            let numeric = Reference.gradient(at: doubles[parameter.name]!) { value in
                doubles[parameter.name] = value
                return Reference.dot(upstream.doubles, reference(doubles))
            }
            doubles[parameter.name] = tensors[parameter.name]!.doubles
            #expect(Reference.relativeError(parameter.gradient.doubles, numeric) < gradientTolerance,
                    "\(parameter.name), seed \(seed)")
        }
    }

    @Test("configuration round-trips through metadata and bad metadata is refused")
    func configuration() throws {
        let configuration = SortingNetworkConfiguration(count: 100, hiddenUnits: 64, inputScale: 0.001, inputShift: 1000)
        #expect(try SortingNetworkConfiguration(metadata: configuration.metadata) == configuration)
        let network = try SortingNetwork(configuration: configuration, seed: 1)
        let rebuilt = try SortingNetwork(metadata: configuration.metadata, tensors: network.namedTensors())
        #expect(rebuilt.namedTensors() == network.namedTensors())
        #expect(throws: NeuralNetError.missingMetadata(key: "count")) {
            try SortingNetworkConfiguration(metadata: ["architecture": "sorting-mlp"])
        }
        #expect(throws: NeuralNetError.unsupportedArchitecture("jigsaw-cnn")) {
            try SortingNetworkConfiguration(metadata: ["architecture": "jigsaw-cnn", "count": "5"])
        }
        #expect(throws: NeuralNetError.invalidMetadata(key: "input_scale", value: "inf")) {
            try SortingNetworkConfiguration(metadata: ["architecture": "sorting-mlp", "count": "5", "input_scale": "inf"])
        }
        var tensors = network.namedTensors()
        tensors["fc2.bias"] = Tensor(shape: [99])
        #expect(throws: NeuralNetError.shapeMismatch(tensor: "fc2.bias", expected: [100], found: [99])) {
            try network.load(tensors)
        }
    }

    /// Without first-layer biases, every score of a positive number is `a_j·x + c_j` (c_j the second
    /// layer's bias): scaling a list scales `score − c` exactly, and the metadata round-trips.
    @Test("a first layer without biases gives scores linear in positive inputs")
    func noFirstBiasIsLinear() throws {
        let configuration = SortingNetworkConfiguration(count: 5, hiddenUnits: 7, firstLayerBias: false)
        let network = try SortingNetwork(configuration: configuration, seed: 52)
        #expect(network.namedTensors()["fc1.bias"] == nil)
        #expect(try SortingNetworkConfiguration(metadata: configuration.metadata) == configuration)
        var generator = SeededGenerator(seed: 52)
        let numbers = generator.uniform([2, 5], low: 0.1, high: 3)
        var doubled = numbers
        doubled.withUnsafeMutableBufferPointer { x in for i in 0..<x.count { x[i] *= 2 } }
        let c = network.secondLayer.bias!.value.storage
        let once = network.forward(numbers).storage, twice = network.forward(doubled).storage
        for (index, (a, b)) in zip(once, twice).enumerated() {
            let j = index % 5
            #expect(abs((b - c[j]) - 2 * (a - c[j])) < 1e-4 * Swift.max(1, abs(b)), "seed 52 score \(index)")
        }
        var bad = configuration.metadata
        bad["first_layer_bias"] = "maybe"
        #expect(throws: NeuralNetError.invalidMetadata(key: "first_layer_bias", value: "maybe")) {
            _ = try SortingNetworkConfiguration(metadata: bad)
        }
    }
}
