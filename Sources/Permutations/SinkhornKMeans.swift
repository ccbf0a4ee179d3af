import TensorKit

/// One mini-batch of Sinkhorn k-means: the loss, its gradient with respect to the centroids and
/// the soft assignment.
public struct SinkhornKMeansStep: Sendable {
    /// `⟨C, P⟩`, the mean squared distance of a point to its (soft) centroid, per dimension.
    public let loss: Float
    /// `∂loss/∂μ`, `[k, d]`.
    public let gradient: Tensor
    /// The balanced assignment `P [B, k]` (rows sum to `1/B`, columns to `1/k`).
    public let assignment: Tensor
    /// The bytes the backward held besides the plan: the implicit backward's Double scratch, or the
    /// unrolled backward's recorded potentials and its scratch.
    public let backwardBytes: Int
    /// `Σ_j |Σ_i P_ij − 1/k|` of the forward.
    public let marginalError: Float
}

/// k-means with balanced Sinkhorn assignments in the loss (Eisenberger et al. 2022, §5.4 and
/// Figure 8; Genevay et al. 2019).
///
/// For a batch `x_1 … x_B ∈ R^d` and centroids `μ_1 … μ_k`, the cost is the mean squared distance
/// per dimension `C_ij = ‖x_i − μ_j‖² / d`, the assignment `P = argmin ⟨C, P⟩ − λ·h(P)` over plans
/// with rows summing to `1/B` and columns to `1/k` (every cluster takes the same share of the
/// batch), after `τ` Sinkhorn iterations, and the loss is `⟨C, P⟩`. The gradient flows through both
/// the cost and the plan: `∂loss/∂C = P + J_Cᵀ C` from the chosen backward (`GridTransport` does
/// the same for histograms), then `∂loss/∂μ_j = (2/d) Σ_i G_ij (μ_j − x_i)` with `G = ∂loss/∂C`.
public enum SinkhornKMeans {
    /// `C_ij = ‖x_i − μ_j‖² / d` by `‖x‖² + ‖μ‖² − 2·x·μ` (one matrix product), clamped at 0.
    ///
    /// - Parameters:
    ///   - points: `[B, d]`.
    ///   - centroids: `[k, d]`.
    /// - Returns: `[B, k]`.
    public static func cost(points: Tensor, centroids: Tensor) -> Tensor {
        precondition(points.rank == 2 && centroids.rank == 2 && points.shape[1] == centroids.shape[1],
                     "points [B, d] and centroids [k, d] with the same d, got \(points.shape) and \(centroids.shape)")
        let (b, k, d) = (points.shape[0], centroids.shape[0], points.shape[1])
        var products = BLAS.matmul(points, centroids, transposeB: true)
        let pointNorms = rowSquaredNorms(points), centroidNorms = rowSquaredNorms(centroids)
        let scale = 1 / Float(d)
        products.storage.withUnsafeMutableBufferPointer { c in
            for i in 0..<b {
                for j in 0..<k {
                    c[i * k + j] = Swift.max(0, (pointNorms[i] + centroidNorms[j] - 2 * c[i * k + j]) * scale)
                }
            }
        }
        return products
    }

    static func rowSquaredNorms(_ matrix: Tensor) -> [Float] {
        let (rows, columns) = (matrix.shape[0], matrix.shape[1])
        return matrix.withUnsafeBufferPointer { m in
            (0..<rows).map { row in
                var total: Float = 0
                for column in 0..<columns { total += m[row * columns + column] * m[row * columns + column] }
                return total
            }
        }
    }

