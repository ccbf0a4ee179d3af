import Foundation
import NeuralNet
import Testing
import TensorKit

@Suite("Adam")
struct AdamTests {
    /// One scalar parameter driven by a given gradient sequence.
    func run(gradients: [Float], start: Float, learningRate: Float, weightDecay: Float = 0) -> [Float] {
        let parameter = Parameter(name: "theta", value: Tensor(shape: [1], storage: [start]))
        let adam = Adam(parameters: [parameter], learningRate: learningRate, weightDecay: weightDecay)
        var values: [Float] = []
        for gradient in gradients {
            parameter.gradient = Tensor(shape: [1], storage: [gradient])
            adam.step()
            values.append(parameter.value[0])
        }
        #expect(adam.stepCount == gradients.count)
        return values
    }

    @Test("a constant gradient moves by lr·g/(|g| + ε) per step (bias corrections cancel exactly)")
    func constantGradient() {
        let (g, lr): (Double, Double) = (0.3, 0.01)
        let values = run(gradients: Array(repeating: Float(g), count: 5), start: 1, learningRate: Float(lr))
        for (t, value) in values.enumerated() {
            let expected = 1 - Double(t + 1) * lr * g / (abs(g) + 1e-8)
            #expect(abs(Double(value) - expected) < 1e-6, "step \(t + 1)")
        }
    }

    @Test("ε is added to the bias-corrected √v̂, as in PyTorch")
    func epsilonPlacement() {
        // |g| = 1e-9: the first step is lr·g/(|g| + ε) = lr/11; the textbook form with ε added to the
        // uncorrected √v would move about lr/330.
        let values = run(gradients: [1e-9], start: 0, learningRate: 1)
        #expect(abs(Double(values[0]) + 1.0 / 11) < 1e-6)
    }

    @Test("a varying gradient sequence with weight decay matches the hand-computed recursion")
    func handComputed() {
        let gradients: [Double] = [1, -2, 0.5, 4]
        let (lr, wd, beta1, beta2, eps) = (0.1, 0.01, 0.9, 0.999, 1e-8)
        var theta = 2.0, m = 0.0, v = 0.0
        var expected: [Double] = []
        for (index, raw) in gradients.enumerated() {
            let t = Double(index + 1)
            let g = raw + wd * theta
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            let mHat = m / (1 - pow(beta1, t)), vHat = v / (1 - pow(beta2, t))
            theta -= lr * mHat / (vHat.squareRoot() + eps)
            expected.append(theta)
        }
        let values = run(gradients: gradients.map(Float.init), start: 2, learningRate: Float(lr), weightDecay: Float(wd))
        for (t, value) in values.enumerated() {
            #expect(abs(Double(value) - expected[t]) < 1e-5, "step \(t + 1): \(value) vs \(expected[t])")
        }
    }

    @Test("optimiser state round-trips and refuses malformed state unchanged")
    func stateRoundTrip() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2], storage: [1, -1]))
        let adam = Adam(parameters: [parameter], learningRate: 0.1)
        parameter.gradient = Tensor(shape: [2], storage: [0.5, 2])
        adam.step()
        let state = adam.stateTensors()
        let other = Parameter(name: "w", value: parameter.value)
        let resumed = Adam(parameters: [other], learningRate: 0.1)
        try resumed.loadState(state)
        #expect(resumed.stepCount == 1)
        parameter.gradient = Tensor(shape: [2], storage: [-1, 1])
        other.gradient = parameter.gradient
        adam.step()
        resumed.step()
        #expect(other.value == parameter.value)

        var wrongShape = state
        wrongShape["exp_avg.w"] = Tensor(shape: [3])
        #expect(throws: NeuralNetError.shapeMismatch(tensor: "exp_avg.w", expected: [2], found: [3])) {
            try resumed.loadState(wrongShape)
        }
        var missing = state
        missing["exp_avg_sq.w"] = nil
        #expect(throws: NeuralNetError.missingTensor(name: "exp_avg_sq.w")) { try resumed.loadState(missing) }
        #expect(resumed.stepCount == 2)
    }
}
