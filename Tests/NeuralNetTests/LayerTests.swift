import TestSupport
import NeuralNet
import Testing
import TensorKit

@Suite("Layers")
struct LayerTests {
    struct ConvCase: CustomStringConvertible, Sendable {
        let n, c, o, h, w, k, padding: Int
        let bias: Bool
        var description: String { "N\(n) C\(c) O\(o) \(h)x\(w) k\(k) pad\(padding) bias \(bias)" }
    }

    @Test("Conv2d forward and backward against Double finite differences", arguments: [
        ConvCase(n: 2, c: 2, o: 3, h: 5, w: 6, k: 3, padding: 1, bias: true),
        ConvCase(n: 3, c: 1, o: 4, h: 6, w: 6, k: 5, padding: 2, bias: true),
        ConvCase(n: 1, c: 2, o: 2, h: 5, w: 4, k: 3, padding: 0, bias: false),
        ConvCase(n: 2, c: 3, o: 2, h: 3, w: 3, k: 1, padding: 0, bias: true),
    ])
    func conv2d(_ shape: ConvCase) {
        let seed: UInt64 = 11
        var generator = SeededGenerator(seed: seed)
        let layer = Conv2d(name: "conv", inputChannels: shape.c, outputChannels: shape.o, kernelSize: shape.k,
                           padding: shape.padding, bias: shape.bias, generator: &generator)
        layer.threadCount = 2
        let x = generator.normal([shape.n, shape.c, shape.h, shape.w])
        let y = layer.forward(x)
        let oh = shape.h + 2 * shape.padding - shape.k + 1, ow = shape.w + 2 * shape.padding - shape.k + 1
        #expect(y.shape == [shape.n, shape.o, oh, ow])
        let upstream = generator.normal(y.shape)
        let dx = layer.backward(upstream)

        let w = layer.weight.value.doubles, b = layer.bias?.value.doubles, g = upstream.doubles
        func reference(_ x: [Double], _ w: [Double], _ b: [Double]?) -> [Double] {
            Reference.conv2d(x, n: shape.n, c: shape.c, h: shape.h, w: shape.w, weight: w, outputs: shape.o,
                             kernel: shape.k, bias: b, padding: shape.padding)
        }
        #expect(Reference.relativeError(y.doubles, reference(x.doubles, w, b)) < forwardTolerance, "seed \(seed)")
        let dxRef = Reference.gradient(at: x.doubles) { Reference.dot(g, reference($0, w, b)) }
        let dwRef = Reference.gradient(at: w) { Reference.dot(g, reference(x.doubles, $0, b)) }
        #expect(Reference.relativeError(dx.doubles, dxRef) < gradientTolerance, "dInput, seed \(seed)")
        #expect(Reference.relativeError(layer.weight.gradient.doubles, dwRef) < gradientTolerance, "dWeight, seed \(seed)")
        if let b, let bias = layer.bias {
            let dbRef = Reference.gradient(at: b) { Reference.dot(g, reference(x.doubles, w, $0)) }
            #expect(Reference.relativeError(bias.gradient.doubles, dbRef) < gradientTolerance, "dBias, seed \(seed)")
        }
        // Gradients accumulate across backward calls, like PyTorch's.
        let once = layer.weight.gradient
        layer.accumulateParameterGradients(upstream)
        #expect(Reference.relativeError(layer.weight.gradient.doubles, once.doubles.map { 2 * $0 }) < 1e-5)
    }

