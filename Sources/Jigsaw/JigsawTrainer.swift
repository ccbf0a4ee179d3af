import Foundation
import NeuralNet
import Permutations
import TensorKit

/// Trains the jigsaw network with Gumbel-Sinkhorn (Mena et al. 2018, §4.2; the tutorial's recipe).
///
/// One step: cut a batch of images into `n = grid²` pieces and scramble them, score the scrambled
/// pieces `X = g(pieces)` `[B, n, n]`, draw `P = S((X + noise·g)/τ)` (`samplesPerExample` times per
/// puzzle), reconstruct `out[j] = Σ_i P[i, j] · piece[i]`, and minimise the summed squared error to
/// the unscrambled pieces (averaged over samples) with Adam, back-propagating through Sinkhorn with
/// the unrolled or the implicit derivative.
///
/// With several score heads (the assembly network of §4.3), every image is scored by the head of
/// its class label, so head `k` learns to arrange pieces into a digit `k`.
///
/// Determinism: the network's initial weights come from `seed`; epoch `e` visits the images in the
/// order of `SeededGenerator(seed).derived(e + 1)` and draws its scrambles and noise from
/// `SeededGenerator(seed).derived(2³² + e)`, so a run resumed from a checkpoint (which stores that
/// generator's state) ends with the same weights as an uninterrupted one.
public final class JigsawTrainer {
    public let configuration: JigsawTrainingConfiguration
    public let network: JigsawNetwork
    public let optimiser: Adam
    /// Completed epochs.
    public private(set) var epoch = 0
    /// Completed steps in the current epoch.
    public private(set) var stepInEpoch = 0
    /// Completed steps since the start of training.
    public private(set) var globalStep = 0
    /// Training seconds of the earlier processes of a resumed run (0 for a fresh one), read from
    /// the checkpoint.
    public private(set) var earlierSeconds: Double = 0

    private(set) var training: ImageDataset
    /// The current epoch's images before the shift augmentation (``training`` itself without it).
    private var unshifted: ImageDataset
    /// The training images of epoch `e` when they change every epoch (fresh photo crops).
    private let epochImages: (@Sendable (Int) -> ImageDataset)?
    private var order: [Int] = []
    private var batch: PuzzleBatch
    private var generator: SeededGenerator
    private let workspace = SinkhornWorkspace()
    private var reconstruction: [Float] = []
    private var upstream = Tensor(shape: [0])

    /// The result of one training step.
    public struct Step: Sendable {
        /// Summed squared error per puzzle (averaged over Gumbel samples).
        public var lossPerPuzzle: Double
        public var puzzles: Int
        public var temperature: Float
        public var learningRate: Float
    }

    /// - Parameters:
    ///   - configuration: validated hyperparameters.
    ///   - training: the training images (channels and size must match the network).
    /// - Throws: `JigsawTrainingError` for an invalid configuration or a data set that does not fit.
    ///   - epochImages: when given, the training images of every epoch `e` (the same count each time,
    ///     a function of `e` only, so a resumed run sees the same images); `training` is epoch 0's.
    public init(configuration: JigsawTrainingConfiguration, training: ImageDataset,
                epochImages: (@Sendable (Int) -> ImageDataset)? = nil) throws {
        try configuration.validate()
        let net = configuration.network
        try training.checkFits(net)
        guard training.count > 0 else { throw JigsawTrainingError.datasetMismatch("no training images") }
        if net.scoreHeads > 1 { try training.checkLabels(classes: net.scoreHeads) }
        self.configuration = configuration
        self.training = training
        unshifted = training
        self.epochImages = epochImages
        network = try JigsawNetwork(configuration: net, seed: configuration.seed)
        network.threadCount = configuration.threads
        network.isTraining = true
        optimiser = Adam(parameters: network.parameters, learningRate: configuration.learningRate,
                         epsilon: configuration.adamEpsilon)
        batch = PuzzleBatch(batchSize: configuration.batchSize, grid: net.grid, channels: net.channels,
                            height: net.imageSize, width: net.imageSize)
        generator = SeededGenerator(seed: 0)
        startEpoch()
    }

    /// The current epoch's training images.
    public var trainingImages: ImageDataset { training }

    /// Steps in one pass over the training images (the last batch may be smaller).
    public var stepsPerEpoch: Int { (training.count + configuration.batchSize - 1) / configuration.batchSize }
    /// Steps of the whole run.
    public var totalSteps: Int { stepsPerEpoch * configuration.epochs }
    /// Whether every epoch has run.
    public var isFinished: Bool { epoch >= configuration.epochs }

