import TensorKit

/// Jigsaw puzzles on image tensors: cutting into a grid, scrambling, and reassembling from a hard
/// permutation or a soft (doubly-stochastic) matrix.
///
/// Convention (Mena et al. 2018 §4.2, the tutorial's `einsum("bpq,bpchw->bqchw")`): grid cells are
/// numbered row-major; `permutation[i] = j` means scrambled piece `i` belongs in cell `j`, and its
/// matrix form `P[i, j] = 1`. A puzzle is scrambled by drawing a permutation `π` and placing original
/// cell `π[s]` at slot `s`, so the answer is `permutation = π`. Reassembly puts piece `i` in cell
/// `permutation[i]`, or in the soft case `out[j] = Σ_i P[i, j] · piece[i]`.
///
/// Pieces are `[B, n, C, pieceHeight, pieceWidth]` with `n = grid²`.
public enum Puzzle {
    /// Whether `permutation` is a permutation of `0..<count`.
    public static func isPermutation(_ permutation: [Int], count: Int) -> Bool {
        guard permutation.count == count else { return false }
        var seen = [Bool](repeating: false, count: count)
        for value in permutation {
            guard value >= 0, value < count, !seen[value] else { return false }
            seen[value] = true
        }
        return true
    }

    /// The grid side of `n = grid²` pieces.
    static func gridSide(pieces n: Int) -> Int {
        var grid = Int(Double(n).squareRoot().rounded())
        while grid * grid > n { grid -= 1 }
        while (grid + 1) * (grid + 1) <= n { grid += 1 }
        precondition(grid * grid == n, "\(n) pieces do not form a square grid")
        return grid
    }

