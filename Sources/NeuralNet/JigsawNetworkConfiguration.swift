import TensorKit

/// Everything needed to rebuild a ``JigsawNetwork`` and to preprocess its input; stored as the
/// string map of a weights file's `__metadata__`, so a weights file alone is enough to serve.
///
/// The defaults are the tutorial's MNIST 2×2 network (PAPERS.md §3): 28×28 images, 14×14
/// pieces, one channel, 32 hidden channels, 5×5 kernels, no extra depth, inputs normalised with
/// mean 0.1307 and standard deviation 0.3081.
public struct JigsawNetworkConfiguration: Equatable, Sendable {
    /// The value of the `architecture` metadata key.
    public static let architecture = "jigsaw-cnn"

    /// Pieces per side; the puzzle has `grid²` pieces.
    public var grid: Int
    /// The side of the square image in pixels.
    public var imageSize: Int
    /// Colour channels of the input (1 grey, 3 RGB).
    public var channels: Int
    /// Channels of every convolution block.
    public var hiddenChannels: Int
    /// The odd side of the convolution kernels (padding `kernelSize / 2` keeps the size).
    public var kernelSize: Int
    /// Convolution blocks after the first (each Conv → MaxPool(2) → ReLU → BatchNorm).
    public var extraConvolutionBlocks: Int
    /// Width of a hidden Linear + ReLU layer before the output layer; 0 for none (the tutorial).
    public var hiddenUnits: Int
    /// Whether the hidden layer also sees the whole puzzle: the mean of the features of all its
    /// pieces, through a weight of its own, is added to every piece's hidden pre-activation
    /// (a permutation-equivariant set layer, so scores still follow the pieces when they are
    /// scrambled). Needs hidden units; off in the tutorial.
    public var setContext: Bool
    /// With set context: the width of a per-piece Linear + ReLU embedding whose mean over the
    /// puzzle is the context (a DeepSets `ρ(mean φ(f))`); 0 takes the mean of the features themselves.
    public var contextUnits: Int
    /// Self-attention blocks over the pieces of each puzzle after the hidden layer (``SetAttention``:
    /// every piece's hidden vector is updated from the hidden vectors of the other pieces of its
    /// puzzle, a pairwise and still permutation-equivariant interaction). Needs hidden units; 0 for none.
    public var attentionBlocks: Int
    /// Heads of every attention block.
    public var attentionHeads: Int
    /// Query/key/value width of each head.
    public var attentionHeadUnits: Int
    /// Edge attention blocks after the hidden layer, before the self-attention blocks
    /// (``EdgeAttention``: each piece gathers the hidden vectors of the pieces that continue it
    /// across its four edges, weighted by edge compatibility measured on the full-resolution
    /// pieces). Needs hidden units and a grid of at least 2; 0 for none.
    public var edgeBlocks: Int
    /// How edge attention measures the dissimilarity across a seam: `mgc` (Mahalanobis gradient
    /// compatibility, 1 or 3 channels) or `prediction` (L1 of each side extrapolated across it).
    public var edgeMeasure: String
    /// `κ` of ``EdgeGraph``: how sharply the attention prefers the best-matching piece.
    public var edgeSharpness: Float
    /// Score heads: `1` for a jigsaw network; `K > 1` stacks `K` output layers (one per class of
    /// target image) over the same representation, and each puzzle is scored by the head it names
    /// (Mena et al. 2018, §4.3: "stacking several second layers ... digit identity indicates which
    /// layer activates"). The output layer then has `K · n` rows, head `k`'s in rows `k·n ..< (k+1)·n`.
    public var scoreHeads: Int = 1
    /// Per-channel mean subtracted from pixel values in `[0, 1]` (one value applies to all).
    public var normalisationMean: [Float]
    /// Per-channel standard deviation dividing the centred pixel values.
    public var normalisationStd: [Float]

