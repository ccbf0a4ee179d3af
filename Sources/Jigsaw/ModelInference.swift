import Sorting
import NeuralNet

/// Why a network configuration cannot be inferred from a weights file without metadata.
public struct ModelInferenceError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Architecture inference for weights files without `__metadata__` (PyTorch `state_dict` exports).
public enum ModelInference {
    /// Infers the configuration of a weights file that has no `__metadata__` (a PyTorch
    /// `save_file(model.state_dict())` export of the tutorial's network) from its tensor shapes.
    ///
    /// Jigsaw network (PAPERS.md §3): `g_1.0.weight [h, C, k, k]` gives the hidden channels, the
    /// input channels and the kernel; block `b` adds `g_1.(4b).weight`; `g_2.weight [n, h·s²]` (or
    /// `g_2.0.weight [u, h·s²]` with `g_2.2.weight [n, u]`) gives `grid = √n` and the feature side
    /// `s`, and a `context.weight [u, h·s²]` (or `[u, m]` after `context.embed.weight [m, h·s²]`) the set context, so the piece side is `p = s · 2^blocks` (a piece of `p + 1` pixels would give the same
    /// shapes; the even side is assumed) and the image size `grid · p`. The normalisation is the
    /// tutorial's MNIST mean 0.1307 and std 0.3081.
    /// Sorting network: `fc1.weight [h, 1]` and `fc2.weight [N, h]` give `sorting-mlp` with count `N`.
    /// - Returns: the metadata to build the network with, and notes saying what was assumed.
    public static func inferMetadata(shapes: [String: [Int]]) throws(ModelInferenceError) -> (metadata: [String: String], notes: [String]) {
        if let first = shapes["fc1.weight"], let second = shapes["fc2.weight"] {
            guard first.count == 2, first[1] == 1, second.count == 2, second[1] == first[0] else {
                throw ModelInferenceError(description: "fc1.weight \(first) and fc2.weight \(second) are not a sorting network")
            }
            let configuration = SortingNetworkConfiguration(count: second[0], hiddenUnits: first[0])
            return (configuration.metadata, [
                "no __metadata__: sorting-mlp configuration inferred from tensor shapes (count \(second[0]), \(first[0]) hidden units); input scale 1 and shift 0 assumed",
            ])
        }
        if shapes.keys.contains(where: { $0.hasPrefix("attention.") }) {
            throw ModelInferenceError(description: "attention tensors without __metadata__: the number of heads (attention_heads) cannot be read from shapes")
        }
        guard let convolution = shapes["g_1.0.weight"] else {
            throw ModelInferenceError(description: "no __metadata__ and neither the tutorial's jigsaw tensors (g_1.0.weight, g_2.weight) nor the sorting tensors (fc1.weight, fc2.weight)")
        }
        guard convolution.count == 4, convolution[2] == convolution[3], convolution[2] % 2 == 1 else {
            throw ModelInferenceError(description: "g_1.0.weight has shape \(convolution), expected [hidden, channels, k, k] with odd k")
        }
        let hidden = convolution[0], channels = convolution[1], kernel = convolution[2]
        var blocks = 1
        while shapes["g_1.\(4 * blocks).weight"] != nil { blocks += 1 }
        let pieceCount: Int, features: Int, hiddenUnits: Int
        if let output = shapes["g_2.weight"] {
            guard output.count == 2 else { throw ModelInferenceError(description: "g_2.weight has shape \(output), expected [n, features]") }
            (pieceCount, features, hiddenUnits) = (output[0], output[1], 0)
        } else if let first = shapes["g_2.0.weight"], let output = shapes["g_2.2.weight"] {
            guard first.count == 2, output.count == 2, output[1] == first[0] else {
                throw ModelInferenceError(description: "g_2.0.weight \(first) and g_2.2.weight \(output) do not chain")
            }
            (pieceCount, features, hiddenUnits) = (output[0], first[1], first[0])
        } else {
            throw ModelInferenceError(description: "no g_2.weight (or g_2.0.weight and g_2.2.weight) tensor")
        }
        let grid = exactSquareRoot(pieceCount)
        guard grid > 0 else { throw ModelInferenceError(description: "g_2 has \(pieceCount) outputs, not a square number of pieces") }
        guard hidden > 0, features % hidden == 0 else {
            throw ModelInferenceError(description: "g_2 has \(features) inputs, not a multiple of the \(hidden) hidden channels")
        }
        let side = exactSquareRoot(features / hidden)
        guard side > 0 else {
            throw ModelInferenceError(description: "g_2's \(features) inputs are not \(hidden) channels of a square feature map")
        }
        guard blocks <= 8 else { throw ModelInferenceError(description: "\(blocks) convolution blocks") }
        let pieceSize = side << blocks
        let setContext = shapes["context.weight"] != nil
        var contextUnits = 0
        if let embedding = shapes["context.embed.weight"] {
            guard setContext, embedding.count == 2, embedding[1] == features, embedding[0] > 0 else {
                throw ModelInferenceError(description: "context.embed.weight has shape \(embedding), expected [units, \(features)] beside context.weight")
            }
            contextUnits = embedding[0]
        }
        let contextInputs = contextUnits > 0 ? contextUnits : features
        if let context = shapes["context.weight"], context != [hiddenUnits, contextInputs] || hiddenUnits == 0 {
            throw ModelInferenceError(description: "context.weight has shape \(context), expected [\(hiddenUnits), \(contextInputs)] beside a hidden layer")
        }
        let configuration = JigsawNetworkConfiguration(
            grid: grid, imageSize: grid * pieceSize, channels: channels, hiddenChannels: hidden, kernelSize: kernel,
            extraConvolutionBlocks: blocks - 1, hiddenUnits: hiddenUnits, setContext: setContext,
            contextUnits: contextUnits)
        return (configuration.metadata, [
            "no __metadata__: jigsaw-cnn configuration inferred from tensor shapes (grid \(grid), piece side \(pieceSize), image size \(grid * pieceSize), \(channels) channel(s), \(hidden) hidden channels, kernel \(kernel))",
            "normalisation assumed to be the tutorial's MNIST mean 0.1307 and std 0.3081",
        ])
    }

    /// `r` with `r² = value`, or 0 when `value` is not a positive perfect square.
    private static func exactSquareRoot(_ value: Int) -> Int {
        guard value > 0 else { return 0 }
        var root = Int(Double(value).squareRoot().rounded())
        while root * root > value { root -= 1 }
        while (root + 1) * (root + 1) <= value { root += 1 }
        return root * root == value ? root : 0
    }
}
