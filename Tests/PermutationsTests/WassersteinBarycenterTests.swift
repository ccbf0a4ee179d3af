import Foundation
import Permutations
import Testing
import TensorKit

/// `WassersteinBarycenter` against a closed form (1-D barycenters are quantile averages), a fixed
/// point (the barycenter of copies of one image), and central differences of its own energy.
@Suite struct WassersteinBarycenterTests {
    /// A Gaussian bump on `count` bins at normalised coordinates `i / (count − 1)`.
    static func bump(count: Int, centre: Double, width: Double) -> [Float] {
        (0..<count).map { i in
            let x = Double(i) / Double(count - 1)
            return Float(exp(-0.5 * pow((x - centre) / width, 2)))
        }
    }

    /// The quantile function of a histogram on bins `i / (count − 1)`, with the mass of bin `i`
    /// spread uniformly over `[x_i − h/2, x_i + h/2]`, at level `u`.
    static func quantile(_ histogram: [Float], _ u: Double) -> Double {
        let count = histogram.count
        let h = 1 / Double(count - 1)
        var below: Double = 0
        for (i, mass) in histogram.enumerated() {
            let m = Double(mass)
            if below + m >= u || i == count - 1 {
                let fraction = m > 0 ? Swift.min(Swift.max((u - below) / m, 0), 1) : 0
                return Double(i) * h - h / 2 + fraction * h
            }
            below += m
        }
        return 1
    }

    /// `W1(p, q) = ∫₀¹ |Q_p(u) − Q_q(u)| du` by the midpoint rule on 4,000 levels.
    static func wasserstein1(_ p: (Double) -> Double, _ q: (Double) -> Double) -> Double {
        let levels = 4000
        var total: Double = 0
        for k in 0..<levels {
            let u = (Double(k) + 0.5) / Double(levels)
            total += abs(p(u) - q(u))
        }
        return total / Double(levels)
    }

    /// Two bumps on a line with weights 0.3 / 0.7: the W2 barycenter's quantile function is
    /// `0.3 Q₁ + 0.7 Q₂` (McCann's interpolation in 1-D). Both backwards must land within a tenth of
    /// a bin of it (measured: 1/70), while the mixture `0.3 a₁ + 0.7 a₂` is many bins away.
    @Test(arguments: [TransportBackward.implicit, .unrolled])
    func oneDimensionalBarycenterIsTheQuantileAverage(backward: TransportBackward) throws {
        let count = 40
        let a1 = try WassersteinBarycenter.histogram(of: Self.bump(count: count, centre: 0.25, width: 0.05))
        let a2 = try WassersteinBarycenter.histogram(of: Self.bump(count: count, centre: 0.7, width: 0.08))
        let weights: [Float] = [0.3, 0.7]
        let cost = try GridTransport.squaredDistanceCost(width: count, height: 1)
        let result = try WassersteinBarycenter.compute(inputs: [a1, a2], weights: weights, cost: cost,
                                                       entropy: 5e-4, iterations: 400, backward: backward,
                                                       steps: 150, stepSize: 20)
        let reference: (Double) -> Double = { 0.3 * Self.quantile(a1, $0) + 0.7 * Self.quantile(a2, $0) }
        let got = Self.wasserstein1({ Self.quantile(result.histogram, $0) }, reference)
        let mixture = zip(a1, a2).map { 0.3 * $0 + 0.7 * $1 }
        let wrong = Self.wasserstein1({ Self.quantile(mixture, $0) }, reference)
        let bin = 1 / Double(count - 1)
        #expect(got < 0.1 * bin, "\(backward): W1 to the quantile average \(got), a bin is \(bin)")
        #expect(wrong > 5 * bin, "the mixture is \(wrong) away")
        #expect(abs(Double(result.histogram.reduce(0, +)) - 1) < 1e-5)
        #expect(result.energies.last! < result.energies.first!)
    }

