import NeuralNet
import Testing
import TensorKit

@Suite("Named tensors and configurations")
struct CheckpointTests {
    @Test("loading another network's tensors reproduces its scores")
    func loadReproduces() throws {
        var generator = SeededGenerator(seed: 41)
        let source = try JigsawNetwork(seed: 1), target = try JigsawNetwork(seed: 2)
        source.isTraining = false
        target.isTraining = false
        let pieces = generator.normal(source.inputShape(batch: 2))
        #expect(source.forward(pieces) != target.forward(pieces))
        var tensors = source.namedTensors()
        tensors["g_1.3.num_batches_tracked"] = Tensor(shape: [], storage: [7])  // PyTorch's counter: ignored
        try target.load(tensors)
        #expect(target.forward(pieces) == source.forward(pieces))
    }

    struct BadLoad: CustomStringConvertible, Sendable {
        let description: String
        let edit: @Sendable (inout [String: Tensor]) -> Void
        let error: NeuralNetError
    }

    static let badLoads: [BadLoad] = [
        BadLoad(description: "missing running_var", edit: { $0["g_1.3.running_var"] = nil },
                error: .missingTensor(name: "g_1.3.running_var")),
        BadLoad(description: "unused tensor", edit: { $0["g_3.weight"] = Tensor(shape: [1]) },
                error: .unusedTensor(name: "g_3.weight")),
        BadLoad(description: "wrong shape", edit: { $0["g_2.weight"] = Tensor(shape: [4, 1567]) },
                error: .shapeMismatch(tensor: "g_2.weight", expected: [4, 1568], found: [4, 1567])),
        BadLoad(description: "wrong rank", edit: { $0["g_1.0.weight"] = Tensor(shape: [32, 25]) },
                error: .shapeMismatch(tensor: "g_1.0.weight", expected: [32, 1, 5, 5], found: [32, 25])),
    ]

    @Test("strict load refuses bad tensor sets with an error naming the tensor and leaves the model unchanged",
          arguments: badLoads)
    func strictLoad(_ bad: BadLoad) throws {
        let network = try JigsawNetwork(seed: 1)
        let before = network.namedTensors()
        // Every other tensor differs, so a partial assignment before the error would show.
        var tensors = try JigsawNetwork(seed: 2).namedTensors()
        bad.edit(&tensors)
        #expect(throws: bad.error) { try network.load(tensors) }
        #expect(network.namedTensors() == before)
    }

    @Test("jigsaw configuration round-trips through metadata", arguments: [
        JigsawNetworkConfiguration(),
        JigsawNetworkConfiguration(grid: 3, imageSize: 28, channels: 3, hiddenChannels: 64, kernelSize: 3,
                                   extraConvolutionBlocks: 1, hiddenUnits: 128,
                                   normalisationMean: [0.485, 0.456, 0.406], normalisationStd: [0.229, 0.224, 0.225]),
        JigsawNetworkConfiguration(grid: 4, imageSize: 28, hiddenChannels: 8, hiddenUnits: 16, setContext: true),
        JigsawNetworkConfiguration(grid: 4, imageSize: 28, hiddenChannels: 8, hiddenUnits: 16, setContext: true,
                                   contextUnits: 12),
        JigsawNetworkConfiguration(grid: 5, imageSize: 28, hiddenChannels: 8, hiddenUnits: 16, setContext: true,
                                   attentionBlocks: 2, attentionHeads: 2, attentionHeadUnits: 6),
    ])
    func jigsawRoundTrip(configuration: JigsawNetworkConfiguration) throws {
        let metadata = configuration.metadata
        #expect(metadata["architecture"] == "jigsaw-cnn")
        #expect(metadata["piece_size"] == String(configuration.pieceSize))
        #expect(try JigsawNetworkConfiguration(metadata: metadata) == configuration)
        var noted = metadata
        noted["epochs"] = "5"  // unknown keys are notes, not errors
        #expect(try JigsawNetworkConfiguration(metadata: noted) == configuration)
        let network = try JigsawNetwork(configuration: configuration, seed: 3)
        let rebuilt = try JigsawNetwork(metadata: metadata, tensors: network.namedTensors())
        #expect(rebuilt.namedTensors() == network.namedTensors())
    }