    public init(grid: Int = 2, imageSize: Int = 28, channels: Int = 1, hiddenChannels: Int = 32,
                kernelSize: Int = 5, extraConvolutionBlocks: Int = 0, hiddenUnits: Int = 0,
                setContext: Bool = false, contextUnits: Int = 0, attentionBlocks: Int = 0, attentionHeads: Int = 4,
                attentionHeadUnits: Int = 32, edgeBlocks: Int = 0, edgeMeasure: String = "mgc",
                edgeSharpness: Float = 8, normalisationMean: [Float] = [0.1307], normalisationStd: [Float] = [0.3081],
                scoreHeads: Int = 1) {
        self.grid = grid
        self.imageSize = imageSize
        self.channels = channels
        self.hiddenChannels = hiddenChannels
        self.kernelSize = kernelSize
        self.extraConvolutionBlocks = extraConvolutionBlocks
        self.hiddenUnits = hiddenUnits
        self.setContext = setContext
        self.contextUnits = contextUnits
        self.attentionBlocks = attentionBlocks
        self.attentionHeads = attentionHeads
        self.attentionHeadUnits = attentionHeadUnits
        self.edgeBlocks = edgeBlocks
        self.edgeMeasure = edgeMeasure
        self.edgeSharpness = edgeSharpness
        self.normalisationMean = normalisationMean
        self.normalisationStd = normalisationStd
        self.scoreHeads = scoreHeads
    }

    /// The side of a piece in pixels, `⌊imageSize / grid⌋` (the tutorial's `image_size // num_pieces`).
    public var pieceSize: Int { imageSize / max(grid, 1) }
    /// The number of pieces, `grid²`: the side of the score matrix.
    public var pieceCount: Int { grid * grid }
    /// The number of convolution blocks.
    public var convolutionBlocks: Int { 1 + extraConvolutionBlocks }

    /// The side of a piece's feature maps after `blocks` pooling steps (floor each time).
    public func featureSide(afterBlocks blocks: Int) -> Int {
        var side = pieceSize
        for _ in 0..<blocks { side /= 2 }
        return side
    }

    /// ``edgeMeasure`` as a measure, or `nil` when it names none.
    public var edgeMeasureValue: EdgeCompatibility.Measure? {
        switch edgeMeasure {
        case "mgc": .mahalanobisGradient
        case "prediction": .prediction()
        default: nil
        }
    }

    /// The length of the vector averaged over a puzzle's pieces for set context.
    public var contextInputs: Int { contextUnits > 0 ? contextUnits : featureCount }

    /// The length of the flattened features entering the Linear layers: `hidden · side²`.
    public var featureCount: Int {
        let side = featureSide(afterBlocks: convolutionBlocks)
        return hiddenChannels * side * side
    }

    /// Checks every field; limits keep a hostile metadata map from asking for absurd allocations.
    ///
    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)`` naming the offending field.
    public func validate() throws {
        func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
            if !condition { throw NeuralNetError.invalidConfiguration(message()) }
        }
        try require((1...64).contains(grid), "grid \(grid) is not in 1...64")
        try require((1...8192).contains(imageSize), "image size \(imageSize) is not in 1...8192")
        try require(pieceSize >= 1, "image size \(imageSize) is smaller than the grid \(grid)")
        try require((1...4).contains(channels), "channels \(channels) is not in 1...4")
        try require((1...4096).contains(hiddenChannels), "hidden channels \(hiddenChannels) is not in 1...4096")
        try require((1...31).contains(kernelSize) && kernelSize % 2 == 1,
                    "kernel size \(kernelSize) is not odd in 1...31")
        try require((0...8).contains(extraConvolutionBlocks),
                    "extra convolution blocks \(extraConvolutionBlocks) is not in 0...8")
        try require(featureSide(afterBlocks: convolutionBlocks) >= 1,
                    "pieces of \(pieceSize) pixels are too small for \(convolutionBlocks) poolings")
        try require((0...65536).contains(hiddenUnits), "hidden units \(hiddenUnits) is not in 0...65536")
        try require(!setContext || hiddenUnits > 0, "set context needs hidden units")
        try require((0...65536).contains(contextUnits), "context units \(contextUnits) is not in 0...65536")
        try require(contextUnits == 0 || setContext, "context units need set context")
        try require(featureCount * contextUnits <= 1 << 28 && contextInputs * hiddenUnits <= 1 << 28,
                    "the context layers would exceed 2^28 weights")
        try require((0...8).contains(attentionBlocks), "attention blocks \(attentionBlocks) is not in 0...8")
        try require(attentionBlocks == 0 || hiddenUnits > 0, "attention needs hidden units")
        try require((1...64).contains(attentionHeads), "attention heads \(attentionHeads) is not in 1...64")
        try require((1...1024).contains(attentionHeadUnits), "attention head units \(attentionHeadUnits) is not in 1...1024")
        try require(hiddenUnits * attentionHeads * attentionHeadUnits <= 1 << 28,
                    "the attention layers would exceed 2^28 weights")
        try require((0...8).contains(edgeBlocks), "edge blocks \(edgeBlocks) is not in 0...8")
        try require(edgeBlocks == 0 || hiddenUnits > 0, "edge attention needs hidden units")
        try require(edgeBlocks == 0 || grid >= 2, "edge attention needs a grid of at least 2")
        try require(edgeBlocks == 0 || pieceSize >= 2, "edge attention needs pieces of at least 2 pixels")
        try require(edgeMeasureValue != nil, "edge measure '\(edgeMeasure)' is not mgc or prediction")
        try require(edgeBlocks == 0 || edgeMeasure != "mgc" || channels == 1 || channels == 3,
                    "the mgc edge measure needs 1 or 3 channels")
        try require(edgeSharpness.isFinite && edgeSharpness > 0 && edgeSharpness <= 1000,
                    "edge sharpness \(edgeSharpness) is not in (0, 1000]")
        try require(hiddenUnits * (4 * hiddenUnits + 8) * edgeBlocks <= 1 << 28,
                    "the edge attention layers would exceed 2^28 weights")
        let outputInputs = hiddenUnits > 0 ? hiddenUnits : featureCount
        try require((1...64).contains(scoreHeads), "score heads \(scoreHeads) is not in 1...64")
        try require(featureCount * max(hiddenUnits, 1) <= 1 << 28 && outputInputs * pieceCount * scoreHeads <= 1 << 28,
                    "the Linear layers would exceed 2^28 weights")
        for (name, values) in [("mean", normalisationMean), ("std", normalisationStd)] {
            try require(values.count == 1 || values.count == channels,
                        "normalisation \(name) needs 1 or \(channels) values, got \(values.count)")
            try require(values.allSatisfy(\.isFinite), "normalisation \(name) must be finite")
        }
        try require(normalisationStd.allSatisfy { $0 > 0 }, "normalisation std must be positive")
    }
}

