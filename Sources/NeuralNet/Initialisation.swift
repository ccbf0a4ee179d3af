import TensorKit

/// PyTorch's default initialisation of convolution and linear layers.
///
/// `kaiming_uniform_(a = √5)` reduces to `U(−1/√fanIn, 1/√fanIn)` for the weight, and the bias
/// uses the same bound (`torch.nn.Linear.reset_parameters`, `torch.nn.Conv2d.reset_parameters`).
enum Initialisation {
    static func uniformFanIn(_ shape: [Int], fanIn: Int, generator: inout SeededGenerator) -> Tensor {
        let bound = 1 / Float(max(fanIn, 1)).squareRoot()
        return generator.uniform(shape, low: -bound, high: bound)
    }
}

/// Calls `body` with the tensor's base address, or with `nil` when there is no tensor.
@inline(__always)
func withOptionalPointer<R>(_ tensor: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let tensor else { return body(nil) }
    return tensor.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// Calls `body` with the mutable base address of an optional parameter's gradient.
@inline(__always)
func withOptionalGradient<R>(_ parameter: Parameter?, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
    guard let parameter else { return body(nil) }
    return parameter.gradient.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}
