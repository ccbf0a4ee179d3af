import NeuralNet
import TensorKit

/// A preprocessing step applied to each list before the network sees its numbers.
public enum SortingInputNormalisation: String, Sendable, CaseIterable {
    /// Each number enters the network as it is (the paper's network).
    case none
    /// Each list is mapped to `(x − min) / (max − min)` (min and max of that list; a constant
    /// list becomes all zeros). Every test distribution of Mena et al. 2018, Table 1 then looks
    /// like `U(0, 1)`: the network still scores each number on its own, but after a per-list
    /// affine map that cannot change the order.
    case listMinMax = "list-min-max"
}

/// The configuration of a ``SortingNetwork``, stored as weights-file metadata.
public struct SortingNetworkConfiguration: Equatable, Sendable {
    /// The value of the `architecture` metadata key.
    public static let architecture = "sorting-mlp"

    /// The length `N` of the lists to sort: the side of the score matrix.
    public var count: Int
    /// Width of the hidden layer (32 in the paper's code).
    public var hiddenUnits: Int
    /// Inputs enter the network as `(x − inputShift) · inputScale`.
    public var inputScale: Float
    /// See ``inputScale``.
    public var inputShift: Float
    /// The per-list preprocessing, applied before `inputShift` and `inputScale`.
    public var inputNormalisation: SortingInputNormalisation
    /// Whether the first layer has biases (the paper's code: yes). Without them every ReLU kink
    /// sits at 0, so for positive inputs each score is `a_j·x + c_j`: the hard matching is then
    /// invariant to scaling and shifting the inputs, and sorts every positive list exactly when the
    /// slopes `a_j` increase with the slot `j`.
    public var firstLayerBias: Bool

    public init(count: Int = 50, hiddenUnits: Int = 32, inputScale: Float = 1, inputShift: Float = 0,
                inputNormalisation: SortingInputNormalisation = .none, firstLayerBias: Bool = true) {
        self.firstLayerBias = firstLayerBias
        self.count = count
        self.hiddenUnits = hiddenUnits
        self.inputScale = inputScale
        self.inputShift = inputShift
        self.inputNormalisation = inputNormalisation
    }

    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)`` naming the offending field.
    public func validate() throws {
        guard (1...100_000).contains(count) else {
            throw NeuralNetError.invalidConfiguration("count \(count) is not in 1...100000")
        }
        guard (1...65536).contains(hiddenUnits), hiddenUnits * count <= 1 << 28 else {
            throw NeuralNetError.invalidConfiguration("hidden units \(hiddenUnits) out of range")
        }
        guard inputScale.isFinite, inputScale != 0, inputShift.isFinite else {
            throw NeuralNetError.invalidConfiguration("input scale must be finite and non-zero, shift finite")
        }
    }

    /// Metadata keys.
    public enum Key {
        public static let architecture = "architecture"
        public static let count = "count"
        public static let hiddenUnits = "hidden_units"
        public static let inputScale = "input_scale"
        public static let inputShift = "input_shift"
        public static let inputNormalisation = "input_normalisation"
        public static let firstLayerBias = "first_layer_bias"
    }

    /// The configuration as `__metadata__` strings.
    public var metadata: [String: String] {
        [
            Key.architecture: Self.architecture,
            Key.count: String(count),
            Key.hiddenUnits: String(hiddenUnits),
            Key.inputScale: String(inputScale),
            Key.inputShift: String(inputShift),
            Key.inputNormalisation: inputNormalisation.rawValue,
            Key.firstLayerBias: firstLayerBias ? "true" : "false",
        ]
    }

    /// Reads and validates a configuration; `architecture` and `count` are required, the rest
    /// default to the paper's values, unknown keys are ignored.
    ///
    /// - Throws: ``NeuralNetError`` naming the missing or invalid key.
    public init(metadata: [String: String]) throws {
        guard let architecture = metadata[Key.architecture] else {
            throw NeuralNetError.missingMetadata(key: Key.architecture)
        }
        guard architecture == Self.architecture else { throw NeuralNetError.unsupportedArchitecture(architecture) }
        self.init(count: try metadata.integer(Key.count),
                  hiddenUnits: try metadata.integer(Key.hiddenUnits, default: 32),
                  inputScale: try metadata.float(Key.inputScale, default: 1),
                  inputShift: try metadata.float(Key.inputShift, default: 0),
                  inputNormalisation: try Self.normalisation(metadata),
                  firstLayerBias: try Self.firstBias(metadata))
        try validate()
    }

    private static func firstBias(_ metadata: [String: String]) throws -> Bool {
        switch metadata[Key.firstLayerBias] {
        case nil, "true": return true
        case "false": return false
        case let value?: throw NeuralNetError.invalidMetadata(key: Key.firstLayerBias, value: value)
        }
    }

    private static func normalisation(_ metadata: [String: String]) throws -> SortingInputNormalisation {
        guard let value = metadata[Key.inputNormalisation] else { return .none }
        guard let normalisation = SortingInputNormalisation(rawValue: value) else {
            throw NeuralNetError.invalidMetadata(key: Key.inputNormalisation, value: value)
        }
        return normalisation
    }
}

