import TensorKit

/// A trainable tensor with its accumulated gradient, addressed by a stable name.
///
/// Layers own their parameters by reference, so an optimiser (``Adam``) and the checkpoint code
/// (``Module/namedTensors()``, ``Module/load(_:)``) see and change the same storage the layers
/// compute with. Names follow PyTorch's `state_dict` keys (`g_1.0.weight`), so weights move
/// between the two without renaming.
public final class Parameter {
    /// The full name, for example `g_1.0.weight`.
    public let name: String
    /// The shape fixed at creation; ``value`` and ``gradient`` must keep it (layers check it
    /// before they read either through raw pointers).
    public let shape: [Int]
    /// The current value.
    public var value: Tensor
    /// `∂loss/∂value`, accumulated by backward passes until ``zeroGradient()``.
    public var gradient: Tensor

    /// A parameter with a zero gradient of the same shape as `value`.
    public init(name: String, value: Tensor) {
        self.name = name
        self.shape = value.shape
        self.value = value
        self.gradient = Tensor(shape: value.shape)
    }

    /// Stops on a value or gradient whose shape was changed from outside.
    @inline(__always)
    func checkShape() {
        precondition(value.shape == shape && gradient.shape == shape,
                     "parameter \(name) must keep shape \(shape), has value \(value.shape), gradient \(gradient.shape)")
    }

    /// Sets every gradient element to zero without reallocating.
    public func zeroGradient() {
        gradient.withUnsafeMutableBufferPointer { g in
            g.update(repeating: 0)
        }
    }
}

/// A named tensor that is saved with the model but not optimised (BatchNorm running statistics).
public final class Buffer {
    /// The full name, for example `g_1.3.running_mean`.
    public let name: String
    /// The shape fixed at creation; ``value`` must keep it.
    public let shape: [Int]
    /// The current value.
    public var value: Tensor

    public init(name: String, value: Tensor) {
        self.name = name
        self.shape = value.shape
        self.value = value
    }

    @inline(__always)
    func checkShape() {
        precondition(value.shape == shape, "buffer \(name) must keep shape \(shape), has \(value.shape)")
    }
}
