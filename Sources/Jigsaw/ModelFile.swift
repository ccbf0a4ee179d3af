import NeuralNet
import Sorting
import TensorKit

/// A weights file read once and understood: the one loader of the project's networks, used by the
/// trainer, the evaluator, the server and the benchmarks.
///
/// It reads every tensor (any float dtype becomes float32; PyTorch's integer `num_batches_tracked`
/// counters are skipped), takes the architecture from `__metadata__` or, for a metadata-less
/// PyTorch export, infers it from the tensor shapes (``ModelInference``), and builds a jigsaw or a
/// sorting network from it. Nothing is built until asked, so a server can build one instance per
/// worker from the same file.
public struct ModelFile: Sendable {
    /// What the file describes.
    public enum Kind: String, Sendable {
        case jigsaw
        case sorting
    }

    /// Where it came from (a path, or a description for an in-memory model).
    public let source: String
    /// The file's `__metadata__`, with the inferred configuration merged in for a PyTorch export.
    public let metadata: [String: String]
    /// Every float tensor by name.
    public let tensors: [String: Tensor]
    /// Whether the configuration was inferred from tensor shapes.
    public let isInferred: Bool
    /// What was inferred and assumed, for people reading `/v1/models` or a log.
    public let notes: [String]
    /// Jigsaw or sorting.
    public let kind: Kind
    /// Whether the tensor data matched the file's `checksum.sha256` (false for a file without one,
    /// such as a PyTorch export, and for tensors given in memory).
    public let isChecksumVerified: Bool

    /// Reads and understands a weights file: the data must match its checksum when the metadata
    /// has one, and every tensor must be finite.
    /// - Throws: `JigsawTrainingError.unreadableModelFile` for a malformed or damaged file (naming
    ///   it and the reason), `.nonFiniteWeight` or `.negativeRunningVariance` for impossible
    ///   weights, `.invalidModelFile` when the tensors or the metadata do not describe a network of
    ///   this project.
    public init(contentsOfFile path: String) throws {
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(contentsOfFile: path)
        } catch {
            throw JigsawTrainingError.unreadableModelFile(path: path, error: error)
        }
        try self.init(metadata: file.metadata, tensors: try Self.floatTensors(of: file, path: path), source: path,
                      checksumVerified: file.isChecksumVerified)
    }

    /// Understands metadata and tensors already in memory (`source` names them in errors).
    /// - Parameter checksumVerified: whether the tensors were read from a file whose checksum matched.
    /// - Throws: `JigsawTrainingError.nonFiniteWeight` or `.negativeRunningVariance` for impossible
    ///   weights, `.invalidModelFile` when they do not describe a network.
    public init(metadata: [String: String], tensors: [String: Tensor], source: String,
                checksumVerified: Bool = false) throws {
        self.source = source
        var tensors = tensors
        for name in tensors.keys where Self.isCounter(name) { tensors[name] = nil }
        try Self.checkWeights(tensors, source: source)
        self.tensors = tensors
        isChecksumVerified = checksumVerified
        var effective = metadata
        if metadata[JigsawNetworkConfiguration.Key.architecture] == nil {
            do throws(ModelInferenceError) {
                let inferred = try ModelInference.inferMetadata(shapes: tensors.mapValues(\.shape))
                effective.merge(inferred.metadata) { _, new in new }
                notes = inferred.notes + (checksumVerified ? [] : [Self.noChecksumNote])
            } catch {
                throw JigsawTrainingError.invalidModelFile(path: source, reason: error.description)
            }
            isInferred = true
        } else {
            notes = checksumVerified ? [] : [Self.noChecksumNote]
            isInferred = false
        }
        self.metadata = effective
        switch effective[JigsawNetworkConfiguration.Key.architecture] {
        case JigsawNetworkConfiguration.architecture: kind = .jigsaw
        case SortingNetworkConfiguration.architecture: kind = .sorting
        case let other:
            throw JigsawTrainingError.invalidModelFile(
                path: source, reason: "unsupported architecture '\(other ?? "")' (expected \(JigsawNetworkConfiguration.architecture) or \(SortingNetworkConfiguration.architecture))")
        }
    }

    /// A new jigsaw network with the file's weights, in evaluation mode.
    /// - Throws: `JigsawTrainingError.invalidModelFile` for another kind of network; `NeuralNetError`
    ///   for bad metadata or missing, unused or misshapen tensors.
    public func makeJigsawNetwork() throws -> JigsawNetwork {
        guard kind == .jigsaw else {
            throw JigsawTrainingError.invalidModelFile(path: source, reason: "it holds a \(kind.rawValue) network, not a jigsaw network")
        }
        let network = try JigsawNetwork(metadata: metadata, tensors: tensors)
        network.isTraining = false
        return network
    }

    /// A new sorting network with the file's weights.
    /// - Throws: `JigsawTrainingError.invalidModelFile` for another kind of network; `NeuralNetError`
    ///   for bad metadata or tensors.
    public func makeSortingNetwork() throws -> SortingNetwork {
        guard kind == .sorting else {
            throw JigsawTrainingError.invalidModelFile(path: source, reason: "it holds a \(kind.rawValue) network, not a sorting network")
        }
        return try SortingNetwork(metadata: metadata, tensors: tensors)
    }

    /// Every tensor of a file as float32, without PyTorch's `num_batches_tracked` counters: the one
    /// place tensors are read from weights files and checkpoints.
    /// - Throws: `JigsawTrainingError.invalidModelFile` for another integer tensor, `SafetensorsError`
    ///   for a tensor that cannot be read.
    public static func floatTensors(of file: SafetensorsFile, path: String) throws -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for name in file.names where !isCounter(name) {
            guard let entry = file.entries[name], entry.dtype.isFloatingPoint else {
                throw JigsawTrainingError.invalidModelFile(
                    path: path, reason: "tensor '\(name)' has integer dtype \(file.entries[name]?.dtype.rawValue ?? "?")")
            }
            tensors[name] = try file.tensor(named: name)
        }
        return tensors
    }

    /// What `/v1/models` and the logs say of a file without a checksum.
    public static let noChecksumNote =
        "no \(Safetensors.checksumKey) in the metadata: the tensor data could not be verified (weights are checked finite)"

    /// Refuses tensors no trained network holds: NaN or ±∞ anywhere (weights, running statistics,
    /// optimiser moments), or a negative batch-norm running variance.
    /// - Throws: `JigsawTrainingError.nonFiniteWeight` or `.negativeRunningVariance` naming the
    ///   first bad element in sorted tensor order.
    public static func checkWeights(_ tensors: [String: Tensor], source: String) throws {
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            let isVariance = name.hasSuffix("running_var")
            let bad: (index: Int, value: Float)? = tensor.withUnsafeBufferPointer { values in
                for (index, value) in values.enumerated() where !value.isFinite || (isVariance && value < 0) {
                    return (index, value)
                }
                return nil
            }
            guard let bad else { continue }
            if bad.value.isFinite {
                throw JigsawTrainingError.negativeRunningVariance(path: source, tensor: name, index: bad.index, value: bad.value)
            }
            let text = bad.value.isNaN ? "nan" : (bad.value > 0 ? "inf" : "-inf")
            throw JigsawTrainingError.nonFiniteWeight(path: source, tensor: name, index: bad.index, value: text)
        }
    }

    static func isCounter(_ name: String) -> Bool {
        name == "num_batches_tracked" || name.hasSuffix(".num_batches_tracked")
    }
}
