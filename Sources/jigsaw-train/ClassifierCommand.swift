import ArgumentParser
import Foundation
import Jigsaw
import NeuralNet
import TensorKit

/// `jigsaw-train classifier`: the MNIST classifier that judges assembled digits (Mena et al.
/// 2018, §4.3: "a separate MNIST classifier").
struct ClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier",
        abstract: "Train and evaluate the digit classifier that judges assembled digits (Mena et al. 2018, §4.3).",
        subcommands: [ClassifierTrainCommand.self, ClassifierEvaluateCommand.self])
}

struct ClassifierTrainCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the classifier on the MNIST training split.",
        discussion: """
        The last --validation-size training images are held out and scored after every epoch; the \
        weights of the epoch with the best validation accuracy are written. The test split is \
        scored once, at the end, and recorded as eval.test_accuracy (it never selects anything).
        """)

    @Option(help: "MNIST directory (IDX files).") var dataDir: String
    @Option(help: "Epochs.") var epochs = 3
    @Option(help: "Images per batch.") var batchSize = 64
    @Option(help: "Adam learning rate (decays linearly to --final-lr).") var lr: Float = 1e-3
    @Option(help: "Final learning rate.") var finalLr: Float = 1e-5
    @Option(help: "Training images held out for validation.") var validationSize = 2000
    @Option(help: "Largest random shift in pixels per training image and epoch (0: none).") var shiftPixels = 0
    @Option(help: "Seed of the initial weights, the order and the shifts.") var seed: UInt64 = 1
    @Option(help: "Worker threads.") var threads = 2
    @Option(help: "Use only the first N training images (tests).") var limit: Int?
    @Option(name: [.short, .long], help: "Weights file to write.") var output: String

    func check() throws {
        guard FileManager.default.fileExists(atPath: dataDir) else { throw ValidationError("--data-dir \(dataDir) does not exist") }
        guard (1...100).contains(epochs) else { throw ValidationError("--epochs must be in 1...100") }
        guard (1...4096).contains(batchSize) else { throw ValidationError("--batch-size must be in 1...4096") }
        guard lr.isFinite, lr > 0, finalLr.isFinite, finalLr > 0 else { throw ValidationError("--lr and --final-lr must be positive") }
        guard validationSize >= 0 else { throw ValidationError("--validation-size must not be negative") }
        guard (0...8).contains(shiftPixels) else { throw ValidationError("--shift-pixels must be in 0...8") }
        guard (1...64).contains(threads) else { throw ValidationError("--threads must be in 1...64") }
        if let limit, limit < 1 { throw ValidationError("--limit must be positive") }
    }

    func execute() throws {
        let started = Date()
        let all = try ImageDataset.mnist(directory: dataDir, split: .train, limit: limit)
        guard all.channels == 1, all.width % 4 == 0, all.width == all.height else {
            throw ValidationError("the classifier needs square gray images whose side is a multiple of 4")
        }
        let held = Swift.min(validationSize, all.count / 5)
        let train = ImageDataset.slice(all, 0..<(all.count - held))
        let validation = ImageDataset.slice(all, (all.count - held)..<all.count)
        let test = try ImageDataset.mnist(directory: dataDir, split: .test)
        var generator = SeededGenerator(seed: seed)
        let classifier = DigitClassifier(.init(side: all.width), generator: &generator)
        classifier.threadCount = threads
        let optimiser = Adam(parameters: classifier.parameters, learningRate: lr)
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize
        let totalSteps = epochs * stepsPerEpoch
        let progress = ProgressReporter(label: "classifier")
        var best: (accuracy: Double, epoch: Int, tensors: [String: Tensor])?
        var step = 0
        for epoch in 1...epochs {
            var order = Array(0..<train.count)
            order.shuffle(using: &generator)
            var shiftGenerator = generator.derived(UInt64(epoch))
            let data = shiftPixels > 0 ? train.randomlyShifted(maximum: shiftPixels, generator: &shiftGenerator) : train
            var lossSum: Double = 0
            for batchStart in stride(from: 0, to: order.count, by: batchSize) {
                let indices = Array(order[batchStart..<Swift.min(batchStart + batchSize, order.count)])
                let (images, labels) = batch(data, indices)
                let fraction = totalSteps > 1 ? Float(step) / Float(totalSteps - 1) : 0
                optimiser.learningRate = lr + (finalLr - lr) * fraction
                classifier.zeroGradients()
                let logits = classifier.forward(images)
                let (loss, gradient) = DigitClassifier.crossEntropy(logits: logits, labels: labels)
                classifier.backward(gradient)
                optimiser.step()
                lossSum += Double(loss)
                step += 1
                progress.update(done: step, total: totalSteps,
                                fields: [("epoch", "\(epoch)/\(epochs)"), ("loss", String(format: "%.4f", lossSum / Double(step - (epoch - 1) * stepsPerEpoch)))])
            }
            let accuracy = held > 0 ? DigitClassifierFile.accuracy(of: classifier, images: validation) : 0
            progress.finish()
            print(String(format: "epoch %d: loss %.4f, validation accuracy %.4f", epoch, lossSum / Double(stepsPerEpoch), accuracy))
            if best == nil || accuracy > best!.accuracy {
                best = (accuracy, epoch, classifier.namedTensors())
            }
        }
        if let best { try classifier.load(best.tensors) }
        let testAccuracy = DigitClassifierFile.accuracy(of: classifier, images: test)
        let seconds = Date().timeIntervalSince(started)
        var metadata: [String: String] = [
            "train.command": recordedCommandLine(), "train.dataset": "mnist", "train.epochs": "\(epochs)",
            "train.best_epoch": "\(best?.epoch ?? epochs)", "train.batch_size": "\(batchSize)",
            "train.learning_rate": "\(lr)", "train.final_learning_rate": "\(finalLr)", "train.seed": "\(seed)",
            "train.shift_pixels": "\(shiftPixels)", "train.images": "\(train.count)",
            "train.validation_size": "\(held)", "train.seconds": String(format: "%.0f", seconds),
            "eval.validation_accuracy": String(format: "%.5f", best?.accuracy ?? 0),
            "eval.test_accuracy": String(format: "%.5f", testAccuracy), "eval.test_images": "\(test.count)",
        ]
        metadata["version"] = PackageVersion.string
        try DigitClassifierFile.save(classifier, metadata: metadata, to: output)
        print(String(format: "best epoch %d (validation %.4f); test accuracy %.4f on %d images; %.0f s; wrote %@",
                     best?.epoch ?? epochs, best?.accuracy ?? 0, testAccuracy, test.count, seconds, output))
    }

    func batch(_ data: ImageDataset, _ indices: [Int]) -> (Tensor, [Int]) {
        (data.tensor(indices: indices), indices.map { data.labels?[$0] ?? 0 })
    }
}

