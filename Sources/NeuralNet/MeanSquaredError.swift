import TensorKit

/// How a loss over many elements is reduced to one number.
public enum Reduction: String, Sendable, CaseIterable {
    /// `Σ` over all elements (the tutorial's jigsaw loss).
    case sum
    /// `Σ / count` (PyTorch's default, the sorting loss).
    case mean
}

/// The squared error between a prediction and a target (PyTorch's `nn.MSELoss`).
///
/// `L = Σ (p − t)²` (sum) or `L = Σ (p − t)² / count` (mean); `∂L/∂p = 2 (p − t)` or
/// `2 (p − t) / count`. The value is accumulated in Double.
public enum MeanSquaredError {
    /// The loss value.
    public static func value(prediction: Tensor, target: Tensor, reduction: Reduction = .mean) -> Float {
        valueAndGradient(prediction: prediction, target: target, reduction: reduction, computeGradient: false).value
    }

    /// The loss value and `∂L/∂prediction` (same shape as the prediction).
    public static func valueAndGradient(prediction: Tensor, target: Tensor,
                                        reduction: Reduction = .mean) -> (value: Float, gradient: Tensor) {
        valueAndGradient(prediction: prediction, target: target, reduction: reduction, computeGradient: true)
    }

    private static func valueAndGradient(prediction: Tensor, target: Tensor, reduction: Reduction,
                                         computeGradient: Bool) -> (value: Float, gradient: Tensor) {
        precondition(prediction.shape == target.shape,
                     "MSE between shapes \(prediction.shape) and \(target.shape)")
        let count = prediction.count
        let divisor = reduction == .mean ? Float(max(count, 1)) : 1
        var gradient = computeGradient ? Tensor(shape: prediction.shape) : Tensor(shape: [0])
        var total = 0.0
        prediction.withUnsafeBufferPointer { p in
            target.withUnsafeBufferPointer { t in
                gradient.withUnsafeMutableBufferPointer { g in
                    let factor = 2 / divisor
                    for i in 0..<count {
                        let d = p[i] - t[i]
                        total += Double(d) * Double(d)
                        if computeGradient { g[i] = factor * d }
                    }
                }
            }
        }
        let value = reduction == .mean ? total / Double(max(count, 1)) : total
        return (Float(value), gradient)
    }
}
