import Sorting
import Foundation
import Jigsaw
import NeuralNet
import TensorKit

/// Why a weights file cannot become a served model.
public enum ModelLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not a readable, valid safetensors file.
    case invalidFile(path: String, reason: String)
    /// The file is valid safetensors but does not describe a network this service builds
    /// (bad metadata, unknown architecture, missing or misshapen tensors).
    case invalidModel(name: String, reason: String)
    /// Two files give the same model name.
    case duplicateName(String, paths: [String])
    /// The models directory cannot be listed.
    case unreadableDirectory(path: String, reason: String)
    /// The default model named on the command line is not loaded, or is not a jigsaw model.
    case unknownDefaultModel(String)

    public var description: String {
        switch self {
        case .invalidFile(let path, let reason): "cannot load \(path): \(reason)"
        case .invalidModel(let name, let reason): "model '\(name)' is invalid: \(reason)"
        case .duplicateName(let name, let paths): "model name '\(name)' is given by several files: \(paths.joined(separator: ", "))"
        case .unreadableDirectory(let path, let reason): "cannot read the models directory \(path): \(reason)"
        case .unknownDefaultModel(let name): "default model '\(name)' is not a loaded jigsaw model"
        }
    }
}

/// A loaded model: its description and a pool of network instances ready for inference.
public final class ServiceModel: Sendable {
    /// What a model computes.
    public enum Kind: Sendable, Equatable {
        /// A jigsaw scoring network (`jigsaw-cnn`).
        case jigsaw(JigsawNetworkConfiguration)
        /// A number-sorting network (`sorting-mlp`).
        case sorting(SortingNetworkConfiguration)

        /// `jigsaw` or `sorting`.
        public var name: String {
            switch self {
            case .jigsaw: "jigsaw"
            case .sorting: "sorting"
            }
        }
    }

    /// The name requests use (the file stem for a file).
    public let name: String
    /// The file it came from, or a description of its origin.
    public let source: String
    /// What it computes and with which configuration.
    public let kind: Kind
    /// The weights file's `__metadata__`, or the configuration inferred from tensor shapes.
    public let metadata: [String: String]
    /// Whether the configuration was inferred from tensor shapes (a file without metadata).
    public let isInferred: Bool
    /// Remarks for `/v1/models` (for instance what was inferred and what was assumed).
    public let notes: [String]
    /// The number of trainable parameters.
    public let parameterCount: Int

    /// The jigsaw networks behind dynamic batching (nil for a sorting model).
    let jigsawBatcher: DynamicBatcher<JigsawNetwork>?
    /// The sorting networks behind dynamic batching (nil for a jigsaw model).
    let sortingBatcher: DynamicBatcher<SortingNetwork>?
    /// Whether the tensor data matched the file's `checksum.sha256` (false for a file without one).
    public let isChecksumVerified: Bool
    /// Why the model stopped serving, once its network has produced unusable scores; nil while healthy.
    private let failure = Locked<String?>(nil)

    /// How requests are batched.
    public var batchPolicy: BatchPolicy { jigsawBatcher?.policy ?? sortingBatcher?.policy ?? BatchPolicy() }
    /// Forward passes run so far and their batch sizes.
    public var batchStatistics: BatcherStatistics? { jigsawBatcher?.currentStatistics ?? sortingBatcher?.currentStatistics }