    /// Cuts images into `grid × grid` pieces in row-major cell order.
    ///
    /// Piece sides are `H / grid` and `W / grid` rounded down; when `H` or `W` is not a multiple
    /// of `grid` the image is center-cropped to `grid · pieceHeight × grid · pieceWidth` first
    /// (top/left offsets `(H − grid · pieceHeight) / 2` rounded down).
    /// - Parameters:
    ///   - images: `[C, H, W]` or `[B, C, H, W]`.
    ///   - grid: pieces per side, at least 1 and at most `min(H, W)`.
    /// - Returns: `[B, grid², C, H / grid, W / grid]` (`B = 1` for a single image).
    /// - Complexity: O(B · C · H · W).
    public static func cut(_ images: Tensor, grid: Int) -> Tensor {
        precondition(images.rank == 3 || images.rank == 4, "expected [C, H, W] or [B, C, H, W], got \(images.shape)")
        let shape = images.rank == 3 ? [1] + images.shape : images.shape
        let (batch, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        precondition(grid >= 1 && grid <= min(height, width), "grid \(grid) does not fit a \(height)×\(width) image")
        let crop = GridCrop(width: width, height: height, grid: grid)
        let (pieceHeight, pieceWidth) = (crop.pieceHeight, crop.pieceWidth)
        let n = grid * grid
        var pieces = Tensor(shape: [batch, n, channels, pieceHeight, pieceWidth])
        images.withUnsafeBufferPointer { source in
            pieces.withUnsafeMutableBufferPointer { out in
                var o = 0
                for b in 0..<batch {
                    for cell in 0..<n {
                        let (columnOffset, rowOffset) = crop.origin(ofCell: cell)
                        for c in 0..<channels {
                            for y in 0..<pieceHeight {
                                let start = ((b * channels + c) * height + rowOffset + y) * width + columnOffset
                                for x in 0..<pieceWidth {
                                    out[o] = source[start + x]
                                    o += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        return pieces
    }

    /// Joins pieces given in cell order back into images; the inverse of `cut` on the cropped area.
    /// - Parameter pieces: `[B, n, C, ph, pw]` in row-major cell order.
    /// - Returns: `[B, C, grid · ph, grid · pw]`.
    public static func join(_ pieces: Tensor) -> Tensor {
        precondition(pieces.rank == 5, "expected [B, n, C, ph, pw], got \(pieces.shape)")
        let (batch, n, channels, pieceHeight, pieceWidth) = (pieces.shape[0], pieces.shape[1], pieces.shape[2], pieces.shape[3], pieces.shape[4])
        let grid = gridSide(pieces: n)
        let height = grid * pieceHeight, width = grid * pieceWidth
        var images = Tensor(shape: [batch, channels, height, width])
        pieces.withUnsafeBufferPointer { source in
            images.withUnsafeMutableBufferPointer { out in
                var s = 0
                for b in 0..<batch {
                    for cell in 0..<n {
                        let rowOffset = (cell / grid) * pieceHeight, columnOffset = (cell % grid) * pieceWidth
                        for c in 0..<channels {
                            for y in 0..<pieceHeight {
                                let start = ((b * channels + c) * height + rowOffset + y) * width + columnOffset
                                for x in 0..<pieceWidth {
                                    out[start + x] = source[s]
                                    s += 1
                                }
                            }
                        }
                    }
                }
            }
        }
        return images
    }

    /// Reorders pieces: `result[b, s] = pieces[b, order[b][s]]` (a gather).
    /// With `order = π` this scrambles cell-ordered pieces.
    /// - Parameters:
    ///   - pieces: `[B, n, C, ph, pw]`.
    ///   - order: `B` permutations of `0..<n`.
    public static func gather(_ pieces: Tensor, order: [[Int]]) -> Tensor {
        precondition(pieces.rank == 5 && order.count == pieces.shape[0], "expected \(pieces.shape.first ?? 0) permutations for pieces \(pieces.shape)")
        let n = pieces.shape[1]
        let pieceSize = pieces.count / max(1, pieces.shape[0] * n)
        var result = Tensor(shape: pieces.shape)
        pieces.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { out in
                for (b, permutation) in order.enumerated() {
                    precondition(isPermutation(permutation, count: n), "not a permutation of 0..<\(n): \(permutation)")
                    for s in 0..<n {
                        let to = (b * n + s) * pieceSize, from = (b * n + permutation[s]) * pieceSize
                        for k in 0..<pieceSize { out[to + k] = source[from + k] }
                    }
                }
            }
        }
        return result
    }

    /// Scrambles cell-ordered pieces with a fresh random permutation per puzzle.
    ///
    /// For each puzzle `π = generator.permutation(n)` and `scrambled[s] = pieces[π[s]]`, so the
    /// returned `π` is the answer in the `permutation[i] = j` convention.
    /// - Parameter pieces: `[B, n, C, ph, pw]` in cell order (from `cut`).
    /// - Returns: the scrambled pieces (same shape) and `B` permutations.
    public static func scramble(
        _ pieces: Tensor, generator: inout SeededGenerator
    ) -> (pieces: Tensor, permutations: [[Int]]) {
        precondition(pieces.rank == 5, "expected [B, n, C, ph, pw], got \(pieces.shape)")
        let permutations = (0..<pieces.shape[0]).map { _ in generator.permutation(pieces.shape[1]) }
        return (gather(pieces, order: permutations), permutations)
    }

    /// Puts scrambled pieces back in cell order: `result[b, permutation[b][i]] = pieces[b, i]`.
    /// - Parameters:
    ///   - pieces: `[B, n, C, ph, pw]`, scrambled.
    ///   - permutations: `B` permutations, `permutations[b][i]` = the cell of piece `i`.
    public static func unscramble(_ pieces: Tensor, permutations: [[Int]]) -> Tensor {
        let inverses = permutations.map { permutation -> [Int] in
            precondition(isPermutation(permutation, count: pieces.shape[1]), "not a permutation of 0..<\(pieces.shape[1]): \(permutation)")
            var inverse = [Int](repeating: 0, count: permutation.count)
            for (i, j) in permutation.enumerated() { inverse[j] = i }
            return inverse
        }
        return gather(pieces, order: inverses)
    }

    /// Soft unscrambling: `result[b, j] = Σ_i P[b, i, j] · pieces[b, i]`, one matrix product
    /// `Pᵀ · pieces` per puzzle.
    /// - Parameters:
    ///   - pieces: `[B, n, C, ph, pw]`, scrambled.
    ///   - matrices: `[B, n, n]` (or `[n, n]` when `B = 1`), typically doubly stochastic.
    /// - Complexity: O(B · n² · C · ph · pw) through BLAS.
    public static func unscramble(_ pieces: Tensor, soft matrices: Tensor) -> Tensor {
        precondition(pieces.rank == 5, "expected [B, n, C, ph, pw], got \(pieces.shape)")
        let (batch, n) = (pieces.shape[0], pieces.shape[1])
        let matrixShape = matrices.rank == 2 ? [1] + matrices.shape : matrices.shape
        precondition(matrixShape == [batch, n, n], "soft matrices \(matrices.shape) do not match pieces \(pieces.shape)")
        let pieceSize = pieces.count / max(1, batch * n)
        var result = Tensor(shape: pieces.shape)
        pieces.withUnsafeBufferPointer { source in
            matrices.withUnsafeBufferPointer { p in
                result.withUnsafeMutableBufferPointer { out in
                    guard let sourceBase = source.baseAddress, let pBase = p.baseAddress, let outBase = out.baseAddress else { return }
                    for b in 0..<batch {
                        BLAS.gemm(.transpose, .none, m: n, n: pieceSize, k: n,
                                  a: pBase + b * n * n, lda: n,
                                  b: sourceBase + b * n * pieceSize, ldb: pieceSize,
                                  c: outBase + b * n * pieceSize, ldc: pieceSize)
                    }
                }
            }
        }
        return result
    }

    /// Reassembles images from scrambled pieces and their permutations: `join(unscramble(…))`.
    /// - Returns: `[B, C, grid · ph, grid · pw]`.
    public static func assemble(_ pieces: Tensor, permutations: [[Int]]) -> Tensor {
        join(unscramble(pieces, permutations: permutations))
    }

    /// Reassembles images from scrambled pieces and soft matrices: `join(unscramble(…, soft:))`.
    /// - Returns: `[B, C, grid · ph, grid · pw]`.
    public static func assemble(_ pieces: Tensor, soft matrices: Tensor) -> Tensor {
        join(unscramble(pieces, soft: matrices))
    }
}
