import NeuralNet
import Permutations
import TensorKit

/// Where training and evaluation images come from.
public enum DatasetKind: String, Sendable, CaseIterable {
    /// MNIST in IDX format (`train-images-idx3-ubyte[.gz]`, `t10k-…`).
    case mnist
    /// Fashion-MNIST (same format; Debian's `dataset-fashion-mnist` installs it).
    case fashionMNIST = "fashion-mnist"
    /// A folder of PNG images (`train/` and `test/` subfolders, or one folder for both).
    case folder
    /// Photographs: `train/` and `test/` folders of PNG, JPEG or WebP files, searched recursively
    /// (split by source photo); training takes fresh random crops every epoch, the test split fixed
    /// crops (`PhotoCropSampler`, `PhotoCollection.testCrops`).
    case photos
}

/// Every hyperparameter of a jigsaw training run (PAPERS.md §3; defaults are the tutorial's).
public struct JigsawTrainingConfiguration: Equatable, Sendable {
    /// The network to train.
    public var network: JigsawNetworkConfiguration
    /// The data set and the folder that holds it.
    public var dataset: DatasetKind
    public var dataDirectory: String
    /// Sinkhorn temperature τ at the first step.
    public var temperature: Float
    /// τ at the last step; when set, τ follows a geometric schedule from `temperature` to it.
    public var finalTemperature: Float?
    /// Sinkhorn iterations per forward pass.
    public var sinkhornIterations: Int
    /// The scale of the Gumbel noise added to the scores (0 turns sampling off).
    public var noiseFactor: Float
    /// Gumbel-Sinkhorn samples drawn per puzzle; the loss is averaged over them.
    public var samplesPerExample: Int
    /// Adam's learning rate.
    public var learningRate: Float
    /// Learning rate at the last step; when set, a cosine schedule runs from `learningRate` to it.
    public var finalLearningRate: Float?
    /// Adam's ε (PyTorch's default 1e-8).
    public var adamEpsilon: Float
    /// Puzzles per training step.
    public var batchSize: Int
    /// Passes over the training images.
    public var epochs: Int
    /// The seed of every random draw (initialisation, order, scrambles, noise).
    public var seed: UInt64
    /// Worker threads for the network and Sinkhorn.
    public var threads: Int
    /// The Sinkhorn backward.
    public var backward: SinkhornBackward
    /// Use at most this many training images (all when nil).
    public var trainLimit: Int?
    /// Images held out from the end of the training split for the per-epoch validation (0: none).
    public var validationSize: Int
    /// The weight of the paper's loss, the summed squared reconstruction error (1 in the paper).
    public var reconstructionWeight: Float
    /// The weight of a permutation cross-entropy `−Σᵢ log P[i, π(i)]` against the true scramble
    /// (0 in the paper). It counts every misplaced piece, inked or nearly blank, as the metrics do,
    /// while the reconstruction error barely sees a piece that differs from another in a few pixels.
    public var permutationWeight: Float
    /// Photos: the fraction of scrambled puzzles re-encoded as JPEG before the network sees them
    /// (the scrambled image assembled, compressed at a quality drawn from ``jpegQualities`` and
    /// decoded), as a phone saves a scrambled photo; 0 for none.
    public var jpegProbability: Float = 0
    /// The JPEG qualities drawn uniformly for ``jpegProbability``.
    public var jpegQualities: ClosedRange<Int> = 60...95
    /// Every epoch, each training image is translated by a column and a row offset drawn
    /// uniformly from `-shiftPixels...shiftPixels` (uncovered pixels black), so the network meets
    /// digits that do not sit where MNIST centres them; 0 for none.
    public var shiftPixels: Int = 0
    /// The share of training images whose strokes are made thicker or thinner every epoch (half
    /// each way, ``ImageDataset/strokeVaried(probability:generator:)``), so that a network meets
    /// more and less ink than the class usually has, as an assembly head does when it is given the
    /// pieces of another digit; 0 for none.
    public var strokeProbability: Float = 0
    /// The largest number of 3 × 3 passes of a stroke variation (each image draws `1...strokePasses`).
    public var strokePasses: Int = 1
    /// The `checksum.sha256` of the weights file training starts from when it fine-tunes a trained
    /// model (nil: the seeded initialisation), so a checkpoint is resumed only with the same start.
    public var initialWeightsChecksum: String?