    /// Builds a model from metadata and tensors, as read from a weights file.
    ///
    /// When `metadata` has no `architecture` the tutorial's layout is inferred from the tensor
    /// shapes (see `ModelInference.inferMetadata(shapes:)`).
    /// - Parameters:
    ///   - name: the model's name.
    ///   - metadata: the file's `__metadata__` string map.
    ///   - tensors: every float tensor by name (PyTorch's `num_batches_tracked` counters may be present).
    ///   - source: where it came from, for `/v1/models`.
    ///   - instances: how many network instances to build (concurrent forward passes).
    ///   - batching: how concurrent requests are gathered into forward passes.
    /// - Throws: ``ModelLoadError/invalidModel(name:reason:)``.
    public convenience init(name: String, metadata: [String: String], tensors: [String: Tensor], source: String = "memory",
                            instances: Int = 2, batching: BatchPolicy = BatchPolicy()) throws(ModelLoadError) {
        let file: ModelFile
        do {
            file = try ModelFile(metadata: metadata, tensors: tensors, source: source)
        } catch {
            throw .invalidModel(name: name, reason: Self.reason(error))
        }
        try self.init(name: name, file: file, instances: instances, batching: batching)
    }

    /// Pools `instances` networks built from a read model file.
    /// - Throws: ``ModelLoadError/invalidModel(name:reason:)``.
    public init(name: String, file: ModelFile, instances: Int = 2, batching: BatchPolicy = BatchPolicy()) throws(ModelLoadError) {
        precondition(instances >= 1, "a model needs at least one network instance")
        self.name = name
        source = file.source
        metadata = file.metadata
        notes = file.notes
        isInferred = file.isInferred
        isChecksumVerified = file.isChecksumVerified
        do {
            switch file.kind {
            case .jigsaw:
                var networks: [JigsawNetwork] = []
                for _ in 0..<instances {
                    let network = try file.makeJigsawNetwork()
                    guard network.configuration.scoreHeads == 1 else {
                        throw JigsawTrainingError.invalidModelFile(
                            path: file.source, reason: "it is an assembly network (\(network.configuration.scoreHeads) score heads), "
                            + "served by /v1/assemble: load it with --assembly-model")
                    }
                    network.threadCount = 1
                    networks.append(network)
                }
                kind = .jigsaw(networks[0].configuration)
                parameterCount = networks[0].parameterCount
                jigsawBatcher = DynamicBatcher(networks, policy: batching) { network, pieces in
                    JigsawInference.scores(network, pieces: pieces)
                }
                sortingBatcher = nil
            case .sorting:
                var networks: [SortingNetwork] = []
                for _ in 0..<instances { networks.append(try file.makeSortingNetwork()) }
                kind = .sorting(networks[0].configuration)
                parameterCount = networks[0].parameterCount
                jigsawBatcher = nil
                sortingBatcher = DynamicBatcher(networks, policy: batching) { network, numbers in network.forward(numbers) }
            }
        } catch {
            throw .invalidModel(name: name, reason: Self.reason(error))
        }
    }

    /// Loads a safetensors weights file.
    ///
    /// Float tensors of any float dtype are converted to float32; integer tensors are accepted
    /// only for PyTorch's `num_batches_tracked` counters, which are skipped.
    /// - Parameters:
    ///   - path: the file.
    ///   - name: the model name; by default the file name without its extension.
    ///   - instances: network instances to build.
    ///   - batching: how concurrent requests are gathered into forward passes.
    /// - Throws: ``ModelLoadError/invalidFile(path:reason:)`` or ``ModelLoadError/invalidModel(name:reason:)``.
    public convenience init(contentsOfFile path: String, name: String? = nil, instances: Int = 2,
                            batching: BatchPolicy = BatchPolicy()) throws(ModelLoadError) {
        let modelName = name ?? ServiceModel.name(forFile: path)
        let file: ModelFile
        do {
            file = try ModelFile(contentsOfFile: path)
        } catch let error as SafetensorsError {
            throw .invalidFile(path: path, reason: String(describing: error))
        } catch JigsawTrainingError.unreadableModelFile(_, let error) {
            throw .invalidFile(path: path, reason: String(describing: error))
        } catch JigsawTrainingError.nonFiniteWeight(_, let tensor, let index, let value) {
            throw .invalidFile(path: path, reason: "tensor '\(tensor)' holds \(value) at element \(index)")
        } catch JigsawTrainingError.negativeRunningVariance(_, let tensor, let index, let value) {
            throw .invalidFile(path: path, reason: "running variance '\(tensor)' is negative (\(value)) at element \(index)")
        } catch {
            throw .invalidModel(name: modelName, reason: Self.reason(error))
        }
        try self.init(name: modelName, file: file, instances: instances, batching: batching)
    }

