import TensorKit

/// A reusable training batch of jigsaw puzzles, filled in place.
///
/// `fill` cuts each chosen image into `grid × grid` pieces (with `Puzzle.cut`'s center crop),
/// draws `π` exactly as `SeededGenerator.permutation(n)` does, and writes
/// `scrambled[b, s] = unscrambled[b, π[s]]`, `permutations[b · n + s] = π[s]`. With the same
/// generator state it produces the same tensors as `Puzzle.cut` followed by `Puzzle.scramble`.
/// Nothing is allocated per item; the buffers are reallocated only when the batch size changes.
public struct PuzzleBatch: Sendable {
    public let grid: Int
    public let channels: Int
    public let pieceHeight: Int
    public let pieceWidth: Int
    /// Pieces per puzzle, `grid²`.
    public var pieceCount: Int { grid * grid }
    /// Puzzles in the batch (the number of indices of the last `fill`).
    public private(set) var count: Int
    /// `[count, n, C, ph, pw]`: the pieces in scrambled order (the network's input).
    public private(set) var scrambled: Tensor
    /// `[count, n, C, ph, pw]`: the same pieces in cell order (the reconstruction target).
    public private(set) var unscrambled: Tensor
    /// `count · n` entries: `permutations[b · n + s]` is the cell of scrambled piece `s` of puzzle `b`.
    public private(set) var permutations: [Int]

    /// - Parameters:
    ///   - batchSize: the initial number of puzzles (buffers are sized for it).
    ///   - height, width: the source images' size; pieces are `height / grid × width / grid`.
    public init(batchSize: Int, grid: Int, channels: Int, height: Int, width: Int) {
        precondition(batchSize >= 0 && grid >= 1 && channels >= 1 && grid <= min(height, width),
                     "invalid batch geometry")
        self.grid = grid
        self.channels = channels
        self.pieceHeight = height / grid
        self.pieceWidth = width / grid
        self.count = batchSize
        let shape = [batchSize, grid * grid, channels, height / grid, width / grid]
        self.scrambled = Tensor(shape: shape)
        self.unscrambled = Tensor(shape: shape)
        self.permutations = [Int](repeating: 0, count: batchSize * grid * grid)
    }

    /// The permutation of puzzle `b` as a list.
    public func permutation(_ b: Int) -> [Int] {
        Array(permutations[(b * pieceCount)..<((b + 1) * pieceCount)])
    }

    private mutating func resize(to batchSize: Int) {
        guard batchSize != count else { return }
        count = batchSize
        let shape = [batchSize, pieceCount, channels, pieceHeight, pieceWidth]
        scrambled = Tensor(shape: shape)
        unscrambled = Tensor(shape: shape)
        permutations = [Int](repeating: 0, count: batchSize * pieceCount)
    }

    /// Fills the batch from float images.
    /// - Parameters:
    ///   - images: `[N, C, H, W]` with the batch's `C`, `H`, `W`.
    ///   - indices: which images, in batch order.
    ///   - generator: the source of the permutations.
    ///   - normalization: if given, pieces hold `(x − mean) / std` (the tutorial normalises MNIST
    ///     with mean 0.1307, std 0.3081 before cutting).
    public mutating func fill<Indices: Collection<Int>>(
        from images: Tensor, indices: Indices, generator: inout SeededGenerator,
        normalization: (mean: Float, std: Float)? = nil
    ) {
        fill(from: images, indices: indices, generator: &generator,
             channelNormalization: normalization.map { ([$0.mean], [$0.std]) })
    }

    /// Fills the batch from float images, normalising channel `c` with `(x − mean[c]) / std[c]`
    /// (one value applies to every channel).
    public mutating func fill<Indices: Collection<Int>>(
        from images: Tensor, indices: Indices, generator: inout SeededGenerator,
        channelNormalization: (mean: [Float], std: [Float])?
    ) {
        precondition(images.rank == 4 && images.shape[1] == channels
                     && images.shape[2] / grid == pieceHeight && images.shape[3] / grid == pieceWidth,
                     "images \(images.shape) do not match the batch geometry")
        let (scale, shift) = coefficients(channelNormalization, pixelScale: 1)
        images.withUnsafeBufferPointer { source in
            fill(count: images.shape[0], height: images.shape[2], width: images.shape[3], indices: indices,
                 generator: &generator, scale: scale, shift: shift) { base, offset in Float(source[base + offset]) }
        }
    }

    /// Fills the batch from an 8-bit dataset, converting `pixel / 255` (then normalising) on the fly,
    /// so the whole dataset never has to exist as floats.
    public mutating func fill<Indices: Collection<Int>>(
        from dataset: ImageDataset, indices: Indices, generator: inout SeededGenerator,
        normalization: (mean: Float, std: Float)? = nil
    ) {
        fill(from: dataset, indices: indices, generator: &generator,
             channelNormalization: normalization.map { ([$0.mean], [$0.std]) })
    }

    /// Fills the batch from an 8-bit dataset with per-channel normalisation (as
    /// `JigsawNetworkConfiguration.normalise` does, so the trainer sees what the server sends).
    public mutating func fill<Indices: Collection<Int>>(
        from dataset: ImageDataset, indices: Indices, generator: inout SeededGenerator,
        channelNormalization: (mean: [Float], std: [Float])?
    ) {
        precondition(dataset.channels == channels && dataset.height / grid == pieceHeight
                     && dataset.width / grid == pieceWidth, "dataset geometry does not match the batch")
        let (scale, shift) = coefficients(channelNormalization, pixelScale: 255)
        dataset.pixels.withUnsafeBufferPointer { source in
            fill(count: dataset.count, height: dataset.height, width: dataset.width, indices: indices,
                 generator: &generator, scale: scale, shift: shift) { base, offset in Float(source[base + offset]) }
        }
    }

