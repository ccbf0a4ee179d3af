import Foundation
import TensorKit

/// The jigsaw training loss: the squared error between the soft reconstruction and the unscrambled
/// pieces, summed (the tutorial's `mse_loss(..., reduction='sum')`), averaged over Gumbel samples.
public enum ReconstructionLoss {
    /// The loss and its gradient with respect to the soft permutation matrices.
    ///
    /// For sample matrix `P` (`[n, n]`) of puzzle `b` with scrambled pieces `X` (`[n, D]`) and target
    /// `T` (`[n, D]`): `R = Pᵀ X` (so `R[j] = Σ_i P[i, j] · X[i]`), loss `= w · ‖R − T‖² / S`,
    /// `∂loss/∂R = 2w (R − T) / S` and `∂loss/∂P = X (∂loss/∂R)ᵀ`.
    ///
    /// - Parameters:
    ///   - matrices: `[B·S, n, n]`, sample `s` of puzzle `b` at `b·S + s`.
    ///   - scrambled: `[≥B, n, C, h, w]` pieces in scrambled order.
    ///   - target: the same shape, pieces in cell order.
    ///   - puzzles: `B`, the puzzles in use (the batch tensors may hold more).
    ///   - samplesPerExample: `S`.
    ///   - weight: a factor on the loss and its gradient (1: the paper's loss).
    ///   - upstream: receives `∂loss/∂P` in the shape of `matrices` (reallocated if its shape differs).
    ///   - scratch: a reusable buffer of `n·D` floats (resized when needed).
    /// - Returns: the loss summed over puzzles.
    public static func sumOfSquares(matrices: Tensor, scrambled: Tensor, target: Tensor, puzzles: Int,
                                    samplesPerExample samples: Int, weight: Float = 1, upstream: inout Tensor,
                                    scratch: inout [Float]) -> Double {
        precondition(matrices.rank == 3 && matrices.shape[1] == matrices.shape[2], "matrices must be [B·S, n, n]")
        precondition(scrambled.shape == target.shape && scrambled.rank == 5, "pieces must be [B, n, C, h, w]")
        let n = matrices.shape[1]
        let d = scrambled.shape[2] * scrambled.shape[3] * scrambled.shape[4]
        precondition(scrambled.shape[1] == n && matrices.shape[0] == puzzles * samples && scrambled.shape[0] >= puzzles,
                     "matrices \(matrices.shape) do not fit pieces \(scrambled.shape)")
        if scratch.count != n * d { scratch = [Float](repeating: 0, count: n * d) }
        if upstream.shape != matrices.shape { upstream = Tensor(shape: matrices.shape) }
        let scale = weight / Float(samples)
        var total = 0.0
        matrices.withUnsafeBufferPointer { p in
            scrambled.withUnsafeBufferPointer { x in
                target.withUnsafeBufferPointer { t in
                    scratch.withUnsafeMutableBufferPointer { r in
                        upstream.withUnsafeMutableBufferPointer { g in
                            for b in 0..<puzzles {
                                let xb = x.baseAddress! + b * n * d
                                let tb = t.baseAddress! + b * n * d
                                for s in 0..<samples {
                                    let m = b * samples + s
                                    BLAS.gemm(.transpose, .none, m: n, n: d, k: n, a: p.baseAddress! + m * n * n, lda: n,
                                              b: xb, ldb: d, c: r.baseAddress!, ldc: d)
                                    var sum: Float = 0
                                    for i in 0..<(n * d) {
                                        let diff = r[i] - tb[i]
                                        sum += diff * diff
                                        r[i] = 2 * diff * scale
                                    }
                                    total += Double(sum) * Double(scale)
                                    BLAS.gemm(.none, .transpose, m: n, n: n, k: d, a: xb, lda: d, b: r.baseAddress!, ldb: d,
                                              c: g.baseAddress! + m * n * n, ldc: n)
                                }
                            }
                        }
                    }
                }
            }
        }
        return total
    }

    /// Adds `weight · (−Σᵢ log P[i, π(i)]) / S` per sample to `upstream` (as `∂/∂P`) and returns it
    /// summed over puzzles: the cross-entropy between each soft permutation and the true scramble.
    ///
    /// Scrambled piece `i` of puzzle `b` belongs in cell `π(i) = permutations[b·n + i]`. The
    /// gradient `−weight / (S · P[i, π(i)])` meets the Sinkhorn backward's first step `G ⊙ P`, so
    /// the log-domain gradient is `−weight / S` exactly; `P` is floored at the smallest normal float
    /// so the quotient stays finite where it underflows.
    ///
    /// - Parameters:
    ///   - matrices: `[B·S, n, n]`, sample `s` of puzzle `b` at `b·S + s`.
    ///   - upstream: `∂loss/∂P` of the same shape, accumulated into.
    public static func permutationCrossEntropy(matrices: Tensor, permutations: [Int], puzzles: Int,
                                               samplesPerExample samples: Int, weight: Float,
                                               upstream: inout Tensor) -> Double {
        precondition(matrices.rank == 3 && matrices.shape[1] == matrices.shape[2], "matrices must be [B·S, n, n]")
        let n = matrices.shape[1]
        precondition(matrices.shape[0] == puzzles * samples && permutations.count >= puzzles * n
                     && upstream.shape == matrices.shape, "matrices \(matrices.shape) do not fit the permutations")
        let scale = weight / Float(samples)
        let floor = Float.leastNormalMagnitude
        var total = 0.0
        matrices.withUnsafeBufferPointer { p in
            upstream.withUnsafeMutableBufferPointer { g in
                for b in 0..<puzzles {
                    for s in 0..<samples {
                        let m = (b * samples + s) * n * n
                        for i in 0..<n {
                            let cell = permutations[b * n + i]
                            precondition(cell >= 0 && cell < n, "cell \(cell) outside 0..<\(n)")
                            let value = max(p[m + i * n + cell], floor)
                            total -= Double(scale) * log(Double(value))
                            g[m + i * n + cell] -= scale / value
                        }
                    }
                }
            }
        }
        return total
    }
}