/// The number-sorting network of Mena et al. 2018, §4.1 (the original TensorFlow code): each
/// number goes independently through `Linear(1 → h) → ReLU → Linear(h → N)` (with biases), and
/// its `N` outputs are its row of the score matrix over sorted positions.
///
/// Input `[B, N]`, output `[B, N, N]`; tensor names `fc1.weight [h, 1]`, `fc1.bias [h]` (absent
/// with `firstLayerBias: false`), `fc2.weight [N, h]`, `fc2.bias [N]`.
public final class SortingNetwork: Module {
    public let configuration: SortingNetworkConfiguration
    public let firstLayer: Linear
    public let secondLayer: Linear

    private var hidden = Tensor(shape: [0])
    private var batch = 0

    /// A network with PyTorch's default initialisation drawn from `seed`.
    ///
    /// - Throws: ``NeuralNetError/invalidConfiguration(_:)``.
    public init(configuration: SortingNetworkConfiguration = SortingNetworkConfiguration(), seed: UInt64 = 0) throws {
        try configuration.validate()
        self.configuration = configuration
        var generator = SeededGenerator(seed: seed)
        firstLayer = Linear(name: "fc1", inputFeatures: 1, outputFeatures: configuration.hiddenUnits,
                            bias: configuration.firstLayerBias, generator: &generator)
        secondLayer = Linear(name: "fc2", inputFeatures: configuration.hiddenUnits,
                             outputFeatures: configuration.count, generator: &generator)
    }

    /// Builds the network described by a weights file's metadata and loads its tensors.
    public convenience init(metadata: [String: String], tensors: [String: Tensor]) throws {
        try self.init(configuration: SortingNetworkConfiguration(metadata: metadata))
        try load(tensors)
    }

    public var parameters: [Parameter] { firstLayer.parameters + secondLayer.parameters }
    public var buffers: [Buffer] { [] }

    /// The scores `[B, N, N]` of lists `[B, N]`.
    public func forward(_ numbers: Tensor) -> Tensor {
        let n = configuration.count
        precondition(numbers.rank == 2 && numbers.shape[1] == n, "SortingNetwork expects [B, \(n)], got \(numbers.shape)")
        batch = numbers.shape[0]
        var inputs = numbers.reshaped([batch * n, 1])
        if configuration.inputNormalisation == .listMinMax {
            inputs.withUnsafeMutableBufferPointer { x in
                for list in 0..<batch {
                    let values = x.baseAddress! + list * n
                    var (low, high) = (values[0], values[0])
                    for i in 1..<n { low = Swift.min(low, values[i]); high = Swift.max(high, values[i]) }
                    let range = high - low
                    // Division (not a reciprocal) maps the maximum to exactly 1.
                    for i in 0..<n { values[i] = range > 0 ? (values[i] - low) / range : 0 }
                }
            }
        }
        let (scale, shift) = (configuration.inputScale, configuration.inputShift)
        if scale != 1 || shift != 0 {
            inputs.withUnsafeMutableBufferPointer { x in
                for i in 0..<x.count { x[i] = (x[i] - shift) * scale }
            }
        }
        hidden = firstLayer.forward(inputs)
        ReLU.forward(inPlace: &hidden)
        return secondLayer.forward(hidden).reshaped([batch, n, n])
    }

    /// Accumulates the parameter gradients from `∂L/∂scores` `[B, N, N]` of the last forward.
    public func backward(_ scoresGradient: Tensor) {
        let n = configuration.count
        precondition(scoresGradient.shape == [batch, n, n], "scores gradient \(scoresGradient.shape) vs [\(batch), \(n), \(n)]")
        var hiddenGradient = secondLayer.backward(scoresGradient.reshaped([batch * n, n]))
        ReLU.backward(inPlace: &hiddenGradient, output: hidden)
        firstLayer.accumulateParameterGradients(hiddenGradient)
    }
}