    /// `x · scale[c] + shift[c] = (x / pixelScale − mean[c]) / std[c]` for every channel.
    private func coefficients(_ normalization: (mean: [Float], std: [Float])?, pixelScale: Float) -> ([Float], [Float]) {
        let (means, stds) = normalization ?? ([0], [1])
        precondition((means.count == 1 || means.count == channels) && (stds.count == 1 || stds.count == channels),
                     "normalisation needs 1 or \(channels) values")
        let scale = (0..<channels).map { c in 1 / (pixelScale * stds[stds.count == 1 ? 0 : c]) }
        let shift = (0..<channels).map { c in -means[means.count == 1 ? 0 : c] / stds[stds.count == 1 ? 0 : c] }
        return (scale, shift)
    }

    private mutating func fill<Indices: Collection<Int>>(
        count total: Int, height: Int, width: Int, indices: Indices, generator: inout SeededGenerator,
        scale: [Float], shift: [Float], sample: (Int, Int) -> Float
    ) {
        resize(to: indices.count)
        let n = pieceCount, grid = grid, channels = channels
        let pieceHeight = pieceHeight, pieceWidth = pieceWidth
        let pieceSize = channels * pieceHeight * pieceWidth
        let crop = GridCrop(width: width, height: height, grid: grid)
        let imageSize = channels * height * width
        permutations.withUnsafeMutableBufferPointer { permutation in
            unscrambled.withUnsafeMutableBufferPointer { target in
                scrambled.withUnsafeMutableBufferPointer { shuffled in
                    for (b, index) in indices.enumerated() {
                        precondition(index >= 0 && index < total, "image index \(index) outside 0..<\(total)")
                        let base = index * imageSize
                        var o = b * n * pieceSize
                        for cell in 0..<n {
                            let (columnOffset, rowOffset) = crop.origin(ofCell: cell)
                            for c in 0..<channels {
                                let (scale, shift) = (scale[c], shift[c])
                                for y in 0..<pieceHeight {
                                    let start = (c * height + rowOffset + y) * width + columnOffset
                                    for x in 0..<pieceWidth {
                                        target[o] = sample(base, start + x) * scale + shift
                                        o += 1
                                    }
                                }
                            }
                        }
                        // Fisher–Yates with the same draws as `SeededGenerator.permutation(n)`.
                        let p = b * n
                        for s in 0..<n { permutation[p + s] = s }
                        if n > 1 {
                            for i in stride(from: n - 1, to: 0, by: -1) {
                                permutation.swapAt(p + i, p + generator.nextInt(below: i + 1))
                            }
                        }
                        for s in 0..<n {
                            let to = (p + s) * pieceSize, from = (p + permutation[p + s]) * pieceSize
                            for k in 0..<pieceSize { shuffled[to + k] = target[from + k] }
                        }
                    }
                }
            }
        }
    }
}

extension PuzzleBatch {
    /// Re-encodes puzzle `b`'s scrambled image as JPEG at `quality` and puts the decoded pieces
    /// back: the pieces are mapped from their normalised values to 8-bit pixels, joined in slot
    /// order, compressed (4:2:0 for colour), decoded and cut again, so seams carry the block and
    /// chroma artefacts a phone's JPEG of a scrambled photo has.
    /// - Parameter normalization: the per-channel `(mean, std)` the pieces hold (values in [0, 1] when nil).
    public mutating func recompressScrambled(puzzle b: Int, quality: Int,
                                             normalization: (mean: [Float], std: [Float])?) throws {
        precondition(b >= 0 && b < count, "puzzle \(b) outside the batch of \(count)")
        let (grid, n, channels, ph, pw) = (grid, pieceCount, channels, pieceHeight, pieceWidth)
        let (means, stds) = normalization ?? ([0], [1])
        let mean = (0..<channels).map { means[means.count == 1 ? 0 : $0] }
        let std = (0..<channels).map { stds[stds.count == 1 ? 0 : $0] }
        let width = grid * pw, height = grid * ph, pieceSize = channels * ph * pw
        /// Calls `body(pieceOffset, imageOffset, channel)` for every sample of the puzzle's pieces.
        func forEachSample(_ body: (Int, Int, Int) -> Void) {
            for s in 0..<n {
                let piece = (b * n + s) * pieceSize
                let (x0, y0) = ((s % grid) * pw, (s / grid) * ph)
                for c in 0..<channels {
                    for y in 0..<ph {
                        for x in 0..<pw { body(piece + (c * ph + y) * pw + x, ((y0 + y) * width + x0 + x) * channels + c, c) }
                    }
                }
            }
        }
        var image = Image(width: width, height: height, channels: channels)
        scrambled.withUnsafeBufferPointer { pieces in
            image.pixels.withUnsafeMutableBufferPointer { pixels in
                forEachSample { from, to, c in
                    pixels[to] = UInt8(min(max(((pieces[from] * std[c] + mean[c]) * 255).rounded(), 0), 255))
                }
            }
        }
        let decoded = try JPEG.decode(try JPEG.encode(image, quality: quality))
        precondition(decoded.width == width && decoded.height == height && decoded.channels == channels,
                     "JPEG round trip changed the image geometry")
        scrambled.withUnsafeMutableBufferPointer { pieces in
            decoded.pixels.withUnsafeBufferPointer { pixels in
                forEachSample { to, from, c in pieces[to] = (Float(pixels[from]) / 255 - mean[c]) / std[c] }
            }
        }
    }
}
