import TestSupport
import Foundation
import NeuralNet
import Testing
import TensorKit

/// The jigsaw network recomputed in Double from its named tensors with the reference layers.
func referenceJigsawScores(_ c: JigsawNetworkConfiguration, tensors: [String: [Double]], pieces: [Double],
                           batch: Int, training: Bool = true) -> [Double] {
    let n = c.pieceCount, count = batch * n
    var x = pieces, channels = c.channels, side = c.pieceSize
    for block in 0..<c.convolutionBlocks {
        let conv = "g_1.\(4 * block)", bn = "g_1.\(4 * block + 3)"
        x = Reference.conv2d(x, n: count, c: channels, h: side, w: side, weight: tensors[conv + ".weight"]!,
                             outputs: c.hiddenChannels, kernel: c.kernelSize, bias: tensors[conv + ".bias"],
                             padding: c.kernelSize / 2)
        x = Reference.relu(Reference.maxPool(x, planes: count * c.hiddenChannels, h: side, w: side, kernel: 2))
        side /= 2
        channels = c.hiddenChannels
        let gamma = tensors[bn + ".weight"]!, beta = tensors[bn + ".bias"]!
        if training {
            x = Reference.batchNorm(x, n: count, c: channels, plane: side * side, gamma: gamma, beta: beta)
        } else {
            let mean = tensors[bn + ".running_mean"]!, variance = tensors[bn + ".running_var"]!
            for i in 0..<x.count {
                let ch = (i / (side * side)) % channels
                x[i] = gamma[ch] * (x[i] - mean[ch]) / (variance[ch] + 1e-5).squareRoot() + beta[ch]
            }
        }
    }
    if c.hiddenUnits > 0 {
        var hidden = Reference.linear(x, rows: count, inputs: c.featureCount, weight: tensors["g_2.0.weight"]!,
                                      outputs: c.hiddenUnits, bias: tensors["g_2.0.bias"])
        if c.setContext {
            // Each puzzle's mean feature vector, through context.weight, joins every piece's pre-activation.
            let f = c.contextInputs, u = c.hiddenUnits
            let embedded = c.contextUnits > 0
                ? Reference.relu(Reference.linear(x, rows: count, inputs: c.featureCount,
                                                  weight: tensors["context.embed.weight"]!, outputs: c.contextUnits,
                                                  bias: tensors["context.embed.bias"]))
                : x
            var means = [Double](repeating: 0, count: batch * f)
            for piece in 0..<count {
                for k in 0..<f { means[(piece / n) * f + k] += embedded[piece * f + k] / Double(n) }
            }
            let terms = Reference.linear(means, rows: batch, inputs: f, weight: tensors["context.weight"]!,
                                         outputs: u, bias: nil)
            for piece in 0..<count {
                for k in 0..<u { hidden[piece * u + k] += terms[(piece / n) * u + k] }
            }
        }
        x = Reference.relu(hidden)
        if c.edgeBlocks > 0 {
            let graph = referenceEdgeGraph(pieces, puzzles: batch, n: n, channels: c.channels, side: c.pieceSize,
                                           sharpness: Double(c.edgeSharpness))
            for block in 0..<c.edgeBlocks {
                x = referenceEdgeAttention(x, graph: graph, tensors: tensors, name: "edges.\(block)", puzzles: batch,
                                           n: n, units: c.hiddenUnits)
            }
        }
        for block in 0..<c.attentionBlocks {
            x = referenceAttention(x, tensors: tensors, name: "attention.\(block)", puzzles: batch, n: n,
                                   units: c.hiddenUnits, heads: c.attentionHeads, headUnits: c.attentionHeadUnits)
        }
        return Reference.linear(x, rows: count, inputs: c.hiddenUnits, weight: tensors["g_2.2.weight"]!,
                                outputs: n, bias: nil)
    }
    return Reference.linear(x, rows: count, inputs: c.featureCount, weight: tensors["g_2.weight"]!, outputs: n, bias: nil)
}

