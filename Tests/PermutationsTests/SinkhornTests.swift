import Foundation
import Permutations
import Testing
import TensorKit

@Suite struct SinkhornForwardTests {
    /// Columns hold after the last (column) step up to float rounding of an n-term sum (n · 2⁻²⁴ ·
    /// a few); rows within the reported error, which must itself be the measured one.
    @Test(arguments: [1, 2, 3, 5, 8, 13, 36])
    func marginalsHoldOverSeeds(n: Int) throws {
        for seed in UInt64(0)..<12 {
            var rng = SeededGenerator(seed: seed &* 31 &+ UInt64(n))
            let batch = Int(seed % 3) + 1
            let temperature: Float = [0.2, 1, 5][Int(seed % 3)]
            let x = rng.normal([batch, n, n], std: 2)
            let result = try Sinkhorn.forward(x, temperature: temperature, iterations: 30)
            #expect(result.iterations == Array(repeating: 30, count: batch))
            let columnTolerance = Float(n) * 1e-6 + 1e-6
            for b in 0..<batch {
                var rowError: Float = 0
                for i in 0..<n {
                    rowError += abs((0..<n).reduce(Float(0)) { $0 + result.matrix[b, i, $1] } - 1)
                    let column = (0..<n).reduce(Float(0)) { $0 + result.matrix[b, $1, i] }
                    #expect(abs(column - 1) <= columnTolerance, "seed \(seed) n \(n) column \(i) sums to \(column)")
                }
                #expect(abs(rowError - result.marginalError[b]) <= columnTolerance,
                        "seed \(seed) n \(n): rows off by \(rowError), reported \(result.marginalError[b])")
                for i in 0..<(n * n) {
                    let p = result.matrix.storage[b * n * n + i]
                    #expect(abs(exp(result.logMatrix.storage[b * n * n + i]) - p) <= 1e-5 * max(p, 1e-3),
                            "seed \(seed): exp(log P) differs from P")
                }
            }
        }
    }

    @Test func largeTemperatureGivesUniform() throws {
        var rng = SeededGenerator(seed: 5)
        let n = 7
        let result = try Sinkhorn.forward(rng.normal([3, n, n]), temperature: 1e5, iterations: 5)
        // X/τ ≈ 1e-5, so every entry is 1/n to about 1e-5.
        for p in result.matrix.storage { #expect(abs(p - 1 / Float(n)) < 1e-4, "seed 5: \(p)") }
    }

    /// With τ well below the gap between the best and the second-best assignment, S(X/τ) is the
    /// hard matching found by enumerating every permutation (Mena et al. 2018, Theorem 1).
    @Test(arguments: [2, 3, 4, 5, 6])
    func smallTemperatureGivesBruteForceMatching(n: Int) throws {
        var checked = 0
        for seed in UInt64(0)..<10 {
            var rng = SeededGenerator(seed: 100 + seed)
            let x = rng.uniform([n, n])
            let (best, gap) = SinkhornReference.bestMatching(x.doubles, n: n)
            if gap < 0.02 { continue }
            checked += 1
            let temperature = Float(gap / 25)
            let result = try Sinkhorn.forward(x, temperature: temperature, iterations: 20_000, tolerance: 1e-5)
            for i in 0..<n {
                for j in 0..<n {
                    let want: Float = best[i] == j ? 1 : 0
                    #expect(abs(result.matrix[i, j] - want) < 0.05,
                            "seed \(100 + seed) n \(n): P[\(i), \(j)] = \(result.matrix[i, j]), matching \(best)")
                }
            }
        }
        #expect(checked >= 3, "too few seeds with a clear gap")
    }

    /// The early stop happens at the first checked iteration whose row error is below the
    /// tolerance, as counted by the Double reference loop (±1 for float rounding near the threshold).
    @Test func toleranceStopsEarlyAndReportsCount() throws {
        for seed in UInt64(0)..<6 {
            var rng = SeededGenerator(seed: 200 + seed)
            let n = 20
            let x = rng.normal([n, n])
            let tolerance: Float = 1e-3
            let result = try Sinkhorn.forward(x, temperature: 0.5, iterations: 1000, tolerance: tolerance)
            let k = result.iterations[0]
            let expected = SinkhornReference.iterationsToTolerance(x.doubles, n: n, temperature: 0.5,
                                                                   tolerance: Double(tolerance), limit: 1000)
            #expect(k < 1000, "seed \(200 + seed): did not stop")
            #expect(abs(k - expected) <= 1, "seed \(200 + seed): stopped at \(k), reference \(expected)")
            #expect(result.marginalError[0] < tolerance * 1.01, "seed \(200 + seed): error \(result.marginalError[0])")
            let sparse = try Sinkhorn.forward(x, temperature: 0.5, iterations: 1000, tolerance: tolerance,
                                              checkInterval: 5)
            #expect(sparse.iterations[0] % 5 == 0 && sparse.iterations[0] >= k,
                    "seed \(200 + seed): checked every 5 but stopped at \(sparse.iterations[0])")
        }
    }

    /// The fast path (potentials, fused scaling sweeps, absorption, threads) against the plain Double
    /// loop. Float keeps `L = X/τ + f + g` to about `|X/τ| · 2⁻²³` absolute, which bounds the relative
    /// error of `P`; 2e-4 absolute covers it for `|X/τ|` up to a few hundred.
    @Test(arguments: [
        (1, 5, Float(1), 0), (1, 5, Float(1), 1), (3, 7, Float(1), 20), (8, 40, Float(0.1), 50),
        (1, 400, Float(0.3), 30), (2, 12, Float(0.005), 300), (2, 9, Float(0.02), 2000),
    ])
    func matchesDoubleReference(batch: Int, n: Int, temperature: Float, iterations: Int) throws {
        var rng = SeededGenerator(seed: UInt64(n * 1000 + iterations))
        let x = rng.normal([batch, n, n])
        let result = try Sinkhorn.forward(x, temperature: temperature, iterations: iterations)
        for b in 0..<batch {
            let want = SinkhornReference.sinkhorn(x.matrix(b), n: n, temperature: Double(temperature),
                                                  iterations: iterations)
            let got = result.matrix.matrix(b)
            let worst = zip(want, got).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 2e-4, "seed \(n * 1000 + iterations) matrix \(b): max |ΔP| = \(worst)")
        }
    }

    @Test(arguments: [(1, 4, 4), (2, 3, 6), (1, 9, 5)])
    func transportMatchesDoubleReference(batch: Int, m: Int, n: Int) throws {
        var rng = SeededGenerator(seed: UInt64(m * 10 + n))
        let cost = rng.uniform([batch, m, n])
        var a = (0..<m).map { _ in 0.5 + rng.nextUniform() }
        var b = (0..<n).map { _ in 0.5 + rng.nextUniform() }
        let mass = a.reduce(0, +)
        b = b.map { $0 * mass / b.reduce(0, +) }
        a = a.map { $0 }
        let result = try Sinkhorn.transport(cost: cost, rowMarginal: a, columnMarginal: b, entropy: 0.1,
                                            iterations: 40)
        for item in 0..<batch {
            let want = SinkhornReference.transport(cost: cost.matrix(item), rows: m, columns: n,
                                                   rowMarginal: a.map(Double.init), columnMarginal: b.map(Double.init),
                                                   entropy: 0.1, iterations: 40)
            let worst = zip(want, result.matrix.matrix(item)).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-4, "seed \(m * 10 + n): max |ΔP| = \(worst)")
            for i in 0..<m {
                let row = (0..<n).reduce(0.0) { $0 + result.matrix.matrix(item)[i * n + $1] }
                #expect(abs(row - Double(a[i])) < 1e-5, "rows hold after the last (row) step")
            }
        }
    }

    @Test func workspaceReuseGivesSameAnswer() throws {
        var rng = SeededGenerator(seed: 9)
        let workspace = SinkhornWorkspace()
        let big = rng.normal([2, 30, 30])
        let small = rng.normal([4, 6, 6])
        let first = try Sinkhorn.forward(small, temperature: 0.5, workspace: workspace)
        _ = try Sinkhorn.forward(big, temperature: 0.5, workspace: workspace)
        let again = try Sinkhorn.forward(small, temperature: 0.5, workspace: workspace)
        #expect(first.matrix == again.matrix)
        #expect(workspace.reservedBytes > 0)
    }

    @Test func badInputThrows() {
        let square = Tensor(shape: [2, 3, 3])
        #expect(throws: SinkhornError.invalidShape(shape: [2, 3, 4])) {
            try Sinkhorn.forward(Tensor(shape: [2, 3, 4]))
        }
        #expect(throws: SinkhornError.invalidShape(shape: [9])) { try Sinkhorn.forward(Tensor(shape: [9])) }
        #expect(throws: SinkhornError.invalidShape(shape: [0, 3, 3])) { try Sinkhorn.forward(Tensor(shape: [0, 3, 3])) }
        #expect(throws: SinkhornError.invalidTemperature(0)) { try Sinkhorn.forward(square, temperature: 0) }
        #expect(throws: SinkhornError.invalidTemperature(-1)) { try Sinkhorn.forward(square, temperature: -1) }
        #expect(throws: SinkhornError.invalidIterations(-1)) { try Sinkhorn.forward(square, iterations: -1) }
        #expect(throws: SinkhornError.invalidTolerance(tolerance: -1, checkInterval: 1)) {
            try Sinkhorn.forward(square, tolerance: -1)
        }
        #expect(throws: SinkhornError.invalidTolerance(tolerance: 1e-3, checkInterval: 0)) {
            try Sinkhorn.forward(square, tolerance: 1e-3, checkInterval: 0)
        }
        var nan = square
        nan.storage[4] = .nan
        #expect(throws: SinkhornError.nonFiniteInput(index: 4)) { try Sinkhorn.forward(nan) }
        var large = square
        large.storage[2] = 1e30
        #expect(throws: SinkhornError.nonFiniteInput(index: 2)) { try Sinkhorn.forward(large, temperature: 1e-10) }
        let cost = Tensor(shape: [2, 3])
        #expect(throws: SinkhornError.marginalLength(expected: 2, found: 3)) {
            try Sinkhorn.transport(cost: cost, rowMarginal: [1, 1, 1], columnMarginal: [1, 1, 1], entropy: 1)
        }
        #expect(throws: SinkhornError.nonPositiveMarginal(index: 1, value: 0)) {
            try Sinkhorn.transport(cost: cost, rowMarginal: [2, 0], columnMarginal: [1, 1, 1], entropy: 1)
        }
        #expect(throws: SinkhornError.unequalMass(rowMass: 2, columnMass: 3)) {
            try Sinkhorn.transport(cost: cost, rowMarginal: [1, 1], columnMarginal: [1, 1, 1], entropy: 1)
        }
        #expect(throws: SinkhornError.invalidTemperature(0)) {
            try Sinkhorn.transport(cost: cost, rowMarginal: [1.5, 1.5], columnMarginal: [1, 1, 1], entropy: 0)
        }
    }
}

