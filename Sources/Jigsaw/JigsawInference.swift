import Dispatch
import NeuralNet
import Permutations
import TensorKit

/// The one inference path of a jigsaw network, shared by the evaluator, the server and the
/// benchmarks:
///
///     cut an image into cells (GridCrop) or take pieces → fit each to the model's piece side →
///     convert channels → normalise per channel → score X = g(pieces) → match M(X) or soften S(X/τ)
///
/// The trainer normalises its batches with the same per-channel statistics
/// (`PuzzleBatch.fill(… channelNormalization:)`), so a model is served as it was trained.
public enum JigsawInference {
    /// Pieces in `[0, 1]` `[1, n, C, p, p]` for the network: each cell resized on its own to the
    /// model's `p × p` (area filter when shrinking, bilinear when enlarging, so no content leaks
    /// between pieces), alpha composited on black and colour turned to BT.601 luma for a
    /// one-channel model (gray replicated for a colour one).
    /// - Precondition: `configuration.pieceCount` cells of one non-zero size, and a 1- or 3-channel model.
    public static func pieces(_ cells: [Image], configuration: JigsawNetworkConfiguration) -> Tensor {
        let (n, p, channels) = (configuration.pieceCount, configuration.pieceSize, configuration.channels)
        precondition(cells.count == n && (channels == 1 || channels == 3), "\(cells.count) cells for a \(n)-piece model")
        return resizedCells(cells, width: p, height: p, channels: channels)
    }

    /// `[1, n, C, height, width]` in `[0, 1]`: every cell resized on its own (``Image/fitted(width:height:)``)
    /// and converted to `channels`, in parallel, each into its own slice (the same result on any
    /// core count).
    public static func resizedCells(_ cells: [Image], width: Int, height: Int, channels: Int) -> Tensor {
        let n = cells.count, size = channels * width * height
        var result = Tensor(shape: [1, n, channels, height, width])
        result.withUnsafeMutableBufferPointer { output in
            nonisolated(unsafe) let output = output
            DispatchQueue.concurrentPerform(iterations: n) { index in
                let cell = cells[index].fitted(width: width, height: height).tensor(channels: channels)
                cell.withUnsafeBufferPointer { source in
                    for k in 0..<size { output[index * size + k] = source[k] }
                }
            }
        }
        return result
    }

    /// The scores `[B, n, n]` of pieces in `[0, 1]` `[B, n, C, p, p]`: normalised per channel with
    /// the model's statistics, then scored by `network` (in whatever mode it is in).
    /// - Parameter heads: with several score heads, the head of every puzzle (`nil`: head 0).
    public static func scores(_ network: JigsawNetwork, pieces: Tensor, heads: [Int]? = nil) -> Tensor {
        var input = pieces
        network.configuration.normalise(&input)
        return network.forward(input, heads: heads)
    }

    /// The hard matching `M(X)` of every score matrix (Jonker–Volgenant, as the tutorial evaluates).
    /// - Throws: `AssignmentError` for non-finite scores.
    public static func match(_ scores: Tensor) throws -> [[Int]] {
        try LinearAssignment.matchings(scores: scores)
    }

    /// `S(X/τ)` of the score matrices.
    /// - Throws: `SinkhornError` for a bad τ, iteration count or non-finite scores.
    public static func soften(_ scores: Tensor, temperature: Float, iterations: Int) throws -> SinkhornResult {
        try Sinkhorn.forward(scores, temperature: temperature, iterations: iterations)
    }
}
