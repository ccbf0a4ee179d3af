import Foundation
import NeuralNet
import Testing
import TensorKit

@Suite("EdgeAttention")
struct EdgeAttentionTests {
    /// A smooth RGB picture `[3, side, side]` cut into a `grid × grid` puzzle `[1, n, 3, p, p]`, in
    /// row-major cell order (piece `k` belongs in cell `k`).
    static func smoothPuzzle(grid: Int, pieceSide p: Int) -> Tensor {
        let side = grid * p, n = grid * grid
        var pieces = Tensor(shape: [1, n, 3, p, p])
        for cell in 0..<n {
            for c in 0..<3 {
                for y in 0..<p {
                    for x in 0..<p {
                        let u = Double((cell % grid) * p + x) / Double(side), v = Double((cell / grid) * p + y) / Double(side)
                        let value = 0.5 + 0.2 * sin(2 * .pi * (1.7 * u + 0.4 * v) + Double(c))
                            + 0.15 * cos(2 * .pi * (0.3 * u - 1.9 * v) * Double(c + 1)) + 0.1 * u * v
                        pieces[0, cell, c, y, x] = Float(value)
                    }
                }
            }
        }
        return pieces
    }

    @Test("the graph's strongest weight in each direction goes to the true neighbour; borders have no confident neighbour",
          arguments: ["mgc", "prediction"])
    func trueNeighbours(measure: String) throws {
        let grid = 3, n = 9
        let configuration = JigsawNetworkConfiguration(grid: grid, imageSize: 3 * 16, channels: 3, hiddenChannels: 2,
                                                       kernelSize: 3, hiddenUnits: 4, edgeBlocks: 1, edgeMeasure: measure)
        let network = try JigsawNetwork(configuration: configuration, seed: 1)
        network.isTraining = false
        let pieces = Self.smoothPuzzle(grid: grid, pieceSide: 16)
        _ = network.forward(pieces)
        let graph = try #require(network.edgeGraph)
        let (weights, features) = graph.snapshot
        // Direction d: right, left, below, above.
        let steps = [(1, 0), (-1, 0), (0, 1), (0, -1)]
        for d in 0..<4 {
            for i in 0..<n {
                let (x, y) = (i % grid + steps[d].0, i / grid + steps[d].1)
                let row = Array(weights[(d * n + i) * n..<((d * n + i) + 1) * n])
                #expect(abs(row.reduce(0, +) - 1) < 1e-5)
                #expect(row[i] == 0)
                let confidence = features[i * 8 + d]
                if (0..<grid).contains(x) && (0..<grid).contains(y) {
                    let neighbour = y * grid + x
                    #expect(row.firstIndex(of: row.max()!) == neighbour, "piece \(i), direction \(d)")
                    #expect(confidence > 0.2, "piece \(i), direction \(d): confidence \(confidence)")
                }
            }
        }
        // A piece inside the picture is confident on all four sides, a corner on two of them.
        let centre = (0..<4).map { features[4 * 8 + $0] }.min()!
        let corner = [features[0 * 8 + 1], features[0 * 8 + 3]].max()!
        #expect(corner < centre, "corner \(corner), centre \(centre)")
    }

