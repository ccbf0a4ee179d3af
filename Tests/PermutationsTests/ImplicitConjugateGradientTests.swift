import Foundation
import Permutations
import Testing
import TensorKit

/// The matrix-free implicit transport backward (`ImplicitSolver.conjugateGradient`) against two
/// independent methods: the dense Cholesky solve of the same system, and central differences of
/// the Double reference forward (`SinkhornReference.transport`).
@Suite struct ImplicitConjugateGradientTests {
    /// A grid problem: the squared-distance cost of a `side × side` grid, two random positive
    /// histograms, and the forward after `iterations`.
    static func gridProblem(side: Int, entropy: Float, iterations: Int, seed: UInt64) throws -> GridTransportResult {
        var rng = SeededGenerator(seed: seed)
        let n = side * side
        let cost = try GridTransport.squaredDistanceCost(width: side, height: side)
        let a = GridTransportTests.histogram(&rng, count: n), b = GridTransportTests.histogram(&rng, count: n)
        return try GridTransport.solve(cost: cost, source: a, target: b, entropy: entropy, iterations: iterations)
    }

    /// Every part of the gradient against the dense solve of the same forward, for several `λ` on a
    /// 6×6 and a 16×16 grid (`λ = 0.005` makes the 16×16 plan spread over about one bin, the
    /// hardest system here). Both solves fix `β_n = 0`, so `α` and `β` are compared directly. The
    /// solver's tolerance is 1e-8; the bound 1e-5 of the gradient's largest entry leaves room for
    /// the float products of `P` (the gradients are stored in float, 6e-8 relative) and is far
    /// below any missing term.
    @Test(arguments: [(6, Float(0.02)), (6, 0.1), (6, 0.5), (16, 0.005), (16, 0.02), (16, 0.1)])
    func agreesWithDenseSolve(side: Int, entropy: Float) throws {
        for seed: UInt64 in [2000, 2001, 2002] {
            let solution = try Self.gridProblem(side: side, entropy: entropy, iterations: 200, seed: seed)
            let dense = try GridTransport.gradient(of: solution, backward: .implicit)
            let answer = try GridTransport.gradient(of: solution,
                                                    solver: .conjugateGradient(tolerance: 1e-8, maximumIterations: 2000))
            let context = "seed \(seed), side \(side), λ \(entropy), \(answer.iterations) iterations"
            #expect(answer.gradient.cost.shape == dense.cost.shape, "\(context)")
            #expect(answer.gradient.rowMarginal.shape == dense.rowMarginal.shape, "\(context)")
            #expect(answer.gradient.columnMarginal.shape == dense.columnMarginal.shape, "\(context)")
            #expect(answer.iterations.count == 1 && answer.relativeResiduals.count == 1, "\(context)")
            #expect(answer.relativeResiduals[0] <= 1e-8, "\(context)")
            let worst = SinkhornGradientTests.worstRelative
            #expect(worst(answer.gradient.cost.doubles, dense.cost.doubles) < 1e-5, "\(context): cost")
            #expect(worst(answer.gradient.rowMarginal.doubles, dense.rowMarginal.doubles) < 1e-5, "\(context): a")
            #expect(worst(answer.gradient.columnMarginal.doubles, dense.columnMarginal.doubles) < 1e-5,
                    "\(context): b")
        }
    }

    /// A batch of three rectangular problems (`m = 20`, `n = 12`, random costs and upstream
    /// gradients; small enough to run one matrix per thread) against the dense solve, and the
    /// iterations and residuals reported per matrix.
    @Test func batchOfRectangularProblemsAgreesWithDenseSolve() throws {
        let (batch, m, n) = (3, 20, 12)
        var rng = SeededGenerator(seed: 2010)
        let cost = rng.uniform([batch, m, n]), upstream = rng.normal([batch, m, n])
        let a = GridTransportTests.histogram(&rng, count: m), b = GridTransportTests.histogram(&rng, count: n)
        let forward = try Sinkhorn.transport(cost: cost, rowMarginal: a, columnMarginal: b, entropy: 0.1,
                                             iterations: 100)
        let dense = try Sinkhorn.implicitTransportGradient(forward, upstream: upstream)
        let answer = try Sinkhorn.implicitTransportGradient(forward, upstream: upstream,
                                                            solver: .conjugateGradient(tolerance: 1e-8))
        #expect(answer.iterations.count == batch && answer.relativeResiduals.count == batch)
        for item in 0..<batch {
            #expect(answer.iterations[item] >= 1 && answer.iterations[item] <= 1000, "seed 2010 item \(item)")
            #expect(answer.relativeResiduals[item] <= 1e-8, "seed 2010 item \(item)")
        }
        let worst = SinkhornGradientTests.worstRelative
        #expect(answer.gradient.cost.shape == [batch, m, n])
        #expect(worst(answer.gradient.cost.doubles, dense.cost.doubles) < 1e-5, "seed 2010: cost")
        #expect(worst(answer.gradient.rowMarginal.doubles, dense.rowMarginal.doubles) < 1e-5, "seed 2010: a")
        #expect(worst(answer.gradient.columnMarginal.doubles, dense.columnMarginal.doubles) < 1e-5, "seed 2010: b")
    }

    /// At convergence the implicit backward is the derivative of the exact entropic problem: every
    /// coordinate of `C`, and directional derivatives along mass-preserving directions of `(a, b)`
    /// (where the `(+t, −t)` gauge cancels), against central differences of a fully converged
    /// Double forward. 1e-3 of the gradient's scale, as in `GridTransportTests`: far above the
    /// differences' truncation error and Float rounding, far below a missing term.
    @Test func matchesConvergedFiniteDifferences() throws {
        let (width, height, entropy) = (3, 2, 0.2)
        let n = width * height
        var rng = SeededGenerator(seed: 2020)
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let a = GridTransportTests.histogram(&rng, count: n), b = GridTransportTests.histogram(&rng, count: n)
        let solution = try GridTransport.solve(cost: cost, source: a, target: b, entropy: Float(entropy),
                                               iterations: 2000)
        let gradient = try GridTransport.gradient(of: solution, solver: .conjugateGradient()).gradient
        GridTransportTests.expectConvergedDerivative(gradient, cost: cost, a: a, b: b, entropy: entropy, rng: &rng,
                                                     label: "seed 2020")
    }

    /// `.dense` through the solver API is the existing implicit backward, bit for bit.
    @Test func denseSolverIsTheImplicitBackward() throws {
        let solution = try Self.gridProblem(side: 4, entropy: 0.05, iterations: 50, seed: 2030)
        let expected = try GridTransport.gradient(of: solution, backward: .implicit)
        let answer = try GridTransport.gradient(of: solution, solver: .dense)
        #expect(answer.gradient.cost.storage == expected.cost.storage)
        #expect(answer.gradient.rowMarginal.storage == expected.rowMarginal.storage)
        #expect(answer.gradient.columnMarginal.storage == expected.columnMarginal.storage)
        #expect(answer.iterations.isEmpty && answer.relativeResiduals.isEmpty)
    }

    /// An iteration cap too small for the tolerance is an error naming the matrix, the iterations
    /// run and the residual reached, not a gradient.
    @Test(arguments: [1, 3])
    func reportsNonConvergence(cap: Int) throws {
        let solution = try Self.gridProblem(side: 6, entropy: 0.05, iterations: 100, seed: 2040)
        let error = #expect(throws: ImplicitSolveError.self) {
            _ = try GridTransport.gradient(of: solution, solver: .conjugateGradient(tolerance: 1e-10,
                                                                                    maximumIterations: cap))
        }
        guard case let .notConverged(item, iterations, residual) = error else {
            Issue.record("seed 2040: expected notConverged, got \(String(describing: error))")
            return
        }
        #expect(item == 0 && iterations == cap, "seed 2040")
        #expect(residual > 1e-10 && residual.isFinite, "seed 2040: residual \(residual)")
        // The same problem with room to converge.
        let answer = try GridTransport.gradient(of: solution, solver: .conjugateGradient(tolerance: 1e-10))
        #expect(answer.iterations[0] > cap && answer.relativeResiduals[0] <= 1e-10, "seed 2040")
    }

    /// Bad settings and inputs, each with the exact error.
    @Test func malformedInputs() throws {
        let solution = try Self.gridProblem(side: 3, entropy: 0.1, iterations: 20, seed: 2050)
        let settings: [(tolerance: Double, cap: Int)] = [(0, 10), (-1e-6, 10), (.infinity, 10), (1e-6, 0), (1e-6, -5)]
        for (tolerance, cap) in settings {
            #expect(throws: ImplicitSolveError.invalidSolverSettings(tolerance: tolerance, maximumIterations: cap)) {
                _ = try GridTransport.gradient(of: solution, solver: .conjugateGradient(tolerance: tolerance,
                                                                                        maximumIterations: cap))
            }
        }
        let nan = #expect(throws: ImplicitSolveError.self) {
            _ = try GridTransport.gradient(of: solution, solver: .conjugateGradient(tolerance: .nan))
        }
        if case let .invalidSolverSettings(tolerance, cap) = nan {
            #expect(tolerance.isNaN && cap == 1000)
        } else {
            Issue.record("NaN tolerance: got \(String(describing: nan))")
        }
        let result = solution.result
        #expect(throws: ImplicitSolveError.sinkhorn(.shapeMismatch(expected: [9, 9], found: [3, 3]))) {
            _ = try Sinkhorn.implicitTransportGradient(result, upstream: Tensor(shape: [3, 3]),
                                                       solver: .conjugateGradient())
        }
        var upstream = solution.cost
        upstream.storage[4] = .nan
        #expect(throws: ImplicitSolveError.sinkhorn(.nonFiniteInput(index: 4))) {
            _ = try Sinkhorn.implicitTransportGradient(result, upstream: upstream, solver: .conjugateGradient())
        }
        var rng = SeededGenerator(seed: 2051)
        let scores = rng.normal([3, 3])
        let square = try Sinkhorn.forward(scores)
        for solver in [ImplicitSolver.dense, .conjugateGradient()] {
            #expect(throws: ImplicitSolveError.sinkhorn(.wrongProblemKind)) {
                _ = try Sinkhorn.implicitTransportGradient(square, upstream: scores, solver: solver)
            }
        }
    }
}