/// One self-attention block in Double, written per element (no shared code with the kernels):
/// `Z = ReLU(X + concat_h softmax(QₕKₕᵀ/√d)·Vₕ · Woᵀ + bo)` for each puzzle's `n` rows.
func referenceAttention(_ x: [Double], tensors: [String: [Double]], name: String, puzzles: Int, n: Int,
                        units u: Int, heads: Int, headUnits d: Int) -> [Double] {
    let width = heads * d, rows = puzzles * n
    let q = Reference.linear(x, rows: rows, inputs: u, weight: tensors[name + ".query.weight"]!, outputs: width, bias: nil)
    let k = Reference.linear(x, rows: rows, inputs: u, weight: tensors[name + ".key.weight"]!, outputs: width, bias: nil)
    let v = Reference.linear(x, rows: rows, inputs: u, weight: tensors[name + ".value.weight"]!, outputs: width, bias: nil)
    var mixed = [Double](repeating: 0, count: rows * width)
    for b in 0..<puzzles {
        for h in 0..<heads {
            for i in 0..<n {
                var logits = [Double](repeating: 0, count: n)
                for j in 0..<n {
                    var dot = 0.0
                    for e in 0..<d { dot += q[(b * n + i) * width + h * d + e] * k[(b * n + j) * width + h * d + e] }
                    logits[j] = dot / Double(d).squareRoot()
                }
                let largest = logits.max()!
                let weights = logits.map { Foundation.exp($0 - largest) }
                let total = weights.reduce(0, +)
                for j in 0..<n {
                    for e in 0..<d {
                        mixed[(b * n + i) * width + h * d + e] += weights[j] / total * v[(b * n + j) * width + h * d + e]
                    }
                }
            }
        }
    }
    let projected = Reference.linear(mixed, rows: rows, inputs: width, weight: tensors[name + ".output.weight"]!,
                                     outputs: u, bias: tensors[name + ".output.bias"])
    return Reference.relu(zip(x, projected).map { $0 + $1 })
}

/// The edge graph in Double from the prediction-based dissimilarity, written per element:
/// weights `[puzzles][4][n][n]` and features `[rows][8]` (see `EdgeGraph`).
func referenceEdgeGraph(_ pieces: [Double], puzzles: Int, n: Int, channels: Int, side: Int, sharpness: Double)
    -> (weights: [Double], features: [Double]) {
    let size = channels * side * side
    func pixel(_ piece: Int, _ c: Int, _ y: Int, _ x: Int) -> Double { pieces[piece * size + (c * side + y) * side + x] }
    // cost(i left of j) and cost(i above j): each side's edge extrapolated across the seam, L1, both ways.
    func leftCost(_ i: Int, _ j: Int) -> Double {
        var total = 0.0
        for c in 0..<channels {
            for y in 0..<side {
                let a = pixel(i, c, y, side - 1), a2 = pixel(i, c, y, side - 2)
                let b = pixel(j, c, y, 0), b2 = pixel(j, c, y, 1)
                total += abs(2 * a - a2 - b) + abs(2 * b - b2 - a)
            }
        }
        return total
    }
    func aboveCost(_ i: Int, _ j: Int) -> Double {
        var total = 0.0
        for c in 0..<channels {
            for x in 0..<side {
                let a = pixel(i, c, side - 1, x), a2 = pixel(i, c, side - 2, x)
                let b = pixel(j, c, 0, x), b2 = pixel(j, c, 1, x)
                total += abs(2 * a - a2 - b) + abs(2 * b - b2 - a)
            }
        }
        return total
    }
    var weights = [Double](repeating: 0, count: puzzles * 4 * n * n)
    var features = [Double](repeating: 0, count: puzzles * n * 8)
    for b in 0..<puzzles {
        let base = b * n
        for d in 0..<4 {
            for i in 0..<n {
                let others = (0..<n).filter { $0 != i }
                let costs = others.map { j -> Double in
                    switch d {
                    case 0: leftCost(base + i, base + j)
                    case 1: leftCost(base + j, base + i)
                    case 2: aboveCost(base + i, base + j)
                    default: aboveCost(base + j, base + i)
                    }
                }
                let sorted = costs.sorted()
                let (best, second) = (sorted[0], sorted[1])
                let logits = costs.map { -sharpness * $0 / second }
                let largest = logits.max()!
                let exps = logits.map { Foundation.exp($0 - largest) }
                let total = exps.reduce(0, +)
                for (k, j) in others.enumerated() { weights[((b * 4 + d) * n + i) * n + j] = exps[k] / total }
                features[(base + i) * 8 + d] = 1 - best / second
            }
        }
        for d in 0..<4 {
            let opposite = d % 2 == 0 ? d + 1 : d - 1
            for i in 0..<n {
                var agreement = 0.0
                for j in 0..<n {
                    agreement += weights[((b * 4 + d) * n + i) * n + j] * weights[((b * 4 + opposite) * n + j) * n + i]
                }
                features[(base + i) * 8 + 4 + d] = agreement
            }
        }
    }
    return (weights, features)
}

