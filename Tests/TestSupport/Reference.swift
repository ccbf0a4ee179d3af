import TensorKit

// Independent Double-precision reference forwards (direct loops, no im2col, no BLAS) and
// central finite differences, used to check the float32 layers and their backward passes.

extension Tensor {
    public var doubles: [Double] { storage.map(Double.init) }
    init(shape: [Int], doubles: [Double]) { self.init(shape: shape, storage: doubles.map(Float.init)) }
}

public enum Reference {
    /// PyTorch Conv2d, stride 1, zero padding: x [N, C, H, W], w [O, C, k, k] → [N, O, H', W'].
    public static func conv2d(_ x: [Double], n: Int, c: Int, h: Int, w: Int,
                       weight: [Double], outputs: Int, kernel: Int, bias: [Double]?, padding: Int) -> [Double] {
        let oh = h + 2 * padding - kernel + 1, ow = w + 2 * padding - kernel + 1
        var y = [Double](repeating: 0, count: n * outputs * oh * ow)
        for s in 0..<n {
            for o in 0..<outputs {
                for i in 0..<oh {
                    for j in 0..<ow {
                        var total = bias?[o] ?? 0
                        for ci in 0..<c {
                            for u in 0..<kernel {
                                for v in 0..<kernel {
                                    let yy = i + u - padding, xx = j + v - padding
                                    if yy < 0 || yy >= h || xx < 0 || xx >= w { continue }
                                    total += weight[((o * c + ci) * kernel + u) * kernel + v]
                                        * x[((s * c + ci) * h + yy) * w + xx]
                                }
                            }
                        }
                        y[((s * outputs + o) * oh + i) * ow + j] = total
                    }
                }
            }
        }
        return y
    }

    /// MaxPool2d(k), floor mode: planes [P, H, W] → [P, H/k, W/k].
    public static func maxPool(_ x: [Double], planes: Int, h: Int, w: Int, kernel: Int) -> [Double] {
        let oh = h / kernel, ow = w / kernel
        var y: [Double] = []
        for p in 0..<planes {
            for i in 0..<oh {
                for j in 0..<ow {
                    var best = -Double.infinity
                    for u in 0..<kernel {
                        for v in 0..<kernel { best = max(best, x[(p * h + i * kernel + u) * w + j * kernel + v]) }
                    }
                    y.append(best)
                }
            }
        }
        return y
    }

    public static func relu(_ x: [Double]) -> [Double] { x.map { max($0, 0) } }

    /// BatchNorm2d in training mode: batch mean and biased variance per channel.
    public static func batchNorm(_ x: [Double], n: Int, c: Int, plane: Int, gamma: [Double], beta: [Double],
                          epsilon: Double = 1e-5) -> [Double] {
        var y = x
        let m = Double(n * plane)
        for ch in 0..<c {
            var mean = 0.0
            for s in 0..<n { for i in 0..<plane { mean += x[(s * c + ch) * plane + i] } }
            mean /= m
            var variance = 0.0
            for s in 0..<n { for i in 0..<plane { variance += pow2(x[(s * c + ch) * plane + i] - mean) } }
            variance /= m
            for s in 0..<n {
                for i in 0..<plane {
                    let k = (s * c + ch) * plane + i
                    y[k] = gamma[ch] * (x[k] - mean) / (variance + epsilon).squareRoot() + beta[ch]
                }
            }
        }
        return y
    }

    /// x [rows, in] · wᵀ [in, out] + b.
    public static func linear(_ x: [Double], rows: Int, inputs: Int, weight: [Double], outputs: Int, bias: [Double]?) -> [Double] {
        var y = [Double](repeating: 0, count: rows * outputs)
        for r in 0..<rows {
            for o in 0..<outputs {
                var total = bias?[o] ?? 0
                for i in 0..<inputs { total += x[r * inputs + i] * weight[o * inputs + i] }
                y[r * outputs + o] = total
            }
        }
        return y
    }

    public static func dot(_ a: [Double], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        var total = 0.0
        for i in 0..<a.count { total += a[i] * b[i] }
        return total
    }

    public static func pow2(_ x: Double) -> Double { x * x }

    /// Central differences `(f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h` for every coordinate.
    public static func gradient(at x: [Double], step: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
        var result = [Double](repeating: 0, count: x.count)
        var probe = x
        for i in 0..<x.count {
            probe[i] = x[i] + step
            let plus = f(probe)
            probe[i] = x[i] - step
            let minus = f(probe)
            probe[i] = x[i]
            result[i] = (plus - minus) / (2 * step)
        }
        return result
    }

    /// The largest deviation of `actual` from `expected`, relative to `max(1, max|expected|)`.
    public static func relativeError(_ actual: [Double], _ expected: [Double]) -> Double {
        precondition(actual.count == expected.count, "sizes \(actual.count) and \(expected.count)")
        let scale = max(1, expected.map(abs).max() ?? 0)
        var worst = 0.0
        for i in 0..<actual.count { worst = max(worst, abs(actual[i] - expected[i])) }
        return worst / scale
    }
}

/// Float32 analytic gradients against Double references: float rounding through a few layers
/// (and BatchNorm's division by a batch standard deviation) stays well below 1e-3 relative,
/// while a wrong formula is off by O(1).
public let gradientTolerance = 1e-3
/// Float32 forward values against Double references.
public let forwardTolerance = 1e-4