    /// The barycenter of copies of one image is that image: starting from the uniform histogram,
    /// mirror descent ends within a small L1 distance of the image (the entropic plan's blur
    /// leaves a little), and much closer than it started.
    @Test func barycenterOfCopiesIsTheImage() throws {
        let side = 8
        var pixels = [Float](repeating: 0, count: side * side)
        for row in 2..<6 { for column in 1..<4 { pixels[row * side + column] = 1 } }
        pixels[6 * side + 6] = 2
        let image = try WassersteinBarycenter.histogram(of: pixels, floor: 1e-4)
        let cost = try GridTransport.squaredDistanceCost(width: side, height: side)
        let uniform = [Float](repeating: 1 / Float(side * side), count: side * side)
        let result = try WassersteinBarycenter.compute(inputs: [image, image, image],
                                                       weights: [0.2, 0.5, 0.3], cost: cost, entropy: 1e-3,
                                                       iterations: 300, backward: .implicit, steps: 150,
                                                       stepSize: 20)
        let l1 = zip(result.histogram, image).reduce(Float(0)) { $0 + abs($1.0 - $1.1) }
        let start = zip(uniform, image).reduce(Float(0)) { $0 + abs($1.0 - $1.1) }
        #expect(l1 < 0.05, "L1 to the image \(l1), from \(start) at the start")
        #expect(start > 1)
    }