    /// Gallagher's MGC in Double, written from the paper's definition: for `i` left of `j`, the
    /// gradients across the seam scored by the Mahalanobis distance under each side's boundary
    /// gradients (plus the nine dummy gradients and a 1e-6 ridge), summed over rows, both sides.
    static func referenceMGC(_ pieces: [Double], n: Int, side: Int, _ i: Int, _ j: Int) -> Double {
        func px(_ p: Int, _ c: Int, _ y: Int, _ x: Int) -> Double { pieces[((p * 3 + c) * side + y) * side + x] }
        func model(_ gradients: [[Double]]) -> (mean: [Double], inverse: [[Double]]) {
            var samples = gradients
            for d in [0.0, 1.0 / 255, -1.0 / 255] { for c in 0..<3 { var g = [d, d, d]; g[c] = -d; samples.append(g) } }
            let mean = (0..<3).map { c in samples.map { $0[c] }.reduce(0, +) / Double(samples.count) }
            var cov = [[Double]](repeating: [0, 0, 0], count: 3)
            let scale = 1 / Double(samples.count - 1)
            for g in samples { for r in 0..<3 { for c in 0..<3 { cov[r][c] += (g[r] - mean[r]) * (g[c] - mean[c]) * scale } } }
            for c in 0..<3 { cov[c][c] += 1e-6 }
            // Inverse by the adjugate.
            let m = cov
            let t0: Double = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            let t1: Double = m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            let t2: Double = m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
            let det = t0 - t1 + t2
            var inverse = [[Double]](repeating: [0, 0, 0], count: 3)
            for r in 0..<3 {
                for c in 0..<3 {
                    let rows = (0..<3).filter { $0 != c }, cols = (0..<3).filter { $0 != r }
                    let p: Double = m[rows[0]][cols[0]] * m[rows[1]][cols[1]]
                    let q: Double = m[rows[0]][cols[1]] * m[rows[1]][cols[0]]
                    let sign: Double = (r + c) % 2 == 0 ? 1 : -1
                    inverse[r][c] = sign * (p - q) / det
                }
            }
            return (mean, inverse)
        }
        func mahalanobis(_ g: [Double], _ m: (mean: [Double], inverse: [[Double]])) -> Double {
            let d = (0..<3).map { g[$0] - m.mean[$0] }
            var total = 0.0
            for r in 0..<3 { for c in 0..<3 { total += d[r] * m.inverse[r][c] * d[c] } }
            return max(0, total)
        }
        let left = model((0..<side).map { y in (0..<3).map { px(i, $0, y, side - 1) - px(i, $0, y, side - 2) } })
        let right = model((0..<side).map { y in (0..<3).map { px(j, $0, y, 0) - px(j, $0, y, 1) } })
        var total = 0.0
        for y in 0..<side {
            let across = (0..<3).map { px(j, $0, y, 0) - px(i, $0, y, side - 1) }
            total += mahalanobis(across, left) + mahalanobis(across.map { -$0 }, right)
        }
        return total
    }

    @Test("MGC costs of RGB pieces match a Double implementation of Gallagher's definition")
    func mgcAgainstReference() {
        var generator = SeededGenerator(seed: 8)
        let (n, side) = (5, 12)
        let pieces = generator.uniform([n, 3, side, side], low: 0, high: 1)
        let costs = EdgeCompatibility(pieces: pieces, measure: .mahalanobisGradient)
        let values = pieces.doubles
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<n where j != i {
                let expected = Self.referenceMGC(values, n: n, side: side, i, j)
                worst = max(worst, abs(Double(costs.left[i * n + j]) - expected) / max(expected, 1))
            }
        }
        #expect(worst < 1e-3, "largest relative difference \(worst)")
    }

    @Test("edge keys are written only with edge blocks and read back")
    func metadata() throws {
        let plain = JigsawNetworkConfiguration(grid: 3, imageSize: 12, hiddenUnits: 4)
        #expect(plain.metadata.keys.allSatisfy { !$0.hasPrefix("edge_") })
        var edges = plain
        edges.edgeBlocks = 2
        edges.edgeMeasure = "prediction"
        edges.edgeSharpness = 5.5
        let read = try JigsawNetworkConfiguration(metadata: edges.metadata)
        #expect(read == edges)
        var bad = edges.metadata
        bad["edge_measure"] = "ssd"
        #expect(throws: NeuralNetError.self) { try JigsawNetworkConfiguration(metadata: bad) }
        bad = edges.metadata
        bad["edge_sharpness"] = "-1"
        #expect(throws: NeuralNetError.self) { try JigsawNetworkConfiguration(metadata: bad) }
        var noHidden = edges
        noHidden.hiddenUnits = 0
        #expect(throws: NeuralNetError.self) { try noHidden.validate() }
    }
}
