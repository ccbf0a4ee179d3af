import Foundation
import Jigsaw
import NeuralNet
import TensorKit

/// The shipped photo recipe at `grid` with 64-px pieces: a small conv encoder, hidden layer with
/// set context, three edge attention blocks, one self-attention block.
func photoNetwork(grid: Int) -> JigsawNetworkConfiguration {
    JigsawNetworkConfiguration(grid: grid, imageSize: 64 * grid, channels: 3, hiddenChannels: 4, kernelSize: 3,
                               extraConvolutionBlocks: 3, hiddenUnits: 128, setContext: true, attentionBlocks: 1,
                               edgeBlocks: 3, normalisationMean: [0.485, 0.456, 0.406],
                               normalisationStd: [0.229, 0.224, 0.225])
}

/// Random RGB images: throughput does not depend on the content.
private func randomPhotos(count: Int, side: Int) -> ImageDataset {
    var generator = SeededGenerator(seed: 11)
    let pixels = (0..<(count * 3 * side * side)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    return ImageDataset(count: count, channels: 3, height: side, width: side, pixels: pixels, labels: nil)
}

/// Runs the PyTorch twin (`bench/photo_train_torch.py`) with the Python named by `TORCH_PYTHON`
/// and returns the last JSON object it prints, or `nil` when it is not set up.
private func runTorchTwin(_ arguments: [String]) -> [String: Any]? {
    let environment = ProcessInfo.processInfo.environment
    guard let python = environment["TORCH_PYTHON"] else { return nil }
    let script = environment["PHOTO_TORCH_SCRIPT"] ?? "bench/photo_train_torch.py"
    let child = Process()
    child.executableURL = URL(fileURLWithPath: python)
    child.arguments = [script] + arguments
    let pipe = Pipe()
    child.standardOutput = pipe
    do { try child.run() } catch {
        FileHandle.standardError.write(Data("cannot run \(python) \(script): \(error)\n".utf8))
        return nil
    }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    child.waitUntilExit()
    guard let line = String(decoding: output, as: UTF8.self).split(separator: "\n").last,
          let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
    return object
}

private func torchPhotoTrain(grid: Int, batch: Int, threads: Int) -> Double? {
    runTorchTwin(["--grid", String(grid), "--batch", String(batch), "--threads", String(threads)])?["images_per_s"] as? Double
}

/// Writes a network of the recipe at `grid` (trained mode off, non-trivial BatchNorm statistics),
/// four scrambled puzzles of random pieces and this network's scores, and has the twin score them.
private func torchParity(grid: Int) -> [String: Any]? {
    guard ProcessInfo.processInfo.environment["TORCH_PYTHON"] != nil,
          let network = try? JigsawNetwork(configuration: photoNetwork(grid: grid), seed: 5) else { return nil }
    var generator = SeededGenerator(seed: 6)
    for normalisation in network.normalisations {
        let channels = normalisation.runningMean.value.count
        normalisation.runningMean.value = generator.normal([channels], std: 0.2)
        normalisation.runningVariance.value = generator.uniform([channels], low: 0.5, high: 1.5)
        normalisation.weight.value = generator.uniform([channels], low: 0.5, high: 1.5)
        normalisation.bias.value = generator.normal([channels], std: 0.3)
    }
    network.isTraining = false
    let pieces = generator.normal(network.inputShape(batch: 4))
    var tensors = network.namedTensors()
    tensors["pieces"] = pieces
    tensors["scores"] = network.forward(pieces)
    let path = NSTemporaryDirectory() + "photo-parity-\(grid)-\(getpid()).safetensors"
    defer { try? FileManager.default.removeItem(atPath: path) }
    guard (try? Safetensors.write(tensors, metadata: network.configuration.metadata, toFile: path)) != nil else { return nil }
    return runTorchTwin(["--parity", path, "--threads", "1"])
}

let photoBenchmarks: [Benchmark] = [
    // With TORCH_PYTHON set: the PyTorch twin loads a Swift photo network's weights and scores the
    // same pieces; the largest difference shows both sides run the same network.
    Benchmark(op: "photo_parity") {
        for grid in [2, 3, 4, 5, 6] {
            guard let parity = torchParity(grid: grid), let difference = parity["max_abs_difference"] as? Double,
                  let scale = parity["max_abs_score"] as? Double else { return }
            emit(["op": "photo_parity", "grid": grid, "max_abs_difference": difference, "max_abs_score": scale])
        }
    },
    // Whole training steps of the photo recipe (batch 32, permutation cross-entropy, no noise),
    // median images per second over 5-step windows; with TORCH_PYTHON set, the PyTorch twin runs
    // the same work right after and the ratio of the two medians is printed.
    Benchmark(op: "photo_train") {
        BLAS.setThreads(1)
        let threads = ProcessInfo.processInfo.activeProcessorCount
        for grid in [2, 3, 4, 5, 6] {
            let network = photoNetwork(grid: grid)
            let images = randomPhotos(count: 32 * 5, side: network.imageSize)
            var configuration = JigsawTrainingConfiguration(
                network: network, noiseFactor: 0, learningRate: 1e-3, batchSize: 32, epochs: 1000, threads: threads,
                validationSize: 0)
            configuration.reconstructionWeight = 0
            configuration.permutationWeight = 1
            guard let trainer = try? JigsawTrainer(configuration: configuration, training: images) else { return }
            let ms = medianMilliseconds(warmup: 1, minRuns: 5, budget: 3) {
                for _ in 0..<5 { _ = try? trainer.step() }
            }
            let ours = Double(32 * 5) / ms * 1000
            if let torch = torchPhotoTrain(grid: grid, batch: 32, threads: threads) {
                emit(["op": "photo_train", "grid": grid, "batch": 32, "threads": threads, "images_per_s": ours,
                      "pytorch_images_per_s": torch, "ratio": ours / torch])
            } else {
                emit(["op": "photo_train", "grid": grid, "batch": 32, "threads": threads, "images_per_s": ours])
            }
        }
    },
]
