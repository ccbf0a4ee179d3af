import TensorKit

/// A model made of named parameters and buffers: the unit that optimisers update and
/// checkpoints save and load.
public protocol Module: AnyObject {
    /// Every trainable tensor, in a fixed order.
    var parameters: [Parameter] { get }
    /// Every saved but untrained tensor (running statistics), in a fixed order.
    var buffers: [Buffer] { get }
}

extension Module {
    /// Parameters and buffers by name: what a weights file stores.
    public func namedTensors() -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for parameter in parameters { result[parameter.name] = parameter.value }
        for buffer in buffers { result[buffer.name] = buffer.value }
        return result
    }

    /// Replaces every parameter and buffer with the tensor of the same name.
    ///
    /// Strict: every tensor the model has must be present with the same shape, and every given
    /// tensor must be used, except PyTorch's `*.num_batches_tracked` counters, which are ignored.
    /// Everything is validated before anything is assigned, so on error the model is unchanged.
    /// Gradients are not touched.
    ///
    /// - Throws: ``NeuralNetError/missingTensor(name:)``, ``NeuralNetError/unusedTensor(name:)``,
    ///   ``NeuralNetError/shapeMismatch(tensor:expected:found:)``; names are checked in sorted order
    ///   so the same file always reports the same tensor.
    public func load(_ tensors: [String: Tensor]) throws {
        var expected: [String: [Int]] = [:]
        for parameter in parameters { expected[parameter.name] = parameter.shape }
        for buffer in buffers { expected[buffer.name] = buffer.shape }
        for name in expected.keys.sorted() {
            guard let tensor = tensors[name] else { throw NeuralNetError.missingTensor(name: name) }
            let shape = expected[name] ?? []
            if tensor.shape != shape {
                throw NeuralNetError.shapeMismatch(tensor: name, expected: shape, found: tensor.shape)
            }
        }
        for name in tensors.keys.sorted() where expected[name] == nil {
            if name == "num_batches_tracked" || name.hasSuffix(".num_batches_tracked") { continue }
            throw NeuralNetError.unusedTensor(name: name)
        }
        for parameter in parameters {
            if let tensor = tensors[parameter.name] { parameter.value = tensor }
        }
        for buffer in buffers {
            if let tensor = tensors[buffer.name] { buffer.value = tensor }
        }
    }

    /// Sets all parameter gradients to zero.
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// The parameter with this name, if any.
    public func parameter(named name: String) -> Parameter? {
        parameters.first { $0.name == name }
    }

    /// The number of trainable scalars.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}