    @Test("MaxPool2d forward and backward, including odd sizes", arguments: [(4, 6), (5, 7), (3, 3), (9, 10)])
    func maxPool(height: Int, width: Int) {
        let seed: UInt64 = 12
        var generator = SeededGenerator(seed: seed)
        let pool = MaxPool2d(kernelSize: 2)
        let x = generator.normal([2, 3, height, width])
        let y = pool.forward(x)
        #expect(y.shape == [2, 3, height / 2, width / 2])
        #expect(Reference.relativeError(y.doubles, Reference.maxPool(x.doubles, planes: 6, h: height, w: width,
                                                                     kernel: 2)) == 0)
        let upstream = generator.normal(y.shape)
        let dx = pool.backward(upstream)
        let dxRef = Reference.gradient(at: x.doubles) {
            Reference.dot(upstream.doubles, Reference.maxPool($0, planes: 6, h: height, w: width, kernel: 2))
        }
        #expect(Reference.relativeError(dx.doubles, dxRef) < gradientTolerance, "seed \(seed)")
    }

    @Test("MaxPool2d routes ties to the first maximum in scan order and lets NaN win")
    func maxPoolTies() {
        let pool = MaxPool2d(kernelSize: 2)
        // Eight windows per row so both the vector path and the scalar path are covered.
        let windows: [[Float]] = [
            [1, 1, 1, 1],      // all equal → (0,0)
            [0, 3, 3, 0],      // (0,1) before (1,0)
            [0, 0, 2, 2],      // (1,0) before (1,1)
            [-1, -2, -1, -1],  // (0,0)
            [1, .nan, 5, 0],   // NaN replaces 1; 5 > NaN is false → (0,1)
            [2, 2, 2, 3],      // (1,1)
            [4, 4, 4, 4],
            [0, 1, 1, 1],
        ]
        let expected = [0, 1, 2, 0, 1, 3, 0, 1]
        for count in [8, 3] {
            var x = Tensor(shape: [1, 1, 2, 2 * count])
            for (j, window) in windows.prefix(count).enumerated() {
                x[0, 0, 0, 2 * j] = window[0]; x[0, 0, 0, 2 * j + 1] = window[1]
                x[0, 0, 1, 2 * j] = window[2]; x[0, 0, 1, 2 * j + 1] = window[3]
            }
            let y = pool.forward(x)
            #expect(y[0, 0, 0, 4 % count].isNaN == (count > 4))
            let upstream = Tensor(shape: y.shape, storage: (0..<count).map { Float($0 + 1) })
            let dx = pool.backward(upstream)
            for j in 0..<count {
                let index = expected[j]
                for u in 0..<2 {
                    for v in 0..<2 {
                        let want: Float = u * 2 + v == index ? Float(j + 1) : 0
                        #expect(dx[0, 0, u, 2 * j + v] == want, "window \(j) of \(count), position \(u),\(v)")
                    }
                }
            }
        }
    }

    @Test("ReLU forward, in place, and backward")
    func relu() {
        var x = Tensor(shape: [9], storage: [-2, -0.5, 0, 0.5, 2, -1, 3, -4, 1])
        let y = ReLU.forward(x)
        #expect(y.storage == [0, 0, 0, 0.5, 2, 0, 3, 0, 1])
        ReLU.forward(inPlace: &x)
        #expect(x == y)
        let upstream = Tensor(shape: [9], storage: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        #expect(ReLU.backward(upstream, output: y).storage == [0, 0, 0, 4, 5, 0, 7, 0, 9])
    }

    @Test("Linear with and without bias against Double finite differences", arguments: [true, false])
    func linear(bias: Bool) {
        let seed: UInt64 = 13
        var generator = SeededGenerator(seed: seed)
        let layer = Linear(name: "fc", inputFeatures: 7, outputFeatures: 3, bias: bias, generator: &generator)
        #expect(layer.weight.shape == [3, 7] && layer.weight.name == "fc.weight")
        #expect(layer.bias?.name == (bias ? "fc.bias" : nil))
        let x = generator.normal([2, 5, 7])
        let y = layer.forward(x)
        #expect(y.shape == [2, 5, 3])
        let upstream = generator.normal(y.shape)
        let dx = layer.backward(upstream)
        let w = layer.weight.value.doubles, b = layer.bias?.value.doubles, g = upstream.doubles
        func reference(_ x: [Double], _ w: [Double], _ b: [Double]?) -> [Double] {
            Reference.linear(x, rows: 10, inputs: 7, weight: w, outputs: 3, bias: b)
        }
        #expect(Reference.relativeError(y.doubles, reference(x.doubles, w, b)) < forwardTolerance)
        let dxRef = Reference.gradient(at: x.doubles) { Reference.dot(g, reference($0, w, b)) }
        let dwRef = Reference.gradient(at: w) { Reference.dot(g, reference(x.doubles, $0, b)) }
        #expect(Reference.relativeError(dx.doubles, dxRef) < gradientTolerance, "seed \(seed)")
        #expect(Reference.relativeError(layer.weight.gradient.doubles, dwRef) < gradientTolerance, "seed \(seed)")
        if let b, let biasParameter = layer.bias {
            let dbRef = Reference.gradient(at: b) { Reference.dot(g, reference(x.doubles, w, $0)) }
            #expect(Reference.relativeError(biasParameter.gradient.doubles, dbRef) < gradientTolerance)
        }
    }

    @Test("Mean squared error value and gradient", arguments: Reduction.allCases)
    func meanSquaredError(reduction: Reduction) {
        let seed: UInt64 = 14
        var generator = SeededGenerator(seed: seed)
        let p = generator.normal([3, 4]), t = generator.normal([3, 4])
        func reference(_ p: [Double]) -> Double {
            let total = zip(p, t.doubles).reduce(0) { $0 + Reference.pow2($1.0 - $1.1) }
            return reduction == .sum ? total : total / Double(p.count)
        }
        let (value, gradient) = MeanSquaredError.valueAndGradient(prediction: p, target: t, reduction: reduction)
        #expect(abs(Double(value) - reference(p.doubles)) < 1e-5 * max(1, reference(p.doubles)))
        #expect(MeanSquaredError.value(prediction: p, target: t, reduction: reduction) == value)
        let expected = Reference.gradient(at: p.doubles, reference)
        #expect(Reference.relativeError(gradient.doubles, expected) < 1e-5, "seed \(seed)")
    }
}
