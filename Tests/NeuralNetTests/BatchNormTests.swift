import TestSupport
import NeuralNet
import Testing
import TensorKit

@Suite("BatchNorm2d")
struct BatchNormTests {
    @Test("training-mode forward and backward through the batch statistics", arguments: [1, 2])
    func trainingGradient(threads: Int) {
        let seed: UInt64 = 21
        var generator = SeededGenerator(seed: seed)
        let (n, c, h, w) = (3, 2, 2, 3)
        let layer = BatchNorm2d(name: "bn", channels: c)
        layer.threadCount = threads
        layer.weight.value = generator.uniform([c], low: 0.5, high: 2)
        layer.bias.value = generator.normal([c])
        let x = generator.normal([n, c, h, w], mean: 0.7, std: 1.5)
        let y = layer.forward(x)
        let gamma = layer.weight.value.doubles, beta = layer.bias.value.doubles
        func reference(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> [Double] {
            Reference.batchNorm(x, n: n, c: c, plane: h * w, gamma: gamma, beta: beta)
        }
        #expect(Reference.relativeError(y.doubles, reference(x.doubles, gamma, beta)) < forwardTolerance)
        let upstream = generator.normal(y.shape)
        let g = upstream.doubles
        let dx = layer.backward(upstream)
        let dxRef = Reference.gradient(at: x.doubles) { Reference.dot(g, reference($0, gamma, beta)) }
        let dgRef = Reference.gradient(at: gamma) { Reference.dot(g, reference(x.doubles, $0, beta)) }
        let dbRef = Reference.gradient(at: beta) { Reference.dot(g, reference(x.doubles, gamma, $0)) }
        #expect(Reference.relativeError(dx.doubles, dxRef) < gradientTolerance, "seed \(seed)")
        #expect(Reference.relativeError(layer.weight.gradient.doubles, dgRef) < gradientTolerance, "seed \(seed)")
        #expect(Reference.relativeError(layer.bias.gradient.doubles, dbRef) < gradientTolerance, "seed \(seed)")
    }

    @Test("running statistics use momentum 0.1 and the unbiased variance")
    func runningStatistics() {
        let layer = BatchNorm2d(name: "g_1.3", channels: 1)
        // Batch of 2 samples, 1 channel, 1×2 planes: values 1, 2, 3, 6 → mean 3, Σ(x−μ)² = 14.
        let first = Tensor(shape: [2, 1, 1, 2], storage: [1, 2, 3, 6])
        _ = layer.forward(first)
        // By hand: unbiased variance 14/3; running_mean = 0.9·0 + 0.1·3, running_var = 0.9·1 + 0.1·14/3.
        #expect(abs(layer.runningMean.value[0] - 0.3) < 1e-6)
        #expect(abs(layer.runningVariance.value[0] - Float(0.9 + 1.4 / 3)) < 1e-6)
        let second = Tensor(shape: [2, 1, 1, 2], storage: [0, 0, 0, 4])  // mean 1, Σ(x−μ)² = 12
        _ = layer.forward(second)
        #expect(abs(layer.runningMean.value[0] - Float(0.9 * 0.3 + 0.1 * 1)) < 1e-6)
        #expect(abs(layer.runningVariance.value[0] - Float(0.9 * (0.9 + 1.4 / 3) + 0.1 * 4)) < 1e-6)
        #expect(layer.runningMean.name == "g_1.3.running_mean" && layer.runningVariance.name == "g_1.3.running_var")
    }

    @Test("evaluation mode normalises with the running statistics and leaves them alone")
    func evaluationMode() {
        let layer = BatchNorm2d(name: "bn", channels: 2)
        layer.runningMean.value = Tensor(shape: [2], storage: [0.5, -1])
        layer.runningVariance.value = Tensor(shape: [2], storage: [4, 0.25])
        layer.weight.value = Tensor(shape: [2], storage: [2, 3])
        layer.bias.value = Tensor(shape: [2], storage: [0.1, -0.2])
        layer.isTraining = false
        let x = Tensor(shape: [1, 2, 1, 2], storage: [1.5, 0.5, -1, 0])
        let y = layer.forward(x)
        let expected: [Double] = [
            2 * (1.5 - 0.5) / (4 + 1e-5).squareRoot() + 0.1, 2 * (0.5 - 0.5) / (4 + 1e-5).squareRoot() + 0.1,
            3 * (-1 + 1) / (0.25 + 1e-5).squareRoot() - 0.2, 3 * (0 + 1) / (0.25 + 1e-5).squareRoot() - 0.2,
        ]
        #expect(Reference.relativeError(y.doubles, expected) < forwardTolerance)
        #expect(layer.runningMean.value.storage == [0.5, -1])
        #expect(layer.runningVariance.value.storage == [4, 0.25])
        // With constant statistics the input gradient is the per-channel scale γ/√(var+ε).
        let dx = layer.backward(Tensor(shape: [1, 2, 1, 2], repeating: 1))
        let scales = [2 / (4 + 1e-5).squareRoot(), 3 / (0.25 + 1e-5).squareRoot()]
        #expect(Reference.relativeError(dx.doubles, [scales[0], scales[0], scales[1], scales[1]]) < forwardTolerance)
    }
}
