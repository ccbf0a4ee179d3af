import Foundation
import NeuralNet
import TensorKit

/// The tutorial network at grid 2 on `batch` MNIST-sized puzzles (4 pieces of 14×14 each), with
/// seeded normal inputs and upstream gradients.
private func tutorialNetworkSetup(batch: Int) -> (network: JigsawNetwork, pieces: Tensor, gradient: Tensor)? {
    guard let network = try? JigsawNetwork(configuration: JigsawNetworkConfiguration(), seed: 1) else { return nil }
    var generator = SeededGenerator(seed: 2)
    let pieces = generator.normal(network.inputShape(batch: batch))
    let gradient = generator.normal([batch, 4, 4])
    return (network, pieces, gradient)
}

/// One worker and every available processor (when more than one).
private var threadCounts: [Int] {
    let available = ProcessInfo.processInfo.activeProcessorCount
    return available > 1 ? [1, available] : [1]
}

let networkBenchmarks: [Benchmark] = [
    // Evaluation-mode forward pass (network scores only, no matching), per call.
    Benchmark(op: "jigsaw_forward") {
        for batch in [1, 64] {
            for threads in threadCounts {
                guard let (network, pieces, _) = tutorialNetworkSetup(batch: batch) else { return }
                network.isTraining = false
                network.threadCount = threads
                let ms = medianMilliseconds(budget: 1) { _ = network.forward(pieces) }
                emit(["op": "jigsaw_forward", "grid": 2, "batch": batch, "pieces": batch * 4,
                      "threads": threads, "ms": ms])
            }
        }
    },
    // One training step of the network alone: zero gradients, forward, backward from a fixed
    // score gradient, Adam update (no Sinkhorn, no loss).
    Benchmark(op: "jigsaw_forward_backward") {
        let batch = 64
        for threads in threadCounts {
            guard let (network, pieces, gradient) = tutorialNetworkSetup(batch: batch) else { return }
            network.threadCount = threads
            let optimiser = Adam(parameters: network.parameters, learningRate: 1e-4)
            let ms = medianMilliseconds(budget: 2) {
                optimiser.zeroGradients()
                _ = network.forward(pieces)
                network.backward(gradient)
                optimiser.step()
            }
            emit(["op": "jigsaw_forward_backward", "grid": 2, "batch": batch, "pieces": batch * 4,
                  "threads": threads, "ms": ms, "images_per_s": Double(batch) / ms * 1000])
        }
    },
]
