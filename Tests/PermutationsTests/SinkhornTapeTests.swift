import Permutations
import Testing
import TensorKit

@Suite("Sinkhorn tape backward")
struct SinkhornTapeTests {
    /// The taped log-domain forward is the same operator as the potential-based one: both are
    /// compared with the Double reference loop (float rounding over ≤ 30 iterations stays < 1e-5).
    @Test(arguments: [(seed: UInt64(1), batch: 3, n: 7, iterations: 15), (seed: 2, batch: 2, n: 20, iterations: 30),
                      (seed: 3, batch: 1, n: 1, iterations: 4)])
    func forwardMatchesReference(seed: UInt64, batch: Int, n: Int, iterations: Int) throws {
        var rng = SeededGenerator(seed: seed)
        let scores = rng.normal([batch, n, n], std: 2)
        let tape = try Sinkhorn.tapeForward(scores, temperature: 0.5, iterations: iterations)
        let plain = try Sinkhorn.forward(scores, temperature: 0.5, iterations: iterations)
        #expect(tape.result.matrix.shape == scores.shape)
        #expect(tape.bytes == SinkhornTape.predictedBytes(batch: batch, size: n, iterations: iterations))
        #expect(tape.bytes == 2 * iterations * batch * n * n * 4)
        for b in 0..<batch {
            let reference = SinkhornReference.sinkhorn(scores.matrix(b), n: n, temperature: 0.5, iterations: iterations)
            let worst = zip(tape.result.matrix.matrix(b), reference).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-5, "seed \(seed) matrix \(b): \(worst)")
        }
        #expect(tape.result.matrix.maxAbsDifference(plain.matrix) < 1e-5, "seed \(seed)")
    }

    /// The tape and the recomputing unrolled backward differentiate the same iterations, so they
    /// agree to float rounding (relative 1e-4 of the largest entry, over up to 60 half-steps).
    @Test(arguments: [(seed: UInt64(10), batch: 2, n: 5, iterations: 1), (seed: 11, batch: 3, n: 9, iterations: 10),
                      (seed: 12, batch: 2, n: 33, iterations: 30), (seed: 13, batch: 4, n: 16, iterations: 20)])
    func gradientMatchesUnrolled(seed: UInt64, batch: Int, n: Int, iterations: Int) throws {
        var rng = SeededGenerator(seed: seed)
        let scores = rng.normal([batch, n, n], std: 1.5)
        let upstream = rng.normal([batch, n, n])
        let tape = try Sinkhorn.tapeForward(scores, temperature: 0.8, iterations: iterations)
        let tapeGradient = try Sinkhorn.tapeGradient(tape, upstream: upstream)
        let recorded = try Sinkhorn.forward(scores, temperature: 0.8, iterations: iterations, recordsHistory: true)
        let unrolled = try Sinkhorn.unrolledGradient(recorded, scores: scores, upstream: upstream)
        #expect(tapeGradient.shape == unrolled.shape)
        let scale = max(unrolled.storage.map(abs).max() ?? 0, 1e-12)
        let error = tapeGradient.maxAbsDifference(unrolled) / scale
        #expect(error < 1e-4, "seed \(seed): relative difference \(error)")
    }

    /// An independent check of the tape: central differences of the Double reference loop.
    @Test func gradientMatchesFiniteDifferences() throws {
        let (batch, n, iterations) = (2, 4, 6)
        let temperature = 0.6
        var rng = SeededGenerator(seed: 20)
        let scores = rng.normal([batch, n, n])
        let upstream = rng.normal([batch, n, n])
        let tape = try Sinkhorn.tapeForward(scores, temperature: Float(temperature), iterations: iterations)
        let gradient = try Sinkhorn.tapeGradient(tape, upstream: upstream)
        for b in 0..<batch {
            let g = upstream.matrix(b)
            let numeric = SinkhornReference.gradient(at: scores.matrix(b), step: 1e-5) { x in
                let p = SinkhornReference.sinkhorn(x, n: n, temperature: temperature, iterations: iterations)
                return zip(p, g).reduce(0) { $0 + $1.0 * $1.1 }
            }
            let error = SinkhornGradientTests.worstRelative(gradient.matrix(b), numeric)
            #expect(error < 1e-3, "seed 20 matrix \(b): relative error \(error)")
        }
    }

    @Test func badInputIsRefused() throws {
        var rng = SeededGenerator(seed: 30)
        let scores = rng.normal([2, 3, 3])
        #expect(throws: SinkhornError.invalidShape(shape: [2, 3, 4])) {
            try Sinkhorn.tapeForward(Tensor(shape: [2, 3, 4]), iterations: 2)
        }
        #expect(throws: SinkhornError.invalidTemperature(0)) { try Sinkhorn.tapeForward(scores, temperature: 0) }
        #expect(throws: SinkhornError.invalidIterations(-1)) { try Sinkhorn.tapeForward(scores, iterations: -1) }
        var bad = scores
        bad.storage[4] = .nan
        #expect(throws: SinkhornError.nonFiniteInput(index: 4)) { try Sinkhorn.tapeForward(bad, iterations: 2) }
        let tape = try Sinkhorn.tapeForward(scores, iterations: 2)
        #expect(throws: SinkhornError.shapeMismatch(expected: [2, 3, 3], found: [3, 3])) {
            try Sinkhorn.tapeGradient(tape, upstream: Tensor(shape: [3, 3]))
        }
    }
}