    private func startEpoch() {
        if let epochImages, epoch > 0 {
            let images = epochImages(epoch)
            precondition(images.count == training.count && images.channels == training.channels
                         && images.height == training.height && images.width == training.width,
                         "every epoch needs the same number and size of images")
            unshifted = images
        }
        if configuration.shiftPixels > 0 {
            var shifts = SeededGenerator(seed: configuration.seed).derived((3 << 32) + UInt64(epoch))
            training = unshifted.randomlyShifted(maximum: configuration.shiftPixels, generator: &shifts)
        } else {
            training = unshifted
        }
        if configuration.strokeProbability > 0 {
            var strokes = SeededGenerator(seed: configuration.seed).derived((4 << 32) + UInt64(epoch))
            training = training.strokeVaried(probability: configuration.strokeProbability,
                                             maximumPasses: configuration.strokePasses, generator: &strokes)
        }
        var orderGenerator = SeededGenerator(seed: configuration.seed).derived(UInt64(epoch) + 1)
        order = orderGenerator.permutation(training.count)
        generator = SeededGenerator(seed: configuration.seed).derived((1 << 32) + UInt64(epoch))
        stepInEpoch = 0
    }

    /// Runs one training step and returns its loss; moves to the next epoch after the last batch.
    public func step() throws -> Step {
        precondition(!isFinished, "training has finished")
        let c = configuration
        let start = stepInEpoch * c.batchSize
        let end = min(start + c.batchSize, training.count)
        batch.fill(from: training, indices: order[start..<end], generator: &generator,
                   channelNormalization: (c.network.normalisationMean, c.network.normalisationStd))
        if c.jpegProbability > 0 {
            // Its own stream per step, so the scrambles and a resumed run are unchanged by it.
            var jpeg = SeededGenerator(seed: c.seed).derived((2 << 32) + UInt64(globalStep))
            for b in 0..<batch.count where jpeg.nextUniform() < c.jpegProbability {
                let quality = c.jpegQualities.lowerBound + jpeg.nextInt(below: c.jpegQualities.count)
                try batch.recompressScrambled(puzzle: b, quality: quality,
                                              normalization: (c.network.normalisationMean, c.network.normalisationStd))
            }
        }
        let tau = c.temperature(atStep: globalStep, of: totalSteps)
        let learningRate = c.learningRate(atStep: globalStep, of: totalSteps)

        network.isTraining = true
        let heads = c.network.scoreHeads > 1 ? order[start..<end].map { training.labels![$0] } : nil
        let scores = network.forward(batch.scrambled, heads: heads)
        let layer = try GumbelSinkhornStep(
            scores, temperature: tau, noiseFactor: c.noiseFactor, samplesPerExample: c.samplesPerExample,
            iterations: c.sinkhornIterations, backward: c.backward, generator: &generator, workspace: workspace)
        let matrices = layer.matrices
        var loss = 0.0
        if c.reconstructionWeight > 0 {
            loss = ReconstructionLoss.sumOfSquares(
                matrices: matrices, scrambled: batch.scrambled, target: batch.unscrambled, puzzles: batch.count,
                samplesPerExample: c.samplesPerExample, weight: c.reconstructionWeight, upstream: &upstream,
                scratch: &reconstruction)
        } else {
            if upstream.shape != matrices.shape { upstream = Tensor(shape: matrices.shape) }
            upstream.withUnsafeMutableBufferPointer { g in g.update(repeating: 0) }
        }
        if c.permutationWeight > 0 {
            loss += ReconstructionLoss.permutationCrossEntropy(
                matrices: matrices, permutations: batch.permutations, puzzles: batch.count,
                samplesPerExample: c.samplesPerExample, weight: c.permutationWeight, upstream: &upstream)
        }
        guard loss.isFinite else { throw JigsawTrainingError.nonFiniteLoss(step: globalStep) }
        let scoresGradient = try layer.scoresGradient(upstream: upstream, workspace: workspace)
        network.zeroGradients()
        network.backward(scoresGradient)
        optimiser.learningRate = learningRate
        optimiser.step()

        let puzzles = batch.count
        stepInEpoch += 1
        globalStep += 1
        if stepInEpoch == stepsPerEpoch {
            epoch += 1
            if !isFinished { startEpoch() } else { stepInEpoch = 0 }
        }
        return Step(lossPerPuzzle: loss / Double(puzzles), puzzles: puzzles, temperature: tau,
                    learningRate: learningRate)
    }
}

// MARK: - Checkpoints

extension JigsawTrainer {
    /// What a resume found in a checkpoint.
    public struct Resumption: Sendable, Equatable {
        /// Whether the tensor data matched the checkpoint's `checksum.sha256` (false: it has none,
        /// so only the finiteness of every tensor was checked).
        public var checksumVerified: Bool
        /// Training seconds of the processes before this one.
        public var earlierSeconds: Double

        public init(checksumVerified: Bool, earlierSeconds: Double) {
            self.checksumVerified = checksumVerified
            self.earlierSeconds = earlierSeconds
        }
    }

