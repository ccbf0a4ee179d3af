#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import TensorKit

// Row-range kernels shared by the Sinkhorn forward and backward passes.
//
// Notation for one matrix of the batch: `x` is the raw input (`[m, n]` row-major), `s` the scale
// (`1/τ`, or `−1/λ` for a cost), and the current log iterate is `L = s·x + f·1ᵀ + 1·gᵀ` with dual
// potentials `f [m]`, `g [n]`. The scaling form holds `K = exp(s·x + f_e + g_e)` for the potentials of
// the last absorption and multipliers `u [m]`, `v [n]` with `P = diag(u) K diag(v)`.
// Every kernel works on a half-open range of rows so that one matrix can be split across threads;
// column reductions go to per-block partial buffers that the caller merges.

/// Runs `body(block)` for `blocks` blocks, on the calling thread when there is one block.
///
/// The blocks write disjoint memory through raw pointers, which the compiler cannot see, so the
/// closure is handed to Dispatch as `@Sendable`; `concurrentPerform` returns only when every block
/// is done, so the closure never outlives this call.
@inline(__always) func forEachBlock(_ blocks: Int, _ body: (Int) -> Void) {
    if blocks == 1 { body(0); return }
    withoutActuallyEscaping(body) { escapable in
        let shared = unsafeBitCast(escapable, to: (@Sendable (Int) -> Void).self)
        DispatchQueue.concurrentPerform(iterations: blocks, execute: shared)
    }
}

/// The rows `block` of `blocks` covers, in contiguous nearly equal ranges.
@inline(__always) func rowRange(_ block: Int, of blocks: Int, rows: Int) -> Range<Int> {
    (rows * block / blocks)..<(rows * (block + 1) / blocks)
}

enum SinkhornKernels {
    /// `f_i ← logA_i − log Σ_j exp(s·x_ij + g_j)` for the rows in `rows` (a log-domain row step).
    static func logRowStep(x: UnsafePointer<Float>, columns n: Int, scale s: Float,
                           f: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>,
                           logA: UnsafePointer<Float>, rows: Range<Int>,
                           scratch: UnsafeMutablePointer<Float>) {
        let sv = SIMD8<Float>(repeating: s)
        for i in rows {
            let xi = x + i * n
            var j = 0
            var mv = SIMD8<Float>(repeating: -.infinity)
            while j + 8 <= n {
                let t = sv * VectorMath.load8(xi + j) + VectorMath.load8(g + j)
                VectorMath.store8(t, scratch + j)
                mv = VectorMath.lanesMax(mv, t)
                j += 8
            }
            var mx = mv.max()
            while j < n {
                let t = s * xi[j] + g[j]
                scratch[j] = t
                mx = Swift.max(mx, t)
                j += 1
            }
            let total = VectorMath.exp(UnsafePointer(scratch), shift: -mx, into: scratch, count: n)
            f[i] = logA[i] - (mx + logf(total))
        }
    }

    /// The first row step fused with the kernel build: `f_i ← logA_i − log Σ_j exp(s·x_ij)` and
    /// `K_ij ← exp(s·x_ij + f_i)` (rows summing to `a_i`), with the column sums of `K` over `rows`
    /// into `columnSums`. One exponential per element.
    static func firstRowStep(x: UnsafePointer<Float>, columns n: Int, scale s: Float,
                             f: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>,
                             logA: UnsafePointer<Float>, kernel: UnsafeMutablePointer<Float>,
                             rows: Range<Int>, columnSums: UnsafeMutablePointer<Float>) {
        let sv = SIMD8<Float>(repeating: s)
        for j in 0..<n { columnSums[j] = 0 }
        for i in rows {
            let xi = x + i * n
            let ki = kernel + i * n
            var j = 0
            var mv = SIMD8<Float>(repeating: -.infinity)
            while j + 8 <= n { mv = VectorMath.lanesMax(mv, sv * VectorMath.load8(xi + j)); j += 8 }
            var mx = mv.max()
            while j < n { mx = Swift.max(mx, s * xi[j]); j += 1 }
            j = 0
            let shift = SIMD8<Float>(repeating: -mx)
            var acc = SIMD8<Float>(repeating: 0)
            while j + 8 <= n {
                let e = VectorMath.exp(sv * VectorMath.load8(xi + j) + shift)
                VectorMath.store8(e, ki + j)
                acc += e
                j += 8
            }
            var total = acc.sum()
            while j < n { let e = VectorMath.exp(s * xi[j] - mx); ki[j] = e; total += e; j += 1 }
            f[i] = logA[i] - (mx + logf(total))
            let factor = SIMD8<Float>(repeating: a[i] / total)
            j = 0
            while j + 8 <= n {
                let k = VectorMath.load8(ki + j) * factor
                VectorMath.store8(k, ki + j)
                VectorMath.store8(VectorMath.load8(columnSums + j) + k, columnSums + j)
                j += 8
            }
            while j < n { ki[j] *= factor[0]; columnSums[j] += ki[j]; j += 1 }
        }
    }