    @Test("the tutorial's metadata gives the tutorial network")
    func tutorialMetadata() throws {
        let configuration = try JigsawNetworkConfiguration(metadata: [
            "architecture": "jigsaw-cnn", "grid": "2", "image_size": "28",
            "normalization_mean": "0.1307", "normalization_std": "0.3081",
        ])
        #expect(configuration == JigsawNetworkConfiguration())
        #expect(configuration.pieceSize == 14 && configuration.featureCount == 1568)
    }

    static let badMetadata: [(edit: [String: String?], error: NeuralNetError)] = [
        (["architecture": nil], .missingMetadata(key: "architecture")),
        (["architecture": "resnet"], .unsupportedArchitecture("resnet")),
        (["grid": nil], .missingMetadata(key: "grid")),
        (["grid": "two"], .invalidMetadata(key: "grid", value: "two")),
        (["image_size": "28.5"], .invalidMetadata(key: "image_size", value: "28.5")),
        (["normalization_std": "0.3,x"], .invalidMetadata(key: "normalization_std", value: "0.3,x")),
        (["piece_size": "13"], .invalidConfiguration("piece size 13 differs from image size 28 / grid 2 = 14")),
        (["kernel_size": "4"], .invalidConfiguration("kernel size 4 is not odd in 1...31")),
        (["grid": "0"], .invalidConfiguration("grid 0 is not in 1...64")),
        (["extra_conv_blocks": "3"], .invalidConfiguration("pieces of 14 pixels are too small for 4 poolings")),
        (["normalization_std": "0"], .invalidConfiguration("normalisation std must be positive")),
        (["set_context": "yes"], .invalidMetadata(key: "set_context", value: "yes")),
        (["set_context": "1"], .invalidConfiguration("set context needs hidden units")),
        (["context_units": "8"], .invalidConfiguration("context units need set context")),
        (["attention_blocks": "1"], .invalidConfiguration("attention needs hidden units")),
        (["attention_blocks": "x"], .invalidMetadata(key: "attention_blocks", value: "x")),
        (["attention_heads": "0"], .invalidConfiguration("attention heads 0 is not in 1...64")),
        (["channels": "3"], .invalidConfiguration("normalisation mean needs 1 or 3 values, got 2")),
    ]

    @Test("malformed jigsaw metadata throws the exact error", arguments: 0..<badMetadata.count)
    func badJigsawMetadata(index: Int) {
        var metadata = JigsawNetworkConfiguration().metadata
        let (edit, error) = Self.badMetadata[index]
        for (key, value) in edit { metadata[key] = value }
        if index == Self.badMetadata.count - 1 { metadata["normalization_mean"] = "0.1,0.2" }
        #expect(throws: error) { try JigsawNetworkConfiguration(metadata: metadata) }
    }

    @Test("normalisation applies each channel's mean and standard deviation")
    func normalise() {
        let configuration = JigsawNetworkConfiguration(channels: 2, normalisationMean: [0.5, 0.25],
                                                       normalisationStd: [0.5, 0.25])
        var pixels = Tensor(shape: [1, 2, 2, 2, 1], storage: [0, 1, 0.25, 0.5, 1, 0.5, 0, 0.75])
        configuration.normalise(&pixels)
        #expect(pixels.storage == [-1, 1, 0, 1, 1, 0, -1, 2])
        var grey = Tensor(shape: [1, 1, 1, 2], storage: [0.1307, 0.1307 + 0.3081])
        JigsawNetworkConfiguration().normalise(&grey)
        #expect(abs(grey.storage[0]) < 1e-6 && abs(grey.storage[1] - 1) < 1e-6)
    }

    @Test("network construction refuses an invalid configuration")
    func invalidConfiguration() {
        #expect(throws: NeuralNetError.self) {
            try JigsawNetwork(configuration: JigsawNetworkConfiguration(grid: 2, imageSize: 3))
        }
    }
}