/// One edge attention block in Double: `Z = ReLU(H + [A¹H A²H A³H A⁴H F]·Wᵀ + b)` per puzzle.
func referenceEdgeAttention(_ x: [Double], graph: (weights: [Double], features: [Double]), tensors: [String: [Double]],
                            name: String, puzzles: Int, n: Int, units u: Int) -> [Double] {
    let width = 4 * u + 8, rows = puzzles * n
    var messages = [Double](repeating: 0, count: rows * width)
    for b in 0..<puzzles {
        for i in 0..<n {
            let row = (b * n + i) * width
            for d in 0..<4 {
                for j in 0..<n {
                    let a = graph.weights[((b * 4 + d) * n + i) * n + j]
                    for k in 0..<u { messages[row + d * u + k] += a * x[(b * n + j) * u + k] }
                }
            }
            for f in 0..<8 { messages[row + 4 * u + f] = graph.features[(b * n + i) * 8 + f] }
        }
    }
    let projected = Reference.linear(messages, rows: rows, inputs: width, weight: tensors[name + ".weight"]!,
                                     outputs: u, bias: tensors[name + ".bias"])
    return Reference.relu(zip(x, projected).map { $0 + $1 })
}

@Suite("JigsawNetwork")
struct JigsawNetworkTests {
    static let configurations: [JigsawNetworkConfiguration] = [
        JigsawNetworkConfiguration(grid: 2, imageSize: 8, channels: 1, hiddenChannels: 3, kernelSize: 3),
        JigsawNetworkConfiguration(grid: 3, imageSize: 15, channels: 1, hiddenChannels: 2, kernelSize: 5),
        JigsawNetworkConfiguration(grid: 2, imageSize: 16, channels: 3, hiddenChannels: 2, kernelSize: 3,
                                   extraConvolutionBlocks: 1, hiddenUnits: 5,
                                   normalisationMean: [0.5, 0.4, 0.3], normalisationStd: [0.2, 0.2, 0.2]),
        JigsawNetworkConfiguration(grid: 2, imageSize: 12, channels: 1, hiddenChannels: 3, kernelSize: 3,
                                   hiddenUnits: 6, setContext: true),
        JigsawNetworkConfiguration(grid: 3, imageSize: 24, channels: 1, hiddenChannels: 2, kernelSize: 3,
                                   extraConvolutionBlocks: 1, hiddenUnits: 4, setContext: true),
        JigsawNetworkConfiguration(grid: 2, imageSize: 12, channels: 1, hiddenChannels: 3, kernelSize: 3,
                                   hiddenUnits: 5, setContext: true, contextUnits: 7),
        JigsawNetworkConfiguration(grid: 2, imageSize: 12, channels: 1, hiddenChannels: 3, kernelSize: 3,
                                   hiddenUnits: 6, attentionBlocks: 1, attentionHeads: 2, attentionHeadUnits: 3),
        JigsawNetworkConfiguration(grid: 3, imageSize: 12, channels: 1, hiddenChannels: 2, kernelSize: 3,
                                   hiddenUnits: 5, setContext: true, attentionBlocks: 2, attentionHeads: 3,
                                   attentionHeadUnits: 2),
        JigsawNetworkConfiguration(grid: 2, imageSize: 12, channels: 3, hiddenChannels: 2, kernelSize: 3,
                                   hiddenUnits: 5, edgeBlocks: 2, edgeMeasure: "prediction", edgeSharpness: 3,
                                   normalisationMean: [0.5, 0.4, 0.3], normalisationStd: [0.2, 0.2, 0.2]),
        JigsawNetworkConfiguration(grid: 3, imageSize: 12, channels: 1, hiddenChannels: 2, kernelSize: 3,
                                   hiddenUnits: 4, setContext: true, attentionBlocks: 1, attentionHeads: 2,
                                   attentionHeadUnits: 2, edgeBlocks: 1, edgeMeasure: "prediction"),
    ]