    public init(network: JigsawNetworkConfiguration = JigsawNetworkConfiguration(),
                dataset: DatasetKind = .mnist, dataDirectory: String = "",
                temperature: Float = 0.1, finalTemperature: Float? = nil, sinkhornIterations: Int = 20,
                noiseFactor: Float = 1, samplesPerExample: Int = 1, learningRate: Float = 1e-4,
                finalLearningRate: Float? = nil, adamEpsilon: Float = 1e-8, batchSize: Int = 64,
                epochs: Int = 5, seed: UInt64 = 0, threads: Int = 2, backward: SinkhornBackward = .unrolled,
                trainLimit: Int? = nil, validationSize: Int = 2000, reconstructionWeight: Float = 1,
                permutationWeight: Float = 0) {
        self.network = network
        self.dataset = dataset
        self.dataDirectory = dataDirectory
        self.temperature = temperature
        self.finalTemperature = finalTemperature
        self.sinkhornIterations = sinkhornIterations
        self.noiseFactor = noiseFactor
        self.samplesPerExample = samplesPerExample
        self.learningRate = learningRate
        self.finalLearningRate = finalLearningRate
        self.adamEpsilon = adamEpsilon
        self.batchSize = batchSize
        self.epochs = epochs
        self.seed = seed
        self.threads = threads
        self.backward = backward
        self.trainLimit = trainLimit
        self.validationSize = validationSize
        self.reconstructionWeight = reconstructionWeight
        self.permutationWeight = permutationWeight
    }

    /// Checks every value; the message names the option.
    public func validate() throws(JigsawTrainingError) {
        func require(_ condition: Bool, _ message: String) throws(JigsawTrainingError) {
            if !condition { throw .invalidConfiguration(message) }
        }
        do { try network.validate() } catch { throw .invalidConfiguration("\(error)") }
        try require(network.grid >= 2, "grid must be at least 2 (a 1×1 puzzle has nothing to solve)")
        try require(temperature.isFinite && temperature > 0, "temperature must be a positive number")
        if let final = finalTemperature {
            try require(final.isFinite && final > 0, "final temperature must be a positive number")
        }
        try require(sinkhornIterations >= 1 && sinkhornIterations <= 100_000, "sinkhorn iterations must be in 1...100000")
        try require(noiseFactor.isFinite && noiseFactor >= 0, "noise factor must be a non-negative number")
        try require(samplesPerExample >= 1 && samplesPerExample <= 1000, "samples per example must be in 1...1000")
        try require(learningRate.isFinite && learningRate > 0, "learning rate must be a positive number")
        if let final = finalLearningRate {
            try require(final.isFinite && final >= 0, "final learning rate must be a non-negative number")
        }
        try require(adamEpsilon.isFinite && adamEpsilon > 0, "Adam epsilon must be a positive number")
        try require(batchSize >= 1 && batchSize <= 65_536, "batch size must be in 1...65536")
        try require(epochs >= 1, "epochs must be at least 1")
        try require(threads >= 1 && threads <= 256, "threads must be in 1...256")
        try require(trainLimit.map { $0 >= 1 } ?? true, "train limit must be at least 1")
        try require(validationSize >= 0, "validation size must not be negative")
        try require(jpegProbability.isFinite && jpegProbability >= 0 && jpegProbability <= 1, "JPEG probability must be in 0...1")
        try require(jpegQualities.lowerBound >= 1 && jpegQualities.upperBound <= 100, "JPEG qualities must be in 1...100")
        try require(jpegProbability == 0 || network.channels == 1 || network.channels == 3, "JPEG re-encoding needs 1 or 3 channels")
        try require(shiftPixels >= 0 && shiftPixels < network.imageSize / 2, "shift must be in 0..<\(network.imageSize / 2) pixels")
        try require(strokeProbability >= 0 && strokeProbability <= 1, "stroke probability must be in [0, 1]")
        try require((1...4).contains(strokePasses), "stroke passes must be in 1...4")
        try require(reconstructionWeight.isFinite && reconstructionWeight >= 0 && permutationWeight.isFinite
                    && permutationWeight >= 0 && reconstructionWeight + permutationWeight > 0,
                    "loss weights must be non-negative numbers, not both zero")
    }

    /// τ at step `step` of `total` (geometric interpolation when a final temperature is set).
    public func temperature(atStep step: Int, of total: Int) -> Float {
        guard let final = finalTemperature, total > 1 else { return temperature }
        let t = Float(step) / Float(total - 1)
        return temperature * _pow(final / temperature, t)
    }

