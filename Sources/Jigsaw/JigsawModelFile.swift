import NeuralNet
import TensorKit

/// Jigsaw network weights in safetensors files: the project's own (with `__metadata__`) and
/// PyTorch exports of the tutorial's `SinkhornConvNet` (tensor names only).
public enum JigsawModelFile {
    /// A loaded model: the network (in evaluation mode), the file's metadata and whether the
    /// architecture had to be inferred from tensor shapes.
    public struct Loaded {
        public let network: JigsawNetwork
        public let metadata: [String: String]
        public let inferredConfiguration: Bool
        /// Whether the tensor data matched the file's `checksum.sha256` (false: the file has none).
        public let checksumVerified: Bool
    }

    /// Reads a weights file and builds its jigsaw network (through ``ModelFile``).
    ///
    /// Without an `architecture` metadata entry the tutorial layout is inferred from the shapes
    /// (``ModelInference``), with the tutorial's MNIST normalisation (mean 0.1307, std 0.3081).
    /// - Throws: `JigsawTrainingError.unreadableModelFile` for a malformed or damaged file,
    ///   `.nonFiniteWeight` for a NaN or infinite weight, `.invalidModelFile` when the tensors do not
    ///   describe a jigsaw network, `NeuralNetError` for missing, unused or mis-shaped tensors.
    public static func load(contentsOfFile path: String) throws -> Loaded {
        try load(ModelFile(contentsOfFile: path))
    }

    /// Builds the jigsaw network of a read model file.
    public static func load(_ file: ModelFile) throws -> Loaded {
        Loaded(network: try file.makeJigsawNetwork(), metadata: file.metadata, inferredConfiguration: file.isInferred,
               checksumVerified: file.isChecksumVerified)
    }

    /// Writes the network's parameters and buffers with its configuration and `extra` metadata
    /// (atomically: a temporary file renamed over `path`).
    public static func save(_ network: JigsawNetwork, metadata extra: [String: String] = [:], to path: String) throws {
        var metadata = network.configuration.metadata
        metadata.merge(extra) { _, new in new }
        try Safetensors.write(network.namedTensors(), metadata: metadata, toFile: path)
    }

    /// Rewrites a project weights file with `entries` merged into its metadata (atomically); the
    /// tensor data is kept byte for byte and its checksum recorded.
    /// - Throws: `JigsawTrainingError.invalidModelFile` for a file without the project's metadata (a
    ///   PyTorch export), `.unreadableModelFile` for a malformed or damaged one.
    public static func recordMetadata(_ entries: [String: String], inFile path: String) throws {
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(contentsOfFile: path)
        } catch {
            throw JigsawTrainingError.unreadableModelFile(path: path, error: error)
        }
        guard file.metadata[JigsawNetworkConfiguration.Key.architecture] != nil else {
            throw JigsawTrainingError.invalidModelFile(path: path, reason: "only the project's own weights files carry metadata")
        }
        do {
            try Safetensors.rewriteMetadata(ofFile: path) { $0.merging(entries) { _, new in new } }
        } catch {
            throw JigsawTrainingError.unreadableModelFile(path: path, error: error)
        }
    }

    /// Adds the checksum of the tensor data (``Safetensors/checksumKey``) to a weights file that has
    /// none, such as a PyTorch export or a file written before checksums, keeping every other
    /// metadata entry and the tensor data byte for byte.
    /// - Returns: false when the file already had one (which reading it verified).
    /// - Throws: `JigsawTrainingError.unreadableModelFile` for a malformed or damaged file.
    @discardableResult
    public static func addChecksum(toFile path: String) throws -> Bool {
        do {
            let file = try SafetensorsFile(contentsOfFile: path)
            guard !file.isChecksumVerified else { return false }
            try Safetensors.rewriteMetadata(ofFile: path) { $0 }
            return true
        } catch {
            throw JigsawTrainingError.unreadableModelFile(path: path, error: error)
        }
    }
}
