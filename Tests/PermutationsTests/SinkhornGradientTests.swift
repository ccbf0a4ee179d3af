import Foundation
import Permutations
import Testing
import TensorKit

/// Gradients against central finite differences of the Double reference forward. The Float
/// gradients carry rounding of order `iterations · n · 2⁻²⁴` relative to their scale, and the
/// differences an `O(h²)` truncation (h = 1e-5, ~1e-10); the tolerances below are 1e-3 of the
/// gradient's largest entry, far above the first and far below any real mistake (a missing term
/// is of the order of the gradient itself).
@Suite struct SinkhornGradientTests {
    static func lossOfSinkhorn(_ x: [Double], upstream: [Double], n: Int, temperature: Double,
                               iterations: Int) -> Double {
        let p = SinkhornReference.sinkhorn(x, n: n, temperature: temperature, iterations: iterations)
        return zip(p, upstream).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func worstRelative(_ got: [Double], _ want: [Double]) -> Double {
        let scale = max(want.map(abs).max() ?? 0, 1e-12)
        return zip(got, want).map { abs($0 - $1) }.max()! / scale
    }

    @Test(arguments: [1, 2, 3, 10])
    func unrolledMatchesFiniteDifferences(iterations: Int) throws {
        let (batch, n) = (2, 5)
        let temperature: Float = 0.7
        var rng = SeededGenerator(seed: UInt64(300 + iterations))
        let x = rng.normal([batch, n, n])
        let upstream = rng.normal([batch, n, n])
        let forward = try Sinkhorn.forward(x, temperature: temperature, iterations: iterations, recordsHistory: true)
        let gradient = try Sinkhorn.unrolledGradient(forward, scores: x, upstream: upstream)
        #expect(gradient.shape == x.shape)
        for b in 0..<batch {
            let g = upstream.matrix(b)
            let fd = SinkhornReference.gradient(at: x.matrix(b), step: 1e-5) {
                Self.lossOfSinkhorn($0, upstream: g, n: n, temperature: Double(temperature), iterations: iterations)
            }
            let error = Self.worstRelative(gradient.matrix(b), fd)
            #expect(error < 1e-3, "seed \(300 + iterations) matrix \(b): relative error \(error)")
        }
    }

    /// A larger, tiny-τ case exercising absorptions (several kernel epochs) and the log-domain
    /// first column step, still against finite differences.
    @Test func unrolledThroughAbsorptionsMatchesFiniteDifferences() throws {
        let n = 6
        let temperature: Float = 0.01
        var rng = SeededGenerator(seed: 333)
        let x = rng.normal([1, n, n])
        let upstream = rng.normal([1, n, n])
        let iterations = 40
        let forward = try Sinkhorn.forward(x, temperature: temperature, iterations: iterations, recordsHistory: true)
        let gradient = try Sinkhorn.unrolledGradient(forward, scores: x, upstream: upstream)
        let g = upstream.matrix(0)
        let fd = SinkhornReference.gradient(at: x.matrix(0), step: 1e-6) {
            Self.lossOfSinkhorn($0, upstream: g, n: n, temperature: Double(temperature), iterations: iterations)
        }
        let error = Self.worstRelative(gradient.matrix(0), fd)
        #expect(error < 5e-3, "seed 333: relative error \(error)")
    }

    /// Implicit differentiation is exact for the converged operator: compare with differences of
    /// a forward run long enough to converge in Double.
    @Test(arguments: [UInt64(0), 1, 2])
    func implicitMatchesFiniteDifferencesOfConvergedForward(seed: UInt64) throws {
        let (batch, n) = (2, 5)
        let temperature: Float = 1
        var rng = SeededGenerator(seed: 400 + seed)
        let x = rng.normal([batch, n, n])
        let upstream = rng.normal([batch, n, n])
        let forward = try Sinkhorn.forward(x, temperature: temperature, iterations: 500)
        let gradient = try Sinkhorn.implicitGradient(forward, upstream: upstream)
        for b in 0..<batch {
            let g = upstream.matrix(b)
            let fd = SinkhornReference.gradient(at: x.matrix(b), step: 1e-5) {
                Self.lossOfSinkhorn($0, upstream: g, n: n, temperature: Double(temperature), iterations: 2000)
            }
            let error = Self.worstRelative(gradient.matrix(b), fd)
            #expect(error < 1e-3, "seed \(400 + seed) matrix \(b): relative error \(error)")
        }
    }

    @Test func implicitAgreesWithUnrolledOnlyWhenConverged() throws {
        let (batch, n) = (3, 8)
        var rng = SeededGenerator(seed: 500)
        let x = rng.normal([batch, n, n], std: 2)
        let upstream = rng.normal([batch, n, n])
        let converged = try Sinkhorn.forward(x, temperature: 1, iterations: 300, recordsHistory: true)
        let unrolled = try Sinkhorn.unrolledGradient(converged, scores: x, upstream: upstream)
        let implicit = try Sinkhorn.implicitGradient(converged, upstream: upstream)
        let close = Self.worstRelative(implicit.doubles, unrolled.doubles)
        #expect(close < 2e-3, "seed 500: converged gradients differ by \(close)")

        let early = try Sinkhorn.forward(x, temperature: 1, iterations: 2, recordsHistory: true)
        let unrolledEarly = try Sinkhorn.unrolledGradient(early, scores: x, upstream: upstream)
        let implicitEarly = try Sinkhorn.implicitGradient(early, upstream: upstream)
        let apart = Self.worstRelative(implicitEarly.doubles, unrolledEarly.doubles)
        #expect(apart > 0.05, "seed 500: after 2 iterations the gradients should differ, got \(apart)")
    }

    /// Near a hard permutation the Schur complement is (nearly) singular; the gradient must stay
    /// finite and still match finite differences of the converged forward.
    @Test(arguments: [Float(0.05), 0.02])
    func implicitNearPermutationIsFiniteAndCorrect(temperature: Float) throws {
        let n = 5
        var rng = SeededGenerator(seed: 600)
        let x = rng.normal([1, n, n])
        let upstream = rng.normal([1, n, n])
        let forward = try Sinkhorn.forward(x, temperature: temperature, iterations: 5000, tolerance: 1e-6)
        let gradient = try Sinkhorn.implicitGradient(forward, upstream: upstream)
        #expect(gradient.storage.allSatisfy { $0.isFinite }, "seed 600: non-finite gradient")
        let g = upstream.matrix(0)
        let fd = SinkhornReference.gradient(at: x.matrix(0), step: 1e-6) {
            Self.lossOfSinkhorn($0, upstream: g, n: n, temperature: Double(temperature), iterations: 20_000)
        }
        let scale = fd.map(abs).max()!
        let worst = zip(gradient.matrix(0), fd).map { abs($0 - $1) }.max()!
        // A saturated P makes the gradient small; compare against its scale and, when that is
        // tiny, against the 1/τ scale of a single entry's gradient.
        #expect(worst < 2e-3 * max(scale, 1e-3 / Double(temperature)),
                "seed 600 τ \(temperature): |Δ| = \(worst), scale \(scale)")
    }

