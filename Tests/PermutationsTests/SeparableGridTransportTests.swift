import Foundation
import Permutations
import Testing
import TensorKit

/// `SeparableGridTransport` against the dense implementation of the same problem (`GridTransport`
/// with the `n × n` cost), the Double reference forward (`SinkhornReference.transport`) and central
/// differences of it.
@Suite struct SeparableGridTransportTests {
    static func problem(width: Int, height: Int, seed: UInt64) -> (a: [Float], b: [Float]) {
        var rng = SeededGenerator(seed: seed)
        let n = width * height
        return (GridTransportTests.histogram(&rng, count: n), GridTransportTests.histogram(&rng, count: n))
    }

    static func worst(_ got: [Float], _ want: [Float]) -> Double {
        SinkhornGradientTests.worstRelative(got.map(Double.init), want.map(Double.init))
    }

    /// The plan, loss and marginal error equal the dense forward's on rectangular grids, a single
    /// row and a single bin, for `λ` from a plan spread over the whole grid to one over about a bin.
    @Test(arguments: [(5, 4, Float(0.5), 3), (5, 4, 0.05, 20), (7, 3, 0.01, 50), (1, 6, 0.1, 7),
                      (6, 1, 0.02, 1), (1, 1, 0.1, 2), (12, 12, 0.002, 100), (9, 10, 0.1, 0)])
    func forwardMatchesDense(width: Int, height: Int, entropy: Float, iterations: Int) throws {
        let (a, b) = Self.problem(width: width, height: height, seed: UInt64(17 + width * height))
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let dense = try GridTransport.solve(cost: cost, source: a, target: b, entropy: entropy, iterations: iterations)
        let grid = try SeparableGridTransport(width: width, height: height, entropy: entropy)
        let solution = try grid.solve(source: a, target: b, iterations: iterations)
        let context = "\(width)×\(height), λ \(entropy), τ \(iterations)"
        #expect(solution.iterations == iterations)
        #expect(Self.worst(grid.plan(of: solution).storage, dense.plan.storage) < 1e-4, "\(context)")
        #expect(abs(Double(solution.loss - dense.loss)) <= 1e-4 * max(Double(abs(dense.loss)), 1e-6), "\(context)")
        #expect(abs(solution.marginalError - dense.result.marginalError[0]) <= 1e-5 + 1e-4 * dense.result.marginalError[0],
                "\(context)")
        // The Double reference forward.
        let reference = GridTransportTests.loss(cost: cost.doubles, a: a.map(Double.init), b: b.map(Double.init),
                                                m: a.count, n: b.count, entropy: Double(entropy), iterations: iterations)
        #expect(abs(Double(solution.loss) - reference) <= 1e-4 * max(abs(reference), 1e-6), "\(context)")
    }

    /// Plan products with vectors of both signs against the formed plan.
    @Test func planProductsMatchTheFormedPlan() throws {
        let (width, height) = (6, 5)
        let (a, b) = Self.problem(width: width, height: height, seed: 91)
        let grid = try SeparableGridTransport(width: width, height: height, entropy: 0.03)
        let solution = try grid.solve(source: a, target: b, iterations: 30)
        let plan = grid.plan(of: solution).storage.map(Double.init)
        let n = width * height
        var rng = SeededGenerator(seed: 5)
        let x = (0..<n).map { _ in rng.nextUniform() - 0.5 }
        var direct = [Double](repeating: 0, count: n), transposed = [Double](repeating: 0, count: n)
        for p in 0..<n {
            for q in 0..<n {
                direct[p] += plan[p * n + q] * Double(x[q])
                transposed[q] += plan[p * n + q] * Double(x[p])
            }
        }
        let got = try grid.applyPlan(of: solution, to: x).map(Double.init)
        let gotTransposed = try grid.applyPlan(of: solution, to: x, transposed: true).map(Double.init)
        #expect(SinkhornGradientTests.worstRelative(got, direct) < 1e-5)
        #expect(SinkhornGradientTests.worstRelative(gotTransposed, transposed) < 1e-5)
        // The rows of the plan sum to a.
        let rows = try grid.applyPlan(of: solution, to: [Float](repeating: 1, count: n))
        #expect(Self.worst(rows, a) < 1e-5)
    }

    /// The unrolled backward equals the dense unrolled backward (both differentiate exactly the
    /// iterations run, so no gauge is involved) and central differences of the Double reference.
    @Test(arguments: [(4, 3, Float(0.2), 1), (4, 3, 0.05, 6), (5, 5, 0.02, 25), (8, 2, 0.1, 12)])
    func unrolledMatchesDenseAndFiniteDifferences(width: Int, height: Int, entropy: Float, iterations: Int) throws {
        let (a, b) = Self.problem(width: width, height: height, seed: UInt64(300 + iterations))
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let dense = try GridTransport.gradient(
            of: try GridTransport.solve(cost: cost, source: a, target: b, entropy: entropy, iterations: iterations,
                                        backward: .unrolled), backward: .unrolled)
        let grid = try SeparableGridTransport(width: width, height: height, entropy: entropy)
        let solution = try grid.solve(source: a, target: b, iterations: iterations, recordsHistory: true)
        let answer = try grid.gradient(of: solution, backward: .unrolled)
        let context = "\(width)×\(height), λ \(entropy), τ \(iterations)"
        #expect(Self.worst(answer.source, dense.rowMarginal.storage) < 1e-4, "\(context): a")
        #expect(Self.worst(answer.target, dense.columnMarginal.storage) < 1e-4, "\(context): b")
        // Central differences, one coordinate at a time (the unrolled map is defined off the simplex).
        let n = width * height, step = 1e-6
        let costD = cost.doubles, aD = a.map(Double.init), bD = b.map(Double.init)
        func loss(_ a: [Double], _ b: [Double]) -> Double {
            GridTransportTests.loss(cost: costD, a: a, b: b, m: n, n: n, entropy: Double(entropy), iterations: iterations)
        }
        var numericA = [Double](repeating: 0, count: n), numericB = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var up = aD, down = aD
            up[i] += step; down[i] -= step
            numericA[i] = (loss(up, bD) - loss(down, bD)) / (2 * step)
            var upB = bD, downB = bD
            upB[i] += step; downB[i] -= step
            numericB[i] = (loss(aD, upB) - loss(aD, downB)) / (2 * step)
        }
        #expect(SinkhornGradientTests.worstRelative(answer.source.map(Double.init), numericA) < 1e-3, "\(context): a, FD")
        #expect(SinkhornGradientTests.worstRelative(answer.target.map(Double.init), numericB) < 1e-3, "\(context): b, FD")
    }

    /// The implicit backward by conjugate gradients and by the dense solve equals the dense
    /// implementation's implicit backward (both with `β_n = 0`), here on grids up to 16×16.
    @Test(arguments: [(5, 4, Float(0.1)), (6, 6, 0.02), (16, 16, 0.005), (16, 12, 0.05)])
    func implicitMatchesDense(width: Int, height: Int, entropy: Float) throws {
        let (a, b) = Self.problem(width: width, height: height, seed: UInt64(500 + width))
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let denseSolution = try GridTransport.solve(cost: cost, source: a, target: b, entropy: entropy, iterations: 200)
        let dense = try GridTransport.gradient(of: denseSolution, backward: .implicit)
        let grid = try SeparableGridTransport(width: width, height: height, entropy: entropy)
        let solution = try grid.solve(source: a, target: b, iterations: 200)
        let context = "\(width)×\(height), λ \(entropy)"
        let cg = try grid.gradient(of: solution, backward: .implicit,
                                   solver: .conjugateGradient(tolerance: 1e-8, maximumIterations: 3000))
        #expect(cg.solverIterations > 0 && cg.relativeResidual <= 1e-8, "\(context)")
        #expect(Self.worst(cg.source, dense.rowMarginal.storage) < 1e-4, "\(context): a, cg")
        #expect(Self.worst(cg.target, dense.columnMarginal.storage) < 1e-4, "\(context): b, cg")
        let direct = try grid.gradient(of: solution, backward: .implicit, solver: .dense)
        #expect(Self.worst(direct.source, dense.rowMarginal.storage) < 1e-4, "\(context): a, dense")
        #expect(Self.worst(direct.target, dense.columnMarginal.storage) < 1e-4, "\(context): b, dense")
    }

    /// At the barycenter's `λ = 0.002` on a 32×32 grid (`exp(−C/λ)` spans e⁰ … e⁻¹⁰⁰⁰) the forward
    /// stays finite and equals the dense one, and the implicit gradient converges and agrees.
    @Test func smallEntropyOnALargerGrid() throws {
        let side = 32
        var rng = SeededGenerator(seed: 8)
        let n = side * side
        let a = try WassersteinBarycenter.histogram(of: (0..<n).map { _ in rng.nextUniform() > 0.7 ? 1 : 0 }, floor: 1e-5)
        let b = try WassersteinBarycenter.histogram(of: (0..<n).map { _ in rng.nextUniform() > 0.4 ? 1 : 0 }, floor: 1e-5)
        let cost = try GridTransport.squaredDistanceCost(width: side, height: side)
        let dense = try GridTransport.solve(cost: cost, source: a, target: b, entropy: 0.002, iterations: 50)
        let grid = try SeparableGridTransport(width: side, height: side, entropy: 0.002)
        let solution = try grid.solve(source: a, target: b, iterations: 50)
        #expect(solution.f.allSatisfy(\.isFinite) && solution.g.allSatisfy(\.isFinite))
        #expect(abs(Double(solution.loss - dense.loss)) <= 1e-4 * Double(dense.loss))
        #expect(Self.worst(grid.plan(of: solution).storage, dense.plan.storage) < 1e-4)
        let denseGradient = try GridTransport.gradient(of: dense, backward: .implicit,
                                                       solver: .conjugateGradient(tolerance: 1e-7, maximumIterations: 3000))
        let answer = try grid.gradient(of: solution, backward: .implicit,
                                       solver: .conjugateGradient(tolerance: 1e-7, maximumIterations: 3000))
        #expect(Self.worst(answer.source, denseGradient.rowMarginal.storage) < 1e-4)
    }

    /// Marginals that put nearly all mass in opposite corners (the rest at 10⁻¹⁰ of it) make the
    /// potentials span hundreds, so the fast form's sums underflow for many bins and are recomputed
    /// exactly: the plan, the loss and both backwards still equal the dense implementation's.
    @Test func extremeMarginalsTakeTheExactPath() throws {
        let (width, height, entropy) = (10, 8, Float(0.005))
        let n = width * height
        func corner(_ index: Int) -> [Float] {
            var values = [Float](repeating: 1e-10, count: n)
            values[index] = 1
            let total = values.reduce(0, +)
            return values.map { $0 / total }
        }
        let a = corner(0), b = corner(n - 1)
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let grid = try SeparableGridTransport(width: width, height: height, entropy: entropy)
        for backward in TransportBackward.allCases {
            let dense = try GridTransport.solve(cost: cost, source: a, target: b, entropy: entropy, iterations: 60,
                                                backward: backward)
            let solution = try grid.solve(source: a, target: b, iterations: 60, recordsHistory: backward == .unrolled)
            #expect(solution.f.allSatisfy(\.isFinite) && solution.g.allSatisfy(\.isFinite))
            #expect((solution.f.max()! - solution.f.min()!) > 100, "the potentials do not span the range tested")
            #expect(Self.worst(grid.plan(of: solution).storage, dense.plan.storage) < 1e-4)
            #expect(abs(Double(solution.loss - dense.loss)) <= 1e-4 * Double(dense.loss))
            let denseGradient = try GridTransport.gradient(of: dense, backward: backward,
                                                           solver: .conjugateGradient(tolerance: 1e-7, maximumIterations: 5000))
            let answer = try grid.gradient(of: solution, backward: backward,
                                           solver: .conjugateGradient(tolerance: 1e-7, maximumIterations: 5000))
            // ∂ℓ/∂a_i of a bin holding 10⁻¹⁰ of the mass is a float sum divided by a_i, so only
            // its rounding is compared there (see `gradient(of:backward:solver:)`); the heavy bin
            // carries the step.
            let heavy = [0]
            let scale = denseGradient.rowMarginal.storage.map(abs).max()!
            for i in heavy {
                #expect(abs(answer.source[i] - denseGradient.rowMarginal.storage[i]) <= 1e-3 * scale, "\(backward) a[\(i)]: \(answer.source[i]) vs \(denseGradient.rowMarginal.storage[i]), scale \(scale)")
            }
        }
    }

    @Test func refusesBadInput() throws {
        #expect(throws: SinkhornError.invalidShape(shape: [3, 0])) { try SeparableGridTransport(width: 0, height: 3, entropy: 0.1) }
        #expect(throws: SinkhornError.invalidTemperature(0)) { try SeparableGridTransport(width: 2, height: 2, entropy: 0) }
        let grid = try SeparableGridTransport(width: 2, height: 2, entropy: 0.1)
        let uniform: [Float] = [0.25, 0.25, 0.25, 0.25]
        #expect(throws: SinkhornError.marginalLength(expected: 4, found: 3)) {
            try grid.solve(source: [0.5, 0.25, 0.25], target: uniform, iterations: 3)
        }
        #expect(throws: SinkhornError.nonPositiveMarginal(index: 5, value: 0)) {
            try grid.solve(source: uniform, target: [0.5, 0, 0.25, 0.25], iterations: 3)
        }
        #expect(throws: SinkhornError.invalidIterations(-1)) { try grid.solve(source: uniform, target: uniform, iterations: -1) }
        let solution = try grid.solve(source: uniform, target: [0.4, 0.2, 0.2, 0.2], iterations: 3)
        #expect(throws: SinkhornError.missingHistory) { try grid.gradient(of: solution, backward: .unrolled) }
        let other = try SeparableGridTransport(width: 4, height: 1, entropy: 0.1)
        #expect(throws: SinkhornError.shapeMismatch(expected: [1, 4], found: [2, 2])) {
            try other.gradient(of: solution, backward: .implicit)
        }
        let error = #expect(throws: SinkhornError.self) {
            _ = try grid.gradient(of: solution, backward: .implicit,
                                  solver: .conjugateGradient(tolerance: 1e-12, maximumIterations: 1))
        }
        guard case .notConverged(iterations: 1, let residual) = error else {
            Issue.record("expected notConverged after 1 iteration, got \(String(describing: error))")
            return
        }
        #expect(residual > 1e-12)
    }
}
