import NeuralNet
import TensorKit
import Testing

/// A network with several score heads (Mena et al. 2018, §4.3) against single-head networks that
/// hold one head's weights each: the same scores, and gradients only in the heads that were used.
@Suite struct ScoreHeadsTests {
    let base = JigsawNetworkConfiguration(grid: 2, imageSize: 8, hiddenChannels: 4, kernelSize: 3, hiddenUnits: 6)

    func pieces(_ batch: Int, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        let shape = [batch, 4, 1, 4, 4]
        return Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in generator.nextUniform() * 2 - 1 })
    }

    /// The single-head network whose output layer is rows `k·n ..< (k+1)·n` of `network`'s.
    func singleHead(of network: JigsawNetwork, head k: Int) throws -> JigsawNetwork {
        let single = try JigsawNetwork(configuration: base)
        var tensors = network.namedTensors()
        let n = base.pieceCount, inputs = base.hiddenUnits
        let weight = tensors["g_2.2.weight"]!
        tensors["g_2.2.weight"] = Tensor(shape: [n, inputs], storage: Array(weight.storage[(k * n * inputs)..<((k + 1) * n * inputs)]))
        try single.load(tensors)
        return single
    }

    @Test func eachPuzzleIsScoredByItsOwnHead() throws {
        var configuration = base
        configuration.scoreHeads = 3
        let network = try JigsawNetwork(configuration: configuration, seed: 5)
        #expect(network.outputLayer.weight.shape == [3 * 4, 6])
        network.isTraining = false
        let input = pieces(4, seed: 1)
        let heads = [2, 0, 1, 2]
        let scores = network.forward(input, heads: heads)
        #expect(scores.shape == [4, 4, 4])
        for k in 0..<3 {
            let single = try singleHead(of: network, head: k)
            single.isTraining = false
            let reference = single.forward(input)
            for (b, head) in heads.enumerated() where head == k {
                let slice = (b * 16)..<((b + 1) * 16)
                for index in slice { #expect(abs(scores.storage[index] - reference.storage[index]) < 1e-5) }
            }
        }
        // Without heads, every puzzle takes head 0.
        let zero = network.forward(input)
        let single = try singleHead(of: network, head: 0)
        single.isTraining = false
        let reference = single.forward(input)
        for index in 0..<zero.count { #expect(abs(zero.storage[index] - reference.storage[index]) < 1e-5) }
    }

    @Test func gradientsReachOnlyTheHeadsUsed() throws {
        var configuration = base
        configuration.scoreHeads = 3
        let network = try JigsawNetwork(configuration: configuration, seed: 7)
        network.isTraining = false
        let input = pieces(2, seed: 2)
        let heads = [2, 2]
        var generator = SeededGenerator(seed: 3)
        let upstream = Tensor(shape: [2, 4, 4], storage: (0..<32).map { _ in generator.nextUniform() - 0.5 })
        func loss() -> Double {
            let scores = network.forward(input, heads: heads)
            return zip(scores.storage, upstream.storage).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        network.zeroGradients()
        _ = network.forward(input, heads: heads)
        network.backward(upstream)
        let weight = network.outputLayer.weight
        let rows = 4 * 6
        // Heads 0 and 1 took no part.
        #expect(weight.gradient.storage[0..<(2 * rows)].allSatisfy { $0 == 0 })
        // Head 2's gradient and the first layer's against central differences.
        for (parameter, index) in [(weight, 2 * rows + 5), (weight, 2 * rows + 17), (network.convolutions[0].weight, 3)] {
            let original = parameter.value.storage[index]
            let step: Float = 1e-2
            parameter.value.storage[index] = original + step
            let up = loss()
            parameter.value.storage[index] = original - step
            let down = loss()
            parameter.value.storage[index] = original
            let numeric = (up - down) / (2 * Double(step))
            let analytic = Double(parameter.gradient.storage[index])
            #expect(abs(numeric - analytic) <= 2e-3 + 1e-2 * abs(numeric), "\(parameter.name)[\(index)]: \(analytic) vs \(numeric)")
        }
    }

    @Test func metadataCarriesTheHeadCount() throws {
        #expect(base.metadata["score_heads"] == nil)
        #expect(try JigsawNetworkConfiguration(metadata: base.metadata).scoreHeads == 1)
        var configuration = base
        configuration.scoreHeads = 10
        #expect(configuration.metadata["score_heads"] == "10")
        #expect(try JigsawNetworkConfiguration(metadata: configuration.metadata) == configuration)
        var bad = configuration.metadata
        bad["score_heads"] = "0"
        #expect(throws: NeuralNetError.self) { try JigsawNetworkConfiguration(metadata: bad) }
        bad["score_heads"] = "ten"
        #expect(throws: NeuralNetError.self) { try JigsawNetworkConfiguration(metadata: bad) }
    }
}
