import Glibc
import TensorKit

/// Pairwise dissimilarities between the edges of square-grid jigsaw pieces, for the classic
/// (learning-free) solver.
///
/// `left[i · n + j]` is the cost of piece `i` placed immediately left of piece `j`, and
/// `above[i · n + j]` the cost of `i` immediately above `j`; the diagonal is `+∞`. Lower is more
/// compatible.
public struct EdgeCompatibility: Sendable, Equatable {
    /// How the cost across one boundary is measured.
    public enum Measure: Sendable, Equatable {
        /// Prediction-based dissimilarity (Pomeranz, Shemesh & Ben-Shahar 2011; Paikin & Tal 2015):
        /// each side's boundary column is extrapolated one pixel across the seam,
        /// `2 · x[last] − x[last − 1]`, and compared with the other side's boundary column; the two
        /// directions are summed. The per-sample error is `|e|^p`, summed, then raised to `q / p`
        /// (Pomeranz's `(L_p)^q`); `p = q = 1` is the L1 distance.
        case prediction(p: Float = 1, q: Float = 1)
        /// Mahalanobis Gradient Compatibility (Gallagher 2012): the RGB gradient across the seam,
        /// `b[first] − a[last]`, is scored by its Mahalanobis distance under the distribution of
        /// the gradients `a[last] − a[last − 1]` along `a`'s boundary (mean and covariance, with
        /// Gallagher's dummy gradients and a small ridge), summed over the edge's pixels, plus the
        /// same from `b`'s side (`a[last] − b[first]` against `b[first] − b[second]`); 1 or 3 channels.
        case mahalanobisGradient
    }

    public let count: Int
    public var left: [Float]
    public var above: [Float]

    public init(count: Int, left: [Float], above: [Float]) {
        precondition(left.count == count * count && above.count == count * count, "expected \(count)×\(count) costs")
        self.count = count
        self.left = left
        self.above = above
    }

    /// Costs from scrambled pieces `[n, C, h, w]` (or `[1, n, C, h, w]`), values in `[0, 1]`.
    public init(pieces: Tensor, measure: Measure = .prediction()) {
        let shape = pieces.rank == 5 ? Array(pieces.shape.dropFirst()) : pieces.shape
        precondition(shape.count == 4 && (pieces.rank == 4 || pieces.shape[0] == 1),
                     "expected pieces [n, C, h, w], got \(pieces.shape)")
        var result: EdgeCompatibility?
        pieces.withUnsafeBufferPointer { source in
            result = EdgeCompatibility(pieces: source.baseAddress!, count: shape[0], channels: shape[1],
                                       height: shape[2], width: shape[3], measure: measure)
        }
        self = result!
    }

    /// Costs from `count` pieces `[C, height, width]` stored one after another at `pieces`.
    public init(pieces source: UnsafePointer<Float>, count n: Int, channels: Int, height: Int, width: Int,
                measure: Measure = .prediction()) {
        precondition(n >= 1 && channels >= 1, "no pieces")
        precondition(height >= 2 && width >= 2, "pieces must be at least 2×2 pixels")
        // Boundary strips, two lines deep, `[piece][depth][channel][position]`: the right edge
        // (last, last − 1 columns), the left edge (first, second), the bottom edge (last,
        // last − 1 rows) and the top edge (first, second rows).
        let (columnLine, rowLine) = (channels * height, channels * width)
        var right = [Float](repeating: 0, count: n * 2 * columnLine), leftEdge = right
        var bottom = [Float](repeating: 0, count: n * 2 * rowLine), top = bottom
        let pieceSize = channels * height * width
        for p in 0..<n {
            for depth in 0..<2 {
                for c in 0..<channels {
                    let plane = source + p * pieceSize + c * height * width
                    let column = (p * 2 + depth) * columnLine + c * height
                    for y in 0..<height {
                        right[column + y] = plane[y * width + (width - 1 - depth)]
                        leftEdge[column + y] = plane[y * width + depth]
                    }
                    let row = (p * 2 + depth) * rowLine + c * width
                    let (last, first) = (plane + (height - 1 - depth) * width, plane + depth * width)
                    for x in 0..<width {
                        bottom[row + x] = last[x]
                        top[row + x] = first[x]
                    }
                }
            }
        }
        self.count = n
        self.left = Self.costs(n: n, channels: channels, length: height, first: right, second: leftEdge, measure: measure)
        self.above = Self.costs(n: n, channels: channels, length: width, first: bottom, second: top, measure: measure)
    }

