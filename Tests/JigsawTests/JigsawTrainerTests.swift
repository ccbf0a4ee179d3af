import Permutations
import Foundation
import Jigsaw
import NeuralNet
import Testing
import TensorKit

/// Runs `trainer` to the end and returns the summed per-puzzle losses of its first and last epochs.
func trainRecordingEpochLosses(_ trainer: JigsawTrainer) throws -> (first: Double, last: Double) {
    let lastEpoch = trainer.configuration.epochs - 1
    var first = 0.0, last = 0.0
    while !trainer.isFinished {
        let epoch = trainer.epoch
        let step = try trainer.step()
        if epoch == 0 { first += step.lossPerPuzzle }
        if epoch == lastEpoch { last += step.lossPerPuzzle }
    }
    return (first, last)
}

@Suite struct JigsawTrainerTests {
    func fixtureDigits() throws -> ImageDataset {
        try ImageDataset.mnist(directory: fixturesDirectory, split: .test)
    }

    func smallConfiguration(epochs: Int = 2, backward: SinkhornBackward = .unrolled) -> JigsawTrainingConfiguration {
        JigsawTrainingConfiguration(network: JigsawNetworkConfiguration(grid: 2, hiddenChannels: 8),
                                    learningRate: 3e-3, batchSize: 20, epochs: epochs, seed: 11, threads: 1,
                                    backward: backward, validationSize: 0)
    }

    @Test(arguments: [SinkhornBackward.unrolled, .implicit, .tape])
    func shortTrainingLowersTheLossAndSolvesHeldOutPuzzles(backward: SinkhornBackward) throws {
        let digits = try fixtureDigits()
        let training = ImageDataset.slice(digits, 0..<200)
        let heldOut = ImageDataset.slice(digits, 200..<300)
        let trainer = try JigsawTrainer(configuration: smallConfiguration(epochs: 6, backward: backward), training: training)
        let before = try JigsawEvaluator.evaluate(network: trainer.network, dataset: heldOut, seed: 5)
        let (firstEpochLoss, lastEpochLoss) = try trainRecordingEpochLosses(trainer)
        let after = try JigsawEvaluator.evaluate(network: trainer.network, dataset: heldOut, seed: 5)
        // A random network places about 3 of 4 pieces wrongly; a trained one few.
        #expect(lastEpochLoss < 0.5 * firstEpochLoss, "loss \(firstEpochLoss) → \(lastEpochLoss)")
        #expect(before.propWrong > 0.4, "untrained prop. wrong \(before.propWrong)")
        #expect(after.propWrong < 0.15, "trained prop. wrong \(after.propWrong) (\(backward))")
        #expect(after.kendallTau > 0.8, "trained Kendall tau \(after.kendallTau)")
    }

    /// 0: the tutorial network; 1: set context; 2: set context, attention and the permutation loss;
    /// 3: the tutorial network on images shifted afresh every epoch.
    @Test(arguments: [0, 1, 2, 3])
    func resumedRunEndsWithTheSameWeightsAsAnUninterruptedOne(variant: Int) throws {
        let training = ImageDataset.slice(try fixtureDigits(), 0..<100)
        var configuration = smallConfiguration(epochs: 2)
        if variant >= 1 {
            configuration.network.hiddenUnits = 12
            configuration.network.setContext = true
        }
        if variant == 2 {
            configuration.network.attentionBlocks = 1
            configuration.network.attentionHeads = 2
            configuration.network.attentionHeadUnits = 4
            configuration.permutationWeight = 2
        }
        if variant == 3 { configuration.shiftPixels = 2 }
        let straight = try JigsawTrainer(configuration: configuration, training: training)
        while !straight.isFinished { _ = try straight.step() }

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("resume-\(UUID()).checkpoint").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try JigsawTrainer(configuration: configuration, training: training)
        for _ in 0..<(first.stepsPerEpoch + 2) { _ = try first.step() }  // stop mid-way through epoch 2
        try first.saveCheckpoint(to: path)
        let second = try JigsawTrainer(configuration: configuration, training: training)
        try second.resume(from: path)
        #expect(second.epoch == 1 && second.stepInEpoch == 2)
        while !second.isFinished { _ = try second.step() }
        #expect(second.network.namedTensors() == straight.network.namedTensors())
        #expect(second.optimiser.stateTensors() == straight.optimiser.stateTensors())
    }

    /// Every epoch's images are the originals, each translated by its own offsets within the
    /// bound (found by trying every offset), drawn afresh each epoch and the same for the same seed.
    @Test func shiftAugmentationTranslatesEveryImageWithinTheBoundEachEpochAnew() throws {
        let training = ImageDataset.slice(try fixtureDigits(), 0..<60)
        var configuration = smallConfiguration(epochs: 2)
        configuration.shiftPixels = 2
        func offsets(_ images: ImageDataset) -> [[Int]] {
            (0..<images.count).map { index in
                let original = ImageDataset.slice(training, index..<(index + 1))
                let shifted = ImageDataset.slice(images, index..<(index + 1))
                return (-2...2).flatMap { y in (-2...2).compactMap { x in original.shifted(x: x, y: y) == shifted ? 10 * y + x : nil } }
            }
        }
        let trainer = try JigsawTrainer(configuration: configuration, training: training)
        let epoch0 = trainer.trainingImages
        let first = offsets(epoch0)
        #expect(first.allSatisfy { !$0.isEmpty }, "an image is not a translation of its original within 2 px")
        #expect(Set(first.compactMap { $0.count == 1 ? $0[0] : nil }).count >= 10, "offsets barely vary: \(first)")
        while trainer.epoch == 0 { _ = try trainer.step() }
        let epoch1 = trainer.trainingImages
        #expect(offsets(epoch1).allSatisfy { !$0.isEmpty })
        #expect(epoch1 != epoch0)
        #expect(try JigsawTrainer(configuration: configuration, training: training).trainingImages == epoch0)
        configuration.shiftPixels = 14
        #expect(throws: JigsawTrainingError.self) { try JigsawTrainer(configuration: configuration, training: training) }
    }