    /// The learning rate at step `step` of `total` (cosine decay when a final rate is set).
    public func learningRate(atStep step: Int, of total: Int) -> Float {
        guard let final = finalLearningRate, total > 1 else { return learningRate }
        let t = Float(step) / Float(total - 1)
        return final + (learningRate - final) * 0.5 * (1 + _cos(Float.pi * t))
    }

    /// The training hyperparameters as `train.*` metadata entries.
    public var metadata: [String: String] {
        var m: [String: String] = [
            "train.dataset": dataset.rawValue,
            "train.temperature": "\(temperature)",
            "train.sinkhorn_iterations": "\(sinkhornIterations)",
            "train.noise_factor": "\(noiseFactor)",
            "train.samples_per_example": "\(samplesPerExample)",
            "train.learning_rate": "\(learningRate)",
            "train.adam_epsilon": "\(adamEpsilon)",
            "train.batch_size": "\(batchSize)",
            "train.epochs": "\(epochs)",
            "train.seed": "\(seed)",
            "train.backward": backward.rawValue,
            "train.validation_size": "\(validationSize)",
            "train.loss": permutationWeight == 0 ? "mse_sum" : reconstructionWeight == 0 ? "permutation_ce" : "mse_sum+permutation_ce",
        ]
        if reconstructionWeight != 1 || permutationWeight != 0 {
            m["train.reconstruction_weight"] = "\(reconstructionWeight)"
            m["train.permutation_weight"] = "\(permutationWeight)"
        }
        if let final = finalTemperature { m["train.final_temperature"] = "\(final)" }
        if let final = finalLearningRate { m["train.final_learning_rate"] = "\(final)" }
        if let limit = trainLimit { m["train.limit"] = "\(limit)" }
        if shiftPixels > 0 { m["train.shift_pixels"] = "\(shiftPixels)" }
        if strokeProbability > 0 { m["train.stroke_probability"] = "\(strokeProbability)" }
        if strokeProbability > 0 && strokePasses > 1 { m["train.stroke_passes"] = "\(strokePasses)" }
        if let initialWeightsChecksum { m["train.initial_weights_sha256"] = initialWeightsChecksum }
        if jpegProbability > 0 {
            m["train.jpeg_probability"] = "\(jpegProbability)"
            m["train.jpeg_quality"] = "\(jpegQualities.lowerBound)-\(jpegQualities.upperBound)"
        }
        return m
    }
}

/// Errors of training, evaluation and model files.
public enum JigsawTrainingError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidConfiguration(String)
    case datasetMismatch(String)
    case invalidCheckpoint(path: String, reason: String)
    case invalidModelFile(path: String, reason: String)
    case nonFiniteLoss(step: Int)
    /// A weights file that is not a valid, undamaged safetensors file (a checksum mismatch included).
    case unreadableModelFile(path: String, error: SafetensorsError)
    /// A checkpoint that is not a valid, undamaged safetensors file (a checksum mismatch included).
    case unreadableCheckpoint(path: String, error: SafetensorsError)
    /// A weight or buffer holding NaN or ±∞ (`value` as text: `nan`, `inf`, `-inf`).
    case nonFiniteWeight(path: String, tensor: String, index: Int, value: String)
    /// A batch-norm running variance below zero, which no training produces.
    case negativeRunningVariance(path: String, tensor: String, index: Int, value: Float)

    public var description: String {
        switch self {
        case .invalidConfiguration(let message): return "invalid configuration: \(message)"
        case .datasetMismatch(let message): return "dataset does not fit the model: \(message)"
        case .invalidCheckpoint(let path, let reason): return "cannot resume from \(path): \(reason)"
        case .invalidModelFile(let path, let reason): return "cannot load model \(path): \(reason)"
        case .nonFiniteLoss(let step): return "the loss became NaN or infinite at step \(step)"
        case .unreadableModelFile(let path, let error): return "cannot load model \(path): \(error)"
        case .unreadableCheckpoint(let path, let error): return "cannot resume from \(path): \(error)"
        case .nonFiniteWeight(let path, let tensor, let index, let value):
            return "\(path): tensor '\(tensor)' holds \(value) at element \(index); the file is damaged"
        case .negativeRunningVariance(let path, let tensor, let index, let value):
            return "\(path): running variance '\(tensor)' is negative (\(value)) at element \(index); the file is damaged"
        }
    }
}
