import TensorKit

/// The rectifier `max(x, 0)` (PyTorch's `nn.ReLU`; NaN passes through).
///
/// The backward pass needs only the output: `∂L/∂x = ∂L/∂y · [y > 0]`, which is what PyTorch's
/// in-place ReLU uses too.
public enum ReLU {
    /// `max(x, 0)` elementwise, in place.
    public static func forward(inPlace tensor: inout Tensor) {
        tensor.withUnsafeMutableBufferPointer { x in
            rectify(x.baseAddress!, count: x.count)
        }
    }

    /// `max(x, 0)` elementwise.
    public static func forward(_ input: Tensor) -> Tensor {
        var output = input
        forward(inPlace: &output)
        return output
    }

    /// Masks `gradient` in place with `output > 0`.
    public static func backward(inPlace gradient: inout Tensor, output: Tensor) {
        precondition(gradient.shape == output.shape, "ReLU gradient \(gradient.shape) vs output \(output.shape)")
        output.withUnsafeBufferPointer { y in
            gradient.withUnsafeMutableBufferPointer { g in
                mask(g.baseAddress!, output: y.baseAddress!, count: g.count)
            }
        }
    }

    /// `∂L/∂y · [y > 0]`.
    public static func backward(_ outputGradient: Tensor, output: Tensor) -> Tensor {
        var gradient = outputGradient
        backward(inPlace: &gradient, output: output)
        return gradient
    }

    @inline(__always)
    static func rectify(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let zero = SIMD4<Float>(repeating: 0)
        while i + 4 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v.replacing(with: zero, where: v .< zero),
                                                      as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            if x[i] < 0 { x[i] = 0 }
            i += 1
        }
    }

    @inline(__always)
    static func mask(_ gradient: UnsafeMutablePointer<Float>, output: UnsafePointer<Float>, count: Int) {
        var i = 0
        let zero = SIMD4<Float>(repeating: 0)
        while i + 4 <= count {
            let y = UnsafeRawPointer(output + i).loadUnaligned(as: SIMD4<Float>.self)
            let g = UnsafeRawPointer(gradient + i).loadUnaligned(as: SIMD4<Float>.self)
            UnsafeMutableRawPointer(gradient + i).storeBytes(of: g.replacing(with: zero, where: .!(y .> zero)),
                                                             as: SIMD4<Float>.self)
            i += 4
        }
        while i < count {
            if !(output[i] > 0) { gradient[i] = 0 }
            i += 1
        }
    }
}