    /// At τ = 1e-3 the support of `P` falls apart into the n pairs of a permutation and the
    /// reference code's solve fails ("input matrix is singular"). The gradient must stay finite and
    /// keep the shift invariance of the converged operator, `S(X + c1ᵀ + 1dᵀ) = S(X)`, which
    /// forces every row and column sum of `∂ℓ/∂X` to vanish (the column sums only if the solve
    /// succeeded).
    @Test func implicitAtHardPermutationDoesNotCrash() throws {
        let n = 6
        var rng = SeededGenerator(seed: 700)
        let x = rng.normal([2, n, n], std: 3)
        let upstream = rng.normal([2, n, n])
        let forward = try Sinkhorn.forward(x, temperature: 1e-3, iterations: 20_000, tolerance: 1e-3)
        // Float keeps X/τ ≈ 3000 to ~2e-4, so 1e-3 is as hard as a float permutation gets.
        #expect(forward.matrix.storage.allSatisfy { $0 < 1e-3 || $0 > 1 - 1e-3 },
                "seed 700: expected a hard permutation, got \(forward.matrix.storage)")
        let gradient = try Sinkhorn.implicitGradient(forward, upstream: upstream)
        #expect(gradient.storage.allSatisfy { $0.isFinite }, "seed 700: \(gradient)")
        for b in 0..<2 {
            let d = gradient.matrix(b)
            let scale = max(d.map(abs).max()!, 1)
            for k in 0..<n {
                let row = (0..<n).reduce(0.0) { $0 + d[k * n + $1] }
                let column = (0..<n).reduce(0.0) { $0 + d[$1 * n + k] }
                #expect(abs(row) < 1e-4 * scale && abs(column) < 1e-4 * scale,
                        "seed 700 matrix \(b) index \(k): row sum \(row), column sum \(column)")
            }
        }
    }

    // MARK: transport form

    static func lossOfTransport(cost: [Double], a: [Double], b: [Double], upstream: [Double], m: Int, n: Int,
                                entropy: Double, iterations: Int) -> Double {
        let p = SinkhornReference.transport(cost: cost, rows: m, columns: n, rowMarginal: a, columnMarginal: b,
                                            entropy: entropy, iterations: iterations)
        return zip(p, upstream).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func transportProblem(seed: UInt64, m: Int, n: Int) -> (Tensor, [Float], [Float], Tensor) {
        var rng = SeededGenerator(seed: seed)
        let cost = rng.uniform([1, m, n])
        let a = (0..<m).map { _ in 0.5 + rng.nextUniform() }
        var b = (0..<n).map { _ in 0.5 + rng.nextUniform() }
        let ratio = a.reduce(0, +) / b.reduce(0, +)
        b = b.map { $0 * ratio }
        return (cost, a, b, rng.normal([1, m, n]))
    }

    /// The unrolled map is defined for any marginals, so each coordinate of `a` and `b` is
    /// differentiated on its own.
    @Test func unrolledTransportMatchesFiniteDifferences() throws {
        let (m, n, iterations, entropy) = (4, 3, 5, 0.3)
        let (cost, a, b, upstream) = Self.transportProblem(seed: 800, m: m, n: n)
        let forward = try Sinkhorn.transport(cost: cost, rowMarginal: a, columnMarginal: b, entropy: Float(entropy),
                                             iterations: iterations, recordsHistory: true)
        let gradient = try Sinkhorn.unrolledTransportGradient(forward, cost: cost, upstream: upstream)
        let c = cost.matrix(0), g = upstream.matrix(0)
        let ad = a.map(Double.init), bd = b.map(Double.init)
        let fdCost = SinkhornReference.gradient(at: c, step: 1e-5) {
            Self.lossOfTransport(cost: $0, a: ad, b: bd, upstream: g, m: m, n: n, entropy: entropy, iterations: iterations)
        }
        let fdA = SinkhornReference.gradient(at: ad, step: 1e-5) {
            Self.lossOfTransport(cost: c, a: $0, b: bd, upstream: g, m: m, n: n, entropy: entropy, iterations: iterations)
        }
        let fdB = SinkhornReference.gradient(at: bd, step: 1e-5) {
            Self.lossOfTransport(cost: c, a: ad, b: $0, upstream: g, m: m, n: n, entropy: entropy, iterations: iterations)
        }
        #expect(Self.worstRelative(gradient.cost.doubles, fdCost) < 1e-3, "seed 800: cost")
        #expect(Self.worstRelative(gradient.rowMarginal.doubles, fdA) < 1e-3, "seed 800: a")
        #expect(Self.worstRelative(gradient.columnMarginal.doubles, fdB) < 1e-3, "seed 800: b")
    }

    /// The converged layer only sees marginals of equal mass: `∂ℓ/∂a` and `∂ℓ/∂b` are defined up to
    /// `(+t, −t)`, so they are checked as directional derivatives along mass-preserving directions
    /// (`Σ δa = Σ δb`), where the gauge cancels.
    @Test func implicitTransportMatchesFiniteDifferences() throws {
        let (m, n, entropy) = (4, 5, 0.5)
        let (cost, a, b, upstream) = Self.transportProblem(seed: 900, m: m, n: n)
        let forward = try Sinkhorn.transport(cost: cost, rowMarginal: a, columnMarginal: b, entropy: Float(entropy),
                                             iterations: 1000)
        let gradient = try Sinkhorn.implicitTransportGradient(forward, upstream: upstream)
        let c = cost.matrix(0), g = upstream.matrix(0)
        let ad = a.map(Double.init), bd = b.map(Double.init)
        let converged = 4000
        let fdCost = SinkhornReference.gradient(at: c, step: 1e-5) {
            Self.lossOfTransport(cost: $0, a: ad, b: bd, upstream: g, m: m, n: n, entropy: entropy, iterations: converged)
        }
        #expect(Self.worstRelative(gradient.cost.doubles, fdCost) < 1e-3, "seed 900: cost")
        var rng = SeededGenerator(seed: 901)
        for trial in 0..<4 {
            let da = (0..<m).map { _ in Double(rng.nextNormal()) }
            var db = (0..<n).map { _ in Double(rng.nextNormal()) }
            let shift = (da.reduce(0, +) - db.reduce(0, +)) / Double(n)
            db = db.map { $0 + shift }
            let h = 1e-5
            let up = Self.lossOfTransport(cost: c, a: zip(ad, da).map { $0 + h * $1 }, b: zip(bd, db).map { $0 + h * $1 },
                                          upstream: g, m: m, n: n, entropy: entropy, iterations: converged)
            let down = Self.lossOfTransport(cost: c, a: zip(ad, da).map { $0 - h * $1 }, b: zip(bd, db).map { $0 - h * $1 },
                                            upstream: g, m: m, n: n, entropy: entropy, iterations: converged)
            let fd = (up - down) / (2 * h)
            let analytic = zip(gradient.rowMarginal.doubles, da).reduce(0) { $0 + $1.0 * $1.1 }
                + zip(gradient.columnMarginal.doubles, db).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(analytic - fd) < 1e-3 * max(abs(fd), 1), "seed 901 trial \(trial): \(analytic) vs \(fd)")
        }
    }

    @Test func gradientInputErrors() throws {
        var rng = SeededGenerator(seed: 1)
        let x = rng.normal([2, 3, 3])
        let plain = try Sinkhorn.forward(x)
        #expect(throws: SinkhornError.missingHistory) {
            try Sinkhorn.unrolledGradient(plain, scores: x, upstream: x)
        }
        #expect(throws: SinkhornError.shapeMismatch(expected: [2, 3, 3], found: [3, 3])) {
            try Sinkhorn.implicitGradient(plain, upstream: Tensor(shape: [3, 3]))
        }
        #expect(throws: SinkhornError.wrongProblemKind) {
            try Sinkhorn.implicitTransportGradient(plain, upstream: x)
        }
    }
}
