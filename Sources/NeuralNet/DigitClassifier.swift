#if canImport(Glibc)
import Glibc
#endif
import TensorKit

/// The shape of a `DigitClassifier`.
public struct DigitClassifierConfiguration: Equatable, Sendable {
    /// Channels of the first and second 3 × 3 convolutions.
    public var channels: (first: Int, second: Int)
    /// Units of the hidden fully connected layer.
    public var hidden: Int
    /// Output classes.
    public var classes: Int
    /// The side of the square input images (a multiple of 4).
    public var side: Int

    public init(firstChannels: Int = 32, secondChannels: Int = 64, hidden: Int = 128, classes: Int = 10, side: Int = 28) {
        channels = (firstChannels, secondChannels)
        self.hidden = hidden
        self.classes = classes
        self.side = side
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.channels == b.channels && a.hidden == b.hidden && a.classes == b.classes && a.side == b.side
    }

    /// The `architecture` metadata value of a classifier's weights file.
    public static let architecture = "digit-classifier-v1"

    /// The metadata entries that describe this configuration.
    public var metadata: [String: String] {
        ["architecture": Self.architecture, "classifier.first_channels": "\(channels.first)",
         "classifier.second_channels": "\(channels.second)", "classifier.hidden": "\(hidden)",
         "classifier.classes": "\(classes)", "classifier.side": "\(side)"]
    }

    /// The configuration a weights file's metadata describes.
    /// - Throws: `NeuralNetError.invalidMetadata` for another architecture or a missing or bad entry.
    public init(metadata: [String: String]) throws {
        guard let name = metadata["architecture"] else { throw NeuralNetError.missingMetadata(key: "architecture") }
        guard name == Self.architecture else { throw NeuralNetError.unsupportedArchitecture(name) }
        func integer(_ key: String) throws -> Int {
            guard let text = metadata["classifier." + key] else { throw NeuralNetError.missingMetadata(key: "classifier." + key) }
            guard let value = Int(text), value > 0, value <= 4096 else {
                throw NeuralNetError.invalidMetadata(key: "classifier." + key, value: text)
            }
            return value
        }
        self.init(firstChannels: try integer("first_channels"), secondChannels: try integer("second_channels"),
                  hidden: try integer("hidden"), classes: try integer("classes"), side: try integer("side"))
        guard side % 4 == 0 else {
            throw NeuralNetError.invalidConfiguration("classifier.side \(side) is not a multiple of 4")
        }
    }
}

/// A small convolutional classifier of gray images (MNIST digits), used to judge assembled digits:
///
///     conv 3×3 (1 → c₁) → ReLU → max-pool 2 → conv 3×3 (c₁ → c₂) → ReLU → max-pool 2
///     → linear (c₂·(s/4)² → h) → ReLU → linear (h → classes)
///
/// The output is the logits; `crossEntropy(logits:labels:)` gives the loss and its gradient.
public final class DigitClassifier: Module {
    public let configuration: DigitClassifierConfiguration
    public let first: Conv2d
    public let second: Conv2d
    public let hidden: Linear
    public let output: Linear
    private let firstPool = MaxPool2d(kernelSize: 2)
    private let secondPool = MaxPool2d(kernelSize: 2)
    private var firstActivation = Tensor(shape: [0])
    private var secondActivation = Tensor(shape: [0])
    private var hiddenActivation = Tensor(shape: [0])
    private var pooledShape: [Int] = []

    /// A classifier initialised like PyTorch's layers from `generator`.
    public init(_ configuration: DigitClassifierConfiguration = .init(), generator: inout SeededGenerator) {
        precondition(configuration.side % 4 == 0 && configuration.side > 0, "the side must be a positive multiple of 4")
        self.configuration = configuration
        let (c1, c2) = configuration.channels
        first = Conv2d(name: "conv1", inputChannels: 1, outputChannels: c1, kernelSize: 3, generator: &generator)
        second = Conv2d(name: "conv2", inputChannels: c1, outputChannels: c2, kernelSize: 3, generator: &generator)
        let flat = c2 * (configuration.side / 4) * (configuration.side / 4)
        hidden = Linear(name: "fc1", inputFeatures: flat, outputFeatures: configuration.hidden, generator: &generator)
        output = Linear(name: "fc2", inputFeatures: configuration.hidden, outputFeatures: configuration.classes,
                        generator: &generator)
    }

