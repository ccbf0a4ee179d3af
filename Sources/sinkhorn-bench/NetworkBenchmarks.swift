import Foundation
import NeuralNet
import TensorKit

/// The tutorial network on `batch` MNIST-sized puzzles (grid 2: 4 pieces of 14×14; grid 3: 9 pieces
/// of 9×9), with seeded normal inputs and upstream gradients.
private func tutorialNetworkSetup(batch: Int, grid: Int = 2)
    -> (network: JigsawNetwork, pieces: Tensor, gradient: Tensor)? {
    guard let network = try? JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: grid), seed: 1) else {
        return nil
    }
    var generator = SeededGenerator(seed: 2)
    let pieces = generator.normal(network.inputShape(batch: batch))
    let gradient = generator.normal([batch, grid * grid, grid * grid])
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
        for grid in [2, 3] {
            for threads in threadCounts {
                guard let (network, pieces, gradient) = tutorialNetworkSetup(batch: batch, grid: grid) else { return }
                network.threadCount = threads
                let optimiser = Adam(parameters: network.parameters, learningRate: 1e-4)
                let ms = medianMilliseconds(budget: 2) {
                    optimiser.zeroGradients()
                    _ = network.forward(pieces)
                    network.backward(gradient)
                    optimiser.step()
                }
                emit(["op": "jigsaw_forward_backward", "grid": grid, "batch": batch, "pieces": batch * grid * grid,
                      "threads": threads, "ms": ms, "images_per_s": Double(batch) / ms * 1000])
            }
        }
    },
]
