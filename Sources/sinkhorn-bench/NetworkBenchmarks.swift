import Foundation
import NeuralNet
import TensorKit

/// The tutorial network at grid 2 on a batch of 64 MNIST-sized puzzles (256 pieces of 14×14).
private func tutorialNetworkSetup(batch: Int) -> (network: JigsawNetwork, pieces: Tensor, gradient: Tensor)? {
    guard let network = try? JigsawNetwork(configuration: JigsawNetworkConfiguration(), seed: 1) else { return nil }
    var generator = SeededGenerator(seed: 2)
    let pieces = generator.normal(network.inputShape(batch: batch))
    let gradient = generator.normal([batch, 4, 4])
    return (network, pieces, gradient)
}

let networkBenchmarks: [Benchmark] = [
    Benchmark(op: "jigsaw_forward") {
        let batch = 64
        guard let (network, pieces, _) = tutorialNetworkSetup(batch: batch) else { return }
        if let t = ProcessInfo.processInfo.environment["NN_THREADS"].flatMap(Int.init) { network.threadCount = t }
        network.isTraining = false
        let ms = medianMilliseconds(budget: 2) { _ = network.forward(pieces) }
        emit(["op": "jigsaw_forward", "grid": 2, "batch": batch, "pieces": batch * 4,
              "threads": network.threadCount, "ms": ms])
    },
    Benchmark(op: "jigsaw_forward_backward") {
        let batch = 64
        guard let (network, pieces, gradient) = tutorialNetworkSetup(batch: batch) else { return }
        if let t = ProcessInfo.processInfo.environment["NN_THREADS"].flatMap(Int.init) { network.threadCount = t }
        let optimiser = Adam(parameters: network.parameters, learningRate: 1e-4)
        let ms = medianMilliseconds(budget: 3) {
            optimiser.zeroGradients()
            _ = network.forward(pieces)
            network.backward(gradient)
            optimiser.step()
        }
        emit(["op": "jigsaw_forward_backward", "grid": 2, "batch": batch, "pieces": batch * 4,
              "threads": network.threadCount, "ms": ms, "images_per_s": Double(batch) / ms * 1000])
    },
]
