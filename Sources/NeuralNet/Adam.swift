import Foundation
import TensorKit

/// The Adam optimiser with PyTorch's semantics (`torch.optim.Adam`, `amsgrad=False`;
/// Kingma & Ba 2015, Algorithm 1, with ε added to the bias-corrected √v̂).
///
/// For each parameter at step t (starting at 1), with gradient g:
///
///     g ← g + weightDecay·θ                      (L2 penalty, when weightDecay ≠ 0)
///     m ← β₁·m + (1 − β₁)·g
///     v ← β₂·v + (1 − β₂)·g²
///     θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// Moments are kept per parameter name, so an optimiser can be rebuilt around reloaded
/// parameters (``stateTensors()``, ``loadState(_:)``).
public final class Adam {
    public var learningRate: Float
    public var betas: (Float, Float)
    public var epsilon: Float
    public var weightDecay: Float
    /// The parameters updated by ``step()``.
    public let parameters: [Parameter]
    /// The number of steps taken so far.
    public private(set) var stepCount: Int = 0

    private var firstMoments: [Tensor]
    private var secondMoments: [Tensor]

    public init(parameters: [Parameter], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                epsilon: Float = 1e-8, weightDecay: Float = 0) {
        precondition(Set(parameters.map(\.name)).count == parameters.count, "duplicate parameter names")
        self.parameters = parameters
        self.learningRate = learningRate
        self.betas = betas
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        firstMoments = parameters.map { Tensor(shape: $0.shape) }
        secondMoments = parameters.map { Tensor(shape: $0.shape) }
    }

    /// Applies one update to every parameter from its current gradient.
    public func step() {
        stepCount += 1
        let (beta1, beta2) = (Double(betas.0), Double(betas.1))
        let t = Double(stepCount)
        let correction1 = 1 - pow(beta1, t)
        let correction2Root = (1 - pow(beta2, t)).squareRoot()
        let stepSize = Float(Double(learningRate) / correction1)
        let correction2RootFloat = Float(correction2Root)
        let (b1, b2) = (betas.0, betas.1)
        let (eps, decay) = (epsilon, weightDecay)
        for (index, parameter) in parameters.enumerated() {
            parameter.checkShape()
            parameter.gradient.withUnsafeBufferPointer { g in
                parameter.value.withUnsafeMutableBufferPointer { theta in
                    firstMoments[index].withUnsafeMutableBufferPointer { m in
                        secondMoments[index].withUnsafeMutableBufferPointer { v in
                            for i in 0..<theta.count {
                                let gradient = decay == 0 ? g[i] : g[i] + decay * theta[i]
                                // The same operation order as PyTorch: m.lerp_(g, 1 − β₁), v.mul_(β₂).addcmul_(g, g, 1 − β₂).
                                m[i] += (1 - b1) * (gradient - m[i])
                                v[i] = v[i] * b2 + (1 - b2) * gradient * gradient
                                let denominator = v[i].squareRoot() / correction2RootFloat + eps
                                theta[i] -= stepSize * m[i] / denominator
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sets the gradients of all parameters to zero.
    public func zeroGradients() {
        for parameter in parameters { parameter.zeroGradient() }
    }

    /// The optimiser state by name: `exp_avg.<parameter>`, `exp_avg_sq.<parameter>` and `step`
    /// (a one-element tensor), for checkpoints that resume training.
    public func stateTensors() -> [String: Tensor] {
        var result: [String: Tensor] = ["step": Tensor(shape: [1], storage: [Float(stepCount)])]
        for (index, parameter) in parameters.enumerated() {
            result["exp_avg." + parameter.name] = firstMoments[index]
            result["exp_avg_sq." + parameter.name] = secondMoments[index]
        }
        return result
    }

    /// Restores the state written by ``stateTensors()``; strict like ``Module/load(_:)`` and
    /// unchanged on error.
    ///
    /// - Throws: ``NeuralNetError`` naming the first missing, unused or misshapen tensor.
    public func loadState(_ tensors: [String: Tensor]) throws {
        var expected: [String: [Int]] = ["step": [1]]
        for parameter in parameters {
            expected["exp_avg." + parameter.name] = parameter.shape
            expected["exp_avg_sq." + parameter.name] = parameter.shape
        }
        for name in expected.keys.sorted() {
            guard let tensor = tensors[name] else { throw NeuralNetError.missingTensor(name: name) }
            let shape = expected[name] ?? []
            if tensor.shape != shape {
                throw NeuralNetError.shapeMismatch(tensor: name, expected: shape, found: tensor.shape)
            }
        }
        for name in tensors.keys.sorted() where expected[name] == nil {
            throw NeuralNetError.unusedTensor(name: name)
        }
        let step = tensors["step"]?.storage.first ?? 0
        guard step >= 0, step < 1e9, step == step.rounded() else {
            throw NeuralNetError.invalidMetadata(key: "step", value: String(step))
        }
        stepCount = Int(step)
        for (index, parameter) in parameters.enumerated() {
            if let m = tensors["exp_avg." + parameter.name] { firstMoments[index] = m }
            if let v = tensors["exp_avg_sq." + parameter.name] { secondMoments[index] = v }
        }
    }
}