extension JigsawNetworkConfiguration {
    /// Normalises pixel values in `[0, 1]` in place: `x ← (x − mean[c]) / std[c]` for every
    /// channel `c` of a tensor whose last three dimensions are `[C, H, W]` (pieces `[B, n, C, p, p]`
    /// or images `[N, C, H, W]`), as the tutorial's `transforms.Normalize` does.
    public func normalise(_ pixels: inout Tensor) {
        precondition(pixels.rank >= 3 && pixels.shape[pixels.rank - 3] == channels,
                     "normalise expects [..., \(channels), H, W], got \(pixels.shape)")
        let plane = pixels.shape[pixels.rank - 2] * pixels.shape[pixels.rank - 1]
        let means = (0..<channels).map { normalisationMean.count == 1 ? normalisationMean[0] : normalisationMean[$0] }
        let stds = (0..<channels).map { normalisationStd.count == 1 ? normalisationStd[0] : normalisationStd[$0] }
        pixels.withUnsafeMutableBufferPointer { x in
            var offset = 0
            while offset < x.count {
                for c in 0..<channels {
                    let (mean, std) = (means[c], stds[c])
                    for i in offset..<(offset + plane) { x[i] = (x[i] - mean) / std }
                    offset += plane
                }
            }
        }
    }
}

extension JigsawNetworkConfiguration {
    /// Metadata keys.
    public enum Key {
        public static let architecture = "architecture"
        public static let grid = "grid"
        public static let imageSize = "image_size"
        public static let pieceSize = "piece_size"
        public static let channels = "channels"
        public static let hiddenChannels = "hidden_channels"
        public static let kernelSize = "kernel_size"
        public static let extraConvolutionBlocks = "extra_conv_blocks"
        public static let hiddenUnits = "hidden_units"
        public static let setContext = "set_context"
        public static let contextUnits = "context_units"
        public static let attentionBlocks = "attention_blocks"
        public static let attentionHeads = "attention_heads"
        public static let attentionHeadUnits = "attention_head_units"
        public static let edgeBlocks = "edge_blocks"
        public static let edgeMeasure = "edge_measure"
        public static let edgeSharpness = "edge_sharpness"
        public static let scoreHeads = "score_heads"
        public static let normalisationMean = "normalization_mean"
        public static let normalisationStd = "normalization_std"
    }