    /// Writes `log P = s·x + F·1ᵀ + 1·Gᵀ` and `P = diag(u) K diag(v)` for `rows` (no exponentials);
    /// returns `Σ_i |Σ_j P_ij − a_i|` over those rows and adds the column sums into `columnSums`.
    static func writeScaledOutput(x: UnsafePointer<Float>, columns n: Int, scale s: Float,
                                  potentialF: UnsafePointer<Float>, potentialG: UnsafePointer<Float>,
                                  kernel: UnsafePointer<Float>, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                  a: UnsafePointer<Float>, logP: UnsafeMutablePointer<Float>,
                                  p: UnsafeMutablePointer<Float>, rows: Range<Int>,
                                  columnSums: UnsafeMutablePointer<Float>) -> Float {
        let sv = SIMD8<Float>(repeating: s)
        for j in 0..<n { columnSums[j] = 0 }
        var error: Float = 0
        for i in rows {
            let xi = x + i * n, ki = kernel + i * n
            let li = logP + i * n, pi = p + i * n
            let fv = SIMD8<Float>(repeating: potentialF[i])
            let uv = SIMD8<Float>(repeating: u[i])
            var rowSum = SIMD8<Float>(repeating: 0)
            var j = 0
            while j + 8 <= n {
                VectorMath.store8(sv * VectorMath.load8(xi + j) + fv + VectorMath.load8(potentialG + j), li + j)
                let e = uv * VectorMath.load8(ki + j) * VectorMath.load8(v + j)
                VectorMath.store8(e, pi + j)
                rowSum += e
                VectorMath.store8(VectorMath.load8(columnSums + j) + e, columnSums + j)
                j += 8
            }
            var total = rowSum.sum()
            while j < n {
                li[j] = s * xi[j] + potentialF[i] + potentialG[j]
                let e = u[i] * ki[j] * v[j]
                pi[j] = e
                total += e
                columnSums[j] += e
                j += 1
            }
            error += abs(total - a[i])
        }
        return error
    }

    /// Partial column log-sum-exp over `rows` of `s·x_ij + f_i`: per column the maximum into
    /// `maxima` and `Σ_i exp(· − maximum)` into `sums` (merged across blocks by the caller).
    static func columnLogSumExpPartial(x: UnsafePointer<Float>, columns n: Int, scale s: Float,
                                       f: UnsafePointer<Float>, rows: Range<Int>,
                                       maxima: UnsafeMutablePointer<Float>,
                                       sums: UnsafeMutablePointer<Float>) {
        let sv = SIMD8<Float>(repeating: s)
        for j in 0..<n { maxima[j] = -.infinity; sums[j] = 0 }
        for i in rows {
            let xi = x + i * n
            let fv = SIMD8<Float>(repeating: f[i])
            var j = 0
            while j + 8 <= n {
                VectorMath.store8(VectorMath.lanesMax(VectorMath.load8(maxima + j), sv * VectorMath.load8(xi + j) + fv), maxima + j)
                j += 8
            }
            while j < n { maxima[j] = Swift.max(maxima[j], s * xi[j] + f[i]); j += 1 }
        }
        for i in rows {
            let xi = x + i * n
            let fv = SIMD8<Float>(repeating: f[i])
            var j = 0
            while j + 8 <= n {
                let e = VectorMath.exp(sv * VectorMath.load8(xi + j) + fv - VectorMath.load8(maxima + j))
                VectorMath.store8(VectorMath.load8(sums + j) + e, sums + j)
                j += 8
            }
            while j < n { sums[j] += VectorMath.exp(s * xi[j] + f[i] - maxima[j]); j += 1 }
        }
    }

    /// Merges the partial column log-sum-exps of `blocks` blocks (each `[n]`, stride `n`) and sets
    /// `g_j ← logB_j − lse_j`.
    static func finishColumnStep(maxima: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                                 blocks: Int, columns n: Int, logB: UnsafePointer<Float>,
                                 g: UnsafeMutablePointer<Float>) {
        for j in 0..<n {
            var mx = -Float.infinity
            for b in 0..<blocks { mx = Swift.max(mx, maxima[b * n + j]) }
            var total: Float = 0
            for b in 0..<blocks where sums[b * n + j] > 0 {
                total += sums[b * n + j] * VectorMath.exp(maxima[b * n + j] - mx)
            }
            g[j] = logB[j] - (mx + logf(total))
        }
    }

