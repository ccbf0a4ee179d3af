import Glibc
import TensorKit

/// Which piece continues which across each of its four edges, computed once per forward pass from
/// the network's input pieces at full resolution and shared by every ``EdgeAttention`` block.
///
/// For the `n` pieces of a puzzle, ``EdgeCompatibility`` gives `L[i, j]`, the dissimilarity of `i`
/// placed left of `j`, and `V[i, j]` of `i` placed above `j`. For each direction `d` (right, left,
/// below, above) piece `i`'s candidate costs are `c_j = L[i, j]`, `L[j, i]`, `V[i, j]`, `V[j, i]`
/// (`j ≠ i`); with `c₁ ≤ c₂` the two smallest (Paikin & Tal 2015 compare the best match with the
/// second best the same way),
///
///     Aᵈᵢⱼ = softmax_j(−κ · c_j / c₂)                      (row-stochastic, Aᵈᵢᵢ = 0)
///     confidenceᵈᵢ = 1 − c₁ / c₂                             (near 0: no clear neighbour, e.g. a border)
///     mutualᵈᵢ = Σ_j Aᵈᵢⱼ · A^{d̄}ⱼᵢ                          (j's opposite edge agrees: best buddies)
///
/// with `κ` the sharpness. The weights and the eight features per piece depend on pixels only, not
/// on any parameter, so nothing flows back through them. Rows are pieces, `n` per puzzle; puzzles
/// never mix, so the graph follows the pieces when they are scrambled.
public final class EdgeGraph {
    /// Directions of the weights: piece `j` right of, left of, below and above piece `i`.
    public static let directions = 4
    /// Features per piece: a confidence per direction, then a mutual agreement per direction.
    public static let featureCount = 8

    public let measure: EdgeCompatibility.Measure
    public let sharpness: Float
    private(set) var rows = 0, piecesPerPuzzle = 0
    /// `[puzzles, 4, n, n]`.
    private(set) var weights = FloatBuffer(count: 0)
    /// `[rows, 8]`.
    private(set) var features = FloatBuffer(count: 0)

    /// Copies of the last computed weights `[puzzles, 4, n, n]` and features `[rows, 8]`.
    public var snapshot: (weights: [Float], features: [Float]) {
        (Array(UnsafeBufferPointer(start: weights.pointer, count: weights.count)),
         Array(UnsafeBufferPointer(start: features.pointer, count: features.count)))
    }

    public init(measure: EdgeCompatibility.Measure, sharpness: Float) {
        self.measure = measure
        self.sharpness = sharpness
    }

    /// Computes the weights and the features of every puzzle of `pieces` `[rows, C, side, side]`.
    func compute(pieces: UnsafePointer<Float>, rows: Int, piecesPerPuzzle n: Int, channels: Int, side: Int,
                 workers: Int) {
        precondition(n >= 2 && rows % n == 0, "edge graph rows \(rows) are not whole puzzles of \(n) ≥ 2")
        if rows != self.rows || n != piecesPerPuzzle {
            (self.rows, piecesPerPuzzle) = (rows, n)
            weights = FloatBuffer(count: rows / n * Self.directions * n * n)
            features = FloatBuffer(count: rows * Self.featureCount)
        }
        let (weights, features, measure, sharpness) = (weights.pointer, features.pointer, measure, sharpness)
        let pieceSize = channels * side * side
        Parallel.forEachRange(count: rows / n, workers: workers) { _, puzzles in
            for b in puzzles {
                let costs = EdgeCompatibility(pieces: pieces + b * n * pieceSize, count: n, channels: channels,
                                              height: side, width: side, measure: measure)
                Self.fill(costs: costs, sharpness: sharpness, weights: weights + b * Self.directions * n * n,
                          features: features + b * n * Self.featureCount)
            }
        }
    }

    /// The four weight matrices and the features of one puzzle from its costs.
    static func fill(costs: EdgeCompatibility, sharpness: Float, weights: UnsafeMutablePointer<Float>,
                     features: UnsafeMutablePointer<Float>) {
        let n = costs.count
        for d in 0..<directions {
            let matrix = weights + d * n * n
            let (table, outgoing) = d < 2 ? (costs.left, d == 0) : (costs.above, d == 2)
            for i in 0..<n {
                let row = matrix + i * n
                var (best, second) = (Float.infinity, Float.infinity)
                for j in 0..<n where j != i {
                    let c = outgoing ? table[i * n + j] : table[j * n + i]
                    row[j] = c
                    if c < best { (best, second) = (c, best) } else if c < second { second = c }
                }
                if !second.isFinite { second = best }
                let scale = second > 0 && second.isFinite ? sharpness / second : 0
                var largest = -Float.infinity
                for j in 0..<n where j != i {
                    row[j] = row[j].isFinite ? -scale * row[j] : -Float.greatestFiniteMagnitude
                    largest = max(largest, row[j])
                }
                var sum: Float = 0
                for j in 0..<n {
                    if j == i { row[j] = 0; continue }
                    row[j] = expf(row[j] - largest)
                    sum += row[j]
                }
                for j in 0..<n { row[j] /= sum }
                features[i * featureCount + d] = second > 0 && second.isFinite ? 1 - best / second : 0
            }
        }
        for d in 0..<directions {
            let (forward, backward) = (weights + d * n * n, weights + (d ^ 1) * n * n)
            for i in 0..<n {
                var agreement: Float = 0
                for j in 0..<n { agreement += forward[i * n + j] * backward[j * n + i] }
                features[i * featureCount + directions + d] = agreement
            }
        }
    }
}

