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
    }

    /// Reads a weights file and builds its network.
    ///
    /// Without an `architecture` metadata entry the tutorial layout is inferred from the shapes:
    /// `g_1.0.weight [h, C, k, k]`, `g_2.weight [n, h·q²]` give grid `√n`, piece side `2q`, image side
    /// `grid · 2q`, with the tutorial's MNIST normalisation (mean 0.1307, std 0.3081).
    /// - Throws: `SafetensorsError` for a malformed file, `JigsawTrainingError.invalidModelFile` when
    ///   the tensors do not describe a jigsaw network, `NeuralNetError` for missing, unused or
    ///   mis-shaped tensors.
    public static func load(contentsOfFile path: String) throws -> Loaded {
        let file = try SafetensorsFile(contentsOfFile: path)
        return try load(file, path: path)
    }

    /// Builds the network of an already-read safetensors file (`path` only names it in errors).
    public static func load(_ file: SafetensorsFile, path: String) throws -> Loaded {
        var tensors: [String: Tensor] = [:]
        for name in file.names where !name.hasSuffix("num_batches_tracked") {
            tensors[name] = try file.tensor(named: name)
        }
        var metadata = file.metadata
        var inferred = false
        if metadata[JigsawNetworkConfiguration.Key.architecture] == nil {
            let configuration = try inferConfiguration(file: file, path: path)
            metadata.merge(configuration.metadata) { _, new in new }
            inferred = true
        } else if metadata[JigsawNetworkConfiguration.Key.architecture] != JigsawNetworkConfiguration.architecture {
            throw JigsawTrainingError.invalidModelFile(
                path: path, reason: "architecture \(metadata[JigsawNetworkConfiguration.Key.architecture] ?? "") is not a jigsaw network")
        }
        let network = try JigsawNetwork(metadata: metadata, tensors: tensors)
        network.isTraining = false
        return Loaded(network: network, metadata: metadata, inferredConfiguration: inferred)
    }

    /// The tutorial configuration that fits a metadata-less file's tensor shapes.
    static func inferConfiguration(file: SafetensorsFile, path: String) throws -> JigsawNetworkConfiguration {
        func shape(_ name: String) throws -> [Int] {
            guard let entry = file.entries[name] else {
                throw JigsawTrainingError.invalidModelFile(
                    path: path, reason: "no architecture metadata and no tensor \(name) to infer it from")
            }
            return entry.shape
        }
        let conv = try shape("g_1.0.weight")
        guard conv.count == 4, conv[2] == conv[3], conv[2] % 2 == 1 else {
            throw JigsawTrainingError.invalidModelFile(path: path, reason: "g_1.0.weight has shape \(conv)")
        }
        var blocks = 1
        while file.entries["g_1.\(4 * blocks).weight"] != nil { blocks += 1 }
        let hiddenUnits = file.entries["g_2.0.weight"]?.shape.first ?? 0
        let head = try shape(hiddenUnits > 0 ? "g_2.2.weight" : "g_2.weight")
        let features = hiddenUnits > 0 ? try shape("g_2.0.weight") : head
        guard head.count == 2, features.count == 2 else {
            throw JigsawTrainingError.invalidModelFile(path: path, reason: "g_2 weights are not matrices")
        }
        let pieces = head[0]
        let grid = Int(Double(pieces).squareRoot().rounded())
        let hidden = conv[0]
        let side = features[1] / max(hidden, 1)
        let q = Int(Double(side).squareRoot().rounded())
        guard grid * grid == pieces, grid >= 1, q * q * hidden == features[1], q >= 1 else {
            throw JigsawTrainingError.invalidModelFile(
                path: path, reason: "cannot infer a square grid and piece size from \(head) and \(features)")
        }
        let piece = q << blocks
        return JigsawNetworkConfiguration(
            grid: grid, imageSize: grid * piece, channels: conv[1], hiddenChannels: hidden, kernelSize: conv[2],
            extraConvolutionBlocks: blocks - 1, hiddenUnits: hiddenUnits)
    }

    /// Writes the network's parameters and buffers with its configuration and `extra` metadata
    /// (atomically: a temporary file renamed over `path`).
    public static func save(_ network: JigsawNetwork, metadata extra: [String: String] = [:], to path: String) throws {
        var metadata = network.configuration.metadata
        metadata.merge(extra) { _, new in new }
        try Safetensors.write(network.namedTensors(), metadata: metadata, toFile: path)
    }
}