    /// `K_ij ← exp(s·x_ij + f_i + g_j)` for the rows in `rows`, with the column sums of those rows
    /// into `columnSums`.
    static func buildKernel(x: UnsafePointer<Float>, columns n: Int, scale s: Float,
                            f: UnsafePointer<Float>, g: UnsafePointer<Float>,
                            kernel: UnsafeMutablePointer<Float>, rows: Range<Int>,
                            columnSums: UnsafeMutablePointer<Float>) {
        let sv = SIMD8<Float>(repeating: s)
        for j in 0..<n { columnSums[j] = 0 }
        for i in rows {
            let xi = x + i * n
            let ki = kernel + i * n
            let fv = SIMD8<Float>(repeating: f[i])
            var j = 0
            while j + 8 <= n {
                let e = VectorMath.exp(sv * VectorMath.load8(xi + j) + fv + VectorMath.load8(g + j))
                VectorMath.store8(e, ki + j)
                VectorMath.store8(VectorMath.load8(columnSums + j) + e, columnSums + j)
                j += 8
            }
            while j < n {
                let e = VectorMath.exp(s * xi[j] + f[i] + g[j])
                ki[j] = e
                columnSums[j] += e
                j += 1
            }
        }
    }

    /// One fused sweep of the scaling iteration over `rows`: the row step
    /// `u′_i = a_i / (K v)_i` followed by the column products `w += Kᵀ u′` of the next column step,
    /// reading each row of `K` once. Returns `Σ_i |u_i (K v)_i − a_i|`, the row-marginal error of the
    /// iterate before this row step.
    static func fusedScalingSweep(kernel: UnsafePointer<Float>, columns n: Int,
                                  u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                  a: UnsafePointer<Float>, newU: UnsafeMutablePointer<Float>,
                                  rows: Range<Int>, columnProducts w: UnsafeMutablePointer<Float>) -> Float {
        for j in 0..<n { w[j] = 0 }
        var error: Float = 0
        // Rows go in groups of four so that `w` is loaded and stored once per group.
        var i = rows.lowerBound
        while i < rows.upperBound {
            let group = Swift.min(4, rows.upperBound - i)
            var scale = SIMD4<Float>(repeating: 0)
            for r in 0..<group {
                let ki = kernel + (i + r) * n
                var acc = SIMD8<Float>(repeating: 0)
                var j = 0
                while j + 8 <= n { acc += VectorMath.load8(ki + j) * VectorMath.load8(v + j); j += 8 }
                var t = acc.sum()
                while j < n { t += ki[j] * v[j]; j += 1 }
                error += abs(u[i + r] * t - a[i + r])
                let ui = a[i + r] / t
                newU[i + r] = ui
                scale[r] = ui
            }
            // Rows past the group's end get weight 0 and point at the group's first row.
            let k0 = kernel + i * n
            let k1 = group > 1 ? k0 + n : k0, k2 = group > 2 ? k0 + 2 * n : k0, k3 = group > 3 ? k0 + 3 * n : k0
            let s0 = SIMD8<Float>(repeating: scale[0]), s1 = SIMD8<Float>(repeating: scale[1])
            let s2 = SIMD8<Float>(repeating: scale[2]), s3 = SIMD8<Float>(repeating: scale[3])
            var j = 0
            while j + 8 <= n {
                let sum = s0 * VectorMath.load8(k0 + j) + s1 * VectorMath.load8(k1 + j) + s2 * VectorMath.load8(k2 + j) + s3 * VectorMath.load8(k3 + j)
                VectorMath.store8(VectorMath.load8(w + j) + sum, w + j)
                j += 8
            }
            while j < n {
                w[j] += scale[0] * k0[j] + scale[1] * k1[j] + scale[2] * k2[j] + scale[3] * k3[j]
                j += 1
            }
            i += group
        }
        return error
    }

    /// Writes `log P = s·x + F·1ᵀ + 1·Gᵀ` and `P = exp(log P)` for `rows`; returns
    /// `Σ_i |Σ_j P_ij − a_i|` over those rows and adds the column sums into `columnSums`.
    static func writeOutput(x: UnsafePointer<Float>, columns n: Int, scale s: Float,
                            f: UnsafePointer<Float>, g: UnsafePointer<Float>, a: UnsafePointer<Float>,
                            logP: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>,
                            rows: Range<Int>, columnSums: UnsafeMutablePointer<Float>) -> Float {
        let sv = SIMD8<Float>(repeating: s)
        for j in 0..<n { columnSums[j] = 0 }
        var error: Float = 0
        for i in rows {
            let xi = x + i * n
            let li = logP + i * n
            let pi = p + i * n
            let fv = SIMD8<Float>(repeating: f[i])
            var rowSum = SIMD8<Float>(repeating: 0)
            var j = 0
            while j + 8 <= n {
                let l = sv * VectorMath.load8(xi + j) + fv + VectorMath.load8(g + j)
                let e = VectorMath.exp(l)
                VectorMath.store8(l, li + j)
                VectorMath.store8(e, pi + j)
                rowSum += e
                VectorMath.store8(VectorMath.load8(columnSums + j) + e, columnSums + j)
                j += 8
            }
            var total = rowSum.sum()
            while j < n {
                let l = s * xi[j] + f[i] + g[j]
                let e = VectorMath.exp(l)
                li[j] = l
                pi[j] = e
                total += e
                columnSums[j] += e
                j += 1
            }
            error += abs(total - a[i])
        }
        return error
    }
}
