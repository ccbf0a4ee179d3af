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