    // MARK: - Health

    /// The largest score magnitude a healthy network produces from pieces in [0, 1]. The shipped
    /// models score below 25 on their sample puzzles; far beyond this the weights are broken (and
    /// a soft matrix at τ = 1 would be noise, see `PuzzleSolver.maximumScaledScore`).
    public static let maximumPlausibleScore: Float = 1e6

    /// Why the model no longer serves, or nil while it does.
    public var failureReason: String? { failure.value }

    /// Whether the model serves requests.
    public var isReady: Bool { failureReason == nil }

    /// Takes the model out of service: readiness reports it and its requests get 503.
    /// The first reason is kept.
    public func markFailed(_ reason: String) {
        failure.update { if $0 == nil { $0 = reason } }
    }

    /// - Throws: `model_unavailable` once the model has failed.
    func checkAvailable() throws(ServiceError) {
        if let reason = failureReason { throw .modelUnavailable(name: name, reason: reason) }
    }

    /// Checks scores the network computed from finite input: non-finite or implausibly large ones
    /// mean its weights are broken, which is the server's fault, not the client's, so the model is
    /// taken out of service.
    /// - Parameter maximumMagnitude: the largest plausible `|score|`, or nil to check finiteness only
    ///   (for inputs whose scale the client chooses).
    /// - Throws: `model_unavailable` naming the model and what was wrong.
    func checkScores(_ scores: Tensor, maximumMagnitude: Float? = maximumPlausibleScore) throws(ServiceError) {
        var largest: Float = 0
        var finite = true
        scores.withUnsafeBufferPointer { values in
            for value in values {
                guard value.isFinite else { finite = false; return }
                largest = max(largest, abs(value))
            }
        }
        guard !finite || largest > (maximumMagnitude ?? .infinity) else { return }
        let reason = finite
            ? "its network produced a score of magnitude \(largest) (above \(maximumMagnitude ?? .infinity)) from pieces in [0, 1]; its weights are broken"
            : "its network produced non-finite scores (NaN or infinity) from finite input; its weights are broken"
        markFailed(reason)
        throw .modelUnavailable(name: name, reason: reason)
    }

    /// The reason of a loading error without the path the model's name already stands for.
    private static func reason(_ error: any Error) -> String {
        if case JigsawTrainingError.invalidModelFile(_, let reason) = error { return reason }
        return String(describing: error)
    }

    /// The model name of a weights file: its name without directory and extension.
    public static func name(forFile path: String) -> String {
        let base = (path as NSString).lastPathComponent
        return base.hasSuffix(".safetensors") ? String(base.dropLast(".safetensors".count)) : (base as NSString).deletingPathExtension
    }

    /// The jigsaw configuration, or `nil` for another kind.
    public var jigsawConfiguration: JigsawNetworkConfiguration? {
        if case .jigsaw(let configuration) = kind { return configuration }
        return nil
    }

    /// The sorting configuration, or `nil` for another kind.
    public var sortingConfiguration: SortingNetworkConfiguration? {
        if case .sorting(let configuration) = kind { return configuration }
        return nil
    }

    /// The evaluation figures written by the trainers: the `eval.*` metadata entries without the
    /// prefix (`kendall_tau`, `prop_wrong`, `prop_any_wrong`, `l1`, `l2`, `dataset`, …).
    public var evaluation: [String: String] {
        var result: [String: String] = [:]
        for (key, value) in metadata where key.hasPrefix("eval.") {
            result[String(key.dropFirst("eval.".count))] = value
        }
        return result
    }
}