    @Test("scores and every parameter gradient against Double finite differences",
          arguments: configurations, [1, 2])
    func gradients(configuration: JigsawNetworkConfiguration, threads: Int) throws {
        let seed: UInt64 = 31
        var generator = SeededGenerator(seed: seed)
        let network = try JigsawNetwork(configuration: configuration, seed: seed)
        network.threadCount = threads
        // At least 16 pieces, so two threads really split the batch (a worker takes 8 pieces or more).
        let batch = 4
        let pieces = generator.normal(network.inputShape(batch: batch))
        // Non-trivial BatchNorm affine parameters so their gradients are exercised.
        for normalisation in network.normalisations {
            normalisation.weight.value = generator.uniform([configuration.hiddenChannels], low: 0.5, high: 1.5)
            normalisation.bias.value = generator.normal([configuration.hiddenChannels], std: 0.3)
        }
        let tensors = network.namedTensors()
        let scores = network.forward(pieces)
        #expect(scores.shape == [batch, configuration.pieceCount, configuration.pieceCount])
        var doubles = tensors.mapValues(\.doubles)
        let x = pieces.doubles
        let expected = referenceJigsawScores(configuration, tensors: doubles, pieces: x, batch: batch)
        #expect(Reference.relativeError(scores.doubles, expected) < forwardTolerance, "seed \(seed)")

        let upstream = generator.normal(scores.shape)
        network.zeroGradients()
        network.backward(upstream)
        let g = upstream.doubles
        for parameter in network.parameters {
            let numeric = Reference.gradient(at: doubles[parameter.name]!) { value in
                doubles[parameter.name] = value
                return Reference.dot(g, referenceJigsawScores(configuration, tensors: doubles, pieces: x, batch: batch))
            }
            doubles[parameter.name] = tensors[parameter.name]!.doubles
            #expect(Reference.relativeError(parameter.gradient.doubles, numeric) < gradientTolerance,
                    "\(parameter.name), seed \(seed), \(threads) threads")
        }