/// Edge attention: every piece's hidden vector is updated from the pieces that continue it across
/// each of its four edges, with attention weights taken from edge compatibilities instead of
/// learned queries and keys (a relational layer on the ``EdgeGraph``). For the `n` rows `H`
/// `[n, u]` of one puzzle,
///
///     Mᵈ = Aᵈ·H                                            (d = right, left, below, above; [n, u])
///     Z  = ReLU(H + [M¹ M² M³ M⁴ F]·Wᵀ + b)                ([n, u]; F the graph's 8 features)
///
/// so a piece learns whether it has a neighbour on each side and, block after block, what its
/// neighbours know of theirs — the evidence a classic solver chains into a placement, while the
/// learned network and Sinkhorn (Hungarian at inference) still decide the permutation. Tensor
/// names: `NAME.weight` `[u, 4u + 8]`, `NAME.bias` `[u]`. Permutation-equivariant: the graph's
/// weights follow the pieces.
public final class EdgeAttention: JigsawStage {
    public let features: Int
    public let linear: Linear
    let graph: EdgeGraph

    private var rows = 0
    private var messages = FloatBuffer(count: 0), messagesGradient = FloatBuffer(count: 0)
    private var stageBuffers = RowBuffers()

    /// - Parameter name: the prefix of the tensor names (`edges.0` gives `edges.0.weight`).
    public init(name: String, features: Int, graph: EdgeGraph, generator: inout SeededGenerator) {
        precondition(features > 0, "empty edge attention block")
        self.features = features
        self.graph = graph
        linear = Linear(name: name, inputFeatures: EdgeGraph.directions * features + EdgeGraph.featureCount,
                        outputFeatures: features, generator: &generator)
    }

    public var parameters: [Parameter] { linear.parameters }
    public var outputFeatures: Int { features }
    public var activations: UnsafeMutablePointer<Float> { stageBuffers.output.pointer }
    public var activationGradient: UnsafeMutablePointer<Float> { stageBuffers.gradient.pointer }
    public func checkParameterShapes() { linear.checkParameterShapes() }

    private var width: Int { linear.inputFeatures }

    public func prepare(_ pass: StagePass) {
        stageBuffers.prepare(rows: pass.rows, width: features)
        if pass.rows != rows {
            rows = pass.rows
            messages = FloatBuffer(count: rows * width)
            messagesGradient = FloatBuffer(count: rows * width)
        }
    }

    public func forward(_ pass: StagePass) {
        let (n, u, width, input) = (pass.piecesPerPuzzle, features, width, pass.input)
        precondition(graph.rows == pass.rows && graph.piecesPerPuzzle == n, "edge graph not computed for this batch")
        let (weights, graphFeatures, messages) = (graph.weights.pointer, graph.features.pointer, messages.pointer)
        let directions = EdgeGraph.directions
        Parallel.forEachRange(count: pass.puzzles, workers: pass.workers) { _, puzzles in
            for b in puzzles {
                let rows = messages + b * n * width
                for d in 0..<directions {
                    BLAS.gemm(.none, .none, m: n, n: u, k: n, a: weights + (b * directions + d) * n * n, lda: n,
                              b: input + b * n * u, ldb: u, c: rows + d * u, ldc: width)
                }
                for i in 0..<n {
                    (rows + i * width + directions * u).update(from: graphFeatures + (b * n + i) * EdgeGraph.featureCount,
                                                              count: EdgeGraph.featureCount)
                }
            }
        }
        let result = activations, count = pass.rows * u
        linear.forward(input: messages, rows: pass.rows, output: result)
        for k in 0..<count { result[k] += input[k] }
        ReLU.rectify(result, count: count)
    }

    public func backward(_ pass: StagePass) {
        guard let inputGradient = pass.inputGradient else { preconditionFailure("edge attention needs an input gradient") }
        let (n, u, width, count) = (pass.piecesPerPuzzle, features, width, pass.rows * features)
        ReLU.mask(activationGradient, output: UnsafePointer(activations), count: count)
        let dPre = UnsafePointer(activationGradient)
        linear.accumulateGradients(input: messages.pointer, outputGradient: dPre, rows: pass.rows)
        linear.inputGradient(outputGradient: dPre, rows: pass.rows, inputGradient: messagesGradient.pointer)
        inputGradient.update(from: dPre, count: count)
        // ∂H += Aᵈᵀ·∂Mᵈ for every direction (the weights are constants).
        let (weights, dMessages) = (graph.weights.pointer, UnsafePointer(messagesGradient.pointer))
        let directions = EdgeGraph.directions
        Parallel.forEachRange(count: pass.puzzles, workers: pass.workers) { _, puzzles in
            for b in puzzles {
                for d in 0..<directions {
                    BLAS.gemm(.transpose, .none, m: n, n: u, k: n, a: weights + (b * directions + d) * n * n, lda: n,
                              b: dMessages + b * n * width + d * u, ldb: width, beta: 1,
                              c: inputGradient + b * n * u, ldc: u)
                }
            }
        }
    }
}
