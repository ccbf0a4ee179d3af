import Permutations
import ArgumentParser
import Foundation
import Jigsaw
import NeuralNet
import TensorKit

extension DatasetKind: ExpressibleByArgument {}
extension DatasetSplit: ExpressibleByArgument {}

struct TrainCommand: CheckedCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the convolutional Sinkhorn network on jigsaw puzzles.",
        discussion: """
        Defaults are the tutorial's recipe (PAPERS.md §3): grid 2, τ 0.1, 20 Sinkhorn iterations, noise 1, \
        Adam lr 1e-4, batch 64, 5 epochs. The weights file written at the end carries the architecture, the \
        hyperparameters, the test-set evaluation and the command line in its metadata.
        """)

    @OptionGroup var data: DataOptions
    @Option(help: "Pieces per side.") var grid: Int = 2
    @Option(name: .customLong("image-size"), help: "Image side in pixels (images are resized to it for folder data).")
    var imageSize: Int = 28
    @Option(help: "Image channels (1 or 3).") var channels: Int = 1
    @Option(name: .customLong("normalisation-mean"),
            help: "Per-channel means subtracted from pixels in [0, 1], comma-separated (default: MNIST's 0.1307; photos: ImageNet's 0.485,0.456,0.406).")
    var normalisationMean: String?
    @Option(name: .customLong("normalisation-std"),
            help: "Per-channel standard deviations, comma-separated (default: MNIST's 0.3081; photos: ImageNet's 0.229,0.224,0.225).")
    var normalisationStd: String?
    @Option(help: "Convolution channels.") var hidden: Int = 32
    @Option(name: .customLong("kernel-size"), help: "Convolution kernel side (odd).") var kernelSize: Int = 5
    @Option(name: .customLong("extra-blocks"), help: "Extra conv/pool/ReLU/BN blocks after the first.")
    var extraBlocks: Int = 0
    @Option(name: .customLong("hidden-units"), help: "Units of a hidden layer before the score layer (0: none).")
    var hiddenUnits: Int = 0
    @Flag(name: .customLong("set-context"),
          help: "Let the hidden layer see the mean features of the whole puzzle (needs --hidden-units).")
    var setContext = false
    @Option(name: .customLong("context-units"),
            help: "With --set-context: units of the per-piece embedding averaged over the puzzle (0: the features).")
    var contextUnits: Int = 0
    @Option(name: .customLong("attention-blocks"),
            help: "Self-attention blocks over each puzzle's pieces after the hidden layer (needs --hidden-units).")
    var attentionBlocks: Int = 0
    @Option(name: .customLong("attention-heads"), help: "Heads of every attention block.")
    var attentionHeads: Int = 4
    @Option(name: .customLong("attention-head-units"), help: "Query/key/value width of each attention head.")
    var attentionHeadUnits: Int = 32
    @Option(name: .customLong("edge-blocks"),
            help: "Edge attention blocks: each piece gathers what the pieces continuing its four edges computed, weighted by edge compatibility (needs --hidden-units).")
    var edgeBlocks: Int = 0
    @Option(name: .customLong("edge-measure"), help: "Edge dissimilarity for edge attention: mgc or prediction.")
    var edgeMeasure: String = "mgc"
    @Option(name: .customLong("edge-sharpness"), help: "How sharply edge attention prefers the best-matching piece (κ).")
    var edgeSharpness: Float = 8
    @Option(name: .customLong("score-heads"),
            help: "Score heads, one per class label: each training image is scored by its label's head, so head k learns to arrange any pieces into a k (the assembly network; 1: a jigsaw network).")
    var scoreHeads: Int = 1
    @Option(name: [.customLong("temperature"), .customLong("tau")], help: "Sinkhorn temperature τ.")
    var temperature: Float = 0.1
    @Option(name: [.customLong("final-temperature"), .customLong("final-tau")],
            help: "Anneal τ geometrically to this value by the last step.")
    var finalTemperature: Float?
    @Option(help: "Sinkhorn iterations.") var iterations: Int = 20
    @Option(name: [.customLong("noise"), .customLong("noise-factor")], help: "Gumbel noise factor (0: no sampling).")
    var noise: Float = 1
    @Option(help: "Gumbel-Sinkhorn samples per puzzle.") var samples: Int = 1
    @Option(name: .customLong("reconstruction-weight"),
            help: "Weight of the reconstruction loss (summed squared error; the paper's loss).")
    var reconstructionWeight: Float = 1
    @Option(name: .customLong("permutation-weight"),
            help: "Weight of a cross-entropy between the soft permutation and the true scramble (0: off).")
    var permutationWeight: Float = 0
    @Option(name: [.customLong("learning-rate"), .customLong("lr")], help: "Adam learning rate.")
    var learningRate: Float = 1e-4
    @Option(name: [.customLong("final-learning-rate"), .customLong("final-lr")],
            help: "Cosine-decay the learning rate to this value by the last step.")
    var finalLearningRate: Float?
    @Option(name: .customLong("batch-size"), help: "Puzzles per step.") var batchSize: Int = 64
    @Option(help: "Passes over the training images.") var epochs: Int = 5
    @OptionGroup var seedOptions: SeedOptions
    @OptionGroup var threadOptions: ThreadOptions
    @Option(help: "Sinkhorn backward: unrolled, implicit or tape (autodiff-style, every iterate stored).") var backward: SinkhornBackward = .unrolled
    @Option(help: "Train on at most this many images (photos: crops per epoch).") var limit: Int?
    @Option(name: .customLong("crops-per-photo"), help: "Photos: random crops of every training photo per epoch.")
    var cropsPerPhoto = 64
    @Option(name: .customLong("jpeg-probability"),
            help: "Photos: fraction of scrambled puzzles re-encoded as JPEG before the network sees them (0: none).")
    var jpegProbability: Float = 0
    @Option(name: .customLong("jpeg-quality"), help: "JPEG qualities drawn for --jpeg-probability, as LOW-HIGH.")
    var jpegQuality: String = "60-95"
    @Option(name: .customLong("crop-aspect"),
            help: "Photos: crops have a width : height drawn log-uniformly up to this ratio either way before they are squeezed into the square (1: square crops).")
    var cropAspect: Double = 1
    @Option(name: .customLong("validation-photos"),
            help: "Photos: training photos held out (by name hash) whose fixed crops are the per-epoch validation set; 0 validates on crops of the training photos.")
    var validationPhotos = 0
    @Option(name: .customLong("shift-pixels"),
            help: "Every epoch, translate each training image by column and row offsets drawn from -N...N (0: none).")
    var shiftPixels = 0
    @Option(name: .customLong("stroke-probability"),
            help: "Every epoch, make the strokes of this share of the training images thicker or thinner (half each way; 0: none).")
    var strokeProbability: Float = 0
    @Option(name: .customLong("stroke-passes"),
            help: "With --stroke-probability: each varied image gets 1...N passes of the 3×3 thickening or thinning.")
    var strokePasses = 1
    @Option(name: .customLong("initial-weights"),
            help: "Start from this trained model's weights (same architecture) instead of a seeded initialisation.")
    var initialWeights: String?
    @Option(name: .customLong("validation-size"), help: "Training images held out for per-epoch validation.")
    var validationSize: Int = 2000
    @Option(name: .customLong("eval-limit"), help: "Evaluate the final model on at most this many test images.")
    var evaluationLimit: Int?
    @Option(name: [.short, .long], help: "Where to write the trained weights (.safetensors).")
    var output: String = "model.safetensors"
    @Option(help: "Checkpoint file (default: OUTPUT.checkpoint).") var checkpoint: String?
    @Option(name: .customLong("checkpoint-every"), help: "Also checkpoint every N steps (0: only after each epoch).")
    var checkpointEvery: Int = 0
    @Flag(help: "Continue from the checkpoint of an interrupted run with the same options.") var resume = false
    @Option(help: "Also write the final report (JSON) to this file.") var report: String?

    /// `--jpeg-quality LOW-HIGH`, or an empty range (refused by validation) when malformed.
    var jpegQualities: ClosedRange<Int> {
        let parts = jpegQuality.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let low = parts[0], let high = parts[1], low <= high else { return 0...0 }
        return low...high
    }

    var trainingConfiguration: JigsawTrainingConfiguration {
        var configuration = JigsawTrainingConfiguration(
            network: JigsawNetworkConfiguration(
                grid: grid, imageSize: imageSize, channels: channels, hiddenChannels: hidden, kernelSize: kernelSize,
                extraConvolutionBlocks: extraBlocks, hiddenUnits: hiddenUnits,
                setContext: setContext, contextUnits: contextUnits, attentionBlocks: attentionBlocks,
                attentionHeads: attentionHeads, attentionHeadUnits: attentionHeadUnits,
                edgeBlocks: edgeBlocks, edgeMeasure: edgeMeasure, edgeSharpness: edgeSharpness,
                normalisationMean: Self.floats(normalisationMean) ?? (dataset == .photos ? [0.485, 0.456, 0.406] : [0.1307]),
                normalisationStd: Self.floats(normalisationStd) ?? (dataset == .photos ? [0.229, 0.224, 0.225] : [0.3081]),
            scoreHeads: scoreHeads),
            dataset: dataset, dataDirectory: data.directory ?? "",
            temperature: temperature, finalTemperature: finalTemperature, sinkhornIterations: iterations, noiseFactor: noise,
            samplesPerExample: samples, learningRate: learningRate, finalLearningRate: finalLearningRate,
            batchSize: batchSize, epochs: epochs, seed: seed, threads: threads, backward: backward,
            trainLimit: limit, validationSize: validationSize, reconstructionWeight: reconstructionWeight,
            permutationWeight: permutationWeight)
        configuration.jpegProbability = jpegProbability
        configuration.jpegQualities = jpegQualities
        configuration.shiftPixels = shiftPixels
        configuration.strokeProbability = strokeProbability
        configuration.strokePasses = strokePasses
        return configuration
    }

    var dataset: DatasetKind { data.dataset }
    var seed: UInt64 { seedOptions.seed }
    var threads: Int { threadOptions.threads }

    func check() throws {
        _ = try data.checkedDirectory()
        try threadOptions.check()
        do { try trainingConfiguration.validate() } catch { throw ValidationError("\(error)") }
        if dataset == .photos && channels != 3 {
            throw ValidationError("photos are trained in colour: use --channels 3")
        }
        if dataset != .folder && dataset != .photos && (imageSize != 28 || channels != 1) {
            throw ValidationError("\(dataset.rawValue) images are 28×28 with 1 channel")
        }
        if cropsPerPhoto < 1 { throw ValidationError("--crops-per-photo must be at least 1") }
        if !(cropAspect >= 1 && cropAspect <= 4) { throw ValidationError("--crop-aspect must be in 1...4") }
        if let evaluationLimit, evaluationLimit < 1 { throw ValidationError("--eval-limit must be at least 1") }
        if checkpointEvery < 0 { throw ValidationError("--checkpoint-every must not be negative") }
        if resume && !FileManager.default.fileExists(atPath: checkpointPath) {
            throw ValidationError("--resume: no checkpoint at \(checkpointPath)")
        }
    }

    /// A comma-separated list of numbers; a malformed one becomes NaN, which validation refuses.
    static func floats(_ text: String?) -> [Float]? {
        text.map { $0.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) ?? .nan } }
    }

    var checkpointPath: String { checkpoint ?? output + ".checkpoint" }

    func execute() throws {
        BLAS.setThreads(1)
        var config = trainingConfiguration
        let start = try initialWeights.map { path in
            let loaded = try JigsawModelFile.load(contentsOfFile: path)
            guard loaded.checksumVerified, let checksum = loaded.metadata[Safetensors.checksumKey] else {
                throw ValidationError("--initial-weights \(path): the file has no \(Safetensors.checksumKey) to record where training started")
            }
            config.initialWeightsChecksum = checksum
            return (path: path, network: loaded.network)
        }
        let directory = config.dataDirectory
        let training: ImageDataset, validation: ImageDataset?
        var epochImages: (@Sendable (Int) -> ImageDataset)?
        if dataset == .photos {
            // Fresh crops of the training photos every epoch; validation crops come from the
            // training photos too (the test photos are never seen before the final evaluation).
            var sampler = try dataset.photoSampler(directory: directory, side: imageSize)
            sampler.maximumAspect = cropAspect
            sampler.grid = grid
            let seed = self.seed
            if validationPhotos > 0 {
                guard validationPhotos < sampler.photos.images.count else {
                    throw ValidationError("--validation-photos \(validationPhotos) leaves no training photo of \(sampler.photos.images.count)")
                }
                let (kept, held) = sampler.photos.holdingOut(validationPhotos)
                sampler.photos = kept
                let perPhoto = max(1, validationSize / validationPhotos)
                validation = held.testCrops(side: imageSize, perPhoto: perPhoto, grid: grid)
                log("validation: \(validationPhotos) held-out photos (\(held.sources.joined(separator: ", "))), \(perPhoto) crops each")
            } else {
                validation = validationSize > 0 ? sampler.batch(count: validationSize, seed: ~seed) : nil
            }
            let count = limit ?? cropsPerPhoto * sampler.photos.images.count
            training = sampler.batch(count: count, seed: seed)
            let epochSampler = sampler
            epochImages = { epoch in epochSampler.batch(count: count, seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15) }
            log("\(sampler.photos.images.count) training photos, \(count) crops of \(imageSize) px per epoch")
        } else {
            let all = try dataset.load(directory: directory, split: .train, limit: limit.map { $0 + validationSize },
                                       channels: channels, imageSize: imageSize)
            let validationCount = min(validationSize, max(0, all.count - 1))
            training = ImageDataset.slice(all, 0..<(all.count - validationCount))
            validation = validationCount > 0 ? ImageDataset.slice(all, (all.count - validationCount)..<all.count) : nil
        }
        let trainer = try JigsawTrainer(configuration: config, training: training, epochImages: epochImages)
        if let start {
            try trainer.startFromWeights(of: start.network, path: start.path)
            log("starting from the weights of \(start.path)")
        }
        // Temporary files of writes that a killed run left behind.
        for path in [checkpointPath, output] {
            for removed in Safetensors.removeStaleTemporaryFiles(of: path) { log("removed \(removed), left by an interrupted write") }
        }
        // The step of the epoch the run resumes in, when it does not start at the epoch's beginning.
        var resumedAtStep: Int?
        if resume {
            let resumption = try trainer.resume(from: checkpointPath)
            if !resumption.checksumVerified {
                log("warning: \(checkpointPath) has no \(Safetensors.checksumKey); its tensors were only checked finite")
            }
            log("resumed from \(checkpointPath) at epoch \(trainer.epoch + 1), step \(trainer.stepInEpoch)"
                + String(format: " (%.0f s of training before)", resumption.earlierSeconds))
            if trainer.stepInEpoch > 0 { resumedAtStep = trainer.stepInEpoch }
        }
        log("training \(config.network.grid)×\(config.network.grid) on \(training.count) \(dataset.rawValue) images, "
            + "\(trainer.network.parameterCount) parameters, \(trainer.stepsPerEpoch) steps per epoch")
        let started = Date()
        var history: [String] = []
        while !trainer.isFinished {
            let epochIndex = trainer.epoch
            let progress = ProgressReporter(label: "epoch \(epochIndex + 1)/\(config.epochs)")
            var lossSum = 0.0, puzzles = 0
            let epochStart = Date()
            while trainer.epoch == epochIndex && !trainer.isFinished {
                let step = try trainer.step()
                lossSum += step.lossPerPuzzle * Double(step.puzzles)
                puzzles += step.puzzles
                let rate = Double(puzzles) / max(Date().timeIntervalSince(epochStart), 1e-9)
                let done = trainer.epoch == epochIndex ? trainer.stepInEpoch : trainer.stepsPerEpoch
                progress.update(done: done, total: trainer.stepsPerEpoch, fields: [
                    ("loss", String(format: "%.3f", lossSum / Double(max(puzzles, 1)))),
                    ("img/s", String(format: "%.0f", rate)), ("τ", String(format: "%.3g", step.temperature)),
                ])
                if checkpointEvery > 0, trainer.globalStep % checkpointEvery == 0, trainer.epoch == epochIndex {
                    try trainer.saveCheckpoint(to: checkpointPath, elapsedSeconds: Date().timeIntervalSince(started))
                }
            }
            progress.finish()
            // After a resume in mid-epoch the loss covers only the steps this process ran.
            let label = resumedAtStep.map { "epoch \(epochIndex + 1) (resumed at step \($0) of \(trainer.stepsPerEpoch))" }
                ?? "epoch \(epochIndex + 1)"
            resumedAtStep = nil
            var line = label + String(format: ": loss %.4f per puzzle, %.0f images/s",
                                      lossSum / Double(max(puzzles, 1)), Double(puzzles) / Date().timeIntervalSince(epochStart))
            if let validation {
                let v = try JigsawEvaluator.evaluate(network: trainer.network, dataset: validation, seed: seed)
                line += String(format: "; validation: kendall tau %.4f, prop. wrong %.4f, prop. any wrong %.4f",
                               v.kendallTau, v.propWrong, v.propAnyWrong)
            }
            log(line)
            history.append(line)
            try trainer.saveCheckpoint(to: checkpointPath, elapsedSeconds: Date().timeIntervalSince(started))
        }
        let test = try dataset.load(directory: directory, split: .test, limit: evaluationLimit,
                                    channels: channels, imageSize: imageSize, photoGrid: grid)
        let evaluation = try JigsawEvaluator.evaluate(network: trainer.network, dataset: test, seed: seed)
        var metadata = config.metadata.merging(evaluation.metadata(dataset: dataset.rawValue, split: "test")) { _, new in new }
        metadata["train.command"] = recordedCommandLine()
        // Every part of a resumed run counts.
        let seconds = trainer.earlierSeconds + Date().timeIntervalSince(started)
        metadata["train.seconds"] = String(format: "%.0f", seconds)
        try JigsawModelFile.save(trainer.network, metadata: metadata, to: output)
        let summary = jsonLine(TrainSummary(output: output, epochs: config.epochs, steps: trainer.globalStep,
                                            seconds: rounded(seconds, 1), test: evaluation))
        print(summary)
        if let report { try Data((summary + "\n").utf8).write(to: URL(fileURLWithPath: report), options: .atomic) }
    }
}

/// What `train` prints at the end (and writes to `--report`).
struct TrainSummary: Encodable {
    var output: String
    var epochs: Int
    var steps: Int
    var seconds: Double
    var test: JigsawEvaluation
}

func log(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
