import Foundation
import Jigsaw
import NeuralNet
import Permutations
import TensorKit

/// Random 8-bit images: throughput does not depend on the content.
private func randomImages(count: Int, side: Int = 28) -> ImageDataset {
    var generator = SeededGenerator(seed: 9)
    let pixels = (0..<(count * side * side)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    return ImageDataset(count: count, channels: 1, height: side, width: side, pixels: pixels, labels: nil)
}

/// The larger-grid architecture of the shipped models: without and with set context, and with
/// set context and attention over the pieces (blocks of 4 heads × 32 units).
private func widerNetworks(grid: Int) -> [(String, JigsawNetworkConfiguration)] {
    let wide = JigsawNetworkConfiguration(grid: grid, hiddenChannels: 64, hiddenUnits: 256)
    var context = wide
    context.setContext = true
    var attention = context
    attention.attentionBlocks = 1
    var attention2 = context
    attention2.attentionBlocks = 2
    return [("wide", wide), ("wide+context", context), ("wide+context+attention1", attention),
            ("wide+context+attention2", attention2)]
}

let jigsawBenchmarks: [Benchmark] = [
    // Whole training steps of the trainer (batch building, network, Gumbel-Sinkhorn, loss, both
    // backwards, Adam) with the tutorial's recipe: median images per second over 40-step windows.
    Benchmark(op: "jigsaw_train") {
        BLAS.setThreads(1)
        let images = randomImages(count: 64 * 40)
        let threads = ProcessInfo.processInfo.activeProcessorCount
        for grid in [2, 3] {
            for backward in SinkhornBackward.allCases {
                let configuration = JigsawTrainingConfiguration(
                    network: JigsawNetworkConfiguration(grid: grid), batchSize: 64, epochs: 1000, threads: threads,
                    backward: backward, validationSize: 0)
                guard let trainer = try? JigsawTrainer(configuration: configuration, training: images) else { return }
                let ms = medianMilliseconds(warmup: 1, minRuns: 5, budget: 3) {
                    for _ in 0..<40 { _ = try? trainer.step() }
                }
                emit(["op": "jigsaw_train", "grid": grid, "batch": 64, "backward": backward.rawValue,
                      "network": "tutorial", "threads": threads, "images_per_s": Double(64 * 40) / ms * 1000])
            }
        }
        // The larger-grid networks (64 channels, 256 hidden units) without and with set context and attention.
        for (name, network) in widerNetworks(grid: 4) {
            let configuration = JigsawTrainingConfiguration(
                network: network, learningRate: 1e-3, batchSize: 64, epochs: 1000, threads: threads, validationSize: 0)
            guard let trainer = try? JigsawTrainer(configuration: configuration, training: images) else { return }
            let ms = medianMilliseconds(warmup: 1, minRuns: 5, budget: 3) {
                for _ in 0..<10 { _ = try? trainer.step() }
            }
            emit(["op": "jigsaw_train", "grid": 4, "batch": 64, "backward": "unrolled", "network": name,
                  "threads": threads, "images_per_s": Double(64 * 10) / ms * 1000])
        }
    },
    // Inference as the service runs it: evaluation-mode network scores plus the hard matching, per call.
    Benchmark(op: "jigsaw_infer") {
        BLAS.setThreads(1)
        for grid in [2, 3] {
            for batch in [1, 64] {
                guard let network = try? JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: grid), seed: 1)
                else { return }
                network.isTraining = false
                network.threadCount = batch == 1 ? 1 : ProcessInfo.processInfo.activeProcessorCount
                var generator = SeededGenerator(seed: 2)
                let pieces = generator.normal(network.inputShape(batch: batch))
                let ms = medianMilliseconds(budget: 1) {
                    let scores = network.forward(pieces)
                    _ = try? LinearAssignment.matchings(scores: scores)
                }
                emit(["op": "jigsaw_infer", "grid": grid, "batch": batch, "network": "tutorial",
                      "threads": network.threadCount, "ms": ms])
            }
        }
        for (name, configuration) in widerNetworks(grid: 4) {
            guard let network = try? JigsawNetwork(configuration: configuration, seed: 1) else { return }
            network.isTraining = false
            network.threadCount = 1
            var generator = SeededGenerator(seed: 2)
            let pieces = generator.normal(network.inputShape(batch: 1))
            let ms = medianMilliseconds(budget: 1) {
                let scores = network.forward(pieces)
                _ = try? LinearAssignment.matchings(scores: scores)
            }
            emit(["op": "jigsaw_infer", "grid": 4, "batch": 1, "network": name, "threads": 1, "ms": ms])
        }
        // The shipped models as the service runs them: loaded by ModelFile, puzzles in [0, 1]
        // through JigsawInference (normalisation, scores, matching), one thread. Batches of B
        // puzzles are what the service's dynamic batching runs under load; `ms_per_puzzle` is the
        // figure to compare across B. Run from the package root.
        for name in ["mnist-3x3", "mnist-6x6", "photo-3x3"] {
            guard let file = try? ModelFile(contentsOfFile: "Models/\(name).safetensors"),
                  let network = try? file.makeJigsawNetwork() else { continue }
            network.threadCount = 1
            for batch in [1, 4, 16, 32] {
                var generator = SeededGenerator(seed: 2)
                let pieces = generator.uniform(network.inputShape(batch: batch))
                let ms = medianMilliseconds(budget: 1) {
                    _ = try? JigsawInference.match(JigsawInference.scores(network, pieces: pieces))
                }
                emit(["op": "jigsaw_infer", "grid": network.configuration.grid, "batch": batch, "network": name,
                      "threads": 1, "ms": ms, "ms_per_puzzle": ms / Double(batch)])
            }
        }
    },
]