    /// The configuration as `__metadata__` strings (numbers in decimal, lists comma-separated);
    /// the edge keys only when there are edge blocks, `score_heads` only when there are several.
    public var metadata: [String: String] {
        var metadata: [String: String] = [
            Key.architecture: Self.architecture,
            Key.grid: String(grid),
            Key.imageSize: String(imageSize),
            Key.pieceSize: String(pieceSize),
            Key.channels: String(channels),
            Key.hiddenChannels: String(hiddenChannels),
            Key.kernelSize: String(kernelSize),
            Key.extraConvolutionBlocks: String(extraConvolutionBlocks),
            Key.hiddenUnits: String(hiddenUnits),
            Key.setContext: setContext ? "1" : "0",
            Key.contextUnits: String(contextUnits),
            Key.attentionBlocks: String(attentionBlocks),
            Key.attentionHeads: String(attentionHeads),
            Key.attentionHeadUnits: String(attentionHeadUnits),
            Key.normalisationMean: normalisationMean.map { String($0) }.joined(separator: ","),
            Key.normalisationStd: normalisationStd.map { String($0) }.joined(separator: ","),
        ]
        if edgeBlocks > 0 {
            metadata[Key.edgeBlocks] = String(edgeBlocks)
            metadata[Key.edgeMeasure] = edgeMeasure
            metadata[Key.edgeSharpness] = String(edgeSharpness)
        }
        if scoreHeads > 1 { metadata[Key.scoreHeads] = String(scoreHeads) }
        return metadata
    }

    /// Reads a configuration from `__metadata__` strings and validates it.
    ///
    /// `architecture`, `grid` and `image_size` are required; the other keys default to the
    /// tutorial's values when absent; keys this type does not know are ignored (a weights file
    /// may carry training notes). A `piece_size` that disagrees with `image_size / grid` is an error.
    ///
    /// - Throws: ``NeuralNetError/missingMetadata(key:)``, ``NeuralNetError/invalidMetadata(key:value:)``,
    ///   ``NeuralNetError/unsupportedArchitecture(_:)``, ``NeuralNetError/invalidConfiguration(_:)``.
    public init(metadata: [String: String]) throws {
        guard let architecture = metadata[Key.architecture] else {
            throw NeuralNetError.missingMetadata(key: Key.architecture)
        }
        guard architecture == Self.architecture else { throw NeuralNetError.unsupportedArchitecture(architecture) }
        let defaults = JigsawNetworkConfiguration()
        self.init(
            grid: try metadata.integer(Key.grid),
            imageSize: try metadata.integer(Key.imageSize),
            channels: try metadata.integer(Key.channels, default: defaults.channels),
            hiddenChannels: try metadata.integer(Key.hiddenChannels, default: defaults.hiddenChannels),
            kernelSize: try metadata.integer(Key.kernelSize, default: defaults.kernelSize),
            extraConvolutionBlocks: try metadata.integer(Key.extraConvolutionBlocks, default: 0),
            hiddenUnits: try metadata.integer(Key.hiddenUnits, default: 0),
            setContext: try metadata.flag(Key.setContext),
            contextUnits: try metadata.integer(Key.contextUnits, default: 0),
            attentionBlocks: try metadata.integer(Key.attentionBlocks, default: 0),
            attentionHeads: try metadata.integer(Key.attentionHeads, default: defaults.attentionHeads),
            attentionHeadUnits: try metadata.integer(Key.attentionHeadUnits, default: defaults.attentionHeadUnits),
            edgeBlocks: try metadata.integer(Key.edgeBlocks, default: 0),
            edgeMeasure: metadata[Key.edgeMeasure] ?? defaults.edgeMeasure,
            edgeSharpness: try metadata.float(Key.edgeSharpness, default: defaults.edgeSharpness),
            normalisationMean: try metadata.floats(Key.normalisationMean, default: defaults.normalisationMean),
            normalisationStd: try metadata.floats(Key.normalisationStd, default: defaults.normalisationStd))
        scoreHeads = try metadata.integer(Key.scoreHeads, default: 1)
        try validate()
        if let value = metadata[Key.pieceSize] {
            guard let pieceSize = Int(value) else { throw NeuralNetError.invalidMetadata(key: Key.pieceSize, value: value) }
            if pieceSize != self.pieceSize {
                throw NeuralNetError.invalidConfiguration(
                    "piece size \(pieceSize) differs from image size \(imageSize) / grid \(grid) = \(self.pieceSize)")
            }
        }
    }
}