    /// Writes the network, the optimiser state and the position in the run to `path` atomically,
    /// with the checksum of its tensor data.
    /// - Parameter elapsedSeconds: training seconds of this process so far; the checkpoint stores
    ///   them added to ``earlierSeconds`` so that a resumed run's time covers every part.
    public func saveCheckpoint(to path: String, elapsedSeconds: Double = 0) throws {
        var tensors = network.namedTensors()
        for (name, value) in optimiser.stateTensors() { tensors["optimizer." + name] = value }
        var metadata = network.configuration.metadata.merging(configuration.metadata) { _, new in new }
        metadata["checkpoint.epoch"] = "\(epoch)"
        metadata["checkpoint.step_in_epoch"] = "\(stepInEpoch)"
        metadata["checkpoint.global_step"] = "\(globalStep)"
        metadata["checkpoint.generator"] = generator.state.map(String.init).joined(separator: ",")
        metadata["checkpoint.fingerprint"] = fingerprint
        metadata["checkpoint.seconds"] = String(format: "%.3f", earlierSeconds + max(0, elapsedSeconds))
        try Safetensors.write(tensors, metadata: metadata, toFile: path)
    }

    /// Starts training from the weights of `network` (a trained model of the same architecture,
    /// for fine-tuning) instead of the seeded initialisation; only before the first step.
    /// - Throws: `JigsawTrainingError.invalidModelFile` when the architectures differ (nothing is
    ///   changed then), `NeuralNetError` for mismatched tensors.
    public func startFromWeights(of network: JigsawNetwork, path: String) throws {
        precondition(globalStep == 0, "initial weights are loaded before training starts")
        guard network.configuration == self.network.configuration else {
            throw JigsawTrainingError.invalidModelFile(path: path, reason: "its architecture differs from the one requested")
        }
        try self.network.load(network.namedTensors())
    }

    /// Restores a checkpoint written by ``saveCheckpoint(to:)`` for the same configuration and data.
    ///
    /// Everything is read and checked before anything changes: on any error the trainer is left as
    /// it was. The tensor data must match the checkpoint's checksum when it has one, and every
    /// tensor (weights, running statistics, optimiser moments) must be finite.
    /// - Returns: whether the checksum was verified, and the seconds of the earlier processes.
    /// - Throws: `JigsawTrainingError.unreadableCheckpoint` for a malformed or damaged file,
    ///   `.nonFiniteWeight` or `.negativeRunningVariance` for impossible tensors, `.invalidCheckpoint`
    ///   when it belongs to another run, `NeuralNetError` for mismatched tensors.
    @discardableResult
    public func resume(from path: String) throws -> Resumption {
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(contentsOfFile: path)
        } catch {
            throw JigsawTrainingError.unreadableCheckpoint(path: path, error: error)
        }
        let m = file.metadata
        func fail(_ reason: String) -> JigsawTrainingError { .invalidCheckpoint(path: path, reason: reason) }
        guard m["checkpoint.fingerprint"] == fingerprint else {
            throw fail("it was written by a run with other hyperparameters or data")
        }
        guard let savedEpoch = m["checkpoint.epoch"].flatMap(Int.init),
              let savedStep = m["checkpoint.step_in_epoch"].flatMap(Int.init),
              let savedGlobal = m["checkpoint.global_step"].flatMap(Int.init),
              let words = m["checkpoint.generator"]?.split(separator: ",").compactMap({ UInt64($0) }),
              let savedGenerator = SeededGenerator(state: words),
              savedEpoch >= 0, savedEpoch <= configuration.epochs, savedStep >= 0, savedStep < stepsPerEpoch,
              savedGlobal == savedEpoch * stepsPerEpoch + savedStep else {
            throw fail("its position metadata is missing or inconsistent")
        }
        // Checkpoints written before the time was recorded count from zero.
        let savedSeconds = m["checkpoint.seconds"].map { Double($0) } ?? 0
        guard let savedSeconds, savedSeconds.isFinite, savedSeconds >= 0 else {
            throw fail("its checkpoint.seconds '\(m["checkpoint.seconds"] ?? "")' is not a non-negative number")
        }
        let tensors = try ModelFile.floatTensors(of: file, path: path)
        try ModelFile.checkWeights(tensors, source: path)
        var model: [String: Tensor] = [:]
        var optimiserState: [String: Tensor] = [:]
        for (name, tensor) in tensors {
            if name.hasPrefix("optimizer.") { optimiserState[String(name.dropFirst(10))] = tensor } else { model[name] = tensor }
        }
        // Validate both parts before either is assigned, so a failure leaves the trainer unchanged.
        let probe = try JigsawNetwork(configuration: network.configuration)
        try probe.load(model)
        let probeOptimiser = Adam(parameters: probe.parameters)
        try probeOptimiser.loadState(optimiserState)
        try network.load(model)
        try optimiser.loadState(optimiserState)
        epoch = savedEpoch
        globalStep = savedGlobal
        earlierSeconds = savedSeconds
        if isFinished {
            stepInEpoch = 0
        } else {
            startEpoch()
            stepInEpoch = savedStep
            generator = savedGenerator
        }
        return Resumption(checksumVerified: file.isChecksumVerified, earlierSeconds: savedSeconds)
    }

    /// Identifies the run: hyperparameters and data size (a checkpoint only resumes its own run).
    var fingerprint: String {
        let entries = network.configuration.metadata.merging(configuration.metadata) { _, new in new }
        let text = entries.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
        return "\(text);images=\(training.count)"
    }
}