    /// The gradient on the simplex against central differences of `E` along `e_i − e_j` (a
    /// direction that keeps the mass), with a converged forward so that both backwards apply.
    @Test(arguments: [TransportBackward.implicit, .unrolled])
    func gradientMatchesCentralDifferences(backward: TransportBackward) throws {
        var rng = SeededGenerator(seed: 1616)
        let (width, height) = (3, 3)
        let n = width * height
        func random() -> [Float] {
            let raw = (0..<n).map { _ in 0.3 + rng.nextUniform() }
            let total = raw.reduce(0, +)
            return raw.map { $0 / total }
        }
        let inputs = [random(), random(), random()]
        let weights: [Float] = [0.5, 0.25, 0.25]
        let b = random()
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let (entropy, iterations): (Float, Int) = (0.2, 300)
        let value = try WassersteinBarycenter.energy(of: b, inputs: inputs, weights: weights, cost: cost,
                                                     entropy: entropy, iterations: iterations, backward: backward)
        let step: Float = 1e-3
        for (i, j) in [(0, 4), (2, 7), (8, 1), (5, 3)] {
            var plus = b, minus = b
            plus[i] += step; plus[j] -= step
            minus[i] -= step; minus[j] += step
            let ePlus = try WassersteinBarycenter.energy(of: plus, inputs: inputs, weights: weights, cost: cost,
                                                         entropy: entropy, iterations: iterations, backward: backward)
            let eMinus = try WassersteinBarycenter.energy(of: minus, inputs: inputs, weights: weights, cost: cost,
                                                          entropy: entropy, iterations: iterations, backward: backward)
            let numeric = (ePlus.energy - eMinus.energy) / (2 * step)
            let analytic = value.gradient[i] - value.gradient[j]
            #expect(abs(numeric - analytic) < 2e-3 * Swift.max(1, abs(analytic)),
                    "seed 1616 \(backward) e\(i) − e\(j): \(analytic) vs \(numeric)")
        }
        // On the simplex the gradient has mean 0 under b.
        let mean = zip(b, value.gradient).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        #expect(abs(mean) < 1e-5)
        #expect(value.backwardBytes > 0)
    }

    /// The barycenter with the matrix-free implicit backward against the dense one: the same
    /// energy gradient, and the same descent.
    @Test func conjugateGradientSolverMatchesTheDenseOne() throws {
        let side = 8
        let cost = try GridTransport.squaredDistanceCost(width: side, height: side)
        var generator = SeededGenerator(seed: 21)
        let inputs = (0..<3).map { _ -> [Float] in
            let raw = (0..<(side * side)).map { _ in 0.05 + generator.nextUniform() }
            let total = raw.reduce(0, +)
            return raw.map { $0 / total }
        }
        let point = inputs[0].enumerated().map { 0.5 * $1 + 0.5 * inputs[1][$0] }
        let weights: [Float] = [0.2, 0.3, 0.5]
        let dense = try WassersteinBarycenter.energy(of: point, inputs: inputs, weights: weights, cost: cost, entropy: 0.02,
                                                     iterations: 50, backward: .implicit)
        let iterative = try WassersteinBarycenter.energy(of: point, inputs: inputs, weights: weights, cost: cost, entropy: 0.02,
                                                         iterations: 50, backward: .implicit, solver: .conjugateGradient())
        #expect(dense.energy == iterative.energy)
        let scale = dense.gradient.map(abs).max() ?? 1
        for (a, b) in zip(dense.gradient, iterative.gradient) { #expect(abs(a - b) <= 1e-4 * scale) }
        let steps = { (solver: ImplicitSolver) in
            try WassersteinBarycenter.compute(inputs: inputs, weights: weights, cost: cost, entropy: 0.02, iterations: 50,
                                              backward: .implicit, solver: solver, steps: 5, stepSize: 5).histogram
        }
        for (a, b) in zip(try steps(.dense), try steps(.conjugateGradient())) { #expect(abs(a - b) <= 1e-5) }
        // A solver that cannot converge in one iteration says so.
        #expect(throws: SinkhornError.self) {
            try WassersteinBarycenter.energy(of: point, inputs: inputs, weights: weights, cost: cost, entropy: 0.02,
                                             iterations: 50, backward: .implicit,
                                             solver: .conjugateGradient(tolerance: 1e-12, maximumIterations: 1))
        }
    }

    /// The barycenter with the separable kernel against the dense cost on a rectangular grid:
    /// the same energy and gradient for both backwards, the same descent, and the same result with
    /// one worker as with several (the problems run concurrently).
    @Test(arguments: [TransportBackward.implicit, .unrolled])
    func separableKernelMatchesTheDenseCost(backward: TransportBackward) throws {
        let (width, height) = (7, 5)
        let n = width * height
        let cost = try GridTransport.squaredDistanceCost(width: width, height: height)
        let grid = try SeparableGridTransport(width: width, height: height, entropy: 0.01)
        var generator = SeededGenerator(seed: 23)
        let inputs = (0..<4).map { _ -> [Float] in
            let raw = (0..<n).map { _ in 0.05 + generator.nextUniform() }
            let total = raw.reduce(0, +)
            return raw.map { $0 / total }
        }
        let point = inputs[0].enumerated().map { 0.5 * $1 + 0.5 * inputs[3][$0] }
        let weights = WassersteinBarycenter.bilinearWeights(s: 0.3, t: 0.6)
        let dense = try WassersteinBarycenter.energy(of: point, inputs: inputs, weights: weights, cost: cost, entropy: 0.01,
                                                     iterations: 40, backward: backward, solver: .conjugateGradient())
        let separable = try WassersteinBarycenter.energy(of: point, inputs: inputs, weights: weights, grid: grid,
                                                         iterations: 40, backward: backward)
        #expect(abs(dense.energy - separable.energy) <= 1e-5 * dense.energy)
        let scale = dense.gradient.map(abs).max() ?? 1
        for (a, b) in zip(dense.gradient, separable.gradient) { #expect(abs(a - b) <= 1e-4 * scale) }
        #expect(separable.backwardBytes > 0)
        let denseSteps = try WassersteinBarycenter.compute(
            inputs: inputs, weights: weights, cost: cost, entropy: 0.01, iterations: 40, backward: backward,
            solver: .conjugateGradient(), steps: 6, stepSize: 5, backtracking: false).histogram
        let separableSteps = try WassersteinBarycenter.compute(
            inputs: inputs, weights: weights, grid: grid, iterations: 40, backward: backward, steps: 6, stepSize: 5,
            backtracking: false).histogram
        for (a, b) in zip(denseSteps, separableSteps) { #expect(abs(a - b) <= 1e-5) }
        // A single input (weight 1 on one corner) is the sequential path; it equals the problem alone.
        let alone = try grid.solve(source: point, target: inputs[2], iterations: 40)
        let corner = try WassersteinBarycenter.energy(of: point, inputs: inputs, weights: [0, 0, 1, 0], grid: grid,
                                                      iterations: 40, backward: backward)
        #expect(corner.energy == alone.loss)
    }

    @Test func histogramOfAnImage() throws {
        let h = try WassersteinBarycenter.histogram(of: [0, 1, 3, -2], floor: 0.01)
        // (max(x,0) + 0.01·4) / (1.04·4)
        let want: [Float] = [0.04 / 4.16, 1.04 / 4.16, 3.04 / 4.16, 0.04 / 4.16]
        for (got, expected) in zip(h, want) { #expect(abs(got - expected) < 1e-6) }
        #expect(throws: SinkhornError.self) { _ = try WassersteinBarycenter.histogram(of: [0, 0, -1]) }
        #expect(throws: SinkhornError.self) { _ = try WassersteinBarycenter.histogram(of: [1, .nan]) }
        #expect(WassersteinBarycenter.bilinearWeights(s: 0.5, t: 0) == [0.5, 0.5, 0, 0])
        #expect(WassersteinBarycenter.bilinearWeights(s: 0.5, t: 0.5) == [0.25, 0.25, 0.25, 0.25])
    }
}