    /// The loss, gradient and assignment of one batch.
    ///
    /// `workspace` serves the forward, `backwardWorkspace` the backward (kept apart so that
    /// `backwardBytes` counts the backward's scratch; reuse one across steps of the same sizes).
    ///
    /// - Throws: `SinkhornError` for bad shapes, `λ` or iteration counts.
    public static func step(points: Tensor, centroids: Tensor, entropy: Float, iterations: Int,
                            backward: TransportBackward, solver: ImplicitSolver = .dense,
                            workspace: SinkhornWorkspace? = nil,
                            backwardWorkspace: SinkhornWorkspace? = nil) throws(SinkhornError) -> SinkhornKMeansStep {
        guard points.rank == 2, centroids.rank == 2, points.shape[1] == centroids.shape[1],
              points.shape[0] > 0, centroids.shape[0] > 0 else {
            throw .invalidShape(shape: points.shape + centroids.shape)
        }
        let (b, k, d) = (points.shape[0], centroids.shape[0], points.shape[1])
        let cost = cost(points: points, centroids: centroids)
        // Solved with rows of mass 1 and columns of mass B/k (the same plan times B: entropic
        // transport is homogeneous in the marginals), so that the masses match in Float for any B.
        let rows = [Float](repeating: 1, count: b)
        let columns = [Float](repeating: Float(b) / Float(k), count: k)
        let solution = try GridTransport.solve(cost: cost, source: rows, target: columns, entropy: entropy,
                                               iterations: iterations, backward: backward, workspace: workspace)
        // The backward has a workspace of its own, so that its size is what the backward needs.
        let backwardSpace = backwardWorkspace ?? SinkhornWorkspace()
        let partial = try GridTransport.gradient(of: solution, backward: backward, solver: solver, workspace: backwardSpace)
        var g = partial.cost
        let mass = 1 / Float(b)
        g.storage.withUnsafeMutableBufferPointer { g in
            for index in 0..<g.count { g[index] *= mass }
        }
        var plan = solution.plan
        plan.storage.withUnsafeMutableBufferPointer { p in
            for index in 0..<p.count { p[index] *= mass }
        }
        // ∂loss/∂μ_j = (2/d) (μ_j Σ_i G_ij − Σ_i G_ij x_i)
        var gradient = BLAS.matmul(g, points, transposeA: true)
        var columnSums = [Float](repeating: 0, count: k)
        g.withUnsafeBufferPointer { g in
            for i in 0..<b { for j in 0..<k { columnSums[j] += g[i * k + j] } }
        }
        let scale = 2 / Float(d)
        centroids.withUnsafeBufferPointer { mu in
            gradient.storage.withUnsafeMutableBufferPointer { out in
                for j in 0..<k {
                    for c in 0..<d { out[j * d + c] = scale * (columnSums[j] * mu[j * d + c] - out[j * d + c]) }
                }
            }
        }
        return SinkhornKMeansStep(loss: solution.loss * mass, gradient: gradient, assignment: plan,
                                  backwardBytes: (solution.result.history?.bytes ?? 0) + backwardSpace.reservedBytes,
                                  marginalError: solution.result.marginalError[0] * mass)
    }

    /// The index of the nearest centroid of every point (hard assignment, for evaluation).
    public static func nearest(points: Tensor, centroids: Tensor) -> [Int] {
        let cost = cost(points: points, centroids: centroids)
        let (b, k) = (cost.shape[0], cost.shape[1])
        return cost.withUnsafeBufferPointer { c in
            (0..<b).map { i in
                var best = 0
                for j in 1..<k where c[i * k + j] < c[i * k + best] { best = j }
                return best
            }
        }
    }

    /// Purity: the share of points whose cluster's most common label is their own label.
    public static func purity(clusters: [Int], labels: [Int], clusterCount: Int) -> Double {
        precondition(clusters.count == labels.count)
        guard !labels.isEmpty else { return 0 }
        let labelCount = (labels.max() ?? 0) + 1
        var counts = [[Int]](repeating: [Int](repeating: 0, count: labelCount), count: clusterCount)
        for (cluster, label) in zip(clusters, labels) { counts[cluster][label] += 1 }
        return Double(counts.reduce(0) { $0 + ($1.max() ?? 0) }) / Double(labels.count)
    }
}