struct ClassifierEvaluateCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate", abstract: "The classifier's accuracy on the MNIST test split.")

    @Option(help: "Weights file.") var weights: String
    @Option(help: "MNIST directory (IDX files).") var dataDir: String
    @Option(help: "Largest shift in pixels applied to every test image (both directions; 0: none).") var shiftPixels = 0
    @Flag(help: "Print JSON.") var json = false

    func check() throws {
        guard FileManager.default.fileExists(atPath: weights) else { throw ValidationError("no weights file at \(weights)") }
        guard FileManager.default.fileExists(atPath: dataDir) else { throw ValidationError("--data-dir \(dataDir) does not exist") }
        guard (-8...8).contains(shiftPixels) else { throw ValidationError("--shift-pixels must be in -8...8") }
    }

    func execute() throws {
        let (classifier, _) = try DigitClassifierFile.load(weights)
        let loaded = try ImageDataset.mnist(directory: dataDir, split: .test)
        let test = shiftPixels == 0 ? loaded : loaded.shifted(x: shiftPixels, y: shiftPixels)
        let accuracy = DigitClassifierFile.accuracy(of: classifier, images: test)
        if json {
            print("{\"accuracy\":\(String(format: "%.5f", accuracy)),\"images\":\(test.count),\"shift_pixels\":\(shiftPixels)}")
        } else {
            print(String(format: "test accuracy %.4f on %d images", accuracy, test.count))
        }
    }
}