        // Evaluation mode uses the running statistics the training pass just updated.
        network.isTraining = false
        let evaluated = network.forward(pieces)
        let evalExpected = referenceJigsawScores(configuration, tensors: network.namedTensors().mapValues(\.doubles),
                                                 pieces: x, batch: batch, training: false)
        #expect(Reference.relativeError(evaluated.doubles, evalExpected) < forwardTolerance, "seed \(seed)")
    }

    @Test("repeated steps reuse the workspace and give identical results for the same seed and threads")
    func deterministic() throws {
        var generator = SeededGenerator(seed: 32)
        let configuration = JigsawNetworkConfiguration(grid: 2, imageSize: 12, hiddenChannels: 4)
        // 32 pieces: two workers of 16 when two threads are allowed.
        let pieces = generator.normal([8, 4, 1, 6, 6])
        let upstream = generator.normal([8, 4, 4])
        func train(threads: Int) throws -> [String: Tensor] {
            let network = try JigsawNetwork(configuration: configuration, seed: 5)
            network.threadCount = threads
            let adam = Adam(parameters: network.parameters, learningRate: 0.01)
            for _ in 0..<3 {
                adam.zeroGradients()
                _ = network.forward(pieces)
                network.backward(upstream)
                adam.step()
            }
            return network.namedTensors()
        }
        #expect(try train(threads: 2) == train(threads: 2))
        // Across thread counts only the grouping of float sums differs. Compared on gradients:
        // Adam would blow rounding noise in near-zero gradients up to whole learning-rate steps.
        func gradients(threads: Int) throws -> [String: Tensor] {
            let network = try JigsawNetwork(configuration: configuration, seed: 5)
            network.threadCount = threads
            _ = network.forward(pieces)
            network.backward(upstream)
            return Dictionary(uniqueKeysWithValues: network.parameters.map { ($0.name, $0.gradient) })
        }
        let one = try gradients(threads: 1), two = try gradients(threads: 2)
        for (name, gradient) in one {
            let scale = max(1, gradient.storage.map(abs).max() ?? 0)
            #expect(gradient.maxAbsDifference(two[name]!) < 1e-5 * scale, "\(name): 1 vs 2 threads")
        }
    }

    static let setConfigurations: [JigsawNetworkConfiguration] = [
        JigsawNetworkConfiguration(grid: 3, imageSize: 12, hiddenChannels: 3, kernelSize: 3,
                                   hiddenUnits: 8, setContext: true, contextUnits: 6),
        JigsawNetworkConfiguration(grid: 3, imageSize: 12, hiddenChannels: 3, kernelSize: 3,
                                   hiddenUnits: 8, attentionBlocks: 2, attentionHeads: 2, attentionHeadUnits: 4),
        JigsawNetworkConfiguration(grid: 3, imageSize: 12, hiddenChannels: 3, kernelSize: 3,
                                   hiddenUnits: 8, edgeBlocks: 2),
    ]

    @Test("with set context, attention or edge attention, scrambling a puzzle's pieces only reorders its score rows, and other puzzles do not matter",
          arguments: setConfigurations, [false, true])
    func setContextEquivariance(configuration: JigsawNetworkConfiguration, training: Bool) throws {
        var generator = SeededGenerator(seed: 33)
        let network = try JigsawNetwork(configuration: configuration, seed: 7)
        network.isTraining = training
        let n = configuration.pieceCount, pieceSize = configuration.channels * 4 * 4
        let pieces = generator.normal([2, n, 1, 4, 4])
        let scores = network.forward(pieces).storage
        // Scramble the first puzzle only: its rows follow the pieces; the second puzzle's rows stay
        // (BatchNorm's batch statistics are over all pieces, which a scramble does not change).
        let order = generator.permutation(n)
        var scrambled = pieces
        for i in 0..<n {
            for k in 0..<pieceSize { scrambled.storage[i * pieceSize + k] = pieces.storage[order[i] * pieceSize + k] }
        }
        let moved = network.forward(scrambled).storage
        var expected = scores
        for i in 0..<n {
            for j in 0..<n { expected[i * n + j] = scores[order[i] * n + j] }
        }
        let error = zip(moved, expected).map { abs($0 - $1) }.max() ?? 0
        #expect(error < 1e-4)
        // A different context changes the scores of a piece: the set layer is really used.
        var other = pieces
        for k in (pieceSize)..<(n * pieceSize) { other.storage[k] = -pieces.storage[k] }
        network.isTraining = false
        let base = network.forward(pieces).storage
        let changed = network.forward(other).storage
        #expect(zip(base[0..<n], changed[0..<n]).contains { abs($0 - $1) > 1e-3 })
    }

    @Test("the default network is the tutorial's, with its PyTorch tensor names and shapes")
    func tutorialNames() throws {
        let network = try JigsawNetwork()
        let shapes = network.namedTensors().mapValues(\.shape)
        #expect(shapes == [
            "g_1.0.weight": [32, 1, 5, 5], "g_1.0.bias": [32],
            "g_1.3.weight": [32], "g_1.3.bias": [32], "g_1.3.running_mean": [32], "g_1.3.running_var": [32],
            "g_2.weight": [4, 1568],
        ])
        #expect(network.parameters.map(\.name) == ["g_1.0.weight", "g_1.0.bias", "g_1.3.weight", "g_1.3.bias", "g_2.weight"])
        #expect(network.inputShape(batch: 64) == [64, 4, 1, 14, 14])
        let deeper = try JigsawNetwork(configuration: JigsawNetworkConfiguration(
            grid: 2, imageSize: 28, extraConvolutionBlocks: 1, hiddenUnits: 16))
        #expect(Set(deeper.namedTensors().keys) == [
            "g_1.0.weight", "g_1.0.bias", "g_1.3.weight", "g_1.3.bias", "g_1.3.running_mean", "g_1.3.running_var",
            "g_1.4.weight", "g_1.4.bias", "g_1.7.weight", "g_1.7.bias", "g_1.7.running_mean", "g_1.7.running_var",
            "g_2.0.weight", "g_2.0.bias", "g_2.2.weight",
        ])
        #expect(deeper.namedTensors()["g_2.0.weight"]?.shape == [16, 32 * 3 * 3])
    }
}
