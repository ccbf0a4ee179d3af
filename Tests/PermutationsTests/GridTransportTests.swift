import Foundation
import Permutations
import Testing
import TensorKit

/// `GridTransport` against hand-computed costs, a closed form and finite differences of the Double
/// reference forward (`SinkhornReference.transport`). Tolerances as in `SinkhornGradientTests`:
/// 1e-3 of the gradient's scale, far above Float rounding and far below a missing term.
@Suite struct GridTransportTests {
    static func loss(cost: [Double], a: [Double], b: [Double], m: Int, n: Int, entropy: Double,
                     iterations: Int) -> Double {
        let p = SinkhornReference.transport(cost: cost, rows: m, columns: n, rowMarginal: a, columnMarginal: b,
                                            entropy: entropy, iterations: iterations)
        return zip(p, cost).reduce(0) { $0 + $1.0 * $1.1 }
    }

    static func histogram(_ rng: inout SeededGenerator, count: Int) -> [Float] {
        let raw = (0..<count).map { _ in 0.2 + rng.nextUniform() }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }

    /// A 3×2 grid: coordinates (0, 0.5, 1) × (0, 1), so bin 0 to bin 5 is 1² + 1² = 2.
    @Test func squaredDistanceCostByHand() throws {
        let cost = try GridTransport.squaredDistanceCost(width: 3, height: 2)
        #expect(cost.shape == [6, 6])
        let c = cost.storage
        #expect(c[0 * 6 + 0] == 0)
        #expect(c[0 * 6 + 1] == 0.25)
        #expect(c[0 * 6 + 2] == 1)
        #expect(c[0 * 6 + 3] == 1)
        #expect(c[0 * 6 + 5] == 2)
        #expect(c[4 * 6 + 2] == 1.25)
        for p in 0..<6 { for q in 0..<6 { #expect(c[p * 6 + q] == c[q * 6 + p]) } }
        #expect(throws: SinkhornError.invalidShape(shape: [2, 0])) {
            _ = try GridTransport.squaredDistanceCost(width: 0, height: 2)
        }
    }

    /// With a single source bin the only feasible plan is `P = bᵀ` for every `λ`, so
    /// `OT_λ = Σ_j C_0j b_j` and `∂OT/∂b_j = C_0j` up to the gauge.
    @Test(arguments: [TransportBackward.implicit, .unrolled])
    func singleSourceClosedForm(backward: TransportBackward) throws {
        var rng = SeededGenerator(seed: 1600)
        let cost = rng.uniform([1, 6]).reshapedForTest([1, 6])
        let b = Self.histogram(&rng, count: 6)
        let solution = try GridTransport.solve(cost: cost, source: [1], target: b, entropy: 0.1,
                                               iterations: 50, backward: backward)
        let want = zip(cost.storage, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        #expect(abs(solution.loss - want) < 1e-5, "seed 1600")
        let gradient = try GridTransport.gradient(of: solution, backward: backward)
        let g = gradient.columnMarginal.storage
        for j in 1..<6 {
            // Differences cancel the gauge shared by a and b.
            let got = g[j] - g[0], expected = cost.storage[j] - cost.storage[0]
            #expect(abs(got - expected) < 1e-4, "seed 1600 bin \(j): \(got) vs \(expected)")
        }
        for (index, value) in gradient.cost.storage.enumerated() {
            // ⟨C, P⟩ with P = bᵀ fixed: ∂/∂C = P.
            #expect(abs(value - b[index]) < 1e-4, "seed 1600 cost \(index)")
        }
    }

    /// The unrolled backward is the exact derivative of the τ-iteration map: every coordinate of
    /// `C`, `a` and `b` against central differences in Double.
    @Test func unrolledMatchesFiniteDifferences() throws {
        let (width, height, iterations, entropy) = (3, 2, 7, 0.2)
        let n = width * height
        var rng = SeededGenerator(seed: 1601)
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let a = Self.histogram(&rng, count: n), b = Self.histogram(&rng, count: n)
        let solution = try GridTransport.solve(cost: cost, source: a, target: b, entropy: Float(entropy),
                                               iterations: iterations, backward: .unrolled)
        let gradient = try GridTransport.gradient(of: solution, backward: .unrolled)
        let c = cost.doubles, ad = a.map(Double.init), bd = b.map(Double.init)
        #expect(abs(Double(solution.loss) - Self.loss(cost: c, a: ad, b: bd, m: n, n: n, entropy: entropy,
                                                       iterations: iterations)) < 1e-5)
        let fdCost = SinkhornReference.gradient(at: c, step: 1e-5) {
            Self.loss(cost: $0, a: ad, b: bd, m: n, n: n, entropy: entropy, iterations: iterations)
        }
        let fdA = SinkhornReference.gradient(at: ad, step: 1e-6) {
            Self.loss(cost: c, a: $0, b: bd, m: n, n: n, entropy: entropy, iterations: iterations)
        }
        let fdB = SinkhornReference.gradient(at: bd, step: 1e-6) {
            Self.loss(cost: c, a: ad, b: $0, m: n, n: n, entropy: entropy, iterations: iterations)
        }
        #expect(SinkhornGradientTests.worstRelative(gradient.cost.doubles, fdCost) < 1e-3, "seed 1601: cost")
        #expect(SinkhornGradientTests.worstRelative(gradient.rowMarginal.doubles, fdA) < 1e-3, "seed 1601: a")
        #expect(SinkhornGradientTests.worstRelative(gradient.columnMarginal.doubles, fdB) < 1e-3, "seed 1601: b")
    }

    /// At convergence the implicit backward is the derivative of the exact entropic problem:
    /// directional derivatives along mass-preserving directions of `(a, b)` and every coordinate
    /// of `C`, against central differences of a fully converged Double forward.
    @Test func implicitMatchesConvergedFiniteDifferences() throws {
        let (width, height, entropy) = (3, 2, 0.2)
        let n = width * height
        var rng = SeededGenerator(seed: 1602)
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let a = Self.histogram(&rng, count: n), b = Self.histogram(&rng, count: n)
        let solution = try GridTransport.solve(cost: cost, source: a, target: b, entropy: Float(entropy),
                                               iterations: 2000)
        let gradient = try GridTransport.gradient(of: solution, backward: .implicit)
        Self.expectConvergedDerivative(gradient, cost: cost, a: a, b: b, entropy: entropy, rng: &rng, label: "seed 1602")
    }

    /// Checks a transport gradient at `(cost, a, b)` against central differences of a fully
    /// converged Double forward: every coordinate of `C` (1e-3 of the gradient's scale) and four
    /// directional derivatives along mass-preserving directions of `(a, b)` drawn from `rng`.
    static func expectConvergedDerivative(_ gradient: TransportGradient, cost: Tensor, a: [Float], b: [Float],
                                          entropy: Double, rng: inout SeededGenerator, label: String) {
        let n = a.count
        let c = cost.doubles, ad = a.map(Double.init), bd = b.map(Double.init)
        let converged = 3000
        func loss(_ c: [Double], _ a: [Double], _ b: [Double]) -> Double {
            Self.loss(cost: c, a: a, b: b, m: n, n: n, entropy: entropy, iterations: converged)
        }
        let fdCost = SinkhornReference.gradient(at: c, step: 1e-5) { loss($0, ad, bd) }
        #expect(SinkhornGradientTests.worstRelative(gradient.cost.doubles, fdCost) < 1e-3, "\(label): cost")
        for trial in 0..<4 {
            let da = (0..<n).map { _ in Double(rng.nextNormal()) }
            var db = (0..<n).map { _ in Double(rng.nextNormal()) }
            let shift = (da.reduce(0, +) - db.reduce(0, +)) / Double(n)
            db = db.map { $0 + shift }
            let h = 1e-6
            let up = loss(c, zip(ad, da).map { $0 + h * $1 }, zip(bd, db).map { $0 + h * $1 })
            let down = loss(c, zip(ad, da).map { $0 - h * $1 }, zip(bd, db).map { $0 - h * $1 })
            let fd = (up - down) / (2 * h)
            let analytic = zip(gradient.rowMarginal.doubles, da).reduce(0) { $0 + $1.0 * $1.1 }
                + zip(gradient.columnMarginal.doubles, db).reduce(0) { $0 + $1.0 * $1.1 }
            #expect(abs(analytic - fd) < 1e-3 * max(abs(fd), 1), "\(label) trial \(trial): \(analytic) vs \(fd)")
        }
    }

    @Test func unrolledNeedsHistory() throws {
        let cost = try GridTransport.squaredDistanceCost(width: 2, height: 1)
        let solution = try GridTransport.solve(cost: cost, source: [0.5, 0.5], target: [0.3, 0.7], entropy: 0.1,
                                               iterations: 5, backward: .implicit)
        #expect(throws: SinkhornError.missingHistory) {
            _ = try GridTransport.gradient(of: solution, backward: .unrolled)
        }
        #expect(throws: SinkhornError.invalidShape(shape: [1, 2, 1])) {
            _ = try GridTransport.solve(cost: Tensor(shape: [1, 2, 1]), source: [1, 1], target: [2], entropy: 0.1,
                                        iterations: 5)
        }
    }
}

extension Tensor {
    func reshapedForTest(_ shape: [Int]) -> Tensor { Tensor(shape: shape, storage: storage) }
}