@Suite struct SinkhornGumbelTests {
    @Test func noiseIsSeededAndLaidOutBySample() throws {
        var rng = SeededGenerator(seed: 11)
        let x = rng.normal([2, 4, 4])
        var generator = SeededGenerator(seed: 42)
        let draw = try GumbelSinkhorn.sample(x, temperature: 0.5, noiseFactor: 0.7, samplesPerExample: 3,
                                             generator: &generator)
        #expect(draw.noise.shape == [6, 4, 4] && draw.result.matrix.shape == [6, 4, 4])
        // The same numbers straight from the generator, in output order.
        var replay = SeededGenerator(seed: 42)
        let expected = (0..<(6 * 16)).map { _ in replay.nextGumbel() }
        #expect(draw.noise.storage == expected, "seed 42: noise is not the generator's sequence")
        for sample in 0..<6 {
            let example = sample / 3
            for index in 0..<16 {
                let want = x.storage[example * 16 + index] + 0.7 * draw.noise.storage[sample * 16 + index]
                #expect(draw.perturbedScores.storage[sample * 16 + index] == want)
            }
        }
        // Gumbel(0, 1) has mean γ ≈ 0.5772 and variance π²/6; 96 draws keep the mean within ±0.45.
        let mean = expected.reduce(0, +) / Float(expected.count)
        #expect(abs(mean - 0.5772) < 0.45, "seed 42: Gumbel mean \(mean)")
        // Zero noise factor draws nothing and gives the plain operator.
        var quiet = SeededGenerator(seed: 3)
        let plain = try GumbelSinkhorn.sample(x, temperature: 0.5, noiseFactor: 0, samplesPerExample: 2,
                                              generator: &quiet)
        var untouched = SeededGenerator(seed: 3)
        #expect(quiet.next() == untouched.next())
        let want = SinkhornReference.sinkhorn(x.matrix(1), n: 4, temperature: 0.5, iterations: 20)
        let worst = zip(want, plain.result.matrix.matrix(3)).map { abs($0 - $1) }.max() ?? 1
        #expect(worst < 1e-5)
        #expect(throws: SinkhornError.invalidSampleCount(0)) {
            try GumbelSinkhorn.sample(x, temperature: 1, samplesPerExample: 0, generator: &quiet)
        }
    }

    @Test func sampleGradientSumsOverSamples() throws {
        var rng = SeededGenerator(seed: 12)
        let x = rng.normal([2, 3, 3])
        var generator = SeededGenerator(seed: 13)
        let draw = try GumbelSinkhorn.sample(x, temperature: 1, samplesPerExample: 2, recordsHistory: true,
                                             generator: &generator)
        let upstream = rng.normal([4, 3, 3])
        let perSample = try Sinkhorn.unrolledGradient(draw.result, scores: draw.perturbedScores, upstream: upstream)
        let summed = try draw.unrolledGradient(upstream: upstream)
        #expect(summed.shape == [2, 3, 3])
        for example in 0..<2 {
            for index in 0..<9 {
                let want = perSample.storage[(2 * example) * 9 + index] + perSample.storage[(2 * example + 1) * 9 + index]
                #expect(summed.storage[example * 9 + index] == want)
            }
        }
    }
}