    /// `first` holds every piece's facing edge (its outermost line, then the one inside it) and
    /// `second` every piece's opposite edge, each `[piece][depth][channel][position]` flattened.
    private static func costs(n: Int, channels: Int, length: Int, first: [Float], second: [Float],
                              measure: Measure) -> [Float] {
        var result = [Float](repeating: .infinity, count: n * n)
        let line = channels * length
        first.withUnsafeBufferPointer { first in
            second.withUnsafeBufferPointer { second in
                let (first, second) = (first.baseAddress!, second.baseAddress!)
                switch measure {
                case .prediction(let p, let q):
                    let plain = p == 1
                    for i in 0..<n {
                        let a = first + i * 2 * line
                        for j in 0..<n where j != i {
                            let b = second + j * 2 * line
                            var sum: Float = 0
                            for k in 0..<line {
                                let aLast = a[k], aPrev = a[line + k], bFirst = b[k], bNext = b[line + k]
                                let e1 = abs(2 * aLast - aPrev - bFirst)
                                let e2 = abs(2 * bFirst - bNext - aLast)
                                sum += plain ? e1 + e2 : powf(e1, p) + powf(e2, p)
                            }
                            result[i * n + j] = plain && q == 1 ? sum : powf(sum, q / p)
                        }
                    }
                case .mahalanobisGradient:
                    precondition(channels == 3 || channels == 1, "MGC needs 1 or 3 channels")
                    let modelsA = (0..<n).map { GradientModel(strip: first + $0 * 2 * line, channels: channels, length: length) }
                    let modelsB = (0..<n).map { GradientModel(strip: second + $0 * 2 * line, channels: channels, length: length) }
                    if channels == 3 {
                        mgc3(n: n, length: length, first: first, second: second, modelsA: modelsA, modelsB: modelsB,
                             into: &result)
                        break
                    }
                    var fromA = [Float](repeating: 0, count: channels), fromB = fromA
                    for i in 0..<n {
                        let a = first + i * 2 * line
                        for j in 0..<n where j != i {
                            let b = second + j * 2 * line
                            var sum: Float = 0
                            for k in 0..<length {
                                for c in 0..<channels {
                                    let aLast = a[c * length + k], bFirst = b[c * length + k]
                                    fromA[c] = bFirst - aLast
                                    fromB[c] = aLast - bFirst
                                }
                                sum += modelsA[i].distance(fromA) + modelsB[j].distance(fromB)
                            }
                            result[i * n + j] = sum
                        }
                    }
                }
            }
        }
        return result
    }
}