    public var parameters: [Parameter] { first.parameters + second.parameters + hidden.parameters + output.parameters }
    public var buffers: [Buffer] { [] }

    /// Sets the worker count of every layer.
    public var threadCount: Int {
        get { first.threadCount }
        set {
            first.threadCount = newValue
            second.threadCount = newValue
            firstPool.threadCount = newValue
            secondPool.threadCount = newValue
        }
    }

    /// Logits `[N, classes]` of images `[N, 1, side, side]` with pixels in [0, 1]; keeps what
    /// ``backward(_:)`` needs.
    public func forward(_ images: Tensor) -> Tensor {
        let side = configuration.side
        precondition(images.rank == 4 && images.shape[1] == 1 && images.shape[2] == side && images.shape[3] == side,
                     "DigitClassifier expects [N, 1, \(side), \(side)], got \(images.shape)")
        let count = images.shape[0]
        firstActivation = first.forward(images)
        ReLU.forward(inPlace: &firstActivation)
        let firstPooled = firstPool.forward(firstActivation)
        secondActivation = second.forward(firstPooled)
        ReLU.forward(inPlace: &secondActivation)
        let secondPooled = secondPool.forward(secondActivation)
        pooledShape = secondPooled.shape
        hiddenActivation = hidden.forward(secondPooled.reshaped([count, secondPooled.count / count]))
        ReLU.forward(inPlace: &hiddenActivation)
        return output.forward(hiddenActivation)
    }

    /// Accumulates every parameter's gradient from `∂loss/∂logits` of the last ``forward(_:)``.
    public func backward(_ logitsGradient: Tensor) {
        var gradient = output.backward(logitsGradient)
        ReLU.backward(inPlace: &gradient, output: hiddenActivation)
        var pooled = hidden.backward(gradient).reshaped(pooledShape)
        pooled = secondPool.backward(pooled)
        ReLU.backward(inPlace: &pooled, output: secondActivation)
        var firstGradient = firstPool.backward(second.backward(pooled))
        ReLU.backward(inPlace: &firstGradient, output: firstActivation)
        first.accumulateParameterGradients(firstGradient)
    }

    /// The most likely class of every image.
    public func predict(_ images: Tensor) -> [Int] {
        let logits = forward(images)
        let classes = configuration.classes
        return logits.withUnsafeBufferPointer { l in
            (0..<(logits.count / classes)).map { row in
                var best = 0
                for c in 1..<classes where l[row * classes + c] > l[row * classes + best] { best = c }
                return best
            }
        }
    }

    /// The softmax probabilities of every image, `[N, classes]`.
    public func probabilities(_ images: Tensor) -> Tensor {
        var logits = forward(images)
        let classes = configuration.classes
        logits.storage.withUnsafeMutableBufferPointer { l in
            for row in 0..<(l.count / classes) {
                let base = row * classes
                var top = -Float.infinity
                for c in 0..<classes { top = Swift.max(top, l[base + c]) }
                var total: Float = 0
                for c in 0..<classes { l[base + c] = expf(l[base + c] - top); total += l[base + c] }
                for c in 0..<classes { l[base + c] /= total }
            }
        }
        return logits
    }

    /// The mean softmax cross-entropy `−(1/N) Σ log softmax(z_n)[y_n]` and its gradient
    /// `(softmax(z) − onehot(y)) / N`.
    public static func crossEntropy(logits: Tensor, labels: [Int]) -> (loss: Float, gradient: Tensor) {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count, "logits [N, classes] and N labels")
        let (count, classes) = (logits.shape[0], logits.shape[1])
        var gradient = Tensor(shape: logits.shape)
        var loss: Double = 0
        logits.withUnsafeBufferPointer { z in
            gradient.storage.withUnsafeMutableBufferPointer { g in
                for row in 0..<count {
                    let base = row * classes
                    var top = -Float.infinity
                    for c in 0..<classes { top = Swift.max(top, z[base + c]) }
                    var total: Double = 0
                    for c in 0..<classes { total += Double(expf(z[base + c] - top)) }
                    let logTotal = Float(log(total))
                    loss -= Double(z[base + labels[row]] - top - logTotal)
                    for c in 0..<classes {
                        let p = expf(z[base + c] - top - logTotal)
                        g[base + c] = (p - (c == labels[row] ? 1 : 0)) / Float(count)
                    }
                }
            }
        }
        return (Float(loss / Double(count)), gradient)
    }
}
