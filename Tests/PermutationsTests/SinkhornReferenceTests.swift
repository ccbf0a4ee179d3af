import Foundation
import TensorKit

/// Straightforward Double-precision implementations that the tests compare against: the tutorial's
/// log-domain loop written out with explicit row and column log-sum-exps, no potentials, no scaling.
enum SinkhornReference {
    static func logSumExp(_ values: [Double]) -> Double {
        let top = values.max() ?? -.infinity
        if !top.isFinite { return top }
        return top + log(values.reduce(0) { $0 + exp($1 - top) })
    }

    /// Normalises the rows of `l` (`[m, n]`) to `exp(log a)`.
    static func rowStep(_ l: inout [Double], rows m: Int, columns n: Int, logA: [Double]) {
        for i in 0..<m {
            let shift = logSumExp(Array(l[(i * n)..<(i * n + n)])) - logA[i]
            for j in 0..<n { l[i * n + j] -= shift }
        }
    }

    /// Normalises the columns of `l` to `exp(log b)`.
    static func columnStep(_ l: inout [Double], rows m: Int, columns n: Int, logB: [Double]) {
        for j in 0..<n {
            let shift = logSumExp((0..<m).map { l[$0 * n + j] }) - logB[j]
            for i in 0..<m { l[i * n + j] -= shift }
        }
    }

    /// `log S(X/τ)` after `iterations` row-then-column iterations (one `[n, n]` matrix).
    static func logSinkhorn(_ x: [Double], n: Int, temperature: Double, iterations: Int) -> [Double] {
        var l = x.map { $0 / temperature }
        let zeros = [Double](repeating: 0, count: n)
        for _ in 0..<iterations {
            rowStep(&l, rows: n, columns: n, logA: zeros)
            columnStep(&l, rows: n, columns: n, logB: zeros)
        }
        return l
    }

    static func sinkhorn(_ x: [Double], n: Int, temperature: Double, iterations: Int) -> [Double] {
        logSinkhorn(x, n: n, temperature: temperature, iterations: iterations).map { exp($0) }
    }

    /// Iterations until the row-marginal error `Σ_i |Σ_j P_ij − 1|` after an iteration is below
    /// `tolerance` (or `limit`).
    static func iterationsToTolerance(_ x: [Double], n: Int, temperature: Double, tolerance: Double,
                                      limit: Int) -> Int {
        var l = x.map { $0 / temperature }
        let zeros = [Double](repeating: 0, count: n)
        for k in 1...limit {
            rowStep(&l, rows: n, columns: n, logA: zeros)
            columnStep(&l, rows: n, columns: n, logB: zeros)
            var error = 0.0
            for i in 0..<n { error += abs((0..<n).reduce(0) { $0 + exp(l[i * n + $1]) } - 1) }
            if error < tolerance { return k }
        }
        return limit
    }

    /// `P` of the transport form: `log P = −C/λ`, then column step and row step per iteration.
    static func transport(cost: [Double], rows m: Int, columns n: Int, rowMarginal a: [Double],
                          columnMarginal b: [Double], entropy: Double, iterations: Int) -> [Double] {
        var l = cost.map { -$0 / entropy }
        let logA = a.map { log($0) }, logB = b.map { log($0) }
        for _ in 0..<iterations {
            columnStep(&l, rows: m, columns: n, logB: logB)
            rowStep(&l, rows: m, columns: n, logA: logA)
        }
        return l.map { exp($0) }
    }

    /// The maximising permutation of `trace(Pᵀ X)` by brute force, with the gap to the runner-up.
    static func bestMatching(_ x: [Double], n: Int) -> (permutation: [Int], gap: Double) {
        var best = -Double.infinity, second = -Double.infinity
        var bestPermutation: [Int] = []
        var current = Array(0..<n)
        func visit(_ depth: Int) {
            if depth == n {
                let value = (0..<n).reduce(0.0) { $0 + x[$1 * n + current[$1]] }
                if value > best { second = best; best = value; bestPermutation = current }
                else if value > second { second = value }
                return
            }
            for k in depth..<n {
                current.swapAt(depth, k)
                visit(depth + 1)
                current.swapAt(depth, k)
            }
        }
        visit(0)
        return (bestPermutation, n == 1 ? .infinity : best - second)
    }

    /// Central finite differences of `loss` at `point` along each coordinate.
    static func gradient(at point: [Double], step: Double, _ loss: ([Double]) -> Double) -> [Double] {
        var x = point
        return (0..<point.count).map { index in
            x[index] = point[index] + step
            let up = loss(x)
            x[index] = point[index] - step
            let down = loss(x)
            x[index] = point[index]
            return (up - down) / (2 * step)
        }
    }
}

extension Tensor {
    var doubles: [Double] { storage.map(Double.init) }

    /// The `[rows, columns]` slice of matrix `item` of a rank-3 tensor as Doubles.
    func matrix(_ item: Int) -> [Double] {
        let size = shape[shape.count - 1] * shape[shape.count - 2]
        return storage[(item * size)..<((item + 1) * size)].map(Double.init)
    }
}