/// The MGC costs of RGB strips: the same arithmetic as ``GradientModel/distance(_:)`` in the same
/// order (so the same floats), with each model's mean and inverse held in scalars.
private func mgc3(n: Int, length: Int, first: UnsafePointer<Float>, second: UnsafePointer<Float>,
                  modelsA: [GradientModel], modelsB: [GradientModel], into result: inout [Float]) {
    typealias Model = (m0: Float, m1: Float, m2: Float, i00: Float, i01: Float, i02: Float,
                       i10: Float, i11: Float, i12: Float, i20: Float, i21: Float, i22: Float)
    func scalars(_ g: GradientModel) -> Model {
        (g.mean[0], g.mean[1], g.mean[2], g.inverse[0], g.inverse[1], g.inverse[2],
         g.inverse[3], g.inverse[4], g.inverse[5], g.inverse[6], g.inverse[7], g.inverse[8])
    }
    @inline(__always) func distance(_ m: Model, _ g0: Float, _ g1: Float, _ g2: Float) -> Float {
        let d0 = g0 - m.m0, d1 = g1 - m.m1, d2 = g2 - m.m2
        var total: Float = 0
        var row: Float = 0
        row += m.i00 * d0; row += m.i01 * d1; row += m.i02 * d2
        total += d0 * row
        row = 0
        row += m.i10 * d0; row += m.i11 * d1; row += m.i12 * d2
        total += d1 * row
        row = 0
        row += m.i20 * d0; row += m.i21 * d1; row += m.i22 * d2
        total += d2 * row
        return max(total, 0)
    }
    let a = modelsA.map(scalars), b = modelsB.map(scalars)
    let line = 3 * length
    for i in 0..<n {
        let edge = first + i * 2 * line, model = a[i]
        for j in 0..<n where j != i {
            let other = second + j * 2 * line, otherModel = b[j]
            var sum: Float = 0
            for k in 0..<length {
                let a0 = edge[k], a1 = edge[length + k], a2 = edge[2 * length + k]
                let b0 = other[k], b1 = other[length + k], b2 = other[2 * length + k]
                sum += distance(model, b0 - a0, b1 - a1, b2 - a2) + distance(otherModel, a0 - b0, a1 - b1, a2 - b2)
            }
            result[i * n + j] = sum
        }
    }
}

/// Mean and inverse covariance of the gradients at one piece edge (Gallagher 2012, §3).
private struct GradientModel {
    var mean: [Float]
    var inverse: [Float]
    let channels: Int

    /// Gradients `outer − inner` along the edge (`strip` = outer line, then inner line): the step
    /// towards the seam, which the step across it (`other side − outer`) should resemble.
    init(strip: UnsafePointer<Float>, channels: Int, length: Int) {
        self.channels = channels
        let line = channels * length
        var samples: [[Float]] = []
        samples.reserveCapacity(length)
        for k in 0..<length {
            var g = [Float](repeating: 0, count: channels)
            for c in 0..<channels {
                let outer = strip[c * length + k], inner = strip[line + c * length + k]
                g[c] = outer - inner
            }
            samples.append(g)
        }
        // Gallagher's dummy gradients keep the covariance well conditioned on flat edges.
        for dummy: Float in [0, 1.0 / 255, -1.0 / 255] {
            for c in 0..<channels {
                var g = [Float](repeating: dummy, count: channels)
                g[c] = -dummy
                samples.append(g)
            }
        }
        var mean = [Float](repeating: 0, count: channels)
        for g in samples { for c in 0..<channels { mean[c] += g[c] } }
        for c in 0..<channels { mean[c] /= Float(samples.count) }
        var cov = [Double](repeating: 0, count: channels * channels)
        for g in samples {
            for r in 0..<channels { for c in 0..<channels { cov[r * channels + c] += Double((g[r] - mean[r]) * (g[c] - mean[c])) } }
        }
        for k in 0..<cov.count { cov[k] /= Double(max(1, samples.count - 1)) }
        for c in 0..<channels { cov[c * channels + c] += 1e-6 }
        self.mean = mean
        self.inverse = GradientModel.invert(cov, channels).map(Float.init)
    }

    static func invert(_ m: [Double], _ k: Int) -> [Double] {
        if k == 1 { return [1 / m[0]] }
        let (a, b, c, d, e, f, g, h, i) = (m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8])
        let A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g
        let det = a * A + b * B + c * C
        let s = 1 / det
        return [A * s, -(b * i - c * h) * s, (b * f - c * e) * s,
                B * s, (a * i - c * g) * s, -(a * f - c * d) * s,
                C * s, -(a * h - b * g) * s, (a * e - b * d) * s]
    }

    /// `(g − μ)ᵀ Σ⁻¹ (g − μ)`, Gallagher's per-pixel term.
    func distance(_ g: [Float]) -> Float {
        var total: Float = 0
        for r in 0..<channels {
            var row: Float = 0
            for c in 0..<channels { row += inverse[r * channels + c] * (g[c] - mean[c]) }
            total += (g[r] - mean[r]) * row
        }
        return max(total, 0)
    }
}
