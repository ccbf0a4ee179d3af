/// Detects the grid of a scrambled square-grid jigsaw image from the seams its cuts leave.
///
/// For a candidate grid `g` the image is cut as `Puzzle.cut` does (pieces `⌊W / g⌋ × ⌊H / g⌋`,
/// the excess split around a centred crop), giving `g − 1` vertical and `g − 1` horizontal cut
/// lines, each made of `g` segments (one per pair of pieces it separates). A segment's strength is
/// its mean absolute difference across the line (gray, 0…255) divided by the median of the same
/// difference over every pair of adjacent columns (or rows) of the image: about 1 where nothing was
/// cut, large on a seam between unrelated pieces.
///
/// The lines of grid 2 are a subset of grid 4's, grid 3's and 2's of grid 6's, so a candidate
/// scores by its weak segments, not its strong ones: its score is the `quantile` (default 0.2)
/// of its segments' strengths, so every line must be a seam along most of its length (a few
/// segments may join pieces that happen to be neighbours in the original too). Grid 2 in a 4×4
/// puzzle thus passes but 4 in a 2×2 does not (two of its three lines per axis are not seams), and
/// the detector returns the largest candidate whose score reaches `threshold`, or, when none does,
/// the best-scoring one. The confidence is `1 − 1/score` clamped to `[0, 1]`, below `1 − 1/threshold`
/// when no candidate passes.
public struct GridDetector: Sendable {
    public var candidates: [Int]
    public var threshold: Float
    public var quantile: Float

    public init(candidates: [Int] = Array(2...6), threshold: Float = 2, quantile: Float = 0.2) {
        precondition(!candidates.isEmpty && candidates.allSatisfy { $0 >= 2 }, "candidate grids are at least 2")
        self.candidates = candidates
        self.threshold = threshold
        self.quantile = quantile
    }

    public struct Detection: Sendable, Equatable {
        public var grid: Int
        public var confidence: Float
        /// Every candidate's score (the quantile of its segment strengths), in candidate order.
        public var scores: [Int: Float]
    }

    public func detect(_ image: Image) -> Detection {
        let width = image.width, height = image.height
        precondition(width >= 4 && height >= 4, "image too small for grid detection")
        // Gray in 0…255.
        var gray = [Float](repeating: 0, count: width * height)
        let c = image.channels
        image.pixels.withUnsafeBufferPointer { pixels in
            gray.withUnsafeMutableBufferPointer { gray in
                for p in 0..<(width * height) {
                    if c == 1 { gray[p] = Float(pixels[p]) } else {
                        gray[p] = 0.299 * Float(pixels[p * c]) + 0.587 * Float(pixels[p * c + 1])
                            + 0.114 * Float(pixels[p * c + 2])
                    }
                }
            }
        }
        // |I(x+1, y) − I(x, y)| summed down each column pair, |I(x, y+1) − I(x, y)| along each row pair.
        var columnMeans = [Float](repeating: 0, count: width - 1)
        var rowMeans = [Float](repeating: 0, count: height - 1)
        gray.withUnsafeBufferPointer { gray in
            columnMeans.withUnsafeMutableBufferPointer { columns in
                for y in 0..<height {
                    let row = gray.baseAddress! + y * width
                    for x in 0..<(width - 1) { columns[x] += abs(row[x + 1] - row[x]) }
                }
            }
            rowMeans.withUnsafeMutableBufferPointer { rows in
                for y in 0..<(height - 1) {
                    let row = gray.baseAddress! + y * width, next = row + width
                    var sum: Float = 0
                    for x in 0..<width { sum += abs(next[x] - row[x]) }
                    rows[y] = sum
                }
            }
        }
        let typicalX = max(Self.median(columnMeans) / Float(height), 0.5)
        let typicalY = max(Self.median(rowMeans) / Float(width), 0.5)

        var scores: [Int: Float] = [:]
        gray.withUnsafeBufferPointer { gray in
            let gray = gray.baseAddress!
            for g in candidates {
                let pw = width / g, ph = height / g
                guard pw >= 2 && ph >= 2 else { scores[g] = 0; continue }
                let left = (width - g * pw) / 2, top = (height - g * ph) / 2
                var strengths: [Float] = []
                for k in 1..<g {
                    let x = left + k * pw  // seam between columns x − 1 and x
                    for s in 0..<g {
                        var sum: Float = 0
                        for y in (top + s * ph)..<(top + (s + 1) * ph) { sum += abs(gray[y * width + x] - gray[y * width + x - 1]) }
                        strengths.append(sum / Float(ph) / typicalX)
                    }
                    let y = top + k * ph
                    for s in 0..<g {
                        var sum: Float = 0
                        for x in (left + s * pw)..<(left + (s + 1) * pw) { sum += abs(gray[y * width + x] - gray[(y - 1) * width + x]) }
                        strengths.append(sum / Float(pw) / typicalY)
                    }
                }
                strengths.sort()
                let index = min(strengths.count - 1, Int(Float(strengths.count - 1) * quantile))
                scores[g] = strengths[index]
            }
        }
        let passing = candidates.filter { scores[$0]! >= threshold }
        let grid = passing.max() ?? candidates.max { scores[$0]! < scores[$1]! }!
        let score = scores[grid]!
        let confidence = min(max(1 - 1 / max(score, 1e-6), 0), 1)
        return Detection(grid: grid, confidence: confidence, scores: scores)
    }

    static func median(_ values: [Float]) -> Float {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}