    /// Fine-tuning starts from the given network's weights, and a network of another architecture
    /// is refused with the weights left as they were.
    @Test func trainingCanStartFromATrainedNetworksWeights() throws {
        let training = ImageDataset.slice(try fixtureDigits(), 0..<40)
        let configuration = smallConfiguration(epochs: 1)
        var otherSeed = configuration
        otherSeed.seed = 99
        let source = try JigsawTrainer(configuration: otherSeed, training: training)
        let trainer = try JigsawTrainer(configuration: configuration, training: training)
        #expect(trainer.network.namedTensors() != source.network.namedTensors())
        try trainer.startFromWeights(of: source.network, path: "source.safetensors")
        #expect(trainer.network.namedTensors() == source.network.namedTensors())
        var wider = configuration
        wider.network.hiddenChannels = 6
        let other = try JigsawTrainer(configuration: wider, training: training)
        let fresh = try JigsawTrainer(configuration: configuration, training: training)
        let before = fresh.network.namedTensors()
        #expect(throws: JigsawTrainingError.invalidModelFile(path: "other.safetensors", reason: "its architecture differs from the one requested")) {
            try fresh.startFromWeights(of: other.network, path: "other.safetensors")
        }
        #expect(fresh.network.namedTensors() == before)
    }

    @Test func aFailedResumeLeavesTheTrainerUnchanged() throws {
        let training = ImageDataset.slice(try fixtureDigits(), 0..<40)
        let trainer = try JigsawTrainer(configuration: smallConfiguration(), training: training)
        _ = try trainer.step()
        let weights = trainer.network.namedTensors()
        let directory = FileManager.default.temporaryDirectory.path
        let good = directory + "/good-\(UUID()).checkpoint"
        defer { try? FileManager.default.removeItem(atPath: good) }
        try trainer.saveCheckpoint(to: good)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: good)))

        // Truncated file, and a checkpoint of another run (other learning rate).
        let truncated = directory + "/truncated-\(UUID()).checkpoint"
        defer { try? FileManager.default.removeItem(atPath: truncated) }
        writeFile(truncated, Array(bytes.prefix(bytes.count - 100)))
        var other = smallConfiguration()
        other.learningRate = 1e-2
        let otherTrainer = try JigsawTrainer(configuration: other, training: training)
        let foreign = directory + "/foreign-\(UUID()).checkpoint"
        defer { try? FileManager.default.removeItem(atPath: foreign) }
        try otherTrainer.saveCheckpoint(to: foreign)

        let refusal = #expect(throws: JigsawTrainingError.self) { try trainer.resume(from: truncated) }
        guard case .unreadableCheckpoint(truncated, _)? = refusal else { Issue.record("unexpected \(String(describing: refusal))"); return }
        #expect(throws: JigsawTrainingError.self) { try trainer.resume(from: foreign) }
        #expect(trainer.network.namedTensors() == weights)
        #expect(trainer.globalStep == 1)
    }

    @Test func invalidConfigurationsAreRefusedWithAMessage() {
        let cases: [(JigsawTrainingConfiguration, String)] = [
            ({ var c = smallConfiguration(); c.network.grid = 1; return c }(), "grid"),
            ({ var c = smallConfiguration(); c.learningRate = -1; return c }(), "learning rate"),
            ({ var c = smallConfiguration(); c.temperature = 0; return c }(), "temperature"),
            ({ var c = smallConfiguration(); c.samplesPerExample = 0; return c }(), "samples"),
            ({ var c = smallConfiguration(); c.batchSize = 0; return c }(), "batch size"),
        ]
        for (configuration, word) in cases {
            do {
                try configuration.validate()
                Issue.record("accepted an invalid configuration (\(word))")
            } catch {
                #expect("\(error)".contains(word), "message \(error) should mention \(word)")
            }
        }
    }

    @Test func trainedWeightsFileIsServedByItself() throws {
        let training = ImageDataset.slice(try fixtureDigits(), 0..<40)
        let trainer = try JigsawTrainer(configuration: smallConfiguration(epochs: 1), training: training)
        while !trainer.isFinished { _ = try trainer.step() }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("model-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try JigsawModelFile.save(trainer.network, metadata: ["eval.kendall_tau": "0.5"], to: path)
        let loaded = try JigsawModelFile.load(contentsOfFile: path)
        #expect(!loaded.inferredConfiguration)
        #expect(loaded.network.configuration == trainer.network.configuration)
        #expect(loaded.metadata["eval.kendall_tau"] == "0.5")
        trainer.network.isTraining = false
        let input = try PuzzleParity.input(digits: training)
        #expect(loaded.network.forward(input) == trainer.network.forward(input))
    }
}

enum PuzzleParity {
    /// A few normalised scrambled puzzles to compare two networks on.
    static func input(digits: ImageDataset) throws -> Tensor {
        var generator = SeededGenerator(seed: 3)
        var batch = PuzzleBatch(batchSize: 8, grid: 2, channels: 1, height: 28, width: 28)
        batch.fill(from: digits, indices: 0..<8, generator: &generator, normalization: (mean: 0.1307, std: 0.3081))
        return batch.scrambled
    }
}
